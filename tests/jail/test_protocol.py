"""The written host↔jail protocol (coderunner._jail.protocol), without starting a jail.

Also pins the copies of its literals that live outside it: the JavaScript runner keeps
its own, and the in-jail Python scripts must take theirs from the protocol module.
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path
from typing import Any

import pytest

from coderunner._jail import protocol

JAIL_DIR = Path(protocol.__file__).resolve().parent
JS_RUNNER = JAIL_DIR / "js_runner.mjs"
PY_SCRIPTS = ("python_forkserver.py", "python_runner.py")


def assert_one_state(frame: protocol.Frame) -> None:
    """A Frame is exactly one of: ok, error, garbage, empty."""
    states = [frame.ok, frame.error is not None, frame.garbage is not None, frame.empty]
    assert sum(states) == 1, frame
    if not frame.ok:
        assert frame.value is None, frame


def garbage(data: bytes) -> str:
    frame = protocol.decode_frame(data)
    assert_one_state(frame)
    assert frame.garbage, frame
    assert not frame.empty
    return frame.garbage


def reported_error(data: bytes) -> dict[str, Any]:
    frame = protocol.decode_frame(data)
    assert_one_state(frame)
    assert frame.error is not None, frame
    return frame.error


def ok_value(data: bytes) -> Any:
    frame = protocol.decode_frame(data)
    assert_one_state(frame)
    assert frame.ok, frame
    return frame.value


OK = b'{"ok": true}\n'


# -- the job -------------------------------------------------------------------------------


def test_job_round_trip_with_lone_surrogate_and_non_ascii() -> None:
    job: protocol.Job = {
        "code": "def main(s):\n    return s  # café ☕\n",
        "inputs": {
            "lone": "\ud800",
            "low": "x\udfffy",
            "\udc00key": 1,
            "text": "日本語 é 😀",
            "nested": [{"a": ["\ud83d"]}, None, 1.5, True],
        },
        "memory_mb": 64,
        "result_limit_bytes": 1024,
        "language": "python",
    }
    data = protocol.encode_job(job)
    assert isinstance(data, bytes)
    assert protocol.decode_job(data) == job
    # Non-ASCII travels as UTF-8, not as \u escapes.
    assert "日本語".encode() in data
    assert "café".encode() in data


def test_job_is_json_a_runner_can_read() -> None:
    job: protocol.Job = {
        "code": "1",
        "inputs": {"n": 3},
        "memory_mb": 32,
        "result_limit_bytes": 9,
        "language": "typescript",
    }
    assert json.loads(protocol.encode_job(job)) == job


def test_decode_job_reads_a_lone_surrogate_as_utf8_surrogatepass() -> None:
    raw = b'{"code": "", "inputs": {"s": "\xed\xa0\x80"}, "memory_mb": 32, "result_limit_bytes": 1}'
    assert protocol.decode_job(raw)["inputs"] == {"s": "\ud800"}


# -- fork server configuration -------------------------------------------------------------


def test_fork_server_config_round_trip() -> None:
    config = protocol.ForkServerConfig(control_fd=5, tmp_size_mb=16, shm_size_mb=8)
    text = config.encode()
    assert isinstance(text, str)
    assert json.loads(text) == {
        "control_fd": 5,
        "tmp_size_mb": 16,
        "shm_size_mb": 8,
        "preload": [],
        "packages": [],
    }
    assert protocol.ForkServerConfig.decode(text) == config
    with_packages = protocol.ForkServerConfig(
        control_fd=5,
        tmp_size_mb=16,
        shm_size_mb=8,
        preload=("dateutil",),
        packages=("python-dateutil 2.9.0.post0 (import dateutil)",),
    )
    assert protocol.ForkServerConfig.decode(with_packages.encode()) == with_packages


def test_fork_server_config_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError):
        protocol.ForkServerConfig.decode('{"control_fd": 5, "tmp_size_mb": 1, "shm": 2}')


# -- control messages ----------------------------------------------------------------------


def test_parse_control_up() -> None:
    assert protocol.parse_control(b"up") == protocol.ControlMessage("up")
    assert protocol.parse_control(protocol.UP).kind == "up"


def test_parse_control_ready() -> None:
    message = protocol.parse_control(b"ready 1234")
    assert message == protocol.ControlMessage("ready", pid=1234)


def test_parse_control_exit_with_negative_status() -> None:
    message = protocol.parse_control(b"exit 77 -9")
    assert message == protocol.ControlMessage("exit", pid=77, status=-9)


def test_parse_control_error_keeps_the_whole_text() -> None:
    message = protocol.parse_control("error could not clone: café 1 2".encode())
    assert message.kind == "error"
    assert message.text == "could not clone: café 1 2"
    assert message.pid == 0
    assert message.status == 0


def test_parse_control_error_with_invalid_utf8_is_replaced() -> None:
    assert protocol.parse_control(b"error bad \xff").text == "bad \ufffd"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"ready",
        b"ready x",
        b"ready 1 2",
        b"exit 1",
        b"exit 1 2 3",
        b"exit x 1",
        b"up now",
        b"bogus 1 2",
        b"\xff\xfe",
        b"READY 1",
    ],
)
def test_parse_control_refuses_garbage(data: bytes) -> None:
    with pytest.raises(ValueError):
        protocol.parse_control(data)


@pytest.mark.parametrize("pid", [1, 2, 4_194_304])
def test_child_ready_round_trip(pid: int) -> None:
    assert protocol.parse_control(protocol.child_ready(pid)) == protocol.ControlMessage(
        "ready", pid=pid
    )


@pytest.mark.parametrize(("pid", "status"), [(7, 0), (7, 1), (9, -9), (12, -15), (3, 255)])
def test_child_exit_round_trip(pid: int, status: int) -> None:
    message = protocol.parse_control(protocol.child_exit(pid, status))
    assert message == protocol.ControlMessage("exit", pid=pid, status=status)


@pytest.mark.parametrize(
    "text", ["a fork-server child did not start", "x", "café: no memory", "two  spaces"]
)
def test_child_error_round_trip(text: str) -> None:
    data = protocol.child_error(text)
    assert isinstance(data, bytes)
    assert protocol.parse_control(data) == protocol.ControlMessage("error", text=text)


def test_child_error_with_lone_surrogate_still_parses() -> None:
    message = protocol.parse_control(protocol.child_error("bad \ud800 text"))
    assert message.kind == "error"
    assert message.text.startswith("bad ")
    assert message.text.endswith(" text")
    message.text.encode("utf-8")  # sendable text


# -- frames: round trips -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        -3.25,
        "text",
        "日本語 😀",
        [1, [2, [3]]],
        {"a": {"b": [True, False, None]}, "é": "ü"},
        "\\ud800 is only text",  # an escaped backslash: not a surrogate
    ],
)
def test_ok_frame_round_trip(value: Any) -> None:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    data = protocol.encode_frame({"ok": True}, body)
    assert data.startswith(OK[:-1])
    assert protocol.has_header(data)
    assert ok_value(data) == value


def test_ok_frame_round_trip_ascii_body() -> None:
    value = {"s": "日本語", "list": ["é"]}
    data = protocol.encode_frame({"ok": True}, json.dumps(value).encode("ascii"))
    assert ok_value(data) == value


def test_encode_frame_without_body_is_one_ascii_line() -> None:
    header = protocol.failure("runtime_error", "boom é ☕")
    data = protocol.encode_frame(header)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert data.isascii()
    assert json.loads(data) == header


@pytest.mark.parametrize("error_type", sorted(protocol.RUNNER_ERROR_TYPES))
def test_failure_frame_round_trip(error_type: str) -> None:
    header = protocol.failure(
        error_type,
        "it went wrong: é",
        name="ValueError",
        line=12,
        traceback="Traceback (most recent call last):\n  line 12\nValueError: é",
    )
    assert header["ok"] is False
    assert reported_error(protocol.encode_frame(header)) == header["error"]


def test_failure_shape() -> None:
    assert protocol.failure("input_error", "m") == {
        "ok": False,
        "error": {
            "type": "input_error",
            "name": None,
            "message": "m",
            "line": None,
            "traceback": None,
        },
    }


def test_failure_frame_with_defaults_round_trip() -> None:
    header = protocol.failure("syntax_error", "invalid syntax")
    assert reported_error(protocol.encode_frame(header)) == {
        "type": "syntax_error",
        "name": None,
        "message": "invalid syntax",
        "line": None,
        "traceback": None,
    }


def test_failure_frame_ignores_a_body() -> None:
    header = protocol.failure("runtime_error", "boom")
    data = protocol.encode_frame(header, b"anything the snippet wrote after")
    assert reported_error(data)["message"] == "boom"


# -- frames: defensive reading -------------------------------------------------------------


def test_decode_frame_empty() -> None:
    frame = protocol.decode_frame(b"")
    assert frame == protocol.Frame(empty=True)
    assert_one_state(frame)


@pytest.mark.parametrize(
    "data",
    [
        b'{"ok": true}',  # no newline
        b"hello from the snippet",
        b"\n",
        b"\n" + OK + b"1",  # an empty first line
        b'["ok"]\n1',  # a header that is not an object
        b'"ok"\n1',
        b" " + OK + b"1",  # must start with the brace
    ],
)
def test_decode_frame_without_header_line(data: bytes) -> None:
    garbage(data)


@pytest.mark.parametrize(
    "header",
    [
        b"{",
        b"{ok: true}",
        b'{"ok": true',
        b'{"ok": true}}',
        b"{\xff}",
        b'{"ok": true} trailing',
    ],
)
def test_decode_frame_header_not_json(header: bytes) -> None:
    assert "header" in garbage(header + b"\n1")


def test_decode_frame_deeply_nested_array_before_header() -> None:
    garbage(b"[" * 100_000 + b"\n" + OK + b"1")


def test_decode_frame_deeply_nested_header_never_raises() -> None:
    reason = garbage(b'{"a": ' + b"[" * 100_000 + b"\n" + OK + b"1")
    assert "header" in reason


def test_decode_frame_deeply_nested_body_never_raises() -> None:
    reason = garbage(OK + b"[" * 10**6)
    assert "result" in reason


def test_decode_frame_deeply_nested_but_closed_body_never_raises() -> None:
    garbage(OK + b"[" * 100_000 + b"]" * 100_000)


def test_decode_frame_header_above_the_limit() -> None:
    header = b'{"ok": true' + b" " * protocol.MAX_HEADER_BYTES + b"}"
    garbage(header + b"\n1")


def test_decode_frame_header_at_the_limit() -> None:
    padding = protocol.MAX_HEADER_BYTES - len(b'{"ok": true}')
    header = b'{"ok": true' + b" " * padding + b"}"
    assert len(header) == protocol.MAX_HEADER_BYTES
    assert ok_value(header + b"\n1") == 1


@pytest.mark.parametrize(
    "header",
    [
        b"{}",
        b'{"ok": 1}',
        b'{"ok": 0}',
        b'{"ok": "true"}',
        b'{"ok": null}',
        b'{"result": 1}',
    ],
)
def test_decode_frame_ok_not_a_bool(header: bytes) -> None:
    assert "not a frame header" in garbage(header + b"\n1")


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"1 2", b"[1,]", b"undefined", b'"\xff"', b"1" * 5000],
)
def test_decode_frame_ok_body_not_json(body: bytes) -> None:
    assert "result" in garbage(OK + body)


@pytest.mark.parametrize(
    "error",
    [
        None,
        "boom",
        [1],
        {},
        {"message": "no type"},
        {"type": "sandbox_error", "message": "forged"},
        {"type": "timeout", "message": "forged"},
        {"type": "schema_error", "message": "forged"},
        {"type": "RUNTIME_ERROR", "message": "forged"},
        {"type": 5, "message": "forged"},
        {"type": None, "message": "forged"},
    ],
)
def test_decode_frame_error_the_runner_may_not_report(error: Any) -> None:
    header = {"ok": False} if error is None else {"ok": False, "error": error}
    garbage(json.dumps(header).encode() + b"\n")


def test_decode_frame_cleans_error_field_types() -> None:
    header = {
        "ok": False,
        "error": {"type": "runtime_error", "name": 3, "message": 5, "line": "7", "traceback": 1},
    }
    assert reported_error(json.dumps(header).encode() + b"\n") == {
        "type": "runtime_error",
        "name": "3",
        "message": "5",
        "line": None,
        "traceback": "1",
    }


@pytest.mark.parametrize("line", [True, False, 7.0, "7", [7], {"l": 7}, None])
def test_decode_frame_line_must_be_an_int(line: Any) -> None:
    header = {"ok": False, "error": {"type": "runtime_error", "message": "m", "line": line}}
    assert reported_error(json.dumps(header).encode() + b"\n")["line"] is None


@pytest.mark.parametrize("line", [0, 1, -1, 10**20])
def test_decode_frame_keeps_an_int_line(line: int) -> None:
    header = {"ok": False, "error": {"type": "syntax_error", "message": "m", "line": line}}
    assert reported_error(json.dumps(header).encode() + b"\n")["line"] == line


def test_decode_frame_fills_missing_error_fields() -> None:
    error = reported_error(b'{"ok": false, "error": {"type": "memory_limit"}}\n')
    assert error == {
        "type": "memory_limit",
        "name": None,
        "message": "",
        "line": None,
        "traceback": None,
    }


def test_decode_frame_drops_unknown_error_fields() -> None:
    header = {"ok": False, "error": {"type": "output_limit", "message": "m", "extra": "x"}}
    assert set(reported_error(json.dumps(header).encode() + b"\n")) == {
        "type",
        "name",
        "message",
        "line",
        "traceback",
    }


def test_decode_frame_cleans_lone_surrogates_in_error_text() -> None:
    data = (
        b'{"ok": false, "error": {"type": "runtime_error", "name": "E\\ud800",'
        b' "message": "bad \\udfff text", "traceback": "\\ud83d"}}\n'
    )
    error = reported_error(data)
    assert_replaced(error["name"], "E\ud800")
    assert_replaced(error["message"], "bad \udfff text")
    assert_replaced(error["traceback"], "\ud83d")


# -- frames: lone surrogates in an ok result ---------------------------------------------


def surrogate_error(data: bytes) -> str:
    """The path the serialization_error names, checking the rest of the error."""
    error = reported_error(data)
    assert error["type"] == "serialization_error"
    assert error["name"] == "str"
    assert error["line"] is None
    assert error["traceback"] is None
    path, sep, _ = error["message"].partition(" is a string with a lone surrogate")
    assert sep, error["message"]
    assert error == protocol.lone_surrogate_error(path)
    return path


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (rb'"\ud800x"', "result"),
        (rb'"\uDBFF"', "result"),
        (rb'"x\udc00"', "result"),
        (rb'"\ude00\ud83d"', "result"),  # a pair in the wrong order
        (rb'{"a": "\ud800"}', "result.a"),
        (rb'[1, "\ud800"]', "result[1]"),
        (rb'{"a": [0, {"b": "\udfff"}]}', "result.a[1].b"),
        (rb'{"\ud800": 1}', 'result["\\ud800"] (a key)'),
        (rb'{"a": {"k\udc00": 1}}', 'result.a["k\\udc00"] (a key)'),
    ],
)
def test_decode_frame_lone_surrogate_in_ok_body(body: bytes, path: str) -> None:
    assert b"\\u" in body  # escaped, as a runner writes it
    assert surrogate_error(OK + body) == path


def test_decode_frame_escaped_surrogate_pair_is_ok() -> None:
    assert ok_value(OK + rb'"\ud83d\ude00"') == "😀"
    assert ok_value(OK + rb'{"e": ["\uD83D\uDE00 smile"]}') == {"e": ["😀 smile"]}


def test_decode_frame_escaped_non_surrogate_is_ok() -> None:
    assert ok_value(OK + rb'"\u00e9\ud7ff\ue000"') == "é\ud7ff\ue000"


def test_lone_surrogate_path_is_none_for_text() -> None:
    assert protocol.lone_surrogate_path({"a": ["é", "😀"], "b": 1}) is None


def test_lone_surrogate_error_is_a_runner_error_type() -> None:
    error = protocol.lone_surrogate_error("result.x")
    assert error["type"] in protocol.RUNNER_ERROR_TYPES
    assert error["message"].startswith("result.x is a string with a lone surrogate")


# -- clean_text and has_header -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", ""),
        ("plain", "plain"),
        ("café 😀", "café 😀"),
        (5, "5"),
        (1.5, "1.5"),
        (["\ufffd"], "['\ufffd']"),
    ],
)
def test_clean_text_keeps_text(text: Any, expected: str | None) -> None:
    assert protocol.clean_text(text) == expected


def assert_replaced(cleaned: str | None, original: str) -> None:
    """Each lone surrogate of `original` became one U+FFFD; the rest is unchanged."""
    assert cleaned is not None
    cleaned.encode("utf-8")  # sendable text
    lone = sum(1 for c in original if 0xD800 <= ord(c) <= 0xDFFF)
    assert cleaned.count("\ufffd") == lone
    kept = "".join(c for c in original if not 0xD800 <= ord(c) <= 0xDFFF)
    assert cleaned.replace("\ufffd", "") == kept


@pytest.mark.parametrize("text", ["\ud800x", "a\udfffb", "\udbff", "日本\ud800語 😀"])
def test_clean_text_replaces_lone_surrogates(text: str) -> None:
    assert_replaced(protocol.clean_text(text), text)


def test_clean_text_joins_a_surrogate_pair_into_its_character() -> None:
    # Two surrogate code points in order are the UTF-16 of one character (as JavaScript
    # strings hold it): keep the character rather than two replacement marks.
    assert protocol.clean_text("x\ud83d\ude00y") == "x😀y"
    assert protocol.clean_text("\ude00\ud83d") == "\ufffd\ufffd"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", False),
        (b"{", False),
        (b'{"ok": true}', False),
        (b"\n", False),
        (b"x\n", False),
        (b"[1]\n", False),
        (b"{\n", True),
        (b'{"ok": true}\n', True),
        (b'{"ok": true}\n[1, 2]', True),
        (protocol.encode_frame(protocol.failure("runtime_error", "m")), True),
    ],
)
def test_has_header(data: bytes, expected: bool) -> None:
    assert protocol.has_header(data) is expected


# -- the JavaScript runner's copy of the protocol ------------------------------------------


def js_const(source: str, name: str) -> str:
    """The value of `const NAME = "...";` in the .mjs (a JSON-compatible string literal)."""
    match = re.search(rf'^const {name} = ("(?:[^"\\\n]|\\.)*");', source, re.MULTILINE)
    assert match, f'js_runner.mjs has no `const {name} = "...";` line'
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def js_source() -> str:
    return JS_RUNNER.read_text(encoding="utf-8")


def test_js_result_path(js_source: str) -> None:
    assert f'const RESULT_PATH = "{protocol.RESULT_FIFO}";' in js_source
    assert js_const(js_source, "RESULT_PATH") == protocol.RESULT_FIFO


def test_js_module_path(js_source: str) -> None:
    assert js_const(js_source, "MODULE_PATH") == protocol.JS_MODULE
    assert js_const(js_source, "TS_MODULE_PATH") == protocol.TS_MODULE


@pytest.mark.parametrize("module", [protocol.JS_MODULE, protocol.TS_MODULE])
def test_js_snippet_location_matches_module_path(js_source: str, module: str) -> None:
    match = re.search(r"^const SNIPPET_LOCATION = /(.+)/;$", js_source, re.MULTILINE)
    assert match, "js_runner.mjs has no SNIPPET_LOCATION regex"
    found = re.search(match.group(1), f"at file://{module}:3:7")
    assert found, f"SNIPPET_LOCATION {match.group(1)!r} does not match the module {module}"
    assert found.groups() == ("3", "7")  # line and column stay its groups 1 and 2


def test_js_runner_picks_the_typescript_module_from_the_job(js_source: str) -> None:
    # The one place the runner reads the job's language: TypeScript goes to TS_MODULE.
    assert 'job.language === "typescript" ? TS_MODULE_PATH : MODULE_PATH' in js_source


def test_js_ready_and_started_lines(js_source: str) -> None:
    assert js_const(js_source, "READY") == protocol.READY.decode("ascii") + "\n"
    assert js_const(js_source, "STARTED") == protocol.STARTED.decode("ascii") + "\n"


def test_js_job_fields_exist_in_the_protocol(js_source: str) -> None:
    used = set(re.findall(r"\bjob\.(\w+)", js_source))
    assert {"code", "inputs", "result_limit_bytes", "language"} <= used, used
    fields = set(protocol.Job.__annotations__)
    assert used <= fields, f"js_runner.mjs reads job fields the protocol lacks: {used - fields}"


def js_error_types(source: str) -> dict[str, int]:
    """Every string literal in a `type: ...` property of the .mjs, with its line number."""
    found: dict[str, int] = {}
    for match in re.finditer(r"\btype:\s*([^,\n}]+)", source):
        line = source.count("\n", 0, match.start()) + 1
        for literal in re.findall(r'"([^"\\\n]*)"', match.group(1)):
            found.setdefault(literal, line)
    # Any other snake_case literal that reads like an error type.
    for match in re.finditer(r'"([a-z]+(?:_[a-z]+)*_(?:error|limit))"', source):
        line = source.count("\n", 0, match.start()) + 1
        found.setdefault(match.group(1), line)
    return found


def test_js_error_types_are_runner_error_types(js_source: str) -> None:
    found = js_error_types(js_source)
    # The scan is not vacuous: the runner reports these itself.
    expected = {"syntax_error", "runtime_error", "serialization_error", "input_error"}
    assert expected <= set(found), f"the scan found only {sorted(found)}"
    drifted = {t: line for t, line in found.items() if t not in protocol.RUNNER_ERROR_TYPES}
    assert not drifted, (
        "js_runner.mjs reports error types that protocol.RUNNER_ERROR_TYPES lacks: "
        + ", ".join(f"{t!r} (line {line})" for t, line in sorted(drifted.items()))
    )


def test_js_error_type_scan_catches_drift() -> None:
    source = 'x = { type: "runtime_eror", y: 1 };\nz = { type: a ? "memory_limit" : "bad_type" };'
    found = js_error_types(source)
    assert {"runtime_eror", "memory_limit", "bad_type"} <= set(found)
    assert found["bad_type"] == 2


# -- the Python scripts in the jail use the protocol module --------------------------------


@pytest.mark.parametrize("name", PY_SCRIPTS)
def test_python_scripts_import_the_protocol(name: str) -> None:
    text = (JAIL_DIR / name).read_text(encoding="utf-8")
    assert re.search(r"^\s*(import protocol|from \. import protocol)\b", text, re.MULTILINE)


@pytest.mark.parametrize("name", PY_SCRIPTS)
def test_python_scripts_hard_code_no_jail_paths(name: str) -> None:
    text = (JAIL_DIR / name).read_text(encoding="utf-8")
    assert "/run/" not in text, f"{name} hard-codes a /run/ path: use protocol"
    runner_lines = [line.strip() for line in text.splitlines() if "/runner" in line]
    allowed = f'sys.path.insert(0, "{protocol.RUNNER_DIR}")  # protocol.RUNNER_DIR'
    assert all(line == allowed for line in runner_lines), runner_lines
    assert len(runner_lines) <= 1, runner_lines


def test_fork_server_puts_the_runner_dir_on_sys_path() -> None:
    text = (JAIL_DIR / "python_forkserver.py").read_text(encoding="utf-8")
    assert f'sys.path.insert(0, "{protocol.RUNNER_DIR}")  # protocol.RUNNER_DIR' in text


CLONE_MASK = 0
for _flag in protocol.CLONE_NEW_FLAGS:
    CLONE_MASK |= _flag


def int_literals(text: str) -> list[tuple[str, int, int]]:
    """(literal, value, line) of every integer literal in Python source (not comments)."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.NUMBER:
            try:
                value = int(token.string, 0)
            except ValueError:  # floats, imaginary
                continue
            found.append((token.string, value, token.start[0]))
    return found


def clone_flag_literals(text: str) -> list[tuple[str, int]]:
    """Integer literals that are namespace clone flags or an OR of them."""
    flags = set(protocol.CLONE_NEW_FLAGS)
    return [
        (literal, line)
        for literal, value, line in int_literals(text)
        if value in flags
        or (literal.lower().startswith("0x") and value > 0 and value & ~CLONE_MASK == 0)
    ]


@pytest.mark.parametrize("name", PY_SCRIPTS)
def test_python_scripts_hard_code_no_clone_flags(name: str) -> None:
    text = (JAIL_DIR / name).read_text(encoding="utf-8")
    assert clone_flag_literals(text) == [], f"{name} hard-codes clone flags: use protocol"


def test_clone_flag_scan_catches_literals() -> None:
    source = "a = 0x20000000\nb = 0x00020000 | 0x08000000\nc = 0x20080522  # not one\n"
    assert clone_flag_literals(source) == [("0x20000000", 1), ("0x00020000", 2), ("0x08000000", 2)]
    assert clone_flag_literals("flags = 0x28020000\n") == [("0x28020000", 1)]
    assert clone_flag_literals("x = 0x10  # no\ny = 536870912\n") == [("536870912", 2)]
