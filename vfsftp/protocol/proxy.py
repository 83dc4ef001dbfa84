"""The PROXY protocol header a TCP load balancer puts in front of a
connection to tell the client's real address (HAProxy's specification,
"The PROXY protocol", versions 1 and 2; AWS NLB sends version 2).

Pure: ``parse_proxy_header(buf)`` answers with the header once ``buf``
holds all of it, or with how many more bytes it needs at least. Reading
exactly that many never reads past the header, so the bytes after it
(a TLS ClientHello, the first bytes of an upload) stay in the socket for
whoever reads the connection next.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["V2_SIGNATURE", "ProxyHeader", "ProxyHeaderError", "parse_proxy_header"]

#: spec §2.2: the twelve bytes that start a version 2 header
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_PREFIX = b"PROXY "
#: spec §2.1: the longest version 1 line, CRLF included
V1_MAX = 107
#: the shortest version 1 line: "PROXY UNKNOWN\r\n"
_V1_MIN = 15
_V2_FIXED = 16


class ProxyHeaderError(ValueError):
    """Not a valid PROXY protocol header: the connection is refused."""


@dataclass(frozen=True)
class ProxyHeader:
    """``source`` and ``destination`` as (address, port), or None where the
    header tells none (version 1 ``UNKNOWN``, version 2 ``LOCAL`` such as a
    health check of the balancer itself, or an address family other than
    TCP over IPv4/IPv6): the connection's own addresses stand then.
    ``length``: the header's size in bytes."""

    version: int
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    length: int


def parse_proxy_header(buf: bytes) -> ProxyHeader | int:
    """The header at the start of ``buf``, or the number of bytes (at least
    1) that must still arrive before it can be complete. Raises
    ProxyHeaderError as soon as ``buf`` cannot start a valid header."""
    n = len(buf)
    if buf[:12] == V2_SIGNATURE[:n]:
        return _v2(buf) if n >= 12 else 12 - n
    if buf[:6] == _V1_PREFIX[:n]:
        return _v1(buf)
    raise ProxyHeaderError("not a PROXY protocol header")


def _v1(buf: bytes) -> ProxyHeader | int:
    end = buf.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        head = buf[:V1_MAX]
        if any(b < 0x20 or b > 0x7E for b in head.rstrip(b"\r")):
            raise ProxyHeaderError("PROXY v1: not a printable line")
        if len(buf) >= V1_MAX:
            raise ProxyHeaderError(f"PROXY v1: no CRLF within {V1_MAX} bytes")
        return max(1, _V1_MIN - len(buf))
    line = buf[:end]
    if any(b < 0x20 or b > 0x7E for b in line):
        raise ProxyHeaderError("PROXY v1: not a printable line")
    parts = line.decode("ascii").split(" ")
    length = end + 2
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        # §2.1: the rest of an UNKNOWN line is ignored.
        return ProxyHeader(1, None, None, length)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(
            "PROXY v1: expected 'PROXY TCP4|TCP6 SRC DST SPORT DPORT' or 'PROXY UNKNOWN'"
        )
    version = 4 if parts[1] == "TCP4" else 6
    src, dst = _v1_address(parts[2], version), _v1_address(parts[3], version)
    return ProxyHeader(1, (src, _v1_port(parts[4])), (dst, _v1_port(parts[5])), length)


def _v1_address(text: str, version: int) -> str:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not an IP address") from None
    if addr.version != version:
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not an IPv{version} address")
    return str(addr)


def _v1_port(text: str) -> int:
    # §2.1: a decimal number 0..65535, no leading zeros.
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not a port number")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"PROXY v1: port {port} is out of range")
    return port


#: spec §2.2, the 14th byte: (address family, transport) → address block size
_V2_FAMILIES = {0x11: (4, 12), 0x21: (6, 36)}


def _v2(buf: bytes) -> ProxyHeader | int:
    n = len(buf)
    if n > 12 and buf[12] >> 4 != 2:
        raise ProxyHeaderError(f"PROXY v2: version {buf[12] >> 4} is not 2")
    if n > 12 and buf[12] & 0x0F not in (0, 1):
        raise ProxyHeaderError(f"PROXY v2: unknown command {buf[12] & 0x0F}")
    if n < _V2_FIXED:
        return _V2_FIXED - n
    length = _V2_FIXED + int.from_bytes(buf[14:16], "big")
    if n < length:
        return length - n
    command, family = buf[12] & 0x0F, buf[13]
    if family & 0x0F == 0x02:
        raise ProxyHeaderError("PROXY v2: a UDP header on a TCP connection")
    if command == 0 or family not in _V2_FAMILIES:
        # LOCAL: the balancer speaking for itself (health checks); UNSPEC
        # and UNIX: no IP address to tell. §2.2: use the real endpoints.
        return ProxyHeader(2, None, None, length)
    version, size = _V2_FAMILIES[family]
    if length - _V2_FIXED < size:
        raise ProxyHeaderError(f"PROXY v2: {length - _V2_FIXED} address bytes, expected {size}")
    half = (size - 4) // 2
    block = buf[_V2_FIXED : _V2_FIXED + size]
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    src, dst = str(make(block[:half])), str(make(block[half : 2 * half]))
    sport = int.from_bytes(block[2 * half : 2 * half + 2], "big")
    dport = int.from_bytes(block[2 * half + 2 : 2 * half + 4], "big")
    # The TLVs after the addresses (§2.2.7) are not needed here: skipped.
    return ProxyHeader(2, (src, sport), (dst, dport), length)
