"""Pools of pre-started workers: a request never waits for a process start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ._errors import SandboxUnavailable
from ._worker import JailedProcess

log = logging.getLogger("coderunner.pool")


class WorkerPool:
    """Keeps ``size`` ready single-use workers of one runtime and refills in the background."""

    def __init__(self, name: str, spawn: Callable[[], Awaitable[JailedProcess]], size: int) -> None:
        self.name = name
        self.size = max(1, size)
        self._spawn = spawn
        self._ready: asyncio.Queue[JailedProcess | BaseException] = asyncio.Queue()
        self._starting = 0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.spawned = 0
        self.spawn_failures = 0
        self.replaced = 0  # workers found dead while waiting and replaced

    @property
    def ready_count(self) -> int:
        return sum(1 for w in self._ready._queue if isinstance(w, JailedProcess))  # type: ignore[attr-defined]

    @property
    def starting_count(self) -> int:
        return self._starting

    def fill(self) -> None:
        """Start workers until ready + starting reaches the pool size."""
        while not self._closed and self._ready.qsize() + self._starting < self.size:
            self._starting += 1
            task = asyncio.ensure_future(self._start_one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _start_one(self) -> None:
        worker: JailedProcess | None = None
        try:
            worker = await self._spawn()
            await worker.wait_ready()
        except asyncio.CancelledError:
            if worker is not None:
                await asyncio.shield(worker.kill())
            raise
        except BaseException as exc:  # handed to the next acquire(): fail closed
            self.spawn_failures += 1
            log.error("pool %s: could not start a worker: %s", self.name, exc)
            self._ready.put_nowait(exc)
            await asyncio.sleep(0.5)  # do not spin on a broken host
        else:
            self.spawned += 1
            self._ready.put_nowait(worker)
        finally:
            self._starting -= 1

    async def acquire(self) -> JailedProcess:
        """A ready worker, waiting for one being started if none is ready yet."""
        while True:
            self.fill()
            item = await self._ready.get()
            self.fill()
            if isinstance(item, BaseException):
                # One failed start may be transient (a crashed fork server is being
                # replaced): start one directly; if that fails too, fail closed.
                try:
                    worker = await self._spawn()
                    await worker.wait_ready()
                except Exception as exc:
                    raise SandboxUnavailable(str(exc)) from item
                self.spawned += 1
                return worker
            if item.alive:
                return item
            self.replaced += 1
            log.warning("pool %s: a worker died while idle; replaced", self.name)
            await item.kill()

    async def close(self) -> None:
        """Stop refilling and kill every idle worker."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        while not self._ready.empty():
            item = self._ready.get_nowait()
            if isinstance(item, JailedProcess):
                await item.kill()
