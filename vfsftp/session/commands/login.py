"""USER, PASS, ACCT, REIN, QUIT: logging in and out (RFC 959 §4.1.1)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ...config.names import user_name_problem
from ...protocol.errors import FTPError
from .. import data as datamod
from ..failures import Fault
from .registry import (
    UPLOADS,
    Arg,
    Invocation,
    command,
)

if TYPE_CHECKING:
    from ..state import Channel, Transfer

#: seconds a QUIT waits for the data of an upload still running to end
#: (then the 221 goes out first, and the upload commits after it)
QUIT_WAIT = 0.5


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
    if (await s.host.tls_policy(name))[0] and not s.state.secure:
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
    s.state.upload_checksum = None
    s.state.hash_range = None
    s.state.hash_algorithm = None  # (draft-bryan-ftpext-hash §3.2)
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
    if t is not None and t.task is not None and t.stop is not None:
        # A HASH: nobody waits for its answer any more; its 426 comes first.
        await s.abort_transfer(Fault("abor", "QUIT received"))
    elif t is not None and t.task is not None and t.verb in UPLOADS and s.state.fs:
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
    # Counted out before the 221: a client that reconnects as soon as it
    # reads it (one session per file, as cameras do) finds its slot free.
    s.host.release_slots(s)
    s.reply(221, "Goodbye")
    s.closing = True


def _data_ended(t: Transfer) -> bool:
    if t.task is None or t.task.done():
        return True
    state = t.state
    return state is not None and (
        state.data_ended or datamod.peer_state(state.sock) in ("closed", "reset")
    )
