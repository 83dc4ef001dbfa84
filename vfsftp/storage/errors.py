"""Storage errors, and the one map from filesystem errors to FTP replies."""

from __future__ import annotations

import errno

import fs.errors

from ..protocol.errors import FTPError

__all__ = ["NameTaken", "StorageError", "map_fs_error", "storage_failure"]


class NameTaken(Exception):
    """A write made on the condition that no file had its name (S3's
    ``If-None-Match: *``) found one: nothing was written, and the writer
    may be committed again without the condition."""


class StorageError(fs.errors.OperationFailed):
    """A backend error whose reason is safe and useful to show the client:
    an operation refused by design (appending to an S3 object, setting its
    time, renaming a whole prefix: 550), access denied by the store (550), the
    store unreachable (451)."""

    def __init__(
        self, reason: str, code: int = 550, *, failure: bool = False, backend: str = ""
    ) -> None:
        super().__init__(msg=reason)
        self.reason = reason
        self.code = code
        #: the store failed or refused (unreachable, denied, no bucket), as
        #: opposed to a refusal by design: worth a line in the server's log
        self.failure = failure
        #: the kind of mount that raised it ("s3"): a call on two mounts (a
        #: rename across them) names the one that failed
        self.backend = backend


# Ordered: the first matching class wins, so subclasses come first.
# Texts name the *virtual* path only: an OSFS error message carries the host
# path, which must never reach the client.
_FS_ERRORS: tuple[tuple[type[BaseException], int, str], ...] = (
    (fs.errors.ResourceNotFound, 550, "No such file or directory: {path}"),
    (fs.errors.DirectoryExpected, 550, "Not a directory: {path}"),
    (fs.errors.FileExpected, 550, "Is a directory: {path}"),
    (fs.errors.DestinationExists, 550, "Already exists: {path}"),
    (fs.errors.DirectoryExists, 550, "Directory already exists: {path}"),
    (fs.errors.FileExists, 550, "File already exists: {path}"),
    (fs.errors.DirectoryNotEmpty, 550, "Directory not empty: {path}"),
    (fs.errors.ResourceReadOnly, 550, "Read-only: {path}"),
    (fs.errors.RemoveRootError, 550, "Cannot remove the root directory"),
    (fs.errors.ResourceLocked, 450, "File busy: {path}"),
    (fs.errors.PermissionDenied, 550, "Permission denied: {path}"),
    # RFC 959 §4.2: 452 "insufficient storage space in system" (a full
    # disk); 552 "exceeded storage allocation" is a quota's (EDQUOT below,
    # vfsftp.quota).
    (fs.errors.InsufficientStorage, 452, "Insufficient storage space"),
    (fs.errors.InvalidCharsInPath, 553, "File name not allowed: {path}"),
    (fs.errors.InvalidPath, 553, "File name not allowed: {path}"),
    (fs.errors.Unsupported, 504, "Not supported by this filesystem: {path}"),
    (fs.errors.RemoteConnectionError, 451, "Storage backend unreachable"),
    (fs.errors.OperationTimeout, 451, "Storage backend timed out"),
    (fs.errors.FilesystemClosed, 421, "Service not available, filesystem closed"),
)

_OS_ERRORS: dict[int, tuple[int, str]] = {
    errno.ENOENT: (550, "No such file or directory: {path}"),
    errno.EACCES: (550, "Permission denied: {path}"),
    errno.EPERM: (550, "Permission denied: {path}"),
    errno.EEXIST: (550, "Already exists: {path}"),
    errno.ENOTDIR: (550, "Not a directory: {path}"),
    errno.EISDIR: (550, "Is a directory: {path}"),
    errno.ENOTEMPTY: (550, "Directory not empty: {path}"),
    errno.ENOSPC: (452, "Insufficient storage space"),
    errno.EDQUOT: (552, "Disk quota exceeded"),
    errno.EROFS: (550, "Read-only: {path}"),
    errno.ENAMETOOLONG: (553, "File name too long: {path}"),
}


def map_fs_error(exc: BaseException, path: str) -> FTPError:
    """The reply for an error raised by a filesystem call on ``path``.

    fs.errors first (ResourceNotFound → 550, InsufficientStorage → 452, ...),
    then OSError numbers (raw, as some fs code lets them through, or inside
    an OperationFailed: fs has no class for EDQUOT), then 451 "local error
    in processing" (RFC 959 §4.2.2) for anything else.
    """
    if isinstance(exc, FTPError):
        return exc
    if isinstance(exc, StorageError):
        return FTPError(exc.code, f"{path}: {exc.reason}")
    for cls, code, text in _FS_ERRORS:
        if isinstance(exc, cls):
            return FTPError(code, text.format(path=path))
    cause = exc if isinstance(exc, OSError) else getattr(exc, "exc", None)
    if isinstance(cause, OSError) and cause.errno in _OS_ERRORS:
        code, text = _OS_ERRORS[cause.errno]
        return FTPError(code, text.format(path=path))
    if isinstance(exc, fs.errors.OperationFailed):
        return FTPError(451, f"Requested action aborted: storage error on {path}")
    return FTPError(451, "Requested action aborted: local error in processing")


def storage_failure(exc: BaseException, mapped: FTPError) -> str | None:
    """Why the storage failed, in one line for the server's log; None when
    the error is the client's or a rule's (a missing file, a full disk, an
    operation S3 cannot do), which the reply alone explains."""
    if isinstance(exc, StorageError):
        if not exc.failure:
            return None
        text = exc.reason
    elif mapped.reply.code != 451:
        return None
    else:
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, (fs.errors.FSError, OSError)):
            text = f"{type(exc).__name__}: {text}"
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({cause})"
    return text
