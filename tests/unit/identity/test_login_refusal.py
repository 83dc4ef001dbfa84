"""Who may log in once the password is right (identity.auth.login_refusal):
disabled, expired, outside the allowed networks. Pure: tables."""

from __future__ import annotations

import datetime
import ipaddress

import pytest

from vfsftp.config.schema import UserConfig
from vfsftp.identity.auth import login_refusal, peer_address

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def user(**keys: object) -> UserConfig:
    return UserConfig.model_validate({"name": "bob", "password": "plaintext:pw", **keys})


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("127.0.0.1:2121", "127.0.0.1"),
        ("[::1]:2121", "::1"),
        ("[::ffff:10.1.2.3]:40000", "10.1.2.3"),  # IPv4-mapped: the IPv4 address
        ("[fe80::1%eth0]:21", "fe80::1"),
        ("10.0.0.1", "10.0.0.1"),
        ("p", None),
        ("?", None),
        ("host.example:21", None),
    ],
)
def test_peer_address(peer: str, address: str | None) -> None:
    expected = None if address is None else ipaddress.ip_address(address)
    assert peer_address(peer) == expected


@pytest.mark.parametrize(
    ("keys", "peer", "refused"),
    [
        ({}, "127.0.0.1:1", None),
        ({"disabled": True}, "127.0.0.1:1", "the account is disabled"),
        ({"expires_at": "2026-06-01T12:00:00Z"}, "127.0.0.1:1", "expired at 2026-06-01T12:00"),
        ({"expires_at": "2026-06-01T12:00:01Z"}, "127.0.0.1:1", None),
        ({"expires_at": "2026-06-01"}, "127.0.0.1:1", "expired"),  # a date: its first second
        ({"expires_at": "2026-06-02"}, "127.0.0.1:1", None),
        ({"expires_at": "2026-06-01T14:00:00+02:00"}, "127.0.0.1:1", "expired"),
        ({"expires_at": "2026-06-01T13:00:00"}, "127.0.0.1:1", None),  # no zone: UTC
        ({"allowed_networks": ["10.0.0.0/8"]}, "10.9.8.7:1", None),
        ({"allowed_networks": ["10.0.0.0/8"]}, "127.0.0.1:1", "outside the allowed networks"),
        ({"allowed_networks": ["10.0.0.0/8"]}, "[::ffff:10.0.0.1]:1", None),
        ({"allowed_networks": ["2001:db8::/32", "192.0.2.7"]}, "[2001:db8::5]:1", None),
        ({"allowed_networks": ["2001:db8::/32", "192.0.2.7"]}, "192.0.2.8:1", "outside"),
        ({"allowed_networks": ["10.0.0.0/8"]}, "p", "outside"),  # no address: not inside
        ({"disabled": True, "allowed_networks": ["10.0.0.0/8"]}, "10.0.0.1:1", "disabled"),
    ],
)
def test_login_refusal(keys: dict[str, object], peer: str, refused: str | None) -> None:
    found = login_refusal(user(**keys), peer, NOW)
    if refused is None:
        assert found is None
    else:
        assert found is not None and refused in found
