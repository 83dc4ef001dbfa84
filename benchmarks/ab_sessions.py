"""Sessions A/B: the c_sessions workload on several servers (or several
vfsftp source trees), alternating for many rounds; medians of the server's
user and system CPU per session and of sessions/s.

The median of many alternating rounds, and CPU per session split into
user and system time, tell a change from noise. Servers and clients are
pinned to different CPUs as in bench.py.
Run by hand:

    python benchmarks/ab_sessions.py --rounds 6 vfsftp-osfs pyftpdlib vfsftp-mem
    python benchmarks/ab_sessions.py before=/path/to/old/checkout now=.

A server is a bench.py target, or NAME=TREE (vfsftp from that source tree,
on a local folder; NAME@TARGET=TREE for another target).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench


@dataclass
class Arm:
    name: str
    target: str
    tree: Path
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # user, sys, /s


def parse_arm(spec: str) -> Arm:
    if "=" not in spec:
        if spec not in bench.TARGETS or spec == "vsftpd":
            raise SystemExit(f"unknown server {spec!r}: one of {', '.join(bench.TARGETS)}")
        return Arm(spec, spec, bench.REPO)
    name, tree = spec.split("=", 1)
    target = "vfsftp-osfs"
    if "@" in name:
        name, target = name.split("@", 1)
    return Arm(name, target, Path(tree).resolve())


def sample(arm: Arm, workdir: Path, clients: int, sessions: int) -> tuple[float, float, float]:
    bench.REPO = arm.tree  # the vfsftp source the server process runs
    srv = bench.ServerProcess(arm.target, workdir, None, tag="ab").start()
    try:
        bench.make_file(srv, "small.bin", 4096)
        bench.run_ftpload(srv, "sessions", "small.bin", "5", "20")  # warm-up
        u0, s0 = srv.cpu_split()
        out = bench.run_ftpload(srv, "sessions", "small.bin", str(clients), str(sessions))
        u1, s1 = srv.cpu_split()
    finally:
        srv.stop()
    ok = int(out["ok"])
    if ok != sessions:
        raise RuntimeError(f"{arm.name}: {sessions - ok} sessions failed: {out.get('first_error')}")
    return (u1 - u0) / ok * 1000, (s1 - s0) / ok * 1000, ok / float(out["seconds"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("servers", nargs="+", metavar="SERVER")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--sessions", type=int, default=2000)
    p.add_argument("--no-pin", action="store_true", help="servers and clients share every core")
    args = p.parse_args(argv)
    arms = [parse_arm(s) for s in args.servers]
    bench.PIN = bench.Pinning.plan(not args.no_pin)
    bench.PIN.pin_self()  # the clients; ServerProcess pins each server
    print(f"pinning: {bench.PIN.describe()}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="vfsftp-ab-"))
    try:
        for rnd in range(args.rounds):
            order = arms if rnd % 2 == 0 else arms[::-1]  # nobody always goes first
            for arm in order:
                user, system, rate = sample(
                    arm, base / f"{arm.name}-{rnd}", args.clients, args.sessions
                )
                arm.samples.append((user, system, rate))
                print(
                    f"r{rnd + 1} {arm.name:<14} user {user:.3f} sys {system:.3f} ms/session,"
                    f" {rate:,.0f} sessions/s",
                    flush=True,
                )
    finally:
        bench._kill_everything()
    print(
        f"\nmedians of {args.rounds} rounds"
        f" ({args.sessions:,} sessions, {args.clients} clients each):"
    )
    print("| server | user ms/session | system ms/session | CPU ms/session | sessions/s |")
    print("|---|--:|--:|--:|--:|")
    for arm in arms:
        user, system, rate = (statistics.median(s[i] for s in arm.samples) for i in range(3))
        cpu = statistics.median(s[0] + s[1] for s in arm.samples)
        print(f"| {arm.name} | {user:.3f} | {system:.3f} | {cpu:.3f} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
