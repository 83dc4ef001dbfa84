"""Quota accounting without a server: charges, rollbacks, replacement credit."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest
from fs.memoryfs import MemoryFS

from vfsftp.storage.quota import Quota, QuotaExceeded, QuotaWriter, charge_all, measure


def _quota(
    used: tuple[int, int] = (0, 0), max_bytes: int | None = 100, max_files: int | None = 3
) -> Quota:
    return Quota("test", max_bytes, max_files, lambda: used)


def test_measure_skips_directories_and_uploads_in_progress() -> None:
    mem = MemoryFS()
    mem.makedirs("/a/b")
    mem.writebytes("/a/b/f", b"x" * 10)
    mem.writebytes("/g", b"x" * 5)
    mem.writebytes("/a/.in.progress", b"x" * 1000)
    assert measure(mem, "/", ".in.") == (15, 2)
    assert measure(mem, "/a", ".in.") == (10, 1)


def test_measured_once_lazily() -> None:
    calls = []

    def measure_() -> tuple[int, int]:
        calls.append(1)
        return (40, 1)

    q = Quota("q", 100, None, measure_)
    assert not q.measured
    q.release(10)  # before measuring: nothing to adjust
    assert calls == []
    assert q.usage() == (40, 1)
    q.charge(10)
    assert q.usage() == (50, 1) and calls == [1]


@pytest.mark.parametrize(
    ("used", "nbytes", "nfiles", "ok"),
    [
        ((0, 0), 100, 0, True),
        ((0, 0), 101, 0, False),
        ((99, 0), 1, 0, True),
        ((100, 0), 1, 0, False),
        ((100, 0), 0, 1, True),  # a file slot needs no byte
        ((0, 3), 0, 1, False),
        ((0, 2), 0, 1, True),
    ],
)
def test_charge(used: tuple[int, int], nbytes: int, nfiles: int, ok: bool) -> None:
    q = _quota(used)
    if ok:
        q.charge(nbytes, nfiles)
        assert q.usage() == (used[0] + nbytes, used[1] + nfiles)
    else:
        with pytest.raises(QuotaExceeded) as exc:
            q.charge(nbytes, nfiles)
        assert exc.value.reply.code == 552
        assert q.usage() == used  # nothing taken


def test_charge_all_is_all_or_nothing() -> None:
    roomy, tight = _quota(max_bytes=1000), _quota(max_bytes=10)
    with pytest.raises(QuotaExceeded):
        charge_all([roomy, tight], 50)
    assert roomy.usage() == (0, 0) and tight.usage() == (0, 0)


# (old size the upload replaces, chunks written, committed?) → bytes in use after
WRITER_CASES = [
    (0, [30, 30], True, 60),  # a new file
    (0, [30, 30], False, 0),  # failed: everything given back
    (50, [30, 30], True, 60),  # 50 replaced by 60: 10 more than the old file
    (50, [20], True, 20),  # replaced by less: the rest of the credit is freed
    (50, [30, 30], False, 50),  # failed replacement: the old file stays counted
]


@pytest.mark.parametrize(("credit", "chunks", "commit", "after"), WRITER_CASES)
def test_writer_uses_the_replacement_credit(
    credit: int, chunks: list[int], commit: bool, after: int
) -> None:
    q = _quota((credit, 0), max_bytes=1000)
    q.usage()  # measured before the upload (as a server that has charged it)
    w = QuotaWriter(io.BytesIO(), [q], credit)
    for n in chunks:
        w.write(b"x" * n)
    if commit:
        w.committed()
    else:
        w.discarded()
    assert q.usage()[0] == after


def test_writer_stops_at_the_limit_and_writes_nothing_more() -> None:
    q = _quota(max_bytes=100)
    sink = io.BytesIO()
    w = QuotaWriter(sink, [q])
    w.write(b"x" * 80)
    with pytest.raises(QuotaExceeded):
        w.write(b"x" * 30)
    assert sink.getvalue() == b"x" * 80
    w.discarded()
    assert q.usage() == (0, 0)


class FakeStore:
    """A QuotaStore kept in a dict, as the service's Redis one keeps it:
    stored usage and reservations apart; refuses past the limits."""

    def __init__(self, used: int = 0, reserve_ahead: int = 0) -> None:
        self.reserve_ahead = reserve_ahead
        self.stored = {"s": used}
        self.reserved = {"s": 0}
        self.calls: list[tuple[str, int]] = []

    def charge(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        self.calls.append(("charge", nbytes))
        for q in quotas:
            if q.max_bytes is not None and (
                self.stored[q.scope] + self.reserved[q.scope] + nbytes > q.max_bytes
            ):
                raise q.exceeded(files=False)
        for q in quotas:
            self.reserved[q.scope] += nbytes

    def unreserve(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        self.calls.append(("unreserve", nbytes))
        for q in quotas:
            self.reserved[q.scope] -= nbytes

    def commit(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        self.calls.append(("commit", nbytes))
        for q in quotas:
            self.reserved[q.scope] -= nbytes
            self.stored[q.scope] += nbytes

    def release(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        self.calls.append(("release", nbytes))
        for q in quotas:
            self.stored[q.scope] -= nbytes

    def usage(self, quota: Quota) -> tuple[int, int]:
        return self.stored[quota.scope] + self.reserved[quota.scope], 0


def _shared(store: FakeStore, max_bytes: int = 10_000) -> Quota:
    return Quota("shared", max_bytes, None, lambda: (0, 0), scope="s", store=store)


def test_writer_reserves_ahead_and_gives_back_what_it_did_not_use() -> None:
    store = FakeStore(reserve_ahead=4000)
    q = _shared(store)
    w = QuotaWriter(io.BytesIO(), [q])
    for _ in range(5):
        w.write(b"x" * 1000)
    # Two calls for five writes: 4000 reserved, then 4000 more.
    assert [c for c in store.calls if c[0] == "charge"] == [("charge", 4000)] * 2
    w.committed()
    assert store.stored["s"] == 5000 and store.reserved["s"] == 0
    assert store.calls[-3:] == [("unreserve", 3000), ("commit", 5000), ("release", 0)]


def test_reserving_ahead_never_passes_the_quota_near_the_limit() -> None:
    store = FakeStore(used=9000, reserve_ahead=4000)
    q = _shared(store)
    w = QuotaWriter(io.BytesIO(), [q])
    w.write(b"x" * 600)  # 4000 would not fit: only what the write needs
    w.write(b"x" * 400)  # exactly full
    with pytest.raises(QuotaExceeded):
        w.write(b"x")
    assert store.stored["s"] + store.reserved["s"] == 10_000
    w.discarded()
    assert store.reserved["s"] == 0 and store.stored["s"] == 9000


def test_a_quota_in_a_store_is_asked_there_and_blocks_the_loop() -> None:
    store = FakeStore(used=10_000)
    q = _shared(store)
    assert q.blocking  # (sessionfs runs its calls in a worker thread)
    with pytest.raises(QuotaExceeded):
        q.require_room()
    q.release(500)
    q.require_room()
    assert q.usage() == (9500, 0)


def test_charge_all_over_local_and_shared_scopes_is_all_or_nothing() -> None:
    store = FakeStore(used=9_990)
    local = _quota(max_bytes=1000)
    with pytest.raises(QuotaExceeded):
        charge_all([local, _shared(store)], 50)
    assert local.usage() == (0, 0) and store.reserved["s"] == 0
