"""PyFilesystem2's conformance suite (fs.test.FSTestCases, ~80 tests) run
directly on ``StreamingS3FS`` against a real S3 endpoint (moto over HTTP), a
new bucket per test, the filesystem rooted at a prefix of it.

A few cases ask for what S3 cannot do; they are skipped by name below, and
``test_skipped_cases_exist`` fails if fs.test renames them."""

# Fixtures imported from s3_fixtures are "redefined" as test parameters:
# ruff: noqa: F811

from __future__ import annotations

import io
import os
import unittest
from collections.abc import Iterator
from typing import Any

import fs.errors
import pytest
from conftest import wait_for
from fs.test import FSTestCases
from s3_fixtures import (  # noqa: F401
    CuttingProxy,
    S3Bucket,
    assert_cases_exist,
    moto_endpoint,
    s3_bucket,
    skip_by_name,
)

from vfsftp.storage.errors import StorageError
from vfsftp.storage.s3 import MiB, S3Options, S3Reader, StreamingS3FS

pytestmark = pytest.mark.s3

_NO_MTIME = (
    "S3 sets an object's LastModified itself; StreamingS3FS.setinfo refuses "
    "to fake it (so MFMT answers 550 instead of pretending)"
)

#: FSTestCases that need what an S3 object cannot do.
IMPOSSIBLE_ON_S3 = {
    "test_setinfo": _NO_MTIME,
    "test_settimes": _NO_MTIME,
    "test_touch": _NO_MTIME + " (it calls settimes on the new file)",
    "test_open_files": (
        "a text-mode writer's tell() needs a seekable stream; S3Writer sends "
        "parts as they fill and cannot seek back, so it does not claim to be "
        "seekable (claiming it would break callers such as zipfile)"
    ),
}


class TestStreamingS3FS(FSTestCases, unittest.TestCase):  # type: ignore[misc]
    bucket: S3Bucket

    @pytest.fixture(autouse=True)
    def _bucket(self, s3_bucket: S3Bucket) -> None:
        self.bucket = s3_bucket

    def make_fs(self) -> StreamingS3FS:
        # FSTestCases renames directories: allow it (refused by default).
        options = S3Options(
            endpoint_url=self.bucket.endpoint, region="us-east-1", allow_dir_rename=True
        )
        return StreamingS3FS(self.bucket.name, dir_path="/conformance/root", options=options)


skip_by_name(TestStreamingS3FS, FSTestCases, IMPOSSIBLE_ON_S3)


def test_skipped_cases_exist() -> None:
    assert_cases_exist(FSTestCases, IMPOSSIBLE_ON_S3)


# ---------------------------------------------------------------- beyond fs.test


@pytest.fixture
def s3fs(s3_bucket: S3Bucket) -> Iterator[StreamingS3FS]:
    options = S3Options(endpoint_url=s3_bucket.endpoint, region="us-east-1", part_size=5 * MiB)
    filesystem = StreamingS3FS(s3_bucket.name, dir_path="/pre", options=options)
    yield filesystem
    filesystem.close()


@pytest.mark.parametrize("size", [10, 6 * MiB])  # one PUT; a multipart upload
def test_error_inside_with_openbin_publishes_nothing(
    s3fs: StreamingS3FS, s3_bucket: S3Bucket, size: int
) -> None:
    """As the FTP server's discard: an exception in the ``with`` block of
    openbin('wb') (a source failing mid-copy) aborts, it does not commit."""
    with pytest.raises(RuntimeError), s3fs.openbin("f.bin", "wb") as f:
        f.write(b"x" * size)
        raise RuntimeError("source failed")
    assert s3_bucket.keys() == []
    assert s3_bucket.uploads() == []
    with s3fs.openbin("f.bin", "wb") as f:  # without an error: committed
        f.write(b"x" * size)
    assert s3_bucket.keys() == ["pre/f.bin"]


def test_upload_streams_through_the_writer(s3fs: StreamingS3FS, s3_bucket: S3Bucket) -> None:
    """fs.upload (what fs.copy and cross-mount moves use): multipart for a
    big source, the caller's file left open, the parent checked."""
    source = io.BytesIO(bytes(range(256)) * (6 * MiB // 256))
    s3fs.upload("big.bin", source)
    assert not source.closed
    assert s3_bucket.get("pre/big.bin") == source.getvalue()
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="pre/big.bin")
    assert head["ETag"].strip('"').endswith("-2")  # 5 MiB + 1 MiB parts
    with pytest.raises(fs.errors.ResourceNotFound):
        s3fs.upload("missing/dir/f.bin", io.BytesIO(b"x"))
    with pytest.raises(fs.errors.ResourceNotFound):
        s3fs.writebytes("missing/f.bin", b"x")
    assert s3_bucket.keys() == ["pre/big.bin"]


def test_part_threads_end_once_idle(s3fs: StreamingS3FS, s3_bucket: S3Bucket) -> None:
    """The threads that send a multipart upload's parts end once idle, as
    the server's worker threads do (each kept the stack pages its requests
    touched); the next upload starts new ones. Their 10 s default is
    checked, then made 0.2 s here."""
    from vfsftp.storage.threads import IDLE_TIMEOUT

    pool = s3fs.part_pool
    assert pool.idle_timeout == IDLE_TIMEOUT == 10.0
    pool.idle_timeout = 0.2  # (read by each thread as it starts)
    data = bytes(range(256)) * (11 * MiB // 256)  # parts of 5, 5 and 1 MiB
    for name in ("a.bin", "b.bin"):
        started = pool._started
        with s3fs.openbin(name, "wb") as f:
            f.write(data)
        assert pool._started > started  # (the first upload's threads had ended)
        wait_for(lambda: not pool._threads, "idle part threads to end", 5)
        assert s3_bucket.get(f"pre/{name}") == data


def test_removetree_of_prefixes_without_markers(s3fs: StreamingS3FS, s3_bucket: S3Bucket) -> None:
    """Objects written by another tool: no "dir/" markers. The tree goes in
    DeleteObjects batches; the directory vanishing with its last object is
    no error. A mount's root marker stays."""
    s3_bucket.put("pre/")
    keys = [f"pre/t/{i // 100}/f{i}.txt" for i in range(1200)] + ["pre/t/x.txt", "pre/keep.txt"]
    s3_bucket.put_many(keys)
    calls: list[str] = []
    record = lambda model, **_: calls.append(model.name)  # noqa: E731
    s3fs.client.meta.events.register("before-call.s3.*", record)
    s3fs.removetree("t")
    assert s3_bucket.keys() == ["pre/", "pre/keep.txt"]
    assert calls.count("DeleteObjects") == 2 and "DeleteObject" not in calls
    with pytest.raises(fs.errors.ResourceNotFound):
        s3fs.removetree("t")
    with pytest.raises(fs.errors.DirectoryExpected):
        s3fs.removetree("keep.txt")
    s3fs.removetree("/")
    assert s3_bucket.keys() == ["pre/"]


def test_files_have_the_io_attributes_fs_users_expect(s3fs: StreamingS3FS) -> None:
    with s3fs.openbin("a.bin", "wb") as w:
        assert (w.mode, w.name, w.tell()) == ("wb", "/a.bin", 0)
        w.write(b"abc")
        assert w.tell() == 3 and not w.readable() and not w.seekable()
    with s3fs.openbin("a.bin") as r:
        assert (r.mode, r.name) == ("rb", "/a.bin")
        assert r.read() == b"abc"


def test_remove_names_the_path_as_given(s3fs: StreamingS3FS) -> None:
    with pytest.raises(fs.errors.ResourceNotFound, match=r"resource 'no/such\.txt' not found"):
        s3fs.remove("no/such.txt")


def test_dirinfo_remove_file_and_removedir_agree_with_getinfo(
    s3fs: StreamingS3FS, s3_bucket: S3Bucket
) -> None:
    """The one-request shortcuts (VirtualTree's hooks and removedir's single
    LIST) against what getinfo says, directories with and without markers."""
    s3_bucket.put_many(["pre/nomarker/x.txt", "pre/f.txt"])
    s3fs.makedir("marker")
    s3fs.makedir("full")
    s3fs.writebytes("full/y.txt", b"yy")
    for path in ("/", "nomarker", "marker", "full"):
        info = s3fs.dirinfo(path)
        assert info is not None and info.is_dir and info.name == s3fs.getinfo(path).name
    assert s3fs.dirinfo("f.txt") is None
    with pytest.raises(fs.errors.ResourceNotFound):
        s3fs.dirinfo("missing")
    with pytest.raises(fs.errors.FileExpected):
        s3fs.remove_file("full")
    assert s3fs.remove_file("full/y.txt") == 2 and not s3fs.exists("full/y.txt")
    for path, error in [
        ("nomarker", fs.errors.DirectoryNotEmpty),
        ("f.txt", fs.errors.DirectoryExpected),
        ("missing", fs.errors.ResourceNotFound),
        ("f.txt/below", fs.errors.ResourceNotFound),
    ]:
        with pytest.raises(error):
            s3fs.removedir(path)
    s3fs.removedir("marker")
    s3fs.removedir("full")  # its marker was its last object
    assert s3_bucket.keys() == ["pre/f.txt", "pre/nomarker/x.txt"]


@pytest.mark.parametrize("page", [1000, 2], ids=["names-in-one-page", "folder-beyond-a-page"])
def test_makedir_tells_what_takes_the_name(
    s3fs: StreamingS3FS, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    """makedir asks one LIST of the parent what takes the name; a folder
    of more entries than that LIST holds (FACTS_PAGE) is asked by a HEAD
    and a prefix LIST instead. Both ways give the same answers: files,
    folders with and without a marker, a name that only starts another
    one's, a missing parent and a parent that is a file."""
    monkeypatch.setattr("vfsftp.storage.s3.FACTS_PAGE", page)
    s3_bucket.put_many(
        ["pre/d/file", "pre/d/nomarker/x", "pre/d/name.txt", "pre/d/named/y", "pre/f.txt"]
    )
    s3fs.makedir("d/marker")
    taken = ["d/file", "d/nomarker", "d/marker"]
    for path in taken:
        with pytest.raises(fs.errors.DirectoryExists):
            s3fs.makedir(path)
    s3fs.makedir("d/nomarker", recreate=True)
    s3fs.makedir("d/marker", recreate=True)
    with pytest.raises(fs.errors.DirectoryExists):
        s3fs.makedir("d/file", recreate=True)  # a file is no folder to reuse
    for path in ("missing/new", "f.txt/new"):
        with pytest.raises(fs.errors.ResourceNotFound):
            s3fs.makedir(path)
    s3fs.makedir("d/name")  # only "name.txt" and "named/" start with it
    s3fs.makedir("top")
    assert s3fs.isdir("d/name") and s3fs.isdir("top")
    assert s3_bucket.keys() == [
        "pre/d/file",
        "pre/d/marker/",
        "pre/d/name.txt",
        "pre/d/name/",
        "pre/d/named/y",
        "pre/d/nomarker/x",  # (recreate keeps a folder as it is)
        "pre/f.txt",
        "pre/top/",
    ]


@pytest.mark.parametrize("page", [1000, 2], ids=["names-in-one-page", "folder-beyond-a-page"])
def test_move_file_tells_what_it_replaced(
    s3fs: StreamingS3FS, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    """move_file (RNTO's shortcut) with and without the one-LIST answer:
    the bytes and files it replaced, a folder never replaced, a missing
    target folder refused, and None (the general way) for a source that
    is no object."""
    monkeypatch.setattr("vfsftp.storage.s3.FACTS_PAGE", page)
    s3_bucket.put_many(["pre/d/both", "pre/d/both/x", "pre/d/old", "pre/d/dir/x", "pre/d/z"])
    s3_bucket.put("pre/a", b"aaa")
    assert s3fs.move_file("a", "d/old") == (1, 1)  # (put_many's objects hold b"x")
    assert s3fs.readbytes("d/old") == b"aaa" and not s3fs.exists("a")
    assert s3fs.move_file("d/old", "d/new") == (0, 0)
    for folder in ("d/dir", "d/both"):  # ("both" is a file and a folder: as copy())
        with pytest.raises(fs.errors.FileExpected):
            s3fs.move_file("d/new", folder)
    with pytest.raises(fs.errors.ResourceNotFound):
        s3fs.move_file("d/new", "missing/new")
    assert s3fs.move_file("d/new", "d/new") == (0, 0)  # onto itself: kept
    assert s3fs.move_file("d/dir", "d/elsewhere") is None  # a folder
    assert s3fs.move_file("nothing", "d/elsewhere") is None
    assert s3_bucket.keys() == ["pre/d/both", "pre/d/both/x", "pre/d/dir/x", "pre/d/new", "pre/d/z"]
    assert s3fs.readbytes("d/new") == b"aaa"


def test_fs_s3fs_own_uploads_carry_the_settings(s3_bucket: S3Bucket) -> None:
    """openbin's append mode is fs-s3fs's spooled upload (the FTP server
    never takes it): it sends the mount's settings as S3Writer does."""
    options = S3Options(
        endpoint_url=s3_bucket.endpoint,
        region="us-east-1",
        server_side_encryption="AES256",
        storage_class="STANDARD_IA",
    )
    with StreamingS3FS(s3_bucket.name, dir_path="/pre", options=options) as s3fs:
        with s3fs.openbin("log.txt", "a") as f:
            f.write(b"one\n")
        with s3fs.openbin("log.txt", "a") as f:
            f.write(b"two\n")
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="pre/log.txt")
    assert s3_bucket.get("pre/log.txt") == b"one\ntwo\n"
    assert head["ContentType"] == "text/plain"
    assert (head["ServerSideEncryption"], head["StorageClass"]) == ("AES256", "STANDARD_IA")


def test_a_file_moved_or_copied_onto_itself_is_kept(s3_bucket: S3Bucket) -> None:
    """With object settings S3 accepts a copy of an object onto itself; the
    move's delete must not then remove the only copy."""
    options = S3Options(
        endpoint_url=s3_bucket.endpoint, region="us-east-1", storage_class="STANDARD_IA"
    )
    with StreamingS3FS(s3_bucket.name, options=options) as s3fs:
        s3fs.writebytes("/a.txt", b"keep me")
        with pytest.raises(fs.errors.DestinationExists):
            s3fs.move("/a.txt", "/a.txt")
        s3fs.move("/a.txt", "/a.txt", overwrite=True)
        s3fs.copy("/a.txt", "/a.txt", overwrite=True)
        assert s3fs.readbytes("/a.txt") == b"keep me"
        with pytest.raises(fs.errors.ResourceNotFound):
            s3fs.move("/missing", "/missing", overwrite=True)


@pytest.fixture
def big_object(s3_bucket: S3Bucket) -> bytes:
    data = os.urandom(3 * MiB)
    s3_bucket.put("big.bin", data)
    return data


def _through(proxy: CuttingProxy, s3_bucket: S3Bucket, **options: Any) -> StreamingS3FS:
    return StreamingS3FS(
        s3_bucket.name,
        options=S3Options(endpoint_url=proxy.endpoint, region="us-east-1", **options),
    )


@pytest.mark.parametrize("cuts", [1, 2])
def test_a_download_that_breaks_off_is_taken_up_where_it_stopped(
    s3_bucket: S3Bucket, big_object: bytes, cuts: int
) -> None:
    proxy = CuttingProxy(s3_bucket.endpoint, cut_at=MiB, cuts=cuts)
    try:
        with _through(proxy, s3_bucket) as s3fs, s3fs.openbin("/big.bin") as f:
            assert isinstance(f, S3Reader)
            got = b"".join(iter(lambda: f.read(256 * 1024), b""))
            assert (f.resumed, proxy.cut) == (cuts, cuts)
    finally:
        proxy.close()
    assert got == big_object


def test_a_file_replaced_while_its_download_broke_off_fails_the_download(
    s3_bucket: S3Bucket, big_object: bytes
) -> None:
    """The second GET asks for the first one's ETag: no file spliced from
    two versions."""
    proxy = CuttingProxy(
        s3_bucket.endpoint, cut_at=MiB, on_cut=lambda: s3_bucket.put("big.bin", b"y" * (3 * MiB))
    )
    try:
        with _through(proxy, s3_bucket) as s3fs, s3fs.openbin("/big.bin") as f:
            with pytest.raises(StorageError, match="replaced during the download") as err:
                while f.read(256 * 1024):
                    pass
            assert err.value.code == 451
    finally:
        proxy.close()


def test_a_download_that_keeps_breaking_off_gives_up(
    s3_bucket: S3Bucket, big_object: bytes
) -> None:
    """Every GET breaks off right after its headers: no progress, and after
    max_attempts GETs in a row the read fails (a GET that moves the file on
    starts the count again: see the test above, cut twice)."""
    proxy = CuttingProxy(s3_bucket.endpoint, cut_at=0, cuts=10)
    try:
        with _through(proxy, s3_bucket, max_attempts=2) as s3fs, s3fs.openbin("/big.bin") as f:
            with pytest.raises(StorageError, match=r"broke off at byte 0 2 times") as err:
                while f.read(256 * 1024):
                    pass
            assert err.value.code == 451
    finally:
        proxy.close()
