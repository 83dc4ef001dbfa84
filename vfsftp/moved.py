"""The module paths of vfsftp 0.1's flat layout, kept for one release.

``import vfsftp.server`` (and every other moved module) still works: it
gives a module that forwards every attribute to the module's new home and
warns once, with a DeprecationWarning, where that home is. The public API is
what ``vfsftp`` itself exports; import from there.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

# The finder and loader are duck-typed (PEP 451): importlib.abc costs ~5 ms
# of every start-up.
if TYPE_CHECKING:
    import importlib.abc
    import importlib.machinery  # noqa: TC004 (annotations only; importlib.util is what runs)

__all__ = ["MOVED", "install"]

#: old module -> new module
MOVED: dict[str, str] = {
    f"vfsftp.{old}": f"vfsftp.{new}"
    for old, new in {
        "auth": "identity.auth",
        "channel": "session.channel",
        "commands": "session.commands",
        "counts": "service.counts",
        "data": "session.data",
        "eager": "session.eager",
        "errors": "storage.errors",
        "failures": "session.failures",
        "hooks": "ops.hooks",
        "lifecycle": "service.lifecycle",
        "limits": "service.limits",
        "localfs": "storage.local",
        "memfs": "storage.memory",
        "metrics": "ops.metrics",
        "mounts": "storage.mounts",
        "nowait": "storage.nowait",
        "observability": "ops.logs",
        "paths": "protocol.paths",
        "permissions": "protocol.permissions",
        "preflight": "service.preflight",
        "quota": "storage.quota",
        "s3": "storage.s3",
        "server": "service.server",
        "threads": "storage.threads",
        "throttle": "session.throttle",
        "tls": "session.tls",
        "tree": "storage.tree",
        "vfs": "storage.sessionfs",
        "workers": "service.workers",
        "yaml_errors": "config.yaml_errors",
    }.items()
}


class _Forwarder(types.ModuleType):
    def __init__(self, name: str, target: str) -> None:
        super().__init__(name, f"Moved to {target}.")
        self.__target = target

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__target), attr)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__target))


class _Loader:
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        warnings.warn(
            f"{spec.name} is now {self.target}; import the public API from vfsftp "
            "(the old module paths go away in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        importlib.import_module(self.target)
        return _Forwarder(spec.name, self.target)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class _Finder:
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, cast("importlib.abc.Loader", _Loader(new)))


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
