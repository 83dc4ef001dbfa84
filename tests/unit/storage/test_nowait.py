"""vfsftp.storage.nowait and JailedOSFS.read_cached: small files read on the event
loop only when the kernel promises not to block; None for anything else
(the caller then uses a worker thread and reports the exact error)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from vfsftp.storage import nowait
from vfsftp.storage.local import JailedOSFS

pytestmark = [
    pytest.mark.timeout(10),
    pytest.mark.skipif(
        not nowait.available(),
        reason="needs Linux 5.12+ (openat2 RESOLVE_CACHED), off under VFSFTP_PORTABLE",
    ),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "small.bin").write_bytes(b"0123456789")
    (root / "empty").write_bytes(b"")
    (root / "big.bin").write_bytes(b"x" * 5000)
    (root / "sub" / "inner.txt").write_bytes(b"inner")
    (tmp_path / "secret").write_bytes(b"outside the mount")
    (root / "out-link").symlink_to(tmp_path / "secret")
    (root / "in-link").symlink_to("sub/inner.txt")
    (root / "abs-link").symlink_to(root / "sub" / "inner.txt")
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture
def jailed(folder: Path):  # type: ignore[no-untyped-def]
    mount = JailedOSFS(str(folder))
    assert nowait.is_local_filesystem(str(folder)), "tmp_path is expected on a local disk"
    yield mount
    mount.close()


@pytest.mark.parametrize(
    ("path", "offset", "expected"),
    [
        ("/small.bin", 0, (10, b"0123456789")),
        ("small.bin", 0, (10, b"0123456789")),
        ("/small.bin", 4, (10, b"456789")),
        ("/small.bin", 10, (10, b"")),
        ("/empty", 0, (0, b"")),
        ("/sub/inner.txt", 0, (5, b"inner")),
        # Symbolic links, even inside, are left to the worker (the kernel's
        # cached lookup does not follow them: EAGAIN), which applies the jail
        ("/in-link", 0, None),
        ("/abs-link", 0, None),
        ("/big.bin", 0, None),  # over the limit: streamed by a worker
        ("/big.bin", 4000, (5000, b"x" * 1000)),  # what is left fits
        ("/small.bin", 11, None),  # REST past the end: the worker answers 554
        ("/missing", 0, None),
        ("/sub", 0, None),  # a directory
        ("/", 0, None),
        ("/out-link", 0, None),  # leads out of the mount
        ("/../secret", 0, None),
        ("/fifo", 0, None),  # must not block waiting for a writer
    ],
)
def test_read_cached(
    jailed: JailedOSFS, path: str, offset: int, expected: tuple[int, bytes] | None
) -> None:
    assert jailed.read_cached(path, offset, 1024) == expected


def test_a_fifo_is_refused_without_blocking(jailed: JailedOSFS) -> None:
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(jailed.read_cached("/fifo", 0, 1024)))
    t.start()
    t.join(5)
    assert not t.is_alive() and result == [None]


@pytest.mark.parametrize(
    "kernel_says",
    [BlockingIOError(11, "EAGAIN"), OSError(95, "EOPNOTSUPP"), 100],  # 100: partly cached
)
def test_pages_not_in_memory_are_left_to_a_worker(
    jailed: JailedOSFS, monkeypatch: pytest.MonkeyPatch, kernel_says: Exception | int
) -> None:
    # Which pages are in memory is the kernel's to say, and a real "cold"
    # file cannot be kept cold here: a RWF_NOWAIT read that misses starts
    # readahead, which on this VM's disk often completes before the read
    # looks again (CI once failed on it). So the kernel's answers are played.
    fds = len(os.listdir("/proc/self/fd"))

    def preadv(fd: int, buffers: list[bytearray], offset: int, flags: int = 0) -> int:
        assert flags & os.RWF_NOWAIT
        if isinstance(kernel_says, Exception):
            raise kernel_says
        return kernel_says

    monkeypatch.setattr(os, "preadv", preadv)
    assert jailed.read_cached("/big.bin", 0, 128 * 1024) is None
    assert len(os.listdir("/proc/self/fd")) == fds


def test_a_file_just_evicted_is_read_whole_or_not_at_all(folder: Path, jailed: JailedOSFS) -> None:
    content = os.urandom(64 * 1024)
    (folder / "cold.bin").write_bytes(content)
    fd = os.open(folder / "cold.bin", os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert jailed.read_cached("/cold.bin", 0, 128 * 1024) in (None, (len(content), content))


@pytest.mark.parametrize(("path", "local"), [("/proc/self", False), ("/sys", False)])
def test_is_local_filesystem(path: str, local: bool) -> None:
    assert nowait.is_local_filesystem(path) is local


def test_no_descriptor_is_left_open(jailed: JailedOSFS) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for path in ("/small.bin", "/big.bin", "/missing", "/sub", "/fifo", "/out-link"):
        jailed.read_cached(path, 0, 1024)
    assert len(os.listdir("/proc/self/fd")) == before
