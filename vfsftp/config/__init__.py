"""mounts.yaml, read and validated into frozen models: the one schema every
source of configuration (the file, ``config_from_dict``, per-worker
overrides) goes through. Nothing here opens a filesystem or a socket; the
checks that do (folders that exist, buckets that answer, ports that bind)
are vfsftp.service.preflight's.
"""

from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .names import (
    ANONYMOUS,
    ANONYMOUS_ALIAS,
    bucket_name_problem,
    key_path,
    s3_bucket,
    store_path,
    user_name_problem,
)

if TYPE_CHECKING:
    from .schema import (
        BanConfig,
        Config,
        HooksConfig,
        LoggingConfig,
        MetricsConfig,
        MountConfig,
        QuotaConfig,
        ServerConfig,
        UserConfig,
        UsersStoreConfig,
        config_from_dict,
        config_from_yaml,
        load_config,
        s3_enum,
        user_from_dict,
        with_overrides,
    )

__all__ = [
    "ANONYMOUS",
    "ANONYMOUS_ALIAS",
    "BanConfig",
    "Config",
    "ConfigError",
    "HooksConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MountConfig",
    "QuotaConfig",
    "ServerConfig",
    "UserConfig",
    "UsersStoreConfig",
    "bucket_name_problem",
    "config_from_dict",
    "config_from_yaml",
    "key_path",
    "load_config",
    "s3_bucket",
    "s3_enum",
    "store_path",
    "user_from_dict",
    "user_name_problem",
    "with_overrides",
]


# The models are imported on first use (PEP 562): pydantic and the models cost
# ~0.2 s, which ``vfsftp --version`` and the like need not pay.


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import schema

    value = getattr(schema, name)
    globals()[name] = value
    return value
