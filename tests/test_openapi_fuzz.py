"""Schemathesis against the `/openapi.json` of a real server: whatever it sends, no 5xx.

Each operation gets a bounded run of valid (positive) and invalid (negative) requests
generated from the served schema; the whole file stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from _server import AUTH, MAIN_FLAGS, ServerProcess, running_server

pytestmark = pytest.mark.timeout(120)

OPERATIONS = [
    ("POST", "/v1/execute"),
    ("POST", "/v1/tools/execute-python"),
    ("POST", "/v1/tools/execute-javascript"),
    ("POST", "/v1/tools/execute-typescript"),
    ("GET", "/v1/tools"),
    ("GET", "/v1/runtimes"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    # The library and the history (fewer examples each: there are many of them).
    ("PUT", "/v1/snippets/{name}"),
    ("GET", "/v1/snippets"),
    ("GET", "/v1/snippets/{name}"),
    ("DELETE", "/v1/snippets/{name}"),
    ("GET", "/v1/snippets/{name}/versions"),
    ("GET", "/v1/snippets/{name}/versions/{version}"),
    ("POST", "/v1/snippets/{name}/run"),
    ("POST", "/v1/inspect"),
    ("GET", "/v1/executions"),
    ("GET", "/v1/executions/{execution_id}"),
]
LIBRARY_EXAMPLES = {
    schemathesis.GenerationMode.POSITIVE: 25,
    schemathesis.GenerationMode.NEGATIVE: 15,
}
# Agent Mode answers 503 by contract when no model is configured, and /readyz while the
# pools warm up; their own tests cover them.
NOT_FUZZED = {("GET", "/readyz"), ("POST", "/v1/agent")}
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 60, schemathesis.GenerationMode.NEGATIVE: 40}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(*MAIN_FLAGS) as srv:
        yield srv


@pytest.fixture(scope="module")
def api_schema(server: ServerProcess) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json", timeout=10)
    schema.config.update(base_url=server.base_url)
    return schema


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    served = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert served - NOT_FUZZED == set(OPERATIONS)


CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in EXAMPLES
    # Operations without parameters or body have nothing to make invalid.
    if method in ("POST", "PUT") or "{" in path or mode is schemathesis.GenerationMode.POSITIVE
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=lambda v: getattr(v, "value", v))
def test_no_server_errors(
    api_schema: schemathesis.BaseSchema,
    method: str,
    path: str,
    mode: schemathesis.GenerationMode,
) -> None:
    operation = api_schema[path][method]
    examples = EXAMPLES if path.startswith(("/v1/execute", "/v1/tools")) else LIBRARY_EXAMPLES

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples[mode],
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=AUTH, checks=[not_a_server_error], timeout=30)

    run()
