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
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

__all__ = ["ThreadPool"]

T = TypeVar("T")

_STOP = None  # queued once per thread by shutdown()


class ThreadPool:
    """Up to ``max_workers`` threads, started as work arrives (an idle one
    is reused first), named ``<name>-N``."""

    def __init__(self, max_workers: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.name = name
        self._queue: SimpleQueue[tuple[Any, ...] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting on the queue (not yet handed a job)
        self._lock = threading.Lock()
        self._closed = False

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in a worker thread; the future is resolved on the
        calling loop. Cancelling it does not stop a call already running
        (nothing can), it only drops the result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._put((contextvars.copy_context(), fn, args, fut, loop))
        return fut

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """``fn(*args)`` in a worker thread, from any thread (fire and forget,
        or wait on the ``concurrent.futures.Future``)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put((contextvars.copy_context(), fn, args, fut, None))
        return fut

    def _put(self, job: tuple[Any, ...]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: cannot run new calls after shutdown")
            if self._idle:
                self._idle -= 1  # that thread takes this job
                start = False
            else:
                start = len(self._threads) < self.max_workers
            self._queue.put(job)
            if start:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _work(self) -> None:
        queue = self._queue
        while True:
            job = queue.get()
            if job is _STOP:
                return
            context, fn, args, fut, loop = job
            del job
            result: Any = None
            error: BaseException | None = None
            if loop is not None or fut.set_running_or_notify_cancel():
                try:
                    result = context.run(fn, *args)
                except BaseException as exc:
                    error = exc
            # Idle before the caller hears of it: the call it makes next
            # must find this thread, not start another.
            with self._lock:
                self._idle += 1
            if loop is None:  # submit(): a concurrent.futures.Future
                if error is not None:
                    fut.set_exception(error)
                elif not fut.cancelled():
                    fut.set_result(result)
            else:
                _deliver(loop, fut, result, error)
            del context, fn, args, fut, loop, result, error

    def shutdown(self, wait: bool = True) -> None:
        """No new calls; the queued ones still run. With ``wait``, return
        when every thread has ended."""
        with self._lock:
            if self._closed:
                threads: list[threading.Thread] = []
            else:
                self._closed = True
                threads = list(self._threads)
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
