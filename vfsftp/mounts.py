"""Open the filesystems named in mounts.yaml and build each user's tree.

Filesystems are opened once and shared by every session (an in-memory mount
must be the same for everyone); per-user mounts with ``${user}`` are opened at
a user's first login and kept. Errors name the file and the key, like config
errors, so a missing folder fails at startup with a useful line.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path
from typing import Any

import fs
import fs.errors
import fs.opener
import fs.wrap
from fs.base import FS
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from .config import USER_PLACEHOLDER, Config, ConfigError, MountConfig, UserConfig
from .localfs import JailedOSFS
from .memfs import InlineMemoryFS
from .quota import Quota, measure
from .tree import UPLOAD_PREFIX, Mount, VirtualTree, unwrap_read_only

__all__ = ["MountTable"]


def _kind(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "fs"


class MountTable:
    """Owns every mounted filesystem of a server."""

    def __init__(
        self,
        config: Config,
        *,
        reuse: MountTable | None = None,
        observe: Callable[[FS], None] | None = None,
    ) -> None:
        """``reuse``: a previous table (config reload) whose filesystems are
        taken over where the new config declares the same storage: an
        in-memory mount keeps its files. ``observe`` is called with each
        filesystem this table opens (metrics)."""
        self.config = config
        self.observe = observe
        self._opened: dict[tuple[Any, ...], FS] = {}
        #: one quota account per (mount point, user, filesystem, limits)
        self._quotas: dict[tuple[Any, ...], Quota] = {}
        self._lock = threading.Lock()
        # Global mounts naming ${user} (``/home: osfs://./homes/${user}``)
        # are opened per user, at login.
        self._templates = {p: s for p, s in config.mounts.items() if USER_PLACEHOLDER in s.fs}
        if reuse is not None:
            # Taken over now, not at the next login: the old table closes
            # what nobody took once its last session ends.
            offered = reuse._snapshot()
            for cache_key in self._declared(logins=reuse._logins()):
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
        self._trees: dict[str, VirtualTree] = {}

    def _cache_key(self, spec: MountConfig, url: str, key: str) -> tuple[Any, ...]:
        # The same URL with the same options is the same storage, opened
        # once; mem:// is a new, empty filesystem per mount declaration.
        return (
            url if _kind(url) != "mem" else f"{url}#{key}",
            str(self.config.base_dir),  # where relative osfs:// paths start
            spec.create,
            spec.read_only,
            tuple(sorted(spec.s3_options.items())),
        )

    def _declared(self, logins: Collection[str]) -> set[tuple[Any, ...]]:
        """The cache keys of every mount the config declares: global ones,
        ``${user}`` templates for these login names, users' own mounts."""
        keys = set()
        for path, spec in self.config.mounts.items():
            names: Collection[str | None] = logins if path in self._templates else [None]
            for name in names:
                url = spec.fs.replace(USER_PLACEHOLDER, name) if name else spec.fs
                keys.add(self._cache_key(spec, url, f"mounts.{path}"))
        for user in self.config.users.values():
            for path, spec in user.mounts.items():
                url = spec.fs.replace(USER_PLACEHOLDER, user.name)
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

    def _open(self, spec: MountConfig, url: str, key: str) -> FS:
        cache_key = self._cache_key(spec, url, key)
        with self._lock:
            opened = self._opened.get(cache_key)
            if opened is not None:
                return opened
            filesystem: FS
            try:
                if _kind(url) == "s3":
                    from .s3 import S3Options, open_s3

                    filesystem = open_s3(url, S3Options(**spec.s3_options))
                else:
                    filesystem = fs.open_fs(url, create=spec.create, cwd=str(self.config.base_dir))
                    if type(filesystem) is OSFS:
                        filesystem = JailedOSFS(filesystem._root_path)
                    elif type(filesystem) is MemoryFS:  # (new and empty)
                        filesystem = InlineMemoryFS()
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
                hint = (
                    " (set create: true to make it)"
                    if _kind(url) == "osfs" and not spec.create
                    else ""
                )
                raise ConfigError(
                    [f"{self.config.source}: {key}.fs: cannot open {url!r}: {_reason(exc)}{hint}"]
                ) from None
            if self.observe is not None:
                self.observe(filesystem)
            if spec.read_only:
                filesystem = fs.wrap.read_only(filesystem)
            self._opened[cache_key] = filesystem
            return filesystem

    def _mount(self, path: str, spec: MountConfig, key: str, user: str | None = None) -> Mount:
        url = spec.fs.replace("${user}", user) if user is not None else spec.fs
        filesystem = self._open(spec, url, key)
        quota = None
        if spec.quota is not None:
            # Each declaration (and each user's copy of a ${user} mount)
            # has its own account, measured at first use.
            quota_key = (path, user, id(filesystem), spec.quota.max_bytes, spec.quota.max_files)
            with self._lock:
                quota = self._quotas.get(quota_key)
                if quota is None:
                    quota = self._quotas[quota_key] = Quota(
                        f"mount {path}" if user is None else f"mount {path} of {user}",
                        spec.quota.max_bytes,
                        spec.quota.max_files,
                        partial(measure, filesystem, "/", UPLOAD_PREFIX),
                    )
        return Mount.of(path, filesystem, read_only=spec.read_only, kind=_kind(url), quota=quota)

    def cached_tree(self, user: UserConfig, login: str | None = None) -> VirtualTree | None:
        """The user's tree if building it needs no I/O (no mount left to
        open), else None: then call ``tree_for`` in a worker thread."""
        name = login or user.name
        with self._lock:
            return self._trees.get(name)

    def tree_for(self, user: UserConfig, login: str | None = None) -> VirtualTree:
        """The user's tree: the global mounts, with the user's own mounts
        added or put in their place. Built once per user and shared by that
        user's sessions (a tree holds nothing but its mount table)."""
        name = login or user.name
        with self._lock:
            tree = self._trees.get(name)
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
            return self._trees.setdefault(name, tree)

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


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace(str(Path.cwd()) + "/", "")
