"""Fresh isolation per execution at warm-pool speed: nothing of one execution reaches
another, and the pools heal.  Runs real jails through a real engine."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest

from coderunner import Engine, ExecutionRequest, ExecutionResult, Settings
from coderunner._runtimes.javascript import DenoWorker
from coderunner._runtimes.python import ForkedWorker


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def engine(jail: dict, loop: asyncio.AbstractEventLoop) -> Iterator[Engine]:
    engine = Engine(Settings.from_env(python_pool_size=4, javascript_pool_size=2))
    loop.run_until_complete(engine.start())
    yield engine
    loop.run_until_complete(engine.aclose())


def run(loop: asyncio.AbstractEventLoop, engine: Engine, language: str, code: str,
        **kwargs: object) -> ExecutionResult:  # fmt: skip
    request = ExecutionRequest(language=language, code=code, **kwargs)  # type: ignore[arg-type]
    return loop.run_until_complete(engine.execute(request))


def test_python_monkeypatching_does_not_reach_the_next_execution(loop, engine) -> None:
    patch = (
        "import json, builtins, sys\n"
        "json.dumps = lambda *a, **k: 'patched'\n"
        "builtins.len = lambda x: -1\n"
        "sys.modules['math'] = None\n"
        "builtins.leftover = 'from the first execution'\n"
        "len([1, 2])"
    )
    first = run(loop, engine, "python", patch)
    assert first.ok and first.result == -1
    check = (
        "import json, math, builtins\n"
        "[json.dumps({'a': 1}), len([1, 2]), math.sqrt(16), hasattr(builtins, 'leftover')]"
    )
    second = run(loop, engine, "python", check)
    assert second.ok, second.error
    assert second.result == ['{"a": 1}', 2, 4.0, False]


def test_javascript_globals_and_prototypes_do_not_reach_the_next_execution(loop, engine) -> None:
    patch = (
        "Array.prototype.map = () => 'patched';\n"
        "JSON.parse = () => 'patched';\n"
        "globalThis.leftover = 1;\n"
        "return [1].map((x) => x);"
    )
    first = run(loop, engine, "javascript", patch)
    assert first.ok and first.result == "patched"
    second = run(
        loop, engine, "javascript",
        "return [[1, 2].map((x) => x * 2), JSON.parse('[1]'), typeof globalThis.leftover];",
    )  # fmt: skip
    assert second.ok, second.error
    assert second.result == [[2, 4], [1], "undefined"]


# Runs long enough for its sibling to look for its traces.
WRITER = r"""
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
open("/tmp/sibling-marker", "w").write("secret")
open("/dev/shm/sibling-marker", "w").write("secret")
shm = libc.shmget(0x5EED, 4096, 0o1000 | 0o666)  # IPC_CREAT
msq = libc.msgget(0x5EED, 0o1000 | 0o666)
time.sleep(1.5)
[shm >= 0, msq >= 0]
"""

READER = r"""
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0coderunner-rendezvous")
    rendezvous = "bound"
except OSError as exc:
    rendezvous = exc.errno
{
    "tmp": os.listdir("/tmp"),
    "shm_dir": os.listdir("/dev/shm"),
    "sysv_shm": libc.shmget(0x5EED, 0, 0),
    "sysv_msg": libc.msgget(0x5EED, 0),
    "pid": os.getpid(),
    "proc": sorted(p for p in os.listdir("/proc") if p.isdigit()),
    "rendezvous": rendezvous,
}
"""


def test_concurrent_executions_cannot_see_each_other(loop, engine) -> None:
    async def both() -> tuple[ExecutionResult, ExecutionResult]:
        writer = asyncio.ensure_future(
            engine.execute(ExecutionRequest(language="python", code=WRITER))
        )
        await asyncio.sleep(0.5)
        reader = await engine.execute(ExecutionRequest(language="python", code=READER))
        return await writer, reader

    writer, reader = loop.run_until_complete(both())
    assert writer.ok and writer.result == [True, True], writer
    assert reader.ok, reader.error
    seen = reader.result
    assert seen["tmp"] == [] and seen["shm_dir"] == []
    assert seen["sysv_shm"] == -1 and seen["sysv_msg"] == -1  # ENOENT: its own IPC namespace
    assert seen["pid"] == 1 and seen["proc"] == []  # own pid namespace; the server's hidden
    assert seen["rendezvous"] != "bound"  # no abstract-socket channel between siblings


def test_nothing_of_an_execution_is_left_for_the_next(loop, engine) -> None:
    leave = (
        "import os\n"
        "open('/tmp/left', 'w').write('x')\n"
        "open('/dev/shm/left', 'w').write('x')\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        import time\n"
        "        while True:\n"
        "            open('/tmp/daemon', 'w').write('alive')\n"
        "            time.sleep(0.05)\n"
        "    os._exit(0)\n"
        "'left'"
    )
    assert run(loop, engine, "python", leave).result == "left"
    time.sleep(0.3)
    after = run(loop, engine, "python", "import os\n[os.listdir('/tmp'), os.listdir('/dev/shm')]")
    assert after.ok and after.result == [[], []]


def _ready_workers(engine: Engine, kind: type) -> list:
    return [w for w in engine.ready_workers() if isinstance(w, kind)]


def test_a_killed_python_child_is_replaced(loop, engine) -> None:
    run(loop, engine, "python", "1")
    loop.run_until_complete(asyncio.sleep(0.5))
    workers = _ready_workers(engine, ForkedWorker)
    assert workers, "no ready Python children"
    for worker in workers:
        os.kill(worker.pid, signal.SIGKILL)
    # At once: a dying child may still look alive; its job must go to another one.
    result = run(loop, engine, "python", "6 * 7")
    assert result.ok and result.result == 42, result


def test_a_killed_fork_server_is_replaced(loop, engine) -> None:
    run(loop, engine, "python", "1")
    servers = engine.fork_servers()
    assert servers
    for server in servers:
        os.kill(server.process.pid, signal.SIGKILL)
    loop.run_until_complete(asyncio.sleep(0.3))
    results = [run(loop, engine, "python", f"{i} + 1") for i in range(6)]
    assert all(r.ok for r in results), [r.error for r in results]
    assert engine.fork_server_restarts >= 1


def test_a_killed_javascript_worker_is_replaced(loop, engine) -> None:
    run(loop, engine, "javascript", "return 1")
    loop.run_until_complete(asyncio.sleep(1.0))
    workers = _ready_workers(engine, DenoWorker)
    assert workers, "no ready JavaScript workers"
    for worker in workers:
        os.kill(worker.process.pid, signal.SIGKILL)
    result = run(loop, engine, "javascript", "return 6 * 7")
    assert result.ok and result.result == 42, result


def test_many_parallel_requests_during_warm_up_all_succeed(jail: dict) -> None:
    async def burst() -> list[ExecutionResult]:
        async with Engine(Settings.from_env(python_pool_size=2, javascript_pool_size=1)) as e:
            requests = [ExecutionRequest(language="python", code=f"{i} * 2") for i in range(24)] + [
                ExecutionRequest(language="javascript", code=f"return {i} * 2") for i in range(6)
            ]
            return await asyncio.gather(*(e.execute(r) for r in requests))

    results = asyncio.run(burst())
    assert [r.result for r in results] == [i * 2 for i in range(24)] + [i * 2 for i in range(6)]


def test_a_fork_server_lost_mid_execution_is_the_services_fault(loop, engine) -> None:
    async def lose_server() -> ExecutionResult:
        await engine.execute(ExecutionRequest(language="python", code="1"))  # warm again
        running = asyncio.ensure_future(
            engine.execute(
                ExecutionRequest(
                    language="python", code="import time\ntime.sleep(8)", timeout_ms=20_000
                )
            )
        )
        while engine.running == 0:  # until it has its child
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        for server in engine.fork_servers():
            os.kill(server.process.pid, signal.SIGKILL)
        return await running

    result = loop.run_until_complete(lose_server())
    assert result.error is not None and result.error.type == "sandbox_error", result
    assert "fork server was lost" in result.error.message
    assert run(loop, engine, "python", "2 + 2").result == 4
