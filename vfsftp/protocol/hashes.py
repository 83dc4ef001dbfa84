"""Checksums on the wire: the HASH command and OPTS HASH
(draft-bryan-ftpext-hash-02), RANG (draft-bryan-ftp-range-09), the
X-commands as ProFTPD's mod_digest answers them (XCRC, XMD5, XSHA1, XSHA256,
XSHA512), the checksum a client promises for its next upload (SITE CHECKSUM)
and the checksum field of the transfer log. Pure.

Names are the draft's (§3.1: the IANA "Hash Function Textual Names",
upper case; CRC32, in no registry, as mod_digest names it), compared
without regard to case. Digests are lowercase hex in HASH replies (§3) and
uppercase in the X-commands' (mod_digest); a CRC32 is its 32-bit value in
eight hex digits, big-endian, as zlib.crc32 and mod_digest give it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ProtocolError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "HEX_DIGITS",
    "XCOMMANDS",
    "RangeBeyondEnd",
    "XArgs",
    "algorithm_named",
    "checksum_field",
    "feat_hash_line",
    "hash_range",
    "hash_reply",
    "parse_checksum",
    "parse_rang",
    "parse_xcmd",
    "xcmd_path",
    "xcmd_range",
    "xcmd_reply",
]

#: every algorithm, in FEAT's order
ALGORITHMS = ("CRC32", "MD5", "SHA-1", "SHA-256", "SHA-512")

#: HASH's algorithm until OPTS HASH changes it. The draft makes SHA-1
#: mandatory to offer, and forbids only a default weaker than it (§5);
#: SHA-256 is what S3 mounts store with the objects they write, so a HASH
#: of one costs one HEAD without an OPTS HASH first, and collisions of it
#: are not known (of SHA-1 they are: SHAttered, 2017).
DEFAULT_ALGORITHM = "SHA-256"

#: hex digits of each algorithm's digest
HEX_DIGITS = {"CRC32": 8, "MD5": 32, "SHA-1": 40, "SHA-256": 64, "SHA-512": 128}

#: the X-commands and their algorithms (XSHA is mod_digest's alias of XSHA1)
XCOMMANDS = {
    "XCRC": "CRC32",
    "XMD5": "MD5",
    "XSHA1": "SHA-1",
    "XSHA": "SHA-1",
    "XSHA256": "SHA-256",
    "XSHA512": "SHA-512",
}

#: mod_digest's names in its "Computing ... digest" line
_PLAIN_NAMES = {
    "CRC32": "CRC32",
    "MD5": "MD5",
    "SHA-1": "SHA1",
    "SHA-256": "SHA256",
    "SHA-512": "SHA512",
}

_BY_UPPER = {name.upper(): name for name in ALGORITHMS}
_HEX = frozenset("0123456789abcdefABCDEF")


class RangeBeyondEnd(ProtocolError):
    """A RANG whose start lies at or past the end of the file."""


def algorithm_named(text: str) -> str | None:
    """The algorithm called ``text`` (any case), in its canonical spelling;
    None for a name not offered."""
    return _BY_UPPER.get(text.strip().upper())


def feat_hash_line(selected: str, algorithms: Iterable[str] = ALGORITHMS) -> str:
    """The FEAT line (draft §3.1): every algorithm, the selected one marked
    with ``*``, each followed by ``;`` as the ABNF's ``1*( hashname ["*"]
    ";" )`` has it (and mod_digest sends it)."""
    return "HASH " + "".join(f"{a}{'*' if a == selected else ''};" for a in algorithms)


def _digits(text: str, what: str) -> int:
    if not (text.isdigit() and text.isascii()):
        raise ProtocolError(f"{what} must be a non-negative whole number")
    return int(text)


def parse_rang(arg: str) -> tuple[int, int] | None:
    """``RANG <start> <end>`` (draft-bryan-ftp-range §3): the octets
    ``start`` to ``end``, both included; None for ``RANG 1 0``, which
    resets the range. A start after the end (but for ``1 0``) is a
    ProtocolError, answered 501."""
    parts = arg.split()
    if len(parts) != 2:
        raise ProtocolError("RANG needs <start> <end>")
    start, end = _digits(parts[0], "RANG start"), _digits(parts[1], "RANG end")
    if (start, end) == (1, 0):
        return None
    if start > end:
        raise ProtocolError(f"RANG start {start} is after its end {end}; the range is reset")
    return start, end


def hash_range(rang: tuple[int, int] | None, size: int) -> tuple[int, int]:
    """(first octet, octet after the last) a HASH reads of a file of
    ``size`` octets: the whole file, or the RANG (its end past the file's
    cut to it, as RETR does, range draft §4.3). A start at or past the end
    of the file reads nothing: RangeBeyondEnd (answered 554, as a REST
    beyond the end is, RFC 3659 §5.4)."""
    if rang is None:
        return 0, size
    start, end = rang
    if start >= size:
        raise RangeBeyondEnd(f"RANG start {start} is at or past the end of the file ({size} bytes)")
    return start, min(end + 1, size)


def hash_reply(algorithm: str, start: int, stop: int, digest: str, name: str) -> str:
    """The text of the 213 reply (draft §3): ``SHA-256 0-99 <hex> name``;
    the range gives the first and the last octet hashed. An empty file has
    no last octet: its range is written ``0-0``, the ABNF allowing no
    other."""
    last = max(start, stop - 1)
    return f"{algorithm} {start}-{last} {digest.lower()} {name}"


@dataclass(frozen=True, slots=True)
class XArgs:
    """An X-command's argument: the path, and the range ``start`` to
    ``end`` (the octet after the last) when given."""

    path: str
    start: int | None = None
    end: int | None = None


def parse_xcmd(arg: str) -> XArgs:
    """``XCMD <path> [<start> <end>]`` (mod_digest): two trailing numbers
    are the range, else the whole argument is the path (a name with
    spaces included). A single trailing number is refused, as mod_digest
    refuses it: other servers read it as the end, or the start."""
    text = arg.strip()
    words = text.split(" ")
    if len(words) >= 3 and all(w.isdigit() and w.isascii() for w in words[-2:]):
        path = " ".join(words[:-2]).rstrip()
        if path:
            return XArgs(path, int(words[-2]), int(words[-1]))
    if len(words) == 2 and words[1].isdigit() and words[1].isascii():
        raise ProtocolError("Invalid number of parameters: <path> [<start> <end>]")
    return XArgs(text)


def xcmd_path(arg: str) -> str:
    """The path part of an X-command's argument (for the preflight: a
    malformed argument still names its path; the handler refuses it)."""
    try:
        return parse_xcmd(arg).path
    except ProtocolError:
        return arg.strip().rsplit(" ", 1)[0]


def xcmd_range(args: XArgs, size: int) -> tuple[int, int]:
    """(first octet, octet after the last) of an X-command on a file of
    ``size`` octets, with mod_digest's refusals (501): an end past the
    file, a start not before the end. A whole empty file is hashed (its
    empty digest), where mod_digest refuses it."""
    if args.start is None or args.end is None:
        return 0, size
    if args.end > size:
        raise ProtocolError(f"end {args.end} exceeds the file size {size}")
    if args.start >= args.end:
        raise ProtocolError(f"end ({args.end}) must be greater than start ({args.start})")
    return args.start, args.end


def xcmd_reply(algorithm: str, digest: str) -> tuple[str, str]:
    """The lines of an X-command's reply (code 250, mod_digest's): its
    "Computing" line, then the digest in uppercase hex."""
    return f"Computing {_PLAIN_NAMES[algorithm]} digest", digest.upper()


def parse_checksum(arg: str) -> tuple[str, str]:
    """``<algorithm> <hex>`` (SITE CHECKSUM) → (canonical name, lowercase
    hex); ProtocolError for an unknown algorithm or a digest of the wrong
    length or digits."""
    parts = arg.split()
    if len(parts) != 2:
        raise ProtocolError("SITE CHECKSUM needs <algorithm> <hex digest>")
    algorithm = algorithm_named(parts[0])
    if algorithm is None:
        raise ProtocolError(f"Unknown algorithm {parts[0]!r}; one of {', '.join(ALGORITHMS)}")
    digest = parts[1]
    if len(digest) != HEX_DIGITS[algorithm] or not set(digest) <= _HEX:
        raise ProtocolError(f"A {algorithm} digest is {HEX_DIGITS[algorithm]} hex digits")
    return algorithm, digest.lower()


def checksum_field(algorithm: str, digest: str) -> str:
    """The transfer log's checksum field: ``sha-256:<hex>`` (one word, as
    xferlog's fields are; the colon tells it from a fault keyword)."""
    return f"{algorithm.lower()}:{digest.lower()}"
