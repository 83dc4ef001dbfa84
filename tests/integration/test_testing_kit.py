"""vfsftp.testing's ThreadedFTPServer as a user's test sees it: defaults,
mounts and mounts.yaml, the file helpers against what ftplib sees, TLS,
S3 through MotoS3, clean shutdown, and a test's own asyncio loop."""

from __future__ import annotations

import asyncio
import ftplib
import io
import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from fs.memoryfs import MemoryFS

from vfsftp.config.schema import ConfigError, config_from_dict
from vfsftp.testing import MotoS3, MotoS3Process, ThreadedFTPServer, make_tls_files


def retr(client: ftplib.FTP, path: str) -> bytes:
    out = io.BytesIO()
    client.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


def stor(client: ftplib.FTP, path: str, data: bytes) -> None:
    client.storbinary(f"STOR {path}", io.BytesIO(data))


def test_defaults_one_memory_mount_one_user() -> None:
    with ThreadedFTPServer() as server:
        assert server.host == "127.0.0.1" and server.port > 0
        assert set(server.filesystems) == {"/"}
        assert isinstance(server.filesystems["/"], MemoryFS)
        assert server.login_data() == {
            "host": "127.0.0.1",
            "port": server.port,
            "user": "user",
            "passwd": "pass",
        }
        assert server.url == f"ftp://user:pass@127.0.0.1:{server.port}"
        with server.connect() as client:
            stor(client, "/up.bin", b"\x00\x01payload")
        assert server.read_file("/up.bin") == b"\x00\x01payload"
        # No anonymous access unless asked for.
        assert not server.anonymous
        with pytest.raises(ftplib.error_perm, match=r"^530"), server.connect(anonymous=True):
            pass


def test_seeded_files_are_what_clients_see() -> None:
    with ThreadedFTPServer() as server:
        assert server.put_file("in/report.csv", "a;b\n1;2\n") == "/in/report.csv"
        server.put_file("/in/deep/raw.bin", bytes(range(256)))
        with server.connect() as client:
            assert sorted(client.nlst("/in")) == ["deep", "report.csv"]
            assert retr(client, "/in/deep/raw.bin") == bytes(range(256))
            stor(client, "/out.txt", b"done")
            client.mkd("/empty")
        assert server.list_files() == ["/in/deep/raw.bin", "/in/report.csv", "/out.txt"]
        assert server.list_files("/in/deep") == ["/in/deep/raw.bin"]
        assert server.read_text("/in/report.csv") == "a;b\n1;2\n"
        assert server.exists("/empty") and not server.exists("/nope")
        server.reset()
        assert server.list_files() == [] and not server.exists("/empty")
        with server.connect() as client:
            assert client.nlst("/") == []


def test_put_local_file_and_folder(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.txt").write_bytes(b"1")
    (folder / "sub" / "two.txt").write_bytes(b"22")
    single = tmp_path / "single.dat"
    single.write_bytes(b"single")
    with ThreadedFTPServer() as server:
        assert server.put_local(single) == ["/single.dat"]
        assert server.put_local(folder, to="/incoming") == [
            "/incoming/batch/one.txt",
            "/incoming/batch/sub/two.txt",
        ]
        with server.connect() as client:
            assert retr(client, "/incoming/batch/sub/two.txt") == b"22"
            assert retr(client, "/single.dat") == b"single"


def test_mounts_local_folder_read_only_and_anonymous(tmp_path: Path) -> None:
    mounts = {
        "/": "mem://",
        "/data": f"osfs://{tmp_path}",
        "/pub": {"fs": "mem://", "read_only": True},
    }
    with ThreadedFTPServer(mounts=mounts, anonymous=True) as server:
        assert set(server.filesystems) == {"/", "/data", "/pub"}
        # The test may seed a mount that clients can only read.
        server.put_file("/pub/readme.txt", b"public")
        with server.connect(anonymous=True) as anon:
            assert retr(anon, "/pub/readme.txt") == b"public"
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                stor(anon, "/pub/x", b"x")
        with server.connect() as client:
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                stor(client, "/pub/x", b"x")
            stor(client, "/data/on-disk.txt", b"disk")
        assert (tmp_path / "on-disk.txt").read_bytes() == b"disk"
        assert server.login_data(anonymous=True)["user"] == "anonymous"
        assert server.url_for("/pub/readme.txt", anonymous=True) == (
            f"ftp://127.0.0.1:{server.port}/pub/readme.txt"
        )
        server.put_file("/data/sub/dir/deep.txt", b"deep")
        server.reset()  # every mount, the read-only one and the local folder too
        assert server.list_files() == [] and list(tmp_path.iterdir()) == []


def test_url_quotes_credentials_and_path() -> None:
    config = {"users": {"a@b": {"password": "plaintext:p:w/d"}}}
    with ThreadedFTPServer(config, user="a@b", password="p:w/d") as server:
        assert server.url_for("/a b#c") == (
            f"ftp://a%40b:p%3Aw%2Fd@127.0.0.1:{server.port}/a%20b%23c"
        )
        with server.connect() as client:
            assert client.pwd() == "/"


def test_config_mapping_is_not_changed() -> None:
    config: dict[str, Any] = {"mounts": {"/": "mem://"}, "server": {"banner": "hi"}}
    with ThreadedFTPServer(config) as server:
        assert server.connect().getwelcome() == "220 hi"
    assert config == {"mounts": {"/": "mem://"}, "server": {"banner": "hi"}}


def test_from_mounts_yaml_on_a_free_port(tmp_path: Path) -> None:
    (tmp_path / "mounts.yaml").write_text(
        "server:\n  listen: 0.0.0.0\n  port: 2121\n"
        "mounts:\n  /scratch: mem://\n  /data: {fs: osfs://./files, create: true}\n"
        "users:\n  demo: {password: 'plaintext:demo'}\n"
    )
    with ThreadedFTPServer(tmp_path / "mounts.yaml", user="demo", password="demo") as server:
        assert server.host == "127.0.0.1" and server.port not in (0, 2121)
        with server.connect() as client:
            stor(client, "/data/x.txt", b"x")
        # Relative osfs:// folders start next to the file, as for the server.
        assert (tmp_path / "files" / "x.txt").read_bytes() == b"x"


def test_mounts_yaml_fixed_ports_become_free_ports(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    folder.mkdir()
    pki = make_tls_files(folder)
    (tmp_path / "mounts.yaml").write_text(
        "server:\n  port: 2121\n"
        f"  tls: {{certificate: {pki.cert}, key: {pki.key}, implicit_port: 990}}\n"
        "metrics: {listen: 0.0.0.0, port: 9100}\n"
    )
    with ThreadedFTPServer(tmp_path / "mounts.yaml") as server:
        assert server.implicit_port not in (None, 990)
        assert server.config.metrics.port == 0
        assert server.config.metrics.listen == "127.0.0.1"


def test_fs_follows_a_reload() -> None:
    with ThreadedFTPServer() as server:
        server.put_file("/kept.txt", b"kept")
        assert set(server.filesystems) == {"/"} and server.list_files() == ["/kept.txt"]
        wider = config_from_dict(
            {
                "mounts": {"/": "mem://", "/new": "mem://"},
                "users": {"user": {"password": "plaintext:pass"}},
            }
        )
        server.call(server.server.reload(wider))
        server.put_file("/new/added.txt", b"added")
        assert server.list_files() == ["/kept.txt", "/new/added.txt"]
        with server.connect() as client:
            assert retr(client, "/new/added.txt") == b"added"


def test_bad_mounts_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "mounts.yaml"
    bad.write_text("mounts:\n  /: nosuch://\n")
    with pytest.raises(ConfigError, match=r"mounts\.yaml"):
        ThreadedFTPServer(bad).start()
    with pytest.raises(ConfigError, match="cannot read"):
        ThreadedFTPServer(tmp_path / "missing.yaml")


def test_start_failure_raises_and_leaves_nothing() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # SO_REUSEADDR does not allow a second listener on a listening port.
        server = ThreadedFTPServer({"server": {"port": port}})
        with pytest.raises(OSError):
            server.start()
        assert not server.running
        server.stop()  # harmless after a failed start


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_servers_leave_no_threads_or_fds() -> None:
    with ThreadedFTPServer() as warm, warm.connect() as client:
        client.nlst("/")  # first use: imports and lazily made objects
    threads, fds = threading.active_count(), _fds()
    for _ in range(20):
        with ThreadedFTPServer() as server, server.connect() as client:
            stor(client, "/f", b"x")
            assert retr(client, "/f") == b"x"
        assert not server.running
    assert threading.active_count() == threads
    assert _fds() == fds


def test_a_server_never_started_holds_no_fds() -> None:
    fds = _fds()
    server = ThreadedFTPServer(tls=True)
    assert not server.running
    server.stop()  # removes the temporary CA
    assert server.ca_path is not None and not server.ca_path.exists()
    assert _fds() == fds
    with pytest.raises(RuntimeError, match="not started"):
        server.call(asyncio.sleep(0))


def test_tls_server_with_its_own_ca() -> None:
    with ThreadedFTPServer(tls=True) as server:
        assert server.ca_path is not None and server.ca_path.exists()
        ca_dir = server.ca_path.parent
        server.put_file("/secret.txt", b"s3cret")
        with server.connect() as client:  # FTP_TLS, verified, PROT P
            assert isinstance(client, ftplib.FTP_TLS)
            assert retr(client, "/secret.txt") == b"s3cret"
        # A client that does not trust the CA is refused.
        stranger = ftplib.FTP_TLS(context=ssl.create_default_context(), timeout=10)
        stranger.connect(server.host, server.port)
        with pytest.raises(ssl.SSLCertVerificationError):
            stranger.auth()
        stranger.close()
        # Implicit TLS on its own port.
        assert server.implicit_port is not None
        ctx = ssl.create_default_context(cafile=str(server.ca_path))
        with (
            socket.create_connection((server.host, server.implicit_port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.recv(100).startswith(b"220")
    assert not ca_dir.exists()  # the temporary CA is removed with the server


async def _async_client_session(host: str, port: int) -> bytes:
    """A minimal asyncio FTP client: login, EPSV, RETR."""
    reader, writer = await asyncio.open_connection(host, port)

    async def cmd(line: str | None) -> str:
        if line is not None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
        return (await reader.readline()).decode()

    try:
        assert (await cmd(None)).startswith("220")
        assert (await cmd("USER user")).startswith("331")
        assert (await cmd("PASS pass")).startswith("230")
        assert (await cmd("TYPE I")).startswith("200")
        epsv = await cmd("EPSV")
        data_port = int(epsv.split("|||")[1].split("|")[0])
        data_reader, data_writer = await asyncio.open_connection(host, data_port)
        assert (await cmd("RETR /hello.txt"))[:3] in ("125", "150")
        body = await data_reader.read()
        data_writer.close()
        await data_writer.wait_closed()
        assert (await cmd(None)).startswith("226")
        assert (await cmd("QUIT")).startswith("221")
        return body
    finally:
        writer.close()
        await writer.wait_closed()


def test_async_client_in_the_tests_own_loop() -> None:
    with ThreadedFTPServer() as server:
        server.put_file("/hello.txt", b"hello from memory")
        body = asyncio.run(_async_client_session(server.host, server.port))
        assert body == b"hello from memory"


def test_start_use_and_stop_inside_a_running_loop() -> None:
    async def main() -> list[str]:
        # All of this runs while this thread's own loop is running: nothing
        # may try to run a loop here ("Cannot run the event loop while
        # another loop is running").
        with ThreadedFTPServer() as server:
            server.put_file("/hello.txt", b"x")
            assert await _async_client_session(server.host, server.port) == b"x"

            def listing() -> list[str]:
                with server.connect() as client:
                    return client.nlst("/")

            names = await asyncio.to_thread(listing)
            server.stop()
            server.stop()
            assert not server.running
        return names

    assert asyncio.run(main()) == ["hello.txt"]


@pytest.mark.s3
def test_s3_mount_through_motos3() -> None:
    with MotoS3() as s3:
        bucket = s3.create_bucket()
        mounts = {"/": "mem://", "/archive": s3.mount(bucket, "reports")}
        with ThreadedFTPServer(mounts=mounts) as server:
            server.put_file("/archive/2026/jan.csv", b"jan")
            with server.connect() as client:
                stor(client, "/archive/2026/feb.csv", b"feb")
                assert sorted(client.nlst("/archive/2026")) == ["feb.csv", "jan.csv"]
            assert server.list_files("/archive") == [
                "/archive/2026/feb.csv",
                "/archive/2026/jan.csv",
            ]
            body = s3.client().get_object(Bucket=bucket, Key="reports/2026/feb.csv")["Body"]
            assert body.read() == b"feb"
            body.close()
            server.reset()
            assert server.list_files("/archive") == []
        s3.delete_bucket(bucket)


@pytest.mark.s3
def test_s3_in_a_process_of_its_own_seeded_killed_and_started_again() -> None:
    s3 = MotoS3Process("seeded", "in/{:03d}.txt", 3).start()
    try:
        first = s3.endpoint
        keys = s3.client().list_objects_v2(Bucket="seeded")["Contents"]
        assert [o["Key"] for o in keys] == ["in/000.txt", "in/001.txt", "in/002.txt"]
        with (
            ThreadedFTPServer(mounts={"/": s3.mount("seeded")}) as server,
            server.connect() as client,
        ):
            assert client.nlst("/in") == ["000.txt", "001.txt", "002.txt"]
            client.storbinary("STOR /in/new.txt", io.BytesIO(b"new"))
        s3.kill()  # a store that dies: what it held is gone
        assert not s3.alive()
        s3.start()  # back as it started: seeded again, on a new port
        assert s3.alive() and s3.endpoint != first
        keys = s3.client().list_objects_v2(Bucket="seeded")["Contents"]
        assert [o["Key"] for o in keys] == ["in/000.txt", "in/001.txt", "in/002.txt"]
    finally:
        s3.stop()
    assert s3.proc is None
