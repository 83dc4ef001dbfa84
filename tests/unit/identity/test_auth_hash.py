"""Password hashing: argon2 hashes and the explicit plaintext marker."""

from __future__ import annotations

import pytest

from vfsftp.identity.auth import hash_password, verify_password


def test_round_trip() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse")


def test_wrong_password() -> None:
    stored = hash_password("correct horse")
    assert not verify_password(stored, "battery staple")
    assert not verify_password(stored, "")


def test_salted() -> None:
    assert hash_password("same") != hash_password("same")


def test_unicode_password() -> None:
    stored = hash_password("pässwörd ✓")
    assert verify_password(stored, "pässwörd ✓")
    assert not verify_password(stored, "passwort ✓")


@pytest.mark.parametrize(
    ("stored", "given", "expected"),
    [
        ("plaintext:demo", "demo", True),
        ("plaintext:demo", "Demo", False),
        ("plaintext:demo", "demo ", False),
        ("plaintext:pä$$", "pä$$", True),
        ("plaintext:", "", False),  # an empty stored password never matches
        ("demo", "demo", False),  # no marker: not a password form at all
        ("", "", False),
    ],
)
def test_plaintext_marker(stored: str, given: str, expected: bool) -> None:
    assert verify_password(stored, given) is expected


@pytest.mark.parametrize(
    "stored",
    [
        "$argon2id$",
        "$argon2id$nonsense",
        "$argon2id$v=19$m=65536,t=3,p=4$AAAA",
        "$argon2id$v=19$m=65536,t=3,p=4$!!!$!!!",
        "$argon2xx$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
        "$2b$12$abcdefghijklmnopqrstuu",  # bcrypt: not ours
    ],
)
def test_malformed_hash_is_false_not_an_exception(stored: str) -> None:
    assert verify_password(stored, "anything") is False


def test_truncated_real_hash_is_false() -> None:
    stored = hash_password("pw")
    assert verify_password(stored[:-4], "pw") is False


# ------------------------------------------------------------------ equal cost


@pytest.mark.parametrize(
    ("username", "password", "argon2_checks", "ok"),
    [
        ("nobody", "guess", 1, False),  # unknown: a dummy hash
        ("plain", "guess", 1, False),  # wrong plaintext: a dummy hash too
        ("hashed", "guess", 1, False),  # wrong argon2: its own hash
        ("bad name/", "guess", 1, False),  # a name no user may have
        ("hashed", "right", 1, True),
        ("plain", "right", 0, True),  # (success may be quick: it is no secret)
    ],
)
def test_every_failed_login_costs_one_argon2_check(
    monkeypatch: pytest.MonkeyPatch, username: str, password: str, argon2_checks: int, ok: bool
) -> None:
    import asyncio

    from vfsftp.config.schema import config_from_dict
    from vfsftp.identity import auth
    from vfsftp.identity.auth import ConfigAuthorizer
    from vfsftp.storage.mounts import MountTable

    config = config_from_dict(
        {
            "mounts": {"/": "mem://"},
            "users": {
                "plain": {"password": "plaintext:right"},
                "hashed": {"password": hash_password("right")},
            },
        }
    )
    checks: list[str] = []

    def counting(stored: str, given: str) -> bool:
        if stored.startswith("$argon2"):
            checks.append(stored)
        return verify_password(stored, given)

    monkeypatch.setattr(auth, "verify_password", counting)
    table = MountTable(config)
    try:
        account = asyncio.run(ConfigAuthorizer(config, table).authorize(username, password, "p"))
    finally:
        table.close()
    assert (account is not None) is ok
    assert len(checks) == argon2_checks
