"""TokenBucket with a fake clock: the pacing arithmetic, without waiting."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from vfsftp.session.throttle import SharedBuckets, TokenBucket, chain


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("rate", "burst", "chunks", "expected_total_sleep"),
    [
        (1000, 1000, [1000], 0.0),  # the burst is free
        (1000, 1000, [1000, 1000], 1.0),  # then one second per 1000 bytes
        (1000, 1000, [500] * 6, 2.0),
        (1_000_000, 100_000, [100_000] * 11, 1.0),
        (2048, 1024, [4096], 1.5),  # a chunk bigger than the burst goes into debt
    ],
)
def test_pacing(rate: float, burst: float, chunks: list[int], expected_total_sleep: float) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)
    for n in chunks:
        bucket(n)
    assert sum(clock.slept) == pytest.approx(expected_total_sleep)
    # Whatever the chunking, the average never exceeds the rate.
    assert sum(chunks) - burst <= rate * clock.now + 1e-6


def test_idle_time_refills_up_to_the_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, 1000, clock=clock, sleep=clock.sleep)
    bucket(1000)
    clock.now += 60  # a minute idle does not bank a minute of bytes
    bucket(1000)
    assert clock.slept == []
    bucket(1000)
    assert sum(clock.slept) == pytest.approx(1.0)


def test_default_burst_and_chunk_size() -> None:
    assert TokenBucket(1_000_000).burst == 100_000
    assert TokenBucket(10_000).burst == 16 * 1024
    assert TokenBucket(10_000).chunk_size(256 * 1024) == 16 * 1024
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_chain() -> None:
    clock = FakeClock()
    a = TokenBucket(1000, 1000, clock=clock, sleep=clock.sleep)
    b = TokenBucket(500, 500, clock=clock, sleep=clock.sleep)
    assert chain(None, None) is None
    assert chain(a, None) is a
    both = chain(a, b)
    assert both is not None
    both(1000)
    # a lets 1000 bytes through at once; b (500 B/s, 500 burst) needs 1 s.
    assert sum(clock.slept) == pytest.approx(1.0)


class FakeStore:
    """A RateStore that answers from a script of waits (None: unreachable)."""

    def __init__(self, answers: list[float | None]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[tuple[str, float, float]], int]] = []

    def reserve(self, buckets: Sequence[tuple[str, float, float]], n: int) -> float | None:
        self.calls.append((list(buckets), n))
        return self.answers.pop(0)


def test_shared_buckets_take_lumps_from_the_store() -> None:
    clock = FakeClock()
    user = TokenBucket(100_000, 10_000, clock=clock, sleep=clock.sleep)
    total = TokenBucket(500_000, 50_000, clock=clock, sleep=clock.sleep)
    store = FakeStore([0.0, 0.25])
    shared = SharedBuckets(
        store, [("u:alice:down:1000", user), ("*:down:5000", total)], clock.sleep
    )
    assert shared.lump == 2000  # 20 ms of the strictest rate
    for _ in range(4):
        shared(1000)  # two lumps of 2000 for four chunks
    # One call per lump for both buckets, named, with their rate and burst.
    buckets = [("u:alice:down:1000", 100_000.0, 10_000.0), ("*:down:5000", 500_000.0, 50_000.0)]
    assert store.calls == [(buckets, 2000)] * 2
    assert clock.slept == [0.25]
    # A chunk larger than a lump is taken whole.
    store.answers.append(0.0)
    shared(5000)
    assert store.calls[-1] == (buckets, 5000)


def test_shared_buckets_pace_locally_while_the_store_is_unreachable() -> None:
    clock = FakeClock()
    user = TokenBucket(1000, 1000, clock=clock, sleep=clock.sleep)
    shared = SharedBuckets(FakeStore([None, None]), [("u:bob:up:1000", user)], clock.sleep)
    shared(1000)  # the burst
    shared(1000)  # a second's worth more: the local bucket waits
    assert sum(clock.slept) == pytest.approx(1.0)
