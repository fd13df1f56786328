"""The Python fork server: runs inside the jail, forks one fresh child per execution.

It has imported the runner (and with it the common standard library) once; each child
is a copy that gets its own pid, mount and ipc namespaces, a private in-memory /tmp, no
/proc of its siblings, no capabilities and the full seccomp filter before it reads its
job.  The server itself never runs user code.  Its messages, and its children's, are
those of protocol.py (the control channel and the child socket).

The vetted packages (`_packages.py`) are imported here once, so that no execution pays
for them.  Their import-time code runs under the import filter (no program starts, no
socket rendezvous: as for a snippet) and must leave the server as it found it: its
mounts, namespaces, capabilities, filters, threads, timers and signal handlers, and the
jail's processes.  A package that changes any of them could reach later executions
through the server, so the server names it and refuses to start (fail closed).
"""

import sys

sys.path.insert(0, "/runner")  # protocol.RUNNER_DIR

import ctypes
import fcntl
import gc
import os
import selectors
import signal
import socket

import protocol
import python_runner as runner

# Only this server's loader needed it, to find libpython in the jail (policy.py's
# PythonRuntime): no child inherits it.
os.environ.pop("LD_LIBRARY_PATH", None)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 4096, 8192, 1 << 14, 1 << 18
PR_SET_DUMPABLE, PR_CAP_AMBIENT = 4, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SYS_ADMIN = 21
PR_CAPBSET_DROP = 24  # the same on x86_64 and aarch64
EINVAL = 22

libc = ctypes.CDLL(None, use_errno=True)


def check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def set_capabilities(keep: int) -> None:
    """Keep only the capabilities in the bit mask ``keep`` (0 drops them all)."""
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    header = CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (CapData * 2)()
    data[0].effective = data[0].permitted = keep & 0xFFFFFFFF
    data[1].effective = data[1].permitted = keep >> 32
    check(libc.capset(ctypes.byref(header), data), "capset")


def empty_bounding_set() -> None:
    """Drop every capability from the bounding set (needs CAP_SETPCAP, which bwrap gave).

    Inherited by every child: none can ever regain a capability, whatever else fails.
    """
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == EINVAL and cap > 0:  # past the kernel's last capability
                return
            check(-1, f"drop capability {cap} from the bounding set")


def load_filter(program: bytes) -> None:
    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_char_p))
    check(libc.prctl(22, 2, ctypes.byref(fprog), 0, 0), "seccomp")  # PR_SET_SECCOMP, FILTER


def process_state() -> dict[str, object]:
    """What a vetted package's import must leave as it found it (see the docstring),
    most telling first."""
    with open("/proc/self/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    with open("/proc/self/mountinfo") as f:
        mounts = f.read().splitlines()
    handlers = {}
    for number in signal.valid_signals():
        try:
            handlers[int(number)] = repr(signal.getsignal(number))
        except (ValueError, OSError):  # not a signal Python can ask about
            continue
    return {
        "namespaces": {n: os.readlink(f"/proc/self/ns/{n}") for n in os.listdir("/proc/self/ns")},
        "processes": sorted(int(pid) for pid in os.listdir("/proc") if pid.isdigit()),
        **{key: status.get(key) for key in ("Threads", "CapInh", "CapPrm", "CapEff", "CapBnd",
                                              "CapAmb", "NoNewPrivs", "Seccomp_filters")},
        "timers": [signal.getitimer(which) for which in
                   (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)],
        "signal handlers": handlers,
        "mounts": mounts,
    }  # fmt: skip


def changes(before: dict[str, object], after: dict[str, object]) -> str:
    """What differs, in words, short enough for one control message."""
    found = []
    for key, old in before.items():
        new = after[key]
        if new == old:
            continue
        if isinstance(old, list | dict) and key != "processes":
            found.append(key)  # (a whole mount table does not fit in a message)
        else:
            found.append(f"{key} {old} -> {new}")
    return "; ".join(found)[:160]


def import_packages(config: protocol.ForkServerConfig) -> str | None:
    """Import the vetted packages under the import filter, each checked for what it
    changed; returns why the server must not start, if it must not."""
    with open(protocol.IMPORT_FILTER, "rb") as f:
        load_filter(f.read())
    runner.use_packages(protocol.PYTHON_PACKAGES)
    for name in config.preload:
        before = process_state()
        failure = runner.preload(name)
        if failure is not None:
            os.write(2, f"coderunner fork server: could not preload {failure}\n".encode())
        changed = changes(before, process_state())
        if changed:
            return f"importing the package {name[:40]!r} changed the fork server: {changed}"
    return None


def _high(fd: int) -> int:
    """Move fd to 100 or above, out of the way of the numbers a job's streams take."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
    os.close(fd)
    return moved


def become_execution(
    sock: socket.socket, config: protocol.ForkServerConfig, child_filter: bytes
) -> None:
    """In the child (pid 1 of its own namespace): isolate, then run one job and exit."""
    # A session (and process group) of its own: kill(0) must not reach the server.
    os.setsid()
    status_fd = _high(os.open("/proc/self/status", os.O_RDONLY))
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    tmp_options = f"size={config.tmp_size_mb}m,mode=1777".encode()
    check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, tmp_options), "/tmp")
    # The jail's /dev/shm is shared by every child of this server: give each its own.
    shm_options = f"size={config.shm_size_mb}m,mode=1777".encode()
    check(libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, shm_options), "shm")
    # /proc shows the server's pid namespace (its siblings): cover it with a tmpfs that
    # holds only this process's own /proc/self.  (bwrap's mounts are locked in this user
    # namespace: no umount, and no fresh procfs either.)
    own = f"/proc/{os.readlink('/proc/self')}".encode()
    os.mkdir("/tmp/.self")
    check(libc.mount(own, b"/tmp/.self", None, MS_BIND | MS_REC, None), "bind /proc/self")
    check(
        libc.mount(b"tmpfs", b"/proc", b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                   b"size=4k,mode=755"),
        "hide /proc",
    )  # fmt: skip
    os.mkdir("/proc/self")
    check(libc.mount(b"/tmp/.self", b"/proc/self", None, MS_MOVE, None), "move /proc/self")
    os.rmdir("/tmp/.self")
    # The mount tables name the host paths behind every bind (the checkout, the
    # interpreter's install, the service's temporary files): empty files over them, and
    # an empty task/ (each thread's folder holds its own copy).  Not MS_NODEV on the
    # remount: /dev/null would then read as EACCES.
    for name in (b"mountinfo", b"mounts", b"mountstats"):
        table = b"/proc/self/" + name
        check(libc.mount(b"/dev/null", table, None, MS_BIND, None), f"hide {name!r}")
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC
        check(libc.mount(None, table, None, flags, None), f"read-only {name!r}")
    check(
        libc.mount(b"tmpfs", b"/proc/self/task", b"tmpfs",
                   MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, b"size=4k,mode=555"),
        "hide /proc/self/task",
    )  # fmt: skip
    check(
        libc.mount(None, b"/proc", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                   None),
        "read-only /proc",
    )  # fmt: skip
    os.chdir("/tmp")
    check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
    # (rlimits are set by the host, from outside, once this child reports READY.)
    set_capabilities(0)
    load_filter(child_filter)
    # (A warm-up run here, to take copy-on-write faults ahead of the job, was measured:
    # no better latency, 15 % less throughput.)
    sock.send(protocol.READY)
    message, fds, _, _ = socket.recv_fds(sock, 16, protocol.JOB_FDS)
    if message != protocol.JOB or len(fds) != protocol.JOB_FDS:
        os._exit(protocol.EXIT_BAD_JOB_MESSAGE)
    sock.send(protocol.STARTED)  # the host now knows the job reached a live child
    sock.close()
    high = [_high(fd) for fd in fds]  # out of the way of 0-4 before dup2
    for target, fd in enumerate(high):  # stdin, stdout, stderr, RESULT_FD
        os.dup2(fd, target)
        os.close(fd)
    os.dup2(status_fd, protocol.STATUS_FD)
    os.closerange(protocol.STATUS_FD + 1, 1 << 16)  # nothing of the server's
    runner.serve_job(protocol.RESULT_FD, protocol.STATUS_FD)


# clone(2) straight into the new namespaces: the child is the first process of its pid
# namespace without an intermediate fork (each fork of this ~25 MB interpreter costs
# ~1.5 ms of CPU).  PyOS_BeforeFork/AfterFork_* do for it what os.fork() does.
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine)
SIGCHLD = 17
_pyapi = ctypes.PyDLL(None)  # holds the GIL across the call, as os.fork() does


def clone_into_namespaces() -> int:
    """Like os.fork(), but the child starts in fresh pid, mount and ipc namespaces."""
    flags = protocol.CLONE_NEWNS | protocol.CLONE_NEWIPC | protocol.CLONE_NEWPID | SIGCHLD
    if SYS_CLONE is None:  # an architecture we have no number for: unshare + fork
        raise OSError(0, "unsupported architecture")
    ctypes.pythonapi.PyOS_BeforeFork()
    pid: int = _pyapi.syscall(
        ctypes.c_long(SYS_CLONE), ctypes.c_ulong(flags), None, None, None, None
    )
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
    else:
        ctypes.pythonapi.PyOS_AfterFork_Parent()
        if pid < 0:
            raise OSError(ctypes.get_errno(), "clone into new namespaces failed")
    return pid


def fork_child(
    control: socket.socket, config: protocol.ForkServerConfig, child_filter: bytes
) -> int | None:
    """Start a child in fresh namespaces; returns its pid (in our namespace)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # Set before the child can send: the host learns the child's pid as the host sees it.
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    try:
        child = clone_into_namespaces()
    except OSError as exc:
        os.write(2, f"coderunner fork server: {exc}\n".encode())
        ours.close()
        theirs.close()
        return None
    if child == 0:
        try:
            ours.close()
            control.close()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            become_execution(theirs, config, child_filter)
        except (BrokenPipeError, ConnectionResetError):  # the host closed: nothing to do
            pass
        except BaseException as exc:  # report; never return into the server's loop
            os.write(2, f"coderunner fork server child: {exc}\n".encode())
        os._exit(protocol.EXIT_SETUP_FAILED)
    theirs.close()
    try:
        socket.send_fds(control, [protocol.child_ready(child)], [ours.fileno()])
    except OSError:  # the host is gone
        os._exit(0)
    ours.close()
    return child


WARM_UP = "import json\ndef main(numbers):\n    return {'sum': sum(numbers)}\n"


def main() -> None:
    config = protocol.ForkServerConfig.decode(sys.argv[1])
    # First, while it holds CAP_SETPCAP: an empty bounding set for itself and every child.
    empty_bounding_set()
    set_capabilities(1 << CAP_SYS_ADMIN)  # CAP_SETPCAP leaves the permitted set for good
    control = socket.socket(fileno=config.control_fd)
    refusal = import_packages(config) if config.packages else None
    if refusal is not None:
        control.send(protocol.child_error(refusal))
        os._exit(protocol.EXIT_SETUP_FAILED)
    runner.install_import_hint(config.packages)
    runner.run_snippet(WARM_UP, {"numbers": [1, 2, 3]})
    # Objects that exist now are never collected: the collector will not walk (and so
    # copy) the server's pages in every child.
    gc.freeze()
    with open(protocol.CHILD_FILTER, "rb") as f:
        child_filter = f.read()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    children: set[int] = set()
    control.send(protocol.UP)
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                message = control.recv(64)
                if not message:  # the host is gone: so are we (and bwrap takes the rest)
                    os._exit(0)
                if message == protocol.FORK:
                    child = fork_child(control, config, child_filter)
                    if child is None:
                        control.send(protocol.child_error("a fork-server child did not start"))
                    else:
                        children.add(child)
            else:
                os.read(wake_r, 4096)
            while True:  # reap on every wake-up; SIGCHLD may coalesce
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid in children:
                    children.discard(pid)
                    code = os.waitstatus_to_exitcode(status)
                    try:
                        control.send(protocol.child_exit(pid, code))
                    except OSError:  # the host is gone
                        os._exit(0)


if __name__ == "__main__":
    main()
