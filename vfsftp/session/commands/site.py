"""SITE: the site-specific commands (SITE HELP, SITE CHMOD, SITE CHECKSUM)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...protocol.errors import FTPError, ProtocolError
from ...protocol.hashes import parse_checksum
from .registry import (
    Arg,
    Invocation,
    _fs,
    command,
)

if TYPE_CHECKING:
    from ..state import Channel


@command(
    "SITE", "SITE HELP | SITE CHMOD <mode> <path> | SITE CHECKSUM <algorithm> <hex>", Arg.REQUIRED
)
async def cmd_site(s: Channel, inv: Invocation) -> None:
    sub, _, rest = inv.arg.strip().partition(" ")
    sub = sub.upper()
    if sub == "HELP":
        s.reply(
            214,
            (
                "SITE commands:",
                " HELP",
                " CHMOD <octal mode> <path>",
                " CHECKSUM <algorithm> <hex>: what the next upload's data must hash to",
                "Help OK",
            ),
        )
        return
    if sub == "CHECKSUM":
        # The next upload (STOR, STOU, APPE) is discarded, 451, unless its
        # data has this checksum; it is then also what S3 stores with the
        # object, even one sent in parts.
        try:
            algorithm, digest = parse_checksum(rest)
        except ProtocolError as exc:
            raise FTPError(501, str(exc)) from None
        s.state.upload_checksum = (algorithm, digest)
        s.reply(200, f"The next upload must have {algorithm} {digest}")
        return
    if sub == "CHMOD":
        mode_s, _, name = rest.strip().partition(" ")
        try:
            mode = int(mode_s, 8)
        except ValueError:
            raise FTPError(501, "SITE CHMOD needs an octal mode") from None
        if not name or not 0 <= mode <= 0o7777:
            raise FTPError(501, "SITE CHMOD <octal mode> <path>")
        if mode & 0o7000:
            # A client must never make a file run as the server's user.
            raise FTPError(504, "SITE CHMOD: setuid, setgid and sticky bits are not allowed")
        fs_ = _fs(s)
        path = fs_.resolve(name)
        fs_.require(path, "M")
        await fs_.chmod(path, mode)
        s.reply(200, f"SITE CHMOD {mode:03o} {path} successful")
        return
    raise FTPError(501, f"SITE {sub} not understood; try SITE HELP")
