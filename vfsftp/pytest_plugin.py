"""pytest fixtures: a real FTP server on in-memory filesystems per test.

Registered through the ``pytest11`` entry point, so installing vfsftp is all
it takes. Fixtures (each a :class:`vfsftp.testing.ThreadedFTPServer`):

- ``ftp_server``: a fresh server per test, one ``mem://`` mount at ``/``,
  user ``user`` / password ``pass``;
- ``ftp_server_session``: one server for the whole session (call
  ``reset()`` to empty it between tests);
- ``ftp_server_tls``: as ``ftp_server`` with explicit FTPS and an
  implicit-TLS port, certificates from a session-wide throw-away CA
  (``ftp_server_tls.ca_path``; ``ftp_tls_files`` is that CA);
- ``ftp_moto``: a moto S3 server (``vfsftp.testing.MotoS3``), started
  only by tests that ask for it or for an S3 mount.

Options for ``ftp_server`` and ``ftp_server_tls`` come from a marker or an
indirect parameter, both taking ``ThreadedFTPServer``'s keywords::

    @pytest.mark.ftp_server(mounts={"/": "mem://", "/data": "tmp_path", "/s3": "s3"},
                            anonymous=True)
    def test_x(ftp_server): ...

    @pytest.mark.parametrize("ftp_server", [{"anonymous": True}], indirect=True)
    def test_y(ftp_server): ...

Mount values as in mounts.yaml, plus two shorthands: ``"tmp_path"`` (a
folder in the test's ``tmp_path``, named after the mount) and ``"s3"`` (a new
bucket on ``ftp_moto``; ``s3://NAME/PREFIX`` without ``endpoint_url`` also
goes to ``ftp_moto``, its bucket created). Buckets are deleted after the test.

This module is imported by every pytest run in an environment that has
vfsftp installed, so it imports nothing heavy until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .testing import MotoS3, ThreadedFTPServer, TLSFiles

__all__ = [
    "ftp_moto",
    "ftp_server",
    "ftp_server_session",
    "ftp_server_tls",
    "ftp_tls_files",
]

MARKER = "ftp_server"
TMP_PATH = "tmp_path"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options of the ftp_server / ftp_server_tls fixtures "
        "(mounts=, anonymous=, user=, password=, config=...: ThreadedFTPServer's keywords; "
        f"mount shorthands '{TMP_PATH}' and 's3')",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The marker's keywords (closest marker wins), then an indirect
    parameter's, which override them."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword arguments only")
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, Mapping):
            raise pytest.UsageError(
                f"an indirect {request.fixturename} parameter must be a dict of options"
            )
        options.update(param)
    return options


class _Resources:
    """What one test's mounts needed: moto buckets to delete afterwards."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.moto: MotoS3 | None = None
        self.buckets: list[str] = []
        self.threads_before: set[Any] = set()

    def _s3(self, url: str, options: Mapping[str, Any]) -> dict[str, Any]:
        if self.moto is None:
            self.moto = self.request.getfixturevalue("ftp_moto")
            self.threads_before = self.moto.request_threads()
        if url in ("s3", "s3://"):
            bucket, prefix = self.moto.create_bucket(), ""
        else:
            bucket, _, prefix = url.removeprefix("s3://").partition("/")
            self.moto.create_bucket(bucket)
        self.buckets.append(bucket)
        return self.moto.mount(bucket, prefix, **options)

    def resolve(self, mounts: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path, spec in mounts.items():
            url, options = (spec, {}) if isinstance(spec, str) else (spec.get("fs"), dict(spec))
            options.pop("fs", None)
            if url == TMP_PATH:
                base: Path = self.request.getfixturevalue("tmp_path")
                folder = base / (path.strip("/").replace("/", "_") or "root")
                folder.mkdir(parents=True, exist_ok=True)
                out[path] = {"fs": f"osfs://{folder}", **options}
            elif (
                isinstance(url, str)
                and (url == "s3" or url.startswith("s3://"))
                and ("endpoint_url" not in options)
            ):
                out[path] = self._s3(url, options)
            else:
                out[path] = spec
        return out

    def release(self) -> None:
        if self.moto is None:
            return
        try:
            for bucket in self.buckets:
                self.moto.delete_bucket(bucket)
        finally:
            self.moto.settle(self.threads_before)


def _serve(request: pytest.FixtureRequest, **defaults: Any) -> Iterator[ThreadedFTPServer]:
    from .testing import ThreadedFTPServer

    options = {**defaults, **_options(request)}
    resources = _Resources(request)
    try:
        if options.get("mounts") is not None:
            options["mounts"] = resources.resolve(options["mounts"])
        with ThreadedFTPServer(**options) as server:
            yield server
    finally:
        resources.release()


@pytest.fixture
def ftp_server(request: pytest.FixtureRequest) -> Iterator[ThreadedFTPServer]:
    """A fresh FTP server on 127.0.0.1 (a free port) for this test: one
    in-memory mount at ``/``, user ``user`` / password ``pass``. Options
    from ``@pytest.mark.ftp_server(...)`` or an indirect parameter."""
    yield from _serve(request)


@pytest.fixture(scope="session")
def ftp_server_session() -> Iterator[ThreadedFTPServer]:
    """One FTP server for the whole test session (in-memory ``/``, user
    ``user`` / password ``pass``); ``reset()`` empties it."""
    from .testing import ThreadedFTPServer

    with ThreadedFTPServer() as server:
        yield server


@pytest.fixture(scope="session")
def ftp_tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A throw-away CA and a certificate for 127.0.0.1, ::1 and localhost,
    shared by every ``ftp_server_tls`` of the session."""
    from .testing import make_tls_files

    try:
        return make_tls_files(tmp_path_factory.mktemp("vfsftp-tls"))
    except ImportError as exc:
        # The install hint alone, as gen-cert gives it: no traceback.
        pytest.fail(f"ftp_server_tls: {exc}", pytrace=False)


@pytest.fixture
def ftp_server_tls(
    request: pytest.FixtureRequest, ftp_tls_files: TLSFiles
) -> Iterator[ThreadedFTPServer]:
    """As ``ftp_server``, with FTPS: ``AUTH TLS`` on ``port``, implicit TLS
    on ``implicit_port``; clients trust ``ca_path`` (or use
    ``connect()``, which logs in with ``PROT P``)."""
    yield from _serve(request, tls=ftp_tls_files)


@pytest.fixture(scope="session")
def ftp_moto() -> Iterator[MotoS3]:
    """moto's S3 server on a free loopback port (needs ``moto[server]``)."""
    from .testing import MotoS3

    with MotoS3() as moto:
        yield moto
