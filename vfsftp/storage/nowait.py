"""Read a small file from a local folder without any call that can block.

A thread hop per RETR costs a third of a short session's CPU on a local
folder (the worker's syscalls each hand the GIL back and forth with the busy
event loop). The rule stays: nothing that may block runs on the event loop. On Linux the
kernel can promise that for a file whose path and pages are in memory:

- ``openat2(2)`` with ``RESOLVE_CACHED`` (Linux 5.12) fails with EAGAIN
  instead of doing any I/O or revalidation for the lookup; with
  ``RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`` it also refuses a path that
  leaves the folder (symbolic links included), the jail of ``JailedOSFS``;
  ``O_NONBLOCK`` keeps a FIFO from blocking the open;
- ``fstat`` of an open descriptor and ``close`` of a read-only one do no I/O
  on local filesystems;
- ``preadv2(2)`` with ``RWF_NOWAIT`` (Linux 4.14) returns EAGAIN, or fewer
  bytes, instead of waiting for pages not in the page cache.

Anything else (EAGAIN, a short read, a filesystem not known to be local such
as NFS, where opening a file talks to the server, another OS) answers None
and the caller takes the worker thread as before.
"""

from __future__ import annotations

import ctypes
import os
import stat as statmod

from .. import fastpaths

__all__ = ["available", "is_local_filesystem", "read_cached"]

_SYS_OPENAT2 = 437  # the same number on every Linux architecture (5.6+)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE_CACHED = 0x20
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS | _RESOLVE_CACHED
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)

#: filesystems whose open, fstat and close of a cached file do no I/O
LOCAL_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs"})


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def _load_syscall() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not fastpaths.NOWAIT_READS:
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_long
    return fn


_syscall = _load_syscall()
_HOW = _OpenHow(_OPEN_FLAGS, 0, _RESOLVE)
_HOW_REF = ctypes.byref(_HOW)
_HOW_NO_LINKS = _OpenHow(_OPEN_FLAGS, 0, _RESOLVE | _RESOLVE_NO_SYMLINKS)
_HOW_NO_LINKS_REF = ctypes.byref(_HOW_NO_LINKS)
_HOW_SIZE = ctypes.sizeof(_HOW)


def _openat2(dirfd: int, path: bytes, no_links: bool = False) -> int:
    """A descriptor, or -errno."""
    assert _syscall is not None
    how = _HOW_NO_LINKS_REF if no_links else _HOW_REF
    fd = int(_syscall(_SYS_OPENAT2, dirfd, path, how, _HOW_SIZE))
    return fd if fd >= 0 else -ctypes.get_errno()


def _probe() -> bool:
    if _syscall is None:
        return False
    try:
        root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fd = _openat2(root, b".")
        if fd < 0:
            return False  # ENOSYS (old kernel), EINVAL (RESOLVE_CACHED unknown)...
        os.close(fd)
        return True
    finally:
        os.close(root)


_AVAILABLE = _probe()


def available() -> bool:
    """True when this kernel offers openat2 with RESOLVE_CACHED."""
    return _AVAILABLE


def is_local_filesystem(path: str) -> bool:
    """True when ``path`` lies on a filesystem of LOCAL_FILESYSTEMS (read from
    /proc/self/mountinfo: the mount point that is the longest prefix)."""
    real = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                try:
                    sep = fields.index("-")
                except ValueError:
                    continue
                point = fields[4].replace("\\040", " ")
                if (real == point or real.startswith(point.rstrip("/") + "/")) and len(
                    point
                ) >= len(best):
                    best, kind = point, fields[sep + 1]
    except OSError:
        return False
    return kind in LOCAL_FILESYSTEMS


def read_cached(
    dirfd: int, path: str, offset: int, limit: int, no_links: bool = False
) -> tuple[int, bytes] | None:
    """(size, content from ``offset``) of the regular file at ``path``
    (relative to the folder open as ``dirfd``) when its size is at most
    ``limit`` bytes past ``offset`` and it can be read without blocking;
    otherwise None (any failure: the caller's worker thread then tells the
    exact error). ``no_links``: a path through any symbolic link is refused
    (RESOLVE_NO_SYMLINKS)."""
    fd = _openat2(dirfd, os.fsencode(path.lstrip("/") or "."), no_links)
    if fd < 0:
        return None
    try:
        st = os.fstat(fd)
        size = st.st_size
        if not statmod.S_ISREG(st.st_mode) or offset > size or size - offset > limit:
            return None
        want = size - offset
        if want == 0:
            return size, b""
        buf = bytearray(want + 1)  # one more: a file that grew meanwhile is seen
        try:
            n = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
        except OSError:  # EAGAIN (not cached), EOPNOTSUPP...
            return None
        if n != want:
            return None  # partly cached, or changed since the fstat
        return size, bytes(buf[:n])
    finally:
        os.close(fd)
