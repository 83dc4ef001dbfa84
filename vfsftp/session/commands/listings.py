"""LIST, NLST, MLSD, MLST: directory listings (RFC 959 §4.1.3, RFC 3659 §7), streamed in batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ...protocol.ascii import join_lines
from ...protocol.errors import FTPError
from ...protocol.listings import (
    ListEntry,
    format_list_line,
    format_mlsx,
    mlsx_formatter,
)
from ...protocol.paths import dirname
from .. import data as datamod
from .registry import (
    Arg,
    Invocation,
    _fs,
    command,
)

if TYPE_CHECKING:
    from ...storage.sessionfs import Listing
    from ..state import Channel


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


def ls_lines(entries: list[ListEntry]) -> list[str]:
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
    _send_listing(s, "LIST", inv.path, listing, ls_lines)


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

    line = mlsx_formatter(facts)

    def mlsx_lines(entries: list[ListEntry]) -> list[str]:
        return [line(e) for e in entries]

    _send_listing(s, "MLSD", inv.path, listing, mlsx_lines, lines)


def _with_name(e: ListEntry, name: str) -> ListEntry:
    return e._replace(name=name)


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
