"""AUTH, PBSZ, PROT, CCC: FTPS (RFC 4217)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...protocol.errors import FTPError
from .registry import (
    Arg,
    Invocation,
    command,
)

if TYPE_CHECKING:
    from ..state import Channel


def _need_tls_config(s: Channel) -> None:
    if s.tls_context is None:
        raise FTPError(502, "TLS is not configured on this server")


@command("AUTH", "AUTH TLS: switch the control connection to TLS", Arg.REQUIRED, needs_login=False)
async def cmd_auth(s: Channel, inv: Invocation) -> None:
    _need_tls_config(s)
    mech = inv.arg.strip().upper()
    if mech not in ("TLS", "SSL", "TLS-C", "TLS-P"):
        raise FTPError(504, f"AUTH {mech} not supported; use AUTH TLS")
    if s.state.secure:
        raise FTPError(503, "Already using TLS")
    if s.state.logged_in or s.state.username is not None:
        # §4: AUTH comes before USER; a mid-session switch would leave the
        # credentials already sent in clear.
        raise FTPError(503, "AUTH must come before USER")
    s.reply(234, f"AUTH {mech} successful, start the TLS handshake")
    await s.start_tls()


@command(
    "PBSZ", "PBSZ 0: protection buffer size (always 0 with TLS)", Arg.REQUIRED, needs_login=False
)
async def cmd_pbsz(s: Channel, inv: Invocation) -> None:
    _need_tls_config(s)
    if not s.state.secure:
        raise FTPError(503, "PBSZ needs a TLS control connection (AUTH TLS first)")
    if not inv.arg.strip().isdigit():
        raise FTPError(501, "PBSZ needs a number")
    s.state.pbsz = True
    # §8: TLS is a stream; the only meaningful size is 0.
    s.reply(200, "PBSZ=0")


@command("PROT", "PROT C|P: clear or private data connections", Arg.REQUIRED, needs_login=False)
async def cmd_prot(s: Channel, inv: Invocation) -> None:
    _need_tls_config(s)
    if not s.state.pbsz:
        raise FTPError(503, "PROT needs PBSZ first (RFC 4217 §9)")
    level = inv.arg.strip().upper()
    if level == "P":
        s.state.prot = "P"
        s.reply(200, "Protection level set to P")
    elif level == "C":
        if s.state.require_data_tls:
            raise FTPError(534, "Policy requires protected data connections (PROT P)")
        s.state.prot = "C"
        s.reply(200, "Protection level set to C")
    elif level in ("S", "E"):
        raise FTPError(536, f"PROT {level} not supported; use C or P")
    else:
        raise FTPError(504, f"Unknown protection level {level!r}")


@command("CCC", "CCC: not supported (the control connection stays private)", needs_login=False)
async def cmd_ccc(s: Channel, inv: Invocation) -> None:
    # Clearing the control channel would expose every later command and
    # allow injection; NAT helpers are the only reason clients ask for it.
    raise FTPError(534, "CCC refused: the control connection stays encrypted")
