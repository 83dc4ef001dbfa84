"""What a client gets when the storage under a mount fails (vfsftp.storage.faults
makes it fail on purpose): the reply that names the fault, and nothing
partial, truncated or temporary left behind. Found by benchmarks/soak.py."""

from __future__ import annotations

import contextlib
import ftplib
import io
from pathlib import Path

import pytest
from conftest import PASSWORD, USER, ServerFactory, login

from vfsftp.storage.faults import Fault, FaultyFS
from vfsftp.testing import ThreadedFTPServer

USERS = {USER: {"password": f"plaintext:{PASSWORD}"}}


def faulty(srv: ThreadedFTPServer, mount: str) -> FaultyFS:
    disk = srv.filesystems[mount]
    assert isinstance(disk, FaultyFS)
    return disk


def upload_reply(f: ftplib.FTP, command: str, data: bytes) -> str:
    """The final reply to an upload. The server may fail it and close the
    data connection while data is still being sent (a full disk at open):
    the reply still comes on the control connection."""
    conn = f.transfercmd(command)
    with contextlib.suppress(OSError):
        conn.sendall(data)
    conn.close()
    try:
        return f.voidresp()
    except ftplib.Error as exc:
        return str(exc)


def retr(f: ftplib.FTP, path: str) -> bytes:
    out = io.BytesIO()
    f.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


@pytest.mark.parametrize("size", [50_000, 128 * 1024])
def test_a_read_error_in_a_small_file_fails_the_download(
    make_server: ServerFactory, tmp_path: Path, size: int
) -> None:
    """A small file is read whole when RETR opens it. A read that returns
    fewer bytes than asked (allowed for any raw file: the bytes before a bad
    sector) is not its end: the next read tells the error, and the client
    gets 451, not a 226 for the part that was read."""
    srv = make_server({"mounts": {"/": f"faulty+osfs://{tmp_path}"}, "users": USERS})
    data = bytes(range(256)) * (size // 256)
    (tmp_path / "small.bin").write_bytes(data)
    f = login(srv)
    assert retr(f, "small.bin") == data
    faulty(srv, "/").set_faults([Fault.parse("read:EIO:after=16384")])
    with pytest.raises(ftplib.error_temp, match=r"^451"):
        retr(f, "small.bin")
    faulty(srv, "/").set_faults([])
    assert retr(f, "small.bin") == data
    f.quit()


@pytest.mark.parametrize("kind", ["osfs", "mem"])
def test_an_upload_whose_commit_fails_leaves_no_temporary_file(
    make_server: ServerFactory, tmp_path: Path, kind: str
) -> None:
    """The rename that publishes an upload fails: 451, the old file stays,
    and the temporary file the data went to is removed (it was left behind,
    hidden from listings, filling the disk and outside any quota)."""
    url = f"faulty+osfs://{tmp_path}" if kind == "osfs" else "faulty+mem://"
    srv = make_server({"mounts": {"/": url}, "users": USERS})
    disk = faulty(srv, "/")
    f = login(srv)
    f.storbinary("STOR a.bin", io.BytesIO(b"old"))
    disk.set_faults([Fault.parse("rename:EIO")])
    with pytest.raises(ftplib.error_temp, match=r"^451"):
        f.storbinary("STOR a.bin", io.BytesIO(b"new" * 1000))
    with pytest.raises(ftplib.error_temp, match=r"^451"):
        f.storbinary("STOR b.bin", io.BytesIO(b"other"))
    assert disk.injected["rename"] == 2
    disk.set_faults([])
    assert sorted(disk.delegate_fs().listdir("/")) == ["a.bin"]
    assert retr(f, "a.bin") == b"old"
    f.quit()


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("write:ENOSPC:after=20000", "452"),  # the disk filled up midway
        ("open:ENOSPC", "452"),  # it was full already
        ("write:EDQUOT:after=20000", "552"),  # the OS's quota for the user
        ("open:EDQUOT", "552"),
        ("write:EIO:after=20000", "451"),
    ],
)
def test_a_full_disk_is_452_and_a_quota_552(
    make_server: ServerFactory, tmp_path: Path, fault: str, code: str
) -> None:
    """RFC 959 §4.2: 452 "insufficient storage space in system" is a full
    disk (ENOSPC); 552 "exceeded storage allocation" is a quota (EDQUOT, or
    vfsftp's own quotas). Either way the upload leaves nothing behind."""
    srv = make_server({"mounts": {"/": f"faulty+osfs://{tmp_path}"}, "users": USERS})
    faulty(srv, "/").set_faults([Fault.parse(fault)])
    f = login(srv)
    f.voidcmd("TYPE I")
    assert upload_reply(f, "STOR a.bin", b"x" * 100_000).startswith(f"{code} ")
    assert upload_reply(f, "APPE b.bin", b"x" * 100_000).startswith(f"{code} ")
    assert list(tmp_path.iterdir()) == []
    f.quit()


@pytest.mark.parametrize("kind", ["osfs", "mem"])
def test_a_rename_across_mounts_whose_copy_fails_leaves_no_partial_target(
    make_server: ServerFactory, tmp_path: Path, kind: str
) -> None:
    """Across mounts RNTO copies the file, then deletes the original. The
    copy fails midway (disk full): 452, the original stays, and the target
    keeps its old content, or stays absent; no truncated copy under its
    name, no temporary file beside it."""
    url = f"faulty+osfs://{tmp_path}" if kind == "osfs" else "faulty+mem://"
    srv = make_server({"mounts": {"/": "mem://", "/dst": url}, "users": USERS})
    disk = faulty(srv, "/dst")
    data = bytes(range(256)) * 200
    f = login(srv)
    f.storbinary("STOR /a.bin", io.BytesIO(data))
    f.storbinary("STOR /dst/old.bin", io.BytesIO(b"old"))
    disk.set_faults([Fault.parse("write:ENOSPC:after=1000")])
    for target in ("/dst/new.bin", "/dst/old.bin"):
        f.sendcmd("RNFR /a.bin")
        with pytest.raises(ftplib.error_temp, match=r"^452"):
            f.sendcmd(f"RNTO {target}")
    disk.set_faults([])
    assert sorted(disk.delegate_fs().listdir("/")) == ["old.bin"]
    assert retr(f, "/dst/old.bin") == b"old"
    assert retr(f, "/a.bin") == data
    f.sendcmd("RNFR /a.bin")
    f.sendcmd("RNTO /dst/new.bin")
    assert retr(f, "/dst/new.bin") == data
    assert f.nlst("/") == ["dst"]
    f.quit()
