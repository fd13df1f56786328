"""The library's HTTP routes: snippets, inspect, and the execution history.

    PUT    /v1/snippets/{name}                  save: 201 new snippet, 200 new or same version
    GET    /v1/snippets[?q=TEXT]                the latest version of each
    GET    /v1/snippets/{name}                  the latest version
    GET    /v1/snippets/{name}/versions         every version, newest first
    GET    /v1/snippets/{name}/versions/{n}     one version
    DELETE /v1/snippets/{name}                  204
    POST   /v1/snippets/{name}/run              an ExecutionResult with `snippet`
    POST   /v1/inspect                          parameters and input schema of main
    GET    /v1/executions[?snippet=][&limit=]   recent executions, newest first
    GET    /v1/executions/{id}                  one, with its result (and library inputs)

Unknown names, versions and ids are 404; a database that is down is 503 (plain
executions keep working); a save whose examples fail is 422 with every failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ._frontend import run_snippet
from ._http_errors import ERROR_RESPONSES, ErrorBody
from ._library import Library
from ._metrics import Metrics
from ._models import (
    SNIPPET_NAME_PATTERN,
    Code,
    ErrorDetail,
    ExecutionRecord,
    ExecutionResult,
    ExecutionSummary,
    Inputs,
    Language,
    MemoryMb,
    Secrets,
    Snippet,
    SnippetSpec,
    SnippetSummary,
    TimeoutMs,
)


class SnippetList(BaseModel):
    """The answer of GET /v1/snippets."""

    snippets: list[SnippetSummary]


class VersionList(BaseModel):
    """The answer of GET /v1/snippets/{name}/versions: every version, newest first."""

    versions: list[Snippet]


class SnippetRun(BaseModel):
    """The body of POST /v1/snippets/{name}/run."""

    model_config = ConfigDict(extra="forbid")

    inputs: Inputs = Field(default_factory=dict)
    secrets: Secrets = Field(default_factory=dict)
    version: int | None = Field(None, ge=1, description="A pinned version (default: latest).")
    timeout_ms: TimeoutMs = None
    memory_mb: MemoryMb = None


class InspectRequest(BaseModel):
    """The body of POST /v1/inspect."""

    model_config = ConfigDict(extra="forbid")

    language: Language
    code: Code


class InspectParameter(BaseModel):
    """One parameter of main."""

    name: str
    required: bool
    default: Any = None
    annotation: str | None = None


class InspectAnswer(BaseModel):
    """What main takes: its parameters and the JSON Schema of the inputs."""

    has_main: bool
    parameters: list[InspectParameter]
    input_schema: dict[str, Any]


class ExecutionList(BaseModel):
    """The answer of GET /v1/executions."""

    executions: list[ExecutionSummary]


# Checked by the library, whose message says what a name may be (422).
_NAME = Path(description=f"The snippet's name ({SNIPPET_NAME_PATTERN}).")
_404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such snippet, version or execution."}
}
_503: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "The library's database is unavailable."}
}


def add_library_routes(
    app: FastAPI,
    get_library: Callable[[], Library],
    security: Sequence[Any],
    *,
    log_inputs: bool,
    metrics: Metrics,
) -> None:
    """Add the library's routes to `app`, behind the same `security` as the rest."""
    deps = list(security)
    common: dict[str, Any] = {"dependencies": deps, "tags": ["library"]}

    @app.put(
        "/v1/snippets/{name}",
        response_model=Snippet,
        status_code=201,
        responses={
            200: {"model": Snippet, "description": "A new version, or the same one unchanged."},
            **ERROR_RESPONSES,
            **_503,
        },
        summary="Save a snippet (a new version when anything changed)",
        **common,
    )
    async def put_snippet(spec: SnippetSpec, response: Response, name: str = _NAME) -> Snippet:
        """Save a function-style snippet under `name`: its examples run first, and a save
        whose examples fail is refused (422, each failure named).  201 for a new snippet's
        first version; 200 with a new version, or with the current one when nothing
        changed."""
        library = get_library()
        snippet, created = await library.save(name, spec)
        response.status_code = 201 if created and snippet.version == 1 else 200
        return snippet

    @app.get(
        "/v1/snippets",
        response_model=SnippetList,
        responses={401: ERROR_RESPONSES[401], **_503},
        summary="List or search the library",
        **common,
    )
    async def list_snippets(
        q: str | None = Query(None, description="Text in the name, description or tags."),
    ) -> SnippetList:
        """The latest version of every snippet (matching `q`), by name."""
        return SnippetList(snippets=await get_library().search(q))

    @app.get(
        "/v1/snippets/{name}",
        response_model=Snippet,
        responses={401: ERROR_RESPONSES[401], **_404, **_503},
        summary="A snippet's latest version",
        **common,
    )
    async def get_snippet(name: str = _NAME) -> Snippet:
        return await get_library().get(name)

    @app.get(
        "/v1/snippets/{name}/versions",
        response_model=VersionList,
        responses={401: ERROR_RESPONSES[401], **_404, **_503},
        summary="Every version of a snippet, newest first",
        **common,
    )
    async def get_versions(name: str = _NAME) -> VersionList:
        return VersionList(versions=await get_library().versions(name))

    @app.get(
        "/v1/snippets/{name}/versions/{version}",
        response_model=Snippet,
        responses={401: ERROR_RESPONSES[401], **_404, **_503},
        summary="One version of a snippet",
        **common,
    )
    async def get_version(name: str = _NAME, version: int = Path(ge=1)) -> Snippet:
        return await get_library().get(name, version)

    @app.delete(
        "/v1/snippets/{name}",
        status_code=204,
        response_class=Response,
        responses={401: ERROR_RESPONSES[401], **_404, **_503},
        summary="Delete a snippet and all its versions",
        **common,
    )
    async def delete_snippet(name: str = _NAME) -> Response:
        await get_library().delete(name)
        return Response(status_code=204)

    @app.post(
        "/v1/snippets/{name}/run",
        response_model=ExecutionResult,
        responses={**ERROR_RESPONSES, **_404, **_503},
        summary="Run a library snippet by name",
        **common,
    )
    async def run_snippet_route(body: SnippetRun, name: str = _NAME) -> ExecutionResult:
        """Run the latest (or a pinned) version on `inputs`: 200 with an ExecutionResult
        carrying `snippet: {name, version}`.  Inputs that do not fit the snippet's
        input_schema are an `input_error` listing every failing path; nothing runs."""
        try:
            return await run_snippet(
                get_library(),
                name,
                surface="http",
                inputs=body.inputs,
                secrets=body.secrets,
                version=body.version,
                timeout_ms=body.timeout_ms,
                memory_mb=body.memory_mb,
                log_inputs=log_inputs,
            )
        finally:
            metrics.drain()

    @app.post(
        "/v1/inspect",
        response_model=InspectAnswer,
        responses={
            401: ERROR_RESPONSES[401],
            422: {
                "description": "The code does not parse: `error` is a syntax_error in the "
                "shape of an execution's error ({type, name, message, line, traceback})."
            },
        },
        summary="The parameters and input schema of main",
        response_model_exclude_unset=True,  # `default` only where a parameter has one
        dependencies=deps,
        tags=["library"],
    )
    async def inspect(body: InspectRequest) -> Any:
        """Read `main`'s parameters (never running the code): Python type hints and
        defaults, JavaScript defaults and JSDoc, as a JSON Schema of the inputs."""
        found = get_library().inspect(body.code, body.language)
        if isinstance(found, ErrorDetail):
            return error_response_with(found)
        return found.answer()

    @app.get(
        "/v1/executions",
        response_model=ExecutionList,
        responses={401: ERROR_RESPONSES[401], 422: ERROR_RESPONSES[422], **_503},
        summary="Recent executions, newest first",
        dependencies=deps,
        tags=["history"],
    )
    async def list_executions(
        snippet: str | None = Query(None, description="Only this library snippet's runs."),
        limit: int = Query(50, ge=1, le=1000),
    ) -> ExecutionList:
        return ExecutionList(
            executions=await get_library().executions(snippet=snippet, limit=limit)
        )

    @app.get(
        "/v1/executions/{execution_id}",
        response_model=ExecutionRecord,
        responses={401: ERROR_RESPONSES[401], **_404, **_503},
        summary="One recorded execution with its result",
        dependencies=deps,
        tags=["history"],
    )
    async def get_execution(execution_id: str) -> ExecutionRecord:
        return await get_library().execution(execution_id)


def error_response_with(error: ErrorDetail) -> JSONResponse:
    """A 422 whose `error` is an execution's ErrorDetail (a syntax_error)."""
    return JSONResponse({"error": error.model_dump(mode="json")}, status_code=422)
