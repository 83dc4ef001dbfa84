"""Operations: transfer and session logs parsed back, log rotation, the
Prometheus endpoint after a known workload, config reload, event hooks.
(Signals on a real `vfsftp serve` process: test_service.py; S3 metrics and
two instances over one bucket: test_scaleout.py.)"""

from __future__ import annotations

import collections
import ftplib
import io
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, USER, ServerFactory, login, wait_for
from prometheus_client.parser import text_string_to_metric_families

from vfsftp.config.schema import LoggingConfig, load_config
from vfsftp.ops.hooks import Event
from vfsftp.ops.logs import configure_logging, parse_xferlog
from vfsftp.service.lifecycle import reload_server
from vfsftp.testing import ThreadedFTPServer

USERS = {USER: {"password": f"plaintext:{PASSWORD}"}}


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """configure_logging() for a test, undone afterwards."""

    def setup(**keys: Any) -> None:
        configure_logging(LoggingConfig(level="info", **keys))

    yield setup
    configure_logging(LoggingConfig(level="warning"))
    root = logging.getLogger("vfsftp")
    for h in root.handlers[:]:
        root.removeHandler(h)
        h.close()


# ---------------------------------------------------------------- logs


def _workload(srv: ThreadedFTPServer) -> None:
    f = login(srv)
    f.storbinary("STOR my file.txt", io.BytesIO(b"12345"))
    f.voidcmd("TYPE A")
    f.retrlines("RETR my file.txt", lambda line: None)
    f.voidcmd("TYPE I")
    with pytest.raises(ftplib.error_perm):
        f.retrbinary("RETR missing", lambda b: None)  # 550 before any transfer: no line
    # An aborted upload (the data connection stays open until the 426, so
    # that its end cannot pass for a complete file).
    conn = f.transfercmd("STOR cut.bin")
    conn.sendall(b"x" * 1000)
    f.putcmd("ABOR")
    with pytest.raises(ftplib.error_temp, match="426"):
        f.voidresp()
    conn.close()
    f.voidresp()  # 226 for the ABOR
    f.quit()


def test_xferlog_lines_parse_back(
    make_server: ServerFactory, tmp_path: Path, logs: Callable[..., None]
) -> None:
    xfer = tmp_path / "xferlog"
    logs(file=str(tmp_path / "session.log"), transfer_log=str(xfer))  # xferlog: the default
    srv = make_server({"mounts": {"/": "mem://"}, "users": USERS})
    before = time.time()
    _workload(srv)
    srv.stop()
    rows = [parse_xferlog(line) for line in xfer.read_text().splitlines()]
    assert [(r["path"], r["direction"], r["status"]) for r in rows] == [
        ("/my_file.txt", "i", "c"),  # spaces written as '_' (see format_xferlog)
        ("/my_file.txt", "o", "c"),
        ("/cut.bin", "i", "i"),
    ]
    up, down, cut = rows
    assert up["bytes"] == 5 and up["type"] == "b" and down["type"] == "a"
    assert cut["bytes"] <= 1000
    for r in rows:
        assert r["peer"] == "127.0.0.1" and r["user"] == USER and r["access"] == "r"
        assert r["service"] == "ftp" and r["action"] == "_" and r["authuser"] == "*"
        assert r["seconds"] >= 1
        # Local time, whole seconds.
        assert before - 1 <= r["time"] <= time.time() + 1


def test_json_transfer_log_and_session_ids(
    make_server: ServerFactory, tmp_path: Path, logs: Callable[..., None]
) -> None:
    xfer, session = tmp_path / "xfer.jsonl", tmp_path / "session.log"
    logs(file=str(session), transfer_log=str(xfer), transfer_log_format="json")
    srv = make_server({"mounts": {"/": "mem://", "/other": "mem://"}, "users": USERS})
    a, b = login(srv), login(srv)
    a.storbinary("STOR /other/a.bin", io.BytesIO(b"a" * 10))
    b.storbinary("STOR b.bin", io.BytesIO(b"b" * 20))
    a.quit()
    b.quit()
    srv.stop()
    records = [json.loads(line) for line in xfer.read_text().splitlines()]
    assert [(r["path"], r["mount"], r["bytes"], r["outcome"]) for r in records] == [
        ("/other/a.bin", "/other", 10, "ok"),
        ("/b.bin", "/", 20, "ok"),
    ]
    assert records[0]["time"].endswith("Z") and records[0]["verb"] == "STOR"
    # The session log: every line of a session carries that session's id,
    # the same id as its transfers in the JSON log.
    lines = session.read_text().splitlines()
    by_id: dict[str, list[str]] = {}
    for line in lines:
        m = re.search(r"\[([0-9a-f]{8})\]: (.*)$", line)
        if m:
            by_id.setdefault(m.group(1), []).append(m.group(2))
    for rec in records:
        mine = by_id[rec["session"]]
        assert mine[0].startswith("connect ") and mine[-1].startswith("disconnect ")
        assert any(t.startswith("login ok") for t in mine)
    assert records[0]["session"] != records[1]["session"]


def test_log_files_are_reopened_after_rotation(
    make_server: ServerFactory, tmp_path: Path, logs: Callable[..., None]
) -> None:
    """What logrotate does (rename, no copytruncate, no signal): the next
    line goes to a new file under the configured name."""
    xfer = tmp_path / "xferlog"
    logs(file=str(tmp_path / "session.log"), transfer_log=str(xfer))
    srv = make_server({"mounts": {"/": "mem://"}, "users": USERS})
    f = login(srv)
    f.storbinary("STOR one", io.BytesIO(b"1"))
    xfer.rename(tmp_path / "xferlog.1")
    (tmp_path / "session.log").rename(tmp_path / "session.log.1")
    f.storbinary("STOR two", io.BytesIO(b"2"))
    f.quit()
    srv.stop()
    assert [
        parse_xferlog(x)["path"] for x in (tmp_path / "xferlog.1").read_text().splitlines()
    ] == ["/one"]
    assert [parse_xferlog(x)["path"] for x in xfer.read_text().splitlines()] == ["/two"]
    assert "disconnect" in (tmp_path / "session.log").read_text()


# ---------------------------------------------------------------- metrics


def scrape(srv: ThreadedFTPServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    address = srv.server.metrics.address
    assert address is not None
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_after_a_known_workload(make_server: ServerFactory) -> None:
    srv = make_server(
        {"metrics": {"port": 0}, "mounts": {"/": "mem://", "/other": "mem://"}, "users": USERS}
    )
    assert srv.server.metrics.address is not None
    assert srv.server.metrics.address[0] == "127.0.0.1"
    with pytest.raises(ftplib.error_perm, match="530"):
        login(srv, password="wrong")
    f = login(srv)
    f.storbinary("STOR a", io.BytesIO(b"x" * 1000))
    f.storbinary("STOR /other/b", io.BytesIO(b"y" * 300))
    f.retrbinary("RETR a", lambda b: None)
    with pytest.raises(ftplib.error_perm, match="550"):
        f.retrbinary("RETR missing", lambda b: None)
    with pytest.raises(ftplib.error_perm, match="550"):
        f.delete("missing")
    m = scrape(srv)  # while the session is still open
    assert m[("vfsftp_sessions_active", ())] == 1
    assert m[("vfsftp_transfers_active", ())] == 0
    assert m[("vfsftp_sessions_total", ())] == 2
    assert m[("vfsftp_logins_total", (("result", "ok"),))] == 1
    assert m[("vfsftp_logins_total", (("result", "failed"),))] == 1
    xfers = (("direction", "in"), ("mount", "/"), ("outcome", "ok"))
    assert m[("vfsftp_transfers_total", xfers)] == 1
    assert (
        m[("vfsftp_transfers_total", (("direction", "in"), ("mount", "/other"), ("outcome", "ok")))]
        == 1
    )
    assert (
        m[("vfsftp_transfers_total", (("direction", "out"), ("mount", "/"), ("outcome", "ok")))]
        == 1
    )
    assert m[("vfsftp_transfer_bytes_total", (("direction", "in"), ("mount", "/")))] == 1000
    assert m[("vfsftp_transfer_bytes_total", (("direction", "in"), ("mount", "/other")))] == 300
    assert m[("vfsftp_transfer_bytes_total", (("direction", "out"), ("mount", "/")))] == 1000
    assert m[("vfsftp_error_replies_total", (("code", "550"),))] == 2
    assert m[("vfsftp_error_replies_total", (("code", "530"),))] == 1
    f.quit()
    wait_for(lambda: not srv.server.channels, what="the session to end")
    assert scrape(srv)[("vfsftp_sessions_active", ())] == 0


def test_metrics_endpoint_is_off_by_default_and_answers_only_metrics(
    make_server: ServerFactory,
) -> None:
    srv = make_server({"mounts": {"/": "mem://"}, "users": USERS})
    assert srv.server.metrics.address is None
    on = make_server({"metrics": {"port": 0}, "mounts": {"/": "mem://"}, "users": USERS})
    assert on.server.metrics.address is not None
    host, port = on.server.metrics.address
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(f"http://{host}:{port}/other", timeout=10)
    req = urllib.request.Request(f"http://{host}:{port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError, match="405"):
        urllib.request.urlopen(req, timeout=10)


def test_metrics_port_taken_fails_the_start_cleanly() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = ThreadedFTPServer(
            {"metrics": {"port": port}, "mounts": {"/": "mem://"}, "users": USERS}
        )
        with pytest.raises(OSError):
            srv.start()
    # The FTP listener, bound before, was closed again.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(srv.server.addresses[0], timeout=5).close()


def test_metrics_show_quota_usage_and_the_loops_tasks(make_server: ServerFactory) -> None:
    srv = make_server(
        {
            "metrics": {"port": 0},
            "mounts": {"/": "mem://", "/q": {"fs": "mem://", "quota": {"max_bytes": 10_000}}},
            "users": {USER: {"password": f"plaintext:{PASSWORD}", "quota": {"max_files": 9}}},
        }
    )
    mount = (("scope", "mount /q"),)
    user = (("scope", f"user {USER}"),)
    m = scrape(srv)
    # No account is measured before its first use.
    assert ("vfsftp_quota_used_bytes", mount) not in m
    idle_tasks = m[("vfsftp_asyncio_tasks", ())]
    assert idle_tasks >= 1  # the scrape's own
    f = login(srv)
    f.storbinary("STOR /q/a", io.BytesIO(b"x" * 1000))
    f.storbinary("STOR /b", io.BytesIO(b"y" * 10))
    m = scrape(srv)
    assert m[("vfsftp_quota_used_bytes", mount)] == 1000
    assert m[("vfsftp_quota_used_files", mount)] == 1
    assert m[("vfsftp_quota_used_bytes", user)] == 1010
    assert m[("vfsftp_quota_used_files", user)] == 2
    f.delete("/q/a")
    m = scrape(srv)
    assert m[("vfsftp_quota_used_bytes", mount)] == 0
    assert m[("vfsftp_quota_used_files", user)] == 1
    f.quit()
    wait_for(lambda: not srv.server.channels, what="the session to end")
    assert scrape(srv)[("vfsftp_asyncio_tasks", ())] == idle_tasks


# ---------------------------------------------------------------- hooks

EVENTS: list[Event] = []
EVENTS_LOCK = threading.Lock()


def record(event: Event) -> None:
    """A hook (named in the config as test_operations:record)."""
    # In the hooks' own threads: never on the event loop.
    assert threading.current_thread().name.startswith("vfsftp-hook")
    with EVENTS_LOCK:
        EVENTS.append(event)


def explode(event: Event) -> None:
    raise RuntimeError(f"hook failure for {event.name}")


def test_hooks_are_called_with_the_right_arguments(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    EVENTS.clear()
    hook = f"{__name__}:record"
    srv = make_server(
        {
            "hooks": {
                "login": hook,
                "upload": [hook, f"{__name__}:explode"],  # the second one fails
                "download": hook,
                "delete": hook,
                "rename": hook,
                "mkdir": hook,
                "rmdir": hook,
            },
            "metrics": {"port": 0},
            "mounts": {"/": "mem://"},
            "users": USERS,
        }
    )
    f = login(srv)
    f.mkd("d")
    f.storbinary("STOR d/a.txt", io.BytesIO(b"hello"))
    f.retrbinary("RETR d/a.txt", lambda b: None)
    f.rename("d/a.txt", "d/b.txt")
    f.delete("d/b.txt")
    f.rmd("d")
    with pytest.raises(ftplib.error_perm):
        f.delete("nothing")  # failed commands fire nothing
    f.quit()  # the session went on after the failing hook
    wait_for(lambda: len(EVENTS) == 7, what="7 hook calls")
    wait_for(
        lambda: scrape(srv).get(("vfsftp_hook_failures_total", (("event", "upload"),))) == 1,
        what="the failed hook to be counted",
    )
    got = [(e.name, e.user, e.peer, e.path, e.destination, e.size) for e in EVENTS]
    # Hooks run in a pool of 4 threads: no order between them is promised
    # (docs/operations.md); each fired once with the right arguments.
    assert collections.Counter(got) == collections.Counter(
        [
            ("login", USER, "127.0.0.1", "", "", None),
            ("mkdir", USER, "127.0.0.1", "/d", "", None),
            ("upload", USER, "127.0.0.1", "/d/a.txt", "", 5),
            ("download", USER, "127.0.0.1", "/d/a.txt", "", 5),
            ("rename", USER, "127.0.0.1", "/d/a.txt", "/d/b.txt", None),
            ("delete", USER, "127.0.0.1", "/d/b.txt", "", None),
            ("rmdir", USER, "127.0.0.1", "/d", "", None),
        ]
    )
    assert len({e.session for e in EVENTS}) == 1 and EVENTS[0].session != "-"
    assert "hook test_operations:explode for upload /d/a.txt failed" in caplog.text
    assert "RuntimeError: hook failure for upload" in caplog.text


def test_hooks_of_a_confined_user_get_the_server_paths(make_server: ServerFactory) -> None:
    EVENTS.clear()
    hook = f"{__name__}:record"
    srv = make_server(
        {
            "hooks": {"upload": hook, "rename": hook, "mkdir": hook},
            "mounts": {"/home": "mem://"},
            "users": {USER: {"password": f"plaintext:{PASSWORD}", "home": "/home"}},
        }
    )
    f = login(srv)
    f.mkd("d")
    f.storbinary("STOR d/a.txt", io.BytesIO(b"hello"))
    f.rename("d/a.txt", "b.txt")
    f.quit()
    wait_for(lambda: len(EVENTS) == 3, what="3 hook calls")
    assert sorted((e.name, e.path, e.destination) for e in EVENTS) == [  # (any order)
        ("mkdir", "/home/d", ""),
        ("rename", "/home/d/a.txt", "/home/b.txt"),
        ("upload", "/home/d/a.txt", ""),
    ]


def test_a_hook_that_cannot_be_imported_is_a_config_error() -> None:
    from vfsftp import FTPServer, config_from_dict
    from vfsftp.config.schema import ConfigError

    config = config_from_dict({"hooks": {"upload": "no_such_module_x:f"}}, "m.yaml")
    with pytest.raises(ConfigError, match=r"m.yaml: hooks.upload\[0\]: cannot load"):
        FTPServer(config)


# ---------------------------------------------------------------- reload


def _write(
    path: Path,
    users: dict[str, str],
    mounts: dict[str, str],
    extra: tuple[str, ...] = (),
    port: int = 0,
) -> None:
    lines = ["server:", "  listen: 127.0.0.1", f"  port: {port}", *extra, "mounts:"]
    lines += [f"  {p}: {u}" for p, u in mounts.items()]
    lines += ["users:"]
    lines += [f"  {u}:\n    password: plaintext:{pw}" for u, pw in users.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_reload_serves_new_sessions_and_leaves_running_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "mounts.yaml"
    (tmp_path / "disk").mkdir()
    _write(cfg, {USER: PASSWORD}, {"/scratch": "mem://", "/disk": "osfs://./disk"})
    with ThreadedFTPServer(load_config(cfg)) as srv:
        old = login(srv)
        old.storbinary("STOR /scratch/kept.txt", io.BytesIO(b"kept"))
        # A transfer running across the reload finishes normally.
        old.voidcmd("TYPE I")
        conn = old.transfercmd("STOR /disk/during.bin")
        conn.sendall(b"a" * 5000)

        # A valid file: a new user, a new mount, /disk gone.
        (tmp_path / "new").mkdir()
        _write(
            cfg,
            {USER: PASSWORD, "bob": "b0b"},
            {"/scratch": "mem://", "/new": "osfs://./new"},
            ("  banner: reloaded",),
            port=2999,  # needs a restart: the listener stays
        )
        table = srv.server.mounts
        assert srv.call(reload_server(srv.server, lambda: load_config(cfg)))
        assert "reload: server.port changed: applied at the next restart" in caplog.text
        conn.sendall(b"b" * 5000)
        conn.close()
        assert old.voidresp().startswith("226")
        assert (tmp_path / "disk" / "during.bin").stat().st_size == 10_000
        # The running session keeps its tree...
        assert sorted(old.nlst("/")) == ["disk", "scratch"]
        bob = login(srv, "bob", "b0b")
        assert bob.getwelcome() == "220 reloaded"
        # ...new sessions get the new one; the in-memory mount kept its files.
        assert sorted(bob.nlst("/")) == ["new", "scratch"]
        assert bob.nlst("/scratch") == ["kept.txt"]
        bob.storbinary("STOR /new/x", io.BytesIO(b"x"))
        assert (tmp_path / "new" / "x").read_bytes() == b"x"

        # An invalid file: rejected, errors logged, the old config stays.
        cfg.write_text("users:\n  carol:\n    password: secret\n", encoding="utf-8")
        caplog.clear()
        assert not srv.call(reload_server(srv.server, lambda: load_config(cfg)))
        assert "reload rejected, old configuration kept" in caplog.text
        assert "users.carol.password: expected an argon2" in caplog.text
        assert "secret" not in caplog.text
        again = login(srv, "bob", "b0b")
        assert sorted(again.nlst("/")) == ["new", "scratch"]
        # A file that parses but names a missing folder: rejected too.
        _write(cfg, {USER: PASSWORD}, {"/gone": "osfs://./does-not-exist"})
        assert not srv.call(reload_server(srv.server, lambda: load_config(cfg)))
        assert (
            f"mounts./gone.fs: folder {tmp_path}/does-not-exist ('osfs://./does-not-exist') "
            "does not exist; create it, or set create: true" in caplog.text
        )
        # A hook that cannot be imported: rejected too.
        _write(cfg, {USER: PASSWORD}, {"/scratch": "mem://"})
        cfg.write_text(cfg.read_text() + "hooks:\n  upload: no_such_module_x:f\n")
        assert not srv.call(reload_server(srv.server, lambda: load_config(cfg)))
        assert "hooks.upload[0]: cannot load 'no_such_module_x:f'" in caplog.text
        alice = login(srv)
        assert sorted(alice.nlst("/")) == ["new", "scratch"]
        alice.quit()
        disk = next(f for f in table.filesystems() if "disk" in repr(f))
        scratch = srv.server.mounts.global_mounts[0].fs
        assert not disk.isclosed()  # the old session still uses it
        old.quit()
        # The last session on the old table is gone: its filesystems are
        # closed, except those the new table took over.
        wait_for(disk.isclosed, what="the old table's folder to be closed")
        assert not scratch.isclosed() and scratch in table.filesystems()
        for client in (bob, again):
            client.quit()


def test_reload_keeps_per_user_in_memory_mounts(make_server: ServerFactory) -> None:
    from vfsftp import config_from_dict

    data: dict[str, Any] = {
        "server": {"listen": ["127.0.0.1"], "port": 0},
        "mounts": {"/": "mem://"},
        "users": {USER: {"password": f"plaintext:{PASSWORD}", "mounts": {"/mine": "mem://"}}},
    }
    srv = make_server(data)
    f = login(srv)
    f.storbinary("STOR /mine/a.txt", io.BytesIO(b"a"))
    f.storbinary("STOR /b.txt", io.BytesIO(b"b"))
    f.quit()
    data["users"]["carol"] = {"password": "plaintext:c"}
    old = srv.server.mounts
    srv.call(srv.server.reload(config_from_dict(data)))
    assert srv.server.mounts is not old
    # The user's own mount is opened again at the next login: taken over.
    g = login(srv)
    assert g.nlst("/mine") == ["a.txt"] and "b.txt" in g.nlst("/")
    g.quit()
    login(srv, "carol", "c").quit()


def test_every_rejected_reload_counts_as_failed(
    make_server: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """vfsftp_config_reloads_total{result="failed"} counts a file that does
    not validate (a bad permission letter) as it counts one whose folder is
    missing; the old configuration stays in both cases."""
    srv = make_server({"metrics": {"port": 0}, "mounts": {"/": "mem://"}, "users": USERS})
    cfg = tmp_path / "mounts.yaml"
    base = (
        "metrics:\n  port: 0\nmounts:\n  /: mem://\n"
        f"users:\n  {USER}:\n    password: plaintext:{PASSWORD}\n"
    )

    def reload(text: str) -> bool:
        cfg.write_text(text, encoding="utf-8")
        return bool(srv.call(reload_server(srv.server, lambda: load_config(cfg))))

    def reloads() -> tuple[float, float]:
        m = scrape(srv)
        return (
            m.get(("vfsftp_config_reloads_total", (("result", "ok"),)), 0),
            m.get(("vfsftp_config_reloads_total", (("result", "failed"),)), 0),
        )

    assert not reload(base + "    perms: elrx\n")
    assert f"{cfg}: users.{USER}.perms: unknown permission letter(s) 'x'" in caplog.text
    assert reloads() == (0, 1)
    assert not reload(base.replace("mem://", "osfs://./missing"))
    assert reloads() == (0, 2)
    assert reload(base)
    assert reloads() == (1, 2)
    login(srv).quit()


def test_reload_renews_the_tls_certificate_for_new_sessions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import ssl

    import trustme

    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"

    def install(ca: trustme.CA) -> None:
        issued = ca.issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))

    def client(ca: trustme.CA) -> ftplib.FTP_TLS:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        f = ftplib.FTP_TLS(context=ctx, timeout=10)
        f.connect(srv.host, srv.port)
        f.login(USER, PASSWORD)
        f.prot_p()
        return f

    install(old_ca)
    cfg = tmp_path / "mounts.yaml"
    cfg.write_text(
        "server: {listen: 127.0.0.1, port: 0, tls: {certificate: cert.pem, key: key.pem}}\n"
        f"mounts: {{/: 'mem://'}}\nusers: {{{USER}: {{password: 'plaintext:{PASSWORD}'}}}}\n",
        encoding="utf-8",
    )
    with ThreadedFTPServer(load_config(cfg)) as srv:
        running = client(old_ca)
        install(new_ca)  # what certbot's renewal does, then SIGHUP
        assert srv.call(reload_server(srv.server, lambda: load_config(cfg)))
        with pytest.raises(ssl.SSLCertVerificationError):
            client(old_ca).close()
        renewed = client(new_ca)
        renewed.storbinary("STOR a", io.BytesIO(b"a"))
        # The running session's data connections still use its certificate.
        assert running.nlst() == ["a"]
        # A damaged certificate is rejected; the renewed one stays in use.
        cert.write_text("not a certificate\n", encoding="utf-8")
        assert not srv.call(reload_server(srv.server, lambda: load_config(cfg)))
        assert "server.tls.certificate: cannot load" in caplog.text
        again = client(new_ca)
        for f in (running, renewed, again):
            f.quit()


def test_reload_leaves_running_sessions_their_rate_limits(make_server: ServerFactory) -> None:
    from vfsftp import config_from_dict

    data: dict[str, Any] = {
        "server": {"listen": ["127.0.0.1"], "port": 0, "max_download_rate": "64KiB"},
        "mounts": {"/": "mem://"},
        "users": USERS,
    }
    srv = make_server(data)
    before = login(srv)
    data["server"]["max_download_rate"] = "1MiB"
    srv.call(srv.server.reload(config_from_dict(data)))
    after = login(srv)

    async def user_rates() -> list[list[int]]:
        """The user's download bucket rates after each session, oldest
        first, asks for its throttle."""
        out = []
        for ch in sorted(srv.server.channels, key=lambda c: c.started):
            assert srv.server.throttle_for(ch, "down") is not None
            out.append(sorted(rate for (name, _, rate) in srv.server._buckets if name == USER))
        return out

    # The session from before the reload shares the old bucket; the new one
    # gets a bucket of the new rate.
    assert srv.call(user_rates()) == [[64 * 1024], [64 * 1024, 1024 * 1024]]
    before.quit()
    after.quit()


def test_reload_keeps_one_quota_account_per_storage(make_server: ServerFactory) -> None:
    """Sessions from before and after a reload write to the same storage:
    they must charge the same quota account, or each side gets the whole
    allowance."""
    from vfsftp import config_from_dict

    data: dict[str, Any] = {
        "server": {"listen": ["127.0.0.1"], "port": 0},
        "mounts": {"/": "mem://", "/q": {"fs": "mem://", "quota": {"max_files": 2}}},
        "users": USERS,
    }
    srv = make_server(data)
    before = login(srv)
    before.storbinary("STOR /q/one", io.BytesIO(b"1"))
    old_quota = srv.server.mounts.global_mounts[1].quota
    data["users"]["bob"] = {"password": "plaintext:b0b"}
    srv.call(srv.server.reload(config_from_dict(data)))
    assert srv.server.mounts.global_mounts[1].quota is old_quota
    after = login(srv, "bob", "b0b")
    after.storbinary("STOR /q/two", io.BytesIO(b"2"))
    for client in (before, after):  # both sides see the same account: full
        with pytest.raises(ftplib.error_perm, match="552"):
            client.storbinary("STOR /q/three", io.BytesIO(b"3"))
    # New limits: a new account.
    data["mounts"]["/q"]["quota"] = {"max_files": 3}
    srv.call(srv.server.reload(config_from_dict(data)))
    assert srv.server.mounts.global_mounts[1].quota is not old_quota
    before.quit()
    after.quit()


def test_concurrent_reloads_are_applied_one_after_the_other(make_server: ServerFactory) -> None:
    import asyncio

    from vfsftp import config_from_dict

    def config(n: int) -> Any:
        mounts = {"/": "mem://", **{f"/m{i}": "mem://" for i in range(n)}}
        return config_from_dict({"server": {"port": 0}, "mounts": mounts, "users": USERS})

    srv = make_server({"mounts": {"/": "mem://"}, "users": USERS})
    opened: list[Any] = []
    observe = srv.server.metrics.observe_fs

    def record(filesystem: Any) -> None:
        opened.append(filesystem)
        observe(filesystem)

    srv.server.metrics.observe_fs = record  # type: ignore[method-assign]

    async def both() -> None:
        await asyncio.gather(srv.server.reload(config(1)), srv.server.reload(config(2)))

    srv.call(both())
    final = srv.server.mounts
    assert [m.path for m in final.global_mounts] == ["/", "/m0", "/m1"]
    # The second reload built on the first (took its /m0 over): no table
    # was lost, every filesystem opened is in use or closed.
    in_use = final.filesystems()
    assert len(opened) == 2
    assert all(any(f is g for g in in_use) or f.isclosed() for f in opened)
    f = login(srv)
    assert sorted(f.nlst("/")) == ["m0", "m1"]
    f.quit()
