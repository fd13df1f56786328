"""The store on both backends: the library (versions, search, delete, concurrent saves),
the history (order, pruning, reduced records), and databases that are down."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from _postgres import PASSWORD, PostgresServer, free_port
from coderunner._errors import InvalidRequest, StoreUnavailable
from coderunner._models import (
    ErrorDetail,
    ErrorType,
    Example,
    ExecutionRecord,
    ExecutionResult,
    Language,
)
from coderunner._store import NewVersion, Store, database_url_for
from coderunner._store.store import OUTPUT_LIMIT, RESULT_LIMIT

UTC = datetime.UTC
T0 = datetime.datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    yield store
    store.close()


def save(store: Store, name: str, code: str = "def main():\n    return 1\n", **kw: Any):
    fields: dict[str, Any] = {
        "language": Language.PYTHON,
        "code": code,
        "description": "",
        "input_schema": {"type": "object", "properties": {}},
        "output_schema": None,
        "examples": [],
        "tags": [],
        "hash": f"h-{hash((code, repr(sorted(kw.items(), key=str))))}",
        "examples_passed": 0,
    }
    fields.update(kw)
    return store.save(name, **fields)


def record(
    execution_id: str,
    started_at: datetime.datetime,
    *,
    snippet: str | None = None,
    result: Any = 1,
    inputs: dict[str, Any] | None = None,
    **result_fields: Any,
) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=execution_id,
        snippet=snippet,
        version=1 if snippet else None,
        language=Language.PYTHON,
        surface="http",
        started_at=started_at,
        duration_ms=12.5,
        ok=True,
        result=ExecutionResult(
            ok=True,
            result=result,
            language=Language.PYTHON,
            execution_id=execution_id,
            **result_fields,
        ),
        inputs=inputs,
    )


# -- the library ----------------------------------------------------------------------------


def test_save_adds_a_version_only_when_the_content_changes(store: Store) -> None:
    first, created = save(store, "adder", hash="h1")
    assert (first.version, created) == (1, True)
    assert (
        first.created_at.tzinfo is not None
        and first.created_at.utcoffset() == datetime.timedelta(0)
    )
    again, created = save(store, "adder", hash="h1", code="ignored: same hash")
    assert (again.version, created) == (1, False)
    assert again == first
    second, created = save(store, "adder", code="def main():\n    return 2\n", hash="h2")
    assert (second.version, created) == (2, True)
    # Back to the first content: a new version (only the latest is compared).
    third, created = save(store, "adder", hash="h1")
    assert (third.version, created) == (3, True)


def test_get_latest_and_pinned_versions(store: Store) -> None:
    save(store, "f", code="v1", hash="1", description="one", tags=["a"], examples_passed=0)
    latest, _ = save(
        store, "f", code="v2", hash="2", description="two", tags=["b", "c"],
        input_schema={"type": "object", "properties": {"x": {"type": "integer"}}},
        output_schema={"type": "integer"}, examples_passed=3,
    )  # fmt: skip
    assert store.get("f") == latest
    got = store.get("f")
    assert got is not None
    assert (got.version, got.code, got.description, got.tags) == (2, "v2", "two", ["b", "c"])
    assert got.output_schema == {"type": "integer"}
    assert got.input_schema["properties"] == {"x": {"type": "integer"}}
    assert got.examples_passed == 3
    assert got.created_at.tzinfo is not None
    pinned = store.get("f", 1)
    assert pinned is not None and (pinned.version, pinned.code) == (1, "v1")
    assert pinned.output_schema is None
    assert store.get("f", 3) is None
    assert store.get("nope") is None
    assert store.get("nope", 1) is None


def test_versions_newest_first(store: Store) -> None:
    for n in range(1, 4):
        save(store, "g", code=f"v{n}", hash=str(n))
    save(store, "other", hash="x")
    assert [s.version for s in store.versions("g")] == [3, 2, 1]
    assert [s.code for s in store.versions("g")] == ["v3", "v2", "v1"]
    assert store.versions("nope") == []


def test_search_matches_name_description_and_tags_case_insensitively(store: Store) -> None:
    save(store, "phone-format", hash="1", description="Formats a Phone number", tags=["text"])
    save(store, "phone-format", hash="2", description="Formats numbers", tags=["Telecom"])
    save(store, "adder", hash="3", description="Adds two numbers", tags=["math"],
         language=Language.JAVASCRIPT)  # fmt: skip
    save(store, "zeta", hash="4", description="ÉCOLE", tags=[])
    everything = store.search()
    assert [s.name for s in everything] == ["adder", "phone-format", "zeta"]
    assert store.search(None) == everything == store.search("")
    phone = next(s for s in everything if s.name == "phone-format")
    # The latest version only.
    assert (phone.version, phone.description, phone.tags) == (2, "Formats numbers", ["Telecom"])
    adder = everything[0]
    assert adder.language is Language.JAVASCRIPT
    assert [s.name for s in store.search("PHONE")] == ["phone-format"]  # name
    assert [s.name for s in store.search("numbers")] == ["adder", "phone-format"]  # description
    assert [s.name for s in store.search("telecom")] == ["phone-format"]  # a tag
    assert [s.name for s in store.search("MATH")] == ["adder"]
    assert store.search("text") == []  # only in an older version
    assert [s.name for s in store.search("école")] == ["zeta"]  # not only ASCII
    assert store.search("%") == [] and store.search("_") == []  # no LIKE wildcards


def test_delete_removes_every_version(store: Store) -> None:
    save(store, "d", hash="1")
    save(store, "d", hash="2")
    save(store, "kept", hash="1")
    assert store.delete("d") is True
    assert store.get("d") is None and store.versions("d") == []
    assert store.delete("d") is False
    assert store.delete("never") is False
    assert [s.name for s in store.search()] == ["kept"]
    # A name saved again after a delete starts over.
    snippet, created = save(store, "d", hash="3")
    assert (snippet.version, created) == (1, True)


def test_examples_round_trip_with_and_without_expected(store: Store) -> None:
    examples = [
        Example(name="with", inputs={"x": 1, "nested": {"a": [1, 2.5, None]}}, expected={"y": 2}),
        Example(inputs={"x": 2}),  # no expected: the run must only succeed
        Example.model_validate({"name": "null", "inputs": {}, "expected": None}),
        Example(name="falsy", expected=0),
        Example(name="unicode ☎", inputs={"s": "é\U0001f600"}, expected="\U0001f600"),
    ]
    saved, _ = save(store, "ex", hash="1", examples=examples)
    got = store.get("ex")
    assert got is not None
    for snippet in (saved, got):
        assert snippet.examples == examples
        assert [e.has_expected for e in snippet.examples] == [True, False, True, True, True]
        assert [e.stored() for e in snippet.examples] == [e.stored() for e in examples]
    assert got.examples[2].expected is None and got.examples[2].has_expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code", "x = '\x00'"),
        ("description", "lone \ud800 surrogate"),
        ("examples", [Example(inputs={"s": "\x00"})]),
        ("input_schema", {"maximum": float("nan")}),
        ("tags", ["\udcff"]),
    ],
)
def test_what_no_backend_can_store_is_refused(store: Store, field: str, value: Any) -> None:
    with pytest.raises(InvalidRequest, match=f"snippet's {field} contains a NUL character"):
        save(store, "bad", hash="1", **{field: value})
    assert store.get("bad") is None


def at_once(n: int, work: Callable[[int], object], timeout_s: float = 60) -> list[BaseException]:
    """Run work(0) ... work(n - 1) in n threads released together; what they raised."""
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return errors


def test_concurrent_saves_of_one_name_get_distinct_consecutive_versions(store: Store) -> None:
    n = 20
    results: list[tuple[int, bool]] = []

    def one(i: int) -> None:
        snippet, created = save(store, "race", code=f"return {i}", hash=f"h{i}")
        results.append((snippet.version, created))

    assert at_once(n, one) == []
    assert sorted(v for v, _ in results) == list(range(1, n + 1))
    assert all(created for _, created in results)
    stored = store.versions("race")
    assert [s.version for s in stored] == list(range(n, 0, -1))
    assert len({s.hash for s in stored}) == n  # every save is there, none twice


def test_concurrent_saves_of_the_same_content_make_one_version(store: Store) -> None:
    n = 10
    created: list[bool] = []
    assert at_once(n, lambda _: created.append(save(store, "same", hash="h")[1])) == []
    assert sorted(created) == [False] * (n - 1) + [True]
    assert [s.version for s in store.versions("same")] == [1]


# -- batches (an import) --------------------------------------------------------------------


def version(name: str, code: str = "def main():\n    return 1\n", **kw: Any) -> NewVersion:
    fields: dict[str, Any] = {
        "language": Language.PYTHON,
        "code": code,
        "description": "",
        "input_schema": {"type": "object", "properties": {}},
        "output_schema": None,
        "examples": [],
        "tags": [],
        "hash": f"h-{code}",
        "examples_passed": 0,
    }
    fields.update(kw)
    return NewVersion(name=name, **fields)


def contents(store: Store) -> list[tuple[str, int, str]]:
    """Every stored version: (name, version, hash)."""
    return [
        (s.name, s.version, s.hash)
        for summary in store.search()
        for s in store.versions(summary.name)
    ]


def test_save_many_stores_each_version_as_save_does(store: Store) -> None:
    kept, _ = save(store, "kept", hash="k1")
    save(store, "changed", hash="c1")
    saved = store.save_many(
        [
            version("fresh", hash="f1", examples=[Example(inputs={"x": 1}, expected=2)]),
            version("kept", hash="k1", code="ignored: same hash"),
            version("changed", hash="c2", description="two", examples_passed=1),
            version("twice", hash="t1"),
            version("twice", hash="t2"),
            version("twice", hash="t2"),
        ]
    )
    assert [(s.name, s.version, new) for s, new in saved] == [
        ("fresh", 1, True),
        ("kept", 1, False),
        ("changed", 2, True),
        ("twice", 1, True),
        ("twice", 2, True),
        ("twice", 2, False),
    ]
    assert saved[1][0] == kept
    assert [store.get(s.name, s.version) for s, _ in saved] == [s for s, _ in saved]
    changed = store.get("changed")
    assert changed is not None
    assert (changed.description, changed.examples_passed) == ("two", 1)
    assert store.save_many([]) == []


def test_a_batch_with_an_unstorable_version_stores_nothing(store: Store) -> None:
    save(store, "changed", hash="c1")
    before = contents(store)
    batch = [
        version("fresh", hash="f1"),
        version("changed", hash="c2"),
        version("bad", hash="b1", description="a NUL \x00 here"),
    ]
    with pytest.raises(InvalidRequest, match=r"^snippet 'bad': the snippet's description contains"):
        store.save_many(batch)
    assert contents(store) == before


_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_one BEFORE INSERT ON snippets WHEN NEW.name = 'refused' "
        "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.name = 'refused' THEN RAISE EXCEPTION 'refused by a trigger'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_one BEFORE INSERT ON snippets FOR EACH ROW "
        "EXECUTE FUNCTION refuse_one()",
    ],
}


def test_a_batch_the_database_refuses_midway_stores_nothing(store: Store, store_url: str) -> None:
    # The database itself refuses the third row, after two were written in the transaction.
    save(store, "changed", hash="c1")
    before = contents(store)
    backend = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    url = store_url.replace("postgresql://", "postgresql+psycopg://", 1)
    outside = sa.create_engine(url)
    try:
        with outside.begin() as conn:
            for statement in _REFUSE[backend]:
                conn.exec_driver_sql(statement)
        batch = [
            version("fresh", hash="f1"),
            version("changed", hash="c2"),
            version("refused", hash="r1"),
            version("last", hash="l1"),
        ]
        with pytest.raises(StoreUnavailable, match="refused by a trigger") as failed:
            store.save_many(batch)
        assert "saving 4 snippets" in str(failed.value)
        assert contents(store) == before
        assert store.get("fresh") is None and store.get("last") is None

        # Nothing was left behind: without the trigger the same batch stores every version,
        # numbered as if the refused attempt had never been.
        with outside.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse_one" + " ON snippets" * (backend != "sqlite"))
        saved = store.save_many(batch)
        assert [(s.name, s.version, new) for s, new in saved] == [
            ("fresh", 1, True),
            ("changed", 2, True),
            ("refused", 1, True),
            ("last", 1, True),
        ]
    finally:
        outside.dispose()


def test_concurrent_batches_and_saves_keep_versions_consistent(store: Store) -> None:
    # Batches naming the same snippets in opposite orders, and single saves, at once: each
    # batch is stored whole, no two get one version, and none waits on another forever.
    n = 12
    names = ["p", "q", "r"]

    def one(i: int) -> None:
        if i % 3 == 2:
            save(store, "q", code=f"return {i}", hash=f"h{i}")
            return
        order = names if i % 2 else names[::-1]
        saved = store.save_many([version(name, hash=f"h{i}") for name in order])
        assert all(new for _, new in saved)

    assert at_once(n, one, timeout_s=120) == []
    batches = {f"h{i}" for i in range(n) if i % 3 != 2}
    for name in names:
        stored = store.versions(name)
        expected = n if name == "q" else len(batches)
        assert [s.version for s in stored] == list(range(expected, 0, -1))
        assert len({s.hash for s in stored}) == expected
    # Each batch's versions were stored together: in the same order on every name.
    p_order = [s.hash for s in reversed(store.versions("p"))]
    r_order = [s.hash for s in reversed(store.versions("r"))]
    q_batches = [s.hash for s in reversed(store.versions("q")) if s.hash in batches]
    assert p_order == r_order == q_batches


# -- the history ----------------------------------------------------------------------------


def test_executions_newest_first_by_snippet_and_limit(store: Store) -> None:
    paris = datetime.timezone(datetime.timedelta(hours=1))
    records = [
        record("e1", T0, snippet="a", inputs={"x": 1}),
        record("e2", T0 + datetime.timedelta(seconds=2), snippet="b"),
        # The same instant given in another time zone sorts as the instant it is.
        record("e3", (T0 + datetime.timedelta(seconds=1)).astimezone(paris), snippet="a"),
        record("e4", T0 + datetime.timedelta(seconds=3)),
    ]
    store.add_executions(records[:2])
    store.add_executions(records[2:])
    store.add_executions([])
    listed = store.executions()
    assert [e.execution_id for e in listed] == ["e4", "e2", "e3", "e1"]
    assert all(e.started_at.utcoffset() == datetime.timedelta(0) for e in listed)
    assert listed[2].started_at == T0 + datetime.timedelta(seconds=1)
    assert [e.execution_id for e in store.executions(snippet="a")] == ["e3", "e1"]
    assert [e.execution_id for e in store.executions(limit=2)] == ["e4", "e2"]
    assert [e.execution_id for e in store.executions(snippet="a", limit=1)] == ["e3"]
    assert store.executions(snippet="none") == []
    first = listed[3]
    assert (first.snippet, first.version, first.language, first.surface) == (
        "a", 1, Language.PYTHON, "http",
    )  # fmt: skip
    assert (first.duration_ms, first.ok, first.error_type) == (12.5, True, None)


def test_execution_by_id_with_its_result_and_inputs(store: Store) -> None:
    failed = ExecutionRecord(
        execution_id="bad",
        snippet="s",
        version=4,
        language=Language.JAVASCRIPT,
        surface="mcp",
        started_at=T0,
        duration_ms=3.25,
        ok=False,
        error_type="runtime_error",
        result=ExecutionResult(
            ok=False,
            stdout="out\n",
            stderr="err\n",
            error=ErrorDetail(type=ErrorType.RUNTIME_ERROR, name="Error", message="boom", line=3),
            duration_ms=3.25,
            language=Language.JAVASCRIPT,
            execution_id="bad",
        ),
        inputs={"text": "☎ +1 555", "n": [1, 2, {"deep": None}]},
    )
    good = record("good", T0, result={"a": [1, "two", None, 3.5]}, stdout="hi\n")
    store.add_executions([failed, good])
    assert store.execution("bad") == failed
    assert store.execution("good") == good
    assert store.execution("missing") is None
    # An id already recorded is skipped, not an error.
    store.add_executions([record("good", T0 + datetime.timedelta(seconds=9), result=2)])
    again = store.execution("good")
    assert again is not None and again.result.result == {"a": [1, "two", None, 3.5]}


def test_history_keeps_only_the_newest_records(store_url: str) -> None:
    store = Store.open(store_url, history_limit=5)
    try:
        batch = [record(f"e{i:02}", T0 + datetime.timedelta(seconds=i)) for i in range(8)]
        store.add_executions(batch[:4])
        assert len(store.executions(limit=100)) == 4
        store.add_executions(batch[4:])
        kept = [e.execution_id for e in store.executions(limit=100)]
        assert kept == ["e07", "e06", "e05", "e04", "e03"]
        # A record older than all kept ones is pruned at once.
        store.add_executions([record("old", T0 - datetime.timedelta(days=1))])
        assert [e.execution_id for e in store.executions(limit=100)] == kept
        assert store.execution("old") is None and store.execution("e02") is None
    finally:
        store.close()


def test_history_limit_zero_keeps_nothing(store_url: str) -> None:
    store = Store.open(store_url, history_limit=0)
    try:
        store.add_executions([record("e", T0)])
        assert store.executions() == []
    finally:
        store.close()


def test_an_oversize_result_is_stored_without_its_value(store: Store) -> None:
    big = "x" * (RESULT_LIMIT + 1)
    out = "é" * OUTPUT_LIMIT  # 2 bytes each: cut at a character boundary
    huge = record("huge", T0, result=big, stdout=out, stderr="short", inputs={"big": big})
    store.add_executions([huge, record("small", T0)])
    got = store.execution("huge")
    assert got is not None
    assert got.result.result is None
    assert got.result.ok is True
    assert got.result.stdout == "é" * (OUTPUT_LIMIT // 2)
    assert got.result.stdout_truncated is True
    assert got.result.stderr_truncated is False  # "short" was kept whole
    assert got.result.stderr.startswith("short\n[coderunner history: the result was not kept (")
    assert f"{len(huge.result.model_dump_json().encode())} bytes of JSON" in got.result.stderr
    assert "the inputs were not kept" in got.result.stderr
    assert got.inputs is None
    assert (got.execution_id, got.ok, got.started_at) == ("huge", True, T0)
    small = store.execution("small")
    assert (
        small is not None and small.result.result == 1 and "coderunner" not in small.result.stderr
    )


def test_what_no_backend_can_store_is_replaced_in_a_record(store: Store) -> None:
    nasty = record(
        "nasty",
        T0,
        result={"k\x00": ["v\x00", "\ud800", float("nan"), float("-inf"), 1.5]},
        stdout="a\x00b\udcff",
        inputs={"n\x00": float("inf"), "s": "\ud83d"},
    )
    store.add_executions([nasty])
    got = store.execution("nasty")
    assert got is not None
    assert got.result.stdout == "a\ufffdb\ufffd"
    assert got.result.result == {"k\ufffd": ["v\ufffd", "\ufffd", None, None, 1.5]}
    assert got.inputs == {"n\ufffd": None, "s": "\ufffd"}


# -- URLs and failures ----------------------------------------------------------------------


def test_database_url_for(tmp_path: Path) -> None:
    data = tmp_path / "a" / "data"
    assert database_url_for("", str(data)) == f"sqlite:///{data}/coderunner.db"
    assert data.is_dir() and (data.stat().st_mode & 0o777) == 0o700
    # A data directory that cannot be made: the URL all the same, and Store.open says why.
    (tmp_path / "file").write_text("")
    blocked = tmp_path / "file" / "data"
    assert database_url_for("", str(blocked)) == f"sqlite:///{blocked}/coderunner.db"
    with pytest.raises(StoreUnavailable, match=f"is {blocked} an existing directory"):
        Store.open(database_url_for("", str(blocked)))
    assert database_url_for("postgresql://u:p@h:5/db", "x") == "postgresql+psycopg://u:p@h:5/db"
    assert database_url_for("postgresql+psycopg://u@h/db", "x") == "postgresql+psycopg://u@h/db"
    assert database_url_for("postgres://u@h/db?sslmode=require", "x") == (
        "postgresql+psycopg://u@h/db?sslmode=require"
    )
    assert database_url_for("sqlite:////tmp/x.db", "x") == "sqlite:////tmp/x.db"
    for bad in ("mysql://u:pw@h/db", "sqlite://", "sqlite:///:memory:", "/tmp/x.db", "x"):
        with pytest.raises(ValueError, match="sqlite:///") as caught:
            database_url_for(bad, "x")
        assert "pw" not in str(caught.value)


def test_the_url_shown_masks_the_password(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        assert PASSWORD not in store.url
        if store_url.startswith("postgresql"):
            assert store.url.startswith("postgresql://coderunner:***@127.0.0.1:")
        store.ping()
    finally:
        store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.get("x")


@pytest.mark.parametrize("where", ["under a file", "in /proc", "missing directory"])
def test_an_sqlite_file_that_cannot_be_created(tmp_path: Path, where: str) -> None:
    # As root a read-only directory is still writable: use places nobody can write to.
    (tmp_path / "file").write_text("")
    path = {
        "under a file": tmp_path / "file" / "store.db",
        "in /proc": Path("/proc/coderunner-store-test.db"),
        "missing directory": tmp_path / "no" / "such" / "store.db",
    }[where]
    with pytest.raises(StoreUnavailable) as caught:
        Store.open(f"sqlite:///{path}")
    message = str(caught.value)
    assert f"the library database sqlite:///{path} failed while migrating" in message
    assert "unable to open database file" in message
    assert f"is {path.parent} an existing directory this user can write to?" in message


def test_a_postgresql_port_where_nothing_listens() -> None:
    port = free_port()
    url = f"postgresql://coderunner:{PASSWORD}@127.0.0.1:{port}/coderunner"
    with pytest.raises(StoreUnavailable) as caught:
        Store.open(url)
    message = str(caught.value)
    assert message.startswith(
        f"the library database postgresql://coderunner:***@127.0.0.1:{port}/coderunner "
        "failed while migrating its schema to head: connection failed"
    ), message
    assert "Connection refused" in message
    assert PASSWORD not in message
    assert "[SQL" not in message and "sqlalche.me" not in message


def test_a_postgresql_database_that_does_not_exist(postgres: PostgresServer) -> None:
    with pytest.raises(StoreUnavailable, match='database "nowhere" does not exist'):
        Store.open(postgres.url("nowhere"))


def test_a_server_that_goes_away_and_comes_back(own_postgres: PostgresServer) -> None:
    store = Store.open(own_postgres.create_database("library"))
    try:
        save(store, "s", hash="1")
        store.add_executions([record("e1", T0)])
        own_postgres.stop()
        with pytest.raises(StoreUnavailable, match="failed while saving snippet 's'") as caught:
            save(store, "s", hash="2")
        assert PASSWORD not in str(caught.value)
        with pytest.raises(StoreUnavailable, match="failed while reading snippet 's'"):
            store.get("s")
        with pytest.raises(StoreUnavailable):
            store.ping()
        with pytest.raises(StoreUnavailable, match="recording 1 executions"):
            store.add_executions([record("e2", T0)])
        with pytest.raises(StoreUnavailable):
            store.executions()
        own_postgres.start()
        # The pooled connections died with the server: pre-ping replaces them.
        store.ping()
        assert [s.version for s in store.versions("s")] == [1]
        snippet, created = save(store, "s", hash="2")
        assert (snippet.version, created) == (2, True)
        store.add_executions([record("e2", T0 + datetime.timedelta(seconds=1))])
        assert [e.execution_id for e in store.executions()] == ["e2", "e1"]
    finally:
        store.close()


def test_a_locked_sqlite_database_fails_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from coderunner._store import store as store_module

    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "locked.db"
    store = Store.open(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreUnavailable, match="database is locked"):
            save(store, "s", hash="1")
        assert store.get("s") is None  # readers are not blocked (WAL)
        other.execute("ROLLBACK")
        assert save(store, "s", hash="1")[0].version == 1
    finally:
        other.close()
        store.close()


def test_json_documents_keep_their_key_order(store: Store) -> None:
    # A schema's property order is what tools and forms show; PostgreSQL's jsonb would
    # reorder it (the store uses json on PostgreSQL for that reason).
    schema = {
        "type": "object",
        "properties": {"zeta": {"type": "string"}, "alpha": {}, "mid": {"type": "number"}},
        "required": ["zeta"],
    }
    save(store, "ordered", input_schema=schema)
    stored = store.get("ordered")
    assert stored is not None
    assert list(stored.input_schema) == ["type", "properties", "required"]
    assert list(stored.input_schema["properties"]) == ["zeta", "alpha", "mid"]
