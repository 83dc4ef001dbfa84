"""``vfsftp users``: the users of the user store (``users_store:``).

    vfsftp users add NAME [KEY=VALUE ...] [--password-hash HASH]
    vfsftp users set NAME KEY=VALUE ...
    vfsftp users show NAME [--json]
    vfsftp users list [--json]
    vfsftp users disable NAME [--kick]
    vfsftp users enable NAME
    vfsftp users delete NAME [--kick]
    vfsftp users passwd NAME [--password-hash HASH]
    vfsftp users import FILE [--replace]

Each takes ``-c FILE`` (the mounts.yaml whose ``users_store`` to use;
default ./mounts.yaml) or ``--store URL``. ``KEY=VALUE`` sets a key of a
mounts.yaml user, the value written as in YAML (``home=/bob``,
``quota.max_bytes=1GiB``, ``mounts./in=osfs://./in/${user}``,
``allowed_networks=[10.0.0.0/8]``, ``expires_at=2027-01-01``); ``KEY=``
removes the key.
Passwords are read from the terminal (twice) or one line of stdin, never
from an argument; they are stored as argon2 hashes.

Exit status: 0 done, 1 the store failed or has no such user (or already has
it), 2 bad usage, a value that does not validate, or no store configured.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import getpass
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ..config.schema import (
    ANONYMOUS,
    Config,
    ConfigError,
    UserConfig,
    UsersStoreConfig,
    config_from_dict,
    load_config,
    read_yaml,
    user_from_dict,
    user_name_problem,
)
from ..identity.auth import hash_password
from ..identity.store import (
    COLUMNS,
    NoSuchUser,
    StoredUser,
    StoreError,
    StoreUnavailable,
    UserExists,
    UserStore,
)
from ..identity.stored import open_store
from .users_parser import DEFAULT_CONFIG

__all__ = ["COMMANDS", "run"]


#: keys whose values are taken as written, not as YAML (a description "yes"
#: stays a string; a home like "/2024" too)
_TEXT_KEYS = ("home", "root", "perms", "description")
#: keys holding a list, which may be written "a,b" as well as "[a, b]"
_LIST_KEYS = ("allowed_networks",)


class _Usage(Exception):
    """Bad input: exit status 2."""


class _Failed(Exception):
    """The store refused or failed: exit status 1."""


def _err(message: str) -> None:
    print(message, file=sys.stderr)


# ------------------------------------------------------------------ the store


class _Target:
    """The store a command works on, and the config naming it (if any)."""

    def __init__(self, args: argparse.Namespace, default_config: str | None = None) -> None:
        self.config: Config | None = None
        if args.store is not None:
            # A relative sqlite:/// path here is relative to the current
            # directory, as any path on a command line.
            try:
                data = config_from_dict({"users_store": args.store}, "--store")
            except ConfigError as exc:
                raise _Usage(str(exc)) from None
            spec = data.users_store
            if args.config is not None:
                self.config = load_config(args.config)
        else:
            path = args.config or default_config or DEFAULT_CONFIG
            if args.config is None and default_config is None and not Path(path).exists():
                raise _Usage(
                    f"vfsftp: no ./{DEFAULT_CONFIG}: name the config with -c FILE "
                    "(its users_store: is used) or the store with --store URL"
                )
            self.config = load_config(path)
            spec = self.config.users_store
            if spec is None:
                raise _Usage(
                    f"vfsftp: {self.config.source} has no users_store: add "
                    "'users_store: sqlite:///users.db' (a file next to it) or a "
                    "postgresql:// URL, or give --store URL"
                )
        assert spec is not None
        self.spec: UsersStoreConfig = spec
        try:
            self.store: UserStore = open_store(spec)
        except StoreError as exc:
            raise _Failed(f"vfsftp: {exc}") from None

    @property
    def source(self) -> str:
        return f"users store {self.store.label}"

    def close(self) -> None:
        self.store.close()


def _run(
    args: argparse.Namespace,
    work: Callable[[_Target, argparse.Namespace], int],
    default_config: str | None = None,
) -> int:
    target: _Target | None = None
    try:
        target = _Target(args, default_config)
        return work(target, args)
    except _Usage as exc:
        _err(str(exc))
        return 2
    except ConfigError as exc:
        _err(str(exc))
        return 2
    except (_Failed, StoreError, StoreUnavailable) as exc:
        text = str(exc)
        _err(text if text.startswith("vfsftp: ") else f"vfsftp: {text}")
        return 1
    except NoSuchUser as exc:
        where = target.store.label if target is not None else "the store"
        _err(f"vfsftp: no user {exc.args[0]!r} in {where}")
        return 1
    except UserExists as exc:
        where = target.store.label if target is not None else "the store"
        _err(f"vfsftp: {where} has a user {exc.args[0]!r} already; change it with 'users set'")
        return 1
    finally:
        if target is not None:
            target.close()


# ------------------------------------------------------------------ values


def _read_password(name: str) -> str:
    if not sys.stdin.isatty():
        # Scripted use: `echo secret | vfsftp users passwd bob`; one line.
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Again: ") != password:
            raise _Usage("vfsftp: passwords do not match")
    if not password:
        raise _Usage("vfsftp: refusing an empty password")
    return password


def _new_password(args: argparse.Namespace, name: str) -> str:
    given: str | None = args.password_hash
    if given is None:
        return hash_password(_read_password(name))
    if not given.startswith("$argon2"):
        raise _Usage("vfsftp: --password-hash takes an argon2 hash (vfsftp hash-password)")
    return given


def _value(key: str, text: str) -> Any:
    """The value of ``KEY=VALUE`` as mounts.yaml would hold it."""
    field = key.split(".", 1)[0]
    if not text.strip():
        return None  # KEY= removes the key
    if field in _TEXT_KEYS or field == "permissions":
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _Usage(f"vfsftp: {key}: not a YAML value: {exc}") from None
    if field in _LIST_KEYS and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    return value


def _assignments(pairs: list[str]) -> list[tuple[str, Any]]:
    out = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise _Usage(f"vfsftp: expected KEY=VALUE, got {pair!r}")
        if key.split(".", 1)[0] == "password":
            raise _Usage("vfsftp: set passwords with 'vfsftp users passwd NAME' (read from stdin)")
        out.append((key, _value(key, text)))
    return out


def _apply(mapping: dict[str, Any], key: str, value: Any) -> None:
    """``mapping`` with ``key`` (``field`` or ``field.sub``) set, or
    removed for the value None (``key=`` with nothing after it)."""
    field, _, sub = key.partition(".")
    if not sub:
        if value is None:
            mapping.pop(field, None)
        else:
            mapping[field] = value
        return
    inner = mapping.get(field)
    inner = dict(inner) if isinstance(inner, dict) else {}
    if value is None:
        inner.pop(sub, None)
    else:
        inner[sub] = value
    if inner:
        mapping[field] = inner
    else:
        mapping.pop(field, None)


def _stored(target: _Target, name: str, mapping: dict[str, Any], base: StoredUser) -> StoredUser:
    """The row for ``mapping`` (a mounts.yaml user), once it validates."""
    user = user_from_dict(name, mapping, target.source)
    _check_against_config(target, name, mapping)
    settings = {k: v for k, v in mapping.items() if k not in COLUMNS}
    return replace(
        base,
        password=mapping["password"],
        disabled=user.disabled,
        expires_at=user.expires_at,
        description=user.description,
        settings=settings,
    )


def _check_against_config(target: _Target, name: str, mapping: dict[str, Any]) -> None:
    """The checks `serve` makes of a user (home in their tree, folders,
    bucket names), against the mounts of the config: errors refuse the
    change, warnings are printed."""
    config = target.config
    if config is None:
        return
    from ..service.preflight import preflight

    try:
        with_user = config_from_dict(
            {**_raw_without_users(config), "users": {name: mapping}}, config.source, config.base_dir
        )
        alone = config_from_dict(_raw_without_users(config), config.source, config.base_dir)
    except ConfigError:
        return  # the user validated on its own; the rest is the config's business
    before = {p.line for p in preflight(alone)}
    new = [p for p in preflight(with_user) if p.line not in before]
    for problem in new:
        if problem.warning:
            _err(problem.line)
    errors = [p.line for p in new if not p.warning]
    if errors:
        raise ConfigError(errors)


def _raw_without_users(config: Config) -> dict[str, Any]:
    """The config's mounts (and what checks read) as a mapping to validate again."""
    return {
        "mounts": {p: m.model_dump(exclude_defaults=True) for p, m in config.mounts.items()},
    }


def _warn_if_hidden(target: _Target, name: str) -> None:
    config = target.config
    if config is not None and name in config.users:
        _err(
            f"vfsftp: warning: {config.source} has a user {name!r} too, which takes "
            "precedence: this stored one cannot log in while it is there"
        )


def _name(name: str) -> str:
    problem = user_name_problem(name)
    if problem is not None:
        raise _Usage(f"vfsftp: {problem}")
    if name == ANONYMOUS:
        raise _Usage(f"vfsftp: {ANONYMOUS} is declared in mounts.yaml, not in the store")
    return name


def _status(user: StoredUser, now: datetime.datetime) -> str:
    if user.disabled:
        return "disabled"
    if user.expires_at is not None and now >= user.expires_at:
        return "expired"
    return "enabled"


def _as_json(user: StoredUser, now: datetime.datetime) -> dict[str, Any]:
    def moment(value: datetime.datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "name": user.name,
        "status": _status(user, now),
        "disabled": user.disabled,
        "expires_at": moment(user.expires_at),
        "description": user.description,
        "settings": dict(user.settings),
        "version": user.version,
        "created_at": moment(user.created_at),
        "updated_at": moment(user.updated_at),
    }


# ------------------------------------------------------------------ commands


def _add(target: _Target, args: argparse.Namespace) -> int:
    name = _name(args.name)
    changes = _assignments(args.settings)
    if target.store.get(name) is not None:
        raise UserExists(name)
    mapping: dict[str, Any] = {"password": _new_password(args, name)}
    for key, value in changes:
        _apply(mapping, key, value)
    row = _stored(target, name, mapping, StoredUser(name, mapping["password"]))
    target.store.add(row)
    _warn_if_hidden(target, name)
    print(f"vfsftp: added {name} to {target.store.label}")
    return 0


def _set(target: _Target, args: argparse.Namespace) -> int:
    name = args.name
    changes = _assignments(args.settings)
    if not changes:
        raise _Usage("vfsftp: nothing to change: give KEY=VALUE (KEY= removes the key)")

    def change(user: StoredUser) -> StoredUser:
        mapping = user.mapping()
        for key, value in changes:
            _apply(mapping, key, value)
        return _stored(target, name, mapping, user)

    target.store.update(name, change)
    print(f"vfsftp: changed {name}; the next login reads it")
    return 0


def _show(target: _Target, args: argparse.Namespace) -> int:
    user = target.store.get(args.name)
    if user is None:
        raise NoSuchUser(args.name)
    now = datetime.datetime.now(datetime.timezone.utc)
    if args.json:
        print(json.dumps(_as_json(user, now), indent=2))
        return 0
    # In the order of mounts.yaml's keys (a database keeps its own order).
    order = {key: i for i, key in enumerate(UserConfig.model_fields)}
    mapping = {
        k: v
        for k, v in sorted(user.mapping().items(), key=lambda kv: order.get(kv[0], len(order)))
        if k != "password"
    }
    if "expires_at" in mapping:
        mapping["expires_at"] = user.expires_at.isoformat() if user.expires_at else None
    print(f"# {target.store.label}: {_status(user, now)}, version {user.version}")
    created = user.created_at.isoformat(timespec="seconds") if user.created_at else "?"
    updated = user.updated_at.isoformat(timespec="seconds") if user.updated_at else "?"
    print(f"# created {created}, updated {updated}; password: an argon2 hash")
    text = yaml.safe_dump({user.name: mapping or None}, sort_keys=False, allow_unicode=True)
    print(text, end="")
    return 0


def _list(target: _Target, args: argparse.Namespace) -> int:
    users = target.store.users()
    now = datetime.datetime.now(datetime.timezone.utc)
    if args.json:
        print(json.dumps([_as_json(u, now) for u in users], indent=2))
        return 0
    rows = [("NAME", "STATUS", "EXPIRES", "HOME", "DESCRIPTION")]
    for user in users:
        expires = user.expires_at.strftime("%Y-%m-%d %H:%M") if user.expires_at else "-"
        home = str(user.settings.get("home", "/"))
        rows.append((user.name, _status(user, now), expires, home, user.description))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        print("  ".join([*cells, row[4]]).rstrip())
    print(f"({len(users)} user{'s' if len(users) != 1 else ''} in {target.store.label})")
    return 0


def _kick(target: _Target, name: str) -> str:
    target.store.kick(name)
    return (
        f"; running sessions end within {target.spec.poll_interval:g}s "
        "(users_store.poll_interval of the servers)"
    )


def _disable(target: _Target, args: argparse.Namespace) -> int:
    target.store.update(args.name, lambda user: replace(user, disabled=True))
    after = _kick(target, args.name) if args.kick else "; running sessions go on (--kick ends them)"
    print(f"vfsftp: disabled {args.name}: its next login is refused{after}")
    return 0


def _enable(target: _Target, args: argparse.Namespace) -> int:
    target.store.update(args.name, lambda user: replace(user, disabled=False))
    print(f"vfsftp: enabled {args.name}")
    return 0


def _delete(target: _Target, args: argparse.Namespace) -> int:
    target.store.delete(args.name)
    after = _kick(target, args.name) if args.kick else "; running sessions go on (--kick ends them)"
    print(f"vfsftp: deleted {args.name}{after}")
    return 0


def _passwd(target: _Target, args: argparse.Namespace) -> int:
    if target.store.get(args.name) is None:  # before asking for a password
        raise NoSuchUser(args.name)
    password = _new_password(args, args.name)
    target.store.update(args.name, lambda user: replace(user, password=password))
    print(f"vfsftp: new password for {args.name}; the next login needs it")
    return 0


def _import(target: _Target, args: argparse.Namespace) -> int:
    config = load_config(args.file)  # the whole file validates first
    raw = read_yaml(args.file) or {}
    written = (raw.get("users") or {}) if isinstance(raw, dict) else {}
    done: list[str] = []
    skipped: list[str] = []
    for name, user in config.users.items():
        if user.anonymous:
            skipped.append(f"{name} (anonymous stays in {args.file})")
            continue
        # As written, ${NAME} references and all: secrets stay in the
        # environment, and the server substitutes them at login as for YAML.
        mapping = dict(written.get(name) or {})
        password = user.password or ""
        if password.startswith("plaintext:"):
            mapping["password"] = hash_password(password[len("plaintext:") :])
        row = _stored(target, name, mapping, StoredUser(name, ""))
        exists = target.store.get(name) is not None
        if exists and not args.replace:
            skipped.append(f"{name} (in the store already; --replace overwrites)")
            continue
        if exists:
            target.store.update(name, functools.partial(_replaced_by, row))
        else:
            target.store.add(row)
        done.append(name)
    for line in skipped:
        _err(f"vfsftp: skipped {line}")
    names = f": {', '.join(done)}" if done else ""
    print(f"vfsftp: imported {len(done)} user(s) into {target.store.label}{names}")
    if done:
        print(
            f"vfsftp: remove them from users: in {args.file}: its entries take precedence "
            "over the store's"
        )
    return 0


def _replaced_by(row: StoredUser, before: StoredUser) -> StoredUser:
    return replace(row, version=before.version, created_at=before.created_at)


# ------------------------------------------------------------------ parser


#: the work of each ``vfsftp users`` command (vfsftp.cli.users_parser)
COMMANDS: dict[str, Callable[[_Target, argparse.Namespace], int]] = {
    "add": _add,
    "set": _set,
    "show": _show,
    "list": _list,
    "disable": _disable,
    "enable": _enable,
    "delete": _delete,
    "passwd": _passwd,
    "import": _import,
}


def run(args: argparse.Namespace, command: str) -> int:
    """Run ``vfsftp users COMMAND`` as parsed; the exit status."""
    default_config = args.file if command == "import" else None
    return _run(args, COMMANDS[command], default_config=default_config)
