"""A real FTP server for your own tests, on in-memory mounts by default,
started in about a millisecond on a free loopback port.

    from vfsftp.testing import ThreadedFTPServer

    with ThreadedFTPServer() as server:          # user "user", password "pass"
        server.put_file("/in/a.csv", b"1,2\\n")   # seed without FTP
        with server.connect() as ftp:             # a logged-in ftplib.FTP
            ftp.retrlines("LIST /in")
        assert server.list_files() == ["/in/a.csv"]

The server runs its own event loop in a background thread, so blocking
clients (ftplib, curl, fs.ftpfs) can drive it from the test, and a test that
runs its own asyncio loop is not disturbed. The pytest fixtures built on it
(``ftp_server``, ``ftp_server_session``, ``ftp_server_tls``, ``ftp_moto``)
live in :mod:`vfsftp.pytest_plugin`, which pytest loads on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ftplib
import logging
import os
import select
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fs.path
from fs.base import FS

from .config.schema import ANONYMOUS, Config, ConfigError, _parse_yaml, config_from_dict
from .service.server import FTPServer
from .storage.faults import Fault, FaultyFS
from .storage.tree import Mount, VirtualTree, unwrap_read_only

__all__ = [
    "Fault",
    "FaultyFS",
    "MotoS3",
    "MotoS3Process",
    "TLSFiles",
    "ThreadedFTPServer",
    "make_tls_files",
]


# ------------------------------------------------------------------ TLS


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a throw-away CA and a server certificate it issued for
    127.0.0.1, ::1 and localhost. Clients trust ``ca``."""

    cert: Path
    key: Path
    ca: Path

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this CA only."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls_files(folder: str | os.PathLike[str]) -> TLSFiles:
    """Write a new CA and server certificate (trustme) into ``folder``."""
    try:
        import trustme
    except ImportError as exc:  # depends on the install
        # (from None: the hint is the whole story, not a second traceback)
        missing = exc.name or "trustme"
        raise ImportError(
            f"TLS test servers need trustme (no module named {missing!r} here): "
            "pip install 'vfsftp[test]', or pip install trustme"
        ) from None
    folder = Path(folder)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "::1", "localhost")
    files = TLSFiles(folder / "cert.pem", folder / "key.pem", folder / "ca.pem")
    files.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    return files


# ------------------------------------------------------------------ config

ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def _build_config(
    config: ConfigSource,
    mounts: Mapping[str, Any] | None,
    host: str,
    user: str,
    password: str,
    anonymous: bool,
    tls: TLSFiles | None,
) -> Config:
    if isinstance(config, Config):
        if mounts is not None or anonymous or tls is not None:
            raise TypeError("mounts, anonymous and tls apply to a mapping or a mounts.yaml only")
        return config
    source, base_dir = "<ThreadedFTPServer>", None
    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, (str, os.PathLike)):
        path = Path(config)
        source, base_dir = os.fspath(config), path.absolute().parent
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
        data = dict(_parse_yaml(text, source) or {})
    else:
        data = copy.deepcopy(dict(config))  # the caller's mapping stays as it was
    from_file = isinstance(config, (str, os.PathLike))
    if mounts is not None:
        data["mounts"] = dict(mounts)
    data.setdefault("mounts", {"/": "mem://"})
    users = dict(data.get("users") or {})
    if not users:
        users[user] = {"password": f"plaintext:{password}"}
    if anonymous:
        users.setdefault(ANONYMOUS, {})
    data["users"] = users
    srv = dict(data.get("server") or {})
    if from_file:
        # A mounts.yaml names the production port (2121, 990): a test binds
        # free loopback ports so that tests can run side by side.
        srv["listen"], srv["port"] = [host], 0
        if isinstance(srv.get("tls"), Mapping) and "implicit_port" in srv["tls"]:
            srv["tls"] = {**srv["tls"], "implicit_port": 0}
        metrics = data.get("metrics")
        if isinstance(metrics, Mapping) and metrics.get("port") is not None:
            data["metrics"] = {**metrics, "listen": host, "port": 0}
    srv.setdefault("listen", [host])
    srv.setdefault("port", 0)
    if tls is not None:
        given = dict(srv.get("tls") or {})
        srv["tls"] = {
            "certificate": str(tls.cert),
            "key": str(tls.key),
            "implicit_port": 0,
            **given,
        }
    data["server"] = srv
    return config_from_dict(data, source, base_dir)


# ------------------------------------------------------------------ server


class ThreadedFTPServer:
    """An ``FTPServer`` on its own event loop thread, for tests.

    ``config`` is a ``Config``, a mapping shaped like mounts.yaml, or the
    path of a mounts.yaml (its ``listen``/``port``, implicit-TLS and metrics
    ports are replaced by ``host`` and free ports). ``mounts`` replaces the
    config's mounts (default: one ``mem://`` at ``/``). Without ``users`` in
    the config, ``user`` / ``password`` gets every right; ``anonymous`` adds
    read-only anonymous access. ``tls`` (True, or ``TLSFiles`` to share a CA
    between servers) turns on explicit FTPS and an implicit-TLS port.
    ``user`` and ``password`` are the credentials ``login_data``, ``url`` and
    ``connect`` use. Other keywords go to ``FTPServer``; failed logins are
    answered at once and uploads published without ``upload_grace``
    (``upload_grace=None`` keeps the configuration's).
    """

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        mounts: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        user: str = "user",
        password: str = "pass",
        anonymous: bool = False,
        tls: bool | TLSFiles = False,
        **server_options: Any,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.tls_files: TLSFiles | None = None
        if tls is True:
            self._tmp = tempfile.TemporaryDirectory(prefix="vfsftp-tls-")
            self.tls_files = make_tls_files(self._tmp.name)
        elif isinstance(tls, TLSFiles):
            self.tls_files = tls
        server_options.setdefault("login_failure_delay", 0)
        server_options.setdefault("upload_grace", 0)
        try:
            self.config = _build_config(
                config, mounts, host, user, password, anonymous, self.tls_files
            )
            self.server = FTPServer(self.config, **server_options)
        except BaseException:
            self._cleanup_tmp()
            raise
        self.user = user
        self.password = password
        # Made in start(): a loop holds file descriptors (selector, self-pipe)
        # that a server which is never started would leak.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tree: VirtualTree | None = None
        self._tree_of: object = None

    # ------------------------------------------------------------ lifecycle

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:
                self._error = exc
                loop.run_until_complete(self.server.close())
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            # Finished here, on the loop's own thread: stop() may be called
            # from a thread whose own loop is running (an async test), where
            # run_until_complete on any loop raises. The default executor
            # (asyncio.to_thread in logins) must be joined: loop.close()
            # alone leaves its threads running a moment.
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            asyncio.set_event_loop(None)
            loop.close()

    def start(self) -> ThreadedFTPServer:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(self.loop,), name="vfsftp-test-server", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()  # it closes the loop before it ends
            self._cleanup_tmp()
            raise self._error
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        if self.loop is None:
            if asyncio.iscoroutine(coro):
                coro.close()  # no "never awaited" warning on top of the error
            raise RuntimeError("the server is not started")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """End every session, close the listeners and filesystems, join the
        loop thread. Safe to call twice, and from inside a running loop."""
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            try:
                self.call(self.server.close())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(10)
        self._cleanup_tmp()

    def _cleanup_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ThreadedFTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ addresses

    @property
    def host(self) -> str:
        return self.server.addresses[0][0]

    @property
    def port(self) -> int:
        return self.server.addresses[0][1]

    @property
    def implicit_port(self) -> int | None:
        """The implicit-TLS (``ftps://``) port, with ``tls`` only."""
        found = self.server.implicit_addresses
        return found[0][1] if found else None

    @property
    def ca_path(self) -> Path | None:
        """The CA certificate (PEM) that clients must trust, with ``tls``."""
        return self.tls_files.ca if self.tls_files is not None else None

    @property
    def anonymous(self) -> bool:
        return any(u.anonymous for u in self.config.users.values())

    def login_data(self, anonymous: bool = False) -> dict[str, Any]:
        """``{"host", "port", "user", "passwd"}``: the keyword names of
        ``ftplib.FTP.connect`` and ``login``, and pytest-localftpserver's."""
        user, passwd = (ANONYMOUS, "") if anonymous else (self.user, self.password)
        return {"host": self.host, "port": self.port, "user": user, "passwd": passwd}

    @property
    def url(self) -> str:
        """``ftp://user:password@127.0.0.1:PORT``"""
        return self.url_for("")

    def url_for(self, path: str = "/", anonymous: bool = False) -> str:
        """The ``ftp://`` URL of ``path``, with the credentials in it (none
        for ``anonymous``), each part percent-encoded."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        login = ""
        if not anonymous:
            q = urllib.parse.quote
            login = f"{q(self.user, safe='')}:{q(self.password, safe='')}@"
        return f"ftp://{login}{host}:{self.port}{urllib.parse.quote(path)}"

    def connect(self, anonymous: bool = False, timeout: float = 10) -> ftplib.FTP:
        """A logged-in ``ftplib`` client in binary mode (``FTP_TLS`` with
        ``PROT P`` when the server has TLS). Use it in a ``with`` block."""
        data = self.login_data(anonymous)
        client: ftplib.FTP
        if self.tls_files is not None:
            client = ftplib.FTP_TLS(context=self.tls_files.client_context(), timeout=timeout)
        else:
            client = ftplib.FTP(timeout=timeout)
        try:
            client.connect(data["host"], data["port"])
            client.login(data["user"], data["passwd"])
            if isinstance(client, ftplib.FTP_TLS):
                client.prot_p()
            client.voidcmd("TYPE I")
        except BaseException:
            client.close()
            raise
        return client

    # ------------------------------------------------------------ files

    @property
    def filesystems(self) -> dict[str, FS]:
        """Mount path → the PyFilesystem2 filesystem behind it (read-only
        mounts unwrapped, so a test can seed them). Mounts naming
        ``${user}`` are opened at login and are not listed."""
        return {m.path: unwrap_read_only(m.fs) for m in self.server.mounts.global_mounts}

    @property
    def fs(self) -> VirtualTree:
        """The server's tree as one filesystem, addressed by its own paths
        (``/data/a.txt``: what a user whose root is ``/`` sees; a user whose
        home is ``/data`` sees it as ``/a.txt``); every mount writable, even
        read-only ones. Changes are visible to clients at once, and the
        other way."""
        table = self.server.mounts  # replaced by a reload
        if self._tree is None or self._tree_of is not table:
            self._tree = VirtualTree([Mount.of(p, f) for p, f in self.filesystems.items()])
            self._tree_of = table
        return self._tree

    def put_file(self, path: str, data: bytes | str) -> str:
        """Write ``data`` (``str`` as UTF-8) at ``path``, making parent
        directories. Returns the normalised path."""
        path = fs.path.abspath(fs.path.normpath(path))
        self.fs.makedirs(fs.path.dirname(path), recreate=True)
        self.fs.writebytes(path, data.encode() if isinstance(data, str) else data)
        return path

    def put_local(self, local: str | os.PathLike[str], to: str = "/") -> list[str]:
        """Copy a local file, or a folder with everything under it, into the
        directory ``to``. Returns the paths of the files written."""
        source = Path(local)
        if source.is_dir():
            files = sorted(p for p in source.rglob("*") if p.is_file())
            base = source.parent
        else:
            files, base = [source], source.parent
        return [
            self.put_file(fs.path.join(to, p.relative_to(base).as_posix()), p.read_bytes())
            for p in files
        ]

    def read_file(self, path: str) -> bytes:
        return bytes(self.fs.readbytes(path))

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read_file(path).decode(encoding)

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def list_files(self, path: str = "/") -> list[str]:
        """Every file under ``path`` (recursively, across mounts), sorted."""
        return sorted(self.fs.walk.files(path))

    def reset(self) -> None:
        """Empty every mount (for a server shared by several tests)."""
        for filesystem in self.filesystems.values():
            for info in list(filesystem.scandir("/")):  # not while deleting
                target = fs.path.join("/", info.name)
                if info.is_dir:
                    filesystem.removetree(target)
                else:
                    filesystem.remove(target)


# ------------------------------------------------------------------ S3


def _moto_request_threads() -> set[threading.Thread]:
    # werkzeug serves each request on a thread named after process_request
    return {t for t in threading.enumerate() if "process_request" in t.name and t.is_alive()}


#: moto looks up its ~180 backend folders on every request (to match a
#: Host header against backend names): a fifth of its time per request. The
#: answer never changes while the process runs, so it is computed once.
def _fast_backend_lookup() -> None:
    import moto.backends

    if getattr(moto.backends.list_of_moto_modules, "_vfsftp_fixed", False):
        return
    modules = tuple(moto.backends.list_of_moto_modules())

    def fixed() -> tuple[str, ...]:
        return modules

    fixed._vfsftp_fixed = True  # type: ignore[attr-defined]
    moto.backends.list_of_moto_modules = fixed


# The child of MotoS3Process: argv is the bucket to create (or ""), the key
# format and the number of one-byte objects to put in it straight into
# moto's store (over HTTP each PUT costs milliseconds).
_MOTO_CHILD = """
import logging, sys, time
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from vfsftp.testing import _fast_backend_lookup
_fast_backend_lookup()
from moto.server import ThreadedMotoServer
port = int(sys.argv[4])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
host, port = server.get_host_and_port()
bucket, key_format, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if bucket:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    for i in range(count):
        backend.put_object(bucket, key_format.format(i), b"x")
print(f"http://{host}:{port}", time.time(), flush=True)
sys.stdin.read()  # until the parent closes our stdin (or dies)
server.stop()
"""


class MotoS3:
    """moto's S3 server on a free loopback port in this process, for S3
    mounts in tests. Needs ``moto[server]`` (``pip install 'vfsftp[test]'``).
    ``MotoS3Process`` runs it in a child process instead.

        with MotoS3() as s3, ThreadedFTPServer(mounts={"/": s3.mount(s3.create_bucket())}):
            ...
    """

    region = "us-east-1"
    access_key_id = "testing"
    secret_access_key = "testing"

    def __init__(self) -> None:
        self._server: Any = None
        self._clients: list[Any] = []
        self._threads_before: set[threading.Thread] = set()
        self._log_level = logging.NOTSET
        self.endpoint = ""

    def start(self) -> MotoS3:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "S3 test mounts need moto's server: pip install 'moto[server]'"
            ) from exc
        # werkzeug logs every request at INFO even with verbose=False.
        werkzeug_log = logging.getLogger("werkzeug")
        self._log_level = werkzeug_log.level
        werkzeug_log.setLevel(logging.ERROR)
        _fast_backend_lookup()
        self._threads_before = _moto_request_threads()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def client(self, config: Any = None) -> Any:
        """A boto3 S3 client for this endpoint (closed by ``stop``);
        ``config``: a botocore ``Config`` (retries, say)."""
        import boto3

        session = boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )
        made = session.client("s3", endpoint_url=self.endpoint, config=config)
        self._clients.append(made)
        return made

    def _admin(self) -> Any:
        return self._clients[0] if self._clients else self.client()

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name by default); returns its name."""
        name = name or f"vfsftp-test-{uuid.uuid4().hex[:12]}"
        self._admin().create_bucket(Bucket=name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Abort its uploads, delete its objects and the bucket itself (moto
        holds objects in memory, large ones in open temporary files)."""
        client = self._admin()
        for up in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})
        client.delete_bucket(Bucket=name)

    def mount(self, bucket: str, prefix: str = "", **options: Any) -> dict[str, Any]:
        """A mounts.yaml entry for ``s3://BUCKET/PREFIX`` on this server."""
        url = f"s3://{bucket}/{prefix.strip('/')}" if prefix.strip("/") else f"s3://{bucket}"
        return {
            "fs": url,
            "endpoint_url": self.endpoint,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            **options,
        }

    @staticmethod
    def request_threads() -> set[threading.Thread]:
        """moto's request threads alive now, to pass to ``settle`` later."""
        return _moto_request_threads()

    def settle(self, before: set[threading.Thread], timeout: float = 10) -> None:
        """Wait (bounded) until the request threads started since ``before``
        end: each ends once its client closed the connection."""
        deadline = time.monotonic() + timeout
        for thread in _moto_request_threads() - before:
            thread.join(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None
            logging.getLogger("werkzeug").setLevel(self._log_level)
        self.settle(self._threads_before)

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MotoS3Process(MotoS3):
    """moto's S3 server in a child process of its own: its memory (moto
    keeps objects in RAM, and a ranged GET reads the whole object) and CPU
    stay out of the caller's, and it can be killed and started again (a
    store that goes away). ``bucket``: that bucket exists at start, holding
    ``count`` one-byte objects named ``key_format.format(i)``. The child's
    stderr goes to ``log_path`` when given. ``port``: a fixed port, so that
    a restart is the same endpoint (0: a free one each start); ``nice``:
    the child's niceness (a load generator beside it measures the server,
    not moto)."""

    def __init__(
        self,
        bucket: str = "",
        key_format: str = "",
        count: int = 0,
        *,
        log_path: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        port: int = 0,
        nice: int = 0,
    ) -> None:
        super().__init__()
        self._argv = [bucket, key_format, str(count), str(port)]
        self.log_path = log_path
        self._env = env
        self._nice = nice
        self.proc: subprocess.Popen[bytes] | None = None
        #: when the child began to serve, by its own clock (time.time())
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> MotoS3Process:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            **(self._env or {}),
        }
        with contextlib.ExitStack() as stack:
            log: Any = subprocess.DEVNULL
            if self.log_path is not None:
                log = stack.enter_context(open(self.log_path, "ab"))
            nice = self._nice
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _MOTO_CHILD, *self._argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
            )
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        line = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in line:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"moto did not start: {line!r}")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 256)
                if not chunk:
                    self.stop()
                    raise RuntimeError(f"moto exited before it started: {line!r}")
                line += chunk
        endpoint, started = line.decode().split()
        self.endpoint, self.started_at = endpoint, float(started)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the child (a store that dies, with everything it held);
        ``start`` makes a new one as at first (seeded again), on a new port
        unless ``port`` was fixed."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(10)
            self._close_pipes()
            self.proc = None

    def _close_pipes(self) -> None:
        assert self.proc is not None
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(Exception):
                    pipe.close()

    def stop(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(Exception):
            if proc.stdin is not None:
                proc.stdin.close()  # the child stops its server and exits
        for action, wait in ((None, 10.0), (proc.terminate, 5.0), (proc.kill, 5.0)):
            if action is not None:
                with contextlib.suppress(ProcessLookupError):
                    action()
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._close_pipes()
        self.proc = None
