"""VirtualTree: PyFilesystem2's MountFS idea with its defects fixed.

``fs.mountfs.MountFS`` (2.4.16) refuses nested mounts, names a mount point
``''`` in ``getinfo``, lets ``removedir`` of a mount point raise
``RemoveRootError``, silently writes anything outside a mount into a private
MemoryFS, and turns every move into a copy under one global lock. This class
keeps the interface (it *is* an ``fs.base.FS``, so ``fs.test.FSTestCases`` and
user code can use it directly) and fixes each:

- mounts may nest (``/data`` and ``/data/archive``); the longest prefix wins;
- directories above mount points are virtual and read-only;
- a mount point has its own name, and can be neither removed nor renamed;
- a move within one mount calls that filesystem's own ``move`` (a rename on
  disk, a server-side copy on S3); across mounts it copies then deletes;
- names of in-flight uploads (``UPLOAD_PREFIX``) are hidden from listings;
- ``view(root)`` is the tree as a user confined to ``root`` sees it.

The tree holds no state but its mount table, so one instance per session is
cheap and needs no lock; the mounted filesystems are shared between sessions.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Collection, Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import fs.copy
import fs.errors
import fs.path
import fs.wrap
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info
from fs.memoryfs import MemoryFS
from fs.path import abspath, normpath
from fs.subfs import SubFS
from fs.wrap import WrapReadOnly

from ..protocol.paths import basename, dirname, is_under
from .digests import HashSource, generic_source
from .quota import Quota

__all__ = [
    "UPLOAD_PREFIX",
    "Mount",
    "StatRow",
    "VirtualTree",
    "temp_upload_path",
    "unwrap_read_only",
]

UPLOAD_PREFIX = ".vfsftp-upload-"


def temp_upload_path(directory: str) -> str:
    """A fresh hidden name in ``directory`` for an upload in progress (or a
    copy between mounts): UPLOAD_PREFIX and 128 random bits (what a UUID4's
    hex gave, without importing ``uuid`` at every start)."""
    return f"{directory.rstrip('/')}/{UPLOAD_PREFIX}{os.urandom(16).hex()}"


#: (name, is_dir, size, mtime, st_ino, st_dev): a listing row without an
#: ``Info``, from a mount filesystem's ``iter_rows`` (mtime None where it is
#: not known; 0, 0 where it has no inode numbers)
StatRow = tuple[str, bool, int, float | None, int, int]


@dataclass(frozen=True)
class Mount:
    """A filesystem placed at ``path`` in the tree."""

    path: str
    fs: FS
    read_only: bool = False
    #: run calls on the event loop instead of a worker thread (in-memory mounts,
    #: where a thread hop costs more than the call)
    inline: bool = False
    #: a short label for logs and STAT ("mem", "osfs", "s3"...)
    kind: str = "fs"
    #: the mount's storage quota (vfsftp.storage.quota), if it has one
    quota: Quota | None = field(default=None, compare=False, repr=False)
    #: where the mount is declared, for messages ("mounts./data in mounts.yaml")
    origin: str = field(default="", compare=False, repr=False)
    #: the folder of ``fs`` shown at ``path`` (a user's root inside a mount,
    #: see VirtualTree.view); "/": the whole filesystem
    base: str = "/"
    #: HASH reads at most this many bytes of a file here (None: no cap)
    hash_max_size: int | None = field(default=None, compare=False, repr=False)
    #: uploads here must announce their checksum (SITE CHECKSUM)
    require_checksum: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        path: str,
        filesystem: FS,
        read_only: bool = False,
        kind: str | None = None,
        quota: Quota | None = None,
        origin: str = "",
        hash_max_size: int | None = None,
        require_checksum: bool = False,
    ) -> Mount:
        inline = isinstance(filesystem, MemoryFS)
        label = kind or type(filesystem).__name__.lower().removesuffix("fs") or "fs"
        return cls(
            _norm(path),
            filesystem,
            read_only,
            inline,
            label,
            quota,
            origin,
            hash_max_size=hash_max_size,
            require_checksum=require_checksum,
        )


def unwrap_read_only(filesystem: FS) -> FS:
    """The filesystem a read-only mount wraps (itself when not wrapped):
    what reads go through (they need no guard, and its fast paths are not
    on the wrapper), what the test kit seeds, what closing must reach."""
    while isinstance(filesystem, WrapReadOnly):
        filesystem = filesystem.delegate_fs()
    return filesystem


@contextlib.contextmanager
def _named_as_given(path: str) -> Iterator[None]:
    """A mount's ResourceNotFound names the path inside the mount: name the
    path as the caller gave it."""
    try:
        yield
    except fs.errors.ResourceNotFound:
        raise fs.errors.ResourceNotFound(path) from None


def _from_folder(m: Mount, folder: str, path: str) -> Mount:
    """``m`` mounted at ``path`` from its ``folder`` on. A local folder gets
    a filesystem jailed there (symbolic links leading out of it refused,
    as they are out of a mount's folder); other filesystems are given the
    folder as the base of every path."""
    inner = unwrap_read_only(m.fs)
    beneath = getattr(inner, "beneath", None)
    if beneath is None:
        return replace(m, path=path, base=folder)
    child = beneath(folder)
    return replace(m, path=path, fs=child if inner is m.fs else fs.wrap.read_only(child))


def _close(rows: object) -> None:
    """Close an iterator that can be closed (a generator, os.scandir's)."""
    close = getattr(rows, "close", None)
    if close is not None:
        close()


def _merged(
    head: list[StatRow], rows: Iterator[StatRow] | None, shadowed: frozenset[str]
) -> Generator[StatRow, None, None]:
    """``head``, then ``rows`` without upload temporaries and without the
    names ``head`` already gave (a mount point shadows what its parent's
    mount holds under its name)."""
    try:
        yield from head
        if rows is None:
            return
        for row in rows:
            name = row[0]
            if not name.startswith(UPLOAD_PREFIX) and name not in shadowed:
                yield row
    finally:
        _close(rows)


def _info_row(info: Info, name: str) -> StatRow:
    details: Mapping[str, Any] = info.raw.get("details") or {}
    st: Mapping[str, Any] = info.raw.get("stat") or {}
    is_dir = info.is_dir
    mtime = details.get("modified")
    return (
        name,
        is_dir,
        0 if is_dir else int(details.get("size") or 0),
        float(mtime) if mtime is not None else None,
        int(st.get("st_ino") or 0),
        int(st.get("st_dev") or 0),
    )


def _mount_rows(m: Mount, sub: str) -> Iterator[StatRow]:
    """The rows of directory ``sub`` of a mount: its filesystem's own
    ``iter_rows`` (reads need no read-only guard), else rows made from its
    ``scandir``, whose first entry is read now so that the directory's
    errors are raised here as ``iter_rows`` raises them."""
    inner = unwrap_read_only(m.fs)
    own = getattr(inner, "iter_rows", None)
    if own is not None:
        rows: Iterator[StatRow] = own(sub)
        return rows
    infos = iter(inner.scandir(sub, ("details", "stat")))
    first = next(infos, None)
    return _info_rows(first, infos)


def _info_rows(first: Info | None, infos: Iterator[Info]) -> Generator[StatRow, None, None]:
    try:
        if first is None:
            return
        yield _info_row(first, first.name)
        for info in infos:
            yield _info_row(info, info.name)
    finally:
        _close(infos)


def _norm(path: str) -> str:
    return abspath(normpath(path)) if path not in ("", "/") else "/"


def _virtual_info(name: str, namespaces: Collection[str] | None) -> Info:
    raw: dict[str, dict[str, Any]] = {"basic": {"name": name, "is_dir": True}}
    if namespaces and "details" in namespaces:
        raw["details"] = {
            "type": int(ResourceType.directory),
            "size": 0,
            "modified": None,
            "accessed": None,
            "created": None,
            "metadata_changed": None,
        }
    return Info(raw)


def _renamed(info: Info, name: str) -> Info:
    raw = {ns: dict(values) for ns, values in info.raw.items()}
    raw["basic"]["name"] = name
    return Info(raw)


def _rename_on_disk(filesystem: FS, src: str, dst: str) -> bool:
    """One rename(2) for a directory on a real disk, when the target does not
    exist: fs 2.4.16's ``movedir`` copies every file and deletes the tree."""
    try:
        src_sys = filesystem.getsyspath(src)
        dst_sys = filesystem.getsyspath(dst)
    except fs.errors.NoSysPath:
        return False
    if not os.path.isdir(src_sys) or os.path.lexists(dst_sys):
        return False
    if not os.path.isdir(os.path.dirname(dst_sys.rstrip(os.sep)) or os.sep):
        raise fs.errors.ResourceNotFound(dst)
    try:
        os.rename(src_sys, dst_sys)
    except OSError:
        return False  # e.g. across devices: let fs copy
    return True


#: bytes per read/write of a copy across mounts
COPY_CHUNK = 1024 * 1024


def _move_file_across(src_fs: FS, src: str, dst_fs: FS, dst: str, preserve_time: bool) -> None:
    """Copy, then delete the original."""
    _copy_file_across(src_fs, src, dst_fs, dst)
    if preserve_time:
        fs.copy.copy_modified_time(src_fs, src, dst_fs, dst)
    src_fs.remove(src)


def _copy_file_across(src_fs: FS, src: str, dst_fs: FS, dst: str) -> None:
    """Copy a file between two filesystems, holding neither one's lock.

    fs.copy.copy_file and fs.move.move_file hold ``src_fs.lock()`` and
    ``dst_fs.lock()`` for the whole copy: two moves in opposite directions
    (mem -> local and local -> mem) take them in opposite orders and
    deadlock, and a MemoryFS held that long stalls the event loop, which
    calls it inline. Here each side locks only for its own calls.

    The copy goes to a hidden temporary name beside the target and is
    renamed into place once whole (as an upload), so a copy that fails
    midway (disk full) leaves the target as it was; a store whose writes
    publish nothing until committed (S3) takes the copy directly."""
    opener = getattr(dst_fs, "open_atomic_upload", None)
    writer = opener(dst) if opener is not None else None
    if writer is not None:
        try:
            with src_fs.openbin(src) as reader:
                _pump(reader, writer)
            writer.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                writer.discard()
            raise
        return
    temp = temp_upload_path(dirname(dst))
    try:
        with src_fs.openbin(src) as reader, dst_fs.openbin(temp, "wb") as out:
            _pump(reader, out)
        dst_fs.move(temp, dst, overwrite=True)
    except BaseException:
        with contextlib.suppress(Exception):
            dst_fs.remove(temp)
        raise


def _copy_dir_across(src_fs: FS, src: str, dst_fs: FS, dst: str) -> None:
    """Copy a directory tree between two filesystems, file by file, holding
    neither one's lock (see _copy_file_across)."""

    def target(path: str) -> str:
        return fs.path.join(dst, fs.path.relpath(fs.path.frombase(src, path)))

    dst_fs.makedirs(dst, recreate=True)
    for path in src_fs.walk.dirs(src):
        dst_fs.makedirs(target(path), recreate=True)
    for path in src_fs.walk.files(src):
        _copy_file_across(src_fs, path, dst_fs, target(path))


def _pump(reader: Any, writer: Any) -> None:
    while True:
        chunk = reader.read(COPY_CHUNK)
        if not chunk:
            return
        writer.write(chunk)


class VirtualTree(FS):
    """A read-only skeleton of virtual directories with filesystems mounted in it."""

    # As fs.mountfs.MountFS: without "read_only": False, fs.copy/fs.move refuse
    # the tree as a destination; "invalid_path_chars" makes validatepath refuse NUL.
    _meta = {
        "virtual": True,
        "read_only": False,
        "unicode_paths": True,
        "case_insensitive": False,
        "invalid_path_chars": "\0",
    }

    def __init__(self, mounts: Collection[Mount]) -> None:
        super().__init__()
        table: dict[str, Mount] = {}
        for m in mounts:
            table[_norm(m.path)] = m
        # longest first: the innermost mount owns a path
        self._mounts: tuple[Mount, ...] = tuple(
            sorted(table.values(), key=lambda m: len(m.path), reverse=True)
        )
        self._by_path: Mapping[str, Mount] = {m.path: m for m in self._mounts}
        #: every call may run on the event loop (a tree of in-memory mounts,
        #: the test fixture's): no per-path lookup to decide it
        self.all_inline = all(m.inline for m in self._mounts)
        self._lock = threading.RLock()
        self._views: dict[str, VirtualTree] = {}

    def __repr__(self) -> str:
        return f"VirtualTree({[m.path for m in self._mounts]!r})"

    # ------------------------------------------------------------------ lookup

    @property
    def mounts(self) -> tuple[Mount, ...]:
        return self._mounts

    def mount_of(self, path: str) -> tuple[Mount, str] | None:
        """The mount owning ``path`` and the path inside its filesystem, or
        None when the path lies in the virtual skeleton."""
        path = _norm(path)
        for m in self._mounts:
            if is_under(path, m.path):
                sub = path[len(m.path) :] if m.path != "/" else path
                if m.base != "/":
                    return m, m.base + (sub if sub != "/" else "")
                return m, sub or "/"
        return None

    def storage_key(self, path: str) -> tuple[int, str] | None:
        """What ``path`` names in storage, the same from every user's view:
        (id of the mount's filesystem, the path in it); None for a virtual
        directory."""
        found = self.mount_of(path)
        if found is None:
            return None
        inner = unwrap_read_only(found[0].fs)
        origin = getattr(inner, "origin", None)
        if origin is not None:
            return id(origin[0]), origin[1].rstrip("/") + (found[1] if found[1] != "/" else "")
        return id(inner), found[1]

    # ------------------------------------------------------------------ views

    def cached_view(self, root: str) -> VirtualTree | None:
        """``view(root)`` if it has been made already (no I/O), else None."""
        root = _norm(root)
        if root == "/":
            return self
        with self._lock:
            return self._views.get(root)

    def view(self, root: str) -> VirtualTree:
        """Blocking: the tree as a user whose root is ``root`` sees it, its
        "/" being ``root`` and nothing outside it there at all. Mounts inside
        ``root`` move up with it; the mount holding ``root`` is mounted at
        "/" from that folder on. Made once per root and kept. Raises
        ResourceNotFound when ``root`` is not a directory."""
        cached = self.cached_view(root)
        if cached is not None:
            return cached
        root = _norm(root)
        if not self.isdir(root):
            raise fs.errors.ResourceNotFound(root)
        mounts = [
            replace(m, path=m.path[len(root) :] or "/")
            for m in self._mounts
            if is_under(m.path, root)
        ]
        found = self.mount_of(root)
        if found is not None and root not in self._by_path:
            mounts.append(_from_folder(found[0], found[1], "/"))
        view = VirtualTree(mounts)
        with self._lock:
            return self._views.setdefault(root, view)

    def is_mount_point(self, path: str) -> bool:
        return _norm(path) in self._by_path

    def child_mounts(self, path: str) -> dict[str, bool]:
        """Names directly under ``path`` that lead to mount points:
        name → True when the child is itself a mount point."""
        path = _norm(path)
        out: dict[str, bool] = {}
        for m in self._mounts:
            if m.path != path and is_under(m.path, path):
                rest = m.path[len(path) :].lstrip("/") if path != "/" else m.path[1:]
                first = rest.split("/", 1)[0]
                out[first] = out.get(first, False) or first == rest
        return out

    def _leads_to_mount(self, path: str) -> bool:
        path = _norm(path)
        return any(m.path != path and is_under(m.path, path) for m in self._mounts)

    def _writable(self, path: str, what: str) -> tuple[Mount, str]:
        """The mount to write ``path`` in; refuses the virtual skeleton and
        mount points themselves (they belong to the configuration)."""
        path = _norm(path)
        if path in self._by_path or self._leads_to_mount(path):
            raise fs.errors.ResourceReadOnly(path, msg=f"cannot {what} a mount point: {path}")
        found = self.mount_of(path)
        if found is None:
            raise fs.errors.ResourceReadOnly(
                path, msg=f"{path} is outside every mount (virtual directories are read-only)"
            )
        return found

    # ------------------------------------------------------------ FS: reading

    def getinfo(self, path: str, namespaces: Collection[str] | None = None) -> Info:
        self.check()
        path = _norm(path)
        name = basename(path)
        found = self.mount_of(path)
        if found is not None:
            m, sub = found
            try:
                info = m.fs.getinfo(sub, namespaces)
            except fs.errors.ResourceNotFound:
                if self._leads_to_mount(path):
                    return _virtual_info(name, namespaces)
                raise fs.errors.ResourceNotFound(path) from None
            return _renamed(info, name) if path == m.path else info
        if path == "/" or self._leads_to_mount(path):
            return _virtual_info(name, namespaces)
        raise fs.errors.ResourceNotFound(path)

    def scandir(
        self,
        path: str,
        namespaces: Collection[str] | None = None,
        page: tuple[int, int] | None = None,
    ) -> Iterator[Info]:
        self.check()
        path = _norm(path)
        extra = self.child_mounts(path)
        found = self.mount_of(path)
        entries: list[Info] = []
        seen: set[str] = set()
        if found is not None:
            m, sub = found
            try:
                for info in m.fs.scandir(sub, namespaces):
                    if info.name.startswith(UPLOAD_PREFIX):
                        continue
                    if info.name in extra:
                        continue  # shadowed by a mount; listed below
                    entries.append(info)
                    seen.add(info.name)
            except fs.errors.ResourceNotFound:
                if not extra:
                    raise fs.errors.ResourceNotFound(path) from None
        elif not extra and path != "/":
            raise fs.errors.ResourceNotFound(path)
        for name, is_mount in sorted(extra.items()):
            child = (path.rstrip("/") + "/" + name) if path != "/" else "/" + name
            if is_mount:
                entries.append(self.getinfo(child, namespaces))
            else:
                entries.append(_virtual_info(name, namespaces))
        if page is not None:
            start, end = page
            entries = entries[start:end]
        return iter(entries)

    def listdir(self, path: str) -> list[str]:
        return [info.name for info in self.scandir(path)]

    def _file_method(self, path: str, name: str) -> tuple[Callable[..., Any], str] | None:
        """The mount filesystem's own ``name`` method (a fast path some
        filesystems offer) for the file at ``path``, with the path inside
        the mount; None where there is none, or ``path`` is a mount point
        or leads to one (the generic way answers those)."""
        found = self.mount_of(path)
        if found is None or _norm(path) == found[0].path:
            return None
        method = getattr(unwrap_read_only(found[0].fs), name, None)
        if method is None or self._leads_to_mount(path):
            return None
        self.check()
        return method, found[1]

    def open_read(self, path: str, offset: int = 0) -> tuple[BinaryIO, int] | None:
        """(file at ``offset``, size) where the mount's filesystem offers a
        one-step ``open_read`` (local folders, memory, S3: one GET); None:
        use getinfo and openbin."""
        fast = self._file_method(path, "open_read")
        if fast is None:
            return None
        opened: tuple[BinaryIO, int] | None = fast[0](fast[1], offset)
        return opened

    def hash_source(self, path: str) -> tuple[HashSource, Mount]:
        """Blocking: the file at ``path`` as a hash reads it (see
        storage.digests: its size, version token, stored checksums), from
        its filesystem's own ``hash_source`` (local folders, memory, S3:
        one HEAD) or else getinfo and openbin; and its mount. A directory
        (a mount point, one above mount points) raises FileExpected."""
        self.check()
        p = _norm(path)
        found = self.mount_of(p)
        if found is None or p == found[0].path or self._leads_to_mount(p):
            if found is None and p != "/" and not self._leads_to_mount(p):
                raise fs.errors.ResourceNotFound(path)
            raise fs.errors.FileExpected(path)
        mount, sub = found
        inner = unwrap_read_only(mount.fs)
        own = getattr(inner, "hash_source", None)
        with _named_as_given(path):
            source: HashSource = own(sub) if own is not None else generic_source(inner, sub)
        return source, mount

    def isdir(self, path: str) -> bool:
        """The mount's own ``isdir`` (one LIST on S3, where getinfo would
        send a HEAD first), or a directory leading to mount points."""
        self.check()
        p = _norm(path)
        found = self.mount_of(p)
        if found is not None and found[0].fs.isdir(found[1]):
            return True
        return p == "/" or self._leads_to_mount(p)

    def dirinfo(self, path: str, namespaces: Collection[str] | None = None) -> Info | None:
        """``getinfo`` of the directory at ``path``; None when something
        else is there (errors as getinfo's). The mount's own ``dirinfo``
        where it has one (S3: one LIST, where getinfo sends a HEAD first)."""
        fast = self._file_method(path, "dirinfo")
        if fast is not None:
            found: Info | None = fast[0](fast[1], namespaces)
            return found
        info = self.getinfo(path, namespaces)
        return info if info.is_dir else None

    def read_cached(self, path: str, offset: int, limit: int) -> tuple[int, bytes] | None:
        """(size, content from ``offset``) of a small file read without
        blocking, where the mount's filesystem offers ``read_cached`` (local
        folders, see vfsftp.storage.nowait); None: read it in a worker thread."""
        fast = self._file_method(path, "read_cached")
        if fast is None:
            return None
        got: tuple[int, bytes] | None = fast[0](fast[1], offset, limit)
        return got

    def iter_rows(self, path: str) -> Generator[StatRow, None, None]:
        """The rows of a directory, one at a time, for a listing streamed in
        bounded memory: first the children that lead to mount points (each
        once, whatever the mount's own folder holds under that name), then
        the mount's own rows, from its filesystem's ``iter_rows`` (local
        folders, memory, S3: one ListObjectsV2 page at a time) or else its
        ``scandir``. Upload temporaries are hidden. Errors of the directory
        itself, and of the mount points below it, are raised at once: the
        mount points come first so that a listing fails before its first
        byte rather than half-way. Closing the generator frees the
        directory."""
        self.check()
        path = _norm(path)
        extra = self.child_mounts(path)
        found = self.mount_of(path)
        rows: Iterator[StatRow] | None = None
        if found is not None:
            try:
                rows = _mount_rows(found[0], found[1])
            except fs.errors.ResourceNotFound:
                if not extra:
                    raise fs.errors.ResourceNotFound(path) from None
        elif not extra and path != "/":
            raise fs.errors.ResourceNotFound(path)
        try:
            head = [self._mount_point_row(path, name, m) for name, m in sorted(extra.items())]
        except BaseException:
            _close(rows)
            raise
        return _merged(head, rows, frozenset(extra))

    def _mount_point_row(self, path: str, name: str, is_mount: bool) -> StatRow:
        """The row of a child of ``path`` that leads to mount points: the
        mount point's own folder, or a virtual directory."""
        if not is_mount:
            return (name, True, 0, None, 0, 0)
        child = (path.rstrip("/") + "/" + name) if path != "/" else "/" + name
        info = self.getinfo(child, ("details", "stat"))
        return _info_row(info, name)

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> BinaryIO:
        self.check()
        if any(c in mode for c in "wax+"):
            m, sub = self._writable(path, "write to")
        else:
            found = self.mount_of(path)
            if found is None:
                if self._leads_to_mount(path) or _norm(path) == "/":
                    raise fs.errors.FileExpected(path)
                raise fs.errors.ResourceNotFound(path)
            m, sub = found
            if _norm(path) == m.path:
                raise fs.errors.FileExpected(path)
        return m.fs.openbin(sub, mode, buffering, **options)  # type: ignore[no-any-return]

    def getsyspath(self, path: str) -> str:
        found = self.mount_of(path)
        if found is None:
            raise fs.errors.NoSysPath(path)
        m, sub = found
        return m.fs.getsyspath(sub)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ FS: writing

    def makedir(self, path: str, permissions: Any = None, recreate: bool = False) -> Any:
        self.check()
        p = _norm(path)
        if p in self._by_path or self._leads_to_mount(p) or p == "/":
            if recreate:
                return self.opendir(p)
            raise fs.errors.DirectoryExists(path)
        m, sub = self._writable(p, "create")
        m.fs.makedir(sub, permissions=permissions, recreate=recreate)
        return SubFS(self, p)  # just made: opendir's check would cost a request on S3

    def remove(self, path: str) -> None:
        # No getinfo first: fs.base.removetree calls this for every file.
        self.check()
        m, sub = self._writable(path, "remove")
        with _named_as_given(path):
            m.fs.remove(sub)

    def remove_file(self, path: str) -> int:
        """Remove a file and tell the size it had (what a quota releases):
        the mount filesystem's own ``remove_file`` where it has one (S3:
        the HEAD that finds the file gives its size, where getinfo then
        remove would send two), else getinfo then remove."""
        self.check()
        m, sub = self._writable(path, "remove")
        with _named_as_given(path):
            own = getattr(m.fs, "remove_file", None)  # (not through WrapReadOnly)
            if own is not None:
                size: int = own(sub)
                return size
            info = m.fs.getinfo(sub, ("details",))
            if info.is_dir:
                raise fs.errors.FileExpected(path)
            m.fs.remove(sub)
            return int(info.size)

    def removedir(self, path: str) -> None:
        self.check()
        if _norm(path) == "/":
            raise fs.errors.RemoveRootError(path)
        m, sub = self._writable(path, "remove")
        m.fs.removedir(sub)

    def setinfo(self, path: str, info: Mapping[str, Mapping[str, object]]) -> None:
        self.check()
        found = self.mount_of(path)
        if found is None:
            if self._leads_to_mount(path) or _norm(path) == "/":
                raise fs.errors.ResourceReadOnly(path)
            raise fs.errors.ResourceNotFound(path)
        m, sub = found
        m.fs.setinfo(sub, info)

    def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits of ``path`` through the mount filesystem's
        own ``chmod`` (local folders); Unsupported where it has none."""
        self.check()
        m, sub = self._writable(path, "change the mode of")
        chmod = getattr(m.fs, "chmod", None)
        if chmod is None:
            if not m.fs.exists(sub):
                raise fs.errors.ResourceNotFound(path)
            raise fs.errors.Unsupported(path, msg="this filesystem has no permission bits")
        with _named_as_given(path):
            chmod(sub, mode)

    def move(
        self, src_path: str, dst_path: str, overwrite: bool = False, preserve_time: bool = False
    ) -> None:
        self.check()
        sm, ssub = self._writable(src_path, "rename")
        dm, dsub = self._writable(dst_path, "replace")
        if sm is dm:
            sm.fs.move(ssub, dsub, overwrite=overwrite, preserve_time=preserve_time)
            return
        if not overwrite and dm.fs.exists(dsub):
            raise fs.errors.DestinationExists(dst_path)
        if sm.fs.isdir(ssub):
            raise fs.errors.FileExpected(src_path)
        _move_file_across(sm.fs, ssub, dm.fs, dsub, preserve_time)

    def move_file(self, src_path: str, dst_path: str) -> tuple[int, int] | None:
        """Rename a file within one mount through the mount filesystem's
        own ``move_file`` (S3: the checks a rename needs in two requests
        instead of six): the (bytes, files) it replaced. None where there
        is no such shortcut (across mounts, another filesystem) or the
        source is no file: the caller then takes the general way."""
        self.check()
        sm, ssub = self._writable(src_path, "rename")
        dm, dsub = self._writable(dst_path, "replace")
        own = getattr(sm.fs, "move_file", None)  # (not through WrapReadOnly)
        if sm is not dm or own is None:
            return None
        with _named_as_given(dst_path):  # (only the target's folder can be missing)
            replaced: tuple[int, int] | None = own(ssub, dsub)
        return replaced

    def movedir(
        self, src_path: str, dst_path: str, create: bool = False, preserve_time: bool = False
    ) -> None:
        self.check()
        sm, ssub = self._writable(src_path, "rename")
        dm, dsub = self._writable(dst_path, "replace")
        if sm is dm:
            # (without create, the target must exist: its contents are merged)
            if create and _rename_on_disk(sm.fs, ssub, dsub):
                return
            sm.fs.movedir(ssub, dsub, create=create, preserve_time=preserve_time)
            return
        if not sm.fs.isdir(ssub):
            raise fs.errors.DirectoryExpected(src_path)
        if not create and not dm.fs.exists(dsub):
            raise fs.errors.ResourceNotFound(dst_path)
        _copy_dir_across(sm.fs, ssub, dm.fs, dsub)
        sm.fs.removetree(ssub)  # removes the directory itself too

    def close(self) -> None:
        # The mounted filesystems are shared between sessions and owned by the
        # server: a session's tree never closes them.
        super().close()
