"""A first end-to-end pass: login, upload, list, download, on each backend and family."""

from __future__ import annotations

import ftplib
import io


def test_roundtrip(ftp: ftplib.FTP) -> None:
    payload = b"hello world\n" * 1000
    ftp.mkd("dir")
    ftp.storbinary("STOR dir/a.txt", io.BytesIO(payload))
    assert ftp.nlst("dir") == ["a.txt"]
    out = io.BytesIO()
    ftp.retrbinary("RETR dir/a.txt", out.write)
    assert out.getvalue() == payload
    assert ftp.size("dir/a.txt") == len(payload)
