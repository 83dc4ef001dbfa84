"""MountTable: opening a slow storage does not hold up what the event loop asks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fs.opener
import pytest
from fs.memoryfs import MemoryFS

from vfsftp.config import config_from_dict
from vfsftp.config.errors import ConfigError
from vfsftp.storage.mounts import MountTable

pytestmark = pytest.mark.timeout(30)


class _Gate:
    """A storage whose opening waits until the test lets it through."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.opened = 0


@pytest.fixture
def gate() -> Iterator[_Gate]:
    the_gate = _Gate()

    class GateOpener(fs.opener.Opener):
        protocols = ["gate"]

        def open_fs(self, *args: Any, **kwargs: Any) -> MemoryFS:
            the_gate.entered.set()
            assert the_gate.release.wait(20)
            the_gate.opened += 1
            return MemoryFS()

    fs.opener.registry.install(GateOpener)
    try:
        yield the_gate
    finally:
        the_gate.release.set()
        fs.opener.registry._protocols.pop("gate", None)


def test_a_slow_open_holds_no_lock_the_event_loop_takes(tmp_path: Path, gate: _Gate) -> None:
    cfg = config_from_dict(
        {
            "mounts": {
                "/": {"fs": "mem://", "quota": {"max_bytes": 1000}},
                "/home": "gate://${user}",
            },
            "users": {"u": {"password": "plaintext:p"}, "v": {"password": "plaintext:p"}},
        },
        base_dir=tmp_path,
    )
    table = MountTable(cfg)
    try:
        trees: list[object] = []
        builders = [
            threading.Thread(target=lambda n=n: trees.append(table.tree_for(cfg.users[n])))
            for n in ("u", "u")
        ]
        for builder in builders:
            builder.start()
        assert gate.entered.wait(10)
        # What the event loop calls while the open is under way answers
        # now (a metrics scrape, another session's login, a reload).
        answered: list[object] = []
        asker = threading.Thread(
            target=lambda: answered.extend(
                [table.quotas(), table.cached_tree(cfg.users["v"]), table.filesystems()]
            )
        )
        asker.start()
        asker.join(5)
        assert not asker.is_alive() and len(answered) == 3
        gate.release.set()
        for builder in builders:
            builder.join(10)
        # The same storage is opened once, whichever thread came second.
        assert gate.opened == 1 and len(trees) == 2 and trees[0] is trees[1]
    finally:
        gate.release.set()
        table.close()


@pytest.mark.parametrize("scheme", ["osfs", "file"])
def test_a_missing_home_folder_names_create_whatever_the_local_scheme(
    tmp_path: Path, scheme: str
) -> None:
    # A per-user folder is opened at login (not checked at start-up): the
    # refusal names the mount, the URL and the key that would make it.
    cfg = config_from_dict(
        {
            "mounts": {"/": "mem://", "/home": f"{scheme}://{tmp_path}/homes/${{user}}"},
            "users": {"u": {"password": "plaintext:p"}},
        },
        base_dir=tmp_path,
    )
    table = MountTable(cfg)
    try:
        with pytest.raises(ConfigError) as caught:
            table.tree_for(cfg.users["u"])
        (message,) = caught.value.problems
        assert message.startswith(f"{cfg.source}: mounts./home.fs: cannot open '{scheme}://")
        assert message.endswith("does not exist (set create: true to make it)")
    finally:
        table.close()
