"""Prometheus metrics of one server: executions, durations, waits, queue, running, pools,
HTTP responses by route and status, and the service process itself."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._engine import Engine

# Execution durations, in seconds, as histogram buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Waits for a slot or a worker, in seconds: mostly near zero, long only under load.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# The route label of a request no route matches (a raw path would be unbounded).
UNMATCHED_ROUTE = "(unmatched)"
# The method label of anything else a client sends (any token is a method to HTTP).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


class _EngineCollector:
    """Reads the engine's counters, gauges and pool state at scrape time."""

    def __init__(self, get_engine: Callable[[], Engine | None]) -> None:
        self._get_engine = get_engine

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        engine = self._get_engine()
        if engine is None:
            return
        executions = CounterMetricFamily(
            "coderunner_executions",
            "Executions finished, by language and outcome (ok or the error type).",
            labels=["language", "outcome"],
        )
        for (language, outcome), count in sorted(engine.outcomes.items()):
            executions.add_metric([language, outcome], count)
        yield executions
        yield GaugeMetricFamily(
            "coderunner_queue_depth", "Executions waiting for a slot.", value=engine.queue_depth
        )
        yield GaugeMetricFamily(
            "coderunner_running", "Executions running now.", value=engine.running
        )
        stats = engine.pool_stats()
        gauges = {
            "size": "Workers each pool keeps ready.",
            "ready": "Workers started and ready.",
            "starting": "Workers being started.",
        }
        for key, help_text in gauges.items():
            family = GaugeMetricFamily(f"coderunner_pool_{key}", help_text, labels=["pool"])
            for pool in stats:
                family.add_metric([pool["pool"]], pool[key])
            yield family
        counters = {
            "spawned": "Workers started.",
            "spawn_failures": "Workers that failed to start.",
            "replaced": "Idle workers found dead and replaced.",
        }
        for key, help_text in counters.items():
            counter = CounterMetricFamily(f"coderunner_pool_{key}", help_text, labels=["pool"])
            for pool in stats:
                counter.add_metric([pool["pool"]], pool[key])
            yield counter


class Metrics:
    """The app's own Prometheus registry."""

    def __init__(self, get_engine: Callable[[], Engine | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._get_engine = get_engine
        self.durations = Histogram(
            "coderunner_execution_duration_seconds",
            "Time snippets ran, by language.",
            ["language"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.rejected = Counter(
            "coderunner_rejected_requests",
            "Requests refused before running: unauthorized, body_too_large, invalid_request, "
            "saturated.",
            ["reason"],
            registry=self.registry,
        )
        self.queue_waits = Histogram(
            "coderunner_queue_wait_seconds",
            "Time executions waited for a slot (max_concurrency), by language.",
            ["language"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.worker_waits = Histogram(
            "coderunner_worker_wait_seconds",
            "Time executions waited for a ready worker after their slot, by pool.",
            ["pool"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "coderunner_http_responses",
            "HTTP responses, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(get_engine))
        # process_*: resident memory, CPU seconds, open fds, start time (of the service
        # process only: the jails are its children, accounted in their cgroups).
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def drain(self) -> None:
        """Move the durations and waits the engine recorded into the histograms."""
        engine = self._get_engine()
        if engine is None:
            return
        for samples, histogram in (
            (engine.durations, self.durations),
            (engine.queue_waits, self.queue_waits),
            (engine.worker_waits, self.worker_waits),
        ):
            batch = list(samples)
            samples.clear()
            for label, seconds in batch:
                histogram.labels(label).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        self.drain()
        return generate_latest(self.registry)


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    """The path template of the route that serves `scope` (``/v1/snippets/{name}``), a
    route for another method when only that matches (405), else None."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", None)
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "path", None)
    return partial


class CountResponses:
    """Counts every response by method, route template and status (outside the guard,
    so 401 and 413 count too)."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], counter: Counter) -> None:
        self.app = app
        self.routes = routes  # the router's own list: routes added later are seen
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            # Starlette's outermost layer answers an unhandled error with a 500.
            status = status or 500
            raise
        finally:
            route = route_template(self.routes, scope) or UNMATCHED_ROUTE
            # "0": no response at all (the client left before one started).
            method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER_METHOD
            self.counter.labels(method, route, str(status)).inc()
