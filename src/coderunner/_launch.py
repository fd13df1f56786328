"""`coderunner serve`: answer at once, warm up in the background.

The full app (FastAPI, the MCP SDK) takes most of a second to import.  uvicorn starts
at once with `DeferredApp` in front: `/healthz` answers immediately, the engine's pools
start warming immediately, a well-formed execution request runs at once on the engine,
and every other request waits (never fails) until the full app from `coderunner._http`
is loaded.  The executions served early are logged and recorded in the history as the
full app's are (`_EarlyHistory`).  Everything here runs in the service process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from ._engine import Engine
from ._errors import CodeRunnerError
from ._frontend import TOOL_LANGUAGES, configure_logging, error_body, logging_config, run_tool
from ._library import Library
from ._models import ExecutionRequest, ExecutionResult, Language
from ._settings import Settings

log = logging.getLogger("coderunner.server")

ASGIApp = Callable[..., Any]
# How long an early request may wait for the full app before it is answered 503.
_LOAD_TIMEOUT_S = 60.0


class _EarlyHistory:
    """Records the executions served before the full app is loaded.

    The full app records what it serves in a `Library` of its own, which does not exist
    yet when these run.  A `Library` over the same store is opened for them when the
    first one starts, in the background: an answer never waits for the database.  Each
    record goes in once that library is open; the library is closed (its records
    written) when the full app is loaded and the last early execution is recorded.  A
    store that is down drops the records, as the full app drops its own then; the
    executions run all the same.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._library: asyncio.Task[Library | None] | None = None
        self._unsettled = 0  # early executions started and not recorded (or dropped) yet
        self._recording: set[asyncio.Task[None]] = set()
        self._app_ready = False
        self._closing: asyncio.Task[None] | None = None

    def begin(self) -> bool:
        """An early execution starts; `end` must follow.  False once the full app is
        loaded (or the service stops): the full app serves it."""
        if self._app_ready:
            return False
        self._unsettled += 1
        if self._library is None:
            self._library = asyncio.ensure_future(self._open())
        return True

    def end(self, request: ExecutionRequest, result: ExecutionResult | None) -> None:
        """It answered `result` (None: it did not run); record it in the background."""
        task = asyncio.ensure_future(self._record(request, result))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    def app_ready(self) -> None:
        """The full app serves every request from now on (or failed to load)."""
        self._app_ready = True
        self._close_when_done()

    async def flush(self) -> None:
        """Write every early execution's record that has answered (before a history read,
        which writes what is pending: the full app's reads do that for its own only)."""
        while self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)
        if self._closing is not None:
            await asyncio.shield(self._closing)
        elif self._library is not None and self._library.done():
            library = self._library.result()
            if library is not None:
                await library.flush_history()

    async def aclose(self) -> None:
        """Record what is left, then close the library (at shutdown, when no request
        runs any more; a record that comes later is dropped)."""
        self._app_ready = True
        await self.flush()
        if self._closing is None and self._library is not None:
            self._closing = asyncio.ensure_future(self._close(self._library))
        if self._closing is not None:
            await asyncio.shield(self._closing)

    async def _open(self) -> Library | None:
        """The library, or None when it cannot be made (the full app fails on that too,
        e.g. a bad database_url); a store that is down is logged, its records dropped."""
        try:
            library = await asyncio.to_thread(Library, self._engine, self._settings)
            await library.start()
        except Exception as exc:
            log.warning("the executions served at start-up are not recorded: %s", exc)
            return None
        return library

    async def _record(self, request: ExecutionRequest, result: ExecutionResult | None) -> None:
        try:
            if result is not None and self._library is not None:
                library = await asyncio.shield(self._library)
                # A store that did not open is not retried here (the full app's is), and
                # a closed library would open it again.
                if library is not None and library.problem is None and self._closing is None:
                    library.record(request, result, surface="http")
        finally:
            self._unsettled -= 1
            self._close_when_done()

    def _close_when_done(self) -> None:
        if self._closing is not None or self._library is None:
            return
        if self._app_ready and self._unsettled == 0:
            self._closing = asyncio.ensure_future(self._close(self._library))

    @staticmethod
    async def _close(opening: asyncio.Task[Library | None]) -> None:
        """Never raises: every later history read awaits it."""
        try:
            library = await opening
            if library is not None:
                await library.aclose()
        except Exception:
            log.exception("the history of the executions served at start-up failed")


class DeferredApp:
    """An ASGI app that serves `/healthz` at once and the full app once it is loaded.

    Args:
        settings: passed to the engine and the full app.
        build: called in a worker thread with the running engine; returns the full app.
        api_keys: when any, nothing but `/healthz` is answered before the full app.
        log_inputs: log code and inputs of the executions served early (as the app does).
    """

    def __init__(
        self,
        settings: Settings,
        build: Callable[[Engine], Any],
        api_keys: Sequence[str] = (),
        *,
        log_inputs: bool = False,
    ) -> None:
        self.settings = settings
        self._log_inputs = log_inputs
        self._api_keys = [k for k in api_keys if k]
        self._build = build
        self._engine: Engine | None = None
        self._history: _EarlyHistory | None = None
        self._app: Any = None
        self._ready = asyncio.Event()
        self._failed: BaseException | None = None
        self._stopping = asyncio.Event()
        self._loader: asyncio.Task[None] | None = None

    async def _load(self) -> None:
        """Load the full app and hold its lifespan open until shutdown (one task: the
        app's lifespan has anyio cancel scopes that must exit where they entered)."""
        try:
            assert self._engine is not None
            app = await asyncio.to_thread(self._build, self._engine)
            async with app.router.lifespan_context(app):
                self._app = app
                self._set_ready()
                log.info("ready: HTTP API, MCP at /mcp")
                await self._stopping.wait()
        except BaseException as exc:
            self._failed = exc
            log.exception("the HTTP app failed to load")
        finally:
            self._set_ready()

    def _set_ready(self) -> None:
        """From now on the full app serves every request (or none, if it failed)."""
        self._ready.set()
        if self._history is not None:
            self._history.app_ready()

    async def _startup(self) -> None:
        self._engine = Engine(self.settings)
        await self._engine.start()  # pools warm while the full app imports
        self._history = _EarlyHistory(self._engine, self.settings)
        self._loader = asyncio.ensure_future(self._load())

    async def _shutdown(self) -> None:
        self._stopping.set()
        if self._loader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._loader), _LOAD_TIMEOUT_S)
        if self._history is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._history.aclose(), _LOAD_TIMEOUT_S)
        if self._engine is not None:
            await self._engine.aclose()

    async def _lifespan_protocol(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._startup()
                except BaseException as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def route_of(self, scope: dict[str, Any]) -> str | None:
        """The route template that serves `scope` (for traces): the full app's, once
        loaded; before that, the few paths answered here."""
        if self._app is not None:
            from ._metrics import route_template  # loaded with the full app already

            return route_template(self._app.router.routes, scope)
        path = scope.get("path")
        return path if path in _EARLY_PATHS or path in ("/healthz", "/readyz") else None

    def _early_execution_allowed(self, scope: dict[str, Any]) -> bool:
        """A plain execution before the full app is loaded (the first request after start)."""
        if self._api_keys or scope["type"] != "http" or scope["method"] != "POST":
            return False
        if scope["path"] not in _EARLY_PATHS:
            return False
        length = dict(scope["headers"]).get(b"content-length")
        return length is not None and length.isdigit() and int(length) <= 1024 * 1024

    async def _execute_early(self, scope: dict[str, Any], body: bytes, send: Any) -> bool:
        """Run a well-formed request on the engine; anything else waits for the full app,
        which gives every error its proper answer (and so does a full app loaded meanwhile).
        It is logged as the full app's executions are, and recorded in the history."""
        assert self._engine is not None and self._history is not None
        try:
            data = json.loads(body)
            language = _EARLY_PATHS[scope["path"]]
            if language is not None:
                if not isinstance(data, dict) or "language" in data:
                    return False
                data["language"] = language.value
            request = ExecutionRequest.model_validate(data)
        except (ValueError, CodeRunnerError):
            return False
        if self._ready.is_set() or not self._history.begin():
            return False
        result: ExecutionResult | None = None
        try:
            result = await run_tool(
                self._engine, request, surface="http", log_inputs=self._log_inputs
            )
        except CodeRunnerError:
            return False
        finally:
            self._history.end(request, result)
        await _json(send, 200, result.model_dump(mode="json"))
        return True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan_protocol(receive, send)
            return
        if self._app is None and scope["type"] == "http" and scope["path"] == "/healthz":
            await _json(send, 200, {"status": "ok"})
            return
        if self._app is None and scope["type"] == "http" and scope["path"] == "/readyz":
            starting = {"status": "not ready", "problems": ["the service is still starting"]}
            await _json(send, 503, starting, retry_after=True)
            return
        if not self._ready.is_set() and self._early_execution_allowed(scope):
            body = await _read_body(receive)
            if await self._execute_early(scope, body, send):
                return
            receive = _replay(body, receive)
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), _LOAD_TIMEOUT_S)
        if self._app is None:
            if scope["type"] == "http":
                message = f"the service failed to start: {self._failed or 'still loading'}"
                await _json(send, 503, error_body("unavailable", message), retry_after=True)
            return
        if self._history is not None and _reads_history(scope):
            await self._history.flush()
        await self._app(scope, receive, send)


_EARLY_PATHS: dict[str, Language | None] = {
    "/v1/execute": None,
    **{f"/v1/tools/{name}": language for name, language in TOOL_LANGUAGES.items()},
}


def _reads_history(scope: dict[str, Any]) -> bool:
    """A request the history answers (GET /v1/executions, /v1/executions/{id})."""
    path: str = scope.get("path", "")
    return scope["type"] == "http" and path.rstrip("/").startswith("/v1/executions")


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: dict[str, Any] = await receive()
        return message

    return replay


async def _json(send: Any, status: int, body: dict[str, Any], retry_after: bool = False) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    if retry_after:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_keys: Sequence[str] = (),
    log_level: str = "info",
    log_inputs: bool = False,
) -> None:
    """Serve the API with uvicorn until SIGINT/SIGTERM, then shut down gracefully.

    On a signal the server stops accepting connections, lets running executions finish
    (for at most the longest timeout a request may ask for, plus 5 s; then they are
    cancelled and their jails killed), and closes the Engine, killing idle workers.
    """
    import uvicorn

    configure_logging(log_level)
    if log_inputs:
        log.warning("--log-inputs: code and inputs of every execution are logged")

    def build(engine: Engine) -> Any:
        from ._http import create_app

        return create_app(
            settings, api_keys=api_keys, log_inputs=log_inputs, engine=engine, host=host
        )

    from ._tracing import start_tracing

    app = DeferredApp(settings, build, api_keys, log_inputs=log_inputs)
    tracing = start_tracing(os.environ)  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    config = uvicorn.Config(
        app if tracing is None else tracing.wrap(app, app.route_of),
        host=host,
        port=port,
        log_level=log_level,
        log_config=logging_config(log_level),
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=int(settings.max_timeout_ms / 1000) + 5,
    )
    server = uvicorn.Server(config)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    finally:
        if tracing is not None:
            tracing.shutdown()
    if not server.started:
        raise CodeRunnerError("the server did not start; see the log above")
