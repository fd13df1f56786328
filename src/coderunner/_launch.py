"""`coderunner serve`: answer at once, warm up in the background.

The full app (FastAPI, the MCP SDK) takes most of a second to import.  uvicorn starts
at once with `DeferredApp` in front: `/healthz` answers immediately, the engine's pools
start warming immediately, a well-formed execution request runs at once on the engine,
and every other request waits (never fails) until the full app from `coderunner._http`
is loaded.  Everything here runs in the service process.
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
from ._models import ExecutionRequest, Language
from ._settings import Settings

log = logging.getLogger("coderunner.server")

ASGIApp = Callable[..., Any]
# How long an early request may wait for the full app before it is answered 503.
_LOAD_TIMEOUT_S = 60.0


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
                self._ready.set()
                log.info("ready: HTTP API, MCP at /mcp")
                await self._stopping.wait()
        except BaseException as exc:
            self._failed = exc
            log.exception("the HTTP app failed to load")
        finally:
            self._ready.set()

    async def _startup(self) -> None:
        self._engine = Engine(self.settings)
        await self._engine.start()  # pools warm while the full app imports
        self._loader = asyncio.ensure_future(self._load())

    async def _shutdown(self) -> None:
        self._stopping.set()
        if self._loader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._loader), _LOAD_TIMEOUT_S)
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
        which gives every error its proper answer."""
        assert self._engine is not None
        try:
            data = json.loads(body)
            language = _EARLY_PATHS[scope["path"]]
            if language is not None:
                if not isinstance(data, dict) or "language" in data:
                    return False
                data["language"] = language.value
            request = ExecutionRequest.model_validate(data)
            result = await run_tool(
                self._engine, request, surface="http", log_inputs=self._log_inputs
            )
        except (ValueError, CodeRunnerError):
            return False
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
        await self._app(scope, receive, send)


_EARLY_PATHS: dict[str, Language | None] = {
    "/v1/execute": None,
    **{f"/v1/tools/{name}": language for name, language in TOOL_LANGUAGES.items()},
}


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
