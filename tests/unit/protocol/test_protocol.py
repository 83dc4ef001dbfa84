"""The FTP wire format (vfsftp/protocol.py), table-driven.

As in h11's tests, anything stateful that reads a stream (LineBuffer, the
TYPE A converters) is fed the same input whole, one byte at a time and split
at every position, and must give the same answer each way.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence

import fs._ftp_parse
import pytest

from vfsftp.protocol.arguments import (
    format_epsv,
    format_mdtm,
    format_pasv,
    parse_allo,
    parse_eprt,
    parse_mfmt_time,
    parse_port,
)
from vfsftp.protocol.ascii import AsciiDecoder, AsciiEncoder, join_lines
from vfsftp.protocol.errors import ProtocolError
from vfsftp.protocol.lines import TOO_LONG, Command, LineBuffer, parse_command, strip_telnet
from vfsftp.protocol.listings import (
    MLST_DEFAULT_FACTS,
    MLST_FACTS,
    ListEntry,
    feat_mlst_line,
    format_list_line,
    format_mlsx,
    mlsx_formatter,
    parse_opts_mlst,
)
from vfsftp.protocol.replies import (
    Reply,
    encode_reply_first,
    encode_reply_last,
    encode_reply_middle,
    quote_path,
)

NOW = float(calendar.timegm((2024, 6, 15, 12, 0, 0)))  # Sat 15 Jun 2024 12:00:00 UTC
DAY = 24 * 3600


# --------------------------------------------------------------------------
# helpers: the same bytes, chunked in different ways
# --------------------------------------------------------------------------


def splits(data: bytes) -> list[list[bytes]]:
    """``data`` whole, one byte at a time, and cut in two at every position."""
    out = [[data], [data[i : i + 1] for i in range(len(data))]]
    out += [[data[:i], data[i:]] for i in range(len(data) + 1)]
    return out


def feed_all(buf: LineBuffer, chunks: Iterable[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        out += buf.feed(chunk)
    return out


def encode_chunks(chunks: Iterable[bytes]) -> bytes:
    enc = AsciiEncoder()
    return b"".join(enc.encode(c) for c in chunks)


def decode_chunks(chunks: Iterable[bytes]) -> bytes:
    dec = AsciiDecoder()
    return b"".join(dec.decode(c) for c in chunks) + dec.flush()


# --------------------------------------------------------------------------
# LineBuffer
# --------------------------------------------------------------------------

LINES: list[tuple[bytes, list[object]]] = [
    (b"USER alice\r\n", [b"USER alice"]),
    (b"USER alice\n", [b"USER alice"]),  # bare LF accepted
    (b"NOOP\r\nNOOP\nPWD\r\n", [b"NOOP", b"NOOP", b"PWD"]),
    (b"NOOP\r\nPWD", [b"NOOP"]),  # the unfinished line waits
    (b"PWD", []),
    (b"\r\n", [b""]),
    (b"\n\n", [b"", b""]),
    (b"RETR a\rb\r\n", [b"RETR a\rb"]),  # a CR inside a line is data
    (b"RETR a\r\r\n", [b"RETR a\r"]),  # only one CR belongs to the CRLF
    (b"STOR  x \r\n", [b"STOR  x "]),  # spaces kept
    (b"RETR \xff\xfe\r\n", [b"RETR \xff\xfe"]),
]


@pytest.mark.parametrize(("data", "expected"), LINES)
def test_line_buffer_splits_lines(data: bytes, expected: list[object]) -> None:
    for chunks in splits(data):
        assert feed_all(LineBuffer(), chunks) == expected, chunks


# max_line=8: exactly 8 bytes is fine, 9 is too long, whatever the line end.
LONG_LINES: list[tuple[bytes, list[object]]] = [
    (b"x" * 8 + b"\r\n", [b"x" * 8]),
    (b"x" * 8 + b"\n", [b"x" * 8]),
    (b"x" * 9 + b"\n", [TOO_LONG]),
    (b"x" * 9 + b"\r\n", [TOO_LONG]),
    (b"x" * 7 + b"\r\r\n", [b"x" * 7 + b"\r"]),
    (b"x" * 8 + b"\r\r\n", [TOO_LONG]),
    (b"x" * 9 + b"\r\nNOOP\r\n", [TOO_LONG, b"NOOP"]),
    (b"x" * 100 + b"\nNOOP\n", [TOO_LONG, b"NOOP"]),  # reported once, then recovers
    (b"NOOP\r\n" + b"x" * 100 + b"\r\nPWD\r\n", [b"NOOP", TOO_LONG, b"PWD"]),
    (b"x" * 100 + b"\n" + b"y" * 100 + b"\nQUIT\n", [TOO_LONG, TOO_LONG, b"QUIT"]),
    (b"x" * 100, [TOO_LONG]),  # no need to wait for the end to know
]


@pytest.mark.parametrize(("data", "expected"), LONG_LINES)
def test_line_buffer_too_long(data: bytes, expected: list[object]) -> None:
    for chunks in splits(data):
        assert feed_all(LineBuffer(max_line=8), chunks) == expected, chunks


def test_line_buffer_too_long_reported_once_and_bounded() -> None:
    buf = LineBuffer(max_line=8)
    seen = feed_all(buf, [b"x" * 5] * 1000)
    assert seen == [TOO_LONG]
    assert buf.clear() <= 9  # the discarded line is not kept in memory
    buf = LineBuffer(max_line=8)
    assert feed_all(buf, [b"x" * 5] * 1000 + [b"\r\nNOOP\r\n"]) == [TOO_LONG, b"NOOP"]


@pytest.mark.parametrize(
    ("before", "dropped", "after", "expected"),
    [
        # RFC 4217 §4.1: plaintext pipelined behind AUTH TLS is thrown away
        (b"AUTH TLS\r\nUSER evil", 9, b"USER alice\r\n", [b"USER alice"]),
        (b"AUTH TLS\r\n", 0, b"PBSZ 0\r\n", [b"PBSZ 0"]),
        (b"AUTH TLS\r\nUSER x\r", 7, b"\n", [b""]),
        # clear() also ends the discarding of an overlong line
        (b"x" * 20, 0, b"NOOP\r\n", [b"NOOP"]),
        (b"x" * 20, 0, b"\r\n", [b""]),
    ],
)
def test_line_buffer_clear(
    before: bytes, dropped: int, after: bytes, expected: list[object]
) -> None:
    buf = LineBuffer(max_line=16)
    buf.feed(before)
    assert buf.clear() == dropped
    assert buf.feed(after) == expected


# --------------------------------------------------------------------------
# Telnet bytes and command parsing
# --------------------------------------------------------------------------

IAC, IP, DM, WILL, WONT, DO, DONT = b"\xff", b"\xf4", b"\xf2", b"\xfb", b"\xfc", b"\xfd", b"\xfe"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"ABOR", b"ABOR"),
        (IAC + IP + IAC + DM + b"ABOR", b"ABOR"),  # RFC 959 §4.1.3
        (IAC + IP + DM + b"ABOR", b"ABOR"),  # DM sent as urgent data, inline
        (DM + b"ABOR", b"ABOR"),
        (IAC + IP + b"ABOR", b"ABOR"),
        (b"RETR a" + IAC + IAC + b"b", b"RETR a\xffb"),  # escaped 0xFF is data
        (IAC + WILL + b"\x01NOOP", b"NOOP"),  # WILL ECHO: option byte goes too
        (IAC + DO + b"\x03NOOP", b"NOOP"),
        (IAC + WONT + b"\x01" + IAC + DONT + b"\x01NOOP", b"NOOP"),
        (IAC + DO + b"\xffNOOP", b"NOOP"),  # the option byte may be 0xFF
        (b"NOOP" + IAC, b"NOOP"),  # lone trailing IAC
        (IAC + WILL, b""),  # truncated negotiation
        (b"RETR caf" + DM, b"RETR caf\xf2"),  # 0xF2 inside a Latin-1 name is data
        (b"", b""),
    ],
)
def test_strip_telnet(line: bytes, expected: bytes) -> None:
    assert strip_telnet(line) == expected


@pytest.mark.parametrize(
    ("line", "verb", "arg"),
    [
        (b"USER alice", "USER", "alice"),
        (b"user alice", "USER", "alice"),
        (b"NoOp", "NOOP", ""),
        (b"CWD", "CWD", ""),
        (b"CWD ", "CWD", ""),
        (b"STOR  two  spaces ", "STOR", " two  spaces "),  # argument kept exactly
        (b"SITE CHMOD 644 a b", "SITE", "CHMOD 644 a b"),
        (b"PASS Secret Pass", "PASS", "Secret Pass"),  # only the verb is upper-cased
        (b"RETR caf\xc3\xa9.txt", "RETR", "caf\u00e9.txt"),  # UTF-8 (RFC 2640)
        (b"RETR caf\xe9.txt", "RETR", "caf\u00e9.txt"),  # Latin-1 fallback
        (b"RETR \xe6\x97\xa5\xe6\x9c\xac", "RETR", "\u65e5\u672c"),
        (IAC + IP + IAC + DM + b"abor", "ABOR", ""),
        (b"", "", ""),
    ],
)
def test_parse_command(line: bytes, verb: str, arg: str) -> None:
    cmd = parse_command(line)
    assert (cmd.verb, cmd.arg) == (verb, arg)
    assert cmd == Command(verb, arg)


def test_parse_command_raw_is_line_without_telnet() -> None:
    assert parse_command(IAC + IP + b"ABOR").raw == b"ABOR"


# --------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------

REPLIES: list[tuple[Reply, bytes]] = [
    (Reply(200, "OK"), b"200 OK\r\n"),
    (Reply(226), b"226 \r\n"),
    (Reply(211, ()), b"211 \r\n"),
    (Reply(550, "caf\u00e9"), b"550 caf\xc3\xa9\r\n"),
    (Reply(257, ('"/a" created',)), b'257 "/a" created\r\n'),
    (Reply(211, ("Features:", " MDTM", "End")), b"211-Features:\r\n MDTM\r\n211 End\r\n"),
    (Reply(211, "a\nb\nc"), b"211-a\r\nb\r\n211 c\r\n"),
    (Reply(214, ("a", "b")), b"214-a\r\n214 b\r\n"),
    # a middle line starting with three digits is indented (RFC 959 §4.2)
    (Reply(211, ("a", "123 fake", "c")), b"211-a\r\n 123 fake\r\n211 c\r\n"),
    (Reply(211, ("a", "211 fake end", "c")), b"211-a\r\n 211 fake end\r\n211 c\r\n"),
    (Reply(211, ("a", "211-x", "c")), b"211-a\r\n 211-x\r\n211 c\r\n"),
    (Reply(211, ("a", "211", "c")), b"211-a\r\n 211\r\n211 c\r\n"),
    (Reply(211, ("a", "2112", "c")), b"211-a\r\n 2112\r\n211 c\r\n"),
    (Reply(211, ("a", "21 x", "c")), b"211-a\r\n21 x\r\n211 c\r\n"),
    (Reply(211, ("a", "x211 y", "c")), b"211-a\r\nx211 y\r\n211 c\r\n"),
    (Reply(211, ("a", "", "c")), b"211-a\r\n\r\n211 c\r\n"),
    # CR and LF inside a line would end the reply early: replaced
    (Reply(550, "bad\rname"), b"550 bad name\r\n"),
    (Reply(550, ("x\r\n226 fake",)), b"550 x  226 fake\r\n"),
    (Reply(250, ("a\nb", "c\rd")), b"250-a b\r\n250 c d\r\n"),
]


def read_reply(wire: bytes) -> tuple[str, list[str], bytes]:
    """What ftplib's getmultiline does: (code, lines, unread bytes)."""
    lines = wire.split(b"\r\n")
    first = lines.pop(0).decode()
    got = [first]
    code = first[:3]
    if first[3:4] == "-":
        while True:
            nxt = lines.pop(0).decode()
            got.append(nxt)
            if nxt[:3] == code and nxt[3:4] != "-":
                break
    return code, got, b"\r\n".join(lines)


@pytest.mark.parametrize(("reply", "wire"), REPLIES)
def test_reply_encode(reply: Reply, wire: bytes) -> None:
    encoded = reply.encode()
    assert encoded == wire
    # a client reads exactly one reply, with every line, and nothing is left
    code, got, rest = read_reply(encoded)
    assert code == f"{reply.code:03d}"
    assert len(got) == len(reply.lines)
    assert rest == b""


@pytest.mark.parametrize(("reply", "wire"), [(r, w) for r, w in REPLIES if len(r.lines) > 1])
def test_reply_encoded_in_parts(reply: Reply, wire: bytes) -> None:
    """A multi-line reply sent in parts (STAT of a large directory, its
    middle lines a batch at a time) is the same bytes as sent whole."""
    first, *middle, last = reply.lines
    parts = [encode_reply_first(reply.code, first)]
    parts += [encode_reply_middle(middle[i : i + 2]) for i in range(0, len(middle), 2)]
    parts.append(encode_reply_last(reply.code, last))
    assert b"".join(parts) == wire
    assert encode_reply_middle([]) == b""


@pytest.mark.parametrize(
    ("code", "is_error"), [(200, False), (331, False), (399, False), (421, True), (550, True)]
)
def test_reply_is_error(code: int, is_error: bool) -> None:
    assert Reply(code, "x").is_error is is_error


@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("/", '"/"'),
        ("/pub/a b", '"/pub/a b"'),
        ('/say "hi"', '"/say ""hi"""'),
        ('"', '""""'),
        ("", '""'),
    ],
)
def test_quote_path(path: str, quoted: str) -> None:
    assert quote_path(path) == quoted


# --------------------------------------------------------------------------
# PORT / PASV
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("127,0,0,1,4,1", ("127.0.0.1", 1025)),
        ("192,168,1,2,255,255", ("192.168.1.2", 65535)),
        ("10,0,0,2,0,21", ("10.0.0.2", 21)),
        ("1,2,3,4,0,1", ("1.2.3.4", 1)),
        (" 10,0,0,2,0,21 ", ("10.0.0.2", 21)),
        ("010,000,000,002,000,021", ("10.0.0.2", 21)),
    ],
)
def test_parse_port_good(arg: str, expected: tuple[str, int]) -> None:
    assert parse_port(arg) == expected


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("", "h1,h2,h3,h4,p1,p2"),
        ("1,2,3,4,5", "h1,h2,h3,h4,p1,p2"),
        ("1,2,3,4,5,6,7", "h1,h2,h3,h4,p1,p2"),
        ("1.2.3.4.5.6", "h1,h2,h3,h4,p1,p2"),
        ("256,0,0,1,4,1", "0-255"),
        ("1,2,3,4,256,1", "0-255"),
        ("1,2,3,4,1,256", "0-255"),
        ("1,2,3,4,-1,1", "0-255"),
        ("1,2,3,4,+1,1", "0-255"),
        ("1,2,3,4,1_0,1", "0-255"),
        ("1,2,3,a,4,1", "numbers"),
        ("1,2,3,4,,1", "numbers"),
        ("1,2,3,4,0x1,1", "numbers"),
        ("1,2,3,4,0,0", "port must not be 0"),
    ],
)
def test_parse_port_bad(arg: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_port(arg)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("0", 0), ("1000", 1000), (" 1000 ", 1000), ("1000 R 512", 1000), ("7 r 1", 7)],
)
def test_parse_allo_good(arg: str, expected: int) -> None:
    assert parse_allo(arg) == expected


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("abc", "whole numbers"),
        ("-1", "whole numbers"),
        ("1.5", "whole numbers"),
        ("\uff11\uff12", "whole numbers"),  # fullwidth digits: isdigit() says yes
        ("10 R", "byte count"),
        ("10 X 5", "byte count"),
        ("1 2", "byte count"),
        ("10 R x", "whole numbers"),
    ],
)
def test_parse_allo_bad(arg: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_allo(arg)


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("127.0.0.1", 1025, "Entering Passive Mode (127,0,0,1,4,1)."),
        ("10.0.0.2", 65535, "Entering Passive Mode (10,0,0,2,255,255)."),
        ("10.0.0.2", 256, "Entering Passive Mode (10,0,0,2,1,0)."),
        ("10.0.0.2", 255, "Entering Passive Mode (10,0,0,2,0,255)."),
    ],
)
def test_format_pasv(host: str, port: int, text: str) -> None:
    assert format_pasv(host, port) == text
    inner = text[text.index("(") + 1 : text.index(")")]
    assert parse_port(inner) == (host, port)


# --------------------------------------------------------------------------
# EPRT / EPSV (RFC 2428)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("|1|132.235.1.2|6275|", (1, "132.235.1.2", 6275)),
        ("|2|1080::8:800:200C:417A|5282|", (2, "1080::8:800:200c:417a", 5282)),
        ("|2|::1|65535|", (2, "::1", 65535)),
        ("|1|127.0.0.1|1|", (1, "127.0.0.1", 1)),
        ("!1!10.0.0.1!21!", (1, "10.0.0.1", 21)),
        ("#2#::1#21#", (2, "::1", 21)),
        ("~1~10.0.0.1~021~", (1, "10.0.0.1", 21)),
    ],
)
def test_parse_eprt_good(arg: str, expected: tuple[int, str, int]) -> None:
    assert parse_eprt(arg) == expected


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        # unsupported protocol: the caller answers 522 (RFC 2428 §2)
        ("|3|1.2.3.4|21|", "522 "),
        ("|0|1.2.3.4|21|", "522 "),
        ("||1.2.3.4|21|", "522 "),
        ("|01|1.2.3.4|21|", "522 "),
        # everything else is a syntax error (501)
        ("|2|1.2.3.4|21|", "does not match"),
        ("|1|::1|21|", "does not match"),
        ("|1|::ffff:1.2.3.4|21|", "does not match"),
        ("|1|1.2.3.4|0|", "1-65535"),
        ("|1|1.2.3.4|65536|", "1-65535"),
        ("|1|1.2.3.4|-21|", "1-65535"),
        ("|1|1.2.3.4|x|", "1-65535"),
        ("|1|1.2.3.4||", "1-65535"),
        ("|1|1.2.3.4|\u00b2|", "1-65535"),  # superscript two: isdigit() but not int()
        ("|1|1.2.3.4|\uff12\uff11|", "1-65535"),  # fullwidth digits
        ("|1|host.example|21|", "not an IP"),
        ("|1|1.2.3|21|", "not an IP"),
        ("|1|256.1.1.1|21|", "not an IP"),
        ("a1a1.2.3.4a21a", "delimiter"),
        ("11.2.3.4121111", "delimiter"),
        (" 1 1.2.3.4 21 ", "delimiter"),
        ("\u00a71\u00a71.2.3.4\u00a721\u00a7", "delimiter"),
        ("|1|1.2.3.4|21", "needs"),
        ("|1|1.2.3.4|21|x", "needs"),
        ("|1|1.2.3.4|21||", "needs"),
        ("|1|", "needs"),
        ("", "needs"),
    ],
)
def test_parse_eprt_bad(arg: str, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_eprt(arg)
    text = str(info.value)
    assert message in text
    assert text.startswith("522 ") == (message == "522 ")


@pytest.mark.parametrize(
    ("port", "text"),
    [
        (6446, "Entering Extended Passive Mode (|||6446|)"),
        (1, "Entering Extended Passive Mode (|||1|)"),
    ],
)
def test_format_epsv(port: int, text: str) -> None:
    assert format_epsv(port) == text


# --------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0, "19700101000000"),
        (NOW, "20240615120000"),
        (NOW + 0.999, "20240615120000"),  # truncated, never rounded up
        (calendar.timegm((2024, 2, 29, 23, 59, 59)), "20240229235959"),
        (calendar.timegm((1999, 12, 31, 23, 59, 59)), "19991231235959"),
    ],
)
def test_format_mdtm(epoch: float, text: str) -> None:
    assert format_mdtm(epoch) == text


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("20240615120000", NOW),
        (" 20240615120000 ", NOW),
        ("20240615120000.5", NOW + 0.5),
        ("20240615120000.123", NOW + 0.123),
        ("20240615120000.000", NOW),
        ("19700101000000", 0.0),
        ("20240229000000", calendar.timegm((2024, 2, 29, 0, 0, 0))),
    ],
)
def test_parse_mfmt_time_good(text: str, epoch: float) -> None:
    assert parse_mfmt_time(text) == pytest.approx(epoch)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "YYYYMMDDHHMMSS"),
        ("2024061512000", "YYYYMMDDHHMMSS"),
        ("202406151200000", "YYYYMMDDHHMMSS"),
        ("2024061512000a", "YYYYMMDDHHMMSS"),
        ("2024-06-15 12:00", "YYYYMMDDHHMMSS"),
        ("+2024061512000", "YYYYMMDDHHMMSS"),
        ("20240615120000.x", "YYYYMMDDHHMMSS"),
        ("20240615120000.5.5", "YYYYMMDDHHMMSS"),
        ("20240615120000.\u00b2", "YYYYMMDDHHMMSS"),  # isdigit() but not float()
        (
            "\u0662\u0660\u0662\u0664\u0660\u0666\u0661\u0665\u0661\u0662\u0660\u0660\u0660\u0660",
            "YYYYMMDDHHMMSS",
        ),  # Arabic-Indic digits
        ("20241301000000", "not a valid date"),
        ("20240001000000", "not a valid date"),
        ("20240600000000", "not a valid date"),
        ("20230230000000", "not a valid date"),
        ("20230229000000", "not a valid date"),  # 2023 is no leap year
        ("20240615250000", "not a valid date"),
        ("20240615126000", "not a valid date"),
        ("00000101000000", "not a valid date"),
    ],
)
def test_parse_mfmt_time_bad(text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_mfmt_time(text)


@pytest.mark.parametrize("epoch", [0, NOW, NOW + 0.75, 4102444799])
def test_mdtm_round_trip(epoch: float) -> None:
    assert parse_mfmt_time(format_mdtm(epoch)) == int(epoch)


# --------------------------------------------------------------------------
# LIST lines
# --------------------------------------------------------------------------

LIST_LINES: list[tuple[ListEntry, str]] = [
    (
        ListEntry("a.txt", False, 1234, mtime=NOW - 3600),
        "-rw-r--r--   1 owner    group        1234 Jun 15 11:00 a.txt",
    ),
    (
        ListEntry("docs", True, 0, mtime=NOW - 2 * DAY),
        "drwxr-xr-x   1 owner    group           0 Jun 13 12:00 docs",
    ),
    (  # older than six months: the year instead of the time
        ListEntry("old.tar", False, 7, mtime=float(calendar.timegm((2020, 1, 5, 8, 30, 0)))),
        "-rw-r--r--   1 owner    group           7 Jan  5  2020 old.tar",
    ),
    (  # in the future by more than an hour (clock skew): the year too
        ListEntry("f", False, 1, mtime=NOW + 2 * 3600),
        "-rw-r--r--   1 owner    group           1 Jun 15  2024 f",
    ),
    (  # up to one hour ahead still counts as recent
        ListEntry("f", False, 1, mtime=NOW + 3600),
        "-rw-r--r--   1 owner    group           1 Jun 15 13:00 f",
    ),
    (  # exactly six months old is old
        ListEntry("f", False, 1, mtime=NOW - 180 * DAY),
        "-rw-r--r--   1 owner    group           1 Dec 18  2023 f",
    ),
    (
        ListEntry("f", False, 1, mtime=NOW - 180 * DAY + 60),
        "-rw-r--r--   1 owner    group           1 Dec 18 12:01 f",
    ),
    (  # no time known (virtual directory, S3 prefix): shown as now
        ListEntry("f", False, 1),
        "-rw-r--r--   1 owner    group           1 Jun 15 12:00 f",
    ),
    (
        ListEntry(
            "my file (1).txt",
            False,
            123456789012,
            mtime=NOW,
            mode="r--r--r--",
            owner="alice",
            group="staff",
        ),
        "-r--r--r--   1 alice    staff    123456789012 Jun 15 12:00 my file (1).txt",
    ),
    (
        ListEntry("ro", True, mtime=NOW, mode="r-xr-xr-x", owner="a.very-long_user"),
        "dr-xr-xr-x   1 a.very-long_user group           0 Jun 15 12:00 ro",
    ),
]


@pytest.mark.parametrize(("entry", "line"), LIST_LINES)
def test_format_list_line(entry: ListEntry, line: str) -> None:
    assert format_list_line(entry, NOW) == line


PARSE_BACK: list[ListEntry] = [
    ListEntry("a.txt", False, 1234, mtime=NOW - 3600),
    ListEntry("docs", True, 0, mtime=NOW),
    ListEntry("with space.txt", False, 5, mtime=NOW),
    ListEntry("two  spaces  inside", False, 5, mtime=NOW),
    ListEntry("dir with spaces", True, mtime=NOW - 400 * DAY),
    ListEntry("trailing.", False, 0, mtime=NOW),
    ListEntry("caf\u00e9 \u65e5\u672c", False, 99, mtime=NOW),
    ListEntry("-dash", False, 3, mtime=NOW),
    ListEntry("12:00 looks like a time", False, 3, mtime=NOW),
    ListEntry("2020 looks like a year", False, 3, mtime=0.0),
    ListEntry("big", False, 10**12, mtime=NOW, owner="alice", group="alice"),
    ListEntry("x", False, 0, mtime=NOW, mode="r--r--r--"),
]


@pytest.mark.parametrize("entry", PARSE_BACK, ids=lambda e: e.name)
def test_list_line_parses_back_with_fs_ftp_parser(entry: ListEntry) -> None:
    """PyFilesystem2's FTPFS is a real LIST client: it must read our lines."""
    line = format_list_line(entry, NOW)
    (raw,) = fs._ftp_parse.parse([line])  # type: ignore[no-untyped-call]
    assert raw["basic"] == {"name": entry.name, "is_dir": entry.is_dir}
    assert raw["details"]["size"] == entry.size
    assert raw["access"]["user"] == entry.owner
    if not NOW - 180 * DAY < (entry.mtime or 0.0) <= NOW + 3600:
        # year format: the date survives (at midnight UTC)
        assert raw["details"]["modified"] == ((entry.mtime or 0.0) // DAY) * DAY


# --------------------------------------------------------------------------
# MLSx facts (RFC 3659 §7)
# --------------------------------------------------------------------------

FILE = ListEntry("a.txt", False, 12, mtime=NOW, perm="adfrw", unique="mem-1")
DIR = ListEntry("docs", True, 4096, mtime=NOW, perm="cdeflmp", unique="mem-2")
BARE = ListEntry("bare", False, 0)


@pytest.mark.parametrize(
    ("entry", "facts", "override", "line"),
    [
        (
            FILE,
            MLST_DEFAULT_FACTS,
            None,
            "type=file;size=12;modify=20240615120000;perm=adfrw;unique=mem-1; a.txt",
        ),
        (
            FILE,
            MLST_FACTS,
            None,
            "type=file;size=12;modify=20240615120000;perm=adfrw;unique=mem-1;unix.mode=0644; a.txt",
        ),
        (FILE, ["type"], None, "type=file; a.txt"),
        (FILE, ["size", "type"], None, "type=file;size=12; a.txt"),  # our order, not theirs
        (FILE, [], None, " a.txt"),
        (FILE, ["bogus"], None, " a.txt"),
        (DIR, ["type", "size"], None, "type=dir; docs"),  # no size for directories
        (
            DIR,
            MLST_DEFAULT_FACTS,
            None,
            "type=dir;modify=20240615120000;perm=cdeflmp;unique=mem-2; docs",
        ),
        (DIR, ["type", "size"], "cdir", "type=cdir; docs"),
        (DIR, ["type"], "pdir", "type=pdir; docs"),
        (DIR, ["size"], "cdir", " docs"),
        (BARE, MLST_DEFAULT_FACTS, None, "type=file;size=0; bare"),  # no mtime/perm/unique
        (
            ListEntry("a second.5", False, 7, mtime=NOW + 0.75, perm="r", unique="u1"),
            MLST_DEFAULT_FACTS,
            None,
            "type=file;size=7;modify=20240615120000;perm=r;unique=u1; a second.5",
        ),
        (
            ListEntry("no perm", False, 7, mtime=NOW, unique="u1"),
            MLST_DEFAULT_FACTS,
            None,
            "type=file;size=7;modify=20240615120000;unique=u1; no perm",
        ),
        (
            ListEntry("no unique", True, mtime=NOW, perm="el"),
            MLST_DEFAULT_FACTS,
            None,
            "type=dir;modify=20240615120000;perm=el; no unique",
        ),
        (DIR, ["unix.mode"], None, "unix.mode=0755; docs"),
        (ListEntry("r", False, mode="r--r--r--"), ["unix.mode"], None, "unix.mode=0444; r"),
        (ListEntry("r", True, mode="rwxr-x---"), ["unix.mode"], None, "unix.mode=0750; r"),
        (ListEntry("a; b=c.txt", False, 1), ["type"], None, "type=file; a; b=c.txt"),
        (ListEntry(" lead", False, 1), ["type"], None, "type=file;  lead"),
    ],
)
def test_format_mlsx(
    entry: ListEntry, facts: Iterable[str], override: str | None, line: str
) -> None:
    assert format_mlsx(entry, facts, override) == line
    if override is None:  # MLSD's many entries: the same line
        assert mlsx_formatter(facts)(entry) == line


@pytest.mark.parametrize(
    ("arg", "facts"),
    [
        ("type;size;", ("type", "size")),
        ("size;type", ("type", "size")),
        ("SIZE;Type;", ("type", "size")),
        ("unix.mode;modify;", ("modify", "unix.mode")),
        (" type ; perm ;", ("type", "perm")),
        ("type;type;", ("type",)),
        ("bogus;size;", ("size",)),
        ("bogus", ()),
        ("", ()),
        (";;", ()),
        ("type;size;modify;perm;unique;unix.mode;", MLST_FACTS),
    ],
)
def test_parse_opts_mlst(arg: str, facts: tuple[str, ...]) -> None:
    assert parse_opts_mlst(arg) == facts


@pytest.mark.parametrize(
    ("enabled", "line"),
    [
        (MLST_DEFAULT_FACTS, "MLST type*;size*;modify*;perm*;unique*;unix.mode;"),
        ((), "MLST type;size;modify;perm;unique;unix.mode;"),
        (("unix.mode", "bogus"), "MLST type;size;modify;perm;unique;unix.mode*;"),
        (MLST_FACTS, "MLST type*;size*;modify*;perm*;unique*;unix.mode*;"),
    ],
)
def test_feat_mlst_line(enabled: Iterable[str], line: str) -> None:
    assert feat_mlst_line(enabled) == line
    # what FEAT advertises, OPTS MLST accepts
    assert parse_opts_mlst(line.removeprefix("MLST ").replace("*", "")) == MLST_FACTS


@pytest.mark.parametrize(
    ("lines", "body"),
    [([], b""), (["a"], b"a\r\n"), (["a", "caf\u00e9"], b"a\r\ncaf\xc3\xa9\r\n")],
)
def test_join_lines(lines: Sequence[str], body: bytes) -> None:
    assert join_lines(lines) == body


# --------------------------------------------------------------------------
# TYPE A conversion
# --------------------------------------------------------------------------

ENCODE: list[tuple[bytes, bytes]] = [
    (b"", b""),
    (b"abc", b"abc"),
    (b"a\nb", b"a\r\nb"),
    (b"a\n", b"a\r\n"),
    (b"\n\n", b"\r\n\r\n"),
    (b"a\r\nb", b"a\r\nb"),  # existing CRLF kept, not doubled
    (b"a\r\n\nb", b"a\r\n\r\nb"),
    (b"a\rb", b"a\rb"),  # lone CR kept
    (b"a\r", b"a\r"),
    (b"\r\r\n", b"\r\r\n"),
    (b"\r\r\n\r\n\n\r", b"\r\r\n\r\n\r\n\r"),
    (b"\n\r\n\r\r\n\n", b"\r\n\r\n\r\r\n\r\n"),
]

DECODE: list[tuple[bytes, bytes]] = [
    (b"", b""),
    (b"abc", b"abc"),
    (b"a\r\nb", b"a\nb"),
    (b"a\r\n", b"a\n"),
    (b"\r\n\r\n", b"\n\n"),
    (b"a\nb", b"a\nb"),  # bare LF passes
    (b"a\rb", b"a\rb"),  # lone CR kept
    (b"a\r", b"a\r"),  # ... also at the very end (flush)
    (b"\r\r\n", b"\r\n"),
    (b"\r\r\r\n\r", b"\r\r\n\r"),
    (b"\r\n\n\r\r\n", b"\n\n\r\n"),
]


@pytest.mark.parametrize(("data", "wire"), ENCODE)
def test_ascii_encoder(data: bytes, wire: bytes) -> None:
    for chunks in splits(data):
        assert encode_chunks(chunks) == wire, chunks


@pytest.mark.parametrize(("wire", "data"), DECODE)
def test_ascii_decoder(wire: bytes, data: bytes) -> None:
    for chunks in splits(wire):
        assert decode_chunks(chunks) == data, chunks


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a\r", b"\nb"], b"a\r\nb"),  # CR ends one chunk, LF starts the next
        ([b"a\r", b"\r\nb"], b"a\r\r\nb"),
        ([b"a\r", b"", b"\nb"], b"a\r\nb"),  # an empty chunk changes nothing
        ([b"a\r", b"b\n"], b"a\rb\r\n"),
    ],
)
def test_ascii_encoder_cr_at_chunk_boundary(chunks: list[bytes], expected: bytes) -> None:
    assert encode_chunks(chunks) == expected


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a\r", b"\nb"], b"a\nb"),
        ([b"a\r", b"", b"\nb"], b"a\nb"),
        ([b"a\r", b"\r", b"\n"], b"a\r\n"),
        ([b"a\r", b"b"], b"a\rb"),
    ],
)
def test_ascii_decoder_cr_at_chunk_boundary(chunks: list[bytes], expected: bytes) -> None:
    assert decode_chunks(chunks) == expected


def test_ascii_decoder_holds_back_only_a_final_cr() -> None:
    dec = AsciiDecoder()
    assert dec.decode(b"ab\r") == b"ab"
    assert dec.flush() == b"\r"
    assert dec.flush() == b""


LF_TEXTS = [b"", b"\n", b"one line\n", b"a\nb\n\nc", b"\n\nx\n\n", b"no newline at all"]


def _every_split(data: bytes) -> list[list[bytes]]:
    return [[data[:i], data[i:]] for i in range(len(data) + 1)]


@pytest.mark.parametrize("text", LF_TEXTS)
def test_ascii_round_trip_at_every_split(text: bytes) -> None:
    """Upload then download in TYPE A gives back the LF text, however both
    directions happen to be cut into chunks."""
    for enc_chunks in [*_every_split(text), [text[i : i + 1] for i in range(len(text))]]:
        wire = encode_chunks(enc_chunks)
        assert wire == text.replace(b"\n", b"\r\n")
        for dec_chunks in [*_every_split(wire), [wire[i : i + 1] for i in range(len(wire))]]:
            assert decode_chunks(dec_chunks) == text, (enc_chunks, dec_chunks)


CRLF_TEXTS = [b"", b"\r\n", b"a\r\nb\r\n\r\nc", b"\r\n\r\nx"]


@pytest.mark.parametrize("wire", CRLF_TEXTS)
def test_ascii_crlf_text_survives_decode_then_encode(wire: bytes) -> None:
    for chunks in splits(wire):
        assert encode_chunks([decode_chunks(chunks)]) == wire, chunks
