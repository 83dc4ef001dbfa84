"""Every failed transfer says why, in its reply and in its transfer log line
(text, xferlog and JSON): a reset data connection, a stall, a full disk, a
short upload after ALLO, ABOR, a client gone before its upload ended."""

from __future__ import annotations

import errno
import ftplib
import io
import json
import logging
import re
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, USER, Control, ServerFactory, login, wait_for

from vfsftp.config.schema import LoggingConfig
from vfsftp.ops.logs import configure_logging, parse_xferlog

BIG = 16 * 1024 * 1024  # more than the socket buffers hold
STALL = 0.5


@pytest.fixture
def logs() -> Iterator[Callable[..., None]]:
    def setup(**keys: Any) -> None:
        configure_logging(LoggingConfig(level="info", **keys))

    yield setup
    configure_logging(LoggingConfig(level="warning"))
    root = logging.getLogger("vfsftp")
    for h in root.handlers[:]:
        root.removeHandler(h)
        h.close()


class _FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def _reply(call: Callable[[], object]) -> str:
    with pytest.raises(ftplib.Error) as exc:
        call()
    return str(exc.value)


def _fail_in_every_way(srv: Any) -> dict[str, str]:
    """Transfers that fail, one per fault; their replies by file name."""
    replies: dict[str, str] = {}
    f = login(srv)
    f.storbinary("STOR big.bin", io.BytesIO(b"b" * BIG))
    # reset: the data connection is reset mid-upload
    conn = f.transfercmd("STOR reset.bin")
    conn.sendall(b"r" * 100_000)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    replies["reset"] = _reply(f.voidresp)
    # stall: a download whose client takes nothing
    host, port = f.makepasv()
    with socket.socket() as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        conn.connect((host, port))
        assert f.sendcmd("RETR big.bin").startswith("150")
        replies["stall"] = _reply(f.voidresp)
    # disk full
    replies["full"] = _reply(lambda: f.storbinary("STOR /full/x.bin", io.BytesIO(b"f" * 1000)))
    # short: fewer bytes than ALLO announced
    f.sendcmd("ALLO 2000")
    replies["short"] = _reply(lambda: f.storbinary("STOR short.bin", io.BytesIO(b"s" * 1000)))
    # abor
    conn = f.transfercmd("STOR abor.bin")
    conn.sendall(b"a" * 1000)
    replies["abor"] = f.abort()  # (ftplib returns the 426)
    conn.close()
    f.voidresp()
    f.quit()
    # client-gone: a client that closes its control connection mid-upload
    c = Control(srv.host, srv.port)
    c.login()
    _, lines = c.cmd("EPSV")
    with socket.create_connection((srv.host, int(lines[0].split("|")[-2]))) as data:
        assert c.cmd("STOR gone.bin")[0] == 150
        data.sendall(b"g" * 1000)
        c.close()
    wait_for(lambda: not srv.server.channels, "the sessions to end")
    return replies


EXPECTED = {  # file: (fault, what its reply says)
    "/reset.bin": (
        "reset",
        "426 Connection closed; transfer aborted: data connection reset by peer",
    ),
    "/big.bin": ("stall", f"426 No data moved for {STALL:g} seconds"),
    "/full/x.bin": ("disk-full", "452 Insufficient storage space"),
    "/short.bin": ("short", "451 Upload discarded: the data connection ended after 1000 of"),
    "/abor.bin": ("abor", "426 Transfer aborted: ABOR received"),
    "/gone.bin": ("client-gone", None),
}
REPLY_OF = {
    "/reset.bin": "reset",
    "/big.bin": "stall",
    "/full/x.bin": "full",
    "/short.bin": "short",
    "/abor.bin": "abor",
}


def _rows(fmt: str, text: str) -> list[tuple[str, str, str, str]]:
    """(path, outcome or status, fault, reason) of each transfer line."""
    rows = []
    for line in text.splitlines():
        if fmt == "json":
            r = json.loads(line)
            rows.append((r["path"], r["outcome"], r["fault"], r["reason"]))
        elif fmt == "xferlog":
            r = parse_xferlog(line)
            rows.append((r["path"], r["status"], r["fault"], ""))
        else:
            m = re.search(
                r'path="(?P<path>[^"]*)" .* result=(?P<outcome>\w+)'
                r'(?: fault=(?P<fault>\S+) reason="(?P<reason>.*)")?(?: checksum=\S+)?$',
                line,
            )
            assert m is not None, line
            rows.append((m["path"], m["outcome"], m["fault"] or "", m["reason"] or ""))
    return rows


@pytest.mark.parametrize("fmt", ["text", "xferlog", "json"])
def test_every_failed_transfer_says_why(
    make_server: ServerFactory,
    tmp_path: Path,
    logs: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    xfer = tmp_path / "transfers.log"
    logs(file=str(tmp_path / "session.log"), transfer_log=str(xfer), transfer_log_format=fmt)
    srv = make_server(
        {
            "server": {"stall_timeout": STALL},
            "mounts": {"/": "mem://", "/full": "mem://"},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    full = next(m.fs for m in srv.server.mounts.global_mounts if m.path == "/full")
    monkeypatch.setattr(full, "openbin", lambda path, mode="r", **kw: _FullDisk())
    replies = _fail_in_every_way(srv)
    for path, name in REPLY_OF.items():
        expected = EXPECTED[path][1]
        assert expected is not None
        assert replies[name].startswith(expected), (name, replies[name])
    assert "ConnectionResetError" in replies["reset"]
    srv.stop()
    rows = {row[0]: row for row in _rows(fmt, xfer.read_text()) if row[0] != "/big.bin" or row[2]}
    for path, (fault, _) in EXPECTED.items():
        row = rows[path]
        assert row[2] == fault, row
        if fmt == "xferlog":
            assert row[1] == "i"  # incomplete, the fault after the 14 fields
        else:
            assert row[1] == ("abort" if fault in ("abor", "client-gone") else "fail"), row
            assert row[3], row  # and a reason for people
    if fmt != "xferlog":
        assert "ConnectionResetError" in rows["/reset.bin"][3]
        assert rows["/gone.bin"][3] == "the client closed the control connection"
        assert rows["/full/x.bin"][3] == "OSError: [Errno 28] No space left on device"
    # The metrics count them by fault.
    for path, (fault, _) in EXPECTED.items():
        direction = "out" if path == "/big.bin" else "in"
        labels = {"direction": direction, "fault": fault}
        value = srv.server.metrics.registry.get_sample_value("vfsftp_transfer_faults_total", labels)
        assert value == 1.0, (labels, value)
