"""Command arguments with a wire format of their own: data connection
addresses (RFC 959 PORT/PASV, RFC 2428 EPRT/EPSV), ALLO, and times (RFC 3659
MDTM/MFMT). Pure."""

from __future__ import annotations

import calendar
import functools
import ipaddress
import math
import time

from .errors import ProtocolError


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
