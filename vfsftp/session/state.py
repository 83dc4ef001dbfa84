"""What a session is, as the rest of the code sees it: its state between
commands (``SessionState``), its running transfer (``Transfer``), and the two
small interfaces that keep the layers apart.

- ``Channel``: the control connection as the command handlers
  (vfsftp.session.commands) and the service see it. ``FTPChannel``
  implements it; the handlers never import the channel's module.
- ``SessionHost``: what a session needs of the service that runs it
  (admission, login, rate limits, the transfer log, hooks, upload settling).
  The service's ``FTPServer`` implements it; the session never imports the
  service.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.listings import MLST_DEFAULT_FACTS
from .data import ABORTED, PassiveListener, TransferState
from .failures import Fault
from .throttle import TokenBucket

if TYPE_CHECKING:
    from ..config import Config
    from ..identity.auth import Account, Authorizer
    from ..storage.digests import HashSlots
    from ..storage.sessionfs import SessionFS
    from ..storage.threads import ThreadPool
    from .deadlines import Deadlines

__all__ = ["Channel", "SessionHost", "SessionState", "Transfer", "Upload"]


class Upload(Protocol):
    """What the channel needs of an upload (vfs.Upload): publish it, or
    drop it. Both block (in the transfer thread)."""

    def commit(self, check: Callable[[], None] | None = None) -> None: ...
    def discard(self) -> None: ...


@dataclass(slots=True)
class SessionState:
    """Everything a session remembers between commands."""

    username: str | None = None  # from USER, until PASS
    account: Account | None = None
    fs: SessionFS | None = None
    login_failures: int = 0
    transfer_type: str = "A"  # RFC 959 §3.1.1: ASCII is the default
    rest_offset: int = 0
    allo: int | None = None  # ALLO: the size the next upload promises
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
    #: this session's own rate limits ("down", "up"), see FTPServer.throttle_for;
    #: None until the first limited transfer (most sessions never have one)
    buckets: dict[str, TokenBucket] | None = None
    #: HASH's algorithm, chosen by OPTS HASH; None: server.hash.algorithm
    hash_algorithm: str | None = None
    #: RANG: the octets (first, last) the next HASH reads; None: all
    hash_range: tuple[int, int] | None = None
    #: SITE CHECKSUM: (algorithm, hex) the next upload's data must have
    upload_checksum: tuple[str, str] | None = None

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
    abort_fault: Fault = ABORTED
    #: a command that runs without a data connection (HASH, see
    #: Channel.start_job): how to stop its work, and its line in STAT
    stop: Callable[[Fault], None] | None = None
    describe: Callable[[], str] | None = None


class Channel(Protocol):
    """One control connection, as command handlers and the service use it."""

    state: SessionState
    config: Config
    host: SessionHost
    transfer: Transfer | None
    transport: asyncio.Transport
    #: the loop the session runs on, kept: asyncio.get_running_loop() is a
    #: getpid() system call per call on Python 3.11 (24 in a short session
    #: when the channel asked for it on every line and reply)
    loop: asyncio.AbstractEventLoop
    tls_context: ssl.SSLContext | None
    family: socket.AddressFamily
    local_ip: str
    peer: str
    peer_ip: str
    closing: bool
    quit_requested: bool

    @property
    def username(self) -> str: ...

    def reply(self, code: int, text: str | tuple[str, ...] = "") -> None: ...

    async def reply_streamed(
        self,
        code: int,
        first: str,
        more: Callable[[], Awaitable[list[str] | None]],
        last: str,
    ) -> None: ...

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
    ) -> None: ...

    def start_job(
        self,
        verb: str,
        path: str,
        run: Callable[[Transfer], Coroutine[Any, Any, None]],
        stop: Callable[[Fault], None],
        describe: Callable[[], str],
    ) -> None: ...

    def close_passive(self) -> None: ...

    async def abort_transfer(self, fault: Fault = ABORTED) -> bool: ...

    async def start_tls(self) -> None: ...

    def await_login(self) -> None: ...

    def tree_path(self, path: str) -> str: ...

    async def close(self, wait: bool = True, goodbye: str | None = None) -> None: ...

    def shut_down(self) -> None:
        """Graceful server shutdown: answer the command in hand, let a
        transfer finish, then 421 and close."""


class SessionHost(Protocol):
    """What a session needs of the service that runs it (FTPServer)."""

    config: Config
    authorizer: Authorizer
    tls_context: ssl.SSLContext | None
    tls_handshake_timeout: float
    #: seconds a plain upload waits before it is published; None: the config's
    upload_grace: float | None
    transfer_executor: ThreadPool
    #: how many hashes may read storage at once, server-wide
    hash_slots: HashSlots

    @property
    def deadlines(self) -> Deadlines:
        """The sessions' idle and login timeouts (on the running loop)."""

    def admit(self, channel: Channel) -> str | None:
        """None to serve the new connection, or the reason to refuse it."""

    def admit_shared(self, channel: Channel) -> Coroutine[Any, Any, str | None] | None:
        """What remains to be checked of an admitted connection before its
        greeting (the limits a fleet of servers shares): a coroutine giving
        None or the reason to refuse it, or None when nothing remains."""

    def track(self, task: asyncio.Task[None]) -> None: ...

    def untrack(self, task: asyncio.Task[None]) -> None: ...

    def session_closed(self, channel: Channel) -> None: ...

    def release_slots(self, channel: Channel) -> None:
        """Give back the connection slots the session holds (server, address,
        user, fleet) before it is gone: at QUIT, before the 221, so a client
        that reconnects the moment it reads the 221 is admitted."""

    def count_reply(self, code: int) -> None:
        """An error reply (4xx, 5xx) went out."""

    async def tls_policy(self, username: str) -> tuple[bool, bool]:
        """(TLS required for the login, TLS required for data) of a user."""

    async def login(self, channel: Channel, username: str, password: str) -> None: ...

    def logout(self, channel: Channel) -> None: ...

    def uploads_settling(self) -> bool:
        """True while some session's upload is still being published."""

    async def settle(self, session_fs: SessionFS, path: str) -> None:
        """Wait (bounded) for an upload of ``path`` still being published."""

    def settling_upload(
        self, session_fs: SessionFS, path: str, task: asyncio.Task[None]
    ) -> None: ...

    def throttle_for(self, channel: Channel, direction: str) -> Callable[[int], None] | None: ...

    def transfer_log(
        self,
        channel: Channel,
        verb: str,
        path: str,
        state: TransferState | None,
        outcome: str,
        fault: Fault | None = None,
    ) -> None: ...

    def event(
        self,
        channel: Channel,
        name: str,
        path: str = "",
        destination: str = "",
        size: int | None = None,
    ) -> None: ...
