"""vfsftp: an FTP(S) server whose disk is a virtual tree of PyFilesystem2
filesystems (local folders, in-memory folders, S3 buckets) declared in
mounts.yaml.

    from vfsftp import FTPServer, load_config
    server = FTPServer(load_config("mounts.yaml"))
    asyncio.run(server.serve_forever())
"""

from .auth import Account, Authorizer, ConfigAuthorizer, hash_password, verify_password
from .config import Config, ConfigError, config_from_dict, load_config
from .server import FTPServer
from .tree import Mount, VirtualTree

__all__ = [
    "Account",
    "Authorizer",
    "Config",
    "ConfigAuthorizer",
    "ConfigError",
    "FTPServer",
    "Mount",
    "VirtualTree",
    "config_from_dict",
    "hash_password",
    "load_config",
    "verify_password",
]
__version__ = "0.1.0"
