"""The migrations on both backends: from nothing, from the previous schema with data in
it, in step with tables.py, and safe when several nodes start at once."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from coderunner._errors import StoreUnavailable
from coderunner._models import Example, Language
from coderunner._store import Store
from coderunner._store.tables import VERSION_TABLE, metadata

HEAD = "0003"


def engine_for(url: str) -> sa.Engine:
    """A plain engine on the test database, to look at it from outside the store."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url)


def revision_of(url: str) -> str | None:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
    finally:
        engine.dispose()


def schema_of(url: str) -> dict[str, Any]:
    engine = engine_for(url)
    try:
        inspector = sa.inspect(engine)
        return {
            table: {
                "columns": [c["name"] for c in inspector.get_columns(table)],
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)
                ),
            }
            for table in sorted(inspector.get_table_names())
        }
    finally:
        engine.dispose()


def test_upgrade_from_an_empty_database_to_head(store_url: str) -> None:
    assert schema_of(store_url) == {}
    assert revision_of(store_url) is None
    Store.open(store_url).close()
    assert revision_of(store_url) == HEAD
    schema = schema_of(store_url)
    assert set(schema) == {"snippets", "executions", VERSION_TABLE}
    assert schema["snippets"]["primary_key"] == ["name", "version"]
    assert schema["snippets"]["columns"] == [
        "name", "version", "hash", "language", "code", "description", "input_schema",
        "output_schema", "examples", "tags", "examples_passed", "created_at",
    ]  # fmt: skip
    assert schema["executions"]["primary_key"] == ["execution_id"]
    assert schema["executions"]["columns"] == [
        "execution_id", "snippet", "version", "language", "surface", "started_at",
        "duration_ms", "ok", "error_type", "result", "inputs", "note",
    ]  # fmt: skip
    assert schema["executions"]["indexes"] == [
        ("ix_executions_snippet_started_at", ("snippet", "started_at")),
        ("ix_executions_started_at_id", ("started_at", "execution_id")),
    ]
    # Opening again finds the schema at head and changes nothing.
    Store.open(store_url).close()
    assert schema_of(store_url) == schema


def test_upgrade_from_0001_keeps_the_data(store_url: str) -> None:
    old = Store(store_url)
    old.migrate("0001")
    old.close()
    assert revision_of(store_url) == "0001"
    assert schema_of(store_url)["executions"]["indexes"] == [
        ("ix_executions_started_at", ("started_at",))
    ]
    # Rows as the previous schema holds them, written from outside the store.
    created = datetime.datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=datetime.UTC)
    engine = engine_for(store_url)
    snippets = sa.table(*(sa.column(c) for c in metadata.tables["snippets"].columns.keys()))
    try:
        with engine.begin() as conn:
            for version in (1, 2):
                conn.execute(
                    metadata.tables["snippets"]
                    .insert()
                    .values(
                        name="kept",
                        version=version,
                        hash=f"h{version}",
                        language="python",
                        code=f"v{version}",
                        description="from 0001",
                        input_schema={"type": "object"},
                        output_schema=None,
                        examples=[{"inputs": {"x": 1}, "expected": None}],
                        tags=["old"],
                        examples_passed=1,
                        created_at=created,
                    )
                )
            conn.execute(
                metadata.tables["executions"]
                .insert()
                .values(
                    execution_id="e1",
                    snippet="kept",
                    version=2,
                    language="python",
                    surface="cli",
                    started_at=created,
                    duration_ms=1.5,
                    ok=True,
                    error_type=None,
                    result={"ok": True, "result": 42, "language": "python"},
                    inputs={"x": 1},
                    note=None,
                )
            )
    finally:
        engine.dispose()
    del snippets

    store = Store.open(store_url)
    try:
        assert revision_of(store_url) == HEAD
        latest = store.get("kept")
        assert latest is not None
        assert (latest.version, latest.code, latest.tags, latest.created_at) == (
            2, "v2", ["old"], created,
        )  # fmt: skip
        assert latest.examples == [Example.model_validate({"inputs": {"x": 1}, "expected": None})]
        assert latest.examples[0].has_expected
        assert [s.version for s in store.versions("kept")] == [2, 1]
        assert [e.execution_id for e in store.executions(snippet="kept")] == ["e1"]
        record = store.execution("e1")
        assert record is not None and record.result.result == 42 and record.inputs == {"x": 1}
        assert record.language is Language.PYTHON
        # And the upgraded database takes new versions.
        saved, created_now = store.save(
            "kept", language=Language.PYTHON, code="v3", description="", input_schema={},
            output_schema=None, examples=[], tags=[], hash="h3", examples_passed=0,
        )  # fmt: skip
        assert (saved.version, created_now) == (3, True)
    finally:
        store.close()
    assert schema_of(store_url)["executions"]["indexes"] == [
        ("ix_executions_snippet_started_at", ("snippet", "started_at")),
        ("ix_executions_started_at_id", ("started_at", "execution_id")),
    ]


def test_pruning_walks_the_index_not_a_sort_of_the_history(tmp_path: Path) -> None:
    # SQLite's plan (the default store; PostgreSQL plans by its statistics).
    store_url = f"sqlite:///{tmp_path / 'library.db'}"
    Store.open(store_url).close()
    engine = engine_for(store_url)
    try:
        with engine.connect() as conn:
            plan = conn.execute(
                sa.text(
                    "EXPLAIN QUERY PLAN SELECT started_at, execution_id FROM executions "
                    "ORDER BY started_at DESC, execution_id DESC LIMIT 1 OFFSET 10000"
                )
            ).all()
    finally:
        engine.dispose()
    steps = " / ".join(row[-1] for row in plan)
    assert "ix_executions_started_at_id" in steps and "TEMP B-TREE" not in steps, steps


def test_tables_py_matches_the_migrated_schema(store_url: str) -> None:
    """`alembic check`: autogenerate finds nothing to do between the models and head."""
    Store.open(store_url).close()
    engine = engine_for(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_nodes_starting_together_migrate_once(store_url: str) -> None:
    n = 6
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def node() -> None:
        try:
            start.wait()
            Store.open(store_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert revision_of(store_url) == HEAD


def test_a_database_newer_than_this_code_is_refused_readably(store_url: str) -> None:
    Store.open(store_url).close()
    engine = engine_for(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreUnavailable) as caught:
        Store.open(store_url)
    assert str(caught.value).endswith(
        "has schema revision 0099, newer than this coderunner knows (its newest is 0003): "
        "upgrade coderunner on this node"
    )
