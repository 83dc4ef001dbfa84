"""Scale-out: two vfsftp instances (own ports, same config) over one S3
bucket behave as one service; and the S3 request metrics."""

# ruff: noqa: F811

from __future__ import annotations

import ftplib
import io
import urllib.request

import pytest
from conftest import PASSWORD, USER, ServerFactory, login
from prometheus_client.parser import text_string_to_metric_families
from s3_fixtures import (  # noqa: F401
    S3Bucket,
    moto_endpoint,
    s3_bucket,
    s3_server,
)

from vfsftp.testing import ThreadedFTPServer

pytestmark = pytest.mark.s3


def size(f: ftplib.FTP, path: str) -> int | None:
    f.voidcmd("TYPE I")  # nlst() leaves the session in ASCII mode
    return f.size(path)


def fetch(f: ftplib.FTP, path: str) -> bytes:
    out = io.BytesIO()
    f.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


def test_two_instances_over_one_bucket_are_one_service(
    s3_server: ServerFactory, s3_bucket: S3Bucket
) -> None:
    mounts = {"/": "mem://", "/shared": s3_bucket.mount("ftp")}
    a, b = s3_server(mounts), s3_server(mounts)
    assert a.port != b.port
    fa, fb = login(a), login(b)
    try:
        # An upload through A is listed and downloadable through B at once
        # (no cache between the instances and the bucket).
        fa.storbinary("STOR /shared/report.csv", io.BytesIO(b"a,b\n1,2\n"))
        assert fb.nlst("/shared") == ["report.csv"]
        assert size(fb, "/shared/report.csv") == 8
        assert fetch(fb, "/shared/report.csv") == b"a,b\n1,2\n"
        # While an upload through B is still arriving, A does not see a part
        # of it: the object appears whole, when B answers 226.
        fb.voidcmd("TYPE I")
        conn = fb.transfercmd("STOR /shared/big.bin")
        conn.sendall(b"x" * 50_000)
        assert "big.bin" not in fa.nlst("/shared")
        conn.sendall(b"y" * 50_000)
        conn.close()
        assert fb.voidresp().startswith("226")
        assert size(fa, "/shared/big.bin") == 100_000
        # Directory, rename and delete through one, seen by the other.
        fb.mkd("/shared/in")
        fb.rename("/shared/report.csv", "/shared/in/report.csv")
        assert sorted(fa.nlst("/shared")) == ["big.bin", "in"]
        assert fetch(fa, "/shared/in/report.csv") == b"a,b\n1,2\n"
        fa.delete("/shared/big.bin")
        with pytest.raises(ftplib.error_perm, match="550"):
            size(fb, "/shared/big.bin")
        # In-memory mounts are each instance's own: not for scale-out.
        fa.storbinary("STOR /local.txt", io.BytesIO(b"only on A"))
        assert "local.txt" not in fb.nlst("/")
    finally:
        fa.quit()
        fb.quit()
    assert s3_bucket.keys("ftp/") == ["ftp/in/", "ftp/in/report.csv"]


def test_s3_requests_are_counted_by_operation(
    s3_server: ServerFactory, s3_bucket: S3Bucket
) -> None:
    other = s3_server({"/s3": s3_bucket.mount()})
    srv = ThreadedFTPServer(
        {
            "metrics": {"port": 0},
            "mounts": {"/s3": s3_bucket.mount()},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        },
        user=USER,
        password=PASSWORD,
    ).start()
    try:
        f = login(srv)
        f.storbinary("STOR /s3/a.bin", io.BytesIO(b"1" * 1000))
        assert fetch(f, "/s3/a.bin") == b"1" * 1000
        f.delete("/s3/a.bin")
        f.quit()
        # Another server's requests are not this one's.
        g = login(other)
        g.storbinary("STOR /s3/b.bin", io.BytesIO(b"2"))
        g.quit()
        assert srv.server.metrics.address is not None
        host, port = srv.server.metrics.address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        ops = {
            s.labels["operation"]: s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == "vfsftp_s3_requests_total"
        }
        assert ops.get("PutObject") == 1, ops
        assert ops.get("GetObject") == 1, ops
        assert ops.get("DeleteObject") == 1, ops
        assert sum(ops.values()) < 20, ops  # a few HEADs and listings besides
    finally:
        srv.stop()
