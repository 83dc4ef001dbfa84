"""Traffic control: token buckets that cap transfer rates.

A bucket is shared by every transfer it governs (all of one user's downloads,
say), so a user cannot multiply the limit by opening more sessions. Transfers
run in worker threads, so waiting is a plain ``sleep`` there and never
touches the event loop. Pure apart from the injected clock and sleep, so it
is tested without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

__all__ = ["RateStore", "SharedBuckets", "TokenBucket"]


class TokenBucket:
    """``rate`` bytes per second on average, with bursts up to ``burst``
    bytes (default: a tenth of a second's worth, at least 16 KiB)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate / 10, 16 * 1024))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def chunk_size(self, default: int) -> int:
        """A chunk that keeps pacing smooth at low rates."""
        return max(1024, min(default, int(self.burst)))

    def reserve(self, n: int) -> float:
        """Take ``n`` bytes' worth of tokens (going into debt if needed) and
        return how long the caller must wait before sending them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def __call__(self, n: int) -> None:
        wait = self.reserve(n)
        if wait > 0:
            self._sleep(wait)


class RateStore(Protocol):
    """Token buckets a fleet of servers shares (the service implements it
    with its cluster state). Called from transfer threads."""

    def reserve(self, buckets: Sequence[tuple[str, float, float]], n: int) -> float | None:
        """Take ``n`` bytes' worth of tokens from each bucket (key, rate,
        burst), going into debt as TokenBucket does: the seconds to wait
        before sending them, or None when the store cannot be reached."""
        ...


class SharedBuckets:
    """Buckets kept in a RateStore under the given keys, paced as one; the
    local ``buckets`` stand in for them while the store cannot be reached
    (each server then paces on its own).

    One call to the store per ``LUMP`` seconds' worth of the strictest rate
    (or per chunk, if larger), not per chunk: the tokens of a lump are taken
    at once (waiting for them as the store says) and spent by the chunks
    that follow. A transfer that ends leaves at most a lump unspent."""

    #: seconds of the rate taken from the store at a time
    LUMP = 0.02

    def __init__(
        self,
        store: RateStore,
        buckets: Sequence[tuple[str, TokenBucket]],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.local = [bucket for _, bucket in buckets]
        self.shared = [(key, bucket.rate, bucket.burst) for key, bucket in buckets]
        self.lump = int(min(bucket.rate for _, bucket in buckets) * self.LUMP)
        self.credit = 0  # tokens taken from the store, not spent yet
        self._sleep = sleep

    def __call__(self, n: int) -> None:
        if self.credit >= n:
            self.credit -= n
            return
        want = max(n - self.credit, self.lump)
        wait = self.store.reserve(self.shared, want)
        if wait is None:
            for bucket in self.local:
                bucket(n)
            return
        self.credit += want - n
        if wait > 0:
            self._sleep(wait)


def chain(*buckets: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """One throttle callable for several buckets (e.g. the user's and the
    server's), or None when no limit applies."""
    active = [b for b in buckets if b is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def throttle(n: int) -> None:
        for b in active:
            b(n)

    return throttle
