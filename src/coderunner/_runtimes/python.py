"""Python at fork-server speed: a jailed fork server and its pre-forked, isolated children.

All of this runs in the service process (the host side).  The jailed side is
``_jail/python_forkserver.py``; the messages are those of ``_jail/protocol.py``.  Each
execution still
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
import signal
import socket
import struct
from typing import Any

from .._errors import SandboxUnavailable
from .._jail import protocol
from .._models import ErrorDetail, ErrorType, Language
from .._sandbox.bwrap import bwrap_argv, start_jail
from .._sandbox.cgroup import CgroupManager, CgroupSlot
from .._sandbox.policy import ALLOW_NAMESPACE_SETUP, SandboxPolicy, python_runtime
from .._sandbox.process import (
    Capture,
    CleanupTasks,
    JailedProcess,
    PidHandle,
    WorkerLost,
    open_reader,
)

log = logging.getLogger("coderunner.forkserver")

# Vetted packages (see _packages.py): (modules imported before forking, descriptions).
PythonPackageSetup = tuple[tuple[str, ...], tuple[str, ...]]
# Files the engine writes for the fork server's jail, (host file, jail path), bound
# read-only: the compiled child and import filters, the rewritten build variables.
JailFiles = tuple[tuple[str, str], ...]

# The exit status of a child whose fork server died under it (the service's fault).
SERVER_LOST = -(1 << 16)
_UCRED = struct.Struct("3i")  # struct ucred {pid, uid, gid}


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), _wake, ready)
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
        jail_files: JailFiles,
        packages: PythonPackageSetup = ((), ()),
    ) -> ForkServer:
        """Start the fork server in its jail and wait until it is up.  `jail_files`: the
        files the engine wrote for it (see JailFiles); `packages`: the vetted packages'
        modules it imports first, and their descriptions."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = protocol.ForkServerConfig(
            control_fd=theirs.fileno(),
            tmp_size_mb=policy.tmp_size_mb,
            shm_size_mb=policy.shm_size_mb,
            preload=packages[0],
            packages=packages[1],
        )
        python = policy.python or python_runtime()
        command = [
            python.executable, "-I", "-S", "-B", "-u",
            f"{protocol.RUNNER_DIR}/python_forkserver.py", config.encode(),
        ]  # fmt: skip
        try:
            process = await start_jail(
                lambda seccomp_fd: bwrap_argv(
                    policy,
                    command,
                    seccomp_fd=seccomp_fd,
                    result_fifo=None,
                    extra_env=python.env,
                    extra_files=jail_files,
                    relaxation=ALLOW_NAMESPACE_SETUP,
                ),
                seccomp_filter=server_filter,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=None,  # the server's own diagnostics go to our stderr
                pass_fds=(theirs.fileno(),),
            )
        except SandboxUnavailable:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        server = cls(process, ours)
        try:
            message, _ = await asyncio.wait_for(_recvmsg(ours, 0), 30)
        except (TimeoutError, OSError):
            message = b""
        if message != protocol.UP:
            await server.close()
            if message.startswith(b"error "):  # it refused, and said why
                reason = protocol.parse_control(message).text
                raise SandboxUnavailable(f"the Python fork server refused to start: {reason}")
            raise SandboxUnavailable(
                f"the Python fork server did not start (exit {process.returncode}); "
                "run `coderunner doctor`"
            )
        log.info("python fork server up: pid %d", process.pid)
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
                message = protocol.parse_control(data)
                if message.kind == "ready":
                    fds = array.array("i")
                    for level, kind, payload in ancdata:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                    sock = socket.socket(fileno=fds[0])
                    sock.setblocking(False)  # SO_PASSCRED is already on: see the fork server
                    self._ready.put_nowait((message.pid, sock))
                elif message.kind == "exit":
                    future = self._exits.get(message.pid)
                    if future is not None and not future.done():
                        future.set_result(message.status)
                else:
                    self._ready.put_nowait(SandboxUnavailable(message.text or message.kind))
        except ConnectionResetError:  # the server died: the same as end of file
            pass
        except (OSError, IndexError, ValueError) as exc:
            log.error("fork server %d: control channel failed: %s", self.process.pid, exc)
        finally:
            self.closed = True
            for future in self._exits.values():
                if not future.done():
                    future.set_result(SERVER_LOST)
            self._ready.put_nowait(SandboxUnavailable("the Python fork server exited"))

    async def fork(
        self,
        policy: SandboxPolicy,
        cgroups: CgroupManager | None,
        cleanups: CleanupTasks,
        output_limit_bytes: int,
    ) -> ForkedWorker:
        """Ask for one more isolated child; returns once the server has forked it."""
        if not self.alive:
            raise SandboxUnavailable("the Python fork server is not running")
        self.control.send(protocol.FORK)
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
            cgroup = cgroups.create(policy.max_processes + ForkedWorker.own_threads, memory=False)
        return ForkedWorker(ns_pid, sock, exited, policy, cgroup, cleanups, output_limit_bytes)

    async def close(self) -> None:
        """Kill the server's jail (and every child in it)."""
        self.closed = True
        if self.process.returncode is None:  # (os.kill: send_signal() may reap behind asyncio)
            log.info("python fork server: SIGKILL to pid %d", self.process.pid)
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

    own_threads = 2  # a snippet's own threads count; the runner itself starts none
    rlimit_descendants = False  # the child is the whole execution: nothing below it yet

    def __init__(
        self,
        ns_pid: int,
        sock: socket.socket,
        exited: asyncio.Future[int],
        policy: SandboxPolicy,
        cgroup: CgroupSlot | None,
        cleanups: CleanupTasks,
        output_limit_bytes: int,
    ) -> None:
        super().__init__(Language.PYTHON, policy, cgroup, cleanups, output_limit_bytes)
        self.ns_pid = ns_pid
        self._sock = sock
        self._exited = exited

    def _no_result_error(
        self, returncode: int | None, memory_hit: bool, memory_mb: int
    ) -> ErrorDetail:
        if returncode == SERVER_LOST:
            return ErrorDetail(
                type=ErrorType.SANDBOX_ERROR,
                message="the Python fork server was lost during the execution; "
                "it has been replaced, retry the request",
            )
        return super()._no_result_error(returncode, memory_hit, memory_mb)

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait for READY; learn the child's host pid and put it in its cgroup."""
        ucred_space = socket.CMSG_SPACE(_UCRED.size)
        try:
            data, ancdata = await asyncio.wait_for(_recvmsg(self._sock, ucred_space), timeout_s)
        except (TimeoutError, OSError):
            data, ancdata = b"", []
        host_pid = 0
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                host_pid = _UCRED.unpack(payload[: _UCRED.size])[0]
        if data != protocol.READY or not host_pid:
            await self.kill()
            raise SandboxUnavailable("a Python fork-server child did not come up")
        self._handle = PidHandle(host_pid, "python child")
        if self._cgroup:
            self._cgroup.add(host_pid)
        self._became_ready()

    async def _deliver(self, job: bytes) -> None:
        job_r, job_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        try:
            socket.send_fds(self._sock, [protocol.JOB], [job_r, out_w, err_w, res_w])
        except OSError as exc:  # it died idle (e.g. with its fork server)
            for fd in (job_w, out_r, err_r, res_r):
                os.close(fd)
            raise WorkerLost(f"the child died before its job: {exc}") from exc
        finally:
            for fd in (job_r, out_w, err_w, res_w):
                os.close(fd)
        # As much of the job as the pipe holds goes in before the child has said STARTED,
        # so that the child's wake-up overlaps this side's work (a child that died before
        # taking the message never reads it; the job then goes to another worker).
        view = memoryview(job)
        os.set_blocking(job_w, False)
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            while view:
                view = view[os.write(job_w, view[: 1 << 16]) :]
        self._stdout = Capture(await open_reader(out_r), self._output_limit)
        self._stderr = Capture(await open_reader(err_r), self._output_limit)
        self._result = await open_reader(res_r, 2**31)
        try:  # a child killed at this very moment may still have taken the message
            started, _ = await asyncio.wait_for(_recvmsg(self._sock, 0), 5)
        except (TimeoutError, OSError):
            started = b""
        if started != protocol.STARTED:
            os.close(job_w)  # (the readers end with the child's copies of the pipes)
            raise WorkerLost("the child died as it was handed its job")
        try:  # the rest, as the child reads it
            while view:
                try:
                    view = view[os.write(job_w, view[: 1 << 16]) :]
                except BlockingIOError:
                    await _writable(job_w)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            os.close(job_w)

    @property
    def alive(self) -> bool:
        return not self._exited.done() and super().alive

    async def _wait_exit(self) -> int | None:
        return await asyncio.shield(self._exited)

    def _exit_code(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    def _abandon(self) -> None:
        self._sock.close()  # not yet ready: it exits when its socket closes

    async def _release(self) -> None:
        self._sock.close()


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_writer(fd, _wake, ready)
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
        jail_files: JailFiles,
        cgroups: CgroupManager | None,
        cleanups: CleanupTasks,
        output_limit_bytes: int,
        packages: PythonPackageSetup = ((), ()),
    ) -> None:
        self._slots: list[ForkServer | None] = [None] * max(1, count)
        self._packages = packages
        self._starting: list[asyncio.Future[ForkServer] | None] = [None] * len(self._slots)
        self._next = 0
        self._policy = policy
        self._server_filter = server_filter
        self._jail_files = jail_files
        self._cgroups = cgroups
        self._cleanups = cleanups
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
            log.warning("fork server %d (pid %d) died; starting a new one", index, old.process.pid)
            await old.close()
        server = await ForkServer.start(
            self._policy, self._server_filter, self._jail_files, self._packages
        )
        self._slots[index] = server
        self._starting[index] = None
        return server

    async def spawn(self) -> ForkedWorker:
        """A new child from the next fork server (restarting it if it died)."""
        index = self._next
        self._next = (self._next + 1) % len(self._slots)
        server = await self._server(index)
        return await server.fork(self._policy, self._cgroups, self._cleanups, self._output_limit)

    def servers(self) -> list[ForkServer]:
        """The fork servers running now."""
        return [s for s in self._slots if s is not None and s.alive]

    async def close(self) -> None:
        """Close every fork server, including any still starting."""
        for starting in self._starting:
            if starting is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(starting), 30)
        for server in self._slots:
            if server is not None:
                await server.close()
