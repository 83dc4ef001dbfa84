#!/usr/bin/env python3
"""Hand-run benchmark: logins/s with users from mounts.yaml, from a SQLite
users store and from a PostgreSQL one, in the same run.

    .venv/bin/python benchmarks/bench_users.py              # ~3 minutes
    .venv/bin/python benchmarks/bench_users.py --rounds 5 --clients 16

Needs the test extra (psycopg) and PostgreSQL's server binaries (Debian's
``postgresql``: the test fixture's ``PostgresServer`` starts one on a free
loopback port, as ``nobody`` when run as root).

Each source is served by its own ``vfsftp serve`` process on 127.0.0.1
(asyncio's own loop); ``--clients`` threads of this process log in and out
over raw sockets (connect, USER, PASS, QUIT, each reply read) until
``--logins`` logins have succeeded; best of ``--rounds``, the sources
interleaved. Two passwords per source:

- ``argon2``: the hash ``vfsftp users add`` (and ``hash-password``)
  stores, argon2-cffi's defaults (RFC 9106's second profile: 64 MiB,
  t=3, p=4): what a real login costs;
- ``plaintext:``: no hash check at all, so what remains is the login's own
  work: for the stores, one SELECT by primary key in a worker thread, the
  row compared with the one validated at the last login, the tree reused.

Server CPU per login is utime+stime of the vfsftp process (all threads);
PostgreSQL's own processes are not counted.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

CLK_TCK = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-password"


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reply(f: Any) -> str:
    line: str = f.readline().decode()
    code = line[:3]
    while line[3:4] == "-":
        line = f.readline().decode()
        if line[:3] == code and line[3:4] == " ":
            break
    return code


def _one_login(port: int, user: str, password: str) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        f = sock.makefile("rb")
        try:
            if _reply(f) != "220":
                return False
            sock.sendall(f"USER {user}\r\n".encode())
            if _reply(f) != "331":
                return False
            sock.sendall(f"PASS {password}\r\n".encode())
            ok = _reply(f) == "230"
            sock.sendall(b"QUIT\r\n")
            _reply(f)
            return ok
        finally:
            f.close()


class Server:
    """``vfsftp serve -c CONFIG`` in a child process."""

    def __init__(self, config: Path) -> None:
        self.port = _free_port()
        self.log = config.with_suffix(".log")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "vfsftp",
                    "serve",
                    "-c",
                    str(config),
                    "--port",
                    str(self.port),
                    "--loop",
                    "asyncio",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {self.log.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def measure(
    server: Server, user: str, password: str, logins: int, clients: int
) -> dict[str, float]:
    done = 0
    failed = 0
    lock = threading.Lock()

    def client() -> None:
        nonlocal done, failed
        while True:
            with lock:
                if done >= logins or failed > 10:
                    return
            ok = _one_login(server.port, user, password)
            with lock:
                if ok:
                    done += 1
                else:
                    failed += 1

    _one_login(server.port, user, password)  # the first login builds the user's tree
    cpu0, t0 = _cpu(server.proc.pid), time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    cpu = _cpu(server.proc.pid) - cpu0
    if failed:
        raise RuntimeError(f"{failed} failed logins as {user}: see {server.log}")
    return {"logins_per_s": done / seconds, "cpu_ms": 1000 * cpu / done}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--logins", type=int, default=60, help="argon2 logins per sample")
    parser.add_argument(
        "--plain-logins", type=int, default=2000, help="plaintext: logins per sample"
    )
    args = parser.parse_args()

    from pg_fixtures import PostgresServer, find_binaries

    from vfsftp.config.schema import config_from_dict
    from vfsftp.identity.auth import hash_password
    from vfsftp.identity.store import StoredUser
    from vfsftp.identity.stored import open_store

    bins = find_binaries()
    if bins is None:
        print("no PostgreSQL binaries (apt-get install postgresql)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="vfsftp-bench-users-"))
    pg = PostgresServer(bins).start()
    servers: dict[str, Server] = {}
    try:
        hashed = hash_password(PASSWORD)
        users = {
            "argon2": {"password": hashed},
            "plain": {"password": f"plaintext:{PASSWORD}"},
        }
        pg_url = pg.url(pg.create_database())
        stores = {"sqlite": f"sqlite:///{work / 'users.db'}", "postgresql": pg_url}
        for url in stores.values():
            spec = config_from_dict({"users_store": url}).users_store
            assert spec is not None
            store = open_store(spec)
            try:
                for name, keys in users.items():
                    store.add(StoredUser(name, keys["password"], settings={"perms": "elr"}))
            finally:
                store.close()
        base = "logging: {level: warning}\nmounts:\n  /: mem://\nserver: {ban: null}\n"
        configs = {
            "mounts.yaml": base
            + "users:\n"
            + "".join(
                f"  {n}: {{password: '{k['password']}', perms: elr}}\n" for n, k in users.items()
            ),
            "SQLite store": base + f"users_store: {stores['sqlite']}\n",
            "PostgreSQL store": base + f"users_store: {stores['postgresql']}\n",
        }
        for label, text in configs.items():
            path = work / f"{label.split()[0].lower().replace('.', '_')}.yaml"
            path.write_text(text, encoding="utf-8")
            servers[label] = Server(path)

        best: dict[tuple[str, str], dict[str, float]] = {}
        for round_no in range(args.rounds):
            for kind, count in (("argon2", args.logins), ("plain", args.plain_logins)):
                for label, server in servers.items():
                    sample = measure(server, kind, PASSWORD, count, args.clients)
                    print(
                        f"round {round_no + 1} {kind:6} {label:17} "
                        f"{sample['logins_per_s']:8.1f} logins/s  {sample['cpu_ms']:6.2f} ms CPU",
                        flush=True,
                    )
                    key = (kind, label)
                    if key not in best or sample["logins_per_s"] > best[key]["logins_per_s"]:
                        best[key] = sample

        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cpu = _cpu_model()
        print()
        print(
            f"{now}, {platform.python_implementation()} {platform.python_version()}, "
            f"{cpu}, {os.cpu_count()} cores, {args.clients} clients, best of {args.rounds}"
        )
        print()
        print(
            "| users from | argon2 logins/s | server CPU per login "
            "| plaintext: logins/s | server CPU per login |"
        )
        print("|---|--:|--:|--:|--:|")
        for label in servers:
            a, p = best[("argon2", label)], best[("plain", label)]
            print(
                f"| {label} | {a['logins_per_s']:,.1f} | {a['cpu_ms']:.1f} ms | "
                f"{p['logins_per_s']:,.0f} | {p['cpu_ms']:.2f} ms |"
            )
    finally:
        for server in servers.values():
            server.stop()
        pg.close()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


if __name__ == "__main__":
    sys.exit(main())
