"""The two tools (`execute-python`, `execute-javascript`) and the MCP server that offers them.

The tool definitions here are the one source for MCP's `tools/list` and HTTP's
`GET /v1/tools`; `run_tool` is the one path from tool arguments to an ExecutionResult.
The MCP server is the official SDK's low-level `Server`, served on stdio by `coderunner
mcp` and over streamable HTTP at `/mcp` by `coderunner serve`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import sys
from collections.abc import Callable
from typing import Any

import mcp.types as mcp_types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._engine import Engine
from ._errors import InvalidRequest, Saturated
from ._models import MIN_MEMORY_MB, ExecutionRequest, ExecutionResult, Language
from ._settings import Settings

__all__ = [
    "TOOL_LANGUAGES",
    "ToolArguments",
    "build_server",
    "execution_log_line",
    "run_stdio",
    "run_tool",
    "streamable_http_manager",
    "tool_definitions",
    "validation_message",
]

log = logging.getLogger("coderunner.executions")

# Tool name → the language it runs.
TOOL_LANGUAGES: dict[str, Language] = {
    "execute-python": Language.PYTHON,
    "execute-javascript": Language.JAVASCRIPT,
}


class ToolArguments(BaseModel):
    """The arguments of both tools: an ExecutionRequest without `language`."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="The snippet's source.")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Named inputs, bound to main's parameters by name."
    )
    timeout_ms: int | None = Field(None, ge=1, description="Wall-clock limit (server default).")
    memory_mb: int | None = Field(
        None, ge=MIN_MEMORY_MB, description="Memory limit in MiB (server default)."
    )
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema (draft 2020-12) the result must validate against."
    )

    def request(self, language: Language) -> ExecutionRequest:
        """The ExecutionRequest these arguments make for `language`."""
        return ExecutionRequest(language=language, **self.model_dump())


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
    "language": "python or javascript.",
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

    return walk(copy.deepcopy(schema))


def _result_schema() -> dict[str, Any]:
    schema = _inline_refs(ExecutionResult.model_json_schema())
    for name, description in _RESULT_FIELDS.items():
        schema["properties"][name]["description"] = description
    return schema


def _input_schema(language: Language, settings: Settings) -> dict[str, Any]:
    lang = "Python" if language is Language.PYTHON else "JavaScript"
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
    texts = {Language.PYTHON: _PYTHON, Language.JAVASCRIPT: _JAVASCRIPT}
    output_schema = _result_schema()
    return [
        {
            "name": name,
            "description": texts[language].format(rules=rules)
            + (_AGENT_HINT if agent_hint else ""),
            "input_schema": _input_schema(language, settings),
            "output_schema": copy.deepcopy(output_schema),
        }
        for name, language in TOOL_LANGUAGES.items()
    ]


# -- running a tool ----------------------------------------------------------------------


def validation_message(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """One readable line per problem, e.g. ``timeout_ms: Input should be a valid integer``."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(p) for p in error.get("loc", ()))
        where = ".".join(prefix + loc) or "body"
        lines.append(f"{where}: {error['msg']}")
    return "; ".join(lines)


def execution_log_line(
    surface: str,
    request: ExecutionRequest,
    outcome: str,
    duration_ms: float | None,
    *,
    log_inputs: bool,
) -> str:
    """The structured (JSON) log line of one execution; code and inputs only on request."""
    line: dict[str, Any] = {
        "event": "execution",
        "surface": surface,
        "language": request.language.value,
        "outcome": outcome,
        "duration_ms": duration_ms,
    }
    if log_inputs:
        line["code"] = request.code
        line["inputs"] = request.inputs
    return json.dumps(line, default=str)


async def run_tool(
    engine: Engine,
    request: ExecutionRequest,
    *,
    surface: str,
    log_inputs: bool = False,
) -> ExecutionResult:
    """Execute one request and log its outcome; raises InvalidRequest or Saturated."""
    try:
        result = await engine.execute(request)
    except InvalidRequest:
        log.info(
            execution_log_line(surface, request, "invalid_request", None, log_inputs=log_inputs)
        )
        raise
    except Saturated:
        log.warning(execution_log_line(surface, request, "saturated", None, log_inputs=log_inputs))
        raise
    outcome = "ok" if result.ok or result.error is None else result.error.type.value
    log.info(
        execution_log_line(surface, request, outcome, result.duration_ms, log_inputs=log_inputs)
    )
    return result


# -- the MCP server --------------------------------------------------------------------


def _error_result(message: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=message)], is_error=True
    )


def build_server(
    get_engine: Callable[[], Engine], settings: Settings, *, log_inputs: bool = False
) -> Server[Any]:
    """The MCP server of both tools, running them on the engine `get_engine()` returns."""
    tools = [
        mcp_types.Tool(
            name=d["name"],
            title="Run Python" if d["name"] == "execute-python" else "Run JavaScript",
            description=d["description"],
            input_schema=d["input_schema"],
            output_schema=d["output_schema"],
            annotations=mcp_types.ToolAnnotations(
                read_only_hint=True, idempotent_hint=True, open_world_hint=False
            ),
        )
        for d in tool_definitions(settings)
    ]

    async def list_tools(
        ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        language = TOOL_LANGUAGES.get(params.name)
        if language is None:
            raise MCPError(
                mcp_types.INVALID_PARAMS,
                f"unknown tool {params.name!r}; the tools are {', '.join(TOOL_LANGUAGES)}",
            )
        try:
            arguments = ToolArguments.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _error_result(f"invalid arguments: {validation_message(exc)}")
        try:
            result = await run_tool(
                get_engine(), arguments.request(language), surface="mcp", log_inputs=log_inputs
            )
        except InvalidRequest as exc:
            return _error_result(f"invalid arguments: {exc}")
        except Saturated as exc:
            return _error_result(
                f"the service is busy: {exc} (retry in {math.ceil(exc.retry_after)} s)"
            )
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=result.model_dump_json())],
            structured_content=result.model_dump(mode="json"),
            is_error=not result.ok,
        )

    from . import __version__

    return Server(
        "coderunner",
        version=__version__,
        title="Code Runner",
        instructions="Run short Python and JavaScript snippets in a sandbox and get JSON "
        "back: call execute-python or execute-javascript with the code and its inputs.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def streamable_http_manager(
    server: Server[Any], settings: Settings, *, host: str = "127.0.0.1"
) -> StreamableHTTPSessionManager:
    """A stateless streamable-HTTP session manager for `server` (run it in the app lifespan).

    Stateless with JSON responses: every request stands alone, so no session or stream
    outlives a request and a graceful shutdown only waits for running executions.  Bound
    to a loopback address, Host/Origin checks guard against DNS rebinding.
    """
    security = None
    if host in ("127.0.0.1", "localhost", "::1"):
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    return StreamableHTTPSessionManager(
        app=server,
        json_response=True,
        stateless=True,
        security_settings=security,
        max_request_body_size=max(1, settings.max_body_bytes),
    )


async def _serve_stdio(settings: Settings) -> None:
    from mcp.server.stdio import stdio_server

    async with Engine(settings) as engine:
        server = build_server(lambda: engine, settings)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())


def run_stdio(settings: Settings) -> None:
    """Serve the MCP tools on stdin/stdout until the client closes stdin (logs go to stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("coderunner")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        asyncio.run(_serve_stdio(settings))
    except KeyboardInterrupt:
        pass
