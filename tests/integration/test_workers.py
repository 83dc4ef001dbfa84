"""``vfsftp serve --workers 2`` as a real subprocess: sessions work on every
worker and the connection limits count the sessions of all workers.

Which worker holds a connection is read from /proc (the server side of the
TCP connection, by inode), so the limit tests only conclude once the open
sessions are spread over both workers."""

from __future__ import annotations

import contextlib
import ftplib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from conftest import free_port, free_port_range

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="--workers spreads with SO_REUSEPORT on Linux"
)

REPO = Path(__file__).resolve().parents[2]


class Workers:
    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        port: int,
        log: Path,
        config: Path,
        passive: tuple[int, int],
        count: int = 2,
    ) -> None:
        self.proc, self.port, self.log, self.config = proc, port, log, config
        self.passive, self.count = passive, count

    def pids(self) -> list[int]:
        """The processes serving sessions: the workers, or the server itself."""
        if self.count == 1:
            return [self.proc.pid]
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def worker_of(self, client: socket.socket) -> int | None:
        """The worker holding the server side of this client connection."""
        local_port = client.getsockname()[1]
        inode = None
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].split(":")[1], 16) == self.port and int(f[2].split(":")[1], 16) == (
                local_port
            ):
                inode = f[9]
        if inode is None:
            return None
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                            return pid
        return None


@contextlib.contextmanager
def _started(tmp_path: Path, *extra: str, count: int = 2) -> Iterator[Workers]:
    """``vfsftp serve --workers COUNT EXTRA...`` on a folder, once ready."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello from a worker\n")
    cfg = tmp_path / "mounts.yaml"
    passive = free_port_range(3)
    cfg.write_text(
        "server:\n"
        "  listen: 127.0.0.1\n"
        f"  passive_ports: {passive[0]}-{passive[1]}\n"
        "  max_connections_per_ip: 3\n"
        "  login_failure_delay: 0\n"
        "  ban: {max_failures: 4, window: 60, duration: 60}\n"
        "mounts:\n"
        f"  /: osfs://{root}\n"
        "users:\n"
        '  bench: {password: "plaintext:bench"}\n'
        '  solo: {password: "plaintext:solo", max_connections: 1}\n'
    )
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = None
    for _ in range(3):  # the free port may be taken between probe and bind
        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "vfsftp", "serve", "-c", str(cfg)),
                    *("--port", str(port), "--workers", str(count), "--loop", "asyncio"),
                    *extra,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        srv = Workers(proc, port, log, cfg, passive, count)
        if _wait_ready(srv):
            break
        _stop(proc)
    else:
        pytest.fail(f"vfsftp --workers {count} did not start:\n{log.read_text()}")
    try:
        yield srv
    finally:
        workers = srv.pids() if proc.poll() is None and count > 1 else []
        stopped_alone = _stop(proc)
    # Every worker ends with the parent, on its own: a worker restarted just
    # before the stop once ran the parent's signal handler instead of its
    # own, served on, and the parent waited for it until killed (a worker
    # left serving, orphaned).
    left = _kill_left(workers)
    assert stopped_alone, "the parent did not stop within 15 s of SIGINT"
    assert not left, f"workers still running after their parent stopped: {left}"


def _kill_left(pids: Iterable[int]) -> list[int]:
    """The processes of ``pids`` still running, killed (none is left to
    serve on after a failed test)."""
    left = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    with _started(tmp_path) as srv:
        yield srv


def _wait_ready(srv: Workers) -> bool:
    """Every worker has answered a connection (so all are serving, their
    signal handlers in place)."""
    answered: set[int | None] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            if len(srv.pids()) == srv.count:
                with socket.create_connection(("127.0.0.1", srv.port), timeout=2) as s:
                    s.settimeout(2)
                    if s.recv(100).startswith(b"220"):
                        answered.add(srv.worker_of(s))
                        # QUIT, not a bare close: the 221 comes after the
                        # probe's slot of the per-address limit is given
                        # back, so a test never finds it still held (a closed
                        # probe's slot was freed whenever its worker read
                        # the EOF: once after the test's third connection).
                        s.sendall(b"QUIT\r\n")
                        _read_reply(s, b"221")
                        if len(answered - {None}) == srv.count:
                            return True
        time.sleep(0.02)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> bool:
    """SIGINT, then SIGKILL after 15 s; False when it came to that."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            return False
    return True


def _read_reply(s: socket.socket, code: bytes) -> None:
    """Read to the end of the connection (the server closes it after QUIT's
    reply); a line starting with ``code`` must be among what came."""
    got = b""
    while chunk := s.recv(4096):
        got += chunk
    assert any(line.startswith(code + b" ") for line in got.split(b"\r\n")), got


def _connect(srv: Workers) -> tuple[ftplib.FTP, str]:
    ftp = ftplib.FTP()
    try:
        welcome = ftp.connect("127.0.0.1", srv.port, timeout=10)
    except BaseException:
        ftp.close()  # (ftplib leaves a refused connection's socket open)
        raise
    return ftp, welcome


def _spread(srv: Workers, user: str, password: str, count: int) -> list[ftplib.FTP]:
    """``count`` logged-in sessions held by both workers (new connections
    land on a worker by hash, so retry until they are spread)."""
    held: list[ftplib.FTP] = []
    try:
        for _ in range(60):
            ftp, _welcome = _connect(srv)
            held.append(ftp)
            ftp.login(user, password)
            if len(held) == count:
                owners = {srv.worker_of(f.sock) for f in held}
                if len(owners) == 2 and None not in owners:
                    return held
                held.pop(0).quit()  # its slot is free once the 221 is read
    except BaseException:
        for f in held:
            f.close()
        raise
    for f in held:
        f.close()
    pytest.fail("connections never spread over both workers")


def test_sessions_on_both_workers(workers: Workers) -> None:
    seen: set[int | None] = set()
    for _ in range(12):
        ftp, welcome = _connect(workers)
        try:
            assert welcome.startswith("220")
            ftp.login("bench", "bench")
            seen.add(workers.worker_of(ftp.sock))
            chunks: list[bytes] = []
            ftp.retrbinary("RETR hello.txt", chunks.append)
            assert b"".join(chunks) == b"hello from a worker\n"
            ftp.quit()
        finally:
            ftp.close()
    assert seen <= set(workers.pids())
    assert len(seen) == 2, "12 sessions should not all land on one worker"
    # Without --cpu-affinity, no thread is pinned: each may run on every CPU
    # this test may run on.
    everywhere = ",".join(map(str, ALLOWED))
    for pid in workers.pids():
        assert {_expand(cpus) for cpus in _cpus_of(pid).values()} == {everywhere}


def test_per_address_limit_counts_every_worker(workers: Workers) -> None:
    held = _spread(workers, "bench", "bench", 3)  # the limit, over both workers
    try:
        for _ in range(6):  # whichever worker takes it, it is the 4th
            with pytest.raises(ftplib.error_temp, match="421 Too many connections"):
                _connect(workers)
        held.pop().quit()
        # A freed slot is usable again (from any worker)
        deadline = time.monotonic() + 10
        while True:
            try:
                ftp, welcome = _connect(workers)
                break
            except ftplib.error_temp:
                assert time.monotonic() < deadline, "the slot never came back"
                time.sleep(0.05)
        assert welcome.startswith("220")
        held.append(ftp)
    finally:
        for f in held:
            with contextlib.suppress(Exception):
                f.quit()
            f.close()


def test_per_user_limit_counts_every_worker(workers: Workers) -> None:
    first, _ = _connect(workers)
    try:
        first.login("solo", "solo")
        home = workers.worker_of(first.sock)
        refused_elsewhere = False
        for _ in range(60):  # until a login on the other worker was refused
            other, _ = _connect(workers)
            try:
                owner = workers.worker_of(other.sock)
                with pytest.raises(ftplib.Error, match="Too many sessions for solo"):
                    other.login("solo", "solo")
            finally:
                other.close()
            if owner is not None and owner != home:
                refused_elsewhere = True
                break
        assert refused_elsewhere, "no connection ever reached the other worker"
    finally:
        with contextlib.suppress(Exception):
            first.quit()
        first.close()


def test_failed_logins_on_every_worker_count_towards_one_ban(workers: Workers) -> None:
    owners: list[int | None] = []
    failures = 0
    for _ in range(60):  # 3 failures (one short of the ban), on both workers
        ftp, _ = _connect(workers)
        try:
            owner = workers.worker_of(ftp.sock)
            if failures == 2 and len({*owners, owner}) < 2:
                continue  # the three must not all sit on one worker
            with pytest.raises(ftplib.error_perm, match="530"):
                ftp.login("bench", "wrong")
            owners.append(owner)
            failures += 1
            if failures == 3:
                break
        finally:
            ftp.close()
    assert failures == 3 and len(set(owners)) == 2, owners
    ftp, _ = _connect(workers)  # the 4th failure, on whichever worker: banned
    try:
        with pytest.raises(ftplib.error_temp, match="421 Too many failed logins"):
            ftp.login("bench", "wrong")
    finally:
        ftp.close()
    for _ in range(6):  # both workers refuse the address at connect now
        with pytest.raises(ftplib.error_temp, match="421 Too many failed logins"):
            _connect(workers)


def test_sighup_reloads_every_worker(workers: Workers) -> None:
    text = workers.config.read_text()
    workers.config.write_text(text.replace("server:\n", "server:\n  banner: reloaded\n", 1))
    os.kill(workers.proc.pid, signal.SIGHUP)  # what `vfsftp reload --pid-file` sends
    seen: set[int | None] = set()
    deadline = time.monotonic() + 20
    while len(seen) < 2:  # the new banner from both workers
        assert time.monotonic() < deadline, f"reload not seen on both workers: {seen}"
        ftp, welcome = _connect(workers)
        try:
            if welcome == "220 reloaded":
                seen.add(workers.worker_of(ftp.sock))
        finally:
            ftp.close()
        time.sleep(0.02)
    assert seen == set(workers.pids())
    assert workers.proc.poll() is None
    # Each worker validated the file in a child process: none serves with
    # the validator loaded (vfsftp.config.isolated), nor does the parent.
    for pid in [workers.proc.pid, *workers.pids()]:
        assert "pydantic" not in Path(f"/proc/{pid}/maps").read_text()


def test_passive_ports_are_shared_by_the_workers(workers: Workers) -> None:
    """Three ports for two workers: three sessions (on both workers) hold a
    listener each, a fourth gets 425 on either worker, and gets a port as
    soon as one is used and released."""
    held = _spread(workers, "bench", "bench", 3)
    fourth = None
    try:
        ports = [int(f.sendcmd("EPSV").split("|")[-2]) for f in held]
        low, high = workers.passive
        assert sorted(ports) == list(range(low, high + 1))  # never one twice
        # (from another loopback address: three is the limit per address)
        fourth = ftplib.FTP(source_address=("127.0.0.2", 0))
        fourth.connect("127.0.0.1", workers.port, timeout=10)
        fourth.login("solo", "solo")
        with pytest.raises(ftplib.error_temp, match=r"^425 .*no free port"):
            fourth.sendcmd("EPSV")
        # A RETR through one of them: that port is free (in TIME_WAIT) after.
        held[0].voidcmd("TYPE I")
        with socket.create_connection(("127.0.0.1", ports[0]), timeout=10) as conn:
            assert held[0].sendcmd("RETR hello.txt").startswith("150")
            assert conn.recv(100) == b"hello from a worker\n"
        assert held[0].voidresp().startswith("226")
        assert int(fourth.sendcmd("EPSV").split("|")[-2]) == ports[0]
    finally:
        for f in [*held, *([fourth] if fourth is not None else [])]:
            with contextlib.suppress(Exception):
                f.quit()
            f.close()


# --cpu-affinity (vfsftp.service.affinity): read back from /proc, thread by
# thread, after transfers have started the threads that run blocking calls.

ALLOWED = sorted(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two CPUs to tell pinned apart")


def _cpus_of(pid: int) -> dict[int, str]:
    """Each thread of ``pid``: the CPUs it may run on (taskset's list syntax)."""
    cpus: dict[int, str] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread that just ended
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    cpus[int(tid)] = line.split(":", 1)[1].strip()
    return cpus


def _transfer(ftp: ftplib.FTP) -> None:
    chunks: list[bytes] = []
    ftp.retrbinary("RETR hello.txt", chunks.append)
    assert b"".join(chunks) == b"hello from a worker\n"
    ftp.storbinary("STOR up.bin", io.BytesIO(b"x" * 100_000))


def _expand(listed: str) -> str:
    """'0-2,5' -> '0,1,2,5'."""
    from vfsftp.service.affinity import parse_cpu_list

    return ",".join(map(str, sorted(parse_cpu_list(listed))))


def test_a_stop_while_a_worker_restarts_ends_every_worker(tmp_path: Path) -> None:
    """SIGINT reaches the parent just as it restarts a worker that died: the
    new worker still ran the parent's signal handlers until it set its own,
    so the SIGTERM passed on to it in that moment was handled as the
    parent's; the worker served on, the parent waited for it until killed,
    and the worker was left serving, orphaned (found after a CI run of the
    CPU-affinity test, which stops the parent as soon as the restarted
    worker is pinned). The parent now blocks the signals it passes on while
    it forks. Each round stops the parent as soon as the new worker exists."""
    for round_ in range(3):
        (tmp_path / str(round_)).mkdir()
        with _started(tmp_path / str(round_)) as srv:
            before = set(srv.pids())
            os.kill(next(iter(before)), signal.SIGKILL)
            deadline = time.monotonic() + 20
            new: list[int] = []
            while not new:  # (no sleep: the moment after the fork is the point)
                assert time.monotonic() < deadline, "the dead worker was not restarted"
                with contextlib.suppress(OSError):
                    new = [pid for pid in srv.pids() if pid not in before]
            srv.proc.send_signal(signal.SIGINT)
            try:
                srv.proc.wait(15)
            except subprocess.TimeoutExpired:
                _kill_left((*before, *new))
                pytest.fail("the parent did not stop: a worker did not end")
            left = _kill_left((*before, *new))
            assert not left, f"workers still running after their parent stopped: {left}"


@needs_two_cpus
def test_cpu_affinity_auto_puts_each_worker_on_a_cpu_of_its_own(tmp_path: Path) -> None:
    with _started(tmp_path, "--cpu-affinity", "auto") as srv:
        for ftp in _spread(srv, "bench", "bench", 2):
            _transfer(ftp)
            ftp.quit()
        on: dict[int, set[str]] = {}
        for pid in srv.pids():
            cpus = _cpus_of(pid)
            assert len(cpus) > 1, f"the transfers started no thread: {cpus}"
            on[pid] = set(cpus.values())
        # every thread of a worker on one CPU; worker 0 on the first, 1 on the second
        assert sorted(map(sorted, on.values())) == [[str(ALLOWED[0])], [str(ALLOWED[1])]], on
        # A worker that dies is restarted on its own CPU again.
        victim = next(pid for pid, cpus in on.items() if cpus == {str(ALLOWED[1])})
        os.kill(victim, signal.SIGKILL)
        # (pinned as its first step after the fork: until then it has the
        # parent's CPUs; it serves only once pinned)
        deadline = time.monotonic() + 20
        seen: dict[int, str] = {}
        while True:
            new = [pid for pid in srv.pids() if pid not in on]
            with contextlib.suppress(OSError):
                seen = _cpus_of(new[0]) if new else {}
                if seen and set(seen.values()) == {str(ALLOWED[1])}:
                    break
            assert time.monotonic() < deadline, f"no restarted worker on CPU {ALLOWED[1]}: {seen}"
            time.sleep(0.02)


@needs_two_cpus
def test_cpu_affinity_pins_a_single_server_and_its_threads(tmp_path: Path) -> None:
    cpu = ALLOWED[-1]  # not the first: "auto" would pick that one anyway
    with _started(tmp_path, "--cpu-affinity", str(cpu), count=1) as srv:
        ftp, _welcome = _connect(srv)
        try:
            ftp.login("bench", "bench")
            _transfer(ftp)
            ftp.quit()
        finally:
            ftp.close()
        cpus = _cpus_of(srv.proc.pid)
        assert len(cpus) > 1, "the transfer started no thread"
        assert set(cpus.values()) == {str(cpu)}
