"""bubblewrap: the argv of a jail (a pure function of the policy) and the one way a jail
is started.  Runs in the service process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence

from .._errors import SandboxUnavailable
from .._jail import protocol
from .cgroup import CgroupSlot, join_command
from .policy import Relaxation, SandboxPolicy

ArgvBuilder = Callable[[int], list[str]]  # seccomp fd → the whole bwrap argv


def bwrap_argv(
    policy: SandboxPolicy,
    command: list[str],
    *,
    seccomp_fd: int,
    result_fifo: str | None,
    extra_env: tuple[tuple[str, str], ...] = (),
    extra_files: tuple[tuple[str, str], ...] = (),
    relaxation: Relaxation | None = None,
) -> list[str]:
    """The bubblewrap command line for one jailed process (pure; no code or inputs in it).

    Args:
        policy: mounts, limits and environment.
        command: the runtime's argv inside the jail.
        seccomp_fd: an fd holding the compiled filter bwrap installs before exec.
        result_fifo: host FIFO bound at protocol.RESULT_FIFO (JavaScript), or None.
        extra_env: runtime-specific variables (e.g. DENO_DIR).
        extra_files: more (host file, jail path) read-only binds.
        relaxation: capabilities to keep in the jail's user namespace (see policy.py).
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
    for capability in relaxation.capabilities if relaxation else ():
        argv += ["--cap-add", capability]  # a named Relaxation: see policy.py
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
        argv += ["--bind", result_fifo, protocol.RESULT_FIFO]
    for source, target in extra_files:
        argv += ["--ro-bind", source, target]
    argv += ["--remount-ro", "/", "--seccomp", str(seccomp_fd), "--chdir", "/tmp", "--", *command]
    return argv


async def start_jail(
    argv_for: ArgvBuilder,
    *,
    seccomp_filter: bytes,
    cgroup: CgroupSlot | None = None,
    stdin: int | None = asyncio.subprocess.PIPE,
    stdout: int | None = asyncio.subprocess.PIPE,
    stderr: int | None = asyncio.subprocess.PIPE,
    pass_fds: Sequence[int] = (),
) -> asyncio.subprocess.Process:
    """Start bubblewrap on the argv `argv_for(seccomp_fd)` builds.

    The filter travels in a memfd that bwrap installs before it execs the runtime.
    bwrap gets an empty environment (it shows in the jail's /proc/1/environ) and a
    session of its own.  With `cgroup`, a tiny shell joins it and then execs bwrap, so
    that everything bwrap forks is in the cgroup from its first instruction (a Python
    preexec_fn would force a full fork() of this service, ~5 ms of blocked event loop;
    without one, subprocess uses vfork).  SandboxUnavailable if bwrap cannot start.
    """
    seccomp_fd = os.memfd_create("coderunner-seccomp", 0)
    try:
        os.write(seccomp_fd, seccomp_filter)
        os.lseek(seccomp_fd, 0, os.SEEK_SET)
        argv = argv_for(seccomp_fd)
        if cgroup is not None:
            argv = [*join_command(cgroup), *argv]
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=(seccomp_fd, *pass_fds),
            env={},
            start_new_session=True,
        )
    except OSError as exc:
        raise SandboxUnavailable(f"cannot start bubblewrap: {exc}") from exc
    finally:
        os.close(seccomp_fd)
