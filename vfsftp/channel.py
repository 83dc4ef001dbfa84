"""The control connection: read → parse → preflight → dispatch → reply.

One ``FTPChannel`` per client (Medusa's ``ftp_channel``). It is the one place
where an ``FTPError`` becomes a reply and an unexpected exception becomes a
logged 451, and it owns the session's single data transfer, which runs as a
task so that ABOR and STAT are answered while it goes on (RFC 959 §4.1.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import data as datamod
from .commands import IMMEDIATE_DURING_TRANSFER, REGISTRY, Invocation, preflight
from .data import PassiveListener, TransferAborted, TransferState, normalize_ip
from .errors import FTPError, map_fs_error
from .protocol import MLST_DEFAULT_FACTS, TOO_LONG, LineBuffer, Reply, parse_command
from .throttle import TokenBucket
from .tls import wrap_data_socket

if TYPE_CHECKING:
    from .auth import Account
    from .server import FTPServer
    from .vfs import SessionFS

__all__ = ["FTPChannel", "SessionState"]

log = logging.getLogger("vfsftp.session")

_DRAIN_ABOVE = 64 * 1024

# Errors of the storage side during a transfer (the rest are the network's).
_STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES}
)


class TLSHandshakeFailed(ConnectionError):
    """The TLS handshake after AUTH TLS failed: the session ends (quietly,
    not as an internal error)."""


@dataclass
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
    verb: str
    path: str
    task: asyncio.Task[None]
    state: TransferState | None = None
    #: set by abort_transfer(); checked once more before the thread starts,
    #: because asyncio.wait_for (before 3.12) can swallow a cancellation
    #: that races with the data connection being accepted
    abort_requested: bool = False


class FTPChannel:
    """One control connection."""

    def __init__(
        self,
        server: FTPServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        implicit_tls: bool = False,
    ) -> None:
        self.server = server
        # The session keeps the settings and TLS context it started with,
        # whatever a config reload does meanwhile.
        self.config = server.config
        self.tls_context = server.tls_context
        self.tls_handshake_timeout = server.tls_handshake_timeout
        self.reader = reader
        self.writer = writer
        sock = writer.get_extra_info("socket")
        self.family: socket.AddressFamily = sock.family if sock is not None else socket.AF_INET
        peer = writer.get_extra_info("peername") or ("?", 0)
        local = writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        self.peer_ip: str = normalize_ip(str(peer[0]))
        self.peer: str = f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
        self.local_ip: str = str(local[0])
        self.state = SessionState()
        self.implicit_tls = implicit_tls
        if implicit_tls:
            # Implicit FTPS: TLS from the first byte, and data connections
            # protected unless the client asks for PROT C.
            self.state.secure, self.state.pbsz, self.state.prot = True, True, "P"
        # Room for a command and a path of MAX_PATH_BYTES (4096).
        self.lines = LineBuffer(max_line=8192)
        self._drop_pipelined = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self.transfer: Transfer | None = None
        self.closing = False
        self._closed = False  # close() has run (it may be called twice)
        self.quit_requested = False
        self.started = time.monotonic()
        if sock is not None:
            with contextlib.suppress(OSError):
                # ftplib's abort() sends ABOR with MSG_OOB: keep the urgent
                # byte in the stream instead of losing the line's last byte.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ------------------------------------------------------------ output

    def reply(self, code: int, text: str | tuple[str, ...] = "") -> None:
        self.send(Reply(code, text))

    def send(self, reply: Reply) -> None:
        if self.writer.is_closing():
            return
        self.server.metrics.reply(reply.code)
        self.writer.write(reply.encode())

    @property
    def username(self) -> str:
        if self.state.account is not None:
            return self.state.account.name
        return self.state.username or "-"

    # ------------------------------------------------------------ main loop

    async def run(self) -> None:
        log.info("connect %s", self.peer)
        try:
            if self.implicit_tls:
                await self.start_tls()  # bounded by handshake_timeout
                self._drop_pipelined = False  # nothing was sent in clear
            self.reply(220, self.config.server.banner)
            await self._read_loop()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.close()

    def _idle_check(self) -> None:
        """One timer per session instead of a wait_for per read (which costs
        a task and a timer handle per command)."""
        if self.closing:
            return
        loop = asyncio.get_running_loop()
        idle = self.config.server.idle_timeout
        left = self._last_activity + idle - loop.time()
        if left > 0 or self.transfer is not None:  # a long transfer is not idleness
            self._idle_timer = loop.call_later(left if left > 0 else idle, self._idle_check)
            return
        self.reply(421, f"Idle timeout ({idle:g} seconds), closing control connection")
        log.info("idle timeout %s", self.peer)
        self.closing = True
        self.writer.close()  # flushes the 421 first; the read loop then sees EOF

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        self._idle_timer = loop.call_later(self.config.server.idle_timeout, self._idle_check)
        while not self.closing:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            lines = self.lines.feed(chunk)
            if lines:
                # Only whole lines count as activity: a client dripping a
                # line byte by byte (slowloris) still times out.
                self._last_activity = loop.time()
            for line in lines:
                if self.closing:
                    return
                if self._drop_pipelined:
                    # Lines that came in clear behind AUTH TLS are never run
                    # (the STARTTLS injection, CVE-2011-0411).
                    continue
                if line is TOO_LONG:
                    self.reply(500, "Command line too long")
                    continue
                assert isinstance(line, bytes)
                await self.handle_line(line)
                if self.writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
                    # Only a client that stops reading fills the buffer;
                    # draining after every reply costs a loop turn each.
                    await self.writer.drain()
            self._drop_pipelined = False

    async def handle_line(self, line: bytes) -> None:
        cmd = parse_command(line)
        if not cmd.verb:
            return
        if log.isEnabledFor(logging.DEBUG):
            shown = "PASS ****" if cmd.verb == "PASS" else f"{cmd.verb} {cmd.arg}".rstrip()
            log.debug("%s %s > %s", self.peer, self.username, shown)
        spec = REGISTRY.get(cmd.verb)
        if (
            self.transfer is not None
            and not self.transfer.task.done()
            and (spec is None or cmd.verb not in IMMEDIATE_DURING_TRANSFER)
        ):
            # Commands that are not about the transfer wait for it, so that
            # its 226/426 comes before their reply.
            with contextlib.suppress(BaseException):
                await asyncio.shield(self.transfer.task)
        try:
            if spec is None:
                raise FTPError(500, f"Command {cmd.verb!r} not understood")
            inv: Invocation = preflight(spec, self.state, cmd.arg)
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
        received in clear before the handshake is executed afterwards."""
        ctx = self.tls_context
        assert ctx is not None
        self.lines.clear()
        self._drop_pipelined = True
        # Bytes already read off the socket but not yet parsed: plaintext too.
        buffered = getattr(self.reader, "_buffer", None)
        if isinstance(buffered, bytearray):
            buffered.clear()
        timeout = self.tls_handshake_timeout
        raw = self.writer.transport
        try:
            if hasattr(self.writer, "start_tls"):  # Python 3.11+
                # Awaited directly, not through wait_for (a new task, so a
                # loop iteration): nothing may yield before start_tls pauses
                # reading, or the client's ClientHello lands in the plaintext
                # StreamReader and the handshake stalls (always so with
                # implicit TLS, whose client speaks first).
                await self.writer.start_tls(ctx, ssl_handshake_timeout=timeout)
            else:  # pragma: no cover - Python 3.10
                loop = asyncio.get_running_loop()
                transport = self.writer.transport
                new = await loop.start_tls(
                    transport,
                    transport.get_protocol(),
                    ctx,
                    server_side=True,
                    ssl_handshake_timeout=timeout,
                )
                self.writer._transport = new  # type: ignore[attr-defined]
                self.reader._transport = new  # type: ignore[attr-defined]
            if self.writer.transport is None:
                raise ConnectionResetError("connection closed during the TLS handshake")
        except (OSError, asyncio.TimeoutError, ssl.SSLError, AttributeError) as exc:
            # AttributeError: a connection closed locally mid-handshake (server
            # shutdown) makes asyncio return no transport, which 3.11's
            # StreamWriter.start_tls then dereferences.
            log.info("%s: TLS handshake failed: %r", self.peer, exc)
            self._handshake_failed(raw)
            raise TLSHandshakeFailed("TLS handshake failed") from None
        except asyncio.CancelledError:
            self._handshake_failed(raw)
            raise
        self.state.secure = True
        log.info("%s: control connection now TLS (%s)", self.peer, self.tls_version())

    def _handshake_failed(self, raw: asyncio.BaseTransport) -> None:
        """Leave the streams consistent after a failed handshake, so that
        close() finishes: asyncio closes the socket but never tells the
        stream protocol (it was swapped out for the handshake), and may
        have set the writer's transport to None."""
        self.closing = True
        raw.close()
        if self.writer.transport is None:
            self.writer._transport = raw  # type: ignore[attr-defined]
        protocol = getattr(self.writer, "_protocol", None)
        if protocol is not None:
            protocol.connection_lost(None)  # wait_closed() returns, reads see EOF

    def tls_version(self) -> str:
        obj = self.writer.get_extra_info("ssl_object")
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
    ) -> None:
        """Open the data connection, run ``work`` in a transfer thread and
        answer 226/426/451. ``cleanup(ok)`` runs in the thread afterwards
        (commit or discard of an upload, closing the file) whatever happened."""
        task = asyncio.get_running_loop().create_task(
            self._transfer(verb, path, work, opening, cleanup, success_text)
        )
        self.transfer = Transfer(verb, path, task)
        task.add_done_callback(self._transfer_done)

    def _transfer_done(self, task: asyncio.Task[None]) -> None:
        if self.transfer is not None and self.transfer.task is task:
            self.transfer = None

    async def _transfer(
        self,
        verb: str,
        path: str,
        work: Callable[[TransferState], int],
        opening: str,
        cleanup: Callable[[bool], None] | None,
        success_text: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        executor = self.server.transfer_executor
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
            datamod.prepare_blocking(sock, self.config.server.stall_timeout)
            if self.state.prot == "P":
                work = self._protected(work)
            state = TransferState(sock, verb, path)
            assert self.transfer is not None
            self.transfer.state = state
            if self.transfer.abort_requested:
                raise TransferAborted()
            await loop.run_in_executor(executor, job, state)
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
                reply = map_fs_error(exc, path).reply  # disk full, quota...: 552
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
                    await loop.run_in_executor(executor, cleanup, False)
            if sock is not None:
                sock.close()
            if state is not None and state.sock is not sock:
                state.sock.close()
        if ok:
            outcome = "ok"
            nbytes = state.bytes if state is not None else 0
            reply = Reply(226, f"{success_text} ({nbytes} bytes)")
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
        if t is None or t.task.done():
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

    async def close(self) -> None:
        # A flag of its own: `closing` with a closing writer is also the state
        # a failed TLS handshake leaves, and that session must still be
        # removed from the server's counts.
        if self._closed:
            return
        self._closed = True
        self.closing = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        t = self.transfer
        if self.quit_requested and t is not None and not t.task.done():
            # Let the transfer finish; its socket timeouts bound the wait.
            with contextlib.suppress(BaseException):
                await asyncio.shield(t.task)
        await self.abort_transfer()
        self.close_passive()
        with contextlib.suppress(Exception):
            await self.writer.drain()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        log.info(
            "disconnect %s %s (%.1fs)", self.peer, self.username, time.monotonic() - self.started
        )
        self.server.session_closed(self)

    def info(self) -> dict[str, Any]:
        return {"peer": self.peer, "user": self.username}
