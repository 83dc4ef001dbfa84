"""PWD, CWD, CDUP: the working directory (RFC 959 §4.1.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...protocol.paths import dirname
from ...protocol.replies import quote_path
from .registry import (
    Arg,
    Invocation,
    _fs,
    command,
)

if TYPE_CHECKING:
    from ..state import Channel


@command("PWD", "PWD: print the current directory", aliases=("XPWD",))
async def cmd_pwd(s: Channel, inv: Invocation) -> None:
    s.reply(257, f"{quote_path(_fs(s).cwd)} is the current directory")


@command("CWD", "CWD <dir>: change directory", Arg.REQUIRED, path=True, perm="e", aliases=("XCWD",))
async def cmd_cwd(s: Channel, inv: Invocation) -> None:
    await _fs(s).chdir(inv.path)
    s.reply(250, f"Directory changed to {inv.path}")


@command("CDUP", "CDUP: go to the parent directory", aliases=("XCUP",))
async def cmd_cdup(s: Channel, inv: Invocation) -> None:
    fs_ = _fs(s)
    parent = dirname(fs_.cwd)
    fs_.require(parent, "e")
    await fs_.chdir(parent)
    # RFC 959 §4.2 lists 200 for CDUP; 250 is what most clients accept too.
    s.reply(250, f"Directory changed to {parent}")
