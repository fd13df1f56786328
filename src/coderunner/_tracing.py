"""OpenTelemetry traces of `coderunner serve`, exported over OTLP/HTTP when asked for.

Tracing is on when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; every other standard ``OTEL_*`` variable
(service name, resource attributes, headers, sampler, batch delay, propagators) is read by
the OpenTelemetry SDK itself.  With neither set nothing here is imported beyond the API,
no middleware is installed and the core's spans are the API's no-ops.

`start_tracing` installs the global tracer provider; `Tracing.wrap` puts `ServerSpans`
in front of the ASGI app: one SERVER span per HTTP request, a child of the caller's span
when the request carries a W3C ``traceparent``.  The engine's spans (queue wait, worker
wait, execution) nest under it; probes and scrapes get none.  When the app's lifespan
has shut down, `Tracing.shutdown` flushes the last spans and stops the exporter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace

from ._engine import SURFACE_KEY
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("coderunner.tracing")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_SERVICE_NAME = "coderunner"
# Probes and scrapes: a load balancer's every few seconds would drown the real traces.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# How long a stopping server waits for the last spans to reach the collector.
_FLUSH_TIMEOUT_MS = 5_000

ASGIApp = Callable[..., Any]
RouteOf = Callable[[dict[str, Any]], "str | None"]


def tracing_endpoint(environ: Mapping[str, str]) -> str | None:
    """Where spans go, or None when tracing is off (no endpoint, or the SDK disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    for name in ENDPOINT_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


class Tracing:
    """The process's tracer provider and its OTLP/HTTP exporter."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("coderunner.http", __version__)
        self._stopped = False

    def wrap(self, app: ASGIApp, route_of: RouteOf) -> ServerSpans:
        """`app` with a server span around every HTTP request; the exporter is flushed
        and stopped when the app's lifespan has shut down."""
        return ServerSpans(app, self._tracer, route_of, self.shutdown)

    def shutdown(self) -> None:
        """Send the spans still queued, then stop the exporter (once; later calls do
        nothing)."""
        if self._stopped:
            return
        self._stopped = True
        self._provider.force_flush(_FLUSH_TIMEOUT_MS)
        self._provider.shutdown()


def start_tracing(environ: Mapping[str, str]) -> Tracing | None:
    """Set up the global tracer provider when an OTLP endpoint is configured, else None."""
    endpoint = tracing_endpoint(environ)
    if endpoint is None:
        return None
    # Imported only now: the SDK and the exporter cost ~100 ms that a server without
    # tracing never pays.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_VERSION: __version__})  # + OTEL_SERVICE_NAME etc.
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans over OTLP/HTTP to %s", endpoint)
    return Tracing(provider)


class ServerSpans:
    """ASGI middleware: a SERVER span per HTTP request, parented by its ``traceparent``.

    The span is named ``METHOD /route/{template}`` (never the raw path, whose names and
    ids would make every span name unique) and carries the method, path, route, status
    and the surface (``mcp`` for `/mcp`, else ``http``), which the engine's execution span
    repeats.  A 5xx answer or an exception marks it as an error.
    """

    def __init__(
        self,
        app: ASGIApp,
        tracer: trace.Tracer,
        route_of: RouteOf,
        on_shutdown: Callable[[], None],
    ) -> None:
        from opentelemetry import propagate

        from ._metrics import KNOWN_METHODS  # (not before: tracing may be off)

        self._methods = KNOWN_METHODS
        self.app = app
        self._tracer = tracer
        self._route_of = route_of
        self._on_shutdown = on_shutdown
        self._extract = propagate.extract  # the propagators of OTEL_PROPAGATORS

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._flushing_on_shutdown(send))
            return
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        surface = "mcp" if scope["path"] == "/mcp" else "http"
        parent = context.set_value(SURFACE_KEY, surface, self._extract(carrier))
        method = scope["method"] if scope["method"] in self._methods else "OTHER"
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
            "coderunner.surface": surface,
        }
        status = 0

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = context.attach(parent)  # so the engine's spans see the surface too
        try:
            with self._tracer.start_as_current_span(
                method, kind=trace.SpanKind.SERVER, attributes=attributes
            ) as span:
                try:
                    await self.app(scope, receive, send_status)
                finally:
                    route = self._route_of(scope)
                    if route is not None:
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                    if status:
                        span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(trace.Status(trace.StatusCode.ERROR, f"HTTP {status}"))
        finally:
            context.detach(token)

    def _flushing_on_shutdown(self, send: Any) -> Any:
        """`send` that first flushes the spans when the app says it has shut down: the
        last chance, as uvicorn then re-raises SIGTERM and the process ends at once."""

        async def send_lifespan(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await asyncio.to_thread(self._on_shutdown)
            await send(message)

        return send_lifespan
