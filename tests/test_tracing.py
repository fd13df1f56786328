"""Traces: a real `coderunner serve` exporting over OTLP/HTTP to an in-process collector.

The collector is a plain `http.server` on a free port that decodes each
`ExportTraceServiceRequest` (opentelemetry-proto) into flat span records.  The server is
configured only through the standard ``OTEL_*`` variables, as an operator would.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests.utils
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from _server import SMALL_POOLS, ServerProcess, free_port, running_server

SERVER_KIND = SpanProto.SpanKind.SPAN_KIND_SERVER
ERROR_STATUS = 2  # Status.StatusCode.STATUS_CODE_ERROR


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    status: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1; `requests` counts every request of any
    kind that reached it (a proxy request included)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with collector._lock:
                    collector.requests.append((self.command, self.path))
                if self.command == "POST" and self.path.endswith("/v1/traces"):
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    collector._receive(body)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_POST = do_GET = do_PUT = do_CONNECT = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            status=span.status.code,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            resource=resource,
                        )
                    )
        with self._lock:
            self.spans.extend(received)

    def of_trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, found: Callable[[], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not found():
            if time.monotonic() > deadline:
                raise AssertionError(f"the collector did not get the spans; it has {self.spans}")
            time.sleep(0.05)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def collector() -> Iterator[Collector]:
    with Collector() as c:
        yield c


def traceparent() -> tuple[str, str, str]:
    """A fresh caller's (trace id, span id, header)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def tracing_env(c: Collector, schedule_delay_ms: int) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": c.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": str(schedule_delay_ms),
        "OTEL_SERVICE_NAME": "coderunner-under-test",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def execute(srv: ServerProcess, code: str, header: str | None = None) -> dict[str, Any]:
    headers = {"traceparent": header} if header else {}
    body = {"language": "python", "code": code}
    response = httpx.post(f"{srv.base_url}/v1/execute", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def spans_of_one_execution(c: Collector, trace_id: str) -> dict[str, Span]:
    """The server, queue-wait, execution and worker-wait spans of one traced request."""
    names = {"coderunner.queue_wait", "coderunner.execution", "coderunner.worker_wait"}
    c.wait_for(lambda: names | {"POST /v1/execute"} <= {s.name for s in c.of_trace(trace_id)})
    spans = {s.name: s for s in c.of_trace(trace_id)}
    assert len(spans) == len(c.of_trace(trace_id)) == 4, c.of_trace(trace_id)
    return spans


def test_a_traced_request_continues_the_callers_trace() -> None:
    with collector() as c, running_server(*SMALL_POOLS, env=tracing_env(c, 100)) as srv:
        assert f"tracing: exporting spans over OTLP/HTTP to {c.endpoint}" in srv.output()
        trace_id, parent_id, header = traceparent()
        result = execute(srv, "21 * 2", header)
        assert result["ok"] is True and result["result"] == 42, result

        spans = spans_of_one_execution(c, trace_id)
        server = spans["POST /v1/execute"]
        assert server.kind == SERVER_KIND
        assert server.parent_id == parent_id  # the caller's span
        assert server.attributes["http.route"] == "/v1/execute"
        assert server.attributes["http.request.method"] == "POST"
        assert server.attributes["http.response.status_code"] == 200
        assert server.attributes["coderunner.surface"] == "http"
        assert server.resource["service.name"] == "coderunner-under-test"

        wait, run = spans["coderunner.queue_wait"], spans["coderunner.execution"]
        assert wait.parent_id == server.span_id and run.parent_id == server.span_id
        assert wait.attributes == {"coderunner.language": "python"}
        assert run.attributes == {
            "coderunner.language": "python",
            "coderunner.execution_id": result["execution_id"],
            "coderunner.outcome": "ok",
            "coderunner.surface": "http",
        }
        worker = spans["coderunner.worker_wait"]
        assert worker.parent_id == run.span_id
        assert worker.attributes == {"coderunner.pool": "python"}

        # A failing snippet: its error type on the execution span (not a service error).
        trace_id, _, header = traceparent()
        failed = execute(srv, "1/0", header)
        assert failed["ok"] is False
        run = spans_of_one_execution(c, trace_id)["coderunner.execution"]
        assert run.attributes["coderunner.outcome"] == failed["error"]["type"] == "runtime_error"
        assert run.attributes["error.type"] == "runtime_error"
        assert run.status != ERROR_STATUS

        # No traceparent: a trace of its own, the server span its root.
        before = len(c.spans)
        untraced = execute(srv, "'alone'")
        c.wait_for(
            lambda: any(
                s.attributes.get("coderunner.execution_id") == untraced["execution_id"]
                for s in c.spans[before:]
            )
        )
        run = next(
            s
            for s in c.spans
            if s.attributes.get("coderunner.execution_id") == untraced["execution_id"]
        )
        root = next(s for s in c.of_trace(run.trace_id) if s.span_id == run.parent_id)
        assert root.kind == SERVER_KIND and root.parent_id == ""

        # A templated route is named by its template, never by the raw path.
        trace_id, _, header = traceparent()
        missing = httpx.get(
            f"{srv.base_url}/v1/snippets/no-such-snippet", headers={"traceparent": header}
        )
        assert missing.status_code == 404
        c.wait_for(lambda: bool(c.of_trace(trace_id)))
        (server,) = c.of_trace(trace_id)
        assert server.name == "GET /v1/snippets/{name}"
        assert server.attributes["http.response.status_code"] == 404
        assert server.attributes["url.path"] == "/v1/snippets/no-such-snippet"

        # MCP over HTTP: the MCP SDK's tools/call span sits between ours.
        trace_id, parent_id, header = traceparent()
        call = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "execute-python", "arguments": {"code": "6 * 7"}},
        }
        headers = {"Accept": "application/json, text/event-stream", "traceparent": header}
        answer = httpx.post(f"{srv.base_url}/mcp", json=call, headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        c.wait_for(lambda: len(c.of_trace(trace_id)) >= 5)
        spans = {s.name: s for s in c.of_trace(trace_id)}
        server, tool = spans["POST /mcp"], spans["tools/call execute-python"]
        assert server.parent_id == parent_id
        assert server.attributes["coderunner.surface"] == "mcp"
        assert tool.parent_id == server.span_id
        run = spans["coderunner.execution"]
        assert run.parent_id == tool.span_id == spans["coderunner.queue_wait"].parent_id
        assert run.attributes["coderunner.surface"] == "mcp"
        assert run.attributes["coderunner.outcome"] == "ok"

        # Probes and scrapes are not traced (the readiness polling above made some).
        assert httpx.get(f"{srv.base_url}/readyz").status_code == 200
        assert not [s for s in c.spans if s.attributes.get("url.path") in ("/healthz", "/readyz")]


def test_spans_still_queued_are_sent_when_the_server_stops() -> None:
    # A batch delay far longer than the test: the spans can only come from the flush
    # on shutdown.
    with collector() as c:
        with running_server(*SMALL_POOLS, env=tracing_env(c, 600_000)) as srv:
            trace_id, parent_id, header = traceparent()
            result = execute(srv, "'flushed'", header)
            time.sleep(0.5)
            assert c.of_trace(trace_id) == [], "spans were sent before the batch delay"
            assert srv.stop() in (0, -signal.SIGTERM), srv.output()
        spans = spans_of_one_execution(c, trace_id)
        assert spans["POST /v1/execute"].parent_id == parent_id
        execution = spans["coderunner.execution"]
        assert execution.attributes["coderunner.execution_id"] == result["execution_id"]


def test_without_an_endpoint_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    with collector() as c:
        # Every plain-HTTP request the server's exporter could make (to the default
        # localhost:4318 or anywhere) would go through this "proxy": the collector.
        proxy = {
            "HTTP_PROXY": c.endpoint,
            "http_proxy": c.endpoint,
            "NO_PROXY": "",
            "no_proxy": "",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            assert name not in os.environ, f"{name} is set in the test's environment"
        # (the trap is armed: with these variables, the exporter's HTTP client would use it)
        for name, value in proxy.items():
            monkeypatch.setenv(name, value)
        default_endpoint = "http://localhost:4318/v1/traces"
        assert requests.utils.get_environ_proxies(default_endpoint)["http"] == c.endpoint
        for name in proxy:
            monkeypatch.delenv(name)

        with running_server(*SMALL_POOLS, env=proxy) as srv:
            _, _, header = traceparent()
            assert execute(srv, "1 + 1", header)["result"] == 2
            assert httpx.get(f"{srv.base_url}/healthz").status_code == 200
            time.sleep(0.5)  # ten batch delays, were a batch processor running
            output = srv.output()
            assert srv.stop() in (0, -signal.SIGTERM), output
        assert "tracing:" not in output
        assert c.requests == []
