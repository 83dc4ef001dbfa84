"""The FTP wire format, with no I/O: bytes in, commands out; replies, addresses
and listings in, bytes out.

Everything here is pure so that every rule of the protocol can be table-tested
without a socket (see tests/unit/test_protocol.py).
"""

from __future__ import annotations

import calendar
import functools
import ipaddress
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "TOO_LONG",
    "AsciiDecoder",
    "AsciiEncoder",
    "Command",
    "LineBuffer",
    "ListEntry",
    "ProtocolError",
    "Reply",
    "format_epsv",
    "format_list_line",
    "format_mdtm",
    "format_mlsx",
    "format_pasv",
    "parse_allo",
    "parse_command",
    "parse_eprt",
    "parse_mfmt_time",
    "parse_port",
    "quote_path",
]

CRLF = b"\r\n"


class ProtocolError(ValueError):
    """A malformed argument; the text is safe to show to the client."""


# --------------------------------------------------------------------------
# Control connection: line buffer and command parsing
# --------------------------------------------------------------------------


class _TooLong:
    """Marker yielded by LineBuffer in place of a line that exceeded the cap."""

    def __repr__(self) -> str:
        return "TOO_LONG"


TOO_LONG = _TooLong()


class LineBuffer:
    """Splits the control stream into lines.

    RFC 959 §4.1.3 ends commands with CRLF; many clients and scripts send a bare
    LF, so both are accepted. A line longer than ``max_line`` bytes is dropped
    up to its end and reported once as ``TOO_LONG`` so the server can answer
    500 without buffering unbounded input.
    """

    def __init__(self, max_line: int = 4096) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | _TooLong]:
        if data and not self._buf and not self._discarding and data.find(b"\n") == len(data) - 1:
            # One whole line in one read, the usual case: no buffering.
            line = data[:-2] if data.endswith(b"\r\n") else data[:-1]
            if len(line) <= self.max_line:
                return [line]
        out: list[bytes | _TooLong] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                # +1: a line of exactly max_line bytes may still be waiting
                # for the LF of its CRLF (same result however input is split)
                if len(self._buf) > self.max_line + 1:
                    if not self._discarding:
                        out.append(TOO_LONG)
                        self._discarding = True
                    del self._buf[:]
                return out
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._discarding:
                self._discarding = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_line:
                out.append(TOO_LONG)
            else:
                out.append(line)

    def clear(self) -> int:
        """Drop whatever is buffered; returns how many bytes were dropped.

        Used after ``AUTH TLS`` (RFC 4217 §4.1): plaintext pipelined behind the
        command must not be executed after the handshake.
        """
        n = len(self._buf)
        del self._buf[:]
        self._discarding = False
        return n


# Telnet (RFC 854) bytes that clients put before ABOR (IAC IP, IAC DM: RFC 959
# §4.1.3). 0xFF never occurs in UTF-8, so stripping is lossless for real text.
_IAC = 0xFF
_TELNET_OPTION_VERBS = {0xFB, 0xFC, 0xFD, 0xFE}  # WILL WONT DO DONT take an option byte


def strip_telnet(line: bytes) -> bytes:
    if _IAC not in line and 0xF2 not in line:
        return line
    out = bytearray()
    i, n = 0, len(line)
    while i < n:
        b = line[i]
        if b == _IAC and i + 1 < n:
            nxt = line[i + 1]
            if nxt == _IAC:
                out.append(_IAC)
                i += 2
            elif nxt in _TELNET_OPTION_VERBS:
                i += 3
            else:
                i += 2
        elif b == _IAC:
            i += 1
        elif b == 0xF2 and not out:
            # A Telnet Data Mark sent as TCP urgent data arrives inline
            # (SO_OOBINLINE) without its IAC, ahead of the command.
            i += 1
        else:
            out.append(b)
            i += 1
    return bytes(out)


@dataclass(slots=True)  # not frozen: one per command line, and frozen __init__ costs 3x
class Command:
    verb: str
    arg: str
    raw: bytes = field(default=b"", repr=False, compare=False)


def decode_text(data: bytes) -> str:
    """RFC 2640 makes UTF-8 the path encoding; legacy clients (scanners, CNC
    controllers) send Latin-1, which is decoded as such rather than refused."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_command(line: bytes) -> Command:
    """Split one control line into verb and argument.

    The verb is case-insensitive (RFC 959 §5.3); the argument is kept exactly,
    leading and trailing spaces included, because they can be part of a name.
    """
    line = strip_telnet(line)
    text = decode_text(line)
    verb, sep, arg = text.partition(" ")
    return Command(verb.strip().upper(), arg if sep else "", line)


# --------------------------------------------------------------------------
# Replies (RFC 959 §4.2)
# --------------------------------------------------------------------------


def _clean(text: str) -> str:
    # A CR or LF inside reply text would end the reply early and let a file
    # name inject a fake reply; RFC 959 has no escape, so they are replaced.
    return text.replace("\r", " ").replace("\n", " ")


@dataclass(frozen=True)
class Reply:
    code: int
    text: str | tuple[str, ...] = ""

    @property
    def lines(self) -> tuple[str, ...]:
        if isinstance(self.text, str):
            return tuple(self.text.split("\n")) if "\n" in self.text else (self.text,)
        return self.text or ("",)

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    def encode(self) -> bytes:
        return encode_reply(self.code, self.text)


def encode_reply(code: int, text: str | tuple[str, ...]) -> bytes:
    """Single line ``"226 Done\\r\\n"``; multi-line replies are
    ``"211-first"``, the middle lines, then ``"211 last"`` (§4.2). A middle
    line that starts with three digits is indented by one space so that a
    client cannot mistake it for the last line."""
    if isinstance(text, str) and "\n" not in text and "\r" not in text:
        # The common case: one line, nothing to clean.
        return f"{code:03d} {text}\r\n".encode("utf-8", "surrogateescape")
    lines = Reply(code, text).lines
    if len(lines) == 1:
        return encode_reply_last(code, lines[0])
    return (
        encode_reply_first(code, lines[0])
        + encode_reply_middle(lines[1:-1])
        + encode_reply_last(code, lines[-1])
    )


def encode_reply_first(code: int, text: str) -> bytes:
    """The first line of a multi-line reply, ``"213-text"`` (§4.2); with
    ``encode_reply_middle`` and ``encode_reply_last``, a reply sent in
    parts (STAT of a large directory) is the bytes ``encode_reply`` makes
    of it whole."""
    return f"{code:03d}-{_clean(text)}\r\n".encode("utf-8", "surrogateescape")


def encode_reply_middle(lines: Iterable[str]) -> bytes:
    """Middle lines of a multi-line reply. One that starts with three
    digits is indented by one space so that a client cannot mistake it for
    the last line (§4.2)."""
    parts = []
    for line in lines:
        mid = _clean(line)
        if mid[:3].isdigit():
            mid = " " + mid
        parts.append(mid + "\r\n")
    return "".join(parts).encode("utf-8", "surrogateescape")


def encode_reply_last(code: int, text: str) -> bytes:
    """The last (or only) line of a reply, ``"213 text"``."""
    return f"{code:03d} {_clean(text)}\r\n".encode("utf-8", "surrogateescape")


def quote_path(path: str) -> str:
    """The quoted pathname of a 257 reply: embedded quotes are doubled
    (RFC 959 Appendix II)."""
    return '"' + path.replace('"', '""') + '"'


# --------------------------------------------------------------------------
# Data connection addresses (RFC 959 PORT/PASV, RFC 2428 EPRT/EPSV)
# --------------------------------------------------------------------------


def parse_port(arg: str) -> tuple[str, int]:
    """``h1,h2,h3,h4,p1,p2`` → ``("h1.h2.h3.h4", p1*256+p2)``."""
    parts = arg.strip().split(",")
    if len(parts) != 6:
        raise ProtocolError("PORT needs h1,h2,h3,h4,p1,p2")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise ProtocolError("PORT fields must be numbers") from None
    if any(not 0 <= n <= 255 for n in nums) or any(not p.strip().isdigit() for p in parts):
        raise ProtocolError("PORT fields must be 0-255")
    port = nums[4] * 256 + nums[5]
    if port == 0:
        raise ProtocolError("PORT port must not be 0")
    return ".".join(str(n) for n in nums[:4]), port


def parse_allo(arg: str) -> int:
    """``ALLO n`` or ``ALLO n R m`` (RFC 959 §4.1.3; the record or page size
    ``m`` means nothing to a stream of bytes) → ``n``."""
    parts = arg.strip().split(" ")
    if len(parts) not in (1, 3) or (len(parts) == 3 and parts[1].upper() != "R"):
        raise ProtocolError("ALLO needs a byte count, optionally followed by R <size>")
    if not all(p.isdigit() and p.isascii() for p in parts[::2]):
        raise ProtocolError("ALLO sizes must be non-negative whole numbers")
    return int(parts[0])


def format_pasv(host: str, port: int) -> str:
    """227 text; RFC 1123 §4.1.2.6 lets clients look for the first digit, the
    parentheses are what almost all of them parse."""
    h = host.split(".")
    return f"Entering Passive Mode ({','.join(h)},{port >> 8},{port & 0xFF})."


def parse_eprt(arg: str) -> tuple[int, str, int]:
    """``|1|132.235.1.2|6275|`` → ``(1, "132.235.1.2", 6275)``; the delimiter
    is the first character (RFC 2428 §2)."""
    if len(arg) < 7:
        raise ProtocolError("EPRT needs <d>proto<d>address<d>port<d>")
    d = arg[0]
    if d.isalnum() or not 33 <= ord(d) <= 126:
        raise ProtocolError("EPRT delimiter must be printable and not alphanumeric")
    parts = arg.split(d)
    if len(parts) != 5 or parts[0] or parts[4]:
        raise ProtocolError("EPRT needs <d>proto<d>address<d>port<d>")
    proto_s, host, port_s = parts[1], parts[2], parts[3]
    if proto_s not in ("1", "2"):
        raise ProtocolError("522 Network protocol not supported, use (1,2)")
    proto = int(proto_s)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ProtocolError("EPRT address is not an IP address") from None
    if (proto == 1) != (addr.version == 4):
        raise ProtocolError("EPRT address does not match its protocol number")
    if not (port_s.isascii() and port_s.isdigit()) or not 1 <= int(port_s) <= 65535:
        raise ProtocolError("EPRT port must be 1-65535")
    return proto, str(addr), int(port_s)


def format_epsv(port: int) -> str:
    return f"Entering Extended Passive Mode (|||{port}|)"


# --------------------------------------------------------------------------
# Times (RFC 3659 §2.3: YYYYMMDDHHMMSS[.sss], always UTC)
# --------------------------------------------------------------------------


def format_mdtm(epoch: float) -> str:
    # gmtime floors a float to its second: so does the cache key
    return _mdtm(math.floor(epoch))


@functools.lru_cache(maxsize=4096)
def _mdtm(second: int) -> str:
    """Cached per second: MLSD formats one per entry, and the files of one
    directory often share their times (a third of a large MLSD)."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(second))


def parse_mfmt_time(text: str) -> float:
    whole, _, frac = text.strip().partition(".")
    digits = (whole + frac).isascii() and whole.isdigit() and (not frac or frac.isdigit())
    if len(whole) != 14 or not digits:
        raise ProtocolError("time must be YYYYMMDDHHMMSS[.sss]")
    try:
        tm = time.strptime(whole, "%Y%m%d%H%M%S")
    except ValueError:
        raise ProtocolError("time is not a valid date") from None
    return calendar.timegm(tm) + (float("0." + frac) if frac else 0.0)


# --------------------------------------------------------------------------
# Listings
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListEntry:
    """One directory entry as the listing formats need it."""

    name: str
    is_dir: bool
    size: int = 0
    mtime: float | None = None
    mode: str | None = None  # "rwxr-xr-x"; None → derived from is_dir
    owner: str = "owner"
    group: str = "group"
    perm: str = ""  # RFC 3659 perm fact, computed by the caller from the user's rights
    unique: str | None = None


_SIX_MONTHS = 180 * 24 * 3600
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@functools.lru_cache(maxsize=4096)
def _ls_time(minute: int, recent: bool) -> str:
    """The date column, cached per minute: files of one directory often
    share it, and gmtime plus formatting was a third of a large LIST."""
    tm = time.gmtime(minute * 60)
    if recent:
        return f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}"
    return f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d}  {tm.tm_year}"


def format_list_line(entry: ListEntry, now: float) -> str:
    """One ``ls -l`` line (no CRLF), the format every client's LIST parser
    knows: ``drwxr-xr-x 1 owner group 4096 Jan 01 12:00 name``. Recent files
    show the time, older (or future) ones the year, as ``ls`` does."""
    kind = "d" if entry.is_dir else "-"
    mode = entry.mode or ("rwxr-xr-x" if entry.is_dir else "rw-r--r--")
    mtime = entry.mtime if entry.mtime is not None else now  # unknown (virtual dir, S3 prefix)
    when = _ls_time(int(mtime // 60), now - _SIX_MONTHS < mtime <= now + 3600)
    return (
        f"{kind}{mode} {1:>3} {entry.owner:<8} {entry.group:<8} {entry.size:>8} {when} {entry.name}"
    )


MLST_FACTS: tuple[str, ...] = ("type", "size", "modify", "perm", "unique", "unix.mode")
MLST_DEFAULT_FACTS: frozenset[str] = frozenset({"type", "size", "modify", "perm", "unique"})


def _octal_mode(mode: str) -> str:
    bits = 0
    for ch in mode[:9]:
        bits = (bits << 1) | (ch != "-")
    return f"0{bits:o}"


def format_mlsx(entry: ListEntry, facts: Iterable[str], type_override: str | None = None) -> str:
    """``fact=value;...; name`` (RFC 3659 §7.2). ``type_override`` is ``cdir``
    or ``pdir`` for the ``.``/``..`` entries of MLSD and for MLST of a
    directory itself."""
    wanted = facts if isinstance(facts, (set, frozenset)) else set(facts)
    out = ""
    if "type" in wanted:
        out += "type=" + (type_override or ("dir" if entry.is_dir else "file")) + ";"
    if "size" in wanted and not entry.is_dir:
        out += f"size={entry.size};"
    if "modify" in wanted and entry.mtime is not None:
        out += "modify=" + format_mdtm(entry.mtime) + ";"
    if "perm" in wanted and entry.perm:
        out += "perm=" + entry.perm + ";"
    if "unique" in wanted and entry.unique:
        out += "unique=" + entry.unique + ";"
    if "unix.mode" in wanted:
        mode = entry.mode or ("rwxr-xr-x" if entry.is_dir else "rw-r--r--")
        out += "unix.mode=" + _octal_mode(mode) + ";"
    return out + " " + entry.name


def parse_opts_mlst(arg: str) -> tuple[str, ...]:
    """``OPTS MLST type;size;`` → the supported facts named, in our order
    (RFC 3659 §7.9: unknown facts are ignored, an empty list is allowed)."""
    asked = {f.strip().lower() for f in arg.split(";") if f.strip()}
    return tuple(f for f in MLST_FACTS if f in asked)


def feat_mlst_line(enabled: Iterable[str]) -> str:
    on = set(enabled)
    return "MLST " + "".join(f + ("*" if f in on else "") + ";" for f in MLST_FACTS)


# --------------------------------------------------------------------------
# TYPE A line-ending conversion (RFC 959 §3.1.1.1: NVT-ASCII uses CRLF)
# --------------------------------------------------------------------------


class AsciiEncoder:
    """Local text → network: every LF not already preceded by CR becomes CRLF.
    Stateful so that a CR at the end of one chunk and LF at the start of the
    next stay one line end."""

    def __init__(self) -> None:
        self._last_cr = False

    def encode(self, data: bytes) -> bytes:
        if not data:
            return data
        out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self._last_cr and data.startswith(b"\n"):
            out = out[1:]
        self._last_cr = data.endswith(b"\r")
        return out


class AsciiDecoder:
    """Network → local text: CRLF becomes LF; a lone CR is kept."""

    def __init__(self) -> None:
        self._pending_cr = False

    def decode(self, data: bytes) -> bytes:
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._pending_cr = True
        return data.replace(b"\r\n", b"\n")

    def flush(self) -> bytes:
        if self._pending_cr:
            self._pending_cr = False
            return b"\r"
        return b""


def join_lines(lines: Sequence[str]) -> bytes:
    """A listing body: each line ends in CRLF (RFC 959 §4.1.3 for LIST/NLST,
    RFC 3659 §7.2 for MLSD)."""
    return "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape")
