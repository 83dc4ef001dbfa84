"""SITE: the site-specific commands (SITE HELP, SITE CHMOD)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...protocol.errors import FTPError
from .registry import (
    Arg,
    Invocation,
    _fs,
    command,
)

if TYPE_CHECKING:
    from ..state import Channel


@command("SITE", "SITE HELP | SITE CHMOD <mode> <path>", Arg.REQUIRED)
async def cmd_site(s: Channel, inv: Invocation) -> None:
    sub, _, rest = inv.arg.strip().partition(" ")
    sub = sub.upper()
    if sub == "HELP":
        s.reply(214, ("SITE commands:", " HELP", " CHMOD <octal mode> <path>", "Help OK"))
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
