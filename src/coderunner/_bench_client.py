"""The benchmark's HTTP client: HTTP/1.1 over kept-alive loopback connections, and
nothing else.

`coderunner bench` runs its clients on the same cores as the service it measures, so
whatever the client spends is taken from the service.  httpx spends ~1.6 ms of CPU per
request here (its request and response models, its connection pool, h11); this client
~0.3 ms, as a load generator such as wrk would, so the HTTP rows measure the service.
It speaks only what the benchmark needs: JSON bodies in, ``Content-Length`` bodies out
(every answer of /v1/execute, /readyz and /healthz has one).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class BenchResponse:
    """An answer: its status and its body."""

    def __init__(self, status: int, content: bytes) -> None:
        self.status_code = status
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class BenchClient:
    """Requests to one server; a kept-alive connection per request in flight."""

    def __init__(self, host: str, port: int, timeout_s: float = 120.0) -> None:
        self._host, self._port, self._timeout_s = host, port, timeout_s
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str) -> BenchResponse:
        return await self.request("GET", path, b"")

    async def post(
        self, path: str, body: Any = None, *, content: bytes | None = None
    ) -> BenchResponse:
        """POST `content`, or `body` encoded as JSON."""
        data = content if content is not None else json.dumps(body).encode()
        return await self.request("POST", path, data)

    async def request(self, method: str, path: str, data: bytes) -> BenchResponse:
        if self._idle:
            try:
                return await self._exchange(self._idle.pop(), method, path, data)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass  # the server closed a connection kept idle too long: a fresh one
        connection = await asyncio.open_connection(self._host, self._port)
        return await self._exchange(connection, method, path, data)

    async def _exchange(
        self,
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        method: str,
        path: str,
        data: bytes,
    ) -> BenchResponse:
        reader, writer = connection
        try:
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            writer.write(head + data if len(data) < 65536 else head)
            if len(data) >= 65536:
                writer.write(data)  # a large body is not copied into the head
            response = await asyncio.wait_for(self._read(reader), self._timeout_s)
        except BaseException:
            writer.close()
            raise
        self._idle.append(connection)
        return response

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> BenchResponse:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, _, fields = head.partition(b"\r\n")
        length = None
        for line in fields.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise ConnectionError(f"an answer without Content-Length: {status_line!r}")
        return BenchResponse(int(status_line.split(b" ")[1]), await reader.readexactly(length))

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
