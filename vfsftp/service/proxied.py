"""A control listener behind TCP load balancers that speak the PROXY
protocol (``server.proxy_protocol``): a connection from a balancer starts
with a header naming the client, read here, byte-exact, before the session
sees the connection (so a TLS ClientHello right behind it, on the implicit
TLS port, reaches the TLS layer whole). A connection from a ``direct``
network is served as itself; any other is refused.

asyncio's servers hand the connection to the protocol at once, with no way
to read a few bytes first: this listener accepts itself (listener.Listener).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol.proxy import ProxyHeaderError
from ..session import eager
from ..session.channel import FTPChannel
from ..session.data import in_networks, normalize_ip, read_proxy_header
from ..session.transport import serves
from .listener import Listener, prepare_listening_socket, serve_accepted

if TYPE_CHECKING:
    from ..config.schema import ProxyProtocolConfig

__all__ = ["ProxiedListener"]

log = logging.getLogger("vfsftp.session")

#: makes the session of a connection: (client, balancer) or None (direct)
ChannelFactory = Callable[[tuple[tuple[str, int], tuple[str, int]] | None], FTPChannel]


class ProxiedListener(Listener):
    """Hands each connection, once its PROXY header is read, to a session."""

    def __init__(
        self, sock: socket.socket, config: ProxyProtocolConfig, factory: ChannelFactory
    ) -> None:
        self.config = config
        self.factory = factory
        #: connections whose header is being read, and their tasks
        self._pending: dict[asyncio.Task[None], socket.socket] = {}
        self._dropped: list[tuple[asyncio.Task[None], socket.socket]] = []
        loop = asyncio.get_running_loop()
        self._lean = serves(loop)
        if self._lean:
            prepare_listening_socket(sock)
        super().__init__(sock)

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        # Run at once: the header is usually there already; a task only if
        # it must wait for it.
        task = eager.start(self._handshake(conn, addr))
        if task is not None:
            self._pending[task] = conn
            task.add_done_callback(self._pending.pop)

    async def _handshake(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        peer = normalize_ip(str(addr[0]))
        proxied: tuple[tuple[str, int], tuple[str, int]] | None = None
        if in_networks(peer, self.config.from_):
            try:
                header = await read_proxy_header(conn, self.config.header_timeout)
            except (ProxyHeaderError, OSError) as exc:
                log.warning("connection from balancer %s refused: %s", peer, exc)
                conn.close()
                return
            except BaseException:
                conn.close()
                raise
            if header.source is not None:
                proxied = (header.source, (str(addr[0]), int(addr[1])))
        elif not in_networks(peer, self.config.direct):
            log.warning(
                "connection from %s refused: not a load balancer listed in "
                "server.proxy_protocol.from (nor in .direct)",
                peer,
            )
            with contextlib.suppress(OSError):
                conn.send(b"421 Connect through the load balancer\r\n")
            conn.close()
            return
        if self._lean:
            serve_accepted(self._loop, conn, addr, None, self.factory(proxied), self._context)
            return
        try:
            await self._loop.connect_accepted_socket(lambda: self.factory(proxied), conn)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Stop accepting; connections still sending their header are
        dropped (by wait_closed, once their tasks no longer watch them)."""
        if self._closed.is_set():
            return
        super().close()
        self._dropped = list(self._pending.items())
        for task, _ in self._dropped:
            task.cancel()

    async def wait_closed(self) -> None:
        tasks = list(self._pending)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for _, conn in self._dropped:
            conn.close()  # (a task cancelled before it ran never closed it)
        self._dropped = []
