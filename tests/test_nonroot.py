"""The real server, run as an unprivileged user: it works and the jail holds.

As root (CI), the test creates a system user (`SERVICE_USER`) when it is missing, gives
it a data directory of its own and starts `coderunner serve` as that user with
`setpriv` (which execs, so the pid the test holds IS the server and signals reach it).
Run as any other user, the test runs the server as itself: it is unprivileged already.

The interpreter, the virtualenv and the source tree must be readable by that user.  A
checkout or Python under a private directory (pyenv in /root, mode 0700) is made
reachable without touching the host: the server starts in a private mount namespace in
which each blocking directory is replaced by an empty tmpfs holding binds of exactly the
directories the server needs (`reachable_argv`).  Nothing else of the blocked directory
is visible to the server.

Abuse cases run only after `jail` has confirmed the jail active over HTTP.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from _server import (
    CODERUNNER,
    SMALL_POOLS,
    ServerProcess,
    descendants,
    process_identity,
    running_server,
)
from conftest import JAIL_PROBE

PROJECT = Path(__file__).resolve().parents[1]
SERVICE_USER = "coderunner-ci"
SECRET = "coderunner-nonroot-secret-41d7"  # in the server's environment, never a jail's
MAX_PROCESSES = 16  # the default setting
PY_OWN_THREADS = 2  # ForkedWorker.own_threads: what a Python child may have on top


@dataclass(frozen=True)
class ServiceUser:
    """Who the server runs as, and the argv prefix that makes a command run as them."""

    name: str
    uid: int
    gid: int
    prefix: tuple[str, ...]
    data_dir: str


# -- the user and what it can reach ---------------------------------------------------------


def ensure_user(name: str) -> pwd.struct_passwd:
    """The system user `name`, created when missing (no home, no login shell)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return pwd.getpwnam(name)


def can_traverse(path: str, uid: int, groups: set[int]) -> bool:
    """Whether `uid` (with `groups`) may enter the directory `path` (mode bits only)."""
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def needed_dirs() -> list[str]:
    """The directories the server reads: the interpreter, the virtualenv, the sources."""
    import deno  # type: ignore[import-untyped]

    paths = [
        os.path.realpath(sys.base_prefix),
        os.path.realpath(sys.prefix),
        str(PROJECT / "src"),
        str(PROJECT / "tests"),  # the abuse suite runs as the user too
        os.path.dirname(os.path.realpath(deno.find_deno_bin())),
    ]
    return sorted(set(paths))


def blockers(paths: list[str], uid: int, groups: set[int]) -> dict[str, list[str]]:
    """Topmost directory the user cannot enter → the needed paths below it."""
    found: dict[str, list[str]] = {}
    for path in paths:
        parts = Path(path).parts
        for i in range(2, len(parts)):  # every ancestor below "/", not the path itself
            ancestor = str(Path(*parts[:i]))
            if not can_traverse(ancestor, uid, groups):
                found.setdefault(ancestor, []).append(path)
                break
    return found


def reachable_argv(blocked: dict[str, list[str]], stage: str) -> list[str]:
    """An argv prefix (run as root) that starts the command in a private mount namespace
    where every blocked directory is a tmpfs holding binds of the needed paths only."""
    lines = ["set -e"]
    n = 0
    for top, paths in blocked.items():
        for path in paths:  # bind first: the path is unreachable once `top` is covered
            lines += [f"mkdir -p {stage}/{n}", f"mount --bind '{path}' {stage}/{n}"]
            n += 1
        lines.append(f"mount -t tmpfs -o mode=0755 coderunner-test '{top}'")
    n = 0
    for paths in blocked.values():
        for path in paths:
            lines += [f"mkdir -p '{path}'", f"mount --move {stage}/{n} '{path}'"]
            n += 1
    lines.append('exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            "\n".join(lines), "sh"]  # fmt: skip


@pytest.fixture(scope="module")
def service_user() -> Iterator[ServiceUser]:
    """The unprivileged user the server runs as, with a data directory of its own."""
    data_dir = tempfile.mkdtemp(prefix="coderunner-nonroot-data-")
    stage = tempfile.mkdtemp(prefix="coderunner-nonroot-stage-")
    try:
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            yield ServiceUser(me.pw_name, me.pw_uid, me.pw_gid, (), data_dir)
            return
        entry = ensure_user(SERVICE_USER)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        os.chmod(data_dir, 0o700)
        groups = set(os.getgrouplist(entry.pw_name, entry.pw_gid))
        blocked = blockers(needed_dirs(), entry.pw_uid, groups)
        prefix = reachable_argv(blocked, stage) if blocked else []
        prefix += [
            "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups",
            "--",
        ]  # fmt: skip
        user = ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid, tuple(prefix), data_dir)
        # The user must be able to import the service and start Deno: else say why, here.
        check = run_as(user, [sys.executable, "-c", "import coderunner, deno; print('ok')"])
        assert check.returncode == 0 and "ok" in check.stdout, (
            f"{user.name} cannot run the service from {sys.prefix} (blocked: {blocked}): "
            f"{check.stdout}{check.stderr}"
        )
        yield user
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)


def user_env(user: ServiceUser, **extra: str) -> dict[str, str]:
    """The environment of the service: nothing of the test's but PATH."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": user.data_dir,
        "LANG": "C.UTF-8",
        "CODERUNNER_DATA_DIR": user.data_dir,
        **extra,
    }


def run_as(
    user: ServiceUser, argv: list[str], cwd: str = "/", **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run a command as the service user; its output is returned."""
    return subprocess.run(
        [*user.prefix, *argv],
        capture_output=True, text=True, timeout=600, env=user_env(user, **extra), cwd=cwd,
    )  # fmt: skip


# -- the server --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(service_user: ServiceUser) -> Iterator[ServerProcess]:
    with running_server(
        *SMALL_POOLS,
        prefix=service_user.prefix,
        env=user_env(service_user, CODERUNNER_NONROOT_SECRET=SECRET),
    ) as srv:
        yield srv


def execute(server: ServerProcess, language: str, code: str, **fields: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.base_url}/v1/execute",
        json={"language": language, "code": code, **fields},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    # Never the service's own fault: sandbox_error is what operators alert on.
    assert (body.get("error") or {}).get("type") != "sandbox_error", body
    return body


def error_type(body: dict[str, Any]) -> str:
    assert not body["ok"], f"abuse succeeded: {body}"
    return str(body["error"]["type"])


def follow_up(server: ServerProcess) -> None:
    """The service survives: a plain run in each language right after an abuse case."""
    assert execute(server, "python", "sum(range(10))")["result"] == 45
    assert execute(server, "javascript", "return [1, 2, 3].length;")["result"] == 3


def status_ids(pid: int) -> tuple[list[int], str]:
    """(real, effective, saved, fs uids) and CapEff of a live process, from /proc."""
    fields = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return [int(u) for u in fields["Uid"].split()], fields["CapEff"].strip()


@pytest.fixture(scope="module")
def jail(server: ServerProcess) -> dict[str, Any]:
    """Confirms the jail is active over HTTP before any abuse case; stops the run otherwise."""
    body = execute(server, "python", JAIL_PROBE)
    try:
        assert body["ok"], body
        seen: dict[str, Any] = body["result"]
        assert seen["seccomp"] == "2", seen
        assert seen["no_new_privs"] == "1", seen
        assert int(seen["cap_eff"], 16) == 0 and int(seen["cap_bnd"], 16) == 0, seen
        assert seen["pid"] < 10, seen
        assert not seen["host_root_visible"], seen
    except AssertionError as exc:  # a fork bomb outside the jail takes the machine down
        pytest.exit(f"the jail is not active as {server}, refusing abuse cases: {exc}", 3)
    return seen


# -- it runs, as that user -----------------------------------------------------------------


def test_the_server_and_every_jail_run_as_the_unprivileged_user(
    server: ServerProcess, service_user: ServiceUser
) -> None:
    uids, cap_eff = status_ids(server.pid)
    assert uids == [service_user.uid] * 4 and service_user.uid != 0, uids
    assert int(cap_eff, 16) == 0, cap_eff
    # Warm jails (bwrap, fork servers, Deno) are up once the pools are filled: none is root.
    execute(server, "python", "1")
    below = descendants(server.pid)
    assert below, "no jailed process below the server"
    for pid, _start, name in below:
        try:
            uids, _ = status_ids(pid)
        except OSError:
            continue  # gone meanwhile
        assert set(uids) == {service_user.uid}, (pid, name, uids)


def test_python_javascript_and_typescript_run(server: ServerProcess) -> None:
    py = execute(server, "python", "import math\nprint('hi')\nmath.factorial(5)")
    assert py["ok"] and py["result"] == 120 and py["stdout"] == "hi\n", py
    js = execute(server, "javascript", "console.log('hi');\nreturn [1, 2].map((x) => x * 2);")
    assert js["ok"] and js["result"] == [2, 4] and js["stdout"] == "hi\n", js
    ts = execute(server, "typescript", "const n: number = 21;\nreturn n * 2;")
    assert ts["ok"] and ts["result"] == 42, ts


def test_doctor_reports_each_layer(service_user: ServiceUser) -> None:
    out = run_as(service_user, [CODERUNNER, "doctor", "--json"])
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    for layer in (
        "bubblewrap", "libseccomp", "user namespace", "pid namespace", "network namespace",
        "mount namespace", "ipc namespace", "uts namespace", "seccomp filter", "no_new_privs",
        "capabilities dropped", "bounding set empty", "mount tables hidden", "no network",
        "no program starts", "host files hidden", "process limit", "memory limit",
        "unprivileged service user", "javascript runtime",
    ):  # fmt: skip
        assert checks[layer]["ok"], checks[layer]
    assert (
        f"uid {service_user.uid} ({service_user.name})"
        in (checks["unprivileged service user"]["detail"])
    )
    cgroup = checks["cgroup memory+pids"]
    if cgroup["ok"]:  # a delegated cgroup: the kernel's counters are the walls
        assert "pids cgroup" in checks["process limit"]["detail"]
    else:  # rlimits: doctor says so, and why the cgroup is off
        assert not cgroup["required"] and "rlimits" in cgroup["detail"], cgroup
        limit = f"RLIMIT_NPROC {MAX_PROCESSES + PY_OWN_THREADS} in a jail"
        assert limit in checks["process limit"]["detail"], checks["process limit"]
        assert "no memory cgroup" in checks["memory limit"]["detail"]
    text = run_as(service_user, [CODERUNNER, "doctor"])
    assert text.returncode == 0 and "fully active" in text.stdout, text.stdout


def test_cgroups_required_fails_closed_without_a_cgroup(service_user: ServiceUser) -> None:
    doctor = run_as(service_user, [CODERUNNER, "doctor", "--json"], CODERUNNER_CGROUPS="required")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    run = run_as(
        service_user, [CODERUNNER, "run", "-l", "python", "-c", "print(6 * 7)"],
        CODERUNNER_CGROUPS="required",
    )  # fmt: skip
    if checks["cgroup memory+pids"]["ok"]:
        assert run.returncode == 0 and "42" in run.stdout, run.stdout + run.stderr
    else:  # nothing runs, and both say why
        assert doctor.returncode == 1 and checks["cgroup memory+pids"]["required"]
        assert run.returncode != 0 and "42" not in run.stdout
        assert "cgroups=required" in run.stderr, run.stderr


# -- the jail holds as non-root -------------------------------------------------------------


def test_no_network(jail: dict[str, Any], server: ServerProcess) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    hits: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except OSError:
                continue
            hits.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        code = (
            "import socket\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    r = 'connected'\nexcept OSError as e:\n    r = type(e).__name__\nr"
        )
        py = execute(server, "python", code)
        assert py["ok"] and py["result"] != "connected", py
        js = execute(server, "javascript", f"await fetch('http://127.0.0.1:{port}/');")
        assert error_type(js) == "runtime_error", js
    finally:
        stop.set()
        thread.join(2)
        listener.close()
    assert hits == [], hits
    follow_up(server)


def test_host_files_hidden(
    jail: dict[str, Any], server: ServerProcess, service_user: ServiceUser
) -> None:
    # The service user's own files too: the jail's user is that user on the host.
    paths = ["/etc/passwd", "/etc/shadow", "/home", str(PROJECT / "pyproject.toml"),
             service_user.data_dir, "/sys/fs/cgroup", os.path.realpath(sys.prefix)]  # fmt: skip
    code = (
        "import os\nfound = {}\n"
        f"for p in {paths!r}:\n"
        "    try:\n"
        "        found[p] = os.listdir(p) if os.path.isdir(p) else open(p).read(64)\n"
        "    except OSError:\n"
        "        pass\n"
        "found"
    )
    py = execute(server, "python", code)
    assert py["ok"] and py["result"] == {}, py
    js = execute(server, "javascript", "return await Deno.readTextFile('/etc/passwd');")
    assert error_type(js) == "runtime_error", js
    follow_up(server)


def test_environment_hidden(jail: dict[str, Any], server: ServerProcess) -> None:
    code = (
        "import os\nseen = {'env': dict(os.environ)}\n"
        "for p in ['/proc/1/environ', '/proc/self/environ']:\n"
        "    try:\n"
        "        seen[p] = open(p, 'rb').read().decode('latin-1')\n"
        "    except OSError:\n"
        "        seen[p] = None\n"
        "seen"
    )
    py = execute(server, "python", code)
    assert py["ok"], py
    assert set(py["result"]["env"]) <= {"LANG", "HOME", "PATH", "PWD"}, py["result"]
    text = json.dumps(py["result"])
    assert SECRET not in text and "CODERUNNER_" not in text, text
    js = execute(server, "javascript", "return { ...process.env };")
    assert js["ok"] and js["result"] == {}, js


FORK_UNTIL_REFUSED = (
    "import os, time\nn = 0\nerr = None\n"
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
FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"


def test_process_count_is_limited(jail: dict[str, Any], server: ServerProcess) -> None:
    body = execute(server, "python", FORK_UNTIL_REFUSED, timeout_ms=10_000)
    assert body["ok"], body
    count, err = body["result"]
    # RLIMIT_NPROC (or the pids cgroup) stops it below the limit; 500 without one.
    assert 0 < count < MAX_PROCESSES + PY_OWN_THREADS and err == "BlockingIOError", body
    follow_up(server)


def test_a_fork_bomb_is_contained(jail: dict[str, Any], server: ServerProcess) -> None:
    follow_up(server)
    before = len(descendants(server.pid))  # the warm pools, filled
    body = execute(server, "python", FORK_BOMB, timeout_ms=1500)
    assert error_type(body) in ("timeout", "runtime_error"), body
    follow_up(server)
    # Nothing of the bomb outlives its execution: the jail's pid namespace went with it
    # (teardown after the answer may take a moment; the bound is generous, not a speed).
    deadline = time.monotonic() + 30
    while len(descendants(server.pid)) > before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(descendants(server.pid)) <= before + 2, descendants(server.pid)


def test_memory_limit(jail: dict[str, Any], server: ServerProcess) -> None:
    py = execute(server, "python", "bytearray(1 << 30)", memory_mb=64)
    assert error_type(py) == "memory_limit", py
    grow = execute(server, "python", "x = []\nwhile True:\n    x.append(bytearray(10**6))",
                   memory_mb=64)  # fmt: skip
    assert error_type(grow) == "memory_limit", grow
    js = execute(server, "javascript", "return new ArrayBuffer(2 ** 31).byteLength;", memory_mb=64)
    assert error_type(js) == "memory_limit", js
    follow_up(server)


def test_time_limit(jail: dict[str, Any], server: ServerProcess) -> None:
    py = execute(server, "python", "while True:\n    pass", timeout_ms=500)
    assert error_type(py) == "timeout", py
    js = execute(server, "javascript", "while (true) {}", timeout_ms=500)
    assert error_type(js) == "timeout", js
    follow_up(server)


def test_the_whole_abuse_suite_holds_as_the_user(
    jail: dict[str, Any], service_user: ServiceUser
) -> None:
    """Every hostile snippet of tests/sandbox (through the Python API, in that process's
    own engine) as the unprivileged user; that suite confirms its jail before any case."""
    out = run_as(
        service_user,
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/sandbox/test_abuse.py", "tests/sandbox/test_isolation.py"],
        cwd=str(PROJECT),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-2000:]


def test_the_service_survived(
    jail: dict[str, Any], server: ServerProcess, service_user: ServiceUser
) -> None:
    """Last: after every abuse case the same server process answers and runs snippets,
    then stops when asked and leaves no process of its user behind."""
    assert server.process.poll() is None
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200
    follow_up(server)
    server.signal(signal.SIGTERM)
    assert server.process.wait(30) in (0, -signal.SIGTERM), server.output()[-5000:]
    if os.geteuid() == 0:  # the user is the service's alone: nothing of it may be left
        deadline = time.monotonic() + 30
        while user_processes(service_user.uid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert user_processes(service_user.uid) == [], user_processes(service_user.uid)


def user_processes(uid: int) -> list[int]:
    """Live processes whose real uid is `uid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                uids, _ = status_ids(int(entry))
            except (OSError, KeyError):
                continue
            if uids[0] == uid and process_identity(int(entry)) is not None:
                found.append(int(entry))
    return found
