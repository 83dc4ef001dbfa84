"""TYPE A: line-ending conversion both ways (RFC 959 §3.1.1.1). Pure."""

from __future__ import annotations

from collections.abc import Sequence


class AsciiEncoder:
    """Local text → network: every LF not already preceded by CR becomes CRLF.
    Stateful so that a CR at the end of one chunk and LF at the start of the
    next stay one line end."""

    def __init__(self) -> None:
        self._last_cr = False

    def encode(self, data: bytes) -> bytes:
        if not data:
            return data
        out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self._last_cr and data.startswith(b"\n"):
            out = out[1:]
        self._last_cr = data.endswith(b"\r")
        return out


class AsciiDecoder:
    """Network → local text: CRLF becomes LF; a lone CR is kept."""

    def __init__(self) -> None:
        self._pending_cr = False

    def decode(self, data: bytes) -> bytes:
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._pending_cr = True
        return data.replace(b"\r\n", b"\n")

    def flush(self) -> bytes:
        if self._pending_cr:
            self._pending_cr = False
            return b"\r"
        return b""


def join_lines(lines: Sequence[str]) -> bytes:
    """A listing body: each line ends in CRLF (RFC 959 §4.1.3 for LIST/NLST,
    RFC 3659 §7.2 for MLSD)."""
    return "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape")
