"""Replies (RFC 959 §4.2): their encoding on the wire, and path quoting in
257 replies. Pure."""

from __future__ import annotations

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
    lines = [_clean(x) for x in Reply(code, text).lines]
    number = f"{code:03d}"
    if len(lines) == 1:
        return f"{number} {lines[0]}\r\n".encode("utf-8", "surrogateescape")
    parts = [f"{number}-{lines[0]}"]
    for mid in lines[1:-1]:
        if mid[:3].isdigit():  # §4.2: any line starting with 3 digits
            mid = " " + mid
        parts.append(mid)
    parts.append(f"{number} {lines[-1]}")
    return ("\r\n".join(parts) + "\r\n").encode("utf-8", "surrogateescape")


def quote_path(path: str) -> str:
    """The quoted pathname of a 257 reply: embedded quotes are doubled
    (RFC 959 Appendix II)."""
    return '"' + path.replace('"', '""') + '"'
