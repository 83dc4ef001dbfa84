"""PASV, EPSV, PORT, EPRT: where the next data connection comes from (RFC 959 §4.1.2, RFC 2428)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from ...protocol.arguments import (
    format_epsv,
    format_pasv,
    parse_eprt,
    parse_port,
)
from ...protocol.errors import FTPError, ProtocolError
from .. import data as datamod
from .registry import (
    Arg,
    Invocation,
    command,
)

if TYPE_CHECKING:
    from ..state import Channel


def reset_data(s: Channel) -> None:
    s.close_passive()
    s.state.active_addr = None


def _passive_listener(s: Channel, family: socket.AddressFamily) -> datamod.PassiveListener:
    reset_data(s)
    cfg = s.config.server
    expected = None if cfg.permit_foreign_addresses else s.peer_ip
    proxy = cfg.proxy_protocol
    listener = datamod.open_passive(
        s.local_ip,
        family,
        cfg.passive_ports,
        expected,
        # Behind a balancer the data connection comes from it too, with a
        # PROXY header naming the client (send-proxy-v2 on the passive range).
        proxy.from_ if proxy is not None else (),
        proxy.header_timeout if proxy is not None else 5.0,
    )
    s.state.passive = listener
    return listener


@command("PASV", "PASV: open a passive data port (IPv4)")
async def cmd_pasv(s: Channel, inv: Invocation) -> None:
    local = datamod.normalize_ip(s.local_ip)
    masq = s.config.server.masquerade_address
    if ":" in local and not masq:
        raise FTPError(425, "PASV is IPv4 only; use EPSV on an IPv6 connection")
    listener = _passive_listener(s, s.family)
    s.reply(227, format_pasv(masq or local, listener.port))


@command("EPSV", "EPSV [ALL|1|2]: open a passive data port", Arg.OPTIONAL, feat="EPSV")
async def cmd_epsv(s: Channel, inv: Invocation) -> None:
    arg = inv.arg.strip().upper()
    if arg == "ALL":
        s.state.epsv_all = True
        s.reply(200, "EPSV ALL ok: only EPSV from now on")
        return
    want = {"1": socket.AF_INET, "2": socket.AF_INET6}
    if arg and arg not in want:
        raise FTPError(522, "Network protocol not supported, use (1,2)")
    if (
        arg
        and want[arg] != s.family
        and not (arg == "1" and "." in datamod.normalize_ip(s.local_ip))
    ):
        raise FTPError(
            522,
            "Network protocol not supported on this connection, use (%s)"
            % ("1" if s.family == socket.AF_INET else "2"),
        )
    listener = _passive_listener(s, s.family)
    s.reply(229, format_epsv(listener.port))


def _set_active(s: Channel, host: str, port: int, family: socket.AddressFamily) -> None:
    cfg = s.config.server
    datamod.check_active_target(
        s.peer_ip, host, port, cfg.permit_foreign_addresses, cfg.permit_privileged_ports
    )
    reset_data(s)
    if s.family == socket.AF_INET6 and family == socket.AF_INET:
        # An IPv4 client seen through a dual-stack socket.
        host, family = f"::ffff:{host}", socket.AF_INET6
    s.state.active_addr = (host, port, family)


@command("PORT", "PORT h1,h2,h3,h4,p1,p2: active data port (IPv4)", Arg.REQUIRED)
async def cmd_port(s: Channel, inv: Invocation) -> None:
    try:
        host, port = parse_port(inv.arg)
    except ProtocolError as exc:
        raise FTPError(501, str(exc)) from None
    _set_active(s, host, port, socket.AF_INET)
    s.reply(200, "PORT command successful")


@command("EPRT", "EPRT |proto|address|port|: active data port", Arg.REQUIRED, feat="EPRT")
async def cmd_eprt(s: Channel, inv: Invocation) -> None:
    try:
        proto, host, port = parse_eprt(inv.arg.strip())
    except ProtocolError as exc:
        text = str(exc)
        if text.startswith("522 "):
            raise FTPError(522, text[4:]) from None
        raise FTPError(501, text) from None
    _set_active(s, host, port, socket.AF_INET if proto == 1 else socket.AF_INET6)
    s.reply(200, "EPRT command successful")
