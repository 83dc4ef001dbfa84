"""Server-level behaviour: a slow mount does not stall other sessions, the
embedding API (custom authorizer, VirtualTree), timeouts, passive options,
logs, shutdown during a transfer."""

from __future__ import annotations

import contextlib
import ftplib
import hashlib
import io
import logging
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, USER, ServerFactory, login, wait_for
from fs.memoryfs import MemoryFS

from vfsftp import Account, Mount, VirtualTree, config_from_dict
from vfsftp.config.schema import LoggingConfig
from vfsftp.ops.logs import configure_logging
from vfsftp.testing import ThreadedFTPServer


class GatedFS(MemoryFS):  # type: ignore[misc]
    """A MemoryFS whose listings block until the test opens the gate: a
    stand-in for a slow network store."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def scandir(self, path: str, namespaces: Any = None, page: Any = None) -> Iterator[Any]:
        self.entered.set()
        assert self.gate.wait(20), "gate never opened"
        return super().scandir(path, namespaces, page)


class GatedWritesFS(MemoryFS):  # type: ignore[misc]
    """A MemoryFS whose files opened for writing block at their first write
    until the test opens the gate: a store that hangs mid-upload."""

    def __init__(self) -> None:
        super().__init__()
        self.writers = threading.Semaphore(0)  # released by each write that blocks
        self.gate = threading.Event()

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> Any:
        f = super().openbin(path, mode, buffering, **options)
        return _GatedFile(f, self) if ("w" in mode or "a" in mode) else f


class _GatedFile:
    def __init__(self, f: Any, owner: GatedWritesFS) -> None:
        self._f = f
        self._owner = owner
        self._told = False

    def write(self, data: Any) -> int:
        if not self._told:
            self._told = True
            self._owner.writers.release()
        assert self._owner.gate.wait(20), "gate never opened"
        return int(self._f.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _GatedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


class TreeAuthorizer:
    """The embedding API: any object with is_anonymous() and authorize()."""

    def __init__(self, tree: VirtualTree) -> None:
        self.tree = tree

    def is_anonymous(self, username: str) -> bool:
        return False

    async def authorize(self, username: str, password: str, peer: str) -> Account | None:
        if (username, password) != ("u", "p"):
            return None
        return Account(name=username, tree=self.tree, perms="elradfmw", home="/fast", root="/")


@pytest.fixture
def gated() -> Iterator[tuple[ThreadedFTPServer, GatedFS]]:
    slow = GatedFS()
    # GatedFS is a MemoryFS subclass, which Mount.of would run inline: a
    # slow store is declared with inline=False.
    tree = VirtualTree(
        [Mount("/slow", slow, inline=False, kind="slow"), Mount.of("/fast", MemoryFS())]
    )
    config = config_from_dict({"server": {"listen": ["127.0.0.1"], "port": 0}})
    with ThreadedFTPServer(config, authorizer=TreeAuthorizer(tree)) as srv:
        yield srv, slow
        slow.gate.set()


def test_slow_mount_does_not_stall_other_sessions(gated: tuple[ThreadedFTPServer, GatedFS]) -> None:
    srv, slow = gated
    blocked = login(srv, "u", "p")
    other = login(srv, "u", "p")
    try:
        blocked.sendcmd("PASV")
        blocked.putcmd("LIST /slow")
        assert slow.entered.wait(10)
        # While a worker thread is stuck in the slow mount, another session
        # is served at once.
        assert other.pwd() == "/fast"
        other.storbinary("STOR a.txt", io.BytesIO(b"x"))
        assert other.nlst() == ["a.txt"]
        slow.gate.set()
        # The blocked session's LIST goes on (we never opened its data
        # connection: the server gives up with 425 after data_timeout, or
        # the client reads 150 first).
    finally:
        slow.gate.set()
        other.close()
        blocked.close()


def test_worker_threads_a_burst_started_end_once_idle() -> None:
    """The README's promise: worker threads idle for 10 s end (each kept
    its stack's touched pages resident for the process's life). Here the
    server's pools end them after 0.2 s: a burst of uploads and listings
    from several sessions starts threads in both pools, and once idle the
    pools are empty again; the next command is served."""
    from vfsftp.storage.threads import IDLE_TIMEOUT

    tree = VirtualTree([Mount("/m", MemoryFS(), inline=False, kind="m")])
    config = config_from_dict({"server": {"listen": ["127.0.0.1"], "port": 0}})
    with ThreadedFTPServer(config, authorizer=TreeAuthorizer(tree)) as srv:
        pools = (srv.server.blocking_executor, srv.server.transfer_executor)
        assert [p.idle_timeout for p in pools] == [IDLE_TIMEOUT, IDLE_TIMEOUT] == [10.0, 10.0]
        for pool in pools:
            pool.idle_timeout = 0.2  # (read by each thread as it starts)
        clients = [login(srv, "u", "p") for _ in range(4)]
        try:
            done = threading.Barrier(len(clients) + 1)

            def burst(client: ftplib.FTP, i: int) -> None:
                client.storbinary(f"STOR /m/f{i}", io.BytesIO(b"x" * 100_000))
                client.nlst("/m")
                done.wait(10)

            workers = [threading.Thread(target=burst, args=(c, i)) for i, c in enumerate(clients)]
            for w in workers:
                w.start()
            done.wait(10)
            for w in workers:
                w.join(10)
            assert all(p._started for p in pools)
            wait_for(lambda: not any(p._threads for p in pools), "idle threads to end", 5)
            assert sorted(clients[0].nlst("/m")) == [f"f{i}" for i in range(4)]
        finally:
            for c in clients:
                c.close()


def test_a_hung_store_does_not_starve_the_other_mounts_threads() -> None:
    """Calls to storage run in worker threads; a store that hangs holds at
    most ``blocking_workers`` of them (its lane), and the calls of another
    store that also needs threads are answered at once. soak.py saw a local
    folder's SIZE wait 0.4 s at the median, a LIST 2-3 s at the 99th
    percentile, behind S3 calls in one shared pool."""
    slow = GatedFS()
    tree = VirtualTree(
        [
            Mount("/slow", slow, inline=False, kind="slow"),
            Mount("/fast", MemoryFS(), inline=False, kind="other"),  # (threads too)
        ]
    )
    config = config_from_dict({"server": {"listen": ["127.0.0.1"], "port": 0}})
    with ThreadedFTPServer(config, authorizer=TreeAuthorizer(tree), blocking_workers=2) as srv:
        blocked = [login(srv, "u", "p") for _ in range(3)]  # more than the lane holds
        other = login(srv, "u", "p")
        try:
            for client in blocked:
                client.sendcmd("PASV")
                client.putcmd("LIST /slow")
            assert slow.entered.wait(10)
            other.sock.settimeout(5)  # (it waited for the gate's 20 s before lanes)
            other.storbinary("STOR a.txt", io.BytesIO(b"x"))
            assert other.size("a.txt") == 1
            assert other.nlst() == ["a.txt"]
        finally:
            slow.gate.set()
            other.close()
            for client in blocked:
                client.close()


def test_uploads_hung_in_one_store_leave_transfer_threads_to_the_others() -> None:
    """Transfers run in worker threads too: uploads stuck in a store that
    hangs hold at most three quarters of them (their mount's lane), and an
    upload to another mount goes through meanwhile."""
    slow = GatedWritesFS()
    tree = VirtualTree(
        [
            Mount("/slow", slow, inline=False, kind="slow"),
            Mount("/fast", MemoryFS(), inline=False, kind="other"),
        ]
    )
    config = config_from_dict({"server": {"listen": ["127.0.0.1"], "port": 0}})
    with ThreadedFTPServer(
        config, authorizer=TreeAuthorizer(tree), transfer_workers=4, upload_grace=0
    ) as srv:
        stuck = [login(srv, "u", "p") for _ in range(4)]  # the lane holds 3
        other = login(srv, "u", "p")
        data: list[socket.socket] = []
        try:
            for i, client in enumerate(stuck):
                conn = client.transfercmd(f"STOR /slow/f{i}")
                conn.sendall(b"x" * 1000)
                data.append(conn)
            for _ in range(3):
                assert slow.writers.acquire(timeout=10), "an upload never reached the store"
            other.sock.settimeout(5)  # (it waited for the gate's 20 s before lanes)
            other.storbinary("STOR a.txt", io.BytesIO(b"fast"))
            assert other.size("a.txt") == 4
        finally:
            slow.gate.set()
            for conn in data:
                conn.close()
            for client in stuck:
                with contextlib.suppress(ftplib.Error, OSError, EOFError):
                    client.voidresp()
                client.close()
            other.close()


def test_custom_authorizer_refuses_and_accepts(gated: tuple[ThreadedFTPServer, GatedFS]) -> None:
    srv, _ = gated
    f = ftplib.FTP(timeout=10)
    f.connect(srv.host, srv.port)
    with pytest.raises(ftplib.error_perm, match="530"):
        f.login("u", "wrong")
    f.close()
    g = login(srv, "u", "p")
    assert g.pwd() == "/fast"
    assert sorted(g.nlst("/")) == ["fast", "slow"]
    g.quit()


def test_idle_timer_does_not_run_while_a_command_is_served(
    gated: tuple[ThreadedFTPServer, GatedFS],
) -> None:
    """A STAT of a slow folder takes longer than idle_timeout: the client is
    waiting for the server, not idle (every client of a huge LIST used to get
    "421 Idle timeout" while its listing was being built)."""
    srv, slow = gated
    channel_config = srv.server.config.model_copy(
        update={"server": srv.server.config.server.model_copy(update={"idle_timeout": 0.3})}
    )
    srv.server.config = channel_config  # (new sessions take it)
    f = login(srv, "u", "p")
    try:
        f.putcmd("STAT /slow")
        assert slow.entered.wait(10)
        # Three idle timeouts pass while the listing is stuck in the store.
        assert not _readable_within(f.sock, 0.9), "the server spoke (an idle 421?)"
        slow.gate.set()
        assert f.getresp().startswith("213")
        # Idle from the reply on: the timer still works.
        with pytest.raises((ftplib.error_temp, EOFError, OSError), match=r"421 Idle|^$"):
            f.getresp()
    finally:
        slow.gate.set()
        f.close()


def _readable_within(sock: socket.socket, seconds: float) -> bool:
    import select

    return bool(select.select([sock], [], [], seconds)[0])


def test_idle_timeout_closes_with_421(make_server: ServerFactory) -> None:
    srv = make_server(
        {
            "server": {"idle_timeout": 0.3},
            "mounts": {"/": "mem://"},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        # No command sent: the server speaks first, then closes.
        assert f.readline().startswith(b"421 Idle timeout")
        assert f.readline() == b""
        f.close()


def test_control_connection_has_nagle_off_and_urgent_data_inline(
    make_server: ServerFactory,
) -> None:
    """Replies are small writes: with Nagle's algorithm on, a reply that
    follows an unacknowledged one waits for the client's delayed ACK (up to
    40 ms on Linux). SO_OOBINLINE keeps an ABOR sent with MSG_OOB whole.
    Both are set on the listening socket where connections inherit them
    (Linux), else per connection (the portable pass runs that way)."""
    srv = make_server({"mounts": {"/": "mem://"}})
    f = login(srv, USER, PASSWORD)
    try:
        (channel,) = srv.server.channels
        sock = channel.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE)
    finally:
        f.quit()


def test_passive_range_and_masquerade(make_server: ServerFactory) -> None:
    srv = make_server(
        {
            "server": {"passive_ports": "40000-40010", "masquerade_address": "203.0.113.7"},
            "mounts": {"/": "mem://"},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    f = ftplib.FTP(timeout=10)
    f.connect(srv.host, srv.port)
    f.login(USER, PASSWORD)
    reply = f.sendcmd("PASV")
    m = re.search(r"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", reply)
    assert m is not None
    assert ".".join(m.groups()[:4]) == "203.0.113.7"
    port = int(m.group(5)) * 256 + int(m.group(6))
    assert 40000 <= port <= 40010
    epsv = f.sendcmd("EPSV")
    port2 = int(re.search(r"\|\|\|(\d+)\|", epsv).group(1))  # type: ignore[union-attr]
    assert 40000 <= port2 <= 40010
    f.sendcmd("ABOR")
    f.quit()


def test_transfer_log_line(make_server: ServerFactory, tmp_path: Path) -> None:
    xfer = tmp_path / "xfer.log"
    configure_logging(
        LoggingConfig(
            level="info",
            file=str(tmp_path / "session.log"),
            transfer_log=str(xfer),
            transfer_log_format="text",  # xferlog and JSON: test_operations.py
        )
    )
    try:
        srv = make_server(
            {"mounts": {"/": "mem://"}, "users": {USER: {"password": f"plaintext:{PASSWORD}"}}}
        )
        f = ftplib.FTP(timeout=10)
        f.connect(srv.host, srv.port)
        f.login(USER, PASSWORD)
        f.storbinary("STOR my file.txt", io.BytesIO(b"12345"))
        f.retrbinary("RETR my file.txt", lambda b: None)
        with pytest.raises(ftplib.error_perm):
            f.retrbinary("RETR missing", lambda b: None)
        f.quit()
        srv.stop()
    finally:
        configure_logging(LoggingConfig(level="warning"))
        for h in logging.getLogger("vfsftp").handlers[:]:
            logging.getLogger("vfsftp").removeHandler(h)
            h.close()
    lines = xfer.read_text().splitlines()
    assert len(lines) == 2
    assert (
        "STOR user=alice" in lines[0]
        and 'path="/my file.txt" bytes=5' in lines[0]
        and lines[0].endswith("result=ok checksum=sha-256:" + hashlib.sha256(b"12345").hexdigest())
    )
    assert lines[1].split(" ", 2)[2].startswith("RETR user=alice")
    session = (tmp_path / "session.log").read_text()
    assert "login ok" in session and "disconnect" in session


def test_shutdown_during_upload_discards_it(make_server: ServerFactory, tmp_path: Path) -> None:
    srv = make_server(
        {
            "mounts": {"/": f"osfs://{tmp_path}"},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    f = ftplib.FTP(timeout=10)
    f.connect(srv.host, srv.port)
    f.login(USER, PASSWORD)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR partial.bin")
    conn.sendall(b"x" * 100_000)
    srv.stop()
    conn.close()
    f.close()
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
