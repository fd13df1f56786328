"""One pre-started jailed runtime process, used for exactly one execution.

All of this runs in the service process (the host side); the code inside the jail is
``runtimes/python_runner.py`` or ``runtimes/js_runner.mjs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import resource
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from ._cgroup import CgroupManager, CgroupSlot
from ._errors import SandboxUnavailable
from ._models import ErrorDetail, ErrorType, ExecutionResult, Language
from ._policy import JAIL_DENO, JAIL_RUNNER_DIR, SandboxPolicy, bwrap_argv

log = logging.getLogger("coderunner.worker")

# Moves the shell into each cgroup named before "--", then becomes the command after it.
_JOIN_CGROUP = (
    'unset PWD OLDPWD; while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; '
    'shift; exec "$@"'
)


# Room for the header line on top of the largest result.
_FRAME_OVERHEAD = 64 * 1024
# Memory a warm runtime needs on top of the snippet's own (cgroup limits only).
_RUNTIME_OVERHEAD_MB = {Language.PYTHON: 64, Language.JAVASCRIPT: 192}


@dataclass(frozen=True)
class Runtime:
    """How to start one language's runner inside the jail."""

    language: Language
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    # Threads the runtime itself starts; they count against the process limit.
    own_threads: int = 4

    @classmethod
    def javascript(cls, memory_mb: int) -> Runtime:
        # No --allow-* but the scratch /tmp and the result FIFO: Deno's permissions
        # are a second wall behind the jail (no net, env, run, ffi, sys).
        return cls(
            Language.JAVASCRIPT,
            (
                JAIL_DENO,
                "run",
                "--no-prompt",
                "--no-config",
                "--no-lock",
                "--no-remote",
                "--no-npm",
                "--allow-read=/tmp",
                "--allow-write=/tmp,/run/result",
                f"--v8-flags=--max-old-space-size={memory_mb},--stack-size=2048",
                f"{JAIL_RUNNER_DIR}/js_runner.mjs",
            ),
            env=(("DENO_DIR", "/tmp/.deno"), ("NO_COLOR", "1"), ("DENO_NO_UPDATE_CHECK", "1")),
            own_threads=48,
        )


class WorkerLost(Exception):
    """The worker died before it received its job; the job can run on another one."""


class WorkerState(enum.Enum):
    """Lifecycle of a worker; it only moves forward."""

    STARTING = "starting"  # bwrap spawned; the runner is importing its modules
    READY = "ready"  # the runner waits for its job
    RUNNING = "running"  # the job was sent
    DONE = "done"  # result collected or killed; the jail is being torn down


class _Capture:
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

    def data(self) -> bytes:
        return b"".join(self.chunks)

    def text(self) -> str:
        return self.data().decode("utf-8", errors="replace")


class JailedProcess:
    """What every worker shares: send one job, collect its result, interpret the outcome.

    Subclasses say how the job reaches the jailed runner, how its exit is observed
    and how it is killed (a whole bwrap jail, or a child of the fork server).
    """

    runtime: Runtime
    state: WorkerState
    _cgroup: CgroupSlot | None
    _result: asyncio.StreamReader | None
    _stdout: _Capture | None
    _stderr: _Capture | None

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        raise NotImplementedError

    async def _deliver(self, job: bytes) -> None:
        raise NotImplementedError

    async def _wait_exit(self) -> int | None:
        raise NotImplementedError

    def _exit_code(self) -> int | None:
        raise NotImplementedError

    def _limit_memory(self, memory_mb: int) -> None:
        """Per-job memory limits set from the host (the cgroup; for Deno, RLIMIT_DATA)."""
        if self._cgroup:
            overhead = _RUNTIME_OVERHEAD_MB[self.runtime.language] + 16
            self._cgroup.set_memory_limit((memory_mb + overhead) * 1024 * 1024)

    @property
    def alive(self) -> bool:
        raise NotImplementedError

    def _terminate(self) -> None:
        """Send the kill (SIGKILL to the jail, and to its cgroup); do not wait."""
        raise NotImplementedError

    async def _reap(self) -> None:
        """Wait for the exit (bounded) and remove what the worker left on the host."""
        raise NotImplementedError

    async def kill(self) -> None:
        """Kill the worker and wait until it is gone."""
        self.state = WorkerState.DONE
        self._terminate()
        await self._reap()

    async def _remove_cgroup(self) -> None:
        if self._cgroup:
            for _ in range(100):
                if self._cgroup.remove():
                    return
                self._cgroup.kill_all()
                await asyncio.sleep(0.01)
            log.warning("could not remove cgroup %s", self._cgroup.dirs)

    # -- run -------------------------------------------------------------------------

    async def execute(
        self,
        code: str,
        inputs: dict[str, Any],
        timeout_ms: int,
        memory_mb: int,
        result_limit_bytes: int,
    ) -> ExecutionResult:
        """Send the job, wait for its result or the deadline, then tear the jail down."""
        assert self.state is WorkerState.READY, self.state
        self.state = WorkerState.RUNNING
        language = self.runtime.language
        self._limit_memory(memory_mb)
        job = json.dumps(
            {
                "code": code,
                "inputs": inputs,
                "memory_mb": memory_mb,
                "result_limit_bytes": result_limit_bytes,
            },
            ensure_ascii=False,
        ).encode("utf-8", "surrogatepass")
        started = time.perf_counter()
        await self._deliver(job)
        assert self._result is not None
        result_task = asyncio.ensure_future(
            _read_to_eof(self._result, result_limit_bytes + _FRAME_OVERHEAD)
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
        frame = result_task.result() if result_task.done() and not result_task.cancelled() else b""
        # The execution is over: kill whatever is left of it now (daemons, threads), so
        # the output pipes reach EOF; reaping and clean-up need not delay the answer.
        self._terminate()
        result_task.cancel()
        exit_task.cancel()
        assert self._stdout is not None and self._stderr is not None
        await asyncio.wait({self._stdout.task, self._stderr.task}, timeout=2)
        memory_hit = self._cgroup.memory_exceeded() if self._cgroup else False
        if _has_header(frame) and not timed_out:
            _in_background(self._reap())
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
        self._interpret(result, frame, returncode, memory_hit, memory_mb, result_limit_bytes)
        return result

    def _interpret(
        self,
        result: ExecutionResult,
        frame: bytes,
        returncode: int | None,
        memory_hit: bool,
        memory_mb: int,
        result_limit_bytes: int,
    ) -> None:
        header_line, newline, body = frame.partition(b"\n")
        header: dict[str, Any] | None = None
        if newline:
            with contextlib.suppress(ValueError):
                header = json.loads(header_line)
        if not isinstance(header, dict) or "ok" not in header:
            result.error = self._no_result_error(
                returncode, memory_hit, memory_mb, len(frame) > result_limit_bytes
            )
            return
        if header["ok"] is True:
            try:
                result.result = json.loads(body)
            except (ValueError, RecursionError):
                # The runner writes one well-formed frame; anything else came from the
                # snippet writing into the result channel itself.
                result.error = ErrorDetail(
                    type=ErrorType.RUNTIME_ERROR, name="ResultChannel",
                    message="the result channel holds data the runner did not write "
                    "(did the snippet write to file descriptor 3?)",
                )  # fmt: skip
                return
            result.ok = True
            return
        try:
            result.error = ErrorDetail.model_validate(header.get("error"))
        except ValueError:
            result.error = ErrorDetail(
                type=ErrorType.RUNTIME_ERROR, name="ResultChannel",
                message="the result channel holds data the runner did not write",
            )  # fmt: skip
        if result.error.type is ErrorType.SANDBOX_ERROR:  # only the host says that
            result.error.type = ErrorType.RUNTIME_ERROR
        if result.error.type is ErrorType.MEMORY_LIMIT:
            result.error.message = f"the snippet went over its memory limit of {memory_mb} MB"

    def _no_result_error(
        self, returncode: int | None, memory_hit: bool, memory_mb: int, too_big: bool
    ) -> ErrorDetail:
        if too_big:
            return ErrorDetail(type=ErrorType.OUTPUT_LIMIT, message="the result is too large")
        # V8 dies with SIGTRAP (or SIGABRT) when its heap limit is reached.
        v8_oom = self.runtime.language is Language.JAVASCRIPT and returncode in (
            -signal.SIGTRAP,
            -signal.SIGABRT,
            128 + signal.SIGTRAP,
            128 + signal.SIGABRT,
        )
        if memory_hit or v8_oom:
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


class Worker(JailedProcess):
    """A whole bwrap jail started ahead of demand; ``execute`` may be called once."""

    def __init__(
        self,
        runtime: Runtime,
        process: asyncio.subprocess.Process,
        result_reader: asyncio.StreamReader,
        result_keepalive: int,
        workdir: str,
        cgroup: CgroupSlot | None,
        output_limit_bytes: int,
        policy: SandboxPolicy,
    ) -> None:
        self.runtime = runtime
        self._policy = policy
        self.process = process
        self._pidfd: int | None = os.pidfd_open(process.pid)
        self.state = WorkerState.STARTING
        self._result = result_reader
        self._keepalive: int | None = result_keepalive
        self._workdir = workdir
        self._cgroup = cgroup
        self._stdout = _Capture(process.stdout, output_limit_bytes)  # type: ignore[arg-type]
        self._stderr = _Capture(process.stderr, output_limit_bytes)  # type: ignore[arg-type]

    # -- start ---------------------------------------------------------------------

    @classmethod
    async def spawn(
        cls,
        runtime: Runtime,
        policy: SandboxPolicy,
        jail_filter: bytes,
        statedir: str,
        cgroups: CgroupManager | None,
        output_limit_bytes: int,
    ) -> Worker:
        """Start a jailed runner (called in the service process)."""
        workdir = tempfile.mkdtemp(prefix="w-", dir=statedir)
        fifo = os.path.join(workdir, "result")
        os.mkfifo(fifo, 0o600)
        # Our own write end keeps the FIFO from reading as EOF before the runner opens it.
        read_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        keepalive = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        seccomp_fd = os.memfd_create("coderunner-seccomp", 0)
        os.write(seccomp_fd, jail_filter)
        os.lseek(seccomp_fd, 0, os.SEEK_SET)
        argv = bwrap_argv(
            policy,
            list(runtime.command),
            seccomp_fd=seccomp_fd,
            result_fifo=fifo,
            extra_env=runtime.env,
        )
        cgroup = None
        if cgroups and cgroups.available:
            cgroup = cgroups.create(policy.max_processes + runtime.own_threads)
            # Join the cgroup before bwrap forks anything: a tiny shell does it and then
            # execs bwrap.  (A Python preexec_fn would force a full fork() of this service,
            # ~5 ms that block the event loop; without one, subprocess uses vfork.)
            argv = ["/bin/sh", "-c", _JOIN_CGROUP, "sh", *cgroup.procs_files(), "--", *argv]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(seccomp_fd,),
                env={},  # bwrap's own environment shows in /proc/1/environ: keep it empty
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (read_fd, keepalive):
                os.close(fd)
            shutil.rmtree(workdir, ignore_errors=True)
            if cgroup:
                cgroup.remove()
            raise SandboxUnavailable(f"cannot start bubblewrap: {exc}") from exc
        finally:
            os.close(seccomp_fd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**31, loop=loop)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(read_fd, "rb", 0)
        )
        return cls(
            runtime,
            process,
            reader,
            keepalive,
            workdir,
            cgroup,
            output_limit_bytes,
            policy,
        )

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait for the runner's ready line; raise SandboxUnavailable if it never comes."""
        line_task = asyncio.ensure_future(self._result.readline())
        exit_task = asyncio.ensure_future(self.process.wait())
        try:
            # A runtime that dies while starting (e.g. too little memory) ends the wait.
            await asyncio.wait(
                {line_task, exit_task}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            line = line_task.result() if line_task.done() else b""
        finally:
            line_task.cancel()
            exit_task.cancel()
            if self._keepalive is not None:
                os.close(self._keepalive)
                self._keepalive = None
        if line != b"ready\n":
            await self.kill()
            await asyncio.wait({self._stderr.task}, timeout=1)
            detail = self._stderr.text().strip()[-2000:] or "no output"
            raise SandboxUnavailable(
                f"the {self.runtime.language.value} jail did not start "
                f"(exit {self.process.returncode}): {detail}"
            )
        self.state = WorkerState.READY
        # Limits of the jailed processes, set before the job (the runner is ours until
        # then).  RLIMIT_NPROC is a second process-count wall beside the pids cgroup,
        # effective where the jail's user is not root on the host (root is exempt).
        for which, value in (
            (resource.RLIMIT_NPROC, self._policy.max_processes + self.runtime.own_threads),
            (resource.RLIMIT_NOFILE, self._policy.max_open_files),
            (resource.RLIMIT_FSIZE, self._policy.max_file_mb * 1024 * 1024),
            (resource.RLIMIT_CORE, 0),
        ):
            self._limit_descendants(which, value)

    def _limit_descendants(self, which: int, value: int) -> None:
        for pid in _descendants(self.process.pid):
            with contextlib.suppress(OSError):
                resource.prlimit(pid, which, (value, value))

    @property
    def alive(self) -> bool:
        if self.process.returncode is not None:
            return False
        # Exited but not yet reaped by the event loop?  The pidfd turns readable.
        return self._pidfd is not None and not select.select([self._pidfd], [], [], 0)[0]

    async def _deliver(self, job: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(job)
            await stdin.drain()
            stdin.close()
        except (BrokenPipeError, ConnectionResetError) as exc:
            # The runner reads the whole job before it runs anything: it died idle.
            raise WorkerLost(f"the worker died before its job: {exc}") from exc
        assert self._result is not None
        try:  # a runtime killed at this very moment may still have taken the job
            started = await asyncio.wait_for(self._result.readline(), 30)
        except (TimeoutError, ValueError):
            started = b""
        if started != b"started\n":
            raise WorkerLost("the worker died as it was handed its job")

    async def _wait_exit(self) -> int | None:
        return await self.process.wait()

    def _exit_code(self) -> int | None:
        return self.process.returncode

    def _limit_memory(self, memory_mb: int) -> None:
        super()._limit_memory(memory_mb)
        if self.runtime.language is Language.JAVASCRIPT:
            # V8's heap limit is the main wall; this caps ArrayBuffers and the rest.
            self._limit_descendants(resource.RLIMIT_DATA, (memory_mb * 2 + 512) * 1024 * 1024)

    # -- teardown ----------------------------------------------------------------------

    def _terminate(self) -> None:
        """SIGKILL to bwrap: --die-with-parent takes its pid namespace, and all in it, along."""
        self.state = WorkerState.DONE
        # Through the pidfd: Process.send_signal() polls, which may reap the child
        # behind the event loop's back (and lose its exit status).
        if self.process.returncode is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        if self._cgroup:
            self._cgroup.kill_all()

    async def _reap(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 5)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self._keepalive is not None:
            os.close(self._keepalive)
            self._keepalive = None
        shutil.rmtree(self._workdir, ignore_errors=True)
        await self._remove_cgroup()


async def _first_meaningful(result_task: asyncio.Future, exit_task: asyncio.Future) -> None:
    """Return once the runner closed its result channel or the jail exited."""
    await asyncio.wait({result_task, exit_task}, return_when=asyncio.FIRST_COMPLETED)
    if exit_task.done() and not result_task.done():
        # The jail is gone; whatever reached the result channel is all there is.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(result_task), 1)
    elif not exit_task.done() and not _has_header(result_task.result()):
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


_BACKGROUND: set[asyncio.Task[None]] = set()


def _in_background(coroutine: Any) -> None:
    """Run clean-up after the answer; keep a reference so the task is not collected."""
    task = asyncio.ensure_future(coroutine)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


async def wait_for_cleanups(timeout_s: float = 10.0) -> None:
    """Wait for clean-ups still running (called when an engine closes)."""
    if _BACKGROUND:
        await asyncio.wait(set(_BACKGROUND), timeout=timeout_s)


def _has_header(frame: bytes) -> bool:
    header, newline, _ = frame.partition(b"\n")
    return bool(newline) and header.startswith(b"{")


def _descendants(pid: int) -> list[int]:
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
