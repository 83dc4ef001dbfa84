"""Checksums through the server, on mem:// and a local folder: HASH with
OPTS HASH and RANG (draft-bryan-ftpext-hash-02, draft-bryan-ftp-range-09),
the X-commands as mod_digest answers them, each algorithm against hashlib
and zlib; empty and multi-GB sparse files, the size cap, ABOR and STAT
during a long HASH, the stall timeout, the download rate, 450 when busy;
rights and anonymous users; a HASH right after a STOR reads nothing; SITE
CHECKSUM and the discarded mismatch; the checksum in the transfer log.
(S3 mounts: test_s3_checksums.py.)"""

from __future__ import annotations

import ftplib
import hashlib
import io
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, USER, Control, ServerFactory, login, mount_url, put, wait_for

import vfsftp.storage.sessionfs
from vfsftp.config.schema import LoggingConfig
from vfsftp.ops.logs import configure_logging, parse_xferlog
from vfsftp.storage.digests import DIGESTS, HashSource
from vfsftp.testing import ThreadedFTPServer

ALGORITHMS = ("CRC32", "MD5", "SHA-1", "SHA-256", "SHA-512")
XCMDS = {
    "XCRC": "CRC32",
    "XMD5": "MD5",
    "XSHA1": "SHA-1",
    "XSHA256": "SHA-256",
    "XSHA512": "SHA-512",
}
DATA = bytes(range(256)) * 1200 + b"the end"  # 307,207 bytes


def digest(algorithm: str, data: bytes) -> str:
    if algorithm == "CRC32":
        return f"{zlib.crc32(data):08x}"
    name = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}[algorithm]
    return hashlib.new(name, data).hexdigest()


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Each test starts with nothing cached (the cache is process-wide)."""
    DIGESTS.clear()
    yield
    DIGESTS.clear()


def start(
    make_server: ServerFactory,
    backend: str,
    tmp_path: Path,
    server: dict[str, Any] | None = None,
    users: dict[str, Any] | None = None,
    **mount_keys: Any,
) -> ThreadedFTPServer:
    return make_server(
        {
            "server": server or {},
            "mounts": {"/": {"fs": mount_url(backend, tmp_path), **mount_keys}},
            "users": {
                USER: {"password": f"plaintext:{PASSWORD}"},
                "lister": {"password": "plaintext:lister", "perms": "el"},
                "anonymous": {},
                **(users or {}),
            },
        }
    )


def refused(call: Callable[[], object]) -> str:
    with pytest.raises(ftplib.Error) as exc:
        call()
    return str(exc.value)


# ---------------------------------------------------------------- every algorithm


def test_hash_and_x_commands_match_hashlib_and_zlib(
    make_server: ServerFactory, backend: str, tmp_path: Path
) -> None:
    srv = start(make_server, backend, tmp_path)
    srv.put_file("/dir/a file.bin", DATA)  # (not uploaded: nothing cached)
    f = login(srv)
    # SHA-256 is HASH's default, and FEAT says so (draft §3.1)
    assert f.sendcmd("OPTS HASH") == "200 SHA-256"
    assert " HASH CRC32;MD5;SHA-1;SHA-256*;SHA-512;" in f.sendcmd("FEAT").splitlines()
    for algorithm in ALGORITHMS:
        assert f.sendcmd(f"OPTS HASH {algorithm.lower()}") == f"200 {algorithm}"
        assert f"{algorithm}*;" in f.sendcmd("FEAT")
        want = digest(algorithm, DATA)
        # 213 <algorithm> <first>-<last> <lowercase hex> <the name as sent>
        assert f.sendcmd("HASH /dir/a file.bin") == (
            f"213 {algorithm} 0-{len(DATA) - 1} {want} /dir/a file.bin"
        )
        f.cwd("/dir")
        assert f.sendcmd("HASH a file.bin").split(" ")[3] == want
        f.cwd("/")
    for verb, algorithm in XCMDS.items():
        want = digest(algorithm, DATA).upper()
        names = {"SHA-1": "SHA1", "SHA-256": "SHA256", "SHA-512": "SHA512"}
        shown = names.get(algorithm, algorithm)
        # mod_digest's reply: 250-Computing <name> digest / 250 <HEX>
        assert f.sendcmd(f"{verb} /dir/a file.bin") == (f"250-Computing {shown} digest\n250 {want}")
        part = digest(algorithm, DATA[1000:5000]).upper()
        assert f.sendcmd(f"{verb} /dir/a file.bin 1000 5000").endswith(f"250 {part}")
    assert f.sendcmd("XSHA /dir/a file.bin").endswith(digest("SHA-1", DATA).upper())
    f.quit()


def test_opts_hash_and_rein(make_server: ServerFactory, backend: str, tmp_path: Path) -> None:
    srv = start(make_server, backend, tmp_path)
    f = login(srv)
    # draft §3.2: an unknown name changes nothing
    assert refused(lambda: f.sendcmd("OPTS HASH SHA-3")).startswith(
        "501 Unknown algorithm, current selection not changed"
    )
    assert refused(lambda: f.sendcmd("OPTS HASH SHA256")).startswith("501")
    assert f.sendcmd("OPTS HASH") == "200 SHA-256"
    assert f.sendcmd("OPTS HASH SHA-1") == "200 SHA-1"
    assert "SHA-1*;" in f.sendcmd("FEAT")
    # REIN ends the selection (draft §3.2)
    assert f.sendcmd("REIN").startswith("220")
    f.login(USER, PASSWORD)
    assert f.sendcmd("OPTS HASH") == "200 SHA-256"
    f.quit()


# ---------------------------------------------------------------- ranges, edges


def test_ranges(make_server: ServerFactory, backend: str, tmp_path: Path) -> None:
    srv = start(make_server, backend, tmp_path)
    srv.put_file("/f.bin", DATA)
    f = login(srv)
    f.sendcmd("OPTS HASH MD5")
    assert f.sendcmd("RANG 0 49").startswith("350")
    # the end point is included (range draft §3)
    assert f.sendcmd("HASH f.bin") == f"213 MD5 0-49 {digest('MD5', DATA[:50])} f.bin"
    # the range served one HASH: the next hashes the whole file; other
    # commands between RANG and HASH leave it (range draft §4.3)
    assert f.sendcmd("HASH f.bin").startswith(f"213 MD5 0-{len(DATA) - 1} ")
    f.sendcmd("RANG 100 100")
    f.sendcmd("TYPE I")
    f.sendcmd("PASV")
    assert f.sendcmd("HASH f.bin") == f"213 MD5 100-100 {digest('MD5', DATA[100:101])} f.bin"
    # an end past the file is cut to it, and the reply says so
    f.sendcmd(f"RANG 300000 {10**12}")
    assert f.sendcmd("HASH f.bin") == (
        f"213 MD5 300000-{len(DATA) - 1} {digest('MD5', DATA[300000:])} f.bin"
    )
    # a start past the end: 554, as a REST beyond it
    f.sendcmd(f"RANG {len(DATA)} {len(DATA) + 5}")
    assert refused(lambda: f.sendcmd("HASH f.bin")).startswith("554 RANG start")
    # RANG 1 0 resets; a start after the end is 501 and resets too
    assert f.sendcmd("RANG 1 0").startswith("350 Range reset")
    assert refused(lambda: f.sendcmd("RANG 9 3")).startswith("501")
    assert f.sendcmd("HASH f.bin").startswith(f"213 MD5 0-{len(DATA) - 1} ")
    for bad in ("RANG", "RANG 5", "RANG a b", "RANG -1 4"):
        assert refused(lambda bad=bad: f.sendcmd(bad)).startswith("501")
    # RANG serves HASH only: a RETR or STOR after it is refused, not
    # answered with the whole file, and the range dropped
    for transfer in (
        lambda: f.retrbinary("RETR f.bin", lambda b: None),
        lambda: put(f, "g.bin", b"data"),
    ):
        f.sendcmd("RANG 0 9")
        assert refused(transfer).startswith("504 RANG is for HASH only")
        assert f.sendcmd("HASH f.bin").startswith(f"213 MD5 0-{len(DATA) - 1} ")
    assert not srv.exists("/g.bin")
    # X-commands: <start> <end>, the end excluded; mod_digest's refusals
    assert f.sendcmd("XMD5 f.bin 0 50").endswith(digest("MD5", DATA[:50]).upper())
    assert refused(lambda: f.sendcmd(f"XMD5 f.bin 0 {len(DATA) + 1}")).startswith("501")
    assert refused(lambda: f.sendcmd("XMD5 f.bin 7 7")).startswith("501")
    assert refused(lambda: f.sendcmd("XMD5 f.bin 7")).startswith("501 Invalid number")
    f.quit()


def test_empty_files_directories_and_missing_ones(
    make_server: ServerFactory, backend: str, tmp_path: Path
) -> None:
    srv = start(make_server, backend, tmp_path)
    srv.put_file("/empty", b"")
    srv.put_file("/d/x", b"x")
    f = login(srv)
    for algorithm in ALGORITHMS:
        f.sendcmd(f"OPTS HASH {algorithm}")
        # no last octet: the range is written 0-0 (the draft's ABNF)
        assert f.sendcmd("HASH empty") == f"213 {algorithm} 0-0 {digest(algorithm, b'')} empty"
    assert f.sendcmd("XCRC empty").endswith("250 00000000")
    # a directory: 553 to HASH (draft §3.5), 550 to the X-commands
    assert refused(lambda: f.sendcmd("HASH d")).startswith("553")
    assert refused(lambda: f.sendcmd("HASH /")).startswith("553")
    assert refused(lambda: f.sendcmd("XCRC d")).startswith("550")
    assert refused(lambda: f.sendcmd("HASH nope")).startswith("550 No such file")
    assert refused(lambda: f.sendcmd("XSHA256 nope 0 1")).startswith("550 No such file")
    assert refused(lambda: f.sendcmd("HASH")).startswith("501")
    f.quit()


# ---------------------------------------------------------------- who may


def test_rights_anonymous_and_switching_off(
    make_server: ServerFactory, backend: str, tmp_path: Path
) -> None:
    srv = start(make_server, backend, tmp_path)
    srv.put_file("/f", DATA)
    # the r letter, checked by the preflight like RETR's
    g = login(srv, "lister", "lister")
    assert refused(lambda: g.sendcmd("HASH f")).startswith("550 Permission denied")
    assert refused(lambda: g.sendcmd("XCRC f 0 5")).startswith("550 Permission denied")
    g.quit()
    a = login(srv, "anonymous", "guest@")
    assert a.sendcmd("HASH f").split(" ")[3] == digest("SHA-256", DATA)
    a.quit()
    # before the login: 530
    c = Control(srv.host, srv.port)
    assert c.cmd("HASH f")[0] == 530
    c.close()

    closed = start(make_server, backend, tmp_path, server={"hash": {"anonymous": False}})
    a = login(closed, "anonymous", "guest@")
    # draft §3.5: the user may not use HASH
    assert refused(lambda: a.sendcmd("HASH f")).startswith("552")
    assert refused(lambda: a.sendcmd("XMD5 f")).startswith("552")
    a.quit()

    off = start(make_server, backend, tmp_path, server={"hash": {"enabled": False}})
    f = login(off)
    assert refused(lambda: f.sendcmd("HASH f")).startswith("502")
    assert refused(lambda: f.sendcmd("RANG 0 1")).startswith("502")
    assert refused(lambda: f.sendcmd("XCRC f")).startswith("502")
    assert refused(lambda: f.sendcmd("OPTS HASH")).startswith("501")
    feat = f.sendcmd("FEAT")
    assert not any(w in feat for w in ("HASH", "RANG", "XCRC", "XSHA"))
    f.quit()


# ---------------------------------------------------------------- big files


@pytest.fixture
def sparse(tmp_path: Path) -> Path:
    """A 3 GiB local file of which no block is written: nothing is read
    from a disk, and the test never reads more than a few MiB of it."""
    folder = tmp_path / "big"
    folder.mkdir()
    with open(folder / "huge.img", "wb") as out:
        out.truncate(3 * 1024**3)
    return folder


def test_a_multi_gb_file_over_the_cap_is_refused_unread(
    make_server: ServerFactory, sparse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = make_server(
        {
            "mounts": {"/": {"fs": f"osfs://{sparse}", "hash_max_size": "1GiB"}},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )
    reads: list[int] = []
    real = vfsftp.storage.sessionfs.compute
    monkeypatch.setattr(vfsftp.storage.sessionfs, "compute", lambda *a: reads.append(1) or real(*a))
    f = login(srv)
    # draft §3.5: 556 for a file the hashing policy refuses; mod_digest: 550
    assert refused(lambda: f.sendcmd("HASH huge.img")).startswith(
        f"556 HASH refused: {3 * 1024**3} bytes to read, more than this folder's limit"
    )
    assert refused(lambda: f.sendcmd("XSHA1 huge.img")).startswith("550 XSHA1 refused")
    # a range within the cap is read
    f.sendcmd("RANG 0 1048575")
    zeros = digest("SHA-256", bytes(1024 * 1024))
    assert f.sendcmd("HASH huge.img") == f"213 SHA-256 0-1048575 {zeros} huge.img"
    assert reads == [1]
    f.quit()


def _slow_hash_server(make_server: ServerFactory, sparse: Path, **server: Any) -> ThreadedFTPServer:
    # 64 KiB/s: the 3 GiB would take 14 hours; the hash is stopped long before
    return make_server(
        {
            "server": {"session_download_rate": "64KiB", **server},
            "mounts": {"/": f"osfs://{sparse}"},
            "users": {USER: {"password": f"plaintext:{PASSWORD}"}},
        }
    )


def _progress(c: Control) -> int:
    code, lines = c.cmd("STAT")
    assert code == 211
    line = next((ln for ln in lines if "HASH in progress" in ln), "")
    assert line, lines
    return int(line.split(", ")[1].split(" ")[0])


def test_abor_and_stat_during_a_long_hash(make_server: ServerFactory, sparse: Path) -> None:
    srv = _slow_hash_server(make_server, sparse)
    c = Control(srv.host, srv.port)
    c.login()
    c.send("HASH huge.img")
    # STAT is answered while the hash reads, and shows it moving; so is
    # another session (the reading is in a worker thread, at 64 KiB/s)
    wait_for(lambda: _progress(c) > 0, "the hash to read")
    other = login(srv)
    assert other.sendcmd("NOOP").startswith("200")
    other.quit()
    assert "of 3221225472 bytes read" in " ".join(c.cmd("STAT")[1])
    # ABOR: the aborted command's 426, then ABOR's 226 (RFC 959 §4.1.3)
    c.send("ABOR")
    assert c.reply() == (426, ["426 HASH aborted: ABOR received"])
    assert c.reply()[0] == 226
    # its thread gives up at its next chunk: no slot stays taken
    wait_for(lambda: srv.server.hash_slots.running == 0, "the hash thread to stop")
    assert c.cmd("NOOP")[0] == 200
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_quit_stops_a_hash(make_server: ServerFactory, sparse: Path) -> None:
    srv = _slow_hash_server(make_server, sparse)
    c = Control(srv.host, srv.port)
    c.login()
    c.send("HASH huge.img")
    wait_for(lambda: _progress(c) > 0, "the hash to read")
    # QUIT during a HASH: the hash is stopped (nobody waits for it), its
    # 426 comes before the 221, and the session ends
    c.send("QUIT")
    assert c.reply() == (426, ["426 HASH aborted: QUIT received"])
    assert c.reply()[0] == 221
    assert c.closed_by_server()
    c.close()
    wait_for(lambda: srv.server.hash_slots.running == 0, "the hash thread to stop")


def test_busy_server_answers_450(make_server: ServerFactory, sparse: Path) -> None:
    srv = _slow_hash_server(make_server, sparse, hash={"max_concurrent": 1})
    (sparse / "small").write_bytes(b"small")
    c = Control(srv.host, srv.port)
    c.login()
    c.send("HASH huge.img")
    wait_for(lambda: _progress(c) > 0, "the hash to read")
    f = login(srv)
    # draft §3.5: 450, busy hashing other files; try again later
    assert refused(lambda: f.sendcmd("HASH small")).startswith("450")
    c.send("ABOR")
    assert [c.reply()[0], c.reply()[0]] == [426, 226]
    wait_for(lambda: srv.server.hash_slots.running == 0, "the hash thread to stop")
    assert f.sendcmd("HASH small").split(" ")[3] == digest("SHA-256", b"small")
    f.quit()
    c.close()


def test_hash_reads_at_the_download_rate(make_server: ServerFactory, tmp_path: Path) -> None:
    # A hash reads the file as a RETR would: the session's download rate
    # applies. Only a lower bound is asserted (a limit slows, never hastens).
    srv = start(make_server, "osfs", tmp_path, server={"session_download_rate": "64KiB"})
    size = 192 * 1024
    srv.put_file("/f", DATA[:size])
    c = Control(srv.host, srv.port)
    c.login()
    started = time.monotonic()
    c.send("HASH f")
    c.send("PWD")  # waits for the HASH: its reply comes second
    code, lines = c.reply()
    assert (code, lines[0].split(" ")[3]) == (213, digest("SHA-256", DATA[:size]))
    burst = 16 * 1024
    assert time.monotonic() - started >= (size - burst) / (64 * 1024) * 0.9
    assert c.reply()[0] == 257
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_a_read_that_stalls_is_given_up(
    make_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = start(make_server, "osfs", tmp_path, server={"stall_timeout": 0.5})
    srv.put_file("/f", b"data")
    release = threading.Event()

    class Stuck(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            release.wait(30)  # a store that does not answer
            return b"d"

    stuck = HashSource(4, None, opener=lambda start, stop: Stuck())
    osfs = srv.filesystems["/"]
    monkeypatch.setattr(osfs, "hash_source", lambda path: stuck, raising=False)
    f = login(srv)
    try:
        assert refused(lambda: f.sendcmd("HASH f")) == (
            "451 No data read for 0.5 seconds; HASH aborted"
        )
        assert f.sendcmd("NOOP").startswith("200")  # the session goes on
    finally:
        release.set()
    wait_for(lambda: srv.server.hash_slots.running == 0, "the hash thread to stop")
    f.quit()


# ---------------------------------------------------------------- uploads


def test_hash_right_after_stor_reads_nothing(
    make_server: ServerFactory, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = start(make_server, backend, tmp_path)
    f = login(srv)
    f.sendcmd("OPTS HASH SHA-1")  # computed during the upload too
    put(f, "up.bin", DATA)

    def no_read(*args: Any) -> str:
        raise AssertionError("the file was read")

    monkeypatch.setattr(vfsftp.storage.sessionfs, "compute", no_read)
    assert f.sendcmd("HASH up.bin").split(" ")[3] == digest("SHA-1", DATA)
    f.sendcmd("OPTS HASH SHA-256")  # server.hash.upload
    assert f.sendcmd("HASH up.bin").split(" ")[3] == digest("SHA-256", DATA)
    assert f.sendcmd("XSHA256 up.bin").endswith(digest("SHA-256", DATA).upper())
    # another session too: the cache names the file's version, not a session
    g = login(srv)
    assert g.sendcmd("HASH up.bin").split(" ")[3] == digest("SHA-256", DATA)
    # the file changed since (written behind the server's back): its
    # version token changed, so it is read again
    monkeypatch.undo()
    changed = DATA[::-1] + b"!"
    srv.put_file("/up.bin", changed)
    assert g.sendcmd("HASH up.bin").split(" ")[3] == digest("SHA-256", changed)
    # an APPE's checksum is of its own bytes, not the file's: not cached
    f.storbinary("APPE up.bin", io.BytesIO(b"more"))
    assert g.sendcmd("HASH up.bin").split(" ")[3] == digest("SHA-256", changed + b"more")
    f.quit()
    g.quit()


def test_site_checksum_verifies_the_upload(
    make_server: ServerFactory, backend: str, tmp_path: Path
) -> None:
    srv = start(make_server, backend, tmp_path)
    srv.put_file("/kept.bin", b"the old file")
    f = login(srv)
    good = digest("SHA-256", DATA)
    assert f.sendcmd(f"SITE CHECKSUM SHA-256 {good.upper()}").startswith("200")
    f.sendcmd("TYPE I")  # (other commands between: the checksum waits for the upload)
    put(f, "ok.bin", DATA)
    assert srv.read_file("/ok.bin") == DATA
    # the announced checksum is spent by that upload
    put(f, "free.bin", b"anything")
    # a mismatch: 451, nothing published, the old file kept
    f.sendcmd(f"SITE CHECKSUM MD5 {digest('MD5', b'other data')}")
    assert refused(lambda: put(f, "kept.bin", DATA)).startswith(
        "451 Upload discarded: MD5 mismatch: announced"
    )
    assert srv.read_file("/kept.bin") == b"the old file"
    f.sendcmd(f"SITE CHECKSUM CRC32 {digest('CRC32', b'x')}")
    assert refused(lambda: put(f, "new.bin", DATA)).startswith("451")
    assert not srv.exists("/new.bin")
    assert [p for p in srv.list_files("/") if "upload" in p] == []
    for bad in ("SITE CHECKSUM", "SITE CHECKSUM SHA-256", "SITE CHECKSUM SHA-256 abc"):
        assert refused(lambda bad=bad: f.sendcmd(bad)).startswith("501")
    f.quit()


def test_a_mount_can_require_a_checksum(
    make_server: ServerFactory, backend: str, tmp_path: Path
) -> None:
    srv = start(make_server, backend, tmp_path, require_checksum=True)
    f = login(srv)
    assert refused(lambda: put(f, "a.bin", DATA)).startswith("503 Uploads here must announce")
    assert not srv.exists("/a.bin")
    f.sendcmd(f"SITE CHECKSUM SHA-512 {digest('SHA-512', DATA)}")
    put(f, "a.bin", DATA)
    assert srv.read_file("/a.bin") == DATA
    f.quit()


@pytest.fixture
def logs() -> Iterator[Callable[..., None]]:
    def setup(**keys: Any) -> None:
        configure_logging(LoggingConfig(level="info", **keys))

    yield setup
    configure_logging(LoggingConfig(level="warning"))
    root = logging.getLogger("vfsftp")
    for h in root.handlers[:]:
        root.removeHandler(h)
        h.close()


@pytest.mark.parametrize("fmt", ["xferlog", "json"])
def test_the_transfer_log_records_the_upload_checksum(
    make_server: ServerFactory, tmp_path: Path, logs: Callable[..., None], fmt: str
) -> None:
    xfer = tmp_path / "xfer.log"
    logs(file=str(tmp_path / "session.log"), transfer_log=str(xfer), transfer_log_format=fmt)
    srv = start(make_server, "mem", tmp_path)
    f = login(srv)
    put(f, "a.bin", DATA)
    f.sendcmd("TYPE A")  # the checksum is of what is stored: LF line ends
    f.storlines("STOR t.txt", io.BytesIO(b"one\r\ntwo\r\n"))
    f.sendcmd("TYPE I")
    f.sendcmd(f"SITE CHECKSUM SHA-256 {'0' * 64}")
    refused(lambda: put(f, "bad.bin", DATA))
    f.retrbinary("RETR a.bin", lambda b: None)
    f.quit()
    srv.stop()
    lines = xfer.read_text().splitlines()
    if fmt == "xferlog":
        rows = [parse_xferlog(line) for line in lines]
        got = [
            (r["path"], r["status"], r["fault"], r["checksum_algorithm"], r["checksum"])
            for r in rows
        ]
    else:
        rows = [json.loads(line) for line in lines]
        got = [
            (
                r["path"],
                "c" if r["complete"] else "i",
                r["fault"],
                r["checksum_algorithm"],
                r["checksum"],
            )
            for r in rows
        ]
    assert got == [
        ("/a.bin", "c", "", "SHA-256", digest("SHA-256", DATA)),
        ("/t.txt", "c", "", "SHA-256", digest("SHA-256", b"one\ntwo\n")),
        ("/bad.bin", "i", "checksum", "", ""),
        ("/a.bin", "c", "", "", ""),  # (a download: nothing computed)
    ]


def test_uploads_without_checksums(make_server: ServerFactory, tmp_path: Path) -> None:
    # server.hash.upload: none turns the in-stream hashing off (the
    # benchmark compares both); HASH then reads the file
    srv = start(make_server, "osfs", tmp_path, server={"hash": {"upload": "none"}})
    f = login(srv)
    put(f, "a.bin", DATA)
    assert f.sendcmd("HASH a.bin").split(" ")[3] == digest("SHA-256", DATA)
    f.quit()
