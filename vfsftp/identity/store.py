"""The user store: users in a database that every server of a host or a
fleet reads, managed with ``vfsftp users``.

``UserStore`` is the small interface, and the SQL both databases share; its
subclasses (``sqlite_store.SQLiteStore``, ``postgres_store.PostgresStore``)
add the connection, the placeholders and the column types. Calls block:
the server makes them in worker threads (``stored.StoreClient``), the
command line directly. Each thread has its own connection, made at its
first call and dropped after an error, so the store needs no pool of its own
and recovers by itself once the database is back.

A stored user is the mapping a user of mounts.yaml has under ``users.NAME``:
the columns hold what the command line filters and sets on its own
(password, disabled, expires_at, description), ``settings`` the rest, and
``config.schema.user_from_dict`` validates the whole with the model of YAML
users (``UserConfig``): one schema, two sources.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import StoreError, StoreUnavailable
from .migrations import MIGRATIONS, Migration, latest_version

if TYPE_CHECKING:
    from ..config.schema import UserConfig

__all__ = [
    "COLUMNS",
    "NoSuchUser",
    "StoreError",
    "StoreUnavailable",
    "StoredUser",
    "UserExists",
    "UserStore",
]

T = TypeVar("T")

#: the keys of a user that have columns of their own; the others are settings
COLUMNS = ("password", "disabled", "expires_at", "description")
#: kicks older than this are deleted by the next kick: a server polls every
#: few seconds, and one that was down that long has no session to end
KICKS_KEPT = datetime.timedelta(days=1)


class UserExists(Exception):
    pass


class NoSuchUser(Exception):
    pass


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class StoredUser:
    """One row of ``vfsftp_users``, as the database has it."""

    name: str
    password: str
    disabled: bool = False
    expires_at: datetime.datetime | None = None
    description: str = ""
    #: every other key of a mounts.yaml user, as written there
    settings: Mapping[str, Any] = field(default_factory=dict)
    version: int = 1
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None

    def mapping(self) -> dict[str, Any]:
        """The user as the mapping under ``users.NAME`` in mounts.yaml."""
        out = dict(self.settings)
        out["password"] = self.password
        if self.disabled:
            out["disabled"] = True
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        if self.description:
            out["description"] = self.description
        return out

    def config(self, source: str) -> UserConfig:
        """Validated as a user of mounts.yaml is (ConfigError naming
        ``source`` and the key otherwise)."""
        from ..config.schema import user_from_dict  # the validator, loaded on first use

        return user_from_dict(self.name, self.mapping(), source)


class UserStore:
    """Users in a database. Thread-safe: every thread has its own connection."""

    #: "sqlite" or "postgres": which SQL of each migration applies
    dialect = ""
    #: the driver's errors that mean "not reachable now" (the rest: StoreError)
    unavailable_errors: tuple[type[BaseException], ...] = ()
    driver_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, url: str, label: str) -> None:
        self.url = url
        #: the URL without a password, for messages
        self.label = label
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._schema_ready = False
        self._closed = False

    # ------------------------------------------------------------ per dialect

    def _connect(self) -> Any:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        """``text`` with ``?`` placeholders, in the driver's style."""
        return text

    def _begin(self, conn: Any) -> Any:
        """A context manager: one write transaction."""
        raise NotImplementedError

    def _lock_schema(self, conn: Any) -> None:
        """Inside the migration's transaction: one migrator at a time."""

    def _lock_kicks(self, conn: Any) -> None:
        """Inside a kick's transaction: ids become visible in their order."""

    def _time_in(self, value: datetime.datetime | None) -> Any:
        return value

    def _time_out(self, value: Any) -> datetime.datetime | None:
        return value  # type: ignore[no-any-return]

    def _json_in(self, value: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def _json_out(self, value: Any) -> Any:
        """The settings object (a dict, unless the row was spoilt)."""
        raise NotImplementedError

    # ------------------------------------------------------------ connections

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreUnavailable(f"{self.label}: the store is closed")
        conn = self._connect()
        with self._lock:
            self._connections.append(conn)
        self._local.conn = conn
        if not self._schema_ready:
            try:
                self._migrate(conn)
            except BaseException:
                self._drop()
                raise
            self._schema_ready = True
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is None:
            return
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        with contextlib.suppress(Exception):  # a broken one may fail to; it is gone anyway
            conn.close()

    def _call(self, work: Callable[[Any], T]) -> T:
        """``work(connection)``; driver errors become StoreUnavailable (the
        connection is dropped: the next call makes a new one) or StoreError."""
        try:
            return work(self._conn())
        except (StoreError, StoreUnavailable, UserExists, NoSuchUser):
            raise
        except self.unavailable_errors as exc:
            self._drop()
            raise StoreUnavailable(f"{self.label}: {_reason(exc)}") from None
        except self.driver_errors as exc:
            self._drop()
            raise StoreError(f"{self.label}: {_reason(exc)}") from None

    def close(self) -> None:
        """Close every thread's connection (call once no thread uses them)."""
        self._closed = True
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(Exception):  # (as in _drop)
                conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------ schema

    def _migrate(self, conn: Any) -> None:
        # The common case first, without a lock or DDL: a schema up to date
        # (a role that may only read the tables gets this far).
        try:
            row = conn.execute("SELECT MAX(version) FROM vfsftp_schema").fetchone()
        except self.driver_errors:
            row = None  # no table yet (or a failure the migration meets again)
        if row is not None and row[0] == latest_version():
            return
        with self._begin(conn):
            self._lock_schema(conn)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vfsftp_schema ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            row = conn.execute("SELECT MAX(version) FROM vfsftp_schema").fetchone()
            current = int(row[0] or 0)
            if current > latest_version():
                raise StoreError(
                    f"{self.label}: the store's schema is version {current}, newer than this "
                    f"vfsftp knows ({latest_version()}): upgrade vfsftp"
                )
            for migration in MIGRATIONS:
                if migration.version > current:
                    self._apply(conn, migration)

    def _apply(self, conn: Any, migration: Migration) -> None:
        statements = migration.sqlite if self.dialect == "sqlite" else migration.postgres
        for statement in statements:
            conn.execute(statement)
        conn.execute(
            self._sql(
                "INSERT INTO vfsftp_schema (version, description, applied_at) VALUES (?, ?, ?)"
            ),
            (migration.version, migration.description, utcnow().isoformat()),
        )

    def schema_version(self) -> int:
        def work(conn: Any) -> int:
            return int(conn.execute("SELECT MAX(version) FROM vfsftp_schema").fetchone()[0])

        return self._call(work)

    # ------------------------------------------------------------ reads

    _SELECT = (
        "SELECT name, password, disabled, expires_at, description, settings, version, "
        "created_at, updated_at FROM vfsftp_users"
    )

    def _row(self, row: tuple[Any, ...]) -> StoredUser:
        try:
            settings = self._json_out(row[5])
        except ValueError:
            settings = None
        if not isinstance(settings, dict):  # (a row written by hand)
            raise StoreError(f"{self.label}: user {row[0]}: settings is not a JSON object")
        return StoredUser(
            name=row[0],
            password=row[1],
            disabled=bool(row[2]),
            expires_at=self._time_out(row[3]),
            description=row[4],
            settings=settings,
            version=int(row[6]),
            created_at=self._time_out(row[7]),
            updated_at=self._time_out(row[8]),
        )

    def get(self, name: str) -> StoredUser | None:
        """The user called ``name`` (case-sensitive), or None."""

        def work(conn: Any) -> StoredUser | None:
            row = conn.execute(self._sql(self._SELECT + " WHERE name = ?"), (name,)).fetchone()
            return None if row is None else self._row(row)

        return self._call(work)

    def users(self) -> list[StoredUser]:
        """Every user, by name."""

        def work(conn: Any) -> list[StoredUser]:
            rows = conn.execute(self._SELECT + " ORDER BY name").fetchall()
            return [self._row(row) for row in rows]

        return self._call(work)

    def count(self) -> int:
        def work(conn: Any) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM vfsftp_users").fetchone()[0])

        return self._call(work)

    def names_among(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` that are stored users, sorted."""
        wanted = sorted(set(names))

        def work(conn: Any) -> list[str]:
            found: list[str] = []
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                sql = self._sql(f"SELECT name FROM vfsftp_users WHERE name IN ({marks})")
                found.extend(row[0] for row in conn.execute(sql, chunk).fetchall())
            return sorted(found)

        return self._call(work) if wanted else []

    def last_kick(self) -> int:
        def work(conn: Any) -> int:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM vfsftp_kicks").fetchone()[0])

        return self._call(work)

    def kicks_since(self, last: int) -> list[tuple[int, str]]:
        """(id, name) of the kicks after ``last``, oldest first."""

        def work(conn: Any) -> list[tuple[int, str]]:
            sql = self._sql("SELECT id, name FROM vfsftp_kicks WHERE id > ? ORDER BY id")
            return [(int(i), str(n)) for i, n in conn.execute(sql, (last,)).fetchall()]

        return self._call(work)

    # ------------------------------------------------------------ writes

    def add(self, user: StoredUser) -> StoredUser:
        """Store a new user (UserExists if the name is taken)."""
        now = utcnow()
        user = replace(user, version=1, created_at=now, updated_at=now)

        def work(conn: Any) -> StoredUser:
            with self._begin(conn):
                sql = self._sql("SELECT 1 FROM vfsftp_users WHERE name = ?")
                if conn.execute(sql, (user.name,)).fetchone() is not None:
                    raise UserExists(user.name)
                conn.execute(
                    self._sql(
                        "INSERT INTO vfsftp_users (name, password, disabled, expires_at, "
                        "description, settings, version, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    (
                        user.name,
                        user.password,
                        user.disabled,
                        self._time_in(user.expires_at),
                        user.description,
                        self._json_in(user.settings),
                        1,
                        self._time_in(now),
                        self._time_in(now),
                    ),
                )
            return user

        return self._call(work)

    def update(self, name: str, change: Callable[[StoredUser], StoredUser]) -> StoredUser:
        """Read the user, apply ``change`` and write the result back, in one
        transaction (NoSuchUser if there is none). ``change`` may raise to
        leave the user as it was."""

        def work(conn: Any) -> StoredUser:
            with self._begin(conn):
                row = conn.execute(
                    self._sql(self._SELECT + " WHERE name = ?" + self._for_update()), (name,)
                ).fetchone()
                if row is None:
                    raise NoSuchUser(name)
                before = self._row(row)
                after = replace(
                    change(before), name=name, version=before.version + 1, updated_at=utcnow()
                )
                conn.execute(
                    self._sql(
                        "UPDATE vfsftp_users SET password = ?, disabled = ?, expires_at = ?, "
                        "description = ?, settings = ?, version = ?, updated_at = ? "
                        "WHERE name = ?"
                    ),
                    (
                        after.password,
                        after.disabled,
                        self._time_in(after.expires_at),
                        after.description,
                        self._json_in(after.settings),
                        after.version,
                        self._time_in(after.updated_at),
                        name,
                    ),
                )
            return after

        return self._call(work)

    def _for_update(self) -> str:
        return ""

    def delete(self, name: str) -> None:
        """Remove the user (NoSuchUser if there is none)."""

        def work(conn: Any) -> None:
            with self._begin(conn):
                cursor = conn.execute(self._sql("DELETE FROM vfsftp_users WHERE name = ?"), (name,))
                if cursor.rowcount == 0:
                    raise NoSuchUser(name)

        self._call(work)

    def kick(self, name: str) -> int:
        """Ask every server to end the running sessions of ``name``; the
        kick's id."""
        now = utcnow()

        def work(conn: Any) -> int:
            with self._begin(conn):
                self._lock_kicks(conn)
                conn.execute(
                    self._sql("DELETE FROM vfsftp_kicks WHERE at < ?"),
                    (self._time_in(now - KICKS_KEPT),),
                )
                conn.execute(
                    self._sql("INSERT INTO vfsftp_kicks (name, at) VALUES (?, ?)"),
                    (name, self._time_in(now)),
                )
                row = conn.execute("SELECT MAX(id) FROM vfsftp_kicks").fetchone()
                return int(row[0])

        return self._call(work)


def _reason(exc: BaseException) -> str:
    # The driver's own words, on one line (libpq's messages span lines).
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
