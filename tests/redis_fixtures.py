"""A real ``redis-server`` for the fleet tests: started on a free loopback
port with no persistence (``--save '' --appendonly no``), killed with
SIGKILL and restarted on the same port by the tests that need it.

Import the fixture into a test module to register it there::

    from redis_fixtures import RedisServer, redis_server  # noqa: F401

Tests that use it are marked ``redis``; they are skipped, saying why, only
where the ``redis-server`` binary is missing (Debian: apt-get install
redis-server).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

REDIS_SERVER = shutil.which("redis-server")

needs_redis = [
    pytest.mark.redis,
    pytest.mark.skipif(
        REDIS_SERVER is None, reason="redis-server not installed (apt-get install redis-server)"
    ),
]


class RedisServer:
    """One redis-server process on 127.0.0.1; ``url`` stays the same
    across ``kill``/``start``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        assert REDIS_SERVER is not None
        for _ in range(5):
            if not self.port:
                # redis refuses --port 0: a port free now, bound by redis a
                # moment later (retried when another process takes it).
                self.port = free_port()
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(
                    [
                        REDIS_SERVER,
                        "--port",
                        str(self.port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(self.folder),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(timeout):
                return self
            self._reap()
            self.port = 0  # taken by someone else meanwhile: another one
        raise AssertionError(f"redis-server did not start; see {self.log}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return True
            time.sleep(0.01)
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; every key is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        """A new, empty redis-server on the same port."""
        self.kill()
        self.start()

    def client(self) -> object:
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.kill()
