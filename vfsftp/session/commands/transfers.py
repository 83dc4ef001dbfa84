"""RETR, STOR, APPE, STOU, ABOR: file transfers (RFC 959 §4.1.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...protocol.ascii import AsciiEncoder
from ...protocol.errors import FTPError
from ...protocol.paths import basename
from .. import data as datamod
from ..failures import ShortUpload
from .data_connections import reset_data
from .registry import (
    Arg,
    Invocation,
    _binary,
    _fs,
    command,
)

if TYPE_CHECKING:
    from ..state import Channel

#: files up to this size are read whole when RETR opens them
SMALL_RETR = 128 * 1024


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
    announced = s.state.upload_checksum
    algorithms, logged = upload_checksums(s)
    if logged is None and announced is not None:
        logged = announced[0]
    upload = await fs_.begin_upload(
        path, offset=offset, append=append, algorithms=algorithms, expected=announced
    )
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
        digests = upload.finish()  # (ChecksumMismatch: discarded, 451)
        if logged is not None:
            state.checksum = (logged, digests[logged])
        return n

    opening = f"FILE: {basename(path)}" if stou else f"Opening data connection for {path}"
    s.start_transfer(verb, path, work, opening, upload=upload, sized=promised is not None)


def upload_checksums(s: Channel) -> tuple[tuple[str, ...], str | None]:
    """The checksums an upload computes while its data arrives, and the
    one its transfer log records: ``server.hash.upload`` (for the log, the
    cache, and, SHA-256, an S3 object's metadata) and the algorithm HASH
    would use now, so that a HASH right after the upload reads nothing."""
    cfg = s.config.server.hash
    if cfg.upload is None:
        return (), None
    if not cfg.enabled:
        return (cfg.upload,), cfg.upload
    return tuple(dict.fromkeys((cfg.upload, s.state.hash_algorithm or cfg.algorithm))), cfg.upload


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
        reset_data(s)
        s.reply(225, "ABOR command successful; data connection closed")
    else:
        s.reply(225, "No transfer to abort")
