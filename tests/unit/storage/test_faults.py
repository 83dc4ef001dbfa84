"""vfsftp.storage.faults: the fault-injecting filesystem of the test kit. Fault specs
as a table; FaultyFS over MemoryFS and a local folder (errors shaped as OSFS
raises them, switched at run time, by control file, by opener URL); with no
fault set, PyFilesystem2's own conformance cases pass through it."""

from __future__ import annotations

import errno
import io
import unittest
from pathlib import Path

import fs
import fs.errors
import fs.test
import pytest
from fs.memoryfs import MemoryFS
from fs.osfs import OSFS

from vfsftp.storage.faults import Fault, FaultyFS, parse_faults
from vfsftp.storage.local import JailedOSFS

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write:ENOSPC", Fault("write", errno.ENOSPC)),
        ("write:28:after=1048576", Fault("write", errno.ENOSPC, after=1 << 20)),
        ("write:ENOSPC:after=1MiB", Fault("write", errno.ENOSPC, after=1 << 20)),
        ("write:enospc:after=2k", Fault("write", errno.ENOSPC, after=2000)),
        ("read:EIO:after=10:p=0.5", Fault("read", errno.EIO, after=10, p=0.5)),
        ("rename:EIO:times=1", Fault("rename", errno.EIO, times=1)),
        ("open:EACCES:path=/in/*.csv", Fault("open", errno.EACCES, path="/in/*.csv")),
        (" remove : EIO ", Fault("remove", errno.EIO)),
        ("mkdir:EDQUOT", Fault("mkdir", errno.EDQUOT)),
        ("list:EIO:p=1", Fault("list", errno.EIO)),
    ],
)
def test_a_fault_is_parsed_from_its_text(text: str, expected: Fault) -> None:
    assert Fault.parse(text) == expected
    assert Fault.parse(str(expected)) == expected  # and written back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("write", "expected OP:ERRNO"),
        ("chmod:EIO", "unknown operation 'chmod'"),
        ("write:ENOTANERRNO", "unknown errno 'ENOTANERRNO'"),
        ("write:EIO:after=lots", "expected a byte count"),
        ("write:EIO:p=2", "p must be between 0 and 1"),
        ("write:EIO:times=0", "times must be 1 or more"),
        ("write:EIO:when=now", "unknown key 'when'"),
        ("write:EIO:after", "expected key=value"),
    ],
)
def test_a_bad_fault_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault.parse(text)


def test_several_faults_by_line_and_comma_with_comments() -> None:
    text = "# disk full after 1 KiB\nwrite:ENOSPC:after=1KiB, rename:EIO\n\n  # nothing\nlist:EIO"
    assert [f.op for f in parse_faults(text)] == ["write", "rename", "list"]
    assert parse_faults("") == [] and parse_faults("# only a comment\n") == []


def test_a_write_fault_fails_the_file_after_so_many_bytes_keeping_what_fitted() -> None:
    disk = FaultyFS(MemoryFS(), [Fault("write", errno.ENOSPC, after=10)])
    f = disk.openbin("/a", "w")
    assert f.write(b"12345678") == 8
    with pytest.raises(OSError) as raised:
        f.write(b"abcdef")
    assert raised.value.errno == errno.ENOSPC
    with pytest.raises(OSError):  # a full disk stays full for this file
        f.write(b"x")
    f.close()
    assert disk.readbytes("/a") == b"12345678ab"
    assert disk.injected["write"] == 1  # one fault, however many calls it failed


def test_faults_switched_at_run_time_reach_a_file_already_open() -> None:
    disk = FaultyFS(MemoryFS())
    with disk.openbin("/a", "w") as f:
        f.write(b"before")
        disk.set_faults([Fault("write", errno.EIO)])
        with pytest.raises(OSError) as raised:
            f.write(b"during")
        assert raised.value.errno == errno.EIO
        disk.set_faults([])
        f.write(b"after")
    assert disk.readbytes("/a") == b"beforeafter"


def test_filesystem_calls_raise_what_osfs_raises_for_the_errno(tmp_path: Path) -> None:
    disk = FaultyFS(
        JailedOSFS(str(tmp_path)),
        [Fault("open", errno.ENOSPC, path="/full*"), Fault("rename", errno.EIO)],
    )
    with pytest.raises(fs.errors.InsufficientStorage):
        disk.openbin("/full.bin", "w")
    disk.writebytes("/ok.bin", b"data")  # other paths are fine
    with pytest.raises(fs.errors.OperationFailed) as raised:
        disk.move("/ok.bin", "/moved.bin")
    assert isinstance(raised.value.exc, OSError) and raised.value.exc.errno == errno.EIO
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.bin"]


@pytest.mark.parametrize(
    ("fault", "call"),
    [
        ("remove:EIO", lambda d: d.remove("/f")),
        ("remove:EIO", lambda d: d.removedir("/d")),
        ("remove:EIO", lambda d: d.removetree("/d")),
        ("mkdir:EIO", lambda d: d.makedir("/e")),
        ("mkdir:EIO", lambda d: d.makedirs("/e/f")),
        ("list:EIO", lambda d: d.listdir("/")),
        ("list:EIO", lambda d: list(d.scandir("/"))),
        ("rename:EIO", lambda d: d.movedir("/d", "/e", create=True)),
        ("open:EIO", lambda d: d.writebytes("/g", b"x")),
        ("open:EIO", lambda d: d.writetext("/g", "x")),
        ("open:EIO", lambda d: d.upload("/g", io.BytesIO(b"x"))),
        ("open:EIO", lambda d: d.copy("/f", "/g")),
        ("open:EIO", lambda d: d.appendbytes("/f", b"x")),
        ("open:EIO", lambda d: d.create("/g")),
        ("read:EIO", lambda d: d.readbytes("/f")),
        ("read:EIO", lambda d: d.download("/f", io.BytesIO())),
    ],
)
def test_every_operation_of_its_kind_is_reached(fault: str, call: object) -> None:
    inner = MemoryFS()
    inner.makedir("/d")
    inner.writebytes("/f", b"content")
    disk = FaultyFS(inner, [Fault.parse(fault)])
    with pytest.raises((fs.errors.FSError, OSError)):
        call(disk)  # type: ignore[operator]
    assert sum(disk.injected.values()) == 1


def test_a_read_fault_stops_reads_after_so_many_bytes_and_hides_the_descriptor(
    tmp_path: Path,
) -> None:
    (tmp_path / "f").write_bytes(b"0123456789")
    disk = FaultyFS(JailedOSFS(str(tmp_path)))
    with disk.openbin("/f") as f:
        assert f.fileno() >= 0  # no read fault: sendfile may read it
    disk.set_faults([Fault("read", errno.EIO, after=4)])
    with disk.openbin("/f") as f:
        with pytest.raises(io.UnsupportedOperation):
            f.fileno()
        assert f.read(3) == b"012"
        assert f.read(100) == b"3"
        with pytest.raises(OSError) as raised:
            f.read(100)
        assert raised.value.errno == errno.EIO


def test_probability_and_times() -> None:
    disk = FaultyFS(MemoryFS(), [Fault("mkdir", errno.EIO, p=0.5)], seed=7)
    failed = 0
    for i in range(400):
        try:
            disk.makedir(f"/d{i}")
        except fs.errors.OperationFailed:
            failed += 1
    assert 140 < failed < 260
    disk.set_faults([Fault("mkdir", errno.EIO, times=2)])
    outcomes = []
    for i in range(4):
        try:
            disk.makedir(f"/t{i}")
            outcomes.append("ok")
        except fs.errors.OperationFailed:
            outcomes.append("fail")
    assert outcomes == ["fail", "fail", "ok", "ok"]


def test_a_data_fault_with_p_is_drawn_once_per_file() -> None:
    disk = FaultyFS(MemoryFS(), [Fault("write", errno.EIO, after=1, p=0.5)], seed=3)
    hit = 0
    for i in range(100):
        f = disk.openbin(f"/f{i}", "w")
        outcome = []
        for _ in range(5):  # every call of one file agrees
            try:
                f.write(b"ab")
                outcome.append(True)
            except OSError:
                outcome.append(False)
        f.close()
        assert outcome in ([True] * 5, [False] * 5)
        hit += not outcome[0]
    assert 25 < hit < 75


def test_a_control_file_switches_faults_while_it_runs(tmp_path: Path) -> None:
    control = tmp_path / "faults.txt"
    disk = FaultyFS(MemoryFS(), control=control)
    disk.writebytes("/a", b"no file: no faults")
    control.write_text("write:ENOSPC:after=2\n")
    with pytest.raises(OSError) as raised:
        disk.writebytes("/b", b"too big")
    assert raised.value.errno == errno.ENOSPC
    assert disk.faults == (Fault("write", errno.ENOSPC, after=2),)
    control.write_text("# healed\n")
    disk.writebytes("/b", b"fits again")
    control.write_text("write:NOPE\n")  # a bad file changes nothing
    disk.writebytes("/c", b"still fine")
    control.unlink()
    assert disk.faults == ()


def test_opener_urls(tmp_path: Path) -> None:
    control = tmp_path / "faults.txt"
    control.write_text("rename:EIO\n")
    with fs.open_fs(
        f"faulty+osfs://{tmp_path}?faults=write:ENOSPC:after=3,mkdir:EIO&seed=1"
    ) as disk:
        assert isinstance(disk, FaultyFS)
        assert isinstance(disk.delegate_fs(), JailedOSFS)
        assert [str(f) for f in disk.faults] == ["write:ENOSPC:after=3", "mkdir:EIO"]
        with pytest.raises(fs.errors.NoSysPath):
            disk.getsyspath("/x")
    with fs.open_fs("faulty+mem://?control=faults.txt", cwd=str(tmp_path)) as disk:
        assert isinstance(disk.delegate_fs(), MemoryFS)
        assert [str(f) for f in disk.faults] == ["rename:EIO"]
    with fs.open_fs(f"faulty+osfs://{tmp_path}/new", create=True) as disk:
        assert disk.faults == () and (tmp_path / "new").is_dir()
    with pytest.raises(fs.opener.errors.OpenerError, match="unknown operation"):
        fs.open_fs("faulty+mem://?faults=chmod:EIO")


class TestFaultyFSConformance(fs.test.FSTestCases, unittest.TestCase):  # type: ignore[misc]
    """With no fault set, FaultyFS is the filesystem it wraps."""

    def make_fs(self) -> FaultyFS:
        return FaultyFS(MemoryFS())


class TestFaultyOSFSConformance(fs.test.FSTestCases, unittest.TestCase):  # type: ignore[misc]
    def make_fs(self) -> FaultyFS:
        import tempfile

        self._dir = tempfile.TemporaryDirectory()
        return FaultyFS(OSFS(self._dir.name))

    def destroy_fs(self, fs: FaultyFS) -> None:
        fs.close()
        self._dir.cleanup()
