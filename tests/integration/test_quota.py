"""Quotas against a live server: bytes and files, per user and per mount,
enforced while the data arrives (552, nothing partial left), kept up to date
by deletes, renames and replacements, and measured from what is already
stored."""

from __future__ import annotations

import contextlib
import ftplib
import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, USER, ServerFactory, get, login, mount_url

from vfsftp.testing import ThreadedFTPServer


def _stor(f: ftplib.FTP, path: str, data: bytes, verb: str = "STOR") -> str:
    """Upload and return the final reply, also when the server cuts the
    transfer short (the client may then fail to send the rest)."""
    host, port = f.makepasv()
    conn = socket.create_connection((host, port), timeout=10)
    try:
        try:
            f.sendcmd(f"{verb} {path}")
        except ftplib.Error as exc:
            return str(exc)
        with contextlib.suppress(OSError):  # the server stopped reading: its reply says why
            conn.sendall(data)
    finally:
        conn.close()
    try:
        return f.getresp()
    except ftplib.Error as exc:
        return str(exc)


@pytest.fixture
def user_quota(
    make_server: ServerFactory, backend: str, tmp_path: Path
) -> Iterator[tuple[ThreadedFTPServer, ftplib.FTP]]:
    srv = make_server(
        {
            "mounts": {"/": mount_url(backend, tmp_path), "/scratch": "mem://"},
            "users": {
                USER: {
                    "password": f"plaintext:{PASSWORD}",
                    "root": "/",  # the home is not the whole view: /scratch too
                    "home": "/home",
                    "quota": {"max_bytes": 100_000, "max_files": 3},
                }
            },
        }
    )
    srv.server.mounts.global_mounts[0].fs.makedir("/home")
    f = login(srv)
    yield srv, f
    f.quit()


def test_user_bytes_quota_stops_an_upload_midway(
    user_quota: tuple[ThreadedFTPServer, ftplib.FTP],
) -> None:
    _, f = user_quota
    assert _stor(f, "a", b"a" * 60_000).startswith("226")
    reply = _stor(f, "b", b"b" * 2_000_000)
    assert reply.startswith("552 Quota exceeded (user alice: 100000 bytes)"), reply
    assert f.nlst() == ["a"]  # nothing partial
    # What the failed upload had taken was given back.
    assert _stor(f, "c", b"c" * 40_000).startswith("226")
    assert _stor(f, "d", b"d").startswith("552")


def test_replacing_a_file_counts_only_the_difference(
    user_quota: tuple[ThreadedFTPServer, ftplib.FTP],
) -> None:
    _, f = user_quota
    assert _stor(f, "a", b"a" * 90_000).startswith("226")
    # 90 kB replaced by 95 kB: fits, although 185 kB would not.
    assert _stor(f, "a", b"A" * 95_000).startswith("226")
    assert get(f, "a") == b"A" * 95_000
    assert _stor(f, "b", b"b" * 5_000).startswith("226")
    assert _stor(f, "c", b"c" * 1_000).startswith("552")
    # APPE adds to what is there: refused midway, the file keeps its content.
    assert _stor(f, "b", b"x" * 50_000, verb="APPE").startswith("552")
    assert get(f, "b") == b"b" * 5_000


def test_user_files_quota_and_delete(user_quota: tuple[ThreadedFTPServer, ftplib.FTP]) -> None:
    _, f = user_quota
    for name in ("a", "b", "c"):
        assert _stor(f, name, b"x").startswith("226")
    # The fourth file is refused before any data moves; replacing is fine.
    with pytest.raises(ftplib.error_perm, match=r"^552 Quota exceeded \(user alice: 3 files\)"):
        f.storbinary("STOR d", io.BytesIO(b"x"))
    assert _stor(f, "a", b"again").startswith("226")
    f.delete("a")
    assert _stor(f, "d", b"x").startswith("226")


def test_user_quota_counts_only_the_home(
    user_quota: tuple[ThreadedFTPServer, ftplib.FTP],
) -> None:
    _, f = user_quota
    f.storbinary("STOR /scratch/big", io.BytesIO(b"s" * 200_000))  # outside the home
    assert _stor(f, "a", b"a" * 100_000).startswith("226")
    # Moving a file out of the home frees its room; moving it in takes it.
    f.rename("a", "/scratch/a")
    assert _stor(f, "b", b"b" * 100_000).startswith("226")
    with pytest.raises(ftplib.error_perm, match=r"^552"):
        f.rename("/scratch/a", "c")
    assert sorted(f.nlst("/scratch")) == ["a", "big"]


def test_existing_files_are_measured(make_server: ServerFactory, tmp_path: Path) -> None:
    folder = tmp_path / "up"
    folder.mkdir()
    (folder / "old").write_bytes(b"o" * 1000)
    (folder / "sub").mkdir()
    (folder / "sub" / "older").write_bytes(b"o" * 500)
    srv = make_server(
        {
            "mounts": {"/": {"fs": f"osfs://{folder}", "quota": {"max_bytes": 2000}}},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    f = login(srv)
    assert _stor(f, "new", b"n" * 501).startswith("552")
    assert _stor(f, "new", b"n" * 500).startswith("226")
    with pytest.raises(ftplib.error_perm, match=r"^552 Quota exceeded \(mount: 2000 bytes\)"):
        f.storbinary("STOR more", io.BytesIO(b"m"))
    assert sorted(p.name for p in folder.iterdir()) == ["new", "old", "sub"]
    f.quit()


def test_mount_quota_is_shared_by_users(make_server: ServerFactory) -> None:
    config: dict[str, Any] = {
        "mounts": {"/": "mem://", "/up": {"fs": "mem://", "quota": {"max_bytes": 10_000}}},
        "users": {
            USER: {"password": f"plaintext:{PASSWORD}"},
            "bob": {"password": "plaintext:bob"},
        },
    }
    srv = make_server(config)
    a, b = login(srv), login(srv, "bob", "bob")
    assert _stor(a, "/up/a", b"a" * 6_000).startswith("226")
    assert _stor(b, "/up/b", b"b" * 6_000).startswith("552 Quota exceeded (mount: 10000 bytes)")
    a.rename("/up/a", "/a")  # out of the mount
    assert _stor(b, "/up/b", b"b" * 6_000).startswith("226")
    a.quit()
    b.quit()


# ------------------------------------------------------------------ memory mounts


def test_memory_mounts_have_a_size_cap_by_default(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vfsftp.config.schema

    assert vfsftp.config.schema.MEM_DEFAULT_MAX_BYTES == 256 * 1024**2
    monkeypatch.setattr(vfsftp.config.schema, "MEM_DEFAULT_MAX_BYTES", 100_000)  # (a test's size)
    srv = make_server({"mounts": {"/scratch": "mem://"}})
    quota = srv.server.mounts.global_mounts[0].quota
    assert quota is not None and quota.max_bytes == 100_000
    f = login(srv)
    assert _stor(f, "/scratch/a", b"a" * 60_000).startswith("226")
    reply = _stor(f, "/scratch/b", b"b" * 2_000_000)
    assert reply.startswith("552 Quota exceeded (mount: 100000 bytes)"), reply
    reply = _stor(f, "/scratch/a", b"more" * 20_000, verb="APPE")
    assert reply.startswith("552"), reply
    # Nothing partial, nothing left behind: not even in the memory.
    assert f.nlst("/scratch") == ["a"]
    assert srv.filesystems["/scratch"].listdir("/") == ["a"]
    assert srv.filesystems["/scratch"].getsize("/a") == 60_000
    assert _stor(f, "/scratch/c", b"c" * 40_000).startswith("226")
    f.quit()


@pytest.mark.parametrize("command", ["APPE", "REST"])
def test_appe_and_rest_on_memory_do_not_copy_the_file(
    make_server: ServerFactory, command: str
) -> None:
    import tracemalloc

    size = 32 * 1024 * 1024
    srv = make_server({"mounts": {"/": "mem://"}})
    srv.filesystems["/"].writebytes("/big", b"x" * size)
    f = login(srv)
    tracemalloc.start()
    try:
        if command == "APPE":
            reply = _stor(f, "big", b"!", verb="APPE")
        else:
            host, port = f.makepasv()
            f.sendcmd(f"REST {size - 1}")
            with socket.create_connection((host, port), timeout=10) as conn:
                f.sendcmd("STOR big")
                conn.sendall(b"!")
            reply = f.getresp()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reply.startswith("226"), reply
    # (a copy of the file would be 32 MiB; BytesIO may overallocate by 1/8)
    assert peak < size // 4, f"{peak / 2**20:.1f} MiB allocated"
    data = srv.filesystems["/"].readbytes("/big")
    assert len(data) == (size + 1 if command == "APPE" else size)
    assert data.endswith(b"x!" if command == "APPE" else b"x" * 10 + b"!")
    f.quit()


def test_a_confined_user_learns_no_tree_path_from_a_552(make_server: ServerFactory) -> None:
    srv = make_server(
        {
            "mounts": {"/data": {"fs": "mem://", "quota": {"max_bytes": 1000}}},
            "users": {USER: {"password": f"plaintext:{PASSWORD}", "home": "/data/sub"}},
        }
    )
    srv.filesystems["/data"].makedir("/sub")
    f = login(srv)
    reply = _stor(f, "big", b"x" * 5000)
    assert reply.startswith("552 Quota exceeded (mount: 1000 bytes)"), reply
    assert "/data" not in reply
    f.quit()
