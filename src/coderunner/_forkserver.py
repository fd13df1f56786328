"""Python at fork-server speed: a jailed fork server and its pre-forked, isolated children.

All of this runs in the service process (the host side).  The jailed side is
``runtimes/python_zygote.py``; its docstring has the protocol.  Each execution still
gets a fresh process with fresh pid, mount and ipc namespaces, its own /tmp, no
capabilities and the full seccomp filter, inside a jail nothing else shares at once but
its siblings, from which those namespaces and the filter separate it.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import struct
from typing import Any

from ._cgroup import CgroupManager, CgroupSlot
from ._errors import SandboxUnavailable
from ._models import ErrorDetail, ErrorType, Language
from ._policy import JAIL_RUNNER_DIR, SandboxPolicy, bwrap_argv, python_runtime_paths
from ._worker import JailedProcess, Runtime, WorkerLost, WorkerState, _Capture

log = logging.getLogger("coderunner.forkserver")

JAIL_CHILD_FILTER = "/run/child.bpf"
# The exit status of a child whose fork server died under it (the service's fault).
SERVER_LOST = -(1 << 16)
_UCRED = struct.Struct("3i")  # struct ucred {pid, uid, gid}


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def _recvmsg(sock: socket.socket, ancbufsize: int) -> tuple[bytes, list[Any]]:
    """One message (and its ancillary data) from a non-blocking SOCK_SEQPACKET socket."""
    while True:
        try:
            data, ancdata, _, _ = sock.recvmsg(256, ancbufsize)
            return data, ancdata
        except BlockingIOError:
            await _readable(sock)


class ForkServer:
    """One jailed Python fork server (a bwrap jail) and its control socket."""

    def __init__(self, process: asyncio.subprocess.Process, control: socket.socket) -> None:
        self.process = process
        self.control = control
        self._ready: asyncio.Queue[tuple[int, socket.socket] | BaseException] = asyncio.Queue()
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = False

    @classmethod
    async def start(
        cls,
        policy: SandboxPolicy,
        server_filter: bytes,
        child_filter_path: str,
        cgroups: CgroupManager | None,
    ) -> ForkServer:
        """Start the fork server in its jail and wait until it is up."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        seccomp_fd = os.memfd_create("coderunner-seccomp", 0)
        os.write(seccomp_fd, server_filter)
        os.lseek(seccomp_fd, 0, os.SEEK_SET)
        interpreter = python_runtime_paths()[0]
        command = [
            interpreter, "-I", "-S", "-B", "-u", f"{JAIL_RUNNER_DIR}/python_zygote.py",
            str(theirs.fileno()), str(policy.tmp_size_mb), str(policy.max_processes),
            str(policy.max_open_files), str(policy.max_file_mb), str(policy.shm_size_mb),
        ]  # fmt: skip
        argv = bwrap_argv(
            policy, command, seccomp_fd=seccomp_fd, result_fifo=None,
            extra_files=((child_filter_path, JAIL_CHILD_FILTER),),
            fork_server=True,
        )  # fmt: skip
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=None,  # the server's own diagnostics go to our stderr
                pass_fds=(seccomp_fd, theirs.fileno()),
                env={},
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise SandboxUnavailable(f"cannot start bubblewrap: {exc}") from exc
        finally:
            os.close(seccomp_fd)
            theirs.close()
        ours.setblocking(False)
        server = cls(process, ours)
        try:
            message, _ = await asyncio.wait_for(_recvmsg(ours, 0), 30)
        except (TimeoutError, OSError):
            message = b""
        if message != b"up":
            await server.close()
            raise SandboxUnavailable(
                f"the Python fork server did not start (exit {process.returncode}); "
                "run `coderunner doctor`"
            )
        server._reader = asyncio.ensure_future(server._read_control())
        return server

    @property
    def alive(self) -> bool:
        return not self.closed and self.process.returncode is None

    async def _read_control(self) -> None:
        fd_space = socket.CMSG_SPACE(array.array("i", [0]).itemsize)
        try:
            while True:
                data, ancdata = await _recvmsg(self.control, fd_space)
                if not data:
                    break
                words = data.split()
                if words[0] == b"ready":
                    fds = array.array("i")
                    for level, kind, payload in ancdata:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                    sock = socket.socket(fileno=fds[0])
                    sock.setblocking(False)  # SO_PASSCRED is already on: see python_zygote
                    self._ready.put_nowait((int(words[1]), sock))
                elif words[0] == b"exit":
                    future = self._exits.get(int(words[1]))
                    if future is not None and not future.done():
                        future.set_result(int(words[2]))
                else:
                    self._ready.put_nowait(SandboxUnavailable(data.decode(errors="replace")))
        except ConnectionResetError:  # the server died: the same as end of file
            pass
        except (OSError, IndexError, ValueError) as exc:
            log.error("fork server control channel failed: %s", exc)
        finally:
            self.closed = True
            for future in self._exits.values():
                if not future.done():
                    future.set_result(SERVER_LOST)
            self._ready.put_nowait(SandboxUnavailable("the Python fork server exited"))

    async def fork(self, cgroups: CgroupManager | None, output_limit_bytes: int,
                   max_processes: int) -> ForkedWorker:  # fmt: skip
        """Ask for one more isolated child; returns once the server has forked it."""
        if not self.alive:
            raise SandboxUnavailable("the Python fork server is not running")
        self.control.send(b"fork")
        item = await self._ready.get()
        if isinstance(item, BaseException):
            raise item
        ns_pid, sock = item
        exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exits[ns_pid] = exited
        exited.add_done_callback(lambda _: self._exits.pop(ns_pid, None))
        # Memory is bounded by RLIMIT_AS in the child (Python honours it with MemoryError);
        # the cgroup is for the process count.
        cgroup = None
        if cgroups and cgroups.available:
            cgroup = cgroups.create(max_processes + 2, memory=False)
        return ForkedWorker(ns_pid, sock, exited, cgroup, output_limit_bytes)

    async def close(self) -> None:
        """Kill the server's jail (and every child in it)."""
        self.closed = True
        if self.process.returncode is None:  # (os.kill: send_signal() may reap behind asyncio)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 5)
        self.control.close()


class ForkedWorker(JailedProcess):
    """One pre-forked child of a fork server, isolated and waiting for its job."""

    def __init__(
        self,
        ns_pid: int,
        sock: socket.socket,
        exited: asyncio.Future[int],
        cgroup: CgroupSlot | None,
        output_limit_bytes: int,
    ) -> None:
        self.runtime = Runtime(Language.PYTHON, ())
        self.state = WorkerState.STARTING
        self.ns_pid = ns_pid
        self.host_pid: int | None = None
        self._sock = sock
        self._exited = exited
        self._pidfd: int | None = None
        self._cgroup = cgroup
        self._output_limit = output_limit_bytes
        self._result = None
        self._stdout = None
        self._stderr = None

    def _no_result_error(
        self, returncode: int | None, memory_hit: bool, memory_mb: int, too_big: bool
    ) -> ErrorDetail:
        if returncode == SERVER_LOST:
            return ErrorDetail(
                type=ErrorType.SANDBOX_ERROR,
                message="the Python fork server was lost during the execution; "
                "it has been replaced, retry the request",
            )
        return super()._no_result_error(returncode, memory_hit, memory_mb, too_big)

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait for the child's ready message; learn its host pid and put it in its cgroup."""
        ucred_space = socket.CMSG_SPACE(_UCRED.size)
        try:
            data, ancdata = await asyncio.wait_for(_recvmsg(self._sock, ucred_space), timeout_s)
        except (TimeoutError, OSError):
            data, ancdata = b"", []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                self.host_pid = _UCRED.unpack(payload[: _UCRED.size])[0]
        if data != b"ready" or not self.host_pid:
            await self.kill()
            raise SandboxUnavailable("a Python fork-server child did not come up")
        # A pidfd cannot be fooled by pid reuse: kills reach this child or nothing.
        self._pidfd = os.pidfd_open(self.host_pid)
        if self._cgroup:
            for procs in self._cgroup.procs_files():
                with open(procs, "w") as f:
                    f.write(str(self.host_pid))
        self.state = WorkerState.READY

    @property
    def alive(self) -> bool:
        if self._exited.done():
            return False
        # A pidfd turns readable when its process has exited.
        return self._pidfd is None or not select.select([self._pidfd], [], [], 0)[0]

    async def _deliver(self, job: bytes) -> None:
        loop = asyncio.get_running_loop()
        job_r, job_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        try:
            socket.send_fds(self._sock, [b"job"], [job_r, out_w, err_w, res_w])
        except OSError as exc:  # it died idle (e.g. with its fork server)
            for fd in (job_w, out_r, err_r, res_r):
                os.close(fd)
            raise WorkerLost(f"the child died before its job: {exc}") from exc
        finally:
            for fd in (job_r, out_w, err_w, res_w):
                os.close(fd)
        try:  # a child killed at this very moment may still have taken the message
            started, _ = await asyncio.wait_for(_recvmsg(self._sock, 0), 5)
        except (TimeoutError, OSError):
            started = b""
        if started != b"started":
            for fd in (job_w, out_r, err_r, res_r):
                os.close(fd)
            raise WorkerLost("the child died as it was handed its job")
        self._stdout = _Capture(await _pipe_reader(loop, out_r, 1 << 16), self._output_limit)
        self._stderr = _Capture(await _pipe_reader(loop, err_r, 1 << 16), self._output_limit)
        self._result = await _pipe_reader(loop, res_r, 2**31)
        try:
            view = memoryview(job)
            os.set_blocking(job_w, False)
            while view:
                try:
                    view = view[os.write(job_w, view[: 1 << 16]) :]
                except BlockingIOError:
                    await _writable(job_w)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            os.close(job_w)

    async def _wait_exit(self) -> int | None:
        return await asyncio.shield(self._exited)

    def _exit_code(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    def _terminate(self) -> None:
        """SIGKILL the child: it is the first process of its pid namespace, so all of it goes."""
        self.state = WorkerState.DONE
        if self._pidfd is not None and not self._exited.done():
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        elif not self._exited.done():
            self._sock.close()  # not yet ready: it exits when its socket closes
        if self._cgroup:
            self._cgroup.kill_all()

    async def _reap(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._exited), 5)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self._sock.close()
        await self._remove_cgroup()


async def _pipe_reader(
    loop: asyncio.AbstractEventLoop, fd: int, limit: int
) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0)
    )
    return reader


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_writer(fd)


class ForkServerGroup:
    """The fork servers of one engine: children are taken from them in turn."""

    def __init__(
        self,
        count: int,
        policy: SandboxPolicy,
        server_filter: bytes,
        child_filter_path: str,
        cgroups: CgroupManager | None,
        output_limit_bytes: int,
    ) -> None:
        self._slots: list[ForkServer | None] = [None] * max(1, count)
        self._starting: list[asyncio.Future[ForkServer] | None] = [None] * len(self._slots)
        self._next = 0
        self._policy = policy
        self._server_filter = server_filter
        self._child_filter_path = child_filter_path
        self._cgroups = cgroups
        self._output_limit = output_limit_bytes
        self.restarts = 0

    async def _server(self, index: int) -> ForkServer:
        server = self._slots[index]
        if server is not None and server.alive:
            return server
        starting = self._starting[index]
        # Decided before any await: one replacement per slot, however many callers.
        if starting is None or (starting.done() and starting.exception() is not None):
            starting = asyncio.ensure_future(self._replace(index, server))
            self._starting[index] = starting
        return await asyncio.shield(starting)

    async def _replace(self, index: int, old: ForkServer | None) -> ForkServer:
        if old is not None:
            self.restarts += 1
            log.warning("fork server %d died; starting a new one", index)
            await old.close()
        server = await ForkServer.start(
            self._policy, self._server_filter, self._child_filter_path, self._cgroups
        )
        self._slots[index] = server
        self._starting[index] = None
        return server

    async def spawn(self) -> ForkedWorker:
        """A new child from the next fork server (restarting it if it died)."""
        index = self._next
        self._next = (self._next + 1) % len(self._slots)
        server = await self._server(index)
        return await server.fork(self._cgroups, self._output_limit, self._policy.max_processes)

    async def close(self) -> None:
        """Close every fork server, including any still starting."""
        for starting in self._starting:
            if starting is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(starting), 30)
        for server in self._slots:
            if server is not None:
                await server.close()
