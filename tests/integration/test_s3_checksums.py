"""Checksums on S3 mounts, against a real S3 endpoint (moto's server),
counting the requests the server makes: the SHA-256 an upload computed is
stored with the object (user metadata), so a later HASH is one HEAD and
no GET; objects other tools wrote are read (a ranged, If-Match GET); S3's
own full-object checksums are used where present; a checksum mismatch
leaves no object and no multipart upload behind."""

# Fixtures imported from s3_fixtures are "redefined" as test parameters:
# ruff: noqa: F811

from __future__ import annotations

import ftplib
import hashlib
import io
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import login
from s3_fixtures import (  # noqa: F401
    Calls,
    S3Bucket,
    moto_endpoint,
    mount_fs,
    s3_bucket,
    s3_server,
)

from vfsftp.storage.digests import DIGESTS
from vfsftp.storage.s3 import SHA256_METADATA

pytestmark = pytest.mark.s3

MiB = 1024 * 1024
ALGORITHMS = ("CRC32", "MD5", "SHA-1", "SHA-256", "SHA-512")
XCMDS = {
    "XCRC": "CRC32",
    "XMD5": "MD5",
    "XSHA1": "SHA-1",
    "XSHA256": "SHA-256",
    "XSHA512": "SHA-512",
}
DATA = bytes(range(256)) * 800 + b"end"
_HEAD, _GET, _PUT = "HeadObject", "GetObject", "PutObject"


def digest(algorithm: str, data: bytes) -> str:
    if algorithm == "CRC32":
        return f"{zlib.crc32(data):08x}"
    name = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}[algorithm]
    return hashlib.new(name, data).hexdigest()


def big(size: int) -> bytes:
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB, not zeros
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    DIGESTS.clear()
    yield
    DIGESTS.clear()


def refused(call: Callable[[], object]) -> str:
    with pytest.raises(ftplib.Error) as exc:
        call()
    return str(exc.value)


def names(calls: Calls) -> list[str]:
    return [name for name, _ in calls.log]


def test_every_algorithm_on_an_object_written_elsewhere(
    s3_bucket: S3Bucket, s3_server: Callable[..., Any]
) -> None:
    """A foreign object (no checksum of ours): a HEAD, then a GET of the
    range, pinned to the HEAD's version (If-Match). boto3 asks S3 for a
    CRC32 of what it uploads (botocore 1.36 and later): that one the HEAD
    tells."""
    s3_bucket.put("d/f.bin", DATA)
    srv = s3_server({"/": s3_bucket.mount()})
    calls = Calls(mount_fs(srv, "/"))
    f = login(srv)
    for algorithm in ALGORITHMS:
        f.sendcmd(f"OPTS HASH {algorithm}")
        calls.clear()
        assert f.sendcmd("HASH d/f.bin") == (
            f"213 {algorithm} 0-{len(DATA) - 1} {digest(algorithm, DATA)} d/f.bin"
        )
        assert calls.log[0] == (_HEAD, {**calls.log[0][1], "ChecksumMode": "ENABLED"})
        if algorithm == "CRC32":
            assert names(calls) == [_HEAD]
            continue
        assert names(calls) == [_HEAD, _GET]
        get = calls.log[1][1]
        assert get["IfMatch"] and get["Range"] == f"bytes=0-{len(DATA) - 1}"
        # a second HASH of the same version: the cache, after one HEAD
        calls.clear()
        assert f.sendcmd("HASH d/f.bin").split(" ")[3] == digest(algorithm, DATA)
        assert names(calls) == [_HEAD]
    for verb, algorithm in XCMDS.items():
        assert f.sendcmd(f"{verb} d/f.bin 10 2000").endswith(
            "250 " + digest(algorithm, DATA[10:2000]).upper()
        )
    f.sendcmd("RANG 100 199")
    calls.clear()
    assert f.sendcmd("HASH d/f.bin").split(" ")[3] == digest("SHA-512", DATA[100:200])
    assert calls.log[1][1]["Range"] == "bytes=100-199"
    # empty objects, directories (a prefix without a marker too), nothing
    s3_bucket.put("empty", b"")
    s3_bucket.put("p/q/x", b"x")
    assert f.sendcmd("HASH empty") == f"213 SHA-512 0-0 {digest('SHA-512', b'')} empty"
    assert f.sendcmd("XCRC empty").endswith("250 00000000")
    assert refused(lambda: f.sendcmd("HASH p/q")).startswith("553")
    assert refused(lambda: f.sendcmd("HASH d")).startswith("553")
    assert refused(lambda: f.sendcmd("HASH nothing")).startswith("550")
    f.quit()


def test_hash_after_upload_is_one_head(s3_bucket: S3Bucket, s3_server: Callable[..., Any]) -> None:
    srv = s3_server({"/": s3_bucket.mount()})
    calls = Calls(mount_fs(srv, "/"))
    f = login(srv)
    f.storbinary("STOR a.bin", io.BytesIO(DATA))
    # the upload's SHA-256 went with the object, in its PutObject
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="a.bin")
    assert head["Metadata"] == {SHA256_METADATA: digest("SHA-256", DATA)}
    calls.clear()
    assert f.sendcmd("HASH a.bin") == (
        f"213 SHA-256 0-{len(DATA) - 1} {digest('SHA-256', DATA)} a.bin"
    )
    assert names(calls) == [_HEAD]
    # from the metadata, not this process's memory: a server started later
    # (here: the cache emptied) answers with one HEAD too
    DIGESTS.clear()
    calls.clear()
    assert f.sendcmd("XSHA256 a.bin").endswith(digest("SHA-256", DATA).upper())
    assert names(calls) == [_HEAD]
    # a rename is a server-side copy: the metadata goes with the data
    f.rename("a.bin", "b.bin")
    calls.clear()
    assert f.sendcmd("HASH b.bin").split(" ")[3] == digest("SHA-256", DATA)
    assert names(calls) == [_HEAD]
    # another algorithm is read (and then cached)
    f.sendcmd("OPTS HASH MD5")
    calls.clear()
    assert f.sendcmd("HASH b.bin").split(" ")[3] == digest("MD5", DATA)
    assert names(calls) == [_HEAD, _GET]
    f.quit()


def test_hash_after_a_multipart_upload(s3_bucket: S3Bucket, s3_server: Callable[..., Any]) -> None:
    """S3 fixes an object's metadata when its multipart upload begins,
    before the data is hashed: the object keeps no checksum unless the
    client announced it (SITE CHECKSUM). The uploading server answers from
    its cache (the completed upload's ETag) with one HEAD either way."""
    size = 6 * MiB
    data = big(size)
    sha = digest("SHA-256", data)
    srv = s3_server({"/": s3_bucket.mount(part_size="5MiB")})
    calls = Calls(mount_fs(srv, "/"))
    f = login(srv)
    f.storbinary("STOR m.bin", io.BytesIO(data))
    assert "CreateMultipartUpload" in names(calls)
    calls.clear()
    assert f.sendcmd("HASH m.bin") == f"213 SHA-256 0-{size - 1} {sha} m.bin"
    assert names(calls) == [_HEAD]
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="m.bin")
    assert SHA256_METADATA not in head["Metadata"]
    DIGESTS.clear()  # (another server): the object is read
    calls.clear()
    assert f.sendcmd("HASH m.bin").split(" ")[3] == sha
    assert names(calls) == [_HEAD, _GET]
    # announced: stored with the object at CreateMultipartUpload
    f.sendcmd(f"SITE CHECKSUM SHA-256 {sha}")
    f.storbinary("STOR n.bin", io.BytesIO(data))
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="n.bin")
    assert head["Metadata"] == {SHA256_METADATA: sha}
    DIGESTS.clear()
    calls.clear()
    assert f.sendcmd("HASH n.bin").split(" ")[3] == sha
    assert names(calls) == [_HEAD]
    f.quit()


def test_s3s_own_full_object_checksum_is_used(
    s3_bucket: S3Bucket, s3_server: Callable[..., Any]
) -> None:
    """An object another tool uploaded with an S3 checksum (here CRC32,
    which the store computed): HASH CRC32 is its HEAD."""
    s3_bucket.client.put_object(
        Bucket=s3_bucket.name, Key="c.bin", Body=DATA, ChecksumAlgorithm="CRC32"
    )
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="c.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"]
    srv = s3_server({"/": s3_bucket.mount()})
    calls = Calls(mount_fs(srv, "/"))
    f = login(srv)
    f.sendcmd("OPTS HASH CRC32")
    assert f.sendcmd("HASH c.bin").split(" ")[3] == digest("CRC32", DATA)
    assert names(calls) == [_HEAD]
    f.quit()


def test_a_checksum_mismatch_leaves_nothing(
    s3_bucket: S3Bucket, s3_server: Callable[..., Any]
) -> None:
    s3_bucket.put("kept.bin", b"old")
    srv = s3_server(
        {
            "/": s3_bucket.mount(part_size="5MiB"),
            "/strict": {**s3_bucket.mount("s"), "require_checksum": True},
        }
    )
    f = login(srv)
    for name, data in (("kept.bin", DATA), ("large.bin", big(6 * MiB))):
        f.sendcmd(f"SITE CHECKSUM SHA-1 {digest('SHA-1', b'something else')}")
        assert refused(
            lambda name=name, data=data: f.storbinary(f"STOR {name}", io.BytesIO(data))
        ).startswith("451 Upload discarded: SHA-1 mismatch")
    assert s3_bucket.get("kept.bin") == b"old"
    assert s3_bucket.keys() == ["kept.bin"]
    assert s3_bucket.uploads() == []  # the multipart upload was aborted
    assert refused(lambda: f.storbinary("STOR /strict/x", io.BytesIO(b"x"))).startswith("503")
    f.sendcmd(f"SITE CHECKSUM MD5 {digest('MD5', b'x')}")
    f.storbinary("STOR /strict/x", io.BytesIO(b"x"))
    assert s3_bucket.get("s/x") == b"x"
    f.quit()


def test_the_size_cap_refuses_without_a_get(
    s3_bucket: S3Bucket, s3_server: Callable[..., Any]
) -> None:
    s3_bucket.put("f.bin", DATA)
    srv = s3_server({"/": s3_bucket.mount(hash_max_size="100KiB")})
    calls = Calls(mount_fs(srv, "/"))
    f = login(srv)
    assert refused(lambda: f.sendcmd("HASH f.bin")).startswith("556 HASH refused")
    assert refused(lambda: f.sendcmd("XMD5 f.bin")).startswith("550 XMD5 refused")
    assert _GET not in names(calls)
    # what is stored costs no read, so it is never refused
    f.storbinary("STOR g.bin", io.BytesIO(DATA))
    assert f.sendcmd("HASH g.bin").split(" ")[3] == digest("SHA-256", DATA)
    f.quit()
