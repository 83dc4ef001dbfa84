"""S3 mounts that cannot work, against a real S3 endpoint (moto): found by
``vfsftp check-config --connect`` (HeadBucket and a list of the prefix with
the mount's own credentials), and, when a server meets them anyway at first
use, one log line naming the mount and the cause, with a clear reply."""

# Fixtures imported from s3_fixtures are "redefined" as test parameters:
# ruff: noqa: F811

from __future__ import annotations

import ftplib
import io
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, USER, ServerFactory, free_port, login
from s3_fixtures import (  # noqa: F401
    S3Bucket,
    moto_endpoint,
    s3_bucket,
)

from vfsftp import Account, Mount, VirtualTree, config_from_dict
from vfsftp.cli import main
from vfsftp.storage.s3 import S3Options, StreamingS3FS
from vfsftp.testing import ThreadedFTPServer

pytestmark = pytest.mark.s3


def check(
    tmp_path: Path,
    mount: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    users: str = f"users:\n  {USER}:\n    password: plaintext:{PASSWORD}\n",
) -> tuple[int, Path, list[str], str]:
    path = tmp_path / "mounts.yaml"
    lines = ["mounts:", "  /s3:"] + [f"    {k}: {v}" for k, v in mount.items()]
    path.write_text("\n".join(lines) + "\n" + users, encoding="utf-8")
    status = main(["check-config", "--connect", str(path)])
    out, err = capsys.readouterr()
    return status, path, err.splitlines(), out


def test_connect_ok(
    s3_bucket: S3Bucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_bucket.put("pre/a.txt", b"a")
    status, path, err, out = check(tmp_path, s3_bucket.mount("pre"), capsys)
    assert (status, err) == (0, [])
    assert out == f"{path}: OK (1 mount, 1 user; every mount opened)\n"


def test_connect_missing_bucket(
    s3_bucket: S3Bucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mount = s3_bucket.mount()
    mount["fs"] = "s3://no-such-bucket-here"
    status, path, err, out = check(tmp_path, mount, capsys)
    assert (status, out) == (2, "")
    assert err[0] == (
        f"{path}: mounts./s3.fs: bucket 'no-such-bucket-here' does not exist at "
        f"{s3_bucket.endpoint}; create it or correct the name"
    )


def test_connect_wrong_endpoint(
    s3_bucket: S3Bucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    mount = s3_bucket.mount(endpoint_url=f"http://127.0.0.1:{port}")
    status, path, err, _ = check(tmp_path, mount, capsys)
    assert status == 2
    assert err[0] == (
        f"{path}: mounts./s3.endpoint_url: cannot reach http://127.0.0.1:{port} "
        "(Connection refused); check the host and port, and that the store is running"
    )


def test_connect_wrong_credentials(
    s3_bucket: S3Bucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto checks credentials only inside enable_iam_authentication: an
    unknown access key, then a known one with the wrong secret, then the
    credentials of the environment (no access_key_id) that IAM does not
    know either."""
    from moto.core.authorization import enable_iam_authentication

    iam = s3_bucket.new_client_for("iam")
    name = f"checker-{s3_bucket.name}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    endpoint = s3_bucket.endpoint
    with enable_iam_authentication():
        unknown = s3_bucket.mount(access_key_id="AKIAUNKNOWN0000000000", secret_access_key="x")
        status, path, err, _ = check(tmp_path, unknown, capsys)
        assert status == 2
        assert err[0] == (
            f"{path}: mounts./s3.access_key_id: {endpoint} does not know the access key "
            f"(access_key_id from {path}); check access_key_id, or the credentials the "
            "server is given"
        )
        wrong_secret = s3_bucket.mount(
            access_key_id=key["AccessKeyId"], secret_access_key="not-the-secret"
        )
        status, path, err, _ = check(tmp_path, wrong_secret, capsys)
        assert status == 2
        assert err[0] == (
            f"{path}: mounts./s3.secret_access_key: {endpoint} rejects the secret key "
            f"(access_key_id from {path}); check secret_access_key against access_key_id"
        )
        # The user exists and signs correctly, with no right on the bucket.
        no_rights = s3_bucket.mount(
            access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"]
        )
        status, path, err, _ = check(tmp_path, no_rights, capsys)
        assert status == 2
        assert err[0] == (
            f"{path}: mounts./s3: access to bucket {s3_bucket.name!r} denied (AccessDenied) "
            f"for access_key_id from {path}; the credentials need s3:ListBucket on it (and "
            "object rights for transfers)"
        )
        status, path, err, _ = check(tmp_path, s3_bucket.mount(), capsys)
        assert status == 2
        assert err[0] == (
            f"{path}: mounts./s3.access_key_id: {endpoint} does not know the access key "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment); check "
            "access_key_id, or the credentials the server is given"
        )


def test_connect_user_prefix(
    s3_bucket: S3Bucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ${user} prefix: the bucket and the fixed part of the prefix."""
    status, _, err, _ = check(tmp_path, s3_bucket.mount("homes/${user}"), capsys)
    assert (status, err) == (0, [])
    mount = s3_bucket.mount("homes/${user}")
    mount["fs"] = "s3://no-such-bucket-here/homes/${user}"
    status, path, err, _ = check(tmp_path, mount, capsys)
    assert status == 2
    assert err[0].startswith(f"{path}: mounts./s3.fs: bucket 'no-such-bucket-here' does not")


def test_connect_home_missing_in_the_bucket(
    s3_bucket: S3Bucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warning: the server starts, the login starts in / until it is made."""
    users = f"users:\n  {USER}:\n    password: plaintext:{PASSWORD}\n    home: /s3/inbox\n"
    status, path, err, out = check(tmp_path, s3_bucket.mount("pre"), capsys, users)
    assert status == 0
    assert err == [
        f"{path}: users.{USER}.home: warning: '/s3/inbox' does not exist in "
        f"'s3://{s3_bucket.name}/pre': {USER} starts in / until it does; create it (MKD)"
    ]
    assert out == f"{path}: OK (1 mount, 1 user, 1 warning; every mount opened)\n"
    s3_bucket.put("pre/inbox/x", b"x")  # a prefix with children is a directory
    status, path, err, out = check(tmp_path, s3_bucket.mount("pre"), capsys, users)
    assert (status, err) == (0, [])


# ---------------------------------------------------------------- first use


def test_unreachable_store_at_first_use_is_one_log_line(
    s3_bucket: S3Bucket, make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    mount = s3_bucket.mount(endpoint_url=f"http://127.0.0.1:{port}")
    srv = make_server(
        {
            "mounts": {"/": "mem://", "/s3": mount},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    f = login(srv)
    caplog.set_level(logging.INFO, "vfsftp")
    with pytest.raises(ftplib.error_temp, match=r"^451 /s3: S3 endpoint unreachable or timed out$"):
        f.nlst("/s3")
    (failure,) = [r for r in caplog.records if "storage failure" in r.getMessage()]
    assert failure.exc_info is None and failure.levelno == logging.ERROR
    assert failure.getMessage().startswith(
        "storage failure on mount /s3 (s3, mounts./s3 in <ThreadedFTPServer>): S3 endpoint "
        f'unreachable or timed out (Could not connect to the endpoint URL: "http://127.0.0.1:{port}/'
    )
    assert "Traceback" not in caplog.text
    f.quit()


def test_a_rename_across_mounts_names_the_mount_that_failed(
    s3_bucket: S3Bucket, make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """RNFR on /mem, RNTO into an unreachable /s3: the log line names /s3
    and the target, not the source's mount."""
    port = free_port()
    mount = s3_bucket.mount(endpoint_url=f"http://127.0.0.1:{port}")
    srv = make_server(
        {
            "mounts": {"/": "mem://", "/s3": mount},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    f = login(srv)
    f.storbinary("STOR /a.txt", io.BytesIO(b"moved"))
    caplog.set_level(logging.INFO, "vfsftp")
    with pytest.raises(ftplib.error_temp, match=r"^451 "):
        f.rename("/a.txt", "/s3/b.txt")
    (failure,) = [r for r in caplog.records if "storage failure" in r.getMessage()]
    assert failure.getMessage().startswith("storage failure on mount /s3 (s3, mounts./s3 ")
    assert failure.getMessage().endswith(
        f"user {USER}, path /s3/b.txt (vfsftp check-config --connect tests the mounts)"
    )
    assert srv.read_file("/a.txt") == b"moved"  # nothing lost
    f.quit()


def test_missing_bucket_at_first_use_is_one_log_line(
    s3_bucket: S3Bucket, make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    mount = s3_bucket.mount()
    mount["fs"] = "s3://no-such-bucket-here"
    srv = make_server(
        {
            "mounts": {"/": "mem://", "/s3": mount},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    f = login(srv)
    caplog.set_level(logging.INFO, "vfsftp")
    with pytest.raises(
        ftplib.error_perm, match=r"^550 /s3/x: S3 bucket does not exist \(NoSuchBucket\)$"
    ):
        f.retrbinary("RETR /s3/x", lambda b: None)
    (line,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.getMessage().startswith(
        "storage failure on mount /s3 (s3, mounts./s3 in <ThreadedFTPServer>): S3 bucket "
        "does not exist (NoSuchBucket) (An error occurred (NoSuchBucket) when calling the "
    )
    assert line.getMessage().endswith(
        f"; user {USER}, path /s3/x (vfsftp check-config --connect tests the mounts)"
    )
    assert "Traceback" not in caplog.text
    f.quit()


def test_backend_exception_at_first_use_is_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The issue's case: an endpoint botocore refuses when it makes the
    client (mounts.yaml refuses it now, an embedding program need not go
    through mounts.yaml). One line at error level; the traceback only at
    debug level."""
    broken = StreamingS3FS("my-bucket", options=S3Options(endpoint_url="127.0.0.1:5055"))

    class Authorizer:
        def is_anonymous(self, username: str) -> bool:
            return False

        async def authorize(self, username: str, password: str, peer: str) -> Account | None:
            tree = VirtualTree([Mount.of("/s3", broken, kind="s3", origin="my program")])
            return Account(name=username, tree=tree, perms="elr", home="/")

    config = config_from_dict({"server": {"listen": ["127.0.0.1"], "port": 0}})
    with ThreadedFTPServer(config, authorizer=Authorizer()) as srv:
        f = ftplib.FTP(timeout=10)
        f.connect(srv.host, srv.port)
        f.login("u", "p")
        caplog.set_level(logging.INFO, "vfsftp")
        with pytest.raises(ftplib.error_temp, match=r"^451 /s3: cannot make the S3 client"):
            f.nlst("/s3")
        (line,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert line.getMessage().startswith(
            "storage failure on mount /s3 (s3, my program): cannot make the S3 client: "
            "Invalid endpoint: 127.0.0.1:5055"
        )
        assert line.exc_info is None and "Traceback" not in caplog.text
        caplog.clear()
        caplog.set_level(logging.DEBUG, "vfsftp")
        with pytest.raises(ftplib.error_temp, match=r"^451"):
            f.nlst("/s3")
        assert any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)
        f.quit()
    broken.close()
