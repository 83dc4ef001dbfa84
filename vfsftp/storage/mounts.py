"""Open the filesystems named in mounts.yaml and build each user's tree.

Filesystems are opened once and shared by every session (an in-memory mount
must be the same for everyone); per-user mounts with ``${user}`` are opened at
a user's first login and kept. Errors name the file and the key, like config
errors, so a missing folder fails at startup with a useful line.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import threading
from collections.abc import Callable, Collection
from functools import partial
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import fs
import fs.errors
import fs.opener
import fs.wrap
from fs.base import FS
from fs.opener.base import Opener
from fs.opener.osfs import OSFSOpener
from fs.opener.parse import parse_fs_url
from fs.osfs import OSFS

from ..config.errors import ConfigError
from ..config.names import LOCAL_KINDS, USER_PLACEHOLDER, fs_kind
from .local import JailedOSFS
from .memory import InlineMemoryFS
from .quota import Quota, QuotaStore, measure
from .tree import UPLOAD_PREFIX, Mount, VirtualTree, unwrap_read_only

if TYPE_CHECKING:
    from ..config.schema import Config, MountConfig, UserConfig

__all__ = ["MountTable", "user_url"]


#: PyFilesystem2's opener of local folders (``@registry.install`` made the
#: class name its instance; the stub still says a class)
_OSFS_OPENER = cast(Opener, OSFSOpener)


#: a plain word standing for the user name while the URL's shape is read
_TOKEN = "vfsftpuser0"


def user_url(template: str, name: str) -> str:
    """``template`` (a mount URL naming ``${user}``) for the user ``name``.

    The name is a name in the URL, nothing more: in PyFilesystem2 opener URLs
    it is percent-encoded (the opener decodes the resource, and reads ``@``,
    ``!`` and ``?`` as delimiters); on S3 it goes in as is (the key prefix
    holds it literally). Either way the URL must then be read as the
    template is, with the name in place of ``${user}``: a name that the
    parser or the path's normalisation reads otherwise (``..``, ``%2e%2e``,
    ``a/b``) would reach another user's folder or the base itself, and
    raises ValueError. Pure."""
    if fs_kind(template) == "s3":
        url = template.replace(USER_PLACEHOLDER, name)
        place = _s3_place
    else:
        url = template.replace(USER_PLACEHOLDER, quote(name, safe=""))
        place = _opener_place
    expected = _named(place(template.replace(USER_PLACEHOLDER, _TOKEN)), name)
    if place(url) != expected:
        raise ValueError(f"user name {name!r} would lead out of the folder of {template!r}")
    return url


def _named(place: tuple[Any, ...], name: str) -> tuple[Any, ...]:
    """``place`` with the token replaced by ``name`` in each string and in
    each path component (so that a name may not span two)."""
    out: list[Any] = []
    for part in place:
        if isinstance(part, str):
            part = part.replace(_TOKEN, name)
        elif isinstance(part, tuple):
            part = tuple(p.replace(_TOKEN, name) if isinstance(p, str) else p for p in part)
        out.append(part)
    return tuple(out)


def _components(path: str) -> tuple[str, ...]:
    return tuple(posixpath.normpath(path).split("/"))


def _s3_place(url: str) -> tuple[Any, ...]:
    # As vfsftp.storage.s3.open_s3 reads it: bucket, then the normalised key prefix.
    rest = url.split("://", 1)[1].split("?", 1)[0]
    bucket, _, prefix = rest.partition("/")
    return bucket, _components("/" + prefix)


def _opener_place(url: str) -> tuple[Any, ...]:
    try:
        parsed = parse_fs_url(url)
    except fs.errors.FSError:
        return (url,)
    return (
        parsed.protocol,
        parsed.username,
        parsed.password,
        _components(parsed.resource) if parsed.resource else parsed.resource,
        tuple(sorted(parsed.params.items())),
        parsed.path,
    )


def quota_scope(path: str, user: str | None, url: str) -> str:
    """The name of a mount quota's account, the same on every server with
    the same declaration: the mount point, the user of a ${user} mount,
    and the storage (a digest of its URL, which may hold credentials)."""
    digest = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"mount:{path}:{user or ''}:{digest}"


class MountTable:
    """Owns every mounted filesystem of a server."""

    def __init__(
        self,
        config: Config,
        *,
        reuse: MountTable | None = None,
        observe: Callable[[FS], None] | None = None,
        quota_store: QuotaStore | None = None,
    ) -> None:
        """``reuse``: a previous table (config reload) whose filesystems are
        taken over where the new config declares the same storage: an
        in-memory mount keeps its files. ``observe`` is called with each
        filesystem this table opens (metrics). ``quota_store``: where the
        usage of mount quotas lives when a fleet of servers shares it (not
        for mem:// mounts, each server's own)."""
        self.config = config
        self.observe = observe
        self.quota_store = quota_store
        self._opened: dict[tuple[Any, ...], FS] = {}
        #: one quota account per (mount point, user, filesystem, limits)
        self._quotas: dict[tuple[Any, ...], Quota] = {}
        #: guards the dictionaries only, for moments: the event loop takes it
        self._lock = threading.Lock()
        #: one filesystem opened at a time (the same storage opened once)
        self._opening = threading.Lock()
        # Global mounts naming ${user} (``/home: osfs://./homes/${user}``)
        # are opened per user, at login.
        self._templates = {p: s for p, s in config.mounts.items() if USER_PLACEHOLDER in s.fs}
        if reuse is not None:
            # Taken over now, not at the next login: the old table closes
            # what nobody took once its last session ends.
            offered = reuse._snapshot()
            for cache_key in self._declared(reuse._logins(), reuse._others()):
                if cache_key in offered:
                    self._opened[cache_key] = offered[cache_key]
            # Quota accounts of the storage taken over stay shared with the
            # old table's sessions: one account per storage, not two.
            taken = {id(f) for f in self._opened.values()}
            self._quotas = {k: q for k, q in reuse._quota_snapshot().items() if k[2] in taken}
        try:
            self._global: list[Mount] = [
                self._mount(path, spec, f"mounts.{path}")
                for path, spec in config.mounts.items()
                if path not in self._templates
            ]
        except BaseException:
            # A mount that cannot be opened: close those this table opened.
            self.close(keep=reuse.filesystems() if reuse is not None else ())
            raise
        #: login name -> (the user it was built for, the tree)
        self._trees: dict[str, tuple[UserConfig, VirtualTree]] = {}

    def _cache_key(self, spec: MountConfig, url: str, key: str) -> tuple[Any, ...]:
        # The same URL with the same options is the same storage, opened
        # once; mem:// is a new, empty filesystem per mount declaration.
        return (
            url if fs_kind(url) != "mem" else f"{url}#{key}",
            str(self.config.base_dir),  # where relative osfs:// paths start
            spec.create,
            spec.read_only,
            tuple(sorted(spec.s3_options.items())),
        )

    def _declared(
        self, logins: Collection[str], others: Collection[UserConfig] = ()
    ) -> set[tuple[Any, ...]]:
        """The cache keys of every mount the config declares: global ones,
        ``${user}`` templates for these login names, users' own mounts (those
        of the config's users, and of ``others``: users from elsewhere,
        the user store, that have logged in)."""
        keys = set()
        for path, spec in self.config.mounts.items():
            names: Collection[str | None] = logins if path in self._templates else [None]
            for name in names:
                url = _for_user(spec.fs, name)
                if url is not None:
                    keys.add(self._cache_key(spec, url, f"mounts.{path}"))
        for user in (*self.config.users.values(), *others):
            for path, spec in user.mounts.items():
                url = _for_user(spec.fs, user.name)
                if url is not None:
                    keys.add(self._cache_key(spec, url, f"users.{user.name}.mounts.{path}"))
        return keys

    def _snapshot(self) -> dict[tuple[Any, ...], FS]:
        with self._lock:
            return dict(self._opened)

    def _quota_snapshot(self) -> dict[tuple[Any, ...], Quota]:
        with self._lock:
            return dict(self._quotas)

    def _logins(self) -> list[str]:
        with self._lock:
            return list(self._trees)

    def _others(self) -> list[UserConfig]:
        """The users with a tree here that the config does not declare."""
        with self._lock:
            users = [user for user, _ in self._trees.values()]
        return [u for u in users if self.config.users.get(u.name) != u]

    def _open(self, spec: MountConfig, url: str, key: str) -> FS:
        cache_key = self._cache_key(spec, url, key)
        with self._lock:
            opened = self._opened.get(cache_key)
        if opened is not None:
            return opened
        # Opening may take seconds (an S3 mount's first import and its
        # endpoint, a slow disk): it holds ``_opening``, never ``_lock``,
        # which the event loop takes (the metrics scrape, cached trees).
        with self._opening:
            with self._lock:
                opened = self._opened.get(cache_key)
            if opened is not None:
                return opened  # (opened by another thread meanwhile)
            filesystem = self._open_new(spec, url, key)
            with self._lock:
                self._opened[cache_key] = filesystem
            return filesystem

    def _open_new(self, spec: MountConfig, url: str, key: str) -> FS:
        filesystem: FS
        kind = fs_kind(url)
        try:
            if kind == "s3":
                from .s3 import S3Options, open_s3

                filesystem = open_s3(url, S3Options(**spec.s3_options))
            elif kind == "mem":
                # (MemOpener's own result: a new, empty MemoryFS; the rest of
                # the URL is ignored)
                filesystem = InlineMemoryFS()
            elif kind in LOCAL_KINDS:
                # PyFilesystem2's own opener (its reading of the path and of
                # create), without its registry: that asks every installed
                # distribution for an "fs.opener" entry point first
                # (importlib.metadata: ~0.7 MB and milliseconds per mount).
                opened = _OSFS_OPENER.open_fs(
                    url, parse_fs_url(url), True, spec.create, str(self.config.base_dir)
                )
                filesystem = JailedOSFS(cast(OSFS, opened)._root_path)
            else:
                filesystem = fs.open_fs(url, create=spec.create, cwd=str(self.config.base_dir))
        except fs.opener.errors.UnsupportedProtocol:
            raise ConfigError(
                [
                    f"{self.config.source}: {key}.fs: unknown filesystem type in {url!r}; "
                    "expected mem://, osfs://PATH or another PyFilesystem2 opener URL"
                ]
            ) from None
        except (
            fs.errors.CreateFailed,
            fs.opener.errors.OpenerError,
            OSError,
            ValueError,
        ) as exc:
            missing = kind in LOCAL_KINDS and not spec.create
            hint = " (set create: true to make it)" if missing else ""
            raise ConfigError(
                [f"{self.config.source}: {key}.fs: cannot open {url!r}: {_reason(exc)}{hint}"]
            ) from None
        if self.observe is not None:
            self.observe(filesystem)
        if spec.read_only:
            filesystem = fs.wrap.read_only(filesystem)
        return filesystem

    def _mount(self, path: str, spec: MountConfig, key: str, user: str | None = None) -> Mount:
        url = spec.fs
        if user is not None and USER_PLACEHOLDER in url:
            try:
                url = user_url(url, user)
            except ValueError as exc:
                raise ConfigError([f"{self.config.source}: {key}.fs: {exc}"]) from None
        filesystem = self._open(spec, url, key)
        quota = None
        if spec.quota is not None:
            # Each declaration (and each user's copy of a ${user} mount)
            # has its own account, measured at first use.
            quota_key = (path, user, id(filesystem), spec.quota.max_bytes, spec.quota.max_files)
            with self._lock:
                quota = self._quotas.get(quota_key)
                if quota is None:
                    # (the label is in 552 replies: no tree path, which a
                    # user confined below the mount point must not learn)
                    shared = self.quota_store if fs_kind(url) != "mem" else None
                    quota = self._quotas[quota_key] = Quota(
                        "mount" if user is None else f"mount of {user}",
                        spec.quota.max_bytes,
                        spec.quota.max_files,
                        partial(measure, filesystem, "/", UPLOAD_PREFIX),
                        scope=quota_scope(path, user, url),
                        store=shared,
                        shown_as=f"mount {path}" if user is None else f"mount {path} of {user}",
                    )
        return Mount.of(
            path,
            filesystem,
            read_only=spec.read_only,
            kind=fs_kind(url),
            quota=quota,
            origin=f"{key} in {self.config.source}",
            hash_max_size=spec.hash_max_size,
            require_checksum=spec.require_checksum,
        )

    def cached_tree(self, user: UserConfig, login: str | None = None) -> VirtualTree | None:
        """The user's tree if building it needs no I/O (no mount left to
        open), else None: then call ``tree_for`` in a worker thread."""
        name = login or user.name
        with self._lock:
            built = self._trees.get(name)
        return built[1] if built is not None and _same_tree(built[0], user) else None

    def tree_for(self, user: UserConfig, login: str | None = None) -> VirtualTree:
        """The user's tree: the global mounts, with the user's own mounts
        added or put in their place. Built once per user and shared by that
        user's sessions (a tree holds nothing but its mount table). A user
        whose own mounts changed since (the user store) gets a new one."""
        name = login or user.name
        tree = self.cached_tree(user, login)
        if tree is not None:
            return tree
        own = [
            self._mount(path, spec, f"mounts.{path}", user=name)
            for path, spec in self._templates.items()
            if path not in user.mounts
        ] + [
            self._mount(path, spec, f"users.{user.name}.mounts.{path}", user=name)
            for path, spec in user.mounts.items()
        ]
        table = {m.path: m for m in self._global}
        table.update({m.path: m for m in own})
        tree = VirtualTree(list(table.values()))
        with self._lock:
            built = self._trees.get(name)
            if built is not None and _same_tree(built[0], user):
                return built[1]  # (another session built it meanwhile)
            self._trees[name] = (user, tree)
            return tree

    def quotas(self) -> list[Quota]:
        """The mount quota accounts made so far (one per declaration, and
        per user of a ``${user}`` mount)."""
        with self._lock:
            return list(self._quotas.values())

    @property
    def global_mounts(self) -> list[Mount]:
        return list(self._global)

    def filesystems(self) -> list[FS]:
        """Every filesystem this table has opened or taken over."""
        with self._lock:
            return list(self._opened.values())

    def warm_up(self) -> None:
        """Blocking: make now what the opened filesystems would make at
        their first use and keep for good (an S3 mount's client, whose
        service model is tens of thousands of objects), so that start-up
        can leave it out of later garbage collections
        (service.memory.freeze_startup_objects). No request is sent."""
        for filesystem in self.filesystems():
            warm_up = getattr(unwrap_read_only(filesystem), "warm_up", None)
            if warm_up is not None:
                warm_up()

    def close(self, keep: Collection[FS] = ()) -> None:
        """Close the filesystems, except those in ``keep`` (still used by a
        newer table after a reload)."""
        kept = {id(f) for f in keep}
        with self._lock:
            opened = [f for f in self._opened.values() if id(f) not in kept]
            self._opened.clear()
        for filesystem in opened:
            # A read-only wrapper does not close what it wraps (which may
            # hold a descriptor: JailedOSFS's folder).
            inner = unwrap_read_only(filesystem)
            for each in (filesystem,) if inner is filesystem else (filesystem, inner):
                with contextlib.suppress(Exception):
                    each.close()


def _same_tree(built_for: UserConfig, user: UserConfig) -> bool:
    # A tree depends on the user's own mounts alone (and the name, the key).
    return built_for is user or built_for.mounts == user.mounts


def _for_user(template: str, name: str | None) -> str | None:
    """The URL for ``name`` (None: none, for a name that cannot have one)."""
    if not name or USER_PLACEHOLDER not in template:
        return template
    try:
        return user_url(template, name)
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    # As the filesystem says it: absolute paths, the same at start-up and at
    # a reload, whatever the current directory.
    return str(exc) or type(exc).__name__
