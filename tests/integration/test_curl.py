"""curl, a real-world client with its own FTP state machine (EPSV first,
SIZE/REST for resume, MDTM), against the server."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from vfsftp.testing import ThreadedFTPServer

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", *args],
        capture_output=True,
        timeout=30,
        check=False,
    )


def base(server: ThreadedFTPServer) -> str:
    return server.url


def test_list_download_upload(server: ThreadedFTPServer, tmp_path: Path) -> None:
    src = tmp_path / "up.bin"
    payload = bytes(range(256)) * 4096
    src.write_bytes(payload)
    r = curl("-T", str(src), base(server) + "/dir/up.bin", "--ftp-create-dirs")
    assert r.returncode == 0, r.stderr
    listing = curl(base(server) + "/dir/")
    assert listing.returncode == 0, listing.stderr
    assert b"up.bin" in listing.stdout and str(len(payload)).encode() in listing.stdout
    names = curl("--list-only", base(server) + "/dir/")
    assert names.stdout.split() == [b"up.bin"]
    down = curl(base(server) + "/dir/up.bin")
    assert down.returncode == 0 and down.stdout == payload


def test_resume_download(server: ThreadedFTPServer, tmp_path: Path) -> None:
    payload = b"0123456789" * 100_000
    import ftplib

    with ftplib.FTP() as f:
        f.connect(server.host, server.port, timeout=10)
        f.login(server.user, server.password)
        f.storbinary("STOR big.bin", io.BytesIO(payload))
    part = tmp_path / "big.bin"
    part.write_bytes(payload[:123_456])
    r = curl("-C", "-", "-o", str(part), base(server) + "/big.bin")
    assert r.returncode == 0, r.stderr
    assert part.read_bytes() == payload


def test_resume_upload(server: ThreadedFTPServer, tmp_path: Path) -> None:
    payload = b"abcdefghij" * 50_000
    first = tmp_path / "first.bin"
    first.write_bytes(payload[:200_000])
    assert curl("-T", str(first), base(server) + "/res.bin").returncode == 0
    whole = tmp_path / "whole.bin"
    whole.write_bytes(payload)
    # -C - asks SIZE, then sends APPE (curl's resume of an upload).
    r = curl("-C", "-", "-T", str(whole), base(server) + "/res.bin")
    assert r.returncode == 0, r.stderr
    assert curl(base(server) + "/res.bin").stdout == payload


def test_active_mode(server: ThreadedFTPServer, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(b"active\n" * 100)
    assert curl("-P", "-", "-T", str(src), base(server) + "/a.txt").returncode == 0
    r = curl("-P", "-", base(server) + "/a.txt")
    assert r.returncode == 0 and r.stdout == b"active\n" * 100


def test_missing_file_is_an_error(server: ThreadedFTPServer) -> None:
    r = curl(base(server) + "/nope.txt")
    assert r.returncode == 78, r  # CURLE_REMOTE_FILE_NOT_FOUND


def test_quote_commands(server: ThreadedFTPServer) -> None:
    r = curl("-Q", "MKD made", "-Q", "RNFR made", "-Q", "RNTO renamed", base(server) + "/")
    assert r.returncode == 0, r.stderr
    assert b"renamed" in curl("--list-only", base(server) + "/").stdout
