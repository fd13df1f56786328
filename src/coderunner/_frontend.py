"""What every front-end (HTTP, MCP, the CLI, `coderunner serve`'s early path) shares.

The tool definitions (`execute-python`, `execute-javascript`, `execute-typescript`) for
MCP's `tools/list`
and HTTP's `GET /v1/tools`; `run_tool`, the one path from a request to an
ExecutionResult with its log line; the readable validation message; the error body of
every refused request; and the JSON-lines logging.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._engine import Engine
from ._errors import InvalidRequest, NotFound, Saturated, StoreUnavailable
from ._library import Library
from ._models import (
    MIN_MEMORY_MB,
    Code,
    ExecutionRequest,
    ExecutionResult,
    Inputs,
    Language,
    MemoryMb,
    OutputSchema,
    Secrets,
    Snippet,
    TimeoutMs,
)
from ._packages import offered as offered_packages
from ._settings import Settings

log = logging.getLogger("coderunner.executions")

# Tool name → the language it runs.
TOOL_LANGUAGES: dict[str, Language] = {
    "execute-python": Language.PYTHON,
    "execute-javascript": Language.JAVASCRIPT,
    "execute-typescript": Language.TYPESCRIPT,
}


class ToolArguments(BaseModel):
    """The arguments of both tools: an ExecutionRequest without `language`."""

    model_config = ConfigDict(extra="forbid")

    code: Code
    inputs: Inputs = Field(default_factory=dict)
    timeout_ms: TimeoutMs = None
    memory_mb: MemoryMb = None
    output_schema: OutputSchema = None
    secrets: Secrets = Field(default_factory=dict)

    def request(self, language: Language) -> ExecutionRequest:
        """The ExecutionRequest these arguments make for `language`."""
        # The fields as they are (model_dump would copy a large input, value by value).
        return ExecutionRequest(language=language, **dict(self))


# -- tool definitions, written for the model that will call them ------------------------

_COMMON_RULES = """\
Rules of the sandbox: no network, no access to files or the environment of the host, no \
starting other programs, no third-party packages; only a small scratch /tmp that is erased \
afterwards. Nothing survives between calls: pass everything the code needs in `inputs` \
(data goes in `inputs`, not pasted into the code). Limits: {timeout_ms} ms wall clock by \
default (at most {max_timeout_ms} via timeout_ms), {memory_mb} MB of memory by default (at \
most {max_memory_mb} via memory_mb).

The answer is an ExecutionResult: `ok`, `result` (the returned value as JSON), `stdout`, \
`stderr`, `error`, `duration_ms`. Printed output goes to `stdout`/`stderr`, never into \
`result`. When `ok` is false, `error.type` says why (syntax_error, runtime_error, timeout, \
memory_limit, output_limit, serialization_error, input_error, schema_error) and \
`error.message`, `error.line` and `error.traceback` point at your code: fix it and call \
again. Give `output_schema` (a JSON Schema) to have the result checked: a mismatch is a \
schema_error listing every failing path."""

_PYTHON = """\
Run a Python 3 snippet in an isolated sandbox and get its result back as JSON.

Available: the whole Python standard library (json, re, math, statistics, datetime, \
zoneinfo, decimal, fractions, hashlib, hmac, base64, uuid, csv, itertools, collections, \
textwrap, difflib, asyncio, ...). Not available: pip packages (no numpy, pandas, requests).

Two snippet styles:
1. Function style (recommended): define `main`. Its parameters are filled by name from \
`inputs` (defaults apply, a missing required one is an input_error, `**kwargs` receives \
the rest; `async def main` is awaited). What `main` returns is the result.
    def main(orders, rate=1.0):
        return {{"total": round(sum(o["amount"] for o in orders) * rate, 2)}}
2. Script style: no `main`. Every input is also a variable of that name and `inputs` is a \
dict of them all. The value of the last expression statement is the result, as in a \
notebook cell (none → null); top-level `await` works.
    total = sum(o["amount"] for o in orders)
    {{"total": total}}

The result must be plain JSON: dict (string keys), list, str, int, float, bool, None. \
Convert other values yourself: datetime → .isoformat(), Decimal → str(), set → sorted \
list, bytes → .hex() or base64; NaN and infinities are refused. Exiting (sys.exit) instead \
of returning is a runtime_error.

{rules}"""

_JAVASCRIPT = """\
Run a JavaScript snippet in an isolated sandbox and get its result back as JSON.

Available, as its standard library: the language built-ins, the web standard APIs (crypto.subtle, \
crypto.randomUUID, TextEncoder/TextDecoder, URL, URLSearchParams, atob/btoa, \
structuredClone, Intl) and Node built-ins through require("crypto"), \
require("node:crypto") or `import` statements. Not available: npm packages, fetch/network, \
the file system.

Two snippet styles:
1. Function style (recommended): define `main` (function, async function, or `const main \
= (...) => ...`). Its parameters are filled by name from `inputs` (defaults apply; a \
missing required one is an input_error); async functions are awaited. A single \
destructured parameter, `function main({{ orders, rate }})`, receives all the inputs. What \
`main` returns is the result.
    function main(orders, rate = 1) {{
      return {{ total: orders.reduce((s, o) => s + o.amount, 0) * rate }};
    }}
2. Script style: no `main`. The code is the body of an async function: every input is a \
variable of that name and `inputs` holds them all; `return` the result (no return → \
null); `await` works.
    const total = orders.reduce((s, o) => s + o.amount, 0);
    return {{ total }};

The result is what JSON.stringify makes of the returned value (a Date becomes its ISO \
string). Values it would drop or alter are a serialization_error naming the path: convert \
Map (Object.fromEntries), Set ([...set]), BigInt (String(n)), and avoid NaN, Infinity, \
functions, symbols and cycles. console.log goes to stdout, console.error to stderr. \
Exiting (process.exit, Deno.exit) instead of returning is a runtime_error.

{rules}"""

_TYPESCRIPT = """\
Run a TypeScript snippet in an isolated sandbox and get its result back as JSON.

TypeScript is run, not type-checked: the types are stripped and the code runs as \
JavaScript (a type error is no error; interfaces, type aliases, generics, enums, `as` and \
`satisfies` work). Available, as its standard library: the language built-ins, the web \
standard APIs (crypto.subtle, crypto.randomUUID, TextEncoder/TextDecoder, URL, \
URLSearchParams, atob/btoa, structuredClone, Intl) and Node built-ins through \
require("crypto"), require("node:crypto") or `import` statements. Not available: npm \
packages, fetch/network, the file system.

Two snippet styles:
1. Function style (recommended): define `main` (function, async function, or `const main \
= (...) => ...`), with typed parameters if you like. Its parameters are filled by name \
from `inputs` (defaults apply; a missing required one is an input_error); async functions \
are awaited. A single destructured parameter, `function main({{ orders, rate }}: Inputs)`, \
receives all the inputs. What `main` returns is the result.
    interface Order {{ amount: number }}
    function main(orders: Order[], rate: number = 1): {{ total: number }} {{
      return {{ total: orders.reduce((s, o) => s + o.amount, 0) * rate }};
    }}
2. Script style: no `main`. The code is the body of an async function: every input is a \
variable of that name and `inputs` holds them all; `return` the result (no return → \
null); `await` works.
    const total: number = orders.reduce((s: number, o: {{ amount: number }}) => s + o.amount, 0);
    return {{ total }};

The result is what JSON.stringify makes of the returned value (a Date becomes its ISO \
string). Values it would drop or alter are a serialization_error naming the path: convert \
Map (Object.fromEntries), Set ([...set]), BigInt (String(n)), and avoid NaN, Infinity, \
functions, symbols and cycles. console.log goes to stdout, console.error to stderr. \
Exiting (process.exit, Deno.exit) instead of returning is a runtime_error. Errors point \
at the lines of your TypeScript source.

{rules}"""

_AGENT_HINT = """

To have a model write the code from a goal instead, use Agent Mode: POST /v1/agent with \
{goal, language, inputs, output_schema?}; its final `code` then runs as is here."""

# Descriptions of the ExecutionResult fields, for the tools' output schema.
_RESULT_FIELDS = {
    "ok": "True when the snippet returned a valid result.",
    "result": "The returned value as JSON (null when not ok; for schema_error, the value "
    "that failed).",
    "stdout": "What the snippet printed (capped).",
    "stderr": "What the snippet printed to stderr (capped).",
    "stdout_truncated": "True when stdout was cut at the cap.",
    "stderr_truncated": "True when stderr was cut at the cap.",
    "error": "Null, or why there is no valid result: {type, name, message, line, traceback}.",
    "duration_ms": "Time the snippet ran, in milliseconds.",
    "language": "python, javascript or typescript.",
    "execution_id": "This execution's id (it is in the service's log line too).",
}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Resolve the local `$ref`s of a (non-recursive) schema and drop `$defs` and titles."""
    defs = schema.get("$defs", {})

    def walk(node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = defs[node["$ref"].rsplit("/", 1)[-1]]
                merged = {**walk(target), **{k: walk(v) for k, v in node.items() if k != "$ref"}}
                return merged
            out = {}
            for k, v in node.items():
                if k == "$defs" or (k == "title" and key != "properties"):
                    continue
                out[k] = walk(v, k)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    inlined: dict[str, Any] = walk(copy.deepcopy(schema))
    return inlined


def _result_schema() -> dict[str, Any]:
    schema = _inline_refs(ExecutionResult.model_json_schema())
    for name, description in _RESULT_FIELDS.items():
        schema["properties"][name]["description"] = description
    return schema


def _input_schema(language: Language, settings: Settings) -> dict[str, Any]:
    names = {Language.PYTHON: "Python", Language.TYPESCRIPT: "TypeScript"}
    lang = names.get(language, "JavaScript")
    return {
        "type": "object",
        "properties": {
            "code": {
                "type": "string",
                "description": f"The {lang} snippet: define main(...) and return the result, "
                "or script style (see the tool description).",
            },
            "inputs": {
                "type": "object",
                "additionalProperties": True,
                "description": "Named JSON inputs. Function style: bound to main's parameters "
                "by name. Script style: each is a variable of that name.",
            },
            "timeout_ms": {
                "type": "integer",
                "minimum": 1,
                "maximum": settings.max_timeout_ms,
                "description": "Wall-clock limit in milliseconds "
                f"(default {settings.default_timeout_ms}).",
            },
            "memory_mb": {
                "type": "integer",
                "minimum": MIN_MEMORY_MB,
                "maximum": settings.max_memory_mb,
                "description": f"Memory limit in MB (default {settings.default_memory_mb}).",
            },
            "output_schema": {
                "type": "object",
                "description": "Optional JSON Schema (draft 2020-12) the result must match; "
                "a mismatch is ok=false with error.type schema_error.",
            },
            "secrets": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Named secrets (API keys, signing keys), bound like inputs. "
                "Never logged or stored; their text is masked as *** in stdout, stderr and "
                "error.",
            },
        },
        "required": ["code"],
        "additionalProperties": False,
    }


def tool_definitions(settings: Settings, *, agent_hint: bool = False) -> list[dict[str, Any]]:
    """`{name, description, input_schema, output_schema}` of each tool, ready for an LLM."""
    rules = _COMMON_RULES.format(
        timeout_ms=settings.default_timeout_ms,
        max_timeout_ms=settings.max_timeout_ms,
        memory_mb=settings.default_memory_mb,
        max_memory_mb=settings.max_memory_mb,
    )
    texts = {
        Language.PYTHON: _PYTHON,
        Language.JAVASCRIPT: _JAVASCRIPT,
        Language.TYPESCRIPT: _TYPESCRIPT,
    }
    python_packages, javascript_packages = offered_packages(settings)
    with_packages = {
        Language.PYTHON: python_packages,
        Language.JAVASCRIPT: javascript_packages,
        Language.TYPESCRIPT: javascript_packages,
    }
    output_schema = _result_schema()
    return [
        {
            "name": name,
            "description": _name_packages(
                texts[language].format(rules=rules), language, with_packages[language]
            )
            + (_AGENT_HINT if agent_hint else ""),
            "input_schema": _input_schema(language, settings),
            "output_schema": copy.deepcopy(output_schema),
        }
        for name, language in TOOL_LANGUAGES.items()
    ]


_NO_PIP = "Not available: pip packages (no numpy, pandas, requests)."
_NO_NPM = "Not available: npm packages, fetch/network, the file system."
_NO_PACKAGES = "no third-party packages;"


def _name_packages(description: str, language: Language, packages: tuple[str, ...]) -> str:
    """A tool's description naming the vetted packages its snippets can import."""
    if not packages:
        return description
    listed = "; ".join(packages) if language is Language.PYTHON else ", ".join(packages)
    if language is Language.PYTHON:
        text = (
            f"Installed third-party packages (import them as usual): {listed}. Nothing "
            "else can be installed (no pip)."
        )
        description = description.replace(_NO_PIP, text)
    else:
        first = packages[0].rsplit("@", 1)[0] if "@" in packages[0][1:] else packages[0]
        text = (
            f'Installed npm packages (import x from "{first}" or require("{first}")): '
            f"{listed}. Not available: other npm packages, fetch/network, the file system."
        )
        description = description.replace(_NO_NPM, text)
    return description.replace(_NO_PACKAGES, "no third-party packages but those named above;")


# -- requests: validation messages, error bodies ---------------------------------------


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """One readable clause per problem, naming the field (``inputs: must be an object``).

    `errors` is pydantic's ``ValidationError.errors()`` (FastAPI's included, whose
    locations start with "body").
    """
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        kind = error.get("type", "")
        if kind == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "invalid JSON")
            where = f" at character {loc[0]}" if loc else ""
            parts.append(f"the body is not valid JSON: {detail}{where}")
        elif kind == "missing" and not loc:
            parts.append("the body is missing: send a JSON object")
        elif kind == "model_attributes_type" and not loc:
            parts.append("the body must be a JSON object")
        elif kind == "extra_forbidden":
            parts.append(f"{'.'.join(loc)}: unknown field")
        else:
            where = ".".join(loc) or "body"
            message = error.get("msg", "is invalid")
            if where == "inputs" and kind == "dict_type":
                message = "must be a JSON object of named inputs"
            parts.append(f"{where}: {message}")
    return "; ".join(parts) or "the request is invalid"


def error_body(kind: str, message: str) -> dict[str, Any]:
    """The JSON body of every refused request: ``{"error": {"type", "message"}}``."""
    return {"error": {"type": kind, "message": message}}


# -- running a tool, with its log line ----------------------------------------------------


def execution_log_fields(
    surface: str,
    language: Language,
    outcome: str,
    result: ExecutionResult | None,
    *,
    snippet: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The fields of one execution's log line; code and inputs only when given (they are
    given only with --log-inputs); secrets never."""
    fields: dict[str, Any] = {
        "event": "execution",
        "execution_id": result.execution_id if result else None,
        "surface": surface,
        "language": language.value,
        "outcome": outcome,
        "duration_ms": result.duration_ms if result else None,
    }
    if snippet is not None:
        fields["snippet"] = snippet
        fields["version"] = result.snippet.version if result and result.snippet else None
    if code is not None:
        fields["code"] = code
    if inputs is not None:
        fields["inputs"] = dict(inputs)
    return fields


def _outcome(result: ExecutionResult) -> str:
    return "ok" if result.ok or result.error is None else result.error.type.value


async def run_tool(
    engine: Engine,
    request: ExecutionRequest,
    *,
    surface: str,
    log_inputs: bool = False,
    library: Library | None = None,
    decode_result: bool = True,
    inputs_json: bytes | None = None,
) -> ExecutionResult:
    """Execute one request, log it and record it in the history (with `library`);
    raises InvalidRequest or Saturated.  `decode_result`, `inputs_json`: as for
    `Engine.execute` (with `log_inputs`, the inputs are logged: give them decoded)."""
    code = request.code if log_inputs else None
    inputs = request.inputs if log_inputs else None
    try:
        result = await engine.execute(request, decode_result=decode_result, inputs_json=inputs_json)
    except (InvalidRequest, Saturated) as exc:
        outcome = "invalid_request" if isinstance(exc, InvalidRequest) else "saturated"
        fields = execution_log_fields(
            surface, request.language, outcome, None, inputs=inputs, code=code
        )
        log.info("execution refused", extra={"fields": fields})
        raise
    fields = execution_log_fields(
        surface, request.language, _outcome(result), result, inputs=inputs, code=code
    )
    log.info("execution", extra={"fields": fields})
    if library is not None:
        library.record(request, result, surface=surface)
    return result


async def run_snippet(
    library: Library,
    name: str,
    *,
    surface: str,
    inputs: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    version: int | None = None,
    timeout_ms: int | None = None,
    memory_mb: int | None = None,
    log_inputs: bool = False,
) -> ExecutionResult:
    """Run a library snippet by name and log it (the library records it); raises
    NotFound, InvalidRequest, Saturated or StoreUnavailable."""
    result = await library.run(
        name,
        inputs=inputs,
        secrets=secrets,
        version=version,
        timeout_ms=timeout_ms,
        memory_mb=memory_mb,
        surface=surface,
    )
    fields = execution_log_fields(
        surface,
        result.language,
        _outcome(result),
        result,
        snippet=name,
        inputs=inputs if log_inputs else None,
    )
    log.info("execution", extra={"fields": fields})
    return result


async def snippet_tool_definitions(library: Library) -> list[dict[str, Any]]:
    """Every library snippet as a tool (its latest version), by name; [] when the store is
    down (the built-in tools still answer).  HTTP's /v1/tools and MCP's tools/list."""
    try:
        return [
            snippet_tool_definition(await library.get(summary.name))
            for summary in await library.search()
        ]
    except (StoreUnavailable, NotFound) as exc:  # (NotFound: deleted while listing)
        log.warning("library tools unavailable: %s", exc)
        return []


def snippet_tool_definition(snippet: Snippet) -> dict[str, Any]:
    """A library snippet as a tool: its arguments are the snippet's inputs."""
    description = snippet.description.strip() or f"The library snippet {snippet.name}."
    description += (
        f"\n\n(Library snippet `{snippet.name}` version {snippet.version}, "
        f"{snippet.language.value}; runs in the sandbox. The answer is an ExecutionResult: "
        "`ok`, `result`, `error`.)"
    )
    return {
        "name": snippet.name,
        "description": description,
        "input_schema": snippet.input_schema or {"type": "object"},
        "output_schema": _result_schema(),
    }


# -- logging: JSON lines on stderr -----------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def logging_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for coderunner's and uvicorn's loggers: JSON lines on
    stderr (given to uvicorn as its `log_config`, so that its lines are JSON too)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            name: {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
            for name in ("coderunner", "uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(level: str = "info") -> None:
    """Send coderunner's (and uvicorn's) logs to stderr as JSON lines."""
    import logging.config

    logging.config.dictConfig(logging_config(level))
