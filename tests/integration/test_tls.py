"""FTPS (RFC 4217) with real certificates from a throwaway CA (trustme):
explicit AUTH TLS and implicit TLS, PBSZ/PROT, the TLS policies, the
STARTTLS command-injection defence, and handshakes that go wrong.

Data connections: ftplib never reuses the control connection's TLS session
on the data connection, and every transfer below goes through it, so these
tests also show that the server does not require session reuse (it accepts
a passive data connection only from the control connection's address
instead; see vfsftp.session.tls).
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import io
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from conftest import (
    PASSWORD,
    USER,
    ServerFactory,
    free_port,
    get,
    mount_url,
    wait_for,
    wait_listening,
)

from vfsftp.session.tls import CONTROL_READ_SIZE
from vfsftp.testing import ThreadedFTPServer

HANDSHAKE_TIMEOUT = 0.5
#: how long a test waits for the server to drop a failed handshake
DROP_WITHIN = 5.0


@dataclass(frozen=True)
class Pki:
    """PEM files of a test CA and a server certificate it issued for the
    loopback addresses."""

    cert: Path
    key: Path
    ca: Path

    def client_context(self, **versions: ssl.TLSVersion) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        for name, value in versions.items():
            setattr(ctx, name, value)
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "::1", "localhost")
    folder = tmp_path_factory.mktemp("pki")
    cert, key, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(cert, key, ca_file)


def tls_config(
    pki: Pki,
    mount: str = "mem://",
    users: dict[str, Any] | None = None,
    **tls: Any,
) -> dict[str, Any]:
    """alice (every right) and anonymous on one mount, TLS with an implicit
    listener on an ephemeral port; ``tls`` adds server.tls keys."""
    return {
        "server": {
            "tls": {
                "certificate": str(pki.cert),
                "key": str(pki.key),
                "implicit_port": 0,
                "handshake_timeout": HANDSHAKE_TIMEOUT,
                **tls,
            }
        },
        "mounts": {"/": mount},
        "users": users
        if users is not None
        else {USER: {"password": f"plaintext:{PASSWORD}"}, "anonymous": {}},
    }


def implicit_port(srv: ThreadedFTPServer) -> int:
    return srv.server.implicit_addresses[0][1]


def tls_client(srv: ThreadedFTPServer, pki: Pki, login: bool = True) -> ftplib.FTP_TLS:
    """ftplib over explicit TLS with a verifying context; logged in as
    alice with PROT P unless ``login`` is False."""
    client = ftplib.FTP_TLS(context=pki.client_context(), timeout=10)
    client.connect(srv.host, srv.port)
    if login:
        client.login(USER, PASSWORD)
        client.prot_p()
        client.voidcmd("TYPE I")
    return client


def plain_client(srv: ThreadedFTPServer) -> ftplib.FTP:
    client = ftplib.FTP(timeout=10)
    client.connect(srv.host, srv.port)
    return client


def close(client: ftplib.FTP) -> None:
    with contextlib.suppress(ftplib.Error, OSError, EOFError):
        client.quit()
    client.close()


@pytest.fixture
def tls_server(make_server: ServerFactory, pki: Pki) -> ThreadedFTPServer:
    return make_server(tls_config(pki))


def reply_code(exc: pytest.ExceptionInfo[ftplib.Error]) -> str:
    return str(exc.value)[:3]


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# ------------------------------------------------------------ raw sockets


def recv_line(sock: socket.socket) -> bytes:
    """One CRLF-terminated line, read a byte at a time so that nothing after
    it is consumed (the TLS handshake follows a 234 on the same socket)."""
    buf = bytearray()
    while not buf.endswith(b"\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise EOFError(f"connection closed after {bytes(buf)!r}")
        buf += byte
    return bytes(buf)


def read_reply(sock: socket.socket) -> str:
    """A whole (possibly multi-line) reply; returns its first line."""
    first = recv_line(sock).decode()
    if first[3:4] == "-":
        while not recv_line(sock).decode().startswith(first[:3] + " "):
            pass
    return first.rstrip("\r\n")


def command(sock: socket.socket, line: str) -> str:
    sock.sendall(line.encode() + b"\r\n")
    return read_reply(sock)


def connect_raw(srv: ThreadedFTPServer, port: int | None = None) -> socket.socket:
    return socket.create_connection((srv.host, port or srv.port), timeout=DROP_WITHIN)


def start_auth_tls(srv: ThreadedFTPServer) -> socket.socket:
    """A plaintext control connection that has had its 234 to AUTH TLS."""
    sock = connect_raw(srv)
    assert read_reply(sock).startswith("220")
    assert command(sock, "AUTH TLS").startswith("234")
    return sock


def assert_dropped(sock: socket.socket) -> float:
    """Read until the server closes the connection (anything it sends first,
    a TLS alert say, is ignored); returns how long that took. The socket
    timeout bounds the wait: a server that keeps the connection fails."""
    sock.settimeout(DROP_WITHIN)
    start = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {DROP_WITHIN}s")
    return time.monotonic() - start


def client_hello(srv: ThreadedFTPServer, pki: Pki) -> bytes:
    """The bytes of a real ClientHello, made without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = pki.client_context().wrap_bio(incoming, outgoing, server_hostname=srv.host)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def wait_sessions(srv: ThreadedFTPServer, count: int, *, grow: bool = False) -> None:
    """Wait (on the server's loop, bounded) until only ``count`` sessions
    remain, or with ``grow`` until there are at least ``count``."""

    async def settle() -> None:
        while (len(srv.server.channels) < count) if grow else (len(srv.server.channels) > count):
            await asyncio.sleep(0.01)

    srv.call(asyncio.wait_for(settle(), DROP_WITHIN))


@pytest.fixture
def witness(tls_server: ThreadedFTPServer, pki: Pki) -> Iterator[ftplib.FTP_TLS]:
    """A logged-in TLS session open while a test misbehaves elsewhere: it
    must keep working."""
    client = tls_client(tls_server, pki)
    client.storbinary("STOR witness.txt", io.BytesIO(b"still here\n"))
    try:
        yield client
    finally:
        close(client)


def assert_still_serving(srv: ThreadedFTPServer, pki: Pki, witness: ftplib.FTP_TLS) -> None:
    assert get(witness, "witness.txt") == b"still here\n"
    fresh = tls_client(srv, pki)
    try:
        assert "witness.txt" in fresh.nlst()
    finally:
        close(fresh)


# ------------------------------------------------------------ ftplib, both ways


def test_ftplib_prot_p_listings_and_transfers(
    make_server: ServerFactory, pki: Pki, backend: str, family: str, tmp_path: Path
) -> None:
    host = "::1" if family == "ipv6" else "127.0.0.1"
    srv = make_server(tls_config(pki, mount_url(backend, tmp_path)), host=host)
    up = payload(3 * 1024 * 1024 + 17, seed=1)
    # ftplib opens every data connection with a fresh TLS session (no reuse
    # of the control connection's): the server must not require reuse.
    client = tls_client(srv, pki)
    try:
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.mkd("d")
        client.storbinary("STOR d/big.bin", io.BytesIO(up))
        client.storbinary("STOR d/small.txt", io.BytesIO(b"hello\n"))
        if backend == "osfs":
            assert (tmp_path / "root" / "d" / "big.bin").read_bytes() == up
        # RETR of a local file goes through TLS, not sendfile.
        assert get(client, "d/big.bin") == up

        assert sorted(client.nlst("d")) == ["big.bin", "small.txt"]
        facts = dict(client.mlsd("d", facts=["type", "size"]))
        assert facts["big.bin"] == {"type": "file", "size": str(len(up))}
        assert facts["small.txt"]["size"] == "6"
        lines: list[str] = []
        client.retrlines("LIST d", lines.append)
        big = next(line for line in lines if line.endswith(" big.bin"))
        assert big.startswith("-") and f" {len(up)} " in big

        # The data connection itself is TLS, and ends with close_notify.
        client.voidcmd("TYPE I")  # retrlines switched to ASCII
        conn = client.transfercmd("RETR d/small.txt")
        try:
            assert isinstance(conn, ssl.SSLSocket)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            conn.unwrap()
        finally:
            conn.close()
        assert client.voidresp().startswith("226") and data == b"hello\n"
    finally:
        close(client)


def test_stat_of_a_large_folder_over_tls(tls_server: ThreadedFTPServer, pki: Pki) -> None:
    """STAT <dir> of 5,000 entries streams over the TLS control connection
    (its flow control is the TLS transport's): whole, one reply."""
    mem = tls_server.filesystems["/"]
    mem.makedir("/many")
    names = [f"file-{i:05d}.txt" for i in range(5000)]
    for name in names:
        mem.create(f"/many/{name}")
    client = tls_client(tls_server, pki)
    try:
        lines = client.sendcmd("STAT /many").splitlines()
        assert lines[0] == "213-Status of /many:" and lines[-1] == "213 End of status"
        assert [line.split()[-1] for line in lines[1:-1]] == names
        assert client.voidcmd("NOOP").startswith("200")
    finally:
        close(client)


def test_implicit_tls_session(tls_server: ThreadedFTPServer, pki: Pki) -> None:
    """Implicit FTPS: TLS from the first byte, PROT P already in force."""
    ctx = pki.client_context()
    raw = socket.create_connection((tls_server.host, implicit_port(tls_server)), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=tls_server.host) as sock:
        assert read_reply(sock).startswith("220")
        assert command(sock, "AUTH TLS").startswith("503")  # already TLS
        assert command(sock, f"USER {USER}").startswith("331")
        assert command(sock, f"PASS {PASSWORD}").startswith("230")
        reply = command(sock, "EPSV")
        port = int(reply.split("|")[-2])
        with socket.create_connection((tls_server.host, port), timeout=10) as data_raw:
            sock.sendall(b"NLST\r\n")
            assert read_reply(sock).startswith("150")
            with ctx.wrap_socket(data_raw, server_hostname=tls_server.host) as data:
                assert data.recv(100) == b""  # an empty root, over TLS
        assert read_reply(sock).startswith("226")
        assert command(sock, "QUIT").startswith("221")


# ------------------------------------------------------------ curl

curl_missing = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


def curl(pki: Pki, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", "--cacert", str(pki.ca), *args],
        capture_output=True,
        timeout=30,
        check=False,
    )


@curl_missing
@pytest.mark.parametrize("mode", ["explicit", "implicit"])
def test_curl(make_server: ServerFactory, pki: Pki, tmp_path: Path, mode: str) -> None:
    # The server insists on TLS for both connections, so a curl that fell
    # back to clear text would fail here.
    srv = make_server(tls_config(pki, require_tls=True, require_data_tls=True))
    if mode == "explicit":
        base, flags = f"ftp://{USER}:{PASSWORD}@127.0.0.1:{srv.port}", ["--ssl-reqd"]
    else:
        base, flags = f"ftps://{USER}:{PASSWORD}@127.0.0.1:{implicit_port(srv)}", []
    src = tmp_path / "up.bin"
    data = payload(2 * 1024 * 1024, seed=2)
    src.write_bytes(data)
    # (TLS 1.3: no session tickets on data connections, see test_tls_clients.py)
    r = curl(pki, *flags, "--ftp-create-dirs", "-T", str(src), f"{base}/dir/up.bin")
    assert r.returncode == 0, r.stderr
    r = curl(pki, *flags, f"{base}/dir/")
    assert r.returncode == 0, r.stderr
    assert b" up.bin" in r.stdout and str(len(data)).encode() in r.stdout
    r = curl(pki, *flags, "--list-only", f"{base}/dir/")
    assert r.returncode == 0 and r.stdout.split() == [b"up.bin"], r.stderr
    r = curl(pki, *flags, f"{base}/dir/up.bin")
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


@curl_missing
def test_curl_refuses_an_unknown_ca(tls_server: ThreadedFTPServer, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    r = subprocess.run(
        [
            "curl",
            "--silent",
            "--max-time",
            "20",
            "--ssl-reqd",
            "--cacert",
            str(other),
            f"ftp://{USER}:{PASSWORD}@127.0.0.1:{tls_server.port}/",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 60  # CURLE_PEER_FAILED_VERIFICATION


# ------------------------------------------------------------ command sequence


def test_feat_and_tls_commands_without_tls(make_server: ServerFactory) -> None:
    srv = make_server(
        {"mounts": {"/": "mem://"}, "users": {USER: {"password": f"plaintext:{PASSWORD}"}}}
    )
    client = plain_client(srv)
    try:
        feat = client.sendcmd("FEAT")
        for word in ("AUTH", "PBSZ", "PROT"):
            assert word not in feat
        for cmd in ("AUTH TLS", "PBSZ 0", "PROT P"):
            with pytest.raises(ftplib.error_perm) as exc:
                client.sendcmd(cmd)
            assert reply_code(exc) == "502", cmd
        client.login(USER, PASSWORD)  # the session is unharmed
    finally:
        close(client)


def test_feat_lists_tls_when_configured(tls_server: ThreadedFTPServer) -> None:
    client = plain_client(tls_server)
    try:
        features = [line.strip() for line in client.sendcmd("FEAT").splitlines()[1:-1]]
        assert {"AUTH TLS", "PBSZ", "PROT"} <= set(features)
    finally:
        close(client)


def test_command_order(tls_server: ThreadedFTPServer, pki: Pki) -> None:
    client = plain_client(tls_server)
    try:
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd("PBSZ 0")
        assert reply_code(exc) == "503"  # PBSZ before AUTH
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd("PROT P")
        assert reply_code(exc) == "503"
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd("AUTH KERBEROS")
        assert reply_code(exc) == "504"
        client.sendcmd(f"USER {USER}")
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd("AUTH TLS")
        assert reply_code(exc) == "503"  # AUTH after USER
    finally:
        close(client)

    client = tls_client(tls_server, pki, login=False)
    try:
        client.auth()
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd("PROT P")
        assert reply_code(exc) == "503"  # PROT before PBSZ
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd("AUTH TLS")
        assert reply_code(exc) == "503"  # already TLS
        assert client.sendcmd("PBSZ 0").startswith("200")
        for level, code in (("S", "536"), ("E", "536"), ("X", "504")):
            with pytest.raises(ftplib.error_perm) as exc:
                client.sendcmd(f"PROT {level}")
            assert reply_code(exc) == code, level
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd("CCC")
        assert reply_code(exc) == "534"
        # Still TLS after the refused CCC: log in and use the session.
        client.login(USER, PASSWORD)
        client.prot_p()
        assert client.nlst() == []
    finally:
        close(client)


# ------------------------------------------------------------ STARTTLS injection


@pytest.mark.parametrize(
    ("injected", "probe", "expected"),
    [
        # Executed, HELP would answer 214 before the probe's reply.
        (b"HELP\r\n", "NOOP", "200"),
        (b"FEAT\r\n", "NOOP", "200"),
        # Executed, these would log the session in: PWD would answer 257.
        (f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode(), "PWD", "530"),
    ],
    ids=["help", "feat", "login"],
)
def test_plaintext_pipelined_behind_auth_is_discarded(
    tls_server: ThreadedFTPServer, pki: Pki, injected: bytes, probe: str, expected: str
) -> None:
    sock = connect_raw(tls_server)
    assert read_reply(sock).startswith("220")
    sock.sendall(b"AUTH TLS\r\n" + injected)  # one write: one TCP segment
    assert read_reply(sock).startswith("234")
    # A plaintext reply to the injected lines would break this handshake.
    with pki.client_context().wrap_socket(sock, server_hostname=tls_server.host) as tls:
        first = command(tls, probe)
        assert first.startswith(expected), f"{probe} answered {first!r}"
        assert command(tls, "NOOP").startswith("200")
        assert command(tls, "QUIT").startswith("221")


# ------------------------------------------------------------ policies


def test_require_tls_globally(make_server: ServerFactory, pki: Pki) -> None:
    users = {
        USER: {"password": f"plaintext:{PASSWORD}"},
        "anonymous": {"require_tls": False},
    }
    srv = make_server(tls_config(pki, users=users, require_tls=True))
    client = plain_client(srv)
    try:
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd(f"USER {USER}")
        assert reply_code(exc) == "534"
        # USER was refused, so there is nothing to send a password for.
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd(f"PASS {PASSWORD}")
        assert reply_code(exc) == "503"
        # Unknown names get the server's default: the reply reveals nothing.
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd("USER nobody")
        assert reply_code(exc) == "534"
    finally:
        close(client)

    anon = plain_client(srv)
    try:
        assert anon.login().startswith("230")  # exempt, stays in clear
        assert anon.nlst() == []
    finally:
        close(anon)

    secure = tls_client(srv, pki)
    try:
        assert secure.nlst() == []
    finally:
        close(secure)


def test_require_tls_per_user(make_server: ServerFactory, pki: Pki) -> None:
    users = {
        USER: {"password": f"plaintext:{PASSWORD}", "require_tls": True},
        "bob": {"password": "plaintext:bob"},
    }
    srv = make_server(tls_config(pki, users=users))
    client = plain_client(srv)
    try:
        with pytest.raises(ftplib.error_perm) as exc:
            client.login(USER, PASSWORD)
        assert reply_code(exc) == "534"
        assert client.login("bob", "bob").startswith("230")
    finally:
        close(client)
    secure = tls_client(srv, pki)
    close(secure)


def test_require_data_tls(make_server: ServerFactory, pki: Pki, tmp_path: Path) -> None:
    url = mount_url("osfs", tmp_path)
    (tmp_path / "root" / "f.txt").write_bytes(b"data\n")
    users = {
        USER: {"password": f"plaintext:{PASSWORD}"},
        "anonymous": {"require_data_tls": False},
    }
    srv = make_server(tls_config(pki, url, users=users, require_data_tls=True))
    client = tls_client(srv, pki, login=False)
    try:
        client.login(USER, PASSWORD)  # TLS control connection, PROT C
        client.voidcmd("TYPE I")
        for call in (
            lambda: client.nlst(),
            lambda: get(client, "f.txt"),
            lambda: client.retrlines("LIST", lambda line: None),
        ):
            with pytest.raises(ftplib.error_perm) as exc:
                call()
            assert reply_code(exc) == "521"
        assert client.sendcmd("PBSZ 0").startswith("200")
        with pytest.raises(ftplib.error_perm) as exc:
            client.sendcmd("PROT C")
        assert reply_code(exc) == "534"
        client.prot_p()  # PBSZ 0 + PROT P, and ftplib wraps its data sockets
        assert client.nlst() == ["f.txt"]
        assert get(client, "f.txt") == b"data\n"
        client.storbinary("STOR g.txt", io.BytesIO(b"up\n"))
        assert (tmp_path / "root" / "g.txt").read_bytes() == b"up\n"
    finally:
        close(client)

    anon = plain_client(srv)  # exempt: clear control and data
    try:
        anon.login()
        assert sorted(anon.nlst()) == ["f.txt", "g.txt"]
    finally:
        close(anon)


# ------------------------------------------------------------ versions


def test_min_version_1_3(make_server: ServerFactory, pki: Pki) -> None:
    srv = make_server(tls_config(pki, min_version="1.3"))
    old = ftplib.FTP_TLS(
        context=pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2), timeout=10
    )
    try:
        old.connect(srv.host, srv.port)
        with pytest.raises(ssl.SSLError):
            old.auth()
    finally:
        old.close()
    raw = socket.create_connection((srv.host, implicit_port(srv)), timeout=10)
    try:
        with pytest.raises(ssl.SSLError):
            pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2).wrap_socket(
                raw, server_hostname=srv.host
            )
    finally:
        raw.close()

    client = tls_client(srv, pki)  # the server is still up
    try:
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() == "TLSv1.3"
        client.storbinary("STOR x", io.BytesIO(b"x"))
        assert get(client, "x") == b"x"
    finally:
        close(client)


# ------------------------------------------------------------ failed handshakes


def test_implicit_silent_client_is_dropped(
    tls_server: ThreadedFTPServer, pki: Pki, witness: ftplib.FTP_TLS
) -> None:
    with connect_raw(tls_server, implicit_port(tls_server)) as sock:
        assert assert_dropped(sock) >= HANDSHAKE_TIMEOUT * 0.9  # dropped by the timeout
    assert_still_serving(tls_server, pki, witness)


def test_explicit_silent_client_is_dropped(
    tls_server: ThreadedFTPServer, pki: Pki, witness: ftplib.FTP_TLS
) -> None:
    with start_auth_tls(tls_server) as sock:
        assert assert_dropped(sock) >= HANDSHAKE_TIMEOUT * 0.9
    wait_sessions(tls_server, 1)
    assert_still_serving(tls_server, pki, witness)


@pytest.mark.parametrize("mode", ["explicit", "implicit"])
def test_garbage_instead_of_client_hello(
    tls_server: ThreadedFTPServer, pki: Pki, witness: ftplib.FTP_TLS, mode: str
) -> None:
    if mode == "explicit":
        sock = start_auth_tls(tls_server)
    else:
        sock = connect_raw(tls_server, implicit_port(tls_server))
    with sock:
        sock.sendall(b"USER alice\r\nPASS secret\r\n" + b"\x00garbage" * 100)
        assert_dropped(sock)
    wait_sessions(tls_server, 1)
    assert_still_serving(tls_server, pki, witness)


@pytest.mark.parametrize("mode", ["explicit", "implicit"])
@pytest.mark.parametrize("how", ["half-close", "close"])
def test_client_drops_mid_handshake(
    tls_server: ThreadedFTPServer, pki: Pki, witness: ftplib.FTP_TLS, mode: str, how: str
) -> None:
    hello = client_hello(tls_server, pki)
    if mode == "explicit":
        sock = start_auth_tls(tls_server)
    else:
        sock = connect_raw(tls_server, implicit_port(tls_server))
    with sock:
        sock.sendall(hello[: len(hello) // 2])
        if how == "half-close":
            sock.shutdown(socket.SHUT_WR)
            assert_dropped(sock)
    wait_sessions(tls_server, 1)
    assert_still_serving(tls_server, pki, witness)


def test_failed_handshakes_free_their_connection_slot(make_server: ServerFactory, pki: Pki) -> None:
    """A session whose handshake failed is forgotten: it does not count
    against max_connections_per_ip afterwards."""
    config = tls_config(pki)
    config["server"]["max_connections_per_ip"] = 1
    srv = make_server(config)
    for port in (srv.port, implicit_port(srv)) * 2:
        sock = start_auth_tls(srv) if port == srv.port else connect_raw(srv, port)
        with sock:
            sock.sendall(b"\x16\x03\x01garbage" * 10)
            assert_dropped(sock)
        wait_sessions(srv, 0)
    client = tls_client(srv, pki)
    try:
        assert client.nlst() == []
    finally:
        close(client)


def test_upload_cut_without_close_notify(tls_server: ThreadedFTPServer, pki: Pki) -> None:
    """An upload whose TLS data stream ends with a bare TCP close (a forged
    FIN can do that) is a failed transfer, not a shorter file."""
    client = tls_client(tls_server, pki)
    try:
        client.storbinary("STOR keep.bin", io.BytesIO(b"old content"))
        conn = client.transfercmd("STOR keep.bin")
        conn.sendall(payload(300_000, seed=3))
        conn.close()  # SSLSocket.close() sends no close_notify
        with pytest.raises(ftplib.error_temp) as exc:
            client.voidresp()
        assert reply_code(exc) == "426"
        assert get(client, "keep.bin") == b"old content"
        conn = client.transfercmd("STOR new.bin")
        conn.sendall(b"partial")
        conn.close()
        with pytest.raises(ftplib.error_temp):
            client.voidresp()
        assert client.nlst() == ["keep.bin"]
    finally:
        close(client)


def test_failed_data_handshake_keeps_the_session(tls_server: ThreadedFTPServer, pki: Pki) -> None:
    client = tls_client(tls_server, pki)
    try:
        client.storbinary("STOR f", io.BytesIO(b"content"))
        port = int(client.sendcmd("EPSV").split("|")[-2])
        with socket.create_connection((tls_server.host, port), timeout=10) as data:
            client.putcmd("RETR f")
            assert client.getresp().startswith("150")
            data.sendall(b"not a ClientHello\r\n" * 10)
            with pytest.raises(ftplib.error_perm) as exc:
                client.getresp()
            assert reply_code(exc) == "522"
            # OpenSSL's reason and source line (_ssl.c:989) are for the log
            assert str(exc.value) == "522 TLS handshake on the data connection failed"
        assert get(client, "f") == b"content"
    finally:
        close(client)


@pytest.mark.parametrize("mode", ["explicit", "implicit"])
def test_shutdown_during_a_handshake(make_server: ServerFactory, pki: Pki, mode: str) -> None:
    """Stopping the server ends a session that is waiting for a handshake
    at once, not after handshake_timeout, and leaves nothing behind."""
    srv = make_server(tls_config(pki, handshake_timeout=30))
    if mode == "explicit":
        sock = start_auth_tls(srv)
    else:
        sock = connect_raw(srv, implicit_port(srv))
        wait_sessions(srv, 1, grow=True)  # accepted: the handshake is pending
    with sock:
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < DROP_WITHIN
        assert_dropped(sock)


def test_a_transfer_aborted_before_its_tls_handshake_is_426(
    tls_server: ThreadedFTPServer, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ABOR while a PROT P upload waits for a transfer thread (a busy pool)
    shuts its socket down before the handshake begins: the upload is
    aborted (426, logged as an abort), not a 451 'local error'."""
    import threading

    import vfsftp.session.channel

    waiting, go = threading.Event(), threading.Event()
    real = vfsftp.session.channel.handshake_data_socket

    def late(sock: ssl.SSLSocket, timeout: float) -> None:
        waiting.set()
        go.wait(10)  # (bounded: a failing test still ends)
        real(sock, timeout)

    monkeypatch.setattr(vfsftp.session.channel, "handshake_data_socket", late)
    client = tls_client(tls_server, pki)
    client.prot_p()
    client.voidcmd("TYPE I")
    host, port = client.makepasv()
    data = socket.create_connection((host, port), timeout=10)
    try:
        assert client.sendcmd("STOR /aborted.bin").startswith("150")
        assert waiting.wait(10)
        client.putcmd("ABOR")
        wait_for(
            lambda: any(
                ch.transfer is not None
                and ch.transfer.state is not None
                and ch.transfer.state.aborted
                for ch in tls_server.server.channels
            ),
            "the abort to reach the transfer",
        )
        go.set()
        with pytest.raises(ftplib.error_temp, match=r"^426 Transfer aborted"):
            client.getresp()
        assert client.getresp().startswith("226")
    finally:
        go.set()
        data.close()
    assert not tls_server.exists("/aborted.bin")
    client.quit()


# ------------------------------------------------------------ idle memory


def _server_read_buffers(srv: ThreadedFTPServer) -> list[int]:
    """The size of each TLS control connection's read buffer (asyncio's
    SSLProtocol, Python 3.11+), read on the server's loop."""

    async def sizes() -> list[int]:
        return [
            len(ch.transport._ssl_protocol._ssl_buffer)  # type: ignore[attr-defined]
            for ch in srv.server.channels
        ]

    return srv.call(sizes())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10's SSLProtocol has no read buffer")
def test_tls_control_connections_read_into_a_small_buffer(
    tls_server: ThreadedFTPServer, pki: Pki
) -> None:
    """asyncio gives each TLS connection a zero-filled 256 KiB read buffer
    for its whole life: most of the ~260 KiB an idle FTPS session cost.
    Control connections read lines; theirs is CONTROL_READ_SIZE, explicit
    and implicit alike, and a line of nearly that size (the line limit is
    8 KiB), pipelined lines and transfers still work."""
    explicit = tls_client(tls_server, pki)
    raw = socket.create_connection((tls_server.host, implicit_port(tls_server)), timeout=10)
    implicit = pki.client_context().wrap_socket(raw, server_hostname=tls_server.host)
    try:
        assert read_reply(implicit).startswith("220")
        assert command(implicit, f"USER {USER}").startswith("331")
        assert command(implicit, f"PASS {PASSWORD}").startswith("230")
        wait_sessions(tls_server, 2, grow=True)
        assert _server_read_buffers(tls_server) == [CONTROL_READ_SIZE] * 2

        deep = "/" + "d" * 250
        long_path = deep * 30  # 7,530 bytes: a line of almost a buffer
        assert len(f"CWD {long_path}\r\n") > CONTROL_READ_SIZE * 0.9
        with pytest.raises(ftplib.error_perm) as err:
            explicit.cwd(long_path)
        assert reply_code(err) == "553"  # (longer than a path may be: read whole, answered)
        assert command(implicit, f"CWD {long_path}").startswith("553")
        # Several commands in one TLS record, as a pipelining client sends
        # them: each answered, in order.
        explicit.sock.sendall(b"NOOP\r\nPWD\r\nNOOP\r\n")
        assert [explicit.getresp()[:3] for _ in range(3)] == ["200", "257", "200"]
        data = payload(300_000, 7)
        explicit.storbinary("STOR big.bin", io.BytesIO(data))
        assert get(explicit, "big.bin") == data
        assert command(implicit, "TYPE I").startswith("200")
        assert command(implicit, "SIZE big.bin") == "213 300000"
    finally:
        close(explicit)
        implicit.close()


def test_an_idle_ftps_session_costs_tens_of_kib(pki: Pki, tmp_path: Path) -> None:
    """A real `vfsftp serve`: 100 idle logged-in FTPS sessions (explicit TLS)
    add well under 64 KiB of RSS each (26 KiB measured; ~260 KiB before the
    control connections' read buffer was made small)."""
    port = free_port()
    config = tmp_path / "mounts.yaml"
    config.write_text(
        f"server:\n  listen: 127.0.0.1\n  port: {port}\n  max_connections_per_ip: 200\n"
        f"  tls: {{certificate: '{pki.cert}', key: '{pki.key}'}}\n"
        "mounts:\n  /: mem://\n"
        f"users:\n  {USER}: {{password: 'plaintext:{PASSWORD}'}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "vfsftp", "serve", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    clients: list[ftplib.FTP_TLS] = []

    def rss_kib() -> int:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0])

    def session() -> ftplib.FTP_TLS:
        client = ftplib.FTP_TLS(context=pki.client_context(), timeout=10)
        try:
            client.connect("127.0.0.1", port)
            client.login(USER, PASSWORD)
        except BaseException:
            client.close()
            raise
        return client

    try:
        wait_listening(port)
        close(session())  # (what the first TLS session loads is not per session)
        before = rss_kib()
        clients = [session() for _ in range(100)]
        for client in clients:  # every one answered: all are set up
            client.voidcmd("NOOP")
        per_session = (rss_kib() - before) / len(clients)
        assert per_session < 64, f"{per_session:.1f} KiB per idle FTPS session"
    finally:
        for client in clients:
            client.close()
        proc.terminate()
        proc.wait(20)
