"""The session's view of its tree: permissions, the async facade over the
blocking ``fs`` API, and the mapping of every filesystem error to a reply.

Every call that can block (a disk, a network store) runs in a worker thread;
calls on in-memory mounts run inline, where a thread hop costs more than the
call itself (see ``Mount.inline``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Generator, Hashable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

import fs.errors
from fs.info import Info

from ..protocol.errors import FTPError, ProtocolError
from ..protocol.listings import ListEntry
from ..protocol.paths import PathRejected, basename, dirname, is_under, resolve, to_tree
from ..protocol.permissions import WRITE_PERMS, effective_perms, mlst_perm_fact, move_changes_rights
from .digests import (
    DIGESTS,
    ChecksumMismatch,
    Digester,
    DigestingWriter,
    HashAnswer,
    HashBusy,
    HashJob,
    HashSlots,
    HashStopped,
    HashTooLarge,
    compute,
    file_token,
)
from .errors import NameTaken, map_fs_error, storage_failure
from .quota import (
    Quota,
    QuotaWriter,
    charge_all,
    commit_all,
    measure,
    release_all,
    unreserve_all,
)
from .threads import ThreadPool
from .tree import (
    UPLOAD_PREFIX,
    Mount,
    StatRow,
    VirtualTree,
    temp_upload_path,
    unwrap_read_only,
)

if TYPE_CHECKING:
    from .s3 import FolderFacts

__all__ = ["Listing", "SessionFS", "Upload"]

T = TypeVar("T")
log = logging.getLogger("vfsftp.session")

_NAMESPACES = ("details", "stat")
#: a listing of more entries than this is streamed, this many at a time
LISTING_BATCH = 1000
_WRITE_MODE_LETTERS = frozenset("wam")
COPY_CHUNK = 1 << 20
#: folders a session keeps facts of (FolderMemo); beyond, it starts afresh
FOLDER_MEMO_SIZE = 256


class AtomicWriter(Protocol):
    """What a filesystem offers when it can make an upload appear at once on
    its own (an S3 multipart upload is invisible until completed; a memory
    file has new bytes spliced in at commit)."""

    def write(self, data: Any) -> int: ...
    def commit(self, check: Callable[[], None] | None = None) -> None: ...
    def discard(self) -> None: ...


@dataclass
class Upload:
    """An upload in progress. A failed or aborted STOR leaves the old file (or
    none), never a partial one: data goes to a hidden temporary name in the
    target directory and is moved over the target only on success — or, where
    the filesystem offers ``open_atomic_upload`` (S3), to a writer that
    publishes nothing until ``commit()``."""

    mount: Mount
    target: str  # path inside the mount
    temp: str
    virtual_path: str
    offset: int = 0  # REST: keep this many bytes of the existing file
    append: bool = False  # APPE: keep all of the existing file
    file: Any = None
    atomic: AtomicWriter | None = None
    #: quota scopes the upload is charged to, and the size of the data it
    #: replaces (see QuotaWriter); a new file's slot is taken by begin_upload
    quotas: tuple[Quota, ...] = ()
    credit: int = 0
    new_file: bool = False
    writer: QuotaWriter | None = None
    #: checksums computed while the data arrives (storage.digests)
    algorithms: tuple[str, ...] = ()
    #: the checksum the client announced (SITE CHECKSUM): (algorithm, hex)
    expected: tuple[str, str] | None = None
    digester: Digester | None = None
    #: the checksums of the data, once it has all arrived (finish)
    digests: dict[str, str] = field(default_factory=dict)
    #: no file had the name when the session last looked (FolderMemo): the
    #: upload is charged as a new file without asking, and S3 is asked to
    #: store it only if that still holds (If-None-Match); else the file
    #: there is looked up and the upload charged as replacing it
    assume_new: bool = False
    #: called once the upload is published
    stored: Callable[[], None] | None = None

    @property
    def whole(self) -> bool:
        """The upload writes the whole file (no REST offset, no APPE): its
        checksums are the file's."""
        return not self.offset and not self.append

    def open(self) -> Any:
        """Blocking: create the temporary file (or atomic writer), seeded
        with the part of the existing file that REST or APPE keeps. The
        writes that follow are charged to the quotas and hashed, after
        TYPE A's conversion: the checksums are of what is stored."""
        f = self._open()
        if self.quotas:
            f = self.writer = QuotaWriter(f, self.quotas, self.credit)
        if self.algorithms:
            self.digester = Digester(self.algorithms)
            f = DigestingWriter(f, self.digester)
        return f

    def finish(self) -> dict[str, str]:
        """The checksums of the data (every byte has arrived); raises
        ChecksumMismatch when the one the client announced differs (the
        upload is then discarded, never published)."""
        if self.digester is not None:
            self.digests = self.digester.hexdigests()
        if self.expected is not None:
            algorithm, announced = self.expected
            received = self.digests.get(algorithm, "")
            if received != announced:
                raise ChecksumMismatch(algorithm, announced, received)
        return self.digests

    def _open(self) -> Any:
        opener = getattr(self.mount.fs, "open_atomic_upload", None)
        if opener is not None:
            # (None: the filesystem takes this upload the temporary way)
            self.atomic = opener(self.target, offset=self.offset, append=self.append)
            if self.atomic is not None:
                if self.assume_new and hasattr(self.atomic, "if_none_match"):
                    self.atomic.if_none_match = True
                if self.whole and self.expected is not None and self.expected[0] == "SHA-256":
                    # Announced before the data: S3 can store it with an
                    # object sent in parts too (its metadata is fixed when
                    # the multipart upload begins).
                    keep = getattr(self.atomic, "keep_sha256", None)
                    if keep is not None:
                        keep(self.expected[1])
                return self.atomic
        f = self.mount.fs.openbin(self.temp, "w")
        try:
            if self.offset or self.append:
                try:
                    src = self.mount.fs.openbin(self.target, "r")
                except fs.errors.ResourceNotFound:
                    if self.offset:
                        raise
                else:
                    with src:
                        if self.append:
                            shutil.copyfileobj(src, f, COPY_CHUNK)
                        else:
                            _copy_n(src, f, self.offset)
        except BaseException:
            f.close()
            self.discard()
            raise
        self.file = f
        return f

    def commit(self, check: Callable[[], None] | None = None) -> None:
        """Blocking: make the upload visible under its name. ``check`` runs
        last before that, once every byte is stored: if it raises, the
        upload is discarded instead (and so on any error here)."""
        token = None
        try:
            if self.atomic is not None:
                sha256 = self.digests.get("SHA-256")
                keep = getattr(self.atomic, "keep_sha256", None)
                if self.whole and sha256 is not None and keep is not None:
                    keep(sha256)  # (an S3 object sent in one PUT: stored with it)
                if self.assume_new and not getattr(self.atomic, "single_put", False):
                    self._replaces_after_all()  # (parts sent: ask before completing)
                try:
                    self.atomic.commit(check)
                except NameTaken:
                    self._replaces_after_all()
                    self.atomic.commit(check)
                token = getattr(self.atomic, "token", None) if self.whole else None
            else:
                if self.file is not None:
                    self.file.close()
                if check is not None:
                    check()
                before = self._token(self.temp) if self.whole and self.digests else None
                self.mount.fs.move(self.temp, self.target, overwrite=True)
                # The file under its name is the one hashed only if its
                # version token is the temporary file's (a rename keeps
                # inode and mtime); another writer in between changes it.
                if before is not None and self._token(self.target) == before:
                    token = before
        except BaseException:
            self.discard()
            raise
        if self.writer is not None:
            self.writer.committed()
        if self.new_file:
            commit_all(self.quotas, nfiles=1)
            self.new_file = False
        if token is not None and self.digester is not None:
            # A HASH of the file now reads nothing (storage.digests).
            DIGESTS.remember(token, self.digester.size, self.digests)
        if self.stored is not None:
            self.stored()

    def _replaces_after_all(self) -> None:
        """Blocking: the upload assumed its name was free; look (one HEAD on
        S3), and when a file is there charge the upload as replacing it:
        that file's size is freed at commit, and no new file is counted."""
        self.assume_new = False
        try:
            old = getattr(self.mount.fs, "fileinfo", self.mount.fs.getinfo)(self.target)
        except fs.errors.ResourceNotFound:
            return
        if self.writer is not None:
            self.writer.credit += old.size
        if self.new_file:
            unreserve_all(self.quotas, nfiles=1)
            self.new_file = False

    def _token(self, path: str) -> Any:
        with contextlib.suppress(Exception):  # (only a cache entry is at stake)
            return file_token(self.mount.fs, path)
        return None

    def _unaccount(self) -> None:
        if self.writer is not None:
            self.writer.discarded()
        if self.new_file:
            unreserve_all(self.quotas, nfiles=1)
            self.new_file = False

    def discard(self) -> None:
        """Blocking: drop everything written; never raises."""
        self._unaccount()
        if self.atomic is not None:
            with contextlib.suppress(Exception):
                self.atomic.discard()
            return
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
        with contextlib.suppress(Exception):
            self.mount.fs.remove(self.temp)


class Listing:
    """The entries of a directory for LIST, NLST, MLSD or STAT: the first
    ``LISTING_BATCH`` in ``head``, and, when there are more, ``rest``: the
    next batches, made one at a time by ``next_batch`` (a blocking call, for
    a worker thread unless ``inline``), so that a listing of any size goes
    out in bounded memory and stops being read when the client is gone.
    ``close`` frees the directory whether or not the rest was read; it may
    be called from any thread, and waits for a batch being made."""

    __slots__ = ("_lock", "head", "inline", "rest")

    def __init__(
        self,
        head: list[ListEntry],
        rest: Iterator[list[ListEntry]] | None = None,
        inline: bool = True,
    ) -> None:
        self.head = head
        self.rest = rest
        #: next_batch may run on the event loop (an in-memory mount)
        self.inline = inline
        self._lock = threading.Lock()

    def next_batch(self) -> list[ListEntry] | None:
        """Blocking: the next batch, or None at the end (or once closed)."""
        with self._lock:
            if self.rest is None:
                return None
            batch = next(self.rest, None)
            if batch is None:
                self.rest = None
            return batch

    def close(self) -> None:
        with self._lock:
            rest, self.rest = self.rest, None
        close = getattr(rest, "close", None)
        if close is not None:
            close()


def measure_home(tree: VirtualTree, home: str) -> tuple[int, int]:
    """Blocking: (bytes, files) under ``home`` on the tree's writable mounts
    (what a user quota counts)."""
    total = files = 0
    for m in tree.mounts:
        if m.read_only:
            continue
        if is_under(m.path, home):
            sub = "/"
        elif is_under(home, m.path):
            sub = home if m.path == "/" else home[len(m.path) :]
        else:
            continue
        if m.fs.isdir(sub):
            b, f = measure(m.fs, sub, UPLOAD_PREFIX)
            total, files = total + b, files + f
    return total, files


def _join(path: str, name: str) -> str:
    return f"{path.rstrip('/')}/{name}"


def _batches(
    rows: Generator[StatRow, None, None], make: Callable[[StatRow], ListEntry]
) -> Generator[list[ListEntry], None, None]:
    try:
        while batch := [make(r) for r in islice(rows, LISTING_BATCH)]:
            yield batch
    finally:
        rows.close()


def _read_up_to(f: IO[bytes], n: int) -> bytes:
    """``n`` bytes, or fewer at the end of the file. One read() may return
    less before the end (a raw file: the bytes before an I/O error, a
    network store's chunk); only an empty read is the end."""
    first = f.read(n)
    if len(first) >= n or not first:
        return first
    parts = [first]
    left = n - len(first)
    while left > 0:
        chunk = f.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _copy_n(src: IO[bytes], dst: IO[bytes], n: int) -> None:
    left = n
    while left > 0:
        chunk = src.read(min(COPY_CHUNK, left))
        if not chunk:
            raise FTPError(554, f"Restart offset {n} is beyond the end of the file")
        dst.write(chunk)
        left -= len(chunk)


def _unique(info: Info, mount_kind: str, path: str) -> str:
    st: Mapping[str, Any] = info.raw.get("stat") or {}
    return _unique_of(int(st.get("st_ino") or 0), int(st.get("st_dev") or 0), mount_kind, path)


#: The key of MLST/MLSD ``unique`` facts: made once per server process
#: (inherited by --workers, which fork after importing this), so that a fact
#: is stable while the server runs and tells nothing of the host.
_UNIQUE_KEY = os.urandom(16)
_UNIQUE_HASH = hashlib.blake2s(digest_size=8, key=_UNIQUE_KEY)


def _unique_of(ino: int, dev: int, mount_kind: str, path: str) -> str:
    """RFC 3659 §7.5.2 ``unique``: the same for the same file (hard links,
    the same folder through two mounts), opaque (a keyed hash: device and
    inode numbers describe the host's disks)."""
    text = f"{dev}:{ino}" if ino else f"{mount_kind}:{path}"
    h = _UNIQUE_HASH.copy()  # (a copy costs less than keying a new one: MLSD asks per entry)
    h.update(text.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class FolderMemo:
    """What a session learned of S3 folders (``folder_facts``: one LIST),
    for its STORs into them: kept for the mount's ``folder_trust`` seconds.
    The session's own changes update it: a folder it makes (MKD) is known
    at once, empty, and joins its parent's subfolders; a DELE or RMD drops
    what it knew of the folder changed (and below), an RNTO all of it.
    Another session, or another tool, may remove the
    folder meanwhile: a PUT under a vanished prefix then brings the prefix
    back, holding the one file, as a PUT in the window between a check and
    the upload always could (docs/s3.md, "Folders a session knows")."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._facts: dict[tuple[int, str], tuple[float, FolderFacts]] = {}
        self._clock = clock

    def get(self, fs_: Any, path: str) -> FolderFacts | None:
        found = self._facts.get((id(fs_), path))
        if found is None or found[0] <= self._clock():
            return None
        return found[1]

    def put(self, fs_: Any, path: str, facts: FolderFacts) -> None:
        if facts.trust <= 0:
            return
        if len(self._facts) >= FOLDER_MEMO_SIZE:
            self._facts.clear()
        self._facts[(id(fs_), path)] = (self._clock() + facts.trust, facts)

    def note_file(self, fs_: Any, path: str, name: str) -> None:
        """The session stored the file ``name`` in the folder ``path``."""
        found = self._facts.get((id(fs_), path))
        if found is not None and found[1].files is not None:
            facts = replace(found[1], files=found[1].files | {name})
            self._facts[(id(fs_), path)] = (found[0], facts)

    def note_folder(self, fs_: Any, path: str, name: str, made: FolderFacts) -> None:
        """The session made the folder ``name`` in ``path``: the parent's
        facts gain it, and the new folder's are ``made`` (empty: a STOR
        into it costs the PUT alone)."""
        key = (id(fs_), path)
        found = self._facts.get(key)
        if found is not None and found[1].subfolders is not None:
            facts = replace(found[1], subfolders=found[1].subfolders | {name})
            self._facts[key] = (found[0], facts)
        self.put(fs_, f"{path.rstrip('/')}/{name}", made)

    def forget_folder(self, fs_: Any, path: str) -> None:
        """The session changed the folder ``path`` (removed a file or a
        folder in it, or the folder itself): what it knew of the folder and
        of any folder below is asked again; of other folders, it is not."""
        below = path.rstrip("/") + "/"
        ident = id(fs_)
        for key in [k for k in self._facts if k[0] == ident]:
            if key[1] == path or key[1].startswith(below):
                del self._facts[key]

    def forget(self) -> None:
        self._facts.clear()


class SessionFS:
    """One logged-in user's filesystem: a tree, a current directory and the
    user's permission letters with their per-path overrides.

    Every path here is the user's own: ``tree`` is their view of the server's
    tree (VirtualTree.view), whose "/" is their root, and the overrides are
    keyed the same way (permissions.overrides_in_view). Replies therefore
    name nothing outside the root; ``tree_path`` gives the server's name of
    a path, for logs and hooks."""

    # One per logged-in session, idle ones included.
    __slots__ = (
        "_folders",
        "cwd",
        "executor",
        "overrides",
        "owner",
        "perms",
        "quota_home",
        "root",
        "tree",
        "user_quota",
    )

    def __init__(
        self,
        tree: VirtualTree,
        perms: str,
        overrides: Mapping[str, str],
        executor: ThreadPool | None,
        home: str = "/",
        owner: str = "owner",
        user_quota: Quota | None = None,
        quota_home: str = "/",
        root: str = "/",
    ) -> None:
        self.tree = tree
        self.perms = perms
        self.overrides = overrides  # (read only: callers give their own copy)
        self.executor = executor
        self.cwd = resolve("/", home)
        self.owner = owner
        self.user_quota = user_quota
        self.quota_home = quota_home  # the user quota counts what is under it
        self.root = root  # where the user's "/" is in the server's tree
        self._folders: FolderMemo | None = None  # made at first use (S3 mounts)

    @property
    def folders(self) -> FolderMemo:
        """What this session learned of S3 folders (made when first needed:
        a session that never touches S3 keeps none)."""
        if self._folders is None:
            self._folders = FolderMemo()
        return self._folders

    def tree_path(self, path: str) -> str:
        """The server's name of the user's ``path``."""
        return to_tree(self.root, path)

    # ------------------------------------------------------------ pure rules

    def resolve(self, arg: str) -> str:
        try:
            path = resolve(self.cwd, arg)
        except PathRejected as exc:
            raise FTPError(553, f"File name not allowed: {exc}") from None
        if basename(path).startswith(UPLOAD_PREFIX):
            raise FTPError(553, "File name not allowed: reserved for uploads in progress")
        return path

    def rights(self, path: str) -> tuple[frozenset[str], bool]:
        """(letters held at ``path``, whether the path is read-only storage)."""
        found = self.tree.mount_of(path)
        # The virtual skeleton above mount points is never writable; mount
        # points themselves are protected by the tree (cannot be removed or
        # renamed) while their contents follow the mount's read_only flag.
        read_only = found is None or found[0].read_only
        return effective_perms(self.perms, self.overrides, path, read_only), read_only

    def quotas_for(self, path: str) -> tuple[Quota, ...]:
        """The quota scopes a file at ``path`` counts against."""
        found = self.tree.mount_of(path)
        out: list[Quota] = []
        if found is not None and found[0].quota is not None:
            out.append(found[0].quota)
        if (
            self.user_quota is not None
            and found is not None
            and not found[0].read_only
            and is_under(path, self.quota_home)
        ):
            out.append(self.user_quota)
        return tuple(out)

    def require(self, path: str, letter: str) -> None:
        granted, read_only = self.rights(path)
        if letter in granted:
            return
        if letter in WRITE_PERMS and read_only:
            raise FTPError(550, f"Read-only: {path}")
        raise FTPError(550, f"Permission denied: {path}")

    # ------------------------------------------------------------ execution

    async def _run(
        self, paths: tuple[str, ...], fn: Callable[..., T], *args: Any, offload: bool = False
    ) -> T:
        """Run a blocking fs call, inline for in-memory mounts, else in a
        worker thread (always when ``offload``); any error becomes the FTP
        reply for ``paths[0]``."""
        try:
            if self._inline(paths, offload):
                return fn(*args)
            assert self.executor is not None
            return await self.executor.run(fn, *args, lane=self.lane(paths[0]))
        except FTPError:
            raise
        except Exception as exc:  # fs errors, and whatever else a backend raises
            raise self.failed(exc, *paths) from exc

    def lane(self, path: str) -> Hashable:
        """The worker threads' lane of the storage under ``path``
        (vfsftp.storage.threads): one per declared mount, which every
        user's view of it shares; None in the virtual skeleton."""
        found = self.tree.mount_of(path)
        if found is None:
            return None
        mount = found[0]
        if mount.origin:
            return mount.origin
        inner = unwrap_read_only(mount.fs)
        origin = getattr(inner, "origin", None)  # (a view of a folder of a shared store)
        return id(origin[0] if origin is not None else inner)

    def _inline(self, paths: tuple[str, ...], offload: bool = False) -> bool:
        """Calls on ``paths`` run on the event loop: every one of them is in
        memory (or in the virtual skeleton), or there are no worker threads."""
        return self.executor is None or (
            not offload
            and (
                self.tree.all_inline
                or all((found := self.tree.mount_of(p)) is None or found[0].inline for p in paths)
            )
        )

    def failed(self, exc: BaseException, path: str, *others: str) -> FTPError:
        """The reply for an error of a filesystem call on ``path`` (and
        ``others``: a rename's target). A failure of the storage itself (a
        store unreachable or refusing, a backend's own exception) is also
        logged, in one line naming the mount that failed, where it is
        declared and the cause; the traceback at debug level only."""
        mapped = map_fs_error(exc, path)
        cause = storage_failure(exc, mapped)
        if cause is not None:
            # (the reply names the client's path; the log, the mount that failed)
            found = [(p, f[0]) for p in (path, *others) if (f := self.tree.mount_of(p))]
            backend = getattr(exc, "backend", "")
            named, mount = next(
                ((p, m) for p, m in found if m.kind == backend),
                found[0] if found else (path, None),
            )
            where = (
                f"mount {self.tree_path(mount.path)} "
                f"({mount.kind}, {mount.origin or 'not from mounts.yaml'})"
                if mount is not None
                else "the virtual tree"
            )
            log.error(
                "storage failure on %s: %s; user %s, path %s (vfsftp check-config --connect "
                "tests the mounts)",
                where,
                cause,
                self.owner,
                self.tree_path(named),
            )
            log.debug("storage failure on %s, traceback:", where, exc_info=exc)
        return mapped

    # ------------------------------------------------------------ metadata

    def _shape(self, path: str) -> tuple[tuple[str, str], tuple[str, str], str]:
        """What a listing shows for entries at ``path``: (dir mode, dir perm
        fact), (file mode, file perm fact), mount kind. DELE, RMD and RNFR
        are checked at the entry's own path, so the perm fact is too."""
        granted, _ = self.rights(path)
        writable = bool(granted & _WRITE_MODE_LETTERS)
        found = self.tree.mount_of(path)
        kind = found[0].kind if found else "virtual"
        return (
            ("rwxr-xr-x" if writable else "r-xr-xr-x", mlst_perm_fact(granted, True, granted)),
            ("rw-r--r--" if writable else "r--r--r--", mlst_perm_fact(granted, False, granted)),
            kind,
        )

    def _entry_at(self, info: Info, path: str) -> ListEntry:
        """The entry of ``path`` itself (STAT, MLST, MLSD's "." and "..")."""
        dir_shape, file_shape, kind = self._shape(path)
        is_dir = info.is_dir
        mode, perm = dir_shape if is_dir else file_shape
        details: Mapping[str, Any] = info.raw.get("details") or {}
        mtime = details.get("modified")
        return ListEntry(
            name=basename(path) or "/",
            is_dir=is_dir,
            size=int(details.get("size") or 0) if not is_dir else 0,
            mtime=float(mtime) if mtime is not None else None,
            mode=mode,
            owner=self.owner,
            group=self.owner,
            perm=perm,
            unique=_unique(info, kind, path),
        )

    async def stat(self, path: str) -> ListEntry:
        info = await self._run((path,), self.tree.getinfo, path, _NAMESPACES)
        return self._entry_at(info, path)

    async def listing(self, path: str, want_unique: bool = True) -> Listing:
        """The entries of a directory as a Listing, whatever its mount: rows
        come one at a time (VirtualTree.iter_rows: a local folder's
        os.scandir, memory, S3's ListObjectsV2 pages, the mount points
        below), the first batch now (so the directory's errors are this
        call's, before any reply), the rest as the listing goes out. Rights
        are worked out once for the directory; only children that are
        mount points or carry their own permission override get theirs."""
        below = tuple(_join(path, name) for name in self.tree.child_mounts(path))
        paths = (path, *below)
        return await self._run(paths, self._first_batch, path, want_unique, self._inline(paths))

    def _first_batch(self, path: str, want_unique: bool, inline: bool) -> Listing:
        """Blocking: the first batch of entries, and the rest to come."""
        batches = _batches(self.tree.iter_rows(path), self._row_entry(path, want_unique))
        try:
            head = next(batches, [])
        except BaseException:
            batches.close()
            raise
        if len(head) < LISTING_BATCH:
            batches.close()
            return Listing(head)
        return Listing(head, batches, inline)

    def _row_entry(self, path: str, want_unique: bool) -> Callable[[StatRow], ListEntry]:
        """Turns a row of ``path`` into its entry: with the directory's
        rights, or a special child's own (a mount point, an override)."""
        base = path.rstrip("/")
        common = self._shape(f"{base}/\x00")  # any child that is not special
        special = {name: self._shape(f"{base}/{name}") for name in self._special_names(path)}
        owner = self.owner

        def make(row: StatRow) -> ListEntry:
            name, is_dir, size, mtime, ino, dev = row
            (dir_mode, dir_perm), (file_mode, file_perm), kind = special.get(name, common)
            return ListEntry(
                name,
                is_dir,
                size,
                mtime,
                dir_mode if is_dir else file_mode,
                owner,
                owner,
                dir_perm if is_dir else file_perm,
                _unique_of(ino, dev, kind, f"{base}/{name}") if want_unique else None,
            )

        return make

    def _special_names(self, path: str) -> set[str]:
        """Children of ``path`` that are (or lead to) mount points or have
        an override of their own or below them."""
        base = path.rstrip("/")
        names = set(self.tree.child_mounts(path))
        for key in self.overrides:
            if key != path and is_under(key, path):
                names.add(key[len(base) + 1 :].split("/", 1)[0])
        return names

    async def next_batch(self, listing: Listing, path: str) -> list[ListEntry] | None:
        """The next batch of ``listing`` of ``path`` (None at the end),
        made in a worker thread unless the listing is in memory; an error
        becomes the FTP reply for ``path``, as ``_run``'s do."""
        if listing.rest is None:
            return None
        try:
            if listing.inline or self.executor is None:
                return listing.next_batch()
            return await self.executor.run(listing.next_batch, lane=self.lane(path))
        except FTPError:
            raise
        except Exception as exc:  # fs errors, and whatever else a backend raises
            raise self.failed(exc, path) from exc

    async def close_listing(self, listing: Listing) -> None:
        """Close ``listing`` without blocking the loop: closing waits for a
        batch being made, which may be waiting on a store."""
        if listing.rest is None:
            return
        if listing.inline or self.executor is None:
            listing.close()
        else:
            await self.executor.run(listing.close)

    async def listing_or_file(self, path: str, want_unique: bool = True) -> Listing:
        """``listing``, or of a file that one file (what ``ls`` does). The
        listing comes first: a directory, the usual case, is then one
        LIST on S3 and no extra stat on disk."""
        try:
            return await self.listing(path, want_unique)
        except FTPError as exc:
            # (_run raises the FTP reply from the filesystem's error)
            if not isinstance(exc.__cause__, fs.errors.DirectoryExpected):
                raise
        entry = await self.stat(path)
        if entry.is_dir:  # replaced by a directory in the meantime
            return await self.listing(path, want_unique)
        return Listing([entry])

    async def stat_dir(self, path: str) -> ListEntry | None:
        """The entry of the directory at ``path``; None when something else
        is there (errors as ``stat``'s). Directory first: one LIST on S3,
        where ``stat`` sends a HEAD and then a LIST."""
        info = await self._run((path,), self.tree.dirinfo, path, _NAMESPACES)
        return None if info is None else self._entry_at(info, path)

    async def chdir(self, path: str) -> None:
        if await self._unless_dir(path) is not None:
            raise FTPError(550, f"Not a directory: {path}")
        self.cwd = path

    async def _unless_dir(self, path: str) -> ListEntry | None:
        """None for a directory; else the entry of what is there, or the
        exact error. isdir first: one LIST on S3, where stat costs a HEAD
        and a LIST."""
        if await self._run((path,), self.tree.isdir, path):
            return None
        entry = await self.stat(path)
        return None if entry.is_dir else entry

    async def size(self, path: str) -> int:
        entry = await self.stat(path)
        if entry.is_dir:
            raise FTPError(550, f"Is a directory: {path}")
        return entry.size

    async def mkdir(self, path: str) -> None:
        await self._run((path,), self.tree.makedir, path)
        found = self.tree.mount_of(path)
        if found is None:
            return
        mount, sub = found
        made = getattr(mount.fs, "new_folder_facts", None)  # (an S3 mount's)
        if made is not None:
            self.folders.note_folder(mount.fs, dirname(sub), basename(sub), made())

    def _forget_folders(self, path: str) -> None:
        """What the session knew of the folder holding ``path``, and of
        every folder below it (``path`` itself, for a folder removed), is
        asked again."""
        found = self.tree.mount_of(path)
        if found is not None and self._folders is not None:
            self._folders.forget_folder(found[0].fs, dirname(found[1]))

    async def rmdir(self, path: str) -> None:
        if path == self.cwd or path == "/":
            raise FTPError(550, f"Cannot remove the current or root directory: {path}")
        self._forget_folders(path)
        await self._run((path,), self.tree.removedir, path)

    async def remove(self, path: str) -> None:
        # (a folder without a marker vanishes with its last file)
        self._forget_folders(path)
        quotas = self.quotas_for(path)

        def op() -> None:  # one worker-thread call; a directory: FileExpected → 550
            release_all(quotas, self.tree.remove_file(path), 1)

        # (a fleet's quota asks its store: never on the loop)
        await self._run((path,), op, offload=any(q.store is not None for q in quotas))

    async def rename(self, src: str, dst: str) -> None:
        """Within one mount: that filesystem's own move. Across mounts: copy
        then delete (files and directories). The target may be replaced only
        by a file, never a directory (as rename(2))."""
        if src == "/" or self.tree.is_mount_point(src):
            raise FTPError(550, f"Cannot rename a mount point: {src}")
        if dst == src:
            return
        if dst.startswith(src.rstrip("/") + "/"):
            raise FTPError(553, "Cannot move a directory into itself")
        # Overrides are keyed by path: a move must not carry files out from
        # under theirs, nor under others' (a renamed parent would bypass them).
        changed = move_changes_rights(self.perms, self.overrides, src, dst)
        if changed is not None:
            raise FTPError(550, f"Rename refused: {changed}")

        if self._folders is not None:
            self._folders.forget()
        src_quotas, dst_quotas = self.quotas_for(src), self.quotas_for(dst)
        # Scopes the data leaves and enters; within one scope nothing changes.
        leaving = [q for q in src_quotas if q not in dst_quotas]
        entering = [q for q in dst_quotas if q not in src_quotas]

        def do_move() -> None:
            moved = replaced = (0, 0)  # (bytes, files)
            if not (leaving or entering):
                # Within one quota scope only what the target replaced
                # changes usage: a mount's own file move can tell it.
                shortcut = self.tree.move_file(src, dst)
                if shortcut is not None:
                    if shortcut != (0, 0):
                        release_all(dst_quotas, *shortcut)
                    return
            if self.tree.isdir(src):
                if self.tree.exists(dst):
                    raise fs.errors.DestinationExists(dst)
                if leaving or entering:
                    found = self.tree.mount_of(src)
                    assert found is not None
                    moved = measure(found[0].fs, found[1], UPLOAD_PREFIX)
                charge_all(entering, *moved)
                move: Callable[[], None] = partial(self.tree.movedir, src, dst, create=True)
            else:
                try:
                    old = self.tree.getinfo(dst, ("details",))
                except fs.errors.ResourceNotFound:
                    old = None
                if old is not None and old.is_dir:
                    raise fs.errors.FileExpected(dst)
                if leaving or entering:
                    moved = (self.tree.getinfo(src, ("details",)).size, 1)
                if old is not None:
                    replaced = (old.size, 1)
                charge_all(entering, *moved)
                move = partial(self.tree.move, src, dst, overwrite=True)
            try:
                move()
            except BaseException:
                unreserve_all(entering, *moved)
                raise
            commit_all(entering, *moved)
            release_all(leaving, *moved)
            release_all(dst_quotas, *replaced)

        # Across scopes a directory is measured, and a scope may be measured
        # for the first time (or be shared by a fleet): never on the loop.
        offload = bool(leaving or entering) or any(q.store is not None for q in dst_quotas)
        await self._run((src, dst), do_move, offload=offload)

    async def set_mtime(self, path: str, mtime: float) -> None:
        await self._run((path,), self.tree.setinfo, path, {"details": {"modified": mtime}})

    async def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits (0o777 at most); 504 where the mount has
        no modes (memory, S3)."""
        await self._run((path,), self.tree.chmod, path, mode)

    # ------------------------------------------------------------ transfers

    async def open_read(
        self, path: str, offset: int = 0, preload: int = 0
    ) -> tuple[IO[bytes] | None, int, bytes | None]:
        """Open a file for RETR, in one worker-thread call: (file, size,
        None), or (None, size, content from ``offset``) when that content is
        at most ``preload`` bytes: read at once and the file closed. A REST
        offset past the end is refused (554) before any data moves."""

        def opener() -> tuple[IO[bytes] | None, int, bytes | None]:
            opened = self.tree.open_read(path, offset)
            f: IO[bytes] | None
            if opened is not None:
                f, size = opened
            else:
                info = self.tree.getinfo(path, ("details",))
                if info.is_dir:
                    raise fs.errors.FileExpected(path)
                details: Mapping[str, Any] = info.raw.get("details") or {}
                size = int(details.get("size") or 0)
                f = None  # opened below: on S3 opening would start a GET
            if offset > size:
                if f is not None:
                    f.close()
                raise FTPError(554, f"Restart offset {offset} is beyond the file size {size}")
            if f is None:
                f = self.tree.openbin(path, "r")
            if size - offset > preload:
                return f, size, None
            with f:
                if offset:
                    f.seek(offset)
                # One byte more than expected tells a file that grew since
                # the stat: it then goes the streaming way.
                content = _read_up_to(f, preload + 1)
            if len(content) > preload:
                return self.tree.openbin(path, "r"), size, None
            return None, size, content

        if preload:
            # A small file in the page cache of a local folder: read without
            # blocking, on the loop (a thread hop cost a third of a session).
            cached = self.tree.read_cached(path, offset, preload)
            if cached is not None:
                return None, cached[0], cached[1]
        return await self._run((path,), opener)

    async def begin_upload(
        self,
        path: str,
        offset: int = 0,
        append: bool = False,
        algorithms: tuple[str, ...] = (),
        expected: tuple[str, str] | None = None,
    ) -> Upload:
        """Check the target can be written and reserve a temporary name next to
        it. The blocking ``Upload.open`` is left to the transfer thread.
        ``algorithms``: the checksums to compute while the data arrives;
        ``expected``: the one the client announced (required on a mount
        with ``require_checksum``)."""
        found = self.tree.mount_of(path)
        if found is None or self.tree.is_mount_point(path):
            raise FTPError(550, f"Read-only: {path}")
        mount, sub = found
        if mount.read_only:
            raise FTPError(550, f"Read-only: {path}")
        if mount.require_checksum and expected is None:
            raise FTPError(
                503,
                "Uploads here must announce their checksum first: SITE CHECKSUM <algorithm> <hex>",
            )
        if expected is not None:
            algorithms = (*algorithms, expected[0])

        quotas = self.quotas_for(path)

        def check() -> tuple[int, bool, bool]:
            is_folder, facts = self._upload_folder_check(mount, sub, path)
            assume_new = False
            if not quotas:
                if is_folder is None:
                    is_folder = mount.fs.isdir(sub)
                if is_folder:
                    raise fs.errors.FileExpected(path)
                credit, new_file = 0, False
            else:
                if is_folder:
                    raise fs.errors.FileExpected(path)
                known_files = facts.files if facts is not None else None
                try:
                    if is_folder is None:
                        old = mount.fs.getinfo(sub, ("details",))
                    elif known_files is not None and basename(sub) not in known_files:
                        # (no file had the name: the PUT's condition checks)
                        old, assume_new = None, True
                    else:  # (not a folder: one HEAD on S3 tells the rest)
                        old = getattr(mount.fs, "fileinfo", mount.fs.getinfo)(sub)
                except fs.errors.ResourceNotFound:
                    old = None
                if old is not None and old.is_dir:
                    raise fs.errors.FileExpected(path)
                # What the upload replaces is freed when it commits.
                credit = 0 if append or old is None else max(0, old.size - offset)
                new_file = old is None
                if not credit:
                    for q in quotas:
                        q.require_room()  # refused before any data moves
            precheck = getattr(mount.fs, "check_atomic_upload", None)
            if precheck is not None:
                precheck(sub, offset, append)
            if new_file:
                charge_all(quotas, nfiles=1)  # last: nothing below may fail
            return credit, new_file, assume_new

        # A quota's first measurement walks its storage (and a fleet's quota
        # asks its store): never on the loop.
        blocking = any(q.blocking for q in quotas)
        credit, new_file, assume_new = await self._run((path,), check, offload=blocking)
        temp = temp_upload_path(dirname(sub))
        return Upload(
            mount,
            sub,
            temp,
            path,
            offset=offset,
            append=append,
            quotas=quotas,
            credit=credit,
            new_file=new_file,
            algorithms=algorithms,
            expected=expected,
            assume_new=assume_new and not (offset or append),
            stored=partial(self.folders.note_file, mount.fs, dirname(sub), basename(sub)),
        )

    def _upload_folder_check(
        self, mount: Mount, sub: str, path: str
    ) -> tuple[bool | None, FolderFacts | None]:
        """Blocking: raise ResourceNotFound unless the folder an upload to
        ``sub`` goes into is there; tell whether ``sub`` is a folder (None:
        not known yet), and what the session knows of the folder. On S3 one
        LIST tells both, and the session keeps its answer for
        ``folder_trust`` seconds (FolderMemo): STORs into a folder it knows
        cost the PUT alone."""
        parent = dirname(sub)
        facts_of = getattr(mount.fs, "folder_facts", None)
        if facts_of is None:
            if not mount.fs.isdir(parent):
                raise fs.errors.ResourceNotFound(dirname(path))
            return None, None
        facts = self.folders.get(mount.fs, parent)
        if facts is None:
            facts = facts_of(parent)
            if facts is None:
                raise fs.errors.ResourceNotFound(dirname(path))
            self.folders.put(mount.fs, parent, facts)
        if facts.subfolders is None:
            return None, facts
        return basename(sub) in facts.subfolders, facts

    async def unique_name(self, directory: str, hint: str = "file") -> str:
        """A name in ``directory`` that does not exist yet (STOU)."""
        for _ in range(100):
            candidate = f"{directory.rstrip('/')}/{hint}.{os.urandom(4).hex()}"
            if not await self._run((candidate,), self.tree.exists, candidate):
                return candidate
        raise FTPError(450, "Could not find a unique file name")

    # ------------------------------------------------------------ checksums

    def hash_call(
        self,
        path: str,
        algorithm: str,
        span: Callable[[int], tuple[int, int]],
        job: HashJob,
        slots: HashSlots,
    ) -> Callable[[], HashAnswer]:
        """The blocking call (for a worker thread) that answers a HASH of
        ``path``: from the checksum the storage keeps with the file (one
        HEAD on S3), else from the cache (the same version hashed or
        uploaded before), else by reading the octets ``span(size)`` gives
        (start, stop), unless more than the mount's ``hash_max_size``
        (HashTooLarge) or while every slot is taken (HashBusy). ``span``
        raises ProtocolError for a range the file does not have. Storage
        errors become the FTP reply for ``path``."""

        def call() -> HashAnswer:
            try:
                source, mount = self.tree.hash_source(path)
            except Exception as exc:
                raise self.failed(exc, path) from exc
            try:
                start, stop = span(source.size)
                answer = partial(HashAnswer, algorithm, start, stop, size=source.size)
                whole = start == 0 and stop == source.size
                stored = source.stored.get(algorithm) if whole else None
                if stored is not None:
                    return answer(stored, "stored")
                key = (source.token, algorithm, start, stop)
                cached = DIGESTS.get(key) if source.token is not None else None
                if cached is not None:
                    return answer(cached, "cache")
                cap = mount.hash_max_size
                if cap is not None and stop - start > cap:
                    raise HashTooLarge(stop - start, cap)
                if not slots.take():
                    raise HashBusy()
                try:
                    digest = compute(source, algorithm, start, stop, job)
                finally:
                    slots.give_back()
                if source.token is not None:
                    DIGESTS.put(key, digest)
                return answer(digest, "read")
            except (FTPError, ProtocolError, HashTooLarge, HashBusy, HashStopped):
                raise
            except Exception as exc:  # fs errors, and whatever else a backend raises
                raise self.failed(exc, path) from exc
            finally:
                source.close()

        return call
