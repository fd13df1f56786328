"""The MCP server of the two tools (`execute-python`, `execute-javascript`).

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
from ._errors import InvalidRequest, Saturated
from ._frontend import (
    TOOL_LANGUAGES,
    ToolArguments,
    configure_logging,
    run_tool,
    tool_definitions,
    validation_message,
)
from ._settings import Settings
from ._version import __version__

__all__ = ["build_server", "run_stdio", "streamable_http_manager"]

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
            return _error_result(f"invalid arguments: {validation_message(exc.errors())}")
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
    """Serve the MCP tools on stdin/stdout until the client closes stdin (logs go to stderr,
    as JSON lines)."""
    configure_logging("info")
    try:
        asyncio.run(_serve_stdio(settings))
    except KeyboardInterrupt:
        pass
