"""`coderunner snippets ...`, `history` and `inspect` as real subprocesses, on a library
in a temporary data directory (no server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXE = [sys.executable, "-m", "coderunner"]
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(300)

SLUG = '''\
import re

def main(title: str, separator: str = "-") -> str:
    """A URL slug: lower case, words joined by the separator."""
    return separator.join(re.findall(r"[a-z0-9]+", title.lower()))
'''
TOTAL_JS = """\
/**
 * Sum the amounts.
 * @param {{amount: number}[]} orders
 * @param {number} [rate=1]
 */
function main(orders, rate = 1) {
  return orders.reduce((s, o) => s + o.amount, 0) * rate;
}
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def cr(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXE, *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "CODERUNNER_DATA_DIR": str(data_dir), **(env or {})},
    )


def out(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def test_save_list_show_run_test_rm(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "slug.py").write_text(SLUG)
    examples = [{"name": "basic", "inputs": {"title": "Hello, World!"}, "expected": "hello-world"}]
    (tmp_path / "examples.json").write_text(json.dumps(examples))
    saved = cr(
        data_dir, "snippets", "save", str(tmp_path / "slug.py"), "--name", "slug",
        "--description", "Titles to URL slugs.", "--examples", str(tmp_path / "examples.json"),
        "--tag", "text",
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    first = out(saved)
    assert (first["name"], first["version"], first["created"]) == ("slug", 1, True)
    assert first["input_schema"]["required"] == ["title"]

    (tmp_path / "slug.py").write_text(SLUG.replace('separator: str = "-"', 'separator: str = "_"'))
    v2 = out(cr(data_dir, "snippets", "save", str(tmp_path / "slug.py"), "--name", "slug"))
    assert v2["version"] == 2

    listed = out(cr(tmp_path, "snippets", "list", "--data-dir", str(data_dir)))["snippets"]
    assert [(s["name"], s["version"]) for s in listed] == [("slug", 2)]
    assert out(cr(data_dir, "snippets", "list", "-q", "nope"))["snippets"] == []
    assert out(cr(data_dir, "snippets", "show", "slug@1"))["description"] == "Titles to URL slugs."
    versions = out(cr(data_dir, "snippets", "show", "slug", "--versions"))["versions"]
    assert [v["version"] for v in versions] == [2, 1]

    run = cr(data_dir, "snippets", "run", "slug", "-i", 'title="A B C"')
    assert run.returncode == 0, run.stderr
    assert out(run)["result"] == "a_b_c" and out(run)["snippet"] == {"name": "slug", "version": 2}
    pinned = out(cr(data_dir, "snippets", "run", "slug@1", "-i", 'title="A B C"'))
    assert pinned["result"] == "a-b-c"
    misfit = cr(data_dir, "snippets", "run", "slug", "-i", "title=5")
    assert misfit.returncode == 1 and out(misfit)["error"]["type"] == "input_error"

    tested = cr(data_dir, "snippets", "test", "slug@1")
    assert tested.returncode == 0, tested.stdout
    assert out(tested)["passed"] is True

    history = out(cr(data_dir, "history", "--snippet", "slug"))["executions"]
    assert [e["ok"] for e in history] == [False, True, True]
    one = out(cr(data_dir, "history", history[0]["execution_id"]))
    assert one["inputs"] == {"title": 5} and one["surface"] == "cli"

    assert cr(data_dir, "snippets", "rm", "slug").returncode == 0
    gone = cr(data_dir, "snippets", "show", "slug")
    assert gone.returncode == 1 and "no snippet named 'slug'" in gone.stderr


def test_failing_examples_refuse_the_save(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "total.js").write_text(TOTAL_JS)
    examples = [{"inputs": {"orders": [{"amount": 2}]}, "expected": 3}]
    (tmp_path / "examples.json").write_text(json.dumps(examples))
    saved = cr(
        data_dir, "snippets", "save", str(tmp_path / "total.js"), "--name", "total",
        "--examples", str(tmp_path / "examples.json"),
    )  # fmt: skip
    assert saved.returncode == 1  # the command was right; the snippet did not pass
    assert "returned 2, expected 3" in saved.stderr and "nothing was saved" in saved.stderr
    assert out(cr(data_dir, "snippets", "list"))["snippets"] == []


def test_export_import_round_trip_and_a_corrupt_folder(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "slug.py").write_text(SLUG)
    (tmp_path / "total.js").write_text(TOTAL_JS)
    examples = [{"inputs": {"orders": [{"amount": 2}], "rate": 2}, "expected": 4}]
    (tmp_path / "examples.json").write_text(json.dumps(examples))
    assert (
        cr(data_dir, "snippets", "save", str(tmp_path / "slug.py"), "--name", "slug").returncode
        == 0
    )
    assert (
        cr(
            data_dir, "snippets", "save", str(tmp_path / "total.js"), "--name", "total",
            "--description", "Sum.", "--examples", str(tmp_path / "examples.json"),
        ).returncode
        == 0
    )  # fmt: skip
    folder = tmp_path / "library"
    exported = out(cr(data_dir, "snippets", "export", str(folder)))
    assert sorted(exported["exported"]) == ["slug", "total"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "slug.json", "slug.py", "total.js", "total.json",
    ]  # fmt: skip
    assert (folder / "total.js").read_text() == TOTAL_JS
    meta = json.loads((folder / "total.json").read_text())
    assert meta["examples"] == examples and meta["description"] == "Sum."

    other = tmp_path / "other-data"
    imported = out(cr(other, "snippets", "import", str(folder)))["imported"]
    assert sorted((i["name"], i["version"]) for i in imported) == [("slug", 1), ("total", 1)]
    assert out(cr(other, "snippets", "show", "total"))["code"] == TOTAL_JS

    # A corrupt folder: one good snippet, one whose code file is missing: nothing lands.
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "slug.py").write_text(SLUG)
    (corrupt / "slug.json").write_text(json.dumps({"name": "slug", "language": "python"}))
    (corrupt / "lost.json").write_text(json.dumps({"name": "lost", "language": "python"}))
    (corrupt / "broken.json").write_text("{not json")
    third = tmp_path / "third-data"
    refused = cr(third, "snippets", "import", str(corrupt))
    assert refused.returncode == 2
    assert "lost.json" in refused.stderr and "broken.json" in refused.stderr
    assert out(cr(third, "snippets", "list"))["snippets"] == []


def _exported(folder: Path, total_meta: dict[str, Any]) -> None:
    """A folder of two snippets: "slug" (fine) and, second by name, "total"."""
    folder.mkdir()
    (folder / "slug.py").write_text(SLUG)
    slug_examples = [{"inputs": {"title": "A b"}, "expected": "a-b"}]
    slug = {"name": "slug", "language": "python", "examples": slug_examples}
    (folder / "slug.json").write_text(json.dumps(slug))
    (folder / "total.js").write_text(TOTAL_JS)
    (folder / "total.json").write_text(
        json.dumps({"name": "total", "language": "javascript", **total_meta})
    )


def test_an_import_whose_second_snippet_fails_an_example_imports_nothing(
    tmp_path: Path, data_dir: Path
) -> None:
    folder = tmp_path / "library"
    good = {"inputs": {"orders": [{"amount": 2}]}, "expected": 2}
    bad = {"name": "doubled", "inputs": {"orders": [{"amount": 2}], "rate": 2}, "expected": 5}
    _exported(folder, {"examples": [good, bad]})
    refused = cr(data_dir, "snippets", "import", str(folder))
    assert refused.returncode == 2, refused.stderr
    assert f"nothing was imported from {folder}" in refused.stderr
    assert "total: example 2 ('doubled'): returned 4, expected 5" in refused.stderr
    assert out(cr(data_dir, "snippets", "list"))["snippets"] == []


def test_an_import_refused_while_storing_the_second_snippet_imports_nothing(
    tmp_path: Path, data_dir: Path
) -> None:
    # "total"'s description cannot be stored (a NUL character): only the store sees it,
    # after "slug" passed every check.
    folder = tmp_path / "library"
    _exported(folder, {"description": "Sum.\u0000"})
    refused = cr(data_dir, "snippets", "import", str(folder))
    assert out(cr(data_dir, "snippets", "list"))["snippets"] == []
    assert refused.returncode == 2, refused.stderr
    assert f"nothing was imported from {folder}" in refused.stderr
    assert "total" in refused.stderr and "NUL character" in refused.stderr


def test_inspect_and_usage_errors(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "total.js").write_text(TOTAL_JS)
    inspected = out(cr(data_dir, "inspect", str(tmp_path / "total.js")))
    assert inspected["input_schema"]["properties"]["rate"]["default"] == 1
    assert cr(data_dir, "snippets", "run", "bad@name@2").returncode == 2
    assert cr(data_dir, "snippets", "save", "missing.py", "--name", "x").returncode == 2
    unknown = cr(data_dir, "snippets", "run", "nothing-here")
    assert unknown.returncode == 1 and "no snippet named" in unknown.stderr
    for command in ("snippets", "history", "inspect"):
        assert cr(data_dir, command, "--help").returncode == 0
