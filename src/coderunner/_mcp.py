"""The MCP server of the tools `execute-python`, `execute-javascript`, `execute-typescript`.

The official SDK's low-level `Server`, served on stdio by `coderunner mcp` and over
streamable HTTP at `/mcp` by `coderunner serve`.  Tool definitions and `run_tool` come
from `_frontend`, shared with HTTP.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import mcp.types as mcp_types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from ._engine import Engine
from ._errors import InvalidRequest, NotFound, Saturated, StoreUnavailable
from ._frontend import (
    TOOL_LANGUAGES,
    ToolArguments,
    configure_logging,
    run_snippet,
    run_tool,
    snippet_tool_definitions,
    tool_definitions,
    validation_message,
)
from ._library import Library
from ._models import ExecutionResult
from ._settings import Settings
from ._version import __version__

__all__ = ["build_server", "run_stdio", "streamable_http_manager"]


# -- the MCP server --------------------------------------------------------------------


def _result(result: ExecutionResult) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=result.model_dump_json())],
        structured_content=result.model_dump(mode="json"),
        is_error=not result.ok,
    )


def _error_result(message: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=message)], is_error=True
    )


_TITLES = {
    "execute-python": "Run Python",
    "execute-javascript": "Run JavaScript",
    "execute-typescript": "Run TypeScript",
}


def build_server(
    get_engine: Callable[[], Engine],
    settings: Settings,
    *,
    log_inputs: bool = False,
    get_library: Callable[[], Library] | None = None,
) -> Server[Any]:
    """The MCP server of both tools and, with `get_library`, of every library snippet as
    a tool of its own name (the list follows the library); runs them on the engine
    `get_engine()` returns."""
    tools = [
        mcp_types.Tool(
            name=d["name"],
            title=_TITLES.get(d["name"], d["name"]),
            description=d["description"],
            input_schema=d["input_schema"],
            output_schema=d["output_schema"],
            annotations=mcp_types.ToolAnnotations(
                read_only_hint=True, idempotent_hint=True, open_world_hint=False
            ),
        )
        for d in tool_definitions(settings)
    ]

    async def snippet_tools() -> list[mcp_types.Tool]:
        if get_library is None:
            return []
        return [
            mcp_types.Tool(
                name=d["name"],
                description=d["description"],
                input_schema=d["input_schema"],
                output_schema=d["output_schema"],
                annotations=mcp_types.ToolAnnotations(open_world_hint=False),
            )
            for d in await snippet_tool_definitions(get_library())
        ]

    async def list_tools(
        ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=[*tools, *await snippet_tools()])

    async def call_snippet(name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        if get_library is None:
            raise MCPError(mcp_types.INVALID_PARAMS, f"unknown tool {name!r}")
        try:
            result = await run_snippet(
                get_library(), name, surface="mcp", inputs=arguments, log_inputs=log_inputs
            )
        except NotFound:
            raise MCPError(
                mcp_types.INVALID_PARAMS,
                f"unknown tool {name!r}; the tools are {', '.join(TOOL_LANGUAGES)} and the "
                "library's snippets (tools/list)",
            ) from None
        except StoreUnavailable as exc:
            return _error_result(f"the library is unavailable: {exc}")
        except InvalidRequest as exc:
            return _error_result(f"invalid arguments: {exc}")
        except Saturated as exc:
            return _error_result(
                f"the service is busy: {exc} (retry in {math.ceil(exc.retry_after)} s)"
            )
        return _result(result)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        language = TOOL_LANGUAGES.get(params.name)
        if language is None:
            return await call_snippet(params.name, dict(params.arguments or {}))
        try:
            arguments = ToolArguments.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _error_result(f"invalid arguments: {validation_message(exc.errors())}")
        try:
            result = await run_tool(
                get_engine(),
                arguments.request(language),
                surface="mcp",
                log_inputs=log_inputs,
                library=get_library() if get_library is not None else None,
            )
        except InvalidRequest as exc:
            return _error_result(f"invalid arguments: {exc}")
        except Saturated as exc:
            return _error_result(
                f"the service is busy: {exc} (retry in {math.ceil(exc.retry_after)} s)"
            )
        return _result(result)

    return Server(
        "coderunner",
        version=__version__,
        title="Code Runner",
        instructions="Run short Python, JavaScript and TypeScript snippets in a sandbox and "
        "get JSON back: call execute-python, execute-javascript or execute-typescript with "
        "the code and its inputs, or "
        "a library snippet's tool (its own name) with its inputs.",
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

    async with Engine(settings) as engine, Library(engine, settings) as library:
        server = build_server(lambda: engine, settings, get_library=lambda: library)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())


def run_stdio(settings: Settings) -> None:
    """Serve the MCP tools on stdin/stdout until the client closes stdin (logs go to stderr,
    as JSON lines)."""
    configure_logging("info")
    try:
        asyncio.run(_serve_stdio(settings))
    except KeyboardInterrupt:
        pass
