"""A fleet: three vfsftp instances on loopback sharing one real
``redis-server`` (``cluster: {url}``) behave as one server: connection
limits, bans, quotas and rate limits hold across them; an instance killed
with SIGKILL frees its counts within its lease; Redis killed and restarted
under load loses no upload and leaves no phantom count; Redis unreachable,
the instances keep serving with their own limits (and refuse uploads into
quotas) and say so in the log."""

# ruff: noqa: F811

from __future__ import annotations

import contextlib
import ftplib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PASSWORD,
    USER,
    Control,
    ServerFactory,
    free_port,
    get,
    login,
    login_at,
    put,
    wait_for,
)
from redis_fixtures import RedisServer, needs_redis, redis_server  # noqa: F401
from s3_fixtures import S3Bucket, moto_endpoint, s3_bucket  # noqa: F401

from vfsftp.cli import main
from vfsftp.config.schema import ClusterConfig
from vfsftp.service.cluster import fleet_status
from vfsftp.testing import ThreadedFTPServer

pytestmark = needs_redis

REPO = Path(__file__).resolve().parents[2]
LEASE = 1.5
BEAT = 0.25


def cluster_section(redis: RedisServer, **extra: Any) -> dict[str, Any]:
    return {"url": redis.url, "lease": LEASE, "heartbeat": BEAT, "timeout": 0.5, **extra}


def fleet(
    make_server: ServerFactory,
    redis: RedisServer,
    *,
    mounts: dict[str, Any] | None = None,
    users: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    n: int = 3,
) -> list[ThreadedFTPServer]:
    config = {
        "server": server or {},
        "cluster": cluster_section(redis, **(cluster or {})),
        "mounts": mounts or {"/": "mem://"},
        "users": users or {USER: {"password": f"plaintext:{PASSWORD}", "perms": "elradfmwMT"}},
    }
    return [make_server(config) for _ in range(n)]


def status(redis: RedisServer) -> Any:
    return fleet_status(ClusterConfig(url=redis.url))


def refused(srv: ThreadedFTPServer, user: str = USER, password: str = PASSWORD) -> str:
    """The 4xx a login (or the connection) gets."""
    with pytest.raises(ftplib.error_temp) as info:
        login(srv, user, password)
    return str(info.value)


def quit_all(clients: list[ftplib.FTP]) -> None:
    for f in clients:
        if f.sock is not None:
            with contextlib.suppress(ftplib.Error, OSError, EOFError):
                f.quit()
        f.close()


# ---------------------------------------------------------------- limits


def test_per_user_limit_holds_across_instances(
    redis_server: RedisServer, make_server: ServerFactory
) -> None:
    users = {
        "solo": {"password": "plaintext:solo", "max_connections": 2},
        USER: {"password": f"plaintext:{PASSWORD}"},
    }
    a, b, c = fleet(make_server, redis_server, users=users)
    first, second = login(a, "solo", "solo"), login(b, "solo", "solo")
    try:
        # Two sessions on two instances: the third, on the third, is refused.
        assert "Too many sessions for solo" in refused(c, "solo", "solo")
        assert "Too many sessions" in refused(a, "solo", "solo")
        # Another user is not affected.
        quit_all([login(c)])
        assert status(redis_server).users.get("solo") == 2
        # One ends: its place is free on every instance at once.
        quit_all([first])
        wait_for(lambda: status(redis_server).users.get("solo") == 1, "the release")
        third = login(c, "solo", "solo")
        quit_all([third])
    finally:
        quit_all([first, second])
    wait_for(lambda: not status(redis_server).users, "every session counted out")
    # The password checks are over too: none still counts towards a ban.
    client: Any = redis_server.client()
    assert client.keys("{vfsftp}:guess:*") == []


def test_per_address_and_total_limits_hold_across_instances(
    redis_server: RedisServer, make_server: ServerFactory
) -> None:
    a, b, c = fleet(
        make_server,
        redis_server,
        server={"max_connections_per_ip": 2, "max_connections": 3},
    )
    held = [Control(a.host, a.port, source="127.0.0.2"), Control(b.host, b.port, "127.0.0.2")]
    try:
        # A third connection from 127.0.0.2, on any instance: refused.
        late = Control(c.host, c.port, source="127.0.0.2")
        assert late.welcome[0] == 421 and "from your address" in late.welcome[1][0]
        late.close()
        # Another address gets the last place of the fleet...
        held.append(Control(c.host, c.port, source="127.0.0.3"))
        assert held[-1].welcome[0] == 220
        # ...and then the fleet is full, whoever asks.
        full = Control(a.host, a.port, source="127.0.0.4")
        assert full.welcome[0] == 421 and "Too many connections" in full.welcome[1][0]
        full.close()
    finally:
        for ctl in held:
            ctl.close()
    wait_for(
        lambda: all(i["sessions"] == 0 for i in status(redis_server).instances),
        "every session counted out",
    )
    quit_all([login(a, source="127.0.0.2")])


def test_failed_logins_on_every_instance_make_one_ban(
    redis_server: RedisServer, make_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    servers = fleet(
        make_server,
        redis_server,
        server={"ban": {"max_failures": 3, "window": 60, "duration": 600}},
    )
    # One failed guess per instance: together they make the ban.
    for srv in servers:
        ctl = Control(srv.host, srv.port, source="127.0.0.5")
        ctl.cmd("USER alice")
        code, lines = ctl.cmd("PASS wrong")
        assert code in (530, 421), lines
        ctl.close()
    for srv in servers:
        ctl = Control(srv.host, srv.port, source="127.0.0.5")
        assert ctl.welcome[0] == 421 and "failed logins" in ctl.welcome[1][0], ctl.welcome
        ctl.close()
    # Other clients are served.
    quit_all([login(servers[0], source="127.0.0.6")])
    # `vfsftp status` lists the ban; `vfsftp unban` lifts it for the fleet.
    cfg_file = redis_server.folder / "status.yaml"
    cfg_file.write_text(f"cluster:\n  url: {redis_server.url}\n")
    assert main(["status", "-c", str(cfg_file)]) == 0
    out = capsys.readouterr().out
    assert "127.0.0.5" in out and "instances: 3" in out, out
    assert main(["unban", "-c", str(cfg_file), "127.0.0.5"]) == 0
    assert "127.0.0.5" not in [*status(redis_server).bans]
    quit_all([login(servers[2], source="127.0.0.5")])
    assert main(["unban", "-c", str(cfg_file), "127.0.0.5"]) == 1  # not banned any more


# ---------------------------------------------------------------- quotas


def test_quota_holds_across_instances(
    redis_server: RedisServer, s3_bucket: S3Bucket, make_server: ServerFactory
) -> None:
    mounts = {"/": "mem://", "/shared": {**s3_bucket.mount("q"), "quota": {"max_bytes": 100_000}}}
    a, b, c = fleet(make_server, redis_server, mounts=mounts)
    s3_bucket.put("q/before.bin", b"x" * 10_000)  # measured: written by someone else
    fa, fb, fc = login(a), login(b), login(c)
    try:
        put(fa, "/shared/one.bin", b"1" * 50_000)
        with pytest.raises(ftplib.error_perm, match="552"):
            put(fb, "/shared/two.bin", b"2" * 50_000)  # 10k + 50k + 50k > 100k
        assert "two.bin" not in fc.nlst("/shared")
        put(fc, "/shared/three.bin", b"3" * 40_000)  # exactly full
        with pytest.raises(ftplib.error_perm, match="552"):
            put(fa, "/shared/four.bin", b"4")
        # A delete through one instance frees room for the others.
        fb.delete("/shared/one.bin")
        put(fa, "/shared/four.bin", b"4" * 50_000)
    finally:
        quit_all([fa, fb, fc])
    sizes = {k: len(s3_bucket.get(k)) for k in s3_bucket.keys("q/")}
    assert sum(sizes.values()) == 100_000, sizes


def test_concurrent_uploads_never_pass_the_quota(
    redis_server: RedisServer, s3_bucket: S3Bucket, make_server: ServerFactory
) -> None:
    """Uploads racing through three instances into one quota: the Lua
    script reserves atomically, so what is stored never exceeds it."""
    mounts = {"/": "mem://", "/shared": {**s3_bucket.mount("q"), "quota": {"max_bytes": 300_000}}}
    servers = fleet(make_server, redis_server, mounts=mounts, cluster={"quota_reserve": 16384})
    results: list[str] = []
    lock = threading.Lock()

    def upload(srv: ThreadedFTPServer, i: int) -> None:
        f = login(srv)
        try:
            put(f, f"/shared/f{i}.bin", os.urandom(70_000))
            outcome = "ok"
        except ftplib.error_perm as exc:
            outcome = str(exc)[:3]
        except OSError:
            # Refused while this client was still sending: the server
            # closed the data connection, and its reply says why.
            try:
                f.voidresp()
                outcome = "ok"
            except ftplib.Error as exc:
                outcome = str(exc)[:3]
        finally:
            quit_all([f])
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=upload, args=(servers[i % 3], i)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(set(results)) <= ["552", "ok"], results
    stored = sum(len(s3_bucket.get(k)) for k in s3_bucket.keys("q/"))
    assert stored == 70_000 * results.count("ok") <= 300_000, (results, stored)
    assert results.count("ok") >= 1


def test_user_quota_is_shared_and_reservations_end_with_the_uploads(
    redis_server: RedisServer, s3_bucket: S3Bucket, make_server: ServerFactory
) -> None:
    users = {
        USER: {
            "password": f"plaintext:{PASSWORD}",
            "quota": {"max_bytes": 60_000, "max_files": 2},
            "mounts": {"/": s3_bucket.mount("u")},
        }
    }
    a, b, _ = fleet(make_server, redis_server, mounts={}, users=users)
    fa, fb = login(a), login(b)
    try:
        put(fa, "/a.bin", b"a" * 30_000)
        put(fb, "/b.bin", b"b" * 20_000)
        with pytest.raises(ftplib.error_perm, match=r"552.*files"):
            put(fa, "/c.bin", b"c")
        # Replacing a file is charged for the difference only.
        put(fb, "/a.bin", b"A" * 40_000)
        with pytest.raises(ftplib.error_perm, match="552"):
            put(fa, "/b.bin", b"B" * 20_001)
    finally:
        quit_all([fa, fb])
    client: Any = redis_server.client()
    # Nothing stays reserved once the uploads are over: only stored usage.
    for key in client.keys("{vfsftp}:held:*"):
        assert not [f for f in client.hkeys(key) if f.startswith("q")], client.hgetall(key)
    assert client.hgetall("{vfsftp}:quota:user:alice") == {"bytes": "60000", "files": "2"}


# ---------------------------------------------------------------- rate limits


def test_a_users_download_rate_holds_for_the_fleet(
    redis_server: RedisServer, make_server: ServerFactory
) -> None:
    """Three downloads through three instances share one user bucket in
    Redis: together they stay near max_download_rate (a token bucket in a
    Lua script, one call per 16 KiB chunk)."""
    rate = 2 * 1024 * 1024
    users = {USER: {"password": f"plaintext:{PASSWORD}", "max_download_rate": rate}}
    servers = fleet(make_server, redis_server, users=users)
    size = 2 * 1024 * 1024
    for srv in servers:
        srv.put_file("/big.bin", b"x" * size)
    clients = [login(srv) for srv in servers]
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def fetch(f: ftplib.FTP) -> None:
        try:
            barrier.wait(10)
            assert len(get(f, "/big.bin")) == size
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(f,)) for f in clients]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - started
    quit_all(clients)
    assert not errors, errors
    achieved = 3 * size / elapsed
    # One bucket: 3 x 2 MiB at 2 MiB/s takes 3 s (less a first burst),
    # where three per-instance buckets would take 1 s.
    assert 0.8 * rate < achieved < 1.15 * rate, f"{achieved / rate:.2f} x the rate"


# ---------------------------------------------------------------- failures


def _serve_process(tmp_path: Path, redis: RedisServer, name: str) -> tuple[Any, int, Path]:
    """`vfsftp serve` in a process of its own (to be killed), on a free port."""
    cfg = tmp_path / f"{name}.yaml"
    log = tmp_path / f"{name}.log"
    for _ in range(3):
        port = free_port()
        cfg.write_text(
            "server:\n"
            "  listen: 127.0.0.1\n"
            f"  port: {port}\n"
            "  login_failure_delay: 0\n"
            "cluster:\n"
            f"  url: {redis.url}\n"
            f"  lease: {LEASE}\n"
            f"  heartbeat: {BEAT}\n"
            "mounts:\n"
            "  /: mem://\n"
            "users:\n"
            "  solo: {password: 'plaintext:solo', max_connections: 1}\n"
        )
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vfsftp", "serve", "-c", str(cfg), "--loop", "asyncio"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if "listening on" in log.read_text(errors="replace"):
                return proc, port, log
            time.sleep(0.02)
        proc.kill()
        proc.wait(10)
    raise AssertionError(f"vfsftp serve did not start: {log.read_text(errors='replace')}")


def test_an_instance_killed_frees_its_counts_within_the_lease(
    redis_server: RedisServer, make_server: ServerFactory, tmp_path: Path
) -> None:
    users = {"solo": {"password": "plaintext:solo", "max_connections": 1}}
    (other,) = fleet(make_server, redis_server, users=users, n=1)
    proc, port, _ = _serve_process(tmp_path, redis_server, "doomed")
    try:
        f = login_at("127.0.0.1", port, "solo", "solo")
        # (a login while the instance joins the fleet is sent a moment later)
        wait_for(lambda: status(redis_server).users.get("solo") == 1, "the session counted")
        assert "Too many sessions" in refused(other, "solo", "solo")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        f.close()
        # Its session counts until its lease runs out, then no more.
        deadline = killed + LEASE + 2 * BEAT + 1.0
        while True:
            try:
                quit_all([login(other, "solo", "solo")])
                break
            except ftplib.error_temp:
                assert time.monotonic() < deadline, "the dead instance's count outlived its lease"
                time.sleep(0.05)
        assert time.monotonic() - killed > LEASE * 0.5  # (not freed by anything else)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert len(status(redis_server).instances) == 1


def test_redis_restarted_under_load_loses_no_upload_and_no_count(
    redis_server: RedisServer, s3_bucket: S3Bucket, make_server: ServerFactory
) -> None:
    mounts = {"/": "mem://", "/s3": s3_bucket.mount("load")}
    users = {
        USER: {"password": f"plaintext:{PASSWORD}", "perms": "elradfmwMT", "max_connections": 6}
    }
    servers = fleet(make_server, redis_server, mounts=mounts, users=users)
    stored: dict[str, bytes] = {}
    errors: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(i: int) -> None:
        n = 0
        while not stop.is_set():
            try:
                f = login(servers[(i + n) % 3])
            except (ftplib.Error, OSError, EOFError) as exc:
                with lock:
                    errors.append(f"login: {exc}")
                n += 1
                continue
            try:
                for _ in range(3):
                    name = f"/s3/c{i}-{n}.bin"
                    data = os.urandom(20_000)
                    put(f, name, data)  # raises unless 226
                    with lock:
                        stored[name] = data
                    n += 1
            except (ftplib.Error, OSError, EOFError) as exc:
                with lock:
                    errors.append(f"upload: {exc}")
            finally:
                quit_all([f])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(stored) >= 12, "uploads before the restart", 30)
        redis_server.kill()
        wait_for(lambda: len(stored) >= 24, "uploads while Redis is down", 30)
        redis_server.start()
        before = len(stored)
        wait_for(lambda: len(stored) >= before + 12, "uploads after the restart", 30)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    # Sessions and uploads went on throughout (no quota here to close).
    assert not errors, errors[:5]
    for name, data in stored.items():
        assert s3_bucket.get("load/" + name[len("/s3/") :]) == data
    # Every session ended: the fleet counts none (the instances wrote their
    # hashes anew from their own sessions after the restart).
    wait_for(
        lambda: (
            all(i["sessions"] == 0 for i in status(redis_server).instances)
            and len(status(redis_server).instances) == 3
        ),
        "no phantom session",
    )
    assert not status(redis_server).users


def test_redis_unreachable_serves_with_local_limits_and_refuses_quota_uploads(
    redis_server: RedisServer,
    make_server: ServerFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="vfsftp.cluster")
    (tmp_path / "q").mkdir()
    mounts = {"/": "mem://", "/q": {"fs": f"osfs://{tmp_path / 'q'}", "quota": {"max_bytes": 1000}}}
    users = {USER: {"password": f"plaintext:{PASSWORD}", "max_connections": 1}}
    redis_server.kill()  # down from the start
    (srv,) = fleet(make_server, redis_server, mounts=mounts, users=users, n=1)
    f = login(srv)
    try:
        # This instance's own limit still holds.
        assert "Too many sessions" in refused(srv)
        put(f, "/free.bin", b"no quota here")
        with pytest.raises(ftplib.error_temp, match="451 Quota accounting unavailable"):
            put(f, "/q/quota.bin", b"x")
        assert not (tmp_path / "q" / "quota.bin").exists()
        assert any("unreachable" in r.getMessage() for r in caplog.records)
        # Redis back: the session is counted in the fleet; quota uploads work.
        redis_server.start()
        wait_for(lambda: status(redis_server).users.get(USER) == 1, "the session re-counted")
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        put(f, "/q/quota.bin", b"x" * 100)
    finally:
        quit_all([f])


def test_check_config_connect_asks_redis(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "mounts.yaml"
    cfg.write_text(f"cluster:\n  url: {redis_server.url}\n  timeout: 0.5\nmounts:\n  /: mem://\n")
    assert main(["check-config", "--connect", str(cfg)]) == 0
    redis_server.kill()
    assert main(["check-config", "--connect", str(cfg)]) == 2
    assert "cluster.url: redis://127.0.0.1:" in capsys.readouterr().err
    assert main(["check-config", str(cfg)]) == 0  # without --connect: no network
