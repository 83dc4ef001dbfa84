"""Authentication: password hashing, then the authorizers that turn a login
into a session's own view of the tree."""

from __future__ import annotations

import asyncio
import datetime
import functools
import hmac
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..config.names import ANONYMOUS, ANONYMOUS_ALIAS, USER_PLACEHOLDER, user_name_problem
from ..storage.tree import VirtualTree

if TYPE_CHECKING:
    import argon2

    from ..config.schema import Config, QuotaConfig, UserConfig
    from ..storage.mounts import MountTable

__all__ = [
    "Account",
    "Authorizer",
    "ConfigAuthorizer",
    "hash_password",
    "login_refusal",
    "peer_address",
    "verify_password",
]

log = logging.getLogger("vfsftp.session")

# --- password hashing ---
#
# Stored forms (see config.UserConfig.password):
#   "$argon2id$v=19$m=...,t=...,p=...$salt$hash"  from `vfsftp hash-password`
#   "plaintext:<password>"                        an explicit marker, for demos
#                                                 and tests, so nobody ships a
#                                                 plaintext password by mistake

_PLAINTEXT = "plaintext:"


@functools.cache
def _hasher() -> argon2.PasswordHasher:
    """argon2-cffi's defaults follow RFC 9106's second recommended profile;
    one hasher is thread-safe and reused. Made at the first hash or check of
    one: a server whose passwords are all plaintext (or elsewhere) never
    loads argon2."""
    import argon2

    return argon2.PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; differs on every call)."""
    return _hasher().hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when ``password`` matches the stored form.

    Never raises: a malformed hash, an unknown form or an empty stored value
    is simply a failed login, so a config typo cannot crash a session.
    """
    if stored.startswith(_PLAINTEXT):
        # compare_digest on bytes: constant time for any characters.
        expected = stored[len(_PLAINTEXT) :].encode("utf-8", "surrogatepass")
        given = password.encode("utf-8", "surrogatepass")
        # An empty stored password never matches (the config refuses it too).
        return bool(expected) and hmac.compare_digest(expected, given)
    if not stored.startswith("$argon2"):
        return False
    try:
        return _hasher().verify(stored, password)
    except Exception:
        # VerifyMismatchError for a wrong password; InvalidHashError and
        # friends for a damaged hash. A login either way fails, quietly.
        return False


# --- authorizers ---
#
# Medusa's idea kept: a successful login yields the session's own view of the
# filesystem. An authorizer returns an Account (the user's tree, rights and
# home) or None; the server never looks at passwords itself.


@dataclass(frozen=True, slots=True)
class Account:
    """A logged-in user: what the session needs to serve them. Sessions
    only read it: one account may serve every session of its user."""

    name: str
    tree: VirtualTree
    perms: str
    overrides: Mapping[str, str] = field(default_factory=dict)
    home: str = "/"
    #: the part of ``tree`` the user sees, as their "/" (paths, PWD,
    #: listings and replies are relative to it); None: ``home``. Overrides
    #: and ``home`` stay keyed by the tree's own paths.
    root: str | None = None
    anonymous: bool = False
    max_connections: int | None = None
    #: bytes per second for all of this user's downloads (uploads) together;
    #: None: the server's max_download_rate (max_upload_rate)
    max_download_rate: int | None = None
    max_upload_rate: int | None = None
    #: bytes per second for each of this user's sessions on its own; None:
    #: the server's session_download_rate (session_upload_rate)
    session_download_rate: int | None = None
    session_upload_rate: int | None = None
    #: storage this user may fill under their home (vfsftp.storage.quota)
    quota: QuotaConfig | None = None
    #: the user's own TLS policy; None: the server's (server.tls)
    require_tls: bool | None = None
    require_data_tls: bool | None = None
    #: where the user came from: "config" (mounts.yaml), "store" (the user
    #: store: `vfsftp users disable --kick` ends such sessions), or your own
    source: str = "config"


class Authorizer(Protocol):
    """Plug in your own: any object with these two methods."""

    def is_anonymous(self, username: str) -> bool:
        """True when this login name needs no password (331 asks for an e-mail)."""
        ...

    async def authorize(self, username: str, password: str, peer: str) -> Account | None:
        """The account for these credentials, or None to refuse the login."""
        ...


def peer_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a peer written ``host:port`` or ``[host]:port``
    (IPv4-mapped IPv6 addresses as IPv4), None when it is not one. Pure."""
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    host = host.strip("[]").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def login_refusal(user: UserConfig, peer: str, now: datetime.datetime) -> str | None:
    """Why ``user``, whose password was right, may not log in from ``peer``
    at ``now``; None when they may. Pure."""
    if user.disabled:
        return "the account is disabled"
    if user.expires_at is not None and now >= user.expires_at:
        return f"the account expired at {user.expires_at.isoformat()}"
    if user.allowed_networks:
        address = peer_address(peer)
        if address is None or not any(address in net for net in user.allowed_networks):
            return f"{peer} is outside the allowed networks"
    return None


def tls_policy_of(user: UserConfig, config: Config) -> tuple[bool, bool] | None:
    """The user's TLS requirements where set, else the server's; None
    without TLS."""
    tls = config.server.tls
    if tls is None:
        return None
    control = tls.require_tls if user.require_tls is None else user.require_tls
    data = tls.require_data_tls if user.require_data_tls is None else user.require_data_tls
    return (control, data)


#: accounts a ConfigAuthorizer keeps for the next logins of their users
_ACCOUNTS_KEPT = 4096


class ConfigAuthorizer:
    """Users from mounts.yaml. Password checks (argon2 is slow on purpose)
    run in a worker thread. A failed check costs one argon2 verification,
    whoever it names: for an unknown user, and after a wrong ``plaintext:``
    password, a dummy hash is verified (argon2-cffi's default parameters,
    those of ``hash-password``), so that timing does not tell names apart
    (the server also answers every failure at the same moment, see
    FTPServer._login)."""

    _DUMMY = (
        "$argon2id$v=19$m=65536,t=3,p=4$YL5+F26VtpC2NMQ1io6OmA"
        "$uWyHgVLEdp0KX/jnbN/PxWhXByHQahxxemu/TbpmAik"
    )

    def __init__(self, config: Config, mounts: MountTable) -> None:
        self.config = config
        self.mounts = mounts
        # Each user's account, built at their first login and shared by
        # their sessions while the user's settings and tree stay the same
        # (an idle session then holds no account of its own); the latest
        # _ACCOUNTS_KEPT users' (a user store may hold millions).
        self._accounts: dict[tuple[str, str], tuple[UserConfig, Account]] = {}

    def _user(self, username: str) -> UserConfig | None:
        if user_name_problem(username) is not None:
            return None  # (no YAML user has such a name: the config refuses it)
        if self.is_anonymous(username):
            return self.config.users.get(ANONYMOUS)
        user = self.config.users.get(username)
        return None if user is None or user.anonymous else user

    def is_anonymous(self, username: str) -> bool:
        return username.lower() in (ANONYMOUS, ANONYMOUS_ALIAS) and ANONYMOUS in self.config.users

    def tls_policy(self, username: str) -> tuple[bool, bool] | None:
        """The user's own TLS requirements where set (``require_tls``,
        ``require_data_tls``), else the server's; None for unknown names."""
        user = self._user(username)
        return None if user is None else tls_policy_of(user, self.config)

    async def authorize(self, username: str, password: str, peer: str) -> Account | None:
        return await self.authorize_user(self._user(username), password, peer)

    async def authorize_user(
        self, user: UserConfig | None, password: str, peer: str, source: str = "config"
    ) -> Account | None:
        """The account of ``user`` (None: no such user) if ``password`` is
        theirs and the account may log in now from ``peer``."""
        if user is None:
            await asyncio.to_thread(verify_password, self._DUMMY, password)
            return None
        if not user.anonymous:
            stored = user.password or ""
            if stored.startswith("$"):
                ok = await asyncio.to_thread(verify_password, stored, password)
            else:
                ok = verify_password(stored, password)
                if not ok:  # (as dear as a wrong argon2 password)
                    await asyncio.to_thread(verify_password, self._DUMMY, password)
            if not ok:
                return None
        # After the password: a refusal tells nothing to whoever lacks it.
        refusal = login_refusal(user, peer, datetime.datetime.now(datetime.timezone.utc))
        if refusal is not None:
            log.warning("login refused %s user=%s: %s", peer, user.name, refusal)
            return None
        tree = self.mounts.cached_tree(user)
        if tree is None:  # first login: mounts may need opening (I/O)
            tree = await asyncio.to_thread(self.mounts.tree_for, user)
        kept = self._accounts.get((user.name, source))
        if kept is not None and kept[0] is user and kept[1].tree is tree:
            return kept[1]
        account = Account(
            name=user.name,
            tree=tree,
            perms=user.perms,
            overrides=dict(user.permissions),
            home=user.home.replace(USER_PLACEHOLDER, user.name),
            root=(user.root or user.home).replace(USER_PLACEHOLDER, user.name),
            anonymous=user.anonymous,
            max_connections=user.max_connections,
            max_download_rate=user.max_download_rate,
            max_upload_rate=user.max_upload_rate,
            session_download_rate=user.session_download_rate,
            session_upload_rate=user.session_upload_rate,
            quota=user.quota,
            require_tls=user.require_tls,
            require_data_tls=user.require_data_tls,
            source=source,
        )
        accounts = self._accounts
        accounts.pop((user.name, source), None)
        if len(accounts) >= _ACCOUNTS_KEPT:
            del accounts[next(iter(accounts))]  # the oldest
        accounts[(user.name, source)] = (user, account)
        return account
