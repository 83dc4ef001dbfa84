"""The code stays lint-clean, type-checked and layered: ruff (lint and
format) on the whole tree, mypy --strict on the package, import-linter's
contracts (the layers and no import cycles; settings in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=280
    )


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff not installed")
def test_ruff_lint() -> None:
    r = _run("ruff", "check", "vfsftp", "tests", "benchmarks")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff not installed")
def test_ruff_format() -> None:
    r = _run("ruff", "format", "--check", "vfsftp", "tests", "benchmarks")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.timeout(300)
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed")
def test_mypy_strict() -> None:
    r = _run("mypy", "vfsftp")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(importlib.util.find_spec("importlinter") is None, reason="not installed")
def test_imports_follow_the_layers() -> None:
    """protocol <- config <- ops <- storage <- identity <- session <- service
    <- cli: nothing imports a layer above its own, type-only imports
    included, and no package's modules import each other in a circle."""
    r = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_no_task_bound_timeouts_in_session_code() -> None:
    """eager.start runs a command's first step outside any Task; from Python
    3.12 asyncio.wait_for and asyncio.timeout need one ("Timeout should be
    used inside a task": PORT/EPRT were broken so), and inside another
    Task's step they would cancel that Task. Session code times out with a
    timer and a future (data.connect_active, PassiveListener.accept).
    metrics.py's HTTP handler runs in a Task of its own (start_server)."""
    allowed = {"ops/metrics.py"}
    pattern = re.compile(r"asyncio\.(wait_for|timeout|timeout_at)\(")
    offenders = [
        f"{path}:{n}: {line.strip()}"
        for path in sorted((REPO / "vfsftp").rglob("*.py"))
        if path.relative_to(REPO / "vfsftp").as_posix() not in allowed
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line.split("#", 1)[0])
    ]
    assert not offenders, offenders
