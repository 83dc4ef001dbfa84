"""Users in a database (users_store:): a server reads them at every login,
from a SQLite file or a real PostgreSQL server; `vfsftp users` changes them
while the server runs."""

from __future__ import annotations

import datetime
import ftplib
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import Control, ServerFactory, free_port, get, login, put, wait_for

# Fixtures imported from users_fixtures are "redefined" as test parameters:
# ruff: noqa: F811
from users_fixtures import UsersCLI, pg_server, pg_url, store_url, users_cli  # noqa: F401

from vfsftp.config.schema import config_from_dict
from vfsftp.identity.store import NoSuchUser, StoredUser, StoreError, UserExists
from vfsftp.identity.stored import open_store
from vfsftp.testing import ThreadedFTPServer

YAML_USER, YAML_PASSWORD = "alice", "secret"


def store_config(url: str, **store: Any) -> dict[str, Any]:
    return {
        "users_store": {"url": url, "poll_interval": 0.05, **store},
        "mounts": {"/": "mem://", "/shared": "mem://"},
        "users": {YAML_USER: {"password": f"plaintext:{YAML_PASSWORD}"}},
    }


def refused(srv: ThreadedFTPServer, user: str, password: str) -> str:
    """The reply to a login that must fail."""
    with pytest.raises(ftplib.error_perm) as info:
        login(srv, user, password).close()
    return str(info.value)


# ------------------------------------------------------------------ the store


def test_store_rows_round_trip(store_url: str) -> None:
    spec = config_from_dict({"users_store": store_url}).users_store
    assert spec is not None
    store = open_store(spec)
    try:
        until = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        settings = {"home": "/bob", "mounts": {"/in": "mem://"}, "quota": {"max_bytes": "1GiB"}}
        store.add(StoredUser("bob", "plaintext:pw", expires_at=until, settings=settings))
        with pytest.raises(UserExists):
            store.add(StoredUser("bob", "plaintext:other"))
        got = store.get("bob")
        assert got is not None
        assert (got.expires_at, got.settings, got.version) == (until, settings, 1)
        assert store.get("Bob") is None  # names are case-sensitive, as in mounts.yaml
        changed = store.update("bob", lambda u: u.__class__(**{**u.__dict__, "disabled": True}))
        assert changed.version == 2 and store.get("bob") == changed
        assert store.names_among(["bob", "carol"]) == ["bob"]
        first = store.kick("bob")
        assert store.kicks_since(first - 1) == [(first, "bob")]
        assert store.last_kick() == first
        store.delete("bob")
        with pytest.raises(NoSuchUser):
            store.delete("bob")
        assert store.users() == [] and store.count() == 0
    finally:
        store.close()
    # A second opener finds the schema made (the migration runs once).
    again = open_store(spec)
    try:
        assert again.schema_version() == 1 and again.count() == 0
    finally:
        again.close()


def test_a_newer_schema_is_refused(store_url: str) -> None:
    spec = config_from_dict({"users_store": store_url}).users_store
    assert spec is not None
    store = open_store(spec)
    try:
        store.count()
        store._call(
            lambda conn: conn.execute(
                "INSERT INTO vfsftp_schema (version, description, applied_at) "
                "VALUES (99, 'from the future', 'x')"
            )
        )
    finally:
        store.close()
    again = open_store(spec)
    try:
        with pytest.raises(StoreError, match="version 99, newer than this vfsftp knows"):
            again.count()
    finally:
        again.close()


def test_sqlite_file_is_private_and_next_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_server: ServerFactory
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "mounts.yaml"
    config.write_text(
        "users_store: sqlite:///users.db\nmounts:\n  /: mem://\n"
        "users:\n  alice: {password: 'plaintext:secret'}\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)  # elsewhere than the config
    from users_fixtures import run_cli

    done = run_cli("users", "add", "bob", "-c", str(config), stdin="pw\n")
    assert done.status == 0, done.err
    db = folder / "users.db"
    assert db.exists() and not (tmp_path / "users.db").exists()
    assert db.stat().st_mode & 0o077 == 0  # password hashes: the owner's alone
    srv = make_server(config)
    login(srv, "bob", "pw").quit()


# ------------------------------------------------------------------ logins


def test_login_after_users_add_on_a_running_server(
    make_server: ServerFactory, store_url: str, users_cli: UsersCLI
) -> None:
    srv = make_server(store_config(store_url))
    assert refused(srv, "bob", "pw").startswith("530")
    added = users_cli("add", "bob", "perms=elr", "mounts./own=mem://", stdin="pw\n")
    assert added.status == 0, added.err
    with login(srv, "bob", "pw") as ftp:
        assert "own" in ftp.nlst("/")
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            put(ftp, "/shared/x", b"no w letter")
    login(srv, YAML_USER, YAML_PASSWORD).quit()  # mounts.yaml's users as before


def test_changes_apply_at_the_next_login(
    make_server: ServerFactory, store_url: str, users_cli: UsersCLI
) -> None:
    srv = make_server(store_config(store_url))
    assert users_cli("add", "bob", stdin="one\n").status == 0
    login(srv, "bob", "one").quit()

    assert users_cli("passwd", "bob", stdin="two\n").status == 0
    assert refused(srv, "bob", "one").startswith("530")
    login(srv, "bob", "two").quit()

    assert users_cli("disable", "bob").status == 0
    assert refused(srv, "bob", "two").startswith("530")
    assert users_cli("enable", "bob").status == 0
    login(srv, "bob", "two").quit()

    # A new tree when the user's own mounts change (and the old one's files stay theirs).
    assert users_cli("set", "bob", "mounts./own=mem://").status == 0
    with login(srv, "bob", "two") as ftp:
        put(ftp, "/own/f", b"kept")
    assert users_cli("set", "bob", "home=/own").status == 0
    with login(srv, "bob", "two") as ftp:
        assert get(ftp, "f") == b"kept"  # same mounts: same tree, same mem:// files
    assert users_cli("set", "bob", "mounts./own=", "home=").status == 0
    with login(srv, "bob", "two") as ftp:
        assert "own" not in ftp.nlst("/")

    assert users_cli("delete", "bob").status == 0
    assert refused(srv, "bob", "two").startswith("530")


def test_expired_and_outside_networks_are_refused(
    make_server: ServerFactory,
    store_url: str,
    users_cli: UsersCLI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    srv = make_server(store_config(store_url))
    now = datetime.datetime.now(datetime.timezone.utc)
    past = (now - datetime.timedelta(minutes=1)).isoformat()
    future = (now + datetime.timedelta(days=1)).isoformat()
    assert users_cli("add", "old", f"expires_at={past}", stdin="pw\n").status == 0
    assert users_cli("add", "new", f"expires_at={future}", stdin="pw\n").status == 0
    assert users_cli("add", "far", "allowed_networks=10.0.0.0/8", stdin="pw\n").status == 0
    assert users_cli("add", "near", "allowed_networks=[127.0.0.0/8]", stdin="pw\n").status == 0
    with caplog.at_level(logging.WARNING, logger="vfsftp.session"):
        assert refused(srv, "old", "pw").startswith("530 Login incorrect")
        assert refused(srv, "far", "pw").startswith("530 Login incorrect")
    log = caplog.text
    assert "user=old: the account expired at" in log
    assert "user=far: 127.0.0.1:" in log and "outside the allowed networks" in log
    login(srv, "new", "pw").quit()
    login(srv, "near", "pw").quit()
    listed = users_cli("list")
    assert listed.status == 0
    assert any(line.split()[:2] == ["old", "expired"] for line in listed.out.splitlines())


def test_mounts_yaml_takes_precedence_and_says_so(
    make_server: ServerFactory,
    store_url: str,
    users_cli: UsersCLI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    added = users_cli("add", YAML_USER, stdin="from-the-store\n")
    assert added.status == 0
    assert users_cli("add", "bob", stdin="pw\n").status == 0
    with caplog.at_level(logging.INFO, logger="vfsftp.session"):
        srv = make_server(store_config(store_url))
    assert "users store" in caplog.text and ": 2 users; mounts.yaml's users come first" in (
        caplog.text
    )
    assert f"users store: {YAML_USER} also in <ThreadedFTPServer>, whose entries take" in (
        caplog.text
    )
    login(srv, YAML_USER, YAML_PASSWORD).quit()
    assert refused(srv, YAML_USER, "from-the-store").startswith("530")


def test_stored_tls_policy_is_asked_at_user(
    make_server: ServerFactory, store_url: str, users_cli: UsersCLI
) -> None:
    srv = make_server(store_config(store_url), tls=True)
    assert users_cli("add", "strict", "require_tls=true", stdin="pw\n").status == 0
    assert users_cli("add", "loose", stdin="pw\n").status == 0
    ctl = Control(srv.host, srv.port)
    try:
        code, lines = ctl.cmd("USER strict")
        assert code == 534, lines  # before the password travels in clear
        assert ctl.cmd("USER loose")[0] == 331
        assert ctl.cmd("PASS pw")[0] == 230
    finally:
        ctl.close()


def test_an_invalid_stored_user_is_refused_and_logged(
    make_server: ServerFactory, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    srv = make_server(store_config(store_url))
    spec = srv.config.users_store
    assert spec is not None
    store = open_store(spec)
    try:  # a row written by hand, past the command line's checks
        store.add(StoredUser("bob", "plaintext:pw", settings={"perms": "xyz"}))
    finally:
        store.close()
    with caplog.at_level(logging.ERROR, logger="vfsftp.session"):
        assert refused(srv, "bob", "pw").startswith("530")
    assert "invalid stored user" in caplog.text and "users.bob.perms" in caplog.text


# ------------------------------------------------------------------ kick


def test_disable_kick_ends_running_sessions(
    make_server: ServerFactory, store_url: str, users_cli: UsersCLI
) -> None:
    srv = make_server(store_config(store_url))
    assert users_cli("add", "bob", stdin="pw\n").status == 0
    assert users_cli("add", "carol", stdin="pw\n").status == 0
    bob = login(srv, "bob", "pw")
    carol = login(srv, "carol", "pw")
    yaml_alice = login(srv, YAML_USER, YAML_PASSWORD)
    try:
        done = users_cli("disable", "bob", "--kick")
        assert done.status == 0 and "running sessions end within" in done.out
        # The server's next poll (every 0.05 s here) ends bob's session with 421.
        bob.sock.settimeout(10)
        reply = bob.getline()
        assert reply.startswith("421 Your account was disabled")
        assert bob.file.readline() == ""  # and the connection is closed
        wait_for(lambda: len(srv.server.channels) == 2, "bob's session to end")
        carol.voidcmd("NOOP")
        yaml_alice.voidcmd("NOOP")
        assert refused(srv, "bob", "pw").startswith("530")
    finally:
        for client in (bob, carol, yaml_alice):
            client.close()


def test_delete_kick_ends_running_sessions(
    make_server: ServerFactory, store_url: str, users_cli: UsersCLI
) -> None:
    srv = make_server(store_config(store_url))
    assert users_cli("add", "bob", stdin="pw\n").status == 0
    bob = login(srv, "bob", "pw")
    try:
        assert users_cli("delete", "bob", "--kick").status == 0
        bob.sock.settimeout(10)
        assert bob.getline().startswith("421")
    finally:
        bob.close()


def test_a_kick_of_a_name_in_mounts_yaml_leaves_its_sessions(
    make_server: ServerFactory, store_url: str, users_cli: UsersCLI
) -> None:
    srv = make_server(store_config(store_url))
    assert users_cli("add", YAML_USER, stdin="pw\n").status == 0
    alice = login(srv, YAML_USER, YAML_PASSWORD)
    try:
        assert users_cli("disable", YAML_USER, "--kick").status == 0
        spec = srv.config.users_store
        assert spec is not None
        store = open_store(spec)
        try:
            kick = store.last_kick()
        finally:
            store.close()
        # Once the server has polled past the kick, the session is still there.
        wait_for(lambda: srv.call(_polled(srv, kick)), "the server to see the kick")
        alice.voidcmd("NOOP")
    finally:
        alice.close()


async def _polled(srv: ThreadedFTPServer, kick: int) -> bool:
    client = srv.server.users_store
    assert client is not None
    # (a poll that started before the kick may still run: two more intervals)
    await __import__("asyncio").sleep(2 * client.spec.poll_interval)
    return await client.call(client.store.last_kick) >= kick


# ------------------------------------------------------------------ PostgreSQL


@pytest.mark.postgres
def test_two_servers_share_one_postgresql_store(make_server: ServerFactory, pg_url: str) -> None:
    from users_fixtures import run_cli

    first = make_server(store_config(pg_url))
    second = make_server(store_config(pg_url))
    assert run_cli("users", "add", "bob", "--store", pg_url, stdin="pw\n").status == 0
    on_first, on_second = login(first, "bob", "pw"), login(second, "bob", "pw")
    try:
        assert run_cli("users", "disable", "bob", "--kick", "--store", pg_url).status == 0
        for client in (on_first, on_second):
            client.sock.settimeout(10)
            assert client.getline().startswith("421 Your account was disabled")
        for srv in (first, second):
            assert refused(srv, "bob", "pw").startswith("530")
        assert run_cli("users", "enable", "bob", "--store", pg_url).status == 0
        login(first, "bob", "pw").quit()
        login(second, "bob", "pw").quit()
    finally:
        on_first.close()
        on_second.close()


@pytest.mark.postgres
def test_database_stopped_and_started_under_load(
    make_server: ServerFactory, pg_server: Any, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """While PostgreSQL is down, stored users get 421 and nothing else
    waits: mounts.yaml's users log in, a running session transfers. Once it
    is back, stored users log in again, with no restart of the server."""
    from users_fixtures import run_cli

    srv = make_server(store_config(pg_url, timeout=2))
    assert run_cli("users", "add", "bob", "--store", pg_url, stdin="pw\n").status == 0
    busy = login(srv, YAML_USER, YAML_PASSWORD)
    put(busy, "/shared/data", b"x" * 100_000)

    replies: dict[str, list[str]] = {"bob": [], YAML_USER: []}
    stop = threading.Event()
    errors: list[BaseException] = []

    def load(user: str, password: str) -> None:
        try:
            while not stop.is_set():
                try:
                    login(srv, user, password).quit()
                    replies[user].append("230")
                except ftplib.Error as exc:
                    replies[user].append(str(exc)[:3])
        except BaseException as exc:  # (reported by the test)
            errors.append(exc)

    workers = [
        threading.Thread(target=load, args=("bob", "pw")),
        threading.Thread(target=load, args=(YAML_USER, YAML_PASSWORD)),
    ]
    try:
        for worker in workers:
            worker.start()
        wait_for(lambda: replies["bob"].count("230") >= 3, "stored logins before the stop")
        with caplog.at_level(logging.WARNING, logger="vfsftp.session"):
            pg_server.stop()
            down_at = len(replies["bob"])
            wait_for(lambda: "421" in replies["bob"][down_at:], "a 421 while the store is down")
            yaml_before = replies[YAML_USER].count("230")
            assert get(busy, "/shared/data") == b"x" * 100_000  # a session goes on
            wait_for(
                lambda: replies[YAML_USER].count("230") >= yaml_before + 3,
                "mounts.yaml logins while the store is down",
            )
            pg_server.start()
            up_at = len(replies["bob"])
            wait_for(lambda: "230" in replies["bob"][up_at:], "stored logins once it is back")
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
        busy.close()
    assert not errors, errors
    during = replies["bob"][down_at:up_at]
    assert set(during) <= {"421", "230"}, during  # (a 230 whose SELECT came just before)
    assert set(replies[YAML_USER]) == {"230"}
    assert "users store unreachable" in caplog.text
    assert "answers again" in caplog.text


# ------------------------------------------------------------------ check-config


def test_check_config_checks_the_store(tmp_path: Path, store_url: str) -> None:
    from users_fixtures import run_cli

    config = tmp_path / "m.yaml"
    config.write_text(f"users_store: {store_url}\nmounts:\n  /: mem://\n", encoding="utf-8")
    done = run_cli("check-config", "--connect", str(config))
    assert done.status == 0, done.err

    missing = tmp_path / "bad.yaml"
    missing.write_text("users_store: sqlite:///no/such/users.db\n", encoding="utf-8")
    done = run_cli("check-config", str(missing))
    assert done.status == 2
    assert f"{missing}: users_store: folder {tmp_path}/no/such does not exist" in done.err


@pytest.mark.postgres
def test_check_config_connect_reports_a_store_that_does_not_answer(tmp_path: Path) -> None:
    from users_fixtures import run_cli

    port = free_port()
    config = tmp_path / "m.yaml"
    config.write_text(f"users_store: postgresql://postgres@127.0.0.1:{port}/x\n", encoding="utf-8")
    assert run_cli("check-config", str(config)).status == 0  # nothing touches the network
    done = run_cli("check-config", "--connect", str(config))
    assert done.status == 2 and "users_store: cannot use it: postgresql://" in done.err


def test_serve_refuses_a_store_it_cannot_make(tmp_path: Path) -> None:
    from vfsftp.config.schema import ConfigError

    with pytest.raises(ConfigError, match=r"users_store: folder .* does not exist"):
        ThreadedFTPServer({"users_store": f"sqlite:///{tmp_path}/none/users.db"})


# ------------------------------------------------------------------ reload


def test_reload_switches_and_drops_the_store(
    make_server: ServerFactory, tmp_path: Path, store_url: str, users_cli: UsersCLI
) -> None:
    from users_fixtures import run_cli

    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert users_cli("add", "bob", stdin="pw\n").status == 0
    assert run_cli("users", "add", "carol", "--store", other, stdin="pw\n").status == 0
    srv = make_server(store_config(store_url))
    bob = login(srv, "bob", "pw")
    try:
        srv.call(srv.server.reload(config_from_dict(store_config(other, timeout=2))))
        login(srv, "carol", "pw").quit()
        assert refused(srv, "bob", "pw").startswith("530")
        bob.voidcmd("NOOP")  # a running session keeps what it had
        # The new store's kicks are watched; the old one is closed.
        assert run_cli("users", "disable", "carol", "--kick", "--store", other).status == 0
        assert refused(srv, "carol", "pw").startswith("530")

        without = store_config(other)
        del without["users_store"]
        srv.call(srv.server.reload(config_from_dict(without)))
        assert srv.server.users_store is None
        assert refused(srv, "carol", "pw").startswith("530")
        login(srv, YAML_USER, YAML_PASSWORD).quit()
    finally:
        bob.close()


# ------------------------------------------------------------------ --workers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers: SO_REUSEPORT")
def test_workers_share_a_sqlite_store_and_its_kicks(tmp_path: Path) -> None:
    """`serve --workers 2`: each worker reads the same SQLite file, and a
    kick ends the user's sessions on both."""
    from test_workers import Workers, _spread, _stop, _wait_ready

    root = tmp_path / "root"
    root.mkdir()
    cfg = tmp_path / "mounts.yaml"
    cfg.write_text(
        "server: {listen: 127.0.0.1, login_failure_delay: 0}\n"
        "users_store: {url: 'sqlite:///users.db', poll_interval: 0.05}\n"
        f"mounts:\n  /: osfs://{root}\n",
        encoding="utf-8",
    )
    spec = config_from_dict({"users_store": f"sqlite:///{tmp_path / 'users.db'}"}).users_store
    assert spec is not None
    store = open_store(spec)
    try:  # plaintext: a quick login, as _spread makes many
        store.add(StoredUser("bob", "plaintext:pw"))
    finally:
        store.close()
    log = tmp_path / "server.log"
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "vfsftp", "serve", "-c", str(cfg)),
                *("--port", str(port), "--workers", "2", "--loop", "asyncio"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    srv = Workers(proc, port, log, cfg, (0, 0))
    held: list[ftplib.FTP] = []
    try:
        assert _wait_ready(srv), log.read_text()
        held = _spread(srv, "bob", "pw", 2)
        from users_fixtures import run_cli

        assert run_cli("users", "disable", "bob", "--kick", "-c", str(cfg)).status == 0
        for client in held:
            client.sock.settimeout(10)
            assert client.getline().startswith("421 Your account was disabled")
        with pytest.raises(ftplib.error_perm, match=r"^530"):
            ftp = ftplib.FTP()
            try:
                ftp.connect("127.0.0.1", port, timeout=10)
                ftp.login("bob", "pw")
            finally:
                ftp.close()
    finally:
        for client in held:
            client.close()
        _stop(proc)
