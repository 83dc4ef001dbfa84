"""Checksums of stored files (vfsftp/storage/digests.py): the hashers
against hashlib and zlib, the cache, the streamed read and its stops, and
what an S3 HEAD answer tells (vfsftp.storage.s3.stored_checksums)."""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from typing import Any

import pytest

from vfsftp.protocol.hashes import ALGORITHMS
from vfsftp.storage.digests import (
    DigestCache,
    Digester,
    DigestingWriter,
    HashJob,
    HashSource,
    HashStopped,
    compute,
    new_hasher,
)
from vfsftp.storage.errors import StorageError
from vfsftp.storage.s3 import SHA256_METADATA, stored_checksums

DATA = bytes(range(256)) * 4099 + b"tail"  # not a multiple of any chunk


def reference(algorithm: str, data: bytes) -> str:
    if algorithm == "CRC32":
        return f"{zlib.crc32(data):08x}"
    name = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}[algorithm]
    return hashlib.new(name, data).hexdigest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("data", [b"", b"a", DATA])
def test_hashers_match_hashlib_and_zlib(algorithm: str, data: bytes) -> None:
    h = new_hasher(algorithm)
    for i in range(0, len(data), 7919):  # fed in pieces
        h.update(memoryview(data)[i : i + 7919])
    assert h.hexdigest() == reference(algorithm, data)


def test_digester_several_at_once_through_a_writer() -> None:
    out = io.BytesIO()
    digester = Digester(("SHA-256", "MD5", "SHA-256", "CRC32"))  # (a repeat counts once)
    writer = DigestingWriter(out, digester)
    for i in range(0, len(DATA), 65536):
        writer.write(memoryview(DATA)[i : i + 65536])
    assert out.getvalue() == DATA and digester.size == len(DATA)
    assert digester.hexdigests() == {a: reference(a, DATA) for a in ("SHA-256", "MD5", "CRC32")}
    assert writer.getvalue() == DATA  # (other calls reach the file)


def test_cache_keeps_the_most_recently_used() -> None:
    cache = DigestCache(size=2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # a is now the most recent
    cache.put("c", "3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("1", None, "3")
    cache.remember(("tok",), 10, {"MD5": "m", "SHA-1": "s"})
    assert cache.get((("tok",), "SHA-1", 0, 10)) == "s"
    cache.clear()
    assert cache.get((("tok",), "SHA-1", 0, 10)) is None


def _sources(data: bytes) -> list[HashSource]:
    def opener(start: int, stop: int) -> Any:
        f = io.BytesIO(data)
        f.seek(start)
        return f

    return [HashSource(len(data), None, content=data), HashSource(len(data), None, opener=opener)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(("start", "stop"), [(0, len(DATA)), (0, 0), (17, 1_000_003), (5, 6)])
def test_compute_ranges_from_bytes_and_from_a_reader(algorithm: str, start: int, stop: int) -> None:
    for source in _sources(DATA):
        job = HashJob()
        assert compute(source, algorithm, start, stop, job) == reference(
            algorithm, DATA[start:stop]
        )
        assert job.done == job.total == stop - start


def test_compute_paces_with_the_throttle_in_small_chunks() -> None:
    paid: list[int] = []
    for source in _sources(DATA):
        paid.clear()
        job = HashJob(throttle=paid.append)
        compute(source, "MD5", 0, len(DATA), job)
        assert sum(paid) == len(DATA) and max(paid) <= 16 * 1024


def test_compute_stops_when_told() -> None:
    for source in _sources(DATA):
        job = HashJob()

        def stop_after_first(n: int, job: HashJob = job) -> None:
            job.stop("abor")

        job.throttle = stop_after_first
        with pytest.raises(HashStopped, match="abor"):
            compute(source, "SHA-256", 0, len(DATA), job)
        assert 0 < job.done < len(DATA)


def test_compute_of_a_file_that_shrank() -> None:
    short = HashSource(100, None, opener=lambda start, stop: io.BytesIO(b"x" * 10))
    with pytest.raises(StorageError, match="changed while"):
        compute(short, "MD5", 0, 100, HashJob())


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


SHA = hashlib.sha256(b"x").digest()
CRC = zlib.crc32(b"x").to_bytes(4, "big")


@pytest.mark.parametrize(
    ("head", "stored"),
    [
        ({}, {}),
        ({"Metadata": {SHA256_METADATA: "AB" * 32}}, {"SHA-256": "ab" * 32}),
        ({"Metadata": {SHA256_METADATA: "ab" * 31}}, {}),  # malformed: ignored
        ({"Metadata": {SHA256_METADATA: "zz" * 32}}, {}),
        ({"Metadata": {"sha256": "ab" * 32}}, {}),  # someone else's key
        # S3's own full-object checksums
        ({"ChecksumSHA256": _b64(SHA)}, {"SHA-256": SHA.hex()}),
        ({"ChecksumCRC32": _b64(CRC), "ChecksumType": "FULL_OBJECT"}, {"CRC32": CRC.hex()}),
        (
            {"ChecksumSHA1": _b64(hashlib.sha1(b"x").digest())},
            {"SHA-1": hashlib.sha1(b"x").hexdigest()},
        ),
        # a multipart upload's: of its parts' checksums, not of the data
        ({"ChecksumSHA256": _b64(SHA) + "-3"}, {}),
        ({"ChecksumSHA256": _b64(SHA), "ChecksumType": "COMPOSITE"}, {}),
        ({"ChecksumCRC32": "!!notbase64"}, {}),
        ({"ChecksumCRC32": _b64(SHA)}, {}),  # the wrong length
        # ours first; S3's SHA-256 does not replace it
        (
            {"Metadata": {SHA256_METADATA: "cd" * 32}, "ChecksumSHA256": _b64(SHA)},
            {"SHA-256": "cd" * 32},
        ),
    ],
)
def test_stored_checksums(head: dict[str, Any], stored: dict[str, str]) -> None:
    assert stored_checksums(head) == stored
