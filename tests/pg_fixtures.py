"""A real PostgreSQL server for the user store's tests: Debian's (or any)
``initdb`` and ``postgres`` binaries, one server per test session on a free
loopback port, its data and socket in a temporary folder, and a fresh
database per test.

Import the fixtures into a test module to register them there::

    from pg_fixtures import pg_server, pg_url  # noqa: F401

PostgreSQL refuses to run as root: as root (CI's ``.ci/run``), the server
runs as ``nobody``. The tests that need it are marked ``postgres`` and
skipped, with the reason, only where no server binary or no psycopg is to
be had (``apt-get install postgresql``; psycopg is in the test extra).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

#: where Debian's postgresql-NN packages put the server binaries
_DEBIAN_BINS = "/usr/lib/postgresql/*/bin"


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres`` (PATH first, then the
    newest of Debian's), None when there is none."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    found = sorted(
        (Path(p) for p in glob.glob(_DEBIAN_BINS) if (Path(p) / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


class PostgresServer:
    """``postgres`` on 127.0.0.1:``port``, trust authentication for the
    superuser ``postgres``; ``stop()`` and ``start()`` again keep the data."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="vfsftp-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.folder, nobody.pw_uid, nobody.pw_gid)
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=60,
            **self._as,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}")

    def start(self, timeout: float = 30.0) -> PostgresServer:
        assert self.proc is None
        with open(self.log, "ab") as log:  # (the child keeps its own copy)
            self.proc = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.folder),
                    # A test server: durability is not what is tested.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._as,
            )
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                raise RuntimeError(f"postgres did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, nothing waits."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.url("postgres"), autocommit=True) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'vfsftp[postgres]')")
    bin_dir = find_binaries()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, postgres) on PATH or in "
            f"{_DEBIAN_BINS}: apt-get install postgresql"
        )
    server = PostgresServer(bin_dir)
    try:
        for attempt in range(3):  # the port may be taken between probe and bind
            try:
                server.start()
                break
            except RuntimeError as exc:
                if attempt == 2 or "Address already in use" not in str(exc):
                    raise
                server.port = free_port()
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped afterwards."""
    if pg_server.proc is None:  # a test that stopped it failed before restarting it
        pg_server.start()
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        if pg_server.proc is None:
            pg_server.start()
        pg_server.drop_database(name)
