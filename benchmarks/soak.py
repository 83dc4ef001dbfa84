#!/usr/bin/env python3
"""A soak under faults: a real vfsftp under load while its clients die, its
storage fails and it is reloaded and restarted, then proof that nothing was
lost. Run by hand (not a unit test); ``--quick`` is the CI variant.

    .venv/bin/python benchmarks/soak.py                     # 3 minutes, 500 sessions at peak
    .venv/bin/python benchmarks/soak.py --quick             # 45 s, scaled to the machine
    .venv/bin/python benchmarks/soak.py --quick --workers 2
    .venv/bin/python benchmarks/soak.py --minutes 10 --sessions 200 --keep

What runs (all on 127.0.0.1, in a temporary folder):

- ``vfsftp serve`` as a subprocess (``--workers 1`` or ``2``) with a fixed
  passive range of 50 ports, explicit FTPS (a trustme certificate), a
  metrics endpoint, a JSON transfer log, and the mounts ``/mem``
  (``mem://``, with a quota; not with ``--workers 2``, which refuses
  in-memory mounts), ``/local`` (a local folder behind
  ``faulty+osfs://``, with a quota: vfsftp.storage.faults), ``/s3`` (a bucket on a
  moto server, its own subprocess) and ``/probe`` (a local folder for the
  latency probe when there is no ``/mem``);
- client processes, each a few threads of ``ftplib`` sessions (plain or
  ``PROT P``): login, then a random mix of LIST/MLSD, RETR (some with
  REST), STOR (0 bytes to ``--max-size``, some with REST), APPE, RNFR/RNTO
  (also across mounts), DELE, MKD/RMD, NOOP, QUIT, on paths each client
  owns; plus curl processes (plain and ``--ssl-reqd``) and a latency
  probe (NOOP and LIST on ``/mem``, or ``/probe``).

Faults, on a timeline through the run: a fifth of the client processes
SIGKILLed while they transfer; clients that stop reading a download and
that stop sending an upload; ``/local`` writes failing with ENOSPC, then
with EIO (writes, opens, reads, renames, listings...: the control file of
``faulty+osfs``); a SIGHUP reload; moto SIGKILLed and restarted (a new,
empty store: what the server had there is gone, and the harness expects
exactly that); a graceful SIGTERM and a restart.

Invariants, checked at the end and printed as a table; the exit status is 1
when one is broken (2: the harness itself failed):

1. every upload answered 226 is there, whole and byte-identical (the
   harness replays every operation its clients logged against a model of
   each path: what may be there now); every upload without a 226 left the
   old content or nothing (a killed client's upload may be whole, never
   partial); every download answered 226 got the bytes the model allows;
2. no temporary upload file (``/local`` on disk, ``/mem`` by an RMD of every
   folder, S3 keys), no pending multipart upload, quota usage (metrics)
   equal to a fresh scan (``--workers 1``; per-worker accounts are
   approximate by design);
3. server memory within 10% of its level before the load (after a warm-up
   that grows what the load will grow; both levels once the server's idle
   worker threads have ended), file descriptors and asyncio tasks back to
   their baseline;
4. no ERROR or traceback in the server log but the injected faults, and
   each injected fault answered with its reply (ENOSPC 452, EIO 451, S3
   unreachable 451, shutdown 421, stall 426);
5. transfer log, metrics and clients agree (transfers ended ok and not ok,
   bytes of the ok ones);
6. a client that broke no rule, on a mount with no fault at the time, got
   what it asked for (no 425 for a passive port, no 426 on a clean
   upload...);
7. p99 latency of the probe under 100 ms, over the run and during each
   backend failure.

Talks to 127.0.0.1 only; every process it starts is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import contextlib
import ftplib
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
USER, PASSWORD = "soak", "soak"
REPO = Path(__file__).resolve().parent.parent
UPLOAD_PREFIX = ".vfsftp-upload-"  # vfsftp.storage.tree.UPLOAD_PREFIX
KiB, MiB = 1 << 10, 1 << 20
BUCKET = "soak"
PASSIVE_PORTS = 50
#: seconds a transfer may move nothing before the server aborts it (the
#: stalled clients wait for that)
STALL_TIMEOUT = 5.0
SHUTDOWN_TIMEOUT = 5.0
P99_LIMIT = 0.100
MEMORY_SLACK = 0.10
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "soak",
    "AWS_SECRET_ACCESS_KEY": "soak",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def now() -> float:
    # One clock for every process of the run, and for the server's log lines.
    return time.time()


# ---------------------------------------------------------------- content
# What a client uploads is a list of segments (seed, start, length) of
# deterministic streams: any process can regenerate the bytes, hash them,
# or cut them (REST) and extend them (APPE) without keeping them.

_BLOCK = 64 * KiB
_BASE = random.Random(20261206).randbytes(1 * MiB)
Segment = tuple[int, int, int]
Content = tuple[Segment, ...]
EMPTY: Content = ()


def _block(seed: int, index: int) -> bytes:
    off = (seed * 2654435761 + index * 40503) % (len(_BASE) - _BLOCK)
    return struct.pack(">QQ", seed, index) + _BASE[off : off + _BLOCK - 16]


def stream(seed: int, start: int, length: int, chunk: int = 256 * KiB) -> Iterator[bytes]:
    """Bytes ``start``..``start+length`` of stream ``seed``, in chunks."""
    pos, end = start, start + length
    out = bytearray()
    while pos < end:
        index, inner = divmod(pos, _BLOCK)
        piece = _block(seed, index)[inner : inner + (end - pos)]
        out += piece
        pos += len(piece)
        if len(out) >= chunk:
            yield bytes(out)
            out.clear()
    if out:
        yield bytes(out)


def content_chunks(content: Content, chunk: int = 256 * KiB) -> Iterator[bytes]:
    for seed, start, length in content:
        yield from stream(seed, start, length, chunk)


def content_size(content: Content) -> int:
    return sum(length for _, _, length in content)


def content_prefix(content: Content, n: int) -> Content:
    out: list[Segment] = []
    for seed, start, length in content:
        if n <= 0:
            break
        take = min(length, n)
        out.append((seed, start, take))
        n -= take
    return tuple(out)


def content_suffix_from(content: Content, offset: int) -> Content:
    out: list[Segment] = []
    for seed, start, length in content:
        if offset >= length:
            offset -= length
            continue
        out.append((seed, start + offset, length - offset))
        offset = 0
    return tuple(out)


_SHA_CACHE: dict[Content, str] = {}


def content_sha(content: Content) -> str:
    found = _SHA_CACHE.get(content)
    if found is None:
        h = hashlib.sha256()
        for chunk in content_chunks(content, 1 * MiB):
            h.update(chunk)
        found = _SHA_CACHE[content] = h.hexdigest()
    return found


def as_content(raw: Any) -> Content | None:
    return None if raw is None else tuple(tuple(s) for s in raw)


# ---------------------------------------------------------------- op log


class OpLog:
    """One JSON line per operation begin and end, flushed at once: a client
    killed mid-operation leaves its begin without an end."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.stream = path.stem  # operation ids count per log file
        self._lock = threading.Lock()
        self._next = 0

    def begin(self, **fields: Any) -> int:
        with self._lock:
            self._next += 1
            op_id = self._next
        self.write(
            {"k": "b", "id": op_id, "s": self.stream, "t": now(), "pid": os.getpid(), **fields}
        )
        return op_id

    def end(self, op_id: int, owner: str, **fields: Any) -> None:
        self.write(
            {
                "k": "e",
                "id": op_id,
                "s": self.stream,
                "o": owner,
                "t": now(),
                "pid": os.getpid(),
                **fields,
            }
        )

    def write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


def read_oplogs(folder: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(folder.glob("ops-*.jsonl")):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


# ---------------------------------------------------------------- shared run state


class Flag:
    """A flag shared by processes, polled. Not a multiprocessing.Event: its
    set() waits for every waiter to wake, and a waiter that was SIGKILLed
    never does."""

    def __init__(self, ctx: Any) -> None:
        self._value = ctx.RawValue("b", 0)

    def is_set(self) -> bool:
        return bool(self._value.value)

    def set(self) -> None:
        self._value.value = 1

    def clear(self) -> None:
        self._value.value = 0

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._value.value:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.05))
        return True


@dataclass
class Shared:
    """What the orchestrator and the client processes share."""

    stop: Flag  # finish the current session and leave
    hold: Flag  # set while the server restarts
    mem_gen: Any  # RawValue('i'): bumped when /mem was wiped (server restart)
    server_gen: Any  # RawValue('i'): bumped when the server was restarted
    s3_gen: Any  # RawValue('i'): bumped when the S3 store was replaced (moto restart)
    uploading: Any  # RawArray('i'): transfers in progress per client process
    downloading: Any
    #: RawArray('b') per process slot: started (imports done), and let go
    ready: Any
    go: Any


@dataclass
class Plan:
    """The run's parameters, as the client processes need them."""

    work: str
    port: int
    mounts: tuple[str, ...]
    ca: str
    max_size: int
    think: float
    tls_share: float
    seed: int
    probe_dir: str
    workers: int


# ---------------------------------------------------------------- ftp client


def reply_code(exc: BaseException) -> int | None:
    m = re.match(r"\s*(\d{3})", str(exc.args[0]) if exc.args else "")
    return int(m.group(1)) if m else None


class Session:
    """One ftplib control connection (plain or PROT P), its local port for
    matching the server's log lines."""

    def __init__(self, plan: Plan, tls: bool, timeout: float = 60.0) -> None:
        self.tls = tls
        ftp: ftplib.FTP
        if tls:
            ctx = ssl.create_default_context(cafile=plan.ca)
            ftp = ftplib.FTP_TLS(context=ctx, timeout=timeout)
        else:
            ftp = ftplib.FTP(timeout=timeout)
        self.ftp = ftp
        self.local_port = 0
        self.ascii = True
        self.gone = False  # the connection failed, or the server said 421
        try:
            ftp.connect(HOST, plan.port)
            assert ftp.sock is not None
            self.local_port = ftp.sock.getsockname()[1]
            ftp.login(USER, PASSWORD)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            self.binary()
        except BaseException:
            self.abandon()
            raise

    def binary(self) -> None:
        """TYPE I again if a listing left the session in ASCII (ftplib's
        retrlines sends TYPE A)."""
        if self.ascii:
            self.ftp.voidcmd("TYPE I")
            self.ascii = False

    def quit(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            self.abandon()

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.ftp.close()


@dataclass
class Outcome:
    code: int | None = None  # the final reply (226, 250, 451...), None: none came
    error: str | None = None  # what went wrong on the client side
    opened: bool = False  # the data connection was open (150 came)
    nbytes: int = 0
    sha: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def _final_reply(ftp: ftplib.FTP, out: Outcome) -> None:
    try:
        resp = ftp.voidresp()
        out.code = int(resp[:3])
    except ftplib.Error as exc:
        out.code = reply_code(exc)
        out.error = str(exc)[:200]
    except (OSError, EOFError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"[:200]


def _close_data(conn: socket.socket, clean: bool) -> None:
    if clean and isinstance(conn, ssl.SSLSocket):
        # ftplib's storbinary/retrbinary end TLS data connections so.
        with contextlib.suppress(OSError, ValueError):
            conn.unwrap()
    with contextlib.suppress(OSError):
        conn.close()


def ftp_store(
    s: Session,
    verb: str,
    path: str,
    data: Content,
    rest: int | None,
    busy: Callable[[int], None],
    stall: float = 0.0,
    pace: float = 0.0,
) -> Outcome:
    """STOR/APPE ``data``; ``stall``: send 64 KiB, then nothing, and wait up
    to that long for the server to give up; ``pace``: seconds between 64 KiB
    chunks (a slow client)."""
    out = Outcome()
    try:
        s.binary()
        conn = s.ftp.transfercmd(f"{verb} {path}", rest)
    except ftplib.Error as exc:
        out.code, out.error = reply_code(exc), str(exc)[:200]
        return out
    except (OSError, EOFError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"[:200]
        return out
    out.opened = True
    busy(1)
    clean = False
    try:
        if stall:
            conn.sendall(next(content_chunks(data, 64 * KiB), b""))
            assert s.ftp.sock is not None
            s.ftp.sock.settimeout(stall)
            _final_reply(s.ftp, out)
            return out
        for chunk in content_chunks(data, 64 * KiB if pace else 256 * KiB):
            conn.sendall(chunk)
            out.nbytes += len(chunk)
            if pace:
                time.sleep(pace)
        clean = True
    except OSError as exc:
        out.error = f"send: {type(exc).__name__}: {exc}"[:200]
    finally:
        busy(-1)
        _close_data(conn, clean)
    if out.code is None:
        _final_reply(s.ftp, out)
    return out


def ftp_retrieve(
    s: Session, path: str, rest: int | None, busy: Callable[[int], None], stall: float = 0.0
) -> Outcome:
    out = Outcome()
    try:
        s.binary()
        conn = s.ftp.transfercmd(f"RETR {path}", rest)
    except ftplib.Error as exc:
        out.code, out.error = reply_code(exc), str(exc)[:200]
        return out
    except (OSError, EOFError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"[:200]
        return out
    out.opened = True
    busy(1)
    h = hashlib.sha256()
    clean = False
    try:
        if stall:
            out.nbytes = len(conn.recv(64 * KiB))
            assert s.ftp.sock is not None
            s.ftp.sock.settimeout(stall)
            _final_reply(s.ftp, out)
            return out
        while True:
            chunk = conn.recv(256 * KiB)
            if not chunk:
                break
            h.update(chunk)
            out.nbytes += len(chunk)
        clean = True
    except OSError as exc:
        out.error = f"recv: {type(exc).__name__}: {exc}"[:200]
    finally:
        busy(-1)
        _close_data(conn, clean)
    out.sha = h.hexdigest()
    if out.code is None:
        _final_reply(s.ftp, out)
    return out


def ftp_listing(s: Session, verb: str, path: str) -> Outcome:
    out = Outcome()
    lines: list[str] = []
    try:
        s.ascii = True  # retrlines sends TYPE A first
        resp = s.ftp.retrlines(f"{verb} {path}", lines.append)
        out.code, out.nbytes, out.opened = int(resp[:3]), len(lines), True
    except ftplib.Error as exc:
        out.code, out.error = reply_code(exc), str(exc)[:200]
    except (OSError, EOFError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"[:200]
    return out


def ftp_command(s: Session, line: str) -> Outcome:
    out = Outcome()
    try:
        if line.startswith("SIZE "):
            s.binary()  # RFC 3659 §4: SIZE in ASCII mode is refused
        resp = s.ftp.sendcmd(line)
        out.code = int(resp[:3])
    except ftplib.Error as exc:
        out.code, out.error = reply_code(exc), str(exc)[:200]
    except (OSError, EOFError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"[:200]
    return out


def ftp_rename(s: Session, src: str, dst: str) -> Outcome:
    out = ftp_command(s, f"RNFR {src}")
    if out.code != 350:
        return out
    return ftp_command(s, f"RNTO {dst}")


# ---------------------------------------------------------------- the clients


_SLOT_LOCK = threading.Lock()
UNCERTAIN = "?"  # a path whose state the client does not know (after a failure)


@dataclass
class Owner:
    """One client's own paths and what it believes is in them."""

    name: str
    files: dict[str, Any] = field(default_factory=dict)  # path -> Content | UNCERTAIN
    dirs: set[str] = field(default_factory=set)  # owned folders known to exist
    gens: dict[str, int] = field(default_factory=dict)  # reset generation seen per mount
    counter: int = 0

    def top(self, mount: str) -> str:
        return f"/{mount}/o-{self.name}"

    def new_name(self, mount: str) -> str:
        self.counter += 1
        return f"{self.top(mount)}/f{self.counter}.bin"

    def known(self, mount: str | None = None) -> list[str]:
        return [
            p
            for p, c in self.files.items()
            if c is not UNCERTAIN and c is not None and (mount is None or mount_of(p) == mount)
        ]

    def forget_mount(self, mount: str) -> None:
        for p in list(self.files):
            if mount_of(p) == mount:
                del self.files[p]
        self.dirs = {d for d in self.dirs if mount_of(d) != mount}


def mount_of(path: str) -> str:
    parts = path.split("/", 2)
    return parts[1] if len(parts) > 1 else ""


def pick_size(rng: random.Random, max_size: int) -> int:
    r = rng.random()
    if r < 0.08:
        return 0
    if r < 0.70:
        return rng.randint(1, 64 * KiB)
    if r < 0.93:
        return rng.randint(64 * KiB, 1 * MiB)
    if r < 0.985:
        return rng.randint(1 * MiB, max(1 * MiB, max_size // 5))
    return rng.randint(max_size // 2, max_size)


class Client:
    """One client thread: sessions one after another, each a few operations
    on the client's own paths, each operation logged."""

    #: (weight, operation)
    MIX: tuple[tuple[int, str], ...] = (
        (14, "list"),
        (18, "retr"),
        (24, "stor"),
        (4, "stor_rest"),
        (4, "appe"),
        (7, "rename"),
        (7, "dele"),
        (5, "mkd_rmd"),
        (4, "noop"),
        (3, "size"),
    )

    def __init__(
        self,
        plan: Plan,
        shared: Shared,
        log: OpLog,
        name: str,
        slot: int,
        rng: random.Random,
        victim: bool = False,
    ) -> None:
        #: to be SIGKILLed: its uploads are bigger and paced, so that the
        #: kill lands in the middle of one
        self.victim = victim
        self.plan = plan
        self.shared = shared
        self.log = log
        self.owner = Owner(name)
        self.slot = slot
        self.rng = rng
        self.session: Session | None = None
        self.session_gen = 0
        weights = [w for w, _ in self.MIX]
        self._ops = [op for _, op in self.MIX]
        self._cum = [sum(weights[: i + 1]) for i in range(len(weights))]

    # -- bookkeeping
    def busy_up(self, delta: int) -> None:
        with _SLOT_LOCK:  # (each process writes its own slot only)
            self.shared.uploading[self.slot] += delta

    def busy_down(self, delta: int) -> None:
        with _SLOT_LOCK:
            self.shared.downloading[self.slot] += delta

    def gens(self) -> dict[str, int]:
        return {
            "mem": self.shared.mem_gen.value,
            "s3": self.shared.s3_gen.value,
            "srv": self.session_gen,
        }

    def sync_generations(self) -> None:
        for mount, gen in self.gens().items():
            if self.owner.gens.get(mount, 0) != gen:
                self.owner.forget_mount(mount)
                self.owner.gens[mount] = gen

    def live(self) -> Session:
        assert self.session is not None
        return self.session

    def record(self, op: str, path: str, run: Callable[[], Outcome], **fields: Any) -> Outcome:
        s = self.live()
        op_id = self.log.begin(
            o=self.owner.name,
            op=op,
            p=path,
            tls=s.tls,
            lp=s.local_port,
            gen=self.gens(),
            **fields,
        )
        out = run()
        if out.code == 421 or (out.code is None and out.error):
            s.gone = True
        self.log.end(
            op_id,
            self.owner.name,
            code=out.code,
            err=out.error,
            opened=out.opened,
            n=out.nbytes,
            sha=out.sha,
        )
        return out

    # -- the loop
    def run(self) -> None:
        while not self.shared.stop.is_set():
            if self.shared.hold.is_set():
                _hold_wait(self.shared.hold, self.shared.stop)
                continue
            self.sync_generations()
            tls = self.rng.random() < self.plan.tls_share
            try:
                self.session = Session(self.plan, tls)
            except (OSError, EOFError, ftplib.Error) as exc:
                self.log.write(
                    {
                        "k": "connect-failed",
                        "o": self.owner.name,
                        "t": now(),
                        "err": repr(exc)[:200],
                    }
                )
                self.shared.stop.wait(0.5 + self.rng.random())
                continue
            try:
                self.session_gen = self.shared.server_gen.value
                for _ in range(self.rng.randint(3, 12)):
                    if self.shared.stop.is_set() or self.shared.hold.is_set():
                        break
                    if self.shared.server_gen.value != self.session_gen:
                        break  # a session of the server that was restarted
                    self.sync_generations()
                    alive = self.one_operation()
                    if not alive:
                        break
                    self.shared.stop.wait(self.rng.expovariate(1 / self.plan.think))
            finally:
                if self.session is not None:
                    self.session.quit()
                    self.session = None

    def pick(self) -> str:
        if self.victim and self.rng.random() < 0.5:
            return "stor"
        r = self.rng.random() * self._cum[-1]
        return self._ops[bisect.bisect_right(self._cum, r)]

    def ensure_top(self, mount: str) -> bool:
        top = self.owner.top(mount)
        if top in self.owner.dirs:
            return True
        out = self.record("MKD", top, lambda: ftp_command(self.live(), f"MKD {top}"))
        if out.code == 257 or (out.code == 550 and "exists" in (out.error or "")):
            self.owner.dirs.add(top)
            return True
        return False

    def one_operation(self) -> bool:
        """One operation; False when the session is gone."""
        op = self.pick()
        mount = self.rng.choice(self.plan.mounts)
        if not self.ensure_top(mount):
            return self.session_alive()
        handler = getattr(self, f"op_{op}")
        handler(mount)
        return self.session_alive()

    def session_alive(self) -> bool:
        s = self.live()
        return s.ftp.sock is not None and not s.gone

    # -- operations
    def op_list(self, mount: str) -> None:
        verb = self.rng.choice(("LIST", "MLSD"))
        where = self.rng.choice((self.owner.top(mount), f"/{mount}"))
        s = self.live()
        self.record(verb, where, lambda: ftp_listing(s, verb, where))

    def op_noop(self, mount: str) -> None:
        s = self.live()
        self.record("NOOP", "-", lambda: ftp_command(s, "NOOP"))

    def op_size(self, mount: str) -> None:
        known = self.owner.known(mount)
        if not known:
            return self.op_noop(mount)
        path = self.rng.choice(known)
        s = self.live()
        self.record("SIZE", path, lambda: ftp_command(s, f"SIZE {path}"))

    def op_retr(self, mount: str) -> None:
        known = self.owner.known(mount)
        if not known:
            return self.op_stor(mount)
        path = self.rng.choice(known)
        content: Content = self.owner.files[path]
        size = content_size(content)
        rest = self.rng.randint(1, size - 1) if size > 1 and self.rng.random() < 0.15 else None
        s = self.live()
        out = self.record(
            "RETR",
            path,
            lambda: ftp_retrieve(s, path, rest, self.busy_down),
            rest=rest,
            c=content,
        )
        if out.code is not None and out.code >= 400 and out.code != 451:
            self.owner.files[path] = UNCERTAIN

    def _upload(
        self, verb: str, path: str, result: Content, data: Content, rest: int | None
    ) -> None:
        s = self.live()
        pace = 0.005 if self.victim and content_size(data) >= 256 * KiB else 0.0
        out = self.record(
            verb,
            path,
            lambda: ftp_store(s, verb, path, data, rest, self.busy_up, pace=pace),
            rest=rest,
            c=result,
            size=content_size(data),
        )
        if out.code == 226:
            self.owner.files[path] = result
        elif out.code is None or out.opened:
            # No reply, or a failure after data moved: the old file should
            # be there, but the client does not rely on it.
            self.owner.files[path] = UNCERTAIN
        # (refused before any data moved: unchanged)

    def op_stor(self, mount: str) -> None:
        known = self.owner.known(mount)
        overwrite = known and self.rng.random() < 0.3
        uncertain = [
            p for p, c in self.owner.files.items() if c is UNCERTAIN and mount_of(p) == mount
        ]
        if uncertain and self.rng.random() < 0.5:
            path = self.rng.choice(uncertain)  # make it certain again
        elif overwrite:
            path = self.rng.choice(known)
        else:
            path = self.owner.new_name(mount)
        size = pick_size(self.rng, self.plan.max_size)
        if self.victim:
            size = max(size, self.rng.randint(256 * KiB, 2 * MiB))
        data: Content = ((self.rng.getrandbits(48), 0, size),) if size else EMPTY
        self._upload("STOR", path, data, data, None)

    def op_stor_rest(self, mount: str) -> None:
        known = [p for p in self.owner.known(mount) if content_size(self.owner.files[p]) > 1]
        if mount == "s3":  # a rewrite of the object, capped by rewrite_max_size
            known = [p for p in known if content_size(self.owner.files[p]) <= 4 * MiB]
        if not known:
            return self.op_stor(mount)
        path = self.rng.choice(known)
        old: Content = self.owner.files[path]
        rest = self.rng.randint(1, content_size(old) - 1)
        size = pick_size(self.rng, min(self.plan.max_size, 4 * MiB))
        data: Content = ((self.rng.getrandbits(48), 0, size),) if size else EMPTY
        self._upload("STOR", path, content_prefix(old, rest) + data, data, rest)

    def op_appe(self, mount: str) -> None:
        known = self.owner.known(mount)
        if mount == "s3":
            known = [p for p in known if content_size(self.owner.files[p]) <= 4 * MiB]
        if not known or self.rng.random() < 0.2:
            path = self.owner.new_name(mount)
            old: Content = EMPTY
        else:
            path = self.rng.choice(known)
            old = self.owner.files[path]
        size = pick_size(self.rng, min(self.plan.max_size, 2 * MiB))
        data: Content = ((self.rng.getrandbits(48), 0, size),) if size else EMPTY
        self._upload("APPE", path, old + data, data, None)

    def op_rename(self, mount: str) -> None:
        known = [p for p in self.owner.known(mount) if content_size(self.owner.files[p]) <= 8 * MiB]
        if not known:
            return self.op_stor(mount)
        src = self.rng.choice(known)
        to_mount = mount
        if self.rng.random() < 0.25:
            to_mount = self.rng.choice(self.plan.mounts)
            if not self.ensure_top(to_mount):
                return
        dst = self.owner.new_name(to_mount)
        s = self.live()
        content = self.owner.files[src]
        out = self.record("RENAME", src, partial(ftp_rename, s, src, dst), p2=dst, c=content)
        if out.code == 250:
            self.owner.files[dst] = content
            self.owner.files[src] = None
        elif out.code is None or out.code not in (350, 550):
            self.owner.files[src] = UNCERTAIN
            self.owner.files[dst] = UNCERTAIN

    def op_dele(self, mount: str) -> None:
        known = self.owner.known(mount)
        if not known:
            return self.op_list(mount)
        path = self.rng.choice(known)
        s = self.live()
        out = self.record("DELE", path, lambda: ftp_command(s, f"DELE {path}"))
        if out.code == 250:
            self.owner.files[path] = None
        elif out.code is None or out.code >= 400:
            self.owner.files[path] = UNCERTAIN

    def op_mkd_rmd(self, mount: str) -> None:
        subdirs = [d for d in self.owner.dirs if d.startswith(self.owner.top(mount) + "/")]
        s = self.live()
        if subdirs and self.rng.random() < 0.5:
            path = self.rng.choice(subdirs)
            out = self.record("RMD", path, lambda: ftp_command(s, f"RMD {path}"))
            if out.code == 250 or out.code is None:
                self.owner.dirs.discard(path)
            return
        self.owner.counter += 1
        path = f"{self.owner.top(mount)}/d{self.owner.counter}"
        out = self.record("MKD", path, lambda: ftp_command(s, f"MKD {path}"))
        if out.code == 257:
            self.owner.dirs.add(path)


def _hold_wait(hold: Any, stop: Any) -> None:
    """Wait out the server's restart, then a moment more: clients that
    find a server back do not all log in within the same millisecond."""
    while hold.is_set() and not stop.is_set():
        time.sleep(0.1)
    time.sleep(random.random() * RECONNECT)


def _no_data(fn: Callable[..., Outcome], *args: Any) -> Callable[[Callable[[int], None]], Outcome]:
    """An operation without a transfer, in the shape of one (busy callback)."""
    return lambda _busy: fn(*args)


class _Gate:
    """Holds a semaphore from before PASV until the data connection is up
    (``opened``, a transfer's busy callback) or the operation ended."""

    def __init__(self, sem: threading.BoundedSemaphore) -> None:
        self.sem = sem
        self.held = False

    def __enter__(self) -> _Gate:
        self.sem.acquire()
        self.held = True
        return self

    def opened(self, delta: int) -> None:
        if delta > 0 and self.held:
            self.held = False
            self.sem.release()

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.held = False
            self.sem.release()


#: process slots (Shared.ready, Shared.go) of the probe, the curl process
#: and the stalled clients (client processes have their index)
PROBE_SLOT, CURL_SLOT, STALL_SLOT = 4094, 4095, 4000


def _ready_then_wait(shared: Shared, slot: int) -> bool:
    """Say this process is up, then wait to be let go; False: stopped
    first. Processes start before the load: starting Python is CPU the
    server and the probe must not share during it."""
    shared.ready[slot] = 1
    while not shared.go[slot]:
        if shared.stop.is_set():
            return False
        time.sleep(0.02)
    return True


def client_main(plan: Plan, shared: Shared, index: int, threads: int, victim: bool) -> None:
    """A client process: ``threads`` clients, until told to stop."""
    with contextlib.suppress(OSError):
        os.nice(10)  # the load yields to the server and the probe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _ready_then_wait(shared, index):
        return
    log = OpLog(Path(plan.work) / f"ops-c{index:03d}.jsonl")
    rng = random.Random(plan.seed * 1000 + index)
    clients = [
        Client(
            plan, shared, log, f"c{index}t{t}", index, random.Random(rng.getrandbits(64)), victim
        )
        for t in range(threads)
    ]
    workers = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for i, w in enumerate(workers):
        w.start()
        shared.stop.wait(0.05 + rng.random() * 0.2 * (i > 0))  # a gentle ramp
    for w in workers:
        w.join()
    log.close()


# ---------------------------------------------------------------- curl clients


class CurlClient:
    """Uploads and downloads through the curl binary, plain and FTPS: one
    curl process (one session) per transfer."""

    def __init__(
        self, plan: Plan, shared: Shared, log: OpLog, name: str, rng: random.Random
    ) -> None:
        self.plan, self.shared, self.log, self.name, self.rng = plan, shared, log, name, rng
        self.owner = Owner(name)
        self.scratch = Path(plan.work) / f"curl-{name}.bin"

    def run(self) -> None:
        while not self.shared.stop.is_set():
            if self.shared.hold.is_set():
                _hold_wait(self.shared.hold, self.shared.stop)
                continue
            for mount, gen in {
                "mem": self.shared.mem_gen.value,
                "s3": self.shared.s3_gen.value,
            }.items():
                if self.owner.gens.get(mount, 0) != gen:
                    self.owner.forget_mount(mount)
                    self.owner.gens[mount] = gen
            mount = self.rng.choice(self.plan.mounts)
            tls = self.rng.random() < 0.5
            known = self.owner.known(mount)
            if known and self.rng.random() < 0.4:
                self.download(self.rng.choice(known), tls)
            else:
                path = self.rng.choice(known) if known and self.rng.random() < 0.3 else None
                self.upload(path or self.owner.new_name(mount), tls)
            self.shared.stop.wait(self.rng.expovariate(1 / self.plan.think))

    def _curl(self, args: list[str], path: str, tls: bool) -> tuple[int | None, str | None]:
        url = f"ftp://{USER}:{PASSWORD}@{HOST}:{self.plan.port}{path}"
        cmd = ["curl", "-sS", "--ftp-pasv", "--max-time", "120", "-w", "%{response_code}"]
        if tls:
            cmd += ["--ssl-reqd", "--cacert", self.plan.ca]
        try:
            done = subprocess.run(cmd + args + [url], capture_output=True, text=True, timeout=150)
        except subprocess.TimeoutExpired:
            return None, "curl timed out"
        tail = done.stdout.strip()[-3:]
        code = int(tail) if tail.isdigit() and tail != "000" else None
        err = (
            None
            if done.returncode == 0
            else f"curl exit {done.returncode}: {done.stderr.strip()[:160]}"
        )
        return code, err

    def upload(self, path: str, tls: bool) -> None:
        size = pick_size(self.rng, min(self.plan.max_size, 4 * MiB))
        data: Content = ((self.rng.getrandbits(48), 0, size),) if size else EMPTY
        with open(self.scratch, "wb") as f:
            for chunk in content_chunks(data):
                f.write(chunk)
        op_id = self.log.begin(
            o=self.name,
            op="STOR",
            p=path,
            tls=tls,
            curl=True,
            c=data,
            size=size,
            gen={"mem": self.shared.mem_gen.value, "s3": self.shared.s3_gen.value},
        )
        code, err = self._curl(["--ftp-create-dirs", "-T", str(self.scratch)], path, tls)
        # curl exits 0 only after reading the upload's 226.
        if err is None and code is None:
            code = 226
        self.log.end(
            op_id, self.name, code=code, err=err, opened=True, n=size if code == 226 else 0
        )
        self.owner.files[path] = data if code == 226 and err is None else UNCERTAIN
        if code == 226 and err is None:
            self.owner.dirs.add(self.owner.top(mount_of(path)))

    def download(self, path: str, tls: bool) -> None:
        content = self.owner.files[path]
        target = self.scratch.with_suffix(".down")
        op_id = self.log.begin(
            o=self.name,
            op="RETR",
            p=path,
            tls=tls,
            curl=True,
            c=content,
            gen={"mem": self.shared.mem_gen.value, "s3": self.shared.s3_gen.value},
        )
        with contextlib.suppress(OSError):
            target.unlink()
        code, err = self._curl(["-o", str(target)], path, tls)
        sha, n = None, 0
        if err is None:
            data = target.read_bytes() if target.exists() else b""
            sha, n = hashlib.sha256(data).hexdigest(), len(data)
            code = code or 226
        self.log.end(op_id, self.name, code=code, err=err, opened=True, n=n, sha=sha)
        if err is not None and code not in (451, None):
            self.owner.files[path] = UNCERTAIN


def curl_main(plan: Plan, shared: Shared, index: int, threads: int) -> None:
    with contextlib.suppress(OSError):
        os.nice(10)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _ready_then_wait(shared, CURL_SLOT):
        return
    log = OpLog(Path(plan.work) / f"ops-k{index:03d}.jsonl")
    rng = random.Random(plan.seed * 7919 + index)
    clients = [
        CurlClient(plan, shared, log, f"k{index}t{t}", random.Random(rng.getrandbits(64)))
        for t in range(threads)
    ]
    workers = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.close()


# ---------------------------------------------------------------- stalled clients


def stall_main(plan: Plan, shared: Shared, index: int, kind: str, big: str) -> None:
    """One client that stops reading a download (``kind`` = "down") or stops
    sending an upload ("up") and waits for the server to give up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _ready_then_wait(shared, STALL_SLOT + index):
        return
    log = OpLog(Path(plan.work) / f"ops-s{index:03d}.jsonl")
    name = f"s{index}"
    owner = Owner(name)
    try:
        session = Session(plan, tls=index % 2 == 1)
    except (OSError, EOFError, ftplib.Error) as exc:
        log.write({"k": "connect-failed", "o": name, "t": now(), "err": repr(exc)[:200]})
        return
    # The kernel keeps taking a trickle of data into socket buffers for a
    # while after a peer stops: the server notices after a few stall_timeouts.
    wait = STALL_TIMEOUT * 10
    common = {
        "o": name,
        "tls": session.tls,
        "lp": session.local_port,
        "stall": True,
        "gen": {"mem": shared.mem_gen.value, "s3": shared.s3_gen.value},
    }
    if kind == "down":
        op_id = log.begin(op="RETR", p=big, **common)
        out = ftp_retrieve(session, big, None, lambda d: None, stall=wait)
    else:
        top = owner.top("local")
        ftp_command(session, f"MKD {top}")
        path = f"{top}/stalled.bin"
        data: Content = ((index + 1, 0, 8 * MiB),)
        op_id = log.begin(op="STOR", p=path, c=data, size=8 * MiB, **common)
        out = ftp_store(session, "STOR", path, data, None, lambda d: None, stall=wait)
    log.end(op_id, name, code=out.code, err=out.error, opened=out.opened, n=out.nbytes)
    session.quit()
    log.close()


# ---------------------------------------------------------------- the probe


def _timed_listing(s: Session, path: str, parts: dict[str, float]) -> Outcome:
    """LIST, its steps timed apart (PASV, connect, LIST to 150, the data,
    the 226): where a slow one spends its time."""
    out = Outcome()
    clock = time.perf_counter
    try:
        t = clock()
        host, port = s.ftp.makepasv()
        parts["pasv"] = clock() - t
        t = clock()
        conn = socket.create_connection((host, port), timeout=10)
        parts["connect"] = clock() - t
        try:
            t = clock()
            s.ftp.sendcmd(f"LIST {path}")  # 150
            parts["reply150"] = clock() - t
            t = clock()
            while conn.recv(65536):
                pass
            parts["data"] = clock() - t
        finally:
            conn.close()
        t = clock()
        out.code = int(s.ftp.voidresp()[:3])
        parts["reply226"] = clock() - t
        out.opened = True
    except ftplib.Error as exc:
        out.code, out.error = reply_code(exc), str(exc)[:200]
    except (OSError, EOFError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"[:200]
    return out


def probe_main(plan: Plan, shared: Shared) -> None:
    """NOOP every 25 ms and a LIST every 100 ms on one session, each timed;
    a session broken by the restart is opened again once it is over. It
    runs at a higher priority where allowed: it measures the server, not
    how long the machine's scheduler keeps the probe itself waiting."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _raise_priority()
    if not _ready_then_wait(shared, PROBE_SLOT):
        return
    out_path = Path(plan.work) / "probe.jsonl"
    samples: list[dict[str, Any]] = []
    session: Session | None = None
    last_list = 0.0
    next_flush = time.monotonic() + 2

    def flush() -> None:
        with open(out_path, "a") as f:
            f.writelines(json.dumps(sample) + "\n" for sample in samples)
        samples.clear()

    while not shared.stop.is_set():
        if session is None:
            if shared.hold.is_set():
                time.sleep(0.05)
                continue
            try:
                session = Session(plan, tls=False, timeout=10)
                ftp_command(session, f"MKD {plan.probe_dir}")
                ftp_command(session, f"CWD {plan.probe_dir}")
            except (OSError, EOFError, ftplib.Error):
                session = None
                samples.append({"t": now(), "kind": "connect", "s": 0.0, "ok": False})
                time.sleep(0.2)
                continue
        t0 = time.perf_counter()
        parts: dict[str, float] = {}
        if time.monotonic() - last_list >= 0.1:
            kind = "LIST"
            last_list = time.monotonic()
            out = _timed_listing(session, plan.probe_dir, parts)
        else:
            kind = "NOOP"
            out = ftp_command(session, "NOOP")
        secs = time.perf_counter() - t0
        samples.append({"t": now(), "kind": kind, "s": secs, "ok": out.ok, **parts})
        if not out.ok:
            session.abandon()
            session = None
        if time.monotonic() > next_flush:
            flush()
            next_flush = time.monotonic() + 2
        time.sleep(max(0.0, 0.025 - secs))
    if session is not None:
        session.quit()
    flush()


# ---------------------------------------------------------------- processes


def free_port(avoid: Iterable[int] = ()) -> int:
    """A free port below Linux's ephemeral range, so that client sockets
    never take it while a process restarts on it."""
    taken = set(avoid)
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(20000, 32000)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def free_range(count: int, avoid: Iterable[int] = ()) -> tuple[int, int]:
    taken = set(avoid)
    rng = random.Random()
    for _ in range(200):
        low = rng.randint(20000, 32000 - count)
        if any(p in taken for p in range(low, low + count)):
            continue
        socks = []
        try:
            for p in range(low, low + count):
                s = socket.socket()
                socks.append(s)
                s.bind((HOST, p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return low, low + count - 1
    raise RuntimeError("no free port range")


def proc_rss(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) * 1024 if m else 0


_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_threads(pid: int) -> int:
    m = re.search(r"Threads:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def _socket_table() -> dict[str, tuple[int, int, str]]:
    """inode -> (local port, remote port, state) of every TCP socket."""
    table = {}
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
                parts = line.split()
                local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
                table[inode] = (
                    int(local.rsplit(":", 1)[1], 16),
                    int(remote.rsplit(":", 1)[1], 16),
                    state,
                )
    return table


def proc_fds(pid: int, moto_port: int) -> collections.Counter[str]:
    """A process's descriptors by kind; sockets to moto apart (a pool)."""
    kinds: collections.Counter[str] = collections.Counter()
    table = _socket_table()
    folder = Path(f"/proc/{pid}/fd")
    for fd in folder.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            entry = table.get(target[8:-1])
            if entry is None:
                kinds["socket (other)"] += 1
            elif entry[2] == "0A":
                kinds["socket (listening)"] += 1
            elif entry[1] == moto_port:
                kinds["socket to S3"] += 1
            else:
                kinds[f"socket (tcp state {entry[2]})"] += 1
        elif target.startswith(("pipe:", "anon_inode:")):
            kinds[target.split("[")[0]] += 1
        else:
            kinds["file"] += 1
    return kinds


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            out[key] = out.get(key, 0.0) + sample.value
    return out


def _raise_priority() -> None:
    """This process's priority above the load's, where allowed (the server
    and the probe call it): the clients would be other hosts, and on one
    machine dozens of client processes would otherwise take the CPU the
    server's event loop waits for (the probe would measure the scheduler,
    not the server)."""
    with contextlib.suppress(OSError):
        os.nice(-5)


class Server:
    """``vfsftp serve`` as a subprocess; its workers, metrics endpoints and
    /proc figures."""

    def __init__(self, work: Path, workers: int, port: int, passive: tuple[int, int]) -> None:
        self.work, self.workers, self.port, self.passive = work, workers, port, passive
        self.config = work / "mounts.yaml"
        self.log = work / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_urls: list[str] = []
        self.started_at = 0.0
        self.generation = 0
        self.env: dict[str, str] = {}  # --server-env
        self.args: list[str] = []  # e.g. --cpu-affinity auto

    def write_config(self, text: str) -> None:
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config)

    def start(self, timeout: float = 60) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.generation += 1
        with open(self.work / "server.stderr", "ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "vfsftp",
                    "serve",
                    "-c",
                    str(self.config),
                    "--workers",
                    str(self.workers),
                    *self.args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=self.work,
                env={**os.environ, **AWS_ENV, "PYTHONPATH": str(REPO), **self.env},
                preexec_fn=_raise_priority,
            )
        self.started_at = now()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited at start ({self.proc.returncode}); "
                    f"see {self.work}/server.stderr"
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            urls = []
            if self.log.exists():
                with open(self.log, "rb") as f:
                    f.seek(offset)
                    urls = re.findall(rb"metrics on (http://[\d.:]+)/metrics", f.read())
            if len(urls) >= self.workers and self._greets():
                self.metrics_urls = [u.decode() + "/metrics" for u in urls[-self.workers :]]
                return
            time.sleep(0.1)

    def _greets(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=2) as s:
                return s.recv(64).startswith(b"220")
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        if self.workers == 1:
            return [self.pid]
        text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        return [int(x) for x in text.split()]

    def scrape_each(self) -> list[dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
        out = []
        for url in self.metrics_urls:
            try:
                with urllib.request.urlopen(url, timeout=30) as r:
                    out.append(parse_metrics(r.read().decode()))
            except TimeoutError:
                # The server stopped answering: its threads' stacks go to
                # server.stderr (vfsftp serve dumps them on SIGUSR1).
                for pid in {self.pid, *self.worker_pids()}:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGUSR1)
                raise
        return out

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        total: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for one in self.scrape_each():
            for k, v in one.items():
                total[k] = total.get(k, 0.0) + v
        return total

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def server_config(
    *,
    port: int,
    passive: tuple[int, int],
    moto_port: int,
    local: Path,
    probe: Path,
    control: Path,
    workers: int,
    banner: str,
) -> str:
    mem = "" if workers > 1 else '  /mem: {fs: "mem://", quota: {max_bytes: 64GiB}}\n'
    return f"""\
# Written by benchmarks/soak.py
server:
  listen: {HOST}
  port: {port}
  passive_ports: {passive[0]}-{passive[1]}
  banner: "{banner}"
  max_connections: 4096
  max_connections_per_ip: 4096
  idle_timeout: 120
  data_timeout: 20
  stall_timeout: {STALL_TIMEOUT:g}
  shutdown_timeout: {SHUTDOWN_TIMEOUT:g}
  login_failure_delay: 0
  ban: null
  tls:
    certificate: cert.pem
    key: key.pem
logging:
  level: info
  file: server.log
  transfer_log: xfer.jsonl
  transfer_log_format: json
metrics:
  port: 0
mounts:
{mem}  /local: {{fs: "faulty+osfs://{local}?control={control}&seed=1", quota: {{max_bytes: 64GiB}}}}
  /probe: "osfs://{probe}"
  /s3:
    fs: s3://{BUCKET}
    endpoint_url: http://{HOST}:{moto_port}
    region: us-east-1
    addressing_style: path
    access_key_id: {AWS_ENV["AWS_ACCESS_KEY_ID"]}
    secret_access_key: {AWS_ENV["AWS_SECRET_ACCESS_KEY"]}
    part_size: 5MiB
    rewrite_max_size: 8MiB
users:
  {USER}:
    password: "plaintext:{PASSWORD}"
"""


# ---------------------------------------------------------------- the run


@dataclass
class Settings:
    seconds: float
    quick: bool
    workers: int
    sessions: int  # peak client sessions (ftplib threads)
    threads: int  # sessions per client process
    curl: int  # curl threads
    max_size: int
    think: float  # mean seconds between a session's operations
    seed: int
    keep: bool
    output: Path | None
    server_env: list[str] = field(default_factory=list)
    cpu_affinity: str | None = None  # vfsftp serve --cpu-affinity


@dataclass
class Baseline:
    at: float
    rss: dict[int, int]
    fds: dict[int, collections.Counter[str]]
    tasks: list[float]
    threads: dict[int, int] = field(default_factory=dict)


#: faults of /local, as fractions of the run: (start, end, control-file text)
LOCAL_PHASES = (
    (
        0.15,
        0.24,
        "ENOSPC",
        # a full disk: some uploads fail at open, some midway, some at once
        "open:ENOSPC:p=0.1:path=/o-[ck]*\nwrite:ENOSPC:after=48KiB:p=0.35:path=/o-[ck]*\n",
    ),
    (
        0.24,
        0.33,
        "EIO",
        # a dying disk: writes, the commit's rename, reads, listings, deletes
        "write:EIO:after=32KiB:p=0.3:path=/o-[ck]*\n"
        "rename:EIO:p=0.2:path=/o-[ck]*\n"
        "read:EIO:after=16KiB:p=0.2:path=/o-[ck]*\n"
        "list:EIO:p=0.1:path=/o-[ck]*\n"
        "remove:EIO:p=0.1:path=/o-[ck]*\n"
        "mkdir:EIO:p=0.1:path=/o-[ck]*\n",
    ),
)
RELOAD_AT = 0.36
MOTO_KILL_AT = 0.40
#: late enough for the faults before it, early enough for a load after it
RESTART_AT = 0.55
KILLS_BETWEEN = (0.12, 0.85)
STALLS_AT = 0.03
STOP_AT = 0.92
#: seconds after the restart while all clients log in again (the probe's
#: p99 leaves them out with the restart itself)
RECONNECT = 3.0


class Soak:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.work = Path(tempfile.mkdtemp(prefix="vfsftp-soak-"))
        self.events: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []  # monitor: sessions, rss...
        self.baselines: list[Baseline] = []
        self.procs: dict[int, Any] = {}  # index -> multiprocessing.Process (clients)
        self.others: list[Any] = []  # curl, stall, probe processes
        self.killed: list[dict[str, Any]] = []
        self.ctx = multiprocessing.get_context("spawn")
        self.next_index = 0
        self.t0 = 0.0
        self.notes: list[str] = []

    # ------------------------------------------------------------ helpers

    def event(self, what: str, **fields: Any) -> dict[str, Any]:
        record = {"k": what, "t": now(), **fields}
        self.events.append(record)
        with open(self.work / "events.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"  {record['t'] - self.t0:7.1f}s  {what} {json.dumps(fields)[:160]}", flush=True)
        return record

    def at(self, fraction: float) -> float:
        return self.t0 + fraction * self.s.seconds

    def sleep_until(self, when: float) -> None:
        while True:
            left = when - now()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        from vfsftp.testing import MotoS3Process, make_tls_files

        w = self.work
        (w / "local").mkdir()
        (w / "probe").mkdir()
        self.control = w / "faults.txt"
        self.control.write_text("# no faults\n")
        tls = make_tls_files(w)
        self.ca = str(tls.ca)
        self.moto_port = free_port()
        self.port = free_port([self.moto_port])
        self.passive = free_range(PASSIVE_PORTS, [self.moto_port, self.port])
        self.moto = MotoS3Process(port=self.moto_port, log_path=w / "moto.log", nice=5)
        self.moto.start()
        self.s3 = self.moto_client()
        self.s3.create_bucket(Bucket=BUCKET)
        # A big file for the stalled downloads, written before the server
        # starts (and known to the model as the harness's own).
        seed_dir = w / "local" / "seed"
        seed_dir.mkdir()
        self.big_content: Content = ((424242, 0, 40 * MiB),)
        with open(seed_dir / "big.bin", "wb") as f:
            for chunk in content_chunks(self.big_content):
                f.write(chunk)
        self.server = Server(w, self.s.workers, self.port, self.passive)
        self.server.env = dict(kv.split("=", 1) for kv in self.s.server_env)
        if self.s.cpu_affinity is not None:
            self.server.args = ["--cpu-affinity", self.s.cpu_affinity]
        self.server.write_config(self.config_text("vfsftp soak"))
        self.server.start()
        self.mounts = ("local", "s3") if self.s.workers > 1 else ("mem", "local", "s3")
        probe_dir = "/probe/p" if self.s.workers > 1 else "/mem/probe"
        self.plan = Plan(
            work=str(w),
            port=self.port,
            mounts=self.mounts,
            ca=self.ca,
            max_size=self.s.max_size,
            think=self.s.think,
            tls_share=0.4,
            seed=self.s.seed,
            probe_dir=probe_dir,
            workers=self.s.workers,
        )
        self.shared = Shared(
            stop=Flag(self.ctx),
            hold=Flag(self.ctx),
            # Raw (lock-free) shared memory: a SIGKILLed client must not
            # die holding a lock the orchestrator then waits for.
            mem_gen=self.ctx.RawValue("i", 0),
            server_gen=self.ctx.RawValue("i", 0),
            s3_gen=self.ctx.RawValue("i", 0),
            uploading=self.ctx.RawArray("i", 4096),
            downloading=self.ctx.RawArray("i", 4096),
            ready=self.ctx.RawArray("b", 4096),
            go=self.ctx.RawArray("b", 4096),
        )

    def config_text(self, banner: str) -> str:
        return server_config(
            port=self.port,
            passive=self.passive,
            moto_port=self.moto_port,
            local=self.work / "local",
            probe=self.work / "probe",
            control=self.control,
            workers=self.s.workers,
            banner=banner,
        )

    # ------------------------------------------------------------ warm-up, baseline

    def warm_up(self, round_no: int) -> None:
        """Sessions at once (plain and PROT P), each an upload, a download
        and a listing on one mount (two on every mount, of the largest
        size), beside idle ones up to the load's peak: the server's thread
        pools, S3 connections, tables and allocator thresholds grow here,
        before the baseline, not during the load."""
        n = min(self.s.sessions, 256)
        log = OpLog(self.work / f"ops-w{round_no}.jsonl")
        barrier = threading.Barrier(n)
        # Every session logs in at once, but no more data connections are
        # being opened at once than the passive range has ports (a 425
        # otherwise); once open, the transfers overlap.
        opening = threading.BoundedSemaphore(PASSIVE_PORTS * 3 // 4)
        failures: list[str] = []

        def one(i: int) -> None:
            name = f"w{round_no}x{i}"
            try:
                session = Session(self.plan, tls=i % 3 == 0)
            except (OSError, EOFError, ftplib.Error) as exc:
                failures.append(repr(exc))
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(30)
                return
            try:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(30)
                # One mount per session (all of them for the two big ones).
                mounts = self.mounts if i < 2 else [self.mounts[i % len(self.mounts)]]
                for mount in mounts:
                    top = f"/{mount}/o-{name}"
                    path = f"{top}/f.bin"
                    # Two sessions move the largest size of the run: the
                    # allocator's thresholds grow with the blocks it has seen.
                    size = self.s.max_size if i < 2 else 256 * KiB
                    slow = 0.0 if i < 2 else 0.75
                    data: Content = ((round_no * 100000 + i, 0, size),)
                    Run = Callable[[Callable[[int], None]], Outcome]
                    steps: list[tuple[str, str, Run, dict[str, Any]]] = [
                        ("MKD", top, _no_data(ftp_command, session, f"MKD {top}"), {}),
                        (
                            "STOR",
                            path,
                            # Slow (4 chunks 0.75 s apart): the uploads of
                            # all sessions overlap, and the transfer thread
                            # pool grows to what the load can ask of it.
                            partial(ftp_store, session, "STOR", path, data, None, pace=slow),
                            {"c": data},
                        ),
                        ("RETR", path, partial(ftp_retrieve, session, path, None), {"c": data}),
                        ("LIST", top, _no_data(ftp_listing, session, "LIST", top), {}),
                        ("DELE", path, _no_data(ftp_command, session, f"DELE {path}"), {}),
                        ("RMD", top, _no_data(ftp_command, session, f"RMD {top}"), {}),
                    ]
                    for op, p, run, extra in steps:
                        op_id = log.begin(
                            o=name,
                            op=op,
                            p=p,
                            tls=session.tls,
                            lp=session.local_port,
                            gen={"mem": self.shared.mem_gen.value, "s3": self.shared.s3_gen.value},
                            **extra,
                        )
                        with _Gate(opening) as gate:
                            out = run(gate.opened)
                        log.end(
                            op_id,
                            name,
                            code=out.code,
                            err=out.error,
                            opened=out.opened,
                            n=out.nbytes,
                            sha=out.sha,
                        )
                        if not out.ok:
                            failures.append(f"{op} {p}: {out.code} {out.error}")
            finally:
                session.quit()

        # Plain sessions held open meanwhile, so that the server holds as
        # many at once as at the load's peak: what grows with the number of
        # sessions (the thread pools, the loop's and the selector's tables)
        # grows here, not during the load.
        idle: list[Session] = []
        for _ in range(max(0, self.s.sessions + self.s.curl - n)):
            with contextlib.suppress(OSError, EOFError, ftplib.Error):
                idle.append(Session(self.plan, tls=False))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for session in idle:
            session.quit()
        log.close()
        self.event(
            "warm-up", round=round_no, sessions=n, failures=len(failures), first=failures[:3]
        )

    def wait_idle(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = self.server.scrape()
            except OSError:
                time.sleep(0.2)
                continue
            if (
                m.get(("vfsftp_sessions_active", ()), 1) == 0
                and m.get(("vfsftp_transfers_active", ()), 1) == 0
            ):
                return True
            time.sleep(0.2)
        return False

    def settle(self) -> None:
        """Once idle, wait until the worker threads idle for the pools'
        timeout have ended (the idle trim's call, a second into the
        quiet, restarts one thread's): the level of memory an idle server
        keeps, before the load and after it alike."""
        from vfsftp.storage.threads import IDLE_TIMEOUT

        end = time.monotonic() + IDLE_TIMEOUT + 2.5
        counts: dict[int, int] = {}
        while True:
            now_counts = {pid: proc_threads(pid) for pid in self.server.worker_pids()}
            if time.monotonic() >= end and now_counts == counts:
                return
            if time.monotonic() >= end + 20:
                return  # (still changing: measured as it is)
            counts = now_counts
            time.sleep(0.5)

    def steady_tasks(self) -> list[float]:
        """Each worker's asyncio tasks once two scrapes half a second apart
        agree: a task about to end (a closing session's, a scrape's
        neighbour) is not the server's level. A quick soak once read 3 at
        the baseline and 2 after the load, and reported a leak."""
        last: list[float] = []
        for _ in range(20):
            tasks = [m.get(("vfsftp_asyncio_tasks", ()), -1) for m in self.server.scrape_each()]
            if tasks == last:
                break
            last = tasks
            time.sleep(0.5)
        return last

    def measure(self) -> Baseline:
        """RSS, descriptors and asyncio tasks of every worker, when idle
        and settled: the smallest RSS of a few samples over two seconds."""
        self.wait_idle()
        self.settle()
        # Scraped first: the metrics' library loads at the first scrape, and
        # a baseline taken before it would count it as growth.
        tasks = self.steady_tasks()
        rss: dict[int, int] = {}
        for _ in range(5):
            time.sleep(0.4)
            for pid in self.server.worker_pids():
                value = proc_rss(pid)
                rss[pid] = min(rss.get(pid, value), value)
        fds = {pid: proc_fds(pid, self.moto_port) for pid in self.server.worker_pids()}
        threads = {pid: proc_threads(pid) for pid in self.server.worker_pids()}
        if os.environ.get("SOAK_SMAPS"):  # (a memory investigation's aid)
            for pid in self.server.worker_pids():
                if "SOAK_SIGUSR2" in os.environ:  # a handler of one's own dumps a snapshot
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGUSR2)
                with contextlib.suppress(OSError):
                    shutil.copy(f"/proc/{pid}/smaps", self.work / f"smaps-{pid}-{int(now())}")
        return Baseline(now(), rss, fds, tasks, threads)

    def baseline(self, round_no: int) -> None:
        self.warm_up(round_no)
        b = self.measure()
        self.baselines.append(b)
        self.event(
            "baseline",
            rss_mib={p: round(v / MiB, 1) for p, v in b.rss.items()},
            threads=b.threads,
            tasks=b.tasks,
            fds={p: sum(c.values()) for p, c in b.fds.items()},
        )

    # ------------------------------------------------------------ load

    def spawn_client(self, victim: bool = False) -> int:
        index = self.next_index
        self.next_index += 1
        proc = self.ctx.Process(
            target=client_main,
            args=(self.plan, self.shared, index, self.s.threads, victim),
            daemon=True,
        )
        proc.start()
        self.procs[index] = proc
        return index

    def spawn_other(self, target: Callable[..., None], *args: Any) -> Any:
        proc = self.ctx.Process(target=target, args=(self.plan, self.shared, *args), daemon=True)
        proc.start()
        self.others.append(proc)
        return proc

    def monitor(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            sample: dict[str, Any] = {"t": now()}
            with contextlib.suppress(Exception):
                m = self.server.scrape()
                sample["sessions"] = m.get(("vfsftp_sessions_active", ()), 0)
                sample["transfers"] = m.get(("vfsftp_transfers_active", ()), 0)
            with contextlib.suppress(Exception):
                pids = self.server.worker_pids()
                sample["rss"] = sum(proc_rss(p) for p in pids)
                sample["cpu"] = {p: proc_cpu(p) for p in pids}
            with contextlib.suppress(Exception):
                sample["load"] = os.getloadavg()[0]
            self.samples.append(sample)

    def killer(self, victims: list[int], times: list[float], stop: threading.Event) -> None:
        """SIGKILL each victim while it transfers (an upload if one comes
        within 10 s), then start a replacement."""
        for index, when in zip(victims, times, strict=True):
            while now() < when or self.shared.hold.is_set():
                if stop.wait(0.1):
                    return
            proc = self.procs.get(index)
            if proc is None or not proc.is_alive():
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.shared.uploading[index] <= 0:
                time.sleep(0.002)
            time.sleep(random.random() * 0.03)  # somewhere in the middle of it
            if self.shared.uploading[index] <= 0 and self.shared.downloading[index] <= 0:
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline and self.shared.downloading[index] <= 0:
                    time.sleep(0.01)
            up, down = self.shared.uploading[index], self.shared.downloading[index]
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(10)
            record = self.event("kill", index=index, pid=proc.pid, uploading=up, downloading=down)
            self.killed.append(record)
            self.shared.uploading[index] = self.shared.downloading[index] = 0
            if not stop.is_set() and self.spares:
                self.shared.go[self.spares.pop(0)] = 1

    def local_faults(self, text: str, label: str) -> None:
        """/local's faults from now on (faulty+osfs's control file)."""
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.control)
        self.event("local-faults", fault=label)

    def stall(self, index: int) -> None:
        self.shared.go[STALL_SLOT + index] = 1
        self.event("stall", index=index, kind="down" if index % 2 == 0 else "up")

    def reload(self) -> None:
        before = [0.0] * self.s.workers
        with contextlib.suppress(OSError):  # (a server too busy to answer)
            before = [
                m.get(("vfsftp_config_reloads_total", (("result", "ok"),)), 0)
                for m in self.server.scrape_each()
            ]
        self.server.write_config(self.config_text("vfsftp soak, reloaded"))
        self.event("sighup")
        self.server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        ok = False
        while time.monotonic() < deadline and not ok:
            time.sleep(0.2)
            with contextlib.suppress(Exception):
                after = [
                    m.get(("vfsftp_config_reloads_total", (("result", "ok"),)), 0)
                    for m in self.server.scrape_each()
                ]
                ok = all(a > b for a, b in zip(after, before, strict=False))
        banner = ""
        with contextlib.suppress(Exception):
            ftp = ftplib.FTP(timeout=10)
            banner = ftp.connect(HOST, self.port)
            ftp.close()
        self.event("reloaded", ok=ok, banner_changed="reloaded" in banner)
        self.reload_result = ok and "reloaded" in banner

    def moto_client(self) -> Any:
        from botocore.config import Config

        return self.moto.client(Config(retries={"max_attempts": 10, "mode": "standard"}))

    def moto_outage(self, seconds: float) -> None:
        self.event("moto-kill")
        self.moto.kill()
        time.sleep(seconds)
        up = self.moto.start().started_at
        # A new, empty store from the moment it served (which this busy
        # process may read a while later).
        self.event("moto-up", t=up)
        self.event("reset", mount="s3", t=up)
        self.s3 = self.moto_client()
        self.s3.create_bucket(Bucket=BUCKET)
        self.shared.s3_gen.value += 1
        self.event("moto-ready")

    def restart(self) -> None:
        self.shared.hold.set()
        self.event("sigterm")
        self.server.signal(signal.SIGTERM)
        code = self.server.wait(SHUTDOWN_TIMEOUT + 60)
        if code is None:
            self.notes.append("the server did not exit within 60 s of its shutdown timeout")
            self.server.kill()
        self.event("exited", code=code)
        self.exit_codes.append(code)
        self.shared.server_gen.value += 1
        if "mem" in self.mounts:
            self.shared.mem_gen.value += 1
            self.event("reset", mount="mem")
        self.server.start()
        self.event("restarted")
        self.baseline(len(self.baselines))
        self.shared.hold.clear()
        self.event("released")

    def load(self) -> None:
        s = self.s
        n_init = max(4, math.ceil(s.sessions / s.threads))
        n_init += (-n_init) % 4  # a fifth of all processes: a quarter of the first ones
        n_kill = n_init // 4
        self.plan_counts = {"initial": n_init, "killed": n_kill}
        self.exit_codes: list[int | None] = []
        self.reload_result = False
        rng = random.Random(s.seed)
        victims = sorted(rng.sample(range(n_init), n_kill))
        # Every process of the run starts now and waits: Python's start-up
        # is CPU the server and the probe must not share with the load.
        for i in range(n_init):
            self.spawn_client(victim=i in victims)
        self.spares = [self.spawn_client() for _ in range(n_kill)]
        self.spawn_other(probe_main)
        if s.curl:
            self.spawn_other(curl_main, 0, s.curl)
        stalls = 1 if s.quick else 3
        for i in range(2 * stalls):
            self.spawn_other(stall_main, i, "down" if i % 2 == 0 else "up", "/local/seed/big.bin")
        slots = [*self.procs, PROBE_SLOT, *([CURL_SLOT] if s.curl else [])]
        slots += [STALL_SLOT + i for i in range(2 * stalls)]
        deadline = time.monotonic() + 120
        while not all(self.shared.ready[i] for i in slots):
            if time.monotonic() > deadline:
                raise RuntimeError("client processes did not start within 120 s")
            time.sleep(0.05)
        self.t0 = now()
        self.event("load", processes=n_init, threads=s.threads, curl=s.curl)
        stop = threading.Event()
        mon = threading.Thread(target=self.monitor, args=(stop,), daemon=True)
        mon.start()
        self.shared.go[PROBE_SLOT] = 1
        ramp = 0.10 * s.seconds
        for i in range(n_init):
            self.shared.go[i] = 1
            self.sleep_until(self.t0 + ramp * (i + 1) / n_init)
        self.shared.go[CURL_SLOT] = 1
        lo, hi = KILLS_BETWEEN
        times = sorted(self.at(lo + (hi - lo) * (i + rng.random()) / n_kill) for i in range(n_kill))
        kill_thread = threading.Thread(target=self.killer, args=(victims, times, stop), daemon=True)
        kill_thread.start()

        timeline: list[tuple[float, Callable[[], None]]] = []
        timeline += [(STALLS_AT, partial(self.stall, i)) for i in range(2 * stalls)]
        for start, _end, label, text in LOCAL_PHASES:
            timeline.append((start, partial(self.local_faults, text, label)))
        timeline.append((LOCAL_PHASES[-1][1], partial(self.local_faults, "# healed\n", "off")))
        timeline.append((RELOAD_AT, self.reload))
        timeline.append((MOTO_KILL_AT, partial(self.moto_outage, max(3.0, 0.05 * s.seconds))))
        timeline.append((RESTART_AT, self.restart))
        for when, action in sorted(timeline, key=lambda x: x[0]):
            self.sleep_until(self.at(when))
            action()
        self.sleep_until(self.at(STOP_AT))
        self.event("stop")
        self.shared.stop.set()
        stop.set()
        kill_thread.join(30)
        deadline = time.monotonic() + 90
        for proc in [*self.procs.values(), *self.others]:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                self.notes.append(f"a client process (pid {proc.pid}) did not stop: killed")
                proc.kill()
                proc.join(10)
        mon.join(5)
        self.event("stopped")

    # ------------------------------------------------------------ the end state

    def collect(self) -> dict[str, Any]:
        """What is stored now: path -> SHA-256 (and size), per backend;
        temporary files; multipart uploads; then /mem emptied through FTP
        (an RMD fails on a hidden temporary file)."""
        found: dict[str, tuple[str, int]] = {}
        temps: list[str] = []
        root = self.work / "local"
        for dirpath, _, files in os.walk(root):
            for name in files:
                full = Path(dirpath) / name
                virtual = "/local/" + str(full.relative_to(root))
                if name.startswith(UPLOAD_PREFIX):
                    temps.append(virtual)
                    continue
                h = hashlib.sha256()
                with open(full, "rb") as f:
                    while chunk := f.read(MiB):
                        h.update(chunk)
                found[virtual] = (h.hexdigest(), full.stat().st_size)
        multipart: list[str] = []
        s3_error = None
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
                for obj in page.get("Contents", ()):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # a folder marker
                    if key.rsplit("/", 1)[-1].startswith(UPLOAD_PREFIX):
                        temps.append("/s3/" + key)
                        continue
                    body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"]
                    h = hashlib.sha256()
                    while chunk := body.read(MiB):
                        h.update(chunk)
                    found["/s3/" + key] = (h.hexdigest(), obj["Size"])
            for up in self.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
                multipart.append(f"{up['Key']} ({up['UploadId'][:12]}...)")
        except Exception as exc:
            s3_error = repr(exc)
        mem_dirs: list[str] = []
        mem_error = None
        if "mem" in self.mounts:
            self.final_log = OpLog(self.work / "ops-final.jsonl")
            try:
                session = Session(self.plan, tls=False)
                try:
                    self._walk_mem(session, "/mem", found, mem_dirs)
                finally:
                    session.quit()
            except (OSError, EOFError, ftplib.Error) as exc:
                mem_error = repr(exc)
        return {
            "found": found,
            "temps": temps,
            "multipart": multipart,
            "s3_error": s3_error,
            "mem_dirs": mem_dirs,
            "mem_error": mem_error,
        }

    def _walk_mem(
        self, session: Session, folder: str, found: dict[str, tuple[str, int]], dirs: list[str]
    ) -> None:
        session.ascii = True  # mlsd() is retrlines(), which sends TYPE A
        for name, facts in list(session.ftp.mlsd(folder, ["type", "size"])):
            path = f"{folder}/{name}"
            if facts.get("type") == "dir":
                dirs.append(path)
                self._walk_mem(session, path, found, dirs)
            elif facts.get("type") == "file":
                # Logged like a client's download: the transfer log has it too.
                op_id = self.final_log.begin(
                    o="final",
                    op="RETR",
                    p=path,
                    tls=False,
                    lp=session.local_port,
                    gen={"mem": self.shared.mem_gen.value, "s3": self.shared.s3_gen.value},
                )
                out = ftp_retrieve(session, path, None, lambda d: None)
                self.final_log.end(
                    op_id,
                    "final",
                    code=out.code,
                    err=out.error,
                    opened=out.opened,
                    n=out.nbytes,
                    sha=out.sha,
                )
                found[path] = (out.sha or "", out.nbytes if out.code == 226 else -1)

    def empty_mem(self, dirs: list[str], files: Iterable[str]) -> list[str]:
        """Delete /mem's files and folders through FTP; the folders an RMD
        refused (something hidden is left in them)."""
        refused: list[str] = []
        if "mem" not in self.mounts:
            return refused
        session = Session(self.plan, tls=False)
        try:
            for path in files:
                if path.startswith("/mem/"):
                    ftp_command(session, f"DELE {path}")
            for path in sorted(dirs, key=lambda p: -p.count("/")):
                out = ftp_command(session, f"RMD {path}")
                if out.code != 250:
                    refused.append(f"{path}: {out.code} {out.error}")
        finally:
            session.quit()
        return refused

    # ------------------------------------------------------------ run

    def run(self) -> int:
        print(f"soak: work folder {self.work}", flush=True)
        try:
            self.setup()
            self.t0 = now()
            self.baseline(0)
            self.load()
            print("soak: checking", flush=True)
            idle = self.wait_idle(60)
            state = self.collect()
            final_metrics = self.server.scrape()
            final_each = self.server.scrape_each()
            state["refused_rmd"] = self.empty_mem(
                state["mem_dirs"], [p for p in state["found"] if p.startswith("/mem/")]
            )
            after = self.measure()
            self.server.signal(signal.SIGTERM)
            self.exit_codes.append(self.server.wait(SHUTDOWN_TIMEOUT + 60))
            self.event("server-stopped", code=self.exit_codes[-1])
            self.moto.stop()
            report = Checker(self, state, final_metrics, final_each, after, idle).check()
        except BaseException:
            traceback.print_exc()
            print(f"soak: the harness failed; work folder kept: {self.work}", file=sys.stderr)
            self.s.keep = True
            return 2
        finally:
            with contextlib.suppress(Exception):
                self.shared.stop.set()
            for proc in [*self.procs.values(), *self.others]:
                with contextlib.suppress(Exception):
                    if proc.is_alive():
                        proc.kill()
            with contextlib.suppress(Exception):
                self.server.kill()
            with contextlib.suppress(Exception):
                self.moto.kill()
        text = report.render()
        print(text)
        if self.s.output is not None:
            self.s.output.parent.mkdir(parents=True, exist_ok=True)
            self.s.output.write_text(text)
        (self.work / "report.md").write_text(text)
        if report.failed:
            self.s.keep = True
        if self.s.keep:
            print(f"soak: work folder kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        return 1 if report.failed else 0


# ---------------------------------------------------------------- the checks


@dataclass
class Op:
    """One client operation, from its begin and end lines."""

    owner: str
    op: str
    p: str
    p2: str | None
    t0: float
    t1: float | None
    code: int | None
    err: str | None
    opened: bool
    n: int
    sha: str | None
    c: Content | None
    rest: int | None
    tls: bool
    curl: bool
    stall: bool
    lp: int | None
    gen: dict[str, int]
    pid: int
    ended: bool
    maybe_absent: bool = False  # the model allowed "no file" when it began

    @property
    def definite(self) -> bool:
        return self.ended and self.code is not None

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def mounts(self) -> set[str]:
        out = {mount_of(self.p)} if self.p.startswith("/") else set()
        if self.p2:
            out.add(mount_of(self.p2))
        return out

    def describe(self) -> str:
        where = f"{self.p} -> {self.p2}" if self.p2 else self.p
        how = ("curl " if self.curl else "") + ("PROT P" if self.tls else "plain")
        reply = self.code if self.code is not None else (self.err or "no reply")
        return f"{self.op} {where} ({how}, {self.owner}): {reply}"


def load_ops(records: list[dict[str, Any]]) -> tuple[list[Op], list[dict[str, Any]]]:
    begins: dict[tuple[str, int], dict[str, Any]] = {}
    ends: dict[tuple[str, int], dict[str, Any]] = {}
    extra = []
    for r in records:
        if r.get("k") == "b":
            begins[(r["s"], r["id"])] = r
        elif r.get("k") == "e":
            ends[(r["s"], r["id"])] = r
        else:
            extra.append(r)
    ops = []
    for key, b in begins.items():
        e = ends.get(key)
        ops.append(
            Op(
                owner=b["o"],
                op=b["op"],
                p=b["p"],
                p2=b.get("p2"),
                t0=b["t"],
                t1=e["t"] if e else None,
                code=e.get("code") if e else None,
                err=e.get("err") if e else "no end: the client died",
                opened=bool(e.get("opened")) if e else False,
                n=int(e.get("n") or 0) if e else 0,
                sha=e.get("sha") if e else None,
                c=as_content(b.get("c")),
                rest=b.get("rest"),
                tls=bool(b.get("tls")),
                curl=bool(b.get("curl")),
                stall=bool(b.get("stall")),
                lp=b.get("lp"),
                gen=b.get("gen") or {},
                pid=b["pid"],
                ended=e is not None,
            )
        )
    ops.sort(key=lambda o: o.t0)
    return ops, extra


_FILE_OPS = frozenset({"STOR", "APPE", "RETR", "SIZE", "DELE", "RENAME"})
_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) ([\w.]+) \[([^\]]*)\]: (.*)$"
)


@dataclass
class LogRecord:
    t: float
    level: str
    logger: str
    session: str
    message: str
    trace: list[str] = field(default_factory=list)


def read_server_log(path: Path) -> list[LogRecord]:
    records: list[LogRecord] = []
    if not path.exists():
        return records
    for line in path.read_text(errors="replace").splitlines():
        m = _LOG_LINE.match(line)
        if m:
            t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
            records.append(LogRecord(t, m.group(3), m.group(4), m.group(5), m.group(6)))
        elif records:
            records[-1].trace.append(line)
    return records


def p99(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def _mib(n: float) -> str:
    return f"{n / MiB:,.1f} MiB"


@dataclass
class Row:
    name: str
    measured: str
    ok: bool | None  # None: not applicable / information


@dataclass
class Report:
    header: list[str]
    load: list[tuple[str, str]]
    faults: list[tuple[str, str]]
    invariants: list[Row]
    details: dict[str, list[str]]
    notes: list[str]

    @property
    def failed(self) -> bool:
        return any(r.ok is False for r in self.invariants)

    def render(self) -> str:
        out = list(self.header)
        out += ["", "**Load held**", "", "| | |", "|---|--:|"]
        out += [f"| {k} | {v} |" for k, v in self.load]
        out += ["", "**Faults injected**", "", "| fault | what happened |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.faults]
        out += ["", "**Invariants**", "", "| invariant | measured | |", "|---|---|---|"]
        for r in self.invariants:
            verdict = "n/a" if r.ok is None else ("ok" if r.ok else "**BROKEN**")
            out.append(f"| {r.name} | {r.measured} | {verdict} |")
        for name, lines in self.details.items():
            if lines:
                out += ["", f"{name} ({len(lines)}):"]
                out += [f"- {x}" for x in lines[:12]]
                if len(lines) > 12:
                    out.append(f"- ... and {len(lines) - 12} more")
        if self.notes:
            out += ["", "Notes:"] + [f"- {n}" for n in self.notes]
        out.append("")
        out.append(
            "RESULT: "
            + ("FAILED (an invariant is broken)" if self.failed else "all invariants held")
        )
        return "\n".join(out)


class Checker:
    """Replays what the clients did against a model of every path, and reads
    the server's logs, metrics and /proc figures against it."""

    def __init__(
        self,
        soak: Soak,
        state: dict[str, Any],
        final_metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float],
        final_each: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]],
        after: Baseline,
        idle: bool,
    ) -> None:
        self.soak = soak
        self.state = state
        self.metrics = final_metrics
        self.metrics_each = final_each
        self.after = after
        self.idle = idle
        self.ops, self.extra = load_ops(read_oplogs(soak.work))
        self.events = soak.events
        self.log = read_server_log(soak.work / "server.log")
        self.xfer = []
        xfer_path = soak.work / "xfer.jsonl"
        if xfer_path.exists():
            for line in xfer_path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    self.xfer.append(json.loads(line))
        self.probe = []
        probe_path = soak.work / "probe.jsonl"
        if probe_path.exists():
            for line in probe_path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    self.probe.append(json.loads(line))
        self.details: dict[str, list[str]] = collections.defaultdict(list)
        self.rows: list[Row] = []
        self._windows()

    # ------------------------------------------------------------ time windows

    def _first(self, kind: str, **match: Any) -> float | None:
        for e in self.events:
            if e["k"] == kind and all(e.get(k) == v for k, v in match.items()):
                return float(e["t"])
        return None

    def _windows(self) -> None:
        end = now()
        local = [e for e in self.events if e["k"] == "local-faults"]
        self.local_windows: list[tuple[float, float, str]] = []
        for a, b in zip(local, [*local[1:], None], strict=True):
            if a["fault"] != "off":
                self.local_windows.append((a["t"], b["t"] if b else end, a["fault"]))
        kill, ready = self._first("moto-kill"), self._first("moto-ready")
        self.s3_window = (kill, ready) if kill and ready else None
        up = self._first("moto-up")
        #: S3 unreachable: failures must be 451 (then, until the bucket is
        #: back, a 550 is a right answer too)
        self.s3_down = (kill, up) if kill and up else None
        term, released = self._first("sigterm"), self._first("released")
        self.restart_window = (term, released) if term and released else None
        exited = self._first("exited")
        self.shutdown_window = (term, exited) if term and exited else None
        self.resets = [(e["t"], e["mount"]) for e in self.events if e["k"] == "reset"]
        self.killed_at = {e["pid"]: e["t"] for e in self.events if e["k"] == "kill"}
        self.restarts = [e["t"] for e in self.events if e["k"] == "exited"]
        self.gen_at: dict[str, list[float]] = collections.defaultdict(list)
        for t, mount in self.resets:
            self.gen_at[mount].append(t)

    @staticmethod
    def _overlaps(t0: float, t1: float | None, a: float, b: float, margin: float = 0.5) -> bool:
        return t0 <= b + margin and (t1 if t1 is not None else t0 + 120) >= a - margin

    def excuse(self, op: Op) -> str | None:
        """Why a failure of this operation is expected, if it is."""
        if op.stall:
            return "a stalled client"
        if self.restart_window and self._overlaps(op.t0, op.t1, *self.restart_window):
            return "the server restarted"
        if op.code == 425:
            return None  # no data connection: nothing a failing backend explains
        if "local" in op.mounts:
            for a, b, kind in self.local_windows:
                if self._overlaps(op.t0, op.t1, a, b):
                    return f"/local {kind} faults"
        s3 = self.s3_window
        if "s3" in op.mounts and s3 and self._overlaps(op.t0, op.t1, s3[0], s3[1] + 2):
            return "S3 down"
        restarts_before = sum(1 for t in self.restarts if t <= op.t0)
        if op.gen.get("srv", restarts_before) < restarts_before:
            return "a session of the server before its restart"
        for mount in op.mounts & {"s3", "mem"}:
            resets_before = sum(1 for t in self.gen_at[mount] if t <= op.t0)
            if op.gen.get(mount, 0) < resets_before:
                return f"{mount} wiped since the client last looked"
        return None

    # ------------------------------------------------------------ invariant 1

    def replay(self) -> None:
        """The model: path -> the contents it may hold (None: no file)."""
        S: dict[str, set[Any]] = collections.defaultdict(lambda: {None})
        S["/local/seed/big.bin"] = {self.soak.big_content}
        last: dict[str, Op] = {}
        timeline: list[tuple[float, int, Any]] = []
        for op in self.ops:
            if op.definite:
                timeline.append((op.t1 or op.t0, 1, op))
            else:
                timeline.append((op.t0, 1, op))
        for t, mount in self.resets:
            timeline.append((t, 0, mount))
        timeline.sort(key=lambda x: (x[0], x[1]))
        bad_downloads = self.details["downloads that got bytes the model does not allow"]
        for t, kind, item in timeline:
            if kind == 0:
                mount = item
                for p in list(S):
                    if mount_of(p) == mount:
                        S[p] = {None}
                # ambiguous operations in flight may still land after it
                for op in self.ops:
                    if not op.definite and op.t0 < t < self._latest(op) and mount in op.mounts:
                        self._apply(op, S, last, union=True)
                continue
            op = item
            if op.op not in _FILE_OPS:
                continue
            op.maybe_absent = None in S[op.p]
            if op.op == "RETR" and op.definite and op.owner != "final":
                # (the harness's own reading of /mem is checked as files, 1a/1b)
                self._check_download(op, S[op.p], bad_downloads)
            self._apply(op, S, last, union=not op.definite)
        self.model = S
        self.last = last

    def _latest(self, op: Op) -> float:
        """The latest moment an operation without a reply may take effect:
        a few seconds after its client saw the connection fail or died."""
        gone = op.t1 if op.t1 is not None else self.killed_at.get(op.pid, now())
        return gone + 5.0

    def _apply(self, op: Op, S: dict[str, set[Any]], last: dict[str, Op], union: bool) -> None:
        if op.op in ("STOR", "APPE"):
            last[op.p] = op
            if union:
                S[op.p] = S[op.p] | {op.c}
            elif op.code == 226:
                S[op.p] = {op.c}
        elif op.op == "RENAME" and op.p2:
            last[op.p] = last[op.p2] = op
            if not union and op.code == 250:
                S[op.p2], S[op.p] = set(S[op.p]), {None}
            elif union or op.code not in (350, 421, 503, 530, 550, 553):
                # a rename across mounts copies, then deletes: a failure
                # may leave the copy, or lose the original's delete
                S[op.p2] = S[op.p2] | S[op.p]
                S[op.p] = S[op.p] | {None}
        elif op.op == "DELE":
            last[op.p] = op
            if union:
                S[op.p] = S[op.p] | {None}
            elif op.code == 250:
                S[op.p] = {None}

    def _check_download(self, op: Op, allowed: set[Any], bad: list[str]) -> None:
        if op.code == 226:
            rest = op.rest or 0
            for c in allowed:
                if (
                    c is not None
                    and op.n == content_size(c) - rest
                    and op.sha == content_sha(content_suffix_from(c, rest))
                ):
                    return
            bad.append(
                f"{op.describe()}: {op.n} bytes, matching none of {len(allowed)} allowed state(s)"
            )
        elif op.code == 550 and None not in allowed and not self.excuse(op):
            bad.append(f"{op.describe()}: the file should be there")

    def _why_published(self, path: str) -> str:
        """For an upload published without its client hearing the 226:
        when the server published it, and when it read the end of that
        session's control connection (what upload_grace waits for)."""
        done = [
            r
            for r in self.xfer
            if r.get("path") == path and r.get("outcome") == "ok" and r.get("direction") == "i"
        ]
        if not done:
            return ""
        rec = done[-1]
        published = _iso_time(rec["time"])
        ends = [
            r.t
            for r in self.log
            if r.session == rec.get("session") and r.message.startswith("disconnect ")
        ]
        if not ends:
            return "; published, its session's end never logged"
        late = (ends[-1] - published) * 1000
        return (
            f"; published {rec.get('bytes', 0):,} bytes, the end of its control connection"
            f" read {late:,.0f} ms {'after' if late >= 0 else 'before'} that"
        )

    def check_files(self) -> None:
        found: dict[str, tuple[str, int]] = self.state["found"]
        S = self.model
        lost = self.details["uploads with a 226 that are missing or changed"]
        published = self.details["uploads without a 226 that left something"]
        other = self.details["files in a state no operation explains"]
        checked_226 = checked_failed = 0
        for path in sorted(set(S) | set(found)):
            allowed = S.get(path, {None})
            actual = found.get(path)
            shas = {content_sha(c): content_size(c) for c in allowed if c is not None}
            good = (actual is None and None in allowed) or (
                actual is not None and actual[0] in shas
            )
            op = self.last.get(path)
            is_226 = op is not None and op.op in ("STOR", "APPE") and op.definite and op.code == 226
            if op is not None and op.op in ("STOR", "APPE"):
                if is_226:
                    checked_226 += 1
                else:
                    checked_failed += 1
            if good:
                continue
            size = "absent" if actual is None else f"{actual[1]:,} bytes present"
            expect = ", ".join(f"{n:,} bytes" for n in sorted(shas.values())) or "nothing"
            nothing = " or nothing" if None in allowed and shas else ""
            line = f"{path}: {size}; allowed: {expect}{nothing}"
            if op is not None:
                line += f"; last: {op.describe()}"
            if is_226 and len(allowed) == 1:
                lost.append(line)
            elif op is not None and op.op in ("STOR", "APPE") and not is_226:
                published.append(line + self._why_published(path))
            else:
                other.append(line)
        uploads = [o for o in self.ops if o.op in ("STOR", "APPE")]
        ok_uploads = sum(1 for o in uploads if o.definite and o.code == 226)
        self.rows.append(
            Row(
                "1a. every upload answered 226 is there, whole, byte-identical",
                f"{ok_uploads:,} uploads answered 226; {checked_226:,} paths whose last upload "
                f"had a 226 checked on disk, S3, /mem; {len(lost) + len(other)} wrong",
                not lost and not other,
            )
        )
        self.rows.append(
            Row(
                "1b. every upload without a 226 left the old content or nothing",
                f"{len(uploads) - ok_uploads:,} uploads without a 226 "
                f"({sum(1 for o in uploads if not o.ended):,} of them by killed clients); "
                f"{checked_failed:,} paths checked; {len(published)} published",
                not published,
            )
        )
        bad = self.details["downloads that got bytes the model does not allow"]
        downloads = [o for o in self.ops if o.op == "RETR" and o.definite and o.code == 226]
        self.rows.append(
            Row(
                "1c. every download answered 226 got the right bytes",
                f"{len(downloads):,} downloads checked by SHA-256; {len(bad)} wrong",
                not bad,
            )
        )

    # ------------------------------------------------------------ invariant 2

    def check_leftovers(self) -> None:
        st = self.state
        # A temporary file whose removal the (injected) failing disk refused
        # cannot be removed by the server either: explained, listed apart.
        refused = {
            r.message.rsplit(" ", 1)[1]
            for r in self.log
            if r.logger == "vfsftp.faults"
            and r.message.startswith("injected ")
            and " on remove " in r.message
        }
        kept = [t for t in st["temps"] if "/" + t.split("/", 2)[2] in refused]
        temps = [t for t in st["temps"] if t not in kept]
        self.details["temporary upload files left"] += temps
        self.details[
            "temporary files the failing disk refused to delete (injected remove faults)"
        ] += kept
        self.details["folders of /mem an RMD refused (hidden files left)"] += st["refused_rmd"]
        self.details["pending multipart uploads"] += st["multipart"]
        for what in ("s3_error", "mem_error"):
            if st[what]:
                self.details["final state unreadable"].append(f"{what}: {st[what]}")
        where = "/local on disk, S3 keys" + (
            ", /mem by RMD of every folder" if "mem" in self.soak.mounts else ""
        )
        self.rows.append(
            Row(
                "2a. no temporary upload files",
                f"{len(temps) + len(st['refused_rmd'])} ({where}); {len(kept)} more whose "
                "removal an injected EIO refused",
                not temps and not st["refused_rmd"] and not st["mem_error"],
            )
        )
        self.rows.append(
            Row(
                "2b. no pending multipart uploads",
                f"{len(st['multipart'])} (list_multipart_uploads)",
                not st["multipart"] and not st["s3_error"],
            )
        )
        if self.soak.s.workers > 1:
            self.rows.append(
                Row(
                    "2c. quota usage equals a fresh scan",
                    "not checked: with --workers N each worker keeps its own account "
                    "(approximate by design, README)",
                    None,
                )
            )
            return
        found = st["found"]
        lines = []
        drift = False
        for mount in ("local", "mem"):
            if mount not in self.soak.mounts:
                continue
            files = [v for p, v in found.items() if p.startswith(f"/{mount}/")]
            scan = (sum(v[1] for v in files), len(files))
            scope = (("scope", f"mount /{mount}"),)
            gauge = (
                self.metrics.get(("vfsftp_quota_used_bytes", scope)),
                self.metrics.get(("vfsftp_quota_used_files", scope)),
            )
            if gauge[0] is None:
                lines.append(f"/{mount}: no quota account measured")
                continue
            same = int(gauge[0]) == scan[0] and int(gauge[1] or 0) == scan[1]
            drift |= not same
            lines.append(
                f"/{mount}: server {int(gauge[0]):,} B / {int(gauge[1] or 0)} files, "
                f"scan {scan[0]:,} B / {scan[1]} files"
            )
            if not same:
                self.details["quota drift"].append(lines[-1])
        measured = any("server" in line for line in lines)
        self.rows.append(
            Row(
                "2c. quota usage equals a fresh scan",
                "; ".join(lines),
                not drift if measured else None,
            )
        )

    # ------------------------------------------------------------ invariant 3

    def check_resources(self) -> None:
        before = self.soak.baselines[-1]
        after = self.after
        mem_lines, fd_lines, task_lines = [], [], []
        mem_ok = fd_ok = True
        for pid, rss in before.rss.items():
            now_rss = after.rss.get(pid)
            if now_rss is None:
                mem_lines.append(f"worker {pid} gone")
                mem_ok = False
                continue
            growth = now_rss / rss - 1
            mem_ok &= growth <= MEMORY_SLACK
            mem_lines.append(
                f"{_mib(rss)} -> {_mib(now_rss)} ({growth:+.1%}; threads "
                f"{before.threads.get(pid, '?')} -> {after.threads.get(pid, '?')})"
            )
        for pid, kinds in before.fds.items():
            now_kinds = after.fds.get(pid, collections.Counter())
            s3_now = now_kinds.pop("socket to S3", 0)
            s3_before = kinds.get("socket to S3", 0)
            rest_before = {k: v for k, v in kinds.items() if k != "socket to S3"}
            same = dict(now_kinds) == rest_before
            fd_ok &= same and s3_now <= 32
            fd_lines.append(
                f"{sum(rest_before.values())} -> {sum(now_kinds.values())} "
                f"(+ S3 pool {s3_before} -> {s3_now})"
            )
            if not same:
                diff = {
                    k: now_kinds.get(k, 0) - rest_before.get(k, 0)
                    for k in set(now_kinds) | set(rest_before)
                }
                self.details["descriptors not back to baseline"].append(
                    f"worker {pid}: "
                    + ", ".join(f"{k} {v:+d}" for k, v in sorted(diff.items()) if v)
                )
        tasks_ok = before.tasks == after.tasks and len(after.tasks) == self.soak.s.workers
        task_lines = [
            f"{int(a)} -> {int(b)}" for a, b in zip(before.tasks, after.tasks, strict=False)
        ]
        who = "per worker: " if self.soak.s.workers > 1 else ""
        since = (
            "after the restart's warm-up" if len(self.soak.baselines) > 1 else "after the warm-up"
        )
        self.rows.append(
            Row(
                f"3a. server memory within {MEMORY_SLACK:.0%} of its level before the load",
                f"{who}{'; '.join(mem_lines)} (RSS {since}, then after the load"
                + (" and emptying /mem" if "mem" in self.soak.mounts else "")
                + "; each once idle worker threads had ended)",
                mem_ok,
            )
        )
        self.rows.append(
            Row("3b. file descriptors back to baseline", who + "; ".join(fd_lines), fd_ok)
        )
        self.rows.append(
            Row(
                "3c. asyncio tasks back to baseline",
                who + "; ".join(task_lines) + " (vfsftp_asyncio_tasks)",
                tasks_ok,
            )
        )
        if not self.idle:
            self.details["server never idle after the load"].append(
                "sessions or transfers still active after 60 s"
            )

    # ------------------------------------------------------------ invariant 4

    def check_log(self) -> None:
        port_of: dict[str, int] = {}
        injected: list[LogRecord] = []
        for r in self.log:
            if r.message.startswith("connect "):
                with contextlib.suppress(ValueError):
                    port_of[r.session] = int(r.message.rsplit(":", 1)[1])
            elif r.logger == "vfsftp.faults" and r.message.startswith("injected "):
                injected.append(r)
        by_session: dict[str, list[LogRecord]] = collections.defaultdict(list)
        for r in injected:
            by_session[r.session].append(r)
        unexplained = self.details["ERROR lines and tracebacks not explained by an injected fault"]
        errors = [r for r in self.log if r.level in ("ERROR", "CRITICAL")]
        for r in errors:
            near = [i for i in by_session.get(r.session, []) if r.t - 10 <= i.t <= r.t + 1]
            s3 = "/s3" in r.message or any(
                "EndpointConnectionError" in x or "S3 endpoint" in x for x in r.trace
            )
            in_outage = (
                self.s3_window is not None
                and self.s3_window[0] - 1 <= r.t <= self.s3_window[1] + 10
            )
            if near or (s3 and in_outage):
                continue
            first = next((x for x in reversed(r.trace) if x.strip()), "")
            unexplained.append(
                f"{r.level} {r.logger} [{r.session}]: {r.message[:120]} | {first[:160]}"
            )
        stderr = self.soak.work / "server.stderr"
        if stderr.exists() and "Traceback" in stderr.read_text(errors="replace"):
            unexplained.append("a traceback in the server's stderr: " + str(stderr))
        # Each injected fault answered with its reply.
        expected = {"ENOSPC": 452, "EIO": 451}
        by_lp: dict[int, list[Op]] = collections.defaultdict(list)
        for op in self.ops:
            if op.lp:
                by_lp[op.lp].append(op)
        wrong = self.details["injected faults answered with the wrong reply"]
        checked: set[int] = set()
        mapped = unmatched = 0
        for r in injected:
            port = port_of.get(r.session)
            candidates = [
                op
                for op in by_lp.get(port or -1, [])
                if op.t0 - 1 <= r.t <= (op.t1 if op.t1 is not None else op.t0 + 120) + 1
            ]
            if not candidates:
                unmatched += 1  # curl, the probe, a killed client's operation
                continue
            inside = [
                o for o in candidates if o.t0 <= r.t <= (o.t1 if o.t1 is not None else o.t0 + 120)
            ]
            op = min(inside or candidates, key=lambda o: abs(o.t0 - r.t))
            if id(op) in checked:
                continue  # the first fault of an operation decides its reply
            checked.add(id(op))
            if not op.definite:
                unmatched += 1
                continue
            mapped += 1
            name = r.message.split()[1]
            want = expected.get(name)
            if want is not None and op.code != want:
                wrong.append(f"{r.message} -> {op.describe()} (expected {want})")
        # S3 down: 451; a stalled client: 426; the shutdown: 421/426.
        s3_bad = self.details["S3-outage failures answered with another reply"]
        s3_failed = 0
        for op in self.ops:
            if (
                not op.definite
                or op.ok
                or op.stall
                or "s3" not in op.mounts
                or op.code in (350, 425)
            ):
                continue
            if self.s3_down and self.s3_down[0] <= op.t0 <= self.s3_down[1]:
                s3_failed += 1
                # One that ended after the new store came up may have met it
                # before its bucket was back: 550 NoSuchBucket is right then.
                met_new = op.t1 is not None and op.t1 > self.s3_down[1]
                right = (451, 421, 426, 550) if met_new else (451, 421, 426)
                if op.code not in right and not (
                    self.restart_window and self._overlaps(op.t0, op.t1, *self.restart_window)
                ):
                    s3_bad.append(op.describe())
        stall_bad = self.details["stalled transfers not answered 426"]
        stalls = [op for op in self.ops if op.stall and op.op in ("RETR", "STOR")]
        for op in stalls:
            if op.code != 426:
                stall_bad.append(op.describe())
        down_bad = self.details["shutdown replies other than 226/421/426"]
        shut = 0
        if self.shutdown_window:
            for op in self.ops:
                if (
                    op.definite
                    and not op.ok
                    and self._overlaps(op.t0, op.t1, *self.shutdown_window, margin=0)
                ):
                    shut += 1
                    if (
                        op.code not in (421, 426, 350)
                        and not self.excuse_other_than_restart(op)
                        and not self.benign(op)
                    ):
                        down_bad.append(op.describe())
        injected_count = collections.Counter(r.message.split()[1] for r in injected)
        self.injected_count = injected_count
        self.rows.append(
            Row(
                "4a. no ERROR/traceback in the server log but the injected faults",
                f"{len(errors)} ERROR lines, {len(unexplained)} not explained by an injected fault "
                f"or the S3 outage",
                not unexplained,
            )
        )
        self.rows.append(
            Row(
                "4b. each injected fault answered with the right reply",
                f"{mapped} faults traced to their client's reply (ENOSPC 452, EIO 451), "
                f"{len(wrong)} wrong, {unmatched} not traceable (curl, probe, killed clients); "
                f"S3 down: {s3_failed} failures, {len(s3_bad)} not 451; stalls: {len(stalls)}, "
                f"{len(stall_bad)} not 426; shutdown: {shut} failures, {len(down_bad)} not 421/426",
                not wrong and not s3_bad and not stall_bad and not down_bad,
            )
        )

    @staticmethod
    def benign(op: Op) -> bool:
        """A refusal that was right, whatever else happened: an MKD of a
        folder that exists (a client that saw a reset re-makes a folder its
        own MKD made again after it), a 550 for a file the model says may
        be absent."""
        if op.code != 550:
            return False
        if op.op == "MKD":
            return "exists" in (op.err or "")
        return op.op in ("RETR", "SIZE", "DELE", "RENAME") and bool(op.maybe_absent)

    def excuse_other_than_restart(self, op: Op) -> bool:
        window, self.restart_window = self.restart_window, None
        try:
            return self.excuse(op) is not None
        finally:
            self.restart_window = window

    # ------------------------------------------------------------ invariant 5

    def check_accounts(self) -> None:
        client: dict[tuple[str, str], dict[str, Any]] = collections.defaultdict(
            lambda: {"ok": 0, "fail": 0, "amb": 0, "bytes": []}
        )
        for op in self.ops:
            if op.op not in ("STOR", "APPE", "RETR"):
                continue
            c = client[(op.op, op.p)]
            if op.definite and op.code == 226 and (op.ended and (not op.curl or op.err is None)):
                c["ok"] += 1
                c["bytes"].append(op.n)
            elif op.definite and op.opened and not op.curl and (op.code or 0) >= 400:
                c["fail"] += 1
            elif not op.definite or op.curl or op.opened:
                c["amb"] += 1  # killed, cut off, or curl (no reply of its own to read)
        logged: dict[tuple[str, str], dict[str, Any]] = collections.defaultdict(
            lambda: {"ok": 0, "fail": 0, "bytes": []}
        )
        for rec in self.xfer:
            entry = logged[(rec["verb"], rec["path"])]
            if rec["outcome"] == "ok":
                entry["ok"] += 1
                entry["bytes"].append(rec["bytes"])
            else:
                entry["fail"] += 1
        bad = self.details["transfers the log and the clients disagree on"]
        for key in sorted(set(client) | set(logged)):
            c, g = (
                client.get(key, {"ok": 0, "fail": 0, "amb": 0, "bytes": []}),
                logged.get(key, {"ok": 0, "fail": 0, "bytes": []}),
            )
            ok_fits = c["ok"] <= g["ok"] <= c["ok"] + c["amb"]
            fail_fits = (
                c["fail"] <= g["fail"] <= c["fail"] + c["amb"] + (c["ok"] + c["amb"] - g["ok"])
            )
            left = list(g["bytes"])
            missing = []
            for n in c["bytes"]:
                if n in left:
                    left.remove(n)
                else:
                    missing.append(n)
            if not ok_fits or not fail_fits or missing:
                bad.append(
                    f"{key[0]} {key[1]}: clients ok {c['ok']}, failed {c['fail']}, "
                    f"unknown {c['amb']}; "
                    f"log ok {g['ok']}, not ok {g['fail']}"
                    + (f"; 226 byte counts not in the log: {missing}" if missing else "")
                )
        c_ok = sum(v["ok"] for v in client.values())
        g_ok = sum(v["ok"] for v in logged.values())
        g_fail = sum(v["fail"] for v in logged.values())
        ok_bytes = sum(sum(v["bytes"]) for v in client.values())
        # Metrics against the log, for the server running now (counters
        # start at 0 with each process).
        since = self.soak.server.started_at
        want_count: collections.Counter[tuple[str, str, str]] = collections.Counter()
        want_bytes: collections.Counter[tuple[str, str]] = collections.Counter()
        for rec in self.xfer:
            t = _iso_time(rec["time"])
            if t < since:
                continue
            direction = "in" if rec["direction"] == "i" else "out"
            want_count[(rec["mount"], direction, rec["outcome"])] += 1
            want_bytes[(rec["mount"], direction)] += rec["bytes"]
        got_count: collections.Counter[tuple[str, str, str]] = collections.Counter()
        got_bytes: collections.Counter[tuple[str, str]] = collections.Counter()
        for (name, labels), value in self.metrics.items():
            d = dict(labels)
            if name == "vfsftp_transfers_total":
                got_count[(d["mount"], d["direction"], d["outcome"])] += int(value)
            elif name == "vfsftp_transfer_bytes_total":
                got_bytes[(d["mount"], d["direction"])] += int(value)
        metric_bad = self.details["metrics that disagree with the transfer log"]
        for triple in sorted(set(want_count) | set(got_count)):
            if want_count[triple] != got_count[triple]:
                metric_bad.append(
                    f"transfers {triple}: log {want_count[triple]}, metrics {got_count[triple]}"
                )
        for pair in sorted(set(want_bytes) | set(got_bytes)):
            if want_bytes[pair] != got_bytes[pair]:
                metric_bad.append(
                    f"bytes {pair}: log {want_bytes[pair]:,}, metrics {got_bytes[pair]:,}"
                )
        self.rows.append(
            Row(
                "5a. transfer log agrees with what the clients saw",
                f"clients: {c_ok:,} transfers answered 226 ({_mib(ok_bytes)}); log: {g_ok:,} ok, "
                f"{g_fail:,} not ok; {len(bad)} paths disagree",
                not bad,
            )
        )
        self.rows.append(
            Row(
                "5b. metrics agree with the transfer log",
                f"{sum(want_count.values()):,} transfers since the last start, by mount, direction "
                f"and outcome, and their bytes: {len(metric_bad)} differences",
                not metric_bad,
            )
        )

    # ------------------------------------------------------------ invariant 6

    def check_clean(self) -> None:
        bad = self.details["clean operations that failed"]
        counted = 0
        by_code: collections.Counter[str] = collections.Counter()
        for op in self.ops:
            if not op.ended:
                continue  # its client was killed
            counted += 1
            if op.ok or op.code == 350:
                continue
            if self.excuse(op) or self.benign(op):
                continue
            by_code[str(op.code or "no reply")] += 1
            bad.append(op.describe() + (f" [{op.err}]" if op.err and op.code else ""))
        for r in self.extra:
            if r.get("k") == "connect-failed":
                t = r["t"]
                if (
                    self.restart_window
                    and self.restart_window[0] - 1 <= t <= self.restart_window[1] + 2
                ):
                    continue
                by_code["connect failed"] += 1
                bad.append(f"connect/login ({r['o']}): {r['err']}")
        self.rows.append(
            Row(
                "6. clients that broke no rule, on mounts without a fault, were served",
                f"{counted:,} operations; {len(bad)} failed without a fault to explain it"
                + (
                    f" ({', '.join(f'{k}: {v}' for k, v in by_code.most_common())})"
                    if by_code
                    else ""
                ),
                not bad,
            )
        )

    # ------------------------------------------------------------ invariant 7

    def check_probe(self) -> None:
        rw = self.restart_window
        # The restart, and every client logging in again after it, apart.
        samples = [s for s in self.probe if not (rw and rw[0] - 0.5 <= s["t"] <= rw[1] + RECONNECT)]
        failed = [s for s in samples if not s["ok"]]
        parts = []
        ok = True
        windows: list[tuple[str, float, float]] = [("whole run", 0.0, float("inf"))]
        windows += [(f"/local {k}", a, b) for a, b, k in self.local_windows]
        if self.s3_window:
            windows.append(("S3 down", *self.s3_window))
        for label, a, b in windows:
            inside = [s for s in samples if a <= s["t"] <= b and s["ok"]]
            noop = p99([s["s"] for s in inside if s["kind"] == "NOOP"])
            lst = p99([s["s"] for s in inside if s["kind"] == "LIST"])
            ok &= noop < P99_LIMIT and lst < P99_LIMIT
            parts.append(f"{label}: NOOP {noop * 1000:.0f} ms, LIST {lst * 1000:.0f} ms")
        slow = sorted((x for x in samples if x["kind"] == "LIST" and x["ok"]), key=lambda x: x["s"])
        steps = ("pasv", "connect", "reply150", "data", "reply226")
        if len(slow) >= 20:
            top = slow[-max(1, len(slow) // 100) :]  # the slowest 1%
            share = {k: sum(x.get(k, 0.0) for x in top) for k in steps}
            parts.append(
                "the slowest 1% of LISTs spent their time in "
                + ", ".join(f"{k} {share[k] / max(1e-9, sum(share.values())):.0%}" for k in steps)
            )
        for s in failed[:12]:
            self.details["probe requests that failed (outside the restart)"].append(
                f"{s['kind']} at {s['t'] - self.soak.t0:.1f}s"
            )
        where = self.soak.plan.probe_dir
        self.rows.append(
            Row(
                f"7. p99 latency of a NOOP/LIST probe on {where} under {P99_LIMIT * 1000:.0f} ms",
                f"{len(samples):,} probes ({len(failed)} failed); "
                + "; ".join(parts)
                + f" (the restart and the {RECONNECT:g} s of logins after it apart)",
                ok and not failed,
            )
        )

    # ------------------------------------------------------------ the tables

    def tables(self) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
        soak, s = self.soak, self.soak.s
        sessions = [x.get("sessions", 0) for x in self.samples_in_load()]
        rss = [x["rss"] for x in self.samples_in_load() if x.get("rss")]
        busy = self.server_cpu()
        loads = [x["load"] for x in self.samples_in_load() if "load" in x]
        ops = [o for o in self.ops if not o.owner.startswith("w")]
        kinds = collections.Counter(o.op for o in ops)
        transfers = [o for o in ops if o.op in ("STOR", "APPE", "RETR") and o.code == 226]
        up = sum(o.n for o in transfers if o.op != "RETR")
        down = sum(o.n for o in transfers if o.op == "RETR")
        biggest = max((o.n for o in transfers), default=0)
        tls = sum(1 for o in ops if o.tls)
        curl = sum(1 for o in ops if o.curl)
        rest = sum(1 for o in ops if o.rest)
        cross = sum(1 for o in ops if o.op == "RENAME" and o.p2 and mount_of(o.p) != mount_of(o.p2))
        duration = (self._first("stop") or now()) - soak.t0
        header = [
            f"**Soak under faults**, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(soak.t0))}, "
            f"commit {_commit()}, `--workers {s.workers}`"
            f"{f' `--cpu-affinity {s.cpu_affinity}`' if s.cpu_affinity else ''}"
            f"{' `--quick`' if s.quick else ''}, "
            f"{duration:.0f} s of load.",
            "",
            f"Machine: {_machine()}; load average during the run {min(loads, default=0):.1f}-"
            f"{max(loads, default=0):.1f} (the soak's own clients and moto included).",
        ]
        by_op = ", ".join(f"{k} {v:,}" for k, v in kinds.most_common())
        load = [
            (
                "sessions open at the server, peak (metrics, sampled each second)",
                f"{max(sessions, default=0):.0f}",
            ),
            (
                "client sessions at peak (ftplib threads)",
                f"{s.sessions} = {soak.plan_counts['initial']} processes x {s.threads}",
            ),
            (
                "curl clients, latency probe, stalled clients",
                f"{s.curl}, 1, {2 * (1 if s.quick else 3)}",
            ),
            ("operations", f"{len(ops):,} ({len(ops) / max(1.0, duration):.0f}/s): {by_op}"),
            ("mean pause between a session's operations", f"{s.think:g} s"),
            (
                "transfers answered 226",
                f"{len(transfers):,}: {_mib(up)} up, {_mib(down)} down; largest {_mib(biggest)}",
            ),
            (
                "of which PROT P / curl / REST / renames across mounts",
                f"{tls:,} / {curl:,} / {rest:,} / {cross:,} operations",
            ),
            ("passive ports", f"{PASSIVE_PORTS} ({soak.passive[0]}-{soak.passive[1]})"),
            (
                "mounts",
                ", ".join(f"/{m}" for m in soak.mounts) + f"; probe on {soak.plan.probe_dir}",
            ),
            (
                "server RSS during the load",
                f"{_mib(min(rss, default=0))} - {_mib(max(rss, default=0))}",
            ),
            ("server CPU during the load (each process, share of one core)", busy),
        ]
        kills = self.soak.killed
        initial, killed = soak.plan_counts["initial"], len(kills)
        ic = getattr(self, "injected_count", collections.Counter())
        s3_ops = [
            o
            for o in self.ops
            if self.s3_window
            and "s3" in o.mounts
            and self.s3_window[0] <= o.t0 <= self.s3_window[1]
        ]
        term, exited = self._first("sigterm"), self._first("exited")
        released = self._first("released")
        faults = [
            (
                "client processes SIGKILLed mid-transfer",
                f"{killed} of {initial + killed} ({killed / max(1, initial + killed):.0%}); "
                f"{sum(1 for k in kills if k['uploading'] > 0)} while uploading, "
                f"{sum(1 for k in kills if k['uploading'] <= 0 and k['downloading'] > 0)} "
                "while only downloading; "
                f"{sum(1 for o in self.ops if not o.ended and not o.stall):,} operations cut off",
            ),
            (
                "stalled download / stalled upload",
                ", ".join(
                    f"{'down' if o.op == 'RETR' else 'up'}: {o.code or o.err}"
                    for o in self.ops
                    if o.stall and o.op in ("RETR", "STOR")
                )
                + f" (stall_timeout {STALL_TIMEOUT:g} s)",
            ),
            (
                "/local: ENOSPC, then EIO (faulty+osfs control file)",
                f"{ic.get('ENOSPC', 0)} ENOSPC and {ic.get('EIO', 0)} EIO injected, "
                + ", ".join(f"{k} {b - a:.0f} s" for a, b, k in self.local_windows),
            ),
            (
                "SIGHUP reload",
                "reloaded, new banner served" if soak.reload_result else "**reload not confirmed**",
            ),
            (
                "moto SIGKILLed and restarted (a new, empty store)",
                f"down {self.s3_down[1] - self.s3_down[0]:.1f} s; "
                f"{len(s3_ops)} S3 operations began meanwhile"
                if self.s3_down and self.s3_window
                else "not run",
            ),
            (
                "graceful SIGTERM, restart",
                f"exit {soak.exit_codes[0] if soak.exit_codes else '?'} "
                f"after {exited - term:.1f} s; "
                f"clients held {released - term:.1f} s (restart, warm-up, baseline)"
                if term and exited and released
                else "not run",
            ),
        ]
        return header, load, faults

    def server_cpu(self) -> str:
        """Mean and busiest second of each server process's CPU use."""
        per: dict[int, list[float]] = collections.defaultdict(list)
        for a, b in itertools.pairwise(self.samples_in_load()):
            for pid, used in b.get("cpu", {}).items():
                if pid in a.get("cpu", {}):
                    per[pid].append((used - a["cpu"][pid]) / max(1e-3, b["t"] - a["t"]))
        parts = [
            f"mean {sum(v) / len(v):.0%}, busiest second {max(v):.0%}" for v in per.values() if v
        ]
        return "; ".join(parts) or "?"

    def samples_in_load(self) -> list[dict[str, Any]]:
        return list(self.soak.samples)

    def check(self) -> Report:
        self.replay()
        self.check_files()
        self.check_leftovers()
        self.check_resources()
        self.check_log()
        self.check_accounts()
        self.check_clean()
        self.check_probe()
        if self.soak.exit_codes and any(c != 0 for c in self.soak.exit_codes):
            self.details["server exit codes"].append(str(self.soak.exit_codes))
            self.rows.append(Row("server exits 0 after SIGTERM", str(self.soak.exit_codes), False))
        header, load, faults = self.tables()
        return Report(header, load, faults, self.rows, dict(self.details), self.soak.notes)


def _iso_time(text: str) -> float:
    import datetime as dt

    return (
        dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
        .replace(tzinfo=dt.timezone.utc)
        .timestamp()
    )


def _commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "vfsftp"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev + ("+local changes" if dirty else "")
    except OSError:
        return "?"


def _machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        mem = f", {int(m.group(1)) / 1024 / 1024:.0f} GiB RAM" if m else ""
    return (
        f"{model}, {os.cpu_count()} cores{mem}, Linux {os.uname().release}, "
        f"Python {sys.version.split()[0]}, curl {_curl_version()}"
    )


def _curl_version() -> str:
    with contextlib.suppress(OSError):
        out = subprocess.run(
            ["curl", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        return out.split()[1]
    return "?"


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the load (default 3)")
    parser.add_argument("--quick", action="store_true", help="45 s, scaled to the machine (CI)")
    parser.add_argument("--workers", type=int, default=1, help="vfsftp serve --workers N (1 or 2)")
    parser.add_argument(
        "--sessions", type=int, help="client sessions at peak (default 500; --quick: 12 per core)"
    )
    parser.add_argument(
        "--threads", type=int, help="sessions per client process (default 10; --quick: 4)"
    )
    parser.add_argument("--curl", type=int, help="curl clients (default 8; --quick: 2)")
    parser.add_argument(
        "--max-size", type=int, help="largest upload in bytes (default 50 MB; --quick: 8 MB)"
    )
    parser.add_argument(
        "--think",
        type=float,
        help="mean seconds between a session's operations (default: sessions / 100, "
        "about 100 operations a second in all; --quick 0.5)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, config)")
    parser.add_argument("--output", type=Path, help="also write the report there")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the server process (repeatable; e.g. MALLOC_ARENA_MAX=2)",
    )
    parser.add_argument(
        "--cpu-affinity",
        metavar="SPEC",
        help="vfsftp serve --cpu-affinity SPEC (auto, or a CPU list): each worker on one CPU",
    )
    args = parser.parse_args(argv)
    import faulthandler

    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: where is it stuck?
    cores = os.cpu_count() or 1
    quick = args.quick
    settings = Settings(
        seconds=45.0 if quick else args.minutes * 60,
        quick=quick,
        workers=args.workers,
        sessions=args.sessions or (12 * cores if quick else 500),
        threads=args.threads or (4 if quick else 10),
        curl=args.curl if args.curl is not None else (2 if quick else 8),
        max_size=args.max_size or (8 * MiB if quick else 50 * 10**6),
        think=args.think or 0.0,
        seed=args.seed,
        keep=args.keep,
        output=args.output,
        server_env=args.server_env,
        cpu_affinity=args.cpu_affinity,
    )
    if not settings.think:
        # FTP sessions mostly wait (people, batch jobs between files): many
        # held open, a bounded rate of operations.
        settings.think = 0.5 if quick else max(0.5, settings.sessions / 100)
    if shutil.which("curl") is None:
        settings.curl = 0
    print(
        f"soak: {settings.seconds:.0f} s, --workers {settings.workers}, "
        f"{f'--cpu-affinity {settings.cpu_affinity}, ' if settings.cpu_affinity else ''}"
        f"{settings.sessions} sessions at peak ({settings.threads} per process), "
        f"{settings.curl} curl clients, uploads up to {_mib(settings.max_size)}, "
        f"{settings.think:g} s between a session's operations, {cores} cores",
        flush=True,
    )
    return Soak(settings).run()


if __name__ == "__main__":
    sys.exit(main())
