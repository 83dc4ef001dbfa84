#!/usr/bin/env python3
"""Hand-run benchmark: what the in-stream upload checksum costs. STOR of a
large file with ``server.hash.upload: SHA-256`` (the default: every byte
hashed as it is stored) against ``none``, on a local folder and on
``mem://``, servers interleaved in one run.

    /tmp/venv/bin/python benchmarks/bench_checksums.py             # ~3 minutes
    /tmp/venv/bin/python benchmarks/bench_checksums.py --size 128 --rounds 3

Each sample is a fresh server process (bench.py's ServerProcess, asyncio's
own loop) and ``benchmarks/ftpload.c`` storing ``--size`` MiB, timed from
the STOR to the 226; the server's CPU seconds (all threads) are read from
/proc around it. Rounds alternate which setting goes first. Reported: the
best MB/s and the median server CPU per GiB of each pair, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # (bench.py beside this file)
    GiB,
    MiB,
    ServerProcess,
    machine_info,
    run_ftpload,
    vfsftp_fingerprint,
    wait_quiet,
)

TARGETS = ("vfsftp-osfs", "vfsftp-mem")
SETTINGS = ("SHA-256", "none")


class ChecksumServer(ServerProcess):
    """bench.py's vfsftp server with ``server.hash.upload`` set."""

    def __init__(self, target: str, workdir: Path, upload: str) -> None:
        super().__init__(target, workdir, tag=upload)
        self.upload = upload

    def _command(self) -> list[str]:
        cmd = super()._command()
        cfg = self.workdir / "mounts.yaml"
        text = cfg.read_text()
        cfg.write_text(
            text.replace("server:\n", f"server:\n  hash: {{upload: {self.upload}}}\n", 1)
        )
        return cmd


def sample(target: str, upload: str, base: Path, size: int, name: str) -> tuple[float, float]:
    """(MB/s, server CPU s/GiB) of one STOR of ``size`` bytes."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    srv = ChecksumServer(target, workdir, upload).start()
    try:
        run_ftpload(srv, "stor", "warm.bin", str(4 * MiB))  # first-use costs out of the way
        c0 = srv.cpu()
        out = run_ftpload(srv, "stor", "up.bin", str(size))
        cpu = srv.cpu() - c0
        srv.check_alive()
    finally:
        srv.stop()
    if out["ok"] != "1":
        raise RuntimeError(f"STOR failed: {out.get('first_error')}")
    return size / float(out["seconds"]) / 1e6, cpu / (size / GiB)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="MiB per STOR (default 512)")
    parser.add_argument("--rounds", type=int, default=5, help="samples per pair (default 5)")
    parser.add_argument("--wait-quiet", type=float, default=10.0, help="seconds, per sample")
    args = parser.parse_args(argv)
    size = args.size * MiB
    info = machine_info()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    base = Path(tempfile.mkdtemp(prefix="vfsftp-bench-sums-"))
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for rnd in range(args.rounds):
        for target in TARGETS:
            order = SETTINGS if rnd % 2 == 0 else tuple(reversed(SETTINGS))
            for upload in order:
                if args.wait_quiet > 0:
                    wait_quiet(args.wait_quiet)
                mbps, cpu = sample(target, upload, base, size, f"{target}-{upload}-{rnd}")
                rows.setdefault((target, upload), []).append((mbps, cpu))
                print(
                    f"r{rnd + 1} {target:<12} upload={upload:<8} {mbps:8,.0f} MB/s "
                    f"{cpu:6.2f} s/GiB",
                    flush=True,
                )
    print()
    print(f"`python benchmarks/bench_checksums.py --size {args.size} --rounds {args.rounds}`,")
    print(
        f"commit {info['vfsftp commit']} ({vfsftp_fingerprint()}), {started}, "
        f"{info['cores']}-core {info['cpu']}, Python {info['python']}, {info['kernel']}:"
    )
    print()
    print(
        "| mount | STOR, `hash.upload: SHA-256` | STOR, `none` | ratio "
        "| server CPU s/GiB, SHA-256 | none |"
    )
    print("|---|--:|--:|--:|--:|--:|")
    for target in TARGETS:
        on, off = rows[(target, "SHA-256")], rows[(target, "none")]
        best_on, best_off = max(m for m, _ in on), max(m for m, _ in off)
        cpu_on = statistics.median(c for _, c in on)
        cpu_off = statistics.median(c for _, c in off)
        print(
            f"| {target.removeprefix('vfsftp-')} | {best_on:,.0f} MB/s | {best_off:,.0f} MB/s "
            f"| {best_on / best_off:.2f}x | {cpu_on:.2f} | {cpu_off:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
