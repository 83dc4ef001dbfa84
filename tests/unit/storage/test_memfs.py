"""InlineMemoryFS.open_read and iter_rows (mem:// mounts) against
MemoryFS's generic way: they read fs 2.4.16's entries directly, so a change
there must fail here."""

from __future__ import annotations

import socket
import threading
from typing import Any

import fs.errors
import pytest

from vfsftp.session.data import TransferState, send_stream
from vfsftp.storage.memory import InlineMemoryFS, MemorySnapshot

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("size", [0, 1, 4096, 256 * 1024 + 1, 3 * 1024 * 1024 + 5])
def test_open_read_gives_the_same_bytes_and_size_as_getinfo_and_openbin(size: int) -> None:
    mem = InlineMemoryFS()
    mem.makedirs("/a/b")
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    mem.writebytes("/a/b/f.bin", data)
    opened = mem.open_read("/a/b/f.bin")
    assert opened is not None
    f, got_size = opened
    with f:
        assert f.read() == data
    assert got_size == size == mem.getinfo("/a/b/f.bin", ["details"]).size


@pytest.mark.parametrize("path", ["/missing", "/a", "/a/missing", "/a/f/below-a-file", "/"])
def test_open_read_leaves_what_is_not_a_file_to_the_generic_way(path: str) -> None:
    mem = InlineMemoryFS()
    mem.makedir("/a")
    mem.writebytes("/a/f", b"x")
    assert mem.open_read(path) is None


def test_a_file_is_a_snapshot_of_the_moment_it_was_opened() -> None:
    mem = InlineMemoryFS()
    mem.writebytes("/f", b"before")
    opened = mem.open_read("/f")
    assert opened is not None
    mem.writebytes("/f", b"after, and longer")
    assert opened[0].read() == b"before"
    assert opened[1] == len(b"before")


def test_a_snapshot_shares_the_files_buffer_and_an_in_place_writer_does_not_change_it() -> None:
    mem = InlineMemoryFS()
    mem.writebytes("/f", b"a" * 1_000_000)
    first, second = mem.open_read("/f"), mem.open_read("/f")
    assert first is not None and second is not None
    snap = first[0]
    assert isinstance(snap, MemorySnapshot) and isinstance(second[0], MemorySnapshot)
    # The same object twice: getvalue() handed out the buffer, no copy.
    assert snap.content is second[0].content
    with mem.openbin("/f", "r+") as f:  # changes the entry's own BytesIO
        f.seek(10)
        f.write(b"CHANGED")
    assert snap.content == b"a" * 1_000_000
    assert mem.readbytes("/f")[10:17] == b"CHANGED"


@pytest.mark.parametrize(
    ("offset", "ascii_mode", "expected"),
    [
        (0, False, b"line1\nline2\n" * 50_000),
        (7, False, (b"line1\nline2\n" * 50_000)[7:]),
        (0, True, b"line1\r\nline2\r\n" * 50_000),
        (6, True, (b"line2\r\n" + b"line1\r\nline2\r\n" * 49_999)),
    ],
)
def test_send_stream_sends_a_snapshot_from_offset_binary_or_ascii(
    offset: int, ascii_mode: bool, expected: bytes
) -> None:
    a, b = socket.socketpair()
    got = bytearray()

    def drain() -> None:
        while chunk := b.recv(65536):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        state = TransferState(a, "RETR", "/f")
        sent = send_stream(
            state, MemorySnapshot(b"line1\nline2\n" * 50_000), ascii_mode, offset, True
        )
        a.close()
        reader.join(5)
    finally:
        a.close()
        b.close()
    assert bytes(got) == expected
    assert sent == len(expected)


def test_mem_urls_open_as_inline_memory_mounts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vfsftp.config.schema import config_from_dict
    from vfsftp.storage.mounts import MountTable

    cfg = config_from_dict(
        {"mounts": {"/": "mem://"}, "users": {"u": {"password": "plaintext:p"}}},
        base_dir=tmp_path,
    )
    table = MountTable(cfg)
    try:
        tree = table.tree_for(cfg.users["u"])
        (mount,) = tree.mounts
        assert isinstance(mount.fs, InlineMemoryFS) and mount.inline
        tree.writebytes("/f", b"data")
        opened = tree.open_read("/f")
        assert opened is not None and opened[0].read() == b"data"
    finally:
        table.close()


def _tree_for_listing() -> InlineMemoryFS:
    mem = InlineMemoryFS()
    mem.makedirs("/d/sub/deeper")
    mem.writebytes("/d/empty", b"")
    mem.writebytes("/d/one", b"1")
    mem.writebytes("/d/big", b"x" * 300_000)
    mem.writebytes("/d/sub/inner", b"inner")
    mem.writebytes("/d/n\u00e4me with spaces", b"abc")
    return mem


@pytest.mark.parametrize("path", ["/", "/d", "/d/", "/d/sub", "/d/sub/deeper"])
def test_iter_rows_gives_what_scandir_gives(path: str) -> None:
    mem = _tree_for_listing()
    rows = list(mem.iter_rows(path))
    expected = [
        (i.name, i.is_dir, 0 if i.is_dir else i.size, i.raw["details"]["modified"], 0, 0)
        for i in mem.scandir(path, ("details",))
    ]
    assert rows == expected
    if path == "/d":
        mem.move("/d/one", "/d/renamed")  # (the rows name entries as renamed)
    expected = [
        (i.name, i.is_dir, 0 if i.is_dir else i.size, i.raw["details"]["modified"], 0, 0)
        for i in mem.scandir(path, ("details",))
    ]
    assert list(mem.iter_rows(path)) == expected


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/missing", fs.errors.ResourceNotFound),
        ("/d/missing/below", fs.errors.ResourceNotFound),
        ("/d/one", fs.errors.DirectoryExpected),
        ("/d/one/below-a-file", fs.errors.ResourceNotFound),
        ("/../up", fs.errors.IllegalBackReference),
    ],
)
def test_iter_rows_raises_what_scandir_raises(path: str, error: type[Exception]) -> None:
    mem = _tree_for_listing()
    with pytest.raises(error):
        list(mem.scandir(path))
    with pytest.raises(error):
        mem.iter_rows(path)  # at once, not at the first row


def test_iter_rows_sees_a_file_being_written_and_leaves_a_snapshot_shared() -> None:
    mem = _tree_for_listing()
    opened = mem.open_read("/d/big")
    assert opened is not None
    snap, _ = opened
    with mem.openbin("/d/one", "r+") as f:
        f.seek(0, 2)
        f.write(b"23")
        f.flush()
        assert dict((r[0], r[2]) for r in mem.iter_rows("/d"))["one"] == 3
    assert dict((r[0], r[2]) for r in mem.iter_rows("/d"))["big"] == 300_000
    assert isinstance(snap, MemorySnapshot)
    # listing measured the file without taking a writable view of its buffer
    # (BytesIO.getbuffer would have unshared it: a copy per listed file)
    assert snap.content is mem._get_dir_entry("/d/big").bytes_file.getvalue()


# ---------------------------------------------------------------- APPE, REST+STOR


@pytest.mark.parametrize(
    ("offset", "append", "new", "expected"),
    [
        (0, True, b"++", b"0123456789++"),  # APPE
        (4, False, b"ab", b"0123ab"),  # REST 4 + STOR: the rest cut off
        (10, False, b"ab", b"0123456789ab"),  # REST at the end
        (3, False, b"", b"012"),
    ],
)
def test_splice_keeps_the_file_until_commit(
    offset: int, append: bool, new: bytes, expected: bytes
) -> None:
    mem = InlineMemoryFS()
    mem.writebytes("/f", b"0123456789")
    before = mem.open_read("/f")
    assert before is not None
    writer = mem.open_atomic_upload("/f", offset, append)
    assert writer is not None
    for i in range(len(new)):
        writer.write(memoryview(new)[i : i + 1])
    assert mem.readbytes("/f") == b"0123456789"  # nothing visible yet
    writer.commit()
    assert mem.readbytes("/f") == expected
    with before[0] as snapshot:  # a RETR that had started keeps its bytes
        assert snapshot.read() == b"0123456789"


class _WatchedLock:
    """An entry's lock that tells when somebody starts waiting for it."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.wanted = threading.Event()

    def __enter__(self) -> None:
        self.wanted.set()
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_appe_copies_its_bytes_without_the_filesystem_lock() -> None:
    # The bytes of an APPE to an existing file are copied under that file's
    # lock only: every other call on the filesystem (the event loop's
    # inline ones among them) goes on meanwhile.
    mem = InlineMemoryFS()
    mem.writebytes("/f", b"old")
    mem.writebytes("/other", b"x")
    entry = mem._get_dir_entry("/f")
    watched = entry.lock = _WatchedLock(entry.lock)
    writer = mem.open_atomic_upload("/f", 0, True)
    assert writer is not None
    writer.write(b"+new")
    errors: list[BaseException] = []

    def commit() -> None:
        try:
            writer.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with watched.lock:  # the file busy: the commit waits for it
        committer = threading.Thread(target=commit)
        committer.start()
        assert watched.wanted.wait(10)
        # the commit is at the file's lock: the filesystem's is free
        assert mem._lock.acquire(timeout=10)
        mem._lock.release()
        assert mem.readbytes("/other") == b"x"
    committer.join(10)
    assert not committer.is_alive() and not errors
    assert mem.readbytes("/f") == b"old+new"


def _held_by_another_thread(lock: Any) -> bool:
    """Whether a thread other than the caller's holds ``lock`` now."""
    answer: list[bool] = []

    def ask() -> None:
        got = lock.acquire(blocking=False)
        if got:
            lock.release()
        answer.append(not got)

    asker = threading.Thread(target=ask)
    asker.start()
    asker.join(10)
    return answer == [True]


def test_appe_to_a_new_file_is_made_and_filled_under_the_filesystem_lock() -> None:
    # Nobody sees the new file empty: it is made and gets its bytes in one
    # hold of the filesystem's lock, as a plain upload's rename publishes.
    mem = InlineMemoryFS()
    writer = mem.open_atomic_upload("/new", 0, True)
    assert writer is not None
    writer.write(b"whole")
    held: list[bool] = []
    real_write = writer._write

    def write(entry: Any) -> None:
        held.append(_held_by_another_thread(mem._lock))
        real_write(entry)

    writer._write = write  # type: ignore[method-assign]
    writer.commit()
    assert held == [True]
    assert mem.readbytes("/new") == b"whole"


def test_splice_discarded_changes_nothing() -> None:
    mem = InlineMemoryFS()
    mem.writebytes("/f", b"keep")
    writer = mem.open_atomic_upload("/f", 0, True)
    assert writer is not None
    writer.write(b"lost")
    writer.discard()
    assert mem.readbytes("/f") == b"keep"
    assert mem.listdir("/") == ["f"]


def test_appe_to_a_new_file_and_plain_uploads() -> None:
    mem = InlineMemoryFS()
    assert mem.open_atomic_upload("/f") is None  # a plain STOR: the temporary file
    writer = mem.open_atomic_upload("/new", 0, True)
    assert writer is not None
    writer.write(b"made")
    writer.commit()
    assert mem.readbytes("/new") == b"made"


@pytest.mark.parametrize(
    ("path", "offset", "append", "error"),
    [
        ("/f", 11, False, "beyond the end"),
        ("/missing", 1, False, "missing"),
        ("/d", 0, True, "d"),
    ],
)
def test_splice_refused_before_any_data(path: str, offset: int, append: bool, error: str) -> None:
    from vfsftp.storage.errors import StorageError

    mem = InlineMemoryFS()
    mem.writebytes("/f", b"0123456789")
    mem.makedir("/d")
    with pytest.raises((StorageError, fs.errors.ResourceNotFound, fs.errors.FileExpected)) as exc:
        mem.check_atomic_upload(path, offset, append)
    assert error in str(exc.value)
    if isinstance(exc.value, StorageError):
        assert exc.value.code == 554
