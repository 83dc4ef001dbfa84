"""ControlTransport (vfsftp/session/transport.py) behaves as asyncio's own
socket transport does for a protocol: on asyncio's selector loop, over a
real connected socket pair, with the peer driven from the test."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from vfsftp.service.listener import _local_address
from vfsftp.session.transport import HIGH_WATER, LOW_WATER, ControlTransport, serves

pytestmark = pytest.mark.timeout(10)


def on_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run the test's coroutine on a fresh asyncio loop (the default policy's:
    a selector loop on Linux and macOS)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.data = bytearray()
        self.events: list[str] = []
        self.lost: list[BaseException | None] = []
        self.gone = asyncio.get_running_loop().create_future()
        self.fail_on_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        if self.fail_on_data:
            raise ValueError("bug in the protocol")
        self.data += data

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        return None

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        self.lost.append(exc)
        self.gone.set_result(None)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(server side, non-blocking; client side, blocking) of one TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    server.setblocking(False)
    yield server, client
    server.close()
    client.close()


def _serve(
    server: socket.socket,
    protocol: asyncio.BaseProtocol,
    context: contextvars.Context | None = None,
) -> ControlTransport:
    loop = asyncio.get_running_loop()
    transport = ControlTransport(loop, server, server.getpeername(), context=context)
    transport.start(protocol)
    return transport


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0)  # (a loop turn: the transport's callbacks run)


def test_it_serves_on_asyncios_selector_loop_only() -> None:
    loop = asyncio.SelectorEventLoop()
    try:
        assert serves(loop)
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("address", "known"),
    [
        (("127.0.0.1", 0), True),
        (("0.0.0.0", 0), False),
        (("::1", 0), True),
        (("::", 0), False),
    ],
)
def test_a_listener_knows_its_connections_local_address_unless_a_wildcard(
    address: tuple[str, int], known: bool
) -> None:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind(address)
    except OSError:
        pytest.skip("no IPv6 here")
    with sock:
        got = _local_address(sock)
        assert (got == sock.getsockname()) if known else got is None


@on_loop
async def test_reads_writes_and_the_peers_end(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    proto = Recorder()
    transport = _serve(server, proto)
    assert proto.events == ["made"] and transport.get_protocol() is proto
    assert transport.get_extra_info("peername") == client.getsockname()
    assert transport.get_extra_info("sockname") == client.getpeername()  # (asked lazily)
    assert transport.get_extra_info("socket") is server
    assert transport.get_extra_info("ssl_object", "none") == "none"
    assert f"open peer={client.getsockname()!r}" in repr(transport)
    client.sendall(b"USER x\r\n")
    await _until(lambda: proto.data == b"USER x\r\n")
    transport.write(b"331 ok\r\n")
    assert client.recv(100) == b"331 ok\r\n"
    client.shutdown(socket.SHUT_WR)
    await proto.gone
    # eof_received returned None: the transport closed itself.
    assert proto.events == ["made", "eof", "lost"] and proto.lost == [None]
    assert server.fileno() == -1 and transport.is_closing()
    transport.write(b"dropped")  # (after the end: ignored, as asyncio's)


@on_loop
async def test_a_client_that_does_not_read_pauses_the_protocol_and_loses_nothing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    proto = Recorder()
    transport = _serve(server, proto)
    sent = bytearray()
    chunk = bytes(range(256)) * 64  # 16 KiB
    while "pause" not in proto.events:
        transport.write(chunk)
        sent += chunk
        assert len(sent) < 64 << 20, "never paused"
    assert transport.get_write_buffer_size() > HIGH_WATER
    assert proto.events.count("pause") == 1
    transport.write(b"end")  # written after the pause still goes out, in order
    sent += b"end"
    # The client reads everything: the buffer drains, the protocol resumes.
    client.setblocking(False)
    got = bytearray()
    while len(got) < len(sent):
        try:
            got += client.recv(1 << 20)
        except BlockingIOError:
            await asyncio.sleep(0.001)
    assert got == sent
    await _until(lambda: transport.get_write_buffer_size() == 0)
    assert proto.events == ["made", "pause", "resume"]
    assert transport.get_write_buffer_limits() == (LOW_WATER, HIGH_WATER)
    transport.close()
    await proto.gone


@on_loop
async def test_close_sends_what_is_buffered_first_and_abort_does_not(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    proto = Recorder()
    transport = _serve(server, proto)
    body = b"x" * (1 << 20)
    transport.write(body)
    assert transport.get_write_buffer_size() > 0
    transport.close()
    transport.close()  # (twice: once)
    assert transport.is_closing() and not proto.lost
    client.setblocking(False)
    got = bytearray()
    while True:
        try:
            data = client.recv(1 << 20)
        except BlockingIOError:
            await asyncio.sleep(0.001)
            continue
        if not data:
            break
        got += data
    assert got == body
    await proto.gone
    assert proto.lost == [None]


@on_loop
async def test_abort_drops_the_buffer(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    proto = Recorder()
    transport = _serve(server, proto)
    transport.write(b"x" * (1 << 20))
    transport.abort()
    assert transport.get_write_buffer_size() == 0
    await proto.gone
    assert proto.lost == [None] and server.fileno() == -1
    got = 0
    while chunk := client.recv(1 << 20):  # what the kernel had taken, then the end
        got += len(chunk)
    assert got < 1 << 20


@on_loop
async def test_paused_reading_delivers_nothing_until_resumed(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    proto = Recorder()
    transport = _serve(server, proto)
    transport.pause_reading()
    transport.pause_reading()  # (twice: harmless)
    assert not transport.is_reading()
    client.sendall(b"NOOP\r\n")
    for _ in range(20):
        await asyncio.sleep(0)
    assert proto.data == b""
    transport.resume_reading()
    assert transport.is_reading()
    await _until(lambda: proto.data == b"NOOP\r\n")
    transport.close()
    await proto.gone


@on_loop
async def test_a_reset_is_the_protocols_news_not_the_loops(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, ctx: reported.append(ctx))
    proto = Recorder()
    _serve(server, proto)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # linger 0: RST
    await proto.gone
    assert isinstance(proto.lost[0], ConnectionResetError)
    assert reported == []


@on_loop
async def test_a_failing_protocol_is_reported_and_its_connection_ended(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, ctx: reported.append(ctx))
    proto = Recorder()
    proto.fail_on_data = True
    _serve(server, proto)
    client.sendall(b"NOOP\r\n")
    await proto.gone
    assert isinstance(proto.lost[0], ValueError)
    assert [r["message"] for r in reported] == ["protocol.data_received() failed"]
    assert client.recv(10) == b""  # the connection is closed


@on_loop
async def test_a_protocol_that_closes_at_once_is_never_read_for(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A refusal: connection_made writes a 421 and closes."""
    server, client = pair

    class Refuser(Recorder):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.transport.write(b"421 Too many\r\n")
            self.transport.close()

    proto = Refuser()
    client.sendall(b"USER x\r\n")
    _serve(server, proto)
    await proto.gone
    assert proto.data == b"" and proto.lost == [None]
    assert client.recv(100) == b"421 Too many\r\n"


_SEEN: contextvars.ContextVar[bytes] = contextvars.ContextVar("seen")


class ContextRecorder(Recorder):
    def data_received(self, data: bytes) -> None:
        _SEEN.set(data)
        super().data_received(data)


@on_loop
async def test_read_callbacks_run_in_the_context_it_was_given(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """One context serves the reads of every connection of a listener (no
    copy per registration: 64 bytes an idle connection kept); the
    protocol enters its session's own for what it runs."""
    server, client = pair
    shared = contextvars.copy_context()
    proto = ContextRecorder()
    transport = _serve(server, proto, shared)
    client.sendall(b"NOOP\r\n")
    await _until(lambda: proto.data == b"NOOP\r\n")
    assert shared[_SEEN] == b"NOOP\r\n" and _SEEN.get(None) is None
    transport.pause_reading()
    transport.resume_reading()  # (registered again, in the same context)
    client.sendall(b"QUIT\r\n")
    await _until(lambda: proto.data.endswith(b"QUIT\r\n"))
    assert shared[_SEEN] == b"QUIT\r\n"
    transport.close()
    await proto.gone
