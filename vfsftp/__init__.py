"""vfsftp: an FTP(S) server whose disk is a virtual tree of PyFilesystem2
filesystems (local folders, in-memory folders, S3 buckets) declared in
mounts.yaml.

    from vfsftp import FTPServer, load_config
    server = FTPServer(load_config("mounts.yaml"))
    asyncio.run(server.serve_forever())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import fscompat, moved

# Before anything imports PyFilesystem2: `import fs` needs pkg_resources,
# which today's setuptools no longer has (vfsftp/fscompat.py).
fscompat.install()
# `import vfsftp.server` and the other paths of the flat layout, for a release.
moved.install()

if TYPE_CHECKING:
    from .config.schema import Config, ConfigError, config_from_dict, load_config
    from .identity.auth import Account, Authorizer, ConfigAuthorizer, hash_password, verify_password
    from .ops.hooks import Event
    from .service.lifecycle import run_service
    from .service.server import FTPServer
    from .storage.tree import Mount, VirtualTree

__all__ = [
    "Account",
    "Authorizer",
    "Config",
    "ConfigAuthorizer",
    "ConfigError",
    "Event",
    "FTPServer",
    "Mount",
    "VirtualTree",
    "config_from_dict",
    "hash_password",
    "load_config",
    "run_service",
    "verify_password",
]
__version__ = "0.1.0"

# The names above are imported on first use (PEP 562): the pytest plugin
# (vfsftp.pytest_plugin) is loaded by every pytest run of every project that
# installs vfsftp, and importing the server eagerly costs ~0.6 s (pydantic,
# fs, boto3...) even where no test uses it.
_HOME = {
    "Account": "identity.auth",
    "Authorizer": "identity.auth",
    "ConfigAuthorizer": "identity.auth",
    "hash_password": "identity.auth",
    "verify_password": "identity.auth",
    "Config": "config",
    "ConfigError": "config",
    "config_from_dict": "config",
    "load_config": "config",
    "Event": "ops.hooks",
    "FTPServer": "service.server",
    "run_service": "service.lifecycle",
    "Mount": "storage.tree",
    "VirtualTree": "storage.tree",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
