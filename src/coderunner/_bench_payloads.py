"""`coderunner bench` payload rows: a row clean-up of 1k, 10k and 100k rows (about 124
bytes of JSON a row: 12 MB in, 11 MB out at 100k) through the Python API and HTTP,
against a naive process that does the same work on the same JSON.

Every path goes from Python values to Python values, so each pays for the same encoding
and decoding: the naive path encodes the rows, runs ``python -I -S`` reading them from
stdin and writing the cleaned rows to stdout, and decodes its output; the API path calls
`Engine.execute`; the HTTP path encodes a request body, posts it and decodes the answer.
The three run in turn, round after round, so that a noisy machine slows them alike; only
the call is timed, the check of the answer is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from ._bench_client import BenchClient
from ._engine import Engine
from ._models import ExecutionRequest, Language
from ._settings import Settings

SIZES = (1_000, 10_000, 100_000)
CLEAN_UP = (
    "def main(rows):\n"
    "    out = []\n"
    "    for r in rows:\n"
    "        out.append({\n"
    "            'id': r['id'],\n"
    "            'name': r['name'].strip().title(),\n"
    "            'email': r['email'].strip().lower(),\n"
    "            'age': int(r['age']),\n"
    "            'score': float(r['score']),\n"
    "            'tags': [t.strip() for t in r['tags'].split(',')],\n"
    "        })\n"
    "    return out\n"
)
# The same work as a script: the rows on stdin, the cleaned rows on stdout.
NAIVE = (
    "import json, sys\n"
    + CLEAN_UP
    + "sys.stdout.write(json.dumps(main(json.load(sys.stdin)['rows'])))\n"
)
TIMEOUT_MS = 60_000  # a loaded machine must not turn a slow row into a timeout
MEMORY_MB = 1024


def make_rows(count: int) -> list[dict[str, Any]]:
    """`count` untidy rows (padded names, mixed-case emails, numbers as strings)."""
    return [
        {
            "id": i,
            "name": f" user {i} ",
            "email": f" User{i}@Example.COM ",
            "age": str(18 + i % 70),
            "score": f"{(i * 37) % 1000 / 10}",
            "tags": "a, b ,c",
        }
        for i in range(count)
    ]


def clean_up(rows: list[dict[str, Any]]) -> Any:
    """What every path must answer (the snippet run here, on trusted data)."""
    namespace: dict[str, Any] = {}
    exec(CLEAN_UP, namespace)  # our own constant, not a user's snippet
    return namespace["main"](rows)


@dataclass
class PayloadRow:
    """The median time of one payload size on each path."""

    rows: int
    input_mb: float
    rounds: int
    naive_ms: float
    api_ms: float
    http_ms: float

    @property
    def api_ratio(self) -> float:
        return self.api_ms / self.naive_ms

    @property
    def http_ratio(self) -> float:
        return self.http_ms / self.naive_ms


async def _naive(python: str, rows: list[dict[str, Any]]) -> Any:
    data = json.dumps({"rows": rows}).encode()
    process = await asyncio.create_subprocess_exec(
        python, "-I", "-S", "-c", NAIVE,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={},
    )  # fmt: skip
    out, err = await process.communicate(data)
    if process.returncode != 0:
        raise RuntimeError(f"the naive process failed: {err.decode(errors='replace')[-500:]}")
    return json.loads(out)


async def _api(engine: Engine, rows: list[dict[str, Any]]) -> Any:
    request = ExecutionRequest(
        language=Language.PYTHON,
        code=CLEAN_UP,
        inputs={"rows": rows},
        timeout_ms=TIMEOUT_MS,
        memory_mb=MEMORY_MB,
    )
    result = await engine.execute(request)
    if not result.ok:
        raise RuntimeError(f"the API execution failed: {result.error}")
    return result.result


async def _http(client: BenchClient, rows: list[dict[str, Any]]) -> Any:
    body = {
        "language": "python",
        "code": CLEAN_UP,
        "inputs": {"rows": rows},
        "timeout_ms": TIMEOUT_MS,
        "memory_mb": MEMORY_MB,
    }
    response = await client.post("/v1/execute", content=json.dumps(body).encode())
    data = json.loads(response.content)
    if response.status_code != 200 or not data.get("ok"):
        raise RuntimeError(f"the HTTP execution failed: {response.text[:500]}")
    return data["result"]


@contextlib.asynccontextmanager
async def _server(port: int) -> Any:
    """A `coderunner serve` of its own (history in a temporary directory), and a client."""
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "CODERUNNER_DATA_DIR": data_dir}
        server = subprocess.Popen(
            [sys.executable, "-m", "coderunner", "serve", "--port", str(port),
             "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        client = BenchClient("127.0.0.1", port)
        try:
            started = time.perf_counter()
            while True:
                with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                if server.poll() is not None or time.perf_counter() - started > 60:
                    problem = server.stderr.read() if server.stderr else b""
                    raise RuntimeError(f"the server did not start: {problem!r}")
                await asyncio.sleep(0.05)
            yield client
        finally:
            await client.aclose()
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


async def run_payloads(
    seconds: float, port: int, sizes: tuple[int, ...] = SIZES, min_rounds: int | None = None
) -> list[PayloadRow]:
    """Each size on the three paths, in turn, for `seconds` (at least `min_rounds`: by
    default 3, or 1 for a smoke run of under a second)."""
    if min_rounds is None:
        min_rounds = 3 if seconds >= 1 else 1
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    measured: list[PayloadRow] = []
    async with (
        Engine(Settings.from_env(), warm=(Language.PYTHON,)) as engine,
        _server(port) as client,
    ):
        for size in sizes:
            rows = make_rows(size)
            expected = clean_up(rows)
            paths: dict[str, Callable[[], Awaitable[Any]]] = {
                "naive": functools.partial(_naive, python, rows),
                "api": functools.partial(_api, engine, rows),
                "http": functools.partial(_http, client, rows),
            }
            for call in paths.values():  # warm-up, and a first check of every path
                if await call() != expected:
                    raise RuntimeError(f"a path gave a wrong answer for {size} rows")
            times: dict[str, list[float]] = {name: [] for name in paths}
            deadline = time.perf_counter() + seconds
            rounds = 0
            while rounds < min_rounds or time.perf_counter() < deadline:
                names = list(paths)
                names = names[rounds % 3 :] + names[: rounds % 3]  # each goes first in turn
                for name in names:
                    started = time.perf_counter()
                    answer = await paths[name]()
                    times[name].append((time.perf_counter() - started) * 1000)
                    if answer != expected:
                        raise RuntimeError(f"{name} gave a wrong answer for {size} rows")
                rounds += 1
            median = {name: round(statistics.median(t), 1) for name, t in times.items()}
            megabytes = len(json.dumps({"rows": rows})) / 1e6
            measured.append(PayloadRow(size, round(megabytes, 2), rounds, *median.values()))
    return measured


def payload_report(rows: list[PayloadRow]) -> list[dict[str, Any]]:
    """The rows as JSON-ready dicts (with their ratios)."""
    return [
        {**asdict(r), "api_ratio": round(r.api_ratio, 2), "http_ratio": round(r.http_ratio, 2)}
        for r in rows
    ]


def render_payloads(report: list[dict[str, Any]]) -> str:
    """The payload rows as a table: median ms of each path and its ratio to naive."""
    lines = [
        f"{'payload (row clean-up)':<26} {'MB in':>6} {'rounds':>6} {'naive ms':>9} "
        f"{'API ms':>8} {'API/naive':>9} {'HTTP ms':>8} {'HTTP/naive':>10}"
    ]
    for r in report:
        lines.append(
            f"{str(r['rows']) + ' rows':<26} {r['input_mb']:>6} {r['rounds']:>6} "
            f"{r['naive_ms']:>9} {r['api_ms']:>8} {str(r['api_ratio']) + 'x':>9} "
            f"{r['http_ms']:>8} {str(r['http_ratio']) + 'x':>10}"
        )
    return "\n".join(lines)
