"""A graceful shutdown answers the command a session has in hand before its
421: a DELE or RNTO that is carried out is answered 250, a RETR still
opening its file sends it (150, 226). It answered 421 at once while the
command went on in its worker thread, so a client was told "not done" of a
file that was deleted, renamed or half sent. Found by benchmarks/soak.py
(SIGTERM under load: DELE and RNTO answered 421 on S3, their files gone).
And it does not wait for idle FTPS clients to close their TLS session."""

from __future__ import annotations

import ftplib
import io
import logging
import socket
import threading
import time
from typing import Any

import pytest
from conftest import USER, login, wait_for
from fs.memoryfs import MemoryFS
from fs.wrapfs import WrapFS

from vfsftp.identity.auth import Account
from vfsftp.storage.tree import Mount, VirtualTree
from vfsftp.testing import ThreadedFTPServer

pytestmark = pytest.mark.timeout(30)


class Held(WrapFS[MemoryFS]):  # type: ignore[misc]
    """A filesystem (not in memory to the server: its calls run in worker
    threads) whose calls named in ``hold`` (``remove``, ``read``: an openbin
    for reading, ``isdir``, ``move``: an upload's commit) wait until
    released."""

    def __init__(self, hold: frozenset[str] = frozenset({"remove", "read"})) -> None:
        super().__init__(MemoryFS())
        self.hold = hold
        self.entered = threading.Event()
        self.release = threading.Event()

    def _hold(self, name: str) -> None:
        if name in self.hold:
            self.entered.set()
            assert self.release.wait(20)

    def remove(self, path: str) -> None:
        self._hold("remove")
        super().remove(path)

    def isdir(self, path: str) -> bool:
        self._hold("isdir")
        return bool(super().isdir(path))

    def move(
        self, src: str, dst: str, overwrite: bool = False, preserve_time: bool = False
    ) -> None:
        self._hold("move")
        super().move(src, dst, overwrite, preserve_time)

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> Any:
        if "r" in mode:
            self._hold("read")
        return super().openbin(path, mode, buffering, **options)


class OneTree:
    def __init__(self, tree: VirtualTree) -> None:
        self.tree = tree

    def is_anonymous(self, username: str) -> bool:
        return False

    async def authorize(self, username: str, password: str, peer: str) -> Account | None:
        return Account(name=username, tree=self.tree, perms="elradfmw", home="/")


@pytest.mark.parametrize("command", ["DELE", "RETR"])
def test_shutdown_answers_the_command_in_hand_before_421(command: str) -> None:
    held = Held()
    data = b"x" * 300_000
    held.delegate_fs().writebytes("/a.bin", data)
    authorizer = OneTree(VirtualTree([Mount.of("/", held)]))
    with ThreadedFTPServer(authorizer=authorizer) as srv:
        f = login(srv, USER, "any", timeout=20)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                if command == "DELE":
                    result["reply"] = f.sendcmd("DELE a.bin")
                else:
                    out = io.BytesIO()
                    result["reply"] = f.retrbinary("RETR a.bin", out.write)
                    result["data"] = out.getvalue()
            except ftplib.Error as exc:
                result["reply"] = str(exc)

        client = threading.Thread(target=run)
        client.start()
        assert held.entered.wait(10)  # the command is in its worker thread
        stopping = threading.Thread(target=srv.call, args=(srv.server.shutdown(10),))
        stopping.start()

        def refusing() -> bool:
            try:
                socket.create_connection((srv.host, srv.port), timeout=1).close()
            except OSError:
                return True
            return False

        wait_for(refusing, "the shutdown to begin")
        held.release.set()
        client.join(20)
        stopping.join(20)
        if command == "DELE":
            assert result["reply"].startswith("250 ")
            assert not held.delegate_fs().exists("/a.bin")
        else:
            assert result["reply"].startswith("226 ") and result["data"] == data
        # Then the goodbye, and nothing more is taken.
        with pytest.raises(ftplib.error_temp, match=r"^421 "):
            f.voidcmd("NOOP")
        f.close()


@pytest.mark.timeout(60)
def test_shutdown_does_not_wait_for_an_idle_tls_clients_close_notify() -> None:
    """The server says 421 and closes; a TLS client that stays idle never
    answers with its close_notify. The server waited for it (asyncio's
    ssl_shutdown_timeout, 30 s on 3.11+; on 3.10 until the client went
    away), so a shutdown with idle FTPS sessions took 30 s more than
    shutdown_timeout: 148 of 149 late sessions in the soak's restart were
    TLS ones."""
    with ThreadedFTPServer(tls=True) as srv:
        assert srv.tls_files is not None
        clients = []
        for _ in range(3):
            f = ftplib.FTP_TLS(context=srv.tls_files.client_context(), timeout=60)
            f.connect(srv.host, srv.port)
            f.login(srv.user, srv.password)
            clients.append(f)  # and then idle: no command, no close
        started = time.monotonic()
        srv.call(srv.server.shutdown(5), timeout=55)
        assert time.monotonic() - started < 8
        for f in clients:
            f.close()


def test_an_upload_committing_when_shutdown_gives_up_gets_its_226_before_421() -> None:
    """shutdown_timeout passed while an upload was being committed (its
    data all in, the rename or CompleteMultipartUpload under way): the
    server said 421 first, then aborted the transfer, whose commit went on
    and published the file. The client, told 421, took the upload for
    failed. Its 226 now comes first. Found by the soak (a 47 MB STOR to S3
    answered 421 at the restart, the object there)."""
    held = Held(frozenset({"move"}))
    authorizer = OneTree(VirtualTree([Mount.of("/", held)]))
    giving_up = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "aborting" in record.getMessage():
                giving_up.set()

    watch = Watch()
    logging.getLogger("vfsftp.session").addHandler(watch)
    try:
        with ThreadedFTPServer(authorizer=authorizer) as srv:
            f = login(srv, USER, "any", timeout=20)
            result: dict[str, str] = {}

            def upload() -> None:
                try:
                    result["reply"] = f.storbinary("STOR up.bin", io.BytesIO(b"z" * 100_000))
                except ftplib.Error as exc:
                    result["reply"] = str(exc)

            client = threading.Thread(target=upload)
            client.start()
            assert held.entered.wait(10)  # all data in, the commit under way
            stopping = threading.Thread(target=srv.call, args=(srv.server.shutdown(0.2),))
            stopping.start()
            assert giving_up.wait(10)
            held.release.set()
            client.join(20)
            stopping.join(20)
            assert result["reply"].startswith("226 ")
            assert held.delegate_fs().readbytes("/up.bin") == b"z" * 100_000
            with pytest.raises(ftplib.error_temp, match=r"^421 "):
                f.voidcmd("NOOP")
            f.close()
    finally:
        logging.getLogger("vfsftp.session").removeHandler(watch)
