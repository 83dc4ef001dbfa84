"""DELE, RMD, MKD, RNFR, RNTO, SIZE, MDTM, MFMT: files and directories
(RFC 959 §4.1.3, RFC 3659)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...protocol.arguments import (
    format_mdtm,
    parse_mfmt_time,
)
from ...protocol.errors import FTPError, ProtocolError
from ...protocol.replies import quote_path
from .registry import (
    Arg,
    Invocation,
    _binary,
    _fs,
    command,
)

if TYPE_CHECKING:
    from ..state import Channel


@command("DELE", "DELE <file>: delete a file", Arg.REQUIRED, path=True, perm="d")
async def cmd_dele(s: Channel, inv: Invocation) -> None:
    await _fs(s).remove(inv.path)
    s.reply(250, f"Deleted {inv.path}")
    s.host.event(s, "delete", inv.path)


@command(
    "RMD",
    "RMD <dir>: remove an empty directory",
    Arg.REQUIRED,
    path=True,
    perm="d",
    aliases=("XRMD",),
)
async def cmd_rmd(s: Channel, inv: Invocation) -> None:
    await _fs(s).rmdir(inv.path)
    s.reply(250, f"Removed directory {inv.path}")
    s.host.event(s, "rmdir", inv.path)


@command("MKD", "MKD <dir>: make a directory", Arg.REQUIRED, path=True, perm="m", aliases=("XMKD",))
async def cmd_mkd(s: Channel, inv: Invocation) -> None:
    await _fs(s).mkdir(inv.path)
    s.reply(257, f"{quote_path(inv.path)} created")
    s.host.event(s, "mkdir", inv.path)


@command("RNFR", "RNFR <path>: rename from", Arg.REQUIRED, path=True, perm="f")
async def cmd_rnfr(s: Channel, inv: Invocation) -> None:
    await _fs(s).stat(inv.path)
    s.state.rename_from = inv.path
    s.reply(350, "Ready for RNTO")


@command("RNTO", "RNTO <path>: rename to", Arg.REQUIRED, path=True, perm="f")
async def cmd_rnto(s: Channel, inv: Invocation) -> None:
    src = s.state.rename_from
    assert src is not None
    s.state.rename_from = None
    await _fs(s).rename(src, inv.path)
    s.reply(250, f"Renamed {src} to {inv.path}")
    s.host.event(s, "rename", src, inv.path)


@command(
    "SIZE", "SIZE <file>: size in bytes (RFC 3659)", Arg.REQUIRED, path=True, perm="l", feat="SIZE"
)
async def cmd_size(s: Channel, inv: Invocation) -> None:
    if not _binary(s):
        # §4: the size in ASCII mode depends on the content; we refuse
        # rather than read the whole file (as vsftpd and pyftpdlib do).
        raise FTPError(550, "SIZE not allowed in ASCII mode; send TYPE I")
    s.reply(213, str(await _fs(s).size(inv.path)))


@command(
    "MDTM",
    "MDTM <file>: modification time in UTC (RFC 3659)",
    Arg.REQUIRED,
    path=True,
    perm="l",
    feat="MDTM",
)
async def cmd_mdtm(s: Channel, inv: Invocation) -> None:
    entry = await _fs(s).stat(inv.path)
    if entry.is_dir:
        raise FTPError(550, f"Is a directory: {inv.path}")
    if entry.mtime is None:
        raise FTPError(550, f"No modification time for {inv.path}")
    s.reply(213, format_mdtm(entry.mtime))


@command(
    "MFMT", "MFMT <YYYYMMDDHHMMSS> <file>: set the modification time", Arg.REQUIRED, feat="MFMT"
)
async def cmd_mfmt(s: Channel, inv: Invocation) -> None:
    stamp, _, name = inv.arg.strip().partition(" ")
    if not name:
        raise FTPError(501, "MFMT needs a time and a path")
    try:
        mtime = parse_mfmt_time(stamp)
    except ProtocolError as exc:
        raise FTPError(501, str(exc)) from None
    fs_ = _fs(s)
    path = fs_.resolve(name)
    fs_.require(path, "T")
    entry = await fs_.stat(path)
    if entry.is_dir:
        raise FTPError(550, f"Is a directory: {path}")
    await fs_.set_mtime(path, mtime)
    # draft-somers-ftp-mfxx: "213 Modify=YYYYMMDDHHMMSS; path"
    s.reply(213, f"Modify={format_mdtm(mtime)}; {path}")
