"""The command registry and the one ``preflight`` holding every gating rule.

A row (``CommandSpec``) says whether the command needs a login, what kind of
argument it takes, whether that argument is a path and which permission
letter the user must hold there. ``preflight`` applies all of that before a
handler runs, so handlers only do their own work; FEAT and HELP are
generated from the same rows. Handlers register with ``@command``.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...protocol.errors import FTPError
from ...protocol.hashes import XCOMMANDS

if TYPE_CHECKING:
    from ...storage.sessionfs import SessionFS
    from ..state import Channel, SessionState


class Arg(enum.Enum):
    NONE = "none"  # no argument allowed
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(slots=True)  # not frozen: one per command, and frozen __init__ costs 3x
class Invocation:
    """What a handler receives: the raw argument and, for path commands, the
    resolved virtual path (already checked against the user's rights)."""

    arg: str
    path: str = ""


Handler = Callable[["Channel", Invocation], Awaitable[None]]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    handler: Handler
    help: str
    arg: Arg = Arg.NONE
    needs_login: bool = True
    path: bool = False  # the argument (or the cwd when empty) is a path
    perm: str | None = None  # letter required at that path
    feat: str | None = None  # line in FEAT (RFC 2389)
    ls_options: bool = False  # strip "-la" style flags clients send with LIST
    aliases: tuple[str, ...] = ()
    opens_data: bool = False  # uses a data connection (PROT policy applies)
    #: the path part of an argument that holds more (XCRC <path> <start> <end>)
    path_of: Callable[[str], str] | None = None


REGISTRY: dict[str, CommandSpec] = {}

#: answered at once while a transfer runs (RFC 959 §4.1.3 lists ABOR and
#: STAT; QUIT and NOOP are what clients send to keep or end the session)
IMMEDIATE_DURING_TRANSFER = frozenset({"ABOR", "STAT", "QUIT", "NOOP"})

#: the commands that upload (an ALLO is for the next of them)
UPLOADS = frozenset({"STOR", "STOU", "APPE"})

#: the commands a RANG could be meant for that take none here: it serves
#: HASH only (draft-bryan-ftp-range §4.3 lets a server refuse it)
_NOT_RANGED = frozenset({"RETR", *UPLOADS})

#: the commands that spend a RANG: it is kept across others (TYPE, PASV...),
#: for the next of these (range draft §4.3)
ENDS_RANGE = frozenset({"HASH", *XCOMMANDS, *_NOT_RANGED})


def command(
    name: str,
    help: str,
    arg: Arg = Arg.NONE,
    *,
    needs_login: bool = True,
    path: bool = False,
    perm: str | None = None,
    feat: str | None = None,
    ls_options: bool = False,
    aliases: tuple[str, ...] = (),
    opens_data: bool = False,
    path_of: Callable[[str], str] | None = None,
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        spec = CommandSpec(
            name,
            fn,
            help,
            arg,
            needs_login,
            path,
            perm,
            feat,
            ls_options,
            aliases,
            opens_data,
            path_of,
        )
        for verb in (name, *aliases):
            REGISTRY[verb] = spec
        return fn

    return register


def strip_ls_options(arg: str) -> str:
    """``LIST -la /dir`` → ``/dir``: clients pass ``ls`` flags (RFC 959 leaves
    LIST's argument to the server). A name that starts with '-' can still be
    listed as ``./-name``."""
    rest = arg
    while rest.startswith("-"):
        _flags, _, rest = rest.partition(" ")
        rest = rest.lstrip(" ")
    return rest


def preflight(spec: CommandSpec, state: SessionState, arg: str) -> Invocation:
    """Every rule that gates a command before its handler runs. Pure: it
    reads the session state and the user's rights, does no I/O."""
    if spec.needs_login and not state.logged_in:
        raise FTPError(530, "Please log in with USER and PASS first")
    if spec.arg is Arg.REQUIRED and not arg.strip():
        raise FTPError(501, f"{spec.name} needs an argument: {spec.help}")
    if spec.arg is Arg.NONE and arg.strip():
        raise FTPError(501, f"{spec.name} takes no argument")
    if spec.name == "RNTO" and state.rename_from is None:
        raise FTPError(503, "Bad sequence of commands: RNFR first")
    if spec.name == "PASS" and state.username is None and not state.logged_in:
        raise FTPError(503, "Bad sequence of commands: USER first")
    if spec.name in ("PASV", "PORT", "EPRT") and state.epsv_all:
        raise FTPError(501, f"{spec.name} not allowed after EPSV ALL (RFC 2428 §4)")
    if spec.name in _NOT_RANGED and state.hash_range is not None:
        raise FTPError(504, f"RANG is for HASH only here; {spec.name} refused, the range dropped")
    if spec.opens_data and state.require_data_tls and state.prot != "P":
        # RFC 4217 §9: refuse a clear data connection the policy forbids.
        raise FTPError(521, "Data connections must be protected: send PBSZ 0 and PROT P")
    inv = Invocation(arg)
    if spec.path:
        assert state.fs is not None
        if spec.path_of is not None:
            text = spec.path_of(arg)
        else:
            text = strip_ls_options(arg) if spec.ls_options else arg
        path = state.fs.resolve(text)
        if spec.perm:
            state.fs.require(path, spec.perm)
        inv = Invocation(arg, path)
    if spec.opens_data and state.passive is None and state.active_addr is None:
        # Refuse before the 150, and before a file is opened for nothing.
        raise FTPError(425, "Use PORT, PASV, EPRT or EPSV first")
    return inv


def _fs(s: Channel) -> SessionFS:
    assert s.state.fs is not None
    return s.state.fs


def _binary(s: Channel) -> bool:
    return s.state.transfer_type == "I"


async def _not_implemented(s: Channel, inv: Invocation) -> None:
    raise FTPError(502, "Command not implemented")
