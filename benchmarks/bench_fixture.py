#!/usr/bin/env python3
"""Hand-run benchmark: what a test pays for a function-scoped FTP server
fixture, vfsftp's ``ftp_server`` against pytest-localftpserver's
``ftpserver`` (pyftpdlib over temporary folders on disk).

    /tmp/venv7/bin/python benchmarks/bench_fixture.py            # ~1 minute
    /tmp/venv7/bin/python benchmarks/bench_fixture.py --tests 30 --rounds 50

Needs vfsftp installed (its pytest11 entry point) and the ``bench`` extra
(``pytest-localftpserver``). Three measurements, each a median over many
samples, both servers interleaved:

1. direct: the fixture's own work, outside pytest: construct and start the
   server; first login (connect, USER/PASS, QUIT) to show it really serves;
   stop it (joining its thread);
2. pytest: a generated test file of N tests, each taking the function-scoped
   fixture, run by pytest in a child process; a conftest.py measures each
   test's setup and teardown phases (``FTP_FIXTURE_SCOPE=function`` for
   pytest-localftpserver, whose default scope is the module);
3. plugin import: the time ``import <plugin module>`` adds to a pytest run
   that has the plugin installed, in a fresh interpreter that already
   imported pytest (every run of every project pays it).
"""

from __future__ import annotations

import argparse
import ftplib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Sample = dict[str, float]


REFUSED: dict[str, int] = {}


def _login(host: str, port: int, user: str, password: str, who: str) -> None:
    """Log in and out. pytest-localftpserver binds its socket in the
    fixture but listens only once its thread runs: a client that connects at
    once may be refused, so retry (bounded) and count the refusals."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with ftplib.FTP(timeout=10) as ftp:
                ftp.connect(host, port)
                ftp.login(user, password)
            return
        except ConnectionRefusedError:
            REFUSED[who] = REFUSED.get(who, 0) + 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def _vfsftp_round() -> Sample:
    from vfsftp.testing import ThreadedFTPServer

    t0 = time.perf_counter()
    server = ThreadedFTPServer().start()
    t1 = time.perf_counter()
    try:
        _login(server.host, server.port, server.user, server.password, "vfsftp")
        t2 = time.perf_counter()
    finally:
        server.stop()
    t3 = time.perf_counter()
    return {"start": t1 - t0, "first_login": t2 - t1, "stop": t3 - t2}


def _localftpserver_round() -> Sample:
    from pytest_localftpserver.servers import PytestLocalFTPServer

    t0 = time.perf_counter()
    server = PytestLocalFTPServer()
    t1 = time.perf_counter()
    try:
        data = server.get_login_data()
        _login(data["host"], data["port"], data["user"], data["passwd"], "localftpserver")
        t2 = time.perf_counter()
    finally:
        # Its server thread is not a daemon: without stop() we never exit.
        server.stop()
    t3 = time.perf_counter()
    return {"start": t1 - t0, "first_login": t2 - t1, "stop": t3 - t2}


def direct(rounds: int) -> dict[str, dict[str, float]]:
    rounds_of: dict[str, Callable[[], Sample]] = {
        "vfsftp": _vfsftp_round,
        "pytest-localftpserver": _localftpserver_round,
    }
    samples: dict[str, list[Sample]] = {name: [] for name in rounds_of}
    for one in rounds_of.values():
        one()  # warm-up: imports, first-use caches
    for _ in range(rounds):
        for name, one in rounds_of.items():
            samples[name].append(one())
    return {name: _medians(s) for name, s in samples.items()}


def _medians(samples: list[Sample]) -> dict[str, float]:
    out = {key: statistics.median(s[key] for s in samples) * 1e3 for key in samples[0]}
    out["total"] = statistics.median(sum(s.values()) for s in samples) * 1e3
    return out


_CONFTEST = """
import json, os, time
import pytest

PHASES = []

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    t = time.perf_counter()
    yield
    PHASES.append(("setup", time.perf_counter() - t))

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    t = time.perf_counter()
    yield
    PHASES.append(("teardown", time.perf_counter() - t))

def pytest_sessionfinish(session):
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(PHASES, f)
"""

_TESTS = """
import ftplib, time
import pytest

@pytest.mark.parametrize("n", range({count}))
def test_login(n, {fixture}):
    data = {fixture}.{login_data}
    for attempt in range(1000):  # see _login: pytest-localftpserver may refuse at first
        try:
            with ftplib.FTP(timeout=10) as ftp:
                ftp.connect(data["host"], data["port"])
                ftp.login(data["user"], data["passwd"])
            break
        except ConnectionRefusedError:
            time.sleep(0.001)
"""


def through_pytest(tests: int) -> dict[str, dict[str, float]]:
    runs = {
        "vfsftp": ("ftp_server", "login_data()", {}),
        "pytest-localftpserver": (
            "ftpserver",
            "get_login_data()",
            {"FTP_FIXTURE_SCOPE": "function"},
        ),
    }
    out: dict[str, dict[str, float]] = {}
    for name, (fixture, login_data, env) in runs.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "conftest.py").write_text(_CONFTEST)
            (folder / "test_fixture.py").write_text(
                textwrap.dedent(_TESTS).format(count=tests, fixture=fixture, login_data=login_data)
            )
            result_file = folder / "phases.json"
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
                cwd=folder,
                env={**os.environ, **env, "BENCH_OUT": str(result_file)},
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{name}: pytest failed\n{proc.stdout}\n{proc.stderr}")
            phases = json.loads(result_file.read_text())
        # The first test also pays for imports and session fixtures.
        setup = [t for phase, t in phases if phase == "setup"][1:]
        teardown = [t for phase, t in phases if phase == "teardown"][1:]
        out[name] = {
            "setup": statistics.median(setup) * 1e3,
            "teardown": statistics.median(teardown) * 1e3,
            "setup+teardown": statistics.median(s + t for s, t in zip(setup, teardown, strict=True))
            * 1e3,
        }
    return out


def plugin_import(repeats: int) -> dict[str, float]:
    modules = {
        "vfsftp": "vfsftp.pytest_plugin",
        "pytest-localftpserver": "pytest_localftpserver.plugin",
    }
    code = (
        "import time, importlib, pytest; t = time.perf_counter(); "
        "importlib.import_module({!r}); print(time.perf_counter() - t)"
    )
    out: dict[str, float] = {}
    for name, module in modules.items():
        times = []
        for _ in range(repeats):
            proc = subprocess.run(
                [sys.executable, "-c", code.format(module)],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            times.append(float(proc.stdout))
        out[name] = statistics.median(times) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="direct start/stop rounds")
    parser.add_argument("--tests", type=int, default=100, help="tests per pytest run")
    parser.add_argument("--imports", type=int, default=7, help="plugin import repeats")
    args = parser.parse_args()

    import pytest_localftpserver  # noqa: F401  (fail early without the bench extra)

    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "direct_ms": direct(args.rounds),
        "pytest_ms": through_pytest(args.tests),
        "plugin_import_ms": plugin_import(args.imports),
    }
    print(f"{results['when']}, Python {results['python']}, {results['machine']}")
    print(f"\n1. direct, median of {args.rounds} (ms)")
    print(f"{'':24}{'start':>10}{'1st login':>10}{'stop':>10}{'total':>10}")
    for name, m in results["direct_ms"].items():
        print(
            f"{name:24}{m['start']:10.2f}{m['first_login']:10.2f}{m['stop']:10.2f}"
            f"{m['total']:10.2f}"
        )
    print(f"\n2. function-scoped fixture in pytest, median of {args.tests - 1} tests (ms)")
    print(f"{'':24}{'setup':>10}{'teardown':>10}{'both':>10}")
    for name, m in results["pytest_ms"].items():
        print(f"{name:24}{m['setup']:10.2f}{m['teardown']:10.2f}{m['setup+teardown']:10.2f}")
    print(f"\n3. plugin module import, median of {args.imports} fresh interpreters (ms)")
    for name, ms in results["plugin_import_ms"].items():
        print(f"{name:24}{ms:10.1f}")
    print(f"\nconnections refused (server not listening yet), direct: {REFUSED or 'none'}")
    results["refused_direct"] = REFUSED
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
