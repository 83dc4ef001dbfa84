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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fs.base import FS

from .errors import FTPError

__all__ = ["Quota", "QuotaExceeded", "QuotaWriter", "measure"]


class QuotaExceeded(FTPError):
    def __init__(self, label: str, what: str) -> None:
        super().__init__(552, f"Quota exceeded ({label}: {what})")


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
    ) -> None:
        self.label = label
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._measure = measure
        self._lock = threading.Lock()
        self._bytes: int | None = None
        self._files = 0

    @property
    def measured(self) -> bool:
        return self._bytes is not None

    def _ensure(self) -> None:
        # Under the lock: concurrent first users wait for one measurement.
        if self._bytes is None:
            self._bytes, self._files = self._measure()

    def peek(self) -> tuple[int, int] | None:
        """(bytes, files) in use, or None before the first measurement;
        never blocks (metrics read it from the event loop)."""
        used = self._bytes
        return None if used is None else (used, self._files)

    def usage(self) -> tuple[int, int]:
        """Blocking on first use: (bytes, files) in use."""
        with self._lock:
            self._ensure()
            assert self._bytes is not None
            return self._bytes, self._files

    def charge(self, nbytes: int = 0, nfiles: int = 0) -> None:
        """Blocking on first use: take ``nbytes`` and ``nfiles``, or raise
        ``QuotaExceeded`` and take nothing."""
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
        """Give back what was charged (or what a delete freed)."""
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
        with self._lock:
            self._ensure()
            assert self._bytes is not None
            if self._bytes >= self.max_bytes:
                raise self._exceeded()

    def _exceeded(self) -> QuotaExceeded:
        return QuotaExceeded(self.label, f"{self.max_bytes} bytes")


def charge_all(quotas: Sequence[Quota], nbytes: int = 0, nfiles: int = 0) -> None:
    """Charge every scope, or none (what was taken is given back)."""
    done: list[Quota] = []
    try:
        for q in quotas:
            q.charge(nbytes, nfiles)
            done.append(q)
    except QuotaExceeded:
        for q in done:
            q.release(nbytes, nfiles)
        raise


def release_all(quotas: Iterable[Quota], nbytes: int = 0, nfiles: int = 0) -> None:
    for q in quotas:
        q.release(nbytes, nfiles)


class QuotaWriter:
    """Wraps an upload's file: each write is charged to the scopes first.

    ``credit`` is the size of the data the upload replaces (the old file, or
    its tail after a REST offset): new bytes use it up before they are
    charged, because the old ones go when the upload commits."""

    def __init__(self, inner: Any, quotas: Sequence[Quota], credit: int = 0) -> None:
        self.inner = inner
        self.quotas = quotas
        self.credit = credit
        self.charged = 0

    def write(self, data: Any) -> int:
        n = len(data)
        covered = min(n, self.credit)
        if n - covered:
            charge_all(self.quotas, n - covered)
            self.charged += n - covered
        self.credit -= covered
        return int(self.inner.write(data))

    def committed(self) -> None:
        """The upload replaced the old data: what the new data did not use
        of it is free now."""
        release_all(self.quotas, self.credit)
        self.credit = 0

    def discarded(self) -> None:
        release_all(self.quotas, self.charged)
        self.charged = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
