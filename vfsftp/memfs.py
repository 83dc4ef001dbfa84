"""In-memory mounts (``mem://``): PyFilesystem2's MemoryFS with a one-step
open for RETR.

A RETR on a memory mount went through ``getinfo`` (an ``Info`` built for one
size) and ``openbin`` (mode parsing, a ``_MemoryFile`` with its locks), a
tenth of a short session's CPU. ``open_read`` (the hook VirtualTree.open_read
looks for, as on local folders) finds the entry once and, for a small file,
hands out a snapshot of its bytes. It reads MemoryFS's entries directly:
``fs`` is pinned to 2.4.16, its last release, and tests/unit/test_memfs.py
checks this against the generic way.
"""

from __future__ import annotations

import io
from typing import IO

from fs.memoryfs import MemoryFS

__all__ = ["InlineMemoryFS"]

#: files up to this size are copied whole at open (a consistent snapshot,
#: read without locks); bigger ones get MemoryFS's own file object
SNAPSHOT = 256 * 1024


class InlineMemoryFS(MemoryFS):  # type: ignore[misc]
    def open_read(self, path: str) -> tuple[IO[bytes], int] | None:
        """(file, size), or None when ``path`` is not a file: the caller then
        takes the generic way, which raises the exact error."""
        _path = self.validatepath(path)
        entry = self._get_dir_entry(_path)
        if entry is None or entry.is_dir:
            return None
        with entry.lock:  # writers hold it while they change the bytes
            size: int = entry.size
            content = entry.bytes_file  # (a file entry always has one)
            if size <= SNAPSHOT and content is not None:
                return io.BytesIO(content.getvalue()), size
        return self.openbin(path, "r"), size
