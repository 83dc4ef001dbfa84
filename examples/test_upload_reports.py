"""Tests of upload_reports.py against a real FTP server on memory.

With vfsftp installed, the ``ftp_server`` fixture is there: no conftest.py
needed. Run: ``pytest examples/``.
"""

from __future__ import annotations

import datetime
import ftplib
from pathlib import Path

import pytest
from upload_reports import upload_reports

from vfsftp.testing import ThreadedFTPServer

DAY = datetime.date(2026, 11, 26)


def test_uploads_every_report_then_the_marker(
    ftp_server: ThreadedFTPServer, tmp_path: Path
) -> None:
    (tmp_path / "a.csv").write_text("id;n\n1;2\n")
    (tmp_path / "b.csv").write_text("id;n\n3;4\n")
    (tmp_path / "notes.txt").write_text("not a report")

    written = upload_reports(ftp_server.url_for("/incoming"), tmp_path, DAY)

    assert written[-1] == "/incoming/2026-11-26/DONE"
    assert ftp_server.list_files() == [
        "/incoming/2026-11-26/DONE",
        "/incoming/2026-11-26/a.csv",
        "/incoming/2026-11-26/b.csv",
    ]
    assert ftp_server.read_text("/incoming/2026-11-26/b.csv") == "id;n\n3;4\n"
    assert ftp_server.read_text("/incoming/2026-11-26/DONE") == "2\n"


def test_existing_folder_is_reused(ftp_server: ThreadedFTPServer, tmp_path: Path) -> None:
    ftp_server.put_file("/incoming/2026-11-26/old.csv", b"kept")
    (tmp_path / "new.csv").write_text("new")

    upload_reports(ftp_server.url_for("/incoming"), tmp_path, DAY)

    assert ftp_server.read_file("/incoming/2026-11-26/old.csv") == b"kept"
    assert ftp_server.read_file("/incoming/2026-11-26/new.csv") == b"new"


@pytest.mark.ftp_server(mounts={"/": "mem://", "/incoming": {"fs": "mem://", "read_only": True}})
def test_read_only_target_fails_loudly(ftp_server: ThreadedFTPServer, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        upload_reports(ftp_server.url_for("/incoming"), tmp_path, DAY)
