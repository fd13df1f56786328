"""`coderunner serve` answers at once: /healthz first, then early requests wait, never fail."""

from __future__ import annotations

import concurrent.futures
import time

import httpx

from _server import ServerProcess

BODY = {"language": "python", "code": "def main(x):\n    return x * 2", "inputs": {"x": 21}}


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
