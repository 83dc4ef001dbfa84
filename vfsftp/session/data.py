"""Data connections: passive listeners, active connects with bounce
protection, and the transfer loops.

A transfer runs whole in a worker thread on a blocking socket: the file reads
(or writes) and the socket I/O alternate there without a hop through the event
loop per chunk, and a plain file on a real disk goes out with ``sendfile``.
The event loop only starts it, and aborts it by shutting the socket down
(ABOR, QUIT, idle timeout, server shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import itertools
import logging
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO

from .. import fastpaths
from ..protocol.ascii import AsciiDecoder, AsciiEncoder
from ..protocol.errors import FTPError
from ..protocol.proxy import ProxyHeader, ProxyHeaderError, parse_proxy_header
from ..storage.memory import MemorySnapshot
from .failures import Fault, TransferAborted
from .tls import unwrap_quietly

__all__ = [
    "ABORTED",
    "PassiveListener",
    "TransferAborted",
    "TransferState",
    "connect_active",
    "open_passive",
    "peer_state",
    "read_proxy_header",
    "recv_stream",
    "rotated_range",
    "send_body",
    "send_bytes",
    "send_stream",
]

CHUNK = 256 * 1024
#: uploads: fewer, larger recv/write rounds cost less CPU per GiB than
#: CHUNK-sized ones; downloads stay at CHUNK, which does better there
RECV_CHUNK = 1024 * 1024
#: bytes per sendfile(2) call: abort and progress (STAT) are checked between.
#: Linux splices a larger call through a 64 KiB pipe and hands TCP every
#: piece but the last with MSG_MORE, so it holds them back (corked): the
#: client's socket then fills in bursts and drains dry in between. With one
#: pipe's worth per call each goes out at once (curl, lftp and ftpload.c all
#: ran faster, at less server CPU per GiB: benchmarks/RESULTS.md).
SENDFILE_CHUNK = 64 * 1024
#: TCP_NOTSENT_LOWAT of a download's socket: sendfile waits while this much
#: is queued unsent. A deep unsent queue is sent on from wherever the
#: client's ACKs are processed, its other core on loopback, as well as from
#: the transfer thread's: segments then arrive out of order (TCPOFOQueue)
#: and the client's receive path leaves its fast path.
NOTSENT_LOWAT = 128 * 1024
_TCP_NOTSENT_LOWAT: int | None = getattr(socket, "TCP_NOTSENT_LOWAT", None)
THROTTLED_CHUNK = 16 * 1024  # smooth pacing under a rate limit
BODY_CHUNK = 256 * 1024  # send_body: the stall deadline restarts per chunk
_MSG_MORE = fastpaths.MSG_MORE

log = logging.getLogger("vfsftp.session")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


#: the fault of a transfer stopped by ABOR
ABORTED = Fault("abor", "ABOR received")


@dataclass
class TransferState:
    """Shared between the event loop (STAT, ABOR) and the transfer thread."""

    sock: socket.socket
    verb: str
    path: str
    started: float = field(default_factory=time.monotonic)
    bytes: int = 0
    aborted: bool = False
    abort_fault: Fault = ABORTED
    #: an upload's data connection has reached its end of file (when: monotonic)
    data_ended: bool = False
    ended_at: float | None = None
    #: an upload's checksum for the transfer log: (algorithm, hex)
    checksum: tuple[str, str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def abort(self, fault: Fault = ABORTED) -> None:
        """Stop the transfer from any thread: the blocked send/recv fails at once."""
        with self._lock:
            if not self.aborted:
                self.aborted, self.abort_fault = True, fault
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def check(self) -> None:
        if self.aborted:
            raise TransferAborted(self.abort_fault)


def normalize_ip(host: str) -> str:
    """``::ffff:1.2.3.4`` → ``1.2.3.4``, so an IPv4 client seen through an
    IPv6 socket compares equal to itself."""
    if host.count(".") == 3 and ":" not in host:
        return host  # plain IPv4 (the common case): nothing to normalise
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


#: Linux TCP states (include/net/tcp_states.h) once the peer's FIN has
#: arrived: CLOSE_WAIT, and LAST_ACK, CLOSING, TIME_WAIT after a close of
#: ours; CLOSE is what a reset leaves
_TCP_PEER_CLOSED = frozenset({8, 9, 11, 6})
_TCP_CLOSE = 7
_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None


def peer_state(sock: object) -> str:
    """What the kernel knows of a connection's peer right now, before the
    event loop has read up to it: ``"open"``, ``"closed"`` (its FIN has
    arrived, perhaps behind data not read yet), ``"reset"``, or
    ``"unknown"`` (no TCP_INFO on this system, or the socket is closed).
    ``sock``: a socket, or a transport's stand-in for one."""
    getsockopt = getattr(sock, "getsockopt", None)
    if _TCP_INFO is None or getsockopt is None:
        return "unknown"
    try:
        info = getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 8)
    except (OSError, ValueError, TypeError):
        return "unknown"
    state = info[0]  # tcpi_state
    if state in _TCP_PEER_CLOSED:
        return "closed"
    return "reset" if state == _TCP_CLOSE else "open"


# ---------------------------------------------------------------- passive


def in_networks(ip: str, networks: Iterable[IPNetwork]) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    return any(addr in net for net in networks)


async def read_proxy_header(sock: socket.socket, timeout: float) -> ProxyHeader:
    """The PROXY protocol header at the start of a connection (a
    non-blocking socket), read exactly: what follows it stays unread.
    Raises ProxyHeaderError (also when it does not come within
    ``timeout`` seconds, or the connection ends first) or OSError.

    A reader callback and a timer, not ``wait_for`` (see accept)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    buf = b""
    while True:
        need = parse_proxy_header(buf)
        if isinstance(need, ProxyHeader):
            return need
        try:
            chunk = sock.recv(need)
        except (BlockingIOError, InterruptedError):
            if not await _readable(loop, sock, deadline):
                raise ProxyHeaderError(f"no PROXY header within {timeout:g}s") from None
            continue
        if not chunk:
            raise ProxyHeaderError("the connection ended inside the PROXY header")
        buf += chunk


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float) -> bool:
    """Wait until ``sock`` is readable (True) or the deadline passes."""
    fut: asyncio.Future[bool] = loop.create_future()

    def done(result: bool) -> None:
        if not fut.done():
            fut.set_result(result)

    fd = sock.fileno()
    loop.add_reader(fd, done, True)
    timer = loop.call_at(deadline, done, False)
    try:
        return await fut
    finally:
        timer.cancel()
        loop.remove_reader(fd)


class PassiveListener:
    """A listening socket opened by PASV/EPSV, waiting for the client."""

    def __init__(
        self,
        sock: socket.socket,
        expected_peer: str | None,
        balancers: tuple[IPNetwork, ...] = (),
        header_timeout: float = 5.0,
        port: int = 0,
    ) -> None:
        """``balancers``: networks whose connections start with a PROXY
        protocol header telling the client (server.proxy_protocol).
        ``port``: the one ``sock`` is bound to, if known (0: ask it)."""
        self.sock = sock
        self.port: int = port or sock.getsockname()[1]
        self.expected_peer = expected_peer  # None: any address (FXP allowed)
        self.balancers = balancers
        self.header_timeout = header_timeout
        #: the client's connection, taken by claim() (the port given back)
        self._claimed: tuple[socket.socket, tuple[str, int]] | None = None

    def claim(self) -> None:
        """Take the client's connection if it is already waiting, and stop
        listening: the port goes back to the passive range. Called before a
        data command asks storage anything, which may take long (a store
        that is down answers after its retries): the port must not be held
        meanwhile, or a slow backend uses up a fixed range and other
        sessions get 425. A client that connects later is accepted later.
        Behind PROXY-protocol balancers the connection is only known to be
        the client's once its header is read, in accept(): the port is held
        until then."""
        if self._claimed is not None or self.sock.fileno() < 0 or self.balancers:
            return
        try:
            conn = self._accept_waiting()
        except FTPError:
            return  # accept() reports it
        if conn is not None:
            self._claimed = conn
            self.sock.close()

    async def accept(self, timeout: float) -> socket.socket:
        """The first connection from the client's own address. Connections from
        elsewhere are closed (RFC 2577 §3: "port stealing"). Behind a load
        balancer every connection comes from the balancer: its PROXY header
        tells whose it is, and the same rule holds for that address."""
        if not self.balancers:
            return (await self._accept_one(timeout))[0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            conn, addr = await self._accept_one(max(0.0, deadline - loop.time()))
            peer = normalize_ip(str(addr[0]))
            if not in_networks(peer, self.balancers):
                return conn  # the expected client itself (_accept_waiting checked it)
            try:
                left = max(0.0, deadline - loop.time())
                header = await read_proxy_header(conn, min(self.header_timeout, left))
            except (ProxyHeaderError, OSError) as exc:
                log.warning("data connection from %s refused: %s", peer, exc)
                conn.close()
                continue
            except BaseException:
                conn.close()
                raise
            if header.source is not None:
                peer = normalize_ip(header.source[0])
            if self.expected_peer is None or peer == self.expected_peer:
                conn.setblocking(True)  # as accept() hands out the others
                return conn
            conn.close()

    async def _accept_one(self, timeout: float) -> tuple[socket.socket, tuple[str, int]]:
        """A reader callback and one timer, rather than
        ``wait_for(sock_accept)`` which costs a task per transfer."""
        claimed = self._claimed
        if claimed is not None:
            self._claimed = None
            return claimed
        # Most clients connect as soon as they read the PASV/EPSV reply,
        # before they send RETR: then it is already waiting (no reader, timer
        # or future, and the transfer need not wait at all; see eager.start).
        got = self._accept_waiting()
        if got is not None:
            return got
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[socket.socket, tuple[str, int]]] = loop.create_future()
        fd = self.sock.fileno()

        def readable() -> None:
            if fut.done():
                return
            try:
                got = self._accept_waiting()
            except FTPError as exc:
                fut.set_exception(exc)
                return
            if got is not None:
                fut.set_result(got)

        def expired() -> None:
            if not fut.done():
                fut.set_exception(
                    FTPError(
                        425,
                        "Can't open data connection: client did not connect in time",
                    )
                )

        loop.add_reader(fd, readable)
        timer = loop.call_later(timeout, expired)
        try:
            return await fut
        except asyncio.CancelledError:
            # Cancelled (ABOR, shutdown) just as the client connected: the
            # accepted socket would otherwise leak.
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                fut.result()[0].close()
            raise
        finally:
            timer.cancel()
            loop.remove_reader(fd)

    def _accept_waiting(self) -> tuple[socket.socket, tuple[str, int]] | None:
        """A connection already waiting from the expected address (or from
        a balancer), if any; others are closed on the way."""
        while True:
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                raise FTPError(425, f"Can't open data connection: {exc.strerror or exc}") from None
            peer = normalize_ip(addr[0])
            if (
                self.expected_peer is None
                or peer == self.expected_peer
                or (self.balancers and in_networks(peer, self.balancers))
            ):
                if self.balancers:
                    conn.setblocking(False)  # its PROXY header is read on the loop
                return conn, addr
            conn.close()

    def close(self) -> None:
        self.sock.close()
        if self._claimed is not None:
            self._claimed[0].close()
            self._claimed = None


#: where the next search of each passive port range starts (see open_passive)
_next_port: dict[tuple[int, int], int] = {}


def rotated_range(low: int, high: int, start: int) -> range | itertools.chain[int]:
    """The ports ``low``..``high``, from ``start`` round to ``start - 1``."""
    if not low <= start <= high:
        start = low
    if start == low:
        return range(low, high + 1)
    return itertools.chain(range(start, high + 1), range(low, start))


def _nonblocking_socket(family: socket.AddressFamily) -> socket.socket:
    """A TCP socket for a data connection, non-blocking from its creation
    where Linux allows it. Each system call made on the event loop lets a
    waiting thread take the GIL, which the loop then waits to get back (up
    to sys.getswitchinterval() when that thread runs Python code):
    SOCK_NONBLOCK saves the ioctl of setblocking(False)."""
    sock = socket.socket(family, socket.SOCK_STREAM | fastpaths.SOCK_NONBLOCK)
    if not fastpaths.SOCK_NONBLOCK:
        sock.setblocking(False)
    return sock


def _reuse_time_wait(sock: socket.socket) -> None:
    """Let the listener bind a port whose earlier connections sit in
    TIME_WAIT: the server closes first after RETR and listings, so without
    this every port of a fixed range is refused for a minute after one use.
    A port on which another socket listens stays refused (EADDRINUSE) on
    Linux and the BSDs, within this process and across --workers. Windows
    binds over TIME_WAIT anyway, and its SO_REUSEADDR would let a port be
    taken from a listener: there the exclusive use is asked for instead."""
    exclusive = getattr(socket, "SO_EXCLUSIVEADDRUSE", None)  # Windows only
    if exclusive is not None:
        sock.setsockopt(socket.SOL_SOCKET, exclusive, 1)
    else:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


def open_passive(
    bind_host: str,
    family: socket.AddressFamily,
    port_range: tuple[int, int] | None,
    expected_peer: str | None,
    balancers: tuple[IPNetwork, ...] = (),
    header_timeout: float = 5.0,
) -> PassiveListener:
    """Bind a listener on the control connection's local address, on a port
    from the configured range or an ephemeral one.

    The range is used in turn: each search starts after the port the last
    one took (the first at a random port, so that --workers processes and
    restarts do not all crowd its low end), and a port that is busy
    (listening for another session, here or in another process) is
    skipped."""
    candidates: range | itertools.chain[int]
    if port_range is None:
        candidates = range(1)  # port 0: the kernel's choice
    else:
        low, high = port_range
        start = _next_port.get(port_range)
        if start is None:
            start = random.randint(low, high)
        candidates = rotated_range(low, high, start)
    last: OSError | None = None
    for port in candidates:
        # (The port known from the range is not asked back with
        # getsockname(): see _nonblocking_socket.)
        sock = _nonblocking_socket(family)
        try:
            if port:
                _reuse_time_wait(sock)
            sock.bind((bind_host, port))
            # Another process may have bound the port a moment ago without
            # listening yet: its listen() or this one fails, never both.
            sock.listen(1)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        if port_range is not None:
            _next_port[port_range] = port + 1 if port < port_range[1] else port_range[0]
        return PassiveListener(sock, expected_peer, balancers, header_timeout, port)
    detail = f" ({last.strerror})" if last is not None and last.strerror else ""
    raise FTPError(425, f"Can't open passive connection: no free port{detail}")


# ---------------------------------------------------------------- active


async def connect_active(
    host: str, port: int, family: socket.AddressFamily, bind_host: str, timeout: float
) -> socket.socket:
    """Connect to the address given by PORT/EPRT, from the control
    connection's local address (RFC 959 §3.2 — some firewalls check it)."""
    loop = asyncio.get_running_loop()
    sock = _nonblocking_socket(family)
    try:
        with contextlib.suppress(OSError):
            sock.bind((bind_host, 0))
        # A writer callback and one timer, not wait_for(sock_connect): since
        # 3.12 wait_for needs to run inside a Task (asyncio.timeout), and this
        # may run in eager.start's first step, outside any (or in the caller's).
        err = sock.connect_ex((host, port))
        if err in (errno.EINPROGRESS, errno.EINTR):
            fut: asyncio.Future[None] = loop.create_future()

            def writable() -> None:
                if not fut.done():
                    fut.set_result(None)

            def expired() -> None:
                if not fut.done():
                    fut.set_exception(
                        FTPError(425, "Can't open data connection: connect timed out")
                    )

            loop.add_writer(sock.fileno(), writable)
            timer = loop.call_later(timeout, expired)
            try:
                await fut
            finally:
                timer.cancel()
                loop.remove_writer(sock.fileno())
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
    except OSError as exc:
        sock.close()
        raise FTPError(425, f"Can't open data connection: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise
    return sock


def check_active_target(
    client_ip: str, host: str, port: int, permit_foreign: bool, permit_privileged: bool
) -> None:
    """Bounce-attack protection (RFC 2577 §3): only the client's own address,
    and no privileged port, unless the configuration allows it."""
    if not permit_foreign and normalize_ip(host) != normalize_ip(client_ip):
        raise FTPError(501, "Rejected: data connection to a third-party address")
    if not permit_privileged and port < 1024:
        raise FTPError(501, "Rejected: data connection to a privileged port")


# ---------------------------------------------------------------- transfers
# Blocking functions, run in a worker thread. Each returns the bytes moved on
# the wire side and raises TransferAborted on ABOR, OSError on network errors.


def prepare_blocking(sock: socket.socket, timeout: float) -> None:
    sock.setblocking(True)
    # A stalled peer ends the transfer after `timeout` without progress.
    sock.settimeout(timeout)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _finish_send(state: TransferState) -> None:
    if isinstance(state.sock, ssl.SSLSocket):
        # TLS: close_notify both ways, so the client can tell a whole file
        # from a cut one (RFC 4217 §9; ftplib and curl check it).
        unwrap_quietly(state.sock)
        return
    # Half-close, then let close() send FIN: the client sees end-of-file only
    # after every byte was handed to the kernel.
    with contextlib.suppress(OSError):
        state.sock.shutdown(socket.SHUT_WR)


async def send_body(state: TransferState, data: bytes, stall_timeout: float) -> int:
    """Send ``data`` from the event loop (a listing, a small file): no thread
    hop. As on the blocking sockets of transfer threads, a client that takes
    no data for ``stall_timeout`` seconds is cut off (TimeoutError); the
    deadline restarts with every chunk that goes out."""
    sock = state.sock
    sock.setblocking(False)
    stalled = False

    def stall() -> None:
        nonlocal stalled
        stalled = True
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # the pending send fails at once

    view = memoryview(data)
    state.check()
    i = 0
    # A small body usually fits in the socket's buffer at once: one send,
    # no timer (a cancelled timer stays in the loop's heap until it expires).
    # MSG_MORE holds it back for _finish_send's FIN: data and FIN then go
    # out in one segment, not two.
    more = _MSG_MORE if len(view) <= BODY_CHUNK else 0
    with contextlib.suppress(BlockingIOError, InterruptedError):
        i = sock.send(view[:BODY_CHUNK], more)
    state.bytes += i
    if i < len(view):
        # The rest waits for the client: only now the loop and TCP_NODELAY
        # (get_running_loop() is a getpid() call on Python 3.11; one send
        # needs no TCP_NODELAY, the FIN after it pushes what MSG_MORE held).
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while i < len(view):
            state.check()
            chunk = view[i : i + BODY_CHUNK]
            timer = loop.call_later(stall_timeout, stall)
            try:
                await loop.sock_sendall(sock, chunk)
            except OSError:
                if stalled and not state.aborted:
                    raise TimeoutError("no data moved") from None
                raise
            finally:
                timer.cancel()
            state.bytes += len(chunk)
            i += len(chunk)
    state.check()
    _finish_send(state)
    return state.bytes


def send_bytes(state: TransferState, data: bytes, offset: int = 0) -> int:
    """``data`` from ``offset`` → socket, in slices of it (no copies)."""
    state.check()
    view = memoryview(data)[offset:]
    for i in range(0, len(view), CHUNK):
        state.check()
        state.sock.sendall(view[i : i + CHUNK])
        state.bytes += min(CHUNK, len(view) - i)
    state.check()
    _finish_send(state)
    return state.bytes


def send_chunks(state: TransferState, chunks: Iterable[bytes]) -> int:
    """Each of ``chunks`` → socket as it is made (a listing streamed in
    bounded memory); the next is made only once the last went out, so a
    client that is gone stops the making too."""
    for data in chunks:
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            state.check()
            state.sock.sendall(view[i : i + CHUNK])
            state.bytes += min(CHUNK, len(view) - i)
    state.check()
    _finish_send(state)
    return state.bytes


def _sendfile(state: TransferState, fd: int, offset: int) -> None:
    """File → socket with blocking ``sendfile(2)`` calls of SENDFILE_CHUNK, as
    vsftpd does. socket.sendfile() on a socket with a timeout polls before
    every call instead (twice the syscalls, 0.5x vsftpd's RETR rate here).
    The stall timeout becomes SO_SNDTIMEO: a call that moves nothing for
    that long fails with EAGAIN."""
    sock = state.sock
    timeout = sock.gettimeout()
    out = sock.fileno()
    sock.settimeout(None)
    if timeout:
        seconds = int(timeout)
        micros = int((timeout - seconds) * 1e6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, micros))
    if _TCP_NOTSENT_LOWAT is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
    try:
        while True:
            state.check()
            try:
                sent = os.sendfile(out, fd, offset, SENDFILE_CHUNK)
            except BlockingIOError:
                raise TimeoutError("no data moved") from None
            if sent == 0:
                return
            offset += sent
            state.bytes += sent
    finally:
        if timeout:
            with contextlib.suppress(OSError):
                sock.settimeout(timeout)


def send_stream(
    state: TransferState,
    f: IO[bytes],
    ascii_mode: bool,
    offset: int,
    use_sendfile: bool,
    throttle: Callable[[int], None] | None = None,
) -> int:
    """File → socket from ``offset``. ``sendfile`` (zero-copy) is used for a
    binary transfer of a real file on a plain socket, and an in-memory file
    is sent from its own bytes."""
    state.check()
    if isinstance(f, MemorySnapshot) and not ascii_mode and throttle is None:
        return send_bytes(state, f.content, offset)
    if offset:
        f.seek(offset)
    if use_sendfile and not ascii_mode and throttle is None:
        try:
            fd_ok = f.fileno() >= 0
        except (OSError, AttributeError, ValueError):
            fd_ok = False
        if fd_ok and fastpaths.SENDFILE and not isinstance(state.sock, ssl.SSLSocket):
            _sendfile(state, f.fileno(), offset)
            state.check()
            _finish_send(state)
            return state.bytes
    encoder = AsciiEncoder() if ascii_mode else None
    read = f.read
    size = CHUNK if throttle is None else THROTTLED_CHUNK
    while True:
        state.check()
        chunk = read(size)
        if not chunk:
            break
        if encoder is not None:
            chunk = encoder.encode(chunk)
        state.sock.sendall(chunk)
        state.bytes += len(chunk)
        if throttle is not None:
            throttle(len(chunk))
    state.check()
    _finish_send(state)
    return state.bytes


def recv_stream(
    state: TransferState,
    f: IO[bytes],
    ascii_mode: bool,
    throttle: Callable[[int], None] | None = None,
) -> int:
    """Socket → file until the client closes the data connection (EOF is the
    end of file in stream mode, RFC 959 §3.4.1)."""
    decoder = AsciiDecoder() if ascii_mode else None
    buf = bytearray(RECV_CHUNK if throttle is None else THROTTLED_CHUNK)
    view = memoryview(buf)
    recv_into = state.sock.recv_into
    write = f.write
    while True:
        state.check()
        n = recv_into(buf)
        if n == 0:
            state.data_ended, state.ended_at = True, time.monotonic()
            break
        state.bytes += n
        if decoder is not None:
            write(decoder.decode(bytes(view[:n])))
        else:
            write(view[:n])
        if throttle is not None:
            throttle(n)
    state.check()
    if decoder is not None:
        tail = decoder.flush()
        if tail:
            write(tail)
    if isinstance(state.sock, ssl.SSLSocket):
        unwrap_quietly(state.sock)  # answer the client's close_notify
    return state.bytes
