"""The session/transfer log handler (observability.LineWriter) and the
formatter's fast layouts: a line per record written at once, whole under
concurrent writers, reopened after rotation, never dropped for its text."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vfsftp.ops.logs import (
    _FORMAT,
    LineWriter,
    _Formatter,
    _TransferFormatter,
    log_handler,
    session_id,
)


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("vfsftp.session", logging.INFO, "x.py", 1, msg, args, exc_info)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[LineWriter]:
    w = LineWriter(str(tmp_path / "session.log"))
    w.setFormatter(_Formatter(_FORMAT))
    yield w
    w.close()


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    ("fmt", "msg", "args"),
    [
        (_FORMAT, "connect %s", ("127.0.0.1:2121",)),
        (_FORMAT, "100% done", ()),  # no args: no % formatting (as the stdlib)
        (_FORMAT, "login ok %s user=%s", ("[::1]:5", "b\u00f6b")),
        ("%(asctime)s %(message)s", "RETR user=%s", ("a",)),
        ("%(levelname)s %(message)s", "not one of ours: the stdlib formats it", ()),
    ],
)
def test_fast_layouts_match_the_stdlib_formatter(fmt: str, msg: str, args: tuple[str]) -> None:
    ours = _Formatter(fmt)
    rec = record(msg, *args)
    rec.session = "ab12cd34"
    fast = ours.format(rec)
    # It leaves the attributes the stdlib's format leaves, for other handlers.
    assert rec.message == (msg % args if args else msg)
    if "asctime" in fmt:
        assert rec.asctime == ours.formatTime(rec)
    assert fast == logging.Formatter.format(ours, rec)


def test_a_record_with_a_traceback_goes_the_stdlib_way() -> None:
    rec = record("failed", exc=True)
    rec.session = "-"
    text = _Formatter(_FORMAT).format(rec)
    assert text.splitlines()[0].endswith("[-]: failed")
    assert "ValueError: boom" in text


@pytest.mark.parametrize("exc", [False, True])
def test_what_a_client_sent_cannot_forge_a_line(writer: LineWriter, exc: bool) -> None:
    forged = "mallory\r\n2026-01-01 00:00:00,000 INFO vfsftp.session [-]: login ok user=admin"
    writer.handle(record("login failed %s user=%s", "1.2.3.4:5", forged, exc=exc))
    got = lines(Path(writer.path or ""))
    assert got[0].endswith(
        "login failed 1.2.3.4:5 user=mallory\\r\\n2026-01-01 00:00:00,000 INFO "
        "vfsftp.session [-]: login ok user=admin"
    )
    if not exc:
        assert len(got) == 1
    assert not any(line.startswith("2026-01-01") for line in got)


def test_each_record_is_in_the_file_when_logging_returns(writer: LineWriter) -> None:
    path = Path(writer.path or "")
    token = session_id.set("0badcafe")
    try:
        writer.handle(record("connect %s", "1.2.3.4:5"))
        assert lines(path)[-1].endswith(" INFO vfsftp.session [0badcafe]: connect 1.2.3.4:5")
        writer.handle(record("disconnect"))
        assert len(lines(path)) == 2  # no flush, no close: written by then
    finally:
        session_id.reset(token)


def test_text_that_cannot_be_encoded_is_escaped_not_dropped(writer: LineWriter) -> None:
    # A client's file name in invalid UTF-8 keeps its bytes as surrogates.
    writer.handle(record("RETR path=%s", "/caf\udce9.txt"))
    assert lines(Path(writer.path or ""))[-1].endswith("RETR path=/caf\\udce9.txt")


@pytest.mark.parametrize("how", ["rename", "unlink"])
def test_a_rotated_file_is_replaced_by_a_new_one(
    writer: LineWriter, tmp_path: Path, how: str
) -> None:
    path = tmp_path / "session.log"
    writer.handle(record("one"))
    if how == "rename":
        path.rename(tmp_path / "session.log.1")
        assert lines(tmp_path / "session.log.1")[-1].endswith("one")
    else:
        path.unlink()
    writer.handle(record("two"))
    assert [x.rsplit(" ", 1)[-1] for x in lines(path)] == ["two"]


def test_lines_from_many_threads_stay_whole(writer: LineWriter) -> None:
    payload = "x" * 3000  # several lines of it exceed a pipe's atomic size

    def work(n: int) -> None:
        for i in range(200):
            writer.handle(record("t%d-%d %s", n, i, payload))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = lines(Path(writer.path or ""))
    assert len(got) == 6 * 200
    assert all(line.endswith(payload) and " [-]: t" in line for line in got)
    assert len({line.split(": ", 1)[1].split()[0] for line in got}) == 6 * 200


def test_a_closed_writer_writes_nothing(writer: LineWriter) -> None:
    writer.handle(record("before"))
    writer.close()
    writer.handle(record("after"))  # no write to a closed (or reused) descriptor
    assert [x.rsplit(" ", 1)[-1] for x in lines(Path(writer.path or ""))] == ["before"]


def test_standard_error_without_a_descriptor_gets_a_stream_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buf = io.StringIO()  # as a test runner's capture may be
    monkeypatch.setattr(sys, "stderr", buf)
    handler = log_handler(None)
    assert not isinstance(handler, LineWriter)
    handler.setFormatter(_Formatter(_FORMAT))
    token = session_id.set("feedf00d")
    try:
        handler.handle(record("connect %s", "x"))
    finally:
        session_id.reset(token)
    assert buf.getvalue().endswith(" INFO vfsftp.session [feedf00d]: connect x\n")


def test_standard_error_with_a_descriptor_is_written_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "stderr"
    with open(target, "w") as f:
        monkeypatch.setattr(sys, "stderr", f)
        handler = log_handler("-")
        assert isinstance(handler, LineWriter)
        handler.setFormatter(_TransferFormatter("text"))
        handler.handle(record("RETR user=%s", "a"))
        handler.close()  # standard error itself stays open
        os.write(f.fileno(), b"still open\n")
    got = target.read_text().splitlines()
    assert got[0].endswith(" RETR user=a") and got[1] == "still open"
