"""A fixed passive port range (``server.passive_ports``): each port serves
connection after connection (the server closes first after RETR and
listings, so used ports sit in TIME_WAIT), the range is used in turn, and a
port that listens for one session is never handed to another.
(``--workers 2``: test_workers.py.)"""

from __future__ import annotations

import contextlib
import ftplib
import io
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from conftest import ServerFactory, free_port_range, login

from vfsftp.session.data import open_passive, rotated_range
from vfsftp.testing import ThreadedFTPServer


@pytest.mark.parametrize(
    ("low", "high", "start", "expected"),
    [
        (10, 14, 10, [10, 11, 12, 13, 14]),
        (10, 14, 12, [12, 13, 14, 10, 11]),
        (10, 14, 14, [14, 10, 11, 12, 13]),
        (10, 14, 99, [10, 11, 12, 13, 14]),  # (a range changed by a reload)
        (10, 10, 10, [10]),
    ],
)
def test_rotated_range(low: int, high: int, start: int, expected: list[int]) -> None:
    assert list(rotated_range(low, high, start)) == expected


@pytest.mark.parametrize("fixed", [True, False], ids=["range", "ephemeral"])
def test_a_passive_listener_is_non_blocking_and_knows_its_port(fixed: bool) -> None:
    """Created non-blocking (SOCK_NONBLOCK on Linux, setblocking elsewhere:
    VFSFTP_PORTABLE), its port from the range or from the kernel."""
    port_range = free_port_range(2) if fixed else None
    listener = open_passive("127.0.0.1", socket.AF_INET, port_range, "127.0.0.1")
    try:
        sock = listener.sock
        assert sock.gettimeout() == 0.0
        assert os.get_blocking(sock.fileno()) is False
        assert listener.port == sock.getsockname()[1]
        if port_range is not None:
            assert port_range[0] <= listener.port <= port_range[1]
    finally:
        listener.sock.close()


def _ports_seen(ftp: ftplib.FTP) -> list[int]:
    """Record the port of every passive listener ftplib is offered."""
    seen: list[int] = []
    makepasv = ftp.makepasv

    def recording() -> tuple[str, int]:
        host, port = makepasv()
        seen.append(port)
        return host, port

    ftp.makepasv = recording  # type: ignore[method-assign]
    return seen


def _server(make_server: ServerFactory, ports: tuple[int, int]) -> ThreadedFTPServer:
    return make_server(
        {
            "server": {"passive_ports": list(ports)},
            "mounts": {"/": "mem://"},
            "users": {"alice": {"password": "plaintext:secret"}},
        }
    )


def test_ten_ports_carry_a_thousand_transfers(make_server: ServerFactory) -> None:
    ports = free_port_range(10)
    srv = _server(make_server, ports)
    ftp = login(srv)
    seen = _ports_seen(ftp)
    payload = b"x" * 1000
    started = time.monotonic()
    try:
        ftp.storbinary("STOR f", io.BytesIO(payload))
        for i in range(999):
            if i % 3 == 0:
                ftp.storbinary("STOR f", io.BytesIO(payload))
            elif i % 3 == 1:
                out = io.BytesIO()
                ftp.retrbinary("RETR f", out.write)
                assert out.getvalue() == payload
            else:
                lines: list[str] = []
                ftp.retrlines("LIST", lines.append)
                assert lines[-1].endswith(" f")
    finally:
        ftp.close()
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"1,000 transfers took {elapsed:.1f}s"
    # Used in turn: each of the ten ports served a tenth of the transfers.
    counts = Counter(seen)
    assert sorted(counts) == list(range(ports[0], ports[1] + 1))
    assert max(counts.values()) - min(counts.values()) <= 1, counts


@pytest.fixture
def clients() -> Iterator[list[ftplib.FTP]]:
    held: list[ftplib.FTP] = []
    yield held
    for f in held:
        with contextlib.suppress(ftplib.Error, OSError, EOFError):
            f.quit()
        f.close()


def test_a_full_range_gives_425_and_recovers(
    make_server: ServerFactory, clients: list[ftplib.FTP]
) -> None:
    ports = free_port_range(3)
    srv = _server(make_server, ports)
    holders = [login(srv) for _ in range(3)]
    clients.extend(holders)
    listening = [int(f.sendcmd("EPSV").split("|")[-2]) for f in holders]
    assert sorted(listening) == list(range(ports[0], ports[1] + 1))  # never shared
    fourth = login(srv)
    clients.append(fourth)
    with pytest.raises(
        ftplib.error_temp, match=r"^425 Can't open passive connection: no free port"
    ):
        fourth.sendcmd("EPSV")
    assert fourth.sendcmd("NOOP").startswith("200")  # the session goes on
    # One holder uses its listener for a listing: the server closes that
    # connection first, so the port is in TIME_WAIT, and free again.
    first = holders[0]
    with socket.create_connection((srv.host, listening[0]), timeout=10) as conn:
        assert first.sendcmd("LIST").startswith("150")
        while conn.recv(4096):
            pass
    assert first.voidresp().startswith("226")
    assert int(fourth.sendcmd("EPSV").split("|")[-2]) == listening[0]
    fourth.voidcmd("ABOR")
