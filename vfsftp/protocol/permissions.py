"""Permission rules, with pyftpdlib's letters that FTP admins already know. Pure.

Read:  ``e`` change directory (CWD, CDUP), ``l`` list (LIST, NLST, MLSD, MLST,
       STAT path, SIZE, MDTM), ``r`` retrieve (RETR).
Write: ``a`` append (APPE), ``d`` delete (DELE, RMD), ``f`` rename (RNFR, RNTO),
       ``m`` make directory (MKD), ``w`` store (STOR, STOU), ``M`` change mode
       (SITE CHMOD), ``T`` change modification time (MFMT).
"""

from __future__ import annotations

from collections.abc import Mapping

from .paths import is_under, to_view

__all__ = [
    "ALL_PERMS",
    "READ_PERMS",
    "WRITE_PERMS",
    "effective_perms",
    "mlst_perm_fact",
    "move_changes_rights",
    "overrides_in_view",
    "validate_perms",
]

READ_PERMS = "elr"
WRITE_PERMS = "adfmwMT"
ALL_PERMS = READ_PERMS + WRITE_PERMS


def validate_perms(letters: str) -> str | None:
    """None when every letter is known, else a message naming the bad ones."""
    bad = sorted({c for c in letters if c not in ALL_PERMS})
    if bad:
        return f"unknown permission letter(s) {''.join(bad)!r}; expected letters from {ALL_PERMS!r}"
    return None


def effective_perms(
    user_perms: str,
    overrides: Mapping[str, str],
    path: str,
    read_only: bool = False,
) -> frozenset[str]:
    """The letters a user holds at ``path``.

    The most specific override whose directory contains ``path`` replaces the
    user's default set. A read-only mount (or a virtual directory, which is
    no filesystem at all) removes every write letter whatever was granted.
    """
    letters = user_perms
    best = -1
    for prefix, perms in overrides.items():
        if is_under(path, prefix) and len(prefix) > best:
            best, letters = len(prefix), perms
    granted = frozenset(letters)
    if read_only:
        granted = granted - frozenset(WRITE_PERMS)
    return granted


def move_changes_rights(
    user_perms: str, overrides: Mapping[str, str], src: str, dst: str
) -> str | None:
    """Why moving ``src`` (a file or a whole directory) to ``dst`` would change
    the rights on something it moves, or None when it would not.

    Overrides are keyed by path, so a move carries the files out from under
    the overrides inside ``src`` (and puts them under those inside ``dst``).
    It is safe when every path of the subtree holds the same letters at its
    new place as at its old one. Effective rights change only at an override
    key, so comparing the subtree's root and every key inside either subtree
    (taken relative to it) covers every path.
    """
    rels = {""}
    for key in overrides:
        for top in (src, dst):
            if key != top and is_under(key, top):
                rels.add(key[len(top.rstrip("/")) :])
    for rel in sorted(rels, key=len):
        before = effective_perms(user_perms, overrides, (src.rstrip("/") + rel) or "/")
        after = effective_perms(user_perms, overrides, (dst.rstrip("/") + rel) or "/")
        if before != after:
            where = (src.rstrip("/") + rel) or "/"
            if not rel:
                return (
                    f"{where} would move from where its permissions are "
                    f"{_letters(before)} to where they are {_letters(after)}"
                )
            return (
                f"{where} has permissions {_letters(before)}; at "
                f"{dst.rstrip('/') + rel} it would have {_letters(after)}"
            )
    return None


def _letters(granted: frozenset[str]) -> str:
    shown = "".join(c for c in ALL_PERMS if c in granted)
    return f"'{shown}'" if shown else "none"


def overrides_in_view(overrides: Mapping[str, str], root: str) -> dict[str, str]:
    """The overrides (keyed by tree path) as seen from ``root``, keyed by the
    user's own paths: those inside it move up, the deepest one at or above it
    covers the whole view ("/"), and the rest lie outside and go. Every path
    of the view then holds what its tree path holds."""
    out: dict[str, str] = {}
    above, depth = None, -1
    for key, letters in overrides.items():
        inside = to_view(root, key)
        if inside is not None:
            out[inside] = letters
        elif is_under(root, key) and len(key) > depth:
            above, depth = letters, len(key)
    if above is not None and "/" not in out:
        out["/"] = above
    return out


def mlst_perm_fact(granted: frozenset[str], is_dir: bool, parent: frozenset[str]) -> str:
    """RFC 3659 §7.5.5 ``perm`` fact from our letters. ``parent`` is what the
    user holds in the containing directory (delete and rename act there)."""
    out = []
    if is_dir:
        if "w" in granted or "a" in granted:
            out.append("c")
        if "d" in parent:
            out.append("d")
        if "e" in granted:
            out.append("e")
        if "f" in parent:
            out.append("f")
        if "l" in granted:
            out.append("l")
        if "m" in granted:
            out.append("m")
        if "d" in granted:
            out.append("p")
    else:
        if "a" in granted:
            out.append("a")
        if "d" in parent:
            out.append("d")
        if "f" in parent:
            out.append("f")
        if "r" in granted:
            out.append("r")
        if "w" in granted:
            out.append("w")
    return "".join(out)
