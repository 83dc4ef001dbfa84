"""The user store in PostgreSQL: one set of users for every server of a
fleet. Needs psycopg 3 (``pip install 'vfsftp[postgres]'``).

Connections are in autocommit mode (a login is one SELECT) and fail fast:
``connect_timeout`` and ``tcp_user_timeout`` bound how long a dead server
or a lost route holds a worker thread, so that the server's own deadline
(``users_store.timeout``) finds the thread free again soon after.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator, Mapping
from typing import Any

from .store import StoreError, UserStore

__all__ = ["PostgresStore"]

#: pg_advisory_xact_lock key of the migrations ("vfsftp" in ASCII, as a number)
_MIGRATION_LOCK = 0x766673667470


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "a postgresql:// users store needs psycopg 3: pip install 'vfsftp[postgres]'"
        ) from None
    return psycopg


class PostgresStore(UserStore):
    dialect = "postgres"

    def __init__(self, url: str, label: str, timeout: float = 5.0) -> None:
        super().__init__(url, label)
        psycopg = _driver()
        self._psycopg = psycopg
        self.unavailable_errors = (psycopg.OperationalError, psycopg.InterfaceError)
        self.driver_errors = (psycopg.Error,)
        self.timeout = timeout

    def _connect(self) -> Any:
        seconds = max(2, round(self.timeout))  # libpq: whole seconds, at least 2
        return self._psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=seconds,
            tcp_user_timeout=seconds * 1000,
            keepalives=1,
            keepalives_idle=max(1, seconds),
            keepalives_interval=1,
            keepalives_count=3,
            application_name="vfsftp",
        )

    def _sql(self, text: str) -> str:
        # (no literal % and no ? other than placeholders in the store's SQL)
        return text.replace("?", "%s")

    @contextlib.contextmanager
    def _begin(self, conn: Any) -> Iterator[None]:
        with conn.transaction():
            yield

    def _lock_schema(self, conn: Any) -> None:
        # Servers of a fleet starting together: one migrates, the others
        # wait here and then find the schema made.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))

    def _lock_kicks(self, conn: Any) -> None:
        # Kicks are read as "ids after the last one seen": ids must become
        # visible in their order, so kicks are written one at a time (a
        # sequence hands out ids in one order and commits may land in another).
        conn.execute("LOCK TABLE vfsftp_kicks IN SHARE ROW EXCLUSIVE MODE")

    def _for_update(self) -> str:
        return " FOR UPDATE"

    def _time_out(self, value: Any) -> datetime.datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime.datetime)
        return value.astimezone(datetime.timezone.utc)

    def _json_in(self, value: Mapping[str, Any]) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(dict(value), dumps=_dumps)

    def _json_out(self, value: Any) -> Any:
        return value


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)
