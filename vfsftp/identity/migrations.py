"""The user store's schema, as numbered migrations: the SQL of each
version, for SQLite and for PostgreSQL.

``vfsftp_schema`` holds one row per version applied. Whoever opens the store
first (a server, a ``vfsftp users`` command) applies the versions it lacks,
all in one transaction, under a lock (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: an advisory lock), so that the servers of a fleet starting at
once do it once. A store whose schema is newer than this vfsftp knows is
refused rather than guessed at. A new version is appended here, never edited
in place: a store that has applied it must not differ from one that applies
it now.

Tables:

- ``vfsftp_users``: one row per user. ``settings`` holds every other key a
  user of mounts.yaml has (home, root, perms, permissions, mounts, rates,
  quota, max_connections, TLS policy, allowed_networks), as the JSON of
  that YAML mapping; all of it is validated by ``config.UserConfig``, the
  model of YAML users. ``version`` goes up with every change: the servers
  keep a user's parsed settings while it stays the same.
- ``vfsftp_kicks``: the names whose running sessions are to end
  (``vfsftp users disable --kick``); every server polls for new ids.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration", "latest_version"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users and kicks",
        sqlite=(
            """CREATE TABLE vfsftp_users (
                name TEXT PRIMARY KEY,
                password TEXT NOT NULL,
                disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
                expires_at TEXT,
                description TEXT NOT NULL DEFAULT '',
                settings TEXT NOT NULL DEFAULT '{}',
                version INTEGER NOT NULL DEFAULT 1,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE vfsftp_kicks (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL,
                at TEXT NOT NULL
            )""",
        ),
        postgres=(
            """CREATE TABLE vfsftp_users (
                name TEXT PRIMARY KEY,
                password TEXT NOT NULL,
                disabled BOOLEAN NOT NULL DEFAULT FALSE,
                expires_at TIMESTAMPTZ,
                description TEXT NOT NULL DEFAULT '',
                settings JSONB NOT NULL DEFAULT '{}',
                version INTEGER NOT NULL DEFAULT 1,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE vfsftp_kicks (
                id BIGSERIAL PRIMARY KEY,
                name TEXT NOT NULL,
                at TIMESTAMPTZ NOT NULL
            )""",
        ),
    ),
)


def latest_version() -> int:
    return MIGRATIONS[-1].version
