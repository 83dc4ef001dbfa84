"""Who may do what, and where: user rights, anonymous logins, read-only
mounts, per-path overrides, nested and per-user mounts, connection limits and
path traversal."""

from __future__ import annotations

import contextlib
import ftplib
import io
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import get, put

from vfsftp.testing import ThreadedFTPServer

ServerFactory = Callable[..., ThreadedFTPServer]


# ------------------------------------------------------------------ helpers


def url_for(backend: str, folder: Path) -> str:
    if backend == "mem":
        return "mem://"
    folder.mkdir(parents=True, exist_ok=True)
    return f"osfs://{folder}"


def mount_fs(server: ThreadedFTPServer, path: str) -> Any:
    """The filesystem mounted at ``path``, to look behind the server's back."""
    return next(m.fs for m in server.server.mounts.global_mounts if m.path == path)


class Clients:
    """ftplib clients opened by a test, all closed at its end."""

    def __init__(self, server: ThreadedFTPServer | None = None) -> None:
        self.server = server
        self.open: list[ftplib.FTP] = []

    def connect(self, server: ThreadedFTPServer | None = None) -> ftplib.FTP:
        srv = server or self.server
        assert srv is not None
        client = ftplib.FTP(timeout=10)
        self.open.append(client)
        client.connect(srv.host, srv.port)
        return client

    def login(
        self, user: str, password: str = "", server: ThreadedFTPServer | None = None
    ) -> ftplib.FTP:
        client = self.connect(server)
        client.login(user, password)
        client.voidcmd("TYPE I")
        return client

    def close(self) -> None:
        for client in self.open:
            if client.sock is not None:
                with contextlib.suppress(ftplib.Error, OSError, EOFError):
                    client.quit()
            client.close()


@pytest.fixture
def clients(server: ThreadedFTPServer) -> Iterator[Clients]:
    c = Clients(server)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def own_clients() -> Iterator[Clients]:
    """For tests that start their own servers with make_server."""
    c = Clients()
    try:
        yield c
    finally:
        c.close()


def host_for(family: str) -> str:
    return "::1" if family == "ipv6" else "127.0.0.1"


# ------------------------------------------------------------------ user rights


def test_reader_cannot_write(ftp: ftplib.FTP, clients: Clients) -> None:
    ftp.mkd("d")
    put(ftp, "d/f", b"content")
    reader = clients.login("reader", "reader")
    # reading is allowed
    assert reader.nlst("d") == ["f"]
    assert get(reader, "d/f") == b"content"
    reader.cwd("d")
    # every write is refused
    for action in (
        lambda: put(reader, "new", b"x"),
        lambda: put(reader, "f", b"overwrite"),
        lambda: reader.storbinary("APPE f", io.BytesIO(b"more")),
        lambda: reader.delete("f"),
        lambda: reader.mkd("sub"),
        lambda: reader.rmd("/d"),
        lambda: reader.sendcmd("RNFR f"),
        lambda: reader.sendcmd("MFMT 20200101000000 f"),
        lambda: reader.sendcmd("SITE CHMOD 600 f"),
    ):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            action()
    # and nothing changed
    assert sorted(ftp.nlst("d")) == ["f"]
    assert get(ftp, "d/f") == b"content"


def test_mlsd_perm_fact_follows_rights(ftp: ftplib.FTP, clients: Clients) -> None:
    put(ftp, "f", b"x")
    alice = dict(ftp.mlsd())["f"]["perm"]
    reader = dict(clients.login("reader", "reader").mlsd())["f"]["perm"]
    assert set(alice) == set("adfrw")
    assert reader == "r"


@pytest.mark.parametrize("name", ["anonymous", "ftp", "ANONYMOUS"])
def test_anonymous_login_is_read_only(ftp: ftplib.FTP, clients: Clients, name: str) -> None:
    put(ftp, "readme", b"hello")
    anon = clients.connect()
    assert anon.sendcmd(f"USER {name}").startswith("331")
    assert anon.sendcmd("PASS whoever@example.com").startswith("230")
    anon.voidcmd("TYPE I")
    assert get(anon, "readme") == b"hello"
    assert "readme" in anon.nlst()
    for action in (
        lambda: put(anon, "upload", b"x"),
        lambda: anon.mkd("d"),
        lambda: anon.delete("readme"),
        lambda: anon.rename("readme", "x"),
    ):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            action()
    assert get(ftp, "readme") == b"hello"
    assert "upload" not in ftp.nlst()


def test_anonymous_any_password(clients: Clients) -> None:
    for password in ("", "x", "guest@"):
        anon = clients.login("anonymous", password)
        assert anon.pwd() == "/"


def test_no_anonymous_without_the_user(make_server: ServerFactory, own_clients: Clients) -> None:
    srv = make_server(
        {"mounts": {"/": "mem://"}, "users": {"alice": {"password": "plaintext:secret"}}}
    )
    client = own_clients.connect(srv)
    with pytest.raises(ftplib.error_perm, match=r"^530"):
        client.login("anonymous", "a@b")


def test_read_only_mount_refuses_writes(ftp: ftplib.FTP, backend: str, tmp_path: Path) -> None:
    if backend == "osfs":
        (tmp_path / "pub" / "notes.txt").write_bytes(b"public")
        (tmp_path / "pub" / "sub").mkdir()
        assert get(ftp, "/pub/notes.txt") == b"public"
    ftp.cwd("/pub")
    for action in (
        lambda: put(ftp, "new.txt", b"x"),
        lambda: ftp.storbinary("APPE notes.txt", io.BytesIO(b"x")),
        lambda: ftp.mkd("dir"),
        lambda: ftp.delete("notes.txt"),
        lambda: ftp.rmd("sub"),
        lambda: ftp.rename("notes.txt", "moved.txt"),
        lambda: ftp.sendcmd("MFMT 20200101000000 notes.txt"),
    ):
        with pytest.raises(ftplib.error_perm, match=r"^550") as err:
            action()
        assert "read-only" in str(err.value).lower(), err.value
    # moving a file into the read-only mount is refused too
    put(ftp, "/outside", b"x")
    with pytest.raises(ftplib.error_perm, match=r"(?i)^550.*read-only"):
        ftp.rename("/outside", "/pub/outside")
    assert get(ftp, "/outside") == b"x"
    if backend == "osfs":
        assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == ["notes.txt", "sub"]
        assert (tmp_path / "pub" / "notes.txt").read_bytes() == b"public"


def test_site_chmod(ftp: ftplib.FTP, backend: str, tmp_path: Path) -> None:
    put(ftp, "f", b"x")
    ftp.mkd("d")
    if backend == "osfs":
        assert ftp.sendcmd("SITE CHMOD 640 f") == "200 SITE CHMOD 640 /f successful"
        assert (tmp_path / "root" / "f").stat().st_mode & 0o7777 == 0o640
        ftp.sendcmd("SITE CHMOD 0750 /d")
        assert (tmp_path / "root" / "d").stat().st_mode & 0o7777 == 0o750
    else:  # no permission bits in memory: refused, not pretended
        with pytest.raises(ftplib.error_perm, match=r"^504 Not supported by this filesystem: /f"):
            ftp.sendcmd("SITE CHMOD 640 f")
    # never setuid, setgid or sticky
    for mode in ("6777", "4755", "2755", "1777", "7000"):
        with pytest.raises(ftplib.error_perm, match=r"^504 SITE CHMOD: setuid, setgid and sticky"):
            ftp.sendcmd(f"SITE CHMOD {mode} f")
    if backend == "osfs":
        assert (tmp_path / "root" / "f").stat().st_mode & 0o7777 == 0o640
    for bad in ("SITE CHMOD 999 f", "SITE CHMOD 10000 f", "SITE CHMOD 644"):
        with pytest.raises(ftplib.error_perm, match=r"^501"):
            ftp.sendcmd(bad)
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.sendcmd("SITE CHMOD 644 missing")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.sendcmd("SITE CHMOD 644 /other")  # a mount point


def test_per_path_permission_override(
    make_server: ServerFactory, own_clients: Clients, backend: str, family: str, tmp_path: Path
) -> None:
    srv = make_server(
        {
            "mounts": {"/": url_for(backend, tmp_path / "root")},
            "users": {
                "alice": {"password": "plaintext:secret"},
                "x": {"password": "plaintext:xx", "permissions": {"/ro": "elr"}},
            },
        },
        host=host_for(family),
    )
    alice = own_clients.login("alice", "secret", srv)
    alice.mkd("ro")
    put(alice, "ro/f", b"locked")
    x = own_clients.login("x", "xx", srv)
    # everywhere else x has every right
    put(x, "mine", b"ok")
    x.mkd("rw")
    x.rename("mine", "rw/mine")
    # under /ro only reading
    assert get(x, "ro/f") == b"locked"
    assert x.nlst("ro") == ["f"]
    for action in (
        lambda: put(x, "ro/new", b"x"),
        lambda: put(x, "ro/f", b"x"),
        lambda: x.delete("ro/f"),
        lambda: x.mkd("ro/sub"),
        lambda: x.rename("ro/f", "stolen"),
        lambda: x.rename("rw/mine", "ro/mine"),
        lambda: x.rmd("ro"),
    ):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            action()
    assert get(alice, "ro/f") == b"locked"
    assert alice.nlst("ro") == ["f"]
    # a name that merely starts with "ro" is not under /ro
    put(x, "roast", b"fine")


def test_rename_cannot_carry_files_out_of_their_override(
    make_server: ServerFactory, own_clients: Clients, backend: str, tmp_path: Path
) -> None:
    srv = make_server(
        {
            "mounts": {"/data": url_for(backend, tmp_path / "data"), "/other": "mem://"},
            "users": {
                "admin": {"password": "plaintext:admin"},
                "alice": {
                    "password": "plaintext:secret",
                    "permissions": {
                        "/data/projects/hr": "",
                        "/data/drop/in": "elw",
                        "/data/nest/a": "elr",
                        "/data/nest/a/b": "",
                        "/data/later/hr": "",
                        "/other/later/hr": "",
                    },
                },
            },
        }
    )
    admin = own_clients.login("admin", "admin", srv)
    for folder in ("projects", "projects/hr", "drop", "drop/in", "nest", "nest/a", "nest/a/b"):
        admin.mkd(f"/data/{folder}")
    put(admin, "/data/projects/hr/salaries.txt", b"secret")
    put(admin, "/data/drop/in/upload.bin", b"kept")
    put(admin, "/data/nest/a/b/deep.txt", b"deep")
    alice = own_clients.login("alice", "secret", srv)
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        get(alice, "/data/projects/hr/salaries.txt")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        alice.delete("/data/drop/in/upload.bin")
    # Renaming the parent (within the mount, or to another mount) would
    # carry the files out from under their overrides: refused, with why.
    for src, dst in (
        ("/data/projects", "/data/projects_x"),
        ("/data/projects", "/other/projects"),
        ("/data/drop", "/data/drop_x"),
        ("/data/nest", "/data/nest_x"),
        ("/data/nest", "/other/nest"),
    ):
        with pytest.raises(ftplib.error_perm, match=r"^550 Rename refused: ") as err:
            alice.rename(src, dst)
        assert "permissions" in str(err.value)
    # Nor can a folder be moved so that its contents land under an override
    # (here one waiting for a folder that does not exist yet).
    alice.mkd("/data/mine")
    alice.mkd("/data/mine/hr")
    put(alice, "/data/mine/hr/x", b"x")
    for dst in ("/data/later", "/other/later"):
        with pytest.raises(ftplib.error_perm, match=r"^550 Rename refused: /data/mine/hr "):
            alice.rename("/data/mine", dst)
    # Everything is where it was, and still protected.
    assert sorted(admin.nlst("/data")) == ["drop", "mine", "nest", "projects"]
    assert get(admin, "/data/projects/hr/salaries.txt") == b"secret"
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        get(alice, "/data/projects/hr/salaries.txt")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        get(alice, "/data/nest/a/b/deep.txt")
    # Moves that keep every right still work, across mounts too.
    alice.rename("/data/mine/hr", "/data/mine/hr2")
    alice.rename("/data/mine", "/other/mine")
    assert get(alice, "/other/mine/hr2/x") == b"x"


# ------------------------------------------------------------------ mounts


def test_nested_mounts(
    make_server: ServerFactory, own_clients: Clients, backend: str, family: str, tmp_path: Path
) -> None:
    srv = make_server(
        {
            "mounts": {
                "/data": url_for(backend, tmp_path / "data"),
                "/data/archive": "mem://",
            },
            "users": {"alice": {"password": "plaintext:secret"}},
        },
        host=host_for(family),
    )
    ftp = own_clients.login("alice", "secret", srv)
    assert ftp.nlst("/") == ["data"]
    assert ftp.nlst("/data") == ["archive"]
    put(ftp, "/data/top.txt", b"top")
    put(ftp, "/data/archive/old.txt", b"old")
    assert sorted(ftp.nlst("/data")) == ["archive", "top.txt"]
    assert ftp.nlst("/data/archive") == ["old.txt"]
    lines: list[str] = []
    ftp.retrlines("LIST /data", lines.append)
    assert any(x.startswith("d") and x.endswith(" archive") for x in lines), lines
    # each file is in its own filesystem
    data_fs, archive_fs = mount_fs(srv, "/data"), mount_fs(srv, "/data/archive")
    assert data_fs.listdir("/") == ["top.txt"]
    assert archive_fs.listdir("/") == ["old.txt"]
    assert archive_fs.readbytes("/old.txt") == b"old"
    if backend == "osfs":
        assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["top.txt"]
    # mount points can be neither removed nor renamed
    ftp.delete("/data/archive/old.txt")
    for action in (
        lambda: ftp.rmd("/data/archive"),
        lambda: ftp.rmd("/data"),
        lambda: ftp.rename("/data/archive", "/data/attic"),
        lambda: ftp.delete("/data/archive"),
    ):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            action()
    assert sorted(ftp.nlst("/data")) == ["archive", "top.txt"]


def test_virtual_directories_are_read_only(
    make_server: ServerFactory, own_clients: Clients, backend: str, family: str, tmp_path: Path
) -> None:
    srv = make_server(
        {
            "mounts": {"/a/b": url_for(backend, tmp_path / "b")},
            "users": {"alice": {"password": "plaintext:secret"}},
        },
        host=host_for(family),
    )
    ftp = own_clients.login("alice", "secret", srv)
    assert ftp.nlst("/") == ["a"]
    assert ftp.nlst("/a") == ["b"]
    for action in (
        lambda: ftp.mkd("/new"),
        lambda: ftp.mkd("/a/new"),
        lambda: put(ftp, "/file", b"x"),
        lambda: put(ftp, "/a/file", b"x"),
        lambda: ftp.rmd("/a"),
        lambda: ftp.rename("/a", "/z"),
    ):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            action()
    assert ftp.nlst("/") == ["a"]
    # inside the mount everything works
    ftp.cwd("/a/b")
    ftp.mkd("inner")
    put(ftp, "inner/f", b"x")
    assert get(ftp, "/a/b/inner/f") == b"x"


def test_cross_mount_rename_file(ftp: ftplib.FTP, server: ThreadedFTPServer) -> None:
    data = bytes(range(256)) * 1000
    put(ftp, "/f", data)
    ftp.rename("/f", "/other/f")
    assert "f" not in ftp.nlst("/")
    assert get(ftp, "/other/f") == data
    assert not mount_fs(server, "/").exists("/f")
    assert mount_fs(server, "/other").readbytes("/f") == data
    # and back, replacing a file there
    put(ftp, "/g", b"old")
    ftp.rename("/other/f", "/g")
    assert get(ftp, "/g") == data
    assert ftp.nlst("/other") == []


def test_cross_mount_rename_directory(ftp: ftplib.FTP, server: ThreadedFTPServer) -> None:
    ftp.mkd("/d")
    ftp.mkd("/d/sub")
    put(ftp, "/d/a", b"A")
    put(ftp, "/d/sub/b", b"B")
    ftp.rename("/d", "/other/d")
    assert "d" not in ftp.nlst("/")
    assert sorted(ftp.nlst("/other/d")) == ["a", "sub"]
    assert get(ftp, "/other/d/a") == b"A"
    assert get(ftp, "/other/d/sub/b") == b"B"
    assert not mount_fs(server, "/").exists("/d")
    # an existing directory is never replaced
    ftp.mkd("/e")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.rename("/other/d", "/e")
    assert get(ftp, "/other/d/a") == b"A"


def test_per_user_mounts(
    make_server: ServerFactory, own_clients: Clients, family: str, tmp_path: Path
) -> None:
    homes = tmp_path / "homes"
    srv = make_server(
        {
            "mounts": {"/": "mem://"},
            "users": {
                "alice": {"password": "plaintext:secret"},
                "bob": {
                    "password": "plaintext:bobpw",
                    "mounts": {"/home": {"fs": f"osfs://{homes}/${{user}}", "create": True}},
                },
            },
        },
        host=host_for(family),
    )
    bob = own_clients.login("bob", "bobpw", srv)
    assert (homes / "bob").is_dir()
    put(bob, "/home/notes.txt", b"bob's")
    assert (homes / "bob" / "notes.txt").read_bytes() == b"bob's"
    assert bob.nlst("/home") == ["notes.txt"]
    # the global mounts are still there for bob, and alice has no /home
    put(bob, "/shared", b"s")
    alice = own_clients.login("alice", "secret", srv)
    assert "home" not in alice.nlst("/")
    assert get(alice, "/shared") == b"s"
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        get(alice, "/home/notes.txt")
    # a second session of bob sees the same folder
    bob2 = own_clients.login("bob", "bobpw", srv)
    assert get(bob2, "/home/notes.txt") == b"bob's"
    assert sorted(p.name for p in homes.iterdir()) == ["bob"]


def test_user_folder_missing_at_login_is_a_clear_refusal(
    make_server: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A ${user} folder that is not there (and create: false): a warning at
    start-up, and at that user's login a 530 and one log line naming the
    mount, not a traceback and a 451."""
    homes = tmp_path / "homes"
    (homes / "alice").mkdir(parents=True)
    srv = make_server(
        {
            "mounts": {"/": "mem://", "/home": f"osfs://{homes}/${{user}}"},
            "users": {
                "alice": {"password": "plaintext:secret"},
                "bob": {"password": "plaintext:bobpw"},
            },
        }
    )
    assert (
        f"<ThreadedFTPServer>: mounts./home.fs: warning: folder {homes}/bob for user bob does "
        "not exist: bob cannot log in until it does" in caplog.text
    )
    f = ftplib.FTP(timeout=10)
    f.connect(srv.host, srv.port)
    with pytest.raises(
        ftplib.error_perm,
        match=r"^530 Login failed: the storage of this account cannot be opened \(see the log\)$",
    ):
        f.login("bob", "bobpw")
    f.login("alice", "secret")  # the connection goes on; others log in
    f.quit()
    (line,) = [r for r in caplog.records if "refused" in r.getMessage()]
    assert line.getMessage().endswith(
        f"user=bob refused: <ThreadedFTPServer>: mounts./home.fs: cannot open "
        f"'osfs://{homes}/bob': root path '{homes}/bob' does not exist "
        "(set create: true to make it)"
    )
    assert "Traceback" not in caplog.text


# ------------------------------------------------------------------ confinement


def _confined_server(make_server: ServerFactory, backend: str, tmp_path: Path) -> Any:
    return make_server(
        {
            "mounts": {
                "/data": url_for(backend, tmp_path / "data"),
                "/data/sub/inner": "mem://",
                "/scratch": "mem://",
                "/s3": "mem://",  # stands for any other mount
            },
            "users": {
                "admin": {"password": "plaintext:admin"},
                "sub": {
                    "password": "plaintext:sub",
                    "home": "/data/sub",
                    "permissions": {"/data/sub/ro": "elr", "/data": "elradfmw"},
                },
                "wide": {"password": "plaintext:wide", "root": "/", "home": "/data/sub"},
                "deep": {"password": "plaintext:deep", "root": "/data", "home": "/data/sub"},
                "lost": {"password": "plaintext:lost", "home": "/data/missing"},
            },
        }
    )


def test_a_user_sees_the_tree_from_their_home(
    make_server: ServerFactory,
    own_clients: Clients,
    backend: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vfsftp")
    srv = _confined_server(make_server, backend, tmp_path)
    srv.filesystems["/data"].makedir("/sub")  # (the tree shows it: a mount is below)
    admin = own_clients.login("admin", "admin", srv)
    for folder in ("/data/sub/ro", "/data/other"):
        admin.mkd(folder)
    put(admin, "/data/other/secret.txt", b"not sub's")
    put(admin, "/data/sub/ro/readme", b"read me")
    put(admin, "/scratch/s.txt", b"scratch")
    put(admin, "/data/sub/inner/in.txt", b"inner mount")

    sub = own_clients.login("sub", "sub", srv)
    assert sub.pwd() == "/"
    assert sorted(sub.nlst("/")) == ["inner", "ro"]
    # Everything is relative to the root, and nothing outside it is there.
    for outside in ("../other/secret.txt", "/data/other/secret.txt", "/../../scratch/s.txt"):
        with pytest.raises(ftplib.error_perm, match=r"^550") as err:
            get(sub, outside)
        assert "/data/sub" not in str(err.value)
    for where in ("/", "..", "/..", "../.."):
        sub.cwd(where)
        assert sub.pwd() == "/"
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        sub.cwd("/scratch")
    # Listings, MLST facts, STAT and errors name the user's paths only.
    put(sub, "mine.txt", b"mine")
    assert get(sub, "/inner/in.txt") == b"inner mount"
    assert get(admin, "/data/sub/mine.txt") == b"mine"
    facts = dict(sub.mlsd("/"))
    assert facts["."]["type"] == "cdir" and ".." not in facts
    assert sorted(k for k in facts if k != ".") == ["inner", "mine.txt", "ro"]
    mlst = sub.sendcmd("MLST /")
    assert "Listing /" in mlst and " /\r\n" not in mlst
    assert "sub" not in mlst.replace("mlst", "")  # no tree path in the facts
    stat = sub.sendcmd("STAT /")
    assert "Status of /:" in stat and "/data" not in stat
    mkd = sub.sendcmd("MKD d")
    assert mkd == '257 "/d" created'
    with pytest.raises(ftplib.error_perm, match=r"^550") as err:
        sub.rmd("/")
    assert "/data" not in str(err.value)
    # Overrides, keyed by the tree's paths, apply inside the view.
    assert get(sub, "/ro/readme") == b"read me"
    with pytest.raises(ftplib.error_perm, match=r"^550 Permission denied: /ro/new"):
        put(sub, "/ro/new", b"x")
    # Renames stay inside too.
    sub.rename("mine.txt", "d/mine.txt")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        sub.rename("d/mine.txt", "/../../scratch/mine.txt")
    assert get(admin, "/data/sub/d/mine.txt") == b"mine"
    assert "mine.txt" not in admin.nlst("/scratch")
    # The logs name the server's path.
    recorded = [r.transfer for r in caplog.records if hasattr(r, "transfer")]
    assert ("/data/sub/mine.txt", "/data") in [(t.path, t.mount) for t in recorded]

    # root: / keeps the wide view, starting at the home.
    wide = own_clients.login("wide", "wide", srv)
    assert wide.pwd() == "/data/sub"
    assert get(wide, "/scratch/s.txt") == b"scratch"
    # A root above the home: the home is where the session starts.
    deep = own_clients.login("deep", "deep", srv)
    assert deep.pwd() == "/sub"
    assert get(deep, "/other/secret.txt") == b"not sub's"
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        get(deep, "/scratch/s.txt")
    # A root that does not exist: no login (and no view of anything else).
    lost = own_clients.connect(srv)
    with pytest.raises(ftplib.error_perm, match=r"^530 Login refused: home directory"):
        lost.login("lost", "lost")


def test_anonymous_is_confined_to_its_home(
    make_server: ServerFactory, own_clients: Clients, backend: str, tmp_path: Path
) -> None:
    srv = make_server(
        {
            "mounts": {
                "/files": {"fs": url_for(backend, tmp_path / "files"), "read_only": True},
                "/s3": "mem://",
                "/scratch": "mem://",
            },
            "users": {"admin": {"password": "plaintext:admin"}, "anonymous": {"home": "/files"}},
        }
    )
    srv.filesystems["/files"].writebytes("/pub.txt", b"public")
    admin = own_clients.login("admin", "admin", srv)
    put(admin, "/s3/private", b"private")
    put(admin, "/scratch/private", b"private")
    anon = own_clients.login("anonymous", "a@b", srv)
    assert anon.pwd() == "/"
    assert anon.nlst("/") == ["pub.txt"]
    assert get(anon, "/pub.txt") == b"public"
    for path in ("/s3/private", "/scratch/private", "../s3/private", "/files/pub.txt"):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            get(anon, path)
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        put(anon, "/upload", b"x")


def test_a_local_root_is_a_jail_for_links_too(
    make_server: ServerFactory, own_clients: Clients, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "alice").mkdir(parents=True)
    (data / "bob").mkdir()
    (data / "bob" / "secret.txt").write_bytes(b"bob's")
    (data / "alice" / "to-bob").symlink_to(data / "bob")
    (data / "alice" / "bob-file").symlink_to("../bob/secret.txt")
    srv = make_server(
        {
            "mounts": {"/data": f"osfs://{data}"},
            "users": {"alice": {"password": "plaintext:secret", "home": "/data/alice"}},
        }
    )
    alice = own_clients.login("alice", "secret", srv)
    assert alice.nlst("/") == []  # links leading out are not listed
    for action in (
        lambda: get(alice, "/to-bob/secret.txt"),
        lambda: get(alice, "/bob-file"),
        lambda: alice.cwd("/to-bob"),
        lambda: alice.nlst("/to-bob"),
        lambda: put(alice, "/to-bob/planted", b"x"),
    ):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            action()
    assert not (data / "bob" / "planted").exists()


def test_per_user_mounts_inside_the_root(
    make_server: ServerFactory, own_clients: Clients, tmp_path: Path
) -> None:
    homes = tmp_path / "homes"
    srv = make_server(
        {
            "mounts": {"/": "mem://", "/home": {"fs": f"osfs://{homes}/${{user}}", "create": True}},
            "users": {
                "bob": {
                    "password": "plaintext:bobpw",
                    "home": "/home",
                    "mounts": {"/home/shared": "mem://"},
                    "permissions": {"/home/shared": "elr"},
                },
            },
        }
    )
    srv.filesystems["/"].writebytes("/top.txt", b"not bob's")
    bob = own_clients.login("bob", "bobpw", srv)
    assert bob.pwd() == "/"
    assert bob.nlst("/") == ["shared"]
    put(bob, "/notes.txt", b"bob's")
    assert (homes / "bob" / "notes.txt").read_bytes() == b"bob's"
    with pytest.raises(ftplib.error_perm, match=r"^550 Permission denied: /shared/x"):
        put(bob, "/shared/x", b"x")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        get(bob, "/top.txt")


@pytest.mark.parametrize("name", ["%2e%2e", "../escapee", "alice/", "a/b", "a\\b", "..", "a b"])
def test_user_names_that_are_paths_are_refused(
    make_server: ServerFactory, own_clients: Clients, tmp_path: Path, name: str
) -> None:
    srv = make_server(
        {
            "mounts": {"/home": {"fs": f"osfs://{tmp_path}/homes/${{user}}", "create": True}},
            "users": {"alice": {"password": "plaintext:secret", "home": "/home"}},
        }
    )
    client = own_clients.connect(srv)
    with pytest.raises(ftplib.error_perm, match=r"^501 Invalid user name"):
        client.sendcmd(f"USER {name}")
    # PASS has no user to go with; nothing was opened for the name
    with pytest.raises(ftplib.error_perm, match=r"^503"):
        client.sendcmd("PASS secret")
    assert not (tmp_path / "homes").exists() or list((tmp_path / "homes").iterdir()) == []
    own_clients.login("alice", "secret", srv)
    assert [p.name for p in (tmp_path / "homes").iterdir()] == ["alice"]


# ------------------------------------------------------------------ limits


def test_per_user_max_connections(
    make_server: ServerFactory, own_clients: Clients, family: str
) -> None:
    srv = make_server(
        {
            "mounts": {"/": "mem://"},
            "users": {
                "alice": {"password": "plaintext:secret", "max_connections": 1},
                "carol": {"password": "plaintext:carol"},
            },
        },
        host=host_for(family),
    )
    first = own_clients.login("alice", "secret", srv)
    second = own_clients.connect(srv)
    with pytest.raises(ftplib.error_temp, match=r"^421 Too many sessions for alice"):
        second.login("alice", "secret")
    assert second.sock.recv(1) == b""  # and the connection is closed
    # other users are not affected
    own_clients.login("carol", "carol", srv)
    # once the first session ends, alice may log in again
    first.quit()
    deadline = time.monotonic() + 5
    while True:
        third = own_clients.connect(srv)
        try:
            third.login("alice", "secret")
            break
        except ftplib.error_temp:
            assert time.monotonic() < deadline, "the ended session still counts"
            time.sleep(0.01)
    assert third.pwd() == "/"


def test_max_connections_per_ip(
    make_server: ServerFactory, own_clients: Clients, family: str
) -> None:
    srv = make_server(
        {
            "server": {"max_connections_per_ip": 2},
            "mounts": {"/": "mem://"},
            "users": {"alice": {"password": "plaintext:secret"}},
        },
        host=host_for(family),
    )
    first = own_clients.connect(srv)
    own_clients.connect(srv)
    with pytest.raises(ftplib.error_temp, match=r"^421"):
        own_clients.connect(srv)
    # a freed slot can be used again
    first.quit()
    deadline = time.monotonic() + 5
    while True:
        try:
            own_clients.connect(srv)
            break
        except ftplib.error_temp:
            assert time.monotonic() < deadline, "the ended session still counts"
            time.sleep(0.01)


# ------------------------------------------------------------------ path traversal


def test_cwd_above_root_stays_at_root(ftp: ftplib.FTP) -> None:
    ftp.cwd("../../..")
    assert ftp.pwd() == "/"
    ftp.mkd("d")
    ftp.cwd("d")
    ftp.cwd("../../../../d")
    assert ftp.pwd() == "/d"
    ftp.cwd("..\\..\\..")
    assert ftp.pwd() == "/"
    ftp.cwd("/..")
    assert ftp.pwd() == "/"


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/../../etc/passwd", "..\\..\\etc\\passwd", "/etc/passwd"]
)
def test_retr_outside_root_is_550(ftp: ftplib.FTP, path: str) -> None:
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        get(ftp, path)


def test_osfs_root_folder_is_a_jail(
    make_server: ServerFactory, own_clients: Clients, family: str, tmp_path: Path
) -> None:
    root = tmp_path / "jail" / "root"
    root.mkdir(parents=True)
    (root / "inside.txt").write_bytes(b"in")
    (tmp_path / "jail" / "secret.txt").write_bytes(b"outside")
    (tmp_path / "top-secret.txt").write_bytes(b"outside")
    srv = make_server(
        {"mounts": {"/": f"osfs://{root}"}, "users": {"alice": {"password": "plaintext:secret"}}},
        host=host_for(family),
    )
    ftp = own_clients.login("alice", "secret", srv)
    for name in ("secret.txt", "top-secret.txt", "jail/secret.txt"):
        for prefix in ("../", "../../", "/../", "..\\", "./../../", "inside.txt/../../"):
            path = prefix + name
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                get(ftp, path)
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                ftp.size(path)
    for where in ("..", "../..", "/.."):
        assert ftp.nlst(where) == ["inside.txt"]
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.nlst("../jail")
    # nor through symbolic links that lead out of the folder
    (root / "file-link").symlink_to(tmp_path / "jail" / "secret.txt")
    (root / "dir-link").symlink_to(tmp_path / "jail")
    for action in (
        lambda: get(ftp, "file-link"),
        lambda: get(ftp, "dir-link/secret.txt"),
        lambda: ftp.nlst("dir-link"),
        lambda: ftp.cwd("dir-link"),
        lambda: put(ftp, "dir-link/planted.txt", b"x"),
        lambda: put(ftp, "file-link", b"overwritten"),
    ):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            action()
    assert (tmp_path / "jail" / "secret.txt").read_bytes() == b"outside"
    assert not (tmp_path / "jail" / "planted.txt").exists()
    # writes cannot escape either: they land inside the root folder
    put(ftp, "../../escaped.txt", b"x")
    assert (root / "escaped.txt").read_bytes() == b"x"
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "jail" / "escaped.txt").exists()
    ftp.mkd("../made")
    assert (root / "made").is_dir()
    # the host path never shows in replies
    with pytest.raises(ftplib.error_perm) as err:
        get(ftp, "missing")
    assert str(tmp_path) not in str(err.value)
    assert str(tmp_path) not in ftp.sendcmd("PWD")
    assert str(tmp_path) not in ftp.sendcmd("STAT")
