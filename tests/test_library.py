"""The library through the Python API: `coderunner.Library` over a real engine and SQLite."""

from __future__ import annotations

import asyncio
import dataclasses
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
