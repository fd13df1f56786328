"""Shared fixtures.  Abuse cases must run inside a confirmed jail, never outside it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import pytest

import coderunner
from _postgres import PostgresServer

# Run inside the jail; reports what the snippet can see of its own confinement.
JAIL_PROBE = r"""
import os
status = dict(
    line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line
)
{
    "pid": os.getpid(),
    "uid_map": open("/proc/self/uid_map").read().split(),
    "seccomp": status["Seccomp"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "cap_eff": status["CapEff"].strip(),
    "cap_bnd": status["CapBnd"].strip(),
    "net": sorted(os.listdir("/sys/class/net")) if os.path.exists("/sys/class/net") else [],
    "host_root_visible": os.path.exists("/work") or os.path.exists("/root/.bashrc"),
}
"""


def confirm_jail() -> dict:
    """Run the probe and return its findings; raise AssertionError unless fully jailed."""
    result = coderunner.run(JAIL_PROBE)
    assert result.ok, result.error
    seen = result.result
    assert seen["seccomp"] == "2", f"seccomp filter not active: {seen}"
    assert seen["no_new_privs"] == "1", seen
    assert int(seen["cap_eff"], 16) == 0, seen
    assert int(seen["cap_bnd"], 16) == 0, seen
    assert seen["pid"] < 10, f"not in its own pid namespace: {seen}"
    assert not seen["host_root_visible"], seen
    return seen


@pytest.fixture(scope="session")
def jail() -> dict:
    """Confirms the jail is active before any abuse case runs; stops the run otherwise."""
    try:
        return confirm_jail()
    except AssertionError as exc:  # a fork bomb outside the jail takes the machine down
        pytest.exit(f"the jail is not active, refusing to run abuse cases: {exc}", returncode=3)


def run_py(code: str, **kwargs) -> coderunner.ExecutionResult:
    return coderunner.run(code, "python", **kwargs)


def run_js(code: str, **kwargs) -> coderunner.ExecutionResult:
    return coderunner.run(code, "javascript", **kwargs)


# -- a real PostgreSQL server (the store's tests, several nodes sharing one library) ------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The PostgreSQL server the store's tests share (one database per test)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """A URL of the shared server's (empty) ``coderunner`` database."""
    return postgres.create_database("coderunner")


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, which it may stop and start again."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def threaded_engine() -> Iterator[tuple[asyncio.AbstractEventLoop, coderunner.Engine]]:
    """One small engine on an event loop of its own thread, for tests that call it from
    plain (synchronous) test code with asyncio.run_coroutine_threadsafe."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    engine = coderunner.Engine(coderunner.Settings(python_pool_size=1, javascript_pool_size=1))
    asyncio.run_coroutine_threadsafe(engine.start(), loop).result(60)
    try:
        yield loop, engine
    finally:
        asyncio.run_coroutine_threadsafe(engine.aclose(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
