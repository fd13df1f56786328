"""The library through the Python API: `coderunner.Library` over a real engine and SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

import coderunner
from coderunner import (
    Engine,
    Example,
    ExamplesFailed,
    InvalidRequest,
    Library,
    NotFound,
    Settings,
    SnippetSpec,
    StoreUnavailable,
)

pytestmark = pytest.mark.timeout(180)

TOTAL = (
    "/** @param {number[]} amounts */\n"
    "function main(amounts, rate = 1) {\n"
    "  return amounts.reduce((a, b) => a + b, 0) * rate;\n"
    "}\n"
)


def test_save_run_test_history_export_import(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        Settings.from_env(python_pool_size=1, javascript_pool_size=1), data_dir=str(tmp_path)
    )

    async def main() -> None:
        async with Engine(settings) as engine, Library(engine) as library:
            spec = SnippetSpec(
                language="javascript",
                code=TOTAL,
                description="Sum, times a rate.",
                examples=[Example(inputs={"amounts": [1, 2]}, expected=3)],
            )
            snippet, created = await library.save("total", spec)
            assert created and snippet.version == 1 and snippet.examples_passed == 1
            assert snippet.input_schema["properties"]["amounts"]["type"] == "array"
            assert (await library.save("total", spec)) == (snippet, False)

            result = await library.run("total", inputs={"amounts": [2, 3], "rate": 2})
            assert result.ok and result.result == 10
            assert result.snippet == coderunner.SnippetRef(name="total", version=1)
            refused = await library.run("total", inputs={"amounts": "2, 3"})
            assert refused.error is not None and refused.error.type == "input_error"
            assert [o["ok"] for o in await library.test("total")] == [True]

            recent = await library.executions(snippet="total")
            assert [e.execution_id for e in recent] == [refused.execution_id, result.execution_id]
            record = await library.execution(result.execution_id)
            assert record.inputs == {"amounts": [2, 3], "rate": 2} and record.result.result == 10

            wrong = spec.model_copy(
                update={"examples": [Example(inputs={"amounts": [1]}, expected=2)]}
            )
            with pytest.raises(ExamplesFailed) as failed:
                await library.save("total", wrong)
            assert failed.value.failures[0]["reason"] == "returned 1, expected 2"
            with pytest.raises(InvalidRequest, match="reserved"):
                await library.save("execute-total", spec)
            with pytest.raises(NotFound):
                await library.run("nothing")
            with pytest.raises(NotFound, match="no version 9"):
                await library.get("total", 9)

            exported = tmp_path / "export"
            assert await library.export(exported) == ["total"]
            await library.delete("total")
            assert await library.search() == []
            [(again, created)] = await library.import_(exported)
            assert created and again.code == TOTAL and again.examples == spec.examples

            # A second version; the first stays runnable by number.
            doubled = spec.model_copy(
                update={
                    "code": TOTAL.replace("* rate", "* rate * 2"),
                    "examples": [Example(inputs={"amounts": [1, 2]}, expected=6)],
                }
            )
            second, created = await library.save("total", doubled)
            assert created and second.version == 2
            latest = await library.run("total", inputs={"amounts": [1, 2]})
            pinned = await library.run("total", inputs={"amounts": [1, 2]}, version=1)
            assert (latest.result, latest.snippet) == (
                6,
                coderunner.SnippetRef(name="total", version=2),
            )
            assert (pinned.result, pinned.snippet) == (
                3,
                coderunner.SnippetRef(name="total", version=1),
            )
            with pytest.raises(NotFound):
                await library.run("total", version=9)

    asyncio.run(main())


def test_typescript_snippet_is_saved_run_and_exported_as_ts(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        Settings.from_env(python_pool_size=1, javascript_pool_size=1), data_dir=str(tmp_path)
    )
    code = (
        "interface Row { amount: number }\n"
        "function main(rows: Row[], rate: number = 1): number {\n"
        "  return rows.reduce((s: number, r: Row) => s + r.amount, 0) * rate;\n"
        "}\n"
    )

    async def main() -> None:
        async with Engine(settings) as engine, Library(engine) as library:
            spec = SnippetSpec(
                language="typescript",
                code=code,
                examples=[Example(inputs={"rows": [{"amount": 2}]}, expected=2)],
            )
            snippet, created = await library.save("ts-total", spec)
            assert created and snippet.language == "typescript"
            rows = snippet.input_schema["properties"]["rows"]
            assert rows["items"]["properties"]["amount"] == {"type": "number"}
            result = await library.run("ts-total", inputs={"rows": [{"amount": 3}], "rate": 2})
            assert result.ok and result.result == 6 and result.language == "typescript"
            exported = tmp_path / "export"
            assert await library.export(exported) == ["ts-total"]
            assert (exported / "ts-total.ts").read_text() == code
            await library.delete("ts-total")
            [(again, _)] = await library.import_(exported)
            assert again.language == "typescript" and again.code == code

    asyncio.run(main())


def _library_settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(
        Settings.from_env(python_pool_size=1, javascript_pool_size=1), data_dir=str(tmp_path)
    )


def _write_exported(folder: Path, name: str, code: str, **meta: object) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.js").write_text(code)
    text = json.dumps({"name": name, "language": "javascript", **meta})
    (folder / f"{name}.json").write_text(text)


DOUBLE = "function main(x) {\n  return x * 2;\n}\n"


def test_an_import_whose_second_snippet_fails_an_example_imports_nothing(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "folder"
    # Sorted by name, "a-total" is checked (and would be stored) first; "b-double"'s second
    # example fails.
    _write_exported(
        folder, "a-total", TOTAL, examples=[{"inputs": {"amounts": [1]}, "expected": 1}]
    )
    good = {"inputs": {"x": 2}, "expected": 4}
    bad = {"name": "wrong", "inputs": {"x": 3}, "expected": 7}
    _write_exported(folder, "b-double", DOUBLE, examples=[good, bad])

    async def main() -> None:
        async with Engine(_library_settings(tmp_path)) as engine, Library(engine) as library:
            before, _ = await library.save(
                "b-double", SnippetSpec(language="javascript", code=DOUBLE, examples=[])
            )
            with pytest.raises(InvalidRequest) as refused:
                await library.import_(folder)
            message = str(refused.value)
            assert message.startswith(f"nothing was imported from {folder}: ")
            assert "b-double: example 2 ('wrong'): returned 6, expected 7" in message
            assert "a-total" not in message  # it passed: only the problem is named
            assert [s.name for s in await library.search()] == ["b-double"]
            assert await library.versions("b-double") == [before]

            # Fixed (and "b-double" now as stored): the import lands whole, and a snippet
            # that did not change keeps its version.
            _write_exported(folder, "b-double", DOUBLE, examples=[])
            imported = await library.import_(folder)
            assert [(s.name, s.version, new) for s, new in imported] == [
                ("a-total", 1, True),
                ("b-double", 1, False),
            ]
            assert imported[1][0] == before
            assert await library.versions("b-double") == [before]

    asyncio.run(main())


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        # Checked only by the store, when it is asked to store it.
        ({"description": "a NUL \u0000 here"}, "description contains a NUL character"),
        # No example runs it, so only the save would see it.
        ({"output_schema": {"type": "no-such-type"}}, "output_schema"),
    ],
)
def test_an_import_refused_when_storing_the_second_snippet_imports_nothing(
    tmp_path: Path, meta: dict[str, object], problem: str
) -> None:
    folder = tmp_path / "folder"
    _write_exported(
        folder, "a-total", TOTAL, examples=[{"inputs": {"amounts": [1]}, "expected": 1}]
    )
    _write_exported(folder, "b-double", DOUBLE, **meta)

    async def main() -> None:
        async with Engine(_library_settings(tmp_path)) as engine, Library(engine) as library:
            with pytest.raises(InvalidRequest) as refused:
                await library.import_(folder)
            assert await library.search() == []  # not even "a-total", checked first
            message = str(refused.value)
            assert message.startswith(f"nothing was imported from {folder}: ")
            assert "b-double" in message and problem in message

    asyncio.run(main())


def test_an_import_the_database_refuses_midway_imports_nothing(tmp_path: Path) -> None:
    # Every check passes; then the database itself refuses the second snippet's row, after
    # the first was written: the transaction is rolled back whole.
    folder = tmp_path / "folder"
    _write_exported(
        folder, "a-total", TOTAL, examples=[{"inputs": {"amounts": [1]}, "expected": 1}]
    )
    _write_exported(folder, "b-double", DOUBLE, examples=[{"inputs": {"x": 2}, "expected": 4}])

    async def main() -> None:
        async with Engine(_library_settings(tmp_path)) as engine, Library(engine) as library:
            with contextlib.closing(sqlite3.connect(tmp_path / "coderunner.db")) as db:
                db.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON snippets WHEN NEW.name = 'b-double' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
                )
                db.commit()
            with pytest.raises(StoreUnavailable) as refused:
                await library.import_(folder)
            assert await library.search() == []  # not even "a-total", written first
            message = str(refused.value)
            assert message.startswith(f"nothing was imported from {folder}: ")
            assert "refused by a trigger" in message

    asyncio.run(main())
