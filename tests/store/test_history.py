"""HistoryWriter: batches, flush, a failing store, a full queue, close."""

from __future__ import annotations

import datetime
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coderunner._models import ExecutionRecord, ExecutionResult, Language
from coderunner._store import HistoryWriter, Store
from coderunner._store import store as store_module

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def record(i: int) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=f"e{i:05}",
        language=Language.PYTHON,
        surface="api",
        started_at=T0 + datetime.timedelta(milliseconds=i),
        duration_ms=1.0,
        ok=True,
        result=ExecutionResult(ok=True, result=i, language=Language.PYTHON),
    )


class RecordingStore(Store):
    """A real store that also remembers the size of each batch it was given."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[int] = []
        self.fail_next: BaseException | None = None

    def add_executions(self, records: list[ExecutionRecord]) -> None:
        self.batches.append(len(records))
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        super().add_executions(records)


@pytest.fixture
def store(store_url: str) -> Iterator[RecordingStore]:
    store = RecordingStore(store_url)
    store.migrate()
    yield store
    store.close()


def ids(store: Store) -> list[str]:
    return sorted(e.execution_id for e in store.executions(limit=100_000))


def test_batches_and_flush(store: RecordingStore) -> None:
    writer = HistoryWriter(store, batch_size=3, interval_s=60)
    try:
        for i in range(7):
            writer.submit(record(i))
        assert writer.flush() is True
        assert (writer.written, writer.dropped, writer.pending) == (7, 0, 0)
        assert sum(store.batches) == 7 and max(store.batches) == 3 and len(store.batches) >= 3
        assert ids(store) == [f"e{i:05}" for i in range(7)]
        assert writer.flush() is True  # nothing left: at once
    finally:
        writer.close()


def test_a_record_is_written_within_the_interval_without_a_flush(store: RecordingStore) -> None:
    writer = HistoryWriter(store, interval_s=0.05)
    try:
        writer.submit(record(1))
        deadline = time.monotonic() + 5
        while writer.written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.written == 1
        assert store.batches == [1]
    finally:
        writer.close()


def test_many_records_from_many_threads(store: RecordingStore) -> None:
    writer = HistoryWriter(store, batch_size=200, interval_s=0.01)
    try:

        def submitter(base: int) -> None:
            for i in range(250):
                writer.submit(record(base + i))

        threads = [threading.Thread(target=submitter, args=(n * 1000,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert writer.flush(timeout_s=30) is True
        assert (writer.written, writer.dropped) == (2000, 0)
        assert max(store.batches) <= 200
        assert len(ids(store)) == 2000
    finally:
        writer.close()


def test_a_full_queue_drops_and_counts(store: RecordingStore) -> None:
    writer = HistoryWriter(store, batch_size=100, interval_s=60, queue_size=5)
    try:
        for i in range(8):
            writer.submit(record(i))
        assert (writer.pending, writer.dropped) == (5, 3)
        assert writer.flush() is True
        assert (writer.written, writer.dropped) == (5, 3)
        assert ids(store) == [f"e{i:05}" for i in range(5)]
    finally:
        writer.close()


def test_a_store_error_drops_the_batch_and_the_writer_goes_on(
    store: RecordingStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = HistoryWriter(store, batch_size=10, interval_s=60)
    try:
        store.fail_next = RuntimeError("a bug in the store")
        with caplog.at_level(logging.WARNING, logger="coderunner.store"):
            for i in range(4):
                writer.submit(record(i))
            assert writer.flush() is True  # settled: dropped
        assert (writer.written, writer.dropped) == (0, 4)
        assert any("4 execution records dropped" in r.getMessage() for r in caplog.records)
        writer.submit(record(10))
        assert writer.flush() is True
        assert (writer.written, writer.dropped) == (1, 4)
        assert ids(store) == ["e00010"]
    finally:
        writer.close()


def test_a_locked_database_loses_a_batch_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT_S", 0.3)
    path = tmp_path / "history.db"
    store = Store.open(f"sqlite:///{path}")
    writer = HistoryWriter(store, batch_size=1000, interval_s=0.01)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock: the store fails
        with caplog.at_level(logging.WARNING, logger="coderunner.store"):
            writer.submit(record(1))
            time.sleep(0.05)  # the writer is now waiting for the lock
            started = time.monotonic()
            for i in range(2, 1002):
                writer.submit(record(i))  # never blocks while the store is stuck
            # Blocking on the store would cost a busy timeout (0.3 s) per record: 300 s.
            assert time.monotonic() - started < 30
            assert writer.flush(timeout_s=30) is True
        assert writer.written == 0 and writer.dropped == 1001
        assert any("database is locked" in r.getMessage() for r in caplog.records)
        other.execute("ROLLBACK")
        writer.submit(record(2000))
        assert writer.flush() is True
        assert (writer.written, writer.dropped) == (1, 1001)
        assert ids(store) == ["e02000"]
    finally:
        other.close()
        writer.close()
        store.close()


def test_close_writes_what_is_left_then_drops(store: RecordingStore) -> None:
    writer = HistoryWriter(store, batch_size=100, interval_s=60)
    for i in range(3):
        writer.submit(record(i))
    writer.close()
    assert writer.written == 3
    writer.submit(record(99))  # after close: counted, not written, no error
    assert writer.dropped == 1
    assert ids(store) == [f"e{i:05}" for i in range(3)]
    assert not any(t.name == "coderunner-history" and t.is_alive() for t in threading.enumerate())
