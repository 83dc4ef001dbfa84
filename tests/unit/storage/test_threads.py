"""vfsftp.storage.threads.ThreadPool: blocking calls in worker threads, awaited on
the loop with one queue put and one call_soon_threadsafe."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from vfsftp.storage.threads import ThreadPool

pytestmark = pytest.mark.timeout(10)

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_run_returns_the_result_from_another_thread_in_the_callers_context() -> None:
    pool = ThreadPool(2, "t")

    def work(x: int) -> tuple[int, str, str]:
        return x * 2, threading.current_thread().name, var.get()

    async def main() -> None:
        var.set("session-1")
        result, thread, seen = await pool.run(work, 21)
        assert result == 42
        assert thread.startswith("t-") and thread != threading.current_thread().name
        assert seen == "session-1"

    asyncio.run(main())
    pool.shutdown()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [(ValueError("x"), ValueError), (OSError(5, "EIO"), OSError), (StopIteration(), RuntimeError)],
)
def test_run_raises_what_the_call_raised(raised: BaseException, expected: type) -> None:
    pool = ThreadPool(1, "t")

    def work() -> None:
        raise raised

    async def main() -> None:
        with pytest.raises(expected):
            await pool.run(work)

    asyncio.run(main())
    pool.shutdown()


def test_an_idle_thread_is_reused_and_at_most_max_workers_run() -> None:
    pool = ThreadPool(3, "t")
    gate = threading.Event()
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.wait(5)
        with lock:
            running -= 1
        return threading.current_thread().name

    async def main() -> None:
        for _ in range(20):  # one at a time: the same thread every time
            gate.set()
            await pool.run(work)
        assert len(pool._threads) == 1
        gate.clear()
        futures = [pool.run(work) for _ in range(6)]
        await asyncio.sleep(0.05)
        gate.set()
        names = await asyncio.gather(*futures)
        assert peak == 3 and len(set(names)) <= 3 and len(pool._threads) == 3

    asyncio.run(main())
    pool.shutdown()


def test_a_cancelled_wait_drops_the_result() -> None:
    pool = ThreadPool(1, "t")
    gate = threading.Event()
    done = threading.Event()

    def work() -> int:
        gate.wait(5)
        done.set()
        return 1

    async def main() -> None:
        fut = pool.run(work)
        fut.cancel()
        gate.set()
        await asyncio.to_thread(done.wait, 5)
        await asyncio.sleep(0.01)  # the result arrives and is dropped quietly
        assert fut.cancelled()

    asyncio.run(main())
    pool.shutdown()


def test_submit_from_any_thread_and_shutdown_runs_what_is_queued() -> None:
    pool = ThreadPool(1, "t")
    gate = threading.Event()
    order: list[int] = []

    def work(i: int) -> int:
        gate.wait(5)
        order.append(i)
        return i

    futures = [pool.submit(work, i) for i in range(3)]
    gate.set()
    pool.shutdown(wait=True)
    assert [f.result(0) for f in futures] == [0, 1, 2] and order == [0, 1, 2]
    assert not any(t.is_alive() for t in pool._threads)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(work, 9)
    pool.shutdown()  # twice is harmless


def test_a_lane_holds_at_most_lane_limit_threads_and_others_still_run() -> None:
    """A store that hangs (its calls never return until the gate opens)
    fills its lane; a call of another lane, and a call without one, still
    get a thread at once; the hung lane's waiting calls run, in order, as
    its calls end."""
    pool = ThreadPool(4, "t", lane_limit=2)
    gate = threading.Event()

    def hung(i: int) -> int:
        assert gate.wait(5)
        return i

    async def main() -> None:
        slow = [pool.run(hung, i, lane="s3") for i in range(5)]
        await asyncio.sleep(0)
        assert pool.lane_load("s3") == (2, 3)
        # Another store's call, and one outside any lane, are not queued
        # behind the hung store's.
        assert await asyncio.wait_for(pool.run(lambda: "local", lane="local"), 2) == "local"
        assert await asyncio.wait_for(pool.run(lambda: "none"), 2) == "none"
        assert pool.lane_load("local") == (0, 0)  # (an empty lane is dropped)
        gate.set()
        assert await asyncio.gather(*slow) == [0, 1, 2, 3, 4]
        assert pool.lane_load("s3") == (0, 0)

    asyncio.run(main())
    pool.shutdown()
    assert len(pool._threads) <= 4


def test_a_lanes_waiting_calls_run_in_the_order_they_came() -> None:
    pool = ThreadPool(4, "t", lane_limit=1)
    order: list[int] = []

    async def main() -> None:
        await asyncio.gather(*(pool.run(order.append, i, lane="x") for i in range(6)))

    asyncio.run(main())
    pool.shutdown()
    assert order == [0, 1, 2, 3, 4, 5]


def test_without_lanes_a_hung_store_would_starve_the_pool() -> None:
    """The same with no lane: the control case of the test above (what
    soak.py saw: a local folder's SIZE queued behind S3 calls)."""
    pool = ThreadPool(2, "t")
    gate = threading.Event()

    async def main() -> None:
        slow = [pool.run(gate.wait, 5) for _ in range(2)]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(pool.run(lambda: "local")), 0.2)
        gate.set()
        await asyncio.gather(*slow)

    asyncio.run(main())
    pool.shutdown()


def test_shutdown_runs_the_calls_waiting_in_lanes() -> None:
    pool = ThreadPool(2, "t", lane_limit=1)
    gate = threading.Event()
    done: list[int] = []

    def call(i: int) -> None:
        assert gate.wait(5)
        done.append(i)

    async def main() -> None:
        for i in range(3):
            pool.run(call, i, lane="x")
        await asyncio.sleep(0)
        assert pool.lane_load("x") == (1, 2)
        threading.Timer(0.05, gate.set).start()
        pool.shutdown(wait=True)

    asyncio.run(main())
    assert sorted(done) == [0, 1, 2]


def test_idle_threads_end_and_a_later_call_starts_one() -> None:
    """Threads a burst started end once idle for idle_timeout (their
    stacks go back to the system); the next call starts a thread again."""
    pool = ThreadPool(4, "t", idle_timeout=0.05)
    gate = threading.Event()

    async def main() -> None:
        burst = [pool.run(gate.wait, 5) for _ in range(4)]
        await asyncio.sleep(0)
        assert len(pool._threads) == 4
        gate.set()
        await asyncio.gather(*burst)
        threads = list(pool._threads)
        for t in threads:
            t.join(5)
        assert pool._threads == [] and not any(t.is_alive() for t in threads)
        assert (pool._idle, pool._queued) == (0, 0)
        assert await pool.run(threading.current_thread) is pool._threads[0]
        assert pool._threads[0].name == "t-4"  # (names are not reused)

    asyncio.run(main())
    pool.shutdown()


def test_a_thread_that_times_out_as_a_call_arrives_leaves_it_covered() -> None:
    """The race of an idle thread's timeout with a new call: under the
    pool's lock a thread ends only while the threads that stay ready
    cover every queued call. Many short calls, each after a pause as long
    as the idle timeout: every one is answered (none left in the queue
    with no thread to take it), and no more threads than calls at once."""
    pool = ThreadPool(2, "t", idle_timeout=0.001)

    async def main() -> None:
        for i in range(300):
            assert await asyncio.wait_for(pool.run(lambda x: x, i), 5) == i
            if i % 3 == 0:
                await asyncio.sleep(0.001)
            assert len(pool._threads) <= 2
            assert pool._queued >= 0 and pool._idle >= 0

    asyncio.run(main())
    pool.shutdown()


def test_idle_timeout_none_keeps_threads() -> None:
    pool = ThreadPool(2, "t", idle_timeout=None)

    async def main() -> None:
        first = await pool.run(threading.current_thread)
        await asyncio.sleep(0.05)
        assert pool._threads == [first] and first.is_alive()

    asyncio.run(main())
    pool.shutdown()
