"""The configuration's names and the pure checks that the running server
uses without loading the validator (vfsftp.config.schema and pydantic cost
~0.2 s and ~20 MB; a session checking a login name or a preflight naming a
key needs neither). The schema imports these; nothing here does I/O.
"""

from __future__ import annotations

import re

__all__ = [
    "ANONYMOUS",
    "ANONYMOUS_ALIAS",
    "HOOK_EVENTS",
    "LOCAL_KINDS",
    "USER_NAME_MAX",
    "USER_PLACEHOLDER",
    "Loc",
    "bucket_name_problem",
    "format_loc",
    "fs_kind",
    "key_path",
    "s3_bucket",
    "store_path",
    "user_name_problem",
]

Loc = tuple[str | int, ...]

ANONYMOUS = "anonymous"
ANONYMOUS_ALIAS = "ftp"  # the traditional second login name for anonymous FTP
USER_PLACEHOLDER = "${user}"

#: A user name becomes a folder name (``${user}`` in mount URLs and homes)
#: and a field of log lines: letters, digits and ``. _ - @ +`` only (no
#: separator, no percent sign, no dot-dot, nothing a URL parser or a log
#: reader takes specially), not starting with a dot or a hyphen.
USER_NAME_MAX = 64
_USER_NAME = re.compile(r"[A-Za-z0-9_@+][A-Za-z0-9._@+-]*")

#: The events ``hooks:`` names, in the order of HooksConfig's fields.
HOOK_EVENTS = ("upload", "download", "delete", "rename", "mkdir", "rmdir", "login")


def user_name_problem(name: str) -> str | None:
    """None when ``name`` may be a user name (YAML users, logins), else what
    is wrong with it. Pure."""
    if not name:
        return "expected a non-empty user name"
    if len(name) > USER_NAME_MAX:
        return f"expected a user name of at most {USER_NAME_MAX} characters, got {len(name)}"
    if not _USER_NAME.fullmatch(name) or ".." in name:
        return (
            "expected a user name of letters, digits and . _ - @ + (not starting with "
            f"'.' or '-', no '..'), got {name!r}"
        )
    return None


_BUCKET_CHARS = re.compile(r"[^a-z0-9.-]")
_IPV4_FORM = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def bucket_name_problem(name: str) -> str | None:
    """What in ``name`` breaks S3's bucket naming rules (the rules AWS,
    MinIO and R2 enforce for new buckets), or None."""
    if not name:
        return "expected a bucket name: s3://BUCKET[/PREFIX]"
    bad = sorted(set(_BUCKET_CHARS.findall(name)))
    rule = "S3 bucket names use lowercase letters, digits, '.' and '-'"
    if bad:
        found = ", ".join(repr(c) for c in bad)
        return f"bucket name {name!r} is not valid: {rule}, not {found}"
    if not 3 <= len(name) <= 63:
        return (
            f"bucket name {name!r} is not valid: S3 bucket names have 3 to 63 characters, "
            f"not {len(name)}"
        )
    if not (name[0].isalnum() and name[-1].isalnum()):
        return f"bucket name {name!r} is not valid: it must begin and end with a letter or digit"
    if ".." in name:
        return f"bucket name {name!r} is not valid: two dots in a row"
    if _IPV4_FORM.match(name):
        return f"bucket name {name!r} is not valid: it must not look like an IP address"
    return None


#: the kinds (URL schemes) of a local folder: PyFilesystem2's OSFSOpener takes both
LOCAL_KINDS = ("osfs", "file")


def fs_kind(url: str) -> str:
    """A mount URL's kind, its scheme in lower case (``s3``, ``mem``,
    ``osfs``...), or ``fs`` for a URL without one."""
    return url.split("://", 1)[0].lower() if "://" in url else "fs"


def s3_bucket(url: str) -> str:
    """The bucket of an ``s3://BUCKET/PREFIX`` URL."""
    return url.split("://", 1)[1].split("?", 1)[0].partition("/")[0]


def store_path(url: str) -> str | None:
    """The file of a ``sqlite:///FILE`` URL, None for other databases."""
    scheme, _, rest = url.partition("://")
    return rest[1:] if scheme.lower() == "sqlite" else None


_SIMPLE_KEY = re.compile(r"^[^\s.\[\]'\"]+$")


def key_path(*loc: str | int) -> str:
    """``users.demo.mounts./home``, as messages name a key of the file."""
    return format_loc(loc)


def format_loc(loc: Loc) -> str:
    """The key path of a location as messages show it: ``users.demo.mounts['/a b']``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out
