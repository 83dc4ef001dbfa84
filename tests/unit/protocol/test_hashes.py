"""HASH, RANG, the X-commands and SITE CHECKSUM on the wire
(vfsftp/protocol/hashes.py), as tables."""

from __future__ import annotations

import pytest

from vfsftp.protocol.errors import ProtocolError
from vfsftp.protocol.hashes import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    HEX_DIGITS,
    RangeBeyondEnd,
    XArgs,
    algorithm_named,
    checksum_field,
    feat_hash_line,
    hash_range,
    hash_reply,
    parse_checksum,
    parse_rang,
    parse_xcmd,
    xcmd_path,
    xcmd_range,
    xcmd_reply,
)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("SHA-256", "SHA-256"),
        ("sha-256", "SHA-256"),
        ("Sha-1", "SHA-1"),
        (" md5 ", "MD5"),
        ("crc32", "CRC32"),
        ("SHA-512", "SHA-512"),
        # names only as FEAT lists them (draft §3.2: others are errors)
        ("SHA256", None),
        ("SHA1", None),
        ("SHA-3", None),
        ("", None),
        ("SHA-256 MD5", None),
    ],
)
def test_algorithm_named(text: str, name: str | None) -> None:
    assert algorithm_named(text) == name


def test_default_is_offered_and_not_weaker_than_sha1() -> None:
    # draft §5: SHA-1 must be offered; no default weaker than it
    assert "SHA-1" in ALGORITHMS and DEFAULT_ALGORITHM in ALGORITHMS
    assert DEFAULT_ALGORITHM not in ("MD5", "CRC32")


@pytest.mark.parametrize(
    ("selected", "line"),
    [
        ("SHA-256", "HASH CRC32;MD5;SHA-1;SHA-256*;SHA-512;"),
        ("SHA-1", "HASH CRC32;MD5;SHA-1*;SHA-256;SHA-512;"),
        ("CRC32", "HASH CRC32*;MD5;SHA-1;SHA-256;SHA-512;"),
    ],
)
def test_feat_hash_line(selected: str, line: str) -> None:
    assert feat_hash_line(selected) == line
    # exactly one marked; every name followed by ';' (the draft's ABNF)
    listed = line.removeprefix("HASH ").split(";")
    assert listed[-1] == "" and sum(n.endswith("*") for n in listed) == 1


@pytest.mark.parametrize(
    ("arg", "rang"),
    [
        ("0 49", (0, 49)),
        ("0 0", (0, 0)),  # the first octet (range draft §3)
        ("  10   20 ", (10, 20)),
        ("1 0", None),  # the reset
        ("5 5", (5, 5)),
        ("123456789012 123456789013", (123456789012, 123456789013)),
    ],
)
def test_parse_rang(arg: str, rang: tuple[int, int] | None) -> None:
    assert parse_rang(arg) == rang


@pytest.mark.parametrize(
    "arg", ["", "5", "1 2 3", "-1 5", "a b", "5 4", "2 0", "1 \uff10", "0x1 5", "1.5 2"]
)
def test_parse_rang_rejects(arg: str) -> None:
    with pytest.raises(ProtocolError):
        parse_rang(arg)


@pytest.mark.parametrize(
    ("rang", "size", "span"),
    [
        (None, 100, (0, 100)),
        (None, 0, (0, 0)),
        ((0, 49), 100, (0, 50)),  # the end is included
        ((0, 0), 100, (0, 1)),
        ((10, 1000), 100, (10, 100)),  # an end past the file: cut to it
        ((99, 99), 100, (99, 100)),
    ],
)
def test_hash_range(rang: tuple[int, int] | None, size: int, span: tuple[int, int]) -> None:
    assert hash_range(rang, size) == span


@pytest.mark.parametrize(("rang", "size"), [((100, 200), 100), ((0, 0), 0), ((5, 9), 3)])
def test_hash_range_past_the_end(rang: tuple[int, int], size: int) -> None:
    with pytest.raises(RangeBeyondEnd):
        hash_range(rang, size)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("SHA-256", 0, 100, "AB" * 32, "f.txt"), "SHA-256 0-99 " + "ab" * 32 + " f.txt"),
        (("SHA-1", 0, 50, "0" * 40, "dir/a b.txt"), "SHA-1 0-49 " + "0" * 40 + " dir/a b.txt"),
        (("MD5", 10, 11, "1" * 32, "x"), "MD5 10-10 " + "1" * 32 + " x"),
        # an empty file: no last octet; 0-0 (the ABNF needs end >= start)
        (("CRC32", 0, 0, "00000000", "empty"), "CRC32 0-0 00000000 empty"),
    ],
)
def test_hash_reply(args: tuple[str, int, int, str, str], text: str) -> None:
    assert hash_reply(*args) == text


@pytest.mark.parametrize(
    ("arg", "parsed"),
    [
        ("file.txt", XArgs("file.txt")),
        ("file.txt 0 100", XArgs("file.txt", 0, 100)),
        ("  a b.txt 5 6 ", XArgs("a b.txt", 5, 6)),
        ("my file", XArgs("my file")),
        ("my file 5", XArgs("my file 5")),  # one number after two words: a name
        ("2019 report.pdf", XArgs("2019 report.pdf")),
        ("1 2 3", XArgs("1", 2, 3)),
        ("/dir/x.bin 0 0", XArgs("/dir/x.bin", 0, 0)),
    ],
)
def test_parse_xcmd(arg: str, parsed: XArgs) -> None:
    assert parse_xcmd(arg) == parsed
    assert xcmd_path(arg) == parsed.path


@pytest.mark.parametrize("arg", ["file.txt 5", "x 0"])
def test_parse_xcmd_refuses_a_lone_number(arg: str) -> None:
    # mod_digest: "XCMD path end" is ambiguous (end? start?): 501
    with pytest.raises(ProtocolError, match="Invalid number of parameters"):
        parse_xcmd(arg)
    assert xcmd_path(arg) == arg.split()[0]


@pytest.mark.parametrize(
    ("args", "size", "span"),
    [
        (XArgs("f"), 100, (0, 100)),
        (XArgs("f"), 0, (0, 0)),  # an empty file: its empty digest
        (XArgs("f", 0, 100), 100, (0, 100)),  # the end is excluded
        (XArgs("f", 10, 20), 100, (10, 20)),
    ],
)
def test_xcmd_range(args: XArgs, size: int, span: tuple[int, int]) -> None:
    assert xcmd_range(args, size) == span


@pytest.mark.parametrize(
    ("args", "size", "why"),
    [
        (XArgs("f", 0, 101), 100, "exceeds the file size"),
        (XArgs("f", 20, 20), 100, "greater than start"),
        (XArgs("f", 30, 20), 100, "greater than start"),
        (XArgs("f", 0, 0), 0, "greater than start"),
    ],
)
def test_xcmd_range_refuses(args: XArgs, size: int, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        xcmd_range(args, size)


@pytest.mark.parametrize(
    ("algorithm", "digest", "lines"),
    [
        ("CRC32", "b0a3981c", ("Computing CRC32 digest", "B0A3981C")),
        ("MD5", "ab" * 16, ("Computing MD5 digest", "AB" * 16)),
        ("SHA-1", "cd" * 20, ("Computing SHA1 digest", "CD" * 20)),
        ("SHA-256", "ef" * 32, ("Computing SHA256 digest", "EF" * 32)),
        ("SHA-512", "01" * 64, ("Computing SHA512 digest", "01" * 64)),
    ],
)
def test_xcmd_reply(algorithm: str, digest: str, lines: tuple[str, str]) -> None:
    # mod_digest's: "250-Computing CRC32 digest" then "250 B0A3981C"
    assert xcmd_reply(algorithm, digest) == lines


@pytest.mark.parametrize(
    ("arg", "parsed"),
    [
        ("SHA-256 " + "AB" * 32, ("SHA-256", "ab" * 32)),
        ("md5 " + "0" * 32, ("MD5", "0" * 32)),
        (" crc32   deadBEEF ", ("CRC32", "deadbeef")),
    ],
)
def test_parse_checksum(arg: str, parsed: tuple[str, str]) -> None:
    assert parse_checksum(arg) == parsed


@pytest.mark.parametrize(
    ("arg", "why"),
    [
        ("", "needs"),
        ("SHA-256", "needs"),
        ("SHA-256 ab cd", "needs"),
        ("SHA-3 " + "0" * 64, "Unknown algorithm"),
        ("SHA-256 " + "0" * 63, "64 hex digits"),
        ("SHA-1 " + "g" * 40, "40 hex digits"),
        ("CRC32 0x12345", "8 hex digits"),
    ],
)
def test_parse_checksum_refuses(arg: str, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        parse_checksum(arg)


def test_hex_digits_cover_every_algorithm() -> None:
    assert set(HEX_DIGITS) == set(ALGORITHMS)


@pytest.mark.parametrize(
    ("algorithm", "digest", "field"),
    [("SHA-256", "AB", "sha-256:ab"), ("CRC32", "0badf00d", "crc32:0badf00d")],
)
def test_checksum_field(algorithm: str, digest: str, field: str) -> None:
    assert checksum_field(algorithm, digest) == field
