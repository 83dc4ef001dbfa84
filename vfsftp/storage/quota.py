"""Storage quotas: bytes and files a user (or a mount) may fill.

A ``Quota`` is one accounting scope. Its usage is measured once, by walking
the storage at first use (in the worker thread that needs it), and from then
on kept by the server's own uploads, deletes and renames. Changes made
behind the server's back (another program writing to the folder, another
vfsftp instance on the same bucket) are not seen until the next start.

Uploads are charged while the data arrives, chunk by chunk, so a transfer
that would go over the limit stops with 552 at that point (RFC 959 §4.2:
"Requested file action aborted. Exceeded storage allocation") and its
partial data is discarded with the rest of the failed upload.

What an upload or a move takes is a reservation (``charge``) until it is
done: then ``commit`` keeps it, ``unreserve`` gives it back. In one process
the two are the same number. A fleet of servers keeps a quota's usage in a
``QuotaStore`` (the service's cluster state), where a reservation belongs
to the server that made it and ends with it if that server dies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from fs.base import FS

from ..protocol.errors import FTPError

__all__ = [
    "Quota",
    "QuotaExceeded",
    "QuotaStore",
    "QuotaUnavailable",
    "QuotaWriter",
    "measure",
]


class QuotaExceeded(FTPError):
    def __init__(self, label: str, what: str) -> None:
        super().__init__(552, f"Quota exceeded ({label}: {what})")


class QuotaUnavailable(FTPError):
    """The store holding a shared quota's usage cannot be reached: nothing
    is written into the quota until it can (451, RFC 959 §4.2: "local
    error in processing")."""

    def __init__(self) -> None:
        super().__init__(451, "Quota accounting unavailable; try again later")


class QuotaStore(Protocol):
    """Where the usage of quotas shared by several servers lives (the
    service implements it). Blocking calls, made from worker threads.
    Each call takes quotas that name their ``scope``; ``charge`` measures
    a scope the store does not know yet with ``Quota.measure_now``."""

    #: bytes an upload reserves at a time ahead of its data (0: exactly
    #: what each write needs)
    reserve_ahead: int

    def charge(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        """Reserve in every scope, or in none: raises QuotaExceeded, or
        QuotaUnavailable when the store cannot be reached."""
        ...

    def unreserve(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        """Give back a reservation that was not used. Never raises."""
        ...

    def commit(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        """A reservation is kept: the data is stored. Never raises."""
        ...

    def release(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        """Stored data is gone (a delete, replaced data). Never raises."""
        ...

    def usage(self, quota: Quota) -> tuple[int, int]:
        """(bytes, files) used and reserved by every server; raises
        QuotaUnavailable when the store cannot be reached."""
        ...


def measure(filesystem: FS, path: str = "/", skip_prefix: str = "") -> tuple[int, int]:
    """Blocking: (bytes, files) under ``path``; names starting with
    ``skip_prefix`` (uploads in progress) are not counted."""
    total = files = 0
    for _, info in filesystem.walk.info(path, namespaces=["details"]):
        if info.is_dir or (skip_prefix and info.name.startswith(skip_prefix)):
            continue
        total += info.size
        files += 1
    return total, files


class Quota:
    """Limits and usage of one scope. Thread-safe: transfers charge it from
    their worker threads."""

    def __init__(
        self,
        label: str,
        max_bytes: int | None,
        max_files: int | None,
        measure: Callable[[], tuple[int, int]],
        *,
        scope: str = "",
        store: QuotaStore | None = None,
        shown_as: str = "",
    ) -> None:
        """``label``: its name in replies to clients; ``shown_as``: in the
        metrics (the operator's view, which may name tree paths; default
        ``label``). ``store``: where the usage lives when servers share it,
        under the name ``scope`` (the same on every server); None: here."""
        self.label = label
        self.shown_as = shown_as or label
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._measure = measure
        self.scope = scope
        self.store = store
        self._lock = threading.Lock()
        self._bytes: int | None = None
        self._files = 0

    @property
    def measured(self) -> bool:
        return self._bytes is not None

    @property
    def blocking(self) -> bool:
        """Its next call may block (a first measurement, or a shared store):
        it must not run on the event loop."""
        return self.store is not None or self._bytes is None

    def measure_now(self) -> tuple[int, int]:
        """Blocking: walk the storage the quota covers (for the store)."""
        return self._measure()

    def _ensure(self) -> None:
        # Under the lock: concurrent first users wait for one measurement.
        if self._bytes is None:
            self._bytes, self._files = self._measure()

    def peek(self) -> tuple[int, int] | None:
        """(bytes, files) in use, or None before the first measurement or
        when a shared store holds them; never blocks (metrics read it from
        the event loop)."""
        used = self._bytes
        return None if used is None or self.store is not None else (used, self._files)

    def usage(self) -> tuple[int, int]:
        """Blocking on first use: (bytes, files) in use."""
        if self.store is not None:
            return self.store.usage(self)
        with self._lock:
            self._ensure()
            assert self._bytes is not None
            return self._bytes, self._files

    def charge(self, nbytes: int = 0, nfiles: int = 0) -> None:
        """Blocking on first use: reserve ``nbytes`` and ``nfiles``, or
        raise ``QuotaExceeded`` and take nothing."""
        if self.store is not None:
            self.store.charge([self], nbytes, nfiles)
            return
        with self._lock:
            self._ensure()
            assert self._bytes is not None
            if nbytes and self.max_bytes is not None and self._bytes + nbytes > self.max_bytes:
                raise self._exceeded()
            if nfiles and self.max_files is not None and self._files + nfiles > self.max_files:
                raise QuotaExceeded(self.label, f"{self.max_files} files")
            self._bytes += nbytes
            self._files += nfiles

    def release(self, nbytes: int = 0, nfiles: int = 0) -> None:
        """Stored data is gone (a delete, a file replaced)."""
        if self.store is not None:
            self.store.release([self], nbytes, nfiles)
            return
        self._give_back(nbytes, nfiles)

    def unreserve(self, nbytes: int = 0, nfiles: int = 0) -> None:
        """Give back a reservation that was not used."""
        if self.store is not None:
            self.store.unreserve([self], nbytes, nfiles)
            return
        self._give_back(nbytes, nfiles)

    def commit(self, nbytes: int = 0, nfiles: int = 0) -> None:
        """Keep a reservation: its data is stored (in one process a
        reservation already counts as used)."""
        if self.store is not None:
            self.store.commit([self], nbytes, nfiles)

    def _give_back(self, nbytes: int, nfiles: int) -> None:
        with self._lock:
            if self._bytes is None:
                return  # not measured yet: the measurement will see the change
            self._bytes = max(0, self._bytes - nbytes)
            self._files = max(0, self._files - nfiles)

    def require_room(self) -> None:
        """Blocking on first use: raise ``QuotaExceeded`` when not one more
        byte fits."""
        if self.max_bytes is None:
            return
        if self.store is not None:
            if self.store.usage(self)[0] >= self.max_bytes:
                raise self._exceeded()
            return
        with self._lock:
            self._ensure()
            assert self._bytes is not None
            if self._bytes >= self.max_bytes:
                raise self._exceeded()

    def exceeded(self, files: bool) -> QuotaExceeded:
        """The error a full quota answers (for the store)."""
        return QuotaExceeded(self.label, f"{self.max_files} files") if files else self._exceeded()

    def _exceeded(self) -> QuotaExceeded:
        return QuotaExceeded(self.label, f"{self.max_bytes} bytes")


def _groups(quotas: Iterable[Quota]) -> list[tuple[QuotaStore | None, list[Quota]]]:
    """The quotas by where their usage lives: each kept here on its own,
    those of one store together (one call for all of them)."""
    out: list[tuple[QuotaStore | None, list[Quota]]] = []
    shared: dict[int, list[Quota]] = {}
    for q in quotas:
        if q.store is None:
            out.append((None, [q]))
        elif id(q.store) in shared:
            shared[id(q.store)].append(q)
        else:
            shared[id(q.store)] = [q]
            out.append((q.store, shared[id(q.store)]))
    return out


def charge_all(quotas: Sequence[Quota], nbytes: int = 0, nfiles: int = 0) -> None:
    """Reserve in every scope, or in none (what was taken is given back)."""
    done: list[tuple[QuotaStore | None, list[Quota]]] = []
    try:
        for store, group in _groups(quotas):
            if store is None:
                group[0].charge(nbytes, nfiles)
            else:
                store.charge(group, nbytes, nfiles)
            done.append((store, group))
    except FTPError:
        for store, group in done:
            if store is None:
                group[0].unreserve(nbytes, nfiles)
            else:
                store.unreserve(group, nbytes, nfiles)
        raise


def unreserve_all(quotas: Iterable[Quota], nbytes: int = 0, nfiles: int = 0) -> None:
    for store, group in _groups(quotas):
        if store is None:
            group[0].unreserve(nbytes, nfiles)
        else:
            store.unreserve(group, nbytes, nfiles)


def commit_all(quotas: Iterable[Quota], nbytes: int = 0, nfiles: int = 0) -> None:
    for store, group in _groups(quotas):
        if store is not None:
            store.commit(group, nbytes, nfiles)


def release_all(quotas: Iterable[Quota], nbytes: int = 0, nfiles: int = 0) -> None:
    for store, group in _groups(quotas):
        if store is None:
            group[0].release(nbytes, nfiles)
        else:
            store.release(group, nbytes, nfiles)


class QuotaWriter:
    """Wraps an upload's file: each write is charged to the scopes first.

    ``credit`` is the size of the data the upload replaces (the old file, or
    its tail after a REST offset): new bytes use it up before they are
    charged, because the old ones go when the upload commits.

    Where a scope is shared by several servers (a store), each reservation
    costs a call to the store: the writer reserves ``reserve_ahead`` bytes at
    a time and gives back what it did not use when the upload ends. A
    reservation counts against the quota like stored data, so the quota is
    never exceeded; near the limit the writer takes only what each write
    needs, and a write is refused at most ``reserve_ahead`` bytes early per
    other upload still holding an unused reservation in the same scope."""

    def __init__(self, inner: Any, quotas: Sequence[Quota], credit: int = 0) -> None:
        self.inner = inner
        self.quotas = quotas
        self.credit = credit
        self.charged = 0  # bytes written that count against the quotas
        self.reserved = 0  # bytes reserved in every scope (>= charged)
        self.ahead = max((q.store.reserve_ahead for q in quotas if q.store is not None), default=0)

    def write(self, data: Any) -> int:
        n = len(data)
        covered = min(n, self.credit)
        need = n - covered
        if need:
            short = self.charged + need - self.reserved
            if short > 0:
                self._reserve(short)
            self.charged += need
        self.credit -= covered
        return int(self.inner.write(data))

    def _reserve(self, short: int) -> None:
        if self.ahead > short:
            try:
                charge_all(self.quotas, self.ahead)
            except QuotaExceeded:
                pass  # near the limit: only what this write needs
            else:
                self.reserved += self.ahead
                return
        charge_all(self.quotas, short)
        self.reserved += short

    def committed(self) -> None:
        """The upload is stored: its bytes are kept, the reservation it did
        not use is given back, and what the new data did not use of the
        replaced data is free now."""
        unreserve_all(self.quotas, self.reserved - self.charged)
        commit_all(self.quotas, self.charged)
        release_all(self.quotas, self.credit)
        self.reserved = self.charged = self.credit = 0

    def discarded(self) -> None:
        unreserve_all(self.quotas, self.reserved)
        self.reserved = self.charged = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
