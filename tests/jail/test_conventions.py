"""Snippet conventions, results and every error type of the contract (sections 2-4), both languages.

Everything goes through the public sync API, `coderunner.run`, on the shared engine.
"""

from __future__ import annotations

import time

import pytest

import coderunner
from conftest import run_js, run_py

RUNNER_NAMES = ("python_runner", "python_zygote", "js_runner", "coderunner-snippet", "/runner/")


def ok(result: coderunner.ExecutionResult) -> object:
    assert result.ok, result.error
    assert result.error is None
    return result.result


def failed(result: coderunner.ExecutionResult, error_type: str) -> coderunner.ErrorDetail:
    assert not result.ok, result
    assert result.error is not None
    assert result.error.type.value == error_type, result.error
    assert result.result is None or error_type == "schema_error"
    return result.error


def no_runner_internals(text: str | None) -> None:
    for name in RUNNER_NAMES:
        assert name not in (text or ""), f"{name!r} in {text!r}"


# -- function style ----------------------------------------------------------------------


def test_py_params_bound_by_name_not_position():
    code = "def main(b, a):\n    return [a, b]"
    assert ok(run_py(code, inputs={"a": 1, "b": 2})) == [1, 2]


def test_js_params_bound_by_name_not_position():
    code = "function main(b, a) {\n  return [a, b];\n}"
    assert ok(run_js(code, inputs={"a": 1, "b": 2})) == [1, 2]


def test_py_contract_example_with_default():
    code = (
        "def main(orders, rate=1.0):\n"
        '    return {"total": round(sum(o["amount"] for o in orders) * rate, 2)}'
    )
    orders = [{"amount": 1.5}, {"amount": 2.25}]
    assert ok(run_py(code, inputs={"orders": orders})) == {"total": 3.75}
    assert ok(run_py(code, inputs={"orders": orders, "rate": 2})) == {"total": 7.5}


def test_js_contract_example_with_default():
    code = (
        "function main(orders, rate = 1) {            // or: async function, arrow const\n"
        "  return { total: orders.reduce((s, o) => s + o.amount, 0) * rate };\n"
        "}"
    )
    orders = [{"amount": 1.5}, {"amount": 2.25}]
    assert ok(run_js(code, inputs={"orders": orders})) == {"total": 3.75}
    assert ok(run_js(code, inputs={"orders": orders, "rate": 2})) == {"total": 7.5}


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "def main(orders, rate=1.0):\n    return orders"),
        ("javascript", "function main(orders, rate = 1) {\n  return orders;\n}"),
        ("javascript", "const main = async (orders, rate) => orders;"),
    ],
)
def test_missing_required_param_is_input_error_naming_it(language, code):
    error = failed(coderunner.run(code, language, inputs={"rate": 2}), "input_error")
    assert "orders" in error.message
    assert "rate" in error.message  # the inputs that were given


def test_py_kwargs_gets_the_rest():
    code = "def main(a, **rest):\n    return {'a': a, 'rest': rest}"
    result = ok(run_py(code, inputs={"a": 1, "b": 2, "c": [3]}))
    assert result == {"a": 1, "rest": {"b": 2, "c": [3]}}


def test_py_keyword_only_and_unused_inputs():
    code = "def main(x, *, y=2):\n    return x + y"
    assert ok(run_py(code, inputs={"x": 1, "y": 10, "unused": 0})) == 11


def test_py_async_main_is_awaited():
    code = "import asyncio\n\nasync def main(x):\n    await asyncio.sleep(0.01)\n    return x * 2"
    assert ok(run_py(code, inputs={"x": 21})) == 42


def test_js_async_main_is_awaited():
    code = (
        "async function main(x) {\n"
        "  await new Promise((r) => setTimeout(r, 10));\n"
        "  return x * 2;\n"
        "}"
    )
    assert ok(run_js(code, inputs={"x": 21})) == 42


def test_js_destructured_single_param_gets_all_inputs():
    code = "function main({ orders, rate }) {\n  return orders.length * rate;\n}"
    assert ok(run_js(code, inputs={"orders": [1, 2, 3], "rate": 2})) == 6


@pytest.mark.parametrize(
    "code",
    [
        "const main = async (a, b) => a * b;",
        "const main = (a, b) =>\n  a * b;",
        "let main = function (a, b) { return a * b; };",
        "export function main(a, b) { return a * b; }",
        "const main = async ({ a, b }) => a * b;",
    ],
)
def test_js_main_forms(code):
    assert ok(run_js(code, inputs={"a": 6, "b": 7})) == 42


def test_js_single_arrow_param_without_parentheses():
    assert ok(run_js("const main = a => a * 2;", inputs={"a": 21})) == 42


def test_js_rest_param_and_default():
    code = "function main(a, b = 10, ...rest) { return [a, b, rest]; }"
    assert ok(run_js(code, inputs={"a": 1})) == [1, 10, []]


# -- script style --------------------------------------------------------------------------


def test_py_final_expression_is_the_result_notebook_style():
    result = run_py('print("hi")\nx = 20\nx * 2 + 2')
    assert ok(result) == 42
    assert result.stdout == "hi\n"


def test_py_top_level_await():
    assert ok(run_py("import asyncio\nawait asyncio.sleep(0.01)\n'slept'")) == "slept"


@pytest.mark.parametrize("code", ["x = 1", "x = 1\n# a comment", "def helper():\n    return 1"])
def test_py_no_final_expression_is_null(code):
    assert ok(run_py(code)) is None


def test_py_inputs_are_variables_and_inputs_dict():
    code = "[x + y, inputs['x'], sorted(inputs)]"
    assert ok(run_py(code, inputs={"x": 1, "y": 2})) == [3, 1, ["x", "y"]]


def test_js_top_level_return_and_await():
    code = "await new Promise((r) => setTimeout(r, 5));\nreturn x + inputs.y;"
    assert ok(run_js(code, inputs={"x": 40, "y": 2})) == 42


def test_js_no_return_is_null():
    result = run_js("const z = 1;\nconsole.log(z);")
    assert ok(result) is None
    assert result.stdout == "1\n"


def test_js_inputs_are_variables_and_inputs_object():
    code = "return [x + y, inputs.x, Object.keys(inputs).sort()];"
    assert ok(run_js(code, inputs={"x": 1, "y": 2})) == [3, 1, ["x", "y"]]


# -- JavaScript modules ----------------------------------------------------------------------

SHA256_A = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"


def test_js_es_import_in_script_style():
    code = (
        'import { createHash } from "node:crypto";\n'
        'import * as path from "node:path";\n'
        'return [createHash("sha256").update("a").digest("hex"), path.join("a", "b")];'
    )
    assert ok(run_js(code)) == [SHA256_A, "a/b"]


def test_js_es_import_in_function_style():
    code = (
        'import { createHash } from "node:crypto";\n'
        "function main(text) {\n"
        '  return createHash("sha256").update(text).digest("hex");\n'
        "}"
    )
    assert ok(run_js(code, inputs={"text": "a"})) == SHA256_A


@pytest.mark.parametrize("module", ["crypto", "node:crypto"])
def test_js_require_crypto(module):
    code = (
        f'const c = require("{module}");\nreturn c.createHash("sha256").update("a").digest("hex");'
    )
    assert ok(run_js(code)) == SHA256_A


# -- syntax_error ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "code", "line"),
    [
        ("python", "x = 1\ny = (\nz = 3", 2),
        ("python", "def main(a):\n    return a +\n", 2),
        ("python", "x = 1\n\n  y = 2", 3),
        ("javascript", "let a = 1;\nlet b = ;\n", 2),
        ("javascript", "function main(a) {\n  return a +;\n}", 2),
        ("javascript", "const x = 1;\n\nlet x = 2;", 3),
        ("javascript", 'import { createHash } from "node:crypto";\nreturn (;', 2),
        ("typescript", "let a: number = 1;\nlet b = ;\n", 2),
        ("typescript", "function main(a: number): number {\n  return a +;\n}", 2),
        ("typescript", "interface A { x: number }\n\nlet b: = 2;", 3),
        ("typescript", 'import { createHash } from "node:crypto";\nreturn (;', 2),
    ],
)
def test_syntax_error_with_line(language, code, line):
    result = coderunner.run(code, language, inputs={"a": 1})
    error = failed(result, "syntax_error")
    assert error.line == line, error
    assert error.message
    no_runner_internals(error.message)
    no_runner_internals(error.traceback)


# -- runtime_error ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "code", "name", "line"),
    [
        ("python", "x = 1\ny = x / 0", "ZeroDivisionError", 2),
        ("python", "x = 1\n\nlen(5)", "TypeError", 3),
        ("python", "def main(d):\n    return d['missing']", "KeyError", 2),
        ("python", "import json\njson.loads('{')", "JSONDecodeError", 2),
        ("javascript", "const x = 1;\nnull.foo;", "TypeError", 2),
        ("javascript", "const x = 1;\n\nnew Array(-1);", "RangeError", 3),
        ("javascript", "function main() {\n  return JSON.parse('{');\n}", "SyntaxError", 2),
        ("javascript", "const x = 1;\nundefinedVariable + 1;", "ReferenceError", 2),
        ("typescript", "const x: number = 1;\nconst o: any = null;\no.foo;", "TypeError", 3),
        (
            "typescript",
            "interface D { a: number }\nfunction main(d: D) {\n  return JSON.parse('{');\n}",
            "SyntaxError",
            3,
        ),
    ],
)
def test_runtime_error_name_and_line(language, code, name, line):
    error = failed(coderunner.run(code, language, inputs={"d": {}}), "runtime_error")
    assert error.name == name, error
    assert error.line == line, error
    assert name in (error.traceback or ""), error
    no_runner_internals(error.traceback)


def test_py_traceback_has_only_the_snippets_frames():
    code = (
        "def helper(x):\n    raise ValueError(f'bad {x}')\n\ndef main(x):\n    return helper(x)\n"
    )
    error = failed(run_py(code, inputs={"x": 3}), "runtime_error")
    assert (error.name, error.message, error.line) == ("ValueError", "bad 3", 2)
    tb = error.traceback or ""
    assert 'File "<snippet>", line 5, in main' in tb
    assert 'File "<snippet>", line 2, in helper' in tb
    assert tb.count("File ") == 2, tb  # no runner frame
    no_runner_internals(tb)


def test_js_traceback_has_only_the_snippets_frames():
    code = (
        "function helper(x) {\n"
        "  throw new TypeError(`bad ${x}`);\n"
        "}\n"
        "function main(x) {\n"
        "  return helper(x);\n"
        "}\n"
    )
    error = failed(run_js(code, inputs={"x": 3}), "runtime_error")
    assert (error.name, error.message, error.line) == ("TypeError", "bad 3", 2)
    tb = error.traceback or ""
    assert "at helper (<snippet>:2:" in tb
    assert "at main (<snippet>:5:" in tb
    assert tb.count("    at ") == 2, tb
    no_runner_internals(tb)
    assert "__coderunner" not in tb


def test_js_script_style_traceback_names_no_wrapper():
    error = failed(run_js("const a = 1;\nnull.foo;"), "runtime_error")
    assert error.traceback is not None and "<snippet>:2:" in error.traceback
    no_runner_internals(error.traceback)
    assert "__coderunner" not in error.traceback


def test_js_thrown_non_error_values():
    error = failed(run_js('throw "plain text";'), "runtime_error")
    assert "plain text" in error.message
    error = failed(run_js("throw { code: 7 };"), "runtime_error")
    assert '"code":7' in error.message


def test_js_error_thrown_in_a_callback_then_waiting_forever():
    code = (
        "setTimeout(() => { throw new TypeError('in callback'); }, 0);\n"
        "await new Promise(() => {});"
    )
    started = time.monotonic()
    error = failed(run_js(code, timeout_ms=60_000), "runtime_error")
    assert time.monotonic() - started < 30  # reported at once, not at the 60 s timeout
    assert error.name == "TypeError" and "in callback" in error.message


def test_js_promise_that_never_settles_is_reported_at_once():
    started = time.monotonic()
    error = failed(run_js("await new Promise(() => {});", timeout_ms=60_000), "runtime_error")
    assert time.monotonic() - started < 30  # at once, not at the 60 s timeout
    assert "never settle" in error.message


def test_js_errors_in_callbacks_do_not_break_a_returned_result():
    code = (
        "setTimeout(() => { throw new Error('x'); }, 0);\n"
        "await new Promise((r) => setTimeout(r, 30));\n"
        "return 1;"
    )
    assert ok(run_js(code)) == 1


# -- exits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "import sys\nprint('before')\nsys.exit(3)"),
        ("python", "import sys\nprint('before')\nsys.exit()"),
        ("python", "import os\nprint('before')\nos._exit(0)"),
        ("python", "def main():\n    print('before')\n    raise SystemExit(1)"),
        ("javascript", "console.log('before');\nDeno.exit(2);"),
        ("javascript", "console.log('before');\nprocess.exit(0);"),
        ("javascript", "function main() {\n  console.log('before');\n  process.exit(1);\n}"),
    ],
)
def test_exit_instead_of_return_is_runtime_error(language, code):
    result = coderunner.run(code, language)
    error = failed(result, "runtime_error")
    assert result.stdout == "before\n"
    assert "exit" in error.message.lower()
    no_runner_internals(error.traceback)


def test_py_os_exit_in_a_forked_child_still_exits_the_child():
    code = "import os\npid = os.fork()\nif pid == 0:\n    os._exit(7)\nos.waitpid(pid, 0)[1] >> 8"
    assert ok(run_py(code)) == 7


# -- timeout -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "print('started', flush=True)\nwhile True:\n    pass"),
        ("javascript", "console.log('started');\nwhile (true) {}"),
        ("python", "import time\nprint('started')\ntime.sleep(60)"),
        ("javascript", "console.log('started');\nawait new Promise((r) => setTimeout(r, 60000));"),
    ],
)
def test_timeout_is_prompt_and_keeps_stdout(language, code):
    started = time.monotonic()
    result = coderunner.run(code, language, timeout_ms=300)
    elapsed = time.monotonic() - started
    failed(result, "timeout")
    # Ended by the 0.3 s deadline, not by the snippet (which would run for 60 s or forever);
    # the margin is for a busy machine.
    assert elapsed < 30, elapsed
    assert result.stdout == "started\n"
    assert 250 <= result.duration_ms < 30_000


# -- memory_limit ------------------------------------------------------------------------------


def test_py_memory_limit():
    code = "print('early')\nx = bytearray(400 * 1024 * 1024)\nlen(x)"
    result = run_py(code, memory_mb=64)
    failed(result, "memory_limit")
    assert result.stdout == "early\n"


def test_py_memory_limit_by_many_small_objects():
    code = "x = []\nwhile True:\n    x.append('y' * 1000 + str(len(x)))"
    failed(run_py(code, memory_mb=64, timeout_ms=20000), "memory_limit")


def test_py_memory_within_the_limit_is_fine():
    assert ok(run_py("len(bytearray(100 * 1024 * 1024))", memory_mb=256)) == 100 * 1024 * 1024


def test_js_memory_limit_array_buffer():
    code = "const b = new ArrayBuffer(1024 * 1024 * 1024);\nreturn b.byteLength;"
    failed(run_js(code, memory_mb=64), "memory_limit")


def test_js_memory_limit_v8_heap():
    code = "console.log('early');\nconst a = [];\nwhile (true) a.push(new Array(1e6).fill(1.5));"
    result = run_js(code, memory_mb=64, timeout_ms=20000)
    assert result.stdout == "early\n"
    failed(result, "memory_limit")


# -- output_limit (result size) ------------------------------------------------------------------


def test_py_output_limit():
    error = failed(run_py("'x' * (17 * 1024 * 1024)", memory_mb=512), "output_limit")
    assert "16777216" in error.message


def test_js_output_limit():
    error = failed(run_js("return 'x'.repeat(17 * 1024 * 1024);", memory_mb=512), "output_limit")
    assert "16777216" in error.message


@pytest.mark.parametrize(
    ("language", "code"),
    [("python", "'x' * 1_000_000"), ("javascript", "return 'x'.repeat(1_000_000);")],
)
def test_large_result_below_the_limit_comes_back_whole(language, code):
    assert ok(coderunner.run(code, language, memory_mb=256)) == "x" * 1_000_000


# -- serialization_error ---------------------------------------------------------------------------

PY_REFUSED = [
    ("datetime.datetime(2024, 1, 1)", "datetime"),
    ("datetime.date(2024, 1, 1)", "date"),
    ("{1, 2}", "set"),
    ("frozenset()", "frozenset"),
    ("b'x'", "bytes"),
    ("decimal.Decimal('1.5')", "Decimal"),
    ("object()", "object"),
    ("float('nan')", "nan"),
    ("float('inf')", "inf"),
    ("-float('inf')", "inf"),
    ("1 + 2j", "complex"),
    ("Point(1, 2)", "Point"),
]


@pytest.mark.parametrize(("expr", "type_name"), PY_REFUSED)
def test_py_serialization_error_names_path_and_type(expr, type_name):
    code = (
        "import datetime, decimal\n"
        "class Point:\n"
        "    def __init__(self, x, y):\n"
        "        self.x, self.y = x, y\n"
        "def main():\n"
        f"    return {{'items': [1, 2, {{'when': {expr}}}]}}\n"
    )
    error = failed(run_py(code), "serialization_error")
    assert "result.items[2].when" in error.message, error
    assert type_name in error.message, error


def test_py_serialization_error_cycle():
    error = failed(run_py("a = []\na.append(a)\n{'x': a}"), "serialization_error")
    assert "result.x[0]" in error.message and "cycle" in error.message


def test_py_serialization_error_colliding_keys():
    error = failed(run_py("{1: 'a', '1': 'b'}"), "serialization_error")
    assert '"1"' in error.message and "lost" in error.message


def test_py_serialization_error_non_string_key():
    error = failed(run_py("{'a': {(1, 2): 3}}"), "serialization_error")
    assert "result.a" in error.message and "tuple" in error.message


def test_py_json_values_round_trip():
    code = "{'s': 'é', 'i': 2**53, 'f': 0.5, 'b': True, 'n': None, 't': (1, 2), 'k': {1: 'x'}}"
    expected = {"s": "é", "i": 2**53, "f": 0.5, "b": True, "n": None, "t": [1, 2], "k": {"1": "x"}}
    assert ok(run_py(code)) == expected


JS_REFUSED = [
    ("() => 1", "function"),
    ("Symbol('s')", "symbol"),
    ("new Map([[1, 2]])", "Map"),
    ("new Set([1])", "Set"),
    ("10n", "BigInt"),
    ("NaN", "NaN"),
    ("Infinity", "Infinity"),
    ("-Infinity", "-Infinity"),
    ("undefined", "undefined"),
    ("new Uint8Array(2)", "Uint8Array"),
    ("/re/", "RegExp"),
]


@pytest.mark.parametrize(("expr", "type_name"), JS_REFUSED)
def test_js_serialization_error_names_path_and_type(expr, type_name):
    code = f"return {{ items: [1, 2, {{ when: {expr} }}] }};"
    error = failed(run_js(code), "serialization_error")
    assert "result.items[2].when" in error.message, error
    assert type_name in error.message, error


def test_js_serialization_error_cycle():
    error = failed(run_js("const a = {};\na.self = a;\nreturn { x: a };"), "serialization_error")
    assert "result.x.self" in error.message and "cycle" in error.message


def test_js_undefined_in_array_is_refused():
    error = failed(run_js("return [1, undefined];"), "serialization_error")
    assert "result[1]" in error.message


def test_js_date_becomes_its_iso_string():
    assert ok(run_js("return { when: new Date(0) };")) == {"when": "1970-01-01T00:00:00.000Z"}


def test_js_json_values_round_trip():
    code = "return { s: 'é', i: 2 ** 53, f: 0.5, b: true, n: null, a: [1, [2]], o: { k: 'v' } };"
    expected = {
        "s": "é",
        "i": 2**53,
        "f": 0.5,
        "b": True,
        "n": None,
        "a": [1, [2]],
        "o": {"k": "v"},
    }
    assert ok(run_js(code)) == expected


# -- schema_error ----------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "name": {"type": "string"}},
    "required": ["total", "name"],
}


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "{'total': 'lots', 'extra': 1}"),
        ("javascript", "return { total: 'lots', extra: 1 };"),
    ],
)
def test_schema_error_keeps_result_and_lists_paths(language, code):
    result = coderunner.run(code, language, output_schema=SCHEMA)
    error = failed(result, "schema_error")
    assert result.result == {"total": "lots", "extra": 1}
    assert "result.total" in error.message
    assert "name" in error.message


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "{'total': 1.5, 'name': 'x'}"),
        ("javascript", "return { total: 1.5, name: 'x' };"),
    ],
)
def test_schema_valid_result_is_ok(language, code):
    assert ok(coderunner.run(code, language, output_schema=SCHEMA)) == {"total": 1.5, "name": "x"}


# -- stdout / stderr caps -------------------------------------------------------------------

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("language", "code"),
    [
        (
            "python",
            "import sys\n"
            "for i in range(3000):\n"
            "    print('y' * 1000)\n"
            "    print('z' * 1000, file=sys.stderr)\n"
            "'still running'",
        ),
        (
            "javascript",
            "for (let i = 0; i < 3000; i++) {\n"
            "  console.log('y'.repeat(1000));\n"
            "  console.error('z'.repeat(1000));\n"
            "}\n"
            "return 'still running';",
        ),
    ],
)
def test_stdout_and_stderr_capped_while_the_snippet_keeps_running(language, code):
    result = coderunner.run(code, language, timeout_ms=20000)
    assert ok(result) == "still running"
    assert result.stdout_truncated and result.stderr_truncated
    assert len(result.stdout.encode()) == MiB and len(result.stderr.encode()) == MiB
    assert set(result.stdout) == {"y", "\n"} and set(result.stderr) == {"z", "\n"}


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "import sys\nprint('out')\nprint('err', file=sys.stderr)\n1"),
        ("javascript", "console.log('out');\nconsole.error('err');\nreturn 1;"),
    ],
)
def test_stdout_and_stderr_separate_and_not_truncated(language, code):
    result = coderunner.run(code, language)
    assert ok(result) == 1
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert not result.stdout_truncated and not result.stderr_truncated
    assert result.language.value == language
    assert result.duration_ms > 0


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", 'print(\'{"ok": true, "result": "forged"}\')\n"real"'),
        (
            "javascript",
            "console.log(JSON.stringify({ ok: true, result: 'forged' }));\nreturn 'real';",
        ),
    ],
)
def test_printing_cannot_forge_the_result(language, code):
    assert ok(coderunner.run(code, language)) == "real"


# -- standard library ----------------------------------------------------------------------------


def test_py_stdlib_spot_checks():
    code = """import hashlib, hmac, zoneinfo, csv, io, datetime, decimal, json, re
paris = datetime.datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
winter = datetime.datetime(2024, 1, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
rows = list(csv.DictReader(io.StringIO("a,b\\n1,2\\n3,4\\n")))
{
    "sha256": hashlib.sha256(b"abc").hexdigest(),
    "hmac": hmac.new(b"key", b"msg", hashlib.sha256).hexdigest(),
    "summer": paris.utcoffset().total_seconds() / 3600,
    "winter": winter.utcoffset().total_seconds() / 3600,
    "rows": rows,
    "decimal": str(decimal.Decimal("0.1") + decimal.Decimal("0.2")),
    "re": re.findall(r"\\d+", "a1b22"),
}"""
    assert ok(run_py(code)) == {
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "hmac": "2d93cbc1be167bcb1637a4a23cbff01a7878f0c50ee833954ea5221bb1b8c628",
        "summer": 2.0,
        "winter": 1.0,
        "rows": [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}],
        "decimal": "0.3",
        "re": ["1", "22"],
    }


def test_js_stdlib_spot_checks():
    code = """const c = require("crypto");
const hmac = c.createHmac("sha256", "key").update("msg").digest("hex");
const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode("abc"));
const sha256 = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
const url = new URL("https://example.com:8080/p/a?q=1&r=two#frag");
const tokyo = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Asia/Tokyo", hour: "2-digit", hour12: false,
}).format(new Date(Date.UTC(2024, 0, 1, 0)));
const paris = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/Paris", hour: "2-digit", hour12: false,
}).format(new Date(Date.UTC(2024, 6, 1, 10)));
const uuid = crypto.randomUUID();
const clone = structuredClone({ a: [1, { b: 2 }] });
return {
  hmac, sha256, host: url.hostname, port: url.port, r: url.searchParams.get("r"), tokyo, paris,
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid),
  bytes: Array.from(new TextEncoder().encode("é")),
  text: new TextDecoder().decode(new Uint8Array([104, 105])),
  clone, atob: atob("aGk="), btoa: btoa("hi"),
};"""
    assert ok(run_js(code)) == {
        "hmac": "2d93cbc1be167bcb1637a4a23cbff01a7878f0c50ee833954ea5221bb1b8c628",
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "host": "example.com",
        "port": "8080",
        "r": "two",
        "tokyo": "09",
        "paris": "12",
        "uuid": True,
        "bytes": [195, 169],
        "text": "hi",
        "clone": {"a": [1, {"b": 2}]},
        "atob": "hi",
        "btoa": "aGk=",
    }


# -- inputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "code"),
    [("python", "def main(v):\n    return v"), ("javascript", "function main(v) { return v; }")],
)
def test_inputs_round_trip(language, code):
    value = {"s": "ünï\u2028", "n": [1, 2.5, -3], "t": True, "z": None, "nested": {"a": [{}]}}
    assert ok(coderunner.run(code, language, inputs={"v": value})) == value


def test_async_api_returns_the_same_result():
    import asyncio

    result = asyncio.run(coderunner.arun("1 + 1", "python"))
    assert ok(result) == 2


# -- TypeScript: the JavaScript conventions, types stripped and never checked ---------------


def run_ts(code: str, **kwargs) -> coderunner.ExecutionResult:
    return coderunner.run(code, "typescript", **kwargs)


def test_ts_typed_main_bound_by_name():
    code = (
        "interface Order {\n"
        "  amount: number;\n"
        "}\n"
        "function main(orders: Order[], rate: number = 1): { total: number } {\n"
        "  return { total: orders.reduce((s: number, o: Order) => s + o.amount, 0) * rate };\n"
        "}\n"
    )
    orders = [{"amount": 1.5}, {"amount": 2.25}]
    result = run_ts(code, inputs={"orders": orders})
    assert ok(result) == {"total": 3.75}
    assert result.language is coderunner.Language.TYPESCRIPT
    assert ok(run_ts(code, inputs={"rate": 2, "orders": orders})) == {"total": 7.5}
    error = failed(run_ts(code, inputs={"rate": 2}), "input_error")
    assert "orders" in error.message


@pytest.mark.parametrize(
    "code",
    [
        "function main<T>(items: T[], n: number): T[] {\n  return items.slice(0, n);\n}",
        "const main = async <T,>(items: T[], n: number): Promise<T[]> => items.slice(0, n);",
        "const main: (items: number[], n: number) => number[] = (items, n) => items.slice(0, n);",
        "type In = { items: number[]; n: number };\nfunction main({ items, n }: In) {\n"
        "  return items.slice(0, n);\n}",
        "export function main(items: Array<number>, n: number = 0) {\n"
        "  return items.slice(0, n);\n}",
    ],
)
def test_ts_main_forms(code):
    assert ok(run_ts(code, inputs={"items": [1, 2, 3], "n": 2})) == [1, 2]


def test_ts_optional_parameter_may_be_missing():
    code = "function main(a: number, b?: number): number {\n  return a + (b ?? 10);\n}"
    assert ok(run_ts(code, inputs={"a": 1})) == 11
    assert ok(run_ts(code, inputs={"a": 1, "b": 2})) == 3
    error = failed(run_ts(code, inputs={"b": 2}), "input_error")
    assert "'a'" in error.message and "'b'" not in error.message.split("(")[0]


def test_ts_interfaces_generics_enums_and_satisfies():
    code = (
        "enum Color { Red = 'red', Green = 'green' }\n"
        "enum Level { Low, High }\n"
        "interface Box<T> { value: T }\n"
        "type Pair<A, B> = [A, B];\n"
        "function wrap<T>(value: T): Box<T> {\n"
        "  return { value };\n"
        "}\n"
        "const pair: Pair<string, number> = ['a', 1];\n"
        "const limits = { max: 3 } satisfies Record<string, number>;\n"
        "return [Color.Green, Level.High, wrap(pair), limits.max, <number>(<unknown>'x') && 1];"
    )
    assert ok(run_ts(code)) == ["green", 1, {"value": ["a", 1]}, 3, 1]


def test_ts_type_errors_are_not_reported():
    code = "const x: number = 'a';\nconst y: string = 5;\nreturn [x, y];"
    assert ok(run_ts(code)) == ["a", 5]


def test_ts_runtime_error_points_at_the_ts_line():
    code = (
        "interface Row {\n"
        "  id: number;\n"
        "}\n"
        "\n"
        "function check(row: Row): number {\n"
        "  if (row.id < 0) throw new RangeError(`bad id ${row.id}`);\n"
        "  return row.id;\n"
        "}\n"
        "function main(rows: Row[]): number[] {\n"
        "  return rows.map(check);\n"
        "}\n"
    )
    error = failed(run_ts(code, inputs={"rows": [{"id": 1}, {"id": -2}]}), "runtime_error")
    assert (error.name, error.message, error.line) == ("RangeError", "bad id -2", 6)
    tb = error.traceback or ""
    assert "at check (<snippet>:6:" in tb, tb
    no_runner_internals(tb)
    assert "__coderunner" not in tb and ".ts" not in tb


def test_ts_script_style_top_level_return_and_await():
    code = (
        "type N = number;\n"
        "const wait = (ms: N): Promise<N> => new Promise((r) => setTimeout(() => r(ms), ms));\n"
        "const got: N = await wait(5);\n"
        "return { got, x: x as N, all: Object.keys(inputs as Record<string, unknown>) };"
    )
    assert ok(run_ts(code, inputs={"x": 2})) == {"got": 5, "x": 2, "all": ["x"]}


def test_ts_script_style_error_line():
    error = failed(run_ts("const a: number = 1;\n\nconst o: any = null;\no.foo;"), "runtime_error")
    assert error.line == 4, error
    no_runner_internals(error.traceback)
    assert "__coderunner" not in (error.traceback or "")


@pytest.mark.parametrize(
    "code",
    [
        'import { createHash } from "node:crypto";\n'
        'const h: string = createHash("sha256").update("a").digest("hex");\nreturn h;',
        'import type { Hash } from "node:crypto";\nimport { createHash } from "node:crypto";\n'
        'const h: Hash = createHash("sha256");\nreturn h.update("a").digest("hex");',
        'const c = require("crypto");\nreturn c.createHash("sha256").update("a").digest("hex");',
        'import { createHash } from "node:crypto";\n'
        "function main(text: string): string {\n"
        '  return createHash("sha256").update(text).digest("hex");\n'
        "}",
    ],
)
def test_ts_imports_and_require_as_in_javascript(code):
    assert ok(run_ts(code, inputs={"text": "a"})) == SHA256_A


def test_ts_results_errors_and_limits_as_in_javascript():
    error = failed(run_ts("const m = new Map<string, number>();\nreturn m;"), "serialization_error")
    assert "result is Map" in error.message
    failed(run_ts("while (true) {}", timeout_ms=300), "timeout")
    error = failed(run_ts("process.exit(0);"), "runtime_error")
    assert "process.exit" in error.message
