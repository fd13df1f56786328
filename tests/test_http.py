"""The HTTP API against a real `coderunner serve` over sockets: every endpoint, every
error status, API keys, saturation, logs and graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema.validators import Draft202012Validator

from _server import (
    API_KEYS,
    AUTH,
    MAIN_FLAGS,
    MAX_BODY_BYTES,
    SMALL_POOLS,
    ServerProcess,
    descendants,
    process_identity,
    running_server,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """The shared server: API keys on, small body limit."""
    with running_server(*MAIN_FLAGS) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _server_output_on_failure(server: ServerProcess) -> Iterator[None]:
    """Prints what the server logged during the test (shown when the test fails)."""
    mark = server.output_size()
    yield
    print(f"--- server output during this test ---\n{server.output(mark)[-10_000:]}")


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=30) as c:
        yield c


def _error_message(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["type"], str)
    message = body["error"]["message"]
    assert isinstance(message, str) and message, body
    return message


# -- the happy paths ---------------------------------------------------------------------


def test_healthz_is_open_without_a_key(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("language", "code", "inputs", "expected"),
    [
        ("python", "def main(x, y=2):\n    return {'p': x * y}", {"x": 21}, {"p": 42}),
        (
            "python",
            "import hashlib\nhashlib.sha256(s.encode()).hexdigest()[:8]",
            {"s": "a"},
            "ca978112",
        ),
        ("javascript", "function main({ a, b }) { return [a, b]; }", {"a": 1, "b": "z"}, [1, "z"]),
        ("javascript", "return inputs.n + 1;", {"n": 41}, 42),
    ],
)
def test_execute_both_languages_and_styles(
    client: httpx.Client, language: str, code: str, inputs: dict[str, Any], expected: Any
) -> None:
    body = {"language": language, "code": code, "inputs": inputs}
    response = client.post("/v1/execute", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True, result
    assert result["result"] == expected
    assert result["language"] == language
    assert result["error"] is None


@pytest.mark.parametrize(
    ("tool", "code", "expected"),
    [
        (
            "execute-python",
            "def main(items):\n    print('hi')\n    return sorted(items)",
            [1, 2],
        ),
        ("execute-javascript", "console.log('hi'); return [...items].sort();", [1, 2]),
        (
            "execute-typescript",
            "function main(items: number[]): number[] {\n"
            "  console.log('hi');\n"
            "  return [...items].sort((a: number, b: number) => a - b);\n"
            "}",
            [1, 2],
        ),
    ],
)
def test_tool_endpoints(client: httpx.Client, tool: str, code: str, expected: Any) -> None:
    response = client.post(f"/v1/tools/{tool}", json={"code": code, "inputs": {"items": [2, 1]}})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True, result
    assert result["result"] == expected
    assert result["stdout"] == "hi\n"
    assert result["language"] == tool.removeprefix("execute-")


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ({"language": "python", "code": "1/0"}, "runtime_error"),
        ({"language": "python", "code": "def main(:"}, "syntax_error"),
        ({"language": "python", "code": "def main(x):\n    return x"}, "input_error"),
        ({"language": "javascript", "code": "return new Map();"}, "serialization_error"),
        (
            {"language": "python", "code": "import time\ntime.sleep(5)", "timeout_ms": 300},
            "timeout",
        ),
    ],
)
def test_snippet_failures_are_200_results(
    client: httpx.Client, body: dict[str, Any], error_type: str
) -> None:
    response = client.post("/v1/execute", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is False
    assert result["error"]["type"] == error_type, result


def test_output_schema_mismatch_keeps_the_result(client: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
        "required": ["n", "s"],
    }
    body = {"code": "def main():\n    return {'n': 'x'}", "output_schema": schema}
    result = client.post("/v1/tools/execute-python", json=body).json()
    assert result["ok"] is False
    assert result["error"]["type"] == "schema_error"
    assert result["result"] == {"n": "x"}
    assert "result.n" in result["error"]["message"]
    assert "'s' is a required property" in result["error"]["message"]
    body["code"] = "def main():\n    return {'n': 1, 's': 'y'}"
    assert client.post("/v1/tools/execute-python", json=body).json()["ok"] is True


def test_get_tools_are_llm_function_definitions(client: httpx.Client) -> None:
    response = client.get("/v1/tools")
    assert response.status_code == 200
    tools = {t["name"]: t for t in response.json()["tools"]}
    assert set(tools) == {"execute-python", "execute-javascript", "execute-typescript"}
    assert "typescript" in tools["execute-typescript"]["description"].lower()
    assert "not type-checked" in tools["execute-typescript"]["description"]
    for name, tool in tools.items():
        assert set(tool) == {"name", "description", "input_schema", "output_schema"}
        Draft202012Validator.check_schema(tool["input_schema"])
        Draft202012Validator.check_schema(tool["output_schema"])
        assert tool["input_schema"]["type"] == "object"
        assert tool["input_schema"]["required"] == ["code"]
        assert set(tool["input_schema"]["properties"]) == {
            "code",
            "inputs",
            "timeout_ms",
            "memory_mb",
            "output_schema",
            "secrets",
        }
        assert "$ref" not in json.dumps(tool["output_schema"])  # self-contained for an LLM
        description = tool["description"].lower()
        for words in ("standard", "no network", "main", "inputs", "return", "/v1/agent"):
            assert words in description, (name, words)
        # The output schema describes what the tool really answers.
        args = {"code": "def main(): return 1" if "python" in name else "return 1;"}
        answer = client.post(f"/v1/tools/{name}", json=args).json()
        Draft202012Validator(tool["output_schema"]).validate(answer)
        failed = client.post(f"/v1/tools/{name}", json={"code": "(("}).json()
        Draft202012Validator(tool["output_schema"]).validate(failed)
        # The input schema accepts what the endpoint accepts.
        Draft202012Validator(tool["input_schema"]).validate(
            {"code": "x", "inputs": {"a": 1}, "timeout_ms": 1000, "memory_mb": 128}
        )


def test_openapi_and_interactive_docs(server: ServerProcess) -> None:
    spec = httpx.get(f"{server.base_url}/openapi.json").json()  # open, like the docs
    for path in (
        "/v1/execute",
        "/v1/tools/execute-python",
        "/v1/tools/execute-javascript",
        "/v1/tools/execute-typescript",
        "/v1/tools",
        "/healthz",
        "/metrics",
    ):
        assert path in spec["paths"], path
    execute = spec["paths"]["/v1/execute"]["post"]
    assert {"200", "401", "413", "422", "429"} <= set(execute["responses"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    docs = httpx.get(f"{server.base_url}/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text.lower()


def test_metrics(client: httpx.Client) -> None:
    client.post("/v1/tools/execute-python", json={"code": "1"})
    client.post("/v1/tools/execute-javascript", json={"code": "throw new Error('x')"})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(r'coderunner_executions_total\{language="python",outcome="ok"\} \d', text)
    assert re.search(
        r'coderunner_executions_total\{language="javascript",outcome="runtime_error"\}', text
    )
    assert 'coderunner_execution_duration_seconds_bucket{language="python",le="0.5"}' in text
    assert "coderunner_execution_duration_seconds_count" in text
    for name in (
        "coderunner_queue_depth",
        "coderunner_running",
        "coderunner_pool_ready{",
        "coderunner_pool_starting{",
        "coderunner_pool_spawned_total{",
        "coderunner_pool_spawn_failures_total{",
    ):
        assert name in text, name


# -- errors of the request itself --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/execute", {"language": "ruby", "code": "1"}, "language"),
        ("/v1/execute", {"code": "1"}, "language"),
        ("/v1/execute", {"language": "python", "code": 12}, "code"),
        ("/v1/execute", {"language": "python"}, "code"),
        ("/v1/execute", {"language": "python", "code": "1", "inputs": [1, 2]}, "inputs"),
        ("/v1/execute", {"language": "python", "code": "1", "inputs": "x=1"}, "inputs"),
        ("/v1/execute", {"language": "python", "code": "1", "timeout_ms": "soon"}, "timeout_ms"),
        ("/v1/execute", {"language": "python", "code": "1", "timeout_ms": 0}, "timeout_ms"),
        ("/v1/execute", {"language": "python", "code": "1", "timeout_ms": 10**9}, "timeout_ms"),
        ("/v1/execute", {"language": "python", "code": "1", "memory_mb": 10**6}, "memory_mb"),
        ("/v1/execute", {"language": "python", "code": "1", "memory_mb": 1.5}, "memory_mb"),
        ("/v1/execute", {"language": "python", "code": "1", "input": {}}, "input"),
        (
            "/v1/execute",
            {"language": "python", "code": "1", "output_schema": {"type": "integr"}},
            "output_schema",
        ),
        ("/v1/execute", {"language": "python", "code": "1", "output_schema": []}, "output_schema"),
        ("/v1/execute", [1, 2], "object"),
        ("/v1/execute", "just a string", "object"),
        ("/v1/tools/execute-python", {"code": "1", "language": "python"}, "language"),
        ("/v1/tools/execute-javascript", {"code": None}, "code"),
        ("/v1/tools/execute-javascript", {"code": "1", "timeout_ms": 70_000}, "timeout_ms"),
    ],
)
def test_422_names_the_field(client: httpx.Client, path: str, body: Any, field: str) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    assert field in _error_message(response)


@pytest.mark.parametrize("raw", [b'{"language": "python", "code": ', b"{bad json}", b"\xff\xfe"])
def test_malformed_json(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/v1/execute", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    message = _error_message(response)
    assert "JSON" in message or "body" in message


def test_json_without_a_json_content_type(client: httpx.Client) -> None:
    # What `curl -d '{...}'` sends: form-urlencoded, yet the body is JSON.
    response = client.post(
        "/v1/execute",
        content=b'{"language": "python", "code": "6*7"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == 42


def _raw_exchange(server: ServerProcess, head: bytes, body_chunks: Iterator[bytes]) -> bytes:
    """Send a request by hand; stop sending once the server answers; return the answer."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(head)
        with_answer = False
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0.005)[0]:
                with_answer = True
                break
        if not with_answer:
            select.select([sock], [], [], 10)
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
            if b"\r\n\r\n" in answer:
                head_part, _, rest = answer.partition(b"\r\n\r\n")
                match = re.search(rb"content-length: (\d+)", head_part, re.I)
                if match and len(rest) >= int(match.group(1)):
                    break
        return answer
    finally:
        sock.close()


def _status_and_body(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body)


def test_413_from_content_length_before_the_body_is_read(server: ServerProcess) -> None:
    declared = 100 * 1024 * 1024  # far more than will ever be sent
    head = (
        b"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {API_KEYS[0]}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
    )
    started = time.monotonic()
    answer = _raw_exchange(server, head, iter([b'{"language": "python", "code": "']))
    status, body = _status_and_body(answer)
    assert status == 413, answer
    assert body["error"]["type"] == "body_too_large"
    assert str(MAX_BODY_BYTES) in body["error"]["message"]
    assert time.monotonic() - started < 5  # answered without waiting for 100 MiB


def test_413_for_a_chunked_body_while_streaming(server: ServerProcess) -> None:
    head = (
        b"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {API_KEYS[0]}\r\n".encode()
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 16384

    def chunks() -> Iterator[bytes]:
        for _ in range(10 * MAX_BODY_BYTES // len(piece)):  # never finished: no last chunk
            yield b"%x\r\n%s\r\n" % (len(piece), piece)

    status, body = _status_and_body(_raw_exchange(server, head, chunks()))
    assert status == 413
    assert body["error"]["type"] == "body_too_large"


def test_413_with_httpx_and_a_body_under_the_limit_passes(client: httpx.Client) -> None:
    small = {"language": "python", "code": "len(s)", "inputs": {"s": "a" * (MAX_BODY_BYTES - 200)}}
    response = client.post("/v1/execute", json=small)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == MAX_BODY_BYTES - 200
    big = {"language": "python", "code": "len(s)", "inputs": {"s": "a" * (MAX_BODY_BYTES + 1)}}
    try:
        response = client.post("/v1/execute", json=big)
    except httpx.TransportError:  # the server may close before the whole body is written
        return
    assert response.status_code == 413


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Bearer {API_KEYS[0]}x"},
        {"Authorization": f"Basic {API_KEYS[0]}"},
        {"Authorization": API_KEYS[0]},
        {"Authorization": "Bearer"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/execute"),
        ("POST", "/v1/tools/execute-python"),
        ("POST", "/v1/tools/execute-javascript"),
        ("GET", "/v1/tools"),
        ("GET", "/metrics"),
        ("POST", "/mcp"),
    ],
)
def test_401_without_a_valid_key(
    server: ServerProcess, headers: dict[str, str], method: str, path: str
) -> None:
    body = {"language": "python", "code": "1"}
    response = httpx.request(method, f"{server.base_url}{path}", json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in _error_message(response)


def test_401_comes_before_413(server: ServerProcess) -> None:
    big = "a" * (MAX_BODY_BYTES + 10)
    response = httpx.post(f"{server.base_url}/v1/execute", content=big)
    assert response.status_code == 401


@pytest.mark.parametrize("key", API_KEYS)
def test_every_configured_key_works(server: ServerProcess, key: str) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/tools/execute-python",
        json={"code": "'ok'"},
        headers={"Authorization": f"bearer {key}"},
    )
    assert response.status_code == 200
    assert response.json()["result"] == "ok"


def test_unknown_path_and_method_are_json(client: httpx.Client) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    _error_message(response)
    response = client.get("/v1/execute")
    assert response.status_code == 405
    _error_message(response)


def test_one_structured_log_line_per_execution_without_inputs(
    client: httpx.Client, server: ServerProcess
) -> None:
    mark = server.output_size()
    secret = "s3cr3t-token-value"
    answer = client.post(
        "/v1/tools/execute-python",
        json={"code": "def main(token):\n    return len(token)", "inputs": {"token": secret}},
    ).json()
    assert isinstance(answer["execution_id"], str) and len(answer["execution_id"]) >= 16
    deadline = time.monotonic() + 30
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not lines:
        output = server.output(mark)
        lines = [json.loads(line) for line in output.splitlines() if '"execution"' in line]
        time.sleep(0.05)
    assert len(lines) == 1, output
    assert lines[0]["event"] == "execution"
    assert lines[0]["execution_id"] == answer["execution_id"]
    assert lines[0]["language"] == "python"
    assert lines[0]["outcome"] == "ok"
    assert lines[0]["surface"] == "http"
    assert isinstance(lines[0]["duration_ms"], float)
    assert secret not in output
    assert "def main" not in output


def test_every_log_line_is_a_json_object(server: ServerProcess) -> None:
    """JSON lines on stderr, the uvicorn's own lines (start-up, access) included."""
    lines = [line for line in server.output().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)  # a plain-text prefix would fail here
        assert {"time", "level", "logger", "message"} <= set(record), line


FORGED_SURROGATE_FRAME = r"""
import os
os.write(3, b'{"ok": true}\n["\\ud800"]')
os.close(3)  # the runner cannot add its own frame
"""


@pytest.mark.parametrize(
    ("tool", "code"),
    [
        ("execute-python", "def main():\n    return {'s': '\\ud800' + 'x'}"),
        ("execute-javascript", "return { s: '\\ud800' + 'x' };"),
        # A snippet that forges the frame itself, then dies before the runner writes one:
        # the host's own check catches what the runner's would have.
        ("execute-python", FORGED_SURROGATE_FRAME),
    ],
)
def test_a_lone_surrogate_is_a_serialization_error_never_a_500(
    client: httpx.Client, tool: str, code: str
) -> None:
    response = client.post(f"/v1/tools/{tool}", json={"code": code})
    assert response.status_code == 200, response.text
    error = response.json()["error"]
    assert error["type"] in ("serialization_error", "runtime_error"), error
    assert "lone surrogate" in error["message"], error


# -- saturation, no keys, and graceful shutdown: servers of their own --------------------

SLOW_PYTHON = "import time\ntime.sleep(1.5)\n'slow'"


def test_saturation_answers_429_with_retry_after_and_recovers() -> None:
    # Fill the server first (2 running, 2 queued), confirmed by its own metrics, then
    # knock: every further request must be refused while the fillers are still in
    # flight. A refusal that waited for a slot could only come back after a filler
    # finished, so the check is on order, not on how fast this machine is.
    flags = (*SMALL_POOLS, "--max-concurrency", "2", "--queue-size", "2")
    with running_server(*flags) as srv:  # no API keys: everything open

        async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
            async with httpx.AsyncClient(base_url=srv.base_url, timeout=60) as c:

                async def execute(code: str) -> httpx.Response:
                    return await c.post("/v1/execute", json={"language": "python", "code": code})

                async def gauges() -> tuple[str, str]:
                    text = (await c.get("/metrics")).text
                    running = re.search(r"^coderunner_running (\S+)$", text, re.M)
                    queued = re.search(r"^coderunner_queue_depth (\S+)$", text, re.M)
                    assert running and queued
                    return running.group(1), queued.group(1)

                running = [asyncio.create_task(execute(FILLER_PYTHON)) for _ in range(2)]
                await wait_for(gauges, ("2.0", "0.0"))
                queued = [asyncio.create_task(execute("'queued'")) for _ in range(2)]
                await wait_for(gauges, ("2.0", "2.0"))
                fillers = running + queued
                refused = []
                for knock in asyncio.as_completed([execute(FILLER_PYTHON) for _ in range(8)]):
                    refused.append(await knock)
                    assert not any(f.done() for f in fillers), "a refusal waited for a slot"
                return refused, list(await asyncio.gather(*fillers))

        refused, served = asyncio.run(scenario())
        for response in refused:
            assert response.status_code == 429, response.text
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["type"] == "saturated"
        assert [r.json()["result"] for r in served] == ["slow", "slow", "queued", "queued"]
        # Healthy afterwards.
        assert httpx.get(f"{srv.base_url}/healthz").json() == {"status": "ok"}
        after = httpx.post(f"{srv.base_url}/v1/execute", json={"language": "python", "code": "1"})
        assert after.status_code == 200 and after.json()["ok"] is True
        metrics = httpx.get(f"{srv.base_url}/metrics").text
        rejected = re.search(
            r'coderunner_rejected_requests_total\{reason="saturated"\} (\S+)', metrics
        )
        assert rejected and float(rejected.group(1)) == len(refused)
        assert "coderunner_running 0.0" in metrics
        assert "coderunner_queue_depth 0.0" in metrics


# Long enough that the knocking above is over before it ends on any machine; the
# test's duration is one FILLER, since the queued ones are instant.
FILLER_PYTHON = "import time\ntime.sleep(4)\n'slow'"


async def wait_for(probe: Any, expected: tuple[str, str]) -> None:
    """Poll `probe` until it returns `expected` (a state, not a duration, is awaited)."""
    for _ in range(600):
        if await probe() == expected:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the server never reached {expected}")


def test_sigterm_lets_running_executions_finish_and_leaves_no_jail() -> None:
    # Keys from the environment this time (CODERUNNER_API_KEYS, comma-separated).
    env = {"CODERUNNER_API_KEYS": "env-key-a, env-key-b"}
    auth = {"Authorization": "Bearer env-key-b"}
    with running_server(*SMALL_POOLS, env=env) as srv:
        results: list[httpx.Response | Exception] = []
        assert httpx.get(f"{srv.base_url}/metrics").status_code == 401

        def slow_request() -> None:
            try:
                body = {"language": "python", "code": SLOW_PYTHON}
                results.append(
                    httpx.post(f"{srv.base_url}/v1/execute", json=body, headers=auth, timeout=30)
                )
            except Exception as exc:  # reported by the assertions below
                results.append(exc)

        threads = [threading.Thread(target=slow_request) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "coderunner_running 2.0" in httpx.get(f"{srv.base_url}/metrics", headers=auth).text:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the two executions never ran")
        jails = [p for p in descendants(srv.pid) if p[2] == "bwrap"]
        assert jails, "expected sandbox processes under the server"

        srv.signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.get(f"{srv.base_url}/healthz", timeout=2)
        for t in threads:
            t.join(30)
        status = srv.process.wait(30)
        assert status in (0, -signal.SIGTERM), srv.output()

        assert len(results) == 2
        for response in results:
            assert isinstance(response, httpx.Response), response
            assert response.status_code == 200
            assert response.json()["result"] == "slow"
        survivors = [
            (pid, name) for pid, start, name in jails if process_identity(pid) == (start, name)
        ]
        assert not survivors, f"sandbox processes left behind: {survivors}"
        assert "Application shutdown complete" in srv.output()


def test_readyz_is_open_and_says_ready_once_warm(server: ServerProcess) -> None:
    deadline = time.monotonic() + 60
    while True:  # the pools warm in the background after start
        response = httpx.get(f"{server.base_url}/readyz", timeout=10)  # no API key
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        assert response.status_code == 503 and response.json()["problems"], response.text
        time.sleep(0.2)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "problems": []}
