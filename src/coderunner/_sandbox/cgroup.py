"""Per-execution cgroups: a hard process count (pids) and memory limit (memory).

Used when the host lets this service create cgroups (cgroup v1 controllers mounted
writable, or a cgroup v2 subtree with the controllers delegated).  Each worker gets a
group of its own; the group is emptied and removed when the worker is done.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("pids", "memory")

# Moves the shell into each cgroup named before "--", then becomes the command after it.
_JOIN_CGROUP = (
    'unset PWD OLDPWD; while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; '
    'shift; exec "$@"'
)
_managers = itertools.count(1)  # several engines in one process get separate trees
# Where the service's own processes move in a delegated cgroup v2 group (see setup_v2_base).
SERVICE_LEAF = "service"


def refusal(available: bool, problem: str | None, mode: str, root: bool) -> str | None:
    """Why the service must not start with the cgroups it got, or None (fail closed).

    `mode`: the `cgroups` setting (see `_settings.CGROUP_MODES`); `root`: whether the
    service runs as root, whom the kernel exempts from RLIMIT_NPROC.
    """
    if available:
        return None
    if mode == "required":
        return (
            f"cgroups=required, but no pids and memory cgroup can be created ({problem}); "
            "give the service a delegated cgroup v2 group (systemd: Delegate=yes) or set "
            "cgroups=auto to fall back to rlimits (see `coderunner doctor`)"
        )
    if root:
        return (
            "running as root without a writable pids cgroup, so a fork bomb could not be "
            f"contained ({problem}); run the service as an unprivileged user or give it a "
            "cgroup (see `coderunner doctor`)"
        )
    return None


def join_command(slot: CgroupSlot) -> list[str]:
    """An argv prefix that joins `slot` and then execs the rest of the argv.

    Cgroups are joined in one of two ways, and each for a reason: a process the host
    starts (a Deno jail) joins before it runs, through this prefix, so that nothing it
    forks escapes; a fork-server child is forked by the jail itself and is moved in by
    the host (`CgroupSlot.add`) when it reports READY, before it gets its job.
    """
    return ["/bin/sh", "-c", _JOIN_CGROUP, "sh", *slot.procs_files(), "--"]


def parse_own_cgroups(text: str) -> dict[str, str]:
    """controller (or '' for v2) → path, from the text of /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            paths[name] = path
    return paths


def parse_cgroup_mounts(text: str) -> dict[str, str]:
    """controller (or '' for v2) → mount point, from the text of /proc/self/mountinfo."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fstype, _source, options = [*right.split(), "", "", ""][:3]
        mount_point = left.split()[4]
        if fstype == "cgroup2":
            found.setdefault("", mount_point)
        elif fstype == "cgroup":
            for opt in options.split(","):
                if opt in CONTROLLERS:
                    found.setdefault(opt, mount_point)
    return found


@dataclass
class CgroupSlot:
    """The cgroup directories of one worker (one per controller, or one for v2)."""

    dirs: dict[str, Path]
    v2: bool

    def procs_files(self) -> list[str]:
        """The cgroup.procs files a process writes its pid to, to join this slot."""
        return [str(d / "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def add(self, pid: int) -> None:
        """Move a running process into this slot."""
        for procs in self.procs_files():
            with open(procs, "w") as f:
                f.write(str(pid))

    def set_memory_limit(self, limit_bytes: int) -> None:
        if "memory" not in self.dirs:
            return
        name = "memory.max" if self.v2 else "memory.limit_in_bytes"
        (self.dirs["memory"] / name).write_text(str(limit_bytes))
        if self.v2:
            with contextlib.suppress(OSError):
                (self.dirs["memory"] / "memory.swap.max").write_text("0")

    def memory_exceeded(self) -> bool:
        if "memory" not in self.dirs:
            return False
        try:
            if self.v2:
                events = (self.dirs["memory"] / "memory.events").read_text()
                return any(
                    line.split()[0] in ("oom", "oom_kill") and int(line.split()[1]) > 0
                    for line in events.splitlines()
                )
            return int((self.dirs["memory"] / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError, IndexError):
            return False

    def kill_all(self) -> None:
        for d in dict.fromkeys(self.dirs.values()):
            try:
                pids = (d / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> bool:
        """Remove the directories; False while processes are still in them."""
        ok = True
        for d in dict.fromkeys(self.dirs.values()):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                ok = False
        return ok


def setup_v2_base(parent: Path, name: str) -> Path:
    """Create `parent/name`, a cgroup v2 group whose children get pids and memory.

    `parent` is this service's own group: delegated to it (systemd `Delegate=yes`) it
    holds the service's processes.  cgroup v2 lets a group hand controllers down only
    while it holds no process itself ("no internal processes"), so the processes move
    first into a leaf beside the workers (`SERVICE_LEAF`), then the controllers are
    enabled.  OSError when the group is not this service's to change.
    """
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    if not all(c in enabled for c in CONTROLLERS):
        leaf = parent / SERVICE_LEAF
        leaf.mkdir(exist_ok=True)
        for pid in (parent / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                (leaf / "cgroup.procs").write_text(pid)
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
    base = parent / name
    base.mkdir(exist_ok=True)
    (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
    return base


class CgroupManager:
    """Creates worker cgroups below one directory owned by this service."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"coderunner-{os.getpid()}-{next(_managers)}"
        self.bases: dict[str, Path] = {}
        self.v2 = False
        self.problem: str | None = None
        self._counter = 0
        try:
            self._setup()
        except OSError as exc:
            self.problem = f"cannot create cgroups: {exc}"
            self.bases = {}

    @property
    def available(self) -> bool:
        return bool(self.bases)

    def _setup(self) -> None:
        mounts = parse_cgroup_mounts(Path("/proc/self/mountinfo").read_text())
        own = parse_own_cgroups(Path("/proc/self/cgroup").read_text())
        if all(c in mounts for c in CONTROLLERS):
            bases = {}
            for c in CONTROLLERS:
                base = Path(mounts[c] + own.get(c, "/")) / self.name
                base.mkdir(exist_ok=True)
                bases[c] = base
            if (bases["pids"] / "pids.max").exists():
                self.bases = bases
                return
        if "" in mounts:
            parent = Path(mounts[""] + own.get("", "/"))
            controllers = (parent / "cgroup.controllers").read_text().split()
            if not all(c in controllers for c in CONTROLLERS):
                self.problem = (
                    f"cgroup v2 group {own.get('', '/')} has no pids and memory controllers "
                    "delegated (systemd: Delegate=yes)"
                )
                return
            base = setup_v2_base(parent, self.name)
            self.bases = {c: base for c in CONTROLLERS}
            self.v2 = True
            return
        self.problem = "no writable cgroup hierarchy with the pids and memory controllers"

    def create(self, max_processes: int, memory: bool = True) -> CgroupSlot:
        """A new slot with a pids limit; ``memory=False`` skips the memory controller
        (v1), whose groups are costly to create, where an rlimit bounds memory already."""
        self._counter += 1
        name = f"w{self._counter}"
        if self.v2:
            d = self.bases["pids"] / name
            d.mkdir()
            dirs = {c: d for c in CONTROLLERS}
        else:
            dirs = {}
            for c, base in self.bases.items():
                if c == "memory" and not memory:
                    continue
                (base / name).mkdir()
                dirs[c] = base / name
        (dirs["pids"] / "pids.max").write_text(str(max_processes))
        return CgroupSlot(dirs, self.v2)

    def close(self) -> None:
        for base in dict.fromkeys(self.bases.values()):
            for child in base.iterdir() if base.exists() else ():
                if child.is_dir():
                    CgroupSlot({"x": child}, self.v2).kill_all()
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                base.rmdir()
