"""vfsftp.session.eager.start: a coroutine runs at once, a Task only carries on one
that has to wait, from where it waits."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from vfsftp.session import eager

pytestmark = pytest.mark.timeout(10)

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outside")


def run(coro_fn):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_fn())


def test_a_coroutine_that_never_waits_is_done_without_a_task() -> None:
    steps: list[str] = []

    async def work() -> None:
        steps.append("ran")

    async def main() -> None:
        tasks_before = len(asyncio.all_tasks())
        assert eager.start(work()) is None
        assert steps == ["ran"]  # before start() returned
        assert len(asyncio.all_tasks()) == tasks_before

    run(main)


@pytest.mark.parametrize("wait", ["future", "sleep0", "sleep"])
def test_a_coroutine_that_waits_goes_on_in_a_task_from_where_it_waited(wait: str) -> None:
    steps: list[str] = []

    async def work(fut: asyncio.Future[int]) -> None:
        steps.append("first")
        if wait == "future":
            steps.append(f"got {await fut}")
        elif wait == "sleep0":
            await asyncio.sleep(0)
            steps.append("got 7")
        else:
            await asyncio.sleep(0.001)
            steps.append("got 7")

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        task = eager.start(work(fut))
        assert task is not None
        assert steps == ["first"]  # the first step ran in start()
        fut.set_result(7)
        await task
        assert steps == ["first", "got 7"]

    run(main)


def test_both_steps_run_in_the_given_context() -> None:
    seen: list[str] = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "session")

    async def work(fut: asyncio.Future[None]) -> None:
        seen.append(var.get())
        await fut
        seen.append(var.get())
        var.set("changed inside")

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        task = eager.start(work(fut), ctx)
        assert task is not None
        fut.set_result(None)
        await task
        assert seen == ["session", "session"]
        assert var.get() == "outside"  # the caller's context is untouched
        assert ctx[var] == "changed inside"

    run(main)


def test_an_error_in_the_first_step_reaches_the_caller() -> None:
    async def work() -> None:
        raise ValueError("boom")

    async def main() -> None:
        with pytest.raises(ValueError, match="boom"):
            eager.start(work())

    run(main)


def test_a_runtime_error_of_the_coroutine_is_not_taken_for_a_busy_context() -> None:
    async def work() -> None:
        raise RuntimeError("mine")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="mine"):
            eager.start(work(), contextvars.copy_context())

    run(main)


def test_an_error_after_waiting_is_the_tasks() -> None:
    async def work() -> None:
        await asyncio.sleep(0)
        raise ValueError("later")

    async def main() -> None:
        task = eager.start(work())
        assert task is not None
        with pytest.raises(ValueError, match="later"):
            await task

    run(main)


def test_cancelled_before_the_task_ran_the_coroutine_hears_it_where_it_waits() -> None:
    steps: list[str] = []

    async def work(fut: asyncio.Future[None]) -> None:
        try:
            await fut
        except asyncio.CancelledError:
            steps.append("cancelled at the await")
            raise
        finally:
            steps.append("finally")

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        task = eager.start(work(fut))
        assert task is not None
        task.cancel()  # before its first step
        with pytest.raises(asyncio.CancelledError):
            await task
        assert steps == ["cancelled at the await", "finally"]

    run(main)


def test_from_inside_the_same_context_it_falls_back_to_a_plain_task() -> None:
    steps: list[str] = []
    ctx = contextvars.copy_context()

    async def inner() -> None:
        steps.append("inner")

    def inside() -> asyncio.Task[None] | None:
        # Context.run refuses to enter ctx again: nothing has run yet.
        task = eager.start(inner(), ctx)
        steps.append("after start")
        return task

    async def main() -> None:
        task = ctx.run(inside)
        assert task is not None
        assert steps == ["after start"]
        await task
        assert steps == ["after start", "inner"]

    run(main)


def test_the_task_repr_names_the_coroutine() -> None:
    async def some_work(fut: asyncio.Future[None]) -> None:
        await fut

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        task = eager.start(some_work(fut))
        assert task is not None
        assert "some_work" in repr(task)
        fut.set_result(None)
        await task

    run(main)
