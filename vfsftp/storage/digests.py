"""Checksums of stored files: computed while an upload streams in, read
from what the storage keeps, cached, or streamed from the file.

- ``Digester`` / ``DigestingWriter``: an upload's checksums, fed by every
  write of the upload (no second read of the file);
- ``HashSource``: what a backend knows of one version of a file before
  reading it: its size, a ``token`` naming that version (equal while the
  file is unchanged: a local file's device, inode, size and mtime; an S3
  object's ETag), the checksums the storage keeps with it (an S3 object's
  metadata), and a way to read that same version;
- ``DIGESTS``: a process-wide cache of checksums by version token, filled by
  uploads and by reads, so a HASH right after a STOR, or a second HASH,
  reads nothing;
- ``compute``: the streamed read, in bounded memory, stopped by ``HashJob``
  (ABOR, a stall) and paced by its throttle.

Blocking throughout: called in worker threads.
"""

from __future__ import annotations

import hashlib
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import fs.errors
from fs.base import FS

from ..protocol.hashes import ALGORITHMS
from .errors import StorageError

__all__ = [
    "DIGESTS",
    "ChecksumMismatch",
    "DigestCache",
    "Digester",
    "DigestingWriter",
    "HashAnswer",
    "HashBusy",
    "HashJob",
    "HashSlots",
    "HashSource",
    "HashStopped",
    "HashTooLarge",
    "compute",
    "file_token",
    "generic_source",
    "new_hasher",
]

#: bytes per read of a hash; under a rate limit, THROTTLED_CHUNK
CHUNK = 1024 * 1024
THROTTLED_CHUNK = 16 * 1024

_HASHLIB = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Hasher(Protocol):
    def update(self, data: Any, /) -> None: ...
    def hexdigest(self) -> str: ...


class _CRC32:
    """zlib's CRC-32 (ISO-HDLC, as mod_digest's and PKZip's) as a hasher."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Any, /) -> None:
        self.value = zlib.crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hasher of ``algorithm`` (a name of protocol.hashes.ALGORITHMS).
    hashlib and zlib release the GIL on large inputs: hashes in worker
    threads run beside the event loop."""
    if algorithm == "CRC32":
        return _CRC32()
    # (MD5 and SHA-1 as checksums, not for security: FIPS builds allow that)
    h: Hasher = hashlib.new(_HASHLIB[algorithm], usedforsecurity=False)
    return h


class Digester:
    """Several checksums of one stream at once."""

    __slots__ = ("_hashers", "size")

    def __init__(self, algorithms: tuple[str, ...]) -> None:
        self._hashers = [(a, new_hasher(a)) for a in dict.fromkeys(algorithms)]
        self.size = 0

    def update(self, data: Any) -> None:
        for _, h in self._hashers:
            h.update(data)
        self.size += len(data)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self._hashers}


class DigestingWriter:
    """An upload's file whose writes also feed a Digester: what is stored
    is what is hashed (after TYPE A's conversion), with no second read."""

    __slots__ = ("_write", "digester", "inner")

    def __init__(self, inner: Any, digester: Digester) -> None:
        self.inner = inner
        self.digester = digester
        self._write = inner.write

    def write(self, data: Any) -> int:
        n = int(self._write(data))
        self.digester.update(data)
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ChecksumMismatch(Exception):
    """An upload's data does not have the checksum its client announced."""

    def __init__(self, algorithm: str, expected: str, received: str) -> None:
        super().__init__(f"{algorithm} mismatch: announced {expected}, received {received}")
        self.algorithm = algorithm


class HashTooLarge(Exception):
    """A hash would read more than the mount's ``hash_max_size``."""

    def __init__(self, length: int, cap: int) -> None:
        super().__init__(f"{length} bytes to read, more than this folder's limit of {cap}")
        self.length, self.cap = length, cap


class HashBusy(Exception):
    """Every place for a hash reading storage is taken (server-wide)."""


class HashStopped(Exception):
    """The hash was stopped (ABOR, the session's end, a stall)."""


class HashSlots:
    """How many hashes may read storage at once (``server.hash.max_concurrent``),
    from any thread; answers from the cache or the storage take none."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.running >= self.limit:
                return False
            self.running += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.running -= 1


@dataclass
class HashJob:
    """One hash being computed, shared by the event loop (ABOR, STAT, the
    stall watch) and its worker thread."""

    throttle: Callable[[int], None] | None = None
    started: float = field(default_factory=time.monotonic)
    done: int = 0  # bytes read so far
    total: int = 0  # bytes to read (known once the file is found)
    why_stopped: str | None = None

    def stop(self, why: str) -> None:
        if self.why_stopped is None:
            self.why_stopped = why

    def check(self) -> None:
        if self.why_stopped is not None:
            raise HashStopped(self.why_stopped)


@dataclass(frozen=True)
class HashAnswer:
    """A checksum of octets ``start`` to ``stop`` (excluded) of a file, and
    where it came from: ``stored`` (kept with the file), ``cache``, or
    ``read`` (computed now)."""

    algorithm: str
    start: int
    stop: int
    digest: str
    source: str
    size: int


@dataclass
class HashSource:
    """One version of a file, about to be hashed (see the module doc)."""

    size: int
    #: names this version (None: no way to tell versions apart: not cached)
    token: Hashable | None
    #: checksums of the whole file the storage keeps with it, by algorithm
    stored: Mapping[str, str] = field(default_factory=dict)
    #: the bytes themselves, when at hand (mem://)
    content: bytes | None = None
    #: a reader of this same version, of octets start to stop (excluded)
    opener: Callable[[int, int], Reader] | None = None
    closer: Callable[[], None] | None = None

    def close(self) -> None:
        if self.closer is not None:
            self.closer()


class DigestCache:
    """Checksums by (version token, algorithm, start, stop), the most
    recently used ``size`` kept. Thread-safe."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> str | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Hashable, digest: str) -> None:
        with self._lock:
            self._entries[key] = digest
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def remember(self, token: Hashable, size: int, digests: Mapping[str, str]) -> None:
        """The checksums of a whole file (an upload's), under its token."""
        for algorithm, digest in digests.items():
            self.put((token, algorithm, 0, size), digest)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: the process's checksum cache (the tokens name storage, not sessions)
DIGESTS = DigestCache()


def generic_source(filesystem: FS, path: str) -> HashSource:
    """A file of a filesystem without a ``hash_source`` of its own: its size
    from getinfo, read with openbin; no token (nothing says that two looks
    saw the same version), so never cached."""
    info = filesystem.getinfo(path, ("details",))
    if info.is_dir:
        raise fs.errors.FileExpected(path)
    opened: list[IO[bytes]] = []

    def opener(start: int, stop: int) -> IO[bytes]:
        f: IO[bytes] = filesystem.openbin(path, "r")
        opened.append(f)
        if start:
            f.seek(start)
        return f

    def closer() -> None:
        for f in opened:
            f.close()

    return HashSource(int(info.size), None, opener=opener, closer=closer)


def file_token(filesystem: FS, path: str) -> Hashable | None:
    """The version token of the file at ``path`` (as its ``hash_source``
    would give it), where the filesystem can tell one cheaply; None else."""
    own = getattr(filesystem, "file_token", None)
    if own is None:
        return None
    token: Hashable | None = own(path)
    return token


def compute(source: HashSource, algorithm: str, start: int, stop: int, job: HashJob) -> str:
    """The ``algorithm`` digest of octets ``start`` to ``stop`` (excluded)
    of ``source``, read in chunks: ``job`` is checked before each (ABOR),
    its throttle called after each, its ``done`` counts them."""
    assert algorithm in ALGORITHMS
    h = new_hasher(algorithm)
    job.total = stop - start
    if stop <= start:
        return h.hexdigest()
    size = CHUNK if job.throttle is None else THROTTLED_CHUNK
    if source.content is not None:
        # mem://: the bytes are at hand; slices of a view copy nothing
        view = memoryview(source.content)
        for i in range(start, stop, size):
            job.check()
            piece = view[i : min(i + size, stop)]
            h.update(piece)
            job.done += len(piece)
            if job.throttle is not None:
                job.throttle(len(piece))
        job.check()
        return h.hexdigest()
    assert source.opener is not None
    f = source.opener(start, stop)
    left = stop - start
    while left > 0:
        job.check()
        data = f.read(min(size, left))
        if not data:
            raise StorageError("the file changed while it was being hashed", 451)
        h.update(data)
        left -= len(data)
        job.done += len(data)
        if job.throttle is not None:
            job.throttle(len(data))
    job.check()
    return h.hexdigest()
