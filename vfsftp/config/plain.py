"""A validated configuration without its validator: what ``vfsftp serve``
keeps while it serves.

pydantic and the models cost the serving process ~15 MB of RSS (the
validators' memory and pydantic-core's library), a third of an idle
server's. ``vfsftp serve`` therefore validates mounts.yaml in a child
process (vfsftp.config.isolated), which hands back the result as
``Section`` objects: one per model instance, with the same attributes,
equality and hash as the frozen model, and the few properties the server
reads (defined once here, in mixins the models share). The values are the
validated ones (str, int, float, bool, paths, addresses, datetimes,
tuples, dicts), so nothing is converted twice.

A ``Section`` stands where the server's code expects the model of the same
name (``Config``, ``MountConfig``...): the code reads attributes only.
Embedders who build a ``Config`` with pydantic keep passing it as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["S3_KEYS", "ClusterViews", "MountViews", "Section", "StoreViews", "replace", "to_plain"]

#: a mount's keys that only s3:// mounts take (vfsftp.storage.s3.S3Options)
S3_KEYS = (
    "endpoint_url",
    "region",
    "addressing_style",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "part_size",
    "concurrency",
    "checksum",
    "allow_dir_rename",
    "rewrite_max_size",
    "server_side_encryption",
    "sse_kms_key_id",
    "storage_class",
    "acl",
    "content_type",
    "folder_trust",
)


# --- what the server reads beyond the fields (MountConfig, ClusterConfig and
# --- UsersStoreConfig inherit these too: one definition for both kinds)


class MountViews:
    __slots__ = ()

    @property
    def s3_options(self) -> dict[str, Any]:
        """The S3 keys that were set, for ``vfsftp.storage.s3.S3Options``."""
        return {k: getattr(self, k) for k in S3_KEYS if getattr(self, k) is not None}


class ClusterViews:
    __slots__ = ()

    @property
    def beat(self) -> float:
        """Seconds between heartbeats (default: a third of the lease)."""
        heartbeat: float | None = getattr(self, "heartbeat")  # noqa: B009 - a field
        return heartbeat if heartbeat is not None else getattr(self, "lease") / 3  # noqa: B009


class StoreViews:
    __slots__ = ()

    @property
    def redacted(self) -> str:
        """The URL without a password, for logs and messages."""
        return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", getattr(self, "url"))  # noqa: B009


#: fields a repr does not show (logs, tracebacks)
_SECRET = frozenset({"password", "secret_access_key", "session_token"})


class Section:
    """One validated model's fields, frozen. ``kind``: the model's name."""

    __slots__ = ("__dict__", "kind")
    kind: str

    def __init__(self, kind: str, fields: Mapping[str, Any]) -> None:
        object.__setattr__(self, "kind", kind)
        self.__dict__.update(fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.kind} is frozen (a reload builds a new configuration)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self.kind} is frozen")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Section):
            return NotImplemented
        return self.kind == other.kind and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        # (as a frozen model's: a TypeError when a field is a dict)
        return hash((self.kind, *self.__dict__.values()))

    def __repr__(self) -> str:
        shown = (
            f"{k}={'***' if k in _SECRET and v is not None else repr(v)}"
            for k, v in self.__dict__.items()
        )
        return f"{self.kind}({', '.join(shown)})"

    def __getstate__(self) -> tuple[str, dict[str, Any]]:
        return self.kind, self.__dict__

    def __setstate__(self, state: tuple[str, dict[str, Any]]) -> None:
        object.__setattr__(self, "kind", state[0])
        self.__dict__.update(state[1])


class MountSection(MountViews, Section):
    __slots__ = ()


class ClusterSection(ClusterViews, Section):
    __slots__ = ()


class StoreSection(StoreViews, Section):
    __slots__ = ()


_WITH_VIEWS: dict[str, type[Section]] = {
    "MountConfig": MountSection,
    "ClusterConfig": ClusterSection,
    "UsersStoreConfig": StoreSection,
}


def to_plain(value: Any) -> Any:
    """``value`` with every pydantic model in it (nested in tuples, lists
    and dicts too) made a Section. Run where pydantic is loaded anyway."""
    fields = getattr(type(value), "model_fields", None)
    if fields is not None:
        kind = type(value).__name__
        cls = _WITH_VIEWS.get(kind, Section)
        return cls(kind, {name: to_plain(getattr(value, name)) for name in fields})
    if isinstance(value, dict):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


def replace(section: Any, **changes: Any) -> Any:
    """A copy of ``section`` (a Section or a pydantic model) with some fields
    set to values the program chose (a worker's port), not validated again."""
    if isinstance(section, Section):
        copy = object.__new__(type(section))
        copy.__setstate__((section.kind, {**section.__dict__, **changes}))
        return copy
    return section.model_copy(update=changes)
