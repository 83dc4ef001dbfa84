"""Real clients over plain FTP, explicit FTPS (AUTH TLS, PROT P) and
implicit FTPS (``ftps://``): curl, lftp and ftplib upload and download,
every time.

The server sends no TLS 1.3 session tickets on data connections: a client
that only uploads never reads them, and its close() of a socket with unread
data is a TCP reset that throws away the upload's last bytes (curl and lftp
failed one upload in three with 426). See vfsftp.session.tls.wrap_data_socket."""

from __future__ import annotations

import ftplib
import io
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PASSWORD, USER, ServerFactory

from vfsftp.testing import ThreadedFTPServer, TLSFiles, make_tls_files

MODES = ["plain", "explicit", "implicit"]
SIZE = 2_000_000  # what reproduced the lost uploads


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def srv(make_server: ServerFactory, tls_files: TLSFiles) -> ThreadedFTPServer:
    return make_server(
        {
            "server": {
                "tls": {
                    "certificate": str(tls_files.cert),
                    "key": str(tls_files.key),
                    "implicit_port": 0,
                }
            },
            "mounts": {"/": "mem://"},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("payload") / "up.bin"
    path.write_bytes(os.urandom(SIZE))
    yield path


def _url(srv: ThreadedFTPServer, mode: str, name: str) -> str:
    if mode == "implicit":
        return f"ftps://{USER}:{PASSWORD}@127.0.0.1:{srv.implicit_port}/{name}"
    return f"ftp://{USER}:{PASSWORD}@127.0.0.1:{srv.port}/{name}"


def _stored(srv: ThreadedFTPServer, name: str) -> bytes:
    return srv.read_file(f"/{name}")


# ---------------------------------------------------------------- curl

curl_missing = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


def curl(tls: TLSFiles, mode: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    flags = ["--cacert", str(tls.ca)] + (["--ssl-reqd"] if mode == "explicit" else [])
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", *flags, *args],
        capture_output=True,
        timeout=30,
        check=False,
    )


@curl_missing
def test_fifty_curl_tls_uploads_in_a_row(
    srv: ThreadedFTPServer, tls_files: TLSFiles, payload: Path
) -> None:
    """The regression: 50 explicit-FTPS uploads of 2 MB (before the fix,
    about one in three ended in 426 after 114,688 bytes)."""
    data = payload.read_bytes()
    failed = []
    for i in range(50):
        r = curl(tls_files, "explicit", "-T", str(payload), _url(srv, "explicit", f"u{i}.bin"))
        if r.returncode != 0:
            failed.append(r.stderr.decode().strip())
    assert not failed, f"{len(failed)} of 50 failed, e.g. {failed[0]}"
    assert all(_stored(srv, f"u{i}.bin") == data for i in range(50))


@curl_missing
@pytest.mark.parametrize("mode", MODES)
def test_curl_up_and_down(
    srv: ThreadedFTPServer, tls_files: TLSFiles, payload: Path, tmp_path: Path, mode: str
) -> None:
    data = payload.read_bytes()
    for i in range(5):
        r = curl(tls_files, mode, "-T", str(payload), _url(srv, mode, f"c{i}.bin"))
        assert r.returncode == 0, r.stderr
        assert _stored(srv, f"c{i}.bin") == data
        r = curl(tls_files, mode, _url(srv, mode, f"c{i}.bin"))
        assert r.returncode == 0, r.stderr
        assert r.stdout == data


# ---------------------------------------------------------------- lftp

lftp_missing = pytest.mark.skipif(shutil.which("lftp") is None, reason="lftp not installed")


@lftp_missing
@pytest.mark.parametrize("mode", MODES)
def test_lftp_up_and_down(
    srv: ThreadedFTPServer, tls_files: TLSFiles, payload: Path, tmp_path: Path, mode: str
) -> None:
    data = payload.read_bytes()
    settings = [
        "set net:max-retries 1",
        "set net:timeout 10",
        f"set ssl:ca-file {tls_files.ca}",
        "set ssl:verify-certificate yes",
    ]
    if mode == "plain":
        settings.append("set ftp:ssl-allow false")
    else:
        settings += ["set ftp:ssl-force true", "set ftp:ssl-protect-data true"]
    port = srv.implicit_port if mode == "implicit" else srv.port
    scheme = "ftps" if mode == "implicit" else "ftp"
    got = tmp_path / "got"
    script = [
        *settings,
        f"open -u {USER},{PASSWORD} {scheme}://127.0.0.1:{port}",
    ]
    for i in range(5):
        script += [f"put {payload} -o l{i}.bin", f"get l{i}.bin -o {got}{i}"]
    r = subprocess.run(
        ["lftp", "-c", "; ".join(script)], capture_output=True, timeout=50, check=False
    )
    assert r.returncode == 0, r.stderr
    for i in range(5):
        assert _stored(srv, f"l{i}.bin") == data
        assert Path(f"{got}{i}").read_bytes() == data


# ---------------------------------------------------------------- ftplib


@pytest.mark.parametrize("mode", ["plain", "explicit"])
def test_ftplib_up_and_down(
    srv: ThreadedFTPServer, tls_files: TLSFiles, payload: Path, mode: str
) -> None:
    data = payload.read_bytes()
    client: ftplib.FTP
    if mode == "explicit":
        client = ftplib.FTP_TLS(context=tls_files.client_context(), timeout=10)
    else:
        client = ftplib.FTP(timeout=10)
    try:
        client.connect("127.0.0.1", srv.port)
        client.login(USER, PASSWORD)
        if isinstance(client, ftplib.FTP_TLS):
            client.prot_p()
        for i in range(5):
            client.storbinary(f"STOR f{i}.bin", io.BytesIO(data))
            out = io.BytesIO()
            client.retrbinary(f"RETR f{i}.bin", out.write)
            assert out.getvalue() == data
        client.quit()
    finally:
        client.close()


class _ResumingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections offer the control connection's TLS
    session, as curl, lftp and FileZilla do."""

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[ssl.SSLSocket, int]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        assert isinstance(self.sock, ssl.SSLSocket)
        tls = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return tls, size  # type: ignore[return-value]


def test_data_connections_still_resume_the_control_session(
    srv: ThreadedFTPServer, tls_files: TLSFiles
) -> None:
    """Tickets are off on data connections only: the control connection's
    still let a data connection resume its session (no full handshake)."""
    client = _ResumingFTP_TLS(context=tls_files.client_context(), timeout=10)
    resumed: list[bool] = []
    try:
        client.connect("127.0.0.1", srv.port)
        client.login(USER, PASSWORD)
        client.prot_p()
        for i in range(3):
            with client.transfercmd(f"STOR r{i}") as conn:
                conn.sendall(b"x" * 1000)
                resumed.append(conn.session_reused)
                conn.unwrap()
            client.voidresp()
            with client.transfercmd(f"RETR r{i}") as conn:
                assert conn.recv(2000) == b"x" * 1000
                resumed.append(conn.session_reused)
            client.voidresp()
        client.quit()
    finally:
        client.close()
    assert resumed == [True] * 6
