"""TYPE, MODE, STRU, ALLO, REST: transfer parameters (RFC 959 §4.1.2, RFC 3659 §5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...protocol.arguments import (
    parse_allo,
)
from ...protocol.errors import FTPError, ProtocolError
from .registry import (
    Arg,
    Invocation,
    command,
)

if TYPE_CHECKING:
    from ..state import Channel


@command("TYPE", "TYPE A|I|L 8: set the transfer type", Arg.REQUIRED, needs_login=False)
async def cmd_type(s: Channel, inv: Invocation) -> None:
    parts = inv.arg.upper().split()
    if parts in (["A"], ["A", "N"]):
        s.state.transfer_type = "A"
        s.reply(200, "Type set to A")
    elif parts in (["I"], ["L", "8"]):
        s.state.transfer_type = "I"
        s.reply(200, "Type set to I")
    else:
        raise FTPError(504, f"Type {inv.arg!r} not implemented; use A or I")


@command("MODE", "MODE S: only stream mode", Arg.REQUIRED, needs_login=False)
async def cmd_mode(s: Channel, inv: Invocation) -> None:
    if inv.arg.strip().upper() != "S":
        raise FTPError(504, "Only stream mode (S) is implemented")
    s.reply(200, "Mode set to S")


@command("STRU", "STRU F: only file structure", Arg.REQUIRED, needs_login=False)
async def cmd_stru(s: Channel, inv: Invocation) -> None:
    if inv.arg.strip().upper() != "F":
        raise FTPError(504, "Only file structure (F) is implemented")
    s.reply(200, "Structure set to F")


@command("ALLO", "ALLO <bytes>: the size of the next upload", Arg.OPTIONAL)
async def cmd_allo(s: Channel, inv: Invocation) -> None:
    if not inv.arg.strip():
        s.reply(202, "No storage allocation necessary")
        return
    try:
        size = parse_allo(inv.arg)
    except ProtocolError as exc:
        raise FTPError(501, str(exc)) from None
    # Nothing to reserve, but the size is a promise: the next upload that
    # brings fewer bytes is discarded (451), as a cut-off one would be.
    s.state.allo = size
    s.reply(200, f"ALLO {size}: the next upload must bring {size} bytes")


@command(
    "REST",
    "REST <offset>: restart the next transfer at this byte",
    Arg.REQUIRED,
    feat="REST STREAM",
)
async def cmd_rest(s: Channel, inv: Invocation) -> None:
    text = inv.arg.strip()
    if not text.isdigit():
        raise FTPError(501, "REST needs a non-negative byte offset")
    s.state.rest_offset = int(text)
    s.reply(350, f"Restarting at {text}; send RETR, STOR or APPE to continue")
