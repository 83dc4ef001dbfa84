"""FTPChannel holds the replies of commands answered without waiting and
writes them in one go (fewer segments on the wire), without changing their
order or holding one back while the session waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vfsftp.config.schema import config_from_dict
from vfsftp.service.server import FTPServer
from vfsftp.session.channel import _CORK_REPLIES, FTPChannel

pytestmark = pytest.mark.timeout(10)


class RecordingTransport(asyncio.Transport):
    """What FTPChannel sees of a connection; keeps each write()."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 21)}.get(name, default)

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:  # as asyncio's: connection_lost comes next
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def codes(chunk: bytes) -> list[str]:
    return [line[:3].decode() for line in chunk.split(b"\r\n") if line[3:4] == b" "]


def run_session(script: Any, tmp_path: Any) -> None:
    cfg = config_from_dict(
        {"mounts": {"/": "mem://"}, "users": {"u": {"password": "plaintext:p"}}},
        base_dir=tmp_path,
    )

    async def main() -> None:
        server = FTPServer(cfg)
        server.mounts.tree_for(cfg.users["u"])  # else the first login opens it in a thread
        try:
            channel = FTPChannel(server)
            transport = RecordingTransport(channel)
            channel.connection_made(transport)
            await script(channel, transport)
            transport.close()
        finally:
            await server.close()

    asyncio.run(main())


def test_replies_of_one_batch_of_commands_go_out_in_one_write(tmp_path: Any) -> None:
    async def script(channel: FTPChannel, transport: RecordingTransport) -> None:
        assert [codes(w) for w in transport.writes] == [["220"]]
        channel.data_received(b"USER u\r\nPASS p\r\nPWD\r\nTYPE I\r\n")
        assert [codes(w) for w in transport.writes[1:]] == [["331", "230", "257", "200"]]
        channel.data_received(b"NOOP\r\n")  # a later batch: a write of its own
        assert [codes(w) for w in transport.writes[2:]] == [["200"]]

    run_session(script, tmp_path)


def test_a_long_pipeline_is_written_as_it_goes_in_order(tmp_path: Any) -> None:
    n = 3 * _CORK_REPLIES + 5

    async def script(channel: FTPChannel, transport: RecordingTransport) -> None:
        channel.data_received(b"".join(b"MDTM /nothing-%d\r\n" % i for i in range(n)))
        written = transport.writes[1:]
        # Flushed every _CORK_REPLIES + 1 replies: a client that does not
        # read fills the transport's buffer and the channel waits for it.
        assert len(written) >= 3
        assert all(len(codes(w)) <= _CORK_REPLIES + 1 for w in written)
        assert codes(b"".join(written)) == ["530"] * n

    run_session(script, tmp_path)


def test_the_last_reply_is_written_before_the_connection_closes(tmp_path: Any) -> None:
    async def script(channel: FTPChannel, transport: RecordingTransport) -> None:
        channel.data_received(b"USER u\r\nPASS p\r\nQUIT\r\n")
        assert transport.closed
        assert [codes(w) for w in transport.writes[1:]] == [["331", "230", "221"]]

    run_session(script, tmp_path)


def test_a_reply_before_a_wait_is_not_held_back(tmp_path: Any) -> None:
    async def script(channel: FTPChannel, transport: RecordingTransport) -> None:
        channel.data_received(b"USER u\r\nPASS p\r\nEPSV\r\nRETR /missing\r\n")
        # 229, then RETR's 550: nothing waits, one write.
        assert [codes(w) for w in transport.writes[1:]] == [["331", "230", "229", "550"]]
        channel.data_received(b"EPSV\r\n")
        channel.data_received(b"LIST\r\n")  # waits for the client to connect
        assert codes(transport.writes[-1]) == ["150"]  # sent while it waits
        await channel.close()

    run_session(script, tmp_path)
