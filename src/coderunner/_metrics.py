"""Prometheus metrics of one server: executions, durations, queue, running, pools."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ._engine import Engine

# Execution durations, in seconds, as histogram buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


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
        self.registry.register(_EngineCollector(get_engine))

    def drain(self) -> None:
        """Move the durations the engine recorded into the histogram."""
        engine = self._get_engine()
        if engine is None or not engine.durations:
            return
        batch = list(engine.durations)
        engine.durations.clear()
        for language, seconds in batch:
            self.durations.labels(language).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        self.drain()
        return generate_latest(self.registry)
