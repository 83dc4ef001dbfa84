"""VFSFTP_PORTABLE turns every Linux-only fast path off (vfsftp/fastpaths.py).

The flags are read once at import, so each case runs a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_PROBE = """
import json, sys
from vfsftp import fastpaths
from vfsftp.service import workers
from vfsftp.storage import nowait
from vfsftp.storage.local import JailedOSFS
with JailedOSFS(sys.argv[1]) as folder:
    cached = folder.read_cached("/f.txt", 0, 100)
print(json.dumps({
    "portable": fastpaths.PORTABLE,
    "sendfile": fastpaths.SENDFILE,
    "msg_more": fastpaths.MSG_MORE,
    "sock_nonblock": fastpaths.SOCK_NONBLOCK,
    "inherited_options": fastpaths.INHERITED_OPTIONS,
    "nowait": nowait.available(),
    "reuseport": workers._reuseport_spreads(),
    "read_cached": None if cached is None else cached[1].decode(),
}))
"""


def _probe(tmp_path: Path, value: str | None) -> dict[str, object]:
    (tmp_path / "f.txt").write_text("cached")
    env = {k: v for k, v in os.environ.items() if k != "VFSFTP_PORTABLE"}
    if value is not None:
        env["VFSFTP_PORTABLE"] = value
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("value", ["1", "true", "yes", "on"])
def test_portable_turns_every_fast_path_off(tmp_path: Path, value: str) -> None:
    assert _probe(tmp_path, value) == {
        "portable": True,
        "sendfile": False,
        "msg_more": 0,
        "sock_nonblock": 0,
        "inherited_options": False,
        "nowait": False,
        "reuseport": False,
        # The event-loop read declines: the caller goes to a worker thread.
        "read_cached": None,
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux fast paths")
@pytest.mark.parametrize("value", [None, "", "0", "false", "no"])
def test_fast_paths_are_on_by_default_on_linux(tmp_path: Path, value: str | None) -> None:
    result = _probe(tmp_path, value)
    assert result["portable"] is False
    assert result["sendfile"] is True
    assert result["msg_more"] != 0
    assert result["sock_nonblock"] != 0
    assert result["inherited_options"] is True
    assert result["reuseport"] is True
