"""shrink_control_buffer: a TLS control connection's read buffer made small,
and kept small by asyncio's own get_buffer; transports it does not know
left as they are."""

from __future__ import annotations

import asyncio
import ssl
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from vfsftp.session.tls import CONTROL_READ_SIZE, shrink_control_buffer


@pytest.mark.parametrize(
    "transport",
    [
        object(),  # no TLS (or uvloop's: no _ssl_protocol)
        SimpleNamespace(_ssl_protocol=SimpleNamespace()),  # 3.10's: no read buffer
        SimpleNamespace(_ssl_protocol=SimpleNamespace(_ssl_buffer=bytearray(4096))),  # small
    ],
    ids=["plain", "no-buffer", "already-small"],
)
def test_transports_it_does_not_know_or_need_not_change(transport: Any) -> None:
    assert shrink_control_buffer(transport) is False


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10's SSLProtocol has no read buffer")
def test_asyncio_ssl_protocol_reads_into_the_small_buffer_from_then_on() -> None:
    from asyncio import sslproto

    loop = asyncio.new_event_loop()
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        proto = sslproto.SSLProtocol(loop, asyncio.Protocol(), ctx, None, server_side=True)
        transport = proto._get_app_transport()
        assert len(proto.get_buffer(-1)) == 256 * 1024  # asyncio's own
        assert shrink_control_buffer(transport) is True
        # What the socket transport asks for (-1: all it may have), and more.
        assert len(proto.get_buffer(-1)) == CONTROL_READ_SIZE
        assert len(proto.get_buffer(1 << 20)) == CONTROL_READ_SIZE
        assert shrink_control_buffer(transport) is False  # (once)
    finally:
        loop.close()
