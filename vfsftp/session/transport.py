"""A lean transport for control connections on asyncio's selector loop.

asyncio's ``_SelectorSocketTransport`` is built for any stream: each one
carries a ``__dict__`` of some twenty attributes and an ``_extra`` dict, and
asyncio's servers hand every accepted connection to a Task that asks the
kernel for both addresses and sets TCP_NODELAY before the protocol hears of
it. A server holding thousands of mostly idle FTP sessions pays that per
session in memory (about 1.1 KiB of the ~3 KiB an idle session cost) and
per connection in CPU and system calls (each a moment when the loop lets go
of the GIL and may wait to get it back).

``ControlTransport`` keeps what a control connection needs in slots: the
socket, the protocol, a write buffer made only when the client reads slower
than we answer, and the two addresses its listener already knows. It is an
``asyncio.Transport`` as far as its users can tell: the channel drives it as
it drives asyncio's, and ``loop.start_tls`` layers asyncio's TLS over it for
AUTH TLS and implicit FTPS (``_start_tls_compatible``, ``_force_close``,
``_paused`` and buffered-protocol reads are what asyncio's SSLProtocol asks
of the transport under it on Python 3.10-3.13).

Only for loops that are asyncio's selector loops (``serves``): uvloop's
transports are C and already small, and a proactor loop has no readers.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import selectors
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["ControlTransport", "serves", "set_control_options"]

log = logging.getLogger("vfsftp.session")

#: bytes asked of the kernel per read: command lines are short (up to 8 KiB,
#: protocol/lines.py), and each read allocates this much before shrinking
READ_SIZE = 8 * 1024
#: write-buffer limits, asyncio's defaults: past HIGH the protocol is asked
#: to pause (a client that stops reading), below LOW to resume
HIGH_WATER = 64 * 1024
LOW_WATER = HIGH_WATER // 4

_RETRY = (BlockingIOError, InterruptedError)


def set_control_options(sock: socket.socket) -> None:
    """The control connection's socket options."""
    # TCP_NODELAY: a reply must not wait for the client's ACK of the last
    # one (asyncio's and uvloop's transports set it too). SO_OOBINLINE:
    # ftplib's abort() sends ABOR's IAC with MSG_OOB; keep that urgent byte
    # in the stream instead of losing a byte of the line.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)


def _add_reader(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    callback: Callable[[], None],
    context: contextvars.Context,
) -> None:
    """``loop.add_reader(fd, callback)`` (BaseSelectorEventLoop._add_reader)
    without two costs of every call: the check that no asyncio transport
    owns ``fd`` (a lookup that raises KeyError each time) and a copy of the
    current context per registration (64 bytes an idle connection keeps):
    ``context`` is one the caller shares."""
    handle = asyncio.Handle(callback, (), loop, context)
    selector: selectors.BaseSelector = loop._selector  # type: ignore[attr-defined]
    try:
        key = selector.get_key(fd)
    except KeyError:
        selector.register(fd, selectors.EVENT_READ, (handle, None))
    else:
        mask, (reader, writer) = key.events, key.data
        selector.modify(fd, mask | selectors.EVENT_READ, (handle, writer))
        if reader is not None:
            reader.cancel()


def _remove_reader(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """``loop.remove_reader(fd)`` without the same per-call check that no
    asyncio transport owns ``fd`` (see _add_reader)."""
    loop._remove_reader(fd)  # type: ignore[attr-defined]


def serves(loop: asyncio.AbstractEventLoop) -> bool:
    """True when ``loop`` is asyncio's own selector loop (readers, writers)."""
    return isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)


class ControlTransport(asyncio.Transport):
    """One accepted, non-blocking TCP connection driving one protocol."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "_closing",
        "_conn_lost",
        "_context",
        "_fd",
        "_high",
        "_loop",
        "_low",
        "_paused",
        "_peername",
        "_protocol",
        "_protocol_paused",
        "_sock",
        "_sockname",
    )

    #: loop.start_tls accepts it (asyncio checks this attribute)
    _start_tls_compatible = True

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        peername: Any,
        sockname: Any = None,
        context: contextvars.Context | None = None,
    ) -> None:
        """``sock``: accepted and non-blocking. ``peername``: as accept()
        gave it; ``sockname``: the local address if the listener knows it
        (bound to one address), else None (asked of the kernel when
        wanted). ``context``: what its read callbacks run in, shared by
        the connections of one listener (the protocol enters a session's
        own); default, a copy of the current one."""
        self._loop = loop
        self._context = contextvars.copy_context() if context is None else context
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._protocol: asyncio.BaseProtocol | None = None
        self._buffered = False
        self._buffer: bytearray | None = None  # what the kernel did not take yet
        self._closing = False
        self._paused = True  # until start() lets the protocol read
        self._conn_lost = 0
        self._protocol_paused = False
        self._high = HIGH_WATER
        self._low = LOW_WATER
        self._peername = peername
        self._sockname = sockname

    def start(self, protocol: asyncio.BaseProtocol) -> None:
        """Tell ``protocol`` of the connection, then read for it (unless it
        paused reading or closed meanwhile, as a refusal or implicit TLS
        does). Called at once, in the accepting callback: no Task, no loop
        iteration between the accept and the greeting."""
        self.set_protocol(protocol)
        self._paused = False
        try:
            protocol.connection_made(self)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "protocol.connection_made() failed")
            return
        finally:
            # Kept while the protocol asks for it (in connection_made); later
            # asked of the kernel: 90 bytes an idle session need not hold.
            self._peername = None
        if not self._paused and not self._closing:
            _add_reader(self._loop, self._fd, self, self._context)

    # ------------------------------------------------------------ the interface

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop it runs on, for its protocol to keep (see Channel.loop)."""
        return self._loop

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "peername":
            if self._peername is None and self._sock is not None:
                try:
                    return self._sock.getpeername()
                except OSError:
                    return default
            return self._peername
        if name == "sockname":
            if self._sockname is None and self._sock is not None:
                try:
                    self._sockname = self._sock.getsockname()
                except OSError:
                    return default
            return self._sockname
        return default

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        _remove_reader(self._loop, self._fd)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        _add_reader(self._loop, self._fd, self, self._context)

    def get_write_buffer_size(self) -> int:
        return len(self._buffer) if self._buffer is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data or self._conn_lost:
            # (as asyncio's transports: dropped once the connection is over,
            # which the protocol hears of from connection_lost; after close()
            # and before the buffer is sent, added to it)
            return
        if self._buffer is None:
            try:
                n = self._sock.send(data)  # type: ignore[union-attr]
            except _RETRY:
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "send failed")
                return
            if n == len(data):
                return
            self._buffer = bytearray(memoryview(data)[n:])
            self._loop.add_writer(self._fd, self._write_ready)
        else:
            self._buffer += data
        self._maybe_pause_protocol()

    def close(self) -> None:
        """Stop reading; the connection ends once what is buffered is sent."""
        if self._closing:
            return
        self._closing = True
        if not self._paused:
            _remove_reader(self._loop, self._fd)
        if self._buffer is None:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        self._force_close(None)

    # ------------------------------------------------------------ the loop's callbacks

    def _read_ready(self) -> None:
        if self._conn_lost:
            return
        protocol: Any = self._protocol
        buffered = self._buffered  # (asyncio's SSLProtocol, 3.11+, reads into its buffer)
        got: Any
        try:
            if buffered:
                buf = protocol.get_buffer(-1)
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
                got = self._sock.recv_into(buf)  # type: ignore[union-attr]
            else:
                got = self._sock.recv(READ_SIZE)  # type: ignore[union-attr]
        except _RETRY:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "read failed")
            return
        if not got:
            self._end_of_input()
            return
        try:
            if buffered:
                protocol.buffer_updated(got)
            else:
                protocol.data_received(got)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            what = "buffer_updated" if buffered else "data_received"
            self._fatal_error(exc, f"protocol.{what}() failed")

    #: The transport is its own read callback: the loop's reader handle then
    #: holds it, not a bound method made per add_reader (64 bytes an idle
    #: session would keep).
    __call__ = _read_ready

    def _end_of_input(self) -> None:
        self.pause_reading()
        try:
            keep_open = self._protocol.eof_received()  # type: ignore[union-attr]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "protocol.eof_received() failed")
            return
        if not keep_open:
            self.close()

    def _write_ready(self) -> None:
        if self._conn_lost or self._buffer is None:
            return
        try:
            n = self._sock.send(self._buffer)  # type: ignore[union-attr]
        except _RETRY:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "send failed")
            return
        if n:
            del self._buffer[:n]
        if self._buffer:
            self._maybe_resume_protocol()
            return
        self._buffer = None
        self._loop.remove_writer(self._fd)
        self._maybe_resume_protocol()  # (may write again)
        if self._closing and self._buffer is None:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def _maybe_pause_protocol(self) -> None:
        if self._protocol_paused or self.get_write_buffer_size() <= self._high:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()  # type: ignore[union-attr]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report(exc, "protocol.pause_writing() failed")

    def _maybe_resume_protocol(self) -> None:
        if not self._protocol_paused or self.get_write_buffer_size() > self._low:
            return
        self._protocol_paused = False
        try:
            self._protocol.resume_writing()  # type: ignore[union-attr]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report(exc, "protocol.resume_writing() failed")

    # ------------------------------------------------------------ the end

    def _report(self, exc: BaseException, message: str) -> None:
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
        )

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        # A connection the client reset or broke is the protocol's news
        # (connection_lost gets the error), not the loop's: as asyncio's own.
        if not isinstance(exc, OSError):
            self._report(exc, message)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        """Drop what is buffered and end the connection now (asyncio's
        SSLProtocol calls this on a failed handshake or a TLS error)."""
        if self._conn_lost:
            return
        if self._buffer is not None:
            self._buffer = None
            self._loop.remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            if not self._paused:
                _remove_reader(self._loop, self._fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._protocol is not None:
                self._protocol.connection_lost(exc)  # type: ignore[arg-type]
        finally:
            if self._sock is not None:
                self._sock.close()
            self._sock = None
            self._protocol = None

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else "closing" if self._closing else "open"
        peer = self.get_extra_info("peername")
        return f"<ControlTransport fd={self._fd} {state} peer={peer!r}>"
