"""The MCP tools through the official SDK client: over stdio (`coderunner mcp`) and over
streamable HTTP at `/mcp` of a real `coderunner serve`, in both protocol eras."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from jsonschema.validators import Draft202012Validator
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from _server import AUTH, CODERUNNER, MAIN_FLAGS, SMALL_POOLS, ServerProcess, running_server

pytestmark = pytest.mark.timeout(120)

MODES = ["auto", "legacy"]  # auto negotiates the newest protocol; legacy the handshake era


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(*MAIN_FLAGS) as srv:
        yield srv


@asynccontextmanager
async def http_client(server: ServerProcess, mode: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=AUTH, timeout=60) as http:
        transport = streamable_http_client(f"{server.base_url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
            yield client


def stdio_client(mode: str, data_dir: str | None = None) -> Client:
    # A library of its own (the SDK passes a minimal environment, HOME included).
    env = {"CODERUNNER_DATA_DIR": data_dir or tempfile.mkdtemp(prefix="coderunner-mcp-")}
    params = StdioServerParameters(command=CODERUNNER, args=["mcp", *SMALL_POOLS], env=env)
    return Client(params, mode=mode)  # type: ignore[arg-type]


async def exercise(client: Client) -> None:
    """List the tools, call both, and get error results back as results."""
    listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools if t.name.startswith("execute-")}
    assert set(tools) == {"execute-python", "execute-javascript", "execute-typescript"}
    for tool in tools.values():
        assert tool.input_schema["required"] == ["code"]
        assert set(tool.input_schema["properties"]) == {
            "code",
            "inputs",
            "timeout_ms",
            "memory_mb",
            "output_schema",
            "secrets",
        }
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert "standard library" in (tool.description or "")
        assert "no network" in (tool.description or "")
    validator = Draft202012Validator(tools["execute-python"].output_schema)

    # Function style, Python; the client itself validates structured content.
    result = await client.call_tool(
        "execute-python", {"code": "def main(x, y=2):\n    return x * y", "inputs": {"x": 21}}
    )
    assert result.is_error is False
    assert result.structured_content["ok"] is True
    assert result.structured_content["result"] == 42
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]

    # Script style, JavaScript, with limits and an output schema.
    result = await client.call_tool(
        "execute-javascript",
        {
            "code": "console.log('hi'); return { total: orders.reduce((s, o) => s + o, 0) };",
            "inputs": {"orders": [1, 2, 3]},
            "timeout_ms": 3000,
            "memory_mb": 256,
            "output_schema": {"type": "object", "required": ["total"]},
        },
    )
    assert result.is_error is False
    assert result.structured_content["result"] == {"total": 6}
    assert result.structured_content["stdout"] == "hi\n"

    # TypeScript, function style with typed parameters.
    result = await client.call_tool(
        "execute-typescript",
        {"code": "function main(x: number, y: number = 2): number {\n  return x * y;\n}",
         "inputs": {"x": 21}},
    )  # fmt: skip
    assert result.is_error is False
    assert result.structured_content["result"] == 42
    assert result.structured_content["language"] == "typescript"

    # A snippet that fails: isError, and the ExecutionResult says why.
    result = await client.call_tool("execute-python", {"code": "def main():\n    return 1/0"})
    assert result.is_error is True
    validator.validate(result.structured_content)
    assert result.structured_content["ok"] is False
    assert result.structured_content["error"]["type"] == "runtime_error"
    assert result.structured_content["error"]["name"] == "ZeroDivisionError"
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]

    result = await client.call_tool(
        "execute-javascript",
        {"code": "return 'x';", "output_schema": {"type": "integer"}},
    )
    assert result.is_error is True
    assert result.structured_content["error"]["type"] == "schema_error"
    assert result.structured_content["result"] == "x"

    # Arguments the server refuses: an error result with a readable message.
    for arguments, field in [
        ({"code": 5}, "code"),
        ({"code": "1", "inputs": [1]}, "inputs"),
        ({"code": "1", "timeout_ms": 10**9}, "timeout_ms"),
        ({"code": "1", "output_schema": {"type": "nope"}}, "output_schema"),
        ({}, "code"),
    ]:
        result = await client.call_tool("execute-python", arguments)
        assert result.is_error is True, arguments
        assert field in result.content[0].text, (arguments, result.content)  # type: ignore[union-attr]

    with pytest.raises(MCPError, match="unknown tool"):
        await client.call_tool("execute-ruby", {"code": "1"})


@pytest.mark.parametrize("mode", MODES)
def test_stdio(mode: str) -> None:
    async def main() -> None:
        async with stdio_client(mode) as client:
            await exercise(client)

    asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_streamable_http(server: ServerProcess, mode: str) -> None:
    async def main() -> None:
        async with http_client(server, mode) as client:
            await exercise(client)

    asyncio.run(main())


def test_streamable_http_tools_match_get_v1_tools(server: ServerProcess) -> None:
    rest = httpx.get(f"{server.base_url}/v1/tools", headers=AUTH).json()["tools"]

    async def main() -> list[Any]:
        async with http_client(server, "auto") as client:
            return (await client.list_tools()).tools

    for tool in asyncio.run(main()):
        same = next(t for t in rest if t["name"] == tool.name)
        assert tool.input_schema == same["input_schema"]
        assert tool.output_schema == same["output_schema"]


def test_streamable_http_needs_the_api_key(server: ServerProcess) -> None:
    async def main() -> None:
        async with httpx2.AsyncClient(timeout=10) as http:  # no Authorization header
            transport = streamable_http_client(f"{server.base_url}/mcp", http_client=http)
            async with Client(transport, mode="legacy") as client:  # type: ignore[arg-type]
                await client.list_tools()

    with pytest.raises(BaseExceptionGroup) as caught:  # the SDK's task groups wrap it
        asyncio.run(main())
    assert caught.group_contains(MCPError)
    raw = httpx.post(
        f"{server.base_url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"},
    )
    assert raw.status_code == 401


# -- library snippets are tools of their own -----------------------------------------------

NORMALIZE = (
    "def main(phone: str) -> str:\n"
    '    """Normalize a US phone number to E.164."""\n'
    "    digits = ''.join(c for c in phone if c.isdigit())\n"
    "    return '+1' + digits[-10:]\n"
)
SNIPPET_DESCRIPTION = "Normalize a US phone number to **E.164** (`+15550109999`)."


async def exercise_library_tool(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert "normalize-phone" in tools, sorted(tools)
    tool = tools["normalize-phone"]
    assert SNIPPET_DESCRIPTION in (tool.description or "")
    assert tool.input_schema["required"] == ["phone"]
    assert tool.input_schema["properties"]["phone"]["type"] == "string"
    result = await client.call_tool("normalize-phone", {"phone": "(555) 010-9999"})
    assert result.is_error is False, result
    assert result.structured_content["result"] == "+15550109999"
    assert result.structured_content["snippet"]["name"] == "normalize-phone"
    misfit = await client.call_tool("normalize-phone", {"phone": 5})
    assert misfit.is_error is True
    assert misfit.structured_content["error"]["type"] == "input_error"
    with pytest.raises(MCPError):
        await client.call_tool("no-such-snippet", {})


def test_library_snippet_is_an_mcp_tool_over_http(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=60) as http:
        saved = http.put(
            "/v1/snippets/normalize-phone",
            json={"language": "python", "code": NORMALIZE, "description": SNIPPET_DESCRIPTION},
        )
        assert saved.status_code in (200, 201), saved.text

    async def main() -> None:
        async with http_client(server, "auto") as client:
            await exercise_library_tool(client)

    asyncio.run(main())


def test_library_snippet_is_an_mcp_tool_over_stdio(tmp_path) -> None:
    import subprocess

    (tmp_path / "normalize.py").write_text(NORMALIZE)
    saved = subprocess.run(
        [CODERUNNER, "snippets", "save", str(tmp_path / "normalize.py"), "--name",
         "normalize-phone", "--description", SNIPPET_DESCRIPTION],
        capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "CODERUNNER_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr

    async def main() -> None:
        async with stdio_client("auto", str(tmp_path / "data")) as client:
            await exercise_library_tool(client)

    asyncio.run(main())
