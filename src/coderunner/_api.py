"""The plain Python entry points: `run` (sync) and `arun` (async) over one shared engine."""

from __future__ import annotations

import asyncio
import atexit
import threading
from concurrent.futures import Future
from typing import Any

from ._engine import Engine
from ._models import ExecutionRequest, ExecutionResult, Language
from ._settings import Settings


class _BackgroundEngine:
    """One engine on its own event-loop thread, so sync callers get warm pools too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: Engine | None = None

    def submit(self, request: ExecutionRequest) -> Future[ExecutionResult]:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="coderunner", daemon=True).start()
                self._engine = Engine(Settings.from_env())
                asyncio.run_coroutine_threadsafe(self._engine.start(), loop).result()
                self._loop = loop
                atexit.register(self.close)
        assert self._engine is not None
        return asyncio.run_coroutine_threadsafe(self._engine.execute(request), self._loop)

    def close(self) -> None:
        with self._lock:
            if self._loop is None or self._engine is None:
                return
            asyncio.run_coroutine_threadsafe(self._engine.aclose(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None
            self._engine = None


_shared = _BackgroundEngine()


def _request(
    code: str,
    language: Language | str,
    inputs: dict[str, Any] | None,
    timeout_ms: int | None,
    memory_mb: int | None,
    output_schema: dict[str, Any] | None,
    secrets: dict[str, str] | None,
) -> ExecutionRequest:
    return ExecutionRequest(
        language=Language(language),
        code=code,
        inputs=inputs or {},
        timeout_ms=timeout_ms,
        memory_mb=memory_mb,
        output_schema=output_schema,
        secrets=secrets or {},
    )


def run(
    code: str,
    language: Language | str = Language.PYTHON,
    *,
    inputs: dict[str, Any] | None = None,
    timeout_ms: int | None = None,
    memory_mb: int | None = None,
    output_schema: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
) -> ExecutionResult:
    """Run a snippet in a fresh jail and return its ExecutionResult (blocking)."""
    request = _request(code, language, inputs, timeout_ms, memory_mb, output_schema, secrets)
    return _shared.submit(request).result()


async def arun(
    code: str,
    language: Language | str = Language.PYTHON,
    *,
    inputs: dict[str, Any] | None = None,
    timeout_ms: int | None = None,
    memory_mb: int | None = None,
    output_schema: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
) -> ExecutionResult:
    """Run a snippet in a fresh jail and return its ExecutionResult (awaitable)."""
    request = _request(code, language, inputs, timeout_ms, memory_mb, output_schema, secrets)
    return await asyncio.wrap_future(_shared.submit(request))
