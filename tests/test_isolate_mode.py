"""JavaScript's isolate mode: a fresh V8 isolate per execution in jailed workerd processes.

Everything runs the real thing: the pinned workerd binary (fetched into the data dir the
first time), real bwrap jails, real isolates.  Hostile snippets run only after the jail
is confirmed (the `jail` fixture), and only inside it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from coderunner import Engine, ExecutionRequest, ExecutionResult, Settings
from coderunner._engine import TENANT
from coderunner._runtimes.workerd import (
    WORKERD_INTEGRITY,
    MarkedOutput,
    WorkerdUnavailable,
    check_integrity,
    install_workerd,
    workerd_binary,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def isolate_settings(**overrides: object) -> Settings:
    return Settings.from_env(javascript_isolation="isolate", **overrides)


@pytest.fixture(scope="module")
def engine(jail: dict, loop: asyncio.AbstractEventLoop) -> Iterator[Engine]:
    engine = Engine(isolate_settings(javascript_isolate_recycle_executions=50))
    loop.run_until_complete(engine.start())
    yield engine
    loop.run_until_complete(engine.aclose())


def run(
    loop: asyncio.AbstractEventLoop, engine: Engine, code: str, tenant: str = "", **kwargs: object
) -> ExecutionResult:
    async def go() -> ExecutionResult:
        TENANT.set(tenant)
        return await engine.execute(ExecutionRequest(code=code, language="javascript", **kwargs))

    return loop.run_until_complete(go())


def ok(result: ExecutionResult) -> object:
    assert result.ok, result.error
    return result.result


def failed(result: ExecutionResult, kind: str):  # type: ignore[no-untyped-def]
    assert not result.ok and result.error is not None, result
    assert result.error.type.value == kind, result.error
    return result.error


# -- the mode is what runs ----------------------------------------------------------------


def test_isolate_mode_runs_in_workerd_not_deno(loop, engine) -> None:
    assert ok(run(loop, engine, "return [typeof Deno, typeof WebSocketPair]")) == [
        "undefined",
        "function",
    ]
    assert engine.isolates is not None and engine.isolates.processes()


def test_the_setting_is_checked() -> None:
    with pytest.raises(Exception, match="javascript_isolation must be one of process, isolate"):
        Settings.from_env(javascript_isolation="threads")


# -- conventions (the process mode's suite, run in this mode) ---------------------------------


def test_the_javascript_conventions_suite_passes_in_isolate_mode(jail) -> None:
    """The process mode's JavaScript conformance suite, run whole in isolate mode."""
    env = {**os.environ, "CODERUNNER_JAVASCRIPT_ISOLATION": "isolate"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/jail/test_conventions.py", "-k", "js or javascript"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


# The abuse cases written against Deno's own APIs (Deno.readTextFile, Deno.env,
# Deno.connect, the result FIFO, ...): in isolate mode there is no Deno and those vectors
# do not exist; their isolate-mode counterparts are below in this file.
DENO_ONLY_ABUSE = (
    "tcp_to_host_loopback or host_files_refused or environment_is_clean or fill_tmp or "
    "workers_and_programs_refused or garbage_in_the_result_channel or mount_tables"
)


def test_the_javascript_abuse_suite_passes_in_isolate_mode(jail) -> None:
    """The process mode's JavaScript abuse cases, run in isolate mode (but the Deno-only)."""
    env = {**os.environ, "CODERUNNER_JAVASCRIPT_ISOLATION": "isolate"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/sandbox/test_abuse.py", "-k", f"(js or javascript) and not ({DENO_ONLY_ABUSE})"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


@pytest.mark.parametrize(
    ("code", "inputs", "expected"),
    [
        ("function main(a, b = 2) { return a + b; }", {"a": 40}, 42),
        ("const main = async ({ x, y }) => x * y;", {"x": 6, "y": 7}, 42),
        ("return x + y;", {"x": 40, "y": 2}, 42),
        ("await null;\nreturn inputs.s.toUpperCase();", {"s": "héllo ✓"}, "HÉLLO ✓"),
        (
            "return [new Intl.NumberFormat('de-DE').format(1234.5), "
            "new TextEncoder().encode('é').length, "
            "new URL('https://a.b/c?d=1').searchParams.get('d'), "
            "structuredClone({a: [1]}), typeof crypto.subtle.digest]",
            {},
            ["1.234,5", 2, "1", {"a": [1]}, "function"],
        ),
        (
            'const { createHash } = require("node:crypto");\n'
            "return createHash('sha256').update('a').digest('hex').slice(0, 8);",
            {},
            "ca978112",
        ),
        (
            'import { createHash } from "node:crypto";\n'
            "return createHash('sha256').update('a').digest('hex').slice(0, 8);",
            {},
            "ca978112",
        ),
    ],
)
def test_conventions_and_builtins(loop, engine, code, inputs, expected) -> None:
    assert ok(run(loop, engine, code, inputs=inputs)) == expected


def test_console_is_captured_per_execution(loop, engine) -> None:
    result = run(loop, engine, "console.log('out', {a: [1]});\nconsole.error('err');\nreturn 1;")
    assert (result.stdout, result.stderr) == ("out { a: [ 1 ] }\n", "err\n")
    # The next execution starts with nothing of it.
    assert run(loop, engine, "return 2;").stdout == ""


def test_console_output_is_capped(loop, engine) -> None:
    code = "for (let i = 0; i < 3000; i++) console.log('x'.repeat(1000));\nreturn 1;"
    result = run(loop, engine, code)
    assert ok(result) == 1
    assert result.stdout_truncated and len(result.stdout) == engine.settings.output_limit_bytes


@pytest.mark.parametrize(
    ("code", "kind", "name", "line"),
    [
        ("let a = 1;\nlet b = ;\n", "syntax_error", "SyntaxError", 2),
        ("const x = 1;\nnull.foo;", "runtime_error", "TypeError", 2),
        ("function main(a) { return a; }", "input_error", None, None),
        ("return new Map();", "serialization_error", "Map", None),
        ("return NaN;", "serialization_error", "NaN", None),
        ('import _ from "lodash";\nreturn 1;', "runtime_error", "Error", 1),
        ("await new Promise(() => {});", "runtime_error", "PendingPromise", None),
        ("console.log('before');\nprocess.exit(0);", "runtime_error", "ExitCalled", 2),
    ],
)
def test_errors(loop, engine, code, kind, name, line) -> None:
    error = failed(run(loop, engine, code), kind)
    assert (error.name, error.line) == (name, line), error


def test_result_over_the_limit_is_output_limit(loop, engine) -> None:
    error = failed(run(loop, engine, "return 'x'.repeat(17 * 1024 * 1024);"), "output_limit")
    assert "16777216" in error.message


# -- containment --------------------------------------------------------------------------------


def test_each_execution_gets_a_fresh_isolate(loop, engine) -> None:
    code = (
        "globalThis.seen = (globalThis.seen ?? 0) + 1;\n"
        "Array.prototype.leak = 1;\n"
        "JSON.stringify = () => 'hijacked';\n"
        "return [globalThis.seen, [].leak ?? null];"
    )
    for _ in range(4):  # whichever process serves, nothing of the last one is there
        assert ok(run(loop, engine, code)) == [1, 1]
    assert ok(run(loop, engine, "return [[].leak ?? null, JSON.stringify(1)];")) == [None, "1"]


def test_no_outbound_network(loop, engine, jail) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    hits: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                hits.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        for code in (
            f"return (await fetch('http://127.0.0.1:{port}/')).status;",
            'import { connect } from "cloudflare:sockets";\n'
            f"const s = connect('127.0.0.1:{port}');\nawait s.opened;\nreturn 1;",
        ):
            error = failed(run(loop, engine, code), "runtime_error")
            assert "not permitted" in error.message or "outside world" in error.message, error
    finally:
        stop.set()
        thread.join()
        server.close()
    assert hits == []


def test_no_bindings_no_code_from_strings(loop, engine, jail) -> None:
    assert ok(run(loop, engine, "return Object.keys(globalThis.env ?? {}).length;")) == 0
    error = failed(run(loop, engine, "return eval('1 + 1');"), "runtime_error")
    assert error.name == "EvalError"


def test_caches_hold_nothing(loop, engine, jail) -> None:
    """No cache is configured: the Cache API cannot carry data from one execution to the
    next (as Deno's `caches` could between Workers)."""
    put = "await caches.default.put('https://x.test/k', new Response('secret'));\nreturn 1;"
    error = failed(run(loop, engine, put), "runtime_error")
    assert "No Cache was configured" in error.message


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ('const fs = require("node:fs");\nreturn fs.readdirSync("/");', 'No such module "node:fs"'),
        (
            'const cp = require("node:child_process");\nreturn cp.execSync("id").toString();',
            'No such module "node:child_process"',
        ),
        (
            "await WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));",
            "Wasm code generation disallowed",
        ),
        ("function f(n) { return f(n + 1) + 1; }\nreturn f(0);", "Maximum call stack size"),
    ],
)
def test_files_programs_and_code_generation_are_refused(loop, engine, jail, code, message) -> None:
    error = failed(run(loop, engine, code), "runtime_error")
    assert message in error.message, error
    assert ok(run(loop, engine, "return 1;")) == 1  # the process serves on


def test_environment_and_threads_are_not_there(loop, engine, jail) -> None:
    assert ok(run(loop, engine, "return Object.keys(process.env);")) == []
    error = failed(run(loop, engine, "return new Worker('data:,1');"), "runtime_error")
    assert error.name == "ReferenceError"


def test_a_microtask_loop_is_stopped_by_the_deadline(loop, engine, jail) -> None:
    failed(run(loop, engine, "while (true) await null;", timeout_ms=300), "timeout")
    assert ok(run(loop, engine, "return 1;")) == 1


def test_timeout_kills_and_replaces_the_process(loop, engine, jail) -> None:
    before = {p.pid for p in engine.isolates.processes()}  # type: ignore[union-attr]
    result = run(loop, engine, "console.log('started');\nwhile (true) {}", timeout_ms=300)
    failed(result, "timeout")
    assert result.stdout == "started\n"
    # The pool serves on, with a process that is not the killed one.
    assert ok(run(loop, engine, "return 1;")) == 1
    after = {p.pid for p in engine.isolates.processes()}  # type: ignore[union-attr]
    assert after and (after - before or len(after) < len(before) + 1)


def test_heap_blow_up_is_memory_limit(loop, engine, jail) -> None:
    code = "console.log('early');\nconst a = [];\nwhile (true) a.push(new Array(1e6).fill(1.5));"
    result = run(loop, engine, code, memory_mb=64, timeout_ms=20_000)
    failed(result, "memory_limit")
    assert result.stdout == "early\n"
    assert "heap" not in result.stderr  # workerd's own last words are not the snippet's
    assert ok(run(loop, engine, "return 1;", memory_mb=64)) == 1


def test_array_buffer_over_the_limit_is_memory_limit(loop, engine, jail) -> None:
    code = "const b = new ArrayBuffer(4 * 1024 * 1024 * 1024);\nreturn b.byteLength;"
    failed(run(loop, engine, code, memory_mb=64), "memory_limit")


def test_tenants_never_share_a_process(loop, engine) -> None:
    run(loop, engine, "return 1;", tenant="key-a")
    run(loop, engine, "return 1;", tenant="key-b")
    isolates = engine.isolates
    assert isolates is not None
    by_tenant: dict[str, set[int]] = {}
    for (tenant, _), pool in isolates.pools.items():
        by_tenant.setdefault(tenant, set()).update(p.pid for p in pool.idle)
    assert by_tenant["key-a"] and by_tenant["key-b"]
    assert not by_tenant["key-a"] & by_tenant["key-b"]
    assert not by_tenant["key-a"] & by_tenant.get("", set())


def test_processes_are_recycled_after_n_executions(jail, loop) -> None:
    engine = Engine(isolate_settings(javascript_isolate_processes=1,
                                     javascript_isolate_recycle_executions=3))  # fmt: skip

    async def go() -> list[int]:
        await engine.start()
        pids = []
        for _ in range(7):
            assert (
                await engine.execute(ExecutionRequest(code="return 1", language="javascript"))
            ).ok
            await asyncio.sleep(0.05)  # the release (and a recycle) runs after the answer
            pids += [p.pid for p in engine.isolates.processes()]  # type: ignore[union-attr]
        await engine.aclose()
        return pids

    pids = loop.run_until_complete(go())
    assert len(set(pids)) >= 2, pids  # 7 executions, 3 at most per process


# -- the binary and the console markers (host side) -----------------------------------------


def test_the_pinned_binary_is_fetched_once_and_verified(tmp_path) -> None:
    binary = install_workerd(str(tmp_path))
    assert binary == workerd_binary(str(tmp_path)) and os.access(binary, os.X_OK)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("workerd 2026-11-17"), version.stdout
    stamp = binary.stat().st_mtime_ns
    assert install_workerd(str(tmp_path)) == binary and binary.stat().st_mtime_ns == stamp


def test_a_tarball_that_is_not_the_pinned_one_is_refused() -> None:
    with pytest.raises(WorkerdUnavailable, match="does not match its pinned integrity"):
        check_integrity(b"not workerd")
    assert WORKERD_INTEGRITY.startswith("sha512-")


def test_marked_output_keeps_only_what_is_between_the_markers(loop) -> None:
    async def go() -> tuple[str, bool, str]:
        reader = asyncio.StreamReader()
        out = MarkedOutput(reader)
        out.expect("B1", "E1", 5)
        for chunk in (b"noise B", b"1\nhello wor", b"ld\nE", b"1\nlater"):
            reader.feed_data(chunk)
            await asyncio.sleep(0)
        ended = await out.wait_end(1)
        first = out.text()
        truncated = out.truncated
        out.expect("B2", "E2", 100)
        reader.feed_data(b"stray\nB2\nnext\nE2\n")
        await out.wait_end(1)
        return first + "|" + str(ended), truncated, out.text()

    first, truncated, second = loop.run_until_complete(go())
    assert first == "hello|True" and truncated
    assert second == "next\n"


def test_http_api_keys_get_processes_of_their_own(jail) -> None:
    """Through HTTP, each API key's executions run in workerd processes of its own."""
    from fastapi.testclient import TestClient

    from coderunner._http import create_app
    from coderunner._models import Language

    settings = isolate_settings(javascript_isolate_processes=1)
    engine = Engine(settings, warm=(Language.JAVASCRIPT,))
    app = create_app(settings, engine=engine, api_keys=["key-one", "key-two"])
    with TestClient(app) as client:
        for key in ("key-one", "key-two", "key-one"):
            response = client.post(
                "/v1/execute",
                json={"language": "javascript", "code": "return 1"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.json()["result"] == 1, response.text
        assert engine.isolates is not None
        pids: dict[str, set[int]] = {}
        for (tenant, _), pool in engine.isolates.pools.items():
            pids.setdefault(tenant, set()).update(p.pid for p in pool.idle)
        client.portal.call(engine.aclose)  # type: ignore[union-attr]  # (on the app's loop)
    keyed = {tenant: found for tenant, found in pids.items() if tenant and found}
    assert len(keyed) == 2, pids  # one pool per key (the warm "" pool serves no key)
    first, second = keyed.values()
    assert not first & second


def test_doctor_checks_the_isolate_mode(jail) -> None:
    from coderunner._doctor import run_checks

    report = run_checks(isolate_settings(python_pool_size=1, javascript_pool_size=1))
    check = next(c for c in report.checks if c.name == "javascript runtime")
    assert check.ok and check.detail.startswith("isolate mode: workerd"), check


def test_the_registry_is_npms_own_setting_else_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from coderunner._runtimes import workerd

    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/mirror/")
    assert workerd._registry() == "http://127.0.0.1:9/mirror"
    monkeypatch.delenv("npm_config_registry")
    monkeypatch.delenv("NPM_CONFIG_REGISTRY", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no npm to ask either
    assert workerd._registry() == workerd.NPM_DEFAULT_REGISTRY
