"""The control listeners: accept connections and give each to a session.

``Listener`` stands where an ``asyncio.Server`` stands in FTPServer
(``sockets``, ``close``, ``wait_closed``, ``serve_forever``) and owns the
accept loop; ``ControlListener`` serves each connection at once on a
``ControlTransport`` (asyncio's selector loop: no Task per connection, no
system call asyncio would make for it but the accept and one
``setblocking``); ``proxied.ProxiedListener`` first reads a PROXY header.
On other loops (uvloop) FTPServer uses the loop's own servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any

from .. import fastpaths
from ..session.transport import ControlTransport, serves, set_control_options

__all__ = ["ControlListener", "Listener", "prepare_listening_socket", "serve_accepted"]

log = logging.getLogger("vfsftp.session")

#: connections taken per wake-up before other callbacks get their turn
_ACCEPTS_PER_WAKEUP = 64


def prepare_listening_socket(sock: socket.socket) -> None:
    """Set, where the connections inherit them, the control connection's
    options on the listening socket (see serve_accepted)."""
    if fastpaths.INHERITED_OPTIONS and sock.family in (socket.AF_INET, socket.AF_INET6):
        set_control_options(sock)


def _local_address(sock: socket.socket) -> Any:
    """Every connection's local address when the listener is bound to one
    (the kernel then need not be asked per connection); None on a wildcard."""
    addr = sock.getsockname()
    try:
        unspecified = ipaddress.ip_address(addr[0].split("%", 1)[0]).is_unspecified
    except ValueError:
        return None
    return None if unspecified else addr


def serve_accepted(
    loop: asyncio.AbstractEventLoop,
    conn: socket.socket,
    peer: Any,
    local: Any,
    protocol: asyncio.BaseProtocol,
    context: contextvars.Context,
) -> None:
    """Serve ``protocol`` on ``conn`` (accepted, non-blocking, from a
    listener prepared with prepare_listening_socket) on a ControlTransport
    whose read callbacks run in ``context`` (the listener's)."""
    if not fastpaths.INHERITED_OPTIONS:
        # (a connection already reset: the transport's first read reports it)
        with contextlib.suppress(OSError):
            set_control_options(conn)
    ControlTransport(loop, conn, peer, local, context).start(protocol)


class Listener:
    """Accepts on ``sock`` (listening; made non-blocking here) from a reader
    callback, as asyncio's own servers do (no task waits while nobody
    connects), and passes each connection to ``_serve``."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.sockets = [sock]
        self._loop = asyncio.get_running_loop()
        #: what the read callbacks of its connections run in (one for all:
        #: see transport._add_reader)
        self._context = contextvars.copy_context()
        self._closed = asyncio.Event()
        self._paused: asyncio.TimerHandle | None = None
        self._loop.add_reader(sock.fileno(), self._accept)

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: as asyncio's own servers, pause
                    # accepting a moment instead of spinning.
                    log.error("accept failed (%s); pausing for a second", exc)
                    self._loop.remove_reader(self.sock.fileno())
                    self._paused = self._loop.call_later(1, self._resume)
                else:
                    log.warning("accept failed: %s", exc)
                return
            try:
                conn.setblocking(False)
                self._serve(conn, addr)
            except Exception:
                log.exception("connection from %s failed", addr[0] if addr else "?")
                conn.close()

    def _resume(self) -> None:
        self._paused = None
        if not self._closed.is_set():
            self._loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting (connections already served go on)."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._paused is not None:
            self._paused.cancel()
        else:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    async def wait_closed(self) -> None:
        pass

    async def serve_forever(self) -> None:
        await self._closed.wait()


class ControlListener(Listener):
    """Serves each connection on a ControlTransport, with a protocol from
    ``factory``."""

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        assert serves(asyncio.get_running_loop()), "a ControlListener needs asyncio's selector loop"
        prepare_listening_socket(sock)
        self.factory = factory
        self._local = _local_address(sock)
        super().__init__(sock)

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        serve_accepted(self._loop, conn, addr, self._local, self.factory(), self._context)
