"""The benchmark's own HTTP client, against a real socket server: kept-alive
connections are reused, one the server closed is replaced, and an answer it cannot
read is an error rather than a hang."""

from __future__ import annotations

import asyncio

import pytest

from coderunner._bench_client import BenchClient


async def _serve(close_after: int, length: bool = True) -> tuple[asyncio.Server, list[int]]:
    """A server that answers every request with its body reversed, and closes each
    connection after `close_after` answers (as an idle keep-alive timeout would)."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        for _ in range(close_after):
            head = await reader.readuntil(b"\r\n\r\n")
            size = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = (await reader.readexactly(size))[::-1]
            fields = f"Content-Length: {len(body)}\r\n" if length else ""
            writer.write(f"HTTP/1.1 200 OK\r\n{fields}\r\n".encode() + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


def test_connections_are_kept_alive_and_replaced_when_closed() -> None:
    async def scenario() -> tuple[list[bytes], int]:
        server, connections = await _serve(close_after=3)
        port = server.sockets[0].getsockname()[1]
        client = BenchClient("127.0.0.1", port, timeout_s=10)
        answers = []
        for i in range(7):  # 7 requests, a connection serves 3: 3 connections
            answer = await client.post("/echo", content=f"request {i}".encode())
            assert answer.status_code == 200
            answers.append(answer.content)
            await asyncio.sleep(0.01)  # the server's close reaches the idle connection
        big = await client.post("/echo", {"data": "x" * 100_000})  # a body past 64 KiB
        assert big.content[::-1].startswith(b'{"data": "xxx')
        await client.aclose()
        server.close()
        return answers, len(connections)

    answers, connections = asyncio.run(scenario())
    assert answers == [f"request {i}".encode()[::-1] for i in range(7)]
    assert connections == 3


def test_an_answer_without_a_length_is_an_error() -> None:
    async def scenario() -> None:
        server, _ = await _serve(close_after=1, length=False)
        client = BenchClient("127.0.0.1", server.sockets[0].getsockname()[1], timeout_s=10)
        try:
            with pytest.raises(ConnectionError, match="without Content-Length"):
                await client.post("/echo", content=b"x")
        finally:
            await client.aclose()
            server.close()

    asyncio.run(scenario())
