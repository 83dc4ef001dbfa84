"""Listings of any folder, streamed: a folder with mount points and
permission overrides below it (entries whole, each once, with their own
rights), STAT of a directory over the control connection (bounded memory,
write back-pressure, a client that stops reading or hangs up), and what
real clients make of a LIST without a "total" line. Huge LIST/NLST/MLSD on
memory, local, read-only and special folders: test_hostile; on S3:
test_s3."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import tracemalloc
from typing import Any

import pytest
from conftest import PASSWORD, USER, Control, EntryCounter, ServerFactory, login, wait_for
from fs.ftpfs import FTPFS

import vfsftp.storage.sessionfs
from vfsftp.testing import ThreadedFTPServer


def _config(server: dict[str, Any] | None = None, **user: Any) -> dict[str, Any]:
    return {
        "server": {"ban": None, **(server or {})},
        "mounts": {"/": "mem://"},
        "users": {USER: {"password": f"plaintext:{PASSWORD}", "perms": "elradfmw", **user}},
    }


# ------------------------------------------------------------------ mounts and overrides below


def test_streamed_folder_with_mount_points_and_overrides_below(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 7, so that a folder of 105 entries streams: a mount point
    below it is listed once (its own folder's entry of the same name
    shadowed), a folder that only leads to a mount point too, and an entry
    with its own override shows its own rights (MLSD perm, LIST mode)."""
    monkeypatch.setattr(vfsftp.storage.sessionfs, "LISTING_BATCH", 7)
    config = _config(permissions={"/big/ro.txt": "elr", "/big/sub/below": "elr"})
    config["mounts"] = {"/": "mem://", "/big/inner": "mem://", "/big/deep/er": "mem://"}
    srv = make_server(config)
    root = srv.filesystems["/"]
    files = {f"f{i:03d}" for i in range(100)}
    root.makedir("/big")
    for name in files:
        root.writebytes(f"/big/{name}", b"12345")
    root.writebytes("/big/ro.txt", b"r")
    root.makedir("/big/inner")  # shadowed by the mount
    root.writebytes("/big/inner/hidden.txt", b"h")
    root.makedir("/big/sub")
    srv.filesystems["/big/inner"].writebytes("/in-mount.txt", b"m")
    expected = files | {"ro.txt", "inner", "deep", "sub"}
    f = login(srv)
    try:
        names = f.nlst("/big")
        assert sorted(names) == sorted(expected)  # each once
        lines: list[str] = []
        f.retrlines("LIST /big", lines.append)
        modes = {line.split()[-1]: line.split()[0] for line in lines}
        assert len(lines) == len(modes) == len(expected)
        assert modes["f000"] == "-rw-r--r--" and modes["ro.txt"] == "-r--r--r--"
        assert modes["inner"][0] == modes["deep"][0] == modes["sub"][0] == "d"
        facts = dict(f.mlsd("/big", ["type", "size", "perm"]))
        assert set(facts) == expected | {".", ".."}
        # The override's rights, as MLST of the entry itself tells them.
        own = f.sendcmd("MLST /big/ro.txt").splitlines()[1]
        assert f"perm={facts['ro.txt']['perm']};" in own
        assert "w" not in facts["ro.txt"]["perm"] and "w" in facts["f000"]["perm"]
        assert facts["inner"]["type"] == facts["deep"]["type"] == "dir"
        assert facts["f000"]["size"] == "5"
        assert f.nlst("/big/inner") == ["in-mount.txt"]
    finally:
        f.quit()


# ------------------------------------------------------------------ STAT <dir>


COUNT = 30_000


def _name(i: int) -> str:
    return f"file-with-a-longish-name-{i:06d}.dat"


def _huge_server(make_server: ServerFactory, **server: Any) -> ThreadedFTPServer:
    srv = make_server(_config(server))
    mem = srv.filesystems["/"]
    mem.makedir("/big")
    for i in range(COUNT):
        mem.create(f"/big/{_name(i)}")
    return srv


def _read_stat(c: Control) -> int:
    """Read a STAT /big reply line by line, checking every entry arrives
    once and in order (memory keeps insertion order); the line count."""
    assert c._line() == "213-Status of /big:"
    n = 0
    while (line := c._line()) != "213 End of status":
        assert line.split()[-1] == _name(n), line
        n += 1
    return n


def test_stat_of_a_huge_folder_streams_on_the_control_connection(
    make_server: ServerFactory,
) -> None:
    """STAT <dir> (RFC 959 §4.1.3) of 30,000 entries, 2.6 MB of reply:
    whole, in one well-framed 213 reply, with a batch at a time held (it
    was built whole: 33 MiB)."""
    srv = _huge_server(make_server)
    c = Control(srv.host, srv.port)
    try:
        c.login()
        tracemalloc.start()
        try:
            c.send("STAT /big")
            assert _read_stat(c) == COUNT
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 3_000_000, f"{peak / 2**20:.1f} MiB"
        assert c.cmd("STAT /big/" + _name(5))[1][1].split()[-1] == _name(5)
        assert c.cmd("NOOP")[0] == 200
    finally:
        c.close()


def _session(srv: ThreadedFTPServer) -> Any:
    (channel,) = srv.server.channels
    return channel


def test_stat_waits_for_a_client_that_reads_slowly(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that does not read its STAT reply: the server stops making
    entries once its control transport is full (write back-pressure, not
    2.6 MB buffered), serves others meanwhile, and goes on when the client
    reads."""
    srv = _huge_server(make_server)
    made = EntryCounter(monkeypatch)
    c = Control(srv.host, srv.port)
    try:
        c.login()
        channel = _session(srv)
        # A small kernel send buffer on the server's side, so that the
        # server's own buffering is what is measured (loopback otherwise
        # absorbs megabytes).
        sock = channel.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        c.send("STAT /big")
        wait_for(lambda: channel._write_paused, "the server to wait for the client")
        held = made.n
        assert held < COUNT // 4, held
        assert channel.transport.get_write_buffer_size() < 512 * 1024
        other = login(srv)  # others are served meanwhile
        other.cwd("/big")
        other.quit()
        assert made.n == held  # (nothing more made while the client reads nothing)
        assert _read_stat(c) == COUNT
        assert made.n == COUNT
        assert c.cmd("NOOP")[0] == 200
    finally:
        c.close()


@pytest.mark.parametrize("how", ["stops reading", "hangs up"])
def test_stat_stops_when_the_client_is_gone(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A client that stops reading its STAT reply for stall_timeout is
    disconnected (the reply cannot be cut short and the session go on); one
    that hangs up ends the listing: in both cases the rest of the folder is
    never read."""
    srv = _huge_server(make_server, stall_timeout=0.5)
    made = EntryCounter(monkeypatch)
    c = Control(srv.host, srv.port)
    try:
        c.login()
        channel = _session(srv)
        sock = channel.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send("STAT /big")
        assert c._line() == "213-Status of /big:"
        if how == "hangs up":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # (RST: unread data)
        wait_for(lambda: not srv.server.channels, "the session to end")
        assert made.n < COUNT // 4, made.n
    finally:
        c.close()
    f = login(srv)  # the server is fine
    assert f.nlst("/big/" + _name(2)) == [_name(2)]
    f.quit()


@pytest.mark.parametrize("verb", ["STAT", "LIST"])
def test_a_listing_that_fails_half_way(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, verb: str
) -> None:
    """The store fails after 1,500 of 3,000 entries, the first 1,000 gone
    out: a LIST ends with 451 after the data; a STAT reply, whose code is
    set by its first line, ends with a last line that says it is
    incomplete and why (RFC 959 §4.2). The session goes on either way."""
    import vfsftp.storage.memory
    from vfsftp.storage.errors import StorageError

    real = vfsftp.storage.memory._rows

    def failing(entries: list[Any]) -> Any:
        for n, row in enumerate(real(entries)):
            if n == 1500:
                raise StorageError("store went away", 451, failure=True)
            yield row

    monkeypatch.setattr(vfsftp.storage.memory, "_rows", failing)
    srv = make_server(_config())
    mem = srv.filesystems["/"]
    mem.makedir("/big")
    for i in range(3000):
        mem.create(f"/big/{_name(i)}")
    c = Control(srv.host, srv.port)
    try:
        c.login()
        if verb == "STAT":
            c.send("STAT /big")
            assert c._line() == "213-Status of /big:"
            n = 0
            while not (line := c._line()).startswith("213 "):
                assert line.split()[-1] == _name(n)
                n += 1
            assert n == 1000
            assert line == "213 End of status, incomplete: /big: store went away"
        else:
            epsv = c.cmd("EPSV")
            assert epsv[0] == 229
            port = int(epsv[1][0].split("|")[-2])
            with socket.create_connection((srv.host, port), timeout=10) as data:
                c.send("LIST /big")
                assert c.reply()[0] == 150
                received = b""
                while chunk := data.recv(1 << 16):
                    received += chunk
            assert c.reply() == (451, ["451 /big: store went away"])
            assert len(received.splitlines()) == 1000
        assert c.cmd("NOOP")[0] == 200
    finally:
        c.close()


# ------------------------------------------------------------------ clients


class _ListOnlyFTPFS(FTPFS):  # type: ignore[misc]
    """FTPFS that ignores the server's MLST feature and parses LIST."""

    @property
    def supports_mlst(self) -> bool:
        return False


@pytest.mark.parametrize("files", [3, 30], ids=["whole", "streamed"])
def test_clients_parse_listings_without_a_total_line(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, files: int
) -> None:
    """LIST has no "total N" line, whether the listing goes out whole or
    streamed (batches of 7 here), as vsftpd's and pyftpdlib's have none:
    ftplib, fs.ftpfs (parsing LIST), curl and lftp (with MLSD off) each see
    every entry, with its size and kind."""
    monkeypatch.setattr(vfsftp.storage.sessionfs, "LISTING_BATCH", 7)
    srv = make_server(_config())
    mem = srv.filesystems["/"]
    sizes = {f"f{i:02d}.txt": i for i in range(files)}
    mem.makedir("/d")
    for name, size in sizes.items():
        mem.writebytes(f"/d/{name}", b"x" * size)
    mem.makedir("/d/sub")
    expected = {**sizes, "sub": None}

    f = login(srv)
    lines: list[str] = []
    f.retrlines("LIST /d", lines.append)
    f.quit()
    assert not any(line.startswith("total") for line in lines)
    assert {line.split(None, 8)[-1] for line in lines} == set(expected)

    with _ListOnlyFTPFS(srv.host, port=srv.port, user=USER, passwd=PASSWORD, timeout=10) as ftpfs:
        infos = {i.name: i for i in ftpfs.scandir("/d", namespaces=["details"])}
    assert {n: (None if i.is_dir else i.size) for n, i in infos.items()} == expected

    if shutil.which("curl"):
        out = subprocess.run(
            ["curl", "--silent", "--show-error", "--max-time", "20", f"{srv.url}/d/"],
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout.decode()
        got = {line.split(None, 8)[-1]: line.split()[4] for line in out.splitlines()}
        assert got == {n: str(s or 0) for n, s in expected.items()}

    if shutil.which("lftp"):
        script = (
            "set ftp:use-mlsd off; set ftp:ssl-allow no; "
            f"open -u {USER},{PASSWORD} ftp://{srv.host}:{srv.port}; cls -l /d"
        )
        out = subprocess.run(
            ["lftp", "-c", script], capture_output=True, timeout=30, check=True
        ).stdout.decode()
        got = {line.split()[-1].rstrip("/"): line.split()[4] for line in out.splitlines()}
        assert got == {f"/d/{n}": str(s or 0) for n, s in expected.items()}
