"""The user store in tests: a store URL for each database (a SQLite file,
a fresh PostgreSQL database), and ``vfsftp users`` run in this process.

    from users_fixtures import store_url, users_cli  # noqa: F401
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_fixtures import pg_server, pg_url  # noqa: F401

from vfsftp.cli import main


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A users store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'users.db'}"
    return str(request.getfixturevalue("pg_url"))


@dataclass
class Run:
    status: int
    out: str
    err: str


UsersCLI = Callable[..., Run]


def run_cli(*args: str, stdin: str = "") -> Run:
    """``vfsftp ARGS`` in this process, ``stdin`` as its standard input (not
    a terminal: passwords are read as one line)."""
    out, err = io.StringIO(), io.StringIO()
    real_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(args))
    finally:
        sys.stdin = real_stdin
    return Run(status, out.getvalue(), err.getvalue())


@pytest.fixture
def users_cli(store_url: str) -> UsersCLI:
    """``vfsftp users COMMAND ... --store URL`` against ``store_url``."""

    def run(command: str, *args: str, stdin: str = "") -> Run:
        return run_cli("users", command, *args, "--store", store_url, stdin=stdin)

    return run
