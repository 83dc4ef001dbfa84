"""The protocol's two errors: a malformed argument, and an error that is
answered with a reply."""

from __future__ import annotations

from .replies import Reply

__all__ = ["FTPError", "ProtocolError"]


class ProtocolError(ValueError):
    """A malformed argument; the text is safe to show to the client."""


class FTPError(Exception):
    """Raised anywhere below the channel to answer the current command with
    ``reply``; the channel is the one place that turns it into bytes."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.reply = Reply(code, text)
