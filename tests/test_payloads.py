"""Large payloads: inputs and results of many megabytes go through the Python API and HTTP
with the same values, errors and limits as small ones.

The fast paths (the result encoded first in the jail and walked only to explain a
failure; the host's JSON codecs; the runner's JSON spliced into the HTTP answer) must
never change an outcome: the equivalence tests below pin each to the standard library's
or the slow walk's answer, and the jail tests run the real thing.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import decimal
import enum
import json
import math
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import coderunner
from _server import SMALL_POOLS, ServerProcess, recorded, running_server
from coderunner._bench_payloads import CLEAN_UP, clean_up, make_rows
from coderunner._jail import protocol
from coderunner._jail import python_runner as runner
from coderunner._json import (
    DEFER_MIN_BYTES,
    finite_numbers,
    is_json_text,
    loads,
    split_member,
    strict_dumps,
    strict_loads,
)
from coderunner._models import ExecutionRequest, ExecutionResult, Language
from coderunner._store.store import RESULT_LIMIT

pytestmark = pytest.mark.timeout(300)

ROWS = make_rows(100_000)  # about 12 MB of JSON in, 11 MB out
EXPECTED = clean_up(ROWS)
LIMIT = 16 * 1024 * 1024  # result_limit_bytes' default
MEMORY_MB = 1024
TIMEOUT_MS = 60_000


def run_py(code: str, **kwargs: Any) -> coderunner.ExecutionResult:
    kwargs.setdefault("memory_mb", MEMORY_MB)
    kwargs.setdefault("timeout_ms", TIMEOUT_MS)
    return coderunner.run(code, "python", **kwargs)


def error_of(result: coderunner.ExecutionResult, kind: str) -> coderunner.ErrorDetail:
    assert not result.ok and result.error is not None, result
    assert result.error.type.value == kind, result.error
    return result.error


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(*SMALL_POOLS) as srv:
        yield srv


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as c:
        yield c


def post(client: httpx.Client, code: str, **fields: Any) -> dict[str, Any]:
    body = {"language": "python", "code": code, "memory_mb": MEMORY_MB, "timeout_ms": TIMEOUT_MS}
    response = client.post("/v1/execute", json={**body, **fields})
    assert response.status_code == 200, response.text[:2000]
    answer: dict[str, Any] = json.loads(response.content)  # strict: the answer is JSON
    return answer


# -- 100,000 rows through both surfaces ----------------------------------------------------


def test_100k_rows_through_the_api_give_the_same_values() -> None:
    result = run_py(CLEAN_UP, inputs={"rows": ROWS})
    assert result.ok, result.error
    assert result.result == EXPECTED


def test_100k_rows_through_http_give_the_same_values(client: httpx.Client) -> None:
    answer = post(client, CLEAN_UP, inputs={"rows": ROWS})
    assert answer["ok"] is True, answer.get("error")
    assert answer["result"] == EXPECTED
    # The answer is a whole ExecutionResult, the result spliced in at its place.
    assert list(answer) == list(ExecutionResult.model_fields)
    assert answer["error"] is None and answer["language"] == "python"
    assert len(answer["execution_id"]) == 32


def test_inputs_and_secrets_both_reach_a_large_snippet() -> None:
    code = "def main(rows, token):\n    return [len(rows), rows[-1]['id'], token]\n"
    result = run_py(code, inputs={"rows": ROWS}, secrets={"token": "s3cr\u00e9t"})
    assert result.ok, result.error
    assert result.result == [100_000, 99_999, "s3cr\u00e9t"]


def test_unicode_big_integers_and_floats_survive_both_ways(client: httpx.Client) -> None:
    values = {
        "text": 'h\u00e9llo \u2028 \U0001f600 \x00 "quoted" \\',
        "big": 2**200,
        "negative": -(2**64) - 1,
        "floats": [0.1, -0.0, 1e300, 5e-324, 2.5],
        "nested": [[{"k": [1, {"deep": True}]}]] * 1000,
    }
    code = "def main(values):\n    return values\n"
    result = run_py(code, inputs={"values": values})
    assert result.ok and result.result == values, result.error
    answer = post(client, code, inputs={"values": values})
    assert answer["result"] == values
    assert math.copysign(1, answer["result"]["floats"][1]) == -1


# -- errors of large results: as precise as for small ones --------------------------------


@pytest.mark.parametrize(
    ("last", "path", "kind"),
    [
        ("float('nan')", "result[99999].score", "float nan"),
        ("float('inf')", "result[99999].score", "float inf"),
        ("{1, 2}", "result[99999].score", "set"),
        ("datetime.date(2024, 1, 1)", "result[99999].score", "date"),
        ("b'x'", "result[99999].score", "bytes"),
    ],
)
def test_a_bad_value_at_the_end_of_a_large_result_is_named_by_its_path(
    last: str, path: str, kind: str
) -> None:
    code = CLEAN_UP.replace("def main(", "def clean(")
    code += f"import datetime\nout = clean(rows)\nout[-1]['score'] = {last}\nout"
    error = error_of(run_py(code, inputs={"rows": ROWS}), "serialization_error")
    assert error.message.startswith(f"{path} is {kind}"), error.message


def test_colliding_keys_deep_in_a_large_result() -> None:
    code = "out = [{'i': i} for i in range(100_000)]\nout[-1] = {'a': {1: 'x', '1': 'y'}}\nout"
    error = error_of(run_py(code), "serialization_error")
    assert error.message.startswith('result[99999].a["1"] is str key'), error.message
    assert '"1"' in error.message and "lost" in error.message


def test_non_string_keys_that_do_not_collide_still_round_trip() -> None:
    result = run_py("[{i: str(i), 'k': 1.5, None: True} for i in range(10_000)]")
    assert result.ok, result.error
    assert result.result[1234] == {"1234": "1234", "k": 1.5, "null": True}


@pytest.mark.parametrize(("depth", "ok"), [(499, True), (500, True), (501, False)])
def test_nesting_limit_is_exact(depth: int, ok: bool) -> None:
    result = run_py(f"x = 1\nfor _ in range({depth}):\n    x = [x]\nx")
    if ok:
        assert result.ok, result.error
    else:
        error = error_of(result, "serialization_error")
        assert "nested deeper than 500 levels" in error.message
        assert error.message.startswith("result" + "[0]" * 500 + " is list"), error.message[:80]


def test_a_lone_surrogate_in_a_large_result_is_named(client: httpx.Client) -> None:
    code = "out = ['ok'] * 200_000\nout[123_456] = 'a\\ud800b'\nout"
    error = error_of(run_py(code), "serialization_error")
    assert error.message.startswith("result[123456] is a string with a lone surrogate")
    answer = post(client, code)
    assert answer["error"]["type"] == "serialization_error"
    assert answer["error"]["message"] == error.message


JS_ROWS = (
    "const rows = Array.from({ length: 100000 }, (_, i) => "
    "({ id: i, name: 'User ' + i, score: i / 10, tags: ['a', 'b'] }));\n"
)


def test_a_large_javascript_result_round_trips() -> None:
    result = coderunner.run(JS_ROWS + "return rows;", "javascript", memory_mb=MEMORY_MB)
    assert result.ok, result.error
    assert len(result.result) == 100_000
    assert result.result[99_999] == {"id": 99_999, "name": "User 99999", "score": 9999.9,
                                     "tags": ["a", "b"]}  # fmt: skip


@pytest.mark.parametrize(
    ("last", "message"),
    [
        ("NaN", "result[99999].score is NaN"),
        ("undefined", "result[99999].score is undefined"),
        ("new Map()", "result[99999].score is Map"),
        ("{ 'x y': [() => 1] }", 'result[99999].score["x y"][0] is a function'),
    ],
)
def test_javascript_errors_at_the_end_of_a_large_result_keep_their_paths(
    last: str, message: str
) -> None:
    code = JS_ROWS + f"rows[99999].score = {last};\nreturn rows;"
    error = error_of(coderunner.run(code, "javascript", memory_mb=MEMORY_MB), "serialization_error")
    assert error.message.startswith(message), error.message


# -- output_limit -------------------------------------------------------------------------


def test_a_huge_result_is_refused_with_its_exact_size() -> None:
    size = len(json.dumps(list(range(4_000_000)), separators=(",", ":")))
    error = error_of(run_py("list(range(4_000_000))"), "output_limit")
    assert error.message == (
        f"the result is {size} bytes of JSON, above the limit of {LIMIT} bytes"
    )


def test_a_result_just_under_the_limit_passes_and_just_over_is_refused() -> None:
    # A JSON string of n characters is n + 2 bytes.
    result = run_py(f"'x' * {LIMIT - 2}")
    assert result.ok and len(result.result) == LIMIT - 2, result.error
    error = error_of(run_py(f"'x' * {LIMIT - 1}"), "output_limit")
    assert str(LIMIT + 1) in error.message


def test_a_huge_result_that_is_also_not_json_is_a_serialization_error() -> None:
    error = error_of(run_py("x = list(range(4_000_000))\nx.append({1})\nx"), "serialization_error")
    assert error.message.startswith("result[4000000] is set"), error.message


# -- a snippet forging the result channel: HTTP still answers valid JSON --------------------


@pytest.mark.parametrize(
    ("body", "ok"),
    [(b'{"x": [1, 2], "y": "\xc3\xa9"}', True), (b"[1, 2", False), (b"[1] [2]", False)],
)
def test_a_forged_frame_never_breaks_the_http_answer(
    client: httpx.Client, body: bytes, ok: bool
) -> None:
    frame = b'{"ok": true}\n' + body
    code = f"import os\nos.write({protocol.RESULT_FD}, {frame!r})\nos.close({protocol.RESULT_FD})\n"
    code += "os.kill(os.getpid(), 9)\n"
    answer = post(client, code)
    assert answer["ok"] is ok, answer
    if ok:
        assert answer["result"] == json.loads(body)
    else:
        assert answer["error"]["type"] == "runtime_error"


# -- a large result goes out over HTTP as the runner's text, decoded only when needed -----


def test_a_large_result_is_left_undecoded_only_when_asked() -> None:
    async def both() -> tuple[ExecutionResult, ExecutionResult]:
        async with coderunner.Engine(coderunner.Settings(python_pool_size=1)) as engine:
            request = ExecutionRequest(
                language=Language.PYTHON, code=CLEAN_UP, inputs={"rows": ROWS[:20_000]},
                timeout_ms=TIMEOUT_MS, memory_mb=MEMORY_MB,
            )  # fmt: skip
            return (
                await engine.execute(request),
                await engine.execute(request, decode_result=False),
            )

    decoded, deferred = asyncio.run(both())
    assert decoded.ok and decoded.result == EXPECTED[:20_000]
    assert not decoded.result_undecoded
    text = deferred.result_json()
    assert text is not None and len(text) >= DEFER_MIN_BYTES  # large enough to defer
    assert deferred.ok and deferred.result is None and deferred.result_undecoded
    assert json.loads(deferred.to_json())["result"] == EXPECTED[:20_000]
    deferred.decode_result()
    assert deferred.result == EXPECTED[:20_000] and not deferred.result_undecoded
    assert deferred.result_json() == text  # still sent as the runner's own text


def test_a_deferred_result_is_decoded_for_its_output_schema(client: httpx.Client) -> None:
    inputs = {"rows": ROWS[:20_000]}  # about 2 MB out: deferred
    answer = post(client, CLEAN_UP, inputs=inputs, output_schema={"type": "array"})
    assert answer["ok"] and answer["result"] == EXPECTED[:20_000]
    schema = {"type": "array", "maxItems": 10}
    error = post(client, CLEAN_UP, inputs=inputs, output_schema=schema)["error"]
    assert error["type"] == "schema_error" and "is too long" in error["message"], error


def test_a_deferred_result_with_a_secret_goes_out_as_it_was(client: httpx.Client) -> None:
    code = "def main(rows, token):\n    return [token] + rows\n"
    answer = post(client, code, inputs={"rows": ROWS[:20_000]}, secrets={"token": "hunter22"})
    assert answer["ok"], answer.get("error")
    assert answer["result"][0] == "hunter22" and answer["result"][1:] == ROWS[:20_000]


def test_deferring_leaves_the_history_nothing_to_decode() -> None:
    # The history keeps results up to RESULT_LIMIT and leaves out, undecoded, any whose
    # text is over twice that; a deferred result must always be one of those.
    assert DEFER_MIN_BYTES > 2 * RESULT_LIMIT


# -- inputs received as JSON go to the jail as that very text ---------------------------------


def test_split_member_keeps_the_inputs_as_their_own_text() -> None:
    # JSON escapes (a surrogate pair among them) and raw UTF-8 (é), as a client sends them.
    inputs = r'{ "rows": [1, 2.5, "\u00e9\ud83d\ude00 é", {"a": null}], "a": 1, "a": 2 }'
    body = f'{{"language": "python", "inputs": {inputs}, "timeout_ms": 5}}'.encode()
    split = split_member(body, "inputs")
    assert split is not None
    rest, text = split
    assert rest == {"language": "python", "timeout_ms": 5}
    assert text == inputs.encode()  # byte for byte, whitespace and all
    assert json.loads(text) == {"rows": [1, 2.5, "\u00e9\U0001f600 é", {"a": None}], "a": 2}


@pytest.mark.parametrize(
    "body",
    [
        b'{"language": "python"}',  # no inputs
        b'{"inputs": [1, 2]}',  # not an object: the model says so, as before
        b'{"inputs": {"x": 1e999}}',  # past a float: refused, as before
        b'{"inputs": {"x": 12345678901234567890123}}',  # in doubt (a long digit run)
        b'{"inputs": {"x": NaN}}',
        b'{"inputs": {"x": 1}, "timeout_ms": NaN}',
        b'{"inputs": {"x": "\\ud800"}}',  # a lone surrogate
        b'{"inputs": {"x": "\xff"}}',  # not UTF-8
        b'{"inputs": {"x": 1}',  # not JSON
        b'[{"inputs": {}}]',  # not an object
    ],
)
def test_split_member_leaves_anything_in_doubt_to_the_usual_decoding(body: bytes) -> None:
    assert split_member(body, "inputs") is None


def test_the_engine_runs_inputs_given_as_json_text() -> None:
    code = "def main(rows, a, token):\n    return [len(rows), rows[-1], a, token]\n"
    text = b'{ "rows": [1, 2, {"b": "\xc3\xa9"}], "a": 1, "a": 2 }'

    async def run() -> list[Any]:
        async with coderunner.Engine(coderunner.Settings(python_pool_size=1)) as engine:
            request = ExecutionRequest(
                language=Language.PYTHON, code=code, secrets={"token": "t0k"}
            )
            answers: list[Any] = [
                (await engine.execute(request, inputs_json=text)).result,
                (await engine.execute(request.model_copy(update={"code": "1"}),
                                      inputs_json=b"{ }")).result,
            ]  # fmt: skip
            with pytest.raises(coderunner.InvalidRequest, match="token: given both"):
                await engine.execute(request, inputs_json=b'{"token": 1}')
            both = request.model_copy(update={"inputs": {"a": 1}})
            with pytest.raises(ValueError, match="must be empty"):
                await engine.execute(both, inputs_json=text)
            return answers

    assert asyncio.run(run()) == [[3, {"b": "\u00e9"}, 2, "t0k"], 1]


def test_inputs_as_text_through_both_http_routes(client: httpx.Client) -> None:
    inputs = r'{"text": "h\u00e9llo \ud83d\ude00 é", "big": 123456789, "x": -0.0, "n": [1, 2]}'
    code = "def main(text, big, x, n):\n    return [text, big, str(x), n]\n"
    expected = ["h\u00e9llo \U0001f600 é", 123456789, "-0.0", [1, 2]]
    for path, language in (
        ("/v1/execute", '"language": "python", '),
        ("/v1/tools/execute-python", ""),
    ):
        body = f'{{{language}"code": {json.dumps(code)}, "inputs": {inputs}}}'
        response = client.post(
            path, content=body.encode(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["result"] == expected, (path, response.text)


@pytest.mark.parametrize("number", ["1e999", "-1E+400", "1" * 400 + ".0", "NaN", "Infinity"])
def test_inputs_that_are_not_finite_json_numbers_are_refused(
    client: httpx.Client, number: str
) -> None:
    body = '{"language": "python", "code": "def main(x):\\n    return 1\\n", "inputs": '
    response = client.post(
        "/v1/execute", content=body + '{"x": ' + number + "}}",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 422, response.text
    assert "inputs must be JSON values" in response.json()["error"]["message"], response.text


# -- the history keeps a note, not the 11 MB --------------------------------------------------


def test_the_history_drops_a_large_result_with_a_note(client: httpx.Client) -> None:
    answer = post(client, CLEAN_UP, inputs={"rows": ROWS[:30_000]})
    assert answer["ok"], answer.get("error")
    response = recorded(client, answer["execution_id"])  # written in the background
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["result"]["result"] is None
    note = record["result"]["stderr"]
    assert "[coderunner history: the result was not kept (" in note, note
    # The size it gives is the answer's, as JSON (the id and the duration aside).
    size = len(json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode())
    shown = int(note.split("the result was not kept (")[1].split(" bytes")[0])
    assert abs(shown - size) < 100, (shown, size)


# -- equivalence of the fast paths (no jail needed) ---------------------------------------


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 6 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 2**63, -(2**63) - 1, 2**70, rng.randrange(-(10**6), 10**6)])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1e308, 5e-324, math.nan, math.inf, rng.random()])
    if kind in (3, 4, 5):
        return rng.choice(["", "a", "\u00e9", "\U0001f600", "\ud800", "\x00", "k"])
    if kind in (6, 7):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 8:
        return tuple(_random_value(rng, depth + 1) for _ in range(rng.randrange(3)))
    keys = ["a", "b", "1", "null", "true", 1, 1.5, None, True, "\u00e9"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _outcome(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", call(*args)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _old_encode(value: Any) -> bytes:
    """How the runner encoded a result before: the walk first, then json.dumps."""
    runner.check_json(value)
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


@pytest.fixture(params=[True, False], ids=["dicts-by-referents", "dicts-by-values"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways the runner's walk finds a dict's values (CPython < 3.13 and later)."""
    monkeypatch.setattr(runner, "_DICTS_BY_REFERENTS", request.param)
    return bool(request.param)


def test_encode_result_is_the_walk_then_json_dumps(walk: bool) -> None:
    """The same JSON value (msgspec writes 1e308 where json writes 1e+308) or the same
    error, word for word: whichever encoder wrote it."""
    rng = random.Random(12)
    for _ in range(3000):
        value = _random_value(rng)
        new, old = _outcome(runner.encode_result, value), _outcome(_old_encode, value)
        assert new[0] == old[0], value
        if new[0] == "ok":  # (repr: 1.0 is not 1, -0.0 is not 0.0, and keys keep their order)
            assert repr(json.loads(new[1])) == repr(json.loads(old[1])), value
        else:
            assert new[1] == old[1], value
        if isinstance(value, (list, dict)) and new[0] == "ok":
            assert runner.plainly_json(value) or _outcome(runner.check_json, value)[0] == "ok"


class _Colour(enum.Enum):
    RED = 1


class _Name(str):
    pass


def _general_table() -> dict[Any, Any]:
    """A dict of string keys that keeps the table kind a non-string key gave it."""
    value: dict[Any, Any] = {1: "gone", "a": [1.5, {"b": None}]}
    del value[1]
    return value


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


# What msgspec encodes (or encodes otherwise) and json.dumps refuses, or where the runner
# must not take msgspec's text: each must come out exactly as the walk then json.dumps.
MSGSPEC_DIFFERS = [
    _Colour.RED, [_Colour.RED], uuid.UUID(int=1), {"at": datetime.date(2026, 1, 1)},
    {"n": decimal.Decimal("1.5")}, [b"bytes"], [bytearray(b"x")], {"s": {1, 2}},
    frozenset(), [math.nan], {"x": [1.0, {"y": math.inf}]}, [None, -math.inf],
    {1: "a", "1": "b"}, {"k": [{None: 1, "null": 2}]}, {True: 1, "true": 2}, {1.5: "x"},
    {_Name("a"): 1}, [_Name("b")], _general_table(), [_general_table()],
    _deep(runner.MAX_DEPTH), _deep(runner.MAX_DEPTH + 1), _deep(runner.MAX_DEPTH - 1),
    ["\ud800"], {"\udfff": 1}, [2**64, -(2**70)], [10**5000],
    collections.namedtuple("Point", "x y")(1, 2), collections.OrderedDict(a=1),
]  # fmt: skip


@pytest.mark.parametrize("value", MSGSPEC_DIFFERS, ids=range(len(MSGSPEC_DIFFERS)))
def test_msgspec_is_used_only_where_it_writes_json_dumps_value(value: Any, walk: bool) -> None:
    new, old = _outcome(runner.encode_result, value), _outcome(_old_encode, value)
    assert new[0] == old[0], (new, old)
    if new[0] == "ok":
        assert repr(json.loads(new[1])) == repr(json.loads(old[1]))
    else:
        assert new[1] == old[1]
    fast, _ = runner._encode_fast(value)
    if fast is not None:  # (only plain values, finite, string keys, shallow: the same value)
        assert old[0] == "ok" and repr(json.loads(fast)) == repr(json.loads(old[1]))


def test_msgspec_encodes_plain_results(walk: bool) -> None:
    for value in (EXPECTED[:1000], {"a": [1, 2.5, None, True, "\u00e9"]}, [], "x", 3, None):
        fast, _ = runner._encode_fast(value)
        assert fast is not None, value
        assert json.loads(fast) == value


def test_msgspec_running_out_of_memory_is_a_memory_error() -> None:
    """Under a memory limit the result does not fit in, the runner falls back to
    json.dumps (whose MemoryError the runner reports) instead of crashing: msgspec's own
    buffer crashes the process when it cannot grow, its bytearray does not."""
    script = (
        "import resource, sys\n"
        f"sys.path.insert(0, {str(Path(runner.__file__).parent)!r})\n"
        "import python_runner as runner\n"
        "value = list(range(4_000_000))\n"
        "with open('/proc/self/status') as f:\n"
        "    vm = next(int(l.split()[1]) for l in f if l.startswith('VmSize:')) * 1024\n"
        "limit = vm + 20 * 1024 * 1024\n"  # the text is 31 MB
        "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "assert runner._encoder is not None\n"
        "assert runner._encode_fast(value)[0] is None\n"
        "try:\n"
        "    runner.encode_result(value)\n"
        "except MemoryError:\n"
        "    print('memory error')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert done.stdout == b"memory error\n"


def test_an_audit_hook_refusing_the_walk_only_slows_the_result() -> None:
    result = run_py(
        "import sys\n"
        "def hook(event, args):\n"
        "    if event == 'gc.get_referents':\n"
        "        raise RuntimeError('no walking')\n"
        "sys.addaudithook(hook)\n"
        "[[1, 2.5], {'a': [None]}, {1: 'x'}]\n"
    )
    assert result.ok, result.error
    assert result.result == [[1, 2.5], {"a": [None]}, {"1": "x"}]
    assert result.stderr == ""


JOBS = [
    b'{"code": "x", "inputs": {"a": [1, 2.5, "\\u00e9", null, true, {"b": -0.0}]}}',
    b'{"code": "x", "inputs": {"big": 18446744073709551616, "neg": -9223372036854775809}}',
    b'{"code": "x", "inputs": {"x": 1e400, "y": NaN, "z": -Infinity}}',
    b'{"code": "x", "inputs": {"s": "\\ud800", "t": "\xed\xa0\x80"}}',
    b'\xef\xbb\xbf{"code": "x", "inputs": {}}',
    b'{"code": "x", "inputs": {"a": 1, "a": 2, "f": 0.1, "g": 1.7976931348623157e308}}',
    b'{"code": "x", "inputs": {"deep": ' + b"[" * 2000 + b"]" * 2000 + b"}}",
    protocol.encode_job({"code": "x", "inputs": {"rows": ROWS[:200]}}),  # type: ignore[typeddict-item]
]  # fmt: skip


@pytest.mark.parametrize("data", JOBS, ids=range(len(JOBS)))
def test_the_runner_reads_a_job_as_json_would(data: bytes) -> None:
    assert repr(_outcome(runner.decode_job, data)) == repr(_outcome(protocol.decode_job, data))


def test_the_runners_codec_is_hidden_from_snippets() -> None:
    """The jail's runner has its msgspec (its results are encoded fast), and a snippet's
    `import msgspec` still finds nothing."""
    result = run_py(
        "import sys\n"
        "codec = sys.modules['python_runner']._codec is not None\n"
        "[codec, sorted(m for m in sys.modules if m.startswith('msgspec')),\n"
        " [p for p in sys.path if 'runner-libs' in p]]\n"
    )
    assert result.ok and result.result == [True, [], []], result
    error = error_of(run_py("import msgspec"), "runtime_error")
    assert "it is not installed on this server" in error.message, error.message


def test_strict_dumps_means_what_json_dumps_means() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        value = {"v": _random_value(rng)}
        old = _outcome(lambda v: json.dumps(v, allow_nan=False, ensure_ascii=False), value)
        new = _outcome(strict_dumps, value)
        assert new[0] == old[0], value
        if old[0] == "ok":  # the same values (orjson writes 1e+300 where json 1e300...)
            assert json.loads(new[1].decode("utf-8", "surrogatepass")) == json.loads(old[1])
        else:
            assert new[1] == old[1], value


def test_loads_means_what_json_loads_means() -> None:
    documents = [
        b"[1e400]", b"[NaN]", b'["\\ud800"]', b"[123456789012345678901234567890]",
        b"\xef\xbb\xbf[1]", b"[1] x", b'"\xed\xa0\x80"', b"[-0.0]", b'{"a":1,"a":2}',
        b"[" * 300 + b"]" * 300, b'["\\u0000"]', b"[1,]", json.dumps(EXPECTED[:500]).encode(),
    ]  # fmt: skip
    for document in documents:
        old, new = _outcome(json.loads, document), _outcome(loads, document)
        assert repr(new) == repr(old), document
        strict = _outcome(strict_loads, document)
        assert strict[0] != "ok" or repr(strict) == repr(old), document


def _number_texts(rng: random.Random) -> Iterator[str]:
    for _ in range(4000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 40)))
        text = rng.choice(["", "-"]) + digits.lstrip("0")[:1] + digits[1:]
        text = text if text.strip("-") else "0"
        if rng.random() < 0.5:
            text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 30)))
        if rng.random() < 0.6:
            text += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randrange(0, 500))
        yield text


def test_finite_numbers_flags_every_number_that_overflows() -> None:
    flagged = 0
    for text in _number_texts(random.Random(3)):
        document = f'{{"a": [1, {text}, "x"]}}'.encode()
        value = json.loads(document)["a"][1]
        if isinstance(value, float) and math.isinf(value):
            assert not finite_numbers(document), text
            flagged += 1
    assert flagged > 100  # the generator does reach past a float's range
    # Ordinary data passes, so the fast path is the usual one.
    assert finite_numbers(json.dumps({"rows": ROWS[:1000], "f": [1.5e-7, 2e10]}).encode())


def test_is_json_text_passes_only_what_loads_decodes_strictly() -> None:
    documents = [
        b"[1e400]", b"[NaN]", b"[Infinity]", b'["\\ud800"]', b'["\\udc00"]',
        b'["\\ud83d\\ude00"]', b"[123456789012345678901234567890]", b"\xef\xbb\xbf[1]",
        b"[1] x", b'"\xed\xa0\x80"', b'"\xff"', b"[-0.0]", b'{"a":1,"a":2}', b"[1,]",
        b"[" * 300 + b"]" * 300, b"[" * 3000 + b"]" * 3000, b'["\\u0000"]', b'"a\x01"',
        b" [1] ", b"", b"{", json.dumps(EXPECTED[:500]).encode(),
    ]  # fmt: skip
    rng = random.Random(5)
    for _ in range(2000):
        value = _random_value(rng)
        with_constants = json.dumps(value, ensure_ascii=rng.random() < 0.5, default=str)
        documents.append(with_constants.encode("utf-8", "surrogatepass"))
    passed = 0
    for document in documents:
        if not is_json_text(document):
            continue
        passed += 1
        # What it passes decodes, to the values json.loads gives, and with no constant.
        old = json.loads(document, parse_constant=lambda name: pytest.fail(f"{name} passed"))
        assert repr(loads(document)) == repr(old), document
        document.decode("utf-8")  # valid UTF-8 all through
    assert passed > 500
    assert is_json_text(b'{"a": [1, 2.5, "\xc3\xa9", null, true]}')


def test_the_runners_json_goes_out_as_the_same_result() -> None:
    value = EXPECTED[:1000]
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    result = ExecutionResult(ok=True, result=value, language=Language.PYTHON, stdout="é")
    result.keep_result_json(text)
    assert result.to_json() == result.model_dump_json().encode()
    replaced = result.model_copy(update={"result": [1]})  # the text no longer applies
    assert replaced.result_json() is None
    assert json.loads(replaced.to_json())["result"] == [1]
