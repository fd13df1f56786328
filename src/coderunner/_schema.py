"""output_schema: JSON Schema draft 2020-12, validated with the jsonschema library."""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.validators import Draft202012Validator

from ._errors import InvalidRequest


def compile_schema(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for the schema, or InvalidRequest saying why the schema is invalid."""
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise InvalidRequest(
            f"output_schema is not a valid JSON Schema at {where}: {exc.message}"
        ) from None
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _path(parts: Any) -> str:
    out = "result"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def schema_problems(validator: Draft202012Validator, value: Any) -> list[str]:
    """Every failing path with its reason, e.g. ``result.items[2].zip: 'x' is not ...``."""
    errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_path(e.absolute_path)}: {e.message}" for e in errors]
