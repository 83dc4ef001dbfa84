"""Filesystem errors → FTP replies (vfsftp/storage/errors.py). The reply names the
client's virtual path, never the host path an exception may carry."""

from __future__ import annotations

import errno

import fs.errors
import pytest

from vfsftp.protocol.errors import FTPError
from vfsftp.storage.errors import map_fs_error

VPATH = "/pub/report 2024.txt"
HOST = "/srv/ftp-data/alice/secret-host-dir/report 2024.txt"


def _host_oserror(code: int) -> OSError:
    return OSError(code, "host error", HOST)


# (exception, code, whether the text names the virtual path)
FS_ERRORS: list[tuple[BaseException, int, bool]] = [
    (fs.errors.ResourceNotFound(HOST), 550, True),
    (fs.errors.DirectoryExpected(HOST), 550, True),
    (fs.errors.FileExpected(HOST), 550, True),
    (fs.errors.DestinationExists(HOST), 550, True),
    (fs.errors.DirectoryExists(HOST), 550, True),
    (fs.errors.FileExists(HOST), 550, True),
    (fs.errors.DirectoryNotEmpty(HOST), 550, True),
    (fs.errors.ResourceReadOnly(HOST), 550, True),
    (fs.errors.RemoveRootError(HOST), 550, False),
    (fs.errors.ResourceLocked(HOST), 450, True),
    (fs.errors.PermissionDenied(HOST, exc=_host_oserror(errno.EACCES)), 550, True),
    (fs.errors.InsufficientStorage(HOST), 452, False),
    (fs.errors.InvalidCharsInPath(HOST), 553, True),
    (fs.errors.InvalidPath(HOST), 553, True),
    (fs.errors.Unsupported(HOST), 504, True),
    (fs.errors.RemoteConnectionError(HOST, msg=f"cannot reach {HOST}"), 451, False),
    (fs.errors.OperationTimeout(HOST), 451, False),
    (fs.errors.FilesystemClosed(), 421, False),
    # other OperationFailed: a storage error on the path
    (fs.errors.OperationFailed(HOST, exc=_host_oserror(errno.EIO)), 451, True),
    # ...unless its OSError has a reply of its own (fs has no class for EDQUOT)
    (fs.errors.OperationFailed(HOST, exc=_host_oserror(errno.EDQUOT)), 552, False),
    (fs.errors.ResourceError(HOST, msg=f"odd {HOST}"), 451, False),
    (fs.errors.NoSysPath(HOST), 451, False),
    # raw OSErrors that fs code lets through, by errno
    (_host_oserror(errno.ENOENT), 550, True),
    (FileNotFoundError(errno.ENOENT, "No such file", HOST), 550, True),
    (_host_oserror(errno.EACCES), 550, True),
    (PermissionError(errno.EPERM, "Operation not permitted", HOST), 550, True),
    (FileExistsError(errno.EEXIST, "File exists", HOST), 550, True),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", HOST), 550, True),
    (IsADirectoryError(errno.EISDIR, "Is a directory", HOST), 550, True),
    (_host_oserror(errno.ENOTEMPTY), 550, True),
    (_host_oserror(errno.ENOSPC), 452, False),
    (_host_oserror(errno.EDQUOT), 552, False),
    (_host_oserror(errno.EROFS), 550, True),
    (_host_oserror(errno.ENAMETOOLONG), 553, True),
    # anything else: 451 local error, no details
    (_host_oserror(errno.EIO), 451, False),
    (OSError(f"no errno {HOST}"), 451, False),
    (ValueError(HOST), 451, False),
    (RuntimeError(HOST), 451, False),
]


@pytest.mark.parametrize(
    ("exc", "code", "names_path"),
    FS_ERRORS,
    ids=[f"{type(e).__name__}-{getattr(e, 'errno', None)}" for e, _, _ in FS_ERRORS],
)
def test_map_fs_error(exc: BaseException, code: int, names_path: bool) -> None:
    err = map_fs_error(exc, VPATH)
    assert isinstance(err, FTPError)
    assert err.reply.code == code
    text = err.reply.text
    assert isinstance(text, str)
    assert (VPATH in text) is names_path
    assert "secret-host-dir" not in text
    assert "/srv" not in text
    assert str(err) == f"{code} {text}"


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (fs.errors.ResourceNotFound("x"), "No such file or directory: /a"),
        (fs.errors.FileExpected("x"), "Is a directory: /a"),
        (fs.errors.DirectoryExpected("x"), "Not a directory: /a"),
        (fs.errors.DirectoryNotEmpty("x"), "Directory not empty: /a"),
        (fs.errors.InvalidCharsInPath("x"), "File name not allowed: /a"),
        (fs.errors.InsufficientStorage("x"), "Insufficient storage space"),
        (_host_oserror(errno.EDQUOT), "Disk quota exceeded"),
        (_host_oserror(errno.EIO), "Requested action aborted: local error in processing"),
    ],
)
def test_map_fs_error_text(exc: BaseException, text: str) -> None:
    assert map_fs_error(exc, "/a").reply.text == text


@pytest.mark.parametrize("path", ["/{path}", "/a {0} b", "/100% sure", "/caf\u00e9"])
def test_map_fs_error_path_is_not_a_format_string(path: str) -> None:
    assert map_fs_error(fs.errors.ResourceNotFound("x"), path).reply.text == (
        f"No such file or directory: {path}"
    )


def test_ftp_error_passes_through() -> None:
    original = FTPError(553, "File name not allowed")
    assert map_fs_error(original, VPATH) is original


def test_subclasses_are_mapped_before_their_bases() -> None:
    # InvalidCharsInPath is an InvalidPath; PermissionDenied an OperationFailed
    assert map_fs_error(fs.errors.InvalidCharsInPath("x"), "/a").reply.code == 553
    assert map_fs_error(fs.errors.PermissionDenied("x"), "/a").reply.text == "Permission denied: /a"
    assert map_fs_error(fs.errors.RemoveRootError("/"), "/").reply.text == (
        "Cannot remove the root directory"
    )
