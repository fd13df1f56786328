"""The sandbox policy as data: namespaces, mounts, syscalls, limits, permissions.

Everything is closed by default.  Each relaxation is a named `Relaxation` that says
what it grants and why.  `bwrap.py` turns the policy into a bubblewrap argv and
`seccomp.py` into BPF filters; nothing else decides what a jail may do.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import msgspec

from .._jail import protocol

# Syscalls a snippet never needs, refused with EPERM by the seccomp filter.  The jail
# already makes most of them useless (no capabilities, user namespace, no_new_privs);
# the filter is the second wall, and it also covers kernel attack surface reachable
# without privileges (io_uring, userfaultfd, bpf, perf_event_open, keyctl).
DENIED_SYSCALLS: tuple[str, ...] = (
    # changing the file-system view or namespaces
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # looking into or controlling other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # kernel surface with a history of privilege escalations
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "lookup_dcookie",
    # the machine itself
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "vhangup",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "personality",
    "uselib",
    "nfsservctl",
    "sethostname",
    "setdomainname",
    # watching files: the runtime files are the same inodes in every jail, so a watch
    # would see another execution open or read them (a covert channel)
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
)

# clone3 takes its flags in a struct the filter cannot read, so it answers ENOSYS and
# libc falls back to clone(), whose namespace flags the filter can read and refuse.
ENOSYS_SYSCALLS: tuple[str, ...] = ("clone3",)

# Only Unix-domain sockets (used by runtimes internally); every other family is refused
# with EAFNOSUPPORT, a second wall behind the empty network namespace.
ALLOWED_SOCKET_FAMILIES: tuple[int, ...] = (1,)  # AF_UNIX

# Program starts are refused in every Python fork-server child (its own filter, loaded
# before its job).  bubblewrap itself must exec a runtime, so the jail's filter allows
# them; for JavaScript, Deno's permissions refuse them and nothing else is mounted.
EXEC_SYSCALLS: tuple[str, ...] = ("execve", "execveat")

# File locks.  A lock is a state of the inode, and the read-only runtime files are the
# same inodes in every jail: a lock one execution takes on, say, os.py could be seen by
# another (a covert channel).  Taking a lock therefore succeeds and does nothing, in every
# jail; testing for one (F_GETLK) stays real, and truthfully finds none.  Everything a
# snippet can write is private to its execution, so nothing else contends for its locks.
# What this gives up: locks between processes or threads of ONE execution exclude
# nothing (sqlite3 with several writing processes should use `?vfs=unix-dotfile`).
F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW = 6, 7, 37, 38
NO_OP_SYSCALLS: tuple[str, ...] = ("flock",)
NO_OP_FCNTL_COMMANDS: tuple[int, ...] = (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW)
# Leases block another execution's open() of a shared file (for up to 45 s), and
# directory notifications signal its reads: both refused.
F_SETLEASE, F_NOTIFY = 1024, 1026
DENIED_FCNTL_COMMANDS: tuple[int, ...] = (F_SETLEASE, F_NOTIFY)

# Also refused in Python fork-server children: no Unix-socket rendezvous with a sibling
# (they share the fork server's jail, and so its abstract socket namespace).
RENDEZVOUS_SYSCALLS: tuple[str, ...] = ("bind", "connect", "listen", "accept", "accept4")

# Deno's own permissions, a second wall behind the jail: nothing but the scratch /tmp
# and the result FIFO (no net, env, run, ffi, sys, and no remote or npm modules).
DENO_PERMISSIONS: tuple[str, ...] = (
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--no-remote",
    "--no-npm",
    "--allow-read=/tmp",
    f"--allow-write=/tmp,{protocol.RESULT_FIFO}",
)
# With vetted npm packages (`_packages.py`): Deno resolves bare specifiers (`import _ from
# "lodash"`, `require("lodash")`) from the read-only node_modules and nowhere else
# (`manual`: it never installs or downloads anything), and may read that directory.
DENO_PERMISSIONS_WITH_PACKAGES: tuple[str, ...] = (
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--no-remote",
    "--node-modules-dir=manual",
    f"--allow-read=/tmp,{protocol.JS_NODE_MODULES}",
    f"--allow-write=/tmp,{protocol.RESULT_FIFO}",
)

# With vetted Python packages: numerical libraries' thread pools (OpenBLAS, OpenMP, MKL,
# numexpr) start one thread, within the jail's process limit and safe to fork.
SINGLE_THREADED_LIBRARIES: tuple[tuple[str, str], ...] = tuple(
    (name, "1")
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
)  # fmt: skip


@dataclass(frozen=True)
class Relaxation:
    """Something the closed policy refuses, granted to one kind of jailed process."""

    why: str
    capabilities: tuple[str, ...] = ()  # kept, inside the jail's own user namespace only
    syscalls: tuple[str, ...] = ()  # taken off the denied list
    clone_flags: tuple[int, ...] = ()  # namespace flags clone() may use
    files: tuple[str, ...] = ()  # host files bound read-only at the same path


# RELAXATION (the Python fork server only): it makes each child's fresh pid, mount and
# ipc namespaces and mounts its private /tmp, /dev/shm and /proc/self, so it keeps
# CAP_SYS_ADMIN in its own user namespace (meaningless on the host) and may clone into
# those three namespaces and mount.  The server runs no user code; each child
# drops every capability and loads the full child filter before it reads its job.
ALLOW_NAMESPACE_SETUP = Relaxation(
    why="the Python fork server gives each child fresh namespaces and its own /tmp",
    # CAP_SETPCAP only to empty its bounding set (bwrap puts the added capabilities in
    # it), first thing, before anything else runs; it then gives CAP_SETPCAP up for good.
    capabilities=("CAP_SYS_ADMIN", "CAP_SETPCAP"),
    # (Not unshare: the server makes namespaces only for a child, with clone.  Without it,
    # a vetted package's import-time code cannot give the server itself new ones.)
    syscalls=("mount", "umount2"),
    clone_flags=(protocol.CLONE_NEWNS, protocol.CLONE_NEWIPC, protocol.CLONE_NEWPID),
)


@dataclass(frozen=True)
class Mount:
    """A read-only bind of a host path at `target`, or a symlink."""

    source: str
    target: str
    symlink: bool = False


@dataclass(frozen=True)
class SandboxPolicy:
    """Everything that defines one jail.  Defaults are the closed ones."""

    mounts: tuple[Mount, ...]
    # Jail paths hidden under an empty tmpfs (e.g. site-packages inside the stdlib dir).
    masked: tuple[str, ...] = ()
    python: PythonRuntime | None = None  # where the interpreter is inside (and its extras)
    tmp_size_mb: int = 16  # the only writable places: an in-memory /tmp ...
    shm_size_mb: int = 4  # ... and /dev/shm, both private to the execution
    max_processes: int = 16  # processes and threads of one execution (pids cgroup, NPROC)
    max_open_files: int = 256  # RLIMIT_NOFILE
    max_file_mb: int = 16  # RLIMIT_FSIZE: no single file larger than /tmp anyway
    # Namespaces: all new.  user (no capabilities on the host), pid (nothing outlives
    # the run), net (no interfaces but a down loopback), ipc, uts, mount, cgroup.
    denied_syscalls: tuple[str, ...] = DENIED_SYSCALLS
    uid: int = 65534  # "nobody" inside the user namespace
    bwrap: str = "/usr/bin/bwrap"
    hostname: str = "sandbox"
    # The whole environment of the jail: nothing of the host's.
    env: tuple[tuple[str, str], ...] = (
        ("LANG", "C.UTF-8"),
        ("HOME", "/tmp"),
        ("PATH", "/nonexistent"),
    )
    deno_permissions: tuple[str, ...] = DENO_PERMISSIONS  # Deno's own, a second wall

    def rlimits(self, own_threads: int = 0) -> tuple[tuple[int, int], ...]:
        """(resource, value) set on every process of a jail before its job, from the host.

        RLIMIT_NPROC is a second process-count wall beside the pids cgroup, effective
        where the jail's user is not root on the host (the kernel exempts root).
        `own_threads`: threads the runtime itself starts, counted on top.
        """
        return (
            (resource.RLIMIT_NPROC, self.max_processes + own_threads),
            (resource.RLIMIT_NOFILE, self.max_open_files),
            (resource.RLIMIT_FSIZE, self.max_file_mb * 1024 * 1024),
            (resource.RLIMIT_CORE, 0),
        )


def _real(path: str) -> str:
    return os.path.realpath(path)


def _system_lib_mounts() -> list[Mount]:
    """The shared libraries the interpreters link against, read-only."""
    mounts: list[Mount] = []
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for top in ("/lib", "/lib64"):
        if os.path.islink(top):  # merged /usr: recreate the link, bind the /usr side
            mounts.append(Mount(os.readlink(top), top, symlink=True))
        elif os.path.isdir(top):
            sub = f"{top}/{multiarch}" if top == "/lib" and multiarch else top
            if os.path.isdir(sub):
                mounts.append(Mount(sub, sub))
    for sub in (f"/usr/lib/{multiarch}" if multiarch else "", "/usr/lib64"):
        if sub and os.path.isdir(sub) and not os.path.islink(sub):
            mounts.append(Mount(sub, sub))
    return mounts


@dataclass(frozen=True)
class PythonRuntime:
    """The CPython that runs this service, as every jail sees it: at protocol.PYTHON_HOME.

    Where the host keeps it is the host's layout (a checkout, pyenv under /root): a
    snippet reading sys.executable, sys.prefix or sysconfig finds the jail path instead.
    """

    executable: str  # inside the jail
    mounts: tuple[Mount, ...]
    masked: tuple[str, ...]  # jail paths hidden under an empty tmpfs
    # The server's own environment only (the fork server drops it before any child):
    # where the loader finds a shared libpython, whose RUNPATH names the host directory.
    env: tuple[tuple[str, str], ...]
    # (jail path, text) of the build's variables module (sysconfig) with the host's
    # install prefix rewritten to PYTHON_HOME, or None when there is nothing to rewrite.
    sysconfig_data: tuple[str, str] | None


# Install prefixes that say nothing about the host: the distribution's own Python.
SYSTEM_PREFIXES = ("/usr", "/usr/local")


def python_runtime() -> PythonRuntime:
    """Where this service's CPython is on the host, and where each piece goes in a jail."""
    home = protocol.PYTHON_HOME
    executable = _real(getattr(sys, "_base_executable", sys.executable))
    jail_executable = f"{home}/bin/{os.path.basename(executable)}"
    stdlib = sysconfig.get_paths()["stdlib"]
    # Where CPython looks for its standard library, relative to bin/.. (its landmark).
    jail_stdlib = f"{home}/{sys.platlibdir}/python{sys.version_info[0]}.{sys.version_info[1]}"
    mounts = [Mount(executable, jail_executable), Mount(_real(stdlib), jail_stdlib)]
    env: list[tuple[str, str]] = []
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    soname = sysconfig.get_config_var("INSTSONAME") or ""
    system_libs = {m.source for m in _system_lib_mounts()}
    if libdir and soname and os.path.exists(os.path.join(libdir, soname)):
        if _real(libdir) not in system_libs:  # (else already mounted where ld.so looks)
            mounts.append(Mount(_real(os.path.join(libdir, soname)), f"{home}/lib/{soname}"))
            env.append(("LD_LIBRARY_PATH", f"{home}/lib"))
    masked = [
        f"{jail_stdlib}/{name}"
        for name in ("site-packages", "dist-packages")
        if os.path.isdir(os.path.join(stdlib, name))
    ]
    # The build's Makefile and config scripts (for compiling extensions) name the host's
    # install prefix; nothing in a jail compiles.
    config = sysconfig.get_config_var("LIBPL") or ""
    if config and os.path.isdir(config) and _real(config).startswith(_real(stdlib) + "/"):
        masked.append(jail_stdlib + _real(config)[len(_real(stdlib)) :])
    return PythonRuntime(
        executable=jail_executable,
        mounts=tuple(mounts),
        masked=tuple(masked),
        env=tuple(env),
        sysconfig_data=_rewritten_sysconfig_data(stdlib, jail_stdlib),
    )


def _rewritten_sysconfig_data(stdlib: str, jail_stdlib: str) -> tuple[str, str] | None:
    name = sysconfig._get_sysconfigdata_name()  # type: ignore[attr-defined]
    source = os.path.join(stdlib, f"{name}.py")
    prefixes = {p for p in (sys.base_prefix, _real(sys.base_prefix), sys.base_exec_prefix,
                            _real(sys.base_exec_prefix)) if p not in SYSTEM_PREFIXES}  # fmt: skip
    if not prefixes or not os.path.isfile(source):
        return None
    with open(source, encoding="utf-8") as f:
        text = f.read()
    for prefix in sorted(prefixes, key=len, reverse=True):  # /a/b/c before /a/b
        text = text.replace(prefix, protocol.PYTHON_HOME)
    return f"{jail_stdlib}/{name}.py", text


def deno_executable() -> str:
    """The Deno binary shipped by the PyPI ``deno`` package."""
    import deno  # type: ignore[import-untyped]

    return _real(deno.find_deno_bin())


# The in-jail code (runners and the protocol), mounted read-only at protocol.RUNNER_DIR.
RUNNER_DIR = str(Path(__file__).resolve().parent.parent / "_jail")

# JavaScript's isolate mode (`_runtimes/workerd.py`): the workerd binary inside the jail.
WORKERD = "/runtime/workerd"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# RELAXATION (workerd jails only): workerd refuses to start without a CA bundle ("No CA
# certificates were loaded from the system"), although nothing in the jail can reach a
# network (empty network namespace, AF_UNIX only, globalOutbound: null).  The bundle is
# public data, bound read-only; nothing else changes (same filter, no capability).
ALLOW_CA_BUNDLE = Relaxation(
    why="workerd will not start without a CA bundle, though it can reach no network",
    files=(CA_BUNDLE,),
)


def workerd_mounts(binary: str) -> tuple[Mount, ...]:
    """What a workerd jail needs on top of the policy's mounts (read-only): the binary
    and ALLOW_CA_BUNDLE's file.  Its config is bound per process, its socket is an
    inherited fd; it keeps the jail's seccomp filter unchanged (AF_UNIX only, no exec but
    its own)."""
    mounts = [Mount(_real(binary), WORKERD)]
    for path in ALLOW_CA_BUNDLE.files:
        if os.path.isfile(path):
            mounts.append(Mount(_real(path), path))
    return tuple(mounts)


def build_policy(
    tmp_size_mb: int = 16,
    max_processes: int = 16,
    *,
    python_packages: str | None = None,
    node_modules: str | None = None,
) -> SandboxPolicy:
    """The policy for both runtimes on this host.

    `python_packages` / `node_modules`: host directories of vetted packages (see
    `_packages.py`), mounted read-only at protocol.PYTHON_PACKAGES / JS_NODE_MODULES.
    """
    python = python_runtime()
    mounts = [*_system_lib_mounts(), *python.mounts]
    if os.path.isdir("/usr/share/zoneinfo"):
        # zoneinfo/Intl need the time-zone database; it is public data.
        mounts.append(Mount("/usr/share/zoneinfo", "/usr/share/zoneinfo"))
    mounts.append(Mount(RUNNER_DIR, protocol.RUNNER_DIR))
    # The Python runner's own JSON codec (protocol.RUNNER_LIBS): a read-only copy of the
    # service's msgspec, which snippets do not see.
    codec_dir = _real(os.path.dirname(msgspec.__file__))
    mounts.append(Mount(codec_dir, f"{protocol.RUNNER_LIBS}/msgspec"))
    try:
        mounts.append(Mount(deno_executable(), protocol.DENO))
    except Exception:  # no deno: JavaScript is reported unavailable by doctor
        pass
    env = SandboxPolicy.env
    if python_packages is not None:
        mounts.append(Mount(_real(python_packages), protocol.PYTHON_PACKAGES))
        env = (*env, *SINGLE_THREADED_LIBRARIES)
    deno_permissions = DENO_PERMISSIONS
    if node_modules is not None:
        mounts.append(Mount(_real(node_modules), protocol.JS_NODE_MODULES))
        deno_permissions = DENO_PERMISSIONS_WITH_PACKAGES
    return SandboxPolicy(
        bwrap=shutil.which("bwrap") or "/usr/bin/bwrap",
        mounts=tuple(dict.fromkeys(mounts)),
        masked=python.masked,
        python=python,
        tmp_size_mb=tmp_size_mb,
        max_processes=max_processes,
        env=env,
        deno_permissions=deno_permissions,
    )
