"""Data transfers end to end: ASCII conversion, restarts, appends, aborts,
dropped connections, STAT while a transfer runs, a large transfer, active
mode and the PORT bounce protection."""

from __future__ import annotations

import ftplib
import hashlib
import io
import random
import socket
from pathlib import Path

import pytest
from conftest import PASSWORD, USER, Control, ServerFactory, get, put, wait_for

from vfsftp.testing import ThreadedFTPServer

BIG = 16 * 1024 * 1024  # more than the server's socket send buffer can hold
SMALL_RCVBUF = 8192


# ------------------------------------------------------------------ helpers


def pattern(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def open_data(ftp: ftplib.FTP, cmd: str, rcvbuf: int | None = None) -> socket.socket:
    """A passive data connection for ``cmd`` (after its 1xx reply). With
    ``rcvbuf`` the client's receive window stays small, so that the server
    cannot push a large file into kernel buffers and finish early."""
    host, port = ftp.makepasv()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    conn = socket.socket(family, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        conn.settimeout(10)
        conn.connect((host, port))
        resp = ftp.sendcmd(cmd)
        assert resp.startswith("150"), resp
    except BaseException:
        conn.close()
        raise
    return conn


def recv_exactly(conn: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        assert chunk, "data connection closed early"
        buf += chunk
    return bytes(buf)


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def mount_fs(server: ThreadedFTPServer, path: str = "/"):  # type: ignore[no-untyped-def]
    """The filesystem mounted at ``path``, to look behind the server's back."""
    return next(m.fs for m in server.server.mounts.global_mounts if m.path == path)


# ------------------------------------------------------------------ ASCII mode


def test_ascii_retr_converts_lf_to_crlf(ftp: ftplib.FTP) -> None:
    put(ftp, "text.txt", b"one\ntwo\r\nthree\n\nlast")
    ftp.voidcmd("TYPE A")
    with open_data(ftp, "RETR text.txt") as conn:
        wire = read_all(conn)
    ftp.voidresp()
    assert wire == b"one\r\ntwo\r\nthree\r\n\r\nlast"
    # binary is untouched
    assert get(ftp, "text.txt") == b"one\ntwo\r\nthree\n\nlast"


def test_ascii_retr_large_file_converts_across_chunks(ftp: ftplib.FTP) -> None:
    line = b"x" * 1023 + b"\n"  # 1 KiB lines, so LFs fall on chunk borders
    put(ftp, "big.txt", line * 2048)
    lines: list[str] = []
    ftp.retrlines("RETR big.txt", lines.append)  # TYPE A, splits on CRLF
    assert lines == ["x" * 1023] * 2048
    ftp.voidcmd("TYPE A")
    with open_data(ftp, "RETR big.txt") as conn:
        wire = read_all(conn)
    ftp.voidresp()
    assert wire == (b"x" * 1023 + b"\r\n") * 2048


def test_ascii_stor_converts_crlf_to_lf(ftp: ftplib.FTP) -> None:
    ftp.storlines("STOR up.txt", io.BytesIO(b"alpha\nbeta\ngamma\n"))  # sends CRLF in TYPE A
    assert get(ftp, "up.txt") == b"alpha\nbeta\ngamma\n"
    ftp.voidcmd("TYPE A")
    with open_data(ftp, "STOR raw.txt") as conn:
        conn.sendall(b"a\r\nb\r")
        conn.sendall(b"\nlone\rcr\r\n")  # a CRLF split between two segments
    ftp.voidresp()
    assert get(ftp, "raw.txt") == b"a\nb\nlone\rcr\n"


def test_binary_stor_keeps_crlf(ftp: ftplib.FTP) -> None:
    put(ftp, "b.bin", b"a\r\nb\r\n")
    assert get(ftp, "b.bin") == b"a\r\nb\r\n"


# ------------------------------------------------------------------ restarts, append


def test_rest_retr_resumes(ftp: ftplib.FTP) -> None:
    data = pattern(300_000)
    put(ftp, "f", data)
    for offset in (0, 1, 123_457, len(data) - 1, len(data)):
        out = io.BytesIO()
        ftp.retrbinary("RETR f", out.write, rest=offset)
        assert out.getvalue() == data[offset:], offset


def test_rest_stor_resumes(ftp: ftplib.FTP) -> None:
    data = pattern(500_001)
    half = 200_000
    put(ftp, "f", data[:half])
    ftp.storbinary("STOR f", io.BytesIO(data[half:]), rest=half)
    assert ftp.size("f") == len(data)
    assert get(ftp, "f") == data


def test_rest_stor_truncates_the_rest(ftp: ftplib.FTP) -> None:
    put(ftp, "f", b"0123456789")
    ftp.storbinary("STOR f", io.BytesIO(b"ab"), rest=3)
    assert get(ftp, "f") == b"012ab"


def test_rest_stor_beyond_end_keeps_the_file(ftp: ftplib.FTP) -> None:
    put(ftp, "f", b"0123")
    with pytest.raises(ftplib.Error, match=r"^55"):
        ftp.storbinary("STOR f", io.BytesIO(b"zz"), rest=10)
    assert get(ftp, "f") == b"0123"


def test_appe_appends(ftp: ftplib.FTP) -> None:
    first, second = pattern(100_000, 1), pattern(70_000, 2)
    put(ftp, "log", first)
    ftp.storbinary("APPE log", io.BytesIO(second))
    assert get(ftp, "log") == first + second
    ftp.storbinary("APPE fresh", io.BytesIO(b"new"))
    assert get(ftp, "fresh") == b"new"


# ------------------------------------------------------------------ aborts and drops


def test_abor_during_retr(ftp: ftplib.FTP) -> None:
    data = pattern(BIG)
    put(ftp, "big", data)
    with open_data(ftp, "RETR big", rcvbuf=SMALL_RCVBUF) as conn:
        assert recv_exactly(conn, 32 * 1024) == data[: 32 * 1024]
        resp = ftp.abort()
        assert resp.startswith("426"), resp
        assert ftp.voidresp().startswith("226")
    assert ftp.voidcmd("NOOP").startswith("200")
    assert get(ftp, "big") == data  # a new transfer works


def test_client_drops_data_connection_during_retr(ftp: ftplib.FTP) -> None:
    data = pattern(BIG)
    put(ftp, "big", data)
    with open_data(ftp, "RETR big", rcvbuf=SMALL_RCVBUF) as conn:
        recv_exactly(conn, 4096)
    with pytest.raises(ftplib.error_temp, match=r"^426"):
        ftp.voidresp()
    assert ftp.voidcmd("NOOP").startswith("200")
    out = io.BytesIO()
    ftp.retrbinary("RETR big", out.write, rest=BIG - 10)
    assert out.getvalue() == data[-10:]


def _no_upload_leftovers(ftp: ftplib.FTP, server: ThreadedFTPServer) -> None:
    names = ftp.nlst()
    assert not [n for n in names if "vfsftp" in n], names
    lines: list[str] = []
    ftp.retrlines("LIST", lines.append)
    assert not [x for x in lines if "vfsftp" in x], lines
    # and behind the listing's back, in the filesystem itself
    hidden = [n for n in mount_fs(server).listdir("/") if n not in ("f",)]
    assert hidden == [], hidden


def test_abor_during_stor_keeps_old_file(ftp: ftplib.FTP, server: ThreadedFTPServer) -> None:
    v1 = pattern(200_000, 1)
    put(ftp, "f", v1)
    conn = open_data(ftp, "STOR f")
    with conn:
        conn.sendall(pattern(300_000, 2))
        resp = ftp.abort()
        assert resp.startswith("426"), resp
        assert ftp.voidresp().startswith("226")
    assert ftp.voidcmd("NOOP").startswith("200")
    assert get(ftp, "f") == v1
    _no_upload_leftovers(ftp, server)


def test_abor_during_new_stor_leaves_no_file(ftp: ftplib.FTP, server: ThreadedFTPServer) -> None:
    put(ftp, "f", b"keep")
    with open_data(ftp, "STOR partial") as conn:
        conn.sendall(pattern(100_000))
        assert ftp.abort().startswith("426")
        ftp.voidresp()
    assert "partial" not in ftp.nlst()
    _no_upload_leftovers(ftp, server)


def test_reset_data_connection_during_stor_keeps_old_file(
    ftp: ftplib.FTP, server: ThreadedFTPServer
) -> None:
    v1 = pattern(200_000, 1)
    put(ftp, "f", v1)
    conn = open_data(ftp, "STOR f")
    with conn:
        conn.sendall(pattern(300_000, 2))
        # RST instead of FIN: a broken connection, not the end of the file
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with pytest.raises(ftplib.error_temp, match=r"^426"):
        ftp.voidresp()
    assert get(ftp, "f") == v1
    _no_upload_leftovers(ftp, server)


def test_control_connection_lost_during_stor_keeps_old_file(
    ftp: ftplib.FTP, server: ThreadedFTPServer
) -> None:
    v1 = pattern(200_000, 1)
    put(ftp, "f", v1)
    conn = open_data(ftp, "STOR f")
    with conn:
        conn.sendall(pattern(300_000, 2))
        ftp.sock.close()  # the client vanishes while the data connection is still open
        ftp.file.close()
        wait_for(lambda: not server.server.channels, "the session to end", timeout=5.0)
    with ftplib.FTP() as again:
        again.connect(server.host, server.port, timeout=10)
        again.login("alice", "secret")
        assert get(again, "f") == v1
        _no_upload_leftovers(again, server)


def test_stat_during_transfer(ftp: ftplib.FTP) -> None:
    data = pattern(BIG)
    put(ftp, "big", data)
    with open_data(ftp, "RETR big", rcvbuf=SMALL_RCVBUF) as conn:
        head = recv_exactly(conn, 64 * 1024)
        resp = ftp.sendcmd("STAT")  # answered while the server is blocked sending
        assert resp.startswith("211-")
        assert "Transfer in progress: RETR /big" in resp, resp
        rest = read_all(conn)
    assert ftp.voidresp().startswith("226")
    assert head + rest == data
    assert "Transfer in progress" not in ftp.sendcmd("STAT")


def test_stat_during_upload(ftp: ftplib.FTP) -> None:
    first, second = pattern(100_000, 1), pattern(100_000, 2)
    with open_data(ftp, "STOR up") as conn:
        conn.sendall(first)
        resp = ftp.sendcmd("STAT")
        assert "Transfer in progress: STOR /up" in resp, resp
        conn.sendall(second)
    assert ftp.voidresp().startswith("226")
    assert get(ftp, "up") == first + second


def test_abor_before_the_data_connection_is_made(ftp: ftplib.FTP) -> None:
    put(ftp, "f", b"x")
    resp = ftp.sendcmd("PASV" if ftp.af == socket.AF_INET else "EPSV")
    assert resp[:3] in ("227", "229")
    assert ftp.sendcmd("RETR f").startswith("150")  # the server now waits for us
    assert ftp.abort().startswith("426")
    assert ftp.voidresp().startswith("226")
    assert get(ftp, "f") == b"x"


def test_quit_during_transfer_lets_it_finish(ftp: ftplib.FTP) -> None:
    """RFC 959 §4.1.1: the transfer completes, then the server closes. (The
    221 may come at once, before the 226, as pyftpdlib sends it.)"""
    data = pattern(BIG)
    put(ftp, "big", data)
    with open_data(ftp, "RETR big", rcvbuf=SMALL_RCVBUF) as conn:
        head = recv_exactly(conn, 4096)
        ftp.putcmd("QUIT")
        rest = read_all(conn)
    assert head + rest == data
    codes = sorted(ftp.getline()[:3] for _ in range(2))
    assert codes == ["221", "226"]
    assert ftp.file.readline() == ""  # and the server closed the connection


def test_noop_during_transfer_is_answered(ftp: ftplib.FTP) -> None:
    data = pattern(BIG)
    put(ftp, "big", data)
    with open_data(ftp, "RETR big", rcvbuf=SMALL_RCVBUF) as conn:
        recv_exactly(conn, 4096)
        assert ftp.sendcmd("NOOP").startswith("200")
        rest = read_all(conn)
    assert ftp.voidresp().startswith("226")
    assert len(rest) == BIG - 4096


def test_command_during_transfer_waits_for_it(ftp: ftplib.FTP) -> None:
    """A command that is not about the transfer is answered after its 226."""
    data = pattern(BIG)
    put(ftp, "big", data)
    with open_data(ftp, "RETR big", rcvbuf=SMALL_RCVBUF) as conn:
        recv_exactly(conn, 4096)
        ftp.putcmd("PWD")
        rest = read_all(conn)
    assert ftp.getresp().startswith("226")
    assert ftp.getresp().startswith('257 "/"')
    assert len(rest) == BIG - 4096


# ------------------------------------------------------------------ a large transfer


class GeneratedFile(io.RawIOBase):
    """``size`` pseudo-random bytes produced on demand and hashed as read."""

    def __init__(self, size: int, seed: int) -> None:
        self.left = size
        self.rng = random.Random(seed)
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.rng.randbytes(n) if n else b""
        self.left -= n
        self.sha.update(data)
        return data


@pytest.mark.parametrize("family", ["ipv4"])
def test_100mb_up_and_down(ftp: ftplib.FTP, backend: str, tmp_path: Path) -> None:
    size = 100 * 1024 * 1024
    source = GeneratedFile(size, seed=42)
    ftp.storbinary("STOR huge.bin", source, blocksize=1 << 20)
    assert source.left == 0
    assert ftp.size("huge.bin") == size
    if backend == "osfs":
        assert (tmp_path / "root" / "huge.bin").stat().st_size == size
    sha = hashlib.sha256()
    received = 0

    def sink(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)
        sha.update(chunk)

    ftp.retrbinary("RETR huge.bin", sink, blocksize=1 << 20)
    assert received == size
    assert sha.hexdigest() == source.sha.hexdigest()
    ftp.delete("huge.bin")


# ------------------------------------------------------------------ active mode


def test_active_mode_both_ways(ftp: ftplib.FTP) -> None:
    ftp.set_pasv(False)
    data = pattern(2_000_000)
    put(ftp, "active.bin", data)
    assert get(ftp, "active.bin") == data
    assert "active.bin" in ftp.nlst()
    lines: list[str] = []
    ftp.retrlines("LIST", lines.append)
    assert any(x.endswith(" active.bin") for x in lines)


def test_port_to_foreign_address_is_refused(ftp: ftplib.FTP) -> None:
    put(ftp, "f", b"secret")
    # 10.0.0.1 is never contacted: the refusal comes before any connect
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        ftp.sendcmd("PORT 10,0,0,1,200,10")
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        ftp.sendcmd("EPRT |1|10.0.0.1|51210|")
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        ftp.sendcmd("EPRT |2|2001:db8::1|51210|")
    # nothing was stored: a transfer has no data connection to use
    with pytest.raises(ftplib.error_temp, match=r"^425"):
        ftp.sendcmd("RETR f")
        ftp.voidresp()


def test_port_to_privileged_port_is_refused(ftp: ftplib.FTP, family: str) -> None:
    put(ftp, "f", b"x")
    if family == "ipv4":
        with pytest.raises(ftplib.error_perm, match=r"^501"):
            ftp.sendcmd("PORT 127,0,0,1,0,21")
        with pytest.raises(ftplib.error_perm, match=r"^501"):
            ftp.sendcmd("EPRT |1|127.0.0.1|1023|")
    else:
        with pytest.raises(ftplib.error_perm, match=r"^501"):
            ftp.sendcmd("EPRT |2|::1|21|")
    with pytest.raises(ftplib.error_temp, match=r"^425"):
        ftp.sendcmd("RETR f")
        ftp.voidresp()


@pytest.mark.parametrize("size", [0, 5, 100_000, 3_000_000])
@pytest.mark.parametrize("mount", ["mem://", "osfs"])
def test_a_client_that_connects_after_the_150_gets_the_file_then_226(
    make_server: ServerFactory, tmp_path: Path, mount: str, size: int
) -> None:
    """The 150 goes out before the server waits for the data connection
    (replies are held only while nothing waits); the body, its end of file
    and the 226 follow, whatever the size (one segment or many)."""
    root = tmp_path / "root"
    root.mkdir()
    srv = make_server(
        {
            "mounts": {"/": "mem://" if mount == "mem://" else {"fs": f"osfs://{root}"}},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    data = pattern(size)
    srv.put_file("/f.bin", data)
    c = Control(srv.host, srv.port)
    try:
        c.login()
        assert c.cmd("TYPE I")[0] == 200
        code, lines = c.cmd("EPSV")
        assert code == 229
        port = int(lines[0].split("|")[-2])
        c.send("RETR /f.bin")
        assert c.reply()[0] == 150  # not held back: the server now waits for us
        with socket.create_connection((srv.host, port), timeout=10) as d:
            got = bytearray()
            while chunk := d.recv(1 << 16):
                got += chunk
        assert bytes(got) == data
        code, lines = c.reply()
        assert code == 226 and f"({size} bytes)" in lines[-1]
        assert c.cmd("QUIT")[0] == 221
    finally:
        c.sock.close()
