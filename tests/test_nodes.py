"""Several `coderunner serve` nodes sharing one library and history in a real PostgreSQL
server; and what a node does while that database is down."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from _postgres import PostgresServer
from _server import SMALL_POOLS, ServerProcess, recorded, running_server

pytestmark = pytest.mark.timeout(240)

CODE = "def main(x: int) -> int:\n    return x * 2\n"


@pytest.fixture
def shared_url(postgres: PostgresServer) -> Iterator[str]:
    name = f"nodes_{time.monotonic_ns()}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


def call(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=60)


def test_two_nodes_share_one_library_and_history(shared_url: str) -> None:
    env = {"CODERUNNER_DATABASE_URL": shared_url}
    with running_server(*SMALL_POOLS, env=env) as a, running_server(*SMALL_POOLS, env=env) as b:
        with call(a) as node_a, call(b) as node_b:
            saved = node_a.put(
                "/v1/snippets/double",
                json={"language": "python", "code": CODE, "examples": [
                    {"inputs": {"x": 2}, "expected": 4}]},
            )  # fmt: skip
            assert saved.status_code == 201, saved.text
            # Node B sees it, runs it, and lists it as a tool.
            run = node_b.post("/v1/snippets/double/run", json={"inputs": {"x": 21}}).json()
            assert run["ok"] and run["result"] == 42 and run["snippet"]["version"] == 1
            assert "double" in {t["name"] for t in node_b.get("/v1/tools").json()["tools"]}
            # A new version saved on B is the latest on A.
            node_b.put(
                "/v1/snippets/double",
                json={"language": "python", "code": CODE.replace("x * 2", "x + x")},
            )
            assert node_a.get("/v1/snippets/double").json()["version"] == 2
            # The history is one: B's run is found through A (B writes its history in
            # batches, a fraction of a second behind).
            record = recorded(node_a, run["execution_id"])
            assert record.status_code == 200, record.text
            assert record.json()["inputs"] == {"x": 21}
            plain = node_a.post("/v1/execute", json={"language": "python", "code": "1/0"}).json()
            deadline = time.monotonic() + 30
            while True:
                listed = node_b.get("/v1/executions", params={"limit": 5}).json()["executions"]
                seen = {e["execution_id"] for e in listed}
                if plain["execution_id"] in seen or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert plain["execution_id"] in seen


def test_a_database_that_is_down_is_503_and_plain_executions_go_on(
    own_postgres: PostgresServer,
) -> None:
    url = own_postgres.create_database("library")
    with running_server(*SMALL_POOLS, env={"CODERUNNER_DATABASE_URL": url}) as server:
        with call(server) as client:
            body = {"language": "python", "code": CODE}
            assert client.put("/v1/snippets/double", json=body).status_code == 201
            own_postgres.stop()
            down = client.get("/v1/snippets/double")
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"]
            message = down.json()["error"]["message"]
            assert "database" in message and "plain executions still run" in message
            assert "s3cret" not in message  # the password never shows
            plain = client.post("/v1/execute", json={"language": "python", "code": "6 * 7"})
            assert plain.status_code == 200 and plain.json()["result"] == 42
            tools = client.get("/v1/tools")
            assert tools.status_code == 200  # the built-in tools still answer
            assert {"execute-python", "execute-javascript"} <= {
                t["name"] for t in tools.json()["tools"]
            }
            own_postgres.start()
            deadline = time.monotonic() + 60
            while True:  # the store reconnects by itself
                back = client.get("/v1/snippets/double")
                if back.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert back.status_code == 200, back.text
            assert back.json()["code"] == CODE


def test_a_node_starts_while_its_database_is_down(own_postgres: PostgresServer) -> None:
    url = own_postgres.create_database("later")
    own_postgres.stop()
    with running_server(*SMALL_POOLS, env={"CODERUNNER_DATABASE_URL": url}) as server:
        with call(server) as client:
            plain = client.post("/v1/execute", json={"language": "python", "code": "2 + 2"})
            assert plain.status_code == 200 and plain.json()["result"] == 4
            assert client.get("/v1/snippets").status_code == 503
            own_postgres.start()
            deadline = time.monotonic() + 60
            while client.get("/v1/snippets").status_code != 200:
                assert time.monotonic() < deadline, "the library never came back"
                time.sleep(0.5)
            body = {"language": "python", "code": CODE}
            assert client.put("/v1/snippets/double", json=body).status_code == 201


def test_readyz_follows_the_database(own_postgres: PostgresServer) -> None:
    url = own_postgres.create_database("ready")
    with running_server(*SMALL_POOLS, env={"CODERUNNER_DATABASE_URL": url}) as server:
        with call(server) as client:
            deadline = time.monotonic() + 60
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, client.get("/readyz").text
                time.sleep(0.2)
            own_postgres.stop()
            down = client.get("/readyz")
            assert down.status_code == 503
            assert any("database" in p for p in down.json()["problems"]), down.text
            assert client.get("/healthz").status_code == 200  # alive, just not ready
