"""users_store: and the keys a user gained with it (expires_at,
allowed_networks, disabled, description), in every source. Pure: tables."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from vfsftp.config.schema import ConfigError, config_from_dict, user_from_dict

BASE = Path("/etc/vfsftp")


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("sqlite:///users.db", "sqlite:////etc/vfsftp/users.db"),  # next to the config
        ("sqlite:///db/users.db", "sqlite:////etc/vfsftp/db/users.db"),
        ("sqlite:////var/lib/vfsftp/users.db", "sqlite:////var/lib/vfsftp/users.db"),
        ({"url": "sqlite:///u.db", "timeout": 2}, "sqlite:////etc/vfsftp/u.db"),
        ("postgresql://ftp@db.example/ftp", "postgresql://ftp@db.example/ftp"),
        (
            "postgres://ftp:pw@db:5433/ftp?sslmode=require",
            "postgres://ftp:pw@db:5433/ftp?sslmode=require",
        ),
    ],
)
def test_store_urls(given: object, url: str) -> None:
    config = config_from_dict({"users_store": given}, "m.yaml", BASE)
    assert config.users_store is not None and config.users_store.url == url


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("sqlite://", "users_store.url: expected sqlite:///FILE: a file"),
        ("sqlite:///:memory:", "expected sqlite:///FILE: a file"),
        ("mysql://db/users", "unknown database 'mysql'"),
        ("users.db", "expected sqlite:///FILE (relative: next to this file"),
        (42, "users_store: expected sqlite:///FILE"),
        ({"url": "sqlite:///u.db", "timeout": 0}, "users_store.timeout: expected a number > 0"),
        ({"url": "sqlite:///u.db", "pool": 3}, "users_store.pool: unknown key"),
    ],
)
def test_bad_store_settings(given: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"users_store": given}, "m.yaml", BASE)
    assert message in str(info.value)


def test_credentials_are_never_echoed_and_are_redacted() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"users_store": "oracle://scott:tiger@db/x"}, "m.yaml")
    assert "tiger" not in str(info.value)
    config = config_from_dict({"users_store": "postgresql://ftp:hunter2@db/ftp"}, "m.yaml")
    assert config.users_store is not None
    assert config.users_store.redacted == "postgresql://ftp:***@db/ftp"


def test_the_new_user_keys() -> None:
    config = config_from_dict(
        {
            "users": {
                "bob": {
                    "password": "plaintext:pw",
                    "disabled": True,
                    "expires_at": datetime.date(2027, 1, 1),  # as YAML reads 2027-01-01
                    "allowed_networks": ["10.0.0.0/8", "::1"],
                    "description": "Partner ACME",
                }
            }
        }
    )
    bob = config.users["bob"]
    assert bob.disabled and bob.description == "Partner ACME"
    assert bob.expires_at == datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)
    assert [str(n) for n in bob.allowed_networks] == ["10.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"expires_at": "next week"}, "users.bob.expires_at: expected a date (2027-01-01)"),
        (
            {"expires_at": True},
            "users.bob.expires_at: expected a date (2027-01-01) or a date and time, got true",
        ),
        (
            {"allowed_networks": ["10.0.0.0/33"]},
            "users.bob.allowed_networks[0]: expected an address",
        ),
        ({"disabled": "maybe"}, "users.bob.disabled: expected true or false"),
        ({"name": "carol"}, "users.bob.name: unknown key"),
    ],
)
def test_user_from_dict_speaks_like_mounts_yaml(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        user_from_dict("bob", {"password": "plaintext:pw", **keys}, "users store x")
    assert any(line.startswith("users store x: ") for line in info.value.problems)
    assert message in str(info.value)


def test_user_from_dict_substitutes_the_environment() -> None:
    user = user_from_dict(
        "bob",
        {"password": "plaintext:pw", "home": "${HOME_OF_BOB}"},
        "s",
        env={"HOME_OF_BOB": "/b"},
    )
    assert user.home == "/b"
