"""Virtual path resolution: the one place where a client's path argument
becomes an absolute, normalised path inside the user's tree. Pure."""

from __future__ import annotations

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "PathRejected",
    "basename",
    "dirname",
    "is_under",
    "resolve",
    "to_tree",
    "to_view",
]

MAX_NAME_BYTES = 255  # NAME_MAX on Linux, and the S3 key segment most tools assume
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux

_FORBIDDEN = {"\x00": "NUL", "\r": "CR", "\n": "LF"}


class PathRejected(ValueError):
    """The argument cannot name anything in the tree; the text is for a 553/550."""


def resolve(cwd: str, arg: str) -> str:
    """Join ``arg`` to ``cwd`` and normalise to an absolute virtual path.

    - an empty argument means the current directory;
    - ``\\`` is a separator (Windows clients and CNC controllers send it);
    - ``.`` and empty components (``//``) vanish; ``..`` above the root stays
      at the root, as ``/..`` does on Unix, so nothing escapes the tree;
    - NUL, CR and LF are refused (RFC 959 §4.1.3 ends a command at CRLF; a
      name holding one could never be named again), and so are names longer
      than 255 bytes and paths longer than 4096 bytes of UTF-8.
    """
    for ch, label in _FORBIDDEN.items():
        if ch in arg:
            raise PathRejected(f"path contains a {label} character")
    arg = arg.replace("\\", "/")
    base = [] if arg.startswith("/") else [p for p in cwd.split("/") if p]
    parts = base
    for comp in arg.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        if len(comp.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise PathRejected(f"name longer than {MAX_NAME_BYTES} bytes")
        parts.append(comp)
    path = "/" + "/".join(parts)
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise PathRejected(f"path longer than {MAX_PATH_BYTES} bytes")
    return path


def dirname(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def is_under(path: str, prefix: str) -> bool:
    """True when ``path`` is ``prefix`` or inside it (both normalised)."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


def to_tree(root: str, path: str) -> str:
    """The tree path of ``path`` as seen by a user whose root is ``root``."""
    if root == "/":
        return path
    return root if path == "/" else root + path


def to_view(root: str, path: str) -> str | None:
    """``path`` (a tree path) as a user whose root is ``root`` names it, or
    None when it lies outside that root."""
    if root == "/":
        return path
    if path == root:
        return "/"
    if path.startswith(root + "/"):
        return path[len(root) :]
    return None
