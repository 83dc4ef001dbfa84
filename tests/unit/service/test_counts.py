"""Connection counters (vfsftp.service.counts) and the --workers plan helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vfsftp.config.schema import Config, ConfigError, config_from_yaml
from vfsftp.service.counts import LocalCounts, SharedBanList, SharedCounts
from vfsftp.service.workers import check_workers


@pytest.mark.parametrize("make", [LocalCounts, SharedCounts])
def test_acquire_release_limit(make: type[LocalCounts] | type[SharedCounts]) -> None:
    counts = make()
    try:
        assert counts.acquire("ip:1", 2)
        assert counts.acquire("ip:1", 2)
        assert not counts.acquire("ip:1", 2)
        assert counts.acquire("ip:2", 2)  # keys are independent
        assert counts.count("ip:1") == 2
        counts.release("ip:1")
        assert counts.count("ip:1") == 1
        assert counts.acquire("ip:1", 2)
        for _ in range(2):
            counts.release("ip:1")
        assert counts.count("ip:1") == 0
    finally:
        if isinstance(counts, SharedCounts):
            counts.close()


def test_shared_counts_survive_many_keys_and_reuse_slots() -> None:
    counts = SharedCounts(slots=64)
    try:
        for round_ in range(5):  # freed slots (tombstones) are reused
            for i in range(60):
                assert counts.acquire(f"ip:{round_}.{i}", 1)
            for i in range(60):
                counts.release(f"ip:{round_}.{i}")
        assert counts.acquire("*", 10)
        assert counts.count("*") == 1
    finally:
        counts.close()


def _forked(body: str) -> None:
    """Runs ``body`` in a new interpreter, which forks as `vfsftp serve
    --workers` does: from a process without threads. (A test process has
    threads, pytest-xdist's among them, and forking it is what Python 3.12
    warns about.) The body asserts; a failure is its exit status."""
    script = "import os\n" + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_shared_counts_are_shared_with_forked_processes() -> None:
    _forked(
        """
        from vfsftp.service.counts import SharedCounts

        counts = SharedCounts()
        assert counts.acquire("user:a", 2)
        pid = os.fork()
        if pid == 0:  # child: sees the parent's session, takes the last slot
            ok = counts.acquire("user:a", 2) and not counts.acquire("user:a", 2)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert counts.count("user:a") == 2  # the child's slot is seen here
        counts.close()
        """
    )


def _config(mounts: str, extra: str = "") -> Config:
    text = f"{extra}mounts:\n{mounts}users:\n  u: {{password: 'plaintext:p'}}\n"
    return config_from_yaml(text, "<test>", Path.cwd())


def test_check_workers_refuses_memory_mounts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        check_workers(_config("  /: mem://\n"), 2)
    assert info.value.problems == [
        "<test>: mounts./.fs: 'mem://': an in-memory mount would differ in every worker "
        "process; use --workers 1, or a folder"
    ]
    check_workers(_config("  /: mem://\n"), 1)
    folder = f"  /: osfs://{tmp_path}\n"
    check_workers(_config(folder), 2)
    own = "  u: {password: 'plaintext:p', mounts: {/m: 'mem://'}}\n"
    with pytest.raises(ConfigError) as info:
        check_workers(config_from_yaml(f"mounts:\n{folder}users:\n{own}", "<test>"), 2)
    assert info.value.problems[0].startswith("<test>: users.u.mounts./m.fs: 'mem://'")
    # Every worker offers the whole range: one port is enough for two.
    check_workers(_config(folder, "server:\n  passive_ports: 5000-5000\n"), 2)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_shared_ban_list_follows_the_ban_list_rules() -> None:
    clock = _Clock()
    bans = SharedBanList(3, window=10, duration=60, clock=clock, slots=64)
    try:
        assert not bans.failure("192.0.2.1")
        clock.now += 11  # the first failure leaves the window
        assert not bans.failure("192.0.2.1")
        assert not bans.failure("192.0.2.1")
        assert bans.ban_left("192.0.2.1") == 0
        assert bans.failure("192.0.2.1")  # 3 within 10 s
        assert bans.ban_left("192.0.2.1") == 60
        assert bans.ban_left("192.0.2.2") == 0
        clock.now += 61
        assert bans.ban_left("192.0.2.1") == 0
        # IPv6 by /64, as BanList
        assert not bans.failure("2001:db8::1")
        assert not bans.failure("2001:db8::2")
        assert bans.failure("2001:db8::3")
        assert bans.ban_left("2001:db8::ffff") > 0
        # a full table forgets the least recently active address
        for i in range(200):
            bans.failure(f"198.51.100.{i % 250}")
    finally:
        bans.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_shared_ban_list_is_shared_with_forked_processes() -> None:
    _forked(
        """
        from vfsftp.service.counts import SharedBanList

        bans = SharedBanList(2, window=60, duration=60)
        assert not bans.failure("192.0.2.9")
        pid = os.fork()
        if pid == 0:  # the second failure, in another process, bans
            os._exit(0 if bans.failure("192.0.2.9") else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert bans.ban_left("192.0.2.9") > 0
        bans.close()
        """
    )
