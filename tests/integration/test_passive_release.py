"""A command whose storage is slow to answer does not hold a port of the
passive range meanwhile: the client's data connection, already made after
PASV, is taken and the listening port given back before storage is asked
anything. It stayed listening for as long as the storage call took, so a
backend that hung (S3 down: retries for seconds) used up a fixed range and
every other session, on healthy mounts too, got 425. Found by
benchmarks/soak.py (an S3 outage under load: 52 operations on /mem and
/local refused with 425 "no free port")."""

from __future__ import annotations

import io
import socket
import threading
from typing import Any

import pytest
from conftest import USER, free_port, login
from test_graceful_shutdown import Held, OneTree

from vfsftp.storage.tree import Mount, VirtualTree
from vfsftp.testing import ThreadedFTPServer

pytestmark = pytest.mark.timeout(30)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("verb", ["RETR", "STOR"])
def test_the_passive_port_is_released_while_storage_is_slow(verb: str) -> None:
    # RETR waits in its open, STOR in the check that the folder is there.
    held = Held(frozenset({"read"} if verb == "RETR" else {"isdir"}))
    data = b"y" * 200_000
    held.delegate_fs().writebytes("/a.bin", data)
    port = free_port()
    authorizer = OneTree(VirtualTree([Mount.of("/", held)]))
    config = {"server": {"passive_ports": [port, port]}}
    with ThreadedFTPServer(config, authorizer=authorizer) as srv:
        f = login(srv, USER, "any", timeout=20)
        result: dict[str, Any] = {}

        def run() -> None:
            if verb == "RETR":
                out = io.BytesIO()
                result["reply"] = f.retrbinary("RETR a.bin", out.write)
                result["data"] = out.getvalue()
            else:
                result["reply"] = f.storbinary("STOR b.bin", io.BytesIO(data))

        client = threading.Thread(target=run)
        client.start()
        assert held.entered.wait(10)  # the command waits on its storage
        # The client's data connection was taken: nothing listens on the port.
        assert not listening(port)
        held.release.set()
        client.join(20)
        assert result["reply"].startswith("226 ")
        if verb == "RETR":
            assert result["data"] == data
        else:
            assert held.delegate_fs().readbytes("/b.bin") == data
        f.quit()
