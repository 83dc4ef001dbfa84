"""Replies (RFC 959 §4.2): their encoding on the wire, and path quoting in
257 replies. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def _clean(text: str) -> str:
    # A CR or LF inside reply text would end the reply early and let a file
    # name inject a fake reply; RFC 959 has no escape, so they are replaced.
    return text.replace("\r", " ").replace("\n", " ")


@dataclass(frozen=True)
class Reply:
    code: int
    text: str | tuple[str, ...] = ""

    @property
    def lines(self) -> tuple[str, ...]:
        if isinstance(self.text, str):
            return tuple(self.text.split("\n")) if "\n" in self.text else (self.text,)
        return self.text or ("",)

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    def encode(self) -> bytes:
        return encode_reply(self.code, self.text)


def encode_reply(code: int, text: str | tuple[str, ...]) -> bytes:
    """Single line ``"226 Done\\r\\n"``; multi-line replies are
    ``"211-first"``, the middle lines, then ``"211 last"`` (§4.2). A middle
    line that starts with three digits is indented by one space so that a
    client cannot mistake it for the last line."""
    if isinstance(text, str) and "\n" not in text and "\r" not in text:
        # The common case: one line, nothing to clean.
        return f"{code:03d} {text}\r\n".encode("utf-8", "surrogateescape")
    lines = Reply(code, text).lines
    if len(lines) == 1:
        return encode_reply_last(code, lines[0])
    return (
        encode_reply_first(code, lines[0])
        + encode_reply_middle(lines[1:-1])
        + encode_reply_last(code, lines[-1])
    )


def encode_reply_first(code: int, text: str) -> bytes:
    """The first line of a multi-line reply, ``"213-text"`` (§4.2); with
    ``encode_reply_middle`` and ``encode_reply_last``, a reply sent in
    parts (STAT of a large directory) is the bytes ``encode_reply`` makes
    of it whole."""
    return f"{code:03d}-{_clean(text)}\r\n".encode("utf-8", "surrogateescape")


def encode_reply_middle(lines: Iterable[str]) -> bytes:
    """Middle lines of a multi-line reply. One that starts with three
    digits is indented by one space so that a client cannot mistake it for
    the last line (§4.2)."""
    parts = []
    for line in lines:
        mid = _clean(line)
        if mid[:3].isdigit():
            mid = " " + mid
        parts.append(mid + "\r\n")
    return "".join(parts).encode("utf-8", "surrogateescape")


def encode_reply_last(code: int, text: str) -> bytes:
    """The last (or only) line of a reply, ``"213 text"``."""
    return f"{code:03d} {_clean(text)}\r\n".encode("utf-8", "surrogateescape")


def quote_path(path: str) -> str:
    """The quoted pathname of a 257 reply: embedded quotes are doubled
    (RFC 959 Appendix II)."""
    return '"' + path.replace('"', '""') + '"'
