"""The command set: one registry row per command, one ``preflight`` holding
every gating rule, and the handlers.

A row says whether the command needs a login, what kind of argument it takes,
whether that argument is a path and which permission letter the user must hold
there. ``preflight`` applies all of that before a handler runs, so handlers
only do their own work; FEAT and HELP are generated from the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.schema import user_name_problem
from ..protocol.arguments import (
    format_epsv,
    format_mdtm,
    format_pasv,
    parse_allo,
    parse_eprt,
    parse_mfmt_time,
    parse_port,
)
from ..protocol.ascii import AsciiEncoder, join_lines
from ..protocol.errors import FTPError, ProtocolError
from ..protocol.listings import (
    MLST_FACTS,
    ListEntry,
    feat_mlst_line,
    format_list_line,
    format_mlsx,
    parse_opts_mlst,
)
from ..protocol.paths import basename, dirname
from ..protocol.replies import quote_path
from . import data as datamod
from .failures import Fault, ShortUpload

if TYPE_CHECKING:
    from ..storage.sessionfs import Listing, SessionFS
    from .state import Channel, SessionState, Transfer

__all__ = [
    "IMMEDIATE_DURING_TRANSFER",
    "REGISTRY",
    "UPLOADS",
    "Arg",
    "CommandSpec",
    "Invocation",
    "preflight",
]


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


REGISTRY: dict[str, CommandSpec] = {}

#: answered at once while a transfer runs (RFC 959 §4.1.3 lists ABOR and
#: STAT; QUIT and NOOP are what clients send to keep or end the session)
IMMEDIATE_DURING_TRANSFER = frozenset({"ABOR", "STAT", "QUIT", "NOOP"})

#: the commands that upload (an ALLO is for the next of them)
UPLOADS = frozenset({"STOR", "STOU", "APPE"})

#: seconds a QUIT waits for the data of an upload still running to end
#: (then the 221 goes out first, and the upload commits after it)
QUIT_WAIT = 0.5

#: files up to this size are read whole when RETR opens them
SMALL_RETR = 128 * 1024


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
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        spec = CommandSpec(
            name, fn, help, arg, needs_login, path, perm, feat, ls_options, aliases, opens_data
        )
        for verb in (name, *aliases):
            REGISTRY[verb] = spec
        return fn

    return register


# ------------------------------------------------------------------ preflight


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
    if spec.opens_data and state.require_data_tls and state.prot != "P":
        # RFC 4217 §9: refuse a clear data connection the policy forbids.
        raise FTPError(521, "Data connections must be protected: send PBSZ 0 and PROT P")
    inv = Invocation(arg)
    if spec.path:
        assert state.fs is not None
        text = strip_ls_options(arg) if spec.ls_options else arg
        path = state.fs.resolve(text)
        if spec.perm:
            state.fs.require(path, spec.perm)
        inv = Invocation(arg, path)
    if spec.opens_data and state.passive is None and state.active_addr is None:
        # Refuse before the 150, and before a file is opened for nothing.
        raise FTPError(425, "Use PORT, PASV, EPRT or EPSV first")
    return inv


# ------------------------------------------------------------------ helpers


def _fs(s: Channel) -> SessionFS:
    assert s.state.fs is not None
    return s.state.fs


def _binary(s: Channel) -> bool:
    return s.state.transfer_type == "I"


# ------------------------------------------------------------------ login (RFC 959 §4.1.1)


@command("USER", "USER <name>: send the user name", Arg.REQUIRED, needs_login=False)
async def cmd_user(s: Channel, inv: Invocation) -> None:
    if s.state.logged_in:
        # RFC 959 allows USER to change users; we keep it simple and explicit.
        raise FTPError(503, "Already logged in; use REIN to change user")
    name = inv.arg.strip()
    if user_name_problem(name) is not None:
        # One rule for every name (config.user_name_problem): a name
        # becomes a folder name (${user}) and a log field.
        raise FTPError(501, "Invalid user name")
    if s.host.tls_policy(name)[0] and not s.state.secure:
        # RFC 4217 §11: 534, policy requires TLS; the password never travels
        # in clear because we refuse before PASS.
        raise FTPError(534, "TLS required for this user: send AUTH TLS first")
    s.state.username = name
    if s.host.authorizer.is_anonymous(s.state.username):
        s.reply(331, "Anonymous login ok, send your e-mail address as password")
    else:
        s.reply(331, f"Password required for {s.state.username}")


@command("PASS", "PASS <password>: send the password", Arg.OPTIONAL, needs_login=False)
async def cmd_pass(s: Channel, inv: Invocation) -> None:
    if s.state.logged_in:
        raise FTPError(503, "Already logged in")
    name = s.state.username or ""
    s.state.username = None
    await s.host.login(s, name, inv.arg)


@command("ACCT", "ACCT <account>: accounts are not used", Arg.REQUIRED, needs_login=False)
async def cmd_acct(s: Channel, inv: Invocation) -> None:
    s.reply(202, "ACCT not needed on this server")


@command("REIN", "REIN: log out and start a new session", needs_login=False)
async def cmd_rein(s: Channel, inv: Invocation) -> None:
    await s.abort_transfer(Fault("abor", "REIN received"))
    s.state.allo = None
    s.close_passive()
    s.host.logout(s)
    s.await_login()
    s.reply(220, "Ready for a new user")


@command("QUIT", "QUIT: end the session", needs_login=False)
async def cmd_quit(s: Channel, inv: Invocation) -> None:
    # RFC 959 §4.1.1: a transfer in progress is allowed to finish (its data
    # connection stays open), its reply goes out, and then the server
    # closes. A QUIT is a deliberate goodbye: an upload still running is
    # published even if the client closes the control connection first.
    s.quit_requested = True
    t = s.transfer
    if t is not None and t.task is not None and t.verb in UPLOADS and s.state.fs:
        task = t.task
        if not _data_ended(t):
            # (a QUIT pipelined behind the data may overtake its FIN)
            await asyncio.wait({task}, timeout=QUIT_WAIT)
        if _data_ended(t):
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)  # the upload's 226 first
        else:
            # The data still comes: the 221 goes out now, as pyftpdlib sends
            # it (fs.ftpfs waits for it before it closes the data
            # connection), and the upload commits afterwards; a new session
            # of the same client must then see the file (fs.ftpfs does
            # exactly that on seek()).
            s.host.settling_upload(s.state.fs, t.path, task)
    s.reply(221, "Goodbye")
    s.closing = True


def _data_ended(t: Transfer) -> bool:
    if t.task is None or t.task.done():
        return True
    state = t.state
    return state is not None and (
        state.data_ended or datamod.peer_state(state.sock) in ("closed", "reset")
    )


# ------------------------------------------------------------------ navigation


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


# ------------------------------------------------------------------ parameters


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


# ------------------------------------------------------------------ data connection setup


def _reset_data(s: Channel) -> None:
    s.close_passive()
    s.state.active_addr = None


def _passive_listener(s: Channel, family: socket.AddressFamily) -> datamod.PassiveListener:
    _reset_data(s)
    cfg = s.config.server
    expected = None if cfg.permit_foreign_addresses else s.peer_ip
    listener = datamod.open_passive(s.local_ip, family, cfg.passive_ports, expected)
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
    _reset_data(s)
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


# ------------------------------------------------------------------ listings


def _send_listing(
    s: Channel,
    verb: str,
    path: str,
    listing: Listing,
    lines_of: Callable[[list[ListEntry]], list[str]],
    first_lines: list[str] | None = None,
) -> None:
    """Send ``listing`` as ``lines_of`` formats it, after ``first_lines``.
    A listing in one batch is sent whole (from the event loop where it
    can); a longer one batch by batch from the transfer thread, each made
    only once the one before went out: bounded memory, and nothing more
    is read (no further directory read, no further S3 page) once the
    client is gone or ABOR arrives."""
    body = join_lines([*(first_lines or ()), *lines_of(listing.head)])
    if listing.rest is None:

        def work(state: datamod.TransferState) -> int:
            return datamod.send_bytes(state, body)

        s.start_transfer(
            verb,
            path,
            work,
            f"Here comes the listing of {path}",
            success_text="Listing sent",
            body=body,
        )
        return

    def chunks() -> Iterator[bytes]:
        yield body
        while (batch := listing.next_batch()) is not None:
            yield join_lines(lines_of(batch))

    def stream(state: datamod.TransferState) -> int:
        return datamod.send_chunks(state, chunks())

    def cleanup(ok: bool) -> None:
        listing.close()

    s.start_transfer(
        verb, path, stream, f"Here comes the listing of {path}", cleanup, "Listing sent"
    )


def _ls_lines(entries: list[ListEntry]) -> list[str]:
    now = time.time()
    return [format_list_line(e, now) for e in entries]


@command(
    "LIST",
    "LIST [path]: long listing",
    Arg.OPTIONAL,
    path=True,
    perm="l",
    ls_options=True,
    opens_data=True,
)
async def cmd_list(s: Channel, inv: Invocation) -> None:
    # No "total N" first line, whatever the size (as vsftpd and pyftpdlib):
    # a streamed listing cannot know it first, one format serves every
    # client's parser, and none needs it (curl, lftp, ftplib, fs.ftpfs).
    listing = await _fs(s).listing_or_file(inv.path, want_unique=False)
    _send_listing(s, "LIST", inv.path, listing, _ls_lines)


@command(
    "NLST",
    "NLST [path]: name listing",
    Arg.OPTIONAL,
    path=True,
    perm="l",
    ls_options=True,
    opens_data=True,
)
async def cmd_nlst(s: Channel, inv: Invocation) -> None:
    listing = await _fs(s).listing_or_file(inv.path, want_unique=False)
    _send_listing(s, "NLST", inv.path, listing, _names)


def _names(entries: list[ListEntry]) -> list[str]:
    return [e.name for e in entries]


@command(
    "MLSD",
    "MLSD [dir]: machine listing (RFC 3659)",
    Arg.OPTIONAL,
    path=True,
    perm="l",
    opens_data=True,
)
async def cmd_mlsd(s: Channel, inv: Invocation) -> None:
    fs_ = _fs(s)
    here = await fs_.stat_dir(inv.path)
    if here is None:
        raise FTPError(501, f"Not a directory: {inv.path}")
    facts = s.state.mlst_facts
    listing = await fs_.listing(inv.path, want_unique="unique" in facts)
    try:
        lines = [format_mlsx(_with_name(here, "."), facts, "cdir")]
        if inv.path != "/":
            parent = await fs_.stat_dir(dirname(inv.path))
            if parent is not None:  # (else replaced by a file meanwhile: no pdir line)
                lines.append(format_mlsx(_with_name(parent, ".."), facts, "pdir"))
    except BaseException:
        listing.close()
        raise

    def mlsx_lines(entries: list[ListEntry]) -> list[str]:
        return [format_mlsx(e, facts) for e in entries]

    _send_listing(s, "MLSD", inv.path, listing, mlsx_lines, lines)


def _with_name(e: ListEntry, name: str) -> ListEntry:
    from dataclasses import replace

    return replace(e, name=name)


@command("MLST", "MLST [path]: facts about one file (RFC 3659)", Arg.OPTIONAL, path=True, perm="l")
async def cmd_mlst(s: Channel, inv: Invocation) -> None:
    entry = await _fs(s).stat(inv.path)
    line = format_mlsx(
        _with_name(entry, inv.path),
        s.state.mlst_facts,
        "cdir" if entry.is_dir and inv.path == _fs(s).cwd else None,
    )
    # §7.2: the fact line is indented by one space inside the 250 reply.
    s.reply(250, (f"Listing {inv.path}", " " + line, "End"))


# ------------------------------------------------------------------ transfers


@command("RETR", "RETR <file>: download", Arg.REQUIRED, path=True, perm="r", opens_data=True)
async def cmd_retr(s: Channel, inv: Invocation) -> None:
    fs_ = _fs(s)
    offset = s.state.rest_offset
    ascii_mode = not _binary(s)
    # sendfile writes file pages straight to the socket: plain data only
    # (send_stream also needs a real file descriptor, i.e. a local disk).
    use_sendfile = s.state.prot == "C"

    throttle = s.host.throttle_for(s, "down")
    # A small file is read whole by the call that opens it and sent from
    # the event loop: one thread hop per small RETR instead of two.
    preload = SMALL_RETR if throttle is None and s.state.prot == "C" else 0
    f, size, content = await fs_.open_read(inv.path, offset, preload)
    mode = "ASCII" if ascii_mode else "BINARY"
    if content is not None:
        body = AsciiEncoder().encode(content) if ascii_mode else content

        def send_content(state: datamod.TransferState) -> int:
            return datamod.send_bytes(state, body)

        s.start_transfer(
            "RETR",
            inv.path,
            send_content,
            f"Opening {mode} mode data connection for {inv.path} ({size} bytes)",
            body=body,
        )
        return
    assert f is not None

    def work(state: datamod.TransferState) -> int:
        return datamod.send_stream(state, f, ascii_mode, offset, use_sendfile, throttle)

    def cleanup(ok: bool) -> None:
        f.close()

    s.start_transfer(
        "RETR",
        inv.path,
        work,
        f"Opening {mode} mode data connection for {inv.path} ({size} bytes)",
        cleanup,
    )


async def _store(
    s: Channel, verb: str, path: str, append: bool = False, stou: bool = False
) -> None:
    fs_ = _fs(s)
    offset = s.state.rest_offset
    promised = s.state.allo
    upload = await fs_.begin_upload(path, offset=offset, append=append)
    ascii_mode = not _binary(s)

    throttle = s.host.throttle_for(s, "up")
    # ALLO counts the whole file, also when REST resumes it (lftp sends
    # both): the bytes before the offset are already there.
    kept = 0 if append else offset

    def work(state: datamod.TransferState) -> int:
        f = upload.open()
        n = datamod.recv_stream(state, f, ascii_mode, throttle)
        if promised is not None and kept + n < promised:
            raise ShortUpload(kept + n, promised)
        return n

    opening = f"FILE: {basename(path)}" if stou else f"Opening data connection for {path}"
    s.start_transfer(verb, path, work, opening, upload=upload, sized=promised is not None)


@command("STOR", "STOR <file>: upload", Arg.REQUIRED, path=True, perm="w", opens_data=True)
async def cmd_stor(s: Channel, inv: Invocation) -> None:
    if s.state.rest_offset:
        # Resuming rewrites part of an existing file: also needs append rights.
        _fs(s).require(inv.path, "a")
    await _store(s, "STOR", inv.path)


@command(
    "APPE", "APPE <file>: append to a file", Arg.REQUIRED, path=True, perm="a", opens_data=True
)
async def cmd_appe(s: Channel, inv: Invocation) -> None:
    await _store(s, "APPE", inv.path, append=True)


@command("STOU", "STOU [name]: upload under a unique name", Arg.OPTIONAL, opens_data=True)
async def cmd_stou(s: Channel, inv: Invocation) -> None:
    fs_ = _fs(s)
    if s.state.rest_offset:
        raise FTPError(501, "REST is not allowed with STOU")
    hint = basename(fs_.resolve(inv.arg)) if inv.arg.strip() else "file"
    directory = fs_.cwd
    fs_.require(directory + "/x" if directory != "/" else "/x", "w")
    path = await fs_.unique_name(directory, hint)
    # RFC 1123 §4.1.2.9: the 150 reply names the file ("FILE: name").
    await _store(s, "STOU", path, stou=True)


@command("ABOR", "ABOR: abort the transfer in progress")
async def cmd_abor(s: Channel, inv: Invocation) -> None:
    if await s.abort_transfer():
        # RFC 959 §4.1.3: the transfer's 426 has gone out; now the 226.
        s.reply(226, "ABOR command successful")
    elif s.state.passive is not None or s.state.active_addr is not None:
        _reset_data(s)
        s.reply(225, "ABOR command successful; data connection closed")
    else:
        s.reply(225, "No transfer to abort")


# ------------------------------------------------------------------ file management


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


# ------------------------------------------------------------------ informational


@command("SYST", "SYST: system type", needs_login=False)
async def cmd_syst(s: Channel, inv: Invocation) -> None:
    # What every client expects so that it parses LIST as ls -l.
    s.reply(215, "UNIX Type: L8")


@command("NOOP", "NOOP: do nothing", needs_login=False)
async def cmd_noop(s: Channel, inv: Invocation) -> None:
    s.reply(200, "NOOP ok")


def feat_lines(state: SessionState, tls: bool = False) -> list[str]:
    lines = {spec.feat for spec in REGISTRY.values() if spec.feat}
    lines.add(feat_mlst_line(state.mlst_facts))
    lines.add("UTF8")
    lines.add("TVFS")
    if tls:
        lines.update({"AUTH TLS", "AUTH SSL", "PBSZ", "PROT"})
    return sorted(lines)


@command("FEAT", "FEAT: list extensions (RFC 2389)", needs_login=False)
async def cmd_feat(s: Channel, inv: Invocation) -> None:
    # §3.2: feature lines start with a single space.
    s.reply(
        211,
        (
            "Features:",
            *(" " + line for line in feat_lines(s.state, s.tls_context is not None)),
            "End",
        ),
    )


@command(
    "OPTS", "OPTS <command> [options]: set options (RFC 2389)", Arg.REQUIRED, needs_login=False
)
async def cmd_opts(s: Channel, inv: Invocation) -> None:
    verb, _, rest = inv.arg.strip().partition(" ")
    verb = verb.upper()
    if verb == "UTF8":
        if rest.strip().upper() in ("ON", ""):
            s.reply(200, "UTF8 mode is always on")
            return
        raise FTPError(504, "UTF8 cannot be turned off (RFC 2640)")
    if verb == "MLST":
        s.state.mlst_facts = frozenset(parse_opts_mlst(rest))
        s.reply(200, "MLST OPTS " + "".join(f + ";" for f in MLST_FACTS if f in s.state.mlst_facts))
        return
    raise FTPError(501, f"OPTS {verb} not understood")


def _help_lines() -> list[str]:
    verbs = sorted(REGISTRY)
    rows = [" ".join(f"{v:<5}" for v in verbs[i : i + 8]).rstrip() for i in range(0, len(verbs), 8)]
    return [" " + r for r in rows]


@command("HELP", "HELP [command]: help on commands", Arg.OPTIONAL, needs_login=False)
async def cmd_help(s: Channel, inv: Invocation) -> None:
    topic = inv.arg.strip().upper()
    if topic:
        spec = REGISTRY.get(topic)
        if spec is None:
            raise FTPError(501, f"Unknown command {topic}")
        s.reply(214, f"Syntax: {spec.help}")
        return
    s.reply(214, ("The following commands are recognized:", *_help_lines(), "Help OK"))


@command(
    "STAT",
    "STAT [path]: session status, or a listing over the control connection",
    Arg.OPTIONAL,
    needs_login=False,
    ls_options=True,
)
async def cmd_stat(s: Channel, inv: Invocation) -> None:
    text = strip_ls_options(inv.arg)
    if text.strip():
        if not s.state.logged_in:
            raise FTPError(530, "Please log in with USER and PASS first")
        fs_ = _fs(s)
        path = fs_.resolve(text)
        fs_.require(path, "l")
        listing = await fs_.listing_or_file(path, want_unique=False)
        # RFC 959 §4.1.3: like LIST, but over the control connection (213).
        # Streamed, as a LIST is, rather than capped: a client may list a
        # folder of any size this way (some without a data connection
        # through their firewall), and the control transport's flow
        # control bounds what is held (see Channel.reply_streamed).
        head: list[ListEntry] | None = listing.head

        async def more() -> list[str] | None:
            nonlocal head
            batch, head = head, None
            if batch is None:
                batch = await fs_.next_batch(listing, path)
            return None if batch is None else _ls_lines(batch)

        try:
            await s.reply_streamed(213, f"Status of {path}:", more, "End of status")
        finally:
            await fs_.close_listing(listing)
        return
    lines = ["vfsftp status", f"Connected from {s.peer}"]
    if s.state.logged_in:
        lines.append(f"Logged in as {s.username}")
    else:
        lines.append("Not logged in")
    lines.append(f"TYPE: {'BINARY' if _binary(s) else 'ASCII'}, STRUcture: File, MODE: Stream")
    t = s.transfer
    if t is not None and t.state is not None:
        elapsed = time.monotonic() - t.state.started
        lines.append(
            f"Transfer in progress: {t.verb} {t.path}, {t.state.bytes} bytes in {elapsed:.1f}s"
        )
    elif t is not None:
        # The command was accepted; its data connection is being opened.
        lines.append(f"Transfer in progress: {t.verb} {t.path}, opening the data connection")
    elif s.state.passive is not None:
        lines.append(f"Passive data port {s.state.passive.port} waiting")
    else:
        lines.append("No data connection")
    lines.append("End of status")
    s.reply(211, tuple(lines))


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


# ------------------------------------------------------------------ FTPS (RFC 4217)


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


async def _not_implemented(s: Channel, inv: Invocation) -> None:
    raise FTPError(502, "Command not implemented")


REGISTRY.setdefault(
    "SMNT", CommandSpec("SMNT", _not_implemented, "SMNT: not supported", Arg.OPTIONAL)
)
