"""vfsftp.session.failures as a table: what reply and fault each way a transfer can
end badly gets. (The same end to end, in the logs: tests/integration/
test_transfer_faults.py.)"""

from __future__ import annotations

import asyncio
import errno
import ssl

import fs.errors
import pytest

from vfsftp.protocol.errors import FTPError
from vfsftp.session.failures import Fault, ShortUpload, TransferAborted, failure_of
from vfsftp.storage.digests import ChecksumMismatch
from vfsftp.storage.errors import StorageError
from vfsftp.storage.quota import QuotaExceeded

GONE = Fault("client-gone", "the client closed the control connection")

# (exception, reply code, reply text starts with, fault kind, detail contains, outcome)
CASES = [
    (
        TransferAborted(GONE),
        426,
        "Transfer aborted: the client closed",
        "client-gone",
        "closed",
        "abort",
    ),
    (
        asyncio.CancelledError(),
        426,
        "Transfer aborted",
        "abor",
        "before the data connection",
        "abort",
    ),
    (
        ShortUpload(10, 20),
        451,
        "Upload discarded: the data connection ended after 10 of the 20",
        "short",
        "10 of the 20",
        "fail",
    ),
    (
        ChecksumMismatch("SHA-256", "ab" * 32, "cd" * 32),
        451,
        "Upload discarded: SHA-256 mismatch: announced abab",
        "checksum",
        "received cdcd",
        "fail",
    ),
    (
        FTPError(425, "Can't open data connection: timed out"),
        425,
        "Can't open",
        "no-connection",
        "timed out",
        "fail",
    ),
    (
        FTPError(522, "TLS handshake on the data connection failed: x"),
        522,
        "TLS",
        "tls",
        "handshake",
        "fail",
    ),
    (
        FTPError(554, "Restart offset 9 is beyond the end of the file"),
        554,
        "Restart",
        "refused",
        "beyond",
        "fail",
    ),
    (
        TimeoutError("no data moved"),
        426,
        "No data moved for 30 seconds",
        "stall",
        "no data moved for 30 seconds",
        "fail",
    ),
    (
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        426,
        "Connection closed; transfer aborted: data connection reset by peer",
        "reset",
        "ConnectionResetError",
        "fail",
    ),
    (
        BrokenPipeError(errno.EPIPE, "Broken pipe"),
        426,
        "Connection closed; transfer aborted: data connection closed by peer",
        "closed",
        "BrokenPipeError",
        "fail",
    ),
    (
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        426,
        "Connection closed; transfer aborted: data connection closed without TLS close_notify",
        "closed",
        "SSLEOFError",
        "fail",
    ),
    (
        ssl.SSLError(1, "[SSL: BAD_RECORD_MAC] bad record mac"),
        426,
        "Connection closed; transfer aborted: SSLError",
        "tls",
        "BAD_RECORD_MAC",
        "fail",
    ),
    (
        OSError(errno.EHOSTUNREACH, "No route to host"),
        426,
        "Connection closed; transfer aborted: OSError",
        "network",
        "No route to host",
        "fail",
    ),
    (
        OSError(errno.ENOSPC, "No space left on device", "/srv/secret/.vfsftp-upload-1"),
        452,
        "Insufficient storage space",
        "disk-full",
        "No space left",
        "fail",
    ),
    (
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        552,
        "Disk quota exceeded",
        "disk-full",
        "EDQUOT" if False else "Disk quota",
        "fail",
    ),
    (
        OSError(errno.EIO, "Input/output error"),
        451,
        "Requested action aborted: local error",
        "storage",
        "Input/output",
        "fail",
    ),
    (
        fs.errors.InsufficientStorage(),
        452,
        "Insufficient storage space",
        "disk-full",
        "InsufficientStorage",
        "fail",
    ),
    (
        StorageError("the S3 endpoint is unreachable", 451),
        451,
        "/f: the S3 endpoint is unreachable",
        "storage",
        "unreachable",
        "fail",
    ),
    (
        KeyError("oops"),
        451,
        "Requested action aborted: local error in processing (KeyError)",
        "error",
        "KeyError: 'oops'",
        "fail",
    ),
]


@pytest.mark.parametrize(("exc", "code", "text", "kind", "detail", "outcome"), CASES)
def test_failure_of(
    exc: BaseException, code: int, text: str, kind: str, detail: str, outcome: str
) -> None:
    reply, fault, got_outcome = failure_of(exc, "/f", 30.0)
    assert reply.code == code
    assert isinstance(reply.text, str) and reply.text.startswith(text), reply.text
    assert fault.kind == kind
    assert detail in fault.detail, fault.detail
    assert got_outcome == outcome


def test_quota_is_its_own_fault() -> None:
    reply, fault, _ = failure_of(QuotaExceeded("user alice", "100 bytes"), "/f", 30.0)
    assert (reply.code, fault.kind) == (552, "quota")


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device", "/srv/secret/.vfsftp-upload-1"),
        FileNotFoundError(errno.ENOENT, "No such file or directory", "/srv/secret/x"),
        OSError(errno.EBADF, "Bad file descriptor", "/srv/secret/x"),
    ],
)
def test_a_reply_never_shows_a_server_path(exc: OSError) -> None:
    reply, fault, _ = failure_of(exc, "/f", 30.0)
    assert "/srv/secret" not in str(reply.text)
    assert fault.kind in ("disk-full", "storage")
    assert "/srv/secret" in fault.detail  # (the log is the operator's)
