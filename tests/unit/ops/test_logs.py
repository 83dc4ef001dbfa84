"""Pure parts of the operations features, as tables: xferlog lines (format
and parse), JSON lines, the start-up summary, the new config keys, hook
loading."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from vfsftp.config.schema import ConfigError, config_from_dict
from vfsftp.ops.hooks import Event, load_hooks
from vfsftp.ops.logs import (
    TransferRecord,
    escape_controls,
    format_json,
    format_transfer_line,
    format_xferlog,
    parse_xferlog,
)
from vfsftp.service.lifecycle import startup_summary

# 2026-03-05 07:08:09.250 UTC
T = 1772694489.25


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def rec(**changes: Any) -> TransferRecord:
    base: dict[str, Any] = dict(
        time=T,
        seconds=2.4,
        peer="192.0.2.7",
        bytes=1234,
        path="/data/report.csv",
        binary=True,
        direction="o",
        anonymous=False,
        user="alice",
        complete=True,
    )
    base.update(changes)
    return TransferRecord(**base)


# (record, line, the file name as written)
XFERLOG = [
    (
        rec(),
        "Thu Mar  5 07:08:09 2026 2 192.0.2.7 1234 /data/report.csv b _ o r alice ftp 0 * c",
        "/data/report.csv",
    ),
    # sub-second transfers count as 1 second; ASCII; upload; incomplete
    (
        rec(seconds=0.01, binary=False, direction="i", complete=False),
        "Thu Mar  5 07:08:09 2026 1 192.0.2.7 1234 /data/report.csv a _ i r alice ftp 0 * i",
        "/data/report.csv",
    ),
    # anonymous, IPv6 peer, a day with two digits, spaces in the name
    # (written as '_', as ProFTPD does: analysers split on whitespace)
    (
        rec(
            anonymous=True,
            user="anonymous",
            peer="::1",
            path="/pub/my file.txt",
            time=T + 86400 * 10,
        ),
        "Sun Mar 15 07:08:09 2026 2 ::1 1234 /pub/my_file.txt b _ o a anonymous ftp 0 * c",
        "/pub/my_file.txt",
    ),
    # control characters cannot split the record; a user name with a space
    (
        rec(path="/a\nb\tc\x7f", user="jo doe"),
        "Thu Mar  5 07:08:09 2026 2 192.0.2.7 1234 /a_b_c_ b _ o r jo_doe ftp 0 * c",
        "/a_b_c_",
    ),
    # nor C1 controls, separators or bidi controls, in the name or the user
    (
        rec(path="/x\x9by\u2028z\u202e", user="m\r\x1b[0m"),
        "Thu Mar  5 07:08:09 2026 2 192.0.2.7 1234 /x_y_z_ b _ o r m__[0m ftp 0 * c",
        "/x_y_z_",
    ),
    # an incomplete transfer's fault follows the fourteen fields
    (
        rec(direction="i", complete=False, outcome="abort", fault="client-gone", reason="x y"),
        "Thu Mar  5 07:08:09 2026 2 192.0.2.7 1234 /data/report.csv b _ i r alice ftp 0 * i"
        " client-gone",
        "/data/report.csv",
    ),
    # an upload's checksum follows them too: a word with a colon, never a
    # fault keyword
    (
        rec(direction="i", checksum_algorithm="SHA-256", checksum="ab" * 32),
        "Thu Mar  5 07:08:09 2026 2 192.0.2.7 1234 /data/report.csv b _ i r alice ftp 0 * c"
        " sha-256:" + "ab" * 32,
        "/data/report.csv",
    ),
    (
        rec(direction="i", checksum_algorithm="CRC32", checksum="0badf00d"),
        "Thu Mar  5 07:08:09 2026 2 192.0.2.7 1234 /data/report.csv b _ i r alice ftp 0 * c"
        " crc32:0badf00d",
        "/data/report.csv",
    ),
]


@pytest.mark.parametrize(("record", "line", "name"), XFERLOG)
def test_format_xferlog(record: TransferRecord, line: str, name: str) -> None:
    assert format_xferlog(record) == line


@pytest.mark.parametrize(("record", "line", "name"), XFERLOG)
def test_parse_xferlog_round_trip(record: TransferRecord, line: str, name: str) -> None:
    got = parse_xferlog(line + "\n")
    assert got["time"] == int(record.time)
    assert got["bytes"] == record.bytes and got["peer"] == record.peer
    assert got["direction"] == record.direction
    assert got["status"] == ("c" if record.complete else "i")
    assert got["type"] == ("b" if record.binary else "a")
    assert got["access"] == ("a" if record.anonymous else "r")
    assert got["path"] == name
    assert got["fault"] == record.fault
    assert (got["checksum_algorithm"], got["checksum"]) == (
        record.checksum_algorithm,
        record.checksum,
    )


def test_parse_xferlog_with_fault_and_checksum() -> None:
    # (both at once does not happen today: only a complete upload is
    # logged with its checksum; the parser still takes them in that order)
    line = "Thu Mar  5 07:08:09 2026 2 192.0.2.7 1 /a b _ i r alice ftp 0 * i short md5:" + "0" * 32
    got = parse_xferlog(line)
    assert (got["fault"], got["checksum_algorithm"], got["checksum"]) == ("short", "MD5", "0" * 32)


def test_parse_xferlog_of_a_server_that_keeps_spaces() -> None:
    # wu-ftpd and vsftpd write names as they are: the fields at both ends
    # still delimit them.
    line = "Thu Mar  5 07:08:09 2026 3 10.0.0.1 77 /in/a  b c.txt a C i g guest ftp 1 bob i"
    got = parse_xferlog(line)
    assert (got["path"], got["action"], got["access"], got["auth"], got["authuser"]) == (
        "/in/a  b c.txt",
        "C",
        "g",
        "1",
        "bob",
    )


@pytest.mark.parametrize(
    "line",
    [
        "",
        'STOR user=alice peer=1.2.3.4:5 path="/a" bytes=1 secs=0.1 result=ok',
        "Thu Mar  5 07:08:09 2026 2 192.0.2.7 x /a b _ o r alice ftp 0 * c",  # size
        "Thu Mar  5 07:08:09 2026 2 192.0.2.7 1 /a b _ x r alice ftp 0 * c",  # direction
        "Thu Mar  5 07:08:09 2026 2 192.0.2.7 1 /a b _ o r alice ftp 0 *",  # no status
    ],
)
def test_parse_xferlog_rejects(line: str) -> None:
    with pytest.raises(ValueError, match="not an xferlog line"):
        parse_xferlog(line)


def test_json_line() -> None:
    data = json.loads(format_json(rec(path='/é "q"', session="ab12cd34", mount="/data")))
    assert data == {
        "time": "2026-03-05T07:08:09.250Z",
        "seconds": 2.4,
        "peer": "192.0.2.7",
        "bytes": 1234,
        "path": '/é "q"',
        "binary": True,
        "direction": "o",
        "anonymous": False,
        "user": "alice",
        "complete": True,
        "verb": "RETR",
        "outcome": "ok",
        "session": "ab12cd34",
        "mount": "/data",
        "fault": "",
        "reason": "",
        "checksum_algorithm": "",
        "checksum": "",
    }
    stored = rec(direction="i", verb="STOR", checksum_algorithm="SHA-256", checksum="ef" * 32)
    data = json.loads(format_json(stored))
    assert (data["checksum_algorithm"], data["checksum"]) == ("SHA-256", "ef" * 32)
    failed = rec(complete=False, outcome="fail", fault="reset", reason="reset by peer")
    data = json.loads(format_json(failed))
    assert (data["outcome"], data["fault"], data["reason"]) == ("fail", "reset", "reset by peer")


TEXT_LINES = [
    (
        rec(),
        'RETR user=alice peer=192.0.2.7 path="/data/report.csv" bytes=1234 secs=2.400 result=ok',
    ),
    (
        rec(
            verb="STOR",
            complete=False,
            outcome="abort",
            fault="client-gone",
            reason='the client "x" left',
        ),
        'STOR user=alice peer=192.0.2.7 path="/data/report.csv" bytes=1234 secs=2.400'
        ' result=abort fault=client-gone reason="the client \\"x\\" left"',
    ),
    (
        rec(verb="STOR", checksum_algorithm="MD5", checksum="c" * 32),
        'STOR user=alice peer=192.0.2.7 path="/data/report.csv" bytes=1234 secs=2.400'
        " result=ok checksum=md5:" + "c" * 32,
    ),
]


@pytest.mark.parametrize(("record", "line"), TEXT_LINES)
def test_text_line(record: TransferRecord, line: str) -> None:
    r = record
    text = format_transfer_line(
        r.verb,
        r.user,
        r.peer,
        r.path,
        r.bytes,
        r.seconds,
        r.outcome,
        r.fault,
        r.reason,
        f"{r.checksum_algorithm.lower()}:{r.checksum}" if r.checksum else "",
    )
    assert text == line


def test_json_line_escapes_what_json_would_leave_raw() -> None:
    path = "/a\nb\x7f\x85c\u2028\u202e.txt"
    line = format_json(rec(path=path, user="u\r\x1b"))
    assert all(c.isprintable() for c in line), line
    assert json.loads(line)["path"] == path  # still the exact name
    assert json.loads(line)["user"] == "u\r\x1b"


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("plain /path/é.txt", "plain /path/é.txt"),
        ("mallory\r\n2026 INFO login ok user=admin", "mallory\\r\\n2026 INFO login ok user=admin"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("tab\there", "tab\\there"),
        ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
        ("line\u2028sep", "line\\u2028sep"),
    ],
)
def test_escape_controls(text: str, logged: str) -> None:
    assert escape_controls(text) == logged


# ---------------------------------------------------------------- summary


def _cfg(**data: Any) -> Any:
    return config_from_dict(data, "mounts.yaml")


SUMMARIES = [
    (
        _cfg(),
        [("127.0.0.1", 2121)],
        [],
        None,
        [
            "vfsftp serving mounts.yaml",
            "  listening  ftp://127.0.0.1:2121",
            "  mounts     none (an empty, read-only root)",
            "  users      0, anonymous off",
            "  TLS        off",
        ],
    ),
    (
        _cfg(
            mounts={
                "/scratch": "mem://",
                "/pub": {"fs": "osfs:///srv/pub", "read_only": True},
                "/archive": {"fs": "s3://bucket/prefix", "region": "eu-west-1"},
                "/remote": "ftp://user:secret@example.com/dir",
            },
            users={
                "a": {"password": "plaintext:x"},
                "b": {"password": "plaintext:y"},
                "anonymous": {},
            },
        ),
        [("127.0.0.1", 21), ("::1", 21)],
        [("127.0.0.1", 990)],
        ("127.0.0.1", 9121),
        [
            "vfsftp serving mounts.yaml",
            "  listening  ftp://127.0.0.1:21, ftp://[::1]:21, ftps://127.0.0.1:990",
            "  mounts     /archive  s3    bucket/prefix",
            "             /pub      osfs  /srv/pub (read-only)",
            "             /remote   ftp   ***@example.com/dir",
            "             /scratch  mem",
            "  users      2, anonymous on",
            "  TLS        off",
            "  metrics    http://127.0.0.1:9121/metrics",
        ],
    ),
]


@pytest.mark.parametrize(("config", "addrs", "implicit", "metrics", "expected"), SUMMARIES)
def test_startup_summary(
    config: Any,
    addrs: list[tuple[str, int]],
    implicit: list[tuple[str, int]],
    metrics: tuple[str, int] | None,
    expected: list[str],
) -> None:
    lines = startup_summary(config, addrs, implicit, metrics)
    assert lines[:-1] == expected
    assert "SIGHUP" in lines[-1]
    assert not any("secret" in line for line in lines)


def test_startup_summary_tls() -> None:
    from pathlib import Path

    cert = Path(__file__).resolve()  # any existing file: validation does not open it
    config = _cfg(
        server={"tls": {"certificate": str(cert), "implicit_port": 990, "require_tls": True}}
    )
    assert "  TLS        on (explicit AUTH TLS + implicit, required)" in startup_summary(
        config, [("127.0.0.1", 21)]
    )


# ---------------------------------------------------------------- config keys


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"logging": {"transfer_log_format": "csv"}},
            "logging.transfer_log_format: input should be 'xferlog', 'json' or 'text'",
        ),
        ({"metrics": {"port": 70000}}, "metrics.port: expected a number <= 65535, got 70000"),
        (
            {"metrics": {"listen": "1.2.3.4:9"}},
            "metrics.listen: expected an address without a port",
        ),
        ({"metrics": {"path": "/m"}}, "metrics.path: unknown key; expected one of listen, port"),
        (
            {"hooks": {"upload": "nocolon"}},
            "hooks.upload: expected 'package.module:function', got 'nocolon'",
        ),
        (
            {"hooks": {"upload": ["a:b", "x y:z"]}},
            "hooks.upload: expected 'package.module:function', got 'x y:z'",
        ),
        (
            {"hooks": {"uploaded": "a:b"}},
            "hooks.uploaded: unknown key; did you mean upload?",
        ),
        (
            {"server": {"shutdown_timeout": -1}},
            "server.shutdown_timeout: expected a number >= 0, got -1",
        ),
    ],
)
def test_new_keys_errors(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "mounts.yaml")
    assert any(line.startswith(f"mounts.yaml: {problem}") for line in info.value.problems), (
        info.value.problems
    )


def test_new_keys_defaults_and_values() -> None:
    c = _cfg()
    assert c.logging.transfer_log_format == "xferlog"
    assert c.metrics.port is None and c.metrics.listen == "127.0.0.1"
    assert c.server.shutdown_timeout == 30
    assert c.hooks.upload == ()
    c = _cfg(hooks={"upload": "pkg.mod:fn", "login": ["a:b", "c.d:e.f"]}, metrics={"port": "9121"})
    assert c.hooks.upload == ("pkg.mod:fn",) and c.hooks.login == ("a:b", "c.d:e.f")
    assert c.metrics.port == 9121


# ---------------------------------------------------------------- hooks


def sample_hook(event: Event) -> None:
    pass


NOT_CALLABLE = 42


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("no_such_module_for_vfsftp:f", "ModuleNotFoundError"),
        (f"{__name__}:missing", "AttributeError"),
        (f"{__name__}:NOT_CALLABLE", "TypeError"),
    ],
)
def test_load_hooks_errors(ref: str, problem: str) -> None:
    config = _cfg(hooks={"delete": ["os.path:join", ref]})
    with pytest.raises(ConfigError) as info:
        load_hooks(config.hooks, "mounts.yaml")
    (line,) = info.value.problems
    assert line.startswith(f"mounts.yaml: hooks.delete[1]: cannot load {ref!r}: {problem}")


def test_load_hooks_resolves_dotted_attributes() -> None:
    config = _cfg(hooks={"upload": f"{__name__}:sample_hook", "login": "os:path.join"})
    table = load_hooks(config.hooks, "mounts.yaml")
    assert table["upload"] == [(f"{__name__}:sample_hook", sample_hook)]
    import os

    assert table["login"][0][1] is os.path.join


# ---------------------------------------------------------------- vfsftp reload


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("", "does not hold a process id"),
        ("12ab\n", "does not hold a process id"),
        ("1\n", "does not hold a process id"),  # never signal init
    ],
)
def test_reload_command_errors(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    from vfsftp.cli import main

    pid_file = tmp_path / "vfsftp.pid"
    if content is not None:
        pid_file.write_text(content)
    assert main(["reload", "--pid-file", str(pid_file)]) == 1
    assert message in capsys.readouterr().err


def test_reload_command_needs_the_pid_file(capsys: pytest.CaptureFixture[str]) -> None:
    from vfsftp.cli import main

    assert main(["reload"]) == 2
    assert "--pid-file" in capsys.readouterr().err
