"""JavaScript, isolate mode: a fresh V8 isolate per execution inside jailed workerd processes.

Each workerd process (Cloudflare's open-source Workers runtime, npm package
``@cloudflare/workerd-linux-64``) runs in the same bubblewrap + seccomp + cgroup jail as a
Deno runtime, and serves executions one at a time over a Unix socket the host hands it.
For each, its loader worker (``_jail/workerd_loader.mjs``) has the Worker Loader build a
fresh isolate holding nothing but the snippet, its inputs and the runner, with no
bindings and no outbound access.  The isolates of one process share that process, so the
process is contained like a long-lived worker:

- one execution in flight per process, one process per core (a pool per tenant, i.e. per
  API key, so no process ever serves two keys);
- a host watchdog: past the deadline (the open-source build ignores ``limits.cpuMs``) the
  process is killed and replaced and the execution gets ``timeout``; a V8 heap abort or a
  memory-cgroup kill ends it as ``memory_limit``;
- every process is recycled after `recycle_executions` executions or `recycle_s` seconds.

Runs in the service process; the jailed side is ``_jail/workerd_*.mjs``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from .._errors import SandboxUnavailable
from .._models import ErrorDetail, ErrorType, ExecutionResult, Language
from .._sandbox.bwrap import bwrap_argv, start_jail
from .._sandbox.cgroup import CgroupManager, CgroupSlot
from .._sandbox.policy import WORKERD, SandboxPolicy, workerd_mounts
from .._sandbox.process import PidHandle, set_rlimits, take_result

log = logging.getLogger("coderunner.isolates")

# -- the runtime binary ------------------------------------------------------------------

# Pinned: the exact release and the registry's own integrity string of its tarball.
WORKERD_PACKAGE = "@cloudflare/workerd-linux-64"
WORKERD_VERSION = "1.20261117.1"
WORKERD_INTEGRITY = (
    "sha512-"
    "gZLA8X11m/luZwn+YA3+mDu61vdxNJzpksP/QZqjydKTQ+VUCulsK5gtn9Bqst1p3KJu2kafQpJ1nDQv4B23jA=="
)
_TARBALL_MEMBER = "package/bin/workerd"


class WorkerdUnavailable(SandboxUnavailable):
    """The workerd binary is not installed and cannot be fetched."""


def workerd_binary(data_dir: str) -> Path:
    """Where the pinned workerd binary lives: ``<data_dir>/runtimes/workerd-VERSION/``."""
    return Path(data_dir) / "runtimes" / f"workerd-{WORKERD_VERSION}" / "workerd"


NPM_DEFAULT_REGISTRY = "https://registry.npmjs.org"


def _registry() -> str:
    """The npm registry as npm is configured here (the environment, else npm itself, else
    npm's default)."""
    registry = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")
    if not registry and shutil.which("npm"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            registry = subprocess.run(
                ["npm", "config", "get", "registry"],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout.strip()  # fmt: skip
    # (npm's own default, so a host without npm, where `serve` needs none, still works)
    return (registry or NPM_DEFAULT_REGISTRY).rstrip("/")


def check_integrity(data: bytes, integrity: str = WORKERD_INTEGRITY) -> None:
    """Refuse a tarball whose sha512 is not the pinned one (WorkerdUnavailable)."""
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != integrity:
        raise WorkerdUnavailable(
            f"the {WORKERD_PACKAGE}@{WORKERD_VERSION} tarball does not match its pinned "
            f"integrity (got {digest[:32]}..., want {integrity[:32]}...)"
        )


def install_workerd(data_dir: str) -> Path:
    """The workerd binary, fetched once from the npm registry (pinned version, verified
    sha512) into the data dir; never during an execution.  WorkerdUnavailable on failure."""
    target = workerd_binary(data_dir)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    import httpx

    name = WORKERD_PACKAGE.split("/")[1]
    url = f"{_registry()}/{WORKERD_PACKAGE}/-/{name}-{WORKERD_VERSION}.tgz"
    try:
        response = httpx.get(url, timeout=300, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise WorkerdUnavailable(
            f"cannot fetch {WORKERD_PACKAGE}@{WORKERD_VERSION}: {exc}"
        ) from exc
    check_integrity(response.content)
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        member = tar.extractfile(_TARBALL_MEMBER)
        if member is None:
            raise WorkerdUnavailable(f"the tarball has no {_TARBALL_MEMBER}")
        binary = member.read()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=".workerd-")
    with os.fdopen(fd, "wb") as f:
        f.write(binary)
    os.chmod(staging, 0o755)
    os.replace(staging, target)  # atomic: a concurrent start sees all of it or nothing
    return target


# -- config --------------------------------------------------------------------------------

CONFIG_TEMPLATE = Path(__file__).resolve().parent.parent / "_jail" / "workerd_config.capnp"
CONFIG_IN_JAIL = "/run/workerd.capnp"
# V8 and workerd's own threads (counted against the jail's process limit).
OWN_THREADS = 16
# What a warm workerd process needs besides the snippet's heap (memory cgroup).
MEMORY_OVERHEAD_MB = 256
# V8 dies with SIGTRAP (or SIGABRT) when an isolate's heap limit is reached.
_V8_HEAP_ABORTS = {-signal.SIGTRAP, -signal.SIGABRT, 128 + signal.SIGTRAP, 128 + signal.SIGABRT}
# workerd's report of a V8 fatal error on stderr, and the one of an isolate's heap limit.
_FATAL_MARKS = ("<--- Last few GCs --->", "workerd/jsg/setup.c++")
_HEAP_LIMIT = "Reached heap limit"
# After the response, how long the console markers may take to come through the pipes.
_MARKER_WAIT_S = 5.0


def write_config(directory: str, heap_mb: int) -> str:
    """The config of processes whose isolates have a `heap_mb` V8 heap (a host file)."""
    path = os.path.join(directory, f"workerd-{heap_mb}.capnp")
    if not os.path.exists(path):
        text = CONFIG_TEMPLATE.read_text().replace("@HEAP_MB@", str(int(heap_mb)))
        with open(path, "w") as f:
            f.write(text)
    return path


def workerd_command(socket_fd: int) -> list[str]:
    """workerd's argv inside the jail (the config's embeds are absolute: --import-path=/)."""
    return [
        WORKERD, "serve", CONFIG_IN_JAIL, "--experimental", "--import-path=/",
        f"--socket-fd=http={socket_fd}",
    ]  # fmt: skip


# -- console output between markers -----------------------------------------------------


class MarkedOutput:
    """workerd's stdout or stderr, read all the time; per execution, what was written
    between its begin and end markers (the loader prints them), capped at a limit."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._pending = b""
        self._state = "idle"  # idle → waiting (for begin) → capturing → done
        self._begin = self._end = b""
        self._limit = 0
        self.captured = bytearray()
        self.truncated = False
        self._done = asyncio.Event()
        self.task = asyncio.ensure_future(self._drain(reader))

    def expect(self, begin: str, end: str, limit: int) -> None:
        self._begin, self._end = begin.encode() + b"\n", end.encode() + b"\n"
        self._limit = limit
        self._pending = b""
        self.captured = bytearray()
        self.truncated = False
        self._done.clear()
        self._state = "waiting"

    async def _drain(self, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(65536):
            self._feed(chunk)
        self._done.set()

    def _keep(self, data: bytes) -> None:
        room = self._limit - len(self.captured)
        if room > 0:
            self.captured += data[:room]
        if len(data) > room:
            self.truncated = True

    def _feed(self, chunk: bytes) -> None:
        if self._state in ("idle", "done"):
            return  # between executions: nothing here belongs to one
        data = self._pending + chunk
        if self._state == "waiting":
            at = data.find(self._begin)
            if at < 0:
                self._pending = data[-len(self._begin) :]
                return
            data = data[at + len(self._begin) :]
            self._state = "capturing"
        at = data.find(self._end)
        if at >= 0:
            self._keep(data[:at])
            self._pending = b""
            self._state = "done"
            self._done.set()
            return
        safe = max(0, len(data) - len(self._end))
        self._keep(data[:safe])
        self._pending = data[safe:]

    async def wait_end(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), timeout_s)
        return self._state == "done"

    def text(self) -> str:
        """What was captured (after a kill, with whatever followed the begin marker)."""
        data = bytes(self.captured)
        if self._state == "capturing" and self._pending:
            room = max(0, self._limit - len(data))
            data += self._pending[:room]
        return data.decode("utf-8", errors="replace")


def _inputs_json(inputs: dict[str, Any]) -> bytes:
    """The inputs' JSON as UTF-8: the host's own encoding when they carry one (the engine
    encoded them once already, to check them), else encoded here."""
    text = getattr(inputs, "text", None)
    if isinstance(text, bytes):
        return text
    if not isinstance(text, str):
        text = json.dumps(inputs, ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


# -- one process ---------------------------------------------------------------------------


class WorkerdProcess:
    """One jailed workerd process: serves executions one at a time, each in a fresh isolate."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        workdir: str,
        socket_path: str,
        cgroup: CgroupSlot | None,
        heap_mb: int,
        tenant: str,
        policy: SandboxPolicy,
    ) -> None:
        self.process = process
        self.policy = policy
        self.heap_mb = heap_mb
        self.tenant = tenant
        self._handle = PidHandle(process.pid, "workerd jail")
        self._workdir = workdir
        self._socket_path = socket_path
        self._cgroup = cgroup
        assert process.stdout is not None and process.stderr is not None
        self._stdout = MarkedOutput(process.stdout)
        self._stderr = MarkedOutput(process.stderr)
        self.started_at = time.monotonic()
        self.executions = 0
        self.broken = False  # killed, crashed or in doubt: never reused

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return not self.broken and not self._handle.exited()

    @classmethod
    async def spawn(
        cls,
        heap_mb: int,
        policy: SandboxPolicy,
        jail_filter: bytes,
        statedir: str,
        cgroups: CgroupManager | None,
        tenant: str,
    ) -> WorkerdProcess:
        """Start workerd in a jail and wait until it answers (SandboxUnavailable if not)."""
        workdir = tempfile.mkdtemp(prefix="wd-", dir=statedir)
        config = write_config(statedir, heap_mb)
        socket_path = os.path.join(workdir, "sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cgroup = None
        try:
            listener.bind(socket_path)
            listener.listen(4)
            if cgroups and cgroups.available:
                cgroup = cgroups.create(policy.max_processes + OWN_THREADS)
                cgroup.set_memory_limit((heap_mb * 2 + MEMORY_OVERHEAD_MB) * 1024 * 1024)
            fd = listener.fileno()
            process = await start_jail(
                lambda seccomp_fd: bwrap_argv(
                    policy,
                    workerd_command(fd),
                    seccomp_fd=seccomp_fd,
                    result_fifo=None,
                    extra_files=((config, CONFIG_IN_JAIL),),
                ),
                seccomp_filter=jail_filter,
                cgroup=cgroup,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(fd,),
            )
        except BaseException:
            listener.close()
            shutil.rmtree(workdir, ignore_errors=True)
            if cgroup:
                cgroup.remove()
            raise
        listener.close()  # workerd holds its own copy
        worker = cls(process, workdir, socket_path, cgroup, heap_mb, tenant, policy)
        try:
            await worker._wait_ready()
        except BaseException:
            await worker.kill()
            raise
        return worker

    async def _wait_ready(self, timeout_s: float = 30.0) -> None:
        """One trivial execution proves the process serves; then set its rlimits."""
        try:
            result = await asyncio.wait_for(
                self.execute("return 1", {}, int(timeout_s * 1000), Language.JAVASCRIPT),
                timeout_s + 10,
            )
        except TimeoutError:
            result = None
        if result is None or not result.ok:
            await asyncio.wait({self._stderr.task}, timeout=1)
            detail = self._stderr.text().strip()[-2000:] or (
                result.error.message if result and result.error else "no output"
            )
            raise SandboxUnavailable(
                f"the javascript isolate jail did not start (exit {self.process.returncode}): "
                f"{detail}"
            )
        self.executions = 0
        set_rlimits(self.pid, self._rlimits_of(self.heap_mb))

    def _rlimits_of(self, heap_mb: int) -> tuple[tuple[int, int], ...]:
        # The jail's own limits, as for a Deno jail, set from outside once it serves.
        return (
            *self.policy.rlimits(OWN_THREADS),
            # V8's heap limit is the main wall; this caps ArrayBuffers and the rest.
            (resource.RLIMIT_DATA, (heap_mb * 2 + 1024) * 1024 * 1024),
        )

    async def _request(self, body: bytes, marks: str) -> bytes:
        """One HTTP/1.1 request on a fresh Unix connection (workerd closes idle kept-alive
        ones, and a request lost that way could not be told from a crash); the body."""
        reader, writer = await asyncio.open_unix_connection(self._socket_path)
        try:
            head = (
                f"POST / HTTP/1.1\r\nHost: workerd\r\nx-coderunner-marks: {marks}\r\n"
                f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            writer.write(head + body)
            await writer.drain()
            status = await reader.readuntil(b"\r\n\r\n")
            length = None
            for line in status.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if not status.startswith(b"HTTP/1.1 200") or length is None:
                first = status.split(b"\r\n")[0]
                raise ConnectionError(f"workerd answered {first!r}")
            return await reader.readexactly(length)
        finally:
            writer.close()

    async def execute(
        self,
        code: str,
        inputs: dict[str, Any],
        timeout_ms: int,
        language: Language,
        result_limit_bytes: int = 16 * 1024 * 1024,
        output_limit_bytes: int = 1024 * 1024,
    ) -> ExecutionResult:
        """Run one snippet in a fresh isolate of this process; the process is marked broken
        (never reused) when it had to be killed or its state is in doubt."""
        self.executions += 1
        begin, end = secrets.token_hex(16), secrets.token_hex(16)
        self._stdout.expect(begin, end, output_limit_bytes)
        self._stderr.expect(begin, end, output_limit_bytes)
        meta = {"code": code, "language": language.value, "result_limit_bytes": result_limit_bytes}
        body = (
            json.dumps(meta, ensure_ascii=False).encode("utf-8", "surrogatepass")
            + b"\n"
            + _inputs_json(inputs)
        )
        started = time.perf_counter()
        request = asyncio.ensure_future(self._request(body, f"{begin} {end}"))
        exit_task = asyncio.ensure_future(self.process.wait())
        timed_out = False
        try:
            done, _ = await asyncio.wait(
                {request, exit_task}, timeout=timeout_ms / 1000, return_when=asyncio.FIRST_COMPLETED
            )
            timed_out = not done
        finally:
            exit_task.cancel()
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        if request.done() and not exit_task.cancelled() and request.exception() is not None:
            # The connection broke: the process is dying (a V8 heap abort); its own exit
            # status says how, so wait for it before the kill would overwrite it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 1)
        data: bytes | None = None
        if request.done() and not request.cancelled() and request.exception() is None:
            data = request.result()
        else:
            request.cancel()
        result = ExecutionResult(ok=False, language=language, duration_ms=duration_ms)
        if (
            data is not None
            and await self._stdout.wait_end(_MARKER_WAIT_S)
            and await self._stderr.wait_end(_MARKER_WAIT_S)
        ):
            self._fill_output(result)
            self._interpret(result, data)
            return result
        # Past the deadline, dead, or its output in doubt: this process is done for.
        returncode = await self._kill_and_status()
        self._fill_output(result)
        memory_hit = self._cgroup.memory_exceeded() if self._cgroup else False
        # workerd's own last words (a V8 fatal error) are not the snippet's stderr.
        found = [i for i in (result.stderr.find(m) for m in _FATAL_MARKS) if i >= 0]
        fatal = min(found, default=-1)
        if fatal >= 0:
            memory_hit = memory_hit or _HEAP_LIMIT in result.stderr[fatal:]
            kept = result.stderr[:fatal].rstrip("\n")
            result.stderr = kept + "\n" if kept else ""
        if timed_out:
            result.error = ErrorDetail(
                type=ErrorType.TIMEOUT,
                message=f"the snippet ran longer than its {timeout_ms} ms limit and was killed",
            )
        elif memory_hit or returncode in _V8_HEAP_ABORTS:
            result.error = ErrorDetail(
                type=ErrorType.MEMORY_LIMIT,
                message="the snippet went over its memory limit and was killed",
            )
        elif data is not None:  # answered, but its console output never ended
            self._interpret(result, data)
        else:
            how = (
                f"was killed by signal {-returncode}"
                if returncode is not None and returncode < 0
                else f"exited with status {returncode}"
            )
            result.error = ErrorDetail(
                type=ErrorType.RUNTIME_ERROR,
                name="Exit",
                message=f"the snippet's runtime {how} before returning a result",
            )
        return result

    def _fill_output(self, result: ExecutionResult) -> None:
        result.stdout = self._stdout.text()
        result.stderr = self._stderr.text()
        result.stdout_truncated = self._stdout.truncated
        result.stderr_truncated = self._stderr.truncated

    @staticmethod
    def _interpret(result: ExecutionResult, data: bytes) -> None:
        frame = take_result(result, data)
        if frame.ok:
            return
        if frame.error is not None:
            result.error = ErrorDetail.model_validate(frame.error)
        else:
            result.error = ErrorDetail(
                type=ErrorType.RUNTIME_ERROR,
                name="ResultChannel",
                message=f"the isolate's answer is not a result ({frame.garbage or 'empty'})",
            )

    async def _kill_and_status(self) -> int | None:
        self.broken = True
        # A bwrap: killed as a tree, or a jail init caught before it armed its death
        # signal would outlive it (see PidHandle.kill).
        self._handle.kill(tree=True)
        if self._cgroup:
            self._cgroup.kill_all()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 5)
        # The pipes reach EOF once every process of the jail is gone.
        await asyncio.wait({self._stdout.task, self._stderr.task}, timeout=1)
        return self.process.returncode

    async def kill(self) -> None:
        """Kill the process and remove what it left on the host."""
        await self._kill_and_status()
        self._handle.close()
        shutil.rmtree(self._workdir, ignore_errors=True)
        if self._cgroup:
            for _ in range(100):
                if self._cgroup.remove():
                    break
                self._cgroup.kill_all()
                await asyncio.sleep(0.01)


# -- pools -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IsolateSettings:
    """How the isolate mode's processes are kept (from `Settings`)."""

    processes: int  # per tenant: one execution in flight each
    recycle_executions: int
    recycle_s: float
    max_processes_total: int  # idle processes of other tenants are stopped past this


class IsolatePool:
    """The workerd processes of one tenant (one API key) for one heap size."""

    def __init__(self, tenant: str, spawn: Any, size: int) -> None:
        self.tenant = tenant
        self.size = max(1, size)
        self._spawn = spawn
        self.idle: collections.deque[WorkerdProcess] = collections.deque()
        self.live = 0  # idle + busy + starting
        self._freed = asyncio.Condition()
        self.last_used = time.monotonic()
        self.spawned = 0
        self.closed = False

    async def _start(self) -> WorkerdProcess:
        self.live += 1
        try:
            process: WorkerdProcess = await self._spawn(self.tenant)
        except BaseException:
            self.live -= 1
            async with self._freed:
                self._freed.notify()
            raise
        self.spawned += 1
        return process

    def warm(self, cleanups: set[asyncio.Task[None]]) -> None:
        """Start processes up to the pool's size in the background."""
        while self.live < self.size and not self.closed:
            self.live += 1  # counted now; _warm_one takes it over
            task = asyncio.ensure_future(self._warm_one())
            cleanups.add(task)
            task.add_done_callback(cleanups.discard)

    async def _warm_one(self) -> None:
        self.live -= 1
        try:
            process = await self._start()
        except Exception as exc:
            log.error("isolate pool %s: could not start workerd: %s", self.tenant[:8], exc)
            return
        if self.closed:
            self.live -= 1
            await process.kill()
            return
        async with self._freed:
            self.idle.append(process)
            self._freed.notify()

    async def acquire(self) -> WorkerdProcess:
        self.last_used = time.monotonic()
        async with self._freed:
            while True:
                while self.idle:
                    process = self.idle.popleft()
                    if process.alive:
                        return process
                    self.live -= 1
                    await process.kill()
                if self.live < self.size:
                    break
                await self._freed.wait()
        return await self._start()

    async def release(self, process: WorkerdProcess, settings: IsolateSettings) -> None:
        """Back to the pool, or killed (broken, or due for recycling) and replaced."""
        expired = (
            process.executions >= settings.recycle_executions
            or time.monotonic() - process.started_at >= settings.recycle_s
        )
        if process.alive and not expired:
            async with self._freed:
                self.idle.append(process)
                self._freed.notify()
            return
        self.live -= 1
        async with self._freed:
            self._freed.notify()
        await process.kill()  # (marks it broken)

    async def close(self) -> None:
        self.closed = True
        while self.idle:
            process = self.idle.popleft()
            self.live -= 1
            await process.kill()


class IsolateRuntime:
    """Every isolate-mode pool of an engine: one per (tenant, heap size)."""

    def __init__(
        self,
        binary: str,
        policy: SandboxPolicy,
        jail_filter: bytes,
        statedir: str,
        cgroups: CgroupManager | None,
        settings: IsolateSettings,
        default_heap_mb: int,
        output_limit_bytes: int,
    ) -> None:
        self.policy = dataclasses.replace(policy, mounts=(*policy.mounts, *workerd_mounts(binary)))
        self._filter = jail_filter
        self._statedir = statedir
        self._cgroups = cgroups
        self.settings = settings
        self.default_heap_mb = default_heap_mb
        self._output_limit = output_limit_bytes
        self.pools: dict[tuple[str, int], IsolatePool] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.executions = 0

    def pool(self, tenant: str, heap_mb: int) -> IsolatePool:
        key = (tenant, heap_mb)
        pool = self.pools.get(key)
        if pool is None:
            size = self.settings.processes if heap_mb == self.default_heap_mb else 1

            async def spawn(tenant: str) -> WorkerdProcess:
                self._make_room(key)
                return await WorkerdProcess.spawn(
                    heap_mb, self.policy, self._filter, self._statedir, self._cgroups, tenant
                )

            pool = self.pools[key] = IsolatePool(tenant, spawn, size)
        return pool

    def warm(self, tenant: str = "") -> None:
        self.pool(tenant, self.default_heap_mb).warm(self._tasks)

    @property
    def ready(self) -> bool:
        pool = self.pools.get(("", self.default_heap_mb))
        return pool is not None and pool.spawned > 0

    def _make_room(self, key: tuple[str, int]) -> None:
        """Past the total (the process starting counted), stop the idle processes of the
        least recently used other pools."""
        total = sum(p.live for p in self.pools.values())
        others = sorted(
            (p for k, p in self.pools.items() if k != key and p.idle), key=lambda p: p.last_used
        )
        for pool in others:
            while total > self.settings.max_processes_total and pool.idle:
                process = pool.idle.popleft()
                pool.live -= 1
                total -= 1
                task = asyncio.ensure_future(process.kill())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def execute(
        self,
        tenant: str,
        code: str,
        inputs: dict[str, Any],
        timeout_ms: int,
        memory_mb: int,
        result_limit_bytes: int,
        language: Language,
    ) -> ExecutionResult:
        """Run one snippet in a fresh isolate of a process of `tenant`'s pool."""
        pool = self.pool(tenant, memory_mb)
        process = await pool.acquire()
        try:
            result = await process.execute(
                code, inputs, timeout_ms, language, result_limit_bytes, self._output_limit
            )
        except BaseException:
            process.broken = True
            raise
        finally:
            self.executions += 1
            task = asyncio.ensure_future(self._release(pool, process))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if result.error is not None and result.error.type is ErrorType.MEMORY_LIMIT:
            result.error.message = f"the snippet went over its memory limit of {memory_mb} MB"
        return result

    async def _release(self, pool: IsolatePool, process: WorkerdProcess) -> None:
        """Back to its pool; a process that was killed or recycled is replaced ahead of
        the next request (the default heap size's pools only: others are one-offs)."""
        await pool.release(process, self.settings)
        if process.broken or not process.alive:
            if process.heap_mb == self.default_heap_mb:
                pool.warm(self._tasks)

    def processes(self) -> list[WorkerdProcess]:
        return [p for pool in self.pools.values() for p in pool.idle]

    async def close(self) -> None:
        for pool in self.pools.values():
            pool.closed = True
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 10)
        for pool in self.pools.values():
            await pool.close()
        self.pools.clear()
