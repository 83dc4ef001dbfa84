#!/usr/bin/env python3
"""Hand-run benchmark: vfsftp against pyftpdlib, side by side, on loopback.

    .venv/bin/python benchmarks/bench.py              # the default set (< 15 min)
    .venv/bin/python benchmarks/bench.py --publish    # same, then README table + RESULTS.md
    .venv/bin/python benchmarks/bench.py --quick      # smoke run (a few minutes)
    .venv/bin/python benchmarks/bench.py --only downloads --target vfsftp-osfs --target vsftpd

With two cores or more, servers and clients run on different CPUs (2
cores: servers on CPU 0, clients on CPU 1); servers alternate round by
round, and each row reports the median and (min-max) of all its samples.

Every server runs as its own process (so client and server never share a
GIL), on a free port of 127.0.0.1, and a fresh server is started for each
benchmark so that one measurement cannot skew the next (memory reuse, page
cache of a previous test's files...). The client is the stdlib ``ftplib`` in
this process, or several processes for the concurrency test.

Targets:
  vfsftp-osfs   vfsftp, an osfs:// mount of a temp folder at /
  pyftpdlib     pyftpdlib's FTPServer + default FTPHandler (sendfile on),
                DummyAuthorizer whose home is a temp folder
  vfsftp-mem    vfsftp, a mem:// mount at / (no pyftpdlib equivalent)

For the ``tls_transfer`` benchmark the same servers speak explicit FTPS with
TLS required on control and data connections: vfsftp with ``server.tls``
(``require_tls``/``require_data_tls``), pyftpdlib with its
``TLS_FTPHandler`` (pyOpenSSL), both with one certificate from a throwaway
trustme CA; the client is ``ftplib.FTP_TLS`` with ``PROT P``.

The result table goes to stdout and to benchmarks/results/latest.md (raw
numbers to latest.json). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import ftplib
import functools
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # the only address this suite ever talks to
USER = "bench"
PASSWORD = "bench"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MiB = 1 << 20
GiB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")
SOCK_TIMEOUT = 60.0  # every client socket operation
VSFTPD = shutil.which("vsftpd") or "/usr/sbin/vsftpd"  # apt-get install vsftpd

# ---------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    big: int  # bytes of the RETR/STOR file
    reps: int  # repetitions per sample of a transfer or listing (each one a value)
    sessions: int  # sequential sessions
    workers: int  # concurrent client processes
    sessions_per_worker: int
    small_count: int
    small_size: int
    list_count: int
    idle_count: int
    c_big: int  # C-client transfer (RETR/STOR)
    c_sessions: int  # C-client sessions, total
    c_session_threads: int  # ... concurrent clients
    c_idle: int  # C-client idle logged-in connections
    c_concurrent: int  # concurrent RETR of c_conc_size each
    c_conc_size: int


FULL = Sizes(
    big=256 * MiB,
    reps=3,
    sessions=300,
    workers=8,
    sessions_per_worker=300,
    small_count=1000,
    small_size=4096,
    list_count=10_000,
    idle_count=500,
    c_big=512 * MiB,
    c_sessions=2000,
    c_session_threads=50,
    c_idle=10_000,  # within the usual 20,000 open files (ftpload raises its soft limit)
    c_concurrent=100,
    c_conc_size=10 * MiB,
)
QUICK = Sizes(
    big=16 * MiB,
    reps=2,
    sessions=40,
    workers=4,
    sessions_per_worker=20,
    small_count=60,
    small_size=4096,
    list_count=500,
    idle_count=40,
    c_big=32 * MiB,
    c_sessions=200,
    c_session_threads=20,
    c_idle=100,
    c_concurrent=10,
    c_conc_size=1 * MiB,
)

TARGETS = ("vfsftp-osfs", "pyftpdlib", "vfsftp-mem", "vsftpd", "vfsftp-uvloop", "vfsftp-2workers")
#: vfsftp-osfs run differently: with `--loop uvloop`, with `--workers 2`
VARIANTS = {"vfsftp-uvloop": ["--loop", "uvloop"], "vfsftp-2workers": ["--workers", "2"]}
#: targets that use more than one core: not confined to the servers' CPUs
MULTICORE = ("vfsftp-2workers",)
#: the default set: RETR with three clients, then the C-client table
CORE_BENCHMARKS = (
    "downloads",
    "c_transfer",
    "c_sessions",
    "c_idle",
    "listing",
    "c_concurrent_retr",
)
#: which targets each benchmark runs against (vsftpd: RETR only, as the C
#: reference); the variants run on c_sessions with --all or --target
BENCH_TARGETS = {
    "downloads": TARGETS[:4],
    "c_sessions": (*TARGETS[:3], *VARIANTS),
}
#: the clients of the downloads benchmark, in the order they run
DL_CLIENTS = ("ftpload", "curl", "lftp")
BENCHMARKS = (
    *CORE_BENCHMARKS,
    "transfer",
    "sessions",
    "sessions_concurrent",
    "small_files",
    "idle_memory",
    "tls_transfer",
)


class SuiteTimeout(Exception):
    pass


# ---------------------------------------------------------------- CPU pinning


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the servers and the clients run on. With two cores or
    more they get disjoint halves (2 cores: server on CPU 0, clients on CPU
    1), so that a client and the server it measures never take turns on
    one core and the scheduler's choice of core is not part of a figure.
    Variants that need every core (``--workers 2``) get all of them."""

    server: frozenset[int] | None
    client: frozenset[int] | None
    all: frozenset[int]
    #: SCHED_FIFO priority of servers and clients (0: the normal scheduler)
    realtime: int = 0

    @classmethod
    def plan(cls, enabled: bool = True, realtime: int = 0) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2:
            return cls(None, None, frozenset(cpus), realtime)
        half = len(cpus) // 2
        return cls(frozenset(cpus[:half]), frozenset(cpus[half:]), frozenset(cpus), realtime)

    def describe(self) -> str:
        rt = f"; SCHED_FIFO priority {self.realtime}" if self.realtime else ""
        if self.server is None or self.client is None:
            return (
                "none (fewer than 2 CPUs, or --no-pin): servers and clients share every core" + rt
            )
        return (
            f"servers on CPU {_cpus(self.server)}, clients on CPU {_cpus(self.client)} "
            f"(vfsftp-2workers: CPU {_cpus(self.all)})" + rt
        )

    def enter(self, cpus: frozenset[int] | None) -> None:
        """Run this process (and what it starts) on ``cpus``, at the
        real-time priority asked for."""
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if self.realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime))

    def server_cpus(self, target: str) -> frozenset[int] | None:
        if self.server is None:
            return None
        return self.all if target in MULTICORE else self.server

    def pin_self(self) -> None:
        """This process, and so every client it starts, on the clients' CPUs."""
        self.enter(self.client)


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


#: set by run_suite (and ab_sessions.py); ServerProcess pins its server to it
PIN = Pinning(None, None, frozenset(os.sched_getaffinity(0)))


# ---------------------------------------------------------------- /proc helpers


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the whole process (every thread), its
    children that ended included (vsftpd runs each session in a child)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields_ = text[text.rindex(")") + 2 :].split()
    # after "pid (comm) ": state is fields_[0]; utime/stime/cutime/cstime are
    # stat fields 14-17
    utime, stime, cutime, cstime = (int(x) for x in fields_[11:15])
    return (utime + cutime) / CLK_TCK, (stime + cstime) / CLK_TCK


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process and its ended children, in seconds."""
    return sum(proc_cpu_split(pid))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def vfsftp_fingerprint() -> str:
    """A short hash of vfsftp's source: other people edit it while a long run
    goes on, and each sample records which version it measured."""
    import hashlib

    h = hashlib.sha1()
    root = REPO / "vfsftp"
    for path in sorted(root.rglob("*.py")):  # the layers' subpackages included
        with contextlib.suppress(OSError):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        import pyftpdlib  # type: ignore[import-untyped]

        pyftpdlib_version = pyftpdlib.__ver__
    except Exception:  # pragma: no cover
        pyftpdlib_version = "?"
    commit = "?"
    with contextlib.suppress(Exception):
        commit = (
            subprocess.run(
                ["git", "--no-optional-locks", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            or "?"
        )
        dirty = subprocess.run(
            [
                "git",
                "--no-optional-locks",
                "-C",
                str(REPO),
                "status",
                "--porcelain",
                "--",
                "vfsftp",
            ],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        if dirty:
            commit += " (+ uncommitted changes in vfsftp/)"
    return {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "kernel": f"{platform.system()} {platform.release()}",
        "pyftpdlib": pyftpdlib_version,
        "vfsftp commit": commit,
    }


# ---------------------------------------------------------------- TLS material


@dataclass(frozen=True)
class TLSFiles:
    """A throwaway CA (trustme) and one server certificate for 127.0.0.1,
    made once per run: vfsftp and pyftpdlib serve the same certificate and
    key, and the client trusts only this CA (full verification, hostname
    included)."""

    cert: Path  # the server's certificate chain, PEM
    key: Path  # its private key, PEM
    ca: Path  # the CA certificate the client trusts

    @classmethod
    def create(cls, folder: Path) -> TLSFiles:
        import trustme

        folder.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        leaf = ca.issue_cert(HOST)
        files = cls(folder / "cert.pem", folder / "key.pem", folder / "ca.pem")
        for i, blob in enumerate(leaf.cert_chain_pems):
            blob.write_to_path(str(files.cert), append=i > 0)
        leaf.private_key_pem.write_to_path(str(files.key))
        ca.cert_pem.write_to_path(str(files.ca))
        return files

    def client_context(self) -> ssl.SSLContext:
        """The client's context: Python's defaults (TLS 1.2+, TLS 1.3
        negotiated here, certificate and hostname checked)."""
        return ssl.create_default_context(cafile=str(self.ca))

    @staticmethod
    def library_versions() -> str:
        versions = f"Python ssl (vfsftp and the client): {ssl.OPENSSL_VERSION}"
        with contextlib.suppress(Exception):
            import OpenSSL  # type: ignore[import-not-found,unused-ignore]  # pyOpenSSL
            from OpenSSL import SSL

            versions += (
                f"; pyOpenSSL {OpenSSL.__version__} (pyftpdlib): "
                f"{SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()}"
            )
        return versions


# ---------------------------------------------------------------- servers


class ServerProcess:
    """One FTP server in its own process, on a free port of 127.0.0.1."""

    def __init__(
        self,
        target: str,
        workdir: Path,
        profile_dir: Path | None = None,
        tag: str = "",
        tls: TLSFiles | None = None,
    ) -> None:
        self.target = target
        self.tls = tls  # explicit FTPS, TLS required on control and data connections
        self.workdir = workdir
        self.root = workdir / "root"  # the served folder (osfs / pyftpdlib)
        self.log_path = workdir / "server.log"
        self.profile_dir = profile_dir
        self.tag = tag
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def local_root(self) -> Path | None:
        """Where files can be created directly, bypassing FTP (None: mem://)."""
        return None if self.target == "vfsftp-mem" else self.root

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def user(self) -> str:
        return "anonymous" if self.target == "vsftpd" else USER

    def _vsftpd_command(self) -> list[str]:
        """vsftpd (Debian's package), anonymous read-only over the same
        kind of folder: the C reference for RETR throughput. Its anonymous
        chroot needs every folder on the way readable by the ftp user."""
        for d in (self.root, *self.root.parents):
            if str(d) in ("/", tempfile.gettempdir()):
                break
            d.chmod(0o755)
        cfg = self.workdir / "vsftpd.conf"
        cfg.write_text(
            "listen=YES\n"
            f"listen_address={HOST}\n"
            f"listen_port={self.port}\n"
            "anonymous_enable=YES\n"
            f"anon_root={self.root}\n"
            "no_anon_password=YES\n"
            "local_enable=NO\n"
            "write_enable=NO\n"
            "seccomp_sandbox=NO\n"
            "background=NO\n"
            "use_sendfile=YES\n"
            "max_clients=0\n"
            "max_per_ip=0\n"
            "secure_chroot_dir=/var/run/vsftpd/empty\n"
        )
        return [VSFTPD, str(cfg)]

    def _command(self) -> list[str]:
        py = sys.executable
        if self.target == "vsftpd":
            return self._vsftpd_command()
        if self.target == "pyftpdlib":
            cmd = [
                py,
                str(Path(__file__).resolve()),
                "_pyftpdlib_server",
                "--home",
                str(self.root),
                "--port",
                str(self.port),
            ]
            if self.tls is not None:
                cmd += ["--certfile", str(self.tls.cert), "--keyfile", str(self.tls.key)]
            return cmd
        mount: str | dict[str, Any] = "osfs://./root"
        if self.target == "vfsftp-mem":
            # (above mem://'s default 256 MiB cap: the files are 512 MiB)
            mount = {"fs": "mem://", "quota": {"max_bytes": "4GiB"}}
        tls = ""
        if self.tls is not None:
            tls = (
                "  tls:\n"
                f"    certificate: {json.dumps(str(self.tls.cert))}\n"
                f"    key: {json.dumps(str(self.tls.key))}\n"
                "    require_tls: true\n"
                "    require_data_tls: true\n"
            )
        cfg = self.workdir / "mounts.yaml"
        cfg.write_text(
            "# written by benchmarks/bench.py\n"
            "server:\n"
            f"  listen: {HOST}\n"
            f"  port: {self.port}\n"
            "  max_connections: 12000\n"
            "  max_connections_per_ip: 12000\n"  # the idle test opens 10,000 from one address
            f"{tls}"
            f"mounts:\n  /: {json.dumps(mount)}\n"
            "users:\n"
            f'  {USER}: {{password: "plaintext:{PASSWORD}"}}\n'
        )
        cmd = [py]
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            cmd += [
                "-m",
                "cProfile",
                "-o",
                str(self.profile_dir / f"{self.tag}-{self.target}.prof"),
            ]
        extra = VARIANTS.get(self.target, [])
        if "--loop" not in extra:
            # asyncio's own loop, as a plain install runs it (uvloop, taken
            # when installed, is the vfsftp-uvloop variant)
            extra = [*extra, "--loop", "asyncio"]
        return [*cmd, "-m", "vfsftp", "serve", "-c", str(cfg), "--port", str(self.port), *extra]

    def start(self) -> ServerProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.pop("PYTHONASYNCIODEBUG", None)
        last = ""
        for _attempt in range(3):  # a free port may be taken between probe and bind
            self.port = free_port()
            cpus = PIN.server_cpus(self.target) or PIN.all
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self._command(),
                    cwd=self.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # before exec: every thread and child process inherits it
                    preexec_fn=functools.partial(PIN.enter, cpus),
                )
            _LIVE.append(self)
            try:
                self._wait_ready()
                return self
            except RuntimeError as exc:
                last = str(exc)
                self.stop()
        raise RuntimeError(f"{self.target} did not start: {last}")

    def _wait_ready(self, tries: int = 150, delay: float = 0.1) -> None:
        assert self.proc is not None
        for _ in range(tries):
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as s:
                    s.settimeout(2)
                    if s.recv(512).startswith(b"220"):
                        return
            except OSError:
                pass
            time.sleep(delay)
        raise RuntimeError(
            f"no 220 greeting on {HOST}:{self.port} after {tries * delay:.0f}s:\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            rc = self.proc.returncode if self.proc is not None else None
            raise RuntimeError(f"{self.target} server died (exit {rc}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(text[-lines:])
        return "(no log)"

    def rss_kb(self) -> int:
        return proc_rss_kb(self.pid)

    def cpu(self) -> float:
        """The server's CPU seconds, its worker processes' included."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """The server's (user, system) CPU seconds, its worker processes'
        included."""
        user, system = proc_cpu_split(self.pid)
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
            for child in children:
                with contextlib.suppress(OSError):
                    u, s = proc_cpu_split(int(child))
                    user, system = user + u, system + s
        return user, system

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            # SIGINT first: both servers exit cleanly on KeyboardInterrupt (and
            # a cProfile wrapper writes its file), then TERM, then KILL.
            for sig, wait in ((signal.SIGINT, 8.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(ValueError):
            _LIVE.remove(self)

    def client(self, timeout: float = SOCK_TIMEOUT) -> ftplib.FTP:
        return login(self.port, timeout, self.tls)


_LIVE: list[ServerProcess] = []
_WORKERS: list[mp.process.BaseProcess] = []


def _kill_everything() -> None:
    for w in list(_WORKERS):
        with contextlib.suppress(Exception):
            if w.is_alive():
                w.terminate()
                w.join(3)
            if w.is_alive():
                w.kill()
                w.join(3)
        with contextlib.suppress(ValueError):
            _WORKERS.remove(w)
    for srv in list(_LIVE):
        with contextlib.suppress(Exception):
            srv.stop()


def run_pyftpdlib_server(
    home: str, port: int, certfile: str | None = None, keyfile: str | None = None
) -> None:
    """Entry point of the pyftpdlib server process (hidden sub-command)."""
    if not certfile:
        # pyftpdlib.handlers imports its FTPS handler, and with it pyOpenSSL
        # and cryptography (~11 MB of RSS), whenever pyOpenSSL is installed:
        # the plain server never uses them, and its memory figures would
        # depend on what else the virtualenv holds.
        sys.modules["OpenSSL"] = None  # type: ignore[assignment]
    from pyftpdlib.authorizers import DummyAuthorizer  # type: ignore[import-untyped]
    from pyftpdlib.handlers import FTPHandler  # type: ignore[import-untyped]
    from pyftpdlib.servers import FTPServer  # type: ignore[import-untyped]

    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, home, perm="elradfmwMT")
    handler = FTPHandler  # the default handler, sendfile on (its default)
    if certfile:
        # Explicit FTPS (needs pyOpenSSL): TLS required before USER and for
        # every data connection, as vfsftp's require_tls/require_data_tls.
        from pyftpdlib.handlers import TLS_FTPHandler

        handler = TLS_FTPHandler
        handler.certfile = certfile
        handler.keyfile = keyfile
        handler.tls_control_required = True
        handler.tls_data_required = True
    handler.authorizer = authorizer
    server = FTPServer((HOST, port), handler)
    server.max_cons = 12000  # same as vfsftp's config above (default 512)
    server.max_cons_per_ip = 0  # no per-address limit (its default)
    server.serve_forever()


# ---------------------------------------------------------------- client helpers


def login(port: int, timeout: float = SOCK_TIMEOUT, tls: TLSFiles | None = None) -> ftplib.FTP:
    if tls is None:
        ftp = ftplib.FTP()
        ftp.connect(HOST, port, timeout=timeout)
        ftp.login(USER, PASSWORD)
        return ftp
    ftps = ftplib.FTP_TLS(context=tls.client_context())
    ftps.connect(HOST, port, timeout=timeout)
    try:
        ftps.login(USER, PASSWORD)  # AUTH TLS first (ftplib does it), then USER/PASS
        ftps.prot_p()  # PBSZ 0 + PROT P: every data connection over TLS
    except BaseException:
        ftps.close()
        raise
    return ftps


def one_session(port: int) -> None:
    ftp = ftplib.FTP()
    ftp.connect(HOST, port, timeout=SOCK_TIMEOUT)
    try:
        ftp.login(USER, PASSWORD)
        ftp.voidcmd("NOOP")
        ftp.quit()
    finally:
        ftp.close()


_RECV_BUF = bytearray(1 * MiB)
#: "TLSv1.3 TLS_AES_256_GCM_SHA384": what the data connections negotiated
TLS_SEEN: set[str] = set()


def _end_tls(conn: socket.socket) -> None:
    """As ftplib's retrbinary/storbinary: a TLS data connection ends with
    close_notify (vfsftp refuses an upload without it)."""
    if isinstance(conn, ssl.SSLSocket):
        cipher = conn.cipher()
        TLS_SEEN.add(f"{conn.version()} {cipher[0] if cipher else '?'}")
        conn.unwrap()


def retr(ftp: ftplib.FTP, name: str) -> int:
    """RETR into nothing; returns the bytes received."""
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"RETR {name}")
    n = 0
    buf = _RECV_BUF
    with conn:
        recv_into = conn.recv_into
        while True:
            k = recv_into(buf)
            if not k:
                break
            n += k
        _end_tls(conn)
    ftp.voidresp()
    return n


def stor(ftp: ftplib.FTP, name: str, size: int, payload: bytes) -> None:
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"STOR {name}")
    view = memoryview(payload)
    with conn:
        left = size
        while left:
            k = min(left, len(view))
            conn.sendall(view[:k])
            left -= k
        _end_tls(conn)
    ftp.voidresp()


def listing(ftp: ftplib.FTP, cmd: str) -> tuple[int, int]:
    """LIST/MLSD as ftplib does it (TYPE A first); returns (bytes, lines)."""
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd(cmd)
    chunks = []
    with conn:
        while True:
            b = conn.recv(1 << 16)
            if not b:
                break
            chunks.append(b)
    ftp.voidresp()
    data = b"".join(chunks)
    return len(data), data.count(b"\n")


def _session_worker(port: int, n: int, go: Any, out: Any) -> None:
    """A concurrent client process: n sessions after the start signal."""
    errors = 0
    first_error = ""
    if not go.wait(120):
        out.put((0.0, 0.0, 0, n, "start signal never came"))
        return
    t0 = time.monotonic()
    done = 0
    for _ in range(n):
        try:
            one_session(port)
            done += 1
        except Exception as exc:
            errors += 1
            if not first_error:
                first_error = f"{type(exc).__name__}: {exc}"
    out.put((t0, time.monotonic(), done, errors, first_error))


# ---------------------------------------------------------------- benchmarks
# Each takes a started server and the sizes and returns {metric: value}.
# "errors" (a string) is reported below the table.


def bench_transfer(srv: ServerProcess, z: Sizes, prefix: str = "") -> dict[str, Any]:
    """STOR then RETR of z.big bytes; metric names start with ``prefix``."""
    payload = os.urandom(4 * MiB)
    ftp = srv.client()
    res: dict[str, Any] = {}
    try:
        rates = []
        cpu_total = 0.0
        for _ in range(z.reps):
            c0, t0 = srv.cpu(), time.perf_counter()
            stor(ftp, "big.bin", z.big, payload)
            dt, cpu_total = time.perf_counter() - t0, cpu_total + srv.cpu() - c0
            rates.append(z.big / dt / 1e6)
        ftp.voidcmd("TYPE I")
        size = ftp.size("big.bin")
        if size != z.big:
            raise RuntimeError(f"STOR stored {size} bytes, expected {z.big}")
        res[prefix + "stor_mbps"] = rates
        res[prefix + "stor_cpu_per_gib"] = cpu_total / (z.big * z.reps / GiB)

        rates = []
        cpu_total = 0.0
        for _ in range(z.reps):
            c0, t0 = srv.cpu(), time.perf_counter()
            n = retr(ftp, "big.bin")
            dt, cpu_total = time.perf_counter() - t0, cpu_total + srv.cpu() - c0
            if n != z.big:
                raise RuntimeError(f"RETR returned {n} bytes, expected {z.big}")
            rates.append(z.big / dt / 1e6)
        res[prefix + "retr_mbps"] = rates
        res[prefix + "retr_cpu_per_gib"] = cpu_total / (z.big * z.reps / GiB)
        ftp.quit()
    finally:
        ftp.close()
    return res


def bench_tls_transfer(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    """The transfer benchmark over explicit FTPS with PROT P (the server is
    started with TLS required: see ServerProcess.tls)."""
    if srv.tls is None:
        raise RuntimeError("tls_transfer needs a server started with TLS")
    TLS_SEEN.clear()
    res = bench_transfer(srv, z, prefix="tls_")
    res["note"] = ", ".join(sorted(TLS_SEEN)) or "no TLS data connection seen"
    return res


def bench_sessions(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    for _ in range(5):  # warm-up: first login, lazy imports
        one_session(srv.port)
    errors = 0
    first = ""
    c0, t0 = srv.cpu(), time.perf_counter()
    for _ in range(z.sessions):
        try:
            one_session(srv.port)
        except Exception as exc:
            errors += 1
            first = first or f"{type(exc).__name__}: {exc}"
    dt, cpu = time.perf_counter() - t0, srv.cpu() - c0
    ok = z.sessions - errors
    res: dict[str, Any] = {
        "sessions_seq": ok / dt,
        "session_cpu_ms": cpu / max(ok, 1) * 1000,
    }
    if errors:
        res["errors"] = f"sequential sessions: {errors}/{z.sessions} failed, first: {first}"
    return res


def bench_sessions_concurrent(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    go = ctx.Event()
    out = ctx.Queue()
    workers = [
        ctx.Process(
            target=_session_worker, args=(srv.port, z.sessions_per_worker, go, out), daemon=True
        )
        for _ in range(z.workers)
    ]
    for w in workers:
        _WORKERS.append(w)
        w.start()
    try:
        one_session(srv.port)  # warm-up
        time.sleep(0.5)  # let the workers reach the barrier
        c0 = srv.cpu()
        go.set()
        results = []
        deadline = time.monotonic() + 600
        for _ in workers:
            results.append(out.get(timeout=max(1.0, deadline - time.monotonic())))
        cpu = srv.cpu() - c0
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.terminate()
                w.join(3)
            with contextlib.suppress(ValueError):
                _WORKERS.remove(w)
    start = min(r[0] for r in results if r[0])
    end = max(r[1] for r in results)
    done = sum(r[2] for r in results)
    errors = sum(r[3] for r in results)
    res: dict[str, Any] = {
        "sessions_conc": done / (end - start),
        "session_conc_cpu_ms": cpu / max(done, 1) * 1000,
    }
    if errors:
        firsts = "; ".join(sorted({r[4] for r in results if r[4]}))
        res["errors"] = f"concurrent sessions: {errors}/{done + errors} failed, e.g. {firsts}"
    return res


def bench_small_files(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    payload = os.urandom(z.small_size)
    ftp = srv.client()
    try:
        ftp.mkd("small")
        ftp.cwd("small")
        names = [f"f{i:05d}.bin" for i in range(z.small_count)]
        t0 = time.perf_counter()
        for name in names:
            stor(ftp, name, z.small_size, payload)
        stor_rate = z.small_count / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for name in names:
            n = retr(ftp, name)
            if n != z.small_size:
                raise RuntimeError(f"RETR {name}: {n} bytes, expected {z.small_size}")
        retr_rate = z.small_count / (time.perf_counter() - t0)
        ftp.quit()
    finally:
        ftp.close()
    return {"small_stor": stor_rate, "small_retr": retr_rate}


def bench_listing(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    ftp = srv.client()
    res: dict[str, Any] = {}
    try:
        local = srv.local_root
        t0 = time.perf_counter()
        if local is not None:
            d = local / "many"
            d.mkdir()
            for i in range(z.list_count):
                (d / f"file-{i:05d}.dat").write_bytes(b"x" * (i % 97))
        else:  # mem:// can only be filled over FTP
            ftp.mkd("many")
            ftp.voidcmd("TYPE I")
            for i in range(z.list_count):
                # ALLO: vfsftp publishes an upload that brought the size it
                # announced at once, not after upload_grace (0.1 s each)
                ftp.sendcmd(f"ALLO {i % 97}")
                stor(ftp, f"many/file-{i:05d}.dat", i % 97, b"x" * 97)
        res["list_setup_s"] = time.perf_counter() - t0
        for verb, key in (("LIST", "list_ms"), ("MLSD", "mlsd_ms")):
            times = []
            for _ in range(z.reps):
                t0 = time.perf_counter()
                _nbytes, lines = listing(ftp, f"{verb} many")
                times.append((time.perf_counter() - t0) * 1000)
                if lines < z.list_count:
                    raise RuntimeError(f"{verb}: {lines} lines for {z.list_count} files")
            res[key] = times
        ftp.quit()
    finally:
        ftp.close()
    return res


def bench_idle_memory(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    for _ in range(5):
        one_session(srv.port)
    time.sleep(0.5)
    rss0 = srv.rss_kb()
    conns: list[ftplib.FTP] = []
    errors = 0
    first = ""
    try:
        for _ in range(z.idle_count):
            try:
                conns.append(login(srv.port))
            except Exception as exc:
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"
        time.sleep(1.0)
        rss1 = srv.rss_kb()
        # every connection still answers
        dead = 0
        for c in conns:
            try:
                c.voidcmd("NOOP")
            except Exception:
                dead += 1
        rss2 = srv.rss_kb()
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                c.quit()
            c.close()
    n = len(conns)
    res: dict[str, Any] = {
        "idle_kb_per_conn": (rss1 - rss0) / max(n, 1),
        "idle_kb_per_conn_after_noop": (rss2 - rss0) / max(n, 1),
        "rss_base_mb": rss0 / 1024,
    }
    if errors or dead:
        res["errors"] = f"idle connections: {errors} logins failed ({first}), {dead} dead at NOOP"
    return res


# ---------------------------------------------------------------- C client
# benchmarks/ftpload.c: a small pthreads FTP client, so that on a 2-core box
# the client costs far less CPU than the server it measures.

_FTPLOAD: list[Path] = []


def ftpload() -> Path:
    """Build ftpload.c once per run (cc -O2), into a temp folder."""
    if not _FTPLOAD:
        out = Path(tempfile.mkdtemp(prefix="vfsftp-ftpload-")) / "ftpload"
        subprocess.run(
            ["cc", "-O2", "-pthread", "-o", str(out), str(HERE / "ftpload.c")],
            check=True,
            timeout=120,
        )
        _FTPLOAD.append(out)
    return _FTPLOAD[0]


def run_ftpload(srv: ServerProcess, *args: str, timeout: float = 600) -> dict[str, str]:
    """Run one ftpload command against srv; its "k=v ..." line as a dict."""
    proc = subprocess.run(
        [str(ftpload()), args[0], HOST, str(srv.port), srv.user, PASSWORD, *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    out = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
    if proc.returncode != 0 or "ok" not in out:
        raise RuntimeError(f"ftpload {args[0]} failed ({proc.returncode}): {proc.stderr[-300:]}")
    return out


def make_file(srv: ServerProcess, name: str, size: int) -> None:
    """A file of ``size`` random-ish bytes in the served root (over FTP for
    mem://, directly on disk otherwise)."""
    block = os.urandom(min(size, 4 * MiB))
    if srv.local_root is None:
        ftp = srv.client()
        try:
            stor(ftp, name, size, block)
            ftp.quit()
        finally:
            ftp.close()
        return
    with open(srv.local_root / name, "wb") as f:
        left = size
        while left:
            k = min(left, len(block))
            f.write(block[:k])
            left -= k
    (srv.local_root / name).chmod(0o644)


def bench_c_transfer(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    """STOR of z.c_big bytes with the C client, z.reps times (each timed
    from the command to the 226). RETR is the downloads benchmark."""
    return _c_transfer_rows(srv, z, "stor", "up.bin")


def _c_transfer_rows(srv: ServerProcess, z: Sizes, verb: str, name: str) -> dict[str, Any]:
    """``c_<verb>_mbps`` (every repetition) and ``c_<verb>_cpu_per_gib``."""
    rates, cpu = [], 0.0
    for _ in range(z.reps):
        c0 = srv.cpu()
        out = run_ftpload(srv, verb, name, str(z.c_big))
        cpu += srv.cpu() - c0
        if out["ok"] != "1":
            raise RuntimeError(f"{verb.upper()} failed: {out.get('first_error')}")
        rates.append(z.c_big / float(out["seconds"]) / 1e6)
    return {
        f"c_{verb}_mbps": rates,
        f"c_{verb}_cpu_per_gib": cpu / (z.c_big * z.reps / GiB),
    }


def _client_run(cmd: list[str], what: str, timeout: float = 300) -> tuple[str, float]:
    """Run a client command; its stdout and wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    return proc.stdout, wall


def _lftp(srv: ServerProcess, name: str) -> list[str]:
    return [
        "lftp",
        "-c",
        "set net:max-retries 1; set net:timeout 60; set xfer:clobber yes; "
        f"open -u {srv.user},{PASSWORD} -p {srv.port} {HOST}; get {name} -o /dev/null",
    ]


def download_seconds(srv: ServerProcess, client: str, name: str, size: int) -> float:
    """Seconds one RETR of ``name`` (``size`` bytes, into nothing) takes with
    ``client``, each timed as closely as it lets us: ftpload from the
    command to the 226; curl from its pretransfer point (login, TYPE and
    EPSV done) to its end; lftp, which reports no timings, by its process's
    wall time (the caller subtracts what a 1-byte file costs)."""
    if client == "ftpload":
        out = run_ftpload(srv, "retr", name, str(size))
        if out["ok"] != "1" or int(out["bytes"]) != size:
            raise RuntimeError(f"ftpload RETR failed: {out.get('first_error')}")
        return float(out["seconds"])
    if client == "curl":
        url = f"ftp://{srv.user}:{PASSWORD}@{HOST}:{srv.port}/{name}"
        text, _ = _client_run(
            [
                "curl",
                "-sS",
                "--max-time",
                "300",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download} %{time_pretransfer} %{time_total}",
                url,
            ],
            "curl",
        )
        got, pre, total = text.split()
        if int(got) != size:
            raise RuntimeError(f"curl got {got} bytes, expected {size}")
        return float(total) - float(pre)
    if client == "lftp":
        return _client_run(_lftp(srv, name), "lftp")[1]
    raise ValueError(client)


def bench_downloads(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    """RETR of one z.c_big file, z.reps times with each of DL_CLIENTS
    (ftpload.c, curl, lftp), into nothing. The file is made first, untimed,
    the same way for every server, and read once before the timed runs (in
    the page cache for all). lftp's rate is over its wall time minus the
    median wall time of three fetches of a 1-byte file (process start,
    login, FEAT...)."""
    make_file(srv, "big.bin", z.c_big)
    make_file(srv, "one.bin", 1)
    download_seconds(srv, "ftpload", "big.bin", z.c_big)  # warm-up
    res: dict[str, Any] = {}
    lftp_base = statistics.median(download_seconds(srv, "lftp", "one.bin", 1) for _ in range(3))
    for client in DL_CLIENTS:
        rates, cpu = [], 0.0
        for _ in range(z.reps):
            c0 = srv.cpu()
            dt = download_seconds(srv, client, "big.bin", z.c_big)
            cpu += srv.cpu() - c0
            if client == "lftp":
                dt -= lftp_base
            rates.append(z.c_big / max(dt, 1e-6) / 1e6)
        res[f"dl_{client}_mbps"] = rates
        if srv.target != "vsftpd":
            # vsftpd serves each session in child processes whose CPU /proc
            # does not give its parent: no figure rather than a false one
            res[f"dl_{client}_cpu_per_gib"] = cpu / (z.c_big * z.reps / GiB)
    return res


def bench_c_sessions(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    """z.c_session_threads concurrent clients, z.c_sessions sessions in all:
    connect, USER/PASS, PWD, TYPE I, EPSV, RETR of a 4 KiB file, QUIT."""
    make_file(srv, "small.bin", 4096)
    run_ftpload(srv, "sessions", "small.bin", "5", "20")  # warm-up
    c0 = srv.cpu()
    out = run_ftpload(srv, "sessions", "small.bin", str(z.c_session_threads), str(z.c_sessions))
    cpu = srv.cpu() - c0
    ok, failed = int(out["ok"]), int(out["fail"])
    res: dict[str, Any] = {
        "c_sessions_per_s": ok / float(out["seconds"]),
        "c_session_cpu_ms": cpu / max(ok, 1) * 1000,
    }
    if failed:
        res["errors"] = f"sessions: {failed}/{ok + failed} failed, first: {out['first_error']}"
    return res


def bench_c_idle(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    """z.c_idle logged-in control connections left idle: server RSS growth
    per connection (then a NOOP on each checks they are all alive)."""
    for _ in range(5):
        one_session(srv.port)
    time.sleep(0.5)
    rss0 = srv.rss_kb()
    proc = subprocess.Popen(
        [str(ftpload()), "idle", HOST, str(srv.port), srv.user, PASSWORD, str(z.c_idle)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready = proc.stdout.readline()
        time.sleep(1.0)
        rss1 = srv.rss_kb()
        proc.stdin.close()
        final = proc.stdout.read().strip().splitlines()
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first = dict(kv.split("=", 1) for kv in ready.split() if "=" in kv)
    last = dict(kv.split("=", 1) for kv in (final[-1] if final else "").split() if "=" in kv)
    ok = int(first.get("ok", 0))
    res: dict[str, Any] = {
        "c_idle_kib_per_conn": (rss1 - rss0) / max(ok, 1) * 1000 / 1024,
        "c_idle_rss_base_mb": rss0 / 1024,
    }
    failed, dead = int(first.get("fail", 0)), int(last.get("dead", 0))
    if failed or dead or ok != z.c_idle:
        res["errors"] = (
            f"idle: {failed} logins failed ({last.get('first_error', '')}), {dead} dead at NOOP"
        )
    return res


def bench_c_concurrent_retr(srv: ServerProcess, z: Sizes) -> dict[str, Any]:
    """z.c_concurrent sessions at once, each RETR of one z.c_conc_size file:
    total MB/s from the first connect to the last 226."""
    make_file(srv, "ten.bin", z.c_conc_size)
    n = z.c_concurrent
    c0 = srv.cpu()
    out = run_ftpload(srv, "sessions", "ten.bin", str(n), str(n))
    cpu = srv.cpu() - c0
    ok = int(out["ok"])
    res: dict[str, Any] = {
        "c_conc_mbps": int(out["bytes"]) / float(out["seconds"]) / 1e6,
        "c_conc_cpu_per_gib": cpu / max(int(out["bytes"]) / GiB, 1e-9),
    }
    if ok != n:
        res["errors"] = f"concurrent RETR: {n - ok}/{n} failed, first: {out['first_error']}"
    return res


BENCH_FUNCS: dict[str, Callable[[ServerProcess, Sizes], dict[str, Any]]] = {
    "transfer": bench_transfer,
    "sessions": bench_sessions,
    "sessions_concurrent": bench_sessions_concurrent,
    "small_files": bench_small_files,
    "listing": bench_listing,
    "idle_memory": bench_idle_memory,
    "tls_transfer": bench_tls_transfer,
    "c_transfer": bench_c_transfer,
    "downloads": bench_downloads,
    "c_sessions": bench_c_sessions,
    "c_idle": bench_c_idle,
    "c_concurrent_retr": bench_c_concurrent_retr,
}


# ---------------------------------------------------------------- report


@dataclass
class Metric:
    key: str
    bench: str
    label: str
    unit: str
    higher_is_better: bool
    fmt: str = "{:,.0f}"


def metrics(z: Sizes) -> list[Metric]:
    big = f"{z.big // MiB} MiB"
    cbig = f"{z.c_big // MiB} MiB"
    dl_names = {"ftpload": "C client", "curl": "curl", "lftp": "lftp"}
    downloads = [
        m
        for client in DL_CLIENTS
        for m in (
            Metric(
                f"dl_{client}_mbps", "downloads", f"RETR {cbig}, {dl_names[client]}", "MB/s", True
            ),
            Metric(
                f"dl_{client}_cpu_per_gib", "downloads", "  server CPU", "s/GiB", False, "{:.2f}"
            ),
        )
    ]
    return [
        *downloads,
        Metric("c_stor_mbps", "c_transfer", f"STOR {cbig} (C client)", "MB/s", True),
        Metric("c_stor_cpu_per_gib", "c_transfer", "  server CPU", "s/GiB", False, "{:.2f}"),
        Metric(
            "c_sessions_per_s",
            "c_sessions",
            f"Sessions: {z.c_session_threads} concurrent clients, {z.c_sessions:,} sessions "
            "(login, PWD, TYPE I, EPSV, RETR 4 KiB, QUIT)",
            "sessions/s",
            True,
        ),
        Metric("c_session_cpu_ms", "c_sessions", "  server CPU per session", "ms", False, "{:.2f}"),
        Metric(
            "c_idle_kib_per_conn",
            "c_idle",
            f"{z.c_idle:,} idle logged-in connections",
            "KiB RSS/conn",
            False,
            "{:.2f}",
        ),
        Metric("c_idle_rss_base_mb", "c_idle", "  server RSS before", "MB", False, "{:.1f}"),
        Metric(
            "c_conc_mbps",
            "c_concurrent_retr",
            f"{z.c_concurrent} concurrent RETR of {z.c_conc_size // MiB} MiB",
            "MB/s total",
            True,
        ),
        Metric("c_conc_cpu_per_gib", "c_concurrent_retr", "  server CPU", "s/GiB", False, "{:.2f}"),
        Metric("retr_mbps", "transfer", f"RETR {big}", "MB/s", True),
        Metric("retr_cpu_per_gib", "transfer", "RETR server CPU", "s/GiB", False, "{:.2f}"),
        Metric("stor_mbps", "transfer", f"STOR {big}", "MB/s", True),
        Metric("stor_cpu_per_gib", "transfer", "STOR server CPU", "s/GiB", False, "{:.2f}"),
        Metric(
            "sessions_seq", "sessions", f"Sessions, {z.sessions} sequential", "sessions/s", True
        ),
        Metric("session_cpu_ms", "sessions", "  server CPU per session", "ms", False, "{:.2f}"),
        Metric(
            "sessions_conc",
            "sessions_concurrent",
            f"Sessions, {z.workers} client procs x {z.sessions_per_worker}",
            "sessions/s",
            True,
        ),
        Metric(
            "session_conc_cpu_ms",
            "sessions_concurrent",
            "  server CPU per session",
            "ms",
            False,
            "{:.2f}",
        ),
        Metric(
            "small_stor",
            "small_files",
            f"Small files STOR {z.small_count} x {z.small_size // 1024} KiB",
            "files/s",
            True,
        ),
        Metric(
            "small_retr",
            "small_files",
            f"Small files RETR {z.small_count} x {z.small_size // 1024} KiB",
            "files/s",
            True,
        ),
        Metric(
            "list_ms",
            "listing",
            f"LIST of {z.list_count:,} files",
            "ms",
            False,
            "{:,.1f}",
        ),
        Metric(
            "mlsd_ms",
            "listing",
            f"MLSD of {z.list_count:,} files",
            "ms",
            False,
            "{:,.1f}",
        ),
        Metric(
            "idle_kb_per_conn",
            "idle_memory",
            f"Idle logged-in connections ({z.idle_count})",
            "KB RSS/conn",
            False,
            "{:.1f}",
        ),
        Metric(
            "idle_kb_per_conn_after_noop",
            "idle_memory",
            "  same, after one NOOP each",
            "KB RSS/conn",
            False,
            "{:.1f}",
        ),
        Metric(
            "rss_base_mb",
            "idle_memory",
            "Server RSS at start (after 5 sessions)",
            "MB",
            False,
            "{:.1f}",
        ),
        Metric(
            "tls_retr_mbps",
            "tls_transfer",
            f"FTPS RETR {big} (PROT P)",
            "MB/s",
            True,
        ),
        Metric("tls_retr_cpu_per_gib", "tls_transfer", "  server CPU", "s/GiB", False, "{:.2f}"),
        Metric(
            "tls_stor_mbps",
            "tls_transfer",
            f"FTPS STOR {big} (PROT P)",
            "MB/s",
            True,
        ),
        Metric("tls_stor_cpu_per_gib", "tls_transfer", "  server CPU", "s/GiB", False, "{:.2f}"),
    ]


def _median(values: Any) -> float | None:
    """The median of a row's samples (None: no sample)."""
    if not isinstance(values, list) or not values:
        return None
    return float(statistics.median(values))


def _cell(values: Any, fmt: str, with_range: bool = True) -> str:
    """median, then (min-max) when there is more than one sample."""
    med = _median(values)
    if med is None:
        return "—"
    text = fmt.format(med)
    if with_range and len(values) > 1:
        text += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return text


def _spread(values: Any) -> float | None:
    """(max - min) ÷ median of identical runs: how far this row moves by itself."""
    med = _median(values)
    if med is None or len(values) < 2 or med == 0:
        return None
    return float((max(values) - min(values)) / med)


def _widest(m: Metric, results: dict[str, dict[str, Any]], targets: list[str]) -> str:
    spreads = [x for t in targets if (x := _spread(results.get(t, {}).get(m.key))) is not None]
    return f"{max(spreads):.0%}" if spreads else "—"


def _ratio(m: Metric, v: Any, p: Any, verdict: bool = True) -> str:
    """Ratio of the medians."""
    mv, mp = _median(v), _median(p)
    if mv is None or mp is None or mp == 0:
        return "—"
    r = mv / mp
    if not verdict:
        return f"{r:.2f}x"
    if abs(r - 1) < 0.05:
        word = "≈ same"
    else:
        better = (r > 1) == m.higher_is_better
        word = "vfsftp better" if better else "**vfsftp worse**"
    return f"{r:.2f}x ({word})"


MAIN_COLUMNS = ("vfsftp-osfs", "pyftpdlib", "vfsftp-mem", "vsftpd")


def render(
    results: dict[str, dict[str, Any]],
    z: Sizes,
    info: dict[str, str],
    selected: list[str],
    mode: str,
    rounds: int = 1,
) -> str:
    """The full report: every row, each cell the median and (min-max) of all
    its samples (every round, every repetition within a round)."""
    out = [f"# vfsftp vs pyftpdlib — {mode} run", ""]
    out += [f"- **{k}**: {v}" for k, v in info.items()]
    out += [
        "- **setup**: each server is its own process on 127.0.0.1, a fresh one per benchmark "
        "and round; client = benchmarks/ftpload.c (C, pthreads) for the rows that say so and "
        "the sessions, idle and concurrent rows; curl and lftp for their download rows; "
        "stdlib ftplib (passive mode) for the others",
        "",
        f"Each cell is the median (min-max) of every sample of {rounds} round(s): a fresh "
        "server per round, servers alternating (A B, then B A), and for transfers and "
        f"listings {z.reps} repetitions per round; all samples are in the .json next to this "
        "file. Ratios are of the medians: vfsftp-osfs ÷ pyftpdlib (both on a local temp "
        "folder). Spread = the widest (max - min) ÷ median of a row's servers: how far "
        "identical runs of one server moved. MB = 10^6 bytes. CPU = server process "
        "utime+stime (all threads), 10 ms clock ticks.",
        "",
        "| Benchmark | Unit | vfsftp (osfs) | pyftpdlib | ratio | vfsftp (mem://) "
        "| mem ratio | vsftpd | osfs ÷ vsftpd | spread |",
        "|---|---|--:|--:|---|--:|---|--:|---|--:|",
    ]
    for m in metrics(z):
        if m.bench not in selected:
            continue
        v, p, mem, vs = (results.get(t, {}).get(m.key) for t in MAIN_COLUMNS)
        arrow = "↑" if m.higher_is_better else "↓"
        out.append(
            f"| {m.label} | {m.unit} {arrow} | {_cell(v, m.fmt)} | {_cell(p, m.fmt)} | "
            f"{_ratio(m, v, p)} | {_cell(mem, m.fmt)} | {_ratio(m, mem, p)} | "
            f"{_cell(vs, m.fmt)} | {_ratio(m, v, vs)} | "
            f"{_widest(m, results, list(MAIN_COLUMNS))} |"
        )
    out.append("")
    variants = [t for t in VARIANTS if set(results.get(t, {})) - {"_errors"}]
    if variants:
        out += [
            "Variants of vfsftp (osfs) on the same benchmarks:",
            "",
            "| Benchmark | Unit | variant | value | ÷ pyftpdlib | ÷ vfsftp (osfs) | spread |",
            "|---|---|---|--:|---|---|--:|",
        ]
        for m in metrics(z):
            p = results.get("pyftpdlib", {}).get(m.key)
            v = results.get("vfsftp-osfs", {}).get(m.key)
            for t in variants:
                x = results[t].get(m.key)
                if x is None:
                    continue
                flag = " ".join(VARIANTS[t])
                out.append(
                    f"| {m.label} | {m.unit} | `{flag}` | {_cell(x, m.fmt)} | "
                    f"{_ratio(m, x, p)} | {_ratio(m, x, v)} | {_widest(m, results, [t])} |"
                )
        out.append("")
    out.append("↑ higher is better, ↓ lower is better.")
    problems = [
        f"- {target}: {msg}" for target, r in results.items() for msg in r.get("_errors", [])
    ]
    if problems:
        out += ["", "## Errors and misbehaviour", "", *problems]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- publishing
# One command (bench.py --publish) turns a run into the README's table and a
# new entry of RESULTS.md: the figures a user reads are the ones measured.

README_BEGIN = "<!-- bench.py --publish: begin (generated, do not edit by hand) -->"
README_END = "<!-- bench.py --publish: end -->"
RESULTS_ANCHOR = "\n## "  # RESULTS.md: newest first, after its introduction


def render_readme(
    results: dict[str, dict[str, Any]], z: Sizes, info: dict[str, str], rounds: int
) -> str:
    """The README's block: a compact table of the default set's rows."""
    cpu = info.get("cpu", "?")
    intro = (
        f"`bench.py --publish`, commit {info.get('vfsftp commit', '?')}, "
        f"{info.get('date', '?')}; {info.get('cores', '?')} cores ({cpu}), Python "
        f"{info.get('python', '?')}, {info.get('kernel', '?')}; {info.get('pinning', '')}. "
        f"{rounds} rounds, servers alternating, a fresh process each (asyncio's own loop); "
        "median (min-max) of all samples; ratio = vfsftp ÷ pyftpdlib (a folder in `/tmp`), "
        "of the medians; spread = the widest (max - min) ÷ median in a row. "
        f"Other processes: {info.get(OTHERS, '?')}."
    )
    out = [
        *textwrap.wrap(intro, 100, break_on_hyphens=False),
        "",
        "| Benchmark | Unit | vfsftp, local folder | pyftpdlib | ratio | vfsftp, `mem://` "
        "| vsftpd | ÷ vsftpd | spread |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for m in metrics(z):
        v, p, mem, vs = (results.get(t, {}).get(m.key) for t in MAIN_COLUMNS)
        if v is None and p is None:
            continue
        label = m.label.strip() if not m.label.startswith("  ") else "same, " + m.label.strip()
        arrow = "↑" if m.higher_is_better else "↓"
        out.append(
            f"| {label} | {m.unit} {arrow} | {_cell(v, m.fmt)} | {_cell(p, m.fmt)} | "
            f"{_ratio(m, v, p, verdict=False)} | {_cell(mem, m.fmt, False)} | "
            f"{_cell(vs, m.fmt, False)} | {_ratio(m, v, vs, verdict=False)} | "
            f"{_widest(m, results, list(MAIN_COLUMNS))} |"
        )
    rate = next(m for m in metrics(z) if m.key == "c_sessions_per_s")
    for t in VARIANTS:
        if results.get(t, {}).get(rate.key):
            m, x = rate, results[t][rate.key]
            out.append(
                f"| same, `{' '.join(VARIANTS[t])}` | {m.unit} ↑ | {_cell(x, m.fmt)} | | "
                f"{_ratio(m, x, results.get('pyftpdlib', {}).get(m.key), verdict=False)} "
                f"| | | | {_widest(m, results, [t])} |"
            )
    return "\n".join(out) + "\n"


def publish(
    table: str, readme_block: str, info: dict[str, str], readme: Path, results_md: Path
) -> None:
    """Replace the README's block between its markers, and add the run to
    RESULTS.md (newest first) with its date, commit and machine."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"{readme}: no {README_BEGIN!r} ... {README_END!r} markers")
    head, rest = text.split(README_BEGIN, 1)
    _old, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_BEGIN}\n{readme_block}{README_END}{tail}")
    body = table.split("\n", 1)[1]  # the report without its "# ..." title
    entry = (
        f"## {info.get('date', '?')}, commit {info.get('vfsftp commit', '?')}: "
        f"`bench.py --publish` ({info.get('cores', '?')} cores, {info.get('cpu', '?')})\n"
        f"{body}\n"
    )
    old = results_md.read_text()
    at = old.find(RESULTS_ANCHOR)
    at = len(old) if at < 0 else at + 1
    results_md.write_text(old[:at] + entry + old[at:])


# ---------------------------------------------------------------- main


def _machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores, all processes)."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts) - idle) / CLK_TCK


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Interference:
    """How much of the machine other processes (not this suite, not its
    server) used during a measurement: other people's test runs on a shared
    2-core box skew every number, so each sample says how busy it was."""

    def __init__(self, srv: ServerProcess) -> None:
        self.srv = srv
        self.t0 = time.monotonic()
        self.machine0 = _machine_busy_seconds()
        self.own0 = _own_cpu_seconds()
        self.srv0 = srv.cpu()

    def share(self) -> float:
        wall = time.monotonic() - self.t0
        machine = _machine_busy_seconds() - self.machine0
        ours = _own_cpu_seconds() - self.own0
        with contextlib.suppress(Exception):
            ours += self.srv.cpu() - self.srv0
        return max(0.0, machine - ours) / max(wall * (os.cpu_count() or 1), 1e-9)


def wait_quiet(max_wait: float, threshold: float = 0.10, window: float = 0.5) -> float:
    """Wait (at most ``max_wait`` seconds) until the machine is nearly idle:
    busy below ``threshold`` of all cores over one ``window``. Called while no
    server runs, so what it sees is other people's work. Returns the seconds
    waited."""
    t0 = time.monotonic()
    while True:
        m0, w0 = _machine_busy_seconds(), time.monotonic()
        time.sleep(window)
        share = (_machine_busy_seconds() - m0) / ((time.monotonic() - w0) * (os.cpu_count() or 1))
        if share < threshold or time.monotonic() - t0 >= max_wait:
            return time.monotonic() - t0


def time_wait_sockets() -> int:
    """TCP sockets in TIME_WAIT on this machine (/proc/net/tcp{,6}, state 06)."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as f:
            next(f, None)
            n += sum(1 for line in f if line.split(None, 4)[3] == "06")
    return n


def wait_ports(max_wait: float, limit: int = 2000) -> float:
    """Wait (at most ``max_wait`` seconds) for the TIME_WAIT sockets of the
    previous samples to expire. Thousands of them (a sessions sample leaves
    4,000) make every bind to port 0 (PASV/EPSV) and every connect search a
    crowded ephemeral range: seen here as 5x the server CPU per session in
    the third round of c_sessions, for whichever server ran then."""
    t0 = time.monotonic()
    while time_wait_sockets() > limit and time.monotonic() - t0 < max_wait:
        time.sleep(1)
    return time.monotonic() - t0


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


OTHERS = "other processes' CPU during samples"


def run_suite(args: argparse.Namespace) -> int:
    global PIN
    PIN = Pinning.plan(not args.no_pin, args.realtime)
    PIN.pin_self()
    z = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 3)
    if args.only:
        selected = [b for b in BENCHMARKS if b in args.only]
    else:
        selected = list(BENCHMARKS if args.all else CORE_BENCHMARKS)
    targets = [t for t in TARGETS if not args.target or t in args.target]
    info = machine_info()
    info["pinning"] = PIN.describe()
    info["load average at start"] = _loadavg()
    samples: dict[str, dict[str, list[float]]] = {t: {} for t in targets}
    errors: dict[str, list[str]] = {t: [] for t in targets}
    notes: dict[str, set[str]] = {t: set() for t in targets}
    noisy: list[float] = []
    busy_samples: list[str] = []
    versions: dict[str, list[str]] = {}
    base = Path(tempfile.mkdtemp(prefix="vfsftp-bench-"))
    profile_dir = Path(args.profile).resolve() if args.profile else None
    tls_files: TLSFiles | None = None
    if "tls_transfer" in selected:
        tls_files = TLSFiles.create(base / "tls")  # one certificate for every server
        info["TLS libraries"] = TLSFiles.library_versions()
    print(
        f"# {len(selected)} benchmark(s) x {len(targets)} server(s) x {rounds} round(s), "
        f"work dir {base}",
        flush=True,
    )
    stopped: str | None = None
    try:
        for bench in selected:
            for rnd in range(rounds):
                # alternate the order so that no server always goes first
                runs_on = BENCH_TARGETS.get(bench, TARGETS[:3])
                here = [
                    t
                    for t in targets
                    # the variants: with --all, or when asked for by name
                    if t in runs_on and (t not in VARIANTS or args.all or args.target)
                ]
                order = here if rnd % 2 == 0 else list(reversed(here))
                for target in order:
                    workdir = base / f"{bench}-{target}-{rnd}"
                    workdir.mkdir()
                    srv = ServerProcess(
                        target,
                        workdir,
                        profile_dir if target.startswith("vfsftp") else None,
                        tag=f"{bench}-{rnd}",
                        tls=tls_files if bench == "tls_transfer" else None,
                    )
                    # (ftpload.c leaves no TIME_WAIT sockets behind: see close_now)
                    waited = wait_ports(65) if bench.startswith("sessions") else 0.0
                    waited += wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else 0.0
                    t0 = time.monotonic()
                    print(
                        f"- {bench:<20} {target:<12} r{rnd + 1} "
                        + (f"(waited {waited:.0f}s for quiet) " if waited >= 1 else ""),
                        end="",
                        flush=True,
                    )
                    try:
                        version = vfsftp_fingerprint()
                        versions.setdefault(version, []).append(f"{bench}/{target}/r{rnd + 1}")
                        srv.start()
                        meter = Interference(srv)
                        r = BENCH_FUNCS[bench](srv, z)
                        srv.check_alive()
                        others = meter.share()
                        noisy.append(others)
                        if others > 0.10:
                            busy_samples.append(f"{bench}/{target}/r{rnd + 1}: {others:.0%}")
                        err = r.pop("errors", None)
                        if err:
                            errors[target].append(err)
                        note = r.pop("note", None)
                        if note:
                            notes[target].add(note)
                        for k, v in r.items():
                            samples[target].setdefault(k, []).extend(
                                v if isinstance(v, list) else [v]
                            )
                        shown = ", ".join(
                            f"{k}={statistics.median(v) if isinstance(v, list) else v:,.2f}"
                            for k, v in r.items()
                        )
                        print(
                            f"{time.monotonic() - t0:5.1f}s  others {others:4.0%}  "
                            f"{shown}" + (f"  [ERRORS: {err}]" if err else ""),
                            flush=True,
                        )
                    except SuiteTimeout:
                        raise
                    except Exception as exc:
                        msg = f"{bench}: {type(exc).__name__}: {exc}"
                        if not srv.alive():
                            msg += (
                                f" — SERVER DIED (exit {srv.proc.returncode if srv.proc else '?'})"
                            )
                        msg += "\n  server log tail:\n    " + srv.log_tail(15).replace(
                            "\n", "\n    "
                        )
                        errors[target].append(msg)
                        print(f"FAILED: {type(exc).__name__}: {exc}", flush=True)
                        if args.verbose:
                            traceback.print_exc()
                    finally:
                        srv.stop()
                        if not args.keep:
                            shutil.rmtree(workdir, ignore_errors=True)
    except SuiteTimeout as exc:
        # What was measured is still written: a long run cut at its end
        # keeps its table (the rows not reached are missing from it).
        stopped = str(exc)
        print(f"\nSTOPPED: {exc}; writing what was measured", flush=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _kill_everything()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    info["load average at end"] = _loadavg()
    if stopped is not None:
        info["STOPPED EARLY"] = f"{stopped} (--time-limit): rows not reached are missing"
    if any(notes.values()):
        info["TLS negotiated on data connections (client's view)"] = "; ".join(
            f"{t}: {', '.join(sorted(n))}" for t, n in notes.items() if n
        )
    if len(versions) > 1:
        info["WARNING"] = (
            f"vfsftp's source changed during the run ({len(versions)} versions); "
            "samples per version are in the .json"
        )
    elif versions:
        info["vfsftp source hash"] = next(iter(versions))
    if noisy:
        info[OTHERS] = (
            f"median {sorted(noisy)[len(noisy) // 2]:.0%}, max {max(noisy):.0%} of the machine; "
            f"{len(busy_samples)} of {len(noisy)} samples above 10%"
        )
    results: dict[str, dict[str, Any]] = {}
    for target in targets:
        results[target] = {**samples[target], "_errors": errors[target]}
    table = render(results, z, info, selected, "quick" if args.quick else "full", rounds)
    print()
    print(table)
    outdir = HERE / "results"
    outdir.mkdir(exist_ok=True)
    out_md = (
        Path(args.output) if args.output else outdir / ("quick.md" if args.quick else "latest.md")
    )
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(table)
    raw = {
        "info": info,
        "sizes": asdict(z),
        "rounds": rounds,
        "samples": samples,
        "vfsftp_versions": versions,
        "notes": {t: sorted(n) for t, n in notes.items()},
    }
    out_md.with_suffix(".json").write_text(json.dumps(raw, indent=2, default=str))
    print(f"written to {out_md} (+ {out_md.with_suffix('.json').name})")
    failed = any(errors.values())
    if args.publish:
        if stopped is not None or failed:
            print("not published: the run stopped early or had errors", file=sys.stderr)
        else:
            publish(
                table,
                render_readme(results, z, info, rounds),
                info,
                Path(args.readme),
                Path(args.results_md),
            )
            print(f"published: the table in {args.readme}, the run in {args.results_md}")
    if stopped is not None:
        return 3
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_pyftpdlib_server"]:
        p = argparse.ArgumentParser()
        p.add_argument("cmd")
        p.add_argument("--home", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--certfile")
        p.add_argument("--keyfile")
        a = p.parse_args(argv)
        run_pyftpdlib_server(a.home, a.port, a.certfile, a.keyfile)
        return 0

    parser = argparse.ArgumentParser(
        description="vfsftp vs pyftpdlib on 127.0.0.1 (see benchmarks/README.md)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run in under a minute"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="run every benchmark (default: the C-client table: "
        + ", ".join(CORE_BENCHMARKS)
        + ")",
    )
    parser.add_argument(
        "--target",
        action="append",
        choices=TARGETS,
        metavar="SERVER",
        help=f"run only against this server (repeatable): {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="repeat every benchmark N times per server, servers alternating; cells show "
        "median (min-max) of all samples (default 3, 1 with --quick)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        metavar="S",
        help="before each sample wait up to S seconds for other processes to leave the "
        "CPU idle (default 5, 0 with --quick)",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="markdown output (default results/latest.md, results/quick.md with --quick)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds and write what was measured (default 1800, 300 with --quick)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run vfsftp servers under cProfile (main thread only), .prof files in DIR",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin servers and clients to different CPUs",
    )
    parser.add_argument(
        "--realtime",
        type=int,
        default=0,
        metavar="PRIO",
        help="run servers and clients at SCHED_FIFO priority PRIO (1-99; needs root or "
        "CAP_SYS_NICE): other processes then cannot take their cores (the kernel still "
        "keeps 5%% of each core for them)",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="after a clean run, replace the table in README.md (between its markers) and "
        "add the run to benchmarks/RESULTS.md",
    )
    parser.add_argument("--readme", metavar="FILE", help="--publish: this README instead")
    parser.add_argument("--results-md", metavar="FILE", help="--publish: this RESULTS.md instead")
    parser.add_argument("--keep", action="store_true", help="keep the temp work dirs (server logs)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    args = parser.parse_args(argv)
    if (
        args.publish
        and (args.quick or args.only or args.target)
        and not (args.readme and args.results_md)
    ):
        # a partial run never replaces the project's figures by accident
        parser.error("--publish with --quick, --only or --target needs --readme and --results-md")
    args.readme = args.readme or str(REPO / "README.md")
    args.results_md = args.results_md or str(HERE / "RESULTS.md")

    # The default set fits in 15 minutes on 2 cores (the limit is a backstop).
    limit = args.time_limit or (300.0 if args.quick else 1800.0)
    if args.wait_quiet is None:
        args.wait_quiet = 0.0 if args.quick else 5.0

    def on_alarm(signum: int, frame: Any) -> None:
        raise SuiteTimeout(f"time limit of {limit:.0f}s reached")

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    # Started in the background by a non-interactive shell, this process has
    # SIGINT ignored, and so would its servers: then the SIGINT that stops
    # them cleanly (and lets --profile write its file) would do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return run_suite(args)
    except SuiteTimeout as exc:
        print(f"\nABORTED: {exc}", file=sys.stderr)
        return 3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _kill_everything()


if __name__ == "__main__":
    raise SystemExit(main())
