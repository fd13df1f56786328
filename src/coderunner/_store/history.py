"""Writes execution records to the store in the background, in batches.

Recording an execution must never slow it down or fail it: `submit` only appends to a
bounded queue (a full queue drops the record and counts it), and a daemon thread writes
what has gathered every `interval_s` seconds or every `batch_size` records.  A store that
fails loses that batch (logged, counted) and the thread carries on.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from .._errors import StoreUnavailable
from .._models import ExecutionRecord
from .store import Store

log = logging.getLogger("coderunner.store")

QUEUE_SIZE = 10_000
LOG_EVERY_S = 30.0  # while the store keeps failing, one warning per this many seconds


class HistoryWriter:
    """Background batch writer of execution records into a `Store`.

    Args:
        store: where the records go (`Store.add_executions`).
        batch_size: the most records written in one transaction.
        interval_s: how long a record may wait for others to share its batch.
        queue_size: records waiting at most; more are dropped (and counted).
    """

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 200,
        interval_s: float = 0.25,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.store = store
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.queue_size = queue_size
        self._pending: collections.deque[ExecutionRecord] = collections.deque()
        self._cond = threading.Condition()
        self._oldest = 0.0  # when the oldest pending record arrived (monotonic)
        self._accepted = 0  # records queued, ever
        self._settled = 0  # of those, written or dropped by a failing store
        self._written = 0
        self._dropped = 0
        self._flushing = False
        self._closing = False
        self._failing_since: float | None = None
        self._last_warning = -LOG_EVERY_S
        self._thread = threading.Thread(target=self._run, name="coderunner-history", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        """Records written to the store so far."""
        return self._written

    @property
    def dropped(self) -> int:
        """Records lost so far: the queue was full, the store failed, or after close()."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Records queued and not written yet."""
        return len(self._pending)

    def submit(self, record: ExecutionRecord) -> None:
        """Queue a record for writing; never blocks, never raises."""
        try:
            with self._cond:
                if self._closing or len(self._pending) >= self.queue_size:
                    self._dropped += 1
                    return
                if not self._pending:
                    self._oldest = time.monotonic()
                    self._cond.notify_all()  # starts the interval
                self._pending.append(record)
                self._accepted += 1
                if len(self._pending) >= self.batch_size:
                    self._cond.notify_all()
        except Exception:  # pragma: no cover - recording must never fail an execution
            log.exception("history: could not queue an execution record")

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Write everything submitted so far now; False if that took over `timeout_s`."""
        with self._cond:
            target = self._accepted
            if self._settled >= target:
                return True
            self._flushing = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._settled >= target, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush, then stop the thread; later submissions are dropped (and counted)."""
        self.flush(timeout_s)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    # -- the writing thread ---------------------------------------------------------------

    def _due(self) -> bool:
        if not self._pending:
            return False
        return (
            self._flushing
            or self._closing
            or len(self._pending) >= self.batch_size
            or time.monotonic() - self._oldest >= self.interval_s
        )

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._closing and not self._pending:
                        return
                    timeout = None
                    if self._pending:
                        timeout = max(0.0, self._oldest + self.interval_s - time.monotonic())
                    self._cond.wait(timeout)
                batch = [
                    self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))
                ]
                # What is left has waited already: it goes in the next batch, at once.
                if not self._pending:
                    self._flushing = False
            self._write(batch)

    def _write(self, batch: list[ExecutionRecord]) -> None:
        try:
            self.store.add_executions(batch)
        except Exception as exc:  # StoreUnavailable, or a bug: never kill the thread
            self._warn(len(batch), exc)  # before flush() can return
            with self._cond:
                self._dropped += len(batch)
                self._settled += len(batch)
                self._cond.notify_all()
            return
        if self._failing_since is not None:
            log.warning(
                "history: the store works again after %.0f s; %d records dropped in all",
                time.monotonic() - self._failing_since,
                self._dropped,
            )
            self._failing_since = None
        with self._cond:
            self._written += len(batch)
            self._settled += len(batch)
            self._cond.notify_all()

    def _warn(self, lost: int, exc: Exception) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._last_warning >= LOG_EVERY_S:
            self._last_warning = now
            log.warning(
                "history: %d execution records dropped (%d in all): %s",
                lost,
                self._dropped + lost,
                exc,
                exc_info=not isinstance(exc, StoreUnavailable),
            )
