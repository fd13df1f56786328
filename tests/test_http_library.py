"""The snippet library and the history over real HTTP, on a real `coderunner serve`
(SQLite in the server's own data directory).  PostgreSQL-backed nodes: test_nodes.py."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from _server import SMALL_POOLS, ServerProcess, running_server

pytestmark = pytest.mark.timeout(180)

PHONE_V1 = '''\
def main(phone: str, country: str = "US") -> str:
    """Normalize a phone number to E.164.

    Args:
        phone: the number as typed, e.g. "(555) 010-9999".
        country: ISO country code; only US (+1) is known.
    """
    digits = "".join(c for c in phone if c.isdigit())
    return "+1" + digits[-10:]
'''
PHONE_V2 = PHONE_V1.replace('return "+1" + digits[-10:]', 'return "+1-" + digits[-10:]')
EXAMPLES = [
    {"name": "US number", "inputs": {"phone": "(555) 010-9999"}, "expected": "+15550109999"},
    {"inputs": {"phone": "555.010.1234", "country": "US"}},
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(*SMALL_POOLS, "--api-key", "lib-key") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer lib-key"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as c:
        yield c


def save(client: httpx.Client, name: str, code: str, **fields: Any) -> httpx.Response:
    body = {"language": fields.pop("language", "python"), "code": code, **fields}
    return client.put(f"/v1/snippets/{name}", json=body)


def test_save_version_run_pinned_and_history(client: httpx.Client) -> None:
    first = save(
        client, "normalize-phone", PHONE_V1, description="Phone numbers to **E.164**.",
        examples=EXAMPLES, tags=["phone", "clean-up"],
    )  # fmt: skip
    assert first.status_code == 201, first.text
    v1 = first.json()
    assert (v1["name"], v1["version"], v1["examples_passed"]) == ("normalize-phone", 1, 2)
    assert len(v1["hash"]) == 64 and v1["created_at"]
    # Inferred from main: the hints, the default, the docstring.
    schema = v1["input_schema"]
    assert schema["required"] == ["phone"]
    assert schema["properties"]["phone"]["type"] == "string"
    assert schema["properties"]["country"]["default"] == "US"
    # The same content again: the same version, 200.
    again = save(
        client, "normalize-phone", PHONE_V1, description="Phone numbers to **E.164**.",
        examples=EXAMPLES, tags=["phone", "clean-up"],
    )  # fmt: skip
    assert again.status_code == 200 and again.json()["version"] == 1
    # A change: version 2; the example with `expected` must now be updated to pass.
    changed = [{**EXAMPLES[0], "expected": "+1-5550109999"}, EXAMPLES[1]]
    second = save(
        client, "normalize-phone", PHONE_V2, description="Phone numbers to **E.164**.",
        examples=changed, tags=["phone"],
    )  # fmt: skip
    assert second.status_code == 200, second.text
    assert second.json()["version"] == 2
    assert client.get("/v1/snippets/normalize-phone").json()["version"] == 2
    versions = client.get("/v1/snippets/normalize-phone/versions").json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert client.get("/v1/snippets/normalize-phone/versions/1").json()["code"] == PHONE_V1

    latest = client.post(
        "/v1/snippets/normalize-phone/run", json={"inputs": {"phone": "5550100000"}}
    )
    assert latest.status_code == 200, latest.text
    assert latest.json()["ok"] and latest.json()["result"] == "+1-5550100000"
    assert latest.json()["snippet"] == {"name": "normalize-phone", "version": 2}
    pinned = client.post(
        "/v1/snippets/normalize-phone/run", json={"inputs": {"phone": "5550100000"}, "version": 1}
    ).json()
    assert pinned["result"] == "+15550100000" and pinned["snippet"]["version"] == 1

    # Both runs are in the history, newest first, with their inputs.
    listed = client.get("/v1/executions", params={"snippet": "normalize-phone"}).json()
    ids = [e["execution_id"] for e in listed["executions"]]
    assert ids[:2] == [pinned["execution_id"], latest.json()["execution_id"]]
    record = client.get(f"/v1/executions/{pinned['execution_id']}").json()
    assert record["snippet"] == "normalize-phone" and record["version"] == 1
    assert record["inputs"] == {"phone": "5550100000"}
    assert record["result"]["result"] == "+15550100000" and record["surface"] == "http"

    tools = {t["name"]: t for t in client.get("/v1/tools").json()["tools"]}
    assert "execute-python" in tools and "normalize-phone" in tools
    assert tools["normalize-phone"]["input_schema"]["required"] == ["phone"]
    assert "E.164" in tools["normalize-phone"]["description"]

    # What GET answers saves back unchanged (an example without `expected` stays without).
    current = client.get("/v1/snippets/normalize-phone").json()
    assert "expected" not in current["examples"][1]
    fields = ("language", "code", "description", "input_schema", "output_schema", "examples",
              "tags")  # fmt: skip
    again = client.put(
        "/v1/snippets/normalize-phone",
        content=json.dumps({k: current[k] for k in fields}),  # and no content-type at all
    )
    assert again.status_code == 200 and again.json()["version"] == 2, again.text

    found = client.get("/v1/snippets", params={"q": "PHONE"}).json()["snippets"]
    assert [s["name"] for s in found] == ["normalize-phone"]
    assert client.get("/v1/snippets", params={"q": "nothing-like-it"}).json() == {"snippets": []}


def test_inputs_that_do_not_fit_are_an_input_error_listing_each_path(client: httpx.Client) -> None:
    code = "def main(rows: list[dict], limit: int = 10):\n    return len(rows[:limit])\n"
    assert save(client, "count-rows", code).status_code == 201
    response = client.post(
        "/v1/snippets/count-rows/run", json={"inputs": {"rows": [1, {}], "limit": "ten"}}
    )
    assert response.status_code == 200
    result = response.json()
    assert result["ok"] is False and result["error"]["type"] == "input_error"
    message = result["error"]["message"]
    assert "inputs.rows[0]" in message and "inputs.limit" in message
    record = client.get(f"/v1/executions/{result['execution_id']}").json()  # recorded too
    assert record["error_type"] == "input_error" and record["inputs"]["limit"] == "ten"


def test_plain_executions_are_recorded(client: httpx.Client) -> None:
    result = client.post(
        "/v1/execute",
        json={"language": "javascript", "code": "console.log('hi'); throw new Error('boom')"},
    ).json()
    assert result["ok"] is False and result["execution_id"]
    record = client.get(f"/v1/executions/{result['execution_id']}").json()
    assert record["snippet"] is None and record["inputs"] is None
    assert record["error_type"] == "runtime_error"
    assert record["result"]["stdout"] == "hi\n" and "boom" in record["result"]["error"]["message"]
    recent = client.get("/v1/executions", params={"limit": 1}).json()["executions"]
    assert [e["execution_id"] for e in recent] == [result["execution_id"]]


@pytest.mark.parametrize(
    ("name", "body", "status", "words"),
    [
        ("Upper", {"code": "def main():\n    return 1"}, 422, "not a valid snippet name"),
        ("x" * 64, {"code": "def main():\n    return 1"}, 422, "not a valid snippet name"),
        ("execute-mine", {"code": "def main():\n    return 1"}, 422, "reserved"),
        ("script-style", {"code": "1 + 1"}, 422, "define main"),
        ("bad-syntax", {"code": "def main(:\n    pass"}, 422, "line 1"),
        (
            "bad-schema",
            {"code": "def main():\n    return 1", "input_schema": {"type": "nope"}},
            422,
            "input_schema",
        ),
        (
            "bad-output-schema",
            {"code": "def main():\n    return 1", "output_schema": {"type": 5}},
            422,
            "output_schema",
        ),
        (
            "no-language",
            {"code": "def main():\n    return 1", "language": "cobol"},
            422,
            "language",
        ),
    ],
)
def test_bad_saves_are_422_and_store_nothing(
    client: httpx.Client, name: str, body: dict[str, Any], status: int, words: str
) -> None:
    response = client.put(f"/v1/snippets/{name}", json={"language": "python", **body})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert client.get(f"/v1/snippets/{name}").status_code in (404, 422)


def test_failing_examples_are_named_and_nothing_is_saved(client: httpx.Client) -> None:
    code = "def main(a: int, b: int):\n    return a // b\n"
    examples = [
        {"name": "ok", "inputs": {"a": 6, "b": 3}, "expected": 2},
        {"name": "wrong", "inputs": {"a": 6, "b": 2}, "expected": 4},
        {"name": "crash", "inputs": {"a": 1, "b": 0}},
        {"name": "misfit", "inputs": {"a": "six", "b": 1}},
    ]
    response = save(client, "divide", code, examples=examples)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "examples_failed"
    assert [f["name"] for f in error["failures"]] == ["wrong", "crash", "misfit"]
    assert "returned 3, expected 4" in error["message"]
    assert "ZeroDivisionError" in error["message"]
    assert client.get("/v1/snippets/divide").status_code == 404


def test_unknown_names_versions_and_ids_are_404(client: httpx.Client) -> None:
    assert save(client, "known", "def main():\n    return 1").status_code == 201
    for response in (
        client.get("/v1/snippets/unknown"),
        client.get("/v1/snippets/unknown/versions"),
        client.get("/v1/snippets/known/versions/7"),
        client.post("/v1/snippets/unknown/run", json={}),
        client.post("/v1/snippets/known/run", json={"version": 7}),
        client.delete("/v1/snippets/unknown"),
        client.get("/v1/executions/not-an-id"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "not_found"
    assert client.delete("/v1/snippets/known").status_code == 204
    assert client.get("/v1/snippets/known").status_code == 404


def test_concurrent_saves_get_distinct_versions(client: httpx.Client) -> None:
    def put(i: int) -> httpx.Response:
        return save(client, "racy", f"def main():\n    return {i}\n")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(put, range(8)))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    versions = sorted(r.json()["version"] for r in responses)
    assert versions == list(range(1, 9))
    stored = client.get("/v1/snippets/racy/versions").json()["versions"]
    assert sorted(v["version"] for v in stored) == versions


def test_inspect_python_and_javascript(client: httpx.Client) -> None:
    answer = client.post(
        "/v1/inspect",
        json={
            "language": "python",
            "code": 'def main(rows: list[dict], country: str = "US"):\n    pass',
        },
    ).json()
    assert answer["has_main"] is True
    assert answer["input_schema"]["required"] == ["rows"]
    assert answer["input_schema"]["properties"]["rows"]["type"] == "array"
    assert [p["name"] for p in answer["parameters"]] == ["rows", "country"]
    assert "default" not in answer["parameters"][0]  # not null: rows has none
    assert answer["parameters"][1]["default"] == "US"
    js = client.post(
        "/v1/inspect",
        json={
            "language": "javascript",
            "code": "/**\n * @param {number[]} orders\n */\nfunction main(orders, rate = 1) {}",
        },
    ).json()
    assert js["input_schema"]["properties"]["orders"]["type"] == "array"
    assert js["input_schema"]["properties"]["rate"]["default"] == 1
    bad = client.post("/v1/inspect", json={"language": "python", "code": "x = (\n"})
    assert bad.status_code == 422
    assert bad.json()["error"]["type"] == "syntax_error"
    assert isinstance(bad.json()["error"]["line"], int)


def test_secrets_are_masked_and_never_stored_or_logged(
    client: httpx.Client, server: ServerProcess
) -> None:
    secret = "sk-live-0123456789abcdef"
    mark = server.output_size()
    for language, code in (
        ("python", "def main(payload, key):\n    print('key is', key)\n    raise ValueError(key)"),
        (
            "javascript",
            "function main(payload, key) { console.error('key is ' + key); throw new Error(key); }",
        ),
    ):
        result = client.post(
            "/v1/execute",
            json={
                "language": language,
                "code": code,
                "inputs": {"payload": 1},
                "secrets": {"key": secret},
            },
        ).json()
        assert result["ok"] is False
        text = json.dumps(result)
        assert secret not in text
        assert "***" in result["stdout"] + result["stderr"] and "***" in result["error"]["message"]
        record = client.get(f"/v1/executions/{result['execution_id']}").text
        assert secret not in record
    signed = (
        "import hmac, hashlib\n"
        "def main(message: str, key: str):\n"
        "    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()\n"
    )
    assert save(client, "sign", signed).status_code == 201
    run = client.post(
        "/v1/snippets/sign/run", json={"inputs": {"message": "hi"}, "secrets": {"key": secret}}
    ).json()
    assert run["ok"] is True and len(run["result"]) == 64
    record = client.get(f"/v1/executions/{run['execution_id']}").json()
    assert record["inputs"] == {"message": "hi"} and secret not in json.dumps(record)
    # A snippet that returns the secret: the caller gets its answer, the history never.
    leak = client.post(
        "/v1/execute",
        json={"language": "python", "code": "def main(key):\n    return {key: [key]}",
              "secrets": {"key": secret}},
    ).json()  # fmt: skip
    assert leak["result"] == {secret: [secret]}
    stored = client.get(f"/v1/executions/{leak['execution_id']}").json()
    assert stored["result"]["result"] == {"***": ["***"]}
    time.sleep(0.2)
    assert secret not in server.output(mark)
