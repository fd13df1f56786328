"""The error bodies of the HTTP API, and their OpenAPI descriptions.

Every error of the request itself is JSON ``{"error": {"type", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ._frontend import error_body


class ErrorInfo(BaseModel):
    """What was wrong with the request."""

    type: str = Field(description="unauthorized, body_too_large, invalid_request, saturated...")
    message: str = Field(description="A human-readable explanation, naming the field.")


class ErrorBody(BaseModel):
    """The body of every 4xx answer."""

    error: ErrorInfo


def error_response(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse(error_body(kind, message), status_code=status, headers=headers)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "API keys configured; the key is missing/wrong."},
    413: {"model": ErrorBody, "description": "The body is larger than the server allows."},
    422: {
        "model": ErrorBody,
        "description": "Malformed JSON or field, a limit above the server's maximum, or an "
        "invalid output_schema.",
    },
    429: {
        "model": ErrorBody,
        "description": "Every execution slot is busy and the queue is full; retry after "
        "the Retry-After header's seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
    },
}
