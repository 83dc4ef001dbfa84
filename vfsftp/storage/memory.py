"""In-memory mounts (``mem://``): PyFilesystem2's MemoryFS with a one-step
open for RETR.

A RETR through ``getinfo`` (an ``Info`` built for one size) and ``openbin``
(mode parsing, a ``_MemoryFile`` with its locks) would cost a tenth of a
short session's CPU. ``open_read`` (the hook VirtualTree.open_read
looks for, as on local folders) finds the entry once and hands out a
snapshot of its bytes: ``BytesIO.getvalue()`` returns the buffer itself, not
a copy, while nothing else holds it (CPython's BytesIO copies its buffer
only when written to while shared), so a snapshot costs nothing however big
the file, and RETR sends from it without a read() copy per chunk (see
MemorySnapshot). A writer that later
changes the file in place pays one copy; uploads never do (they write a
temporary file and move it over the old one).

``iter_rows`` gives LIST and MLSD a directory's entries as plain rows, as
local folders do, instead of an ``Info`` (two dicts) per entry.

``open_atomic_upload`` (the hook vfs.Upload looks for) takes APPE and
REST+STOR: the new bytes are held aside and spliced into the file under its
lock when the upload commits, instead of a temporary copy seeded with the
whole existing file (an APPE of one byte to a 256 MiB file held 512 MiB).
Plain uploads keep the temporary file, which ``move`` relinks at no cost.

It reads MemoryFS's entries directly: ``fs`` is pinned to 2.4.16, its last
release, and tests/unit/test_memfs.py checks this against the generic way.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import fs.errors
from fs.memoryfs import MemoryFS

from .digests import HashSource
from .errors import StorageError
from .tree import StatRow

__all__ = ["InlineMemoryFS", "MemorySnapshot"]


class MemorySnapshot(io.BytesIO):
    """A read-only file over an immutable ``bytes`` (a file of an in-memory
    mount, as it was when opened). ``send_stream`` sends ``content`` straight
    from memory: the kernel copies it into the socket, with no read() copy
    per chunk. ``io.BytesIO(bytes)`` shares the bytes until written to."""

    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.content = content


class InlineMemoryFS(MemoryFS):  # type: ignore[misc]
    def open_read(self, path: str, offset: int = 0) -> tuple[IO[bytes], int] | None:
        """(file at ``offset``, size), or None when ``path`` is not a file: the caller then
        takes the generic way, which raises the exact error."""
        _path = self.validatepath(path)
        entry = self._get_dir_entry(_path)
        if entry is None or entry.is_dir:
            return None
        with entry.lock:  # writers hold it while they change the bytes
            bytes_file = entry.bytes_file
            assert bytes_file is not None  # (a file entry always has one)
            content = bytes_file.getvalue()
        snapshot = MemorySnapshot(content)
        snapshot.seek(offset)
        return snapshot, len(content)

    def hash_source(self, path: str) -> HashSource:
        """The file as a hash reads it (storage.digests): its bytes, at
        hand (a snapshot, as RETR's: nothing is copied), and a version
        token (the entry, its size and modification time)."""
        entry = self._file_entry(path)
        with entry.lock:
            bytes_file = entry.bytes_file
            assert bytes_file is not None
            content = bytes_file.getvalue()
            token = ("mem", id(entry), len(content), entry.modified_time)
        return HashSource(len(content), token, content=content)

    def file_token(self, path: str) -> tuple[object, ...]:
        """The version token ``hash_source`` gives the file at ``path``."""
        entry = self._file_entry(path)
        with entry.lock:  # (size seeks the entry's BytesIO to its end)
            return ("mem", id(entry), int(entry.size), entry.modified_time)

    def _file_entry(self, path: str) -> Any:
        entry = self._get_dir_entry(self.validatepath(path))
        if entry is None:
            raise fs.errors.ResourceNotFound(path)
        if entry.is_dir:
            raise fs.errors.FileExpected(path)
        return entry

    def iter_rows(self, path: str) -> Iterator[StatRow]:
        """A directory's entries as (name, is_dir, size, mtime, 0, 0) rows
        (tree.StatRow; no inode numbers here), one at a time, from its
        entries as they are now (a list of references, taken at once under
        the lock), for a listing streamed from a worker thread; the same
        errors as ``scandir``, raised at once."""
        _path = self.validatepath(path)
        with self._lock:
            dir_entry = self._get_dir_entry(_path)
            if dir_entry is None:
                raise fs.errors.ResourceNotFound(path)
            if not dir_entry.is_dir:
                raise fs.errors.DirectoryExpected(path)
            entries = list(dir_entry._dir.values())  # (each knows its name)
        return _rows(entries)

    def check_atomic_upload(self, path: str, offset: int = 0, append: bool = False) -> int:
        """Refuse before the 150 reply what the upload would refuse: a REST
        offset past the end, or of a file that is not there. Returns the
        bytes of the existing file the upload keeps."""
        if not (offset or append):
            return 0
        _path = self.validatepath(path)
        entry = self._get_dir_entry(_path)
        if entry is None:
            if offset:
                raise fs.errors.ResourceNotFound(path)
            return 0
        if entry.is_dir:
            raise fs.errors.FileExpected(path)
        size = int(entry.size)
        if offset > size:
            raise StorageError(f"restart offset {offset} is beyond the end of the file", 554)
        return offset if offset else size

    def open_atomic_upload(
        self, path: str, offset: int = 0, append: bool = False
    ) -> _Splice | None:
        """APPE and REST+STOR: a writer that splices at commit; None for a
        plain upload (the temporary file is as cheap here)."""
        if not (offset or append):
            return None
        self.check_atomic_upload(path, offset, append)
        return _Splice(self, self.validatepath(path), offset, append)


def _rows(entries: list[Any]) -> Iterator[StatRow]:
    for entry in entries:
        is_dir = entry.is_dir
        yield (entry.name, is_dir, 0 if is_dir else entry.size, entry.modified_time, 0, 0)


class _Splice:
    """The bytes of an APPE (REST+STOR) held aside until commit, then written
    at the end of the file (at the offset, the rest cut off) under the
    entry's lock (and not the filesystem's, but for a new file): a reader
    sees the file before or after, never a part, and what the file keeps is
    not copied (except once by BytesIO itself while a RETR still sends a
    snapshot of it)."""

    def __init__(self, memory: InlineMemoryFS, path: str, offset: int, append: bool) -> None:
        self.memory = memory
        self.path = path
        self.offset = offset
        self.append = append
        self.chunks: list[bytes] = []

    def write(self, data: Any) -> int:
        chunk = bytes(data)  # (a view of the receiver's buffer, reused)
        self.chunks.append(chunk)
        return len(chunk)

    def commit(self, check: Callable[[], None] | None = None) -> None:
        if check is not None:
            check()  # (may raise: nothing was changed yet)
        memory = self.memory
        with memory._lock:
            entry = memory._get_dir_entry(self.path)
            if entry is None:
                if self.offset:
                    raise fs.errors.ResourceNotFound(self.path)
                # APPE to a new file: made and filled under the filesystem's
                # lock, so that nobody sees it empty.
                memory.create(self.path)
                entry = memory._get_dir_entry(self.path)
                assert entry is not None
                self._write(entry)
                return
            if entry.is_dir:
                raise fs.errors.FileExpected(self.path)
        # An existing file: its bytes under its own lock only. Copying them
        # takes milliseconds per 10 MB, and the filesystem's lock is what
        # every call on any path takes, the event loop's inline ones too:
        # calls on other files go on meanwhile (one that measures this file,
        # a getinfo or a listing of its folder, still waits for it). A DELE
        # or RNTO of this file meanwhile happens after the APPE: the entry,
        # which they move or drop, has its bytes.
        self._write(entry)

    def _write(self, entry: Any) -> None:
        chunks = self.chunks
        with entry.lock:
            bytes_file = entry.bytes_file
            assert bytes_file is not None
            end = bytes_file.seek(0, os.SEEK_END)
            if not self.append:
                if self.offset > end:
                    raise StorageError(
                        f"restart offset {self.offset} is beyond the end of the file", 554
                    )
                bytes_file.truncate(self.offset)
                bytes_file.seek(self.offset)
            chunks.reverse()  # each chunk freed once written
            while chunks:
                bytes_file.write(chunks.pop())
            entry.modified_time = time.time()

    def discard(self) -> None:
        self.chunks.clear()
