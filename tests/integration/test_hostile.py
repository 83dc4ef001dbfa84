"""Hostile and broken clients against a live server: garbage lines, Telnet
sequences, invalid UTF-8, CR/LF inside arguments, floods of pipelined
commands from a client that does not read, slowloris half lines, and a
hypothesis fuzz of the control connection; huge listings and clients that
hang up on them, connections that never log in, replies that would leak,
and the attacks of issue 23 (a rename around an override, anonymous
outside its home, user names that are paths, forged log lines, setuid
modes). Afterwards the server still serves a normal session and nothing has
leaked (conftest's checks). The same attacks in depth: test_access
(confinement, renames, names), test_limits (concurrent guesses, login
timing), test_quota (memory mounts), test_server (idle timer)."""

from __future__ import annotations

import contextlib
import ftplib
import io
import re
import select
import socket
import threading
import time
from typing import Any

import pytest
from conftest import PASSWORD, USER, Control, EntryCounter, ServerFactory, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vfsftp.storage.sessionfs
from vfsftp.session.commands import REGISTRY
from vfsftp.testing import ThreadedFTPServer

REPLY_LINE = re.compile(rb"^\d{3}[ -]")


def _config(server: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "server": {"data_timeout": 0.2, "ban": None, **(server or {})},
        "mounts": {"/": "mem://"},
        "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
    }


def _normal_session(srv: ThreadedFTPServer) -> None:
    f = ftplib.FTP(timeout=10)
    f.connect(srv.host, srv.port)
    f.login(USER, PASSWORD)
    f.storbinary("STOR check.txt", io.BytesIO(b"still fine"))
    buf = io.BytesIO()
    f.retrbinary("RETR check.txt", buf.write)
    assert buf.getvalue() == b"still fine"
    assert "check.txt" in f.nlst()
    f.quit()


def _replies(data: bytes) -> list[list[bytes]]:
    """Split a stream of replies, checking the framing of each (RFC 959
    §4.2: one line ``ddd text``, or ``ddd-`` ... ``ddd text``)."""
    lines = data.split(b"\r\n")
    assert lines[-1] == b"", f"reply stream ends in a partial line: {lines[-1]!r}"
    out: list[list[bytes]] = []
    i = 0
    while i < len(lines) - 1:
        first = lines[i]
        assert REPLY_LINE.match(first), f"not a reply line: {first!r}"
        reply = [first]
        i += 1
        if first[3:4] == b"-":
            while True:
                assert i < len(lines) - 1, "unterminated multi-line reply"
                reply.append(lines[i])
                i += 1
                if reply[-1][:3] == first[:3] and reply[-1][3:4] == b" ":
                    break
        out.append(reply)
    return out


def _logged_in(srv: ThreadedFTPServer) -> Control:
    c = Control(srv.host, srv.port)
    c.login()
    return c


# ------------------------------------------------------------------ garbage lines

GARBAGE = [
    # (line as sent, expected reply code)
    (b"\xff\xf4\xff\xf2NOOP", 200),  # Telnet IP + DM before a command (RFC 959 §4.1.3)
    (b"NO\xff\xffOP", 500),  # an escaped IAC is a data byte
    (b"\xff\xfb\x01NOOP", 200),  # option negotiation (IAC WILL ECHO) is dropped
    (b"MKD caf\xe9", 257),  # Latin-1 from an old client: taken as such
    (b"MKD \xc3\x28", 257),  # invalid UTF-8
    (b"MKD a\rb", 553),  # CR inside an argument
    (b"RNFR x\r200 forged reply", 553),  # ...which must not forge a reply line
    (b"CWD a\x00b", 553),  # NUL
    (b"\x00\x00\x00", 500),
    (b"\x1b[31mNOOP", 500),  # terminal escapes
    (b"   ", None),  # blank lines are ignored, as pyftpdlib and vsftpd do
    (b"NOOP " + b"x" * 7000, 501),  # long but under the limit
    (b"SIZE " + b"../" * 1000 + b"etc/passwd", 550),  # jailed: no such file
    (b"PORT 127,0,0,1,300,1", 501),
    (b"EPRT |9|::1|5|", 522),
    (b"REST -1", 501),
    (b"TYPE \x7f", 504),
    (b"SITE " + b"\xff" * 10, 501),
]


@pytest.mark.parametrize(("line", "code"), GARBAGE, ids=[repr(g[0][:24]) for g in GARBAGE])
def test_garbage_line_gets_a_clear_reply(
    make_server: ServerFactory, line: bytes, code: int | None
) -> None:
    srv = make_server(_config())
    c = _logged_in(srv)
    try:
        c.sock.sendall(line + b"\r\nNOOP\r\n")
        got = c.reply()
        if code is None:
            assert got[0] == 200  # only the NOOP was answered
        else:
            assert got[0] == code, got
            assert c.reply()[0] == 200
    finally:
        c.close()
    _normal_session(srv)


def test_overlong_line_without_newline_is_bounded(make_server: ServerFactory) -> None:
    srv = make_server(_config())
    c = _logged_in(srv)
    try:
        c.sock.sendall(b"A" * (4 << 20))  # 4 MiB and no end of line
        assert c.reply() == (500, ["500 Command line too long"])
        c.sock.sendall(b"\r\nNOOP\r\n")
        assert c.reply()[0] == 200
    finally:
        c.close()
    _normal_session(srv)


def test_flood_of_pipelined_commands_from_a_client_that_does_not_read(
    make_server: ServerFactory,
) -> None:
    srv = make_server(_config())
    c = _logged_in(srv)
    channel = next(iter(srv.server.channels))
    # A small kernel send buffer on the server's side, so that it fills with
    # replies at once and the server's own buffering is what is measured
    # (loopback otherwise absorbs megabytes).
    channel.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    count = 100_000
    sender = threading.Thread(target=c.sock.sendall, args=(b"NOOP\r\n" * count,))
    sender.start()
    try:
        # The server answers until its own output buffer passes 64 KiB (the
        # transport then pauses the channel's writing), then waits for the
        # client and stops reading: memory stays bounded. (Polled on the
        # pause, not the size: the kernel may take some of the buffer after
        # the pause, between two polls.)
        deadline = time.monotonic() + 20
        while not channel._write_paused:
            assert time.monotonic() < deadline, "the server never had to buffer"
            time.sleep(0.01)
        assert channel.transport.get_write_buffer_size() <= 128 * 1024
        _normal_session(srv)  # others are served meanwhile
        assert channel.transport.get_write_buffer_size() <= 128 * 1024
        # Once the client reads, every command gets its reply, in order.
        expected = b"200 NOOP ok\r\n" * count
        got = bytearray()
        while len(got) < len(expected):
            chunk = c.sock.recv(1 << 20)
            assert chunk
            got += chunk
        assert got == expected
    finally:
        sender.join(30)
        c.close()


def test_a_client_that_never_reads_its_replies_loses_its_session(
    make_server: ServerFactory,
) -> None:
    """The same flood, and the client never reads: the idle timeout ends
    the session, and its close waits for unread replies only 2 s before
    it cuts the connection (it waited for the client for ever)."""
    srv = make_server(_config({"idle_timeout": 1}))
    c = _logged_in(srv)
    channel = next(iter(srv.server.channels))
    channel.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sock.settimeout(30)
    flood = b"NOOP\r\n" * 100_000

    def send() -> None:
        with contextlib.suppress(OSError):  # the server cuts the connection
            c.sock.sendall(flood)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_for(
            lambda: channel.transport.get_write_buffer_size() >= 64 * 1024, "replies to pile up"
        )
        wait_for(lambda: not srv.server.channels, "the session to end", timeout=15)
    finally:
        c.sock.close()
        sender.join(30)
        c.close()
    _normal_session(srv)


def test_slowloris_half_line_times_out(make_server: ServerFactory) -> None:
    srv = make_server(_config({"idle_timeout": 0.5}))
    c = Control(srv.host, srv.port)
    started = time.monotonic()
    try:
        # One byte of a never-ending line every 50 ms: bytes arrive, but no
        # command does, so the session is idle and is closed.
        for _ in range(100):  # at most 5 s of dripping
            if _readable(c.sock):
                break  # the server has spoken (its 421)
            try:
                c.sock.sendall(b"N")
            except OSError:
                break
            time.sleep(0.05)  # the attacker's pace, not a synchronisation
        assert c.reply()[0] == 421
        assert 0.5 <= time.monotonic() - started < 5
    finally:
        c.close()
    wait_for(lambda: not srv.server.channels, "the session to end", timeout=5)


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


# ------------------------------------------------------------------ fuzz

_VERBS = [*sorted(REGISTRY), "XYZZY", "user", "Retr"]
_ARGS = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"/", b"..", b"a/b", b"*", b"-la", b"ALL", b"1", b"I", b"A N", b"|2|::1|9|"]),
    st.text(max_size=32).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
_LINE = st.one_of(
    st.binary(max_size=120),
    st.builds(
        lambda v, sep, a: v.encode() + sep + a,
        st.sampled_from(_VERBS),
        st.sampled_from([b" ", b"", b"  "]),
        _ARGS,
    ),
)
_ENDING = st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b"\xff\xf4\xff\xf2\r\n"])


@st.composite
def _session_bytes(draw: st.DrawFn) -> tuple[bool, bytes]:
    login = draw(st.booleans())
    lines = draw(st.lists(st.tuples(_LINE, _ENDING), min_size=1, max_size=12))
    data = b"".join(line + end for line, end in lines)
    if draw(st.booleans()):
        data += draw(st.binary(max_size=40))  # a trailing half line
    return login, data


@pytest.mark.timeout(120)
def test_fuzzed_control_connections(make_server: ServerFactory) -> None:
    srv = make_server(_config({"max_connections_per_ip": 512}))
    host, port = srv.host, srv.port

    @settings(
        max_examples=500,
        deadline=None,
        derandomize=True,  # the same inputs on every run: a failure reproduces
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_session_bytes())
    def one_session(case: tuple[bool, bytes]) -> None:
        login, data = case
        with socket.create_connection((host, port), timeout=10) as sock:
            stream = b""
            if login:
                sock.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)  # EOF: the server ends the session
            except OSError:
                pass  # the server may have closed first (QUIT, 421)
            while True:
                try:
                    chunk = sock.recv(1 << 16)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                stream += chunk
        replies = _replies(stream)
        assert replies and replies[0][0].startswith(b"220")
        for reply in replies:
            # 451 is the server's "internal error": an unexpected exception.
            assert not reply[0].startswith(b"451 Requested action aborted: local error"), reply

    one_session()
    wait_for(lambda: not srv.server.channels, "the sessions of the fuzz to end", timeout=5)
    _normal_session(srv)


# ------------------------------------------------------------------ huge listings


@pytest.mark.parametrize("backend", ["mem", "osfs"])
def test_large_listings_are_streamed_whole(
    make_server: ServerFactory, backend: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past LISTING_BATCH entries a listing is streamed batch by batch (here
    batches of 7, so that 100 files take the streamed way): every entry
    arrives once, in LIST, NLST and MLSD, with the special entries too."""
    import vfsftp.storage.sessionfs

    monkeypatch.setattr(vfsftp.storage.sessionfs, "LISTING_BATCH", 7)
    url = "mem://" if backend == "mem" else f"osfs://{tmp_path}"
    srv = make_server({**_config(), "mounts": {"/": url}})
    names = {f"f{i:03d}" for i in range(100)}
    for name in names:
        srv.fs.writebytes(f"/{name}", b"x")
    srv.fs.makedir("/sub")
    f = ftplib.FTP(timeout=10)
    f.connect(srv.host, srv.port)
    f.login(USER, PASSWORD)
    try:
        assert sorted(f.nlst()) == sorted(names | {"sub"})
        lines: list[str] = []
        f.retrlines("LIST", lines.append)
        assert sorted(line.split()[-1] for line in lines) == sorted(names | {"sub"})
        facts = dict(f.mlsd("/", ["type", "size", "unique"]))
        assert facts["."]["type"] == "cdir"
        assert {k for k, v in facts.items() if v["type"] == "file"} == names
        assert len({v["unique"] for v in facts.values()}) == len(facts)
        lines = []
        f.retrlines("LIST /sub", lines.append)
        assert lines == []
    finally:
        f.quit()


#: where /big, the huge folder, is: (mounts, the user's permission
#: overrides, the mount whose filesystem holds it and its folder there)
HUGE_FOLDERS: dict[str, tuple[dict[str, Any], dict[str, str], str, str]] = {
    "mem": ({"/": "mem://"}, {}, "/", "/big"),
    "osfs": ({"/": "osfs://{tmp}"}, {}, "/", "/big"),
    # a read-only mount (its filesystem is wrapped)
    "read-only": ({"/": "mem://", "/big": {"fs": "mem://", "read_only": True}}, {}, "/big", "/"),
    # a folder with a mount point directly below it, shadowing a name of
    # the folder's own
    "mount below": (
        {"/": "mem://", "/big/file-with-a-longish-name-000007.dat": "mem://"},
        {},
        "/",
        "/big",
    ),
    # a folder with a permission override directly below it
    "override below": (
        {"/": "mem://"},
        {"/big/file-with-a-longish-name-000003.dat": "elr"},
        "/",
        "/big",
    ),
}


@pytest.mark.parametrize("where", list(HUGE_FOLDERS))
def test_huge_listing_in_bounded_memory_stops_when_the_client_is_gone(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, where: str
) -> None:
    """The attack: LIST of a 200,000-entry folder built 20 MB on the event
    loop, and the server went on building after the client left. Here
    30,000 entries, in memory, in a local folder, on a read-only mount, and
    in folders with a mount point or a permission override below them: the
    server holds a batch at a time, and a client that hangs up stops the
    listing."""
    import tracemalloc

    mounts, overrides, seed_mount, folder = HUGE_FOLDERS[where]
    config = _config()
    config["mounts"] = {
        k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in mounts.items()
    }
    config["users"][USER]["permissions"] = overrides
    srv = make_server(config)
    count = 30_000
    if where == "osfs":
        (tmp_path / "big").mkdir()
        for i in range(count):
            (tmp_path / "big" / f"file-with-a-longish-name-{i:06d}.dat").touch()
    else:
        seed = srv.filesystems[seed_mount]
        seed.makedir(folder, recreate=True)
        for i in range(count):
            seed.create(f"{folder.rstrip('/')}/file-with-a-longish-name-{i:06d}.dat")
    made = EntryCounter(monkeypatch)
    c = _logged_in(srv)
    try:
        # A whole listing, read and thrown away: what the server allocates.
        tracemalloc.start()
        try:
            host, port = _pasv(c)
            with socket.create_connection((host, port), timeout=10) as data:
                c.send("LIST /big")
                assert c.reply()[0] == 150
                total = 0
                while chunk := data.recv(1 << 16):
                    total += len(chunk)
            assert c.reply()[0] == 226
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert made.n == count
        assert total > 2_000_000
        # (a batch at a time: 1.2 MB here; the whole listing built was 16.6 MB)
        assert peak < 3_000_000, f"{peak / 2**20:.1f} MiB for a {total / 2**20:.1f} MiB listing"
        # A client that hangs up after the first bytes: the rest is never
        # made. The listing is held at the start of its third batch (the
        # first two may be made before the first byte goes out) until the
        # client is gone, so how much the server's socket buffer could take
        # meanwhile (megabytes on loopback, more time on a loaded host) does
        # not count: after the hang-up at most the batch in hand is made.
        batch = vfsftp.storage.sessionfs.LISTING_BATCH
        made.hold_at(2 * batch + 1)
        host, port = _pasv(c)
        data = socket.create_connection((host, port), timeout=10)
        data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send("MLSD /big")
        assert c.reply()[0] == 150
        assert data.recv(100)
        data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        data.close()  # (RST: unread data)
        made.release()
        assert c.reply()[0] in (426, 451)
        assert made.n <= 3 * batch, made.n
    finally:
        c.close()


def _pasv(c: Control) -> tuple[str, int]:
    code, lines = c.cmd("EPSV")
    assert code == 229, lines
    port = int(lines[0].split("|")[-2])
    return c.sock.getpeername()[0], port


# ------------------------------------------------------------------ no login


def test_a_connection_that_never_logs_in_is_closed(make_server: ServerFactory) -> None:
    """NOOP every 0.1 s keeps a session from being idle, not from having to
    log in: after login_timeout it is closed (it held a slot forever)."""
    srv = make_server(_config({"login_timeout": 0.5, "idle_timeout": 60}))
    c = Control(srv.host, srv.port)
    started = time.monotonic()
    try:
        for _ in range(100):  # at most 10 s of NOOPs
            c.send("NOOP")
            code, lines = c.reply()
            if code == 421:
                assert lines[0].startswith("421 Login timeout (0.5 seconds)"), lines
                break
            assert code == 200
            time.sleep(0.1)  # the client's pace, not a synchronisation
        else:
            pytest.fail("never timed out")
        assert 0.5 <= time.monotonic() - started < 5
    finally:
        c.close()
    wait_for(lambda: not srv.server.channels, "the session to end", timeout=5)
    # A session that logs in is not concerned, and REIN starts the clock again.
    c = _logged_in(srv)
    try:
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            assert c.cmd("NOOP")[0] == 200
            time.sleep(0.1)
        assert c.cmd("REIN")[0] == 220
        started = time.monotonic()
        code = 200
        while code == 200 and time.monotonic() - started < 5:
            code = c.cmd("NOOP")[0]
            time.sleep(0.1)
        assert code == 421
    finally:
        c.close()


# ------------------------------------------------------------------ replies say less


@pytest.mark.parametrize("line", ["PASS\tsecret-123", "PASSsecret-123", "PASS\x0bsecret-123"])
def test_a_malformed_pass_line_is_not_echoed(make_server: ServerFactory, line: str) -> None:
    srv = make_server(_config())
    c = Control(srv.host, srv.port)
    try:
        c.cmd(f"USER {USER}")
        code, lines = c.cmd(line)
        assert code == 500
        assert "secret" not in " ".join(lines).lower(), lines
    finally:
        c.close()


def test_mlst_unique_tells_nothing_of_the_disk(make_server: ServerFactory, tmp_path: Any) -> None:
    import os

    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_bytes(b"x")
    os.link(root / "f", root / "hard")
    srv = make_server({**_config(), "mounts": {"/": f"osfs://{root}"}})
    st = os.stat(root / "f")

    def unique(path: str) -> str:
        c = _logged_in(srv)
        try:
            code, lines = c.cmd(f"MLST {path}")
        finally:
            c.close()
        assert code == 250
        facts = dict(f.split("=", 1) for f in lines[1].strip().split(";") if "=" in f)
        return facts["unique"]

    got = unique("/f")
    for number in (f"{st.st_ino:x}", str(st.st_ino), f"{st.st_dev:x}g"):
        assert number not in got
    assert unique("/f") == got == unique("/hard")  # stable, and the same file is one
    assert unique("/") != got


# ------------------------------------------------------------------ issue 23's attacks


def test_renaming_a_parent_does_not_carry_files_out_of_their_override(
    make_server: ServerFactory,
) -> None:
    srv = make_server(
        {
            **_config(),
            "users": {
                USER: {"password": f"plaintext:{PASSWORD}", "permissions": {"/projects/hr": ""}}
            },
        }
    )
    srv.fs.makedirs("/projects/hr")
    srv.fs.writebytes("/projects/hr/salaries.txt", b"secret")
    c = _logged_in(srv)
    try:
        assert c.cmd("RETR /projects/hr/salaries.txt")[0] in (425, 550)
        assert c.cmd("RNFR /projects")[0] == 350
        code, lines = c.cmd("RNTO /projects_x")
        assert code == 550 and "Rename refused" in lines[0], lines
        assert c.cmd("SIZE /projects_x/hr/salaries.txt")[0] == 550
    finally:
        c.close()
    assert srv.fs.readbytes("/projects/hr/salaries.txt") == b"secret"


def test_anonymous_sees_only_its_home(make_server: ServerFactory) -> None:
    srv = make_server(
        {
            **_config(),
            "mounts": {"/files": "mem://", "/s3": "mem://", "/scratch": "mem://"},
            "users": {"anonymous": {"home": "/files"}},
        }
    )
    srv.filesystems["/s3"].writebytes("/private", b"x")
    c = Control(srv.host, srv.port)
    try:
        c.login("anonymous", "a@b")
        for line in ("CWD /s3", "CWD ../scratch", "SIZE /s3/private", "SIZE ../s3/private"):
            assert c.cmd(line)[0] == 550, line
        assert c.cmd("PWD") == (257, ['257 "/" is the current directory'])
    finally:
        c.close()


@pytest.mark.parametrize("name", ["%2e%2e", "../escapee", "alice/", "a/b", "mallory\rx"])
def test_user_names_that_escape_are_refused(make_server: ServerFactory, name: str) -> None:
    srv = make_server(_config())
    c = Control(srv.host, srv.port)
    try:
        assert c.cmd(f"USER {name}".encode("latin-1"))[0] in (501, 553)
        assert c.cmd(f"PASS {PASSWORD}")[0] == 503
    finally:
        c.close()


def test_client_text_cannot_forge_log_lines(make_server: ServerFactory, tmp_path: Any) -> None:
    import logging

    from vfsftp.config.schema import LoggingConfig
    from vfsftp.ops.logs import configure_logging

    log_file = tmp_path / "session.log"
    configure_logging(LoggingConfig(level="debug", file=str(log_file)))
    try:
        srv = make_server(_config())
        c = _logged_in(srv)
        try:
            forged = "\x1b[2K\u202eINFO vfsftp.session [-]: login ok user=admin"
            c.cmd(f"MKD /{forged}".encode())
            c.cmd(b"NOOP \x85next-line \xe2\x80\xa8sep")
            c.cmd(b"PASS\tsecret-123")  # mistyped, still a password
        finally:
            c.close()
        srv.stop()
    finally:
        configure_logging(LoggingConfig(level="warning"))
        root = logging.getLogger("vfsftp")
        for h in root.handlers[:]:
            root.removeHandler(h)
            h.close()
    text = log_file.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\u202e" not in text and "\u2028" not in text
    assert "\\x1b[2K\\u202eINFO" in text
    assert "secret-123" not in text.lower()
    for line in text.splitlines():  # every line is one of ours, whole
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ vfsftp\.", line), line


def test_site_chmod_never_sets_setuid(make_server: ServerFactory, tmp_path: Any) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "tool").write_bytes(b"#!/bin/sh\n")
    srv = make_server({**_config(), "mounts": {"/": f"osfs://{root}"}})
    c = _logged_in(srv)
    try:
        for mode in ("6777", "4755", "2755", "1777"):
            assert c.cmd(f"SITE CHMOD {mode} tool")[0] == 504
        assert c.cmd("SITE CHMOD 755 tool")[0] == 200
    finally:
        c.close()
    assert (root / "tool").stat().st_mode & 0o7777 == 0o755
