"""The sandbox policy as data: namespaces, mounts, syscalls and limits in one place.

Everything is closed by default. Each relaxation says what it exposes and why.
The pure functions at the bottom turn the policy into a bubblewrap argv; they are
unit-tested, and nothing else in the project builds jail arguments.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Mount:
    """A read-only bind of a host path (same path inside) or a symlink."""

    source: str
    target: str
    symlink: bool = False


@dataclass(frozen=True)
class SandboxPolicy:
    """Everything that defines one jail.  Defaults are the closed ones."""

    mounts: tuple[Mount, ...]
    # Host paths hidden under an empty tmpfs (e.g. site-packages inside the stdlib dir).
    masked: tuple[str, ...] = ()
    tmp_size_mb: int = 16  # the only writable places: an in-memory /tmp ...
    shm_size_mb: int = 4  # ... and /dev/shm, both private to the execution
    max_processes: int = 16  # RLIMIT_NPROC inside the jail's own user namespace
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


def python_runtime_paths() -> tuple[str, list[Mount], list[str]]:
    """(interpreter, mounts, masked) for the CPython that runs this service."""
    executable = _real(getattr(sys, "_base_executable", sys.executable))
    mounts = [Mount(executable, executable)]
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ldlibrary = sysconfig.get_config_var("INSTSONAME") or ""
    if libdir and ldlibrary and os.path.exists(os.path.join(libdir, ldlibrary)):
        lib = os.path.join(libdir, ldlibrary)
        mounts.append(Mount(_real(lib), lib))
    stdlib = sysconfig.get_paths()["stdlib"]
    mounts.append(Mount(_real(stdlib), stdlib))
    masked = [
        p
        for p in (os.path.join(stdlib, "site-packages"), os.path.join(stdlib, "dist-packages"))
        if os.path.isdir(p)
    ]
    return executable, mounts, masked


def deno_executable() -> str:
    """The Deno binary shipped by the PyPI ``deno`` package."""
    import deno  # type: ignore[import-untyped]

    return _real(deno.find_deno_bin())


RUNNER_DIR = str(Path(__file__).parent / "runtimes")
JAIL_RUNNER_DIR = "/runner"  # where the runner scripts appear inside the jail
JAIL_DENO = "/runtime/deno"
JAIL_RESULT = "/run/result"  # the FIFO that carries the runner's frames to the host


def build_policy(tmp_size_mb: int = 16, max_processes: int = 16) -> SandboxPolicy:
    """The policy for both runtimes on this host."""
    _, py_mounts, masked = python_runtime_paths()
    mounts = [*_system_lib_mounts(), *py_mounts]
    if os.path.isdir("/usr/share/zoneinfo"):
        # zoneinfo/Intl need the time-zone database; it is public data.
        mounts.append(Mount("/usr/share/zoneinfo", "/usr/share/zoneinfo"))
    mounts.append(Mount(RUNNER_DIR, JAIL_RUNNER_DIR))
    try:
        mounts.append(Mount(deno_executable(), JAIL_DENO))
    except Exception:  # no deno: JavaScript is reported unavailable by doctor
        pass
    return SandboxPolicy(
        bwrap=shutil.which("bwrap") or "/usr/bin/bwrap",
        mounts=tuple(dict.fromkeys(mounts)),
        masked=tuple(masked),
        tmp_size_mb=tmp_size_mb,
        max_processes=max_processes,
    )


def bwrap_argv(
    policy: SandboxPolicy,
    command: list[str],
    *,
    seccomp_fd: int,
    result_fifo: str | None,
    extra_env: tuple[tuple[str, str], ...] = (),
    extra_files: tuple[tuple[str, str], ...] = (),
    fork_server: bool = False,
) -> list[str]:
    """The bubblewrap command line for one jailed process (pure; no code or inputs in it).

    Args:
        policy: mounts, limits and environment.
        command: the runtime's argv inside the jail.
        seccomp_fd: an fd holding the compiled filter bwrap installs before exec.
        result_fifo: host FIFO bound at /run/result (single-use workers), or None.
        extra_env: runtime-specific variables (e.g. DENO_DIR).
        extra_files: more (host file, jail path) read-only binds.
        fork_server: keep CAP_SYS_ADMIN in the jail's user namespace (see below).
    """
    argv = [
        policy.bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--disable-userns",  # no nested user namespaces (else a fresh set of capabilities)
        "--uid",
        str(policy.uid),
        "--gid",
        str(policy.uid),
        "--hostname",
        policy.hostname,
        "--die-with-parent",  # killing bwrap kills the pid namespace and all in it
        "--new-session",  # no TIOCSTI into a terminal of the host
        "--cap-drop",
        "ALL",
        "--clearenv",
    ]
    if fork_server:
        # RELAXATION: the fork server keeps CAP_SYS_ADMIN inside the jail's own user
        # namespace (it means nothing on the host) so that each child gets fresh pid,
        # mount and ipc namespaces and its own /tmp.  Children drop every capability and
        # load the full filter before they read their job; the server runs no user code.
        argv += ["--cap-add", "CAP_SYS_ADMIN"]
    for key, value in (*policy.env, *extra_env):
        argv += ["--setenv", key, value]
    for m in policy.mounts:
        argv += ["--symlink" if m.symlink else "--ro-bind", m.source, m.target]
    for path in policy.masked:
        argv += ["--tmpfs", path, "--remount-ro", path]
    # fmt: off
    argv += [
        "--proc", "/proc",
        "--dev", "/dev",
        # /dev read-only, with a private, small /dev/shm (POSIX shared memory) of its own.
        "--size", str(policy.shm_size_mb * 1024 * 1024), "--perms", "1777",
        "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
        "--size", str(policy.tmp_size_mb * 1024 * 1024), "--perms", "1777", "--tmpfs", "/tmp",
        "--dir", "/run",
    ]
    # fmt: on
    if result_fifo is not None:
        argv += ["--bind", result_fifo, JAIL_RESULT]
    for source, target in extra_files:
        argv += ["--ro-bind", source, target]
    argv += ["--remount-ro", "/", "--seccomp", str(seccomp_fd), "--chdir", "/tmp", "--", *command]
    return argv
