"""JailedOSFS.iter_rows: a local folder's listing, read through the
folder's descriptor; the descriptor is closed however the listing ends."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import fs.errors
import pytest

from vfsftp.storage.local import JailedOSFS

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc"
)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[JailedOSFS]:
    (tmp_path / "d").mkdir()
    for i in range(5):
        (tmp_path / "d" / f"f{i}").write_bytes(b"x" * i)
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "outside.txt").write_text("secret")
    (tmp_path / "d" / "out").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "d" / "in").symlink_to(tmp_path / "d" / "f1")
    jailed = JailedOSFS(str(tmp_path / "d"))
    yield jailed
    jailed.close()


def test_rows_leave_out_links_that_lead_out(folder: JailedOSFS) -> None:
    rows = {r[0]: r[1:4] for r in folder.iter_rows("/")}
    assert set(rows) == {"f0", "f1", "f2", "f3", "f4", "sub", "in"}
    assert rows["f3"][:2] == (False, 3) and rows["sub"][:2] == (True, 0)
    assert rows["in"][:2] == (False, 1)  # a link inside: its target's facts


@pytest.mark.parametrize("read", [0, 1, None], ids=["never read", "read in part", "read whole"])
def test_the_folder_descriptor_is_closed_however_the_listing_ends(
    folder: JailedOSFS, read: int | None
) -> None:
    gc.collect()
    before = _fds()
    rows = folder.iter_rows("/")
    assert _fds() > before  # opened at once: its errors are the call's
    if read is None:
        list(rows)
    else:
        for _ in range(read):
            next(iter(rows))
        rows.close()  # type: ignore[attr-defined]
    del rows
    gc.collect()
    assert _fds() == before


def test_a_listing_dropped_unread_closes_its_descriptor(folder: JailedOSFS) -> None:
    gc.collect()
    before = _fds()
    rows = folder.iter_rows("/")
    del rows  # (a generator never started runs no finally)
    gc.collect()
    assert _fds() == before


@pytest.mark.parametrize(
    ("path", "error"),
    [("/f1", fs.errors.DirectoryExpected), ("/nothing", fs.errors.ResourceNotFound)],
)
def test_errors_are_the_calls_and_leak_nothing(
    folder: JailedOSFS, path: str, error: type[Exception]
) -> None:
    before = _fds()
    with pytest.raises(error):
        folder.iter_rows(path)
    assert _fds() == before
