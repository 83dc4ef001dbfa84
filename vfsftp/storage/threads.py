"""Worker threads for blocking calls, awaited from the event loop.

``loop.run_in_executor`` over a ``ThreadPoolExecutor`` costs, per call, a
``concurrent.futures.Future`` (a Condition, its lock and waiters), a work
item, a semaphore probe, an asyncio future chained to the first by two more
callbacks, and the loop's wake-up. A RETR of a small file from a local folder
makes one such call, a large share of a short session's CPU.
``ThreadPool.run`` hands the thread the asyncio future itself: one queue
put, and one ``call_soon_threadsafe`` with the result, about half the CPU
of a round trip through the executor.

Each call runs in a copy of the caller's context, as ``asyncio.to_thread``
does, so log lines from a worker carry the session's id.

Lanes (bulkheads): a call made with ``lane=`` (the storage it touches) runs
in a thread only while fewer than ``lane_limit`` calls of its lane do; the
others wait in their lane's own queue, not in the pool's. A store that
slows down or hangs (an S3 endpoint under load, a dead NFS server) then
holds at most ``lane_limit`` threads, and calls to every other store still
find one: soak.py saw a local folder's SIZE take 0.4 s at the median, and
a LIST 2-3 s at the 99th percentile, queued behind S3 calls in one shared
pool of 32 threads.

Threads a burst started end once idle for ``idle_timeout`` seconds (10 by
default, as tokio's blocking pool): each kept its stack's touched pages
resident (the C stack of botocore's XML parsing, of a TLS handshake)
for the process's life, and the soak's server kept 300 of them after a
load that needed them for minutes. A thread that ends gives its stack
back (glibc's ``MADV_DONTNEED`` at thread exit); the next burst starts
new ones (tens of microseconds each).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable, Hashable
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

__all__ = ["ThreadPool"]

T = TypeVar("T")

_STOP = None  # queued once per thread by shutdown()

#: seconds an idle worker thread waits for a call before it ends
IDLE_TIMEOUT = 10.0


class _Lane:
    """The calls of one lane: how many are in the pool, and those waiting."""

    __slots__ = ("running", "waiting")

    def __init__(self) -> None:
        self.running = 0
        self.waiting: deque[tuple[Any, ...]] = deque()


class ThreadPool:
    """Up to ``max_workers`` threads, started as work arrives (an idle one
    is reused first), named ``<name>-N``; at most ``lane_limit`` of them
    (default: all) busy with the calls of one lane. A thread idle for
    ``idle_timeout`` seconds ends (None: never)."""

    def __init__(
        self,
        max_workers: int,
        name: str,
        lane_limit: int | None = None,
        idle_timeout: float | None = IDLE_TIMEOUT,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.lane_limit = max(1, lane_limit if lane_limit is not None else max_workers)
        self.name = name
        self.idle_timeout = idle_timeout
        self._queue: SimpleQueue[tuple[Any, ...] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._started = 0  # threads ever started (their names' numbers)
        # Both exact, under the lock: a call put finds a thread ready for
        # it or starts one, and a thread ends only while those that stay
        # ready cover the calls queued.
        self._idle = 0  # threads ready for a call (waiting on the queue, or about to)
        self._queued = 0  # calls in the queue, not yet taken by a thread
        self._lock = threading.Lock()
        self._closed = False
        #: lanes with calls in the pool or waiting (dropped when empty)
        self._lanes: dict[Hashable, _Lane] = {}

    def run(self, fn: Callable[..., T], *args: Any, lane: Hashable = None) -> asyncio.Future[T]:
        """``fn(*args)`` in a worker thread; the future is resolved on the
        calling loop. Cancelling it does not stop a call already running
        (nothing can), it only drops the result. ``lane``: the storage the
        call touches (None: no lane, only the pool's own limit)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._admit((contextvars.copy_context(), fn, args, fut, loop, lane))
        return fut

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """``fn(*args)`` in a worker thread, from any thread (fire and forget,
        or wait on the ``concurrent.futures.Future``)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put((contextvars.copy_context(), fn, args, fut, None, None))
        return fut

    def lane_load(self, lane: Hashable) -> tuple[int, int]:
        """(calls of ``lane`` in the pool, calls waiting in its queue)."""
        with self._lock:
            found = self._lanes.get(lane)
            return (found.running, len(found.waiting)) if found is not None else (0, 0)

    def _admit(self, job: tuple[Any, ...]) -> None:
        lane = job[5]
        with self._lock:
            if lane is not None:
                found = self._lanes.get(lane)
                if found is None:
                    found = self._lanes[lane] = _Lane()
                if found.running >= self.lane_limit:
                    if self._closed:
                        raise RuntimeError(f"{self.name}: cannot run new calls after shutdown")
                    found.waiting.append(job)
                    return
                self._put_locked(job)
                found.running += 1  # (after: a refused call takes no place)
            else:
                self._put_locked(job)

    def _put(self, job: tuple[Any, ...]) -> None:
        with self._lock:
            self._put_locked(job)

    def _put_locked(self, job: tuple[Any, ...]) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name}: cannot run new calls after shutdown")
        self._queue.put(job)
        self._queued += 1
        if self._idle < self._queued and len(self._threads) < self.max_workers:
            thread = threading.Thread(
                target=self._work, name=f"{self.name}-{self._started}", daemon=True
            )
            self._started += 1
            self._idle += 1  # (ready from its start)
            self._threads.append(thread)
            thread.start()

    def _release_locked(self, lane: Hashable) -> None:
        """A call of ``lane`` ended: the next one waiting, if any, takes its
        place in the pool."""
        found = self._lanes[lane]
        if found.waiting and not self._closed:
            self._put_locked(found.waiting.popleft())
            return
        found.running -= 1
        if not found.running and not found.waiting:
            del self._lanes[lane]

    def _work(self) -> None:
        queue, timeout = self._queue, self.idle_timeout
        while True:
            try:
                job = queue.get(timeout=timeout)
            except Empty:
                with self._lock:
                    if self._idle - 1 < self._queued:
                        continue  # a call came meanwhile: the others cannot take it all
                    self._idle -= 1
                    self._threads.remove(threading.current_thread())
                return
            if job is _STOP:
                return
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            context, fn, args, fut, loop, lane = job
            del job
            result: Any = None
            error: BaseException | None = None
            if loop is not None or fut.set_running_or_notify_cancel():
                try:
                    result = context.run(fn, *args)
                except BaseException as exc:
                    error = exc
            # Idle, and its lane's place given up, before the caller hears of
            # it: the call it makes next must find this thread and room.
            with self._lock:
                self._idle += 1
                if lane is not None:
                    self._release_locked(lane)
            if loop is None:  # submit(): a concurrent.futures.Future
                if error is not None:
                    fut.set_exception(error)
                elif not fut.cancelled():
                    fut.set_result(result)
            else:
                _deliver(loop, fut, result, error)
            del context, fn, args, fut, loop, result, error, lane

    def shutdown(self, wait: bool = True) -> None:
        """No new calls; the queued ones still run. With ``wait``, return
        when every thread has ended."""
        with self._lock:
            if self._closed:
                threads: list[threading.Thread] = []
            else:
                self._closed = True
                threads = list(self._threads)
                # Calls waiting in their lanes run too, before the threads stop.
                for lane in self._lanes.values():
                    while lane.waiting:
                        self._queue.put(lane.waiting.popleft())
                        self._queued += 1
                        lane.running += 1
                for _ in threads:
                    self._queue.put(_STOP)
        if wait:
            for thread in threads:
                thread.join()


def _deliver(
    loop: asyncio.AbstractEventLoop,
    fut: asyncio.Future[Any],
    result: Any,
    exc: BaseException | None,
) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
        loop.call_soon_threadsafe(_settle, fut, result, exc)


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():  # cancelled meanwhile
        return
    if isinstance(exc, StopIteration):  # (a Future refuses to hold one)
        exc = RuntimeError(f"StopIteration raised in a worker thread: {exc!r}")
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
