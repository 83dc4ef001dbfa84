"""S3 mounts that stream, through the FTP server, against a real S3 HTTP
endpoint (moto's server on loopback; nothing mocked in-process).

Requests the server makes are observed with botocore event handlers
registered on the mount's own client (``before-call``/``before-send``/
``after-call``), never by replacing it.
"""

# Fixtures imported from s3_fixtures are "redefined" as test parameters:
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import dataclasses
import ftplib
import hashlib
import io
import json
import re
import socket
import struct
import threading
import tracemalloc
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, USER, Control, ServerFactory, free_port, login, wait_for
from fs.ftpfs import FTPFS
from fs.test import FSTestCases
from s3_fixtures import (  # noqa: F401
    REGION,
    Calls,
    CuttingProxy,
    S3Bucket,
    assert_cases_exist,
    make_client,
    moto_endpoint,
    moto_subprocess,
    mount_fs,
    s3_bucket,
    s3_server,
    skip_by_name,
)

import vfsftp.storage.s3
from vfsftp.storage.s3 import StreamingS3FS
from vfsftp.testing import ThreadedFTPServer

pytestmark = pytest.mark.s3

MiB = 1024 * 1024


# ---------------------------------------------------------------- helpers


LoginFactory = Callable[..., ftplib.FTP]


@pytest.fixture
def ftp_login() -> Iterator[LoginFactory]:
    """``login(srv)``, with every client closed at the end even when the
    test fails half-way."""
    clients: list[ftplib.FTP] = []

    def factory(srv: ThreadedFTPServer, timeout: float = 10) -> ftplib.FTP:
        f = login(srv, timeout=timeout)
        clients.append(f)
        return f

    yield factory
    for f in clients:
        f.close()


def bye(f: ftplib.FTP) -> None:
    with contextlib.suppress(ftplib.Error, OSError, EOFError):
        f.quit()
    f.close()


def mixed_mounts(bucket: S3Bucket, tmp_path: Path, **s3_options: Any) -> dict[str, Any]:
    disk = tmp_path / "disk"
    disk.mkdir(exist_ok=True)
    return {"/": "mem://", "/disk": f"osfs://{disk}", "/s3": bucket.mount("pre", **s3_options)}


class PatternFile(io.RawIOBase):
    """``size`` deterministic bytes, made as they are read (never held
    whole), hashed on the way out. Every 256 KiB block differs, so parts
    sent out of order would change the hash."""

    BLOCK = 256 * 1024

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.pos = 0
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def _block(self, index: int) -> bytes:
        seed = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=64).digest()
        return seed * (self.BLOCK // len(seed))

    def read(self, n: int | None = -1) -> bytes:
        if self.pos >= self.size:
            return b""
        block, offset = divmod(self.pos, self.BLOCK)
        want = self.BLOCK - offset if n is None or n < 0 else min(n, self.BLOCK - offset)
        want = min(want, self.size - self.pos)
        data = self._block(block)[offset : offset + want]
        self.pos += len(data)
        self.sha.update(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def pattern(size: int) -> bytes:
    f = PatternFile(size)
    return f.read(size) if size <= PatternFile.BLOCK else b"".join(iter(lambda: f.read(), b""))


# ---------------------------------------------------------------- conformance


#: FSTestCases that cannot pass through FTPFS on S3 (see the reasons).
FTPFS_SKIPS = {
    "test_open_files": (
        "racy through FTPFS on a store with a non-instant commit: FTPFile.seek() "
        "sends QUIT, opens a new session and only then closes the upload's data "
        "connection, never waiting for its 226; the read that follows races the "
        "server's CompleteMultipartUpload/PutObject of the old session. The REST+STOR "
        "rewrite it exercises is tested below with the 226 awaited"
    ),
}


class TestFTPFSOnS3(FSTestCases, unittest.TestCase):  # type: ignore[misc]
    """fs.test.FSTestCases through fs.ftpfs.FTPFS, a vfsftp server whose
    root is an S3 bucket (a new one per test). The suite renames
    directories and appends (FTPFS appends with APPE and writes after a seek
    with REST+STOR), so the mount enables both; their refusal by default is
    tested below."""

    @pytest.fixture(autouse=True)
    def _s3(self, s3_bucket: S3Bucket, s3_server: ServerFactory) -> None:
        self.bucket = s3_bucket
        self.start_server = s3_server

    def make_fs(self) -> FTPFS:
        mount = self.bucket.mount(allow_dir_rename=True, rewrite_max_size="1MiB")
        srv = self.start_server({"/": mount})
        return FTPFS(srv.host, port=srv.port, user=USER, passwd=PASSWORD, timeout=10)


skip_by_name(TestFTPFSOnS3, FSTestCases, FTPFS_SKIPS)


def test_ftpfs_skips_name_real_cases() -> None:
    assert_cases_exist(FSTestCases, FTPFS_SKIPS)


# ---------------------------------------------------------------- streaming


@pytest.mark.timeout(300)
def test_200mb_round_trip_in_bounded_memory(ftp_login: LoginFactory) -> None:
    """200 MB up and down through the server, whose peak Python memory stays
    below part_size * (concurrency + 2) + 32 MiB = 52 MiB: a server holding
    the file (or one part per 5 MiB received) would need 200 MB.

    moto runs in a child process here: in this one it would keep the 200 MB
    object in memory (and copy it for each GET), and tracemalloc counts
    every thread of the process."""
    size, part, concurrency = 200 * 1000 * 1000, 5 * MiB, 2
    bound = part * (concurrency + 2) + 32 * MiB
    with moto_subprocess() as endpoint:
        client = make_client(endpoint)
        try:
            client.create_bucket(Bucket="big")
            config = {
                "mounts": {
                    "/s3": {
                        "fs": "s3://big/data",
                        "endpoint_url": endpoint,
                        "region": REGION,
                        "access_key_id": "testing",
                        "secret_access_key": "testing",
                        "part_size": part,
                        "concurrency": concurrency,
                    }
                },
                "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
            }
            with ThreadedFTPServer(config, user=USER, password=PASSWORD) as srv:
                f = ftp_login(srv, timeout=60)
                # The server's S3 client is made on first use (botocore's
                # service model: ~11 MiB, once per process): not counted.
                assert f.nlst("/s3") == []
                source = PatternFile(size)
                tracemalloc.start()
                try:
                    f.storbinary("STOR /s3/big.bin", source, blocksize=256 * 1024)
                    up_peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.reset_peak()
                    got = hashlib.sha256()
                    received = 0

                    def sink(chunk: bytes) -> None:
                        nonlocal received
                        received += len(chunk)
                        got.update(chunk)

                    f.retrbinary("RETR /s3/big.bin", sink, blocksize=256 * 1024)
                    down_peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                bye(f)
            head = client.head_object(Bucket="big", Key="data/big.bin")
            uploads = client.list_multipart_uploads(Bucket="big").get("Uploads", [])
        finally:
            client.close()
    assert source.pos == size
    assert received == size
    assert got.hexdigest() == source.sha.hexdigest()
    assert head["ContentLength"] == size
    # One multipart upload of 5 MiB parts: 200 MB / 5 MiB → 39 parts.
    assert head["ETag"].strip('"').endswith(f"-{-(-size // part)}")
    assert uploads == []
    assert up_peak < bound, f"upload peak {up_peak / MiB:.1f} MiB >= {bound / MiB:.0f} MiB"
    assert down_peak < bound, f"download peak {down_peak / MiB:.1f} MiB >= {bound / MiB:.0f} MiB"


def _header(request: Any, name: str) -> str | None:
    value = request.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


def _range(request: Any) -> str | None:
    return _header(request, "Range")


class _CountingBody:
    """Wraps a GetObject body: how many bytes the server has read of it."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.read_bytes = 0

    def read(self, amt: int | None = None) -> bytes:
        data: bytes = self.body.read(amt)
        self.read_bytes += len(data)
        return data

    def close(self) -> None:
        self.body.close()


def test_first_byte_of_retr_before_the_object_is_read(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    size = 50 * MiB
    data = pattern(size)
    s3_bucket.put("pre/big.bin", data)
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path))
    s3fs = mount_fs(srv, "/s3")
    ranges: list[str | None] = []
    bodies: list[_CountingBody] = []

    def on_send(request: Any, **kwargs: Any) -> None:
        ranges.append(_range(request))

    def on_result(parsed: dict[str, Any], **kwargs: Any) -> None:
        if "Body" in parsed:
            parsed["Body"] = _CountingBody(parsed["Body"])
            bodies.append(parsed["Body"])

    s3fs.client.meta.events.register("before-send.s3.GetObject", on_send)
    s3fs.client.meta.events.register("after-call.s3.GetObject", on_result)
    f = ftp_login(srv)
    with f.transfercmd("RETR /s3/big.bin") as conn:
        first = bytearray()
        while len(first) < 64 * 1024:
            chunk = conn.recv(64 * 1024 - len(first))
            assert chunk, "data connection closed early"
            first += chunk
        # The first bytes are here; the server has made one GET (of the
        # whole object: no HEAD before it) and read a part of it only (what
        # fits in the socket buffers).
        assert bytes(first) == data[: len(first)]
        assert ranges == [None]
        assert len(bodies) == 1
        assert bodies[0].read_bytes < size, "the whole object was read before the first byte"
        rest = hashlib.sha256(first)
        while chunk := conn.recv(1 << 20):
            rest.update(chunk)
    assert f.voidresp().startswith("226")
    assert rest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert ranges == [None]  # the whole download was that one GET
    bye(f)


@pytest.mark.parametrize("how", ["rst", "abor"])
def test_upload_cut_mid_way_leaves_nothing(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    how: str,
    ftp_login: LoginFactory,
) -> None:
    """12 MiB into a 5 MiB-part upload (two parts sent, a multipart upload
    open), the client resets the data connection or sends ABOR: 426, no
    object, and the multipart upload is aborted."""
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path, part_size="5MiB", concurrency=2))
    f = ftp_login(srv)
    with f.transfercmd("STOR /s3/cut.bin") as conn:
        source = PatternFile(12 * MiB)
        while chunk := source.read(1 << 20):
            conn.sendall(chunk)
        wait_for(lambda: len(s3_bucket.uploads()) == 1, what="the multipart upload to start")
        if how == "rst":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            with pytest.raises(ftplib.error_temp, match=r"^426 "):
                f.voidresp()
        else:
            f.putcmd("ABOR")
            with pytest.raises(ftplib.error_temp, match=r"^426 "):
                f.getresp()
            assert f.getresp().startswith("226")
    # The discard runs in the transfer thread once the 426 is decided.
    wait_for(lambda: s3_bucket.uploads() == [], what="the multipart upload to be aborted")
    assert s3_bucket.keys() == []
    assert f.sendcmd("NOOP").startswith("200")
    assert "cut.bin" not in f.nlst("/s3")
    bye(f)


def test_quota_stops_an_s3_upload_midway(
    s3_bucket: S3Bucket, s3_server: ServerFactory, tmp_path: Path, ftp_login: LoginFactory
) -> None:
    """A mount quota on S3: usage measured from the listing, the upload
    that goes over it gets 552 and its multipart upload is aborted."""
    s3_bucket.put("pre/old.bin", b"o" * MiB)
    mounts = mixed_mounts(s3_bucket, tmp_path, part_size="5MiB", concurrency=2)
    mounts["/s3"]["quota"] = {"max_bytes": 8 * MiB}
    srv = s3_server(mounts)
    f = ftp_login(srv)
    with f.transfercmd("STOR /s3/big.bin") as conn:
        source = PatternFile(12 * MiB)
        with contextlib.suppress(OSError):  # the server stops reading at the limit
            while chunk := source.read(1 << 20):
                conn.sendall(chunk)
    with pytest.raises(ftplib.error_perm, match=r"^552 Quota exceeded \(mount: "):
        f.voidresp()
    wait_for(lambda: s3_bucket.uploads() == [], what="the multipart upload to be aborted")
    assert s3_bucket.keys() == ["pre/old.bin"]
    # What fits still goes in.
    f.storbinary("STOR /s3/small.bin", io.BytesIO(pattern(6 * MiB)))
    assert sorted(s3_bucket.keys()) == ["pre/old.bin", "pre/small.bin"]
    bye(f)


def test_rest_retr_resumes_with_a_ranged_get(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    data = pattern(300_000)
    s3_bucket.put("pre/file.bin", data)
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path))
    ranges: list[str | None] = []
    mount_fs(srv, "/s3").client.meta.events.register(
        "before-send.s3.GetObject", lambda request, **kw: ranges.append(_range(request))
    )
    f = ftp_login(srv)
    out = io.BytesIO()
    f.retrbinary("RETR /s3/file.bin", out.write, rest=123_456)
    assert out.getvalue() == data[123_456:]
    assert ranges == ["bytes=123456-"]  # and no HEAD: the response tells the size
    bye(f)


def test_retr_goes_on_when_the_get_breaks_off(
    s3_bucket: S3Bucket, s3_server: ServerFactory, ftp_login: LoginFactory
) -> None:
    """S3 resets a long download now and then: the client gets the whole
    file, from a second ranged GET that asks for the same version."""
    data = pattern(3 * MiB)
    s3_bucket.put("big.bin", data)
    proxy = CuttingProxy(s3_bucket.endpoint, cut_at=MiB)
    try:
        srv = s3_server({"/": s3_bucket.mount(endpoint_url=proxy.endpoint)})
        calls: list[tuple[str | None, str | None]] = []
        mount_fs(srv, "/").client.meta.events.register(
            "before-send.s3.GetObject",
            lambda request, **kw: calls.append((_range(request), _header(request, "If-Match"))),
        )
        f = ftp_login(srv)
        out = io.BytesIO()
        f.retrbinary("RETR big.bin", out.write)
        bye(f)
    finally:
        proxy.close()
    assert out.getvalue() == data and proxy.cut == 1
    etag = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="big.bin")["ETag"]
    assert calls[0] == (None, None)  # the whole object, no HEAD before it
    # Taken up at the first byte that did not arrive, for the same version.
    assert calls[1:] == [(f"bytes={MiB}-{len(data) - 1}", etag)]


def test_rest_stor_and_appe_refused_by_default(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    s3_bucket.put("pre/file.txt", b"0123456789")
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path))
    f = ftp_login(srv)
    refused = r"would rewrite an S3 object.*not enabled on this mount \(rewrite_max_size\)$"
    with pytest.raises(ftplib.error_perm, match=r"^550 /s3/file\.txt: APPE " + refused):
        f.storbinary("APPE /s3/file.txt", io.BytesIO(b"more"))
    with pytest.raises(ftplib.error_perm, match=r"^550 /s3/file\.txt: REST\+STOR " + refused):
        f.storbinary("STOR /s3/file.txt", io.BytesIO(b"tail"), rest=4)
    # Refused before the 150: nothing was read, nothing changed, no upload.
    assert f.sendcmd("NOOP").startswith("200")
    assert s3_bucket.get("pre/file.txt") == b"0123456789"
    assert s3_bucket.uploads() == []
    # APPE to a file that does not exist yet is a plain upload.
    f.storbinary("APPE /s3/new.txt", io.BytesIO(b"fresh"))
    assert s3_bucket.get("pre/new.txt") == b"fresh"
    bye(f)


def test_appe_and_rest_stor_rewrite_with_rewrite_max_size(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    mounts = mixed_mounts(s3_bucket, tmp_path, rewrite_max_size="6MiB", part_size="5MiB")
    srv = s3_server(mounts)
    s3_bucket.put("pre/log.txt", b"line 1\n")
    big = pattern(5 * MiB + 1000)  # kept part crosses a part boundary
    s3_bucket.put("pre/big.bin", big)
    s3_bucket.put("pre/huge.bin", b"x" * (6 * MiB + 1))
    f = ftp_login(srv)
    f.storbinary("APPE /s3/log.txt", io.BytesIO(b"line 2\n"))
    assert s3_bucket.get("pre/log.txt") == b"line 1\nline 2\n"
    f.storbinary("STOR /s3/log.txt", io.BytesIO(b"LINE 2\n"), rest=7)
    assert s3_bucket.get("pre/log.txt") == b"line 1\nLINE 2\n"
    f.storbinary("APPE /s3/big.bin", io.BytesIO(b"appended"))
    assert s3_bucket.get("pre/big.bin") == big + b"appended"
    f.storbinary("STOR /s3/big.bin", io.BytesIO(b"resumed"), rest=5 * MiB + 10)
    assert s3_bucket.get("pre/big.bin") == big[: 5 * MiB + 10] + b"resumed"
    with pytest.raises(ftplib.error_perm, match=r"^550 .*larger than rewrite_max_size"):
        f.storbinary("APPE /s3/huge.bin", io.BytesIO(b"more"))
    beyond = r"^550 /s3/log\.txt: restart offset 1000 is beyond the object's size 14$"
    with pytest.raises(ftplib.error_perm, match=beyond):
        f.storbinary("STOR /s3/log.txt", io.BytesIO(b"x"), rest=1000)
    assert s3_bucket.get("pre/log.txt") == b"line 1\nLINE 2\n"
    assert s3_bucket.uploads() == []
    bye(f)


# ---------------------------------------------------------------- directories


def test_prefixes_without_markers_are_directories(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    ftp_login: LoginFactory,
) -> None:
    """A bucket written by another tool: no "dir/" marker objects."""
    for key in ("a/b/c.txt", "a/d.txt", "top.txt"):
        s3_bucket.put(key, key.encode())
    srv = s3_server({"/": "mem://", "/s3": s3_bucket.mount()})
    f = ftp_login(srv)
    assert sorted(f.nlst("/s3")) == ["a", "top.txt"]
    lines: list[str] = []
    f.retrlines("LIST /s3", lines.append)
    kinds = {line.split()[-1]: line[0] for line in lines}
    assert kinds == {"a": "d", "top.txt": "-"}
    facts = dict(f.mlsd("/s3/a", facts=["type", "size"]))
    assert facts["b"]["type"] == "dir"
    assert facts["d.txt"]["type"] == "file" and facts["d.txt"]["size"] == "7"
    assert facts["."]["type"] == "cdir"
    f.cwd("/s3/a/b")
    assert f.pwd() == "/s3/a/b"
    assert f.nlst() == ["c.txt"]
    out = io.BytesIO()
    f.retrbinary("RETR c.txt", out.write)
    assert out.getvalue() == b"a/b/c.txt"
    with pytest.raises(ftplib.error_perm, match=r"^550 "):
        f.cwd("/s3/top.txt")
    with pytest.raises(ftplib.error_perm, match=r"^550 "):
        f.cwd("/s3/nope")
    # MKD writes a marker; RMD removes it, and refuses a directory with
    # objects below it.
    f.mkd("/s3/newdir")
    assert s3_bucket.exists("newdir/")
    assert "newdir" in f.nlst("/s3")
    f.storbinary("STOR /s3/newdir/inside.txt", io.BytesIO(b"in"))
    with pytest.raises(ftplib.error_perm, match=r"^550 .*not empty"):
        f.rmd("/s3/newdir")
    f.delete("/s3/newdir/inside.txt")
    f.rmd("/s3/newdir")
    assert not s3_bucket.exists("newdir/")
    with pytest.raises(ftplib.error_perm, match=r"^550 .*not empty"):
        f.rmd("/s3/a")
    with pytest.raises(ftplib.error_perm, match=r"^550 "):
        f.mkd("/s3/a")  # exists (as a prefix)
    assert s3_bucket.keys() == ["a/b/c.txt", "a/d.txt", "top.txt"]
    bye(f)


def test_listing_costs_one_request_per_thousand_entries(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    """Sizes and times come with ListObjectsV2 pages: 2,500 objects are
    three requests, with no HEAD or GET per object (MLSD and LIST)."""
    s3_bucket.put_many([f"pre/many/f{i:05d}.txt" for i in range(2500)])
    s3_bucket.put_many([f"pre/few/f{i}.txt" for i in range(5)])
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path))
    calls = Calls(mount_fs(srv, "/s3"))
    f = ftp_login(srv)

    def mlsd(path: str) -> list[str]:
        return [name for name, _ in f.mlsd(path) if name not in (".", "..")]

    def list_(path: str) -> list[str]:
        out: list[str] = []
        f.retrlines(f"LIST {path}", out.append)
        f.voidcmd("TYPE I")
        return [line.split()[-1] for line in out]

    for listing in (mlsd, list_):
        calls.clear()
        assert len(listing("/s3/few")) == 5
        few, few_lists = calls.count(), calls.lists()
        calls.clear()
        names = listing("/s3/many")
        many, many_lists = calls.count(), calls.lists()
        assert len(names) == 2500 and names[0] == "f00000.txt" and names[-1] == "f02499.txt"
        # Listing pages: one per 1,000 entries.
        assert few_lists[0] == 1, listing
        assert many_lists[0] == 3, listing
        # Everything else is a constant: for MLSD's "." line a one-key probe
        # that finds the prefix; LIST lists at once.
        probes = 1 if listing is mlsd else 0
        assert many_lists[1] == few_lists[1] == probes, listing
        assert set(many) == set(few) == {"ListObjectsV2"}, listing  # no HEAD, no GET
    bye(f)


class PageGate:
    """Holds each ListObjectsV2 request for a page after the first until
    ``opened`` (or 10 s), recording whether it was opened in time: the
    listing's pages are then asked for while the client watches."""

    def __init__(self, s3fs: StreamingS3FS) -> None:
        self.opened = threading.Event()
        self.waiting = threading.Event()  # a later page is being asked for
        self.in_time: list[bool] = []
        s3fs.client.meta.events.register("provide-client-params.s3.ListObjectsV2", self._hold)

    def _hold(self, params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("ContinuationToken"):
            self.waiting.set()
            self.in_time.append(self.opened.wait(10))


def test_multi_page_listing_streams_whole_and_in_order(
    s3_bucket: S3Bucket, s3_server: ServerFactory, tmp_path: Path, ftp_login: LoginFactory
) -> None:
    """2,500 objects and two folders, three ListObjectsV2 pages: each entry
    arrives once, the files in order, in LIST, NLST, MLSD and STAT; and
    the second and third pages are asked for only once the client has the
    first entries (the listing is sent while S3 is read, page by page,
    never built whole first)."""
    files = [f"f{i:05d}.txt" for i in range(2500)]
    s3_bucket.put_many([f"pre/many/{name}" for name in files] + ["pre/many/sub1/x"])
    s3_bucket.put("pre/many/sub2/y", b"y")
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path))
    s3fs = mount_fs(srv, "/s3")
    calls = Calls(s3fs)
    f = ftp_login(srv)

    def seen(line: str) -> str:
        gate.opened.set()  # the first entries are here
        return line

    def list_names() -> list[str]:
        out: list[str] = []
        f.retrlines("LIST /s3/many", lambda line: out.append(seen(line).split()[-1]))
        return out

    def nlst_names() -> list[str]:
        out: list[str] = []
        f.retrlines("NLST /s3/many", lambda line: out.append(seen(line)))
        return out

    def mlsd_names() -> list[str]:
        out: list[str] = []  # (ftplib's mlsd() reads every line before it yields)
        f.retrlines("MLSD /s3/many", lambda line: out.append(seen(line).split("; ", 1)[1]))
        return [name for name in out if name not in (".", "..")]

    for listing in (list_names, nlst_names, mlsd_names):
        gate = PageGate(s3fs)
        calls.clear()
        names = listing()
        f.voidcmd("TYPE I")
        assert [n for n in names if n.startswith("f")] == files, listing
        assert sorted(n for n in names if not n.startswith("f")) == ["sub1", "sub2"], listing
        assert calls.lists()[0] == 3, listing
        assert gate.in_time == [True, True], f"{listing.__name__}: pages asked for before sending"
        s3fs.client.meta.events.unregister("provide-client-params.s3.ListObjectsV2", gate._hold)
    # STAT <dir>: the same, over the control connection.
    calls.clear()
    lines = f.sendcmd("STAT /s3/many").splitlines()
    assert lines[0] == "213-Status of /s3/many:" and lines[-1] == "213 End of status"
    names = [line.split()[-1] for line in lines[1:-1]]
    assert [n for n in names if n.startswith("f")] == files
    assert sorted(n for n in names if not n.startswith("f")) == ["sub1", "sub2"]
    assert calls.lists()[0] == 3
    bye(f)


def _current_transfer(srv: ThreadedFTPServer) -> Any:
    (channel,) = srv.server.channels
    return channel.transfer


@pytest.mark.parametrize("how", ["ABOR", "hang up"])
def test_s3_listing_asks_for_no_more_pages_once_stopped(
    s3_bucket: S3Bucket, s3_server: ServerFactory, tmp_path: Path, how: str
) -> None:
    """A listing of 10,000 objects is ten ListObjectsV2 pages; a client
    that sends ABOR, or hangs up, while the second is being fetched stops
    it there: no third page is asked for (the whole listing was built,
    ten requests, before a byte went out)."""
    s3_bucket.put_many([f"pre/big/f{i:05d}.txt" for i in range(10_000)])
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path))
    s3fs = mount_fs(srv, "/s3")
    calls = Calls(s3fs)
    gate = PageGate(s3fs)
    c = Control(srv.host, srv.port)
    try:
        c.login()
        code, lines = c.cmd("EPSV")
        assert code == 229, lines
        data = socket.create_connection((srv.host, int(lines[0].split("|")[-2])), timeout=10)
        try:
            c.send("LIST /s3/big")
            assert c.reply()[0] == 150
            assert data.recv(100)  # the first entries
            assert gate.waiting.wait(10), "the second page was never asked for"
            if how == "ABOR":
                c.send("ABOR")
                wait_for(
                    lambda: (t := _current_transfer(srv)) is None or t.state.aborted,
                    "the transfer to be aborted",
                )
            else:
                data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                data.close()  # (RST: unread data)
            gate.opened.set()
            assert c.reply()[0] == 426
            if how == "ABOR":
                assert c.reply()[0] == 226
        finally:
            data.close()
        assert calls.lists() == (2, 0)  # the first two pages, and no more
        assert c.cmd("NOOP")[0] == 200
    finally:
        gate.opened.set()
        c.close()


def test_s3_listing_in_bounded_memory(ftp_login: LoginFactory) -> None:
    """A LIST of 6,000 objects (six ListObjectsV2 pages) holds about a
    page at a time: 3.6 MiB here, most of it botocore parsing a page's
    XML; the whole listing built first peaked at 8.6 MiB, and grows with
    the folder. moto runs in a child process, whose work for each page
    tracemalloc would count too (14 MiB for a listing of 20,000)."""
    count = 6000
    with moto_subprocess("big", "data/big/file-with-a-longish-name-{:06d}.dat", count) as url:
        config = {
            "mounts": {
                "/s3": {
                    "fs": "s3://big/data",
                    "endpoint_url": url,
                    "region": REGION,
                    "access_key_id": "testing",
                    "secret_access_key": "testing",
                }
            },
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
        with ThreadedFTPServer(config, user=USER, password=PASSWORD) as srv:
            f = ftp_login(srv, timeout=60)
            # The server's S3 client is made on first use (botocore's
            # service model: ~11 MiB, once per process): not counted.
            assert f.nlst("/s3/big/file-with-a-longish-name-000000.dat")
            total = lines = 0

            def count_line(line: str) -> None:
                nonlocal total, lines
                total += len(line) + 2
                lines += 1

            tracemalloc.start()
            try:
                f.retrlines("LIST /s3/big", count_line)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            bye(f)
    assert lines == count
    assert peak < 5.5 * MiB, f"{peak / MiB:.1f} MiB for a {total / MiB:.1f} MiB listing"


_HEAD, _GET, _PUT, _DEL = "HeadObject", "GetObject", "PutObject", "DeleteObject"
_LIST, _COPY = "ListObjectsV2", "CopyObject"


def test_s3_requests_per_command(
    s3_bucket: S3Bucket, s3_server: ServerFactory, ftp_login: LoginFactory
) -> None:
    """Each request to S3 is a round trip (tens of milliseconds to AWS):
    what every common command sends, in order. A directory check is one
    LIST (no HEAD first), RETR one GET (its response tells the size), a
    STOR into a folder the session knows the PUT alone."""
    s3_bucket.put("d/sub/x.txt", b"x")
    s3_bucket.put("d/f.txt", b"x")
    srv = s3_server({"/": s3_bucket.mount()})
    calls = Calls(mount_fs(srv, "/"))
    f = ftp_login(srv)

    def refused(command: Callable[[], object]) -> None:
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            command()

    table: list[tuple[str, Callable[[], object], list[str]]] = [
        ("CWD", lambda: f.cwd("/d"), [_LIST]),
        ("CWD relative", lambda: f.cwd("sub"), [_LIST]),
        ("CWD /", lambda: f.cwd("/"), []),
        # one LIST tells the folder is there and names its subfolders; the
        # session goes by it for folder_trust seconds: the PUT alone
        ("STOR new", lambda: f.storbinary("STOR /d/n.txt", io.BytesIO(b"1")), [_LIST, _PUT]),
        ("STOR over", lambda: f.storbinary("STOR /d/n.txt", io.BytesIO(b"2")), [_PUT]),
        ("STOR next", lambda: f.storbinary("STOR /d/o.txt", io.BytesIO(b"3")), [_PUT]),
        (
            "STOR onto a folder",
            lambda: refused(lambda: f.storbinary("STOR /d/sub", io.BytesIO(b"4"))),
            [],
        ),
        (
            "STOR into no folder",
            lambda: refused(lambda: f.storbinary("STOR /d/none/x", io.BytesIO(b"5"))),
            [_LIST],
        ),
        ("RETR", lambda: f.retrbinary("RETR /d/f.txt", lambda b: None), [_GET]),
        ("SIZE", lambda: f.size("/d/f.txt"), [_HEAD]),
        ("MDTM", lambda: f.sendcmd("MDTM /d/f.txt"), [_HEAD]),
        ("LIST", lambda: f.retrlines("LIST /d", lambda line: None), [_LIST]),
        # a file: the listing finds nothing, then the file is looked up
        (
            "LIST file",
            lambda: f.retrlines("LIST /d/f.txt", lambda line: None),
            [_LIST, _HEAD, _HEAD],
        ),
        ("MLSD", lambda: list(f.mlsd("/d")), [_LIST, _LIST]),  # "." and the listing
        ("MLSD deeper", lambda: list(f.mlsd("/d/sub")), [_LIST, _LIST, _LIST]),  # and ".."
        ("DELE", lambda: f.delete("/d/n.txt"), [_HEAD, _DEL]),
        # (the session's own change: what it knew of folders is asked again)
        ("STOR after DELE", lambda: f.storbinary("STOR /d/n.txt", io.BytesIO(b"6")), [_LIST, _PUT]),
        ("DELE again", lambda: f.delete("/d/n.txt"), [_HEAD, _DEL]),
        # one LIST of the parent: it is there, and "m" is neither in it
        ("MKD", lambda: f.mkd("/d/m"), [_LIST, _PUT]),
        ("MKD taken", lambda: refused(lambda: f.mkd("/d/sub")), [_LIST]),
        # (a folder the session made is known at once, empty)
        ("STOR into it", lambda: f.storbinary("STOR /d/m/x", io.BytesIO(b"7")), [_PUT]),
        ("DELE in it", lambda: f.delete("/d/m/x"), [_HEAD, _DEL]),
        ("RMD", lambda: f.rmd("/d/m"), [_LIST, _DEL]),
        # RNFR's HEAD; then the source's HEAD again (it may have changed),
        # one LIST of the target's folder (it is there, the name is free)
        (
            "RNFR+RNTO",
            lambda: f.rename("/d/f.txt", "/d/g.txt"),
            [_HEAD, _HEAD, _LIST, _COPY, _DEL],
        ),
        (
            "RNFR+RNTO into another directory",
            lambda: f.rename("/d/g.txt", "/d/sub/g.txt"),
            [_HEAD, _HEAD, _LIST, _COPY, _DEL],
        ),
        # a file has the name: its HEAD (its size, for a quota)
        (
            "RNFR+RNTO onto a file",
            lambda: f.rename("/d/o.txt", "/d/sub/g.txt"),
            [_HEAD, _HEAD, _LIST, _HEAD, _COPY, _DEL],
        ),
        (
            "RNFR+RNTO onto a folder",
            lambda: refused(lambda: f.rename("/d/sub/g.txt", "/d/sub")),
            [_HEAD, _HEAD, _LIST],
        ),
    ]
    for what, command, expected in table:
        f.voidcmd("TYPE I")
        calls.clear()
        command()
        assert [name for name, _ in calls.log] == expected, what
    bye(f)


def test_only_large_puts_wait_for_100_continue(
    s3_bucket: S3Bucket, s3_server: ServerFactory, ftp_login: LoginFactory
) -> None:
    """A small upload and a folder marker are one round trip: their PUT
    goes without ``Expect: 100-continue`` (which botocore adds to every
    PUT with a body); a body from EXPECT_CONTINUE_MIN on still asks first."""
    srv = s3_server({"/": s3_bucket.mount()})
    seen: list[tuple[str, int, str | None]] = []

    def on_send(request: Any, **kwargs: Any) -> None:
        length = int(_header(request, "Content-Length") or 0)
        seen.append((request.method, length, _header(request, "Expect")))

    mount_fs(srv, "/").client.meta.events.register("before-send.s3.PutObject", on_send)
    large = pattern(vfsftp.storage.s3.EXPECT_CONTINUE_MIN)
    f = ftp_login(srv)
    f.storbinary("STOR small.bin", io.BytesIO(b"s" * 4096))
    f.mkd("folder")
    f.storbinary("STOR large.bin", io.BytesIO(large))
    bye(f)
    assert seen == [
        ("PUT", 4096, None),
        ("PUT", 0, None),
        ("PUT", len(large), "100-continue"),
    ]
    assert s3_bucket.get("small.bin") == b"s" * 4096
    assert s3_bucket.get("large.bin") == large


def test_s3_stor_requests_with_a_quota(
    s3_bucket: S3Bucket, s3_server: ServerFactory, ftp_login: LoginFactory
) -> None:
    """On a mount with a quota a STOR also needs the size of the file it
    replaces. A name the folder's LIST did not show is charged as a new
    file at once, and the PUT carries If-None-Match: a file put there
    meanwhile refuses it (412), and the upload is then charged as replacing
    that file (a HEAD) and put again. A name the session knows is a file
    (it stored it) costs a HEAD first."""
    s3_bucket.put("d/sub/x.txt", b"x")
    srv = s3_server({"/": s3_bucket.mount(quota={"max_bytes": 100, "max_files": 10})})
    calls = Calls(mount_fs(srv, "/"))
    f = ftp_login(srv)
    f.voidcmd("TYPE I")
    # (the first upload measures the quota's usage: a listing of the mount)
    f.storbinary("STOR /w.txt", io.BytesIO(b"w"))  # usage 2
    calls.clear()
    f.storbinary("STOR /d/n.txt", io.BytesIO(b"1" * 40))  # 42
    assert [name for name, _ in calls.log] == [_LIST, _PUT]
    assert calls.log[-1][1]["IfNoneMatch"] == "*"
    calls.clear()
    f.storbinary("STOR /d/n.txt", io.BytesIO(b"2" * 50))  # replaces its 40 bytes: 52
    assert [name for name, _ in calls.log] == [_HEAD, _PUT]
    assert "IfNoneMatch" not in calls.log[-1][1]
    calls.clear()
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        f.storbinary("STOR /d/sub", io.BytesIO(b"3"))
    assert calls.log == []
    s3_bucket.put("d/p.txt", b"p" * 30)  # by another client, after the LIST
    f.storbinary("STOR /d/p.txt", io.BytesIO(b"4" * 10))  # replaces 30 bytes: 32
    assert [name for name, _ in calls.log] == [_PUT, _HEAD, _PUT]
    assert s3_bucket.get("d/p.txt") == b"4" * 10
    f.storbinary("STOR /d/o.txt", io.BytesIO(b"5" * 68))  # 100: fits exactly
    with pytest.raises(ftplib.error_perm, match=r"^552"):
        f.storbinary("STOR /d/q.txt", io.BytesIO(b"6"))
    assert s3_bucket.get("d/n.txt") == b"2" * 50
    assert not s3_bucket.exists("d/q.txt")
    bye(f)


def test_s3_rename_onto_a_file_frees_its_quota(
    s3_bucket: S3Bucket, s3_server: ServerFactory, ftp_login: LoginFactory
) -> None:
    """A rename within one S3 mount (its own move: the target's folder
    LISTed, a HEAD of a file it replaces) gives the replaced file's bytes
    and slot back to the quota; one into a folder that is not there, or
    of a file that is not there, is refused and changes nothing."""
    s3_bucket.put("d/sub/x.txt", b"x")
    srv = s3_server({"/": s3_bucket.mount(quota={"max_bytes": 100, "max_files": 3})})
    f = ftp_login(srv)
    f.voidcmd("TYPE I")
    f.storbinary("STOR /d/a.txt", io.BytesIO(b"a" * 59))  # usage 60 B, 2 files
    f.storbinary("STOR /d/b.txt", io.BytesIO(b"b" * 30))  # 90 B, 3 files
    f.rename("/d/a.txt", "/d/sub/x.txt")  # replaces 1 byte: 89 B, 2 files
    f.rename("/d/sub/x.txt", "/d/b.txt")  # replaces 30: 59 B, 1 file
    for src, dst in [("/d/b.txt", "/d/none/b.txt"), ("/d/gone.txt", "/d/c.txt")]:
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            f.rename(src, dst)
    # 100 B and 2 files: fits exactly, and only if both renames freed both
    f.storbinary("STOR /d/c.txt", io.BytesIO(b"c" * 41))
    with pytest.raises(ftplib.error_perm, match=r"^552"):
        f.storbinary("STOR /d/e.txt", io.BytesIO(b""))  # (not one byte more)
    assert s3_bucket.get("d/b.txt") == b"a" * 59
    # ("d/sub" had no marker: it went with its last file)
    assert s3_bucket.keys("d/") == ["d/b.txt", "d/c.txt"]
    bye(f)


def test_s3_upload_in_parts_under_a_quota_finds_the_file_it_replaces(
    s3_bucket: S3Bucket, s3_server: ServerFactory, ftp_login: LoginFactory
) -> None:
    """An upload in parts whose name the folder's LIST did not show asks
    (a HEAD) before it completes, and is charged as replacing the file it
    finds there."""
    s3_bucket.put("d/sub/x.txt", b"x")
    srv = s3_server(
        {"/": s3_bucket.mount(part_size="5MiB", quota={"max_bytes": 16 * MiB, "max_files": 10})}
    )
    calls = Calls(mount_fs(srv, "/"))
    f = ftp_login(srv)
    f.storbinary("STOR /d/a.txt", io.BytesIO(b"a"))  # usage 2; the session knows /d
    s3_bucket.put("d/big.bin", b"o" * MiB)  # by another client, after the LIST
    calls.clear()
    f.storbinary("STOR /d/big.bin", io.BytesIO(pattern(6 * MiB)))  # 2 + 6 MiB - 1 MiB
    names = [name for name, _ in calls.log]
    assert names.index(_HEAD) < names.index("CompleteMultipartUpload"), names
    f.storbinary("STOR /d/fill.bin", io.BytesIO(bytes(11 * MiB - 2)))  # 16 MiB: fits
    with pytest.raises(ftplib.error_perm, match=r"^552"):
        f.storbinary("STOR /d/more.txt", io.BytesIO(b"m"))
    assert s3_bucket.get("d/big.bin") == pattern(6 * MiB)
    bye(f)


@pytest.mark.parametrize("trust", [None, 0])
def test_stor_into_a_folder_another_session_removed(
    s3_bucket: S3Bucket, s3_server: ServerFactory, ftp_login: LoginFactory, trust: int | None
) -> None:
    """A session goes by what it learned of a folder for folder_trust
    seconds (5 by default). Removed meanwhile by another session, the
    folder comes back with the file (a PUT under a prefix makes it a
    folder again): what a PUT between the check and the upload always
    did. With folder_trust 0 every STOR asks, and is refused (550)."""
    options = {} if trust is None else {"folder_trust": trust}
    srv = s3_server({"/": s3_bucket.mount(**options)})
    a, b = ftp_login(srv), ftp_login(srv)
    a.mkd("/e")
    a.storbinary("STOR /e/a.txt", io.BytesIO(b"a"))
    b.delete("/e/a.txt")
    b.rmd("/e")
    assert s3_bucket.keys("e") == []
    if trust == 0:
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            a.storbinary("STOR /e/b.txt", io.BytesIO(b"b"))
        assert s3_bucket.keys("e") == []
    else:
        a.storbinary("STOR /e/b.txt", io.BytesIO(b"b"))
        assert s3_bucket.keys("e") == ["e/b.txt"]
        assert b.nlst("/e") == ["b.txt"]
    # The session's own RMD is never forgotten: the next STOR asks again.
    a.mkd("/g")
    a.storbinary("STOR /g/a.txt", io.BytesIO(b"a"))
    a.delete("/g/a.txt")
    a.rmd("/g")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        a.storbinary("STOR /g/b.txt", io.BytesIO(b"b"))
    assert s3_bucket.keys("g") == []
    bye(a)
    bye(b)


def test_stor_into_a_folder_too_large_for_one_page(
    s3_bucket: S3Bucket, s3_server: ServerFactory, ftp_login: LoginFactory
) -> None:
    """A folder of more than 1,000 entries: the LIST shows it is there but
    not all its subfolders, so each STOR asks whether its name is one."""
    s3_bucket.put_many([f"big/f{i:04d}" for i in range(1001)])
    s3_bucket.put("big/zz/inner", b"z")
    srv = s3_server({"/": s3_bucket.mount()})
    calls = Calls(mount_fs(srv, "/"))
    f = ftp_login(srv)
    f.storbinary("STOR /big/n.txt", io.BytesIO(b"1"))
    assert [name for name, _ in calls.log] == [_LIST, _LIST, _PUT]
    calls.clear()
    f.storbinary("STOR /big/o.txt", io.BytesIO(b"2"))
    assert [name for name, _ in calls.log] == [_LIST, _PUT]
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        f.storbinary("STOR /big/zz", io.BytesIO(b"3"))
    bye(f)


# ---------------------------------------------------------------- renames


def test_rename_on_s3_is_a_server_side_copy(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    data = pattern(2 * MiB)
    s3_bucket.put("pre/src.bin", data)
    s3_bucket.put("pre/dir/inner.txt", b"inner")
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path))
    calls = Calls(mount_fs(srv, "/s3"))
    f = ftp_login(srv)
    f.rename("/s3/src.bin", "/s3/dst.bin")
    counts = calls.count()
    assert counts["CopyObject"] == 1 and counts["DeleteObject"] == 1
    assert not {"GetObject", "PutObject", "UploadPart", "CreateMultipartUpload"} & set(counts)
    assert s3_bucket.get("pre/dst.bin") == data
    assert not s3_bucket.exists("pre/src.bin")
    # A directory is a prefix: renaming it copies every object below it.
    assert f.sendcmd("RNFR /s3/dir").startswith("350")
    with pytest.raises(ftplib.error_perm, match=r"^550 .*allow_dir_rename"):
        f.sendcmd("RNTO /s3/renamed")
    assert s3_bucket.keys("pre/") == ["pre/dir/inner.txt", "pre/dst.bin"]
    bye(f)


def test_directory_rename_with_allow_dir_rename(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    # "a" has no marker (written by another tool), "m" was made by MKD.
    for key in ("pre/a/b/c.txt", "pre/a/d.txt", "pre/keep.txt"):
        s3_bucket.put(key, key.encode())
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path, allow_dir_rename=True))
    calls = Calls(mount_fs(srv, "/s3"))
    f = ftp_login(srv)
    f.rename("/s3/a", "/s3/z")
    # The objects moved (the copy adds directory markers on the way).
    files = [k for k in s3_bucket.keys("pre/") if not k.endswith("/")]
    assert files == ["pre/keep.txt", "pre/z/b/c.txt", "pre/z/d.txt"]
    assert s3_bucket.keys("pre/a") == []
    assert s3_bucket.get("pre/z/b/c.txt") == b"pre/a/b/c.txt"
    # Server-side copies: no object data passes through the gateway.
    assert not {"GetObject", "UploadPart"} & set(calls.count())
    assert calls.count()["CopyObject"] == 2
    f.mkd("/s3/m")
    f.storbinary("STOR /s3/m/x.txt", io.BytesIO(b"x"))
    f.rename("/s3/m", "/s3/n")
    assert sorted(f.nlst("/s3")) == ["keep.txt", "n", "z"]
    assert f.nlst("/s3/n") == ["x.txt"]
    assert "pre/m/" not in s3_bucket.keys("pre/") and "pre/m/x.txt" not in s3_bucket.keys("pre/")
    bye(f)


def test_moves_between_mounts(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path, part_size="5MiB"))
    disk = tmp_path / "disk"
    f = ftp_login(srv)
    small, big = b"from memory", pattern(6 * MiB)  # big: a multipart upload
    # mem → s3
    f.storbinary("STOR /m.txt", io.BytesIO(small))
    f.rename("/m.txt", "/s3/m.txt")
    assert s3_bucket.get("pre/m.txt") == small
    assert "m.txt" not in f.nlst("/")
    # s3 → osfs
    s3_bucket.put("pre/s.bin", big)
    f.rename("/s3/s.bin", "/disk/s.bin")
    assert (disk / "s.bin").read_bytes() == big
    assert not s3_bucket.exists("pre/s.bin")
    # osfs → s3
    (disk / "o.bin").write_bytes(big[::-1])
    f.rename("/disk/o.bin", "/s3/o.bin")
    assert s3_bucket.get("pre/o.bin") == big[::-1]
    assert not (disk / "o.bin").exists()
    # directories: mem → s3, then s3 → osfs (copy, then remove the source tree)
    f.mkd("/tree")
    f.mkd("/tree/sub")
    f.storbinary("STOR /tree/sub/leaf.txt", io.BytesIO(b"leaf"))
    f.rename("/tree", "/s3/tree")
    assert s3_bucket.get("pre/tree/sub/leaf.txt") == b"leaf"
    assert "tree" not in f.nlst("/")
    f.rename("/s3/tree", "/disk/tree")
    assert (disk / "tree" / "sub" / "leaf.txt").read_bytes() == b"leaf"
    assert s3_bucket.keys("pre/tree") == []
    assert s3_bucket.uploads() == []
    bye(f)


# ---------------------------------------------------------------- new objects' settings

#: The requests that make an object: each must carry the mount's settings.
CREATING = ("PutObject", "CreateMultipartUpload", "CopyObject")
#: mounts.yaml key → the request parameter it sets.
API_NAMES = {
    "server_side_encryption": "ServerSideEncryption",
    "sse_kms_key_id": "SSEKMSKeyId",
    "storage_class": "StorageClass",
    "acl": "ACL",
}


def object_settings(bucket: S3Bucket, key: str, acl: bool = True) -> dict[str, Any]:
    """What S3 says of an object: its HEAD, and the groups its ACL grants
    to. (moto 5.2 fails GetObjectAcl on an object from a multipart upload
    started without an ACL: ``acl=False`` leaves it out.)"""
    head = bucket.client.head_object(Bucket=bucket.name, Key=key)
    settings = {
        "ContentType": head.get("ContentType"),
        "ServerSideEncryption": head.get("ServerSideEncryption"),
        "SSEKMSKeyId": head.get("SSEKMSKeyId"),
        "StorageClass": head.get("StorageClass", "STANDARD"),  # omitted for STANDARD
    }
    if acl:
        grants = bucket.client.get_object_acl(Bucket=bucket.name, Key=key)["Grants"]
        settings["groups"] = sorted(
            f"{g['Grantee']['URI'].rsplit('/', 1)[-1]}:{g['Permission']}"
            for g in grants
            if "URI" in g["Grantee"]
        )
    return settings


@pytest.mark.parametrize(
    ("settings", "stored"),
    [
        (
            {
                "server_side_encryption": "aws:kms",
                "sse_kms_key_id": "alias/ftp-uploads",
                "storage_class": "STANDARD_IA",
                "acl": "public-read",
            },
            {
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": "alias/ftp-uploads",
                "StorageClass": "STANDARD_IA",
                "groups": ["AllUsers:READ"],
            },
        ),
        (
            {
                "server_side_encryption": "AES256",
                "storage_class": "GLACIER_IR",
                "acl": "authenticated-read",
            },
            {
                "ServerSideEncryption": "AES256",
                "SSEKMSKeyId": None,
                "StorageClass": "GLACIER_IR",
                "groups": ["AuthenticatedUsers:READ"],
            },
        ),
        (
            # moto keeps no trace of bucket-owner-full-control (bucket and
            # object have one owner): the requests below show it was sent.
            {
                "server_side_encryption": "aws:kms",
                "storage_class": "INTELLIGENT_TIERING",
                "acl": "bucket-owner-full-control",
            },
            {
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": None,
                "StorageClass": "INTELLIGENT_TIERING",
                "groups": [],
            },
        ),
        (
            # moto keeps the dual-layer mode, not its key: the requests show
            # the key was sent. (An ACL: see object_settings.)
            {
                "server_side_encryption": "aws:kms:dsse",
                "sse_kms_key_id": "alias/dual",
                "acl": "private",
            },
            {
                "ServerSideEncryption": "aws:kms:dsse",
                "SSEKMSKeyId": None,
                "StorageClass": "STANDARD",
                "groups": [],
            },
        ),
    ],
    ids=["kms-key", "aes256", "kms-owner-full-control", "dsse"],
)
def test_every_new_object_carries_the_mount_settings(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, str],
    stored: dict[str, Any],
) -> None:
    """STOR (one PUT; a multipart upload), MKD's marker, and renames
    (CopyObject; UploadPartCopy) all send the mount's encryption, storage
    class and ACL: a copy inherits none of its source's. The ContentType is
    guessed from the name; a renamed object keeps its source's."""
    # UploadPartCopy above 5 MiB instead of 5 GB: a large copy of 6 MiB.
    monkeypatch.setattr(vfsftp.storage.s3, "COPY_OBJECT_LIMIT", 5 * MiB)
    # Written by another tool: no encryption, STANDARD, private.
    s3_bucket.client.put_object(
        Bucket=s3_bucket.name, Key="pre/outside.csv", Body=b"a,b\n", ContentType="text/csv"
    )
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path, part_size="5MiB", **settings))
    calls = Calls(mount_fs(srv, "/s3"))
    f = ftp_login(srv)
    f.storbinary("STOR /s3/table.csv", io.BytesIO(b"a,b\n1,2\n"))
    f.storbinary("STOR /s3/photo.jpg", io.BytesIO(pattern(6 * MiB)))
    f.storbinary("STOR /s3/README", io.BytesIO(b"no extension"))
    f.mkd("/s3/dir")
    f.rename("/s3/outside.csv", "/s3/dir/renamed.dat")
    f.rename("/s3/photo.jpg", "/s3/dir/photo.bin")
    bye(f)
    counts = calls.count()
    assert counts["PutObject"] == 3  # table.csv, README, the dir/ marker
    assert counts["CreateMultipartUpload"] == 2  # photo.jpg; its copy
    assert counts["CopyObject"] == 1 and counts["UploadPartCopy"] == 2
    content_types = {
        "pre/README": "application/octet-stream",
        "pre/dir/": "application/octet-stream",
        "pre/dir/photo.bin": "image/jpeg",  # the source's, through UploadPartCopy
        "pre/dir/renamed.dat": "text/csv",  # the source's, through CopyObject
        "pre/table.csv": "text/csv",
    }
    assert s3_bucket.keys() == sorted(content_types)
    for key, content_type in content_types.items():
        assert object_settings(s3_bucket, key) == {"ContentType": content_type, **stored}, key
    sent = {API_NAMES[k]: v for k, v in settings.items()}
    for name, params in calls.log:
        if name in CREATING:
            assert {k: params[k] for k in API_NAMES.values() if k in params} == sent, name
    assert s3_bucket.uploads() == []


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (
            None,
            {"a.csv": "text/csv", "b.jpg": "image/jpeg", "c.tar.gz": "application/octet-stream"},
        ),
        # The store's default (S3's and moto's: binary/octet-stream).
        ("none", dict.fromkeys(("a.csv", "b.jpg", "c.tar.gz"), "binary/octet-stream")),
    ],
    ids=["guess-by-default", "none"],
)
def test_content_type_guess_or_none(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
    content_type: str | None,
    expected: dict[str, str],
) -> None:
    """Without settings, a PUT and a multipart upload send the guessed
    ContentType and nothing else; ``content_type: none`` sends none."""
    options = {"content_type": content_type} if content_type else {}
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path, part_size="5MiB", **options))
    calls = Calls(mount_fs(srv, "/s3"))
    f = ftp_login(srv)
    f.storbinary("STOR /s3/a.csv", io.BytesIO(b"a,b\n"))
    f.storbinary("STOR /s3/b.jpg", io.BytesIO(pattern(6 * MiB)))  # multipart
    f.storbinary("STOR /s3/c.tar.gz", io.BytesIO(b"\x1f\x8b"))
    bye(f)
    for name, type_ in expected.items():
        assert object_settings(s3_bucket, f"pre/{name}", acl=False) == {
            "ContentType": type_,
            "ServerSideEncryption": None,
            "SSEKMSKeyId": None,
            "StorageClass": "STANDARD",
        }, name
    creating = [(name, params) for name, params in calls.log if name in CREATING]
    assert [name for name, _ in creating] == ["PutObject", "CreateMultipartUpload", "PutObject"]
    for _, params in creating:
        assert not set(API_NAMES.values()) & set(params)
        assert ("ContentType" in params) == (content_type is None)


# ---------------------------------------------------------------- faults


def _no_retries(srv: ThreadedFTPServer, path: str) -> None:
    """Before the first request: one attempt per call, so that a dead
    endpoint fails in milliseconds instead of after botocore's backoff."""
    s3fs = mount_fs(srv, path)
    assert s3fs._shared_client is None
    s3fs.options = dataclasses.replace(s3fs.options, max_attempts=1)


def test_unreachable_endpoint_gives_clean_replies(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    mounts = mixed_mounts(s3_bucket, tmp_path)
    mounts["/dead"] = {
        "fs": "s3://bucket/x",
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "region": REGION,
    }
    srv = s3_server(mounts)
    _no_retries(srv, "/dead")
    f = ftp_login(srv)
    unreachable = r"^451 /dead.*: S3 endpoint unreachable or timed out$"
    with pytest.raises(ftplib.error_temp, match=unreachable):
        f.retrlines("LIST /dead/sub", lambda line: None)
    with pytest.raises(ftplib.error_temp, match=unreachable):
        f.retrlines("LIST /dead", lambda line: None)
    f.voidcmd("TYPE I")
    with pytest.raises(ftplib.error_temp, match=unreachable):
        f.retrbinary("RETR /dead/file.bin", lambda b: None)
    with pytest.raises(ftplib.error_temp, match=unreachable):
        f.storbinary("STOR /dead/sub/file.bin", io.BytesIO(b"data"))
    with pytest.raises(ftplib.error_temp, match=unreachable):
        f.mkd("/dead/newdir")
    # The session goes on, and the other mounts work.
    assert f.sendcmd("NOOP").startswith("200")
    f.storbinary("STOR /s3/ok.txt", io.BytesIO(b"ok"))
    assert s3_bucket.get("pre/ok.txt") == b"ok"
    bye(f)


def test_missing_bucket_is_550_naming_the_problem(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    ftp_login: LoginFactory,
) -> None:
    mounts = {"/": "mem://", "/s3": {**s3_bucket.mount(), "fs": f"s3://{s3_bucket.name}-missing/x"}}
    srv = s3_server(mounts)
    f = ftp_login(srv)
    missing = r"^550 /s3.*: S3 bucket does not exist \(NoSuchBucket\)$"
    with pytest.raises(ftplib.error_perm, match=missing):
        f.retrlines("LIST /s3", lambda line: None)
    f.voidcmd("TYPE I")
    with pytest.raises(ftplib.error_perm, match=missing):
        f.retrbinary("RETR /s3/file.bin", lambda b: None)
    with pytest.raises(ftplib.error_perm, match=missing):
        f.storbinary("STOR /s3/file.bin", io.BytesIO(b"data"))
    assert f.sendcmd("NOOP").startswith("200")
    bye(f)


def test_access_denied_is_a_clean_reply(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    ftp_login: LoginFactory,
) -> None:
    """moto's IAM simulation (in-process: enable_iam_authentication). Two
    users: one may list the bucket and read objects, the other only list.
    What the store refuses comes back as a reply naming the refusal."""
    from moto.core.authorization import enable_iam_authentication

    s3_bucket.put("pre/secret.txt", b"secret")
    iam = s3_bucket.new_client_for("iam")

    def user_with(name: str, actions: list[str]) -> dict[str, str]:
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="p",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "s3:ListBucket",
                            "Resource": f"arn:aws:s3:::{s3_bucket.name}",
                        },
                        *(
                            [
                                {
                                    "Effect": "Allow",
                                    "Action": actions,
                                    "Resource": f"arn:aws:s3:::{s3_bucket.name}/*",
                                }
                            ]
                            if actions
                            else []
                        ),
                    ],
                }
            ),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}

    reader = user_with(f"reader-{s3_bucket.name}", ["s3:GetObject"])
    lister = user_with(f"lister-{s3_bucket.name}", [])
    # Two different URLs: the mount table shares one filesystem between
    # mounts of the same URL, whatever their credentials.
    srv = s3_server(
        {"/": "mem://", "/ro": s3_bucket.mount("pre", **reader), "/ls": s3_bucket.mount(**lister)}
    )
    f = ftp_login(srv)
    denied = r": S3 access denied \((AccessDenied|403)\)$"
    with enable_iam_authentication():
        assert f.nlst("/ro") == ["secret.txt"]  # ListBucket: allowed
        assert f.nlst("/ls") == ["pre"]
        f.voidcmd("TYPE I")
        out = io.BytesIO()
        f.retrbinary("RETR /ro/secret.txt", out.write)  # GetObject: allowed
        assert out.getvalue() == b"secret"
        with pytest.raises(ftplib.error_perm, match=r"^550 /ls/pre/secret\.txt" + denied):
            f.retrbinary("RETR /ls/pre/secret.txt", lambda b: None)  # its HEAD is refused
        with pytest.raises(ftplib.error_perm, match=r"^550 /ro/secret\.txt" + denied):
            f.delete("/ro/secret.txt")
        with pytest.raises(ftplib.error_perm, match=r"^550 /ro/newdir" + denied):
            f.mkd("/ro/newdir")
        # PutObject is refused once the data is in (at the commit).
        with pytest.raises(ftplib.error_perm, match=r"^550 /ro/new\.txt" + denied):
            f.storbinary("STOR /ro/new.txt", io.BytesIO(b"data"))
        assert f.sendcmd("NOOP").startswith("200")
    assert s3_bucket.keys() == ["pre/secret.txt"]
    assert s3_bucket.uploads() == []
    bye(f)


def test_slow_s3_does_not_stall_other_sessions(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    s3_bucket.put("pre/there.txt", b"x")
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path))
    entered, gate = threading.Event(), threading.Event()

    def slow(**kwargs: Any) -> None:
        entered.set()
        assert gate.wait(20), "gate never opened"

    mount_fs(srv, "/s3").client.meta.events.register("before-send.s3.ListObjectsV2", slow)
    blocked, other = ftp_login(srv), ftp_login(srv)
    listing: list[str] = []
    errors: list[BaseException] = []

    def list_s3() -> None:
        try:
            blocked.retrlines("LIST /s3", listing.append)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    worker = threading.Thread(target=list_s3)
    worker.start()
    try:
        assert entered.wait(10), "the LIST never reached S3"
        # The S3 request is stuck; another session is served meanwhile.
        assert not gate.is_set()
        other.storbinary("STOR /mem.txt", io.BytesIO(b"m"))
        assert "mem.txt" in other.nlst("/")
        other.storbinary("STOR /disk/disk.txt", io.BytesIO(b"d"))
        lines: list[str] = []
        other.retrlines("LIST /disk", lines.append)
        assert [line.split()[-1] for line in lines] == ["disk.txt"]
        assert not listing and worker.is_alive()
    finally:
        gate.set()
        worker.join(20)
    assert not errors, errors
    assert [line.split()[-1] for line in listing] == ["there.txt"]
    bye(other)
    bye(blocked)


# ---------------------------------------------------------------- misc


def test_stat_size_and_mdtm_from_s3(
    s3_bucket: S3Bucket,
    s3_server: ServerFactory,
    tmp_path: Path,
    ftp_login: LoginFactory,
) -> None:
    s3_bucket.put("pre/f.bin", b"x" * 1234)
    srv = s3_server(mixed_mounts(s3_bucket, tmp_path))
    f = ftp_login(srv)
    assert f.size("/s3/f.bin") == 1234
    assert re.match(r"^213 \d{14}", f.sendcmd("MDTM /s3/f.bin"))
    with pytest.raises(ftplib.error_perm, match=r"^550 .*modification time"):
        f.sendcmd("MFMT 20200101000000 /s3/f.bin")
    with pytest.raises(ftplib.error_perm, match=r"^550 "):
        f.size("/s3/missing.bin")
    # S3 objects have no permission bits: refused, not pretended (it was 200)
    with pytest.raises(ftplib.error_perm, match=r"^504 Not supported by this filesystem"):
        f.sendcmd("SITE CHMOD 644 /s3/f.bin")
    bye(f)


# ---------------------------------------------------------------- start-up


def test_the_service_makes_s3_clients_before_it_freezes_startup_objects(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 client's service model is tens of thousands of objects that
    live as long as the process: made after the start-up freeze, every
    full garbage collection walked them (a pause of every session; the
    soak's were 20-80 ms). run_service makes the clients first, and sends
    no request doing so."""
    import asyncio
    import os
    import signal
    import time

    from vfsftp.config.schema import config_from_dict
    from vfsftp.service import lifecycle
    from vfsftp.service.server import FTPServer

    config = config_from_dict(
        {
            "server": {"listen": "127.0.0.1", "port": 0},
            "mounts": {"/s3": s3_bucket.mount(), "/ro": {**s3_bucket.mount(), "read_only": True}},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    server = FTPServer(config)
    s3 = [
        vfsftp.storage.tree.unwrap_read_only(m.fs)
        for m in server.mounts.global_mounts
        if m.kind == "s3"
    ]
    assert len(s3) == 2 and all(isinstance(f, StreamingS3FS) for f in s3)
    sent: list[str] = []
    for f in s3:
        f.add_client_hook(
            lambda client: client.meta.events.register(
                "before-send", lambda request, **_: sent.append(request.url)
            )
        )
    made: list[bool] = []

    def freeze() -> int:
        made.extend(f._shared_client is not None for f in s3)
        return 0  # (the test process keeps its collector as it was)

    monkeypatch.setattr(lifecycle, "freeze_startup_objects", freeze)

    async def main() -> None:
        service = asyncio.ensure_future(lifecycle.run_service(server, None))
        deadline = time.monotonic() + 10
        while not made and not service.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # (polling, bounded)
        os.kill(os.getpid(), signal.SIGTERM)
        await service

    asyncio.run(main())
    assert made == [True, True]
    assert sent == []
