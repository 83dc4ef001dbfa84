"""Connection counters behind the server's limits: all sessions, sessions
per client address, sessions per user.

One process (the default) keeps them in a ``Counter``. With ``vfsftp serve
--workers N`` every worker process must see the same numbers, or a client
could open N times its limit: ``SharedCounts`` keeps them in a shared
memory table that the parent creates before it forks the workers.

Keys are strings (``"*"``, ``"ip:192.0.2.7"``, ``"user:alice"``).
``SharedBanList`` is the ban list (vfsftp.service.limits) with its failures and
bans in the same kind of table, so that a client cannot spread its
password guesses over the workers.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

from .limits import BanList, IPNetwork

__all__ = ["ConnectionCounts", "LocalCounts", "SharedBanList", "SharedCounts"]


class ConnectionCounts(Protocol):
    def acquire(self, key: str, limit: int) -> bool:
        """Count one more session under ``key`` unless ``limit`` are open."""
        ...

    def release(self, key: str) -> None:
        """One session under ``key`` ended."""
        ...

    def count(self, key: str) -> int: ...


class LocalCounts:
    """Counters of one process (the event loop thread only)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def acquire(self, key: str, limit: int) -> bool:
        if self._counts[key] >= limit:
            return False
        self._counts[key] += 1
        return True

    def release(self, key: str) -> None:
        self._counts[key] -= 1
        if self._counts[key] <= 0:
            del self._counts[key]

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)


_EMPTY = 0
_GONE = -1  # a key whose count went back to 0: probing goes on past it


def _key_hash(key: str) -> int:
    h = int.from_bytes(
        hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest(),
        "little",
        signed=True,
    )
    return h if h not in (_EMPTY, _GONE) else 1


class SharedCounts:
    """Counters shared by the worker processes forked after it is made.

    An open-addressing hash table of (64-bit key hash, count) pairs in a
    MAP_SHARED file mapping, guarded by a POSIX record lock (``lockf``) on
    that file: the kernel drops the lock of a worker that dies, so a crash
    never leaves the others waiting. Every call holds the lock for a few
    microseconds, from the event loop thread (no thread uses it)."""

    def __init__(self, slots: int = 1 << 16) -> None:
        import fcntl  # POSIX only, as fork (and so --workers) is

        self._lockf = fcntl.lockf
        self._lock_ex, self._lock_un = fcntl.LOCK_EX, fcntl.LOCK_UN
        self.slots = slots
        # Lives as long as the table (closed by close()), hence no `with`.
        self._file = tempfile.TemporaryFile(prefix="vfsftp-counts-")  # noqa: SIM115
        os.ftruncate(self._file.fileno(), slots * 16)
        self._map = mmap.mmap(self._file.fileno(), slots * 16)
        self._table = memoryview(self._map).cast("q")  # key0, count0, key1, count1...

    def _find(self, h: int, insert: bool) -> int:
        """The slot holding ``h``; with ``insert``, else the first free one
        on its probe path; -1 when absent (or the table is full)."""
        table, slots = self._table, self.slots
        i = h % slots
        free = -1
        for _ in range(slots):
            k = table[2 * i]
            if k == h:
                return i
            if k == _EMPTY:
                return (free if free >= 0 else i) if insert else -1
            if k == _GONE and free < 0:
                free = i
            i = (i + 1) % slots
        return free if insert else -1

    def _locked(self) -> _Lock:
        return _Lock(self)

    def acquire(self, key: str, limit: int) -> bool:
        h = _key_hash(key)
        with self._locked():
            i = self._find(h, insert=True)
            if i < 0:  # more distinct keys than slots: refuse rather than miscount
                return False
            table = self._table
            current = table[2 * i + 1] if table[2 * i] == h else 0
            if current >= limit:
                return False
            table[2 * i] = h
            table[2 * i + 1] = current + 1
            return True

    def release(self, key: str) -> None:
        h = _key_hash(key)
        with self._locked():
            i = self._find(h, insert=False)
            if i < 0:
                return
            table = self._table
            left = table[2 * i + 1] - 1
            if left <= 0:
                table[2 * i] = _GONE
                table[2 * i + 1] = 0
            else:
                table[2 * i + 1] = left

    def count(self, key: str) -> int:
        h = _key_hash(key)
        with self._locked():
            i = self._find(h, insert=False)
            return int(self._table[2 * i + 1]) if i >= 0 else 0

    def close(self) -> None:
        self._table.release()
        self._map.close()
        self._file.close()


class SharedBanList(BanList):
    """``BanList`` whose state every worker process shares: per key (an
    address, or an IPv6 /64) the end of its ban, its last ``max_failures``
    failure times and the start times of the guesses being checked (at most
    ``max_failures``; one older than ``STALE`` seconds, left by a worker
    that died, frees its place), in a shared table like SharedCounts'.
    The rules are BanList's: a ban once ``max_failures`` failures fall
    within ``window``. The clock must be one all processes share
    (time.monotonic is system-wide on Linux and macOS).

    When every slot on a key's probe path is taken, the entry with the
    oldest activity gives way (as BanList forgets the least recently seen
    addresses first)."""

    _PROBE = 64
    #: seconds after which a guess still marked as being checked is taken
    #: for one whose worker died
    STALE = 60.0

    def __init__(
        self,
        max_failures: int,
        window: float,
        duration: float,
        exempt: Iterable[IPNetwork] = (),
        clock: Callable[[], float] = time.monotonic,
        slots: int = 1 << 14,
    ) -> None:
        super().__init__(max_failures, window, duration, exempt, clock)
        self._shared = SharedCounts(slots)  # its file, mapping and lock
        # ban end, the failure times, the start times of guesses in flight
        self._width = 1 + 2 * max_failures
        self._vfile = tempfile.TemporaryFile(prefix="vfsftp-bans-")  # noqa: SIM115
        os.ftruncate(self._vfile.fileno(), slots * self._width * 8)
        self._vmap = mmap.mmap(self._vfile.fileno(), slots * self._width * 8)
        self._values = memoryview(self._vmap).cast("d")

    def _slot(self, key: str, insert: bool) -> int:
        """Index of the key's entry (taking one when ``insert``), or -1."""
        keys, slots = self._shared._table, self._shared.slots
        h = _key_hash(key)
        i = h % slots
        victim, oldest = -1, float("inf")
        for _ in range(min(self._PROBE, slots)):
            k = keys[2 * i]
            if k == h:
                return i
            if k in (_EMPTY, _GONE):
                if not insert:
                    if k == _EMPTY:
                        return -1
                else:
                    victim, oldest = i, float("-inf")
                    if k == _EMPTY:
                        break
            elif insert:
                base = i * self._width
                last = max(self._values[base : base + self._width])
                if last < oldest:
                    victim, oldest = i, last
            i = (i + 1) % slots
        if not insert or victim < 0:
            return -1
        keys[2 * victim] = h
        base = victim * self._width
        self._values[base : base + self._width] = memoryview(bytes(8 * self._width)).cast("d")
        return victim

    def ban_left(self, ip: str) -> float:
        with self._shared._locked():
            i = self._slot(self.key(ip), insert=False)
            end = self._values[i * self._width] if i >= 0 else 0.0
        left = end - self._clock() if end else 0.0
        return left if left > 0 else 0.0

    def _times(self, i: int) -> tuple[memoryview[float], memoryview[float]]:
        """(failure times, in-flight start times) of entry ``i``."""
        base, m = i * self._width, self.max_failures
        return self._values[base + 1 : base + 1 + m], self._values[base + 1 + m : base + 1 + 2 * m]

    def attempt(self, ip: str) -> int:
        if self.is_exempt(ip):
            return 0
        now = self._clock()
        with self._shared._locked():
            i = self._slot(self.key(ip), insert=True)
            if i < 0:
                return -1
            failures, flights = self._times(i)
            recent = sum(1 for t in failures if t and t > now - self.window)
            free = -1
            for j in range(len(flights)):
                if flights[j] and flights[j] > now - self.STALE:
                    recent += 1
                elif free < 0:
                    free = j
            if recent >= self.max_failures or free < 0:
                return -1
            flights[free] = now
            return free

    def finish(self, ip: str, token: int, failed: bool) -> bool:
        if self.is_exempt(ip):
            return False
        now = self._clock()
        with self._shared._locked():
            i = self._slot(self.key(ip), insert=failed)
            if i < 0:
                return False  # (forgotten meanwhile: a table full of others)
            if 0 <= token < self.max_failures:
                self._times(i)[1][token] = 0.0
            return self._failed(i, now) if failed else False

    def failure(self, ip: str) -> bool:
        if self.is_exempt(ip):
            return False
        now = self._clock()
        with self._shared._locked():
            i = self._slot(self.key(ip), insert=True)
            return self._failed(i, now) if i >= 0 else False

    def _failed(self, i: int, now: float) -> bool:
        """Count a failure in entry ``i`` (under the lock); True: banned."""
        times = self._times(i)[0]
        oldest = min(range(len(times)), key=times.__getitem__)
        times[oldest] = now
        recent = sum(1 for t in times if t and t > now - self.window)
        if recent < self.max_failures:
            return False
        self._values[i * self._width] = now + self.duration
        for j in range(len(times)):
            times[j] = 0.0
        return True

    def banned(self) -> dict[str, float]:
        """Bans are shared by key hash; their addresses are in the logs."""
        return {}

    def close(self) -> None:
        self._values.release()
        self._vmap.close()
        self._vfile.close()
        self._shared.close()


class _Lock:
    __slots__ = ("counts",)

    def __init__(self, counts: SharedCounts) -> None:
        self.counts = counts

    def __enter__(self) -> None:
        c = self.counts
        c._lockf(c._file.fileno(), c._lock_ex)

    def __exit__(self, *exc: object) -> None:
        c = self.counts
        c._lockf(c._file.fileno(), c._lock_un)
