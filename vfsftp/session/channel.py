"""The control connection: read → parse → preflight → dispatch → reply.

One ``FTPChannel`` per client (Medusa's ``ftp_channel``). It is the one place
where an ``FTPError`` becomes a reply and an unexpected exception becomes a
logged 451, and it owns the session's single data transfer, which runs as a
task so that ABOR and STAT are answered while it goes on (RFC 959 §4.1.3).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..ops.logs import new_session_id, session_id
from ..protocol.errors import FTPError
from ..protocol.lines import TOO_LONG, LineBuffer, parse_command
from ..protocol.replies import (
    Reply,
    encode_reply,
    encode_reply_first,
    encode_reply_last,
    encode_reply_middle,
)
from . import data as datamod
from . import eager
from .commands import (
    ENDS_RANGE,
    IMMEDIATE_DURING_TRANSFER,
    REGISTRY,
    UPLOADS,
    Invocation,
    preflight,
)
from .data import ABORTED, TransferState, normalize_ip, peer_state
from .failures import Fault, TransferAborted, failure_of
from .state import SessionHost, SessionState, Transfer, Upload
from .tls import handshake_data_socket, shrink_control_buffer, wrap_data_socket
from .transport import ControlTransport

if TYPE_CHECKING:
    pass

__all__ = ["FTPChannel", "TLSHandshakeFailed"]

log = logging.getLogger("vfsftp.session")

#: command lines queued before the channel stops reading from the client
_MAX_PENDING = 64
#: seconds a closed connection may take to go away before it is cut
_CLOSE_GRACE = 2.0
#: held replies are written at once past this size or count (see reply)
_CORK_LIMIT = 16 * 1024
_CORK_REPLIES = 16

#: how long an upload whose client's FIN (or reset) the kernel has seen
#: waits for the event loop to read up to it (for a QUIT sent before it)
_VERDICT_WAIT = 2.0


class TLSHandshakeFailed(ConnectionError):
    """The TLS handshake after AUTH TLS failed: the session ends (quietly,
    not as an internal error)."""


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
        "_control_sock",
        "_corked",
        "_deadline",
        "_drained",
        "_ending",
        "_eof",
        "_finished",
        "_gone",
        "_last_activity",
        "_login_deadline",
        "_lost",
        "_lost_why",
        "_pending",
        "_reading_paused",
        "_shared",
        "_stopping",
        "_verdict",
        "_verdict_timer",
        "_write_paused",
        "closing",
        "config",
        "family",
        "host",
        "implicit_tls",
        "lines",
        "local_ip",
        "loop",
        "peer",
        "peer_ip",
        "proxied",
        "quit_requested",
        "started",
        "state",
        "tls_context",
        "tls_handshake_timeout",
        "transfer",
        "transport",
    )
    transport: asyncio.Transport
    #: the loop the session runs on (set on connect)
    loop: asyncio.AbstractEventLoop

    def __init__(
        self,
        host: SessionHost,
        implicit_tls: bool = False,
        proxied: tuple[tuple[str, int], tuple[str, int]] | None = None,
    ) -> None:
        """``proxied``: (the client's address, the balancer's) when a PROXY
        protocol header told who the client is."""
        self.host = host
        self.proxied = proxied
        # The session keeps the settings and TLS context it started with,
        # whatever a config reload does meanwhile.
        self.config = host.config
        self.tls_context = host.tls_context
        self.tls_handshake_timeout = host.tls_handshake_timeout
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
        self._deadline = 0  # the slot of its pending idle check in host.deadlines (0: none)
        self._last_activity = 0.0
        self._login_deadline = 0.0  # (loop time) set on connect and by REIN
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None  # made by close() if it must wait
        self._gone = False  # connection_lost has run
        self._reading_paused = False
        self._admitted = False
        #: the fleet's part of the admission, awaited before the greeting
        self._shared: Coroutine[Any, Any, str | None] | None = None
        self._context = contextvars.Context()  # the session's (connection_made)
        self._eof = False  # the client closed its side (or the connection broke)
        self._lost_why = ""  # how the client ended the connection, if it did
        self._control_sock: object = None  # the socket under the transport (and TLS)
        # an upload's question "publish?" that waits for the loop to read
        # up to the client's FIN (see _publish_check)
        self._verdict: concurrent.futures.Future[Fault | None] | None = None
        self._verdict_timer: asyncio.TimerHandle | None = None
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
        elif self._shared is not None:
            # Lines the client sends meanwhile wait (busy) for the greeting.
            self._spawn(self._greet())

    def _made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses)
        self.transport = transport  # type: ignore[assignment]
        # The loop is kept (see Channel.loop); a ControlTransport's listener
        # set the socket's options.
        if isinstance(transport, ControlTransport):
            own, loop = True, transport.loop
        else:
            own, loop = False, asyncio.get_running_loop()
        self.loop = loop
        sock = transport.get_extra_info("socket")
        self._control_sock = sock
        if sock is not None:
            self.family = sock.family
            if not own:
                # Why: transport.set_control_options (asyncio's and uvloop's
                # transports set TCP_NODELAY themselves).
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        peer = transport.get_extra_info("peername") or ("?", 0)
        if self.proxied is not None:
            peer = self.proxied[0]  # every per-address rule and log line uses it
        local = transport.get_extra_info("sockname") or ("127.0.0.1", 0)
        self.peer_ip = normalize_ip(str(peer[0]))
        self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
        self.local_ip = str(local[0])
        refusal = self.host.admit(self)
        if refusal is not None:
            # RFC 959 §4.2: 421 may be sent in answer to any command, and on connect.
            self.closing = self._closed = True
            self.transport.write(f"421 {refusal}\r\n".encode())
            self.transport.close()
            return
        self._admitted = True
        if self.proxied is not None:
            balancer = self.proxied[1]
            log.info("connect %s via %s:%s", self.peer, balancer[0], balancer[1])
        else:
            log.info("connect %s", self.peer)
        self._last_activity = loop.time()
        self.await_login()
        self._shared = self.host.admit_shared(self)
        if self.implicit_tls:
            # Nothing may be read in clear: the client's ClientHello must
            # reach the TLS layer that start_tls puts in place.
            self.transport.pause_reading()
        elif self._shared is None:
            self.reply(220, self.config.server.banner)

    async def _admitted_by_all(self) -> bool:
        """The fleet's part of the admission: False (421 sent, closing) when
        it refuses the session."""
        shared, self._shared = self._shared, None
        if shared is None:
            return True
        refusal = await shared
        if self.closing:
            return False  # (closed meanwhile: shutdown, timeout)
        if refusal is None:
            return True
        # RFC 959 §4.2: 421 may be sent in answer to any command, and on connect.
        self.reply(421, refusal)
        self.closing = True
        return False

    async def _greet(self) -> None:
        if await self._admitted_by_all():
            self.reply(220, self.config.server.banner)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        lines = self.lines.feed(data)
        if not lines:
            return
        self._last_activity = self.loop.time()
        if self._pending is None:
            self._pending = deque(lines)
        else:
            self._pending.extend(lines)
        if self._verdict is not None and self._quit_queued():
            self._answer_verdict()  # a deliberate goodbye: no need to wait
        if len(self._pending) > _MAX_PENDING and not self._reading_paused:
            # A client pipelining faster than we answer: stop reading until
            # the queue drains (the kernel's buffers then push back on it).
            self._reading_paused = True
            self.transport.pause_reading()
        if not self._busy:
            self._spawn(self._process())

    def eof_received(self) -> bool | None:
        if not self.closing:
            self._lost_why = self._lost_why or "the client closed the control connection"
        self._end_of_input()
        return False  # close the transport (flushing what is buffered)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self._lost_why:
            what = "reset" if isinstance(exc, ConnectionResetError) else "broke"
            self._lost_why = f"the control connection {what} ({type(exc).__name__}: {exc})"
        elif not self.closing and not self._lost_why:
            self._lost_why = "the client closed the control connection"
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
        self._answer_verdict()  # (every line before the end is queued now)
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
        receiver's side of TCP: sends are a third of a short session."""
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
            self.host.track(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.host.untrack(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: session task failed", self.peer, exc_info=task.exception())
        self._idle()

    def _idle(self) -> None:
        """The commands in hand are answered: go on with any that arrived
        meanwhile, or end the session."""
        self._busy = False
        # The client's idle time starts from our last reply.
        self._last_activity = self.loop.time()
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
            await asyncio.shield(self._drain_future())

    def _drain_future(self) -> asyncio.Future[None]:
        """The future resume_writing (or connection_lost) resolves: the one
        already waited on, if any, so that every waiter is woken (each
        waits through a shield: one cancelled waiter wakes no other)."""
        if self._drained is None or self._drained.done():
            self._drained = self.loop.create_future()
        return self._drained

    async def _drain_within(self, timeout: float) -> bool:
        """Wait until the transport takes writes again (or the connection
        is gone); False when it took nothing for ``timeout`` seconds. A
        timer and a future, not wait_for (see eager.start)."""
        loop = self.loop
        while self._write_paused and not self.transport.is_closing():
            fut = self._drain_future()
            expired = False

            def expire(fut: asyncio.Future[None] = fut) -> None:
                nonlocal expired
                expired = True
                if not fut.done():
                    fut.set_result(None)

            timer = loop.call_later(timeout, expire)
            try:
                await asyncio.shield(fut)
            finally:
                timer.cancel()
            if expired and self._write_paused and not self.transport.is_closing():
                return False
        return True

    # ------------------------------------------------------------ output

    def reply(self, code: int, text: str | tuple[str, ...] = "") -> None:
        # No Reply object on the way: a reply per command is the hot path.
        if self.transport.is_closing():
            return
        if code >= 400:
            self.host.count_reply(code)
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

    async def reply_streamed(
        self,
        code: int,
        first: str,
        more: Callable[[], Awaitable[list[str] | None]],
        last: str,
    ) -> None:
        """A multi-line reply (RFC 959 §4.2) whose middle lines come in
        batches from ``more`` (None: no more), for STAT of a directory
        (§4.1.3). A batch is asked for only once the transport has room for
        it (write back-pressure: a client that reads slowly holds one batch
        here and the transport's high-water mark, not the whole listing),
        and none once the client is gone. A client that takes nothing for
        ``stall_timeout`` seconds is disconnected: the reply cannot be cut
        short without the client reading whatever follows as part of it.
        An error of ``more`` (an FTPError: the store failed half-way) ends
        the reply there, its last line saying so: its code cannot change
        once its first line is out (§4.2)."""
        self._uncork()  # replies held before this one go out first
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(encode_reply_first(code, first))
        stall = self.config.server.stall_timeout
        while True:
            if not await self._drain_within(stall):
                log.info("%s %s: reply not read for %gs; closing", self.peer, self.username, stall)
                self.closing = True
                transport.abort()
                return
            if transport.is_closing():
                return
            try:
                lines = await more()
            except FTPError as exc:
                last = f"{last}, incomplete: {' '.join(exc.reply.lines)}"
                break
            if lines is None:
                break
            if transport.is_closing():
                return
            transport.write(encode_reply_middle(lines))
        if not transport.is_closing():
            transport.write(encode_reply_last(code, last))

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
            if self._shared is not None:
                self._shared.close()  # never asked: nothing was counted
                self._shared = None
            await self.close()
            return
        if await self._admitted_by_all():
            self.reply(220, self.config.server.banner)

    def await_login(self) -> None:
        """Start the login clock (on connect, and after REIN): a session that
        has not logged in within ``login_timeout`` is closed, whatever else
        it sends."""
        loop = self.loop
        cfg = self.config.server
        self._login_deadline = loop.time() + cfg.login_timeout
        self._arm(min(cfg.idle_timeout, cfg.login_timeout))

    def _arm(self, delay: float) -> None:
        self._disarm()
        self._deadline = self.host.deadlines.arm(delay, self)

    def _disarm(self) -> None:
        if self._deadline:
            self.host.deadlines.disarm(self._deadline, self)
            self._deadline = 0

    def deadline_passed(self) -> None:
        self._deadline = 0
        self._context.run(self._idle_check)

    def _idle_check(self) -> None:
        """One pending check per session instead of a wait_for per read
        (which costs a task and a timer handle per command), on the
        server's shared deadlines (session/deadlines.py): the idle timeout
        and, until the login, the login timeout."""
        if self.closing:
            return
        loop = self.loop
        now = loop.time()
        cfg = self.config.server
        idle = cfg.idle_timeout
        left = self._last_activity + idle - now
        wait = left if left > 0 else idle
        if self.state.account is None:
            login_left = self._login_deadline - now
            if login_left <= 0 and not self._busy:  # (a PASS being checked may finish)
                self._time_out(f"Login timeout ({cfg.login_timeout:g} seconds)", "login timeout")
                return
            wait = min(wait, login_left) if login_left > 0 else min(wait, 1.0)
        # Neither a long transfer nor a command being served (a listing of a
        # huge folder, a slow store) is idleness: the client waits for us.
        if left > 0 or self.transfer is not None or self._busy:
            self._arm(wait)
            return
        self._time_out(f"Idle timeout ({idle:g} seconds)", "idle timeout")

    def _time_out(self, text: str, logged: str) -> None:
        self.reply(421, f"{text}, closing control connection")
        log.info("%s %s", logged, self.peer)
        self.closing = True
        if not self._busy:
            self._spawn(self.close(wait=False))

    async def _process(self) -> None:
        """Handle the queued command lines, one at a time, then end (the
        next line that arrives starts a new task)."""
        idle = self.config.server.idle_timeout
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
                    self.loop.call_soon(self._uncork, context=self._context)
                if line is TOO_LONG:
                    self.reply(500, "Command line too long")
                else:
                    assert isinstance(line, bytes)
                    await self.handle_line(line)
                if self._write_paused and not await self._drain_within(idle):
                    # A client that reads none of its replies is as idle as
                    # one that sends nothing (and holds its buffers).
                    self._time_out(
                        f"Idle timeout ({idle:g} seconds)", "idle timeout (replies unread)"
                    )
                    break
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
            # (a mistyped "PASS\tsecret" is a password too)
            shown = "PASS ****" if cmd.verb.startswith("PASS") else f"{cmd.verb} {cmd.arg}".rstrip()
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
                if (
                    cmd.verb == "PROXY"
                    and self.state.account is None
                    and self.config.server.proxy_protocol is not None
                ):
                    # A PROXY protocol header from a client that is not a
                    # listed balancer (server.proxy_protocol): never trusted.
                    log.warning(
                        "%s: PROXY header from an address not listed in "
                        "server.proxy_protocol.from: refused",
                        self.peer,
                    )
                    self.reply(421, "PROXY header not accepted from your address; closing")
                    self.closing = True
                    return
                # Not echoed: a mistyped line may be a password ("PASSsecret").
                raise FTPError(500, "Command not understood")
            inv: Invocation = preflight(spec, self.state, cmd.arg)
            if spec.opens_data and self.state.passive is not None:
                # Before storage is asked anything: see PassiveListener.claim.
                self.state.passive.claim()
            if inv.path and self.host.uploads_settling() and self.state.fs is not None:
                await self.host.settle(self.state.fs, inv.path)
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
        if verb in ENDS_RANGE:
            self.state.hash_range = None
        if verb in UPLOADS:
            self.state.allo = None  # (spent, even on an upload refused at once)
            self.state.upload_checksum = None

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
        loop = self.loop
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
        shrink_control_buffer(new)  # 8 KiB, not asyncio's 256 KiB per session
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
        upload: Upload | None = None,
        sized: bool = False,
    ) -> None:
        """Open the data connection, run ``work`` in a transfer thread and
        answer 226/426/451. ``cleanup(ok)`` runs in the thread afterwards
        (closing the file) whatever happened. ``upload`` is published there
        when ``work`` succeeded and the client is still there to hear of it
        (see _publish_check), and discarded otherwise; ``sized``: ``work``
        fails unless the upload brought the size its client announced.

        ``body``: the whole content to send, already in memory (a listing, a
        small file read with its open). On a plain data connection it is
        sent from the event loop (non-blocking socket, no thread hop);
        ``work`` then runs only for PROT P, whose handshake is left to a
        thread.

        The transfer starts at once (eager.start): a small file or listing
        whose client has already connected is sent, and answered 226,
        before this returns; a task goes on with it otherwise."""
        t = self.transfer = Transfer(verb, path)
        task = eager.start(
            self._transfer(t, work, opening, cleanup, success_text, body, upload, sized)
        )
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
        upload: Upload | None = None,
        sized: bool = False,
    ) -> None:
        executor = self.host.transfer_executor
        verb, path = t.verb, t.path
        sock: socket.socket | None = None
        state: TransferState | None = None
        ok = False
        cleaned = False
        fault: Fault | None = None
        outcome = "fail"
        reply = Reply(426, "Connection closed; transfer aborted")

        def job(state: TransferState, check: Callable[[], None] | None) -> int:
            # Work and cleanup (commit or discard of an upload, closing the
            # file) in one thread hop: small files cost one hop, not two.
            nonlocal cleaned
            done = False
            try:
                n = work(state)
                done = True
            finally:
                cleaned = True
                if cleanup is not None:
                    cleanup(done)
                if upload is not None:
                    if done:
                        upload.commit(check)  # (discards, and raises, if it may not)
                    else:
                        upload.discard()
            return n

        try:
            self.reply(150, opening)
            sock = await self._open_data()
            if body is not None and self.state.prot == "C" and cleanup is None and upload is None:
                state = t.state = TransferState(sock, verb, path)
                if t.abort_requested:
                    raise TransferAborted(t.abort_fault)
                await datamod.send_body(state, body, self.config.server.stall_timeout)
                ok = True
            else:
                datamod.prepare_blocking(sock, self.config.server.stall_timeout)
                if self.state.prot == "P":
                    sock = self._wrap_tls(sock)
                    work = self._protected(work)
                state = t.state = TransferState(sock, verb, path)
                if t.abort_requested:
                    raise TransferAborted(t.abort_fault)
                check = None
                if upload is not None:
                    # A TLS upload ends with the client's close_notify, which
                    # a killed client never sends; an ALLO it met is a whole
                    # file: no need to wait for the control connection then.
                    grace = self.host.upload_grace
                    if grace is None:
                        grace = self.config.server.upload_grace
                    sure = self.state.prot == "P" or sized
                    check = self._publish_check(state, 0.0 if sure else grace)
                session_fs = self.state.fs  # (its mount's lane: vfsftp.storage.threads)
                lane = session_fs.lane(path) if session_fs is not None else None
                await executor.run(job, state, check, lane=lane)
                ok = True
        except (Exception, asyncio.CancelledError) as caught:
            exc: BaseException = caught
            if state is not None and state.aborted:
                # Whatever the stopped socket made the thread raise: an
                # OSError, or an AttributeError from an SSLSocket shut down
                # before its handshake began (shutdown() drops its TLS object).
                exc = TransferAborted(state.abort_fault)
            elif isinstance(caught, asyncio.CancelledError):  # stopped before the connection
                exc = TransferAborted(t.abort_fault)
            stall = self.config.server.stall_timeout
            reply, fault, outcome = failure_of(exc, path, stall)
            session_fs = self.state.fs
            if fault.kind in ("error", "storage") and session_fs is not None:
                # A failure of the storage itself: one line naming the mount.
                session_fs.failed(exc, path)
            elif fault.kind == "error":
                log.error(
                    "%s %s: transfer error in %s %s",
                    self.peer,
                    self.username,
                    verb,
                    self.tree_path(path),
                    exc_info=exc,
                )
            if verb not in UPLOADS and verb != "RETR":  # (theirs: the transfer log)
                log.info(
                    "%s %s: %s %s failed: %s",
                    self.peer,
                    self.username,
                    verb,
                    self.tree_path(path),
                    fault.detail,
                )
        finally:
            if not cleaned and (cleanup is not None or upload is not None):
                # The thread never ran (no data connection, aborted first).
                with contextlib.suppress(Exception):
                    await executor.run(self._drop, cleanup, upload)
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
        self.host.transfer_log(self, verb, path, state, outcome, fault)
        self.send(reply)

    def start_job(
        self,
        verb: str,
        path: str,
        run: Callable[[Transfer], Coroutine[Any, Any, None]],
        stop: Callable[[Fault], None],
        describe: Callable[[], str],
    ) -> None:
        """Run a command that works long without a data connection (HASH
        reading a large file) as the session's transfer: ABOR and STAT are
        answered while it runs (RFC 959 §4.1.3), other commands wait for
        its reply, the idle timeout does not count it as silence. ``run``
        sends the command's reply; ABOR, REIN or the session's end cancel
        it, call ``stop`` (which must make its worker thread give up at
        its next step) and answer 426, the reply of a service aborted.
        ``describe`` is its line in STAT. Started at once (eager.start): a
        command that never waits is answered before this returns."""
        t = self.transfer = Transfer(verb, path, stop=stop, describe=describe)
        task = eager.start(self._job(t, run))
        if task is not None and self.transfer is t:
            t.task = task

    async def _job(self, t: Transfer, run: Callable[[Transfer], Coroutine[Any, Any, None]]) -> None:
        try:
            await run(t)
        except asyncio.CancelledError:
            if t.stop is not None:
                t.stop(t.abort_fault)
            self.reply(426, f"{t.verb} aborted: {t.abort_fault.detail}")
        except Exception:
            log.exception("%s %s: internal error in %s", self.peer, self.username, t.verb)
            self.reply(451, "Requested action aborted: local error in processing")
        finally:
            if self.transfer is t:
                self.transfer = None

    @staticmethod
    def _drop(cleanup: Callable[[bool], None] | None, upload: Upload | None) -> None:
        if cleanup is not None:
            cleanup(False)
        if upload is not None:
            upload.discard()

    # ------------------------------------------------------------ publishing uploads

    def _publish_check(self, state: TransferState, grace: float) -> Callable[[], None]:
        """What an upload calls in its transfer thread as the last step
        before it publishes its file (rename, CompleteMultipartUpload,
        memory commit): it raises TransferAborted when the client is gone.

        In stream mode the end of an upload is the end of its data
        connection (RFC 959 §3.4.1), and a client killed mid-upload ends
        that too: its kernel closes the process's sockets with a FIN. What
        tells the two apart is the control connection, on which a client
        that is still there waits for the 226. So the upload is published
        only while the control connection is open, or after the client sent
        QUIT (a deliberate goodbye).

        The kernel does not close a killed process's sockets at the same
        moment, nor in a fixed order: the control connection's FIN may come
        tens of milliseconds after the data connection's, more on a loaded
        host. So after the data ends, ``grace`` seconds pass before the
        upload is published, unless the client says QUIT or is seen to be
        gone (its FIN or reset) sooner. The kernel is asked (TCP_INFO), not
        only the event loop, which may not have read that far yet; when the
        kernel has seen the FIN, the loop reads up to it first, for a QUIT
        the client sent before it."""
        loop = self.loop

        def check() -> None:
            state.check()
            if self.quit_requested:
                return
            ended = state.ended_at if state.ended_at is not None else time.monotonic()
            wait = ended + grace - time.monotonic()
            kernel = peer_state(self._control_sock)
            if wait <= 0 and not self._eof and kernel in ("open", "unknown"):
                return  # (where the kernel cannot tell: what the loop saw)
            answer: concurrent.futures.Future[Fault | None] = concurrent.futures.Future()
            try:
                loop.call_soon_threadsafe(self._judge_upload, answer, wait, context=self._context)
                fault = answer.result(max(wait, 0) + _VERDICT_WAIT + 5)
            except (RuntimeError, concurrent.futures.TimeoutError):  # the loop has stopped
                fault = Fault("shutdown", "the server stopped before the upload was published")
            state.check()  # (the session may have aborted it meanwhile)
            if fault is not None:
                raise TransferAborted(fault)

        return check

    def _judge_upload(self, answer: concurrent.futures.Future[Fault | None], wait: float) -> None:
        """On the loop: answer _publish_check's question now, or after
        ``wait`` seconds unless a QUIT or the end of the control connection
        comes first; when the kernel has seen that end already, once every
        line the client sent before it is read."""
        if answer.done():
            return
        self._answer_verdict()  # (none should be waiting: one transfer at a time)
        if self._eof or self.quit_requested or self._quit_queued():
            answer.set_result(self._upload_verdict())
            return
        if peer_state(self._control_sock) in ("open", "unknown"):
            if wait <= 0:
                answer.set_result(self._upload_verdict())
                return
        else:
            wait = _VERDICT_WAIT
        self._verdict = answer
        self._verdict_timer = self.loop.call_later(
            wait, self._answer_verdict, context=self._context
        )

    def _answer_verdict(self) -> None:
        answer, self._verdict = self._verdict, None
        if self._verdict_timer is not None:
            self._verdict_timer.cancel()
            self._verdict_timer = None
        if answer is not None and not answer.done():
            answer.set_result(self._upload_verdict())

    def _upload_verdict(self) -> Fault | None:
        """None: publish the upload; else why not."""
        if self.quit_requested or self._quit_queued():
            return None
        if self._eof or self._gone:
            return Fault("client-gone", self._lost_why or "the server closed the session")
        kernel = peer_state(self._control_sock)
        if kernel == "closed":
            return Fault("client-gone", "the client closed the control connection")
        if kernel == "reset":
            return Fault("client-gone", "the client reset the control connection")
        return None

    def _quit_queued(self) -> bool:
        return any(
            isinstance(line, bytes) and parse_command(line).verb == "QUIT"
            for line in self._pending or ()
        )

    def _wrap_tls(self, sock: socket.socket) -> ssl.SSLSocket:
        """The data connection as a TLS socket, made here on the event loop
        (see tls.wrap_data_socket); the handshake is left to the thread."""
        ctx = self.tls_context
        assert ctx is not None
        try:
            return wrap_data_socket(ctx, sock)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise FTPError(522, f"TLS on the data connection failed: {exc}") from None

    def _protected(self, work: Callable[[TransferState], int]) -> Callable[[TransferState], int]:
        """Run ``work`` over TLS: the handshake happens in the transfer thread
        (a slow client must not hold the event loop)."""
        timeout = self.tls_handshake_timeout
        stall_timeout = self.config.server.stall_timeout

        def run(state: TransferState) -> int:
            tls_sock = state.sock
            assert isinstance(tls_sock, ssl.SSLSocket)
            try:
                handshake_data_socket(tls_sock, timeout)
            except (OSError, ssl.SSLError) as exc:
                # The details (OpenSSL's reason, its source line) are for the log.
                log.info("%s: TLS handshake on the data connection failed: %r", self.peer, exc)
                raise FTPError(522, "TLS handshake on the data connection failed") from None
            tls_sock.settimeout(stall_timeout)
            return work(state)

        return run

    async def abort_transfer(self, fault: Fault = ABORTED) -> bool:
        """Stop the running transfer (if any) and wait for its 426."""
        t = self.transfer
        if t is None or t.task is None:
            return False
        t.abort_requested = True
        t.abort_fault = fault
        if t.state is not None:
            t.state.abort(fault)
            self._answer_verdict()  # an upload waiting to be published hears it now
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
        self._disarm()
        t = self.transfer
        if self.quit_requested and t is not None and t.task is not None and t.stop is None:
            # Let the transfer finish; its socket timeouts bound the wait.
            # (A job without a data connection, a HASH, is stopped instead:
            # nobody waits for its answer.)
            with contextlib.suppress(BaseException):
                await asyncio.shield(t.task)
        if self._lost_why:
            await self.abort_transfer(Fault("client-gone", self._lost_why))
        else:
            await self.abort_transfer(Fault("shutdown", "the server closed the session"))
        if goodbye is not None:
            self.reply(421, goodbye)
        self.close_passive()
        if self._write_paused:
            # (bounded: a client that reads nothing must not keep its session)
            with contextlib.suppress(Exception):
                await self._drain_within(_CLOSE_GRACE)
        self._ending = True
        self._uncork()
        self._close_transport()
        if self._gone:
            self._finish()
        elif wait:
            self._lost = self.loop.create_future()
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
            self.loop.call_later(_CLOSE_GRACE, self._cut)

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
        self.host.session_closed(self)

    def tree_path(self, path: str) -> str:
        """The server's name of a path of this session (for logs)."""
        fs = self.state.fs
        return fs.tree_path(path) if fs is not None else path

    def info(self) -> dict[str, Any]:
        return {"peer": self.peer, "user": self.username}
