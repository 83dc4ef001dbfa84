"""PyFilesystem2's own conformance suite (fs.test.FSTestCases, ~80 tests)
run through its FTP client, fs.ftpfs.FTPFS, against a real vfsftp server on an
in-memory mount: the whole chain (client → protocol → channel → vfs → tree →
MemoryFS) must behave like a filesystem. Once with MLST/MLSD, once with the
client forced to parse LIST output instead, once through a fixed passive
port range."""

from __future__ import annotations

import unittest
from typing import Any

import pytest
from conftest import free_port_range
from fs.ftpfs import FTPFS
from fs.test import FSTestCases

from vfsftp.testing import ThreadedFTPServer


class _ListOnlyFTPFS(FTPFS):  # type: ignore[misc]
    """FTPFS that ignores the server's MLST feature and parses LIST."""

    @property
    def supports_mlst(self) -> bool:
        return False


class _ServerCase(FSTestCases):  # type: ignore[misc]
    client_class: Any = FTPFS
    config: dict[str, Any] | None = None

    def make_fs(self) -> FTPFS:
        self.server = ThreadedFTPServer(self.config).start()
        return self.client_class(
            self.server.host,
            port=self.server.port,
            user=self.server.user,
            passwd=self.server.password,
            timeout=10,
        )

    def destroy_fs(self, fs: FTPFS) -> None:
        fs.close()
        self.server.stop()


@pytest.mark.timeout(60)
class TestFTPFSWithMLSD(_ServerCase, unittest.TestCase):
    client_class = FTPFS


@pytest.mark.timeout(60)
class TestFTPFSWithLIST(_ServerCase, unittest.TestCase):
    client_class = _ListOnlyFTPFS


@pytest.mark.timeout(60)
class TestFTPFSThroughFixedPassivePorts(_ServerCase, unittest.TestCase):
    """The same through ``passive_ports``, as a firewall or NAT needs: 50
    ports carry every data connection of the suite (FTPFS opens a new
    session per file, and the server closes first after each download and
    listing, leaving its port in TIME_WAIT)."""

    client_class = FTPFS
    config = {"server": {"passive_ports": list(free_port_range(50))}}
