"""Local folder mounts: PyFilesystem2's OSFS, jailed and with a fast listing.

- A symbolic link that leads out of the folder is refused (550), as
  pyftpdlib's ``validpath`` does, so that a stray link never exposes the host.
- ``validatepath`` skips fs 2.4.16's host-path length check, which costs a
  ``getsyspath`` (and so a jail check) per call; vfsftp.protocol.paths already caps
  names at 255 bytes and paths at 4096, and the OS answers ENAMETOOLONG past
  its own limit.
- ``scandir`` reads one ``os.scandir`` with one ``stat`` per entry and builds
  a small ``stat`` namespace (inode, device) instead of OSFS's
  ``dir(stat_result)`` per entry, which dominated MLSD of large directories.
- ``beneath(folder)`` is the same folder jailed one level deeper: a user
  confined to a folder of the mount (vfsftp.storage.tree.VirtualTree.view) cannot
  follow a link out of it either.
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod
import threading
from collections.abc import Collection, Iterator
from typing import IO, Any

import fs.errors
from fs.error_tools import convert_os_errors
from fs.info import Info
from fs.osfs import OSFS
from fs.path import abspath, normpath

from . import nowait
from .digests import HashSource
from .tree import StatRow

__all__ = ["JailedOSFS"]

_FAST_NAMESPACES = frozenset({"basic", "details", "stat"})
#: os.scandir takes a directory's descriptor (POSIX; not Windows)
_SCANDIR_FD = os.scandir in os.supports_fd


class _Descriptor:
    """A directory descriptor that a listing owns: closed when the listing
    ends, or when it is dropped without ever being read (a generator that
    never started runs no ``finally``)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


#: Linux names an open descriptor's real path here: one readlink instead of
#: realpath's lstat per path component
_PROC_FD = os.path.isdir("/proc/self/fd")


def _token(st: os.stat_result) -> tuple[object, ...]:
    # What changes when the file does (a rename over the name changes the
    # inode; a write, the size or the mtime); not ctime, which a rename of
    # the file itself (an upload put in place) changes too.
    return ("local", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class JailedOSFS(OSFS):  # type: ignore[misc]
    """A local folder whose paths must really be inside it."""

    def __init__(self, root_path: str, *, _within: tuple[JailedOSFS, str] | None = None) -> None:
        super().__init__(root_path)
        self._real_root = os.path.realpath(self._root_path)
        self._real_prefix = self._real_root.rstrip(os.sep) + os.sep
        #: the folder, open for read_cached (vfsftp.storage.nowait); -1: not offered
        self._dirfd = -1
        #: (the mount's filesystem, this folder in it) for a beneath() one,
        #: which reads through the mount's descriptor instead of its own
        self._within = _within
        self._beneath: dict[str, JailedOSFS] = {}
        self._beneath_lock = threading.Lock()
        if _within is None and nowait.available() and nowait.is_local_filesystem(self._real_root):
            with contextlib.suppress(OSError):
                self._dirfd = os.open(self._real_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    @property
    def origin(self) -> tuple[JailedOSFS, str] | None:
        """(the mount's filesystem, the folder) of a ``beneath()`` one."""
        return self._within

    def beneath(self, folder: str) -> JailedOSFS:
        """Blocking: this filesystem's ``folder`` as a filesystem of its own,
        jailed there. Made once per folder; it holds no descriptor (small
        reads go through this one's)."""
        folder = self.validatepath(folder)
        with self._beneath_lock:
            child = self._beneath.get(folder)
        if child is None:
            sys_path = os.fsdecode(self._to_sys_path(folder))
            child = JailedOSFS(sys_path, _within=(self, folder))
            with self._beneath_lock:
                child = self._beneath.setdefault(folder, child)
        return child

    def close(self) -> None:
        if self._dirfd >= 0:
            os.close(self._dirfd)
            self._dirfd = -1
        super().close()

    def read_cached(self, path: str, offset: int, limit: int) -> tuple[int, bytes] | None:
        """(size, content from ``offset``) of a small file whose path and
        pages are in memory, read without any call that can block (so on
        the event loop); None otherwise: then ``open_read`` in a worker
        thread. Symbolic links leading out are refused by the kernel here
        (RESOLVE_BENEATH), and then by ``open_read`` with the usual 550."""
        if self._within is not None:
            # Through the mount's descriptor, refusing every link: one may
            # stay inside the mount but lead out of this folder.
            mount, folder = self._within
            if mount._dirfd < 0:
                return None
            try:
                _path = self.validatepath(path)
            except (fs.errors.FSError, ValueError):
                return None
            inner = folder.rstrip("/") + _path
            return nowait.read_cached(mount._dirfd, inner, offset, limit, no_links=True)
        if self._dirfd < 0:
            return None
        try:
            _path = self.validatepath(path)
        except (fs.errors.FSError, ValueError):  # (IllegalBackReference is a ValueError)
            return None
        return nowait.read_cached(self._dirfd, _path, offset, limit)

    def _inside(self, sys_path: str) -> bool:
        real = os.path.realpath(sys_path)
        return real == self._real_root or real.startswith(self._real_prefix)

    def _jail(self, sys_path: str, path: str) -> None:
        if not self._inside(sys_path):
            raise fs.errors.PermissionDenied(path=path, msg="symbolic link leads outside the mount")

    def _to_sys_path(self, path: str) -> bytes:
        sys_path: bytes = super()._to_sys_path(path)
        self._jail(os.fsdecode(sys_path), path)
        return sys_path

    def getsyspath(self, path: str) -> str:
        sys_path: str = super().getsyspath(path)
        self._jail(sys_path, path)
        return sys_path

    def chmod(self, path: str, mode: int) -> None:
        """SITE CHMOD: the permission bits only (the caller refuses setuid,
        setgid and sticky; they are masked off here too)."""
        _path = self.validatepath(path)
        sys_path = self._to_sys_path(_path)
        with convert_os_errors("chmod", path):
            os.chmod(sys_path, mode & 0o777)

    def validatepath(self, path: str) -> str:
        self.check()
        if "\0" in path:
            raise fs.errors.InvalidCharsInPath(path)
        return str(abspath(normpath(path)))

    def scandir(
        self,
        path: str,
        namespaces: Collection[str] | None = None,
        page: tuple[int, int] | None = None,
    ) -> Iterator[Info]:
        wanted = frozenset(namespaces or ())
        if not wanted <= _FAST_NAMESPACES:
            return super().scandir(path, namespaces, page)  # type: ignore[no-any-return]
        _path = self.validatepath(path)
        sys_path = os.fsdecode(self._to_sys_path(_path))
        infos: list[Info] = []
        with convert_os_errors("scandir", path, directory=True), os.scandir(sys_path) as it:
            for entry in it:
                try:
                    if entry.is_symlink() and not self._inside(entry.path):
                        continue  # unreachable anyway; don't reveal the target
                    st = entry.stat() if wanted - {"basic"} else None
                    is_dir = statmod.S_ISDIR(st.st_mode) if st is not None else entry.is_dir()
                except OSError:
                    continue  # vanished or broken link: not listable
                raw: dict[str, dict[str, Any]] = {"basic": {"name": entry.name, "is_dir": is_dir}}
                if st is not None and "details" in wanted:
                    raw["details"] = self._make_details_from_stat(st)
                if st is not None and "stat" in wanted:
                    raw["stat"] = {"st_ino": st.st_ino, "st_dev": st.st_dev, "st_mode": st.st_mode}
                infos.append(Info(raw))
        if page is not None:
            infos = infos[page[0] : page[1]]
        return iter(infos)

    def iter_rows(self, path: str) -> Iterator[StatRow]:
        """A directory's entries as plain tuples, one at a time: what LIST
        and MLSD show, without an ``Info`` (and its dicts) per entry, which
        cost more than the ``stat`` itself on large directories, and in
        bounded memory. Same rules as scandir: links leading out and
        vanished entries are left out. The directory is opened now (its
        errors are raised here); closing the iterator closes it.

        Read through a descriptor of the directory where the platform
        allows: each entry's ``stat`` is then an ``fstatat`` of its name,
        not a walk of its whole path from the root (a third of a listing
        of 10,000 files)."""
        _path = self.validatepath(path)
        sys_path = os.fsdecode(self._to_sys_path(_path))
        if not _SCANDIR_FD:
            with convert_os_errors("scandir", path, directory=True):
                it = os.scandir(sys_path)
            return self._rows(it, path, sys_path, None)
        with convert_os_errors("scandir", path, directory=True):
            fd = _Descriptor(os.open(sys_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            try:
                it = os.scandir(fd.fd)
            except BaseException:
                fd.close()
                raise
        return self._rows(it, path, sys_path, fd)

    def _rows(
        self,
        it: Iterator[os.DirEntry[str]],
        path: str,
        sys_path: str,
        fd: _Descriptor | None,
    ) -> Iterator[StatRow]:
        inside = self._inside
        isdir = statmod.S_ISDIR
        join = os.path.join
        try:
            with it, convert_os_errors("scandir", path, directory=True):  # type: ignore[attr-defined]
                for entry in it:
                    try:
                        if entry.is_symlink() and not inside(join(sys_path, entry.name)):
                            continue
                        st = entry.stat()
                    except OSError:
                        continue
                    d = isdir(st.st_mode)
                    yield (
                        entry.name,
                        d,
                        0 if d else st.st_size,
                        st.st_mtime,
                        st.st_ino,
                        st.st_dev,
                    )
        finally:
            if fd is not None:
                fd.close()

    def hash_source(self, path: str) -> HashSource:
        """The file as a hash reads it (storage.digests): opened once, so
        that its size, its version token (device, inode, size, mtime) and
        the bytes read are all of one file, whatever is renamed over the
        name meanwhile. Opened without blocking and refused unless a
        regular file: a FIFO would hold the reading thread until a writer
        came."""
        _path = self.validatepath(path)
        sys_path = os.path.join(self._root_path, _path.lstrip("/"))
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        with convert_os_errors("openbin", path):
            fd = os.open(sys_path, flags)
        try:
            real = os.readlink(f"/proc/self/fd/{fd}") if _PROC_FD else os.path.realpath(sys_path)
            if real != self._real_root and not real.startswith(self._real_prefix):
                raise fs.errors.PermissionDenied(
                    path=path, msg="symbolic link leads outside the mount"
                )
            st = os.fstat(fd)
            if not statmod.S_ISREG(st.st_mode):
                raise fs.errors.FileExpected(path)
            f = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

        def opener(start: int, stop: int) -> IO[bytes]:
            f.seek(start)
            return f

        return HashSource(st.st_size, _token(st), opener=opener, closer=f.close)

    def file_token(self, path: str) -> tuple[object, ...]:
        """The version token ``hash_source`` gives the file at ``path``."""
        sys_path = self._to_sys_path(self.validatepath(path))
        with convert_os_errors("getinfo", path):
            return _token(os.stat(sys_path))

    def open_read(self, path: str, offset: int = 0) -> tuple[IO[bytes], int] | None:
        """Open a file for reading (at ``offset``) and tell its size: open, fstat and the
        jail check on the open descriptor (no TOCTOU, and a few syscalls
        instead of getinfo + openbin's realpath walks: this runs on every
        RETR, in a worker thread that contends with the event loop for
        the GIL). None when the open fails: the caller takes the generic
        way, which raises the usual error (and never tells whether a path
        behind an outward link exists)."""
        _path = self.validatepath(path)
        sys_path = os.path.join(self._root_path, _path.lstrip("/"))
        try:
            fd = os.open(sys_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            real = os.readlink(f"/proc/self/fd/{fd}") if _PROC_FD else os.path.realpath(sys_path)
            if real != self._real_root and not real.startswith(self._real_prefix):
                raise fs.errors.PermissionDenied(
                    path=path, msg="symbolic link leads outside the mount"
                )
            st = os.fstat(fd)
            if statmod.S_ISDIR(st.st_mode):
                raise fs.errors.FileExpected(path)
            f = os.fdopen(fd, "rb")
            if offset:
                f.seek(offset)
        except BaseException:
            os.close(fd)
            raise
        return f, st.st_size
