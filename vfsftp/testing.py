"""A real FTP server for your own tests, on in-memory mounts by default,
started in milliseconds on a free loopback port.

    from vfsftp.testing import ThreadedFTPServer

    with ThreadedFTPServer() as server:          # user "user", password "pass"
        ftp = ftplib.FTP()
        ftp.connect(server.host, server.port)
        ftp.login(server.user, server.password)

The server runs its own event loop in a background thread, so blocking
clients (ftplib, curl, fs.ftpfs) can drive it from the test. A pytest fixture
``ftp_server`` comes with it: add ``pytest_plugins = ["vfsftp.testing"]`` to
your conftest.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from .config import Config, config_from_dict
from .server import FTPServer

__all__ = ["ThreadedFTPServer", "ftp_server"]


class ThreadedFTPServer:
    """An ``FTPServer`` on its own event loop thread."""

    def __init__(
        self,
        config: Config | Mapping[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        user: str = "user",
        password: str = "pass",
        **server_options: Any,
    ) -> None:
        if config is None:
            config = {
                "mounts": {"/": "mem://"},
                "users": {user: {"password": f"plaintext:{password}"}},
            }
        if not isinstance(config, Config):
            data = dict(config)
            srv = dict(data.get("server") or {})
            srv.setdefault("listen", [host])
            srv.setdefault("port", 0)
            data["server"] = srv
            config = config_from_dict(data)
        self.config = config
        self.user = user
        self.password = password
        server_options.setdefault("login_failure_delay", 0)
        self.server = FTPServer(config, **server_options)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="vfsftp-test-server", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> ThreadedFTPServer:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self.loop.close()
            raise self._error
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def host(self) -> str:
        return self.server.addresses[0][0]

    @property
    def port(self) -> int:
        return self.server.addresses[0][1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ftp://{self.user}:{self.password}@{host}:{self.port}"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            # The default executor (asyncio.to_thread in logins) must be
            # joined: loop.close() alone leaves its threads running a moment.
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def __enter__(self) -> ThreadedFTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pass
else:

    @pytest.fixture
    def ftp_server() -> Iterator[ThreadedFTPServer]:
        """A server on an in-memory root, user ``user`` / password ``pass``."""
        with ThreadedFTPServer() as server:
            yield server
