"""HASH and RANG (draft-bryan-ftpext-hash-02, draft-bryan-ftp-range-09),
XCRC XMD5 XSHA1 XSHA256 XSHA512 (ProFTPD's mod_digest): checksums of files
on the server, so a client can tell that what arrived is what it sent
without downloading it again. OPTS HASH is with the other OPTS (info.py),
SITE CHECKSUM with SITE.

A hash runs as the session's job (Channel.start_job): its reading, in a
transfer thread, never holds the event loop; ABOR stops it (426, then 226)
and STAT shows how far it got; it reads at the session's download rate (a
hash reads the file as a RETR would); a read that makes no progress for
``server.stall_timeout`` seconds is given up (451). What the storage keeps
with the file (an S3 object's checksum) or the cache holds (the file was
uploaded or hashed before, unchanged since) is answered without a read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import fs.errors

from ...protocol.errors import FTPError, ProtocolError
from ...protocol.hashes import (
    XCOMMANDS,
    RangeBeyondEnd,
    hash_range,
    hash_reply,
    parse_rang,
    parse_xcmd,
    xcmd_path,
    xcmd_range,
    xcmd_reply,
)
from ...storage.digests import HashAnswer, HashBusy, HashJob, HashStopped, HashTooLarge
from .registry import Arg, Invocation, _fs, command

if TYPE_CHECKING:
    from ...config.schema import HashConfig
    from ..failures import Fault
    from ..state import Channel, Transfer

log = logging.getLogger("vfsftp.session")


def hash_config(s: Channel) -> HashConfig:
    """The session's hash settings; 502 when the server offers no hashes."""
    cfg = s.config.server.hash
    if not cfg.enabled:
        raise FTPError(502, "Checksums are not enabled on this server")
    return cfg


def selected_algorithm(s: Channel) -> str:
    return s.state.hash_algorithm or s.config.server.hash.algorithm


def _allowed(s: Channel, cfg: HashConfig) -> None:
    account = s.state.account
    if account is not None and account.anonymous and not cfg.anonymous:
        # draft-bryan-ftpext-hash §3.5: the user may not use HASH
        raise FTPError(552, "Checksums are not offered to anonymous users")


@command(
    "HASH",
    "HASH <file>: the file's checksum, in the algorithm OPTS HASH chose, of the RANG range",
    Arg.REQUIRED,
    path=True,
    perm="r",
)
async def cmd_hash(s: Channel, inv: Invocation) -> None:
    cfg = hash_config(s)
    _allowed(s, cfg)
    algorithm = selected_algorithm(s)
    rang = s.state.hash_range  # (reset once this command is handled)

    def span(size: int) -> tuple[int, int]:
        return hash_range(rang, size)

    def answer(found: HashAnswer) -> None:
        s.reply(213, hash_reply(found.algorithm, found.start, found.stop, found.digest, inv.arg))

    _start(s, "HASH", inv.path, algorithm, span, answer, draft_codes=True)


@command(
    "RANG",
    "RANG <start> <end>: the octets the next HASH reads (RANG 1 0: all)",
    Arg.REQUIRED,
    feat="RANG STREAM",
)
async def cmd_rang(s: Channel, inv: Invocation) -> None:
    hash_config(s)
    try:
        rang = parse_rang(inv.arg)
    except ProtocolError as exc:
        s.state.hash_range = None  # (range draft §3: an invalid RANG resets it)
        raise FTPError(501, str(exc)) from None
    s.state.hash_range = rang
    if rang is None:
        s.reply(350, "Range reset: the whole file")
    else:
        s.reply(350, f"Range set to octets {rang[0]}-{rang[1]}; send HASH")


def _xcommand(verb: str, algorithm: str) -> None:
    async def handler(s: Channel, inv: Invocation) -> None:
        cfg = hash_config(s)
        _allowed(s, cfg)
        try:
            args = parse_xcmd(inv.arg)
        except ProtocolError as exc:
            raise FTPError(501, str(exc)) from None

        def span(size: int) -> tuple[int, int]:
            return xcmd_range(args, size)

        def answer(found: HashAnswer) -> None:
            s.reply(250, xcmd_reply(found.algorithm, found.digest))

        _start(s, verb, inv.path, algorithm, span, answer, draft_codes=False)

    aliases = tuple(v for v, a in XCOMMANDS.items() if a == algorithm and v != verb)
    command(
        verb,
        f"{verb} <file> [<start> <end>]: the file's {algorithm} (mod_digest)",
        Arg.REQUIRED,
        path=True,
        perm="r",
        feat=verb,
        aliases=aliases,
        path_of=xcmd_path,
    )(handler)


for _verb in ("XCRC", "XMD5", "XSHA1", "XSHA256", "XSHA512"):
    _xcommand(_verb, XCOMMANDS[_verb])


def _start(
    s: Channel,
    verb: str,
    path: str,
    algorithm: str,
    span: Callable[[int], tuple[int, int]],
    answer: Callable[[HashAnswer], None],
    *,
    draft_codes: bool,
) -> None:
    """Hash ``path`` as the session's job, and ``answer`` with the result
    or reply the error: with the HASH draft's codes (§3.5: 553 for a
    directory, 556 over the size limit) or mod_digest's (550 for both)."""
    fs_ = _fs(s)
    job = HashJob(throttle=s.host.throttle_for(s, "down"))
    call = fs_.hash_call(path, algorithm, span, job, s.host.hash_slots)
    executor = s.host.transfer_executor
    stall = s.config.server.stall_timeout
    shown = s.tree_path(path)

    async def run(t: Transfer) -> None:
        loop = asyncio.get_running_loop()
        fut = executor.run(call, lane=fs_.lane(path))
        stalled = False
        seen = job.done
        timer: asyncio.TimerHandle | None = None

        def watch() -> None:
            # No progress for a whole stall_timeout: the storage does not
            # answer. The thread cannot be interrupted in its read; it is
            # told to stop, and the client hears now.
            nonlocal timer, stalled, seen
            if fut.done():
                return
            if job.done == seen:
                stalled = True
                job.stop("stall")
                fut.cancel()
                return
            seen = job.done
            timer = loop.call_later(stall, watch)

        timer = loop.call_later(stall, watch)
        try:
            found = await fut
        except asyncio.CancelledError:
            if not stalled:
                raise  # ABOR, REIN, the session's end: Channel._job answers
            log.info("%s %s: %s %s: no data read for %gs", s.peer, s.username, verb, shown, stall)
            s.reply(451, f"No data read for {stall:g} seconds; {verb} aborted")
            return
        except FTPError as exc:
            reply = _recoded(exc, draft_codes).reply
            s.reply(reply.code, reply.text)
            return
        except RangeBeyondEnd as exc:
            s.reply(554 if draft_codes else 501, str(exc))
            return
        except ProtocolError as exc:
            s.reply(501, f"{verb}: {exc}")
            return
        except HashTooLarge as exc:
            s.reply(556 if draft_codes else 550, f"{verb} refused: {exc}")
            return
        except HashBusy:
            s.reply(450, "The server is busy hashing other files; try again later")
            return
        except HashStopped as exc:  # (stopped as the session ended)
            s.reply(426, f"{verb} aborted: {exc}")
            return
        finally:
            if timer is not None:
                timer.cancel()
        log.info(
            "%s %s: %s %s %s %d-%d from %s (%d bytes read in %.3fs)",
            s.peer,
            s.username,
            verb,
            shown,
            found.algorithm,
            found.start,
            found.stop,
            found.source,
            job.done,
            time.monotonic() - job.started,
        )
        answer(found)

    def stop(fault: Fault) -> None:
        job.stop(fault.kind)

    def describe() -> str:
        elapsed = time.monotonic() - job.started
        return f"{verb} in progress: {path}, {job.done} of {job.total} bytes read in {elapsed:.1f}s"

    s.start_job(verb, path, run, stop, describe)


def _recoded(exc: FTPError, draft_codes: bool) -> FTPError:
    """A directory is 553 to HASH (draft §3.5), 550 to the X-commands."""
    if draft_codes and isinstance(exc.__cause__, fs.errors.FileExpected):
        return FTPError(553, " ".join(exc.reply.lines) + " (HASH takes a file)")
    return exc
