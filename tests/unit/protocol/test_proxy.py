"""The PROXY protocol header (v1 and v2): tables of (bytes, expected), each
fed whole and one byte at a time, as a socket would deliver it."""

from __future__ import annotations

import struct

import pytest

from vfsftp.protocol.proxy import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    parse_proxy_header,
)


def v2(command: int, family: int, block: bytes, tlvs: bytes = b"") -> bytes:
    body = block + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


IPV4_BLOCK = bytes([192, 0, 2, 7, 10, 0, 0, 5]) + struct.pack("!HH", 40000, 2121)
IPV6_BLOCK = (
    bytes.fromhex("20010db8000000000000000000000001")
    + bytes.fromhex("20010db8000000000000000000000002")
    + struct.pack("!HH", 51000, 21)
)

VALID = [
    (
        b"PROXY TCP4 192.0.2.7 10.0.0.5 40000 2121\r\n",
        ProxyHeader(1, ("192.0.2.7", 40000), ("10.0.0.5", 2121), 42),
    ),
    (
        b"PROXY TCP6 2001:db8::1 2001:db8::2 51000 21\r\n",
        ProxyHeader(1, ("2001:db8::1", 51000), ("2001:db8::2", 21), 45),
    ),
    (b"PROXY UNKNOWN\r\n", ProxyHeader(1, None, None, 15)),
    (
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        ProxyHeader(1, None, None, 59),
    ),
    (b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", ProxyHeader(1, ("0.0.0.0", 0), ("0.0.0.0", 0), 32)),
    (
        v2(1, 0x11, IPV4_BLOCK),
        ProxyHeader(2, ("192.0.2.7", 40000), ("10.0.0.5", 2121), 28),
    ),
    (
        v2(1, 0x21, IPV6_BLOCK),
        ProxyHeader(2, ("2001:db8::1", 51000), ("2001:db8::2", 21), 52),
    ),
    # TLVs after the addresses (AWS NLB's VPC endpoint id, say) are skipped.
    (
        v2(1, 0x11, IPV4_BLOCK, b"\xea\x00\x05\x01vpce"),
        ProxyHeader(2, ("192.0.2.7", 40000), ("10.0.0.5", 2121), 36),
    ),
    # LOCAL: the balancer's own health check; addresses, if any, ignored.
    (v2(0, 0x00, b""), ProxyHeader(2, None, None, 16)),
    (v2(0, 0x11, IPV4_BLOCK), ProxyHeader(2, None, None, 28)),
    # UNSPEC and AF_UNIX: nothing to tell about an IP client.
    (v2(1, 0x00, b""), ProxyHeader(2, None, None, 16)),
    (v2(1, 0x31, bytes(216)), ProxyHeader(2, None, None, 232)),
]


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_whole_header(data: bytes, expected: ProxyHeader) -> None:
    assert parse_proxy_header(data) == expected


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_byte_at_a_time_never_asks_past_the_header(data: bytes, expected: ProxyHeader) -> None:
    buf = b""
    while True:
        result = parse_proxy_header(buf)
        if isinstance(result, ProxyHeader):
            break
        assert result >= 1
        # Reading what it asks for never goes past the header.
        assert len(buf) + result <= len(data)
        buf += data[len(buf) : len(buf) + 1]
    assert result == expected
    assert len(buf) == expected.length


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_reading_as_asked_gets_exactly_the_header(data: bytes, expected: ProxyHeader) -> None:
    stream = data + b"\x16\x03\x01 what follows (a TLS ClientHello)"
    buf = b""
    while not isinstance(result := parse_proxy_header(buf), ProxyHeader):
        buf += stream[len(buf) : len(buf) + result]
    assert result == expected
    assert buf == data


INVALID = [
    (b"USER alice\r\n", "not a PROXY protocol header"),
    (b"\x16\x03\x01\x02\x00", "not a PROXY protocol header"),  # a TLS ClientHello
    (b"PROXY TCP4 192.0.2.7 10.0.0.5 40000\r\n", "expected 'PROXY TCP4"),
    (b"PROXY TCP5 192.0.2.7 10.0.0.5 1 2\r\n", "expected 'PROXY TCP4"),
    (b"PROXY TCP4 2001:db8::1 10.0.0.5 1 2\r\n", "not an IPv4 address"),
    (b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n", "not an IPv6 address"),
    (b"PROXY TCP4 192.0.2.300 10.0.0.5 1 2\r\n", "not an IP address"),
    (b"PROXY TCP4 192.0.2.7 10.0.0.5 65536 2\r\n", "out of range"),
    (b"PROXY TCP4 192.0.2.7 10.0.0.5 0123 2\r\n", "not a port number"),
    (b"PROXY TCP4 192.0.2.7 10.0.0.5 -1 2\r\n", "not a port number"),
    (b"PROXY TCP4  192.0.2.7 10.0.0.5 1 2\r\n", "expected 'PROXY TCP4"),
    (b"PROXY TCP4 192.0.2.7\n10.0.0.5 1 2\r\n", "not a printable line"),
    (b"PROXY TCP4 192.0.2.7\x0010.0.0.5 1 2\r\n", "not a printable line"),
    (b"PROXY " + b"A" * 101 + b"\r\n", "no CRLF within 107 bytes"),
    (V2_SIGNATURE + b"\x11\x11\x00\x0c" + IPV4_BLOCK, "version 1 is not 2"),
    (V2_SIGNATURE + b"\x22\x11\x00\x0c" + IPV4_BLOCK, "unknown command 2"),
    (v2(1, 0x12, IPV4_BLOCK), "UDP"),
    (v2(1, 0x11, IPV4_BLOCK[:8]), "8 address bytes, expected 12"),
    (v2(1, 0x21, IPV4_BLOCK), "12 address bytes, expected 36"),
]


@pytest.mark.parametrize(("data", "error"), INVALID)
def test_invalid_whole(data: bytes, error: str) -> None:
    with pytest.raises(ProxyHeaderError, match=error):
        parse_proxy_header(data)


@pytest.mark.parametrize(("data", "error"), INVALID)
def test_invalid_byte_at_a_time_fails_before_asking_for_more(data: bytes, error: str) -> None:
    """Fed one byte at a time, the error comes at the latest when the
    bytes are all in: never a wait for bytes that cannot mend it."""
    with pytest.raises(ProxyHeaderError, match=error):
        for i in range(len(data) + 1):
            result = parse_proxy_header(data[:i])
            assert not isinstance(result, ProxyHeader)


def test_an_ftp_client_is_refused_at_its_first_byte() -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(b"U")
