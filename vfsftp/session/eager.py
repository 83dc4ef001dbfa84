"""Run a coroutine at once; make a Task only if it has to wait.

Most FTP commands never wait (PWD, TYPE, EPSV, a login with a plain
password, any metadata call on an in-memory mount), yet a Task per command
costs a loop iteration before the reply goes out, a ``call_soon`` for its
first step and one per done callback: a third of a short session's CPU in
the profile of the sessions benchmark. ``start`` runs the coroutine's first
step in the caller; only when it suspends is the rest handed to a Task,
which goes on from that same suspension point.

Python 3.12's ``asyncio.eager_task_factory`` does the same, but for a whole
loop (an embedder's loop is not ours to change), still allocates a Task per
call, and is not there on 3.10/3.11.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import inspect
import sys
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

__all__ = ["start"]

T = TypeVar("T")


class _Started(collections.abc.Coroutine):  # type: ignore[type-arg]
    """A coroutine already run up to its first suspension, on ``first`` (the
    future it awaits, or None for a bare yield). The Task's first step gets
    that same value, as if it had run the step itself; later steps go to the
    coroutine."""

    __slots__ = ("_coro", "_first", "_fresh")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first
        self._fresh = True

    def send(self, value: Any) -> Any:
        if self._fresh:
            self._fresh = False
            first, self._first = self._first, None
            return first
        return self._coro.send(value)

    def throw(self, exc: Any, *rest: Any) -> Any:
        # Cancelled before the Task's first step: the coroutine hears of it
        # where it actually waits (its finally blocks run there).
        self._fresh = False
        self._first = None
        return self._coro.throw(exc, *rest)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("an eagerly started coroutine belongs to its Task")

    # For the Task's repr (asyncio.coroutines._format_coroutine).
    @property
    def __name__(self) -> str:
        return str(getattr(self._coro, "__qualname__", "coroutine"))

    @property
    def cr_code(self) -> Any:
        return getattr(self._coro, "cr_code", None)

    @property
    def cr_frame(self) -> Any:
        return getattr(self._coro, "cr_frame", None)

    @property
    def cr_running(self) -> bool:
        return bool(getattr(self._coro, "cr_running", False))


class _InContext(_Started):
    """Python 3.10: a Task runs its steps in a copy of the context current
    when it was made (``create_task`` has no ``context=`` before 3.11).
    This runs every step of ``coro`` in ``context`` itself instead."""

    __slots__ = ("_context",)

    def __init__(self, coro: Coroutine[Any, Any, Any], context: contextvars.Context) -> None:
        super().__init__(coro, None)
        self._fresh = False
        self._context = context

    def send(self, value: Any) -> Any:
        return self._context.run(self._coro.send, value)

    def throw(self, exc: Any, *rest: Any) -> Any:
        return self._context.run(self._coro.throw, exc, *rest)

    @property
    def __name__(self) -> str:
        return str(
            getattr(self._coro, "__qualname__", None)
            or getattr(self._coro, "__name__", "coroutine")
        )


def start(
    coro: Coroutine[Any, Any, None], context: contextvars.Context | None = None
) -> asyncio.Task[None] | None:
    """Run ``coro`` now, in ``context`` (the current one when None), up to
    its first suspension. None when it finished without waiting (an
    exception it raised propagates to the caller); otherwise the Task that
    goes on with it, in the same context.

    Code after ``start()`` runs after that first step, not before it as
    after ``create_task()``: callers must not rely on the other order."""
    try:
        first = coro.send(None) if context is None else context.run(coro.send, None)
    except StopIteration:
        return None
    except RuntimeError:
        # Context.run refuses a context that is already entered (a callback
        # or a Task step of the same session), before calling anything: the
        # coroutine has not started then, and goes the plain way.
        if inspect.getcoroutinestate(coro) != inspect.CORO_CREATED:
            raise  # the coroutine's own RuntimeError
        return _create_task(coro, context)
    return _create_task(_Started(coro, first), context)


def _create_task(
    coro: Coroutine[Any, Any, None], context: contextvars.Context | None
) -> asyncio.Task[None]:
    loop = asyncio.get_running_loop()
    if context is None:
        return loop.create_task(coro)
    if sys.version_info >= (3, 11):
        return loop.create_task(coro, context=context)
    return loop.create_task(_InContext(coro, context))  # pragma: no cover - 3.10
