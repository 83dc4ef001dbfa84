"""Logins against the user store: users of mounts.yaml first, then the
store's (``users_store:``).

Every login reads its user from the database, so that a user disabled,
deleted or given a new password is refused at the very next login, on every
server of a fleet. What is kept between logins is only the work done on a
row: the user validated (``UserConfig``) and its tree, reused while the
row reads the same (at most ``_PARSED_MAX`` users). The read is one SELECT
by primary key in a worker thread: 0.15 ms (SQLite) to 0.3 ms (PostgreSQL)
of the server's CPU per login, against about 200 ms for the argon2 check
(benchmarks/bench_users.py): a longer-lived cache would save nothing that
counts, and would let a disabled user in.

A store that is down, unreachable or slower than ``users_store.timeout``
makes the login raise ``StoreUnavailable``, which the server answers with
``421`` for that login alone; the next login tries again, so the server
recovers by itself once the database is back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..config.errors import ConfigError
from ..config.names import ANONYMOUS, store_path, user_name_problem
from ..storage.mounts import MountTable
from ..storage.threads import ThreadPool
from .auth import Account, ConfigAuthorizer, tls_policy_of
from .store import StoredUser, StoreError, StoreUnavailable, UserStore

if TYPE_CHECKING:
    from ..config.schema import Config, UserConfig, UsersStoreConfig

__all__ = ["StoreAuthorizer", "StoreClient", "open_store"]

log = logging.getLogger("vfsftp.session")

T = TypeVar("T")

#: users whose validated settings are kept between logins
_PARSED_MAX = 4096


def open_store(spec: UsersStoreConfig) -> UserStore:
    """The store ``spec.url`` names. Connects at its first call, not here."""
    # Each database's module (sqlite3, psycopg) is imported by the config
    # that names it.
    path = store_path(spec.url)
    if path is not None:
        from .sqlite_store import SQLiteStore

        return SQLiteStore(spec.url, path, timeout=spec.timeout)
    from .postgres_store import PostgresStore

    return PostgresStore(spec.url, spec.redacted, timeout=spec.timeout)


class StoreClient:
    """The store as the event loop uses it: each call in a worker thread of
    its own pool (``users_store.connections``), answered within
    ``users_store.timeout`` or StoreUnavailable. Logs when the store stops
    answering and when it is back, once each."""

    def __init__(self, spec: UsersStoreConfig, store: UserStore | None = None) -> None:
        self.spec = spec
        self.store = store if store is not None else open_store(spec)
        # Each thread holds its own connection to the store (UserStore):
        # threads that ended would leave theirs open, and open new ones.
        self._pool = ThreadPool(spec.connections, "vfsftp-users", idle_timeout=None)
        #: None until the first call; then whether the last one was answered
        self.reachable: bool | None = None

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        try:
            fut = self._pool.run(fn, *args)
        except RuntimeError:  # closed: the server is shutting down
            raise StoreUnavailable(f"{self.store.label}: closed") from None
        done, _ = await asyncio.wait({fut}, timeout=self.spec.timeout)
        if not done:
            fut.cancel()  # (the thread goes on until the driver gives up)
            self._down(f"no answer within {self.spec.timeout:g}s")
            raise StoreUnavailable(f"{self.store.label}: no answer within {self.spec.timeout:g}s")
        try:
            result = fut.result()
        except (StoreUnavailable, StoreError) as exc:
            self._down(str(exc))
            raise
        self._up()
        return result

    def run(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """``fn(*args)`` in a worker thread, without a deadline (the kick
        poller, which makes one call at a time and waits for it)."""
        fut = self._pool.run(fn, *args)
        fut.add_done_callback(self._noted)
        return fut

    def _noted(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            self._up()
        elif isinstance(exc, (StoreUnavailable, StoreError)):
            self._down(str(exc))
        else:
            log.error("users store: %r", exc)

    def _down(self, why: str) -> None:
        if self.reachable is not False:
            log.error(
                "users store unreachable: %s; logins of its users get 421 until it answers", why
            )
        self.reachable = False

    def _up(self) -> None:
        if self.reachable is False:
            log.warning("users store %s answers again", self.store.label)
        self.reachable = True

    def close(self) -> None:
        """End the threads, close the connections."""
        self._pool.shutdown(wait=True)
        self.store.close()


class StoreAuthorizer:
    """Users of mounts.yaml (a ``ConfigAuthorizer``), then the store's: a
    name in mounts.yaml is never looked up in the store. Anonymous is a
    mounts.yaml user only."""

    def __init__(self, config: Config, mounts: MountTable, client: StoreClient) -> None:
        self.config = config
        self.mounts = mounts
        self.client = client
        self.yaml = ConfigAuthorizer(config, mounts)
        self._parsed: OrderedDict[str, tuple[StoredUser, UserConfig | ConfigError]] = OrderedDict()
        self._lock = threading.Lock()

    def _in_yaml(self, username: str) -> bool:
        return username in self.config.users or self.yaml.is_anonymous(username)

    def is_anonymous(self, username: str) -> bool:
        return self.yaml.is_anonymous(username)

    async def tls_policy(self, username: str) -> tuple[bool, bool] | None:
        if self._in_yaml(username):
            return self.yaml.tls_policy(username)
        if self.config.server.tls is None or user_name_problem(username) is not None:
            return None
        try:
            user = await self.client.call(self._lookup, username)
        except (StoreUnavailable, StoreError):
            return None  # the server's policy; PASS then gets its 421
        if user is None or isinstance(user, ConfigError):
            return None
        return tls_policy_of(user, self.config)

    async def authorize(self, username: str, password: str, peer: str) -> Account | None:
        if self._in_yaml(username) or user_name_problem(username) is not None:
            return await self.yaml.authorize(username, password, peer)
        found = await self.client.call(self._lookup, username)  # StoreUnavailable: 421
        if isinstance(found, ConfigError):
            for line in found.problems:
                log.error("login %s user=%s refused: invalid stored user: %s", peer, username, line)
            found = None
        return await self.yaml.authorize_user(found, password, peer, source="store")

    def _lookup(self, name: str) -> UserConfig | ConfigError | None:
        """(In a worker thread.) The stored user, validated; the validation
        of the same row last time if the row has not changed."""
        row = self.client.store.get(name)
        if row is None or row.name == ANONYMOUS:
            with self._lock:
                self._parsed.pop(name, None)
            return None
        with self._lock:
            kept = self._parsed.get(name)
            if kept is not None and kept[0] == row:
                self._parsed.move_to_end(name)
                return kept[1]
        parsed: UserConfig | ConfigError
        try:
            parsed = row.config(f"users store {self.client.store.label}")
        except ConfigError as exc:
            parsed = exc
        with self._lock:
            self._parsed[name] = (row, parsed)
            self._parsed.move_to_end(name)
            while len(self._parsed) > _PARSED_MAX:
                self._parsed.popitem(last=False)
        return parsed
