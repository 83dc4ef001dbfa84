"""The PROXY protocol on the control listener (``server.proxy_protocol``):
raw headers from a pretend balancer on loopback, then a real ``haproxy``
(Debian's package) in front of two instances sharing one Redis: the
per-address limit and bans hold per real client, a ban of one client
leaves the others served, and passive data connections, forwarded port
for port with their own PROXY header, are matched to the real client."""

# ruff: noqa: F811

from __future__ import annotations

import contextlib
import ftplib
import logging
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PASSWORD,
    USER,
    Control,
    ServerFactory,
    free_port_range,
    get,
    login_at,
    put,
)
from redis_fixtures import REDIS_SERVER, RedisServer, free_port, redis_server  # noqa: F401

from vfsftp.protocol.proxy import V2_SIGNATURE
from vfsftp.testing import ThreadedFTPServer, make_tls_files

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
)


def proxied_server(
    make_server: ServerFactory, proxy: dict[str, Any], **server: Any
) -> ThreadedFTPServer:
    return make_server(
        {
            "server": {"proxy_protocol": proxy, **server},
            "users": {USER: {"password": f"plaintext:{PASSWORD}", "perms": "elradfmwMT"}},
        }
    )


def v1(source: str, port: int = 40000) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 {port} 21\r\n".encode()


def v2(source: str, port: int = 40000) -> bytes:
    block = socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", port, 21)
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(block)) + block


class Raw:
    """A control connection that starts with raw bytes (a header)."""

    def __init__(self, srv: ThreadedFTPServer, first: bytes, source: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((srv.host, srv.port), 10, (source, 0))
        self.sock.sendall(first)
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline()

    def cmd(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.mark.parametrize("header", [v1, v2])
def test_the_header_names_the_client_for_per_address_limits(
    make_server: ServerFactory, header: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vfsftp.session")
    srv = proxied_server(make_server, {"from": ["127.0.0.1"]}, max_connections_per_ip=1)
    first = Raw(srv, header("192.0.2.7"))
    try:
        assert first.line().startswith(b"220")
        # The same client again (through the same balancer): over its limit.
        again = Raw(srv, header("192.0.2.7", 40001))
        assert again.line().startswith(b"421 Too many connections from your address")
        again.close()
        # Another client behind the same balancer is its own address.
        other = Raw(srv, header("192.0.2.8"))
        assert other.line().startswith(b"220")
        assert other.cmd("USER alice").startswith(b"331")
        assert other.cmd(f"PASS {PASSWORD}").startswith(b"230")
        other.close()
    finally:
        first.close()
    assert any("connect 192.0.2.7:40000 via 127.0.0.1:" in r.getMessage() for r in caplog.records)


def test_the_header_and_what_follows_it_in_one_segment(make_server: ServerFactory) -> None:
    """The header is read exactly: a command in the same segment is the
    session's first line."""
    srv = proxied_server(make_server, {"from": ["127.0.0.1"]})
    raw = Raw(srv, v2("192.0.2.7") + b"USER alice\r\n")
    try:
        assert raw.line().startswith(b"220")
        assert raw.line().startswith(b"331")
    finally:
        raw.close()


@pytest.mark.parametrize(
    "first",
    [
        b"USER alice\r\n",  # no header at all
        b"PROXY TCP4 192.0.2.300 127.0.0.1 1 2\r\n",
        V2_SIGNATURE + b"\x21\x11\x00\x04abcd",  # too short for IPv4 addresses
    ],
)
def test_a_balancer_connection_without_a_valid_header_is_dropped(
    make_server: ServerFactory, first: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    srv = proxied_server(make_server, {"from": ["127.0.0.1"]})
    raw = Raw(srv, first)
    try:
        assert raw.line() == b""  # closed, no greeting
    finally:
        raw.close()
    assert any(
        "connection from balancer 127.0.0.1 refused" in r.getMessage() for r in caplog.records
    )


def test_a_balancer_that_never_sends_its_header_times_out(make_server: ServerFactory) -> None:
    srv = proxied_server(make_server, {"from": ["127.0.0.1"], "header_timeout": 0.3})
    raw = Raw(srv, b"")
    try:
        assert raw.line() == b""
    finally:
        raw.close()


def test_anyone_else_is_refused_and_direct_networks_are_served(
    make_server: ServerFactory,
) -> None:
    srv = proxied_server(make_server, {"from": ["127.0.0.1"], "direct": ["127.0.0.3"]})
    stranger = Control(srv.host, srv.port, source="127.0.0.2")
    assert stranger.welcome[0] == 421 and "load balancer" in stranger.welcome[1][0]
    stranger.close()
    direct = Control(srv.host, srv.port, source="127.0.0.3")
    try:
        assert direct.welcome[0] == 220
        # A PROXY header from a direct client is never trusted.
        code, _ = direct.cmd("PROXY TCP4 192.0.2.7 127.0.0.1 1 2")
        assert code == 421
    finally:
        direct.close()


def test_implicit_tls_behind_a_balancer(make_server: ServerFactory, tmp_path: Path) -> None:
    """The ClientHello right behind the header reaches the TLS layer whole."""
    tls = make_tls_files(tmp_path)
    srv = ThreadedFTPServer(
        {
            "server": {"proxy_protocol": {"from": ["127.0.0.1"]}},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        },
        tls=tls,
        user=USER,
        password=PASSWORD,
    ).start()
    try:
        port = srv.implicit_port
        assert port is not None
        with socket.create_connection((srv.host, port), 10) as sock:
            sock.sendall(v2("192.0.2.9"))
            ctx = tls.client_context()
            with ctx.wrap_socket(sock, server_hostname="localhost") as tsock:
                f = tsock.makefile("rb")
                assert f.readline().startswith(b"220")
                tsock.sendall(b"QUIT\r\n")
                assert f.readline().startswith(b"221")
                f.close()
    finally:
        srv.stop()


def test_without_proxy_protocol_nothing_changes(make_server: ServerFactory) -> None:
    srv = make_server({"users": {USER: {"password": f"plaintext:{PASSWORD}"}}})
    ctl = Control(srv.host, srv.port)
    try:
        assert ctl.cmd("PROXY TCP4 192.0.2.7 127.0.0.1 1 2")[0] == 500
    finally:
        ctl.close()


# ---------------------------------------------------------------- haproxy


class HAProxy:
    """haproxy in front of two instances: the control port balanced over
    both with send-proxy-v2, each instance's passive range forwarded port
    for port (also with send-proxy-v2), as docs/operations.md shows."""

    def __init__(
        self,
        folder: Path,
        port: int,
        a: tuple[str, int, tuple[int, int]],
        b: tuple[str, int, tuple[int, int]],
    ) -> None:
        assert HAPROXY is not None
        self.port = port
        self.config = folder / "haproxy.cfg"
        self.config.write_text(
            "global\n"
            "    maxconn 512\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 5s\n"
            "    timeout client 60s\n"
            "    timeout server 60s\n"
            "frontend ftp\n"
            f"    bind 127.0.0.1:{port}\n"
            "    default_backend vfsftp\n"
            "backend vfsftp\n"
            "    balance roundrobin\n"
            f"    server a {a[0]}:{a[1]} send-proxy-v2 source 127.0.0.1\n"
            f"    server b {b[0]}:{b[1]} send-proxy-v2 source 127.0.0.1\n"
            "listen passive_a\n"
            f"    bind 127.0.0.1:{a[2][0]}-{a[2][1]}\n"
            f"    server a {a[0]} send-proxy-v2 source 127.0.0.1\n"
            "listen passive_b\n"
            f"    bind 127.0.0.1:{b[2][0]}-{b[2][1]}\n"
            f"    server b {b[0]} send-proxy-v2 source 127.0.0.1\n"
        )
        self.log = folder / "haproxy.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(self.config)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited: {self.log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def behind_haproxy(
    redis_server: RedisServer, make_server: ServerFactory, tmp_path: Path
) -> Iterator[tuple[HAProxy, list[ThreadedFTPServer]]]:
    if HAPROXY is None:
        pytest.skip("haproxy not installed (apt-get install haproxy)")
    ranges = [free_port_range(4), free_port_range(4)]
    servers = []
    for host, passive in zip(("127.0.0.2", "127.0.0.3"), ranges, strict=True):
        servers.append(
            make_server(
                {
                    "server": {
                        "proxy_protocol": {"from": ["127.0.0.1"]},
                        "masquerade_address": "127.0.0.1",
                        "passive_ports": list(passive),
                        "max_connections_per_ip": 2,
                        "ban": {"max_failures": 2, "window": 60, "duration": 600},
                    },
                    "cluster": {"url": redis_server.url, "lease": 2, "heartbeat": 0.3},
                    "mounts": {"/": "mem://"},
                    "users": {USER: {"password": f"plaintext:{PASSWORD}", "perms": "elradfmwMT"}},
                },
                host=host,
            )
        )
    proxy = None
    for _ in range(3):  # the probed port may be taken meanwhile
        try:
            proxy = HAProxy(
                tmp_path,
                free_port(),
                (servers[0].host, servers[0].port, ranges[0]),
                (servers[1].host, servers[1].port, ranges[1]),
            )
            break
        except AssertionError:
            continue
    assert proxy is not None
    try:
        yield proxy, servers
    finally:
        proxy.stop()


def _login(proxy: HAProxy, source: str) -> ftplib.FTP:
    return login_at("127.0.0.1", proxy.port, source=source)


@pytest.mark.haproxy
@pytest.mark.redis
@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server not installed")
def test_haproxy_per_address_limit_and_ban_hold_per_real_client(
    behind_haproxy: tuple[HAProxy, list[ThreadedFTPServer]],
) -> None:
    proxy, servers = behind_haproxy
    held = [_login(proxy, "127.0.0.10"), _login(proxy, "127.0.0.10")]  # one on each instance
    try:
        # Each client its own address through the balancer, counted fleet-wide.
        with pytest.raises(ftplib.error_temp, match="421 Too many connections from your address"):
            _login(proxy, "127.0.0.10")
        others = [_login(proxy, "127.0.0.11"), _login(proxy, "127.0.0.12")]
        # Transfers through the forwarded passive ranges, on both instances.
        for f in [*held, *others]:
            put(f, "/hello.txt", b"hello through haproxy")
            assert get(f, "/hello.txt") == b"hello through haproxy"
        for f in others:
            f.quit()
    finally:
        for f in held:
            with contextlib.suppress(ftplib.Error, OSError, EOFError):
                f.quit()
    # Two failed logins from one client ban it (on both instances) ...
    for _ in range(2):
        ctl = Control("127.0.0.1", proxy.port, source="127.0.0.13")
        ctl.cmd(f"USER {USER}")
        ctl.cmd("PASS wrong")
        ctl.close()
    for _ in range(2):  # round robin: both instances
        ctl = Control("127.0.0.1", proxy.port, source="127.0.0.13")
        assert ctl.welcome[0] == 421 and "failed logins" in ctl.welcome[1][0]
        ctl.close()
    # ... and nobody else: the balancer's own address is never banned.
    for _ in range(2):
        _login(proxy, "127.0.0.14").quit()
    bans = [s.server.bans for s in servers]
    assert all(b is not None and not b.banned() for b in bans)  # (the fleet holds the ban)


@pytest.mark.haproxy
@pytest.mark.redis
@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server not installed")
def test_haproxy_passive_port_is_matched_to_the_real_client(
    behind_haproxy: tuple[HAProxy, list[ThreadedFTPServer]],
) -> None:
    """A data connection to another client's passive port, through the
    same balancer, is refused: its PROXY header names someone else."""
    proxy, _ = behind_haproxy
    victim = _login(proxy, "127.0.0.20")
    try:
        put(victim, "/secret.txt", b"not for the thief")
        reply = victim.sendcmd("PASV")
        port = int(reply.rsplit(",", 2)[1]) * 256 + int(reply.rsplit(",", 2)[2].split(")")[0])
        thief = socket.create_connection(("127.0.0.1", port), 10, ("127.0.0.21", 0))
        thief.settimeout(10)
        victim.sendcmd("TYPE I")
        with socket.create_connection(("127.0.0.1", port), 10, ("127.0.0.20", 0)) as data:
            victim.putcmd("RETR /secret.txt")
            assert victim.getresp().startswith("150")
            got = b""
            while chunk := data.recv(65536):
                got += chunk
        assert victim.voidresp().startswith("226")
        assert got == b"not for the thief"
        assert thief.recv(100) == b""  # closed unanswered
        thief.close()
    finally:
        victim.quit()
