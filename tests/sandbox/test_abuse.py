"""Hostile snippets, in both languages: each must fail safely, and the next run must work.

Every test takes the `jail` fixture FIRST: it stops the whole run unless the jail is
confirmed active (outside it, a fork bomb takes the machine down).  Never run these
snippets any other way than through coderunner.

Set CODERUNNER_ABUSE_REPORT=path.json to record what each case returned.
"""

from __future__ import annotations

import json
import os
import site
import socket
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import pytest

import coderunner
from conftest import run_js, run_py

PROJECT = Path(__file__).resolve().parents[2]  # this checkout, wherever CI clones it

pytestmark = pytest.mark.abuse

# Planted before any engine starts (collection precedes every test): no jail may see it.
SECRET = "coderunner-abuse-secret-7f3a9c"
os.environ["CODERUNNER_ABUSE_SECRET"] = SECRET

BOUND = 2000  # ms: every abuse case is short
PY_ALLOWED_ENV = {"LANG", "HOME", "PATH", "PWD"}
_records: list[dict] = []


@pytest.fixture(scope="module", autouse=True)
def _write_report():
    yield
    path = os.environ.get("CODERUNNER_ABUSE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(_records, f, indent=1)


def record(case: str, result: coderunner.ExecutionResult) -> coderunner.ExecutionResult:
    error = result.error
    _records.append(
        {
            "case": case,
            "language": result.language.value,
            "ok": result.ok,
            "result": result.result if len(json.dumps(result.result)) < 2000 else "<large>",
            "error": None if error is None else f"{error.type.value} {error.name}: {error.message}",
            "stdout": result.stdout[:300],
            "duration_ms": result.duration_ms,
        }
    )
    return result


def abuse(case: str, language: str, code: str, **kwargs) -> coderunner.ExecutionResult:
    kwargs.setdefault("timeout_ms", BOUND)
    started = time.monotonic()
    result = record(case, coderunner.run(code, language, **kwargs))
    # Bounded: the kill comes at the deadline (the margin is for a busy machine, not speed).
    assert time.monotonic() - started < kwargs["timeout_ms"] / 1000 + 15, "not bounded"
    assert result.error is None or result.error.type.value != "sandbox_error", result.error
    follow_up(language)
    return result


def follow_up(language: str) -> None:
    """A plain execution right after the abuse case must work."""
    code = "sum(range(10))" if language == "python" else "return [1, 2, 3].length;"
    result = coderunner.run(code, language, timeout_ms=10000)
    assert result.ok, f"follow-up failed after abuse: {result.error}"
    assert result.result == (45 if language == "python" else 3)


def error_of(result: coderunner.ExecutionResult, *types: str) -> coderunner.ErrorDetail:
    assert not result.ok, f"abuse succeeded: {result.result!r}"
    assert result.error is not None
    assert result.error.type.value in types, result.error
    return result.error


# -- network ---------------------------------------------------------------------------------


@pytest.fixture
def host_listener():
    """A TCP service on the host's loopback; it records any connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    hits: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except OSError:
                continue
            hits.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join(2)
    server.close()


def test_py_tcp_to_host_loopback(jail, host_listener):
    port, hits = host_listener
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n'in'"
    error = error_of(abuse("py tcp to host loopback", "python", code), "runtime_error")
    assert error.name in ("OSError", "ConnectionRefusedError", "PermissionError"), error
    assert hits == []


@pytest.mark.parametrize(
    ("case", "code"),
    [
        (
            "py udp",
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.sendto(b'x', ('8.8.8.8', 53))",
        ),
        (
            "py ipv6",
            "import socket\ns = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
            "s.connect(('::1', 80))",
        ),
        ("py raw/packet socket", "import socket\nsocket.socket(socket.AF_PACKET, socket.SOCK_RAW)"),
        (
            "py netlink socket",
            "import socket\n"
            "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)",
        ),
        ("py resolve name", "import socket\nsocket.getaddrinfo('example.com', 443)"),
        ("py resolve localhost", "import socket\nsocket.gethostbyname('localhost')"),
        (
            "py urllib",
            "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1).read()",
        ),
    ],
)
def test_py_network_refused(jail, case, code):
    error = error_of(abuse(case, "python", code), "runtime_error")
    assert error.name in ("OSError", "gaierror", "URLError", "PermissionError"), error


def test_py_abstract_unix_socket_of_the_host_unreachable(jail):
    name = f"\0coderunner-abuse-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(name)
    server.listen(1)
    try:
        code = (
            f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.settimeout(1)\n"
            f"s.connect({name!r})\n'connected'"
        )
        error = error_of(abuse("py abstract unix socket of host", "python", code), "runtime_error")
        assert error.name in ("ConnectionRefusedError", "FileNotFoundError", "PermissionError"), (
            error
        )
    finally:
        server.close()


def test_js_tcp_to_host_loopback(jail, host_listener):
    port, hits = host_listener
    for case, code in [
        (
            "js Deno.connect host loopback",
            f"await Deno.connect({{ hostname: '127.0.0.1', port: {port} }});",
        ),
        ("js fetch host loopback", f"return (await fetch('http://127.0.0.1:{port}/')).status;"),
        (
            "js node:net host loopback",
            "const net = require('node:net');\n"
            "return await new Promise((ok, fail) => {\n"
            f"  const s = net.connect({port}, '127.0.0.1');\n"
            "  s.on('connect', () => ok('connected'));\n  s.on('error', fail);\n});",
        ),
    ]:
        error = error_of(abuse(case, "javascript", code), "runtime_error")
        assert "network" in error.message or "net access" in error.message, error
    assert hits == []


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("js fetch internet", "await fetch('https://example.com/');"),
        ("js Deno.connect ipv6", "await Deno.connect({ hostname: '::1', port: 80 });"),
        ("js Deno.listen", "Deno.listen({ port: 8080 });"),
        (
            "js udp dgram",
            "const dgram = require('node:dgram');\n"
            "const s = dgram.createSocket('udp4');\n"
            "return await new Promise((ok, fail) =>\n"
            "  s.send('x', 53, '8.8.8.8', (e) => e ? fail(e) : ok(1)));",
        ),
        ("js resolveDns", "return await Deno.resolveDns('example.com', 'A');"),
        ("js dns.lookup", "return await require('node:dns').promises.lookup('example.com');"),
        (
            "js WebSocket",
            "const ws = new WebSocket('ws://127.0.0.1:1/');\n"
            "return await new Promise((ok, fail) => {\n"
            "  ws.onopen = ok;\n  ws.onerror = () => fail(new Error('ws error'));\n});",
        ),
    ],
)
def test_js_network_refused(jail, case, code):
    error_of(abuse(case, "javascript", code), "runtime_error")


# -- host files ------------------------------------------------------------------------------

HOST_PATHS = [
    "/etc/passwd",
    "/etc/shadow",
    "/etc/hostname",
    "/root/.bashrc",
    "/root/.ssh",
    "/home",
    str(PROJECT / "pyproject.toml"),
    str(PROJECT / "src" / "coderunner" / "_sandbox" / "policy.py"),
    str(PROJECT.parent / "shared" / "CONTRACT.md"),
    site.getsitepackages()[0],
    os.path.join(sysconfig.get_paths()["stdlib"], "site-packages", "pip"),
    "/var/run/docker.sock",
    "/sys/fs/cgroup",
]


def test_py_host_files_invisible(jail):
    code = (
        "import os\nfound = {}\n"
        f"for p in {HOST_PATHS!r}:\n"
        "    try:\n"
        "        found[p] = os.listdir(p) if os.path.isdir(p) else open(p).read(64)\n"
        "    except OSError as e:\n"
        "        pass\n"
        "found"
    )
    result = abuse("py read host files", "python", code)
    assert result.ok and result.result == {}, result.result


def test_py_root_holds_only_the_runtime(jail):
    code = (
        "import os\n{p: sorted(os.listdir(p)) for p in ['/', '/root', '/usr'] if os.path.isdir(p)}"
    )
    result = abuse("py list /", "python", code)
    assert result.ok, result.error
    assert not {"work", "home", "etc", "var", "opt", "srv", "mnt"} & set(result.result["/"])
    assert ".bashrc" not in result.result.get("/root", [])


def test_py_site_packages_empty(jail):
    code = (
        "import sys, os\n"
        "[p for p in sys.path if os.path.isdir(p) and 'site-packages' in p and os.listdir(p)]"
    )
    result = abuse("py site-packages", "python", code)
    assert result.ok and result.result == [], result.result
    no_pip = abuse("py import pydantic", "python", "import pydantic")
    assert error_of(no_pip, "runtime_error").name == "ModuleNotFoundError"


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "/etc/shadow", str(PROJECT / "pyproject.toml"), site.getsitepackages()[0]],
)
def test_js_host_files_refused(jail, path):
    code = f"return await Deno.readTextFile({json.dumps(path)});"
    error = error_of(abuse(f"js read {path}", "javascript", code), "runtime_error")
    # Refused by Deno, or (for a checkout under /tmp, which Deno may read) simply absent:
    # the jail's /tmp is its own.
    assert "file access" in error.message or error.name == "NotFound", error
    code = f"return require('node:fs').readFileSync({json.dumps(path)}, 'utf8');"
    error_of(abuse(f"js node:fs read {path}", "javascript", code), "runtime_error")


# -- environment -----------------------------------------------------------------------------


def test_py_environment_is_clean(jail):
    code = (
        "import os\nfound = {'env': dict(os.environ)}\n"
        "for p in ['/proc/1/environ', '/proc/1/cmdline', '/proc/self/environ']:\n"
        "    try:\n"
        "        found[p] = open(p, 'rb').read().decode('latin-1')\n"
        "    except OSError as e:\n"
        "        found[p] = None\n"
        "# CODE-MARKER-91b2\n"
        "found"
    )
    result = abuse("py environment and /proc/1", "python", code, inputs={"x": "INPUT-MARKER-55e1"})
    assert result.ok, result.error
    env = result.result["env"]
    assert set(env) <= PY_ALLOWED_ENV, env
    assert env.get("PWD", "/tmp") == "/tmp" and env["HOME"] == "/tmp"
    text = json.dumps(result.result)
    for leak in (SECRET, "CODE-MARKER", "INPUT-MARKER", "CODERUNNER_", "/work"):
        assert leak not in text, f"{leak} visible in the jail: {result.result}"


def test_js_environment_is_clean(jail):
    result = abuse("js Deno.env", "javascript", "return Deno.env.toObject();")
    assert "environment" in error_of(result, "runtime_error").message
    result = abuse("js process.env", "javascript", "return { ...process.env };")
    assert result.ok and result.result == {}, result.result
    result = abuse(
        "js /proc/1/environ", "javascript", "return Deno.readTextFileSync('/proc/1/environ');"
    )
    error_of(result, "runtime_error")


# -- writes and /tmp ---------------------------------------------------------------------------


def test_py_write_outside_tmp_refused(jail):
    paths = ["/x", "/etc/x", "/usr/x", "/root/x", "/runner/x", "/run/x", "/dev/x", "/proc/x"]
    code = (
        "written = []\n"
        f"for p in {paths!r}:\n"
        "    try:\n"
        "        open(p, 'w').write('x')\n"
        "        written.append(p)\n"
        "    except OSError:\n"
        "        pass\n"
        "written"
    )
    result = abuse("py write outside /tmp", "python", code)
    assert result.ok and result.result == [], result.result


@pytest.mark.parametrize("path", ["/x", "/etc/x", "/runner/x", "/run/x"])
def test_js_write_outside_tmp_refused(jail, path):
    code = f"Deno.writeTextFileSync({json.dumps(path)}, 'x');"
    error_of(abuse(f"js write {path}", "javascript", code), "runtime_error")


def test_py_fill_tmp_stops_with_an_error(jail):
    code = (
        "i = 0\n"
        "while True:\n"
        "    with open(f'/tmp/f{i}', 'wb') as f:\n"
        "        f.write(b'x' * (1024 * 1024))\n"
        "    i += 1"
    )
    error = error_of(abuse("py fill /tmp", "python", code, memory_mb=128), "runtime_error")
    assert "No space left" in error.message, error
    one_file = "with open('/tmp/big', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)"
    error = error_of(abuse("py one huge file", "python", one_file), "runtime_error")
    assert "No space left" in error.message or "File too large" in error.message, error


def test_js_fill_tmp_stops_with_an_error(jail):
    code = (
        "const chunk = new Uint8Array(1024 * 1024);\n"
        "for (let i = 0; ; i++) Deno.writeFileSync(`/tmp/f${i}`, chunk);"
    )
    error = error_of(abuse("js fill /tmp", "javascript", code), "runtime_error")
    assert "No space left" in error.message or "too large" in error.message, error


def test_tmp_is_fresh_for_every_execution(jail):
    run_py("open('/tmp/left-behind', 'w').write('x')\nNone")
    run_js("Deno.writeTextFileSync('/tmp/left-behind', 'x');")
    result = run_py("import os\nsorted(os.listdir('/tmp'))")
    assert result.ok and "left-behind" not in result.result, result.result


# -- processes and threads -------------------------------------------------------------------------


def test_py_fork_bomb_contained(jail):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    error_of(abuse("py fork bomb", "python", code), "timeout", "runtime_error")


def test_py_fork_count_is_limited(jail):
    code = (
        "import os, time\nn = 0\n"
        "for i in range(500):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as e:\n"
        "        err = type(e).__name__\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(5)\n"
        "        os._exit(0)\n"
        "    n += 1\n"
        "[n, err]"
    )
    result = abuse("py fork until refused", "python", code)
    assert result.ok, result.error
    count, err = result.result
    assert count < 64 and err == "BlockingIOError", result.result


def test_py_threads_limited(jail):
    code = (
        "import threading, time\nn = 0\n"
        "for i in range(500):\n"
        "    try:\n"
        "        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "    except RuntimeError as e:\n"
        "        break\n"
        "    n += 1\n"
        "n"
    )
    result = abuse("py threads until refused", "python", code)
    assert result.ok and result.result < 64, result


def test_py_threads_do_not_outlive_the_result(jail):
    code = (
        "import threading\n"
        "def spin():\n    while True:\n        pass\n"
        "for i in range(4):\n    threading.Thread(target=spin).start()\n"
        "'returned'"
    )
    result = abuse("py spinning threads then return", "python", code)
    assert result.ok and result.result == "returned"


def test_py_threads_past_the_timeout(jail):
    code = (
        "import threading\n"
        "def spin():\n    while True:\n        pass\n"
        "for i in range(4):\n    threading.Thread(target=spin).start()\n"
        "while True:\n    pass"
    )
    # abuse() itself asserts the run ended at the deadline (plus a busy machine's margin).
    error_of(abuse("py threads past timeout", "python", code, timeout_ms=500), "timeout")


def test_js_workers_and_programs_refused(jail):
    for case, code in [
        ("js Worker", "new Worker('data:text/javascript,while(true){}', { type: 'module' });"),
        (
            "js worker_threads",
            "const { Worker } = require('node:worker_threads');\n"
            "new Worker('while(true){}', { eval: true });",
        ),
        ("js Deno.Command", "await new Deno.Command('/bin/sh', { args: ['-c', 'id'] }).output();"),
        ("js child_process", "require('node:child_process').execSync('id');"),
        ("js child_process import", "import { spawn } from 'node:child_process';\nspawn('id');"),
    ]:
        error = error_of(abuse(case, "javascript", code), "runtime_error")
        assert "sandbox" in error.message, error


def test_js_busy_timers_past_the_timeout(jail):
    code = (
        "setInterval(() => { const t = Date.now(); while (Date.now() - t < 50) {} }, 0);\n"
        "await new Promise(() => setTimeout(() => {}, 60000));"
    )
    error_of(abuse("js busy timers", "javascript", code, timeout_ms=500), "timeout")


def test_daemon_leaves_no_trace_for_the_next_execution(jail):
    daemon = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        for i in range(100):\n"
        "            for p in ('/tmp/daemon-marker', '/dev/shm/daemon-marker'):\n"
        "                try:\n"
        "                    open(p, 'a').write('alive')\n"
        "                except OSError:\n"
        "                    pass\n"
        "            time.sleep(0.05)\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "time.sleep(0.2)\n"
        "'daemon started'"
    )
    result = abuse("py double-fork setsid daemon", "python", daemon)
    assert result.ok, result.error
    check = (
        "import os, time\n"
        "time.sleep(0.3)\n"
        "alive = []\n"
        "for pid in range(2, 300):\n"
        "    try:\n"
        "        os.kill(pid, 0)\n"
        "        alive.append(pid)\n"
        "    except ProcessLookupError:\n"
        "        pass\n"
        "procs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "marks = ('/tmp/daemon-marker', '/dev/shm/daemon-marker')\n"
        "markers = [p for p in marks if os.path.exists(p)]\n"
        "[alive, procs, markers]"
    )
    for _ in range(3):  # whichever worker the pool hands out next
        seen = record("py next execution after daemon", run_py(check, timeout_ms=5000))
        assert seen.ok, seen.error
        alive, procs, markers = seen.result
        assert alive == [] and markers == [], seen.result
        assert set(procs) <= {"1"}, seen.result


# -- signals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("py kill pid 1", "import os, signal\nos.kill(1, signal.SIGKILL)\n'after'"),
        ("py kill -1", "import os, signal\nos.kill(-1, signal.SIGKILL)\n'after'"),
        ("py kill parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n'after'"),
        ("py kill own group", "import os, signal\nos.kill(0, signal.SIGKILL)\n'after'"),
        ("py killpg", "import os, signal\nos.killpg(os.getpgrp(), signal.SIGKILL)\n'after'"),
        (
            "py kill pids 1-300",
            "import os, signal\nfor p in range(1, 300):\n    try:\n"
            "        os.kill(p, signal.SIGKILL)\n    except OSError:\n        pass\n'after'",
        ),
    ],
)
def test_py_signals_cannot_reach_outside(jail, case, code):
    # A sibling execution runs meanwhile: it must not be hurt.
    sibling: dict = {}
    thread = threading.Thread(
        target=lambda: sibling.update(
            r=coderunner.run("import time\ntime.sleep(0.8)\n'sibling ok'", timeout_ms=5000)
        )
    )
    thread.start()
    time.sleep(0.3)
    result = abuse(case, "python", code)
    thread.join()
    assert sibling["r"].ok and sibling["r"].result == "sibling ok", sibling["r"].error
    assert result.error is None or result.error.type.value in ("runtime_error",), result.error


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("js Deno.kill 1", "Deno.kill(1, 'SIGKILL');"),
        ("js process.kill 1", "process.kill(1, 'SIGKILL');"),
        ("js process.kill -1", "process.kill(-1, 'SIGKILL');"),
    ],
)
def test_js_signals_refused(jail, case, code):
    error_of(abuse(case, "javascript", code), "runtime_error")


# -- syscalls --------------------------------------------------------------------------------------

SYSCALLS = {  # x86_64 numbers and harmless arguments
    "mount": (165, "b'none', b'/tmp', b'tmpfs', 0, 0"),
    "umount2": (166, "b'/tmp', 2"),
    "ptrace_attach_1": (101, "16, 1, 0, 0"),
    "ptrace_traceme": (101, "0, 0, 0, 0"),
    "unshare_user": (272, "0x10000000"),
    "unshare_net": (272, "0x40000000"),
    "unshare_ns": (272, "0x00020000"),
    "setns": (308, "0, 0"),
    "keyctl": (250, "0, 0"),
    "add_key": (248, "b'user', b'k', b'v', 1, -4"),
    "bpf": (321, "0, 0, 0"),
    "perf_event_open": (298, "0, 0, -1, -1, 0"),
    "userfaultfd": (323, "0"),
    "io_uring_setup": (425, "1, 0"),
    "chroot": (161, "b'/tmp'"),
    "pivot_root": (155, "b'/tmp', b'/tmp'"),
    "reboot": (169, "0, 0, 0, 0"),
    "init_module": (175, "0, 0, b''"),
    "kexec_load": (246, "0, 0, 0, 0"),
    "clone_newuser": (56, "0x10000000 | 17, 0, 0, 0, 0"),
    "clone_newpid": (56, "0x20000000 | 17, 0, 0, 0, 0"),
    "swapon": (167, "b'/tmp/x', 0"),
    "sethostname": (170, "b'evil', 4"),
    "process_vm_readv": (310, "1, 0, 0, 0, 0, 0"),
}


def test_py_dangerous_syscalls_refused(jail):
    calls = ", ".join(f"{name!r}: ({nr}, ({args},))" for name, (nr, args) in SYSCALLS.items())
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        "out = {}\n"
        f"for name, (nr, args) in {{{calls}}}.items():\n"
        "    ctypes.set_errno(0)\n"
        "    r = libc.syscall(nr, *args)\n"
        "    out[name] = [r, os.strerror(ctypes.get_errno()) if r == -1 else None]\n"
        "out"
    )
    result = abuse("py ctypes syscalls", "python", code)
    assert result.ok, result.error
    for name, (ret, err) in result.result.items():
        assert ret == -1, f"{name} succeeded: {result.result}"
        assert err in ("Operation not permitted", "Function not implemented"), (name, err)


def test_py_foreign_abi_int80_is_killed(jail):
    code = (
        "import ctypes, mmap\n"
        "m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "m.write(bytes([0xB8, 0x14, 0, 0, 0, 0xCD, 0x80, 0xC3]))  # i386 getpid via int 0x80\n"
        "addr = ctypes.addressof(ctypes.c_char.from_buffer(m))\n"
        "ctypes.CFUNCTYPE(ctypes.c_int)(addr)()"
    )
    result = abuse("py int 0x80 (i386 ABI)", "python", code)
    assert error_of(result, "runtime_error").name in ("Exit", "PermissionError", "OSError")


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("py subprocess", "import subprocess\nsubprocess.run(['/bin/sh', '-c', 'id'])"),
        ("py execv self", "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', '1'])"),
        ("py os.system", "import os\nos.system('id')"),
        ("py os.popen", "import os\nos.popen('id').read()"),
        ("py posix_spawn", "import os, sys\nos.posix_spawn(sys.executable, [sys.executable], {})"),
    ],
)
def test_py_program_starts_refused(jail, case, code):
    error = error_of(abuse(case, "python", code), "runtime_error")
    assert error.name in ("PermissionError", "FileNotFoundError", "OSError"), error
    assert "permitted" in error.message or "not allowed" in error.message, error


def test_py_os_system_is_an_error_not_a_status(jail):
    # os.system would report the refused exec as status 127: the runner makes it an error.
    result = abuse("py os.system status", "python", "import os\nos.system('echo ran')")
    assert "not allowed" in error_of(result, "runtime_error").message
    assert "ran" not in result.stdout


# -- memory, output, results --------------------------------------------------------------


def test_py_allocate_past_the_limit(jail):
    error_of(
        abuse("py bytearray 1 GB", "python", "bytearray(1 << 30)", memory_mb=64), "memory_limit"
    )
    # The child's MemoryError ends the child (status 1), never the parent's result.
    code = (
        "import os\nif os.fork() == 0:\n    bytearray(1 << 30)\n    os._exit(0)\nos.wait()[1] >> 8"
    )
    result = abuse("py fork then allocate", "python", code, memory_mb=64)
    assert result.ok and result.result == 1, result
    assert "memory limit" in result.stderr


def test_js_allocate_past_the_limit(jail):
    code = "return new ArrayBuffer(2 ** 31).byteLength;"
    error_of(abuse("js ArrayBuffer 2 GB", "javascript", code, memory_mb=64), "memory_limit")
    code = "const a = [];\nwhile (true) a.push(new Array(1e6).fill(1.5));"
    result = abuse("js V8 heap growth", "javascript", code, memory_mb=64)
    # memory_limit is right; see test_conventions.py::test_js_memory_limit_v8_heap (host bug)
    error_of(result, "memory_limit", "runtime_error")


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)"),
        ("javascript", "const s = 'x'.repeat(65536);\nwhile (true) console.log(s);"),
        ("python", "import os\nwhile True:\n    os.write(2, b'y' * 65536)"),
    ],
)
def test_flood_stdout(jail, language, code):
    result = abuse(f"{language[:2]} flood output", language, code)
    error_of(result, "timeout")
    assert result.stdout_truncated or result.stderr_truncated
    assert len(result.stdout) <= 1024 * 1024 and len(result.stderr) <= 1024 * 1024


@pytest.mark.parametrize(
    ("case", "language", "code", "types"),
    [
        ("py huge result", "python", "'x' * (40 * 1024 * 1024)", ("output_limit",)),
        ("js huge result", "javascript", "return 'x'.repeat(40 * 1024 * 1024);", ("output_limit",)),
        ("py many small items", "python", "list(range(4_000_000))", ("output_limit",)),
        (
            "js many small items",
            "javascript",
            "return Array.from({ length: 4e6 }, (_, i) => i);",
            ("output_limit",),
        ),
        (
            "py deep nesting",
            "python",
            "x = []\nfor i in range(100_000):\n    x = [x]\nx",
            ("serialization_error",),
        ),
        (
            "js deep nesting",
            "javascript",
            "let x = [];\nfor (let i = 0; i < 1e5; i++) x = [x];\nreturn x;",
            ("serialization_error",),
        ),
        ("py cycle", "python", "d = {}\nd['self'] = d\nd", ("serialization_error",)),
        (
            "js cycle",
            "javascript",
            "const d = {};\nd.self = d;\nreturn d;",
            ("serialization_error",),
        ),
        ("py recursion", "python", "def f(n):\n    return f(n + 1)\nf(0)", ("runtime_error",)),
        (
            "js recursion",
            "javascript",
            "const f = (n) => f(n + 1);\nreturn f(0);",
            ("runtime_error",),
        ),
    ],
)
def test_hostile_results(jail, case, language, code, types):
    # Each case ends by its size, depth or cycle, never by the clock: the longest limit a
    # request may ask for keeps the outcome independent of the machine's speed.
    error_of(abuse(case, language, code, memory_mb=512, timeout_ms=60_000), *types)


def test_concurrent_abuse_does_not_disturb_a_benign_run(jail):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    hog = "x = []\nwhile True:\n    x.append(bytearray(10**6))"
    results: dict = {}
    threads = [
        threading.Thread(target=lambda: results.update(bomb=run_py(bomb, timeout_ms=1500))),
        threading.Thread(target=lambda: results.update(hog=run_py(hog, memory_mb=64))),
        threading.Thread(
            target=lambda: results.update(
                flood=run_js("while (true) console.log('x'.repeat(1000));", timeout_ms=1500)
            )
        ),
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)
    benign = run_py("sum(range(100))", timeout_ms=10000)
    benign_js = run_js("return 2 + 2;", timeout_ms=10000)
    for t in threads:
        t.join()
    for name, r in results.items():
        record(f"concurrent {name}", r)
        assert not r.ok and r.error.type.value != "sandbox_error", (name, r.error)
    assert benign.ok and benign.result == 4950, benign.error
    assert benign_js.ok and benign_js.result == 4, benign_js.error


# -- the result channel ----------------------------------------------------------------------
# A snippet can write into its own result channel (fd 3 in Python, the FIFO in JavaScript):
# whatever it writes can only replace its own result, or be a runtime_error.  Never a
# sandbox_error, which operators alert on.

JS_WRITE_RESULT = (
    "const f = Deno.openSync('/run/result', { write: true });\n"
    "const bytes = new TextEncoder().encode({data});\n"
    "let n = 0;\nwhile (n < bytes.length) n += f.writeSync(bytes.subarray(n));\n"
    "return 1;"
)


@pytest.mark.parametrize(
    ("case", "language", "code"),
    [
        ("py deep brackets", "python", "import os\nos.write(3, b'[' * 10**7)\n1"),
        (
            "py deep header",
            "python",
            "import os\nos.write(3, b'{\"ok\": false, \"error\": ' + b'[' * 10**6 + b'\\n')\n1",
        ),
        (
            "py forged sandbox_error",
            "python",
            'import os\nos.write(3, b\'{"ok": false, "error": {"type": "sandbox_error", '
            '"message": "x"}}\\n\')\nos.close(3)\n1',
        ),
        ("js deep brackets", "javascript", JS_WRITE_RESULT.replace("{data}", "'['.repeat(1e7)")),
        (
            "js forged sandbox_error",
            "javascript",
            JS_WRITE_RESULT.replace(
                "{data}",
                "JSON.stringify({ok: false, error: {type: 'sandbox_error', message: 'x'}}) + "
                "'\\n' + '['.repeat(1e6)",
            ),
        ),
    ],
)
def test_garbage_in_the_result_channel_is_the_snippets_error(jail, case, language, code):
    error = error_of(abuse(case, language, code, timeout_ms=60_000), "runtime_error")
    assert error.name == "ResultChannel", error


# -- nothing one execution does is observable by another ------------------------------------

LOCKS_BETWEEN_PROCESSES = r"""
import fcntl, os, struct
f = open(os.__file__, "rb")  # a read-only runtime file: the same inode in every jail
fcntl.flock(f, fcntl.LOCK_EX)
fcntl.fcntl(f, fcntl.F_SETLK, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0))
r, w = os.pipe()
if os.fork() == 0:  # another process, another open file: as another jail would be
    g = open(os.__file__, "rb")
    try:
        fcntl.flock(g, fcntl.LOCK_EX | fcntl.LOCK_NB)
        seen = "flock free"
    except BlockingIOError:
        seen = "flock held"
    probe = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
    kind = struct.unpack("hhqqi", fcntl.fcntl(g, fcntl.F_GETLK, probe))[0]
    seen += "; posix " + ("free" if kind == fcntl.F_UNLCK else "held")
    os.write(w, seen.encode())
    os._exit(0)
os.wait()
os.read(r, 100).decode()
"""


def test_py_file_locks_on_shared_files_signal_nothing(jail):
    result = abuse("py lock channel", "python", LOCKS_BETWEEN_PROCESSES)
    assert result.ok, result.error
    assert result.result == "flock free; posix free"


def test_py_file_locks_do_not_cross_concurrent_executions(jail):
    holder = (
        "import fcntl, os, time\nf = open(os.__file__, 'rb')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\ntime.sleep(3)\n'held'"
    )
    prober = (
        "import fcntl, os, time\ntime.sleep(1)\nf = open(os.__file__, 'rb')\n"
        "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n'free'"
    )
    results: dict = {}
    thread = threading.Thread(
        target=lambda: results.update(holder=run_py(holder, timeout_ms=20_000))
    )
    thread.start()
    results["prober"] = run_py(prober, timeout_ms=20_000)
    thread.join()
    assert results["holder"].ok, results["holder"].error
    assert results["prober"].ok and results["prober"].result == "free", results["prober"].error


def test_py_locking_own_tmp_files_still_works(jail):
    code = (
        "import sqlite3\ndb = sqlite3.connect('/tmp/app.db')\n"
        "db.execute('create table t (x)')\n"
        "db.executemany('insert into t values (?)', [(i,) for i in range(100)])\n"
        "db.commit()\nother = sqlite3.connect('/tmp/app.db')\n"
        "other.execute('select sum(x) from t').fetchone()[0]"
    )
    result = abuse("py sqlite in /tmp", "python", code)
    assert result.ok and result.result == 4950, result.error


@pytest.mark.parametrize(
    ("case", "code"),
    [
        (
            "py lease",
            "import fcntl, os\nf = open(os.__file__, 'rb')\nfcntl.fcntl(f, 1024, fcntl.F_RDLCK)",
        ),
        (
            "py dnotify",
            "import fcntl, os\nd = os.open('/usr', os.O_RDONLY)\nfcntl.fcntl(d, 1026, 1)",
        ),
        (
            "py inotify",
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "fd = libc.inotify_init1(0)\n"
            "if fd < 0:\n    raise OSError(ctypes.get_errno(), 'inotify_init1 refused')\nfd",
        ),
    ],
)
def test_py_watching_shared_files_is_refused(jail, case, code):
    error = error_of(abuse(case, "python", code), "runtime_error")
    assert "Operation not permitted" in error.message or "refused" in error.message, error


def test_py_mount_tables_show_no_host_path(jail):
    code = r"""
import os, threading
threading.Thread(target=__import__("time").sleep, args=(0.5,)).start()
texts = [open(f"/proc/self/{n}").read() for n in ("mountinfo", "mounts", "mountstats")]
for tid in os.listdir("/proc/self/task"):
    texts.append(open(f"/proc/self/task/{tid}/mountinfo").read())
texts.append(open("/proc/self/root/proc/self/mountinfo").read())
"\n".join(texts)
"""
    result = abuse("py mountinfo", "python", code)
    assert result.ok, result.error
    for host_path in (str(PROJECT), sys.base_prefix, os.path.realpath(sys.base_prefix), "/tmp/"):
        assert host_path not in result.result, host_path
    assert result.result.strip() == ""


# Where the host keeps the checkout, the interpreter (unless it is the distribution's own,
# in /usr) and the service's state (its filters, in the temporary directory).
HOST_LAYOUT = [
    str(PROJECT),
    *{
        p
        for p in (sys.base_prefix, os.path.realpath(sys.base_prefix), sys.prefix)
        if p not in ("/usr", "/usr/local")
    },
    os.path.join(tempfile.gettempdir(), "coderunner-"),
]


def test_py_interpreter_and_service_paths_are_the_jails_own(jail):
    # Every place a snippet learns where its interpreter, modules and files are from.
    code = r"""
import json, os, sys, sysconfig, traceback
def read(path):  # (a non-dumpable process's own /proc files are root's: unreadable as a user)
    try:
        return open(path, "rb").read().decode()
    except OSError:
        return ""
seen = {
    "sys": [sys.executable, sys._base_executable, sys.prefix, sys.exec_prefix, sys.base_prefix,
            sys.base_exec_prefix, *sys.path, os.__file__, json.__file__],
    "sysconfig": [str(v) for v in sysconfig.get_config_vars().values()],
    "paths": list(sysconfig.get_paths().values()),
    "proc": [read("/proc/self/maps"), read("/proc/self/environ"), read("/proc/self/cgroup")],
    "env": [f"{k}={v}" for k, v in os.environ.items()],
    "tree": [os.path.join(d, n) for d, ds, fs in os.walk("/") if not d.startswith("/proc")
             for n in ds + fs if d.count("/") < 4],
}
try:
    json.loads("{")
except ValueError:
    seen["traceback"] = [traceback.format_exc()]
seen
"""
    result = abuse("py host layout", "python", code)
    assert result.ok, result.error
    assert result.result["sys"][0].startswith("/runtime/python/"), result.result["sys"]
    assert sysconfig.get_config_var("prefix") in ("/usr", "/usr/local") or (
        "/runtime/python" in result.result["sysconfig"]
    )
    text = json.dumps(result.result)
    for host_path in HOST_LAYOUT:
        assert host_path not in text, host_path
    assert "LD_LIBRARY_PATH" not in "".join(result.result["env"])


def test_js_interpreter_and_service_paths_are_the_jails_own(jail):
    # The same for JavaScript (both modes: Deno's APIs only where there is Deno).
    code = """
const seen = [new Error("here").stack, String(import.meta.url)];
if (typeof Deno !== "undefined") {
  seen.push(Deno.mainModule, Deno.cwd());
  try { seen.push(Deno.execPath()); } catch (e) { seen.push(String(e)); }
}
try { JSON.parse("{"); } catch (e) { seen.push(e.stack); }
return seen;
"""
    result = abuse("js host layout", "javascript", code)
    assert result.ok, result.error
    text = json.dumps(result.result)
    for host_path in HOST_LAYOUT:
        assert host_path not in text, host_path


def test_js_mount_tables_are_not_readable(jail):
    result = abuse(
        "js mountinfo", "javascript", "return Deno.readTextFileSync('/proc/self/mountinfo');"
    )
    assert "no file access" in error_of(result, "runtime_error").message


def test_py_no_capability_anywhere_not_even_in_the_bounding_set(jail):
    code = (
        "st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines()"
        " if ':\\t' in l)\n"
        "{k: int(st[k], 16) for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')}"
    )
    result = abuse("py capability sets", "python", code)
    assert result.ok, result.error
    assert result.result == dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), 0)
