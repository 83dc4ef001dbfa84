"""Shared fixtures: a real vfsftp server on loopback, parametrised over the
storage backend (in-memory, local folder) and the address family, plus a leak
check after every integration test (file descriptors, asyncio tasks, threads).
"""

from __future__ import annotations

import contextlib
import ftplib
import gc
import io
import os
import random
import socket
import sys
import threading
import time
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fs.test
import pytest

from vfsftp.testing import ThreadedFTPServer

# fs 2.4.16's FSTestCases.test_remove evaluates self.assertRaisesRegexp, an
# alias unittest removed in Python 3.12 (PyFilesystem2 is unmaintained).
if not hasattr(fs.test.FSTestCases, "assertRaisesRegexp"):
    fs.test.FSTestCases.assertRaisesRegexp = unittest.TestCase.assertRaisesRegex


def pytest_configure(config: pytest.Config) -> None:
    if sys.version_info[:3] == (3, 13, 0):
        # CPython gh-109564 (fixed in 3.13.1): a connection asyncio accepts
        # just before its Server closes makes a transport whose __init__
        # fails, and that transport's __del__ (which closes the socket) then
        # raises TypeError in Server._wakeup. The shutdown tests connect
        # while the server closes on purpose.
        config.addinivalue_line(
            "filterwarnings",
            "ignore:Exception ignored in. <function _SelectorTransport.__del__"
            ":pytest.PytestUnraisableExceptionWarning",
        )


USER, PASSWORD = "alice", "secret"


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HAS_IPV6 = _ipv6_available()


def _open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """No file descriptor or thread survives an integration test."""
    if "integration" not in str(request.node.path):
        yield
        return
    gc.collect()
    fds_before = _open_fds()
    threads_before = {t.ident for t in threading.enumerate()}
    yield
    gc.collect()
    leaked = {fd for fd in _open_fds() - fds_before if _describe_fd(fd) is not None}
    assert not leaked, f"leaked file descriptors: {[_describe_fd(fd) for fd in leaked]}"
    alive = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    assert not alive, f"leaked threads: {alive}"


def _describe_fd(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None  # closed meanwhile (the listdir fd itself)


@pytest.fixture(params=["mem", "osfs"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(
    params=[
        "ipv4",
        pytest.param("ipv6", marks=pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")),
    ]
)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def mount_url(backend: str, tmp_path: Path, name: str = "root") -> str:
    if backend == "mem":
        return "mem://"
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    return f"osfs://{folder}"


ServerFactory = Callable[..., ThreadedFTPServer]


def wait_for(predicate: Callable[[], bool], what: str = "condition", timeout: float = 10.0) -> None:
    """Bounded polling: no sleep stands in for synchronisation."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def wait_listening(port: int, timeout: float = 20.0) -> None:
    """Wait (bounded) until a server process accepts on loopback ``port``."""

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    wait_for(listening, "the server to listen", timeout=timeout)


def free_port_range(count: int) -> tuple[int, int]:
    """``count`` consecutive loopback ports that nothing uses now, below the
    kernel's ephemeral range (where outgoing connections of other tests
    would take ports from under a test's feet)."""
    rng = random.Random()
    for _ in range(200):
        low = rng.randrange(20000, 32000 - count)
        socks: list[socket.socket] = []
        try:
            for port in range(low, low + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return low, low + count - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {count} free consecutive ports")


def free_port() -> int:
    """A loopback port that nothing uses now (nor listens on), for a server
    started later or a connection that must be refused: from below the
    ephemeral range, as ``free_port_range``. A port the kernel hands out
    for ``bind(0)`` is one of those it gives outgoing connections too, and
    under pytest-xdist another process's connection can take it before the
    test binds it ("Address already in use") or start listening on it."""
    return free_port_range(1)[0]


def login(
    srv: ThreadedFTPServer,
    user: str = USER,
    password: str = PASSWORD,
    *,
    source: str | None = None,
    timeout: float = 10,
) -> ftplib.FTP:
    """An ftplib client logged in to ``srv`` in binary mode (from the
    address ``source`` when given)."""
    return login_at(srv.host, srv.port, user, password, source=source, timeout=timeout)


def login_at(
    host: str,
    port: int,
    user: str = USER,
    password: str = PASSWORD,
    *,
    source: str | None = None,
    timeout: float = 10,
) -> ftplib.FTP:
    """``login`` for a server known by its address (a `vfsftp serve` process)."""
    f = ftplib.FTP(timeout=timeout, source_address=(source, 0) if source else None)
    try:
        f.connect(host, port)
        f.login(user, password)
        f.voidcmd("TYPE I")
    except BaseException:
        f.close()
        raise
    return f


def put(ftp: ftplib.FTP, path: str, data: bytes) -> None:
    """STOR ``data`` to ``path``. A server that refuses an upload while it
    is still being sent (a quota, a full disk) closes the data connection:
    the client's send may then fail first (a broken pipe, a reset), and the
    reply says why, raised as ftplib raises a refusal (seen in .ci/run:
    a fleet quota's 552 lost behind a BrokenPipeError)."""
    try:
        ftp.storbinary(f"STOR {path}", io.BytesIO(data))
    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
        ftp.voidresp()  # raises the refusal (error_perm, error_temp)
        raise


def get(ftp: ftplib.FTP, path: str) -> bytes:
    """RETR ``path``, whole."""
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start servers from config dicts; all are stopped (and checked for
    leftover asyncio tasks) at the end of the test."""
    started: list[ThreadedFTPServer] = []

    def factory(
        config: dict[str, Any], host: str = "127.0.0.1", **options: Any
    ) -> ThreadedFTPServer:
        srv = ThreadedFTPServer(config, host=host, user=USER, password=PASSWORD, **options)
        srv.start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        if not srv.running:
            continue  # the test stopped it itself
        loop_tasks = srv.call(_pending_tasks())
        srv.stop()
        assert not loop_tasks, f"asyncio tasks left after the test: {loop_tasks}"


async def _pending_tasks() -> list[str]:
    import asyncio

    # Sessions whose clients said QUIT finish on their own; wait for them.
    me = asyncio.current_task()
    for _ in range(200):
        rest = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not rest:
            return []
        await asyncio.wait(rest, timeout=0.05)
    return [repr(t) for t in asyncio.all_tasks() if t is not me and not t.done()]


@pytest.fixture
def server(
    make_server: ServerFactory, backend: str, family: str, tmp_path: Path
) -> ThreadedFTPServer:
    """The standard server: the backend at /, a second mount at /other
    (always in memory), user alice with every right, anonymous read-only."""
    host = "::1" if family == "ipv6" else "127.0.0.1"
    config = {
        "mounts": {
            "/": mount_url(backend, tmp_path),
            "/other": "mem://",
            "/pub": {"fs": mount_url(backend, tmp_path, "pub"), "read_only": True},
        },
        "users": {
            USER: {"password": f"plaintext:{PASSWORD}", "perms": "elradfmwMT"},
            "reader": {"password": "plaintext:reader", "perms": "elr"},
            "anonymous": {},
        },
    }
    return make_server(config, host=host)


@pytest.fixture
def ftp(server: ThreadedFTPServer) -> Iterator[ftplib.FTP]:
    """An ftplib client logged in as alice (binary mode)."""
    client = ftplib.FTP(timeout=10)
    client.connect(server.host, server.port)
    client.login(USER, PASSWORD)
    client.voidcmd("TYPE I")
    try:
        yield client
    finally:
        with contextlib.suppress(ftplib.Error, OSError, EOFError):
            client.quit()
        client.close()


class Control:
    """A bare control connection: send a line, read one (multi-line) reply."""

    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.sock = socket.create_connection(
            (host, port), timeout=10, source_address=(source, 0) if source else None
        )
        self.file = self.sock.makefile("rb")
        self.welcome = self.reply()

    def send(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + b"\r\n")

    def _line(self) -> str:
        raw = self.file.readline()
        if not raw:
            raise EOFError("control connection closed")
        return raw.decode("utf-8").rstrip("\r\n")

    def reply(self) -> tuple[int, list[str]]:
        first = self._line()
        code, lines = first[:3], [first]
        if first[3:4] == "-":
            while True:
                line = self._line()
                lines.append(line)
                if line[:3] == code and line[3:4] == " ":
                    break
        return int(code), lines

    def cmd(self, line: str | bytes) -> tuple[int, list[str]]:
        self.send(line)
        return self.reply()

    def login(self, user: str = USER, password: str = PASSWORD) -> None:
        assert self.cmd(f"USER {user}")[0] == 331
        assert self.cmd(f"PASS {password}")[0] == 230

    def closed_by_server(self) -> bool:
        return self.file.readline() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class EntryCounter:
    """Counts the listing entries the server makes (vfs.ListEntry), from
    whichever thread makes them: how far a listing got."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import vfsftp.storage.sessionfs

        self.n = 0
        self._lock = threading.Lock()
        self._hold_at: int | None = None
        self._released = threading.Event()
        real = vfsftp.storage.sessionfs.ListEntry

        def counting(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.n += 1
                hold = self.n == self._hold_at
            if hold:  # (bounded: a test that forgets release() still ends)
                self._released.wait(10)
            return real(*args, **kwargs)

        monkeypatch.setattr(vfsftp.storage.sessionfs, "ListEntry", counting)

    def hold_at(self, n: int) -> None:
        """Make the ``n``th entry wait until ``release()``: the server's
        listing then stands still at a known point, whatever the load."""
        self._hold_at, self.n = n, 0
        self._released.clear()

    def release(self) -> None:
        self._released.set()
