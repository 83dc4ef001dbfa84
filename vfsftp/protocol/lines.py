"""The control connection's input: a line buffer that frames commands
(RFC 959 §4: Telnet lines ending in CRLF) in bounded memory, and the parse of
a line into a command. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

CRLF = b"\r\n"


class _TooLong:
    """Marker yielded by LineBuffer in place of a line that exceeded the cap."""

    def __repr__(self) -> str:
        return "TOO_LONG"


TOO_LONG = _TooLong()


class LineBuffer:
    """Splits the control stream into lines.

    RFC 959 §4.1.3 ends commands with CRLF; many clients and scripts send a bare
    LF, so both are accepted. A line longer than ``max_line`` bytes is dropped
    up to its end and reported once as ``TOO_LONG`` so the server can answer
    500 without buffering unbounded input.
    """

    __slots__ = ("_buf", "_discarding", "max_line")

    def __init__(self, max_line: int = 4096) -> None:
        self.max_line = max_line
        # Made when a line arrives in pieces, dropped once none is pending:
        # thousands of idle sessions each hold a buffer.
        self._buf: bytearray | None = None
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | _TooLong]:
        buf = self._buf
        if data and not buf and not self._discarding and data.find(b"\n") == len(data) - 1:
            # One whole line in one read, the usual case: no buffering.
            line = data[:-2] if data.endswith(b"\r\n") else data[:-1]
            if len(line) <= self.max_line:
                return [line]
        out: list[bytes | _TooLong] = []
        if buf is None:
            buf = self._buf = bytearray()
        buf += data
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                # +1: a line of exactly max_line bytes may still be waiting
                # for the LF of its CRLF (same result however input is split)
                if len(buf) > self.max_line + 1:
                    if not self._discarding:
                        out.append(TOO_LONG)
                        self._discarding = True
                    del buf[:]
                if not buf:
                    self._buf = None
                return out
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            if self._discarding:
                self._discarding = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_line:
                out.append(TOO_LONG)
            else:
                out.append(line)

    def clear(self) -> int:
        """Drop whatever is buffered; returns how many bytes were dropped.

        Used after ``AUTH TLS`` (RFC 4217 §4.1): plaintext pipelined behind the
        command must not be executed after the handshake.
        """
        n = len(self._buf) if self._buf is not None else 0
        self._buf = None
        self._discarding = False
        return n


# Telnet (RFC 854) bytes that clients put before ABOR (IAC IP, IAC DM: RFC 959
# §4.1.3). 0xFF never occurs in UTF-8, so stripping is lossless for real text.
_IAC = 0xFF
_TELNET_OPTION_VERBS = {0xFB, 0xFC, 0xFD, 0xFE}  # WILL WONT DO DONT take an option byte


def strip_telnet(line: bytes) -> bytes:
    if _IAC not in line and 0xF2 not in line:
        return line
    out = bytearray()
    i, n = 0, len(line)
    while i < n:
        b = line[i]
        if b == _IAC and i + 1 < n:
            nxt = line[i + 1]
            if nxt == _IAC:
                out.append(_IAC)
                i += 2
            elif nxt in _TELNET_OPTION_VERBS:
                i += 3
            else:
                i += 2
        elif b == _IAC:
            i += 1
        elif b == 0xF2 and not out:
            # A Telnet Data Mark sent as TCP urgent data arrives inline
            # (SO_OOBINLINE) without its IAC, ahead of the command.
            i += 1
        else:
            out.append(b)
            i += 1
    return bytes(out)


@dataclass(slots=True)  # not frozen: one per command line, and frozen __init__ costs 3x
class Command:
    verb: str
    arg: str
    raw: bytes = field(default=b"", repr=False, compare=False)


def decode_text(data: bytes) -> str:
    """RFC 2640 makes UTF-8 the path encoding; legacy clients (scanners, CNC
    controllers) send Latin-1, which is decoded as such rather than refused."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_command(line: bytes) -> Command:
    """Split one control line into verb and argument.

    The verb is case-insensitive (RFC 959 §5.3); the argument is kept exactly,
    leading and trailing spaces included, because they can be part of a name.
    """
    line = strip_telnet(line)
    text = decode_text(line)
    verb, sep, arg = text.partition(" ")
    return Command(verb.strip().upper(), arg if sep else "", line)
