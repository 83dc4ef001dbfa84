"""InlineMemoryFS.open_read (mem:// mounts) against MemoryFS's generic way:
it reads fs 2.4.16's entries directly, so a change there must fail here."""

from __future__ import annotations

import pytest

from vfsftp.memfs import SNAPSHOT, InlineMemoryFS

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("size", [0, 1, 4096, SNAPSHOT, SNAPSHOT + 1, 3 * SNAPSHOT])
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


def test_a_small_file_is_a_snapshot_of_the_moment_it_was_opened() -> None:
    mem = InlineMemoryFS()
    mem.writebytes("/f", b"before")
    opened = mem.open_read("/f")
    assert opened is not None
    mem.writebytes("/f", b"after, and longer")
    assert opened[0].read() == b"before"
    assert opened[1] == len(b"before")


def test_mem_urls_open_as_inline_memory_mounts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vfsftp.config import config_from_dict
    from vfsftp.mounts import MountTable

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
