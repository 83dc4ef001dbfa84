"""Upload every ``*.csv`` of a local folder to an FTP server, into a dated
folder, and leave a ``DONE`` marker file once all of them arrived: the kind
of batch job vfsftp's test fixtures are for.

    python upload_reports.py ftp://user:pass@host:2121/incoming ./reports
"""

from __future__ import annotations

import datetime
import ftplib
import io
import sys
import urllib.parse
from pathlib import Path


def upload_reports(url: str, folder: Path, day: datetime.date | None = None) -> list[str]:
    """Upload ``folder/*.csv`` to ``<url path>/<YYYY-MM-DD>/``; returns the
    remote paths written, the ``DONE`` marker last."""
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path.rstrip('/')}/{(day or datetime.date.today()).isoformat()}"
    written: list[str] = []
    with ftplib.FTP(timeout=30) as ftp:
        ftp.connect(parts.hostname or "127.0.0.1", parts.port or 21)
        ftp.login(
            urllib.parse.unquote(parts.username or "anonymous"),
            urllib.parse.unquote(parts.password or ""),
        )
        _make_dirs(ftp, target)
        for report in sorted(folder.glob("*.csv")):
            with report.open("rb") as f:
                ftp.storbinary(f"STOR {target}/{report.name}", f)
            written.append(f"{target}/{report.name}")
        ftp.storbinary(f"STOR {target}/DONE", io.BytesIO(b"%d\n" % len(written)))
        written.append(f"{target}/DONE")
    return written


def _make_dirs(ftp: ftplib.FTP, path: str) -> None:
    current = ""
    for name in path.strip("/").split("/"):
        current += f"/{name}"
        try:
            ftp.mkd(current)
        except ftplib.error_perm as exc:
            if not str(exc).startswith("550"):  # 550: it exists already
                raise


if __name__ == "__main__":
    for path in upload_reports(sys.argv[1], Path(sys.argv[2])):
        print(path)
