"""S3 mounts that stream: ranged GETs for downloads, multipart uploads fed as
data arrives, listings from ListObjectsV2 pages, server-side renames.

Built on fs-s3fs's ``S3FS`` (its URL handling, key mapping and credentials
stay), replacing the parts a gateway cannot use (fs-s3fs 1.1.1):

- ``openbin('r')`` downloaded the whole object to a temporary file before the
  first byte: ``S3Reader`` streams a ranged GET from the current position;
- ``openbin('w')`` spooled to a temporary file and uploaded on close:
  ``S3Writer`` sends parts while data arrives, with bounded memory
  (part size x parts in flight), growing parts so that 10,000 parts reach far
  beyond 48 GiB, one PUT for small files, and nothing visible until
  CompleteMultipartUpload (``discard()`` aborts the upload);
- a prefix written by other tools (aws cli, rclone) had no directory marker
  and was "not found": a prefix with children is a directory;
- ``scandir`` made one HEAD per object: sizes and times now come from the
  listing pages;
- ``copy`` lacked ``preserve_time``, and above 5 GB CopyObject fails: copies
  go through boto3's managed copy (UploadPartCopy for large objects);
- no way to pass a botocore ``Config``: addressing style, checksums
  ("when_required" for S3-compatible stores), timeouts and retries are
  options;
- objects' settings: every request that creates an object (PutObject,
  CreateMultipartUpload, CopyObject, the directory marker) sends the
  mount's encryption, storage class, ACL and a ContentType guessed from the
  name (``S3Options.object_args``).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import functools
import io
import logging
import mimetypes
import threading
from collections.abc import Callable, Collection, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
import botocore.utils
import fs.errors
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from fs.base import FS
from fs.enums import ResourceType
from fs.info import Info
from fs.path import basename, dirname, normpath, relpath
from fs.subfs import SubFS
from fs_s3fs import S3FS

from ..protocol.hashes import HEX_DIGITS
from .digests import HashSource
from .errors import NameTaken, StorageError
from .threads import ThreadPool
from .tree import StatRow

__all__ = [
    "SHA256_METADATA",
    "FolderFacts",
    "S3Options",
    "S3Reader",
    "S3Writer",
    "StreamingS3FS",
    "guess_content_type",
    "open_s3",
    "stored_checksums",
]

log = logging.getLogger("vfsftp.session")

MiB = 1024 * 1024
MAX_PARTS = 10_000
MIN_PART = 5 * MiB  # S3's minimum for every part but the last
MAX_PART = 5 * 1024 * MiB
COPY_OBJECT_LIMIT = 5 * 1024 * MiB  # CopyObject's ceiling; above, UploadPartCopy

#: the user metadata (x-amz-meta-vfsftp-sha256) holding an object's SHA-256
#: in lowercase hex, written with the object by uploads through the server
#: (docs/s3.md, "Checksums": why metadata, and when it is there)
SHA256_METADATA = "vfsftp-sha256"

#: S3's own checksums (additional checksums) a HEAD may show, as HASH names
_S3_CHECKSUMS = (
    ("ChecksumSHA256", "SHA-256"),
    ("ChecksumSHA1", "SHA-1"),
    ("ChecksumCRC32", "CRC32"),
)
_HEX = frozenset("0123456789abcdef")


def stored_checksums(head: dict[str, Any]) -> dict[str, str]:
    """The checksums of the whole object a HEAD answer holds, by HASH
    algorithm, in lowercase hex: ours (SHA256_METADATA), and S3's own
    where the object's writer asked for a full-object one (a multipart
    upload's COMPOSITE checksum is a checksum of its parts' checksums,
    not of the data: left out). Malformed values are left out too."""
    out: dict[str, str] = {}
    ours = str((head.get("Metadata") or {}).get(SHA256_METADATA, "")).lower()
    if len(ours) == HEX_DIGITS["SHA-256"] and set(ours) <= _HEX:
        out["SHA-256"] = ours
    if head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return out
    for name, algorithm in _S3_CHECKSUMS:
        value = head.get(name)
        if not value or algorithm in out or "-" in str(value):
            continue
        try:
            raw = base64.b64decode(str(value), validate=True)
        except ValueError:
            continue
        if len(raw) * 2 == HEX_DIGITS[algorithm]:
            out[algorithm] = raw.hex()
    return out


@dataclass(frozen=True)
class S3Options:
    """Per-mount settings (see the README's S3 section)."""

    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str = "auto"  # auto | path | virtual
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    part_size: int = 8 * MiB
    concurrency: int = 4  # parts in flight per upload
    #: "when_required" keeps S3-compatible stores (MinIO, Ceph, R2...) that
    #: reject the newer default CRC checksums working
    checksum: str = "when_required"
    allow_dir_rename: bool = False
    #: REST+STOR and APPE rewrite the object; allowed up to this size (0: refuse)
    rewrite_max_size: int = 0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    # New objects' settings: S3 gives a copy none of its source's.
    server_side_encryption: str | None = None  # AES256 | aws:kms | aws:kms:dsse
    sse_kms_key_id: str | None = None  # with aws:kms(:dsse); else the account's aws/s3 key
    storage_class: str | None = None
    acl: str | None = None  # a canned ACL
    content_type: str = "guess"  # guess (from the name) | none (the store decides)
    #: seconds a session trusts what one LIST told it of a folder (that it
    #: is there, its subfolders' names) for the STORs into it (FolderFacts)
    folder_trust: float = 5.0

    def object_args(self, key: str | None) -> dict[str, str]:
        """The arguments of every request that creates an object. With
        ``key`` the ContentType is guessed from it; a copy passes None and
        keeps its source's."""
        args: dict[str, str] = {}
        if key is not None and self.content_type == "guess":
            args["ContentType"] = guess_content_type(key)
        if self.server_side_encryption is not None:
            args["ServerSideEncryption"] = self.server_side_encryption
        if self.sse_kms_key_id is not None:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.storage_class is not None:
            args["StorageClass"] = self.storage_class
        if self.acl is not None:
            args["ACL"] = self.acl
        return args


def guess_content_type(key: str) -> str:
    """From the name's extension, else application/octet-stream. A
    compressed name (x.tar.gz) is octet-stream too: its guessed type is the
    uncompressed data's, and HTTP clients would decompress a Content-Encoding."""
    kind, encoding = mimetypes.guess_type(key.rsplit("/", 1)[-1])
    return kind if kind and not encoding else "application/octet-stream"


@functools.cache
def part_size_for(part_number: int, base: int) -> int:
    """Part size for 1-based ``part_number``: ``base`` for the first 1,000
    parts, doubling every 1,000 after, capped at 5 GiB. With 8 MiB parts the
    10,000 parts hold about 8 TB, more than S3's 5 TB object limit."""
    size: int = base * (2 ** ((part_number - 1) // 1000))
    return min(max(size, MIN_PART), MAX_PART)


_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


_UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)


def _failed(reason: str, code: int) -> StorageError:
    """The store failed or refused: worth a line in the server's log."""
    return StorageError(reason, code, failure=True, backend="s3")


@contextlib.contextmanager
def s3_errors(path: str) -> Iterator[None]:
    """botocore errors → fs.errors, so the one FTP error map applies. What
    the store refuses or cannot do is a StorageError marked ``failure``:
    the session logs it (the mount and the cause) besides the reply."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404", "NotFound") or (status == 404 and code != "NoSuchBucket"):
            raise fs.errors.ResourceNotFound(path, exc=exc) from exc
        if code == "NoSuchBucket":
            raise _failed(f"S3 bucket does not exist ({code})", 550) from exc
        if code in _DENIED or status == 403:
            raise _failed(f"S3 access denied ({code or status})", 550) from exc
        raise _failed(f"S3 error {code or status}", 451) from exc
    except _UNREACHABLE as exc:
        raise _failed("S3 endpoint unreachable or timed out", 451) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise _failed("no S3 credentials configured", 550) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise _failed(f"S3 client error: {type(exc).__name__}", 451) from exc


def _status(exc: StorageError) -> int | None:
    """The HTTP status of the S3 answer behind an error of s3_errors."""
    cause = exc.__cause__
    if isinstance(cause, botocore.exceptions.ClientError):
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _dir_info(name: str, modified: float | None = None) -> Info:
    return Info(
        {
            "basic": {"name": name, "is_dir": True},
            "details": {"type": int(ResourceType.directory), "size": 0, "modified": modified},
        }
    )


def _file_info(name: str, size: int, modified: float | None) -> Info:
    return Info(
        {
            "basic": {"name": name, "is_dir": False},
            "details": {"type": int(ResourceType.file), "size": size, "modified": modified},
        }
    )


def _page_rows(page: dict[str, Any], prefix: str) -> tuple[list[StatRow], bool]:
    """The rows of one ListObjectsV2 page of the folder ``prefix`` (its
    subfolders first), and whether it held any key at all (the folder's
    own marker counts, but is no row). A key "x" and keys below "x/" can
    coexist in S3: the name is then listed both ways, without a HEAD."""
    rows: list[StatRow] = []
    found_any = False
    for cp in page.get("CommonPrefixes", ()):
        found_any = True
        name = cp["Prefix"][len(prefix) :].rstrip("/")
        if name:
            rows.append((name, True, 0, None, 0, 0))
    for obj in page.get("Contents", ()):
        found_any = True
        name = obj["Key"][len(prefix) :]
        if name:  # (else the directory's own marker)
            rows.append(
                (name, False, int(obj.get("Size", 0)), _epoch(obj.get("LastModified")), 0, 0)
            )
    return rows, found_any


#: keys one folder_facts LIST asks for: a folder with more entries is
#: known to be there, its subfolders are not (each STOR then asks)
FACTS_PAGE = 1000


@dataclass(frozen=True)
class FolderFacts:
    """What one LIST told of a folder: that it is there and, when every
    entry fit in the one page, the names of its subfolders and of its
    files (else None); ``trust``: for how many seconds a session may go by
    it (the mount's folder_trust)."""

    subfolders: frozenset[str] | None
    trust: float
    files: frozenset[str] | None = None


def _rows_from(
    first: list[StatRow], pages: Generator[dict[str, Any], None, None], prefix: str
) -> Generator[StatRow, None, None]:
    try:
        yield from first
        del first[:]  # (one page held at a time)
        for page in pages:
            yield from _page_rows(page, prefix)[0]
    finally:
        pages.close()


@contextlib.contextmanager
def _client_errors() -> Iterator[None]:
    # botocore checks endpoint and region when it makes a client, with a
    # ValueError (mounts.yaml's checks should have caught them first).
    try:
        yield
    except (ValueError, botocore.exceptions.BotoCoreError) as exc:
        raise _failed(f"cannot make the S3 client: {exc}", 451) from exc


def parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, fast for the two forms S3 sends: ISO 8601
    in UTC in XML bodies (``2026-12-06T19:43:01.000Z``, each entry of a
    listing page) and RFC 1123 in headers (``Sun, 06 Dec 2026 19:43:01 GMT``,
    HEAD and GET). botocore parses both with dateutil's general parser, which
    took 60% of the CPU of a 50-entry ListObjectsV2 call, GIL held (10.2 ms
    per call, now 4.4: benchmarks/RESULTS.md). Any other form, and a time
    without a zone, goes to botocore's own parser."""
    if isinstance(value, str):
        try:
            if value.endswith("Z"):
                return datetime.fromisoformat(value[:-1]).replace(tzinfo=timezone.utc)
            parsed = email.utils.parsedate_to_datetime(value)
            if parsed.tzinfo is not None:
                return parsed
        except (TypeError, ValueError):  # (3.10's email.utils raises TypeError)
            pass
    parsed = botocore.utils.parse_timestamp(value)
    assert isinstance(parsed, datetime)
    return parsed


#: PUT bodies from this size on wait for ``100 Continue`` before they are
#: sent; smaller ones go at once (see _expect_continue_when_large)
EXPECT_CONTINUE_MIN = 2 * 1024 * 1024


def _expect_continue_when_large(params: dict[str, Any], **kwargs: Any) -> None:
    """botocore has every S3 PUT whose body is a file object (PutObject's
    and UploadPart's bytes are made one) send ``Expect: 100-continue`` and
    wait for the server's ``100 Continue`` before the body
    (``handlers.add_expect_header``): one more round trip. The
    expectation only lets the server refuse before the content is sent
    (RFC 9110 §10.1.1), worth it where a refusal (a wrong region, a failed
    condition) would waste a large body; a small upload or folder marker
    paid two round trips instead of one. As AWS's Go v2 and Kotlin SDKs do
    by default (``ContinueHeaderThresholdBytes``, 2 MB), a body below
    EXPECT_CONTINUE_MIN goes with its headers."""
    headers = params.get("headers")
    if headers and "Expect" in headers:
        length = botocore.utils.determine_content_length(params.get("body"))
        if length is not None and length < EXPECT_CONTINUE_MIN:
            del headers["Expect"]


_SESSION_LOCK = threading.Lock()
_SESSION: Any = None


def _boto_session() -> Any:
    """One boto3 session for every S3 filesystem (call with _SESSION_LOCK
    held: sessions are not thread-safe). A new session parses botocore's S3
    model again, ~12 MiB kept and ~0.15 s of CPU per client; per-user
    mounts (``${user}``) open a filesystem for each user who logs in."""
    global _SESSION
    if _SESSION is None:
        core = botocore.session.get_session()
        # ResponseParserFactory.set_parser_defaults is botocore's documented
        # way to swap the parser (the AWS CLI keeps timestamps raw with it).
        factory = core.get_component("response_parser_factory")
        factory.set_parser_defaults(timestamp_parser=parse_timestamp)
        # After botocore's own handler of the same event, which adds it.
        core.get_component("event_emitter").register_last(
            "before-call.s3", _expect_continue_when_large
        )
        _SESSION = boto3.session.Session(botocore_session=core)
    return _SESSION


class StreamingS3FS(S3FS):  # type: ignore[misc]
    """An S3 bucket (or a prefix of one) as a filesystem that streams."""

    def __init__(self, bucket: str, dir_path: str = "/", options: S3Options | None = None) -> None:
        self.options = options or S3Options()
        o = self.options
        super().__init__(
            bucket,
            dir_path=dir_path,
            aws_access_key_id=o.access_key_id,
            aws_secret_access_key=o.secret_access_key,
            aws_session_token=o.session_token,
            endpoint_url=o.endpoint_url,
            region=o.region,
            strict=False,
        )
        self._client_lock = threading.Lock()
        self._shared_client: Any = None
        self._client_hooks: list[Callable[[Any], None]] = []
        self._part_pool: ThreadPool | None = None

    # ------------------------------------------------------------ client

    @property
    def client(self) -> Any:
        """One client for every thread: boto3 clients are thread-safe, and
        building one costs tens of milliseconds."""
        if self._shared_client is None:
            with self._client_lock:
                if self._shared_client is None:
                    o = self.options
                    config = BotoConfig(
                        s3={"addressing_style": o.addressing_style},
                        request_checksum_calculation=o.checksum,
                        response_checksum_validation=o.checksum,
                        connect_timeout=o.connect_timeout,
                        read_timeout=o.read_timeout,
                        retries={"max_attempts": o.max_attempts, "mode": "standard"},
                        max_pool_connections=max(32, o.concurrency * 8),
                    )
                    # Credentials and region go to the client: the session
                    # is shared (see _boto_session).
                    with _SESSION_LOCK, _client_errors():
                        self._shared_client = _boto_session().client(
                            "s3",
                            endpoint_url=o.endpoint_url,
                            region_name=o.region,
                            aws_access_key_id=o.access_key_id,
                            aws_secret_access_key=o.secret_access_key,
                            aws_session_token=o.session_token,
                            config=config,
                        )
                    for hook in self._client_hooks:
                        hook(self._shared_client)
        return self._shared_client

    def warm_up(self) -> None:
        """Make the client and load the models its first listing loads
        (no request is sent): see MountTable.warm_up."""
        self.client.get_paginator("list_objects_v2")

    def add_client_hook(self, hook: Callable[[Any], None]) -> None:
        """Call ``hook(client)`` on the boto3 client, now or when it is
        made (the metrics register botocore event handlers this way)."""
        with self._client_lock:
            self._client_hooks.append(hook)
            client = self._shared_client
        if client is not None:
            hook(client)

    @property
    def part_pool(self) -> ThreadPool:
        """The threads that send multipart uploads' parts. Those idle for
        ``storage.threads.IDLE_TIMEOUT`` end, as the server's own: each
        keeps the stack pages botocore's requests touched, for the process's
        life otherwise."""
        with self._client_lock:
            if self._part_pool is None:
                self._part_pool = ThreadPool(max(4, self.options.concurrency * 4), "vfsftp-s3part")
            return self._part_pool

    @property
    def bucket(self) -> str:
        return str(self._bucket_name)

    def key(self, path: str) -> str:
        return str(self._path_to_key(path))

    def dir_key(self, path: str) -> str:
        key = str(self._path_to_dir_key(path))
        return "" if key == "/" else key

    def _get_upload_args(self, key: str) -> dict[str, str]:
        # fs-s3fs's own uploads (openbin's append and read/write modes).
        return self.options.object_args(key)

    # ------------------------------------------------------------ reading

    def _head(self, path: str) -> dict[str, Any] | None:
        key = self.key(path)
        if not key:
            return None
        try:
            with s3_errors(path):
                return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except fs.errors.ResourceNotFound:
            return None

    def _is_prefix(self, path: str) -> bool:
        """A directory is a marker object or any key below the prefix."""
        with s3_errors(path):
            resp = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.dir_key(path), MaxKeys=1
            )
        return int(resp.get("KeyCount", 0)) > 0

    def getinfo(self, path: str, namespaces: Collection[str] | None = None) -> Info:
        self.check()
        _path = self.validatepath(path)
        name = basename(_path)
        if _path == "/":
            return _dir_info("")
        head = self._head(_path)
        if head is not None:
            return _file_info(
                name, int(head.get("ContentLength", 0)), _epoch(head.get("LastModified"))
            )
        if self._is_prefix(_path):
            return _dir_info(name)
        raise fs.errors.ResourceNotFound(path)

    def isdir(self, path: str) -> bool:
        """One LIST (a marker or any key below the prefix, as listings show
        it): getinfo's HEAD first would make every directory cost two."""
        self.check()
        _path = self.validatepath(path)
        return _path == "/" or self._is_prefix(_path)

    def dirinfo(self, path: str, namespaces: Collection[str] | None = None) -> Info | None:
        """VirtualTree.dirinfo: a directory's Info after one LIST; a file
        (None) or nothing (ResourceNotFound) costs the getinfo after it."""
        if self.isdir(path):
            return _dir_info(basename(self.validatepath(path)))
        self.getinfo(path)
        return None

    def fileinfo(self, path: str) -> Info:
        """getinfo of what is known not to be a folder: the HEAD alone
        (getinfo asks for a folder with a LIST when no object is there)."""
        self.check()
        _path = self.validatepath(path)
        head = self._head(_path)
        if head is None:
            raise fs.errors.ResourceNotFound(path)
        return _file_info(
            basename(_path), int(head.get("ContentLength", 0)), _epoch(head.get("LastModified"))
        )

    def folder_facts(self, path: str) -> FolderFacts | None:
        """One LIST of the folder ``path`` (the first FACTS_PAGE entries):
        None when no folder is there (nothing, or a file), else what a STOR
        into it needs to know. A session keeps the answer for
        ``folder_trust`` seconds (SessionFS.begin_upload)."""
        self.check()
        _path = self.validatepath(path)
        prefix = self.dir_key(_path)
        with s3_errors(path):
            page = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/", MaxKeys=FACTS_PAGE
            )
        rows, found_any = _page_rows(page, prefix)
        if not found_any and _path != "/":
            return None
        trust = self.options.folder_trust
        if page.get("IsTruncated"):
            return FolderFacts(None, trust)
        return FolderFacts(
            frozenset(name for name, is_dir, *_ in rows if is_dir),
            trust,
            frozenset(name for name, is_dir, *_ in rows if not is_dir),
        )

    def new_folder_facts(self) -> FolderFacts:
        """The facts of a folder just made (SessionFS.mkdir): empty."""
        return FolderFacts(frozenset(), self.options.folder_trust, frozenset())

    def exists(self, path: str) -> bool:
        try:
            self.getinfo(path)
        except fs.errors.ResourceNotFound:
            return False
        return True

    def scandir(
        self,
        path: str,
        namespaces: Collection[str] | None = None,
        page: tuple[int, int] | None = None,
    ) -> Iterator[Info]:
        """One ListObjectsV2 request per 1,000 entries; sizes and times come
        with the listing (no HEAD per object)."""
        entries = [
            _dir_info(name, mtime) if is_dir else _file_info(name, size, mtime)
            for name, is_dir, size, mtime, _, _ in self.iter_rows(path)
        ]
        if page is not None:
            entries = entries[page[0] : page[1]]
        return iter(entries)

    def iter_rows(self, path: str) -> Iterator[StatRow]:
        """A directory's entries as rows (tree.StatRow), one ListObjectsV2
        page at a time: the first page is requested now (a directory that
        is not there, or a file, raises here, before any listing goes out),
        each next one only when the rows before it have been taken, so a
        listing holds one page and asks for no more once its reader stops
        (a client gone, ABOR) and closes the iterator."""
        self.check()
        _path = self.validatepath(path)
        prefix = self.dir_key(_path)
        pages = self._list_pages(prefix, path)
        try:
            for page in pages:
                rows, found_any = _page_rows(page, prefix)
                if found_any:  # (else a page without keys: it may not be the last)
                    return _rows_from(rows, pages, prefix)
        except BaseException:
            pages.close()
            raise
        if _path != "/":
            info = self.getinfo(_path)  # raises ResourceNotFound
            if not info.is_dir:
                raise fs.errors.DirectoryExpected(path)
        return iter(())

    def _list_pages(self, prefix: str, path: str) -> Generator[dict[str, Any], None, None]:
        """The ListObjectsV2 pages of the folder ``prefix``, each requested
        when the one before has been taken."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"))
        while True:
            with s3_errors(path):
                page = next(pages, None)
            if page is None:
                return
            yield page

    def listdir(self, path: str) -> list[str]:
        return [info.name for info in self.scandir(path)]

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> Any:
        self.check()
        _path = self.validatepath(path)
        if mode in ("r", "rb"):
            info = self.getinfo(_path)
            if info.is_dir:
                raise fs.errors.FileExpected(path)
            return S3Reader(self, _path, int(info.size))
        if mode in ("w", "wb", "x", "xb"):
            if self.isdir(_path):
                raise fs.errors.FileExpected(path)
            if "x" in mode and self.exists(_path):
                raise fs.errors.FileExists(path)
            if not self.isdir(dirname(_path)):
                raise fs.errors.ResourceNotFound(path)
            return S3Writer(self, _path)
        # Appending and read/write modes: fs-s3fs's spool-to-temp-file path,
        # for generic fs users. The FTP server never takes it: APPE and
        # REST+STOR come through open_atomic_upload below.
        return super().openbin(path, mode, buffering, **options)

    def open_read(self, path: str, offset: int = 0) -> tuple[S3Reader, int] | None:
        """RETR in one request: a GET from ``offset`` whose response tells the
        size, instead of a HEAD, then the GET. None when there is no such
        object (a directory, a missing file) or ``offset`` is past its end:
        the caller takes the generic way, which raises the exact error."""
        self.check()
        _path = self.validatepath(path)
        key = self.key(_path)
        if not key:
            return None
        # No Range from 0: S3 answers 416 to any range of an empty object.
        args = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with s3_errors(path):
                resp = self.client.get_object(Bucket=self.bucket, Key=key, **args)
        except fs.errors.ResourceNotFound:
            return None
        except StorageError as exc:
            if _status(exc) == 416:
                return None
            raise
        if offset:  # "bytes 100-999/1000"
            size = int(str(resp["ContentRange"]).rsplit("/", 1)[1])
        else:
            size = int(resp["ContentLength"])
        reader = S3Reader(self, _path, size, pos=offset, body=resp["Body"], etag=resp.get("ETag"))
        return reader, size

    def hash_source(self, path: str) -> HashSource:
        """The object as a hash reads it (storage.digests): one HEAD tells
        its size, its ETag (the version token, and the If-Match of the GET
        a read then makes, so that a replaced object fails the hash rather
        than mixing two) and the checksums kept with it (stored_checksums).
        Nothing is downloaded unless the hash has to be computed."""
        self.check()
        _path = self.validatepath(path)
        key = self.key(_path)
        if not key:
            raise fs.errors.FileExpected(path)
        try:
            with s3_errors(path):
                head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except fs.errors.ResourceNotFound:
            if self._is_prefix(_path):
                raise fs.errors.FileExpected(path) from None
            raise
        size = int(head.get("ContentLength", 0))
        etag = str(head.get("ETag") or "") or None
        readers: list[S3Reader] = []

        def opener(start: int, stop: int) -> S3Reader:
            # (a GET of the range only: its end is the reader's end)
            reader = S3Reader(self, _path, stop, pos=start, etag=etag)
            readers.append(reader)
            return reader

        def closer() -> None:
            for reader in readers:
                reader.close()

        return HashSource(
            size,
            self.version_token(key, etag, size) if etag else None,
            stored=stored_checksums(head),
            opener=opener,
            closer=closer,
        )

    def version_token(self, key: str, etag: str, size: int) -> tuple[object, ...]:
        """Names one version of an object (storage.digests): its ETag."""
        return ("s3", self.options.endpoint_url or "", self.bucket, key, etag, size)

    def download(self, path: str, file: Any, chunk_size: int | None = None, **options: Any) -> None:
        with self.openbin(path) as f:
            while True:
                chunk = f.read(chunk_size or 1 << 20)
                if not chunk:
                    break
                file.write(chunk)

    def readbytes(self, path: str) -> bytes:
        with self.openbin(path) as f:
            return bytes(f.read())

    # fs-s3fs's upload()/writebytes() call boto3's upload_fileobj: with
    # strict=False no check that the parent directory exists, its error map
    # instead of s3_errors, and upload_fileobj closes the caller's file. The
    # base FS versions go through openbin('wb'), i.e. S3Writer.
    def upload(self, path: str, file: Any, chunk_size: int | None = None, **options: Any) -> None:
        FS.upload(self, path, file, chunk_size=chunk_size, **options)

    def writebytes(self, path: str, contents: bytes) -> None:
        FS.writebytes(self, path, contents)

    # ------------------------------------------------------------ writing

    def open_atomic_upload(self, path: str, offset: int = 0, append: bool = False) -> S3Writer:
        """The FTP upload path: the object appears only on ``commit()``.
        S3 objects cannot be appended to; APPE and REST+STOR rewrite the
        object, and only up to ``rewrite_max_size``."""
        _path = self.validatepath(path)
        keep = self.check_atomic_upload(_path, offset, append)
        writer = S3Writer(self, _path)
        if keep:
            try:
                with S3Reader(self, _path, keep) as src:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        writer.write(chunk)
            except BaseException:
                writer.discard()
                raise
        return writer

    def check_atomic_upload(self, path: str, offset: int = 0, append: bool = False) -> int:
        """Refuse early (before the 150 reply) what open_atomic_upload would
        refuse; returns how many bytes of the existing object it keeps."""
        _path = self.validatepath(path)
        keep = 0
        if offset or append:
            head = self._head(_path)
            size = int(head.get("ContentLength", 0)) if head else 0
            if head is None and offset:
                raise fs.errors.ResourceNotFound(path)
            keep = offset if offset else size
            if keep > size:
                raise StorageError(f"restart offset {offset} is beyond the object's size {size}")
            limit = self.options.rewrite_max_size
            if keep and (limit <= 0 or size > limit):
                what = "APPE" if append else "REST+STOR"
                raise StorageError(
                    f"{what} would rewrite an S3 object (objects cannot be appended to); "
                    + (
                        "not enabled on this mount (rewrite_max_size)"
                        if limit <= 0
                        else f"object is larger than rewrite_max_size ({limit} bytes)"
                    )
                )
        return keep

    def makedir(self, path: str, permissions: Any = None, recreate: bool = False) -> SubFS[Any]:
        self.check()
        _path = self.validatepath(path)
        if _path == "/":
            if recreate:
                return SubFS(self, _path)
            raise fs.errors.DirectoryExists(path)
        # One LIST of the parent (with "/" as delimiter) tells that it is a
        # folder and, when its entries fit in the page, whether the name is
        # taken, and by what: a HEAD and a prefix LIST are left for folders
        # of more than FACTS_PAGE entries (4 requests became 2).
        facts = self.folder_facts(dirname(_path))
        if facts is None:
            raise fs.errors.ResourceNotFound(path)
        name = basename(_path)
        if facts.subfolders is not None and facts.files is not None:
            is_dir, taken = name in facts.subfolders, name in facts.subfolders | facts.files
        else:
            is_dir = self._is_prefix(_path)
            taken = is_dir or self._head(_path) is not None
        if taken:
            if recreate and is_dir:
                return SubFS(self, _path)
            raise fs.errors.DirectoryExists(path)
        key = self.dir_key(_path)
        with s3_errors(path):
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=b"", **self.options.object_args(key)
            )
        return SubFS(self, _path)

    def remove(self, path: str) -> None:
        self.remove_file(path)

    def remove_file(self, path: str) -> int:
        """Remove a file and tell its size (VirtualTree.remove_file): a HEAD
        (a LIST too when it finds nothing: FileExpected or not found) and
        the DELETE, which alone would succeed on a missing key."""
        self.check()
        _path = self.validatepath(path)
        info = self.getinfo(path)  # its ResourceNotFound names the path as given
        if info.is_dir:
            raise fs.errors.FileExpected(path)
        with s3_errors(path):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(_path))
        return int(info.size)

    def removedir(self, path: str) -> None:
        self.check()
        _path = self.validatepath(path)
        if _path == "/":
            raise fs.errors.RemoveRootError(path)
        marker = self.dir_key(_path)
        # One LIST tells all: no key below the prefix is no directory (then
        # getinfo tells a file from nothing), a key other than the marker
        # is a child.
        with s3_errors(path):
            resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=marker, MaxKeys=2)
        keys = [obj["Key"] for obj in resp.get("Contents", ())]
        if not keys:
            self.getinfo(path)  # raises ResourceNotFound
            raise fs.errors.DirectoryExpected(path)
        if keys != [marker]:
            raise fs.errors.DirectoryNotEmpty(path)
        with s3_errors(path):
            self.client.delete_object(Bucket=self.bucket, Key=marker)

    def removetree(self, dir_path: str) -> None:
        """Every object below the prefix, 1,000 per DeleteObjects request.
        The generic walk-then-removedir fails on a directory without a
        marker (written by another tool): it vanishes with its last object,
        and removedir then finds nothing to remove. That broke directory
        renames (allow_dir_rename) and moves from S3 to another mount."""
        self.check()
        _path = self.validatepath(dir_path)
        if not self.getinfo(dir_path).is_dir:
            raise fs.errors.DirectoryExpected(dir_path)
        prefix = self.dir_key(_path)
        paginator = self.client.get_paginator("list_objects_v2")
        with s3_errors(dir_path):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                # The root's own marker (a mount on a prefix) stays.
                keys = [
                    {"Key": o["Key"]}
                    for o in page.get("Contents", ())
                    if _path != "/" or o["Key"] != prefix
                ]
                if not keys:
                    continue
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                failed = resp.get("Errors") or []
                if failed:
                    code = str(failed[0].get("Code", "error"))
                    raise StorageError(
                        f"S3 could not delete {len(failed)} object(s) ({code})",
                        550 if code == "AccessDenied" else 451,
                    )

    def setinfo(self, path: str, info: Any) -> None:
        self.getinfo(path)
        if "details" in info and info["details"].get("modified") is not None:
            # S3 sets LastModified itself; rewriting the object to fake it
            # would change the data's identity (ETag) for a timestamp.
            raise StorageError("S3 objects cannot have their modification time set")

    def copy(
        self, src_path: str, dst_path: str, overwrite: bool = False, preserve_time: bool = False
    ) -> None:
        self.check()
        src = self.validatepath(src_path)
        dst = self.validatepath(dst_path)
        head = self._head(src)
        if head is None:
            if self.isdir(src):
                raise fs.errors.FileExpected(src_path)
            raise fs.errors.ResourceNotFound(src_path)
        if not overwrite and self.exists(dst):
            raise fs.errors.DestinationExists(dst_path)
        if self.isdir(dst):
            raise fs.errors.FileExpected(dst_path)
        # (The source's key proves its own directory: a rename within one
        # directory, the usual case, needs no LIST for it.)
        if dirname(dst) != dirname(src) and not self.isdir(dirname(dst)):
            raise fs.errors.ResourceNotFound(dst_path)
        if src == dst:
            return  # onto itself (with overwrite): nothing to copy
        self._copy_object(src, dst, head, src_path)

    def _copy_object(self, src: str, dst: str, head: dict[str, Any], src_path: str) -> None:
        """The copy itself, in the store: ``head`` is the source's HEAD."""
        source = {"Bucket": self.bucket, "Key": self.key(src)}
        size = int(head.get("ContentLength", 0))
        # CopyObject keeps the source's ContentType (MetadataDirective COPY).
        args: dict[str, Any] = dict(self.options.object_args(None))
        with s3_errors(src_path):
            if size <= COPY_OBJECT_LIMIT:
                self.client.copy_object(
                    Bucket=self.bucket, Key=self.key(dst), CopySource=source, **args
                )
            else:
                # boto3's managed copy: UploadPartCopy, parts copied in the
                # store, never through this process. CreateMultipartUpload
                # copies no metadata: older s3transfer releases sent it
                # without the source's ContentType (boto/s3transfer#392).
                if "ContentType" in head:
                    args["ContentType"] = str(head["ContentType"])
                if head.get("Metadata"):
                    # (the checksum kept with the object, among others)
                    args["Metadata"] = dict(head["Metadata"])
                chunk = max(part_size_for(1, self.options.part_size), -(-size // MAX_PARTS))
                self.client.copy(
                    source,
                    self.bucket,
                    self.key(dst),
                    ExtraArgs=args,
                    Config=TransferConfig(
                        multipart_threshold=COPY_OBJECT_LIMIT,
                        multipart_chunksize=chunk,
                        max_concurrency=self.options.concurrency,
                    ),
                )

    def move(
        self, src_path: str, dst_path: str, overwrite: bool = False, preserve_time: bool = False
    ) -> None:
        """A server-side copy then a delete: the data never passes through
        the gateway."""
        self.copy(src_path, dst_path, overwrite=overwrite)
        src = self.validatepath(src_path)
        if src == self.validatepath(dst_path):
            return  # onto itself: the delete would remove the only copy
        with s3_errors(src_path):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(src))

    def move_file(self, src_path: str, dst_path: str) -> tuple[int, int] | None:
        """VirtualTree.move_file (RNTO): move the file ``src_path`` onto
        ``dst_path``, replacing a file there, never a folder; the (bytes,
        files) replaced. None when no object is at ``src_path`` (a folder,
        or nothing: the general way tells which). A HEAD of the source, one
        LIST of the target's folder (it is there; what has the name), a
        HEAD of the target only when a file has the name, the copy and the
        delete: move() asks 6 before its copy and delete."""
        self.check()
        src = self.validatepath(src_path)
        dst = self.validatepath(dst_path)
        head = self._head(src)
        if head is None:
            return None
        facts = self.folder_facts(dirname(dst))
        if facts is None:
            raise fs.errors.ResourceNotFound(dst_path)
        name = basename(dst)
        # (a name that is a file and a folder at once is refused, as copy()
        # refuses it: a folder is never replaced)
        if facts.subfolders is not None and facts.files is not None:
            if name in facts.subfolders:
                raise fs.errors.FileExpected(dst_path)
            old = self._head(dst) if name in facts.files else None
        else:
            if self._is_prefix(dst):
                raise fs.errors.FileExpected(dst_path)
            old = self._head(dst)
        if src == dst:
            return (0, 0)  # onto itself: nothing to copy, nothing replaced
        self._copy_object(src, dst, head, src_path)
        with s3_errors(src_path):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(src))
        return (int(old.get("ContentLength", 0)), 1) if old is not None else (0, 0)

    def movedir(
        self, src_path: str, dst_path: str, create: bool = False, preserve_time: bool = False
    ) -> None:
        if not self.options.allow_dir_rename:
            raise StorageError(
                "renaming a directory on S3 copies every object below it; "
                "enable allow_dir_rename on this mount to allow it"
            )
        super().movedir(src_path, dst_path, create=create)

    def copydir(
        self, src_path: str, dst_path: str, create: bool = False, preserve_time: bool = False
    ) -> None:
        # fs-s3fs's copy() has no preserve_time, which fs.base passes on.
        import fs.copy

        if not create and not self.exists(dst_path):
            raise fs.errors.ResourceNotFound(dst_path)
        if not self.getinfo(src_path).is_dir:
            raise fs.errors.DirectoryExpected(src_path)
        fs.copy.copy_dir(self, src_path, self, dst_path)

    def close(self) -> None:
        if self._part_pool is not None:
            self._part_pool.shutdown(wait=True)
        if self._shared_client is not None:
            # Its pooled keep-alive connections would otherwise stay open
            # until the garbage collector finds the client.
            with contextlib.suppress(Exception):
                self._shared_client.close()
        super().close()


#: A GET's body broke off while it was being read: what a dropped or reset
#: connection, or a read timeout, raises from StreamingBody.read.
_BROKEN_BODY = (
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    ConnectionError,
)


class S3Reader(io.RawIOBase):
    """A ranged GET from the current position, opened at the first read and
    again after a seek; bytes arrive as S3 sends them.

    A body that breaks off (S3 resets long downloads now and then) is taken
    up where it stopped with a new ranged GET, up to ``max_attempts`` times
    in a row without progress. Every GET after the first carries the first
    one's ETag (If-Match): a file replaced meanwhile fails the download
    instead of splicing two versions together."""

    def __init__(
        self,
        s3fs: StreamingS3FS,
        path: str,
        size: int,
        *,
        pos: int = 0,
        body: Any = None,
        etag: str | None = None,
    ) -> None:
        """``body``: a GET already under way from ``pos`` (open_read)."""
        super().__init__()
        self.fs = s3fs
        self.path = path
        self.size = size
        self.pos = pos
        self._body: Any = body
        self._etag = etag
        self.resumed = 0  # GETs that took up a broken body
        self.name = path
        self.mode = "rb"  # what fs users (and fs.test) expect of openbin files

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            new = offset
        elif whence == io.SEEK_CUR:
            new = self.pos + offset
        elif whence == io.SEEK_END:
            new = self.size + offset
        else:
            raise ValueError("invalid whence")
        new = max(0, new)
        if new != self.pos:
            self._drop()
            self.pos = new
        return self.pos

    def _drop(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def _open(self) -> None:
        args: dict[str, Any] = {}
        if self._etag is not None:
            args["IfMatch"] = self._etag
        try:
            with s3_errors(self.path):
                resp = self.fs.client.get_object(
                    Bucket=self.fs.bucket,
                    Key=self.fs.key(self.path),
                    Range=f"bytes={self.pos}-{self.size - 1}",
                    **args,
                )
        except StorageError as exc:
            if _status(exc) == 412:
                raise StorageError(
                    "S3 object was replaced during the download", 451
                ) from exc.__cause__
            raise
        if self._etag is None:
            self._etag = resp.get("ETag")
        self._body = resp["Body"]

    def read(self, size: int | None = -1) -> bytes:
        if self.pos >= self.size:
            return b""
        want = None if size is None or size < 0 else min(size, self.size - self.pos)
        failures = 0
        while True:
            if self._body is None:
                self._open()
            try:
                data = self._body.read(want) if want is not None else self._body.read()
                break
            except _BROKEN_BODY as exc:
                self._drop()
                failures += 1
                if failures >= max(1, self.fs.options.max_attempts):
                    raise StorageError(
                        f"S3 download broke off at byte {self.pos} {failures} times"
                        f" ({type(exc).__name__})",
                        451,
                    ) from exc
                self.resumed += 1
                log.info(
                    "%s: S3 download broke off at byte %d (%s); resuming",
                    self.path,
                    self.pos,
                    type(exc).__name__,
                )
            except botocore.exceptions.BotoCoreError:
                with s3_errors(self.path):
                    raise
        self.pos += len(data)
        return bytes(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._drop()
        super().close()


class S3Writer(io.RawIOBase):
    """Streams writes into a multipart upload; ``commit()`` (or ``close()``)
    completes it, ``discard()`` aborts it. Memory is bounded by the part size
    times (parts in flight + 1)."""

    def __init__(self, s3fs: StreamingS3FS, path: str) -> None:
        super().__init__()
        self.fs = s3fs
        self.path = path
        self.key = s3fs.key(path)
        # The part being filled, handed to the upload as a bytearray: never
        # copied into bytes (botocore joins a bytes body with the headers,
        # one more copy per part in flight; a bytearray is sent as is).
        self._buf = bytearray()
        self._fill = 0
        self._upload_id: str | None = None
        self._parts: list[tuple[int, Future[str]]] = []
        self._next_part = 1
        self._done = False
        self.bytes_written = 0
        self.name = path
        self.mode = "wb"
        #: the object's SHA-256, stored with it (SHA256_METADATA) when known
        #: before S3 creates it: at PutObject, or at CreateMultipartUpload
        #: when announced before the data (keep_sha256)
        self.sha256: str | None = None
        self.etag: str | None = None  # of the object, once committed
        #: the PUT only if no object has the name (If-None-Match: *); when
        #: one has, commit raises NameTaken, and may be called again
        self.if_none_match = False

    def keep_sha256(self, hexdigest: str) -> None:
        """Store ``hexdigest`` with the object as its SHA-256, if S3 has not
        been told what to create yet (a multipart upload started without it
        cannot take it any more: S3 fixes metadata when an upload begins)."""
        if self._upload_id is None and not self._done:
            self.sha256 = hexdigest.lower()

    def _metadata(self) -> dict[str, Any]:
        return {"Metadata": {SHA256_METADATA: self.sha256}} if self.sha256 else {}

    @property
    def single_put(self) -> bool:
        """No part has gone out: commit sends the object in one PutObject."""
        return self._upload_id is None

    @property
    def token(self) -> tuple[object, ...] | None:
        """The committed object's version token (storage.digests)."""
        if self.etag is None:
            return None
        return self.fs.version_token(self.key, self.etag, self.bytes_written)

    def tell(self) -> int:
        return self.bytes_written

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self._done:
            raise ValueError("write to a finished upload")
        with memoryview(b) as src:
            data = src.cast("B")
            n = len(data)
            pos = 0
            while pos < n:
                size = part_size_for(self._next_part, self.fs.options.part_size)
                if self._fill == 0 and len(self._buf) != size:
                    # The first part grows with the data (a small file costs
                    # its own size); once a second part is needed the upload
                    # is large, and each part gets its final size at once.
                    self._buf = bytearray(size) if self._next_part > 1 else bytearray()
                take = min(size - self._fill, n - pos)
                self._buf[self._fill : self._fill + take] = data[pos : pos + take]
                self._fill += take
                pos += take
                if self._fill == size:
                    chunk, self._buf, self._fill = self._buf, bytearray(), 0
                    self._send_part(chunk)
        self.bytes_written += n
        return n

    def _pending_bytes(self) -> bytes:
        return bytes(memoryview(self._buf)[: self._fill])

    def _send_part(self, chunk: bytes | bytearray) -> None:
        c = self.fs.client
        if self._upload_id is None:
            with s3_errors(self.path):
                resp = c.create_multipart_upload(
                    Bucket=self.fs.bucket,
                    Key=self.key,
                    **self.fs.options.object_args(self.key),
                    **self._metadata(),
                )
            self._upload_id = str(resp["UploadId"])
        # Bound the parts in flight: wait for the oldest before adding one.
        pending = [f for _, f in self._parts if not f.done()]
        limit = max(1, self.fs.options.concurrency)
        while len(pending) >= limit:
            pending[0].result()
            pending = [f for f in pending if not f.done()]
        for _, f in self._parts:
            if f.done() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]
        number = self._next_part
        self._next_part += 1
        upload_id = self._upload_id

        def upload() -> str:
            with s3_errors(self.path):
                resp = c.upload_part(
                    Bucket=self.fs.bucket,
                    Key=self.key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                )
            return str(resp["ETag"])

        if number > MAX_PARTS:
            raise StorageError("upload exceeds S3's 10,000 parts")
        self._parts.append((number, self.fs.part_pool.submit(upload)))

    def commit(self, check: Callable[[], None] | None = None) -> None:
        """Send what is left and make the object visible, or abort and raise.
        ``check`` runs last before the object appears (PutObject, or
        CompleteMultipartUpload once every part is stored): if it raises,
        the upload is aborted instead."""
        if self._done:
            return
        try:
            c = self.fs.client
            if self._upload_id is None:
                if check is not None:
                    check()
                condition = {"IfNoneMatch": "*"} if self.if_none_match else {}
                try:
                    with s3_errors(self.path):
                        resp = c.put_object(
                            Bucket=self.fs.bucket,
                            Key=self.key,
                            Body=self._pending_bytes(),
                            **self.fs.options.object_args(self.key),
                            **self._metadata(),
                            **condition,
                        )
                except StorageError as exc:
                    if condition and _status(exc) == 412:
                        self.if_none_match = False
                        raise NameTaken(self.path) from exc
                    raise
            else:
                if self._fill or not self._parts:
                    self._send_part(self._pending_bytes())
                self._buf, self._fill = bytearray(), 0
                parts = [{"PartNumber": n, "ETag": f.result()} for n, f in self._parts]
                if check is not None:
                    check()
                with s3_errors(self.path):
                    resp = c.complete_multipart_upload(
                        Bucket=self.fs.bucket,
                        Key=self.key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": parts},
                    )
            self._done = True
            self.etag = str(resp.get("ETag") or "") or None
        except NameTaken:
            raise  # (nothing sent: the caller may commit again)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Abort: no object, no pending multipart upload. Never raises."""
        if self._done:
            return
        self._done = True
        self._buf, self._fill = bytearray(), 0
        for _, f in self._parts:
            f.cancel()
        for _, f in self._parts:
            with contextlib.suppress(BaseException):
                f.result()
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self.fs.client.abort_multipart_upload(
                    Bucket=self.fs.bucket, Key=self.key, UploadId=self._upload_id
                )

    def close(self) -> None:
        if not self.closed:
            try:
                self.commit()
            finally:
                super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # An error inside ``with fs.openbin(path, "wb")`` (a source that
        # failed mid-copy, as in fs.copy / a cross-mount move) must not
        # publish the part written so far.
        if exc_type is not None:
            self.discard()
        self.close()


_CREDENTIAL_SOURCES = {
    "env": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment",
    "shared-credentials-file": "the shared credentials file (~/.aws/credentials)",
    "config-file": "the AWS config file (~/.aws/config)",
    "iam-role": "the instance's IAM role",
    "container-role": "the container's IAM role",
    "assume-role": "an assumed role (~/.aws/config)",
}


def credential_source() -> str | None:
    """Where the standard AWS chain finds credentials for a mount without
    access_key_id (None: nowhere). May ask an instance-metadata service."""
    with _SESSION_LOCK:
        found = _boto_session().get_credentials()
    if found is None:
        return None
    method = str(getattr(found, "method", "") or "the AWS credential chain")
    return _CREDENTIAL_SOURCES.get(method, method)


def probe(filesystem: StreamingS3FS, credentials: str) -> tuple[str, str] | None:
    """Ask the store what a session would meet first: HeadBucket, then a
    list of the mount's prefix, with the mount's own client (its endpoint,
    region and credentials). The first problem as (the mount key it
    concerns: "fs", "endpoint_url", "region", "access_key_id",
    "secret_access_key" or "" for the mount as a whole, what is wrong and
    the fix); None when both answered. ``credentials`` says where the
    credentials come from, for the messages."""
    o = filesystem.options
    endpoint = o.endpoint_url or "AWS S3"
    bucket = filesystem.bucket
    at = "endpoint_url" if o.endpoint_url else ""
    try:
        client = filesystem.client
        client.head_bucket(Bucket=bucket)
        client.list_objects_v2(Bucket=bucket, Prefix=filesystem.dir_key("/"), MaxKeys=1)
    except StorageError as exc:  # the client could not be made
        return at, exc.reason
    except botocore.exceptions.ClientError as exc:
        return _refusal(exc, filesystem, endpoint, credentials)
    except _UNREACHABLE as exc:
        return at, (
            f"cannot reach {endpoint} ({_cause(exc)}); check the host and port, "
            "and that the store is running"
        )
    except botocore.exceptions.NoCredentialsError:
        return "", (
            "no S3 credentials: set access_key_id and secret_access_key, or give the "
            "server AWS credentials (AWS_ACCESS_KEY_ID, ~/.aws/credentials, a role)"
        )
    except botocore.exceptions.BotoCoreError as exc:
        return "", f"S3 client error: {exc}"
    return None


def _cause(exc: BaseException) -> str:
    # EndpointConnectionError's text is only the URL; the reason is inside.
    inner = getattr(exc, "kwargs", {}).get("error")
    reason = getattr(inner, "reason", None) or inner or exc
    text = str(reason)
    return text.rsplit("] ", 1)[-1] if "[Errno" in text else text


def _refusal(
    exc: botocore.exceptions.ClientError,
    filesystem: StreamingS3FS,
    endpoint: str,
    credentials: str,
) -> tuple[str, str]:
    bucket = filesystem.bucket
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    meta = exc.response.get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    if code in ("403", "Forbidden", "400", "BadRequest"):
        # A HEAD answer has no body, so no reason: the list has one.
        try:
            filesystem.client.list_objects_v2(Bucket=bucket, MaxKeys=1)
        except botocore.exceptions.ClientError as listed:
            error = listed.response.get("Error", {})
            code = str(error.get("Code", "")) or code
        except botocore.exceptions.BotoCoreError:
            pass
    region = (meta.get("HTTPHeaders") or {}).get("x-amz-bucket-region")
    if code in ("NoSuchBucket", "404", "NotFound") or status == 404:
        return "fs", (
            f"bucket {bucket!r} does not exist at {endpoint}; create it or correct the name"
        )
    if code == "InvalidAccessKeyId":
        return "access_key_id", (
            f"{endpoint} does not know the access key ({credentials}); "
            "check access_key_id, or the credentials the server is given"
        )
    if code == "SignatureDoesNotMatch":
        return "secret_access_key", (
            f"{endpoint} rejects the secret key ({credentials}); "
            "check secret_access_key against access_key_id"
        )
    if region and (code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed")):
        return "region", f"bucket {bucket!r} is in region {region}; set region: {region}"
    if code in _DENIED or status == 403:
        return "", (
            f"access to bucket {bucket!r} denied ({code or status}) for {credentials}; "
            "the credentials need s3:ListBucket on it (and object rights for transfers)"
        )
    message = str(error.get("Message", "")) or str(exc)
    return "", f"{endpoint} answered {code or status}: {message}"


def open_s3(url: str, options: S3Options) -> StreamingS3FS:
    """``s3://bucket/some/prefix`` → a filesystem rooted at that prefix."""
    rest = url.split("://", 1)[1]
    rest = rest.split("?", 1)[0]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError("s3:// URL needs a bucket name: s3://BUCKET[/PREFIX]")
    return StreamingS3FS(
        bucket, dir_path="/" + relpath(normpath(prefix)) if prefix else "/", options=options
    )
