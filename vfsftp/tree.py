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
- names of in-flight uploads (``UPLOAD_PREFIX``) are hidden from listings.

The tree holds no state but its mount table, so one instance per session is
cheap and needs no lock; the mounted filesystems are shared between sessions.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import fs.copy
import fs.errors
import fs.move
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info
from fs.memoryfs import MemoryFS
from fs.path import abspath, normpath
from fs.subfs import SubFS
from fs.wrap import WrapReadOnly

from .paths import basename, dirname, is_under
from .quota import Quota

__all__ = ["UPLOAD_PREFIX", "Mount", "StatRow", "VirtualTree", "unwrap_read_only"]

UPLOAD_PREFIX = ".vfsftp-upload-"

#: (name, is_dir, size, mtime, st_ino, st_dev): a listing row without an
#: ``Info``, from a mount filesystem's ``scan_rows`` (0, 0 where it has no
#: inode numbers)
StatRow = tuple[str, bool, int, float, int, int]


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
    #: the mount's storage quota (vfsftp.quota), if it has one
    quota: Quota | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        path: str,
        filesystem: FS,
        read_only: bool = False,
        kind: str | None = None,
        quota: Quota | None = None,
    ) -> Mount:
        inline = isinstance(filesystem, MemoryFS)
        label = kind or type(filesystem).__name__.lower().removesuffix("fs") or "fs"
        return cls(_norm(path), filesystem, read_only, inline, label, quota)


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


def _move_file_across(src_fs: FS, src: str, dst_fs: FS, dst: str, preserve_time: bool) -> None:
    """Copy, then delete the original. The copy goes to a hidden temporary
    name beside the target and is renamed into place once whole (as an
    upload), so a copy that fails midway (disk full) leaves the target as
    it was; a store whose writes publish nothing until closed cleanly (S3)
    takes the copy directly."""
    if getattr(dst_fs, "open_atomic_upload", None) is not None:
        fs.move.move_file(src_fs, src, dst_fs, dst, preserve_time=preserve_time)
        return
    temp = f"{dirname(dst).rstrip('/')}/{UPLOAD_PREFIX}{uuid.uuid4().hex}"
    try:
        fs.copy.copy_file(src_fs, src, dst_fs, temp, preserve_time=preserve_time)
        dst_fs.move(temp, dst, overwrite=True)
    except BaseException:
        with contextlib.suppress(Exception):
            dst_fs.remove(temp)
        raise
    src_fs.remove(src)


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

    def __repr__(self) -> str:
        return f"VirtualTree({[m.path for m in self._mounts]!r})"

    # ------------------------------------------------------------------ lookup

    @property
    def mounts(self) -> tuple[Mount, ...]:
        return self._mounts

    def mount_of(self, path: str) -> tuple[Mount, str] | None:
        """The mount owning ``path`` and the path inside it, or None when the
        path lies in the virtual skeleton."""
        path = _norm(path)
        for m in self._mounts:
            if is_under(path, m.path):
                sub = path[len(m.path) :] if m.path != "/" else path
                return m, sub or "/"
        return None

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
            return _renamed(info, name) if sub == "/" else info
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
        if found is None or found[1] == "/":
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
        folders, see vfsftp.nowait); None: read it in a worker thread."""
        fast = self._file_method(path, "read_cached")
        if fast is None:
            return None
        got: tuple[int, bytes] | None = fast[0](fast[1], offset, limit)
        return got

    def scan_rows(self, path: str) -> list[StatRow] | None:
        """Plain stat rows of a directory that lies wholly in one mount whose
        filesystem offers ``scan_rows`` (local folders, memory); None otherwise,
        and the caller takes the scandir way."""
        found = self.mount_of(path)
        if found is None or self.child_mounts(path):
            return None
        m, sub = found
        scan = getattr(m.fs, "scan_rows", None)
        if scan is None:
            return None
        self.check()
        rows: list[StatRow] = scan(sub)
        return [r for r in rows if not r[0].startswith(UPLOAD_PREFIX)]

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
            if sub == "/":
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

    def movedir(
        self, src_path: str, dst_path: str, create: bool = False, preserve_time: bool = False
    ) -> None:
        self.check()
        sm, ssub = self._writable(src_path, "rename")
        dm, dsub = self._writable(dst_path, "replace")
        if sm is dm:
            if _rename_on_disk(sm.fs, ssub, dsub):
                return
            sm.fs.movedir(ssub, dsub, create=create, preserve_time=preserve_time)
            return
        if not sm.fs.isdir(ssub):
            raise fs.errors.DirectoryExpected(src_path)
        if not create and not dm.fs.exists(dsub):
            raise fs.errors.ResourceNotFound(dst_path)
        fs.copy.copy_dir(sm.fs, ssub, dm.fs, dsub)
        sm.fs.removetree(ssub)  # removes the directory itself too

    def close(self) -> None:
        # The mounted filesystems are shared between sessions and owned by the
        # server: a session's tree never closes them.
        super().close()
