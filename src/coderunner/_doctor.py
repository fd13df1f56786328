"""`coderunner doctor`: each isolation layer, checked from inside a real jail."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from ._errors import CodeRunnerError
from ._models import ExecutionRequest, Language
from ._sandbox.cgroup import CgroupManager
from ._settings import Settings

# Runs inside the jail and reports what it can see of its own confinement.
PROBE = r"""
import os, socket
status = dict(
    l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l
)
def net_blocked():
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1).close()
        return False
    except OSError:
        return True
def exec_blocked():
    try:
        os.execv("/bin/true", ["true"])
    except OSError:
        return True
    return False
{
    "ns": {
        n: os.readlink(f"/proc/self/ns/{n}") for n in ("user", "pid", "net", "mnt", "ipc", "uts")
    },
    "pid": os.getpid(),
    "uid_map": open("/proc/self/uid_map").read().split(),
    "seccomp": status["Seccomp"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "cap_eff": status["CapEff"].strip(),
    "cap_sets": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    "mount_tables": sum(len(open(f"/proc/self/{n}").read()) for n in ("mountinfo", "mounts")),
    "net_blocked": net_blocked(),
    "exec_blocked": exec_blocked(),
    "host_files_visible": [p for p in paths if os.path.exists(p)],
    "hostname": os.uname().nodename,
    "rlimit_as": __import__("resource").getrlimit(__import__("resource").RLIMIT_AS)[0],
    "rlimit_nproc": __import__("resource").getrlimit(__import__("resource").RLIMIT_NPROC)[0],
}
"""

# Directories every jail has of its own (a host path equal to one proves nothing).
JAIL_OWN_DIRS = ("/", "/tmp", "/dev", "/proc", "/run")

HELP_USERNS = (
    "unprivileged user namespaces are disabled. Enable them: "
    "`sysctl -w kernel.unprivileged_userns_clone=1` (Debian), "
    "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 23.10+), "
    "or run the container with a seccomp profile that allows clone/unshare "
    "(Docker: --security-opt seccomp=unconfined, or a profile allowing CLONE_NEWUSER)"
)


@dataclass
class Check:
    """One isolation layer or prerequisite."""

    name: str
    ok: bool
    detail: str
    required: bool = True


@dataclass
class Report:
    """All checks; ``ok`` when every required check passed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    def add(self, name: str, ok: bool, detail: str, required: bool = True) -> None:
        self.checks.append(Check(name, ok, detail, required))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def render(self) -> str:
        lines = []
        for c in self.checks:
            mark = "active " if c.ok else ("MISSING" if c.required else "off    ")
            lines.append(f"  [{mark}] {c.name:<28} {c.detail}")
        verdict = (
            "The sandbox is fully active: snippets can run."
            if self.ok
            else "The sandbox CANNOT fully isolate snippets on this host: fix what is MISSING."
        )
        return "coderunner doctor\n" + "\n".join(lines) + "\n" + verdict


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, env={})
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return f"unavailable ({exc})"


async def _probe(settings: Settings, marker: str) -> tuple[dict[str, Any] | None, str]:
    """Run the probe and the JavaScript checks in real jails; `marker`: a file planted in
    the host's temporary directory, which no jail may see."""
    from ._engine import Engine

    async with Engine(settings, warm=()) as engine:
        host_paths = ["/etc/passwd", "/etc/hostname", "/home", marker]
        if os.getcwd() not in JAIL_OWN_DIRS:  # the jail has its own /tmp (and /)
            host_paths.append(os.getcwd())
        host_paths += [p for p in sys.path if "site-packages" in p]
        home = os.path.expanduser("~")
        runtime = os.path.realpath(sys.base_prefix)  # the interpreter may live in $HOME
        with contextlib.suppress(OSError):
            host_paths += [
                os.path.join(home, e)
                for e in sorted(os.listdir(home))[:20]
                if not runtime.startswith(os.path.join(home, e))
            ]
        result = await engine.execute(
            ExecutionRequest(
                language=Language.PYTHON,
                code=PROBE,
                inputs={"paths": host_paths},
                timeout_ms=20_000,
            )
        )
        isolate = settings.javascript_isolation == "isolate"
        js = await engine.execute(
            ExecutionRequest(
                language=Language.JAVASCRIPT,
                # Isolate mode: a fresh isolate in a jailed workerd, which has no Deno.
                code="return [typeof WebSocketPair, typeof Deno]"
                if isolate
                else "return [typeof Deno, Deno.version.deno]",
                timeout_ms=20_000,
            )
        )
        ts = await engine.execute(
            ExecutionRequest(
                language=Language.TYPESCRIPT,
                code="const v: string = Deno.version.typescript;\nreturn v;",
                timeout_ms=20_000,
            )
        )
    if not result.ok:
        return None, result.error.message if result.error else "probe failed"
    if not js.ok:
        js_detail = f"failed: {js.error.message}"  # type: ignore[union-attr]
    elif not ts.ok:
        js_detail = f"failed: Deno {js.result[1]} runs JavaScript but not TypeScript: "
        js_detail += ts.error.message  # type: ignore[union-attr]
    elif isolate:
        from ._runtimes.workerd import WORKERD_VERSION

        ok = js.result == ["function", "undefined"]
        js_detail = (
            f"isolate mode: workerd {WORKERD_VERSION}, a fresh V8 isolate per execution "
            f"(TypeScript on Deno: {ts.result})"
            if ok
            else f"failed: isolate mode ran the probe in something else: {js.result}"
        )
    else:
        js_detail = f"Deno {js.result[1]} (TypeScript {ts.result})"
    return result.result, js_detail


def run_checks(settings: Settings | None = None) -> Report:
    """Run every check (starts real jails) and return the report."""
    settings = settings or Settings.from_env(python_pool_size=1, javascript_pool_size=1)
    report = Report()
    bwrap = shutil.which("bwrap")
    report.add(
        "bubblewrap",
        bwrap is not None,
        _version(["bwrap", "--version"]) if bwrap else "not installed: apt-get install bubblewrap",
    )
    try:
        import pyseccomp  # noqa: F401

        report.add("libseccomp", True, "loaded through pyseccomp")
    except Exception as exc:
        report.add("libseccomp", False, f"{exc}: install libseccomp2")
    cgroups = CgroupManager(f"coderunner-doctor-{os.getpid()}")
    root = os.geteuid() == 0
    cgroup_problem = cgroups.problem
    report.add(
        "cgroup memory+pids",
        cgroups.available,
        ("v2 (delegated)" if cgroups.v2 else "v1") + " controllers writable"
        if cgroups.available
        else f"{cgroups.problem}; {_cgroup_hint(root, settings.cgroups)}",
        # off is allowed as an unprivileged user (rlimits), unless cgroups=required
        required=settings.cgroups == "required",
    )
    cgroups.close()
    report.add("python runtime", True, f"CPython {sys.version.split()[0]} ({sys.executable})")
    _add_service_user(report, root)
    if bwrap is None:
        _add_process_limit(report, settings, cgroups.available, cgroup_problem, root, None)
        return report
    fd, marker = tempfile.mkstemp(prefix="coderunner-doctor-marker-")
    os.close(fd)
    try:
        seen, js_detail = asyncio.run(_probe(settings, marker))
    except CodeRunnerError as exc:
        report.add("jail", False, str(exc))
        _add_process_limit(report, settings, cgroups.available, cgroup_problem, root, None)
        return report
    finally:
        os.unlink(marker)
    if seen is None:
        report.add("jail", False, f"{js_detail}. If namespaces are refused: {HELP_USERNS}")
        _add_process_limit(report, settings, cgroups.available, cgroup_problem, root, None)
        return report
    _add_process_limit(report, settings, cgroups.available, cgroup_problem, root, seen)
    host_ns = {n: os.readlink(f"/proc/self/ns/{n}") for n in seen["ns"]}
    names = {
        "user": "user namespace",
        "pid": "pid namespace",
        "net": "network namespace",
        "mnt": "mount namespace",
        "ipc": "ipc namespace",
        "uts": "uts namespace",
    }
    for key, label in names.items():
        fresh = seen["ns"][key] != host_ns[key]
        report.add(label, fresh, "own namespace" if fresh else "SHARED with the host")
    report.add("seccomp filter", seen["seccomp"] == "2", f"Seccomp mode {seen['seccomp']}")
    report.add("no_new_privs", seen["no_new_privs"] == "1", f"NoNewPrivs {seen['no_new_privs']}")
    report.add("capabilities dropped", int(seen["cap_eff"], 16) == 0, f"CapEff {seen['cap_eff']}")
    sets = seen["cap_sets"]
    report.add(
        "bounding set empty",
        all(int(v, 16) == 0 for v in sets.values()),
        "CapBnd, CapPrm, CapInh, CapAmb all 0"
        if all(int(v, 16) == 0 for v in sets.values())
        else ", ".join(f"{k} {v}" for k, v in sets.items()),
    )
    report.add(
        "mount tables hidden",
        seen["mount_tables"] == 0,
        "/proc/self/mountinfo and mounts are empty (no host paths)"
        if seen["mount_tables"] == 0
        else f"{seen['mount_tables']} bytes of mount table readable",
    )
    report.add("no network", seen["net_blocked"], "connect() fails")
    report.add("no program starts", seen["exec_blocked"], "execve() refused")
    visible = seen["host_files_visible"]
    report.add(
        "host files hidden",
        not visible,
        "only runtime files are mounted" if not visible else f"visible: {', '.join(visible)}",
    )
    memory_cgroup = (
        f"memory cgroup per execution ({'both runtimes' if cgroups.v2 else 'JavaScript'}), and "
        if cgroups.available
        else ""
    )
    report.add(
        "memory limit",
        seen["rlimit_as"] > 0,
        f"{memory_cgroup}rlimits: Python RLIMIT_AS ({seen['rlimit_as'] // (1024 * 1024)} MiB "
        "in a job of the default memory_mb); JavaScript: V8 heap limit and RLIMIT_DATA"
        + ("" if cgroups.available else "; no memory cgroup: " + str(cgroup_problem))
        if seen["rlimit_as"] > 0
        else "no RLIMIT_AS in a Python job: memory is not limited",
    )
    report.add("javascript runtime", js_detail.startswith(("Deno", "isolate mode")), js_detail)
    return report


def _cgroup_hint(root: bool, mode: str) -> str:
    """What happens without cgroups, for the doctor's line."""
    if mode == "required":
        return "cgroups=required: the service refuses to start"
    if root:
        return "as root the service refuses to start (no process limit without it)"
    return "falling back to rlimits (cgroups=auto)"


def _add_service_user(report: Report, root: bool) -> None:
    """Which host user the jails run as (a bwrap without setuid maps the jail to it)."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "no name"
    report.add(
        "unprivileged service user",
        not root,
        f"uid {uid} ({name}): every jailed process is this user on the host, "
        "with no capability there"
        if not root
        else "the service runs as root, and the jail's user maps to root on the host; "
        "it has no capabilities, but running as an unprivileged user adds a layer "
        "(see docs/running-unprivileged.md)",
        required=False,
    )


def _add_process_limit(
    report: Report,
    settings: Settings,
    cgroup: bool,
    problem: str | None,
    root: bool,
    seen: dict[str, Any] | None,
) -> None:
    """The process-count wall: a pids cgroup, else RLIMIT_NPROC (which binds non-root)."""
    if cgroup:
        report.add("process limit", True, f"pids cgroup: pids.max per execution "
                   f"({settings.max_processes} + the runtime's own threads)")  # fmt: skip
        return
    if root:
        report.add(
            "process limit",
            False,
            "running as root without a pids cgroup: RLIMIT_NPROC does not bind root; "
            f"run as an unprivileged user or give the service a writable pids cgroup ({problem})",
        )
        return
    nproc = seen["rlimit_nproc"] if seen else None
    ceiling = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    bounded = nproc is not None and nproc not in (resource.RLIM_INFINITY, -1)
    report.add(
        "process limit",
        bounded,
        f"RLIMIT_NPROC {nproc} in a jail (the kernel counts the tasks of the jail's user "
        "namespace; a Python fork server's children share one count); all processes of "
        f"uid {os.geteuid()} together: at most "
        + ("unlimited" if ceiling in (resource.RLIM_INFINITY, -1) else str(ceiling))
        + " (the service's own RLIMIT_NPROC; systemd LimitNPROC=)"
        if bounded
        else "no jail started, so RLIMIT_NPROC could not be checked"
        if seen is None
        else "no RLIMIT_NPROC in a jail: processes are not limited",
    )
