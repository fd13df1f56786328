"""/metrics of a real `coderunner serve`: queue and worker waits, HTTP responses by route
template and status, and the process's own metrics."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from _server import AUTH, MAIN_FLAGS, running_server

SLEEPER = "import time\ntime.sleep(2)\n'slept'"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    all_samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return all_samples[(name, tuple(sorted(labels.items())))]


def test_queue_wait_status_counts_and_process_metrics() -> None:
    started = time.time()
    with running_server(*MAIN_FLAGS, "--max-concurrency", "1") as srv:
        client = httpx.Client(base_url=srv.base_url, headers=AUTH, timeout=60)
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, srv.output()
            time.sleep(0.1)

        ok = client.post("/v1/execute", json={"language": "python", "code": "1 + 1"})
        failed = client.post("/v1/execute", json={"language": "python", "code": "1/0"})
        assert ok.json()["ok"] is True and failed.json()["error"]["type"] == "runtime_error"

        async def one_waits_for_the_other() -> list[httpx.Response]:
            # One slot: the second waits (in the queue) for the sleeper to finish.
            async with httpx.AsyncClient(base_url=srv.base_url, headers=AUTH, timeout=60) as c:
                body = {"language": "python", "code": SLEEPER}
                first = asyncio.create_task(c.post("/v1/execute", json=body))
                while "coderunner_running 1.0" not in (await c.get("/metrics")).text:
                    await asyncio.sleep(0.02)
                second = await c.post("/v1/execute", json={"language": "python", "code": "2"})
                return [await first, second]

        waited = asyncio.run(one_waits_for_the_other())
        assert [r.json()["result"] for r in waited] == ["slept", 2]

        assert (
            client.post("/v1/execute", json={"language": "cobol", "code": "1"}).status_code == 422
        )
        assert client.get("/v1/snippets/no-such-snippet").status_code == 404
        assert client.get("/no/such/path").status_code == 404
        assert httpx.post(f"{srv.base_url}/v1/execute", json={}).status_code == 401
        assert client.request("PURGE", "/v1/execute").status_code == 405

        text = client.get("/metrics").text
        found = samples(text)

        # Queue wait: one observation per execution; the one behind the sleeper waited
        # most of its two seconds (it was sent while the sleeper was running).
        assert value(found, "coderunner_queue_wait_seconds_count", language="python") == 4
        assert value(found, "coderunner_queue_wait_seconds_sum", language="python") > 0.5
        assert (
            value(found, "coderunner_queue_wait_seconds_bucket", language="python", le="0.5") <= 3
        )
        assert (
            value(found, "coderunner_queue_wait_seconds_bucket", language="python", le="+Inf") == 4
        )
        assert value(found, "coderunner_worker_wait_seconds_count", pool="python") >= 4

        # HTTP responses by method, route template (never the raw path) and status.
        def responses(method: str, route: str, status: str) -> float:
            labels = {"method": method, "route": route, "status": status}
            return value(found, "coderunner_http_responses_total", **labels)

        assert responses("POST", "/v1/execute", "200") == 4
        assert responses("POST", "/v1/execute", "422") == 1
        assert responses("POST", "/v1/execute", "401") == 1
        assert responses("GET", "/v1/snippets/{name}", "404") == 1
        assert responses("GET", "(unmatched)", "404") == 1
        assert responses("GET", "/readyz", "200") >= 1
        assert responses("OTHER", "/v1/execute", "405") == 1  # any method: one label
        assert "no-such-snippet" not in text and "/no/such/path" not in text

        # The service process itself.
        assert value(found, "process_resident_memory_bytes") > 10 * 1024 * 1024
        assert value(found, "process_cpu_seconds_total") > 0
        assert value(found, "process_open_fds") > 3
        assert started - 5 <= value(found, "process_start_time_seconds") <= time.time()
        assert any(name == "python_info" for name, _ in found)
