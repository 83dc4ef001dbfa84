"""Read and validate ``mounts.yaml`` into frozen models.

Nothing here opens a filesystem or a socket: the result is plain data that the
server turns into listeners and per-user trees. Every problem found is
reported at once, as ``<file>: <key.path>: <what was expected>``, so an admin
fixes a config in one round instead of one error per restart.

Schema (every section optional)::

    server:   {listen, port, passive_ports, masquerade_address, banner,
               idle_timeout, login_timeout, data_timeout, stall_timeout,
               max_connections, max_connections_per_ip, max_login_attempts,
               login_failure_delay, upload_grace, ban: {max_failures, window, duration,
               exempt}, permit_foreign_addresses, permit_privileged_ports,
               {session,max,total}_{download,upload}_rate, shutdown_timeout,
               tls: {...}, hash: {enabled, anonymous, algorithm, upload,
               max_concurrent}, proxy_protocol: {from, direct, header_timeout}}
    logging:  {level, file, transfer_log, transfer_log_format}
    metrics:  {listen, port}
    cluster:  {url, prefix, lease, heartbeat, timeout, quota_reserve}
    hooks:    {upload, download, delete, rename, mkdir, rmdir, login}
    mounts:   {/virtual/path: URL | {fs: URL, read_only: bool, create: bool,
                                     quota: {max_bytes, max_files}, hash_max_size,
                                     require_checksum, s3 keys}}
    users:    {name: {password, root, home, perms, permissions: {/dir: letters},
                      mounts: {...as above...}, max_connections, quota,
                      {max,session}_{download,upload}_rate, require_tls,
                      require_data_tls, disabled, expires_at, allowed_networks,
                      description}}
    users_store: URL | {url, timeout, poll_interval, connections}

String values may hold ``${NAME}`` (replaced from the environment), ``${user}``
(kept: the server puts the login name there) and ``$${`` (a literal ``${``).
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ..protocol.hashes import ALGORITHMS, DEFAULT_ALGORITHM, algorithm_named
from ..protocol.paths import PathRejected, is_under, resolve
from ..protocol.permissions import ALL_PERMS, READ_PERMS, validate_perms
from .errors import ConfigError
from .names import (
    ANONYMOUS,
    ANONYMOUS_ALIAS,
    USER_PLACEHOLDER,
    Loc,
    bucket_name_problem,
    format_loc,
    key_path,
    s3_bucket,
    store_path,
    user_name_problem,
)
from .plain import S3_KEYS, ClusterViews, MountViews, StoreViews
from .yaml_errors import explain as explain_yaml_error

__all__ = [
    "ANONYMOUS",
    "ANONYMOUS_ALIAS",
    "BanConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "HashConfig",
    "HooksConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MountConfig",
    "ProxyProtocolConfig",
    "QuotaConfig",
    "ServerConfig",
    "UserConfig",
    "UsersStoreConfig",
    "bucket_name_problem",
    "config_from_dict",
    "config_from_yaml",
    "key_path",
    "load_config",
    "read_yaml",
    "s3_bucket",
    "s3_enum",
    "store_path",
    "user_from_dict",
    "user_name_problem",
    "with_overrides",
]

#: The size cap of a mem:// mount whose quota sets no max_bytes: its files
#: live in the server's memory. A fixed size, not a share of RAM: the same
#: on every machine, and a container's memory limit is not what the host's
#: RAM says. Raise it with quota.max_bytes.
MEM_DEFAULT_MAX_BYTES = 256 * 1024**2

LOG_LEVELS = ("debug", "info", "warning", "error")

_HASH_HINT = "expected an argon2 hash (vfsftp hash-password) or 'plaintext:<password>'"
_URL_HINT = "such as 'mem://', 'osfs://./ftp-data' or 's3://bucket/prefix'"


# --- value checks shared by the models (each raises ValueError with the text
# --- that ends up after "<file>: <key.path>: ")


def _virtual_path(value: str) -> str:
    """An absolute virtual path, normalised the way client paths are."""
    if not value.startswith("/"):
        raise ValueError(f"expected an absolute virtual path starting with '/', got {value!r}")
    try:
        return resolve("/", value)
    except PathRejected as exc:
        raise ValueError(str(exc)) from None


def _perm_letters(value: str) -> str:
    problem = validate_perms(value)
    if problem:
        raise ValueError(problem)
    return value


VirtualPath = Annotated[str, AfterValidator(_virtual_path)]
Perms = Annotated[str, AfterValidator(_perm_letters)]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _listen_address(value: str) -> str:
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):  # "[::1]" as in URLs
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.count(":") == 1 or (host.startswith("[") and "]:" in host):
        raise ValueError(
            f"expected an address without a port, got {value!r}; set the port with server.port"
        )
    labels = host.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):
        # Digits and dots are an IPv4 address to the reader, whatever a
        # resolver makes of them (RFC 3696 §2: no all-numeric top-level domain).
        raise ValueError(
            f"{value!r} is not a valid IPv4 address: expected four numbers from 0 to 255, "
            "such as 127.0.0.1"
        )
    if not host or len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(
            f"expected an IP address or a host name, got {value!r} "
            "(use 0.0.0.0 or :: for every interface)"
        )
    return host


ListenAddress = Annotated[str, AfterValidator(_listen_address)]


def _endpoint_url(value: str) -> str:
    """An S3 endpoint as botocore takes it: http(s)://host[:port][/path]."""
    shown = "" if "@" in value else f", got {value!r}"  # never echo credentials
    if "://" not in value:
        example = "'http://host:port'" if "@" in value else repr(f"http://{value}")
        raise ValueError(f"expected a URL with its scheme, such as {example}{shown}")
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError when out of range or not a number
    except ValueError as exc:
        raise ValueError(f"expected a URL such as 'http://127.0.0.1:9000' ({exc}){shown}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"expected a URL starting with http:// or https://{shown}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "credentials do not go in the URL; use access_key_id and secret_access_key"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"expected a URL without '?' or '#'{shown}")
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    if not (is_valid_endpoint_url(value) or is_valid_ipv6_endpoint_url(value)):
        raise ValueError(f"expected a URL with a valid host name or address{shown}")
    return value


# botocore.utils.validate_region_name's rule: a region is one DNS label.
_REGION = re.compile(r"^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$")


def _region(value: str) -> str:
    if not _REGION.match(value):
        raise ValueError(
            f"expected a region name such as 'eu-west-1' (letters, digits, '-'), got {value!r}"
        )
    return value


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode takes true as 1; a YAML `port: yes` is a mistake.
    # (Lax mode stays on so that "${PORT}" strings become numbers.)
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {'true' if value else 'false'}")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


def _byte_size(value: Any) -> Any:
    """``8388608``, ``"8MiB"`` or ``"8 MB"`` → bytes."""
    value = _not_bool(value)
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m or m.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(
                f"expected a size in bytes or with a unit (KiB, MiB, GiB), got {value!r}"
            )
        return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    return value


ByteSize = Annotated[int, BeforeValidator(_byte_size)]


def _rate(value: Any) -> Any:
    """A bytes-per-second rate: a size, optionally written ``"10MB/s"``."""
    if isinstance(value, str) and value.rstrip().lower().endswith("/s"):
        value = value.rstrip()[:-2]
    return _byte_size(value)


Rate = Annotated[int, BeforeValidator(_rate)]


def _network(value: Any) -> Any:
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value  # (a model dumped and validated again: with_overrides)
    if not isinstance(value, str):
        raise ValueError(f"expected an address or network such as '10.0.0.0/8', got {value!r}")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"expected an address or network such as '10.0.0.0/8', got {value!r}"
        ) from None


Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_network)]


def _expiry(value: Any) -> Any:
    """A moment: an ISO 8601 date and time (without a zone: UTC), or a date
    alone (its first second, UTC: ``expires_at: 2027-01-01`` works through
    the last day of 2026, as ``chage -E`` counts)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                datetime.date.fromisoformat(text)
                if len(text) == 10
                else datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
            )
        except ValueError:
            raise ValueError(
                f"expected a date (2027-01-01) or a date and time (2027-01-01T12:00:00Z), "
                f"got {value!r}"
            ) from None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc)
    # (true is no date either: `expires_at: yes` is a mistake)
    raise ValueError(f"expected a date (2027-01-01) or a date and time, got {_shown(value)}")


Expiry = Annotated[datetime.datetime, BeforeValidator(_expiry)]


def s3_enum(shape: str) -> tuple[str, ...]:
    """The values botocore's S3 model allows for ``shape`` (StorageClass,
    ObjectCannedACL): mounts.yaml accepts what the installed botocore knows."""
    # botocore's model: loaded only for mounts that use these keys
    from botocore.loaders import create_loader
    from botocore.model import ServiceModel

    model = ServiceModel(create_loader().load_service_model("s3", "service-2"))
    return tuple(model.shape_for(shape).enum)


def _s3_value(shape: str) -> AfterValidator:
    """One of the values botocore's S3 model lists for ``shape``."""

    def check(value: str) -> str:
        allowed = s3_enum(shape)
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    return AfterValidator(check)


StorageClass = Annotated[str, _s3_value("StorageClass")]
CannedACL = Annotated[str, _s3_value("ObjectCannedACL")]


def _port_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected {what} as an integer")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"expected {what} as an integer, got {value!r}") from None


# --- models


class _Model(BaseModel):
    # frozen: the running server shares one Config between sessions and a
    # reload builds a new one; nobody patches a live config.
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuotaConfig(_Model):
    """Storage a user (or a mount) may fill: bytes and files, either or both.
    Usage is measured once (a walk of the storage, at first use) and then
    kept up to date by the server's own uploads, deletes and renames."""

    max_bytes: ByteSize | None = Field(default=None, ge=0)
    max_files: Int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _something(self) -> QuotaConfig:
        if self.max_bytes is None and self.max_files is None:
            raise ValueError("expected max_bytes, max_files or both")
        return self


#: server_side_encryption values that take an sse_kms_key_id
_KMS = ("aws:kms", "aws:kms:dsse")


class MountConfig(MountViews, _Model):
    """One filesystem in the tree. In YAML either a URL string (short form) or
    a mapping ``{fs: URL, read_only: bool, create: bool}``."""

    fs: str
    read_only: bool = False
    create: bool = False  # create a local folder that may not exist yet
    # All users' files on this mount together (a ${user} mount: each user's).
    quota: QuotaConfig | None = None
    # HASH and the X-commands read at most this many bytes of a file here
    # (then 556, or 550); None: no cap. Answers the storage or the cache
    # already holds cost no read and are never refused.
    hash_max_size: ByteSize | None = Field(default=None, ge=0)
    # Uploads here must be announced with SITE CHECKSUM <algorithm> <hex>
    # (else 503), and one whose data does not match is discarded (451).
    require_checksum: bool = False
    # --- s3:// mounts only (see vfsftp.storage.s3.S3Options) ---
    endpoint_url: Annotated[str, AfterValidator(_endpoint_url)] | None = None  # MinIO, R2...
    region: Annotated[str, AfterValidator(_region)] | None = None
    addressing_style: Literal["auto", "path", "virtual"] | None = None
    access_key_id: str | None = None  # else the standard AWS chain
    secret_access_key: str | None = None
    session_token: str | None = None
    part_size: ByteSize | None = Field(default=None, ge=5 * 1024**2, le=5 * 1024**3)
    concurrency: Int | None = Field(default=None, ge=1, le=64)  # parts in flight per upload
    checksum: Literal["when_required", "when_supported"] | None = None
    allow_dir_rename: bool | None = None
    rewrite_max_size: ByteSize | None = Field(default=None, ge=0)
    # Sent with every object written, copied (renames) or made (MKD).
    # aws:kms:dsse: dual-layer SSE-KMS (S3, 2023); aws:fsx and aws:backup,
    # also in botocore's list, belong to other services' access points.
    server_side_encryption: Literal["AES256", "aws:kms", "aws:kms:dsse"] | None = None
    sse_kms_key_id: str | None = Field(default=None, min_length=1)
    storage_class: StorageClass | None = None
    acl: CannedACL | None = None
    content_type: Literal["guess", "none"] | None = None
    # Seconds a session trusts what it learned of a folder for its STORs
    # into it (docs/s3.md, "Folders a session knows"); 0: ask every time.
    folder_trust: Float | None = Field(default=None, ge=0, le=3600, allow_inf_nan=False)

    @model_validator(mode="after")
    def _s3_keys_need_s3(self) -> MountConfig:
        if self.fs.lower().startswith("s3://") and "?" in self.fs:
            raise ValueError(
                "s3:// URL parameters are not read; "
                "use the mount's keys (endpoint_url:, region: ...)"
            )
        used = [k for k in S3_KEYS if getattr(self, k) is not None]
        if used and not self.fs.lower().startswith("s3://"):
            raise ValueError(f"{', '.join(used)}: only for s3:// mounts")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.sse_kms_key_id is not None and self.server_side_encryption not in _KMS:
            raise ValueError(
                "sse_kms_key_id: only with server_side_encryption: aws:kms or aws:kms:dsse"
            )
        return self

    @model_validator(mode="after")
    def _memory_cap(self) -> MountConfig:
        # mem:// keeps files in the server's memory: capped unless told.
        if not self.fs.lower().startswith("mem://"):
            return self
        if self.quota is not None and self.quota.max_bytes is not None:
            return self
        files = self.quota.max_files if self.quota is not None else None
        capped = QuotaConfig(max_bytes=MEM_DEFAULT_MAX_BYTES, max_files=files)
        return self.model_copy(update={"quota": capped})

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"fs": data}
        if data is None or isinstance(data, (list, tuple, int, float)):
            raise ValueError(f"expected a filesystem URL {_URL_HINT}, or a mapping with 'fs:'")
        return data

    @field_validator("fs")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _SCHEME.match(value):
            shown = "" if "@" in value else f", got {value!r}"  # never echo credentials
            raise ValueError(f"expected a filesystem URL with a scheme, {_URL_HINT}{shown}")
        if value.lower().startswith("s3://"):
            # A ${user} bucket: its fixed part here, each user's name at
            # start-up (vfsftp.service.preflight).
            problem = bucket_name_problem(s3_bucket(value).replace(USER_PLACEHOLDER, "user"))
            if problem:
                raise ValueError(problem)
        return value


class UserConfig(_Model):
    """A login. ``name`` is the key under ``users:``; ``anonymous`` is derived
    from it (the user called ``anonymous``, which also answers to ``ftp``)."""

    name: str
    anonymous: bool = False
    # Stored form: an argon2 hash or "plaintext:<pw>"; None only for anonymous.
    password: str | None = Field(default=None, validate_default=True)
    home: VirtualPath = "/"
    perms: Perms = ALL_PERMS
    # The part of the tree the user sees, as their "/"; None: their home.
    root: VirtualPath | None = None
    permissions: dict[VirtualPath, Perms] = Field(default_factory=dict)
    mounts: dict[VirtualPath, MountConfig] = Field(default_factory=dict)
    max_connections: Int | None = Field(default=None, ge=1)
    # Per-user rate limits (bytes/s, all the user's sessions together);
    # None: server.max_download_rate / max_upload_rate.
    max_download_rate: Rate | None = Field(default=None, ge=1024)
    max_upload_rate: Rate | None = Field(default=None, ge=1024)
    # Each of the user's sessions on its own; None: server.session_*_rate.
    session_download_rate: Rate | None = Field(default=None, ge=1024)
    session_upload_rate: Rate | None = Field(default=None, ge=1024)
    # Files under the user's home, on writable mounts.
    quota: QuotaConfig | None = None
    # Per-user TLS policy; None: server.tls.require_tls / require_data_tls.
    # A require_tls differing from the server's shows at USER (331 against
    # 534): it tells that the name exists (README, FTPS "Policies").
    require_tls: bool | None = None
    require_data_tls: bool | None = None
    # Logins refused (530, as a wrong password; the log says why) while
    # disabled, from expires_at on, and from addresses outside
    # allowed_networks (empty: any address).
    disabled: bool = False
    expires_at: Expiry | None = None
    allowed_networks: tuple[Network, ...] = ()
    description: str = ""  # for the administrators: who, which contract...

    @model_validator(mode="before")
    @classmethod
    def _defaults_by_kind(cls, data: Any) -> Any:
        # The defaults depend on the name, which a field default cannot see.
        if isinstance(data, Mapping):
            data = dict(data)
            data.setdefault("anonymous", data.get("name") == ANONYMOUS)
            if "perms" not in data:
                data["perms"] = READ_PERMS if data["anonymous"] is True else ALL_PERMS
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = user_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        if value == ANONYMOUS_ALIAS:
            raise ValueError(
                f"'{ANONYMOUS_ALIAS}' is the login alias of '{ANONYMOUS}'; "
                f"declare the anonymous user as '{ANONYMOUS}'"
            )
        return value

    @field_validator("root")
    @classmethod
    def _home_in_root(cls, value: str | None, info: ValidationInfo) -> str | None:
        home = info.data.get("home")
        if value is not None and home is not None and not is_under(home, value):
            raise ValueError(
                f"expected a directory holding the home {home!r} (the user sees nothing "
                f"outside the root), got {value!r}"
            )
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Never put the value in a message: it may be a real password.
        anonymous = info.data.get("anonymous")
        if anonymous is None:  # the name was rejected; nothing sensible to add
            return value
        if anonymous:
            if value is not None:
                raise ValueError(
                    "anonymous logs in without a password (any password is accepted); "
                    "remove this key"
                )
            return None
        if value is None:
            raise ValueError(f"required: {_HASH_HINT}")
        if value.startswith("$argon2"):
            import argon2  # here: a config without hashes never loads it

            try:
                argon2.extract_parameters(value)
            except argon2.exceptions.InvalidHashError:
                raise ValueError(
                    "malformed argon2 hash; generate one with 'vfsftp hash-password'"
                ) from None
            return value
        if value.startswith("plaintext:"):
            if value == "plaintext:":
                raise ValueError("empty password after 'plaintext:'")
            return value
        raise ValueError(_HASH_HINT)


class TLSConfig(_Model):
    """FTPS (RFC 4217). Relative file names are next to the config file."""

    certificate: str  # PEM certificate chain
    key: str | None = None  # PEM private key; None: inside the certificate file
    min_version: Literal["1.2", "1.3"] = "1.2"
    #: a second listener speaking TLS from the first byte ("implicit FTPS",
    #: ftps:// URLs, port 990 by convention); None: explicit AUTH TLS only
    implicit_port: Int | None = Field(default=None, ge=0, le=65535)
    require_tls: bool = False  # control connection must be TLS before USER
    require_data_tls: bool = False  # transfers and listings need PROT P
    handshake_timeout: Float = Field(default=10.0, gt=0, allow_inf_nan=False)


class BanConfig(_Model):
    """Temporary ban of a client address after failed logins (421 at connect)."""

    max_failures: Int = Field(default=10, ge=1)  # failed logins...
    window: Float = Field(default=600.0, gt=0, allow_inf_nan=False)  # ...within seconds
    duration: Float = Field(default=900.0, gt=0, allow_inf_nan=False)  # ban length, seconds
    exempt: tuple[Network, ...] = ()  # never banned (monitoring, trusted partners)


def _algorithm(value: Any) -> Any:
    if isinstance(value, str):
        found = algorithm_named(value)
        if found is None:
            raise ValueError(f"expected one of {', '.join(ALGORITHMS)}, got {value!r}")
        return found
    return value


def _upload_algorithm(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, str) and algorithm_named(value) is None:
        raise ValueError(f"expected one of {', '.join(ALGORITHMS)}, or none; got {value!r}")
    return _algorithm(value)


Algorithm = Annotated[str, BeforeValidator(_algorithm)]


class HashConfig(_Model):
    """Checksums: HASH and RANG (draft-bryan-ftpext-hash), the X-commands
    (XCRC, XMD5, XSHA1, XSHA256, XSHA512), SITE CHECKSUM, and the checksum
    every upload computes while its data streams in (docs/integrity.md)."""

    enabled: bool = True  # False: the commands answer 502, FEAT lists none
    anonymous: bool = True  # anonymous sessions may hash what they may read (else 552)
    algorithm: Algorithm = DEFAULT_ALGORITHM  # HASH's until OPTS HASH changes it
    # Computed while an upload's data arrives: logged with the transfer,
    # stored with S3 objects (SHA-256), cached for HASH. None: no checksum.
    upload: Annotated[str | None, BeforeValidator(_upload_algorithm)] = DEFAULT_ALGORITHM
    # Hashes reading storage at once, server-wide; more are answered 450.
    max_concurrent: Int = Field(default=4, ge=1)


class ProxyProtocolConfig(_Model):
    """The PROXY protocol (v1 or v2) from TCP load balancers: every
    connection from a ``from`` network must start with a header telling the
    client's address; connections from ``direct`` networks are served as
    themselves; any other connection is refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: tuple[Network, ...] = Field(alias="from")
    direct: tuple[Network, ...] = ()
    # Seconds a balancer's connection may take to send its header.
    header_timeout: Float = Field(default=5.0, gt=0, le=60, allow_inf_nan=False)

    @field_validator("from_")
    @classmethod
    def _some(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise ValueError("expected the load balancers' addresses or networks")
        return value


class ServerConfig(_Model):
    """Listeners, passive mode and limits."""

    listen: tuple[ListenAddress, ...] = ("127.0.0.1",)
    port: Int = Field(default=2121, ge=0, le=65535)  # 0: ephemeral (tests)
    passive_ports: tuple[int, int] | None = None
    masquerade_address: str | None = None  # IPv4 sent in PASV replies behind NAT
    banner: str = "vfsftp ready"
    idle_timeout: Float = Field(default=300.0, gt=0, allow_inf_nan=False)
    # Seconds a connection may stay without logging in (then 421), whatever
    # it sends meanwhile (NOOP every few seconds holds no slot forever).
    login_timeout: Float = Field(default=60.0, gt=0, allow_inf_nan=False)
    # Seconds for the client to open the data connection (then 425).
    data_timeout: Float = Field(default=60.0, gt=0, allow_inf_nan=False)
    # Seconds a transfer may make no progress before it is aborted (426).
    stall_timeout: Float = Field(default=300.0, gt=0, allow_inf_nan=False)
    # SIGTERM/SIGINT: seconds running transfers get to finish before the
    # sessions are closed (their uploads discarded).
    shutdown_timeout: Float = Field(default=30.0, ge=0, allow_inf_nan=False)
    max_connections: Int = Field(default=512, ge=1)
    max_connections_per_ip: Int = Field(default=32, ge=1)
    max_login_attempts: Int = Field(default=3, ge=1)  # per connection, then 421
    login_failure_delay: Float = Field(default=1.0, ge=0, le=30, allow_inf_nan=False)
    # Seconds an upload whose data connection has ended waits for a sign
    # that its client is gone (a killed client's control connection closes
    # a moment after its data connection) before it is published.
    upload_grace: Float = Field(default=0.1, ge=0, le=10, allow_inf_nan=False)
    # None (ban: null in YAML) turns bans off.
    ban: BanConfig | None = Field(default_factory=BanConfig)
    permit_foreign_addresses: bool = False  # PORT/EPRT to another host (FXP)
    permit_privileged_ports: bool = False  # PORT/EPRT to ports < 1024
    # Traffic control, bytes per second ("10MB/s" works): each session on
    # its own, every user's sessions together, and the whole server.
    session_download_rate: Rate | None = Field(default=None, ge=1024)
    session_upload_rate: Rate | None = Field(default=None, ge=1024)
    max_download_rate: Rate | None = Field(default=None, ge=1024)
    max_upload_rate: Rate | None = Field(default=None, ge=1024)
    total_download_rate: Rate | None = Field(default=None, ge=1024)
    total_upload_rate: Rate | None = Field(default=None, ge=1024)
    tls: TLSConfig | None = None
    hash: HashConfig = Field(default_factory=HashConfig)
    proxy_protocol: ProxyProtocolConfig | None = None

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: Any) -> Any:
        # A single address is the common case; accept it without a list.
        if isinstance(value, str):
            return (value,)
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError("expected at least one address to listen on")
        return value

    @field_validator("passive_ports", mode="before")
    @classmethod
    def _passive_ports(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            parts: list[Any] = [p.strip() for p in value.split("-")]
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            parts = []
        if len(parts) != 2:
            raise ValueError(
                "expected a port range as [low, high] or 'low-high', e.g. '60000-60100'"
            )
        low, high = (_port_number(p, "a port") for p in parts)
        if not (1024 <= low <= 65535 and 1024 <= high <= 65535):
            raise ValueError(f"expected ports between 1024 and 65535, got {low}-{high}")
        if low > high:
            raise ValueError(f"expected low <= high, got {low}-{high}")
        return (low, high)

    @field_validator("masquerade_address")
    @classmethod
    def _masquerade(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.IPv4Address(value.strip()))
        except ValueError:
            # PASV (RFC 959) can only carry IPv4; EPSV sends no address at all.
            raise ValueError(f"expected an IPv4 address, got {value!r}") from None

    @field_validator("banner")
    @classmethod
    def _banner(cls, value: str) -> str:
        # A block scalar (`banner: |`) ends with a newline; interior newlines
        # make a multi-line 220 reply. CR or NUL would break the framing.
        value = value.rstrip("\n")
        if "\r" in value or "\x00" in value:
            raise ValueError("banner must not contain CR or NUL characters")
        return value


class LoggingConfig(_Model):
    """Where the session log and the per-transfer log go."""

    level: str = "info"
    # Paths; relative ones are made absolute against Config.base_dir on load.
    file: str | None = None  # session log; None = stderr
    transfer_log: str | None = None  # None = session log, "-" = stderr
    #: xferlog(5) lines (wu-ftpd/vsftpd, what log analysers read), JSON
    #: lines, or the key=value text of the session log
    transfer_log_format: Literal["xferlog", "json", "text"] = "xferlog"

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if isinstance(value, str):
            level = value.strip().lower()
            if level not in LOG_LEVELS:
                raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
            return level
        return value

    @field_validator("file", "transfer_log")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError("expected a file name; remove the key for the default")
        return value


def _redis_url(value: str) -> str:
    scheme = urllib.parse.urlsplit(value.strip()).scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            "expected a Redis URL such as 'redis://10.0.0.5:6379/0', 'rediss://...' "
            "(TLS) or 'unix:///run/redis.sock'"
        )
    return value.strip()


class ClusterConfig(ClusterViews, _Model):
    """The state a fleet of instances shares, in Redis (6 or later) or
    Valkey: connection counts, failed logins and bans, quota usage, rate
    limits. Absent: each process (or ``--workers`` host) keeps its own."""

    url: Annotated[str, AfterValidator(_redis_url)]
    # Every key starts with {prefix}: several fleets may share one Redis.
    prefix: str = Field(default="vfsftp", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Seconds an instance's sessions and reservations count without a
    # heartbeat: a crashed instance's are freed that long after.
    lease: Float = Field(default=15.0, ge=0.5, le=3600, allow_inf_nan=False)
    # Seconds between heartbeats; default: a third of the lease.
    heartbeat: Float | None = Field(default=None, gt=0, allow_inf_nan=False)
    # Seconds a Redis call may take before the store counts as unreachable.
    timeout: Float = Field(default=1.0, gt=0, le=60, allow_inf_nan=False)
    # Bytes an upload reserves at a time ahead of its data (one Redis call
    # per this many bytes instead of one per chunk).
    quota_reserve: ByteSize = Field(default=4 * 1024**2, ge=0)

    @model_validator(mode="after")
    def _beats_within_lease(self) -> ClusterConfig:
        if self.heartbeat is not None and self.heartbeat >= self.lease:
            raise ValueError(
                f"heartbeat ({self.heartbeat:g}s) must be shorter than the lease ({self.lease:g}s)"
            )
        return self


class MetricsConfig(_Model):
    """The Prometheus endpoint (``GET /metrics``); off unless a port is set."""

    listen: ListenAddress = "127.0.0.1"  # loopback: metrics are not for clients
    port: Int | None = Field(default=None, ge=0, le=65535)  # 0: ephemeral (tests)


_HOOK_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def _hook_refs(value: Any) -> Any:
    # One callable or a list of them, each "package.module:function".
    refs = [value] if isinstance(value, str) else value
    if isinstance(refs, (list, tuple)):
        for ref in refs:
            if isinstance(ref, str) and not _HOOK_REF.match(ref.strip()):
                raise ValueError(f"expected 'package.module:function', got {ref!r}")
        return tuple(r.strip() if isinstance(r, str) else r for r in refs)
    return value


HookRefs = Annotated[tuple[str, ...], BeforeValidator(_hook_refs)]


class HooksConfig(_Model):
    """Python callables run (in a worker thread) after each event."""

    upload: HookRefs = ()
    download: HookRefs = ()
    delete: HookRefs = ()
    rename: HookRefs = ()
    mkdir: HookRefs = ()
    rmdir: HookRefs = ()
    login: HookRefs = ()


_STORE_HINT = (
    "expected sqlite:///FILE (relative: next to this file; sqlite:////ABSOLUTE) "
    "or postgresql://user@host:port/database"
)


def _store_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    shown = "" if "@" in value else f", got {value!r}"  # never echo credentials
    if not sep:
        raise ValueError(f"{_STORE_HINT}{shown}")
    scheme = scheme.lower()
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else ""
        if not path or path == ":memory:" or "?" in path:
            raise ValueError(
                "expected sqlite:///FILE: a file, which every session and the "
                f"`vfsftp users` command share{shown}"
            )
        return value
    if scheme in ("postgresql", "postgres"):
        return value
    raise ValueError(f"unknown database {scheme!r}: {_STORE_HINT}")


class UsersStoreConfig(StoreViews, _Model):
    """Users in a database (vfsftp.identity.store), besides those of
    ``users:``, which win on a name clash. In YAML a URL alone, or a
    mapping with ``url:``."""

    url: Annotated[str, AfterValidator(_store_url)]
    # Seconds a login waits for the database, then 421 (RFC 959: service
    # not available) for that login alone.
    timeout: Float = Field(default=5.0, gt=0, le=60, allow_inf_nan=False)
    # Seconds between two looks for `vfsftp users disable --kick`.
    poll_interval: Float = Field(default=2.0, ge=0.05, le=300, allow_inf_nan=False)
    # Connections (each with a thread of its own) per server process.
    connections: Int = Field(default=4, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"url": data}
        if not isinstance(data, Mapping):
            raise ValueError(f"{_STORE_HINT}, or a mapping with 'url:'")
        return data


class Config(_Model):
    """The whole validated configuration."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    cluster: ClusterConfig | None = None
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    mounts: dict[VirtualPath, MountConfig] = Field(default_factory=dict)
    users: dict[str, UserConfig] = Field(default_factory=dict)
    # None: the users above are all there is.
    users_store: UsersStoreConfig | None = None
    source: str = "<dict>"  # file name used in messages
    base_dir: Path = Field(default_factory=Path.cwd)  # relative osfs:// paths start here


# Fields the program fills in, which a YAML file must not set.
_HIDDEN: dict[type[BaseModel], frozenset[str]] = {
    Config: frozenset({"source", "base_dir"}),
    UserConfig: frozenset({"name", "anonymous"}),
}


# --- environment substitution and the checks pydantic cannot do


_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")


class _Prepass:
    """Walks the raw YAML data before pydantic sees it: substitutes ``${NAME}``,
    fills in user names, and finds what pydantic would silently merge (two
    mount paths equal after normalisation)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[tuple[Loc, str]] = []
        self.bad_locs: list[Loc] = []  # pydantic errors under these are noise

    def substitute(self, value: Any, loc: Loc) -> Any:
        if isinstance(value, str):
            return self._sub_str(value, loc)
        if isinstance(value, Mapping):
            return {k: self.substitute(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, (*loc, i)) for i, v in enumerate(value)]
        return value

    def _sub_str(self, text: str, loc: Loc) -> str:
        failed = False

        def one(m: re.Match[str]) -> str:
            nonlocal failed
            token, name = m.group(0), m.group(1)
            if token == "$${":
                return "${"
            if name is None:
                failed = True
                self.problems.append(
                    (
                        loc,
                        "malformed '${': expected ${NAME} (letters, digits, _) "
                        "or '$${' for a literal '${'",
                    )
                )
                return token
            if name == "user":
                return USER_PLACEHOLDER  # the server substitutes the login name
            if name not in self.env:
                failed = True
                self.problems.append((loc, f"environment variable {name!r} is not set"))
                return token
            return self.env[name]

        out = _REF.sub(one, text)
        if failed:
            self.bad_locs.append(loc)
        return out

    def structure(self, data: dict[Any, Any]) -> dict[Any, Any]:
        for hidden in sorted(_HIDDEN[Config]):
            if hidden in data:
                self._unknown((hidden,), Config)
                del data[hidden]
        for section in ("server", "logging", "metrics", "hooks", "mounts", "users", "users_store"):
            if section in data and data[section] is None:  # `users:` with nothing under it
                del data[section]
        if isinstance(data.get("mounts"), Mapping):
            self._duplicates(data["mounts"], ("mounts",))
        users = data.get("users")
        if isinstance(users, Mapping):
            fixed: dict[Any, Any] = {}
            for name, spec in users.items():
                loc: Loc = ("users", name)
                if not isinstance(name, str):
                    self.problems.append((loc, "expected the user name as a string; quote it"))
                    continue
                if spec is None:  # `anonymous:` alone
                    spec = {}
                if isinstance(spec, Mapping):
                    spec = dict(spec)
                    for hidden in sorted(_HIDDEN[UserConfig]):
                        if hidden in spec:
                            self._unknown((*loc, hidden), UserConfig)
                            del spec[hidden]
                    for key in ("permissions", "mounts"):
                        if isinstance(spec.get(key), Mapping):
                            self._duplicates(spec[key], (*loc, key))
                    spec["name"] = name
                fixed[name] = spec
            data["users"] = fixed
        return data

    def _unknown(self, loc: Loc, model: type[BaseModel]) -> None:
        self.problems.append((loc, _unknown_key_text(model, loc[-1])))

    def _duplicates(self, table: Mapping[Any, Any], loc: Loc) -> None:
        seen: dict[str, Any] = {}
        for key in table:
            try:
                norm = _virtual_path(key) if isinstance(key, str) else None
            except ValueError:
                continue  # pydantic reports the bad key itself
            if norm is None:
                continue
            if norm in seen:
                self.problems.append(
                    ((*loc, key), f"same path as {seen[norm]!r} (both are {norm!r})")
                )
            else:
                seen[norm] = key


# --- turning pydantic errors into one line each


def _unknown_key_text(model: type[BaseModel], key: str | int) -> str:
    hidden = _HIDDEN.get(model, frozenset())
    keys = [f.alias or k for k, f in model.model_fields.items() if k not in hidden]
    # A misspelt key (max_conections, readonly) is a near miss of one key.
    close = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.7)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    return f"unknown key; expected one of {', '.join(keys)}"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or type(tp).__name__ == "UnionType":
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _model_at(loc: Loc, root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class that the location ``loc`` (inside ``root``) points at."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "missing": "required key is missing",
}

_BOUND = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _describe(err: ErrorDetails, root: type[BaseModel], prefix: Loc) -> tuple[Loc, str]:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc = loc[:-1]
    # A failure in a field the program fills in (a user's name) belongs to
    # the key that supplied it.
    if loc and isinstance(loc[-1], str):
        parent = _model_at(loc[:-1], root)
        if parent is not None and loc[-1] in _HIDDEN.get(parent, frozenset()):
            loc = loc[:-1]
    secret = any(part == "password" for part in loc)

    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], root)
        text = _unknown_key_text(model, loc[-1]) if model else "unknown key"
    elif kind == "value_error":
        text = str(ctx.get("error", err["msg"]))
    elif kind in _BOUND:
        name, sign = _BOUND[kind]
        bound = ctx.get(name)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        text = f"expected a number {sign} {bound}"
        if not secret:
            text += f", got {_shown(err['input'])}"
    elif kind in _EXPECTED:
        text = _EXPECTED[kind]
        if is_key:
            text += " as the key (quote it in YAML)"
        if kind != "missing" and not secret:
            text += f", got {_shown(err['input'])}"
    else:
        msg = err["msg"]
        text = msg[:1].lower() + msg[1:]
    return (*prefix, *loc), text


def _line(source: str, loc: Loc, text: str) -> str:
    where = format_loc(loc)
    return f"{source}: {where}: {text}" if where else f"{source}: {text}"


def _starts_with(loc: Loc, prefix: Loc) -> bool:
    return loc[: len(prefix)] == prefix


def _anchor_log_files(raw: dict[Any, Any], base: Path) -> None:
    # Every relative path in the file means "next to this file", like the
    # osfs:// folders, not "wherever the server happened to be started".
    sections: list[tuple[Any, tuple[str, ...]]] = [(raw.get("logging"), ("file", "transfer_log"))]
    server = raw.get("server")
    if isinstance(server, dict):
        sections.append((server.get("tls"), ("certificate", "key")))
    for section, keys in sections:
        if not isinstance(section, dict):
            continue
        for key in keys:
            value = section.get(key)
            if isinstance(value, str) and value not in ("", "-") and not os.path.isabs(value):
                section[key] = str(base / value)


def _anchor_users_store(raw: dict[Any, Any], base: Path) -> None:
    # sqlite:///users.db is the file next to this one, as osfs:// folders are.
    store = raw.get("users_store")
    spec = store if isinstance(store, dict) else {"url": store}
    url = spec.get("url")
    if not isinstance(url, str):
        return
    path = store_path(url)
    if path and path != ":memory:" and not os.path.isabs(path) and "?" not in path:
        spec["url"] = f"{url.partition('://')[0]}:///{base / path}"
        raw["users_store"] = spec if isinstance(store, dict) else spec["url"]


# --- public entry points


def config_from_dict(
    data: Mapping[str, Any],
    source: str = "<dict>",
    base_dir: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate already-parsed data (e.g. from ``yaml.safe_load``).

    ``base_dir`` is where relative ``osfs://`` paths start (default: the
    current directory). ``env`` replaces ``os.environ`` for ``${NAME}``.
    Raises :class:`ConfigError` listing every problem.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"{source}: expected a mapping at the top level, got {_shown(data)}"])
    base = Path.cwd() if base_dir is None else Path(base_dir)
    pre = _Prepass(os.environ if env is None else env)
    raw = pre.substitute(data, ())
    raw = pre.structure(raw)
    _anchor_log_files(raw, base)
    _anchor_users_store(raw, base)
    raw["source"] = source
    raw["base_dir"] = base

    problems = [_line(source, loc, text) for loc, text in pre.problems]
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc, text = _describe(err, Config, ())
            if any(_starts_with(tuple(err["loc"]), bad) for bad in pre.bad_locs):
                continue  # already reported as a missing variable / bad ${
            problems.append(_line(source, loc, text))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def user_from_dict(
    name: str,
    data: Mapping[str, Any],
    source: str,
    *,
    env: Mapping[str, str] | None = None,
) -> UserConfig:
    """A user from another source than mounts.yaml (the user store): the
    mapping a YAML user has under ``users.NAME``, validated by the same
    rules, ``${NAME}`` substitution included. Raises :class:`ConfigError`,
    each line naming ``source`` and ``users.NAME.key``."""
    if not isinstance(data, Mapping):
        raise ConfigError([_line(source, ("users", name), "expected a mapping")])
    config = config_from_dict({"users": {name: dict(data)}}, source, env=env)
    return config.users[name]


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that notes duplicate keys, which PyYAML otherwise
    resolves silently in favour of the last one (a second `demo:` user would
    quietly replace the first)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
                hash(key)
            except Exception:
                continue  # let the normal construction report it
            line = key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.append(
                    f"line {line}: duplicate key {key!r} (first at line {seen[key]})"
                )
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, source: str) -> Any:
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        plain = explain_yaml_error(text, exc)
        if plain is not None:
            raise ConfigError([f"{source}: {plain}"]) from None
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        if what.startswith("but ") and exc.context:  # "but found another document"
            what = f"{exc.context}, {what}"
        hint = " (indent with spaces, not tabs)" if "\\t" in what or "\t" in what else ""
        raise ConfigError([f"{source}: {where}YAML syntax error: {what}{hint}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: YAML syntax error: {exc}"]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError([f"{source}: {d}" for d in loader.duplicates])
    return data


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """A YAML file's data before validation (what ``vfsftp users import``
    copies as written), parsed as ``load_config`` parses it."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{source}: cannot read: {exc}"]) from None
    return _parse_yaml(text, source)


def config_from_yaml(text: str, source: str, base_dir: Path | None = None) -> Config:
    """Parse YAML text (``yaml.safe_load`` rules) and validate it."""
    return config_from_dict(_parse_yaml(text, source), source, base_dir)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a ``mounts.yaml``. Relative ``osfs://`` paths are
    relative to the file's directory. Raises :class:`ConfigError`, also for a
    missing or unreadable file and YAML syntax errors (with the line)."""
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    return config_from_yaml(text, source, Path(source).absolute().parent)


def with_overrides(
    config: Config,
    *,
    server: Mapping[str, Any] | None = None,
    logging: Mapping[str, Any] | None = None,
    source: str = "command line",
) -> Config:
    """A copy of ``config`` with some ``server`` / ``logging`` keys replaced
    (e.g. ``--host``/``--port``), validated like the file. Raises
    :class:`ConfigError` naming ``source``."""
    problems: list[str] = []
    parts: dict[str, Any] = {}
    for name, model, current, changes in (
        ("server", ServerConfig, config.server, server),
        ("logging", LoggingConfig, config.logging, logging),
    ):
        if not changes:
            continue
        try:
            parts[name] = model.model_validate({**current.model_dump(by_alias=True), **changes})
        except ValidationError as exc:
            for err in exc.errors():
                loc, text = _describe(err, model, (name,))
                problems.append(_line(source, loc, text))
    if problems:
        raise ConfigError(problems)
    return config.model_copy(update=parts)
