"""The server: listeners, connection limits, logins, shutdown.

server = FTPServer(load_config("mounts.yaml"))
asyncio.run(server.serve_forever())
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from .auth import Account, Authorizer, ConfigAuthorizer
from .channel import FTPChannel
from .config import Config
from .counts import ConnectionCounts, LocalCounts
from .data import TransferState
from .errors import FTPError
from .hooks import Event, Hooks, load_hooks
from .limits import BanList
from .memory import IdleTrimmer
from .metrics import Metrics
from .mounts import MountTable
from .observability import Counters, TransferRecord, log_transfer, session_id
from .quota import Quota
from .threads import ThreadPool
from .throttle import TokenBucket, chain
from .tls import make_server_context
from .vfs import SessionFS, measure_home

__all__ = ["FTPServer"]

log = logging.getLogger("vfsftp.session")

_UPLOADS = {"STOR", "STOU", "APPE"}


class FTPServer:
    """An FTP server over the tree that ``config`` declares.

    ``authorizer`` replaces the users of the config with your own (see
    ``vfsftp.auth.Authorizer``). ``login_failure_delay`` overrides the
    config's pause after a failed login (tests set 0).
    """

    def __init__(
        self,
        config: Config,
        authorizer: Authorizer | None = None,
        *,
        login_failure_delay: float | None = None,
        blocking_workers: int = 32,
        transfer_workers: int = 256,
        counts: ConnectionCounts | None = None,
        bans: BanList | None = None,
        reuse_port: bool = False,
        listen_sockets: Sequence[tuple[socket.socket, bool]] = (),
    ) -> None:
        self.config = config
        self.counters = Counters()
        self.metrics = Metrics(self)
        self.hooks = Hooks(load_hooks(config.hooks, config.source), self.metrics.hook_failed)
        self.mounts = MountTable(config, observe=self.metrics.observe_fs)
        self._own_authorizer = authorizer is None  # rebuilt by reload()
        self.authorizer: Authorizer = authorizer or ConfigAuthorizer(config, self.mounts)
        self.login_failure_delay = (
            config.server.login_failure_delay
            if login_failure_delay is None
            else login_failure_delay
        )
        ban = config.server.ban
        self.bans: BanList | None = (
            # `bans`: one shared by the worker processes (vfsftp.workers)
            (bans or BanList(ban.max_failures, ban.window, ban.duration, ban.exempt))
            if ban
            else None
        )
        #: tables replaced by reload() that sessions still use, and who uses which
        self._retired: list[MountTable] = []
        self._table_of: dict[FTPChannel, MountTable] = {}
        self._reload_lock = asyncio.Lock()
        self._stop_now = asyncio.Event()  # set by stop_now(): shutdown waits no more
        # Metadata calls (stat, listdir, mkdir...) and whole transfers use
        # separate pools so that many long transfers cannot starve a LIST.
        self.blocking_executor = ThreadPool(blocking_workers, "vfsftp-fs")
        self.transfer_executor = ThreadPool(transfer_workers, "vfsftp-xfer")
        self.trimmer = IdleTrimmer(
            busy=lambda: any(ch.transfer is not None for ch in self.channels),
            submit=self.blocking_executor.submit,
        )
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
        self.channels: set[FTPChannel] = set()
        #: sessions in all, per address, per user: shared by the worker
        #: processes under `vfsftp serve --workers N` (see vfsftp.workers)
        self.counts: ConnectionCounts = counts if counts is not None else LocalCounts()
        self.reuse_port = reuse_port  # workers each listen on the port (SO_REUSEPORT)
        #: listening sockets made by a parent process: (socket, implicit TLS)
        self.listen_sockets = list(listen_sockets)
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.addresses: list[tuple[str, int]] = []
        self.implicit_addresses: list[tuple[str, int]] = []

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind every listen address. With port 0 each address gets its own
        ephemeral port; ``addresses`` (``implicit_addresses``) tells which."""
        cfg = self.config.server
        if self.listen_sockets:
            await self._adopt(self.listen_sockets)
            return
        self.addresses = await self._listen(False, cfg.port, "")
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
            except OSError:  # port taken: do not leave the FTP listeners open
                for srv in self._servers:
                    srv.close()
                raise

    async def _listen(self, implicit_tls: bool, port: int, label: str) -> list[tuple[str, int]]:
        """One listener per configured address; returns the bound addresses."""
        loop = asyncio.get_running_loop()
        bound: list[tuple[str, int]] = []
        for host in self.config.server.listen:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            srv = await loop.create_server(
                lambda: FTPChannel(self, implicit_tls=implicit_tls),
                host,
                port,
                family=family,
                reuse_address=True,
                reuse_port=self.reuse_port or None,
                backlog=512,
            )
            self._servers.append(srv)
            for sock in srv.sockets:
                addr = sock.getsockname()
                bound.append((str(addr[0]), int(addr[1])))
        for host, p in bound:
            log.info("listening%s on %s", label, f"[{host}]:{p}" if ":" in host else f"{host}:{p}")
        return bound

    async def _adopt(self, sockets: Sequence[tuple[socket.socket, bool]]) -> None:
        """Serve on listening sockets inherited from the parent process (the
        --workers fallback where SO_REUSEPORT does not spread connections)."""
        loop = asyncio.get_running_loop()
        for sock, implicit in sockets:
            srv = await loop.create_server(
                lambda implicit=implicit: FTPChannel(self, implicit_tls=implicit),  # type: ignore[misc]
                sock=sock,
                backlog=512,
            )
            self._servers.append(srv)
            addr = sock.getsockname()
            (self.implicit_addresses if implicit else self.addresses).append(
                (str(addr[0]), int(addr[1]))
            )

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
        self.trimmer.close()
        self.blocking_executor.shutdown(wait=True)
        self.transfer_executor.shutdown(wait=True)
        for table in (*self._retired, self.mounts):  # (closing twice is harmless)
            table.close()
        await asyncio.to_thread(self.hooks.close)  # queued hooks still run

    async def __aenter__(self) -> FTPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ sessions

    def admit(self, channel: FTPChannel) -> str | None:
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
        return None

    def track(self, task: asyncio.Task[None]) -> None:
        """A session's task (handling commands, closing): waited for, then
        cancelled, at shutdown. The channel calls ``untrack`` when it ends
        (from the one done callback it has anyway)."""
        self._tasks.add(task)

    def untrack(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)

    def session_closed(self, channel: FTPChannel) -> None:
        if channel in self.channels:
            self.channels.discard(channel)
            self.counts.release("ip:" + channel.peer_ip)
            self.counts.release("*")
        self.logout(channel)
        self.trimmer.activity()

    # ------------------------------------------------------------ login

    def tls_policy(self, username: str) -> tuple[bool, bool]:
        """(control must be TLS, data must be TLS) for this login name. An
        authorizer may decide per user with ``tls_policy(name)``; unknown
        names get the server's default, so the answer reveals nothing."""
        tls = self.config.server.tls
        if tls is None:
            return (False, False)
        policy = getattr(self.authorizer, "tls_policy", None)
        if policy is not None:
            decided = policy(username)
            if decided is not None:
                return (bool(decided[0]), bool(decided[1]))
        return (tls.require_tls, tls.require_data_tls)

    async def login(self, channel: FTPChannel, username: str, password: str) -> None:
        # The authorizer builds the tree from the current mount table: held
        # for this session from now on, so a reload meanwhile cannot close it.
        self._table_of[channel] = self.mounts
        try:
            await self._login(channel, username, password)
        finally:
            if channel.state.account is None and self._table_of.pop(channel, None) is not None:
                self._release_tables()

    async def _login(self, channel: FTPChannel, username: str, password: str) -> None:
        if self.bans is not None and self.bans.ban_left(channel.peer_ip) > 0:
            # Connections opened before the ban get no more guesses either.
            channel.reply(421, "Too many failed logins from your address; closing")
            channel.closing = True
            return
        account = await self.authorizer.authorize(username, password, channel.peer)
        if account is None:
            channel.state.login_failures += 1
            self.counters.add(login_failures=1)
            log.warning("login failed %s user=%s", channel.peer, username)
            banned = self.bans is not None and self.bans.failure(channel.peer_ip)
            if self.login_failure_delay:
                await asyncio.sleep(self.login_failure_delay)
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
        limit = account.max_connections
        if not self.counts.acquire("user:" + account.name, limit or sys.maxsize):
            log.warning(
                "login refused %s user=%s: per-user connection limit", channel.peer, account.name
            )
            # 421 and close, as for the server-wide and per-address limits.
            channel.reply(
                421, f"Too many sessions for {account.name} (limit {limit}), try again later"
            )
            channel.closing = True
            return
        session_fs = SessionFS(
            account.tree,
            account.perms,
            account.overrides,
            self.blocking_executor,
            home="/",
            owner=_owner_name(account),
            user_quota=self._user_quota(account),
            quota_home=account.home,
        )
        # Counted from here (the check above took the slot): a session that
        # ends while its home is looked up is released by logout().
        channel.state.account = account
        try:
            if account.home != "/":  # the root always exists: no stat for it
                await session_fs.chdir(session_fs.resolve(account.home))
        except FTPError:
            log.warning("home %s of %s is missing; starting at /", account.home, account.name)
        except BaseException:
            self.logout(channel)
            raise
        channel.state.fs = session_fs
        channel.state.require_data_tls = self.tls_policy(username)[1]
        self.counters.add(logins=1)
        log.info("login ok %s user=%s", channel.peer, account.name)
        self.event(channel, "login")
        channel.reply(230, f"Login successful, welcome {account.name}")

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
                )
            return quota

    def quota_accounts(self) -> list[Quota]:
        """Every quota account in use: the mounts' and the users'."""
        with self._buckets_lock:
            users = list(self._user_quotas.values())
        return self.mounts.quotas() + users

    def logout(self, channel: FTPChannel) -> None:
        account: Account | None = channel.state.account
        if account is not None:
            self.counts.release("user:" + account.name)
            channel.state.account = None
            channel.state.fs = None
        if self._table_of.pop(channel, None) is not None and self._retired:
            self._release_tables()

    # ------------------------------------------------------------ transfers

    def _upload_key(self, session_fs: SessionFS, path: str) -> tuple[int, str] | None:
        found = session_fs.tree.mount_of(path)
        return (id(found[0].fs), found[1]) if found is not None else None

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

    def throttle_for(self, channel: FTPChannel, direction: str) -> Callable[[int], None] | None:
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
            session_bucket = buckets.get(direction)
            if session_bucket is None or session_bucket.rate != session_rate:
                session_bucket = buckets[direction] = TokenBucket(session_rate)
        return chain(
            session_bucket,
            self._bucket((account.name, direction), user_rate),
            self._bucket(("*", direction), total_rate),
        )

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
        self, channel: FTPChannel, verb: str, path: str, state: TransferState | None, outcome: str
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
            found = session_fs.tree.mount_of(path) if session_fs is not None else None
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
            )
            log_transfer(rec)
            self.metrics.transfer(rec)
            if outcome == "ok":
                name = "upload" if verb in _UPLOADS else "download"
                self.event(channel, name, path, size=nbytes)

    def event(
        self,
        channel: FTPChannel,
        name: str,
        path: str = "",
        destination: str = "",
        size: int | None = None,
    ) -> None:
        """Run the hooks of an event (in their own threads; returns at once)."""
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

        def build() -> tuple[MountTable, dict[str, Any], ssl.SSLContext | None]:
            mounts = MountTable(config, reuse=old, observe=self.metrics.observe_fs)
            try:
                hooks = load_hooks(config.hooks, config.source)
                tls = config.server.tls
                ctx = make_server_context(tls, config.source) if tls is not None else None
            except BaseException:
                mounts.close(keep=old.filesystems())
                raise
            return mounts, hooks, ctx

        try:
            mounts, hooks, ctx = await asyncio.to_thread(build)
        except Exception:
            self.metrics.reloads.labels("failed").inc()
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
            )
            if before != after
        ]
        if restart_only:
            log.warning("reload: %s changed: applied at the next restart", ", ".join(restart_only))
        self.config = config
        self.mounts = mounts
        if self._own_authorizer:
            self.authorizer = ConfigAuthorizer(config, mounts)
        self.hooks.table = hooks
        self.tls_context = ctx
        self.tls_handshake_timeout = tls.handshake_timeout if tls is not None else 10.0
        self._retired.append(old)
        self._release_tables()
        self.metrics.reloads.labels("ok").inc()
        log.info(
            "configuration reloaded from %s: %d mounts, %d users",
            config.source,
            len(config.mounts),
            len(config.users),
        )

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


def _close_all(filesystems: list[Any]) -> None:
    for filesystem in filesystems:
        with contextlib.suppress(Exception):
            filesystem.close()


def _owner_name(account: Account) -> str:
    # LIST's owner column must be one word for clients' parsers.
    name = "".join(c for c in account.name if c.isalnum() or c in "-_.@")
    return (name or "ftp")[:32]
