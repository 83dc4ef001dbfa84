#!/usr/bin/env python3
"""Hand-run load test: 500 concurrent sessions, 100 of which vanish mid-transfer.

    /tmp/venv/bin/python benchmarks/load.py                  # 500 sessions, 100 abrupt
    /tmp/venv/bin/python benchmarks/load.py --sessions 100 --abrupt 20 --rounds 1

The server runs as its own process (``python -m vfsftp serve``) over an
osfs:// mount of a temp folder, so that "no partial file" is checked both
through FTP and on the disk itself. Each session logs in, opens an EPSV data
connection and uploads (odd sessions) or downloads (even ones) 1 MiB; the
abrupt ones reset both connections (TCP RST) halfway through their
transfer. All sessions of a round run at once.

Checked after every round, and printed:
- every normal session finished with 226 and the right bytes;
- the server's session count went back to zero (a fresh login works, and
  the per-address limit, set to the session count, admits a full round
  again in the next round);
- no upload of an abrupt session is visible (LIST through FTP, and no file,
  temporary or not, on disk);
- the server's RSS before, at the peak, and after the round settled; after
  the last round it must be within 20 MiB of the first round's "after"
  (memory returns to its baseline rather than growing per round).

Exit status 0 when every check passed. Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
USER, PASSWORD = "load", "load"
SIZE = 1 << 20
MiB = 1 << 20
REPO = Path(__file__).resolve().parent.parent
PAYLOAD = bytes(range(256)) * (SIZE // 256)


@dataclass
class Outcome:
    index: int
    kind: str  # "stor" | "retr"
    abrupt: bool
    ok: bool
    detail: str = ""


class Server:
    """``vfsftp serve`` in a subprocess over an osfs:// folder."""

    def __init__(self, root: Path, sessions: int) -> None:
        self.root = root
        config = root.parent / "load.yaml"
        config.write_text(
            "server:\n"
            f"  listen: {HOST}\n"
            "  port: 0\n"
            f"  max_connections: {sessions + 50}\n"
            f"  max_connections_per_ip: {sessions + 10}\n"
            "  data_timeout: 30\n"
            "  stall_timeout: 30\n"
            "logging:\n  level: info\n"
            f"mounts:\n  /: osfs://{root}\n"
            f"users:\n  {USER}:\n    password: plaintext:{PASSWORD}\n"
        )
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vfsftp", "serve", "-c", str(config)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        self.port = 0
        while not self.port:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
        # Keep reading the session log so that the pipe never fills up.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def rss(self) -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        m = re.search(r"VmRSS:\s+(\d+) kB", text)
        assert m is not None
        return int(m.group(1)) * 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _reply(reader: asyncio.StreamReader) -> str:
    line = (await reader.readline()).decode()
    if not line:
        raise ConnectionError("control connection closed")
    if line[3:4] == "-":  # multi-line: read to "ddd "
        while True:
            more = (await reader.readline()).decode()
            if not more:
                raise ConnectionError("control connection closed")
            if more[:3] == line[:3] and more[3:4] == " ":
                return more
    return line


async def _cmd(r: asyncio.StreamReader, w: asyncio.StreamWriter, line: str, want: str) -> str:
    w.write(line.encode() + b"\r\n")
    reply = await _reply(r)
    if not reply.startswith(want):
        raise RuntimeError(f"{line.split()[0]}: {reply.strip()}")
    return reply


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _session(port: int, index: int, abrupt: bool) -> Outcome:
    kind = "stor" if index % 2 else "retr"
    out = Outcome(index, kind, abrupt, ok=False)
    r, w = await asyncio.open_connection(HOST, port)
    dw: asyncio.StreamWriter | None = None
    try:
        await _reply(r)  # 220
        await _cmd(r, w, f"USER {USER}", "331")
        await _cmd(r, w, f"PASS {PASSWORD}", "230")
        await _cmd(r, w, "TYPE I", "200")
        epsv = await _cmd(r, w, "EPSV", "229")
        m = re.search(r"\|\|\|(\d+)\|", epsv)
        assert m is not None
        dr, dw = await asyncio.open_connection(HOST, int(m.group(1)))
        if kind == "stor":
            await _cmd(r, w, f"STOR up-{index}", "150")
            half = SIZE // 2
            for start in range(0, SIZE, 64 * 1024):
                dw.write(PAYLOAD[start : start + 64 * 1024])
                await dw.drain()
                if abrupt and start >= half:
                    _reset(dw)
                    _reset(w)
                    out.ok, out.detail = True, "reset mid-upload"
                    return out
            dw.close()
            await dw.wait_closed()
        else:
            await _cmd(r, w, "RETR big", "150")
            got = 0
            while True:
                chunk = await dr.read(64 * 1024)
                if not chunk:
                    break
                got += len(chunk)
                if abrupt and got >= SIZE // 2:
                    _reset(dw)
                    _reset(w)
                    out.ok, out.detail = True, "reset mid-download"
                    return out
            dw.close()
            if got != SIZE:
                out.detail = f"got {got} bytes"
                return out
        done = await _reply(r)
        if not done.startswith("226"):
            out.detail = done.strip()
            return out
        await _cmd(r, w, "QUIT", "221")
        out.ok = True
        return out
    except Exception as exc:
        out.detail = f"{type(exc).__name__}: {exc}"
        return out
    finally:
        if not w.transport.is_closing():
            w.close()
        if dw is not None and not dw.transport.is_closing():
            dw.close()


async def _listing(port: int) -> list[str]:
    r, w = await asyncio.open_connection(HOST, port)
    await _reply(r)
    await _cmd(r, w, f"USER {USER}", "331")
    await _cmd(r, w, f"PASS {PASSWORD}", "230")
    epsv = await _cmd(r, w, "EPSV", "229")
    m = re.search(r"\|\|\|(\d+)\|", epsv)
    assert m is not None
    dr, dw = await asyncio.open_connection(HOST, int(m.group(1)))
    await _cmd(r, w, "NLST", "150")
    names = (await dr.read()).decode().split("\r\n")
    dw.close()
    await _reply(r)
    await _cmd(r, w, "QUIT", "221")
    w.close()
    return [n for n in names if n]


async def _round(server: Server, sessions: int, abrupt: int) -> tuple[list[Outcome], int]:
    # Abrupt sessions spread evenly over uploads and downloads.
    step = max(1, sessions // max(1, abrupt))
    abrupt_set = set(range(0, sessions, step)[:abrupt])
    peak = server.rss()
    tasks = [
        asyncio.create_task(_session(server.port, i, i in abrupt_set)) for i in range(sessions)
    ]
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.2)
        peak = max(peak, server.rss())
    return [t.result() for t in tasks], peak


async def _settled(server: Server, timeout: float = 60) -> bool:
    """The server has dropped every session: a probe login succeeds and the
    disk holds no temporary upload."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leftovers = [p for p in server.root.iterdir() if p.name.startswith(".")]
        if not leftovers:
            return True
        await asyncio.sleep(0.1)
    return False


async def main_async(args: argparse.Namespace) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="vfsftp-load-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        (root / "big").write_bytes(PAYLOAD)
        server = Server(root, args.sessions)
        try:
            await asyncio.sleep(0.5)
            baseline_after: int | None = None
            print(
                f"{args.sessions} sessions per round, {args.abrupt} reset mid-transfer, "
                f"{SIZE // MiB} MiB each; server pid {server.proc.pid}"
            )
            print(
                f"{'round':>5} {'ok':>5} {'failed':>6} {'secs':>6} "
                f"{'rss before':>11} {'rss peak':>9} {'rss after':>10}"
            )
            for n in range(1, args.rounds + 1):
                for p in root.iterdir():
                    if p.name.startswith("up-"):
                        p.unlink()
                before = server.rss()
                started = time.monotonic()
                outcomes, peak = await _round(server, args.sessions, args.abrupt)
                secs = time.monotonic() - started
                bad = [o for o in outcomes if not o.ok]
                settled = await _settled(server)
                names = await _listing(server.port)
                after = server.rss()
                print(
                    f"{n:>5} {len(outcomes) - len(bad):>5} {len(bad):>6} {secs:>6.1f} "
                    f"{before / MiB:>9.1f}Mi {peak / MiB:>7.1f}Mi {after / MiB:>8.1f}Mi"
                )
                for o in bad[:10]:
                    print(f"   session {o.index} ({o.kind}, abrupt={o.abrupt}): {o.detail}")
                failures += len(bad)
                # No partial upload: aborted uploads are absent, complete ones
                # are whole, nothing temporary is left on disk.
                aborted = {f"up-{o.index}" for o in outcomes if o.abrupt and o.kind == "stor"}
                complete = {f"up-{o.index}" for o in outcomes if not o.abrupt and o.kind == "stor"}
                visible = {n for n in names if n.startswith("up-")}
                on_disk = {p.name for p in root.iterdir() if p.name != "big"}
                if visible & aborted or on_disk & aborted:
                    print(f"   PARTIAL FILES VISIBLE: {sorted(visible & aborted)[:5]}")
                    failures += 1
                if visible != complete or on_disk != complete:
                    print(f"   listing mismatch: {len(visible)} visible, {len(complete)} expected")
                    failures += 1
                wrong = [name for name in complete if (root / name).read_bytes() != PAYLOAD]
                if wrong:
                    print(f"   corrupt uploads: {wrong[:5]}")
                    failures += 1
                if not settled:
                    print("   temporary upload files left on disk")
                    failures += 1
                if baseline_after is None:
                    baseline_after = after
            assert baseline_after is not None
            growth = server.rss() - baseline_after
            verdict = "ok" if growth <= 20 * MiB else "GREW"
            print(f"RSS growth from round 1 to the end: {growth / MiB:+.1f} MiB ({verdict})")
            if growth > 20 * MiB:
                failures += 1
            if server.proc.poll() is not None:
                print("the server died")
                failures += 1
        finally:
            server.stop()
    print("PASS" if not failures else f"FAIL ({failures})")
    return 0 if not failures else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--abrupt", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
