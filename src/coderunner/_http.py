"""The HTTP API: a thin FastAPI adapter over the Engine, with the MCP server at `/mcp`.

`create_app` builds the ASGI app (its lifespan starts and stops the Engine);
`coderunner._launch.serve` runs it under uvicorn.  In front of every route sits `_Guard`,
a plain ASGI layer that checks the API key and the body size before anything reads the
body.

Every error of the request itself is JSON ``{"error": {"type", "message"}}``:

    401 unauthorized        API keys configured, `Authorization: Bearer KEY` missing/wrong
    413 body_too_large      body over `max_body_bytes` (Content-Length, or counted)
    422 invalid_request     malformed JSON or field, limit above a maximum, bad schema
    429 saturated           every slot busy and the queue full; `Retry-After` says when
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from prometheus_client import CONTENT_TYPE_LATEST, Counter
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._agent import AgentNotConfigured, AgentRequest, AgentResult, LLMConfig, run_agent
from ._engine import TENANT, Engine
from ._errors import (
    CodeRunnerError,
    ExamplesFailed,
    InvalidRequest,
    NotFound,
    Saturated,
    StoreUnavailable,
)
from ._frontend import (
    TOOL_LANGUAGES,
    ToolArguments,
    error_body,
    run_tool,
    snippet_tool_definitions,
    tool_definitions,
    validation_message,
)
from ._http_console import CONSOLE_PATHS, add_console_routes
from ._http_errors import ERROR_RESPONSES as _ERROR_RESPONSES
from ._http_errors import ErrorBody
from ._http_errors import error_response as _error_response
from ._http_library import add_library_routes
from ._json import loads as fast_json_loads
from ._json import split_member, strict_loads
from ._library import Library, check_name
from ._mcp import build_server, streamable_http_manager
from ._metrics import CountResponses, Metrics
from ._models import ExecutionRequest, ExecutionResult, Language
from ._packages import RuntimesInfo, runtimes
from ._settings import Settings
from ._version import __version__

__all__ = ["create_app"]

log = logging.getLogger("coderunner.http")

# Paths open without an API key: liveness, the API's own documentation, and the web
# console's page and assets (the page asks for the key and sends it with its API calls).
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json", *CONSOLE_PATHS}
)


# -- the guard: API keys, then the body limit --------------------------------------------


class _Guard:
    """Checks the API key, then reads the body up to ``max_body_bytes`` (else 413) and
    replays it: a large body is refused from its Content-Length before a byte of it is
    read, and a chunked one as soon as the count passes the limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: Sequence[str],
        max_body_bytes: int,
        rejected: Counter,
    ) -> None:
        self.app = app
        self.keys = [k.encode() for k in api_keys]
        self.max_body_bytes = max_body_bytes
        self.rejected = rejected

    def _authorized(self, scope: Scope) -> bool:
        header = _header(scope, b"authorization")
        scheme, _, token = (header or b"").partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return False
        token = token.strip()
        matched = False
        for key in self.keys:  # every key is compared, in constant time
            matched |= hmac.compare_digest(token, key)
        return matched

    async def _refuse(
        self, send: Send, status: int, kind: str, message: str, headers: dict[str, str]
    ) -> None:
        self.rejected.labels(kind).inc()
        body = json.dumps(error_body(kind, message)).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.keys and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
            await self._refuse(
                send,
                401,
                "unauthorized",
                "a valid API key is required: send the header 'Authorization: Bearer KEY'",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        if self.keys:  # each key's JavaScript isolates get workerd processes of their own
            token = (_header(scope, b"authorization") or b"").partition(b" ")[2].strip()
            TENANT.set(hashlib.sha256(token).hexdigest()[:32])
        too_large = (
            f"the request body is larger than this server's limit of {self.max_body_bytes} bytes"
        )
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._refuse(send, 400, "bad_request", "invalid Content-Length", {})
                return
            if declared > self.max_body_bytes:
                await self._refuse(send, 413, "body_too_large", too_large, {"Connection": "close"})
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(send, 413, "body_too_large", too_large, {"Connection": "close"})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if scope["method"] in ("POST", "PUT") and scope["path"].startswith("/v1/"):
            # JSON in, whatever the client called it (curl -d says form-urlencoded).
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, replay, send)


class _FastJSONRequest(Request):
    """A request whose JSON body `_json.loads` decodes: the values and errors of
    json.loads, about three times faster for a large body (e.g. 100,000 rows of inputs).

    On the execution routes, inputs that the job can carry as they are stay JSON text
    (`inputs_json`: the body decodes without them; see `_json.split_member`)."""

    inputs_json: bytes | None = None

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            split = split_member(body, "inputs") if self.scope["path"] in _RAW_INPUTS else None
            if split is not None:
                self._json, self.inputs_json = split
            else:
                self._json = fast_json_loads(body)
        return self._json


# The routes whose inputs go to the engine untouched (a library run checks its inputs
# against the snippet's input_schema, so it needs their values).
_RAW_INPUTS = frozenset({"/v1/execute", *(f"/v1/tools/{name}" for name in TOOL_LANGUAGES)})


class _FastJSONRoute(APIRoute):
    """A route that hands its endpoint a `_FastJSONRequest` (FastAPI's documented way to
    customise how a body is read)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_FastJSONRequest(request.scope, request.receive))

        return handle


def _header(scope: Scope, name: bytes) -> bytes | None:
    headers: Iterable[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value
    return None


# -- the app -------------------------------------------------------------------------------


class ToolDefinition(BaseModel):
    """One tool, ready to hand to an LLM as a function definition."""

    name: str
    description: str
    input_schema: dict[str, Any] = Field(description="JSON Schema of the arguments.")
    output_schema: dict[str, Any] = Field(description="JSON Schema of the ExecutionResult.")


class ToolList(BaseModel):
    """The answer of GET /v1/tools."""

    tools: list[ToolDefinition]


class Health(BaseModel):
    """The answer of GET /healthz."""

    status: str = "ok"


class Readiness(BaseModel):
    """The answer of GET /readyz."""

    status: str = Field(description="ready, or not ready.")
    problems: list[str] = Field(default_factory=list, description="What is not ready yet.")


def create_app(
    settings: Settings,
    *,
    api_keys: Sequence[str] = (),
    log_inputs: bool = False,
    engine: Engine | None = None,
    host: str = "127.0.0.1",
    llm_config: LLMConfig | None = None,
) -> FastAPI:
    """The ASGI app of the HTTP API and `/mcp`; its lifespan starts and stops the Engine.

    Args:
        settings: limits, pools and server options.
        api_keys: when any, every route but `/healthz` and the docs wants `Bearer KEY`.
        log_inputs: log each execution's code and inputs (debug only: they hold secrets).
        engine: an engine to use instead of one of the app's own; it is started if
            needed, and closed by its owner, not by the app.
        host: the address the server binds; on loopback `/mcp` checks Host and Origin.
        llm_config: Agent Mode's model; `LLMConfig.from_env()` per request if omitted.
    """
    api_keys = [k for k in api_keys if k]
    current: dict[str, Engine] = {}
    libraries: dict[str, Library] = {}

    def get_engine() -> Engine:
        try:
            return current["engine"]
        except KeyError:
            raise CodeRunnerError("the engine is not running") from None

    def get_library() -> Library:
        try:
            return libraries["library"]
        except KeyError:
            raise CodeRunnerError("the library is not open") from None

    metrics = Metrics(lambda: current.get("engine"))
    mcp_server = build_server(get_engine, settings, log_inputs=log_inputs, get_library=get_library)
    mcp_manager = streamable_http_manager(mcp_server, settings, host=host)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = engine is None
        running = Engine(settings) if engine is None else engine
        await running.start()
        current["engine"] = running
        library = Library(running, settings)
        await library.start()  # a store that is down is retried on use; plain runs go on
        libraries["library"] = library
        try:
            async with mcp_manager.run():
                yield
        finally:
            libraries.pop("library", None)
            await library.aclose()
            current.pop("engine", None)
            if own:
                await running.aclose()

    app = FastAPI(
        title="Code Runner",
        version=__version__,
        summary="Run short untrusted Python and JavaScript snippets in a sandbox; get JSON.",
        description=_API_DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
        # Our own server span (coderunner._tracing) wraps every request, the early ones
        # and the guard's refusals too; FastAPI's would be a second one, and its logs
        # signal would export rejected bodies (secrets included).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.router.route_class = _FastJSONRoute  # the routes below decode bodies fast
    # Documents the key in OpenAPI (and the docs' Authorize button); _Guard enforces it.
    security = [Depends(HTTPBearer(auto_error=False))] if api_keys else []

    async def execute(request: ExecutionRequest, http: Request) -> Response:
        inputs_json = http.inputs_json if isinstance(http, _FastJSONRequest) else None
        if inputs_json is not None and log_inputs:  # the log line shows them
            request.inputs, inputs_json = strict_loads(inputs_json), None
        try:
            result = await run_tool(
                get_engine(),
                request,
                surface="http",
                log_inputs=log_inputs,
                library=libraries.get("library"),
                decode_result=False,  # the answer splices the result's JSON text
                inputs_json=inputs_json,  # and the job the inputs' own
            )
        finally:
            metrics.drain()
        # The ExecutionResult as FastAPI would send it (response_model documents it), with
        # the runner's JSON of a large result spliced in rather than encoded again.
        return Response(result.to_json(), media_type="application/json")

    @app.post(
        "/v1/execute",
        response_model=ExecutionResult,
        responses=_ERROR_RESPONSES,
        dependencies=security,
        tags=["execute"],
        summary="Run a snippet",
    )
    async def post_execute(body: ExecutionRequest, http: Request) -> Response:
        """Run one snippet in a fresh jail: 200 with an ExecutionResult for every outcome
        of the snippet (`ok: false` and `error.type` when it failed)."""
        return await execute(body, http)

    def tool_route(name: str, language: Language) -> Callable[..., Awaitable[Response]]:
        async def post_tool(body: ToolArguments, http: Request) -> Response:
            return await execute(body.request(language), http)

        post_tool.__doc__ = (
            f"The `{name}` tool: run a {language.value} snippet (the same as /v1/execute "
            f'with `"language": "{language.value}"`).'
        )
        return post_tool

    for name, language in TOOL_LANGUAGES.items():
        app.post(
            f"/v1/tools/{name}",
            response_model=ExecutionResult,
            responses=_ERROR_RESPONSES,
            dependencies=security,
            tags=["tools"],
            summary=f"Run a {language.value} snippet (tool {name})",
            operation_id=f"tool_{name.replace('-', '_')}",
        )(tool_route(name, language))

    builtin_tools = tool_definitions(settings, agent_hint=True)

    @app.get(
        "/v1/tools",
        response_model=ToolList,
        responses={401: _ERROR_RESPONSES[401]},
        dependencies=security,
        tags=["tools"],
        summary="Tool definitions for an LLM",
    )
    async def get_tools() -> ToolList:
        """The built-in tools and every library snippet, with JSON Schemas of their
        arguments and answer, ready to hand to an LLM as function definitions.  Call the
        built-ins at POST /v1/tools/{name} and snippets at POST /v1/snippets/{name}/run
        (with the arguments as `inputs`)."""
        library = libraries.get("library")
        snippets = await snippet_tool_definitions(library) if library is not None else []
        return ToolList.model_validate({"tools": [*builtin_tools, *snippets]})

    @app.get(
        "/v1/runtimes",
        response_model=RuntimesInfo,
        responses={401: _ERROR_RESPONSES[401]},
        dependencies=security,
        tags=["service"],
        summary="Languages, runtime versions and installed packages",
    )
    async def get_runtimes() -> RuntimesInfo:
        """Each language, the runtime that runs it (Python's version; Deno's, with its V8
        and TypeScript versions) and the vetted packages its snippets can import, with
        their versions (`python_packages`, `javascript_packages`)."""
        return await asyncio.to_thread(runtimes, get_engine().packages)

    @app.get("/healthz", response_model=Health, tags=["service"], summary="Liveness")
    async def healthz() -> Health:
        """Always 200 while the server runs (no API key needed)."""
        return Health()

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready: `problems` says why."}},
        tags=["service"],
        summary="Readiness",
    )
    async def readyz() -> Any:
        """200 when every warm pool has started its workers and the library's database
        answers, else 503 naming what is not ready (for a load balancer; no API key)."""
        problems = get_engine().readiness_problems()
        library = libraries.get("library")
        if library is None:
            problems.append("the library is not open")
        else:
            try:
                await asyncio.wait_for(library.check(), 5)
            except (StoreUnavailable, TimeoutError) as exc:
                problems.append(f"the library's database does not answer: {exc}")
        body = Readiness(status="not ready" if problems else "ready", problems=problems)
        return JSONResponse(body.model_dump(), status_code=503 if problems else 200)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            401: _ERROR_RESPONSES[401],
        },
        dependencies=security,
        tags=["service"],
        summary="Prometheus metrics",
    )
    async def get_metrics() -> Response:
        """Executions by language and outcome, durations, queue and worker waits, running,
        pool state, HTTP responses by route and status, and the process's own metrics."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/agent",
        response_model=AgentResult,
        responses={
            **_ERROR_RESPONSES,
            503: {"model": ErrorBody, "description": "No model configured (named)."},
        },
        dependencies=security,
        tags=["agent"],
        summary="Agent Mode: a model writes the snippet for a goal, the sandbox runs it",
    )
    async def post_agent(body: AgentRequest) -> Any:
        """Run an agent: the model writes a snippet, it runs until the result validates."""
        if body.save_as:
            check_name(body.save_as)  # a bad name is refused before the model is asked
        try:
            answer = await run_agent(get_engine(), body, llm_config or LLMConfig.from_env())
        except AgentNotConfigured as exc:
            return _error_response(503, "agent_not_configured", str(exc))
        if body.save_as and answer.ok:  # (its name was checked before the model ran)
            await get_library().save_agent_result(body, answer)
        return answer

    add_library_routes(app, get_library, security, log_inputs=log_inputs, metrics=metrics)
    add_console_routes(app)  # the web console: GET / and /console/*

    # MCP over streamable HTTP, behind the same guard as the rest.
    app.router.routes.append(
        Route("/mcp", endpoint=_McpEndpoint(mcp_manager), include_in_schema=False)
    )

    @app.exception_handler(RequestValidationError)
    async def on_invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejected.labels("invalid_request").inc()
        return _error_response(422, "invalid_request", validation_message(exc.errors()))

    @app.exception_handler(InvalidRequest)
    async def on_invalid_request(request: Request, exc: InvalidRequest) -> JSONResponse:
        metrics.rejected.labels("invalid_request").inc()
        return _error_response(422, "invalid_request", str(exc))

    @app.exception_handler(Saturated)
    async def on_saturated(request: Request, exc: Saturated) -> JSONResponse:
        metrics.rejected.labels("saturated").inc()
        retry_after = str(max(1, math.ceil(exc.retry_after)))
        return _error_response(429, "saturated", str(exc), {"Retry-After": retry_after})

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return _error_response(exc.status_code, kind, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return _error_response(500, "internal_error", "the service failed; see its log")

    @app.exception_handler(ExamplesFailed)
    async def on_examples_failed(request: Request, exc: ExamplesFailed) -> JSONResponse:
        metrics.rejected.labels("invalid_request").inc()
        body = error_body("examples_failed", str(exc))
        body["error"]["failures"] = exc.failures
        return JSONResponse(body, status_code=422)

    @app.exception_handler(NotFound)
    async def on_not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error_response(404, "not_found", str(exc))

    @app.exception_handler(StoreUnavailable)
    async def on_store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.error("library store unavailable: %s", exc)
        message = f"the library's database is unavailable ({exc}); plain executions still run"
        return _error_response(503, "store_unavailable", message, {"Retry-After": "5"})

    @app.exception_handler(CodeRunnerError)
    async def on_service_error(request: Request, exc: CodeRunnerError) -> JSONResponse:
        log.error("service error: %s", exc)
        return _error_response(
            503, "unavailable", f"the service cannot run this now: {exc}", {"Retry-After": "5"}
        )

    app.add_middleware(
        _Guard,
        api_keys=api_keys,
        max_body_bytes=settings.max_body_bytes,
        rejected=metrics.rejected,
    )
    # Outermost (added last): every answer counts, the guard's 401 and 413 included.
    app.add_middleware(CountResponses, routes=app.router.routes, counter=metrics.responses)
    return app


class _McpEndpoint:
    """The streamable-HTTP MCP endpoint as a plain ASGI app (mounted at exactly `/mcp`)."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self._manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._manager.handle_request(scope, receive, send)


_API_DESCRIPTION = """\
Runs short, untrusted Python and JavaScript snippets in a sandbox (no network, no host
files, hard limits on time, memory, processes and output) and returns their result as JSON.

* `POST /v1/execute` runs `{language, code, inputs?, timeout_ms?, memory_mb?,
  output_schema?}` and answers 200 with an ExecutionResult for every outcome of the snippet.
* `POST /v1/tools/execute-python`, `/v1/tools/execute-javascript` and
  `/v1/tools/execute-typescript` are the same without `language`; `GET /v1/tools`
  describes them for an LLM.
* MCP (streamable HTTP) is served at `/mcp`.

Errors of the request itself are `{"error": {"type", "message"}}` with 401, 413, 422 or
429 (with `Retry-After`).
"""
