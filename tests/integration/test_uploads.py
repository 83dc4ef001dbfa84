"""When an upload is published: only while its client is still there.

In stream mode the end of an upload is the end of its data connection (RFC
959 §3.4.1), and a client killed mid-upload ends it too, with a FIN. These
tests kill real clients (curl, an ftplib process) with SIGKILL on a local
folder, mem:// and S3, in clear and with PROT P: the old file stays, nothing
is left behind. A client that closes its control connection before its data
connection never publishes; a QUIT pipelined behind the upload always does;
``ALLO n`` is a promise. The servers here wait the production
``upload_grace`` (the test kit's default is 0)."""

# Fixtures imported from s3_fixtures are "redefined" as test parameters:
# ruff: noqa: F811

from __future__ import annotations

import ftplib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, USER, Control, ServerFactory, login, wait_for
from s3_fixtures import S3Bucket, moto_endpoint, s3_bucket  # noqa: F401

from vfsftp.ops.logs import TransferRecord
from vfsftp.testing import ThreadedFTPServer, TLSFiles, make_tls_files

OLD = b"the old content"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


class Target:
    """A server with one mount at / (a local folder, mem:// or an S3 bucket)
    and what it really holds there, temporary names included."""

    def __init__(
        self, srv: ThreadedFTPServer, backend: str, folder: Path, bucket: S3Bucket | None
    ) -> None:
        self.srv, self.backend, self.folder, self.bucket = srv, backend, folder, bucket

    def stored_names(self) -> list[str]:
        if self.backend == "local":
            return sorted(os.listdir(self.folder))
        if self.backend == "s3":
            assert self.bucket is not None
            return self.bucket.keys()
        mount = self.srv.server.mounts.global_mounts[0]
        return sorted(mount.fs.listdir("/"))

    def assert_untouched(self) -> None:
        """The old file, nothing else: no partial file, no temporary file,
        no multipart upload left open."""
        assert self.stored_names() == ["target.bin"]
        assert self.srv.read_file("/target.bin") == OLD
        if self.bucket is not None:
            assert self.bucket.uploads() == []
        f = login(self.srv)
        try:
            assert f.nlst() == ["target.bin"]
        finally:
            f.close()


TargetFactory = Callable[[str, bool, "S3Bucket | None"], Target]


@pytest.fixture
def target_for(make_server: ServerFactory, tmp_path: Path, tls_files: TLSFiles) -> TargetFactory:
    def make(backend: str, tls: bool, bucket: S3Bucket | None = None) -> Target:
        folder = tmp_path / "root"
        if backend == "local":
            folder.mkdir()
            mount: Any = f"osfs://{folder}"
        elif backend == "mem":
            mount = "mem://"
        else:
            assert bucket is not None
            mount = bucket.mount(part_size="5MiB")
        server: dict[str, Any] = {}
        if tls:
            server["tls"] = {"certificate": str(tls_files.cert), "key": str(tls_files.key)}
        srv = make_server(
            {
                "server": server,
                "mounts": {"/": mount},
                "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
            },
            upload_grace=None,  # the configuration's (production) default
        )
        srv.put_file("/target.bin", OLD)
        return Target(srv, backend, folder, bucket)

    return make


def received(srv: ThreadedFTPServer) -> int:
    """Bytes the running uploads have received so far."""
    return sum(
        ch.transfer.state.bytes
        for ch in list(srv.server.channels)
        if ch.transfer is not None and ch.transfer.state is not None
    )


def records_of(caplog: pytest.LogCaptureFixture) -> list[TransferRecord]:
    found = [getattr(r, "transfer", None) for r in caplog.records]
    return [r for r in found if isinstance(r, TransferRecord)]


def metric(srv: ThreadedFTPServer, name: str, **labels: str) -> float:
    return srv.server.metrics.registry.get_sample_value(name, labels) or 0.0


# ---------------------------------------------------------------- killed clients

_FTPLIB_CHILD = """
import ftplib, ssl, sys, time
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if ca:
    f = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=ca), timeout=10)
else:
    f = ftplib.FTP(timeout=10)
f.connect(host, port)
f.login(sys.argv[4], sys.argv[5])
if ca:
    f.prot_p()
f.voidcmd("TYPE I")
conn = f.transfercmd("STOR target.bin")
block = b"x" * 65536
while True:  # until killed
    conn.sendall(block)
    time.sleep(0.002)
"""


def start_client(client: str, t: Target, tls_files: TLSFiles, tls: bool, src: Path) -> Any:
    srv = t.srv
    if client == "curl":
        cmd = ["curl", "--silent", "--limit-rate", "8M", "-T", str(src)]
        if tls:
            cmd += ["--ssl-reqd", "--cacert", str(tls_files.ca)]
        cmd.append(f"ftp://{USER}:{PASSWORD}@127.0.0.1:{srv.port}/target.bin")
    else:
        ca = str(tls_files.ca) if tls else ""
        cmd = [sys.executable, "-c", _FTPLIB_CHILD, "127.0.0.1", str(srv.port), ca, USER, PASSWORD]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def kill_mid_upload(
    t: Target, client: str, tls: bool, tls_files: TLSFiles, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="vfsftp.transfer")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(16 * MiB))
    proc = start_client(client, t, tls_files, tls, src)
    try:
        if t.bucket is not None:  # past the first part: a multipart upload is open
            bucket = t.bucket
            wait_for(lambda: bucket.uploads() != [], "a multipart upload")
        else:
            wait_for(lambda: received(t.srv) > 256 * 1024, "the upload to be under way")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    wait_for(lambda: not t.srv.server.channels, "the session to end")
    t.assert_untouched()
    (rec,) = [r for r in records_of(caplog) if r.verb == "STOR" and r.path == "/target.bin"]
    assert rec.outcome in ("abort", "fail") and not rec.complete
    assert rec.fault and rec.reason
    if not tls:
        # In clear the end of the data connection looks like the end of the
        # file: only the control connection tells that the client is gone.
        assert (rec.outcome, rec.fault) == ("abort", "client-gone"), rec
    ok = metric(t.srv, "vfsftp_transfers_total", mount="/", direction="in", outcome="ok")
    faults = metric(t.srv, "vfsftp_transfer_faults_total", direction="in", fault=rec.fault)
    assert (ok, faults) == (0.0, 1.0)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "prot-p"])
@pytest.mark.parametrize("backend", ["local", "mem"])
@pytest.mark.parametrize("client", ["curl", "ftplib"])
def test_a_killed_client_publishes_nothing(
    target_for: TargetFactory,
    tls_files: TLSFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    client: str,
    backend: str,
    tls: bool,
) -> None:
    kill_mid_upload(target_for(backend, tls, None), client, tls, tls_files, tmp_path, caplog)


@pytest.mark.s3
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "prot-p"])
@pytest.mark.parametrize("client", ["curl", "ftplib"])
def test_a_killed_client_publishes_nothing_on_s3(
    s3_bucket: S3Bucket,
    target_for: TargetFactory,
    tls_files: TLSFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    client: str,
    tls: bool,
) -> None:
    """Killed 5 MiB in, with a multipart upload open: it is aborted."""
    t = target_for("s3", tls, s3_bucket)
    kill_mid_upload(t, client, tls, tls_files, tmp_path, caplog)


# ---------------------------------------------------------------- the order of the closes


def _open_upload(srv: ThreadedFTPServer, name: str) -> tuple[Control, socket.socket]:
    c = Control(srv.host, srv.port)
    c.login()
    assert c.cmd("TYPE I")[0] == 200
    code, lines = c.cmd("EPSV")
    assert code == 229
    data = socket.create_connection((srv.host, int(lines[0].split("|")[-2])), timeout=10)
    assert c.cmd(f"STOR {name}")[0] == 150
    return c, data


@pytest.fixture
def mem_server(make_server: ServerFactory) -> ThreadedFTPServer:
    return make_server(
        {"mounts": {"/": "mem://"}, "users": {USER: {"password": f"plaintext:{PASSWORD}"}}},
        upload_grace=None,
    )


def test_closing_the_control_connection_first_never_publishes(
    mem_server: ThreadedFTPServer,
) -> None:
    payload = b"y" * 20_000
    started = time.monotonic()
    for i in range(200):
        c, data = _open_upload(mem_server, f"f{i}")
        data.sendall(payload)  # every byte sent...
        c.close()  # ...but the client is gone before its data connection ends
        data.close()
    wait_for(lambda: not mem_server.server.channels, "the sessions to end")
    assert mem_server.server.mounts.global_mounts[0].fs.listdir("/") == []
    assert time.monotonic() - started < 30


def test_a_quit_pipelined_behind_the_upload_publishes_it(mem_server: ThreadedFTPServer) -> None:
    payload = b"z" * 20_000
    started = time.monotonic()
    for i in range(200):
        c, data = _open_upload(mem_server, f"f{i}")
        data.sendall(payload)
        data.close()
        c.send("QUIT")  # and gone, without waiting for any reply
        c.close()
    wait_for(lambda: not mem_server.server.channels, "the sessions to end")
    assert sorted(mem_server.list_files()) == sorted(f"/f{i}" for i in range(200))
    assert all(mem_server.read_file(f"/f{i}") == payload for i in range(200))
    assert time.monotonic() - started < 30


def test_the_upload_is_answered_before_the_quit(mem_server: ThreadedFTPServer) -> None:
    for i in range(20):
        c, data = _open_upload(mem_server, f"f{i}")
        try:
            data.sendall(b"q" * 1_000_000)  # (its FIN may trail the QUIT)
            data.close()
            c.send("QUIT")
            assert c.reply()[0] == 226  # RFC 959 §4.1.1: the transfer's reply first
            assert c.reply()[0] == 221
            assert c.closed_by_server()
        finally:
            c.close()
    assert len(mem_server.list_files()) == 20


def test_quit_while_the_data_still_comes_publishes_it_after(
    mem_server: ThreadedFTPServer,
) -> None:
    """fs.ftpfs sends QUIT with the data connection still open and waits for
    the 221 before it closes it: the upload commits after that."""
    c, data = _open_upload(mem_server, "late")
    data.sendall(b"a" * 1000)
    assert c.cmd("QUIT")[0] == 221
    c.close()
    data.sendall(b"b" * 1000)
    data.close()
    wait_for(lambda: mem_server.exists("/late"), "the upload to be published")
    assert mem_server.read_file("/late") == b"a" * 1000 + b"b" * 1000


def test_a_client_dying_just_after_its_data_ends_publishes_nothing(
    mem_server: ThreadedFTPServer,
) -> None:
    """The data connection closed first, the control connection 10 ms later
    (a killed process's kernel closes them in no fixed order): within the
    grace, so nothing is published."""
    mem_server.put_file("/target.bin", OLD)
    for _ in range(5):
        c, data = _open_upload(mem_server, "target.bin")
        data.sendall(b"partial" * 1000)
        data.close()
        time.sleep(0.01)  # the gap being modelled, not a synchronisation
        c.close()
        wait_for(lambda: not mem_server.server.channels, "the session to end")
        assert mem_server.read_file("/target.bin") == OLD
    assert mem_server.server.mounts.global_mounts[0].fs.listdir("/") == ["target.bin"]


# ---------------------------------------------------------------- ALLO


def test_allo_is_a_promise(mem_server: ThreadedFTPServer) -> None:
    f = login(mem_server)
    try:
        f.storbinary("STOR a", io.BytesIO(OLD))
        assert f.sendcmd("ALLO 1000").startswith("200")
        with pytest.raises(ftplib.error_temp, match=r"^451 .*999 of the 1000 bytes ALLO"):
            f.storbinary("STOR a", io.BytesIO(b"s" * 999))
        assert mem_server.read_file("/a") == OLD  # discarded, the old file stays
        assert mem_server.server.mounts.global_mounts[0].fs.listdir("/") == ["a"]
        assert f.sendcmd("ALLO 1000 R 100").startswith("200")
        f.storbinary("STOR a", io.BytesIO(b"k" * 1000))
        assert mem_server.read_file("/a") == b"k" * 1000
        # ALLO counts the whole file when REST resumes it (lftp sends both).
        f.sendcmd("ALLO 1500")
        f.storbinary("STOR a", io.BytesIO(b"r" * 500), rest=1000)
        assert mem_server.read_file("/a") == b"k" * 1000 + b"r" * 500
        # Spent by the next upload command, even one refused at once.
        f.sendcmd("ALLO 5000")
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            f.storbinary("STOR /no/such/dir/x", io.BytesIO(b""))
        f.storbinary("STOR b", io.BytesIO(b"tiny"))
        assert mem_server.read_file("/b") == b"tiny"
        f.quit()
    finally:
        f.close()


def test_the_grace_and_what_spares_it(make_server: ServerFactory) -> None:
    """A plain upload is answered ``upload_grace`` after its data ends (its
    client could be dying); one that met its ALLO is a whole file, and one
    followed by QUIT a deliberate end: those are answered at once."""
    srv = make_server(
        {"mounts": {"/": "mem://"}, "users": {USER: {"password": f"plaintext:{PASSWORD}"}}},
        upload_grace=1.5,
    )
    f = login(srv)
    try:
        started = time.monotonic()
        f.storbinary("STOR plain", io.BytesIO(b"p" * 1000))
        assert time.monotonic() - started >= 1.5
        f.sendcmd("ALLO 1000")
        started = time.monotonic()
        f.storbinary("STOR sized", io.BytesIO(b"s" * 1000))
        assert time.monotonic() - started < 1.0
        f.quit()
    finally:
        f.close()
    # A QUIT sent without waiting for the 226 says the client is done: the
    # upload is published at once.
    c, data = _open_upload(srv, "quit")
    try:
        started = time.monotonic()
        data.sendall(b"q" * 1000)
        data.close()
        c.send("QUIT")
        assert c.reply()[0] == 226
        assert c.reply()[0] == 221
        assert time.monotonic() - started < 1.0
    finally:
        c.close()
    assert srv.read_file("/quit") == b"q" * 1000
