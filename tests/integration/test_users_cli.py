"""`vfsftp users`, end to end: each command against a SQLite file and a
real PostgreSQL database, its output, its exit status and what it stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Fixtures imported from users_fixtures are "redefined" as test parameters:
# ruff: noqa: F811
from users_fixtures import (  # noqa: F401
    UsersCLI,
    pg_server,
    pg_url,
    run_cli,
    store_url,
    users_cli,
)

from vfsftp.config.schema import config_from_dict
from vfsftp.identity.auth import verify_password
from vfsftp.identity.store import StoredUser
from vfsftp.identity.stored import open_store


def stored(url: str, name: str) -> StoredUser | None:
    spec = config_from_dict({"users_store": url}).users_store
    assert spec is not None
    store = open_store(spec)
    try:
        return store.get(name)
    finally:
        store.close()


def test_add_show_list_set(store_url: str, users_cli: UsersCLI) -> None:
    done = users_cli(
        "add",
        "bob",
        "home=/in",
        "perms=elrw",
        "quota.max_bytes=1GiB",
        "mounts./in=osfs://./in/${user}",
        "permissions./in/ro=elr",
        "allowed_networks=10.0.0.0/8, 192.168.1.0/24",
        "expires_at=2030-01-01",
        "description=Partner ACME, EDI",
        "max_connections=3",
        "max_download_rate=10MB/s",
        "require_data_tls=true",
        stdin="s3cret\n",
    )
    assert done.status == 0, done.err
    assert done.out == f"vfsftp: added bob to {store_url}\n"
    user = stored(store_url, "bob")
    assert user is not None
    assert user.password.startswith("$argon2id$") and verify_password(user.password, "s3cret")
    assert user.description == "Partner ACME, EDI"
    assert (
        user.expires_at is not None and user.expires_at.isoformat() == "2030-01-01T00:00:00+00:00"
    )
    assert user.settings == {
        "home": "/in",
        "perms": "elrw",
        "quota": {"max_bytes": "1GiB"},
        "mounts": {"/in": "osfs://./in/${user}"},
        "permissions": {"/in/ro": "elr"},
        "allowed_networks": ["10.0.0.0/8", "192.168.1.0/24"],
        "max_connections": 3,
        "max_download_rate": "10MB/s",
        "require_data_tls": True,
    }

    shown = users_cli("show", "bob")
    assert shown.status == 0
    assert "enabled, version 1" in shown.out and "password: an argon2 hash" in shown.out
    assert "bob:\n  home: /in\n" in shown.out and "$argon2" not in shown.out

    as_json = json.loads(users_cli("show", "bob", "--json").out)
    assert as_json["name"] == "bob" and as_json["status"] == "enabled"
    assert as_json["settings"]["mounts"] == {"/in": "osfs://./in/${user}"}
    assert "password" not in json.dumps(as_json)

    assert users_cli("add", "carol", stdin="pw\n").status == 0
    changed = users_cli("set", "carol", "description=yes", "max_connections=")
    assert changed.status == 0, changed.err
    listed = json.loads(users_cli("list", "--json").out)
    assert [u["name"] for u in listed] == ["bob", "carol"]
    assert listed[1]["description"] == "yes" and listed[1]["version"] == 2  # text as written
    table = users_cli("list").out.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "EXPIRES", "HOME", "DESCRIPTION"]
    assert table[1].split()[:5] == ["bob", "enabled", "2030-01-01", "00:00", "/in"]
    assert table[-1] == f"(2 users in {store_url})"


def test_disable_enable_delete_passwd(store_url: str, users_cli: UsersCLI) -> None:
    assert users_cli("add", "bob", stdin="one\n").status == 0
    done = users_cli("disable", "bob")
    assert done.status == 0 and "running sessions go on (--kick ends them)" in done.out
    assert users_cli("list").out.split("\n")[1].split()[:2] == ["bob", "disabled"]
    assert users_cli("enable", "bob").status == 0
    user = stored(store_url, "bob")
    assert user is not None and not user.disabled

    assert users_cli("passwd", "bob", stdin="two\n").status == 0
    user = stored(store_url, "bob")
    assert user is not None and verify_password(user.password, "two")
    assert not verify_password(user.password, "one")

    assert users_cli("delete", "bob").status == 0
    assert stored(store_url, "bob") is None


@pytest.mark.parametrize(
    ("args", "stdin", "status", "message"),
    [
        (("show", "nobody"), "", 1, "vfsftp: no user 'nobody' in "),
        (("delete", "nobody"), "", 1, "vfsftp: no user 'nobody' in "),
        (("passwd", "nobody"), "pw\n", 1, "vfsftp: no user 'nobody' in "),
        (("disable", "nobody"), "", 1, "vfsftp: no user 'nobody' in "),
        (("add", "bob", "perms=xyz"), "pw\n", 2, "users.bob.perms: unknown permission letter"),
        (("add", "bob", "home=relative"), "pw\n", 2, "users.bob.home: expected an absolute"),
        (("add", "bob", "expires_at=soon"), "pw\n", 2, "users.bob.expires_at: expected a date"),
        (("add", "bob", "colour=blue"), "pw\n", 2, "users.bob.colour: unknown key"),
        (("add", "bob", "secret"), "pw\n", 2, "expected KEY=VALUE, got 'secret'"),
        (("add", "bob", "password=x"), "pw\n", 2, "set passwords with 'vfsftp users passwd"),
        (("add", "bob"), "\n", 2, "refusing an empty password"),
        (("add", "../x"), "pw\n", 2, "expected a user name of letters"),
        (("add", "anonymous"), "pw\n", 2, "anonymous is declared in mounts.yaml"),
        (("add", "bob", "--password-hash", "plain"), "", 2, "takes an argon2 hash"),
        (("set", "bob"), "", 2, "nothing to change"),
    ],
)
def test_errors_and_exit_status(
    store_url: str,
    users_cli: UsersCLI,
    args: tuple[str, ...],
    stdin: str,
    status: int,
    message: str,
) -> None:
    done = users_cli(*args, stdin=stdin)
    assert done.status == status, done
    assert message in done.err and "Traceback" not in done.err
    assert stored(store_url, "bob") is None  # nothing half-made


def test_a_taken_name_and_a_failed_change_leave_the_user(
    store_url: str, users_cli: UsersCLI
) -> None:
    assert users_cli("add", "bob", "home=/a", stdin="pw\n").status == 0
    again = users_cli("add", "bob", stdin="pw\n")
    assert again.status == 1 and "has a user 'bob' already" in again.err
    bad = users_cli("set", "bob", "home=/b", "perms=q")
    assert bad.status == 2
    user = stored(store_url, "bob")
    assert user is not None and user.settings == {"home": "/a"} and user.version == 1


def test_no_store_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    done = run_cli("users", "list")
    assert done.status == 2 and "no ./mounts.yaml: name the config with -c FILE" in done.err
    (tmp_path / "mounts.yaml").write_text("mounts:\n  /: mem://\n", encoding="utf-8")
    done = run_cli("users", "list")
    assert done.status == 2 and "mounts.yaml has no users_store:" in done.err
    done = run_cli("users", "list", "--store", "mysql://db/users")
    assert done.status == 2 and "unknown database 'mysql'" in done.err


def test_the_store_down_is_exit_status_1(tmp_path: Path) -> None:
    done = run_cli("users", "list", "--store", f"sqlite:///{tmp_path}/no/such/folder/users.db")
    assert done.status == 1 and "folder" in done.err and "does not exist" in done.err


@pytest.mark.postgres
def test_postgresql_down_is_exit_status_1(pg_server: object) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = run_cli("users", "list", "--store", f"postgresql://postgres@127.0.0.1:{port}/x")
    assert (
        done.status == 1
        and done.err.startswith("vfsftp: postgresql://")
        and "Traceback" not in (done.err)
    )


def test_import_from_mounts_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOB_HOME", "/data")
    config = tmp_path / "mounts.yaml"
    config.write_text(
        "users_store: sqlite:///users.db\n"
        "mounts:\n  /data: mem://\n"
        "users:\n"
        "  bob: {password: 'plaintext:pw', home: '${BOB_HOME}', perms: elr}\n"
        "  carol: {password: 'plaintext:pw2', quota: {max_files: 10}}\n"
        "  anonymous: {}\n",
        encoding="utf-8",
    )
    done = run_cli("users", "import", str(config))
    assert done.status == 0, done.err
    assert "imported 2 user(s) into sqlite:///" in done.out and ": bob, carol" in done.out
    assert "remove them from users:" in done.out
    assert "skipped anonymous (anonymous stays in" in done.err
    url = f"sqlite:///{tmp_path / 'users.db'}"
    bob = stored(url, "bob")
    assert bob is not None and verify_password(bob.password, "pw")
    assert bob.password.startswith("$argon2id$")  # plaintext: is hashed on the way in
    # As written: the server fills ${BOB_HOME} in at login, as for mounts.yaml.
    assert bob.settings == {"home": "${BOB_HOME}", "perms": "elr"}

    again = run_cli("users", "import", str(config))
    assert again.status == 0 and "skipped bob (in the store already; --replace" in again.err
    replaced = run_cli("users", "import", str(config), "--replace")
    assert replaced.status == 0 and "imported 2 user(s)" in replaced.out


def test_checks_against_the_configs_mounts(tmp_path: Path) -> None:
    config = tmp_path / "mounts.yaml"
    config.write_text(
        "users_store: sqlite:///users.db\nmounts:\n  /data: osfs://./data\n", encoding="utf-8"
    )
    (tmp_path / "data").mkdir()
    outside = run_cli("users", "add", "bob", "home=/elsewhere", "-c", str(config), stdin="pw\n")
    assert outside.status == 2 and "users.bob.home: '/elsewhere' is outside bob's tree" in (
        outside.err
    )
    missing = run_cli("users", "add", "bob", "home=/data/bob", "-c", str(config), stdin="pw\n")
    assert missing.status == 0 and "warning: '/data/bob' does not exist" in missing.err


def test_the_real_command_reads_the_password_from_stdin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "vfsftp", "users", "add", "bob", "--store", url],
        input="from stdin\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    user = stored(url, "bob")
    assert user is not None and verify_password(user.password, "from stdin")
    listed = subprocess.run(
        [sys.executable, "-m", "vfsftp", "users", "list", "--json", "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["name"] == "bob"
