"""A real S3 HTTP endpoint for the S3 tests: moto's ``ThreadedMotoServer`` on
loopback (one per test session), a fresh bucket per test, and FTP servers
whose mounts point at it.

Import the fixtures into a test module to register them there::

    from s3_fixtures import moto_endpoint, s3_bucket, s3_server  # noqa: F401

Nothing is mocked in-process: boto3 (the test's and the server's) talks HTTP
to moto. Things that follow from moto running in this process:

- moto (werkzeug) serves each request on a new connection and thread, which
  ends a moment after the response: ``s3_bucket`` waits (bounded) for those
  threads before the integration leak check looks, after the FTP servers of
  ``s3_server`` have stopped (closing their S3 clients);
- moto keeps objects in memory, those over 5 MiB in temporary files (open
  file descriptors): ``s3_bucket`` deletes every object at teardown;
- a test that measures this process's memory runs moto in a child process
  instead (``moto_subprocess``): a ranged GET there copies the whole object.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from conftest import PASSWORD, USER, ServerFactory, wait_for

from vfsftp.storage.s3 import StreamingS3FS
from vfsftp.testing import MotoS3, MotoS3Process, ThreadedFTPServer

REGION = "us-east-1"

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    # Never read the developer's own AWS configuration, never ask an
    # instance-metadata service for credentials.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_AWS_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def _request_threads() -> set[threading.Thread]:
    """moto's (werkzeug's) per-connection request threads."""
    return {t for t in threading.enumerate() if "process_request" in t.name and t.is_alive()}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto S3 server running in this process
    (vfsftp.testing.MotoS3, the test kit's own)."""
    mp = pytest.MonkeyPatch()
    for name, value in _AWS_ENV.items():
        mp.setenv(name, value)
    for name in _AWS_UNSET:
        mp.delenv(name, raising=False)
    moto = MotoS3().start()
    # Load boto3's S3 model and moto's S3 backend now, then move everything
    # alive into the GC's permanent generation: the integration leak check
    # runs gc.collect() twice per test, which over moto + botocore's ~150,000
    # objects costs ~0.25 s a test. Collected first, so no garbage is frozen;
    # objects made by the tests are collected as before.
    warm = make_client(moto.endpoint)
    warm.list_buckets()
    warm.close()
    wait_for(lambda: not _request_threads(), what="moto request threads to end")
    gc.collect()
    gc.freeze()
    try:
        yield moto.endpoint
    finally:
        gc.unfreeze()
        moto.stop()
        mp.undo()


def make_client(endpoint: str, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=BotoConfig(max_pool_connections=32, **config),
    )


@dataclass
class S3Bucket:
    """A bucket of its own for one test, with a boto3 client to prepare and
    inspect it from outside the FTP server."""

    endpoint: str
    name: str
    client: Any
    _extra_clients: list[Any] = field(default_factory=list)

    def mount(self, prefix: str = "", **options: Any) -> dict[str, Any]:
        """A mounts.yaml entry for ``s3://BUCKET/PREFIX`` on this endpoint."""
        url = f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"
        return {"fs": url, "endpoint_url": self.endpoint, "region": REGION, **options}

    def put(self, key: str, data: bytes = b"") -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def put_many(self, keys: list[str], data: bytes = b"x") -> None:
        """Many small objects at once, straight into the in-process moto's
        store: over HTTP, moto takes several milliseconds a PUT. The first
        and last keys go over HTTP, so the rest is what a client would
        have written."""
        self.put(keys[0], data)
        backend = _moto_s3_backend()
        for key in keys[1:-1]:
            backend.put_object(self.name, key, data)
        self.put(keys[-1], data)

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def keys(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", ())]
        return sorted(out)

    def exists(self, key: str) -> bool:
        return key in self.keys(key)

    def uploads(self) -> list[dict[str, Any]]:
        """Multipart uploads started and neither completed nor aborted."""
        return list(self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", []))

    def new_client_for(self, service: str) -> Any:
        """A client of another service on the endpoint (moto serves them
        all), closed with the fixture."""
        c = boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self._extra_clients.append(c)
        return c

    def empty(self) -> None:
        """Abort uploads and delete every object (moto keeps each object
        over 5 MiB in a temporary file: an open file descriptor). Through
        moto's store: listing thousands of keys over HTTP takes seconds."""
        for up in self.uploads():
            self.client.abort_multipart_upload(
                Bucket=self.name, Key=up["Key"], UploadId=up["UploadId"]
            )
        backend = _moto_s3_backend()
        for key in list(backend.get_bucket(self.name).keys.keys()):
            backend.delete_object(self.name, key)


def _moto_s3_backend() -> Any:
    """The S3 store of the moto server running in this process."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> Iterator[S3Bucket]:
    """A new, empty bucket; emptied and deleted afterwards (moto holds
    objects in memory), and every connection to moto closed."""
    before = _request_threads()
    client = make_client(moto_endpoint)
    name = f"vfsftp-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    bucket = S3Bucket(moto_endpoint, name, client)
    try:
        yield bucket
    finally:
        try:
            bucket.empty()
            client.delete_bucket(Bucket=name)
        finally:
            for c in [client, *bucket._extra_clients]:
                c.close()
        # Closing a client closes its connections; moto's thread for each
        # ends when it reads EOF.
        wait_for(lambda: not (_request_threads() - before), what="moto request threads to end")


@pytest.fixture
def s3_server(s3_bucket: S3Bucket, make_server: ServerFactory) -> ServerFactory:
    """Start FTP servers from a ``mounts`` mapping (user alice, every
    right), through conftest's ``make_server``. Requested after
    ``s3_bucket``, so that the servers, and their S3 clients, are stopped
    before the bucket fixture checks moto's threads."""

    def factory(mounts: dict[str, Any], **server_options: Any) -> ThreadedFTPServer:
        config = {
            "server": server_options.pop("server", {}),
            "mounts": mounts,
            "users": {USER: {"password": f"plaintext:{PASSWORD}", "perms": "elradfmwMT"}},
        }
        return make_server(config, **server_options)

    return factory


# ---------------------------------------------------------------- requests


def mount_fs(srv: ThreadedFTPServer, path: str) -> StreamingS3FS:
    for m in srv.server.mounts.global_mounts:
        if m.path == path:
            assert isinstance(m.fs, StreamingS3FS)
            return m.fs
    raise AssertionError(f"no mount at {path}")


class Calls:
    """The S3 operations a mount's client makes, with their parameters."""

    def __init__(self, s3fs: StreamingS3FS) -> None:
        self.log: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        s3fs.client.meta.events.register("provide-client-params.s3.*", self._record)

    def _record(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        # provide-client-params: the API parameters as the caller gave them
        # (a handler returning something would replace them: this one
        # returns None).
        with self._lock:
            self.log.append((model.name, dict(params)))

    def clear(self) -> None:
        with self._lock:
            self.log.clear()

    def count(self) -> Counter[str]:
        with self._lock:
            return Counter(name for name, _ in self.log)

    def lists(self) -> tuple[int, int]:
        """(listing pages, one-key existence probes) among ListObjectsV2."""
        with self._lock:
            calls = [p for name, p in self.log if name == "ListObjectsV2"]
        probes = sum(1 for p in calls if p.get("MaxKeys") == 1)
        return len(calls) - probes, probes


# ---------------------------------------------------------------- moto elsewhere


@contextlib.contextmanager
def moto_subprocess(bucket: str = "", key_format: str = "", count: int = 0) -> Iterator[str]:
    """A moto server in a child process (vfsftp.testing.MotoS3Process): its
    memory (moto keeps objects in RAM, and a ranged GET reads the whole
    object) stays out of this one. With ``bucket``: that bucket is there,
    holding ``count`` one-byte objects named ``key_format.format(i)``."""
    moto = MotoS3Process(bucket, key_format, count, env=_AWS_ENV).start()
    try:
        yield moto.endpoint
    finally:
        moto.stop()


# ---------------------------------------------------------------- conformance


def skip_by_name(cls: type, base: type, reasons: dict[str, str]) -> None:
    """Skip ``base``'s tests named in ``reasons`` on ``cls``, each with its
    reason (shown by ``pytest -ra``)."""
    import unittest

    for name, reason in reasons.items():
        if hasattr(base, name):
            setattr(cls, name, unittest.skip(reason)(getattr(base, name)))


def assert_cases_exist(base: type, reasons: dict[str, str]) -> None:
    """A skip naming a test that no longer exists hides nothing and rots
    silently: every name must be a real test of ``base``."""
    missing = [n for n in reasons if not callable(getattr(base, n, None))]
    assert not missing, f"not in {base.__module__}.{base.__name__} any more: {missing}"


class CuttingProxy:
    """A TCP relay to the S3 endpoint that breaks off the next ``cuts``
    responses whose body is longer than ``cut_at`` bytes, after those bytes
    (one response per connection, as moto serves them): what a connection
    S3 resets in the middle of a download looks like to boto3. ``on_cut``
    runs after the cut, before the client can notice it."""

    def __init__(
        self,
        endpoint: str,
        cut_at: int,
        cuts: int = 1,
        on_cut: Callable[[], None] | None = None,
    ) -> None:
        host, port = endpoint.rsplit("/", 1)[-1].rsplit(":", 1)
        self.upstream = (host, int(port))
        self.cut_at = cut_at
        self.cuts_left = cuts
        self.cut = 0
        self.on_cut = on_cut
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._socks += [client, upstream]
            self._start(self._pipe, client, upstream, False)
            self._start(self._pipe, upstream, client, True)

    def _pipe(self, src: socket.socket, dst: socket.socket, response: bool) -> None:
        held = b""  # a response's bytes until its header ends
        limit: int | None = None  # where in the stream the body passes cut_at
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.sendall(held)
                        dst.shutdown(socket.SHUT_WR)
                    return
                if response and limit is None:
                    held += data
                    end = held.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    data, held, limit = held, b"", sent + end + 4 + self.cut_at
                if limit is not None and sent + len(data) > limit:
                    with self._lock:
                        cut = self.cuts_left > 0
                        self.cuts_left -= cut
                    if cut:
                        dst.sendall(data[: limit - sent])
                        self.cut += 1
                        if self.on_cut is not None:
                            self.on_cut()
                        for s in (src, dst):
                            with contextlib.suppress(OSError):
                                s.shutdown(socket.SHUT_RDWR)
                        return
                dst.sendall(data)
                sent += len(data)
        except OSError:
            return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(10)
        for s in self._socks:
            s.close()
