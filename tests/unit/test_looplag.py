"""benchmarks/looplag: a process started with it on its path writes each
loop callback and collection longer than the threshold, and nothing
without VFSFTP_LOOPLAG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "benchmarks" / "looplag"

_PROGRAM = """
import asyncio, time
def held():
    time.sleep(0.03)  # a callback that holds the loop
async def main():
    asyncio.get_running_loop().call_soon(held)
    await asyncio.sleep(0.05)
asyncio.run(main())
"""


def _run(tmp_path: Path, **env: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VFSFTP_LOOPLAG")}
    environ.update(env, PYTHONPATH=str(TOOL))
    subprocess.run(
        [sys.executable, "-c", _PROGRAM], env=environ, check=True, timeout=30, cwd=tmp_path
    )


def test_a_slow_callback_is_written_with_its_length(tmp_path: Path) -> None:
    prefix = tmp_path / "lag"
    _run(tmp_path, VFSFTP_LOOPLAG=str(prefix), VFSFTP_LOOPLAG_MS="20")
    (written,) = tmp_path.glob("lag.*")
    lines = written.read_text().splitlines()
    assert lines[0].startswith("argv ")
    slow = [line for line in lines[1:] if "held" in line]
    assert len(slow) == 1, lines
    millis = float(slow[0].split()[1].removesuffix("ms"))
    assert 25 <= millis < 1000
    # The 50 ms sleep is a timer, not a callback: nothing else held the loop.
    assert all("held" in line or " GC gen" in line for line in lines[1:]), lines


def test_without_the_variable_nothing_is_written(tmp_path: Path) -> None:
    _run(tmp_path)
    assert list(tmp_path.iterdir()) == []
