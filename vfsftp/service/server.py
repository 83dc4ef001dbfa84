"""The server: listeners, connection limits, logins, shutdown.

server = FTPServer(load_config("mounts.yaml"))
asyncio.run(server.serve_forever())
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import ipaddress
import logging
import math
import socket
import ssl
import sys
import threading
import time
import types
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import fs.errors

from ..config.errors import ConfigError
from ..identity.auth import Account, Authorizer, ConfigAuthorizer
from ..identity.errors import StoreError, StoreUnavailable
from ..ops.hooks import Event, Hooks, load_hooks
from ..ops.logs import Counters, TransferRecord, log_transfer, session_id
from ..ops.metrics import Metrics
from ..protocol.errors import FTPError
from ..protocol.paths import PathRejected, resolve, to_view
from ..protocol.permissions import overrides_in_view
from ..session.channel import FTPChannel
from ..session.data import TransferState
from ..session.deadlines import Deadlines
from ..session.failures import Fault
from ..session.state import Channel, SessionHost
from ..session.throttle import SharedBuckets, TokenBucket, chain
from ..session.tls import make_server_context
from ..session.transport import serves
from ..storage.digests import HashSlots
from ..storage.mounts import MountTable
from ..storage.quota import Quota, QuotaStore
from ..storage.sessionfs import SessionFS, measure_home
from ..storage.threads import ThreadPool
from .counts import ConnectionCounts, LocalCounts
from .limits import BanList
from .listener import ControlListener, Listener
from .memory import IdleTrimmer
from .preflight import Problem, bind_error, ensure_ready, plural
from .proxied import ProxiedListener

if TYPE_CHECKING:
    from ..config.schema import Config, UsersStoreConfig
    from ..identity.stored import StoreClient
    from .cluster import ClusterState

__all__ = ["FTPServer"]

log = logging.getLogger("vfsftp.session")

_UPLOADS = {"STOR", "STOU", "APPE"}


def _store_client(settings: UsersStoreConfig) -> StoreClient:
    """The client of a users store. Its modules (the SQL, the migrations,
    the cache) are imported here, by a configuration that has one: a
    server without one does not load them (issue 22: import what a config
    uses)."""
    from ..identity.stored import StoreClient

    return StoreClient(settings)


#: seconds a password guess waits for a place while others of its address
#: are being checked (see FTPServer._guess), and how often it looks
_GUESS_WAIT = 10.0
_GUESS_POLL = 0.02
#: a limit Redis compares with: "none" (sessions are still counted, for
#: `vfsftp status`)
_NO_LIMIT = 2**53
#: the overrides of every session whose account has none
_NO_OVERRIDES: Mapping[str, str] = types.MappingProxyType({})


def _log_warnings(problems: list[Problem]) -> None:
    for problem in problems:
        log.warning("%s", problem)


class FTPServer(SessionHost):
    """An FTP server over the tree that ``config`` declares.

    ``authorizer`` replaces the users of the config with your own (see
    ``vfsftp.identity.auth.Authorizer``). ``login_failure_delay`` overrides the
    config's pause after a failed login, ``upload_grace`` its wait before
    an upload is published (tests set 0).
    """

    def __init__(
        self,
        config: Config,
        authorizer: Authorizer | None = None,
        *,
        login_failure_delay: float | None = None,
        upload_grace: float | None = None,
        blocking_workers: int = 32,
        transfer_workers: int = 256,
        counts: ConnectionCounts | None = None,
        bans: BanList | None = None,
        reuse_port: bool = False,
        listen_sockets: Sequence[tuple[socket.socket, bool]] = (),
        checked: bool = False,
    ) -> None:
        """Raises ConfigError, before anything is opened, when ``config``
        fails the checks of ``vfsftp check-config`` (vfsftp.service.preflight);
        ``checked``: the caller has run them (the --workers parent)."""
        if not checked:
            _log_warnings(ensure_ready(config))
        self.config = config
        self.counters = Counters()
        self.metrics = Metrics(self)
        self.hooks = Hooks(load_hooks(config.hooks, config.source), self.metrics.hook_failed)
        #: the state a fleet of instances shares (config `cluster`), else None
        self.cluster: ClusterState | None = None
        self.quota_store: QuotaStore | None = None
        if config.cluster is not None:
            from .cluster import ClusterState, SharedQuotas

            self.cluster = ClusterState(config.cluster)
            self.quota_store = SharedQuotas(self.cluster)
        #: the keys each session is counted under in the fleet's limits
        self._fleet: dict[Channel, list[str]] = {}
        self.mounts = MountTable(
            config, observe=self.metrics.observe_fs, quota_store=self.quota_store
        )
        self._own_authorizer = authorizer is None  # rebuilt by reload()
        #: the user store's connections (users_store:), with our own authorizer
        self.users_store: StoreClient | None = None
        if authorizer is None and config.users_store is not None:
            try:
                self.users_store = _store_client(config.users_store)
            except StoreError as exc:
                self.mounts.close()
                raise ConfigError([f"{config.source}: users_store: {exc}"]) from None
        #: the kick poller: its next look (a timer) or the look in progress
        self._poll_timer: asyncio.TimerHandle | None = None
        self._poll_call: asyncio.Future[Any] | None = None
        self._last_kick: int | None = None
        self.authorizer: Authorizer = authorizer or self._authorizer(config, self.mounts)
        self.login_failure_delay = (
            config.server.login_failure_delay
            if login_failure_delay is None
            else login_failure_delay
        )
        #: None: each session's config says (server.upload_grace)
        self.upload_grace = upload_grace
        ban = config.server.ban
        self.bans: BanList | None = (
            # `bans`: one shared by the worker processes (vfsftp.service.workers)
            (bans or BanList(ban.max_failures, ban.window, ban.duration, ban.exempt))
            if ban
            else None
        )
        #: tables replaced by reload() that sessions still use, and who uses which
        self._retired: list[MountTable] = []
        self._table_of: dict[Channel, MountTable] = {}
        self._reload_lock = asyncio.Lock()
        self._stop_now = asyncio.Event()  # set by stop_now(): shutdown waits no more
        # Metadata calls (stat, listdir, mkdir...) and whole transfers use
        # separate pools so that many long transfers cannot starve a LIST.
        # Each declared mount's calls hold at most blocking_workers threads
        # (a lane, vfsftp.storage.threads): a store that slows down or hangs
        # cannot starve the others; the pool has room for four such.
        self.blocking_executor = ThreadPool(
            4 * blocking_workers, "vfsftp-fs", lane_limit=blocking_workers
        )
        # One mount's transfers hold at most three quarters of theirs: a
        # store that hangs mid-transfer leaves the rest to the others.
        self.transfer_executor = ThreadPool(
            transfer_workers, "vfsftp-xfer", lane_limit=transfer_workers * 3 // 4
        )
        self.trimmer = IdleTrimmer(
            busy=lambda: any(ch.transfer is not None for ch in self.channels),
            submit=self.blocking_executor.submit,
        )
        #: hashes reading storage at once (server.hash.max_concurrent)
        self.hash_slots = HashSlots(config.server.hash.max_concurrent)
        tls = config.server.tls
        self.tls_context: ssl.SSLContext | None = (
            make_server_context(tls, config.source) if tls is not None else None
        )
        self.tls_handshake_timeout = tls.handshake_timeout if tls is not None else 10.0
        self._buckets: dict[tuple[str, str, int], TokenBucket] = {}
        #: uploads still arriving after their session's QUIT (see settle)
        self.settling: dict[tuple[int, str], asyncio.Task[None]] = {}
        self._user_quotas: dict[str, Quota] = {}
        self._buckets_lock = threading.Lock()  # guards _buckets and _user_quotas
        self.channels: set[Channel] = set()
        #: the count keys each session holds ("*", "ip:…", "user:…"), each
        #: given back exactly once (QUIT, REIN or the end of the session)
        # (tuples: an idle session holds its own, a list's spare room is waste)
        self._slots: dict[Channel, tuple[str, ...]] = {}
        self._deadlines: Deadlines | None = None
        #: sessions in all, per address, per user: shared by the worker
        #: processes under `vfsftp serve --workers N` (see vfsftp.service.workers)
        self.counts: ConnectionCounts = counts if counts is not None else LocalCounts()
        self.reuse_port = reuse_port  # workers each listen on the port (SO_REUSEPORT)
        #: listening sockets made by a parent process: (socket, implicit TLS)
        self.listen_sockets = list(listen_sockets)
        self._servers: list[asyncio.base_events.Server | Listener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.addresses: list[tuple[str, int]] = []
        self.implicit_addresses: list[tuple[str, int]] = []

    def _authorizer(self, config: Config, mounts: MountTable) -> Authorizer:
        if self.users_store is not None:
            from ..identity.stored import StoreAuthorizer

            return StoreAuthorizer(config, mounts, self.users_store)
        return ConfigAuthorizer(config, mounts)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind every listen address. With port 0 each address gets its own
        ephemeral port; ``addresses`` (``implicit_addresses``) tells which."""
        cfg = self.config.server
        if self.listen_sockets:
            await self._adopt(self.listen_sockets)
            await self._open_store()
            await self._join_fleet()
            return
        self.addresses = await self._listen(False, cfg.port, "")
        await self._open_store()
        tls = cfg.tls
        if tls is not None and tls.implicit_port is not None and self.tls_context is not None:
            # No ssl= here: the channel does the handshake itself (as after
            # AUTH TLS), so a connection still in its handshake is a session
            # like any other: counted against the limits and closed by
            # close(). asyncio's own handshakes are invisible to the server
            # and outlive a shutdown (Python < 3.13).
            self.implicit_addresses = await self._listen(True, tls.implicit_port, " (implicit TLS)")
        metrics = self.config.metrics
        if metrics.port is not None:
            try:
                await self.metrics.start(metrics.listen, metrics.port)
            except OSError as exc:  # port taken: do not leave the FTP listeners open
                for srv in self._servers:
                    srv.close()
                source = self.config.source
                raise bind_error(
                    exc, source, "metrics.listen", "metrics.port", metrics.listen, metrics.port
                ) from None
        await self._join_fleet()

    async def _join_fleet(self) -> None:
        """Sessions that arrive before this are counted here and written
        to the fleet's counts when it is joined."""
        if self.cluster is not None:
            self.cluster.about["listen"] = [f"{h}:{p}" for h, p in self.addresses]
            await self.cluster.start()

    def _listener(self, sock: socket.socket, implicit_tls: bool) -> Listener:
        """The listener of a socket this process opened or inherited."""
        proxy = self.config.server.proxy_protocol
        if proxy is not None:
            return ProxiedListener(
                sock,
                proxy,
                lambda proxied: FTPChannel(self, implicit_tls=implicit_tls, proxied=proxied),
            )
        return ControlListener(sock, lambda: FTPChannel(self, implicit_tls=implicit_tls))

    def _own_listeners(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether this process accepts itself (Listener) rather than through
        the loop's servers: behind a balancer, and on asyncio's selector loop
        (see session/transport.py)."""
        return self.config.server.proxy_protocol is not None or serves(loop)

    async def _listen(self, implicit_tls: bool, port: int, label: str) -> list[tuple[str, int]]:
        """One listener per configured address; returns the bound addresses."""
        loop = asyncio.get_running_loop()
        bound: list[tuple[str, int]] = []
        port_key = "server.tls.implicit_port" if implicit_tls else "server.port"
        for i, host in enumerate(self.config.server.listen):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                if self._own_listeners(loop):
                    # (one per address of a host name, as create_server binds)
                    for addr in await _addresses(loop, host, port, family):
                        sock = _listening_socket(addr, port, family, self.reuse_port)
                        self._servers.append(self._listener(sock, implicit_tls))
                        bound.append(_bound(sock))
                    continue
                srv = await loop.create_server(
                    lambda: FTPChannel(self, implicit_tls=implicit_tls),
                    host,
                    port,
                    family=family,
                    reuse_address=True,
                    reuse_port=self.reuse_port or None,
                    backlog=512,
                )
            except OSError as exc:
                for opened in self._servers:  # those of the addresses before
                    opened.close()
                source = self.config.source
                raise bind_error(exc, source, f"server.listen[{i}]", port_key, host, port) from None
            self._servers.append(srv)
            bound.extend(_bound(sock) for sock in srv.sockets)
        for host, p in bound:
            log.info("listening%s on %s", label, f"[{host}]:{p}" if ":" in host else f"{host}:{p}")
        return bound

    async def _adopt(self, sockets: Sequence[tuple[socket.socket, bool]]) -> None:
        """Serve on listening sockets inherited from the parent process (the
        --workers fallback where SO_REUSEPORT does not spread connections)."""
        loop = asyncio.get_running_loop()
        for sock, implicit in sockets:
            if self._own_listeners(loop):
                self._servers.append(self._listener(sock, implicit))
            else:
                self._servers.append(
                    await loop.create_server(
                        lambda implicit=implicit: FTPChannel(self, implicit_tls=implicit),  # type: ignore[misc]
                        sock=sock,
                        backlog=512,
                    )
                )
            (self.implicit_addresses if implicit else self.addresses).append(_bound(sock))

    async def _open_store(self) -> None:
        """Say what the user store holds and which of its users mounts.yaml
        hides, then watch it for kicks. A store that is down is waited for
        (its logins get 421 meanwhile); one that cannot be used (a schema
        newer than this vfsftp, no folder for its file) stops the start."""
        try:
            await self._announce_store()
        except StoreError as exc:
            for srv in self._servers:
                srv.close()
            raise ConfigError([f"{self.config.source}: users_store: {exc}"]) from None
        self._poll_kicks()

    async def _announce_store(self) -> None:
        client = self.users_store
        if client is None:
            return
        config = self.config
        try:
            count = await client.call(client.store.count)
            hidden = await client.call(client.store.names_among, list(config.users))
        except StoreUnavailable:
            return  # (logged by the client) its users get 421 until it is back
        log.info(
            "users store %s: %s; mounts.yaml's users come first",
            client.store.label,
            plural(count, "user"),
        )
        if hidden:
            log.warning(
                "users store: %s also in %s, whose entries take precedence: the "
                "stored one(s) cannot log in (remove one or the other)",
                ", ".join(hidden),
                config.source,
            )

    def _poll_kicks(self) -> None:
        """Look for kicks (`vfsftp users disable --kick`): one indexed
        SELECT, every ``users_store.poll_interval`` seconds, one at a time;
        a timer and a callback, no task."""
        self._poll_timer = None
        client = self.users_store
        if client is None or self._poll_call is not None:
            return
        call: asyncio.Future[Any]
        if self._last_kick is None:  # kicks from before this server started are not ours
            call = client.run(client.store.last_kick)
        else:
            call = client.run(client.store.kicks_since, self._last_kick)
        self._poll_call = call
        call.add_done_callback(functools.partial(self._polled, client))

    def _polled(self, client: StoreClient, call: asyncio.Future[Any]) -> None:
        self._poll_call = None
        if call.cancelled() or client is not self.users_store:
            return  # stopped, or the store was replaced by a reload
        if call.exception() is None:
            found = call.result()
            if isinstance(found, int):
                self._last_kick = found
            else:
                for kick_id, name in found:
                    self._last_kick = kick_id
                    self.kick(name)
        # (a failure is logged by the client; the next look tries again)
        loop = asyncio.get_running_loop()
        self._poll_timer = loop.call_later(client.spec.poll_interval, self._poll_kicks)

    def _stop_polling(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        if self._poll_call is not None:
            self._poll_call.cancel()
            self._poll_call = None
        self._last_kick = None

    def kick(self, name: str) -> int:
        """End the running sessions of the stored user ``name`` (421; a
        transfer is aborted, an upload discarded); how many there were."""
        ended = 0
        for channel in list(self.channels):
            account = channel.state.account
            if account is None or account.source != "store" or account.name != name:
                continue
            if channel.closing:
                continue
            ended += 1
            log.warning("kick %s user=%s: ended by `vfsftp users`", channel.peer, name)
            channel.reply(421, "Your account was disabled, closing control connection")
            task = asyncio.get_running_loop().create_task(channel.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return ended

    async def serve_forever(self) -> None:
        if not self._servers:
            await self.start()
        try:
            await asyncio.gather(*(s.serve_forever() for s in self._servers))
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop listening, end every session (a running transfer is aborted
        and its upload discarded), release threads and filesystems."""
        for srv in self._servers:
            srv.close()
        await self.metrics.close()
        self._stop_polling()
        for ch in list(self.channels):
            # The 421 after the transfer's own reply: one already committing
            # (all data in) finishes, and its 226 must not follow a 421.
            await ch.close(goodbye=None if ch.closing else "Server shutting down")
        if self._tasks:
            # Sessions are closing on their own; give them a moment, then stop
            # any that hang (a peer that never reads, say).
            _, pending = await asyncio.wait(list(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        self._servers.clear()
        if self.cluster is not None:
            await self.cluster.close()  # after the sessions: their counts are given back
        self.trimmer.close()
        self.blocking_executor.shutdown(wait=True)
        self.transfer_executor.shutdown(wait=True)
        if self.users_store is not None:
            self.users_store.close()
        for table in (*self._retired, self.mounts):  # (closing twice is harmless)
            table.close()
        await asyncio.to_thread(self.hooks.close)  # queued hooks still run

    async def __aenter__(self) -> FTPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ sessions

    @property
    def deadlines(self) -> Deadlines:
        if self._deadlines is None:
            self._deadlines = Deadlines(asyncio.get_running_loop())
        return self._deadlines

    def admit(self, channel: Channel) -> str | None:
        """A new connection: count it, or say why it is refused (421)."""
        cfg = self.config.server
        self.counters.add(connections=1)
        refusal = None
        banned = self.bans.ban_left(channel.peer_ip) if self.bans is not None else 0.0
        if banned > 0:
            refusal = (
                "Too many failed logins from your address; "
                f"try again in {math.ceil(banned)} seconds"
            )
        elif not self.counts.acquire("*", cfg.max_connections):
            refusal = "Too many connections, try again later"
        elif not self.counts.acquire("ip:" + channel.peer_ip, cfg.max_connections_per_ip):
            self.counts.release("*")
            refusal = "Too many connections from your address"
        if refusal is not None:
            self.counters.add(connections_refused=1)
            return refusal
        self.channels.add(channel)
        # (interned: the sessions of one address share their key)
        self._slots[channel] = ("*", sys.intern("ip:" + channel.peer_ip))
        return None

    def admit_shared(self, channel: Channel) -> Coroutine[Any, Any, str | None] | None:
        """The fleet's limits and bans (config `cluster`), checked and taken
        in one call to Redis before the greeting."""
        if self.cluster is None:
            return None
        return self._admit_shared(channel, self.cluster)

    async def _admit_shared(self, channel: Channel, cluster: ClusterState) -> str | None:
        cfg = self.config.server
        ip = channel.peer_ip
        keys = [("*", cfg.max_connections), ("ip:" + ip, cfg.max_connections_per_ip)]
        bans = self.bans
        ban_key = bans.key(ip) if bans is not None and not bans.is_exempt(ip) else ""
        verdict = await cluster.acquire(keys, ban_key)
        if verdict.refusal is None:
            if channel in self._slots:
                self._fleet[channel] = [key for key, _ in keys]
            else:  # the session ended meanwhile
                cluster.release([key for key, _ in keys])
            return None
        self.counters.add(connections_refused=1)
        if verdict.refusal == "banned":
            return (
                "Too many failed logins from your address; "
                f"try again in {math.ceil(verdict.seconds)} seconds"
            )
        if verdict.field == "*":
            return "Too many connections, try again later"
        return "Too many connections from your address"

    def track(self, task: asyncio.Task[None]) -> None:
        """A session's task (handling commands, closing): waited for, then
        cancelled, at shutdown. The channel calls ``untrack`` when it ends
        (from the one done callback it has anyway)."""
        self._tasks.add(task)

    def untrack(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)

    # MetricsSource: what the metrics read at scrape time.

    def totals(self) -> dict[str, float]:
        return self.counters.snapshot()

    def sessions_active(self) -> int:
        return len(self.channels)

    def transfers_active(self) -> int:
        # (a HASH runs as the session's transfer too, with no data connection)
        return sum(
            1 for ch in self.channels if ch.transfer is not None and ch.transfer.stop is None
        )

    # SessionHost: what sessions ask of the service.

    def count_reply(self, code: int) -> None:
        self.metrics.reply(code)

    def uploads_settling(self) -> bool:
        return bool(self.settling)

    def session_closed(self, channel: Channel) -> None:
        self.release_slots(channel)
        self.channels.discard(channel)
        self.logout(channel)
        self.trimmer.activity()

    def release_slots(self, channel: Channel) -> None:
        # Each key is given back once: here, or by a logout (REIN) before.
        for key in self._slots.pop(channel, ()):
            self.counts.release(key)
        # Every fleet key of the session (the user's too) in one call.
        fleet = self._fleet.pop(channel, None)
        if fleet and self.cluster is not None:
            self.cluster.release(fleet)

    # ------------------------------------------------------------ login

    async def tls_policy(self, username: str) -> tuple[bool, bool]:
        """(control must be TLS, data must be TLS) for this login name. An
        authorizer may decide per user with ``tls_policy(name)`` (returning
        the pair, None, or an awaitable of either); unknown names get the
        server's default, so the answer reveals nothing."""
        tls = self.config.server.tls
        if tls is None:
            return (False, False)
        policy = getattr(self.authorizer, "tls_policy", None)
        if policy is not None:
            decided = policy(username)
            if inspect.isawaitable(decided):
                decided = await decided
            if decided is not None:
                return (bool(decided[0]), bool(decided[1]))
        return (tls.require_tls, tls.require_data_tls)

    async def login(self, channel: Channel, username: str, password: str) -> None:
        # The authorizer builds the tree from the current mount table: held
        # for this session from now on, so a reload meanwhile cannot close it.
        self._table_of[channel] = self.mounts
        try:
            await self._login(channel, username, password)
        finally:
            if channel.state.account is None and self._table_of.pop(channel, None) is not None:
                self._release_tables()

    async def _guess(self, channel: Channel) -> int | str | None:
        """A place to have one password guess checked (BanList.attempt, or
        the fleet's count of guesses when it is shared): waits while
        ``max_failures`` guesses of the address are being checked; None
        when the address is banned meanwhile, or no place came free within
        _GUESS_WAIT seconds. A str token is the fleet's, an int the local
        ban list's."""
        bans = self.bans
        assert bans is not None
        ip = channel.peer_ip
        cluster = self.cluster if not bans.is_exempt(ip) else None
        loop = channel.loop
        deadline = loop.time() + _GUESS_WAIT
        while bans.ban_left(ip) <= 0:
            shared = (
                await cluster.attempt(bans.key(ip), bans.max_failures, bans.window)
                if cluster is not None
                else True
            )
            if isinstance(shared, str):
                return shared
            if shared is False:
                return None  # banned by the fleet meanwhile
            if shared is True:  # not shared (or Redis unreachable): the local list
                token = bans.attempt(ip)
                if token >= 0:
                    return token
            if loop.time() >= deadline or channel.closing:
                return None
            # (across --workers and a fleet the count is elsewhere: polled)
            await asyncio.sleep(_GUESS_POLL)
        return None

    async def _finish_guess(self, channel: Channel, token: int | str, failed: bool) -> bool:
        """The guess ``token`` was checked: True when its failure starts a ban."""
        bans = self.bans
        assert bans is not None
        ip = channel.peer_ip
        if isinstance(token, str) and self.cluster is not None:
            banned = await self.cluster.finish(
                bans.key(ip), token, failed, bans.max_failures, bans.window, bans.duration
            )
            if banned is not None:
                return banned
            return bans.failure(ip) if failed else False  # Redis gone: counted here
        return bans.finish(ip, int(token), failed)

    async def _login(self, channel: Channel, username: str, password: str) -> None:
        token: int | str = 0
        if self.bans is not None:
            guess = await self._guess(channel)
            if guess is None:
                # Connections opened before the ban get no more guesses either.
                channel.reply(421, "Too many failed logins from your address; closing")
                channel.closing = True
                return
            token = guess
        # A failure is answered login_failure_delay after this, however long
        # its check took: the time of the reply tells nothing of the name.
        answer_at = channel.loop.time() + self.login_failure_delay
        account = None
        storage_failed = False
        try:
            account = await self.authorizer.authorize(username, password, channel.peer)
        except StoreUnavailable:
            # The user database is down: not a wrong password (no failure
            # counted); this login alone is turned away (RFC 959: 421,
            # service not available, closing the control connection).
            storage_failed = True
            log.warning("login %s user=%s: users store unreachable: 421", channel.peer, username)
            channel.reply(421, "Service not available: the user database does not answer")
            channel.closing = True
            return
        except ConfigError as exc:
            # A mount opened at the first login (a ${user} folder) failed:
            # the server's problem, not a wrong password (no failure counted).
            storage_failed = True
            for line in exc.problems:
                log.error("login %s user=%s refused: %s", channel.peer, username, line)
            raise FTPError(
                530, "Login failed: the storage of this account cannot be opened (see the log)"
            ) from None
        finally:
            # A fleet's guess that succeeded ends with the user's count below
            # (one call to Redis for both).
            deferred = account is not None and isinstance(token, str) and self.cluster is not None
            banned = (
                self.bans is not None
                and not deferred
                and await self._finish_guess(
                    channel, token, failed=account is None and not storage_failed
                )
            )
        if account is None:
            channel.state.login_failures += 1
            self.counters.add(login_failures=1)
            log.warning("login failed %s user=%s", channel.peer, username)
            wait = answer_at - channel.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if banned:
                assert self.bans is not None
                log.warning(
                    "ban %s for %gs after %d failed logins in %gs",
                    channel.peer_ip,
                    self.bans.duration,
                    self.bans.max_failures,
                    self.bans.window,
                )
                channel.reply(
                    421,
                    "Too many failed logins from your address; "
                    f"banned for {math.ceil(self.bans.duration)} seconds",
                )
                channel.closing = True
                return
            if channel.state.login_failures >= self.config.server.max_login_attempts:
                channel.reply(421, "Too many failed logins, closing control connection")
                channel.closing = True
                return
            raise FTPError(530, "Login incorrect")
        policy = await self._tls_policy_of(account, username)
        if policy[0] and not channel.state.secure:
            # (USER checks this first; a policy read there may have changed
            # since, or the store may not have answered then)
            log.warning("login refused %s user=%s: TLS required", channel.peer, account.name)
            raise FTPError(530, "TLS required for this user: send AUTH TLS first")
        limit = account.max_connections
        user_key = sys.intern("user:" + account.name)
        checked: tuple[str, str] | None = None  # the fleet's guess, still to end
        if deferred:
            assert self.bans is not None and isinstance(token, str)
            checked = (self.bans.key(channel.peer_ip), token)
        admitted = self.counts.acquire(user_key, limit or sys.maxsize)
        if admitted:
            self._slots[channel] = (*self._slots.get(channel, ()), user_key)
        if checked is not None and not admitted:
            await self._finish_guess(channel, checked[1], failed=False)
        if admitted and self.cluster is not None:
            verdict = await self.cluster.acquire([(user_key, limit or _NO_LIMIT)], guess=checked)
            if channel not in self._slots:  # the session ended meanwhile (its
                # slots, this one too, were given back then)
                if verdict.refusal is None:
                    self.cluster.release([user_key])
                return
            if verdict.refusal is None:
                self._fleet.setdefault(channel, []).append(user_key)
            else:
                self._give_back(channel, user_key)
                admitted = False
        if not admitted:
            log.warning(
                "login refused %s user=%s: per-user connection limit", channel.peer, account.name
            )
            # 421 and close, as for the server-wide and per-address limits.
            channel.reply(
                421, f"Too many sessions for {account.name} (limit {limit}), try again later"
            )
            channel.closing = True
            return
        # Counted from here (the check above took the slot): a session that
        # ends while its root is looked up is released by logout().
        channel.state.account = account
        try:
            session_fs = await self._session_fs(account)
            if session_fs.cwd != "/":  # the root always exists: no stat for it
                try:
                    await session_fs.chdir(session_fs.cwd)
                except FTPError:
                    log.warning(
                        "home %s of %s does not exist; starting at its root %s (create it, "
                        "or change users.%s.home in %s)",
                        account.home,
                        account.name,
                        session_fs.root,
                        account.name,
                        self.config.source,
                    )
                    session_fs.cwd = "/"
        except BaseException:
            self.logout(channel)
            raise
        channel.state.fs = session_fs
        channel.state.require_data_tls = policy[1]
        self.counters.add(logins=1)
        log.info("login ok %s user=%s", channel.peer, account.name)
        self.event(channel, "login")
        channel.reply(230, f"Login successful, welcome {account.name}")

    async def _tls_policy_of(self, account: Account, username: str) -> tuple[bool, bool]:
        """The TLS policy the account carries, else the authorizer's."""
        tls = self.config.server.tls
        if tls is None:
            return (False, False)
        if account.require_tls is None and account.require_data_tls is None:
            return await self.tls_policy(username)
        return (
            tls.require_tls if account.require_tls is None else account.require_tls,
            tls.require_data_tls if account.require_data_tls is None else account.require_data_tls,
        )

    async def _session_fs(self, account: Account) -> SessionFS:
        """The session's view of the account's tree, confined to its root
        (530 when the root is not there)."""
        try:
            root = resolve("/", account.root if account.root is not None else account.home)
            home = resolve("/", account.home)
        except PathRejected:
            log.warning("root or home of %s is not a valid path: login refused", account.name)
            raise FTPError(530, "Login refused: home directory not available") from None
        in_view = to_view(root, home)
        if in_view is None:
            log.warning("home %s of %s is outside its root %s", home, account.name, root)
            in_view = "/"
        tree = account.tree.cached_view(root)
        if tree is None:
            try:
                if account.tree.all_inline:
                    tree = account.tree.view(root)
                else:
                    tree = await self.blocking_executor.run(account.tree.view, root)
            except (fs.errors.FSError, OSError) as exc:
                log.warning(
                    "root %s of %s is not available (%r): login refused", root, account.name, exc
                )
                raise FTPError(530, "Login refused: home directory not available") from None
        return SessionFS(
            tree,
            account.perms,
            overrides_in_view(account.overrides, root) if account.overrides else _NO_OVERRIDES,
            self.blocking_executor,
            home=in_view,
            owner=_owner_name(account),
            user_quota=self._user_quota(account),
            quota_home=in_view,
            root=root,
        )

    def _user_quota(self, account: Account) -> Quota | None:
        """The user's quota account, shared by all their sessions."""
        limits = account.quota
        if limits is None:
            return None
        with self._buckets_lock:
            quota = self._user_quotas.get(account.name)
            if quota is None or (quota.max_bytes, quota.max_files) != (
                limits.max_bytes,
                limits.max_files,
            ):
                quota = self._user_quotas[account.name] = Quota(
                    f"user {account.name}",
                    limits.max_bytes,
                    limits.max_files,
                    partial(measure_home, account.tree, account.home),
                    scope="user:" + account.name,
                    store=self.quota_store,
                )
            return quota

    def logout(self, channel: Channel) -> None:
        account: Account | None = channel.state.account
        if account is not None:
            user_key = "user:" + account.name
            self._give_back(channel, user_key)
            fleet = self._fleet.get(channel)
            if fleet is not None and user_key in fleet and self.cluster is not None:
                fleet.remove(user_key)
                self.cluster.release([user_key])
            channel.state.account = None
            channel.state.fs = None
        if self._table_of.pop(channel, None) is not None and self._retired:
            self._release_tables()

    def quota_usage(self) -> list[tuple[str, int, int]]:
        """MetricsSource: every quota account measured so far, the mounts'
        and the users' (a fleet's, kept in Redis, are not read here)."""
        with self._buckets_lock:
            users = list(self._user_quotas.values())
        used = ((q.shown_as, q.peek()) for q in [*self.mounts.quotas(), *users])
        return [(label, u[0], u[1]) for label, u in used if u is not None]

    def _give_back(self, channel: Channel, key: str) -> None:
        held = self._slots.get(channel)
        if held is not None and key in held:
            rest = list(held)
            rest.remove(key)
            self._slots[channel] = tuple(rest)
            self.counts.release(key)

    # ------------------------------------------------------------ transfers

    def _upload_key(self, session_fs: SessionFS, path: str) -> tuple[int, str] | None:
        return session_fs.tree.storage_key(path)

    def settling_upload(self, session_fs: SessionFS, path: str, task: asyncio.Task[None]) -> None:
        """Remember an upload whose session has quit but whose data is still
        arriving, so that other sessions touching the file wait for it."""
        key = self._upload_key(session_fs, path)
        if key is None:
            return
        self.settling[key] = task

        def forget(_: object) -> None:
            if self.settling.get(key) is task:
                del self.settling[key]

        task.add_done_callback(forget)

    async def settle(self, session_fs: SessionFS, path: str) -> None:
        key = self._upload_key(session_fs, path)
        task = self.settling.get(key) if key is not None else None
        if task is not None:
            await asyncio.wait({task}, timeout=self.config.server.data_timeout)

    def throttle_for(self, channel: Channel, direction: str) -> Callable[[int], None] | None:
        """The rate limit of a transfer (``"down"`` or ``"up"``): the
        session's own bucket, the user's (shared by all their sessions) and
        the server-wide one; a transfer waits for all three. Rates are the
        session's own settings (those it started with, whatever a reload
        changed since)."""
        account = channel.state.account
        assert account is not None
        cfg = channel.config.server
        if direction == "down":
            session_rate = account.session_download_rate or cfg.session_download_rate
            user_rate = account.max_download_rate or cfg.max_download_rate
            total_rate = cfg.total_download_rate
        else:
            session_rate = account.session_upload_rate or cfg.session_upload_rate
            user_rate = account.max_upload_rate or cfg.max_upload_rate
            total_rate = cfg.total_upload_rate
        session_bucket = None
        if session_rate is not None:
            buckets = channel.state.buckets
            if buckets is None:
                buckets = channel.state.buckets = {}
            session_bucket = buckets.get(direction)
            if session_bucket is None or session_bucket.rate != session_rate:
                session_bucket = buckets[direction] = TokenBucket(session_rate)
        user_bucket = self._bucket((account.name, direction), user_rate)
        total_bucket = self._bucket(("*", direction), total_rate)
        if self.cluster is not None and (user_bucket or total_bucket):
            # One bucket per user and one for the server, shared by the
            # fleet (one Redis call for both per 20 ms of the rate); these
            # local ones pace the transfer while Redis cannot be reached.
            shared = [
                (f"{who}:{direction}:{int(bucket.rate)}", bucket)
                for who, bucket in (("u:" + account.name, user_bucket), ("*", total_bucket))
                if bucket is not None
            ]
            return chain(session_bucket, SharedBuckets(self.cluster, shared))
        return chain(session_bucket, user_bucket, total_bucket)

    def _bucket(self, key: tuple[str, str], rate: int | None) -> TokenBucket | None:
        if rate is None:
            return None
        # Keyed by rate too: after a reload changed it, sessions from before
        # keep sharing the old bucket, new ones share a new bucket.
        with self._buckets_lock:
            bucket = self._buckets.get((key[0], key[1], rate))
            if bucket is None:
                bucket = self._buckets[(key[0], key[1], rate)] = TokenBucket(rate)
            return bucket

    def transfer_log(
        self,
        channel: Channel,
        verb: str,
        path: str,
        state: TransferState | None,
        outcome: str,
        fault: Fault | None = None,
    ) -> None:
        self.trimmer.activity()
        nbytes = state.bytes if state is not None else 0
        seconds = time.monotonic() - state.started if state is not None else 0.0
        if verb in _UPLOADS:
            if outcome == "ok":
                self.counters.add(files_received=1, bytes_received=nbytes)
        elif verb == "RETR" and outcome == "ok":
            self.counters.add(files_sent=1, bytes_sent=nbytes)
        if outcome != "ok":
            self.counters.add(transfers_failed=1)
        if verb in _UPLOADS or verb == "RETR":
            account = channel.state.account
            session_fs = channel.state.fs
            # Logs name the server's path (the user's root is in front of
            # the one the client sent), and the mount of the server's table.
            if session_fs is not None:
                path = session_fs.tree_path(path)
            found = account.tree.mount_of(path) if account is not None else None
            rec = TransferRecord(
                time=time.time(),
                seconds=seconds,
                peer=channel.peer_ip,
                bytes=nbytes,
                path=path,
                binary=channel.state.transfer_type == "I",
                direction="i" if verb in _UPLOADS else "o",
                anonymous=account is not None and account.anonymous,
                user=channel.username,
                complete=outcome == "ok",
                verb=verb,
                outcome=outcome,
                session=session_id.get(),
                mount=found[0].path if found is not None else "/",
                fault=fault.kind if fault is not None else "",
                reason=fault.detail if fault is not None else "",
            )
            if outcome == "ok" and state is not None and state.checksum is not None:
                rec.checksum_algorithm, rec.checksum = state.checksum
            log_transfer(rec)
            self.metrics.transfer(rec)
            if rec.fault:
                self.metrics.fault(rec.direction, rec.fault)
            if outcome == "ok":
                name = "upload" if verb in _UPLOADS else "download"
                self._fire(channel, name, path, size=nbytes)

    def event(
        self,
        channel: Channel,
        name: str,
        path: str = "",
        destination: str = "",
        size: int | None = None,
    ) -> None:
        """Run the hooks of an event (in their own threads; returns at once).
        ``path`` and ``destination`` are the session's own; hooks get the
        server's (the user's root in front)."""
        if self.hooks.table.get(name):
            session_fs = channel.state.fs
            if session_fs is not None:
                path = session_fs.tree_path(path) if path else path
                destination = session_fs.tree_path(destination) if destination else destination
            self._fire(channel, name, path, destination, size)

    def _fire(
        self,
        channel: Channel,
        name: str,
        path: str = "",
        destination: str = "",
        size: int | None = None,
    ) -> None:
        if self.hooks.table.get(name):
            self.hooks.fire(
                Event(
                    name,
                    channel.username,
                    channel.peer_ip,
                    path,
                    destination,
                    size,
                    session_id.get(),
                )
            )

    # ------------------------------------------------------------ reload, shutdown

    async def reload(self, config: Config) -> None:
        """Serve ``config`` to new sessions: users, mounts, hooks, TLS and
        rate limits. Running sessions keep what they started with (their
        tree, settings, TLS context and rate buckets). Filesystems the new
        config declares the same way are kept (an in-memory mount keeps its
        files). On a ConfigError (a mount that cannot be opened, a hook that
        cannot be imported, a bad certificate) nothing changes.
        Listeners, metrics and logging keep their settings until a restart."""
        # One at a time: each reload builds on the table the last one made.
        async with self._reload_lock:
            await self._reload(config)

    async def _reload(self, config: Config) -> None:
        old = self.mounts

        new_store = self._own_authorizer and config.users_store != self.config.users_store

        def build() -> tuple[MountTable, dict[str, Any], ssl.SSLContext | None, StoreClient | None]:
            _log_warnings(ensure_ready(config))
            mounts = MountTable(
                config, reuse=old, observe=self.metrics.observe_fs, quota_store=self.quota_store
            )
            try:
                hooks = load_hooks(config.hooks, config.source)
                tls = config.server.tls
                ctx = make_server_context(tls, config.source) if tls is not None else None
                client = None
                if new_store and config.users_store is not None:
                    try:
                        client = _store_client(config.users_store)
                    except StoreError as exc:
                        raise ConfigError([f"{config.source}: users_store: {exc}"]) from None
            except BaseException:
                mounts.close(keep=old.filesystems())
                raise
            return mounts, hooks, ctx, client

        try:
            mounts, hooks, ctx, client = await asyncio.to_thread(build)
        except Exception:
            self.metrics.reloaded(ok=False)
            raise
        was, tls = self.config, config.server.tls
        restart_only = [
            name
            for name, before, after in (
                ("server.listen", was.server.listen, config.server.listen),
                ("server.port", was.server.port, config.server.port),
                (
                    "server.tls.implicit_port",
                    was.server.tls.implicit_port if was.server.tls else None,
                    tls.implicit_port if tls else None,
                ),
                ("server.ban", was.server.ban, config.server.ban),
                (
                    "server.login_failure_delay",
                    was.server.login_failure_delay,
                    config.server.login_failure_delay,
                ),
                ("metrics", was.metrics, config.metrics),
                ("logging", was.logging, config.logging),
                ("cluster", was.cluster, config.cluster),
                (
                    "server.proxy_protocol",
                    was.server.proxy_protocol,
                    config.server.proxy_protocol,
                ),
            )
            if before != after
        ]
        if restart_only:
            log.warning("reload: %s changed: applied at the next restart", ", ".join(restart_only))
        self.config = config
        self.mounts = mounts
        self.hash_slots.limit = config.server.hash.max_concurrent
        if self._own_authorizer:
            await self._reload_store(client, replace=new_store)
            self.authorizer = self._authorizer(config, mounts)
        self.hooks.table = hooks
        self.tls_context = ctx
        self.tls_handshake_timeout = tls.handshake_timeout if tls is not None else 10.0
        self._retired.append(old)
        self._release_tables()
        self.metrics.reloaded(ok=True)
        log.info(
            "configuration reloaded from %s: %s, %s",
            config.source,
            plural(len(config.mounts), "mount"),
            plural(len(config.users), "user"),
        )

    async def _reload_store(self, client: StoreClient | None, replace: bool) -> None:
        """Serve the users store of the new config (``self.config``): with
        ``replace``, ``client`` (None: no store any more), else the same
        connections as before."""
        if replace:
            old, self.users_store = self.users_store, client
            self._stop_polling()
            if old is not None:
                await asyncio.to_thread(old.close)
        try:
            # (its log lines again: users: may have changed)
            await self._announce_store()
        except StoreError as exc:
            log.error("reload: users_store: %s", exc)
        if self._poll_timer is None and self._poll_call is None:
            self._poll_kicks()

    def _release_tables(self) -> None:
        """Close the retired mount tables no session uses any more, except
        the filesystems a live table still shares."""
        in_use = {id(t) for t in self._table_of.values()}
        done = [t for t in self._retired if id(t) not in in_use]
        if not done:
            return
        self._retired = [t for t in self._retired if id(t) in in_use]
        used = {id(f) for t in (self.mounts, *self._retired) for f in t.filesystems()}
        unused = list(
            {id(f): f for t in done for f in t.filesystems() if id(f) not in used}.values()
        )
        if unused:
            try:  # closing an S3 filesystem joins its threads: not on the loop
                self.blocking_executor.submit(_close_all, unused)
            except RuntimeError:  # the executor is shut down: the server is closing
                _close_all(unused)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Graceful stop: no new connections; idle sessions get 421 at once,
        a session's command in hand is answered first and running transfers
        (and those such a command starts) may finish (``timeout`` seconds at
        most, default ``server.shutdown_timeout``), then every session is
        closed."""
        timeout = self.config.server.shutdown_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for srv in self._servers:
            srv.close()
        log.info(
            "shutting down: waiting up to %gs for %d transfer(s)", timeout, len(self._transfers())
        )
        for ch in list(self.channels):
            ch.shut_down()
        hurry = asyncio.ensure_future(self._stop_now.wait())
        try:
            while True:
                # Commands in hand (tasks) may start transfers: look again.
                waiting = {t for t in self._tasks if not t.done()} | set(self._transfers())
                left = deadline - loop.time()
                if not waiting or left <= 0 or hurry.done():
                    break
                await asyncio.wait({*waiting, hurry}, timeout=left, return_when="FIRST_COMPLETED")
        finally:
            hurry.cancel()
            await asyncio.gather(hurry, return_exceptions=True)
        late = self._transfers()
        if late:
            log.warning("shutdown: aborting %d transfer(s) still running", len(late))
        await self.close()

    def _transfers(self) -> list[asyncio.Task[None]]:
        return [
            ch.transfer.task
            for ch in self.channels
            if ch.transfer is not None
            and ch.transfer.task is not None
            and not ch.transfer.task.done()
        ]

    def stop_now(self) -> None:
        """Make a running ``shutdown()`` stop waiting for transfers (a second
        SIGTERM or Ctrl-C): they are aborted, their uploads discarded."""
        self._stop_now.set()


def _listening_socket(
    host: str, port: int, family: socket.AddressFamily, reuse_port: bool
) -> socket.socket:
    """A listening socket as loop.create_server makes one."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def _addresses(
    loop: asyncio.AbstractEventLoop, host: str, port: int, family: socket.AddressFamily
) -> list[str]:
    """The addresses ``host`` (an address or a name) stands for."""
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(host))]
    infos = await loop.getaddrinfo(
        host, port, family=family, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _bound(sock: socket.socket) -> tuple[str, int]:
    addr = sock.getsockname()
    return (str(addr[0]), int(addr[1]))


def _close_all(filesystems: list[Any]) -> None:
    for filesystem in filesystems:
        with contextlib.suppress(Exception):
            filesystem.close()


def _owner_name(account: Account) -> str:
    return _owner_of(account.name)


@functools.lru_cache(maxsize=4096)
def _owner_of(name: str) -> str:
    # LIST's owner column must be one word for clients' parsers. (Cached:
    # the sessions of one user share the string.)
    word = "".join(c for c in name if c.isalnum() or c in "-_.@")
    return (word or "ftp")[:32]
