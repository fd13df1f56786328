"""The `coderunner` command, run as a real subprocess: output, exit codes, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXE = [sys.executable, "-m", "coderunner"]


ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EXE, *args], input=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_run_python_code_prints_the_result_and_exits_0() -> None:
    out = cli("run", "-l", "python", "-c", 'print("hi")\n2')
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] is True and result["result"] == 2 and result["stdout"] == "hi\n"
    assert result["language"] == "python" and result["error"] is None


def test_run_js_file_with_inputs_by_name(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.js"
    snippet.write_text("function main(x, y) {\n  return x * y;\n}\n")
    out = cli("run", str(snippet), "-i", "x=6", "-i", "y=7")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == 42


@pytest.mark.parametrize("suffix", [".ts", ".mts"])
def test_run_ts_file_by_its_extension(tmp_path: Path, suffix: str) -> None:
    snippet = tmp_path / f"snippet{suffix}"
    snippet.write_text(
        "interface P { x: number }\nfunction main(x: number, y: number): P {\n"
        "  return { x: x * y };\n}\n"
    )
    out = cli("run", str(snippet), "-i", "x=6", "-i", "y=7")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["result"] == {"x": 42} and result["language"] == "typescript"
    out = cli("run", "-", "-l", "typescript", stdin="const a: number = 2;\nreturn a * 3;")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == 6


def test_inputs_file_schema_and_limits(tmp_path: Path) -> None:
    (tmp_path / "inputs.json").write_text(json.dumps({"rows": [1, 2, 3], "scale": 2}))
    (tmp_path / "schema.json").write_text(json.dumps({"type": "object", "required": ["total"]}))
    (tmp_path / "job.py").write_text(
        "def main(rows, scale):\n    return {'sum': sum(rows) * scale}\n"
    )
    out = cli(
        "run", str(tmp_path / "job.py"), "--inputs", str(tmp_path / "inputs.json"),
        "-i", "scale=10", "--schema", str(tmp_path / "schema.json"),
        "--timeout-ms", "3000", "--memory-mb", "64",
    )  # fmt: skip
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["error"]["type"] == "schema_error"
    assert result["result"] == {"sum": 60}  # -i overrides --inputs; the result is kept


def test_a_failing_snippet_exits_1_with_its_error() -> None:
    out = cli("run", "-l", "python", "-c", "x = 1\n1 / 0")
    assert out.returncode == 1
    error = json.loads(out.stdout)["error"]
    assert error["type"] == "runtime_error" and error["name"] == "ZeroDivisionError"
    assert error["line"] == 2


def test_code_from_stdin() -> None:
    out = cli("run", "-", "-l", "javascript", stdin="return [1, 2].map((x) => x * 3)")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == [3, 6]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-c", "1"], "-l python|javascript"),
        (["run", "-l", "python", "-c", "1", "-i", "name=Ada"], "not JSON"),
        (["run", "-l", "python", "-c", "1", "-i", "novalue"], "NAME=JSON"),
        (["run", "/nonexistent/snippet.py"], "cannot read"),
        (["run", "tests/conftest.py.txt"], "cannot read"),
        (["run", "README.md"], "extension"),
        (["run", "-l", "python"], "exactly one"),
        (["run", "-l", "ruby", "-c", "1"], "invalid choice"),
        (["run", "-l", "python", "-c", "1", "--timeout-ms", "99999999"], "maximum"),
        (["run", "-l", "python", "-c", "1", "--memory-mb", "8"], "memory_mb: Input should be"),
        (["run", "-l", "python", "-c", "1", "--inputs", "/nonexistent.json"], "cannot read"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    out = cli(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr
    assert out.stdout == ""


def test_every_command_has_help() -> None:
    for command in ("run", "doctor", "serve", "mcp", "agent", "bench"):
        out = cli(command, "--help")
        assert out.returncode == 0 and "usage: coderunner" in out.stdout, command
    assert "--max-timeout-ms" in cli("serve", "--help").stdout


def test_doctor_reports_every_layer_active() -> None:
    out = cli("doctor", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    names = {c["name"]: c for c in report["checks"]}
    for layer in (
        "bubblewrap", "libseccomp", "user namespace", "pid namespace", "network namespace",
        "mount namespace", "ipc namespace", "seccomp filter", "no_new_privs",
        "capabilities dropped", "bounding set empty", "mount tables hidden", "no network",
        "no program starts", "host files hidden",
        "process limit", "javascript runtime",
    ):  # fmt: skip
        assert names[layer]["ok"], names[layer]
    text = cli("doctor")
    assert text.returncode == 0 and "fully active" in text.stdout


def test_doctor_fails_closed_without_bubblewrap(tmp_path: Path) -> None:
    # A PATH without bwrap: doctor must say so and exit non-zero, and run must refuse.
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run([*EXE, "doctor"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1
    assert "bubblewrap" in out.stdout and "not installed" in out.stdout
    run = subprocess.run(
        [*EXE, "run", "-l", "python", "-c", "1"], capture_output=True, text=True, timeout=60,
        env=env,
    )  # fmt: skip
    assert run.returncode == 1 and "bubblewrap" in run.stderr


def test_bench_runs_every_path_and_writes_json(tmp_path: Path) -> None:
    # A smoke run of the harness (not a timed test: the numbers are not asserted).
    out = cli("bench", "--seconds", "0.3", "--json", str(tmp_path / "bench.json"), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    paths = {r["path"] for r in report["results"]}
    assert {"python via API, 1 client", "python via HTTP", "python via HTTP, 1 client",
            "javascript via HTTP", "javascript via HTTP, isolate mode, 8 clients",
            "naive python -I -S per run", "naive deno run per run"} <= paths  # fmt: skip
    assert all(r["runs"] > 0 for r in report["results"])
    assert "naive p50 / p50" in out.stdout and report["first_execution_after_start_s"] > 0
    assert [row["rows"] for row in report["payloads"]] == [1_000, 10_000, 100_000]
    assert all(row["api_ratio"] > 0 and row["http_ratio"] > 0 for row in report["payloads"])
    assert "HTTP/naive" in out.stdout


def test_a_lone_surrogate_result_is_an_error_not_a_traceback() -> None:
    out = cli("run", "-l", "python", "-c", "'\\ud800' + 'x'")
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    error = json.loads(out.stdout)["error"]
    assert error["type"] == "serialization_error" and "lone surrogate" in error["message"]


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        ("serve", "CODERUNNER_PORT", "abc"),
        ("serve", "CODERUNNER_PORT", "99999"),
        ("serve", "CODERUNNER_MAX_TIMEOUT_MS", "ten"),
        ("serve", "CODERUNNER_DEFAULT_MEMORY_MB", "8"),
        ("mcp", "CODERUNNER_QUEUE_SIZE", "-1"),
        ("run", "CODERUNNER_AGENT_TIMEOUT_S", "soon"),
        ("serve", "CODERUNNER_DATABASE_URL", "mysql://db/library"),
    ],
)
def test_a_bad_setting_is_a_one_line_usage_error(command: str, variable: str, value: str) -> None:
    import os

    args = [command] + (["-l", "python", "-c", "1"] if command == "run" else [])
    out = subprocess.run(
        [*EXE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, variable: value},
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    named = variable.removeprefix("CODERUNNER_").lower()
    assert variable in lines[0] or named in lines[0] or "port" in lines[0], lines[0]
