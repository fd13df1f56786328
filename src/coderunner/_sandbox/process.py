"""One jailed runtime process, used for exactly one execution, driven from the host.

`JailedProcess` is what every worker shares: the lifecycle (`WorkerState`), a pidfd
handle for liveness and kills, the rlimits set from outside, the job sent and the frame
read back (`protocol`), the outcome interpreted into an ExecutionResult, and teardown.
Subclasses in `coderunner._runtimes` say how their runner starts, how the job reaches
it and how its exit status is learnt.  Everything here runs in the service process.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import resource
import select
import signal
import time
from collections.abc import Coroutine
from typing import Any

from .._errors import SandboxUnavailable
from .._jail import protocol
from .._json import check_large, strict_loads
from .._models import ErrorDetail, ErrorType, ExecutionResult, Language
from .cgroup import CgroupSlot
from .policy import SandboxPolicy

log = logging.getLogger("coderunner.sandbox")

# Room for the header line on top of the largest result.
FRAME_OVERHEAD = 64 * 1024


class WorkerLost(Exception):
    """The worker died before it received its job; the job can run on another one."""


class WorkerState(enum.Enum):
    """Lifecycle of a worker; it only moves forward."""

    STARTING = "starting"  # the jail is being built; the runner is importing its modules
    READY = "ready"  # the runner waits for its job (it has run no user code)
    RUNNING = "running"  # the job was sent
    DONE = "done"  # result collected or killed; the jail is being torn down


class PidHandle:
    """A pidfd on a jailed process: liveness and SIGKILL that pid reuse cannot fool.

    (asyncio's Process.send_signal() polls, which may reap the child behind the event
    loop's back and lose its exit status; a pidfd does neither.)
    """

    def __init__(self, pid: int, what: str) -> None:
        self.pid = pid
        self.what = what
        self._fd: int | None = os.pidfd_open(pid)
        log.debug("%s up: pid %d", what, pid)

    def exited(self) -> bool:
        """Whether the process has exited (reaped or not): its pidfd turns readable."""
        return self._fd is None or bool(select.select([self._fd], [], [], 0)[0])

    def kill(self, tree: bool = False) -> None:
        """SIGKILL, without waiting; nothing happens if it is already gone.

        `tree`: the process is a bubblewrap whose clone is the jail's init.  That clone
        arms PR_SET_PDEATHSIG only once it runs, so a bwrap killed in between leaves it
        and the runtime behind, alive, outside any process this service knows (a pids
        cgroup would still catch them; an unprivileged service may have none).  So the
        bwrap is stopped first (a stopped process cannot clone), its children are
        killed, then it is.
        """
        if self._fd is None or self.exited():
            return
        log.debug("%s: SIGKILL to pid %d", self.what, self.pid)
        if tree:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._fd, signal.SIGSTOP)
            _wait_stopped(self.pid)
            # (a child that exited meanwhile stays a zombie of the stopped parent: its pid
            # cannot be reused before the kill below)
            for child in _children(self.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self._fd, signal.SIGKILL)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def take_result(result: ExecutionResult, data: bytes) -> protocol.Frame:
    """Read a result channel's frame the host's way (its fast decoder; a large result
    checked but left undecoded) and put an ok frame's result into `result`; the frame,
    for the caller to interpret anything else."""
    frame = protocol.decode_frame(data, strict_loads, check_large)
    if frame.deferred:
        assert frame.body is not None
        result.defer_result(frame.body)
    elif frame.ok:
        result.ok, result.result = True, frame.value
        result.keep_result_json(frame.body)
    return frame


class CleanupTasks:
    """Teardown that runs after an answer has gone out; the owner waits for it on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)  # a reference, so the task is not collected mid-way
        task.add_done_callback(self._tasks.discard)

    async def wait(self, timeout_s: float = 10.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)


class Capture:
    """Reads a stream to EOF, keeping at most ``limit`` bytes."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.limit = limit
        self.task = asyncio.ensure_future(self._drain(reader))

    async def _drain(self, reader: asyncio.StreamReader) -> None:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            room = self.limit - self.size
            if room > 0:
                self.chunks.append(chunk[:room])
                self.size += min(room, len(chunk))
            if len(chunk) > room:
                self.truncated = True  # keep draining so the snippet never blocks

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


async def open_reader(fd: int, limit: int = 1 << 16) -> asyncio.StreamReader:
    """An asyncio reader over the read end of a pipe or FIFO (it takes over the fd)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0)
    )
    return reader


def _children(pid: int) -> list[int]:
    """The direct children of `pid`, through /proc/PID/task/TID/children."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
    return found


def _wait_stopped(pid: int, limit_s: float = 0.5) -> None:
    """Wait (briefly, bounded) until `pid` is stopped, dead or gone."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return
        if state in ("T", "t", "Z", "X"):
            return
        time.sleep(0.0002)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, through /proc/PID/task/TID/children."""
    found: list[int] = []
    queue = [pid]
    while queue:
        current = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            found.extend(children)
            queue.extend(children)
    return found


def set_rlimits(
    pid: int, limits: tuple[tuple[int, int], ...], *, descendants_too: bool = True
) -> None:
    """Set hard and soft limits on `pid` (and everything below it) with prlimit, from
    outside the jail.

    Fails closed: SandboxUnavailable when a limit cannot be set on a live process (run
    as an unprivileged user, RLIMIT_NPROC is the jail's only process-count wall where
    there is no pids cgroup).  A process that has exited meanwhile needs no limit.
    """
    for target in (pid, *descendants(pid)) if descendants_too else (pid,):
        for which, value in limits:
            try:
                resource.prlimit(target, which, (value, value))
            except ProcessLookupError:
                break
            except OSError as exc:
                raise SandboxUnavailable(
                    f"cannot set resource limit {which} of jailed process {target}: {exc}"
                ) from exc


class JailedProcess:
    """A jailed runner that serves one execution: send the job, read the frame, interpret.

    Args:
        language: the runtime's language.
        policy: the sandbox policy (its rlimits are set on the jail when it is ready).
        cgroup: this worker's cgroup slot, if the host has cgroups.
        cleanups: where teardown after the answer is registered.
        output_limit_bytes: the cap on captured stdout and on stderr, each.
    """

    own_threads = 0  # threads the runtime itself starts (they count against NPROC)
    # Whether the jail's pid has descendants when ready (bwrap does; a fork-server child
    # is the whole execution itself, and walking /proc for nothing costs ~0.1 ms).
    rlimit_descendants = True
    memory_overhead_mb = 0  # what the warm runtime needs besides the snippet (cgroup limit)

    def __init__(
        self,
        language: Language,
        policy: SandboxPolicy,
        cgroup: CgroupSlot | None,
        cleanups: CleanupTasks,
        output_limit_bytes: int,
    ) -> None:
        self.language = language
        self.policy = policy
        self.state = WorkerState.STARTING
        self._cgroup = cgroup
        self._cleanups = cleanups
        self._output_limit = output_limit_bytes
        self._handle: PidHandle | None = None
        self._result: asyncio.StreamReader | None = None
        self._stdout: Capture | None = None
        self._stderr: Capture | None = None

    # -- what a runtime provides -------------------------------------------------------

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait for READY, then call `_became_ready`; SandboxUnavailable if it never comes."""
        raise NotImplementedError

    async def _deliver(self, job: bytes) -> None:
        """Hand the job over; WorkerLost unless the runner answered STARTED."""
        raise NotImplementedError

    async def _wait_exit(self) -> int | None:
        """Wait for the runner's exit status (as subprocess reports it)."""
        raise NotImplementedError

    def _exit_code(self) -> int | None:
        """The exit status if it is known yet."""
        raise NotImplementedError

    def _abandon(self) -> None:
        """Make a runner that never became ready go away (no pid is known to kill)."""

    async def _release(self) -> None:
        """Remove what this runtime left on the host (after the process is gone)."""

    # -- shared -------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The host pid the worker is killed through (bwrap, or the fork-server child)."""
        return self._handle.pid if self._handle else None

    def _became_ready(self) -> None:
        """The runner is up and idle: set the jail's rlimits from outside, now, while it
        runs none of the snippet's code."""
        assert self._handle is not None
        set_rlimits(
            self._handle.pid,
            self.policy.rlimits(self.own_threads),
            descendants_too=self.rlimit_descendants,
        )
        self.state = WorkerState.READY

    @property
    def alive(self) -> bool:
        return self._handle is not None and not self._handle.exited()

    def _limit_memory(self, memory_mb: int) -> None:
        """Per-job memory limits set from the host (the memory cgroup, where there is one)."""
        if self._cgroup:
            overhead = self.memory_overhead_mb + 16
            self._cgroup.set_memory_limit((memory_mb + overhead) * 1024 * 1024)

    def _terminate(self) -> None:
        """Send the kill (the jail's process, and its cgroup); do not wait."""
        self.state = WorkerState.DONE
        if self._handle is not None:
            # a bwrap (not a fork-server child, which is its jail's init itself)
            self._handle.kill(tree=self.rlimit_descendants)
        else:
            self._abandon()
        if self._cgroup:
            self._cgroup.kill_all()

    async def _reap(self) -> None:
        """Wait for the exit (bounded) and remove what the worker left on the host."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._wait_exit(), 5)
        if self._handle is not None:
            self._handle.close()
        await self._release()
        if self._cgroup:
            for _ in range(100):
                if self._cgroup.remove():
                    return
                self._cgroup.kill_all()
                await asyncio.sleep(0.01)
            log.warning("could not remove cgroup %s", self._cgroup.dirs)

    async def kill(self) -> None:
        """Kill the worker and wait until it is gone."""
        self._terminate()
        await self._reap()

    # -- one execution ------------------------------------------------------------------

    async def execute(
        self,
        code: str,
        inputs: dict[str, Any],
        timeout_ms: int,
        memory_mb: int,
        result_limit_bytes: int,
        language: Language | None = None,
    ) -> ExecutionResult:
        """Send the job, wait for its result or the deadline, then tear the jail down.

        `language`: the snippet's, when the runtime runs more than one (TypeScript on the
        JavaScript runtime); default: the runtime's own.
        """
        assert self.state is WorkerState.READY, self.state
        self.state = WorkerState.RUNNING
        language = language or self.language
        try:
            self._limit_memory(memory_mb)
        except SandboxUnavailable:
            await self.kill()  # never run a job without its limits
            raise
        job = protocol.encode_job(
            protocol.Job(
                code=code,
                inputs=inputs,
                memory_mb=memory_mb,
                result_limit_bytes=result_limit_bytes,
                language=language.value,
            )
        )
        started = time.perf_counter()
        await self._deliver(job)
        assert self._result is not None and self._stdout and self._stderr
        result_task = asyncio.ensure_future(
            _read_to_eof(self._result, result_limit_bytes + FRAME_OVERHEAD)
        )
        exit_task = asyncio.ensure_future(self._wait_exit())
        timed_out = False
        try:
            await asyncio.wait_for(
                asyncio.shield(_first_meaningful(result_task, exit_task)), timeout_ms / 1000
            )
        except TimeoutError:
            timed_out = True
        duration_ms = (time.perf_counter() - started) * 1000
        data = result_task.result() if result_task.done() and not result_task.cancelled() else b""
        # The execution is over: kill whatever is left of it now (daemons, threads), so
        # the output pipes reach EOF; reaping and clean-up need not delay the answer.
        self._terminate()
        result_task.cancel()
        exit_task.cancel()
        await asyncio.wait({self._stdout.task, self._stderr.task}, timeout=2)
        memory_hit = self._cgroup.memory_exceeded() if self._cgroup else False
        if protocol.has_header(data) and not timed_out:
            self._cleanups.spawn(self._reap())
            returncode = None
        else:  # how it ended matters (a crash, a memory kill): wait for the exit status
            await self._reap()
            returncode = self._exit_code()
        result = ExecutionResult(
            ok=False,
            language=language,
            duration_ms=round(duration_ms, 3),
            stdout=self._stdout.text(),
            stderr=self._stderr.text(),
            stdout_truncated=self._stdout.truncated,
            stderr_truncated=self._stderr.truncated,
        )
        if timed_out:
            result.error = ErrorDetail(
                type=ErrorType.TIMEOUT,
                message=f"the snippet ran longer than its {timeout_ms} ms limit and was killed",
            )
            return result
        self._interpret(result, data, returncode, memory_hit, memory_mb, result_limit_bytes)
        return result

    def _interpret(
        self,
        result: ExecutionResult,
        data: bytes,
        returncode: int | None,
        memory_hit: bool,
        memory_mb: int,
        result_limit_bytes: int,
    ) -> None:
        frame = take_result(result, data)
        if frame.ok:
            return
        if frame.error is not None:
            result.error = ErrorDetail.model_validate(frame.error)
            if result.error.type is ErrorType.MEMORY_LIMIT:
                result.error.message = f"the snippet went over its memory limit of {memory_mb} MB"
            return
        if len(data) > result_limit_bytes:
            result.error = ErrorDetail(
                type=ErrorType.OUTPUT_LIMIT, message="the result is too large"
            )
        elif frame.garbage is not None and returncode in (0, None):
            # The runner writes one well-formed frame; anything else came from the snippet
            # writing into the result channel itself.
            result.error = ErrorDetail(
                type=ErrorType.RUNTIME_ERROR,
                name="ResultChannel",
                message="the result channel holds data the runner did not write "
                f"({frame.garbage}; did the snippet write to file descriptor "
                f"{protocol.RESULT_FD}?)",
            )
        else:
            result.error = self._no_result_error(returncode, memory_hit, memory_mb)

    def _no_result_error(
        self, returncode: int | None, memory_hit: bool, memory_mb: int
    ) -> ErrorDetail:
        """Why a runner that wrote no frame ended: a memory kill, or an exit."""
        if memory_hit:
            return ErrorDetail(
                type=ErrorType.MEMORY_LIMIT,
                message=f"the snippet went over its memory limit of {memory_mb} MB and was killed",
            )
        how = (
            f"was killed by signal {-returncode}"
            if returncode is not None and returncode < 0
            else f"exited with status {returncode}"
        )
        return ErrorDetail(
            type=ErrorType.RUNTIME_ERROR,
            name="Exit",
            message=f"the snippet's process {how} before returning a result",
        )


async def _first_meaningful(
    result_task: asyncio.Future[bytes], exit_task: asyncio.Future[Any]
) -> None:
    """Return once the runner closed its result channel or the jail exited."""
    await asyncio.wait({result_task, exit_task}, return_when=asyncio.FIRST_COMPLETED)
    if exit_task.done() and not result_task.done():
        # The jail is gone; whatever reached the result channel is all there is.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(result_task), 1)
    elif not exit_task.done() and not protocol.has_header(result_task.result()):
        # The channel closed with no result: the runtime is dying (a V8 heap abort, an
        # exit).  Its own exit status says which, so wait for it before we kill.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(exit_task), 1)


async def _read_to_eof(reader: asyncio.StreamReader, limit: int) -> bytes:
    """Everything up to EOF, or the first ``limit`` + 1 bytes (more is over any limit)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await reader.read(min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
