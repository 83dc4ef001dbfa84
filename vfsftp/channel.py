"""The control connection: read → parse → preflight → dispatch → reply.

One ``FTPChannel`` per client (Medusa's ``ftp_channel``). It is the one place
where an ``FTPError`` becomes a reply and an unexpected exception becomes a
logged 451, and it owns the session's single data transfer, which runs as a
task so that ABOR and STAT are answered while it goes on (RFC 959 §4.1.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import data as datamod
from . import eager
from .commands import IMMEDIATE_DURING_TRANSFER, REGISTRY, Invocation, preflight
from .data import PassiveListener, TransferAborted, TransferState, normalize_ip
from .errors import FTPError, map_fs_error
from .observability import new_session_id, session_id
from .protocol import (
    MLST_DEFAULT_FACTS,
    TOO_LONG,
    LineBuffer,
    Reply,
    encode_reply,
    parse_command,
)
from .throttle import TokenBucket
from .tls import wrap_data_socket

if TYPE_CHECKING:
    from .auth import Account
    from .server import FTPServer
    from .vfs import SessionFS

__all__ = ["FTPChannel", "SessionState"]

log = logging.getLogger("vfsftp.session")

#: command lines queued before the channel stops reading from the client
_MAX_PENDING = 64
#: seconds a closed connection may take to go away before it is cut
_CLOSE_GRACE = 2.0
#: held replies are written at once past this size or count (see reply)
_CORK_LIMIT = 16 * 1024
_CORK_REPLIES = 16

# Errors of the storage side during a transfer (the rest are the network's).
_STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES}
)


class TLSHandshakeFailed(ConnectionError):
    """The TLS handshake after AUTH TLS failed: the session ends (quietly,
    not as an internal error)."""


@dataclass(slots=True)
class SessionState:
    """Everything a session remembers between commands."""

    username: str | None = None  # from USER, until PASS
    account: Account | None = None
    fs: SessionFS | None = None
    login_failures: int = 0
    transfer_type: str = "A"  # RFC 959 §3.1.1: ASCII is the default
    rest_offset: int = 0
    rename_from: str | None = None
    epsv_all: bool = False
    utf8: bool = True  # RFC 2640: UTF-8 is our only path encoding
    mlst_facts: frozenset[str] = field(default_factory=lambda: MLST_DEFAULT_FACTS)
    passive: PassiveListener | None = None
    secure: bool = False  # control connection is TLS (AUTH TLS or implicit)
    pbsz: bool = False
    prot: str = "C"  # RFC 4217 §9: data connections clear until PROT P
    require_data_tls: bool = False
    active_addr: tuple[str, int, socket.AddressFamily] | None = None
    #: this session's own rate limits ("down", "up"), see FTPServer.throttle_for
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    @property
    def logged_in(self) -> bool:
        return self.account is not None


@dataclass
class Transfer:
    """The session's running transfer (``FTPChannel.transfer`` is None when
    there is none: the transfer clears it as it ends)."""

    verb: str
    path: str
    #: None while the transfer's first step runs (see eager.start); a
    #: transfer that never waits is over before it would be set
    task: asyncio.Task[None] | None = None
    state: TransferState | None = None
    #: set by abort_transfer(); checked once more before the thread starts,
    #: because asyncio.wait_for (before 3.12) can swallow a cancellation
    #: that races with the data connection being accepted
    abort_requested: bool = False


class FTPChannel(asyncio.Protocol):
    """One control connection, as an ``asyncio.Protocol``: no StreamReader,
    StreamWriter or parked task per connection (they doubled the memory of
    an idle session and cost a future and a task wake-up per command). A
    task runs only while commands are being handled; an idle session is
    this object, its transport and a timer."""

    # Slots: thousands of idle sessions each hold one of these.
    __slots__ = (
        "_admitted",
        "_busy",
        "_closed",
        "_context",
        "_corked",
        "_drained",
        "_ending",
        "_eof",
        "_finished",
        "_gone",
        "_idle_timer",
        "_last_activity",
        "_lost",
        "_pending",
        "_reading_paused",
        "_stopping",
        "_write_paused",
        "closing",
        "config",
        "family",
        "implicit_tls",
        "lines",
        "local_ip",
        "peer",
        "peer_ip",
        "quit_requested",
        "server",
        "started",
        "state",
        "tls_context",
        "tls_handshake_timeout",
        "transfer",
        "transport",
    )
    transport: asyncio.Transport

    def __init__(self, server: FTPServer, implicit_tls: bool = False) -> None:
        self.server = server
        # The session keeps the settings and TLS context it started with,
        # whatever a config reload does meanwhile.
        self.config = server.config
        self.tls_context = server.tls_context
        self.tls_handshake_timeout = server.tls_handshake_timeout
        self.family: socket.AddressFamily = socket.AF_INET
        self.peer_ip = "?"
        self.peer = "?"
        self.local_ip = "127.0.0.1"
        self.state = SessionState()
        self.implicit_tls = implicit_tls
        if implicit_tls:
            # Implicit FTPS: TLS from the first byte, and data connections
            # protected unless the client asks for PROT C.
            self.state.secure, self.state.pbsz, self.state.prot = True, True, "P"
        # Room for a command and a path of MAX_PATH_BYTES (4096).
        self.lines = LineBuffer(max_line=8192)
        # Made when lines arrive, dropped when handled: an empty deque is
        # ~600 bytes, as much as the rest of an idle session.
        self._pending: deque[bytes | object] | None = None
        self._busy = False  # handling commands, or closing
        self._stopping = False  # server shutdown: no command after the one in hand
        # Replies held while commands are handled without waiting, and sent
        # in one write when that step ends (see _spawn); None: write at once.
        self._corked: list[bytes] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None  # made by close() if it must wait
        self._gone = False  # connection_lost has run
        self._reading_paused = False
        self._admitted = False
        self._context = contextvars.Context()  # the session's (connection_made)
        self._eof = False  # the client closed its side (or the connection broke)
        self.transfer: Transfer | None = None
        self.closing = False
        self._closed = False  # close() has run (it may be called twice)
        self._ending = False  # close() has closed the transport
        self._finished = False  # the session is over: logged, counts released
        self.quit_requested = False
        self.started = time.monotonic()

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Every task and timer of the session runs in a context of its own,
        # where session_id names it in log lines and transfer records.
        self._context = contextvars.copy_context()
        self._context.run(session_id.set, new_session_id())
        self._context.run(self._made, transport)
        if self.implicit_tls and self._admitted:
            # Outside _made: eager.start can enter the session's context only
            # from outside it, and so runs loop.start_tls up to the handshake
            # now. Its SSLProtocol.connection_made must be scheduled before
            # the first read: on 3.10 the transport's own deferred
            # _add_reader ignores the pause below, and a ClientHello read
            # before it is dropped (the handshake then times out).
            self._spawn(self._implicit_start())

    def _made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses)
        self.transport = transport  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.family = sock.family
            with contextlib.suppress(OSError):
                # ftplib's abort() sends ABOR with MSG_OOB: keep the urgent
                # byte in the stream instead of losing the line's last byte.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or ("127.0.0.1", 0)
        self.peer_ip = normalize_ip(str(peer[0]))
        self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
        self.local_ip = str(local[0])
        refusal = self.server.admit(self)
        if refusal is not None:
            # RFC 959 §4.2: 421 may be sent in answer to any command, and on connect.
            self.closing = self._closed = True
            self.transport.write(f"421 {refusal}\r\n".encode())
            self.transport.close()
            return
        self._admitted = True
        log.info("connect %s", self.peer)
        self._last_activity = loop.time()
        self._idle_timer = loop.call_later(
            self.config.server.idle_timeout, self._idle_check, context=self._context
        )
        if self.implicit_tls:
            # Nothing may be read in clear: the client's ClientHello must
            # reach the TLS layer that start_tls puts in place.
            self.transport.pause_reading()
        else:
            self.reply(220, self.config.server.banner)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        lines = self.lines.feed(data)
        if not lines:
            return
        self._last_activity = asyncio.get_running_loop().time()
        if self._pending is None:
            self._pending = deque(lines)
        else:
            self._pending.extend(lines)
        if len(self._pending) > _MAX_PENDING and not self._reading_paused:
            # A client pipelining faster than we answer: stop reading until
            # the queue drains (the kernel's buffers then push back on it).
            self._reading_paused = True
            self.transport.pause_reading()
        if not self._busy:
            self._spawn(self._process())

    def eof_received(self) -> bool | None:
        self._end_of_input()
        return False  # close the transport (flushing what is buffered)

    def connection_lost(self, exc: Exception | None) -> None:
        self._mark_gone()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._end_of_input()

    def pause_writing(self) -> None:
        # Only a client that stops reading fills the write buffer.
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _end_of_input(self) -> None:
        """The client closed (or the connection broke): end the session once
        the command in hand is answered."""
        if not self._admitted:
            return
        self._eof = True  # lines already received are still answered
        if not self._busy:
            self._spawn(self.close(wait=False))

    def _mark_gone(self) -> None:
        self._gone = True
        if self._ending:  # close() has closed the transport: the session is over
            self._finish()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Handle commands (or close) now, in the session's context; a task
        carries on only if a command has to wait (eager.start).

        The replies of this step go out in one write when it ends (it ends
        at the first wait, so no reply waits on the client): a RETR of a
        small file answers 150 and 226 in one segment, after the data went
        out, instead of two. On loopback every send also runs the
        receiver's side of TCP: sends were a third of a short session."""
        self._busy = True
        outer = self._corked is None
        if outer:
            self._corked = []
        try:
            task = eager.start(coro, self._context)
        except Exception as exc:
            log.error("%s: session task failed", self.peer, exc_info=exc)
            task = None
        finally:
            if outer:
                self._uncork()
        if task is None:
            self._idle()
        else:
            self.server.track(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.server.untrack(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: session task failed", self.peer, exc_info=task.exception())
        self._idle()

    def _idle(self) -> None:
        """The commands in hand are answered: go on with any that arrived
        meanwhile, or end the session."""
        self._busy = False
        if self._closed:
            return
        if self._stopping:
            self._goodbye_after_transfer()
            return
        if self._pending and not self.closing:
            self._spawn(self._process())
        elif self.closing or self._eof:
            self._spawn(self.close(wait=False))

    async def _drain(self) -> None:
        while self._write_paused and not self.transport.is_closing():
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    # ------------------------------------------------------------ output

    def reply(self, code: int, text: str | tuple[str, ...] = "") -> None:
        # No Reply object on the way: a reply per command is the hot path.
        if self.transport.is_closing():
            return
        if code >= 400:
            self.server.metrics.reply(code)
        data = encode_reply(code, text)
        corked = self._corked
        if corked is None:
            self.transport.write(data)
            return
        corked.append(data)
        if len(data) > _CORK_LIMIT or len(corked) > _CORK_REPLIES:
            # Big (STAT of a directory) or many (a pipelining client):
            # written now, so that a client that does not read fills the
            # transport's buffer and _process waits for it to drain.
            self._uncork()

    def _uncork(self) -> None:
        """Write the replies held back so far (and hold no more)."""
        corked, self._corked = self._corked, None
        if corked and not self.transport.is_closing():
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def send(self, reply: Reply) -> None:
        self.reply(reply.code, reply.text)

    @property
    def username(self) -> str:
        if self.state.account is not None:
            return self.state.account.name
        return self.state.username or "-"

    # ------------------------------------------------------------ commands

    async def _implicit_start(self) -> None:
        try:
            await self.start_tls()  # bounded by handshake_timeout
        except ConnectionError:
            await self.close()
            return
        self.reply(220, self.config.server.banner)

    def _idle_check(self) -> None:
        """One timer per session instead of a wait_for per read (which costs
        a task and a timer handle per command)."""
        if self.closing:
            return
        loop = asyncio.get_running_loop()
        idle = self.config.server.idle_timeout
        left = self._last_activity + idle - loop.time()
        if left > 0 or self.transfer is not None:  # a long transfer is not idleness
            self._idle_timer = loop.call_later(
                left if left > 0 else idle, self._idle_check, context=self._context
            )
            return
        self.reply(421, f"Idle timeout ({idle:g} seconds), closing control connection")
        log.info("idle timeout %s", self.peer)
        self.closing = True
        if not self._busy:
            self._spawn(self.close(wait=False))

    async def _process(self) -> None:
        """Handle the queued command lines, one at a time, then end (the
        next line that arrives starts a new task)."""
        try:
            while self._pending and not self.closing and not self._stopping:
                line = self._pending.popleft()
                if self._corked is None and self._pending:
                    # Pipelined lines: their replies go out together (reply()
                    # writes every _CORK_REPLIES, the callback at the latest
                    # on the next loop iteration, so none waits on the client).
                    # From 3.12 asyncio sums its whole write queue after every
                    # write: a write per reply to a client that does not read
                    # was quadratic (14 s against 0.9 s in test_hostile's flood).
                    self._corked = []
                    asyncio.get_running_loop().call_soon(self._uncork, context=self._context)
                if line is TOO_LONG:
                    self.reply(500, "Command line too long")
                else:
                    assert isinstance(line, bytes)
                    await self.handle_line(line)
                if self._write_paused:
                    await self._drain()
                if self._reading_paused and len(self._pending or ()) < _MAX_PENDING // 2:
                    self._reading_paused = False
                    if not self.transport.is_closing():
                        self.transport.resume_reading()
        except ConnectionError:  # TLSHandshakeFailed among them
            self.closing = True
        if not self._pending:
            self._pending = None
        if self.closing or self._eof:
            # The session ends when the connection is gone (connection_lost),
            # not in a task waiting for it.
            await self.close(wait=False)

    async def handle_line(self, line: bytes) -> None:
        cmd = parse_command(line)
        if not cmd.verb:
            return
        if log.isEnabledFor(logging.DEBUG):
            shown = "PASS ****" if cmd.verb == "PASS" else f"{cmd.verb} {cmd.arg}".rstrip()
            log.debug("%s %s > %s", self.peer, self.username, shown)
        spec = REGISTRY.get(cmd.verb)
        t = self.transfer
        if (
            t is not None
            and t.task is not None
            and (spec is None or cmd.verb not in IMMEDIATE_DURING_TRANSFER)
        ):
            # Commands that are not about the transfer wait for it, so that
            # its 226/426 comes before their reply.
            with contextlib.suppress(BaseException):
                await asyncio.shield(t.task)
        try:
            if spec is None:
                raise FTPError(500, f"Command {cmd.verb!r} not understood")
            inv: Invocation = preflight(spec, self.state, cmd.arg)
            if spec.opens_data and self.state.passive is not None:
                # Before storage is asked anything: see PassiveListener.claim.
                self.state.passive.claim()
            if inv.path and self.server.settling and self.state.fs is not None:
                await self.server.settle(self.state.fs, inv.path)
            await spec.handler(self, inv)
        except FTPError as err:
            self.send(err.reply)
        except TLSHandshakeFailed:
            raise
        except Exception:
            log.exception("%s %s: internal error in %s", self.peer, self.username, cmd.verb)
            self.reply(451, "Requested action aborted: local error in processing")
        finally:
            self._after_command(cmd.verb)

    def _after_command(self, verb: str) -> None:
        # RNFR must be followed at once by RNTO (RFC 959 §4.1.3), REST by the
        # transfer it restarts (RFC 3659 §5.3).
        if verb != "RNFR":
            self.state.rename_from = None
        if verb != "REST":
            self.state.rest_offset = 0

    # ------------------------------------------------------------ TLS

    async def start_tls(self) -> None:
        """Switch the control connection to TLS after the 234 reply. Nothing
        received in clear before the handshake is executed afterwards (the
        STARTTLS injection, CVE-2011-0411): the lines queued behind AUTH and
        a partial line are dropped here, and loop.start_tls pauses reading
        before it yields, so later bytes go to the TLS layer."""
        ctx = self.tls_context
        assert ctx is not None
        self._uncork()  # the 234 goes out in clear, before the handshake
        self.lines.clear()
        self._pending = None
        timeout = self.tls_handshake_timeout
        raw = self.transport
        loop = asyncio.get_running_loop()
        try:
            # Awaited directly, not through wait_for (a new task, so a loop
            # iteration): nothing may yield before start_tls pauses reading.
            new = await loop.start_tls(
                raw, self, ctx, server_side=True, ssl_handshake_timeout=timeout
            )
            if new is None:
                raise ConnectionResetError("connection closed during the TLS handshake")
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            log.info("%s: TLS handshake failed: %r", self.peer, exc)
            self._handshake_failed(raw)
            raise TLSHandshakeFailed("TLS handshake failed") from None
        except asyncio.CancelledError:
            self._handshake_failed(raw)
            raise
        self.transport = new
        self._reading_paused = False
        self.state.secure = True
        log.info("%s: control connection now TLS (%s)", self.peer, self.tls_version())

    def _handshake_failed(self, raw: asyncio.BaseTransport) -> None:
        """asyncio closes the socket but never tells this protocol (the TLS
        layer had taken its place): do its part of connection_lost."""
        self.closing = True
        raw.close()
        self._mark_gone()

    def tls_version(self) -> str:
        obj = self.transport.get_extra_info("ssl_object")
        return str(obj.version()) if obj is not None else "-"

    # ------------------------------------------------------------ data

    def close_passive(self) -> None:
        if self.state.passive is not None:
            self.state.passive.close()
            self.state.passive = None

    async def _open_data(self) -> socket.socket:
        timeout = self.config.server.data_timeout
        if self.state.passive is not None:
            listener = self.state.passive
            self.state.passive = None
            try:
                return await listener.accept(timeout)
            finally:
                listener.close()
        if self.state.active_addr is not None:
            host, port, family = self.state.active_addr
            self.state.active_addr = None
            bind = (
                self.local_ip
                if family == self.family
                else ("::" if family == socket.AF_INET6 else "0.0.0.0")
            )
            return await datamod.connect_active(host, port, family, bind, timeout)
        raise FTPError(425, "Use PORT, PASV, EPRT or EPSV first")

    def start_transfer(
        self,
        verb: str,
        path: str,
        work: Callable[[TransferState], int],
        opening: str,
        cleanup: Callable[[bool], None] | None = None,
        success_text: str = "Transfer complete",
        body: bytes | None = None,
    ) -> None:
        """Open the data connection, run ``work`` in a transfer thread and
        answer 226/426/451. ``cleanup(ok)`` runs in the thread afterwards
        (commit or discard of an upload, closing the file) whatever happened.

        ``body``: the whole content to send, already in memory (a listing, a
        small file read with its open). On a plain data connection it is
        sent from the event loop (non-blocking socket, no thread hop);
        ``work`` then runs only for PROT P, whose handshake is left to a
        thread.

        The transfer starts at once (eager.start): a small file or listing
        whose client has already connected is sent, and answered 226,
        before this returns; a task goes on with it otherwise."""
        t = self.transfer = Transfer(verb, path)
        task = eager.start(self._transfer(t, work, opening, cleanup, success_text, body))
        if task is not None and self.transfer is t:
            t.task = task

    async def _transfer(
        self,
        t: Transfer,
        work: Callable[[TransferState], int],
        opening: str,
        cleanup: Callable[[bool], None] | None,
        success_text: str,
        body: bytes | None = None,
    ) -> None:
        executor = self.server.transfer_executor
        verb, path = t.verb, t.path
        sock: socket.socket | None = None
        state: TransferState | None = None
        ok = False
        cleaned = False
        outcome = "fail"
        reply = Reply(426, "Connection closed; transfer aborted")

        def job(state: TransferState) -> int:
            # Work and cleanup (commit or discard of an upload, closing the
            # file) in one thread hop: small files cost one hop, not two.
            nonlocal cleaned
            done = False
            try:
                n = work(state)
                done = True
            finally:
                if cleanup is not None:
                    cleaned = True
                    cleanup(done)
            return n

        try:
            self.reply(150, opening)
            sock = await self._open_data()
            if body is not None and self.state.prot == "C" and cleanup is None:
                state = t.state = TransferState(sock, verb, path)
                if t.abort_requested:
                    raise TransferAborted()
                await datamod.send_body(state, body, self.config.server.stall_timeout)
                ok = True
            else:
                datamod.prepare_blocking(sock, self.config.server.stall_timeout)
                if self.state.prot == "P":
                    work = self._protected(work)
                state = t.state = TransferState(sock, verb, path)
                if t.abort_requested:
                    raise TransferAborted()
                await executor.run(job, state)
                ok = True
        except FTPError as err:
            reply = err.reply
        except TransferAborted:
            reply, outcome = Reply(426, "Transfer aborted"), "abort"
        except asyncio.CancelledError:
            reply, outcome = Reply(426, "Transfer aborted"), "abort"
        except OSError as exc:
            if state is not None and state.aborted:
                reply, outcome = Reply(426, "Transfer aborted"), "abort"
            elif isinstance(exc, TimeoutError):  # the data socket's timeout
                stall = self.config.server.stall_timeout
                log.info("%s %s: %s %s stalled", self.peer, self.username, verb, path)
                reply = Reply(426, f"No data moved for {stall:g} seconds; transfer aborted")
            elif exc.errno in _STORAGE_ERRNOS and not isinstance(exc, ssl.SSLError):
                # (an SSLError's errno is an SSL_ERROR_* code: SYSCALL is 5, EIO)
                reply = map_fs_error(exc, path).reply  # disk full 452, quota 552...
            else:
                reply = Reply(426, "Connection closed; transfer aborted")
        except Exception as exc:
            mapped = map_fs_error(exc, path)
            if mapped.reply.code == 451:
                log.exception(
                    "%s %s: transfer error in %s %s", self.peer, self.username, verb, path
                )
            reply = mapped.reply
        finally:
            if cleanup is not None and not cleaned:
                # The thread never ran (no data connection, aborted first).
                with contextlib.suppress(Exception):
                    await executor.run(cleanup, False)
            if sock is not None:
                sock.close()
            if state is not None and state.sock is not sock:
                state.sock.close()
        if ok:
            outcome = "ok"
            nbytes = state.bytes if state is not None else 0
            reply = Reply(226, f"{success_text} ({nbytes} bytes)")
        if self.transfer is t:
            self.transfer = None
        # Logged (and counted) before the client hears of it: whoever reads
        # the log or the metrics after a 226 finds the transfer there.
        self.server.transfer_log(self, verb, path, state, outcome)
        self.send(reply)

    def _protected(self, work: Callable[[TransferState], int]) -> Callable[[TransferState], int]:
        """Run ``work`` over TLS: the handshake happens in the transfer thread
        (a slow client must not hold the event loop)."""
        ctx = self.tls_context
        assert ctx is not None
        timeout = self.tls_handshake_timeout
        stall_timeout = self.config.server.stall_timeout

        def run(state: TransferState) -> int:
            try:
                tls_sock = wrap_data_socket(ctx, state.sock, timeout)
            except (OSError, ssl.SSLError) as exc:
                raise FTPError(522, f"TLS handshake on the data connection failed: {exc}") from None
            tls_sock.settimeout(stall_timeout)
            state.sock = tls_sock  # owns the descriptor now; closed by _transfer
            return work(state)

        return run

    async def abort_transfer(self) -> bool:
        """Stop the running transfer (if any) and wait for its 426."""
        t = self.transfer
        if t is None or t.task is None:
            return False
        t.abort_requested = True
        if t.state is not None:
            t.state.abort()
        else:
            t.task.cancel()
        with contextlib.suppress(BaseException):
            await t.task
        return True

    # ------------------------------------------------------------ teardown

    def shut_down(self) -> None:
        """Server shutdown (graceful): the command in hand is answered and a
        transfer (running, or started by that command) finishes; then 421
        and the connection closes. No further command is taken: RFC 959's
        421 says the service is going away, which must not be the answer
        to a command that is carried out all the same."""
        if self.closing or self._stopping:
            return
        self._stopping = True
        if not self._busy:
            self._goodbye_after_transfer()

    def _goodbye_after_transfer(self) -> None:
        t = self.transfer
        if t is not None and t.task is not None and not t.task.done():
            t.task.add_done_callback(lambda _: self._goodbye())
        else:
            self._goodbye()

    def _goodbye(self) -> None:
        if self.closing:
            return
        self.reply(421, "Server shutting down")
        self.closing = True
        self._close_transport()  # connection_lost then ends the session and cleans up

    async def close(self, wait: bool = True, goodbye: str | None = None) -> None:
        """End the session: let a transfer QUIT allowed finish, abort any
        other, close the connection. The session is over (logged, counted
        out) once the connection is gone: with ``wait``, this returns only
        then; without, connection_lost finishes it (no task waits for it).
        ``goodbye``: the text of a 421 sent last, after the transfer's own
        reply (a transfer already committing gets its 226 first)."""
        # A flag of its own: `closing` is also set while the last command is
        # answered, and the session must be removed from the server's counts
        # exactly once.
        if self._closed:
            return
        self._closed = True
        self.closing = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        t = self.transfer
        if self.quit_requested and t is not None and t.task is not None:
            # Let the transfer finish; its socket timeouts bound the wait.
            with contextlib.suppress(BaseException):
                await asyncio.shield(t.task)
        await self.abort_transfer()
        if goodbye is not None:
            self.reply(421, goodbye)
        self.close_passive()
        if self._write_paused:
            with contextlib.suppress(Exception):
                await self._drain()
        self._ending = True
        self._uncork()
        self._close_transport()
        if self._gone:
            self._finish()
        elif wait:
            self._lost = asyncio.get_running_loop().create_future()
            with contextlib.suppress(Exception):
                await self._lost

    def _close_transport(self) -> None:
        """Close the connection, and cut it if it is not gone within
        _CLOSE_GRACE: asyncio's TLS transport waits for the client's
        close_notify after sending its own (up to 30 s on 3.11+, for as
        long as the client stays on 3.10), and a client that reads nothing
        keeps what is left to send. An idle FTPS client then held a
        graceful shutdown that long past shutdown_timeout."""
        if not self.transport.is_closing():
            # (asyncio's TLS transport forgets its protocol on a second
            # close(), and then its abort() does nothing)
            self.transport.close()
        if not self._gone and (self.state.secure or self._unsent()):
            # (a clear connection with nothing left to send goes at once)
            asyncio.get_running_loop().call_later(_CLOSE_GRACE, self._cut)

    def _unsent(self) -> bool:
        try:
            return bool(self.transport.get_write_buffer_size())
        except NotImplementedError:  # a transport of one's own
            return self._write_paused

    def _cut(self) -> None:
        if not self._gone:
            self.transport.abort()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        log.info(
            "disconnect %s %s (%.1fs)", self.peer, self.username, time.monotonic() - self.started
        )
        self.server.session_closed(self)

    def info(self) -> dict[str, Any]:
        return {"peer": self.peer, "user": self.username}
