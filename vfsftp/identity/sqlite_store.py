"""The user store in a SQLite file: the one-host default, nothing to
install (the standard library's ``sqlite3``).

The file is made on first use, readable by its owner alone (it holds
password hashes), in WAL mode so that a ``vfsftp users`` command writing
never holds up the servers reading; a writer waits ``timeout`` seconds for
another to finish (SQLite has one writer at a time).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

from .store import StoreError, UserStore

__all__ = ["SQLiteStore"]


class SQLiteStore(UserStore):
    dialect = "sqlite"
    unavailable_errors = (sqlite3.OperationalError,)
    driver_errors = (sqlite3.Error,)

    def __init__(self, url: str, path: str, timeout: float = 5.0) -> None:
        super().__init__(url, url)
        self.path = path
        self.timeout = timeout

    def _connect(self) -> Any:
        folder = os.path.dirname(self.path) or "."
        if not os.path.isdir(folder):
            raise StoreError(f"{self.label}: folder {folder} does not exist")
        try:
            # Made here, mode 0600, before sqlite3 makes it 0644.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"{self.label}: cannot create {self.path}: {exc.strerror}") from None
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.label}: cannot open {self.path}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _begin(self, conn: Any) -> Iterator[None]:
        # IMMEDIATE: the write lock at once, so that a read-then-write
        # transaction cannot fail half-way on another writer.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # (an error may have ended it)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _time_in(self, value: datetime.datetime | None) -> Any:
        # ISO 8601 in UTC: text that sorts as the moments do.
        if value is None:
            return None
        return value.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")

    def _time_out(self, value: Any) -> datetime.datetime | None:
        if value is None:
            return None
        moment = datetime.datetime.fromisoformat(str(value))
        if moment.tzinfo is None:  # (a row written by hand)
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return moment

    def _json_in(self, value: Mapping[str, Any]) -> Any:
        return json.dumps(dict(value), sort_keys=True, default=str)

    def _json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, (str, bytes)) else value
