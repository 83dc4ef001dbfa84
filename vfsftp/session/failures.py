"""Why a transfer failed, in one place: the reply the client gets, and the
fault the transfer log and the metrics record. Pure: no I/O.

A fault has a kind, a keyword from a small fixed set (the xferlog field, a
metrics label), and a detail for people (the text and JSON log lines, the
reply), naming the exception class and message where there was one:

====================  ==================================================
``abor``              ABOR (or REIN) stopped it
``client-gone``       the client closed or reset the control connection
                      before the transfer ended (an upload: before it was
                      published)
``shutdown``          the server ended the session
``reset``             the data connection was reset
``closed``            the data connection ended early (a download's
                      client went away; a TLS upload without close_notify)
``stall``             no data moved for ``server.stall_timeout`` seconds
``tls``               TLS on the data connection failed
``network``           another network error on the data connection
``no-connection``     the data connection was never made
``short``             fewer bytes than ``ALLO`` announced
``checksum``          data whose checksum is not the one SITE CHECKSUM
                      announced
``quota``             a quota refused the data
``disk-full``         the storage is full (ENOSPC, EDQUOT, EFBIG)
``storage``           another storage error
``refused``           refused before any data moved (e.g. REST beyond the end)
``error``             an unexpected error (a bug: see the session log)
====================  ==================================================
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from dataclasses import dataclass

from ..protocol.errors import FTPError
from ..protocol.replies import Reply
from ..storage.digests import ChecksumMismatch
from ..storage.errors import map_fs_error

__all__ = ["Fault", "ShortUpload", "TransferAborted", "failure_of"]


@dataclass(frozen=True, slots=True)
class Fault:
    """Why a transfer failed: ``kind`` (see the module's table) and
    ``detail``, for people."""

    kind: str
    detail: str


class TransferAborted(Exception):
    """The transfer was stopped before it ended on its own: ABOR, the
    session ending, an upload whose client left before it was published."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.detail)
        self.fault = fault


class ShortUpload(Exception):
    """The data connection ended before the bytes ``ALLO`` announced."""

    def __init__(self, received: int, promised: int) -> None:
        super().__init__(
            f"the data connection ended after {received} of the {promised} bytes ALLO announced"
        )


# Errors of the storage side during a transfer (the rest are the network's).
_STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES}
)
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

#: replies an FTPError raised during a transfer can carry, and their fault
_FTP_FAULTS = {425: "no-connection", 522: "tls", 552: "quota"}


def _text(reply: Reply) -> str:
    return reply.text if isinstance(reply.text, str) else " ".join(reply.text)


def _named(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure_of(exc: BaseException, path: str, stall_timeout: float) -> tuple[Reply, Fault, str]:
    """The reply, the fault and the outcome (``abort`` or ``fail``) of a
    transfer that ended with ``exc``. Replies name the fault, but never the
    text of a storage error, which may hold a path on the server's disk."""
    if isinstance(exc, TransferAborted):
        return Reply(426, f"Transfer aborted: {exc.fault.detail}"), exc.fault, "abort"
    if isinstance(exc, asyncio.CancelledError):
        fault = Fault("abor", "aborted before the data connection was made")
        return Reply(426, "Transfer aborted"), fault, "abort"
    if isinstance(exc, ShortUpload):
        fault = Fault("short", str(exc))
        return Reply(451, f"Upload discarded: {exc}"), fault, "fail"
    if isinstance(exc, ChecksumMismatch):
        fault = Fault("checksum", str(exc))
        return Reply(451, f"Upload discarded: {exc}"), fault, "fail"
    if isinstance(exc, FTPError):
        kind = _FTP_FAULTS.get(exc.reply.code, "refused")
        return exc.reply, Fault(kind, _text(exc.reply)), "fail"
    if isinstance(exc, OSError):
        return _network_or_storage(exc, path, stall_timeout)
    mapped = map_fs_error(exc, path).reply
    if mapped.code == 451 and _text(mapped).endswith("local error in processing"):
        return (
            Reply(451, f"{_text(mapped)} ({type(exc).__name__})"),
            Fault("error", _named(exc)),
            "fail",
        )
    # (InsufficientStorage 452; an EDQUOT inside an OperationFailed 552)
    kind = "disk-full" if mapped.code in (452, 552) else "storage"
    return mapped, Fault(kind, _named(exc)), "fail"


def _network_or_storage(exc: OSError, path: str, stall_timeout: float) -> tuple[Reply, Fault, str]:
    if isinstance(exc, TimeoutError):  # the data socket's timeout
        text = f"No data moved for {stall_timeout:g} seconds"
        return Reply(426, f"{text}; transfer aborted"), Fault("stall", text.lower()), "fail"
    # (an SSLError's errno is an SSL_ERROR_* code: SYSCALL is 5, EIO)
    storage = exc.errno in _STORAGE_ERRNOS and not isinstance(exc, ssl.SSLError)
    if storage or exc.filename is not None:  # (a socket error names no file)
        kind = "disk-full" if exc.errno in _FULL_ERRNOS else "storage"
        return map_fs_error(exc, path).reply, Fault(kind, _named(exc)), "fail"  # 452, 552, 550
    if isinstance(exc, ssl.SSLEOFError):
        fault = Fault("closed", f"data connection closed without TLS close_notify ({_named(exc)})")
    elif isinstance(exc, ssl.SSLError):
        fault = Fault("tls", _named(exc))
    elif isinstance(exc, ConnectionResetError):
        fault = Fault("reset", f"data connection reset by peer ({_named(exc)})")
    elif isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        fault = Fault("closed", f"data connection closed by peer ({_named(exc)})")
    else:
        fault = Fault("network", _named(exc))
    return Reply(426, f"Connection closed; transfer aborted: {fault.detail}"), fault, "fail"
