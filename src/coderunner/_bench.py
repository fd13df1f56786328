"""`coderunner bench`: warm jailed executions against naive process-per-run baselines.

Every path runs the same snippet (sum and mean of 1,000 numbers passed as an input) in
the same invocation, so the ratios hold even where absolute times are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from ._bench_client import BenchClient
from ._bench_payloads import payload_report, render_payloads, run_payloads
from ._engine import Engine
from ._library import Library
from ._models import ExecutionRequest, Language
from ._sandbox.policy import deno_executable
from ._settings import Settings, resolved_data_dir

NUMBERS = list(range(1000))
SNIPPETS = {
    Language.PYTHON: (
        "def main(numbers):\n"
        "    s = sum(numbers)\n"
        "    return {'sum': s, 'mean': s / len(numbers)}\n"
    ),
    Language.JAVASCRIPT: (
        "function main(numbers) {\n"
        "  const s = numbers.reduce((a, b) => a + b, 0);\n"
        "  return { sum: s, mean: s / numbers.length };\n"
        "}\n"
    ),
}
EXPECTED = {"sum": sum(NUMBERS), "mean": sum(NUMBERS) / len(NUMBERS)}

# The naive baselines: a fresh interpreter per run, the inputs as JSON on stdin.
NAIVE_PYTHON = (
    "import json,sys\nnumbers=json.load(sys.stdin)['numbers']\ns=sum(numbers)\n"
    "print(json.dumps({'sum': s, 'mean': s / len(numbers)}))"
)
NAIVE_DENO = (
    "const t = await new Response(Deno.stdin.readable).text();"
    "const numbers = JSON.parse(t).numbers; const s = numbers.reduce((a, b) => a + b, 0);"
    "console.log(JSON.stringify({sum: s, mean: s / numbers.length}));"
)


@dataclass
class Measurement:
    """Latency percentiles and throughput of one path."""

    path: str
    concurrency: int
    runs: int
    p50_ms: float
    p95_ms: float
    per_second: float


async def measure(
    path: str, call: Callable[[], Awaitable[None]], seconds: float, concurrency: int
) -> Measurement:
    """Run ``call`` from ``concurrency`` loops for ``seconds``; record every latency."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Measurement(
        path, concurrency, len(latencies), round(statistics.median(latencies), 2),
        round(latencies[int(len(latencies) * 0.95) - 1], 2), round(len(latencies) / elapsed, 1),
    )  # fmt: skip


async def _run_process(argv: list[str], stdin: bytes) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={}
    )
    out, err = await process.communicate(stdin)
    if json.loads(out) != EXPECTED:
        raise RuntimeError(f"baseline gave {out!r} {err!r}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (shared pages counted once
    per process, so an upper bound)."""
    total, queue = 0, [pid]
    while queue:
        current = queue.pop()
        with contextlib.suppress(OSError):
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for tid in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    queue.extend(int(c) for c in f.read().split())
    return round(total / 1024, 1)


async def _wait_until_up(client: BenchClient, server: subprocess.Popen[bytes], path: str) -> None:
    started = time.perf_counter()
    while True:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            if (await client.get(path)).status_code == 200:
                return
        if server.poll() is not None or time.perf_counter() - started > 60:
            problem = server.stderr.read() if server.stderr else b""
            raise RuntimeError(f"server did not start: {problem!r}")
        await asyncio.sleep(0.005)


async def _bench_http(seconds: float, port: int, report: dict[str, Any]) -> list[Measurement]:
    port = port or _free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "coderunner", "serve", "--port", str(port),
         "--log-level", "warning", "--queue-size", "1000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    client = BenchClient("127.0.0.1", port)
    results: list[Measurement] = []
    try:
        await _wait_until_up(client, server, "/healthz")
        report["healthz_after_start_s"] = round(time.perf_counter() - started, 3)
        first = await client.post("/v1/execute", {"language": "python", "code": "1 + 1"})
        assert first.json()["result"] == 2, first.text
        report["first_execution_after_start_s"] = round(time.perf_counter() - started, 3)
        await asyncio.sleep(2)  # let the pools warm
        report["service_idle_rss_mb"] = _tree_rss_mb(server.pid)
        for language in SNIPPETS:  # (TypeScript runs on the JavaScript runtime)
            body = json.dumps({"language": language.value, "code": SNIPPETS[language],
                               "inputs": {"numbers": NUMBERS}}).encode()  # fmt: skip

            async def call(body: bytes = body) -> None:
                response = await client.post("/v1/execute", content=body)
                data = response.json()
                if not data.get("ok") or data["result"] != EXPECTED:
                    raise RuntimeError(f"HTTP execution failed: {response.text[:500]}")

            await measure("warm-up", call, 0.5, 8)
            clients = (1, 8) if language is Language.PYTHON else (8,)
            for count in clients:
                path = f"{language.value} via HTTP" + (", 1 client" if count == 1 else "")
                results.append(await measure(path, call, seconds, count))
    finally:
        await client.aclose()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    return results


# -- JavaScript: isolate mode against process mode, through HTTP ---------------------------


async def _serve_js_mode(mode: str, seconds: float) -> list[Measurement]:
    """A server with javascript_isolation=`mode`: the JavaScript snippet through HTTP,
    1 client and 8 clients (p50 and throughput)."""
    port = _free_port()
    env = {**os.environ, "CODERUNNER_JAVASCRIPT_ISOLATION": mode}
    server = subprocess.Popen(
        [sys.executable, "-m", "coderunner", "serve", "--port", str(port),
         "--log-level", "warning", "--queue-size", "1000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    body = json.dumps({"language": "javascript", "code": SNIPPETS[Language.JAVASCRIPT],
                       "inputs": {"numbers": NUMBERS}}).encode()  # fmt: skip
    client = BenchClient("127.0.0.1", port)
    results: list[Measurement] = []
    try:
        await _wait_until_up(client, server, "/readyz")

        async def call() -> None:
            response = await client.post("/v1/execute", content=body)
            data = response.json()
            if not data.get("ok") or data["result"] != EXPECTED:
                raise RuntimeError(f"HTTP execution failed: {response.text[:500]}")

        await measure("warm-up", call, 1.0, 8)
        for clients in (1, 8):
            path = f"javascript via HTTP, {mode} mode, {clients} client{'s' * (clients > 1)}"
            results.append(await measure(path, call, seconds, clients))
    finally:
        await client.aclose()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    return results


async def bench_javascript_modes(seconds: float) -> list[Measurement]:
    """JavaScript through HTTP in isolate mode and in process mode, side by side."""
    return [m for mode in ("isolate", "process") for m in await _serve_js_mode(mode, seconds)]


async def run_benchmark(seconds: float, port: int = 0) -> dict[str, Any]:
    """Every path of the benchmark; returns the numbers as a dict."""
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "results": []}
    results: list[Measurement] = []
    settings = Settings.from_env()
    async with Engine(settings) as engine:
        with tempfile.TemporaryDirectory() as data_dir:
            # Every execution recorded in the history (SQLite), as a server does: measured
            # right after the same path without it, so the two compare.
            library = Library(engine, dataclasses.replace(settings, data_dir=data_dir))
            await library.start()
            for language in SNIPPETS:  # (TypeScript runs on the JavaScript runtime)
                request = ExecutionRequest(
                    language=language, code=SNIPPETS[language], inputs={"numbers": NUMBERS}
                )

                async def call(request: ExecutionRequest = request) -> None:
                    result = await engine.execute(request)
                    if not result.ok or result.result != EXPECTED:
                        raise RuntimeError(f"execution failed: {result.error}")

                async def recorded(request: ExecutionRequest = request) -> None:
                    result = await engine.execute(request)
                    if not result.ok or result.result != EXPECTED:
                        raise RuntimeError(f"execution failed: {result.error}")
                    library.record(request, result, surface="bench")

                name = language.value
                await measure("warm-up", call, 1.0, 2)
                await asyncio.sleep(0.5)
                results.append(await measure(f"{name} via API, 1 client", call, seconds, 1))
                results.append(await measure(f"{name} via API, 8 clients", call, seconds, 8))
                if language is Language.PYTHON:
                    results.append(
                        await measure(f"{name} via API + history, 8 clients", recorded, seconds, 8)
                    )
                    results.append(
                        await measure(f"{name} via API, 8 clients (again)", call, seconds, 8)
                    )
            await library.flush_history()
            report["history_records_written"] = library.history_counts["written"]
            report["history_records_dropped"] = library.history_counts["dropped"]
            await library.aclose()
    results += await _bench_http(seconds, port, report)
    results += await bench_javascript_modes(seconds)
    report["payloads"] = payload_report(await run_payloads(seconds, _free_port()))
    stdin = json.dumps({"numbers": NUMBERS}).encode()
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    with tempfile.TemporaryDirectory() as deno_dir:
        deno = [deno_executable(), "run", "--no-prompt", "--no-config", "-"]
        naive = {
            "naive python -I -S per run": ([python, "-I", "-S", "-c", NAIVE_PYTHON], stdin),
            "naive deno run per run": (deno, NAIVE_DENO.encode()),
        }
        for name, (argv, data) in naive.items():
            if "deno" in name:
                # `deno run -` reads the program from stdin; the input comes inline.
                program = NAIVE_DENO.replace(
                    "await new Response(Deno.stdin.readable).text()", repr(stdin.decode())
                ).encode()
                os.environ.setdefault("DENO_DIR", deno_dir)

                async def run_naive(argv: list[str] = argv, data: bytes = program) -> None:
                    process = await asyncio.create_subprocess_exec(
                        *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, env={"DENO_DIR": deno_dir, "NO_COLOR": "1"},
                    )  # fmt: skip
                    out, err = await process.communicate(data)
                    if json.loads(out) != EXPECTED:
                        raise RuntimeError(f"deno baseline gave {out!r} {err!r}")

            else:

                async def run_naive(argv: list[str] = argv, data: bytes = data) -> None:
                    await _run_process(argv, data)

            results.append(await measure(name, run_naive, seconds, 1))
            results.append(await measure(name + ", 8 clients", run_naive, seconds, 8))
    report["results"] = [asdict(m) for m in results]
    return report


# -- vetted packages (opt-in, `coderunner bench --packages`: it syncs them first) ---------

# Each list installed into a data directory of the bench's own, kept for the next run.
BENCH_PACKAGES = {
    "python-dateutil": "python-dateutil==2.9.0.post0",
    "pandas": "pandas==2.2.3,numpy==2.2.6",
}
PANDAS_SNIPPET = (
    "import pandas as pd\n"
    "def main(rows):\n"
    "    frame = pd.DataFrame(rows)\n"
    "    return frame.groupby('k')['v'].sum().to_dict()\n"
)
PANDAS_ROWS = [{"k": f"k{i % 3}", "v": i} for i in range(100)]
PANDAS_EXPECTED = {f"k{j}": sum(i for i in range(100) if i % 3 == j) for j in range(3)}


def _packages_settings(base: Settings, name: str, *, preload: bool = True) -> Settings:
    """Settings whose python_packages are BENCH_PACKAGES[name], synced first.  Without
    `preload`: a data directory whose manifest names no module to import before the
    fork, over the same installation (a symlink), so each snippet imports for itself."""
    from ._packages import packages_root, prepare, read_manifest

    root = os.path.join(resolved_data_dir(base), "bench-packages")
    synced = dataclasses.replace(
        base,
        data_dir=os.path.join(root, name),
        python_packages=BENCH_PACKAGES[name],
        javascript_packages="",
    )
    prepare(synced, progress=lambda text: print(f"bench: {text}", file=sys.stderr))
    if preload:
        return synced
    lazy = dataclasses.replace(synced, data_dir=os.path.join(root, f"{name}-not-preloaded"))
    manifest = read_manifest(synced)
    entry = manifest["python"]
    lazy_root = packages_root(lazy)
    lazy_root.mkdir(parents=True, exist_ok=True)
    link = lazy_root / entry["dir"]
    if not link.exists():
        link.symlink_to(packages_root(synced) / entry["dir"], target_is_directory=True)
    entry = {**entry, "imports": {dist: [] for dist in entry["imports"]}}
    (lazy_root / "manifest.json").write_text(json.dumps({**manifest, "python": entry}))
    return lazy


def _own_rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def _checked_call(
    engine: Engine, code: str, inputs: dict[str, Any], expected: Any
) -> Callable[[], Awaitable[None]]:
    request = ExecutionRequest(language=Language.PYTHON, code=code, inputs=inputs)

    async def call() -> None:
        result = await engine.execute(request)
        if not result.ok or result.result != expected:
            raise RuntimeError(f"execution failed: {result.error}")

    return call


async def _interleaved(
    calls: dict[str, Callable[[], Awaitable[None]]], seconds: float, concurrency: int, rounds: int
) -> list[Measurement]:
    """Each call from `concurrency` loops for `seconds` in all, in turns (`rounds` of
    them), so that the machine's drift during the run falls on each path alike."""
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    elapsed = dict.fromkeys(calls, 0.0)
    for _ in range(rounds):
        for name, call in calls.items():
            deadline = time.perf_counter() + seconds / rounds

            async def loop(
                call: Callable[[], Awaitable[None]] = call, name: str = name, end: float = deadline
            ) -> None:
                while time.perf_counter() < end:
                    started = time.perf_counter()
                    await call()
                    latencies[name].append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(concurrency)))
            elapsed[name] += time.perf_counter() - started
    out = []
    for name, values in latencies.items():
        values.sort()
        p50, p95 = statistics.median(values), values[max(int(len(values) * 0.95) - 1, 0)]
        per_second = len(values) / elapsed[name]
        out.append(
            Measurement(name, concurrency, len(values), round(p50, 2), round(p95, 2),
                        round(per_second, 1))
        )  # fmt: skip
    return out


async def bench_packages(seconds: float, report: dict[str, Any], rounds: int = 3) -> None:
    """Python throughput (8 clients) with no packages, python-dateutil and pandas
    preloaded, and the small pandas snippet's latency (1 client) with and without
    preloading: one engine each, all started, measured in turns.  Adds the rows and each
    engine's resident memory (fork servers and warm children) to `report`.  Syncs the
    packages first (kept under the data directory for the next run)."""
    base = dataclasses.replace(Settings.from_env(), python_packages="", javascript_packages="")
    configs = {
        "no packages": base,
        "dateutil preloaded": await asyncio.to_thread(_packages_settings, base, "python-dateutil"),
        "pandas preloaded": await asyncio.to_thread(_packages_settings, base, "pandas"),
        "pandas not preloaded": await asyncio.to_thread(
            _packages_settings, base, "pandas", preload=False
        ),
    }
    memory: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        engines: dict[str, Engine] = {}
        for name, settings in configs.items():
            before = _tree_rss_mb(os.getpid()) - _own_rss_mb()
            engines[name] = await stack.enter_async_context(
                Engine(settings, warm=(Language.PYTHON,))
            )
            stdlib = _checked_call(engines[name], SNIPPETS[Language.PYTHON],
                                   {"numbers": NUMBERS}, EXPECTED)  # fmt: skip
            await measure("warm-up", stdlib, 1.0, 8)
            await asyncio.sleep(0.5)  # the pool refilled
            memory[name] = round(_tree_rss_mb(os.getpid()) - _own_rss_mb() - before, 1)
        throughput = {
            f"python via API, {name}": _checked_call(
                engines[name], SNIPPETS[Language.PYTHON], {"numbers": NUMBERS}, EXPECTED
            )
            for name in ("no packages", "dateutil preloaded", "pandas preloaded")
        }
        pandas = {
            f"python pandas snippet, {name.removeprefix('pandas ')}": _checked_call(
                engines[name], PANDAS_SNIPPET, {"rows": PANDAS_ROWS}, PANDAS_EXPECTED
            )
            for name in ("pandas preloaded", "pandas not preloaded")
        }
        for call in pandas.values():
            await measure("warm-up", call, 1.0, 1)
        rows = await _interleaved(throughput, seconds, 8, rounds)
        rows += await _interleaved(pandas, seconds, 1, rounds)
    report["python_engine_rss_mb"] = memory
    report["results"] += [asdict(m) for m in rows]


def render(report: dict[str, Any]) -> str:
    """The report as a table, each row against the naive baseline of its language run
    with the same number of concurrent clients."""
    rows = {r["path"]: r for r in report["results"]}
    naive = {"python": "naive python -I -S per run", "javascript": "naive deno run per run"}
    lines = [
        f"{'path':<42} {'conc':>4} {'runs':>6} {'p50 ms':>8} {'p95 ms':>8} {'per s':>8} "
        f"{'naive p50 / p50':>16} {'per s / naive':>14}",
    ]
    for r in report["results"]:
        language = "javascript" if r["path"].startswith(("javascript", "naive deno")) else "python"
        name = naive[language] + (", 8 clients" if r["concurrency"] > 1 else "")
        base = rows.get(name)
        lat = f"{base['p50_ms'] / r['p50_ms']:.1f}x" if base else ""
        tp = f"{r['per_second'] / base['per_second']:.1f}x" if base else ""
        lines.append(
            f"{r['path']:<42} {r['concurrency']:>4} {r['runs']:>6} {r['p50_ms']:>8} "
            f"{r['p95_ms']:>8} {r['per_second']:>8} {lat:>16} {tp:>14}"
        )
    for key in (
        "healthz_after_start_s",
        "first_execution_after_start_s",
        "service_idle_rss_mb",
        "history_records_written",
        "history_records_dropped",
        "python_engine_rss_mb",
    ):
        if key in report:
            lines.append(f"{key}: {report[key]}")
    if "payloads" in report:
        lines.append(render_payloads(report["payloads"]))
    return "\n".join(lines)


def main_bench(args: argparse.Namespace) -> int:
    """Entry point of `coderunner bench`."""
    report = asyncio.run(run_benchmark(args.seconds, args.port))
    if getattr(args, "packages", False):  # (opt-in: it installs packages first)
        asyncio.run(bench_packages(args.seconds, report))
    print(render(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0
