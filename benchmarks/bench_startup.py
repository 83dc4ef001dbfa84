#!/usr/bin/env python3
"""Hand-run benchmark: start-up time and base memory (issue 22).

    .venv/bin/python benchmarks/bench_startup.py             # ~1 minute
    .venv/bin/python benchmarks/bench_startup.py --reps 51 --rounds 5

Rows, each min / median / max over its repetitions:

- ``python -c pass``: the interpreter alone, the floor of every row below;
- ``import vfsftp.service.server``: seconds inside the interpreter
  (``time.perf_counter`` around the import), and the same import's total
  under ``-X importtime`` (which inflates it by its own bookkeeping);
- ``vfsftp --version`` and ``vfsftp check-config``: wall seconds of the
  command;
- ``vfsftp serve``: wall seconds from the start of the process to its
  "listening" line, and the idle server's RSS (``VmRSS``, with
  ``RssAnon`` / ``RssFile``) two seconds later, on a copy of the
  repository's mounts.yaml and on one local and one memory mount;
- pyftpdlib's idle RSS (``pip install pyftpdlib``; its plain server, as
  bench.py starts it) in the same rounds, the servers alternating.

Also the import's heaviest packages (median cumulative milliseconds under
``-X importtime``), to see where the time goes.

Python is run with bytecode caches written and used (PYTHONDONTWRITEBYTECODE
unset, vfsftp compiled first), as a pip-installed package runs. Times are
wall-clock and move with the machine's load: compare rows of one run, and
prefer a quiet machine; RSS and the module counts do not depend on load.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
VFSFTP = str(Path(PYTHON).with_name("vfsftp"))

_LOCAL_MEM = """\
# written by benchmarks/bench_startup.py
server:
  listen: 127.0.0.1
  port: 0
mounts:
  /scratch: mem://
  /data:
    fs: osfs://./data
    create: true
users:
  bench: {password: "plaintext:bench"}
"""

_PYFTPDLIB = """\
import sys
sys.modules["OpenSSL"] = None  # as bench.py: the plain server never uses it
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
authorizer = DummyAuthorizer()
authorizer.add_user("bench", "bench", sys.argv[1], perm="elradfmwMT")
FTPHandler.authorizer = authorizer
server = FTPServer(("127.0.0.1", 0), FTPHandler)
print("listening", flush=True)
server.serve_forever()
"""

#: packages whose import time is shown (cumulative, as imported first)
_PACKAGES = ("asyncio", "pydantic", "yaml", "fs", "ssl", "vfsftp.config.schema")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def _wall(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=_env(), check=True, capture_output=True, timeout=60)
    return time.perf_counter() - start


def _import_seconds(cwd: Path) -> float:
    code = (
        "import time; t = time.perf_counter(); import vfsftp.service.server; "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [PYTHON, "-c", code], cwd=cwd, env=_env(), check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip())


def _importtime(cwd: Path) -> dict[str, float]:
    """Cumulative ms of each module under -X importtime, for one import."""
    out = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", "import vfsftp.service.server"],
        cwd=cwd,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    cumulative: dict[str, float] = {}
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if m:
            cumulative.setdefault(m[2], int(m[1]) / 1000)
    return cumulative


def _status(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0])
    return fields


def _idle_server(
    argv: list[str], cwd: Path, ready: Callable[[str], bool], settle: float
) -> tuple[float, dict[str, int]]:
    """Starts a server, waits for its ready line (stderr and stdout go to a
    file), then ``settle`` seconds; (seconds to ready, its /proc status)."""
    log = cwd / "server.log"
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = start + 30
        while not ready(log.read_text()):
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"{argv[0]} did not start: {log.read_text()[-500:]}")
            time.sleep(0.002)
        started = time.perf_counter() - start
        time.sleep(settle)
        return started, _status(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def _row(name: str, values: Sequence[float], unit: str, fmt: str = "{:.3f}") -> str:
    lo, mid, hi = _stats(values)
    return f"| {name} | {fmt.format(lo)} | {fmt.format(mid)} | {fmt.format(hi)} | {unit} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=21, help="runs of each timed row (21)")
    parser.add_argument("--rounds", type=int, default=3, help="idle servers started (3)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before RSS (2)")
    args = parser.parse_args(argv)

    compileall.compile_dir(str(REPO / "vfsftp"), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="vfsftp-bench-startup-"))
    try:
        repo_cfg = work / "repo"
        repo_cfg.mkdir()
        shutil.copy(REPO / "mounts.yaml", repo_cfg / "mounts.yaml")
        local_mem = work / "local-mem"
        local_mem.mkdir()
        (local_mem / "mounts.yaml").write_text(_LOCAL_MEM)
        pyftpd_home = work / "pyftpdlib"
        pyftpd_home.mkdir()
        try:
            import pyftpdlib  # type: ignore[import-untyped]  # noqa: F401

            have_pyftpdlib = True
        except ImportError:
            have_pyftpdlib = False

        rows: dict[str, list[float]] = {}
        importtime: dict[str, list[float]] = {}
        for _ in range(args.reps):  # the rows interleaved, rep by rep
            rows.setdefault("python -c pass", []).append(_wall([PYTHON, "-c", "pass"], work))
            rows.setdefault("import vfsftp.service.server", []).append(_import_seconds(work))
            cumulative = _importtime(work)
            rows.setdefault("  the same, -X importtime", []).append(
                cumulative["vfsftp.service.server"] / 1000
            )
            for package in _PACKAGES:
                importtime.setdefault(package, []).append(cumulative.get(package, 0.0))
            rows.setdefault("vfsftp --version", []).append(_wall([VFSFTP, "--version"], work))
            rows.setdefault("vfsftp check-config (local+mem)", []).append(
                _wall([VFSFTP, "check-config", "mounts.yaml"], local_mem)
            )

        def listening(text: str) -> bool:
            return "listening on " in text

        servers: dict[str, tuple[list[str], Path, Callable[[str], bool]]] = {
            "vfsftp serve, repo mounts.yaml": (
                [VFSFTP, "serve", "-c", "mounts.yaml", "--port", "0"],
                repo_cfg,
                listening,
            ),
            "vfsftp serve, local+mem": (
                [VFSFTP, "serve", "-c", "mounts.yaml"],
                local_mem,
                listening,
            ),
        }
        if have_pyftpdlib:
            servers["pyftpdlib"] = (
                [PYTHON, "-c", _PYFTPDLIB, str(pyftpd_home)],
                pyftpd_home,
                lambda text: "listening" in text,
            )
        started: dict[str, list[float]] = {}
        rss: dict[str, list[dict[str, int]]] = {}
        for _ in range(args.rounds):
            for name, (cmd, cwd, ready) in servers.items():
                seconds, status = _idle_server(cmd, cwd, ready, args.settle)
                started.setdefault(name, []).append(seconds)
                rss.setdefault(name, []).append(status)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"python {sys.version.split()[0]}; {args.reps} runs per timed row, ", end="")
    print(f"{args.rounds} idle servers of each kind; load average {os.getloadavg()[0]:.2f}\n")
    print("| row | min | median | max | unit |")
    print("|---|---:|---:|---:|---|")
    for name, values in rows.items():
        print(_row(name, values, "s"))
    for name, values in started.items():
        print(_row(f"{name}: start to listening", values, "s"))
    for name, statuses in rss.items():
        for key in ("VmRSS", "RssAnon", "RssFile"):
            label = f"{name}: idle {key}" if key == "VmRSS" else f"  {key}"
            print(_row(label, [s[key] / 1024 for s in statuses], "MB", "{:.1f}"))
    if not have_pyftpdlib:
        print("\n(pyftpdlib not installed: pip install pyftpdlib==2.2.0 for its row)")
    print("\nImport of vfsftp.service.server, cumulative ms of packages (median, -X importtime):\n")
    for package, values in importtime.items():
        print(f"- {package}: {statistics.median(values):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
