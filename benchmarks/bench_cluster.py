"""A fleet on one machine: sessions/s of 1, 2 and 3 vfsftp instances with
and without the cluster store (Redis), in one run, rounds interleaved;
and what the shared state costs a transfer: STOR into a quota'd folder
(reserving ahead vs a Redis call per write), and how close three
instances stay to one user's shared download rate.

    python benchmarks/bench_cluster.py            # 3 rounds, ~5 minutes
    python benchmarks/bench_cluster.py --quick    # 1 round, small numbers

Needs redis-server and a C compiler (the load client is benchmarks/ftpload.c).
Every instance is a `vfsftp serve` process on 127.0.0.1 with its own port
over the same local folder; the client runs one ftpload per instance at
once, sharing the client threads and sessions equally, and the rate is the
sessions completed over the wall time of the slowest. Prints a markdown
table (and writes it to benchmarks/results/cluster.md).
"""

from __future__ import annotations

import argparse
import contextlib
import ftplib
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
USER, PASSWORD = "bench", "bench"
MiB = 1024 * 1024
SERVE = [sys.executable, "-m", "vfsftp", "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            if s.recv(64).startswith((b"220", b"+PONG", b"-")):
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never answered; {log}")


class Redis:
    def __init__(self, work: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("bench_cluster: needs redis-server (apt-get install redis-server)")
        self.port = free_port()
        self.log = work / "redis.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1"]  # noqa: RUF005
                + ["--save", "", "--appendonly", "no", "--dir", str(work)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port)) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Instance:
    """`vfsftp serve` on a free port over ``root``; ``cluster``: the YAML of
    a cluster section (or ""), ``quota``: a /q mount with a quota, ``rate``:
    the user's max_download_rate."""

    def __init__(
        self, work: Path, name: str, root: Path, cluster: str, quota: bool = False, rate: int = 0
    ) -> None:
        self.cfg = work / f"{name}.yaml"
        self.log = work / f"{name}.log"
        user = f"password: 'plaintext:{PASSWORD}', perms: elradfmwMT"
        if rate:
            user += f", max_download_rate: {rate}"
        for attempt in range(3):  # a probed free port may be taken before it is bound
            self.port = free_port()
            self.cfg.write_text(
                "server:\n"
                "  listen: 127.0.0.1\n"
                f"  port: {self.port}\n"
                "  max_connections: 4096\n"
                "  max_connections_per_ip: 4096\n"
                "  login_failure_delay: 0\n"
                "logging: {level: warning}\n"
                f"{cluster}"
                "mounts:\n"
                f"  /: osfs://{root}\n"
                + (
                    f"  /q: {{fs: 'osfs://{root / 'q'}', quota: {{max_bytes: 100GiB}}}}\n"
                    if quota
                    else ""
                )
                + "users:\n"
                f"  {USER}: {{{user}}}\n"
            )
            with open(self.log, "wb") as out:
                self.proc = subprocess.Popen(
                    [*SERVE, "-c", str(self.cfg), "--loop", "asyncio"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                )
            try:
                wait_port(self.port, self.proc, self.log)
                return
            except RuntimeError:
                if attempt == 2 or "already in use" not in self.log.read_text(errors="replace"):
                    raise

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def ftpload() -> Path:
    out = Path(tempfile.mkdtemp(prefix="vfsftp-ftpload-")) / "ftpload"
    subprocess.run(
        ["cc", "-O2", "-pthread", "-o", str(out), str(HERE / "ftpload.c")], check=True, timeout=120
    )
    return out


def run_load(client: Path, ports: list[int], args: list[str]) -> list[dict[str, str]]:
    """One ftpload per port, all at once; their "k=v" lines."""
    procs = [
        subprocess.Popen(
            [str(client), args[0], "127.0.0.1", str(port), USER, PASSWORD, *args[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(600)
        line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
        out = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        if proc.returncode != 0 or "ok" not in out:
            raise RuntimeError(f"ftpload failed ({proc.returncode}): {stderr[-300:]}")
        outs.append(out)
    return outs


def fleet(work: Path, root: Path, n: int, cluster: str, rate: int = 0) -> list[Instance]:
    started: list[Instance] = []
    try:
        for i in range(n):
            started.append(Instance(work, f"i{i}", root, cluster, rate=rate))
    except BaseException:
        for inst in started:  # (one failed to start: stop the others)
            inst.stop()
        raise
    return started


def sessions(client: Path, instances: list[Instance], threads: int, total: int) -> float:
    ports = [i.port for i in instances]
    n = len(ports)
    run_load(client, ports, ["sessions", "small.bin", "2", str(4 * n)])  # warm-up
    started = time.monotonic()
    outs = run_load(client, ports, ["sessions", "small.bin", str(threads // n), str(total // n)])
    wall = time.monotonic() - started
    failed = sum(int(o["fail"]) for o in outs)
    if failed:
        raise RuntimeError(f"{failed} sessions failed: {outs[0].get('first_error')}")
    return sum(int(o["ok"]) for o in outs) / wall


def stor(client: Path, instance: Instance, size: int) -> float:
    (out,) = run_load(client, [instance.port], ["stor", "q/up.bin", str(size)])
    return size / float(out["seconds"]) / 1e6


def shared_rate(instances: list[Instance], rate: int, seconds: float) -> float:
    """Three downloads, one per instance, of one user with max_download_rate
    ``rate``: their bytes over the wall time, as a share of the rate."""
    size = int(rate * seconds)
    got = [0] * len(instances)

    def fetch(i: int, inst: Instance) -> None:
        f = ftplib.FTP()
        f.connect("127.0.0.1", inst.port, timeout=60)
        f.login(USER, PASSWORD)
        f.voidcmd("TYPE I")

        def count(b: bytes) -> None:
            got[i] += len(b)

        f.retrbinary("RETR rate.bin", count, blocksize=65536)
        f.quit()

    threads = [threading.Thread(target=fetch, args=(i, x)) for i, x in enumerate(instances)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    assert sum(got) == size * len(instances), got
    return sum(got) / wall / rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=0)
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    threads, total = (6, 120) if args.quick else (30, 1500)
    stor_size = 32 * MiB if args.quick else 256 * MiB
    work = Path(tempfile.mkdtemp(prefix="vfsftp-bench-cluster-"))
    root = work / "root"
    (root / "q").mkdir(parents=True)
    (root / "small.bin").write_bytes(os.urandom(4096))
    rate = 4 * MiB
    (root / "rate.bin").write_bytes(os.urandom(int(rate * (1 if args.quick else 3))))
    redis = Redis(work)
    client = ftpload()
    table: dict[tuple[int, str], list[float]] = {}
    redis_cpu: dict[int, list[float]] = {}
    extra_rows: dict[str, list[float]] = {}
    run = 0
    try:
        for _ in range(rounds):
            for n in (1, 2, 3):
                for mode in ("local", "cluster"):
                    run += 1
                    cluster = (
                        f"cluster: {{url: '{redis.url}', prefix: run{run}}}\n"
                        if mode == "cluster"
                        else ""
                    )
                    instances = fleet(work, root, n, cluster)
                    try:
                        c0 = redis.cpu()
                        value = sessions(client, instances, threads, total)
                        if mode == "cluster":
                            redis_cpu.setdefault(n, []).append(redis.cpu() - c0)
                    finally:
                        for inst in instances:
                            inst.stop()
                    table.setdefault((n, mode), []).append(value)
                    print(f"{n} instance(s), {mode}: {value:.0f} sessions/s", flush=True)
            # What a transfer pays: STOR into a quota'd folder, in a new order
            # each round, after the last one's data is on disk (write-back of
            # 256 MiB slows whatever runs next).
            variants = [
                ("no cluster", None),
                ("cluster, reserving 4 MiB ahead (default)", ""),
                ("cluster, a Redis call per 1 MiB write (quota_reserve: 0)", ", quota_reserve: 0"),
            ]
            shift = len(extra_rows.get("order", []))
            extra_rows.setdefault("order", []).append(0.0)
            for label, options in variants[shift % 3 :] + variants[: shift % 3]:
                with contextlib.suppress(FileNotFoundError):
                    (root / "q" / "up.bin").unlink()
                os.sync()
                run += 1
                cluster = (
                    ""
                    if options is None
                    else f"cluster: {{url: '{redis.url}', prefix: q{run}{options}}}\n"
                )
                inst = Instance(work, "q", root, cluster, quota=True)
                try:
                    value = stor(client, inst, stor_size)
                finally:
                    inst.stop()
                row = f"STOR {stor_size // MiB} MiB into a quota, {label}"
                extra_rows.setdefault(row, []).append(value)
                print(f"{row}: {value:.0f} MB/s", flush=True)
            # Three instances, one user's download rate shared in Redis.
            run += 1
            rated = f"cluster: {{url: '{redis.url}', prefix: r{run}}}\n"
            instances = fleet(work, root, 3, rated, rate=rate)
            try:
                share = shared_rate(instances, rate, 1 if args.quick else 3)
            finally:
                for inst in instances:
                    inst.stop()
            row = "3 instances, one user at max_download_rate 4 MiB/s: achieved / rate"
            extra_rows.setdefault(row, []).append(share)
            print(f"{row}: {share:.3f}", flush=True)
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"`python benchmarks/bench_cluster.py{' --quick' if args.quick else ''}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {_machine()}; "
        f"{rounds} round(s), median; sessions: {threads} client threads, {total} sessions "
        "(connect, USER/PASS, PWD, TYPE I, EPSV, RETR 4 KiB, QUIT), spread evenly over the "
        "instances; Redis 7 on the same machine.",
        "",
        "| instances | sessions/s, no cluster | sessions/s, cluster (Redis) | ratio "
        "| Redis CPU per 1,000 sessions |",
        "|--:|--:|--:|--:|--:|",
    ]
    for n in (1, 2, 3):
        local = statistics.median(table[(n, "local")])
        shared = statistics.median(table[(n, "cluster")])
        cpu = statistics.median(redis_cpu[n]) / total * 1000
        lines.append(
            f"| {n} | {local:,.0f} | {shared:,.0f} | {shared / local:.2f}x | {cpu * 1000:.0f} ms |"
        )
    lines += ["", "| transfer | value |", "|---|--:|"]
    for label, values in extra_rows.items():
        if label == "order":
            continue
        unit = " MB/s" if label.startswith("STOR") else ""
        lines.append(f"| {label} | {statistics.median(values):,.3g}{unit} |")
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / ("cluster-quick.md" if args.quick else "cluster.md")).write_text(text)
    return 0


def _machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"Linux {platform.release()}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
