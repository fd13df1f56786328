"""`coderunner serve` answers at once: /healthz first, then early requests wait, never fail.

Executions served early (before the full app is loaded) are logged and recorded in the
history as the full app's are.  The server's own log tells which they were: its
"ready: …" line is written when the full app takes over, so an execution logged before
it was served early.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from _server import ServerProcess, free_port, recorded

BODY = {"language": "python", "code": "def main(x):\n    return x * 2", "inputs": {"x": 21}}
JS_TOOL = ("/v1/tools/execute-javascript", {"code": "return 6 * 7"})
READY = "ready: HTTP API, MCP at /mcp"


def _early_requests(server: ServerProcess, *, headers: dict[str, str]) -> list[httpx.Response]:
    """Poll until the port answers, then fire one request of each kind at once."""
    started = time.monotonic()
    while True:
        try:
            health = httpx.get(f"{server.base_url}/healthz", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() - started < 60, server.output()
            time.sleep(0.01)
    calls = [
        ("POST", "/v1/execute", BODY),
        ("POST", "/v1/tools/execute-javascript", {"code": "return 6 * 7"}),
        ("GET", "/v1/tools", None),
        ("POST", "/v1/execute", {"language": "python"}),  # invalid: the full app's 422
    ]
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        futures = [
            pool.submit(
                httpx.request,
                method,
                server.base_url + path,
                json=body,
                headers=headers,
                timeout=60,
            )
            for method, path, body in calls
        ]
        return [health] + [f.result() for f in futures]


def test_early_requests_wait_for_the_service_and_never_fail() -> None:
    server = ServerProcess()
    try:
        health, execute, tool, tools, invalid = _early_requests(server, headers={})
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert execute.status_code == 200 and execute.json()["result"] == 42
        assert tool.status_code == 200 and tool.json()["result"] == 42
        assert tools.status_code == 200
        assert {t["name"] for t in tools.json()["tools"]} >= {"execute-python"}
        assert invalid.status_code == 422 and "code" in invalid.text
    finally:
        server.stop()


def test_early_requests_honour_api_keys() -> None:
    server = ServerProcess("--api-key", "k3y")
    try:
        health, *responses = _early_requests(server, headers={})
        assert health.status_code == 200
        assert [r.status_code for r in responses] == [401, 401, 401, 401]
        ok = httpx.post(
            f"{server.base_url}/v1/execute", json=BODY, headers={"Authorization": "Bearer k3y"},
            timeout=60,
        )  # fmt: skip
        assert ok.status_code == 200 and ok.json()["result"] == 42
    finally:
        server.stop()


# -- executions served early: logged and recorded as the full app's are --------------------


def _wait_for_healthz(server: ServerProcess) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, server.output()
        assert server.process.poll() is None, server.output()
        time.sleep(0.01)


def _executions_until_ready(server: ServerProcess) -> list[dict[str, Any]]:
    """From the first /healthz on, executions one after another (Python, then the
    JavaScript tool) until the full app is loaded; their answers, all 200."""
    _wait_for_healthz(server)
    calls = itertools.cycle([("/v1/execute", BODY), JS_TOOL])
    answers = []
    deadline = time.monotonic() + 60
    while READY not in server.output():
        assert time.monotonic() < deadline, server.output()
        path, body = next(calls)
        response = httpx.post(server.base_url + path, json=body, timeout=60)
        assert response.status_code == 200 and response.json()["result"] == 42, response.text
        answers.append(response.json())
    return answers


def _log(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.output().splitlines() if line.strip()]


def _served_early(server: ServerProcess) -> set[str]:
    """The ids of the executions logged before the full app took over."""
    log = _log(server)
    ready = next(i for i, record in enumerate(log) if record["message"] == READY)
    return {r["execution_id"] for r in log[:ready] if r.get("event") == "execution"}


@pytest.fixture(scope="module")
def started() -> Iterator[tuple[ServerProcess, list[dict[str, Any]]]]:
    """A server (SQLite history in its own data directory) and the answers of the
    executions sent while it started."""
    server = ServerProcess()
    try:
        answers = _executions_until_ready(server)
        early = _served_early(server)
        assert early, f"no execution was served before the full app loaded:\n{server.output()}"
        assert early <= {a["execution_id"] for a in answers}
        yield server, answers
    finally:
        server.close()


def test_executions_served_early_are_in_the_history(
    started: tuple[ServerProcess, list[dict[str, Any]]],
) -> None:
    server, answers = started
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        for answer in answers:  # the early ones and the full app's
            # Reading the history writes what is pending; the deadline only avoids a hang.
            found = recorded(client, answer["execution_id"], within_s=60)
            assert found.status_code == 200, (answer, found.text, server.output())
            record = found.json()
            assert record["execution_id"] == answer["execution_id"]
            assert record["surface"] == "http" and record["ok"] is True
            assert record["snippet"] is None and record["inputs"] is None
            assert record["result"] == answer
        listed = client.get("/v1/executions", params={"limit": 1000}).json()["executions"]
        assert {a["execution_id"] for a in answers} <= {e["execution_id"] for e in listed}


def test_executions_served_early_are_logged(
    started: tuple[ServerProcess, list[dict[str, Any]]],
) -> None:
    server, answers = started
    lines = [r for r in _log(server) if r.get("event") == "execution"]
    for answer in answers:
        mine = [r for r in lines if r["execution_id"] == answer["execution_id"]]
        assert len(mine) == 1, (answer, server.output())  # one line each, never two
        line = mine[0]
        assert line["language"] == answer["language"]
        assert line["surface"] == "http" and line["outcome"] == "ok"
        assert line["duration_ms"] == answer["duration_ms"]
        assert "code" not in line and "inputs" not in line  # without --log-inputs
    assert len(lines) == len(answers)
    assert _served_early(server)  # some of them were written before the full app loaded


def test_early_executions_run_while_the_database_is_down() -> None:
    """No database answers: executions run at once and after, as the full app's do."""
    nothing = f"postgresql://coderunner:s3cret@127.0.0.1:{free_port()}/library"
    server = ServerProcess(env={"CODERUNNER_DATABASE_URL": nothing})
    try:
        answers = _executions_until_ready(server)
        assert _served_early(server), server.output()
        later = httpx.post(f"{server.base_url}/v1/execute", json=BODY, timeout=60)
        assert later.status_code == 200 and later.json()["result"] == 42, later.text
        found = httpx.get(f"{server.base_url}/v1/executions/{answers[0]['execution_id']}")
        assert found.status_code == 503, found.text  # the history is down, not the service
        ready = httpx.get(f"{server.base_url}/readyz", timeout=60)
        assert ready.status_code == 503 and "database" in ready.text, ready.text
        assert server.process.poll() is None
        assert "s3cret" not in server.output()
    finally:
        server.close()
