"""The execution engine: the one core object every front-end (API, CLI, HTTP, MCP) uses."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from ._errors import InvalidRequest, SandboxUnavailable, Saturated
from ._jail import protocol
from ._json import object_keys, strict_dumps
from ._models import ErrorDetail, ErrorType, ExecutionRequest, ExecutionResult, Language
from ._packages import NO_PACKAGES, Packages, PackagesError
from ._packages import prepare as prepare_packages
from ._pool import WorkerPool, start_worker
from ._runtimes.javascript import DenoWorker
from ._runtimes.python import ForkServerGroup
from ._runtimes.workerd import IsolateRuntime, IsolateSettings, install_workerd
from ._sandbox.cgroup import CgroupManager
from ._sandbox.cgroup import refusal as cgroup_refusal
from ._sandbox.policy import ALLOW_NAMESPACE_SETUP, SandboxPolicy, build_policy
from ._sandbox.process import CleanupTasks, JailedProcess, WorkerLost
from ._sandbox.seccomp import compile_child_filter, compile_import_filter, compile_jail_filter
from ._schema import compile_schema, schema_problems
from ._settings import Settings, resolved_data_dir

log = logging.getLogger("coderunner.engine")

# Who is asking (a digest of the caller's API key, set by the HTTP front-end): JavaScript's
# isolate mode never lets two tenants share a workerd process.  "" when keys are off.
TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("coderunner_tenant", default="")

# The core's spans: the OpenTelemetry API only, a no-op unless the server set tracing up.
_tracer = trace.get_tracer("coderunner.engine")
# A front-end puts its surface (http, mcp) in the OpenTelemetry context for the
# execution span to name (the engine itself does not know who called it).
SURFACE_KEY = otel_context.create_key("coderunner.surface")
# Samples kept for the metrics exporter between two scrapes, at most.
_MAX_SAMPLES = 10_000

# The runtime (and so the warm pool) of each language: TypeScript runs on the JavaScript
# runtime, which writes it to a .ts module (the job says which), so one pool serves both.
RUNTIMES: dict[Language, Language] = {Language.TYPESCRIPT: Language.JAVASCRIPT}


def runtime_of(language: Language) -> Language:
    """The language whose runtime runs `language` (its warm pool)."""
    return RUNTIMES.get(language, language)


# Workers that die idle (a fork server lost, a runtime killed) are replaced; a job that
# never reached its worker runs on the next one, this many times at most.
_DELIVERY_ATTEMPTS = 3


class Engine:
    """Runs snippets in fresh jails from warm pools.

    Args:
        settings: limits, pool sizes and concurrency; `Settings.from_env()` if omitted.
        warm: the languages whose pools start warming at once (default: all).

    Use as ``async with Engine() as engine: await engine.execute(request)``.  Pools warm
    up in the background from `start()`; an early request waits for its worker.
    """

    def __init__(
        self, settings: Settings | None = None, *, warm: tuple[Language, ...] | None = None
    ) -> None:
        self.settings = settings or Settings.from_env()
        warm = tuple(Language) if warm is None else warm
        self._warm = tuple(dict.fromkeys(runtime_of(language) for language in warm))
        self.policy: SandboxPolicy | None = None
        self.packages: Packages = NO_PACKAGES  # the vetted packages, once started
        self._pools: dict[Language, WorkerPool] = {}
        self._statedir: str | None = None
        self._jail_filter = b""
        self._cgroups: CgroupManager | None = None
        self._forkservers: ForkServerGroup | None = None
        self.isolates: IsolateRuntime | None = None  # JavaScript's isolate mode, when set
        self._cleanups = CleanupTasks()
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self._running = 0
        self._started = False
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (language, outcome) → count
        self.durations: list[tuple[str, float]] = []  # drained by the metrics exporter
        # Seconds waited for a slot (by language) and for a ready worker (by pool): drained
        # by the metrics exporter too.
        self.queue_waits: list[tuple[str, float]] = []
        self.worker_waits: list[tuple[str, float]] = []

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Build the policy and filters and start warming the pools (returns at once)."""
        if self._started:
            return
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) is not installed; install the 'bubblewrap' package"
            )
        s = self.settings
        try:  # installs them first only when their lists changed since the last sync
            if s.python_packages.strip() or s.javascript_packages.strip():
                self.packages = await asyncio.to_thread(prepare_packages, s)
        except PackagesError as exc:
            raise SandboxUnavailable(f"the vetted packages are not available: {exc}") from exc
        python, javascript = self.packages.python, self.packages.javascript
        self.policy = build_policy(
            tmp_size_mb=s.tmp_size_mb,
            max_processes=s.max_processes,
            python_packages=python.dir if python else None,
            node_modules=javascript.dir if javascript else None,
        )
        self._jail_filter = compile_jail_filter(self.policy)
        self._statedir = tempfile.mkdtemp(prefix="coderunner-")
        child_filter_path = os.path.join(self._statedir, "child.bpf")
        with open(child_filter_path, "wb") as f:
            f.write(compile_child_filter(self.policy))
        import_filter_path = os.path.join(self._statedir, "import.bpf")
        with open(import_filter_path, "wb") as f:
            f.write(compile_import_filter())
        jail_files = [
            (child_filter_path, protocol.CHILD_FILTER),
            (import_filter_path, protocol.IMPORT_FILTER),
        ]
        python_runtime = self.policy.python
        if python_runtime is not None and python_runtime.sysconfig_data is not None:
            jail_path, text = python_runtime.sysconfig_data
            sysconfig_path = os.path.join(self._statedir, "sysconfigdata.py")
            with open(sysconfig_path, "w", encoding="utf-8") as f:
                f.write(text)
            jail_files.append((sysconfig_path, jail_path))
        self._cgroups = CgroupManager()
        if not self._cgroups.available:
            # The kernel exempts root from RLIMIT_NPROC, and the jail's user is root on
            # the host when the service is: without a pids cgroup, no process limit.
            refused = cgroup_refusal(False, self._cgroups.problem, s.cgroups, os.geteuid() == 0)
            if refused:
                self._cgroups.close()
                raise SandboxUnavailable(refused)
            log.warning("cgroups unavailable (%s); rlimits only", self._cgroups.problem)
        self._forkservers = ForkServerGroup(
            s.python_fork_servers, self.policy,
            compile_jail_filter(self.policy, ALLOW_NAMESPACE_SETUP),
            tuple(jail_files),
            self._cgroups, self._cleanups, s.output_limit_bytes,
            (python.modules, python.describe()) if python else ((), ()),
        )  # fmt: skip
        self._slots = asyncio.Semaphore(s.max_concurrency)
        if s.javascript_isolation == "isolate":
            await self._start_isolates()
        self._started = True
        for language in self._warm:
            if language is Language.JAVASCRIPT and self.isolates is not None:
                self.isolates.warm()  # (TypeScript's Deno pool starts on first use)
                continue
            self._pool(language).fill()

    async def _start_isolates(self) -> None:
        """JavaScript's isolate mode: the pinned workerd binary (fetched into the data dir
        the first time, never during an execution) and its pools."""
        assert self.policy is not None and self._statedir is not None
        s = self.settings
        binary = await asyncio.to_thread(install_workerd, resolved_data_dir(s))
        self.isolates = IsolateRuntime(
            str(binary), self.policy, self._jail_filter, self._statedir, self._cgroups,
            IsolateSettings(
                processes=s.javascript_isolate_processes,
                recycle_executions=s.javascript_isolate_recycle_executions,
                recycle_s=s.javascript_isolate_recycle_s,
                max_processes_total=2 * s.javascript_isolate_processes,
            ),
            s.default_memory_mb, s.output_limit_bytes,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Kill idle workers and remove the engine's files and cgroups."""
        if self.isolates is not None:
            await self.isolates.close()
            self.isolates = None
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
        if self._forkservers:
            await self._forkservers.close()
        await self._cleanups.wait()
        if self._cgroups:
            self._cgroups.close()
        if self._statedir:
            shutil.rmtree(self._statedir, ignore_errors=True)
        self._started = False

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _pool(self, language: Language) -> WorkerPool:
        """The warm pool of a language.  Python lowers its memory limit per job, so its
        children serve every memory_mb; V8's heap size is fixed when Deno starts, so the
        JavaScript pool holds runtimes of the default size (see `_acquire`)."""
        language = runtime_of(language)
        pool = self._pools.get(language)
        if pool is None:
            if language is Language.PYTHON:
                assert self._forkservers is not None
                pool = WorkerPool(
                    language.value, self._forkservers.spawn, self.settings.python_pool_size
                )
            else:
                spawn = functools.partial(self._spawn_deno, self.settings.default_memory_mb)
                pool = WorkerPool(language.value, spawn, self.settings.javascript_pool_size)
            self._pools[language] = pool
        return pool

    async def _spawn_deno(self, memory_mb: int) -> DenoWorker:
        assert self.policy is not None and self._statedir is not None
        return await DenoWorker.spawn(
            memory_mb,
            self.policy,
            self._jail_filter,
            self._statedir,
            self._cgroups,
            self._cleanups,
            self.settings.output_limit_bytes,
            self.packages.javascript.describe() if self.packages.javascript else (),
        )

    # -- execution ---------------------------------------------------------------------

    def check_request(self, request: ExecutionRequest) -> tuple[int, int, Any]:
        """Validate what the model cannot: limits, schema, JSON inputs (else InvalidRequest)."""
        timeout_ms, memory_mb, validator, _ = self._checked(request)
        return timeout_ms, memory_mb, validator

    def _checked(
        self, request: ExecutionRequest, inputs_json: bytes | None = None
    ) -> tuple[int, int, Any, protocol.EncodedInputs]:
        """`check_request`, and the job's inputs with the JSON text that checking them
        produced (a large payload is encoded once), or `inputs_json` as it is."""
        timeout_ms, memory_mb = self.settings.resolve_limits(request)
        validator = compile_schema(request.output_schema) if request.output_schema else None
        if inputs_json is not None:
            if request.inputs:
                raise ValueError("inputs_json replaces request.inputs, which must be empty")
            names = object_keys(inputs_json)
        else:
            try:
                inputs_json = strict_dumps(request.inputs)
            except (TypeError, ValueError) as exc:
                raise InvalidRequest(f"inputs must be JSON values: {exc}") from None
            names = list(request.inputs)
        both = sorted(set(names) & set(request.secrets))
        if both:
            raise InvalidRequest(
                f"{', '.join(both)}: given both as an input and as a secret; give each once"
            )
        return timeout_ms, memory_mb, validator, job_inputs(request, inputs_json, bool(names))

    @property
    def queue_depth(self) -> int:
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    async def execute(
        self,
        request: ExecutionRequest,
        *,
        decode_result: bool = True,
        inputs_json: bytes | None = None,
    ) -> ExecutionResult:
        """Run one snippet in a fresh jail; every outcome of the snippet is a result.

        Raises InvalidRequest (limits, schema, inputs) or Saturated (queue full); the
        result carries a new `execution_id`.  For a front end that receives and sends
        JSON: `decode_result=False` may leave a large result checked but not decoded
        (`result` None until `ExecutionResult.decode_result()`); `inputs_json` gives the
        inputs as the text of one JSON object, strict JSON with finite numbers only (see
        `_json.split_member`), passed to the jail as it is, `request.inputs` left empty.
        """
        if not self._started:
            await self.start()
        timeout_ms, memory_mb, validator, inputs = self._checked(request, inputs_json)
        assert self._slots is not None
        if self._slots.locked() and self._waiting >= self.settings.queue_size:
            raise Saturated(
                f"{self._running} executions are running and {self._waiting} waiting; "
                "retry shortly",
                retry_after=1.0,
            )
        language = {"coderunner.language": request.language.value}
        queued = time.perf_counter()
        self._waiting += 1
        try:
            with _span("coderunner.queue_wait", language):
                await self._slots.acquire()
        finally:
            self._waiting -= 1
        _record(self.queue_waits, request.language.value, time.perf_counter() - queued)
        with _span("coderunner.execution", language) as span:
            self._running += 1
            try:
                result = await self._execute_in_worker(request, timeout_ms, memory_mb, inputs)
            finally:
                self._running -= 1
                self._slots.release()
            if decode_result or (result.ok and validator is not None):
                result.decode_result()
            if result.ok and validator is not None:
                problems = schema_problems(validator, result.result)
                if problems:
                    result.ok = False
                    message = "the result does not match output_schema:\n" + "\n".join(problems)
                    result.error = ErrorDetail(
                        type=ErrorType.SCHEMA_ERROR, message=mask_text(message, request.secrets)
                    )
            result.execution_id = new_execution_id()
            outcome = "ok" if result.ok else result.error.type.value  # type: ignore[union-attr]
            if span.is_recording():
                _describe_span(span, result.execution_id, outcome)
        self.outcomes[(request.language.value, outcome)] += 1
        _record(self.durations, request.language.value, result.duration_ms / 1000)
        return result

    async def _execute_in_worker(
        self,
        request: ExecutionRequest,
        timeout_ms: int,
        memory_mb: int,
        inputs: protocol.EncodedInputs,
    ) -> ExecutionResult:
        started = time.perf_counter()
        if self.isolates is not None and request.language is Language.JAVASCRIPT:
            try:
                result = await self.isolates.execute(
                    TENANT.get(), request.code, inputs, timeout_ms, memory_mb,
                    self.settings.result_limit_bytes, request.language,
                )  # fmt: skip
            except SandboxUnavailable as exc:
                return self._sandbox_error(
                    request, f"refusing to run: the sandbox cannot be set up ({exc})", started
                )
            except Exception as exc:  # our fault, reported as such; the process is replaced
                log.exception("execution failed in the service")
                return self._sandbox_error(request, f"internal error: {exc}", started)
            return mask_secrets(result, request.secrets)
        for _ in range(_DELIVERY_ATTEMPTS):
            try:
                worker = await self._acquire(request.language, memory_mb)
            except SandboxUnavailable as exc:
                return self._sandbox_error(
                    request, f"refusing to run: the sandbox cannot be set up ({exc})", started
                )
            try:
                result = await worker.execute(
                    request.code, inputs, timeout_ms,
                    memory_mb, self.settings.result_limit_bytes, request.language,
                )  # fmt: skip
                return mask_secrets(result, request.secrets)
            except WorkerLost as exc:  # the job never started: run it on another worker
                log.warning("%s; retrying on another worker", exc)
                await worker.kill()
            except asyncio.CancelledError:
                await asyncio.shield(worker.kill())
                raise
            except Exception as exc:  # our fault, reported as such; the snippet is killed
                log.exception("execution failed in the service")
                with contextlib.suppress(Exception):
                    await worker.kill()
                return self._sandbox_error(request, f"internal error: {exc}", started)
        return self._sandbox_error(request, "workers kept dying before their job", started)

    async def _acquire(self, language: Language, memory_mb: int) -> JailedProcess:
        runtime = runtime_of(language)
        started = time.perf_counter()
        with _span("coderunner.worker_wait", {"coderunner.pool": runtime.value}):
            if runtime is Language.JAVASCRIPT and memory_mb != self.settings.default_memory_mb:
                # V8's heap size is fixed when it starts; only the default size is kept
                # warm (a pool per size asked for would let clients pile up idle runtimes).
                worker = await start_worker(functools.partial(self._spawn_deno, memory_mb))
            else:
                worker = await self._pool(language).acquire()
        _record(self.worker_waits, runtime.value, time.perf_counter() - started)
        return worker

    def readiness_problems(self) -> list[str]:
        """Why the engine is not ready to serve yet: not started, or a pool it warms has
        not yet had a worker ready (empty when it is ready)."""
        if not self._started:
            return ["the engine is not started"]
        problems = []
        for language in self._warm:
            if language is Language.JAVASCRIPT and self.isolates is not None:
                if not self.isolates.ready:
                    problems.append("the javascript isolate pool is still warming up")
                continue
            pool = self._pools.get(language)
            if pool is None or pool.spawned == 0:
                problems.append(f"the {language.value} pool is still warming up")
        return problems

    def ready_workers(self) -> list[JailedProcess]:
        """Every worker ready now, of every pool (for tests and diagnostics)."""
        return [w for pool in self._pools.values() for w in pool.ready_workers()]

    def fork_servers(self) -> list[Any]:
        """The Python fork servers running now."""
        return self._forkservers.servers() if self._forkservers else []

    @property
    def fork_server_restarts(self) -> int:
        return self._forkservers.restarts if self._forkservers else 0

    @staticmethod
    def _sandbox_error(request: ExecutionRequest, message: str, started: float) -> ExecutionResult:
        return ExecutionResult(
            ok=False,
            language=request.language,
            error=ErrorDetail(type=ErrorType.SANDBOX_ERROR, message=message),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    def pool_stats(self) -> list[dict[str, Any]]:
        """Size, ready, starting, spawned and failures of each pool (for metrics)."""
        return [
            {
                "pool": p.name,
                "size": p.size,
                "ready": p.ready_count,
                "starting": p.starting_count,
                "spawned": p.spawned,
                "spawn_failures": p.spawn_failures,
                "replaced": p.replaced,
            }
            for p in self._pools.values()
        ]


def _record(samples: list[tuple[str, float]], label: str, seconds: float) -> None:
    """Keep one sample for the metrics exporter (the oldest half goes when nobody reads)."""
    samples.append((label, seconds))
    if len(samples) > _MAX_SAMPLES:
        del samples[: _MAX_SAMPLES // 2]


def _span(name: str, attributes: dict[str, str]) -> contextlib.AbstractContextManager[trace.Span]:
    """A span of the core, current while open; nothing at all while no tracer provider is
    set (the API's own no-op spans still cost some microseconds each)."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return contextlib.nullcontext(trace.INVALID_SPAN)
    return _tracer.start_as_current_span(name, attributes=attributes)


def _describe_span(span: trace.Span, execution_id: str, outcome: str) -> None:
    """An execution's outcome on its span; a failure of the service itself is an error."""
    span.set_attribute("coderunner.execution_id", execution_id)
    span.set_attribute("coderunner.outcome", outcome)
    surface = otel_context.get_value(SURFACE_KEY)
    if isinstance(surface, str):
        span.set_attribute("coderunner.surface", surface)
    if outcome != "ok":
        span.set_attribute("error.type", outcome)
    if outcome == ErrorType.SANDBOX_ERROR.value:
        span.set_status(trace.Status(trace.StatusCode.ERROR, "the sandbox failed"))


def job_inputs(
    request: ExecutionRequest, inputs_json: bytes, has_inputs: bool
) -> protocol.EncodedInputs:
    """What the snippet gets bound: its inputs and its secrets (names checked distinct),
    with their JSON text, spliced from the inputs' (encoded once, or received as text:
    then the values are not at hand) and the secrets'."""
    text = inputs_json
    if request.secrets:
        secrets_json = strict_dumps(request.secrets)
        text = inputs_json[:-1] + b", " + secrets_json[1:] if has_inputs else secrets_json
    return protocol.EncodedInputs({**request.inputs, **request.secrets}, text)


def new_execution_id() -> str:
    """A fresh id for one execution (logs, results and, later, history use it)."""
    return uuid.uuid4().hex


SECRET_MASK = "***"


def secret_forms(secrets: Mapping[str, str]) -> list[str]:
    """Each secret's exact text and the escaped forms it takes when a value is quoted (JSON,
    Python's repr() in a schema or input message, a JavaScript single-quoted string)."""
    forms: set[str] = set()
    for value in secrets.values():
        if value:
            forms.update((
                value,
                json.dumps(value, ensure_ascii=False)[1:-1],
                json.dumps(value)[1:-1],
                repr(value)[1:-1],
                value.replace("\\", "\\\\").replace("'", "\\'"),
            ))  # fmt: skip
    return sorted((form for form in forms if form), key=len, reverse=True)


def mask_text(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with every occurrence of every secret (exact or escaped, see secret_forms)
    replaced by ``***``.  Occurrences that overlap become one ``***``, so no
    piece of one survives (a secret that contains another, two that overlap)."""
    return _mask_forms(text, secret_forms(secrets))


def _mask_forms(text: str, forms: list[str]) -> str:
    spans: list[tuple[int, int]] = []
    for form in forms:
        start = text.find(form)
        while start != -1:
            spans.append((start, start + len(form)))
            start = text.find(form, start + 1)
    if not spans:
        return text
    spans.sort()
    parts: list[str] = []
    done = 0
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start < end:
            end = max(end, next_end)
            continue
        parts += [text[done:start], SECRET_MASK]
        done, start, end = end, next_start, next_end
    parts += [text[done:start], SECRET_MASK, text[end:]]
    return "".join(parts)


def mask_cut_secret(text: str, secrets: Mapping[str, str]) -> str:
    """Output cut at the output limit may end with the start of a secret, which masking
    the whole text cannot find: that start is masked too (for truncated output only)."""
    cut = max(
        (
            size
            for form in secret_forms(secrets)
            for size in range(1, min(len(form), len(text) + 1))
            if text.endswith(form[:size])
        ),
        default=0,
    )
    return text[:-cut] + SECRET_MASK if cut else text


def mask_value(value: Any, secrets: Mapping[str, str]) -> Any:
    """A JSON value with every secret's text masked in its strings and keys (for the copy
    the history keeps: what a snippet returns is its answer, but it is never stored)."""
    return _mask_value(value, secret_forms(secrets))  # the forms once, not per string


def _mask_value(value: Any, forms: list[str]) -> Any:
    if isinstance(value, str):
        return _mask_forms(value, forms)
    if isinstance(value, list):
        return [_mask_value(item, forms) for item in value]
    if isinstance(value, dict):
        return {_mask_forms(k, forms): _mask_value(v, forms) for k, v in value.items()}
    return value


def mask_secrets(result: ExecutionResult, secrets: Mapping[str, str]) -> ExecutionResult:
    """Mask the secrets wherever a result shows text: stdout, stderr and the error (the
    returned value itself is the snippet's answer and is kept as it is)."""
    if not any(secrets.values()):
        return result
    result.stdout = mask_text(result.stdout, secrets)
    result.stderr = mask_text(result.stderr, secrets)
    if result.stdout_truncated:
        result.stdout = mask_cut_secret(result.stdout, secrets)
    if result.stderr_truncated:
        result.stderr = mask_cut_secret(result.stderr, secrets)
    if result.error is not None:
        error = result.error
        error.message = mask_text(error.message, secrets)
        if error.traceback is not None:
            error.traceback = mask_text(error.traceback, secrets)
        if error.name is not None:
            error.name = mask_text(error.name, secrets)
    return result
