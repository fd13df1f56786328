"""Pools of pre-started workers: a request never waits for a process start."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ._errors import SandboxUnavailable
from ._sandbox.process import JailedProcess

log = logging.getLogger("coderunner.pool")

Spawn = Callable[[], Awaitable[JailedProcess]]


async def start_worker(spawn: Spawn) -> JailedProcess:
    """The one way a worker is started: spawn it and wait until it is ready (or gone)."""
    worker = await spawn()
    try:
        await worker.wait_ready()
    except BaseException:
        await asyncio.shield(worker.kill())
        raise
    return worker


class WorkerPool:
    """Keeps ``size`` ready single-use workers of one runtime and refills in the background.

    `acquire` takes a ready worker, or waits for the next one to finish starting.  A
    start that fails is handed to a caller waiting at that moment (never kept for a later
    one); the caller then waits for one more start, and fails closed if that fails too.
    """

    def __init__(self, name: str, spawn: Spawn, size: int) -> None:
        self.name = name
        self.size = max(1, size)
        self._spawn = spawn
        self._ready: collections.deque[JailedProcess] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[JailedProcess]] = collections.deque()
        self._starting = 0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.spawned = 0
        self.spawn_failures = 0
        self.replaced = 0  # workers found dead while waiting and replaced

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    @property
    def starting_count(self) -> int:
        return self._starting

    def ready_workers(self) -> list[JailedProcess]:
        """The workers ready now (a copy)."""
        return list(self._ready)

    def fill(self) -> None:
        """Start workers until ready + starting covers the pool size and the waiters."""
        want = self.size + len(self._waiters)
        while not self._closed and len(self._ready) + self._starting < want:
            self._starting += 1
            task = asyncio.ensure_future(self._start_one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _start_one(self) -> None:
        try:
            worker = await start_worker(self._spawn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.spawn_failures += 1
            log.error("pool %s: could not start a worker: %s", self.name, exc)
            waiter = self._next_waiter()
            if waiter is not None:
                waiter.set_exception(SandboxUnavailable(str(exc)))
            await asyncio.sleep(0.5)  # do not spin on a broken host
        else:
            self.spawned += 1
            log.debug("pool %s: worker ready (pid %s)", self.name, worker.pid)
            waiter = self._next_waiter()
            if waiter is not None:
                waiter.set_result(worker)
            else:
                self._ready.append(worker)
        finally:
            self._starting -= 1
            # A caller may have started waiting while this start failed and backed off
            # (its fill() counted this start): it needs one of its own.
            if self._waiters:
                self.fill()

    def _next_waiter(self) -> asyncio.Future[JailedProcess] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # (a cancelled caller leaves a done future behind)
                return waiter
        return None

    async def _take(self) -> JailedProcess:
        if self._ready:
            worker = self._ready.popleft()
            self.fill()
            return worker
        waiter: asyncio.Future[JailedProcess] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.fill()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._ready.appendleft(waiter.result())  # handed over as we were cancelled
            raise

    async def acquire(self) -> JailedProcess:
        """A ready, live worker; SandboxUnavailable when two starts in a row failed."""
        failures = 0
        while True:
            if self._closed:
                raise SandboxUnavailable(f"the {self.name} pool is closed")
            try:
                worker = await self._take()
            except SandboxUnavailable:
                # One failed start may be transient (a crashed fork server is being
                # replaced): wait for the next; if that fails too, fail closed.
                failures += 1
                if failures >= 2:
                    raise
                continue
            if worker.alive:
                return worker
            self.replaced += 1
            log.warning("pool %s: worker pid %s died while idle; replaced", self.name, worker.pid)
            await worker.kill()

    async def close(self) -> None:
        """Stop refilling, fail the waiters, and kill every idle worker."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        while (waiter := self._next_waiter()) is not None:
            waiter.set_exception(SandboxUnavailable(f"the {self.name} pool is closed"))
        while self._ready:
            await self._ready.popleft().kill()
