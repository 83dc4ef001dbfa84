"""Everything ``vfsftp serve`` needs from a configuration, checked before a
client can notice: ``vfsftp check-config`` runs these checks, and the
server runs them before it takes a configuration, at start-up and at each
reload. "OK" from check-config means the server starts with the file.

``config.py`` has already checked each value's form (keys, addresses,
URLs, bucket names). This module checks what the values point at:

- local folders exist, or may be created (``create: true``), and can be
  read; a ``${user}`` mount's fixed part, and each configured user's folder;
- each user's home is in their tree (under a mount, or a virtual directory
  above mount points), and for local mounts that its folder exists;
- TLS certificate and key load, hooks import, log files can be written;
- the users store's folder (SQLite) is there, its driver (PostgreSQL) too;
- with ``connect``: each S3 mount answers HeadBucket and a list of its
  prefix with the credentials the server would use, other openers open,
  listen host names resolve, the users store answers. Nothing is bound. Without ``connect`` nothing
  touches the network.

A problem is an error (the server refuses the configuration) or a warning
(it starts, and something will fail later: a user's home folder that does
not exist yet, a folder it cannot write to). Each is one line naming the
file, the key, the value and the fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import fs.errors
import fs.opener
import fs.opener.errors
from fs.opener.parse import parse_fs_url

from ..config.errors import ConfigError
from ..config.names import (
    LOCAL_KINDS,
    USER_PLACEHOLDER,
    bucket_name_problem,
    fs_kind,
    key_path,
    s3_bucket,
    store_path,
)
from ..protocol.paths import PathRejected, is_under, resolve

if TYPE_CHECKING:
    from ..config.schema import Config, MountConfig, UserConfig
    from ..storage.s3 import StreamingS3FS

__all__ = ["ListenError", "Problem", "bind_error", "ensure_ready", "plural", "preflight"]


@dataclass(frozen=True)
class Problem:
    """One finding: ``line`` is ``<file>: <key.path>: what is wrong; the fix``."""

    line: str
    warning: bool = False

    def __str__(self) -> str:
        return self.line


@dataclass(frozen=True)
class _Mount:
    """A mount as one user (or every user) gets it."""

    key: str  # where it is declared: "mounts./home", "users.bob.mounts./h"
    path: str  # virtual path
    spec: MountConfig
    url: str  # ${user} replaced, unless ``template``
    user: str | None = None  # the user this copy is for
    template: bool = False  # a ${user} mount, seen for no one user


def plural(n: int, word: str) -> str:
    """``1 mount``, ``3 mounts``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class _Check:
    config: Config
    connect: bool
    problems: list[Problem] = field(default_factory=list)
    #: S3 filesystems opened by --connect (None: it failed), for the homes check
    opened: dict[tuple[Any, ...], StreamingS3FS | None] = field(default_factory=dict)

    def error(self, key: str, text: str) -> None:
        where = f"{key}: " if key else ""
        self.problems.append(Problem(f"{self.config.source}: {where}{text}"))

    def warn(self, key: str, text: str) -> None:
        where = f"{key}: " if key else ""
        self.problems.append(Problem(f"{self.config.source}: {where}warning: {text}", True))

    def errors_from(self, exc: ConfigError) -> None:
        self.problems += [Problem(line) for line in exc.problems]


def preflight(config: Config, *, connect: bool = False) -> list[Problem]:
    """Every problem that would stop ``serve`` with ``config``, or bite a
    client later: errors and warnings, the server's sections first, then
    the mounts, then the users' homes."""
    check = _Check(config, connect)
    try:
        _server(check)
        for mount in _declared(config):
            _mount(check, mount)
        for user in config.users.values():
            _home(check, user)
    finally:
        for opened in check.opened.values():
            if opened is not None:
                with contextlib.suppress(Exception):
                    opened.close()
    return check.problems


def ensure_ready(config: Config) -> list[Problem]:
    """The checks the server makes before it takes ``config``: raises
    ConfigError listing the errors; returns the warnings (for the log)."""
    problems = preflight(config)
    errors = [p.line for p in problems if not p.warning]
    if errors:
        raise ConfigError(errors)
    return [p for p in problems if p.warning]


# --- server, TLS, hooks, logging


def _server(check: _Check) -> None:
    config = check.config
    tls = config.server.tls
    if tls is not None:
        from ..session.tls import make_server_context

        try:
            make_server_context(tls, config.source)
        except ConfigError as exc:
            check.errors_from(exc)
    from ..ops.hooks import load_hooks

    try:
        load_hooks(config.hooks, config.source)
    except ConfigError as exc:
        check.errors_from(exc)
    _cluster(check)
    for name in ("file", "transfer_log"):
        value = getattr(config.logging, name)
        if value is not None and value != "-":
            problem = _writable_file(value)
            if problem:
                check.error(key_path("logging", name), problem)
    _users_store(check)
    if check.connect:
        names = [(key_path("server", "listen", i), h) for i, h in enumerate(config.server.listen)]
        if config.metrics.port is not None:
            names.append((key_path("metrics", "listen"), config.metrics.listen))
        for key, host in names:
            problem = _resolves(host)
            if problem:
                check.error(key, problem)


def _users_store(check: _Check) -> None:
    """The store's file can be made; its driver is there; with --connect,
    it answers (and its schema is made or brought up to date)."""
    spec = check.config.users_store
    if spec is None:
        return
    from ..identity.store import StoreError, StoreUnavailable
    from ..identity.stored import open_store

    path = store_path(spec.url)
    if path is not None:
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            check.error(
                "users_store",
                f"folder {folder} does not exist; create it (the file {os.path.basename(path)} "
                "is made at the first start)",
            )
            return
    try:
        store = open_store(spec)
    except StoreError as exc:
        check.error("users_store", str(exc))
        return
    try:
        if check.connect:
            store.count()
    except (StoreError, StoreUnavailable) as exc:
        check.error("users_store", f"cannot use it: {exc}")
    finally:
        store.close()


def _cluster(check: _Check) -> None:
    """The fleet's shared state: the client library, and with --connect,
    an answer from Redis."""
    cluster = check.config.cluster
    if cluster is None:
        return
    try:
        import redis
    except ImportError:
        check.error(
            "cluster",
            "needs the 'redis' package (pip install 'vfsftp[cluster]'), or remove the "
            "section to keep this instance's limits to itself",
        )
        return
    if check.connect:
        from .cluster import redact

        client = redis.Redis.from_url(
            cluster.url, socket_timeout=cluster.timeout, socket_connect_timeout=cluster.timeout
        )
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            check.error(key_path("cluster", "url"), f"{redact(cluster.url)} does not answer: {exc}")
        finally:
            client.close()


def _writable_file(path: str) -> str | None:
    if os.path.isdir(path):
        return f"{path} is a folder; expected a file name"
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return f"{path} is not writable by this process; fix its permissions or the path"
        return None
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        return f"cannot create {path}: folder {folder} does not exist; create it or fix the path"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create {path}: folder {folder} is not writable by this process"
    return None


def _resolves(host: str) -> str | None:
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return (
            f"cannot resolve host name {host!r} ({exc.strerror}); "
            "use an IP address, or fix the name"
        )
    except UnicodeError:
        return f"cannot resolve host name {host!r} (not a valid name); use an IP address"
    return None


# --- mounts


def _declared(config: Config) -> Iterator[_Mount]:
    for path, spec in config.mounts.items():
        template = USER_PLACEHOLDER in spec.fs
        yield _Mount(key_path("mounts", path), path, spec, spec.fs, template=template)
    for user in config.users.values():
        for path, spec in user.mounts.items():
            url = spec.fs.replace(USER_PLACEHOLDER, user.name)
            yield _Mount(key_path("users", user.name, "mounts", path), path, spec, url, user.name)


def _copies(config: Config, mount: _Mount) -> Iterator[_Mount]:
    """A ${user} mount as each configured user gets it."""
    for user in config.users.values():
        if mount.path not in user.mounts:
            url = mount.spec.fs.replace(USER_PLACEHOLDER, user.name)
            yield dataclasses.replace(mount, url=url, user=user.name, template=False)


def _for(mount: _Mount) -> str:
    # (a user's own mount names the user in its key already)
    shared = mount.user is not None and mount.key.startswith("mounts")
    return f" (for user {mount.user})" if shared else ""


def _mount(check: _Check, mount: _Mount) -> None:
    kind = fs_kind(mount.url)
    if kind in LOCAL_KINDS:
        _local(check, mount)
    elif kind == "s3":
        _s3(check, mount)
    elif kind != "mem":
        _other(check, mount)


def _folder(url: str, base_dir: Any) -> str:
    """The folder of an osfs:// URL, as PyFilesystem2's opener finds it."""
    resource = parse_fs_url(url).resource
    return os.path.normpath(
        os.path.abspath(os.path.join(str(base_dir), os.path.expanduser(resource)))
    )


def _shown(folder: str, url: str) -> str:
    resource = url.split("://", 1)[1]
    return f"folder {folder}" if resource == folder else f"folder {folder} ({url!r})"


def _local(check: _Check, mount: _Mount) -> None:
    key = f"{mount.key}.fs"
    url, spec = mount.url, mount.spec
    if mount.template:
        # The part before ${user} is shared by every user: it must be there
        # (or be creatable); each user's own folder is made or checked at
        # their first login.
        _local_folder(check, key, mount, _fixed_part(url), "no user can log in: ")
        for copy in _copies(check.config, mount):
            folder = _folder(copy.url, check.config.base_dir)
            if not spec.create and not os.path.isdir(folder):
                check.warn(
                    key,
                    f"folder {folder} for user {copy.user} does not exist: {copy.user} "
                    "cannot log in until it does; create it, or set create: true",
                )
        return
    _local_folder(check, key, mount, mount.url, "")


def _fixed_part(url: str) -> str:
    """The folder of a ${user} URL that holds every user's folder:
    osfs://./homes/${user}/ftp -> osfs://./homes."""
    scheme, resource = url.split("://", 1)
    fixed = resource.split(USER_PLACEHOLDER, 1)[0]
    folder = fixed.rsplit("/", 1)[0] if "/" in fixed else "."
    if fixed.startswith("/") and not folder:
        folder = "/"
    return f"{scheme}://{folder}"


def _local_folder(check: _Check, key: str, mount: _Mount, url: str, consequence: str) -> None:
    """The folder of ``url`` (the mount's, or the fixed part of a ${user} one)."""
    folder = _folder(url, check.config.base_dir)
    shown, spec, who = _shown(folder, mount.url), mount.spec, _for(mount)
    if os.path.isdir(folder):
        if not os.access(folder, os.R_OK | os.X_OK):
            check.error(key, f"{shown}{who} cannot be read by this process; fix its permissions")
        elif check.connect:
            try:
                with os.scandir(folder) as entries:
                    next(entries, None)
            except OSError as exc:
                check.error(key, f"cannot list {shown}{who}: {exc.strerror}")
        if not spec.read_only and not mount.template and not os.access(folder, os.W_OK):
            check.warn(
                key,
                f"{shown}{who} is not writable by this process: uploads will fail; "
                "fix its permissions, or set read_only: true",
            )
        return
    if os.path.exists(folder):
        check.error(key, f"{shown}{who} is a file, not a folder; point fs at a folder")
        return
    if not spec.create:
        check.error(
            key,
            f"{consequence}{shown}{who} does not exist; create it, or set create: true "
            "to have the server make it",
        )
        return
    above = os.path.dirname(folder)
    while not os.path.exists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        check.error(key, f"{shown}{who} cannot be created: {above} is a file")
    elif not os.access(above, os.W_OK | os.X_OK):
        check.error(
            key,
            f"{shown}{who} cannot be created: {above} is not writable by this process; "
            "create the folder, or fix the permissions",
        )


def _other(check: _Check, mount: _Mount) -> None:
    key = f"{mount.key}.fs"
    protocol = fs_kind(mount.url)
    try:
        fs.opener.registry.get_opener(protocol)
    except fs.opener.errors.UnsupportedProtocol:
        check.error(
            key,
            f"unknown filesystem type {protocol!r} in {mount.url!r}; expected mem://, "
            "osfs://PATH, s3://BUCKET[/PREFIX] or another PyFilesystem2 opener's URL",
        )
        return
    if not check.connect or mount.template:
        return
    try:
        opened = fs.open_fs(mount.url, create=False, cwd=str(check.config.base_dir))
    except (fs.errors.CreateFailed, fs.opener.errors.OpenerError, OSError, ValueError) as exc:
        if not mount.spec.create:
            check.error(key, f"cannot open {mount.url!r}{_for(mount)}: {exc}")
        return
    with contextlib.suppress(Exception):
        opened.close()


def _s3(check: _Check, mount: _Mount) -> None:
    key = f"{mount.key}.fs"
    bucket = s3_bucket(mount.url)
    if mount.template and USER_PLACEHOLDER in bucket:
        # A bucket per user: each configured user's name must make a valid one.
        copies = list(_copies(check.config, mount))
        for copy in copies:
            problem = bucket_name_problem(s3_bucket(copy.url))
            if problem:
                check.error(key, f"{problem} (for user {copy.user})")
            elif check.connect:
                _s3_connect(check, copy)
        return
    if not mount.template:
        problem = bucket_name_problem(bucket)
        if problem:  # a user's own mount, with their name in it
            check.error(key, f"{problem}{_for(mount)}")
            return
    if check.connect:
        # A ${user} prefix: the bucket and the fixed part of the prefix.
        url = _fixed_part(mount.url) if mount.template else mount.url
        _s3_connect(check, dataclasses.replace(mount, url=url))


def _storage(mount: _Mount) -> tuple[Any, ...]:
    return (mount.url, tuple(sorted(mount.spec.s3_options.items())))


def _s3_connect(check: _Check, mount: _Mount) -> None:
    from ..storage.s3 import S3Options, credential_source, open_s3, probe

    spec = mount.spec
    cache_key = _storage(mount)
    if cache_key in check.opened:
        return
    # One attempt and short timeouts: a check answers in seconds.
    options = dataclasses.replace(
        S3Options(**spec.s3_options), max_attempts=1, connect_timeout=5.0, read_timeout=15.0
    )
    filesystem = open_s3(mount.url, options)
    check.opened[cache_key] = None
    if spec.access_key_id is not None:
        credentials = f"access_key_id from {check.config.source}"
    else:
        credentials = credential_source() or "no credentials found"
    try:
        found = probe(filesystem, credentials)
    except BaseException:
        filesystem.close()
        raise
    if found is None:
        check.opened[cache_key] = filesystem
        return
    filesystem.close()
    sub, text = found
    check.error(f"{mount.key}.{sub}" if sub else mount.key, f"{text}{_for(mount)}")


# --- homes


def _tree(check: _Check, user: UserConfig) -> dict[str, _Mount]:
    """The mounts ``user`` logs in to, by virtual path."""
    tree: dict[str, _Mount] = {}
    for mount in _declared(check.config):
        if mount.key.startswith("mounts."):
            if mount.path in user.mounts:
                continue
            if mount.template:
                url = mount.spec.fs.replace(USER_PLACEHOLDER, user.name)
                mount = dataclasses.replace(mount, url=url, user=user.name, template=False)
            tree[mount.path] = mount
        elif mount.user == user.name:
            tree[mount.path] = mount
    return tree


def _home(check: _Check, user: UserConfig) -> None:
    key = key_path("users", user.name, "home")
    try:
        home = resolve("/", user.home.replace(USER_PLACEHOLDER, user.name))
    except PathRejected:
        return
    if home == "/":
        return
    tree = _tree(check, user)
    holders = [p for p in tree if is_under(home, p)]
    if not holders:
        if any(is_under(p, home) for p in tree):
            return  # a virtual directory above mount points
        declared = ", ".join(sorted(tree)) or "none"
        check.error(
            key,
            f"{home!r} is outside {user.name}'s tree: no mount at, above or below it "
            f"(mounts: {declared}); set home to a folder in a mount, or mount one there",
        )
        return
    mount = tree[max(holders, key=len)]
    inside = home[len(mount.path) :].lstrip("/") if mount.path != "/" else home.lstrip("/")
    if not inside:
        return  # the mount's own root: checked with the mount
    kind = fs_kind(mount.url)
    if kind in LOCAL_KINDS:
        root = _folder(mount.url, check.config.base_dir)
        folder = os.path.join(root, inside)
        if (os.path.isdir(root) or mount.spec.create) and not os.path.isdir(folder):
            check.warn(
                key,
                f"{home!r} does not exist (folder {folder}): {user.name} starts in / "
                "until it does; create it",
            )
    elif kind == "s3":
        opened = check.opened.get(_storage(mount))
        if opened is not None:
            try:
                there = opened.isdir("/" + inside)
            except Exception:  # the mount's own check reported the store's failures
                return
            if not there:
                check.warn(
                    key,
                    f"{home!r} does not exist in {mount.url!r}: {user.name} starts in / "
                    "until it does; create it (MKD)",
                )


# --- listening


_BIND_FIXES = {
    errno.EADDRINUSE: "another program listens there (another vfsftp?); stop it or "
    "choose another port",
    errno.EACCES: "ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port from 1024 up",
    errno.EADDRNOTAVAIL: "that address is not one of this machine's; use one of its "
    "addresses, or 0.0.0.0 / :: for all",
}


class ListenError(OSError):
    """A listener could not be opened; ``str()`` is the whole message."""

    def __str__(self) -> str:
        return str(self.strerror)


def bind_error(
    exc: OSError, source: str, address_key: str, port_key: str, host: str, port: int
) -> ListenError:
    """The start-up error for a listener that could not be opened: the
    keys, the address and the fix, in one line."""
    if isinstance(exc, socket.gaierror):
        text = (
            f"{source}: {address_key}: cannot resolve host name {host!r} ({exc.strerror}); "
            "use an IP address, or fix the name"
        )
    else:
        # (asyncio's text repeats the address: the system's words suffice)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        fix = _BIND_FIXES.get(exc.errno or 0, "check the address and the port")
        text = (
            f"{source}: {address_key}, {port_key}: cannot listen on {host} port {port} "
            f"({reason}); {fix}"
        )
    return ListenError(exc.errno or 0, text)
