"""ConfigAuthorizer shares one Account between the sessions of a user (an
idle session holds none of its own), and builds a new one when the user's
settings change; it keeps a bounded number of them."""

from __future__ import annotations

import asyncio

import pytest

from vfsftp.config import config_from_dict
from vfsftp.identity import auth
from vfsftp.identity.auth import ConfigAuthorizer
from vfsftp.storage.mounts import MountTable


def _config(perms: str = "elr", users: int = 1) -> dict[str, object]:
    return {
        "mounts": {"/": "mem://"},
        "users": {f"u{i}": {"password": "plaintext:pw", "perms": perms} for i in range(users)},
    }


def test_logins_of_one_user_share_the_account_until_the_user_changes() -> None:
    config = config_from_dict(_config())
    table = MountTable(config)
    try:
        authorizer = ConfigAuthorizer(config, table)
        first = asyncio.run(authorizer.authorize("u0", "pw", "p"))
        second = asyncio.run(authorizer.authorize("u0", "pw", "p"))
        assert first is not None and second is first
        # A reload's new settings for the user: a new account with them.
        authorizer.config = config_from_dict(_config(perms="elrw"))
        third = asyncio.run(authorizer.authorize("u0", "pw", "p"))
        assert third is not None and third is not first and third.perms == "elrw"
    finally:
        table.close()


def test_accounts_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_ACCOUNTS_KEPT", 2)
    config = config_from_dict(_config(users=3))
    table = MountTable(config)
    try:
        authorizer = ConfigAuthorizer(config, table)
        accounts = [asyncio.run(authorizer.authorize(f"u{i}", "pw", "p")) for i in range(3)]
        assert len(authorizer._accounts) == 2
        # The oldest went; the others are still shared.
        assert asyncio.run(authorizer.authorize("u2", "pw", "p")) is accounts[2]
        again = asyncio.run(authorizer.authorize("u0", "pw", "p"))
        assert again is not None and again is not accounts[0]
    finally:
        table.close()
