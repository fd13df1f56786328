"""JavaScript: single-use Deno runtimes, each in a whole bubblewrap jail of its own.

Started ahead of demand; each serves one execution and is then killed with its jail.
Runs in the service process; the jailed side is ``_jail/js_runner.mjs``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import tempfile

from .._errors import SandboxUnavailable
from .._jail import protocol
from .._models import ErrorDetail, Language
from .._sandbox.bwrap import bwrap_argv, start_jail
from .._sandbox.cgroup import CgroupManager, CgroupSlot
from .._sandbox.policy import SandboxPolicy
from .._sandbox.process import (
    Capture,
    CleanupTasks,
    JailedProcess,
    PidHandle,
    WorkerLost,
    WorkerState,
    open_reader,
    set_rlimits,
)

# Deno's own environment inside the jail (on top of the policy's).
DENO_ENV = (("DENO_DIR", "/tmp/.deno"), ("NO_COLOR", "1"), ("DENO_NO_UPDATE_CHECK", "1"))

# V8 dies with SIGTRAP (or SIGABRT) when its heap limit is reached.
_V8_HEAP_ABORTS = (
    -signal.SIGTRAP,
    -signal.SIGABRT,
    128 + signal.SIGTRAP,
    128 + signal.SIGABRT,
)


def deno_command(
    memory_mb: int, policy: SandboxPolicy, packages: tuple[str, ...] = ()
) -> list[str]:
    """The runner's argv inside the jail: Deno with no permissions but the policy's, and
    V8's heap fixed at `memory_mb` (it cannot change once V8 has started).  `packages`:
    the vetted npm packages (`name@version`), the runner's one argument, for the message
    of an import of anything else."""
    return [
        protocol.DENO,
        "run",
        *policy.deno_permissions,
        f"--v8-flags=--max-old-space-size={memory_mb},--stack-size=2048",
        f"{protocol.RUNNER_DIR}/js_runner.mjs",
        ",".join(packages),
    ]


class DenoWorker(JailedProcess):
    """A whole bwrap jail running Deno, started ahead of demand; serves one execution."""

    own_threads = 48  # V8 and tokio worker threads
    memory_overhead_mb = 192

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        result: asyncio.StreamReader,
        keepalive: int,
        workdir: str,
        policy: SandboxPolicy,
        cgroup: CgroupSlot | None,
        cleanups: CleanupTasks,
        output_limit_bytes: int,
    ) -> None:
        super().__init__(Language.JAVASCRIPT, policy, cgroup, cleanups, output_limit_bytes)
        self.process = process
        self._handle = PidHandle(process.pid, "deno jail")
        self._result = result
        self._keepalive: int | None = keepalive
        self._workdir = workdir
        assert process.stdout is not None and process.stderr is not None
        self._stdout = Capture(process.stdout, output_limit_bytes)
        self._stderr = Capture(process.stderr, output_limit_bytes)

    @classmethod
    async def spawn(
        cls,
        memory_mb: int,
        policy: SandboxPolicy,
        jail_filter: bytes,
        statedir: str,
        cgroups: CgroupManager | None,
        cleanups: CleanupTasks,
        output_limit_bytes: int,
        packages: tuple[str, ...] = (),
    ) -> DenoWorker:
        """Start a jailed Deno runner whose V8 heap is `memory_mb` (`packages`: the vetted
        npm packages mounted in the policy, `name@version`)."""
        workdir = tempfile.mkdtemp(prefix="w-", dir=statedir)
        fifo = os.path.join(workdir, "result")
        os.mkfifo(fifo, 0o600)
        # Our own write end keeps the FIFO from reading as EOF before the runner opens it.
        read_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        keepalive = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        cgroup = None
        if cgroups and cgroups.available:
            cgroup = cgroups.create(policy.max_processes + cls.own_threads)
        try:
            process = await start_jail(
                lambda seccomp_fd: bwrap_argv(
                    policy,
                    deno_command(memory_mb, policy, packages),
                    seccomp_fd=seccomp_fd,
                    result_fifo=fifo,
                    extra_env=DENO_ENV,
                ),
                seccomp_filter=jail_filter,
                cgroup=cgroup,
            )
        except SandboxUnavailable:
            for fd in (read_fd, keepalive):
                os.close(fd)
            shutil.rmtree(workdir, ignore_errors=True)
            if cgroup:
                cgroup.remove()
            raise
        reader = await open_reader(read_fd, 2**31)
        return cls(
            process, reader, keepalive, workdir, policy, cgroup, cleanups, output_limit_bytes
        )

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait for READY; SandboxUnavailable with Deno's own words if it never comes."""
        assert self._result is not None and self._stderr is not None
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
            self._close_keepalive()
        if line != protocol.READY + b"\n":
            await self.kill()
            await asyncio.wait({self._stderr.task}, timeout=1)
            detail = self._stderr.text().strip()[-2000:] or "no output"
            raise SandboxUnavailable(
                f"the javascript jail did not start (exit {self.process.returncode}): {detail}"
            )
        self._became_ready()

    async def _deliver(self, job: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None and self._result is not None
        try:
            stdin.write(job)
            await stdin.drain()
            stdin.close()
        except (BrokenPipeError, ConnectionResetError) as exc:
            # The runner reads the whole job before it runs anything: it died idle.
            raise WorkerLost(f"the worker died before its job: {exc}") from exc
        try:  # a runtime killed at this very moment may still have taken the job
            started = await asyncio.wait_for(self._result.readline(), 30)
        except (TimeoutError, ValueError):
            started = b""
        if started != protocol.STARTED + b"\n":
            raise WorkerLost("the worker died as it was handed its job")

    async def _wait_exit(self) -> int | None:
        return await self.process.wait()

    def _exit_code(self) -> int | None:
        return self.process.returncode

    def _limit_memory(self, memory_mb: int) -> None:
        super()._limit_memory(memory_mb)
        # V8's heap limit is the main wall; this caps ArrayBuffers and the rest.
        assert self._handle is not None
        data_bytes = (memory_mb * 2 + 512) * 1024 * 1024
        set_rlimits(self._handle.pid, ((resource.RLIMIT_DATA, data_bytes),))

    def _no_result_error(
        self, returncode: int | None, memory_hit: bool, memory_mb: int
    ) -> ErrorDetail:
        if returncode in _V8_HEAP_ABORTS:
            memory_hit = True
        return super()._no_result_error(returncode, memory_hit, memory_mb)

    def _close_keepalive(self) -> None:
        if self._keepalive is not None:
            os.close(self._keepalive)
            self._keepalive = None

    async def _release(self) -> None:
        self.state = WorkerState.DONE
        self._close_keepalive()
        shutil.rmtree(self._workdir, ignore_errors=True)
