"""A real `vfsftp serve` process: SIGTERM during a transfer (it finishes,
exit code 0), the shutdown deadline, SIGHUP reloading mounts.yaml, the
start-up summary on a terminal."""

from __future__ import annotations

import contextlib
import ftplib
import io
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broken_configs import BROKEN, Broken, write
from conftest import PASSWORD, USER, login_at

REPO = Path(__file__).resolve().parents[2]


class ServeProcess:
    """``python -m vfsftp serve -c FILE`` with its stderr (the log) read by a
    thread, so that a test can wait for a line."""

    def __init__(
        self,
        config: Path,
        tty: bool = False,
        args: tuple[str, ...] = (),
        command: tuple[str, ...] = ("-m", "vfsftp", "serve", "-c"),
    ) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self._lines: list[str] = []
        self._cond = threading.Condition()
        master = slave = -1
        if tty:
            master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, *command, str(config), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave if tty else subprocess.PIPE,
            env=env,
            cwd=config.parent,
        )
        if tty:
            os.close(slave)  # the child has it; EOF (EIO) once it exits
            self._reader = threading.Thread(target=self._read_pty, args=(master,))
        else:
            self._reader = threading.Thread(target=self._read_pipe)
        self._reader.start()

    def _add(self, line: str) -> None:
        with self._cond:
            self._lines.append(line)
            self._cond.notify_all()

    def _read_pipe(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._add(raw.decode(errors="replace").rstrip("\n"))

    def _read_pty(self, fd: int) -> None:
        buf = b""
        try:
            while True:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self._add(line.decode(errors="replace").rstrip("\r"))
        finally:
            os.close(fd)

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def wait_line(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    m = regex.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} in:\n{self.text}")
                self._cond.wait(min(left, 0.5))

    @property
    def port(self) -> int:
        return int(self.wait_line(r"listening on 127\.0\.0\.1:(\d+)").group(1))

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(20)
        self._reader.join(20)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def serve() -> Iterator[type[ServeProcess]]:
    started: list[ServeProcess] = []

    class Tracked(ServeProcess):
        def __init__(
            self,
            config: Path,
            tty: bool = False,
            args: tuple[str, ...] = (),
            command: tuple[str, ...] = ("-m", "vfsftp", "serve", "-c"),
        ) -> None:
            super().__init__(config, tty, args, command)
            started.append(self)

    yield Tracked
    for p in started:
        p.close()


def write_config(
    path: Path, users: dict[str, str], shutdown_timeout: float = 20, extra: str = ""
) -> None:
    (path.parent / "data").mkdir(exist_ok=True)
    text = (
        "server:\n  listen: 127.0.0.1\n  port: 0\n"
        f"  shutdown_timeout: {shutdown_timeout}\n"
        "mounts:\n  /: osfs://./data\n"
        "users:\n"
        + "".join(f"  {u}:\n    password: plaintext:{pw}\n" for u, pw in users.items())
        + extra
    )
    path.write_text(text, encoding="utf-8")


def test_sigterm_lets_the_running_transfer_finish(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "mounts.yaml"
    write_config(cfg, {USER: PASSWORD})
    p = serve(cfg)
    port = p.port
    idle, busy = login_at("127.0.0.1", port), login_at("127.0.0.1", port)
    try:
        conn = busy.transfercmd("STOR big.bin")
        conn.sendall(b"a" * 100_000)
        p.signal(signal.SIGTERM)
        p.wait_line(r"shutting down: waiting up to 20s for 1 transfer")
        # No new connections; the idle session is told and closed at once.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with pytest.raises(ftplib.error_temp, match="421"):
            idle.getresp()
        # The upload goes on to its end, is stored whole, then 421.
        conn.sendall(b"b" * 100_000)
        conn.close()
        assert busy.voidresp().startswith("226")
        with pytest.raises(ftplib.error_temp, match="421"):
            busy.getresp()
        assert p.proc.wait(20) == 0
    finally:
        idle.close()
        busy.close()
    data = (tmp_path / "data" / "big.bin").read_bytes()
    assert data == b"a" * 100_000 + b"b" * 100_000
    assert "Traceback" not in p.text


def test_shutdown_deadline_aborts_a_transfer_that_does_not_end(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "mounts.yaml"
    write_config(cfg, {USER: PASSWORD}, shutdown_timeout=0.5)
    p = serve(cfg)
    f = login_at("127.0.0.1", p.port)
    conn = f.transfercmd("STOR stuck.bin")
    try:
        conn.sendall(b"x" * 10_000)
        started = time.monotonic()
        p.signal(signal.SIGINT)  # Ctrl-C: the same graceful path
        assert p.proc.wait(20) == 0
        assert time.monotonic() - started < 10
        p.wait_line(r"shutdown: aborting 1 transfer")
        # The upload is discarded, never left half-written.
        assert list((tmp_path / "data").iterdir()) == []
        with contextlib.suppress(ftplib.Error, OSError, EOFError):
            f.voidresp()
    finally:
        conn.close()
        f.close()


def test_a_second_sigterm_aborts_the_transfers_at_once(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "mounts.yaml"
    write_config(cfg, {USER: PASSWORD}, shutdown_timeout=60)
    p = serve(cfg)
    f = login_at("127.0.0.1", p.port)
    conn = f.transfercmd("STOR slow.bin")
    try:
        conn.sendall(b"x" * 10_000)
        p.signal(signal.SIGTERM)
        p.wait_line(r"shutting down: waiting up to 60s for 1 transfer")
        started = time.monotonic()
        p.signal(signal.SIGTERM)
        assert p.proc.wait(20) == 0
        assert time.monotonic() - started < 15  # not the 60 s deadline
        p.wait_line(r"second stop signal: aborting running transfers")
        assert list((tmp_path / "data").iterdir()) == []  # discarded, temp file too
    finally:
        conn.close()
        f.close()


def test_sighup_reloads_users_and_rejects_a_bad_file(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "mounts.yaml"
    write_config(cfg, {USER: PASSWORD})
    p = serve(cfg)
    port = p.port
    running = login_at("127.0.0.1", port)
    with pytest.raises(ftplib.error_perm, match="530"):
        login_at("127.0.0.1", port, "bob", "b0b").close()
    write_config(cfg, {USER: PASSWORD, "bob": "b0b"})
    p.signal(signal.SIGHUP)
    p.wait_line(r"configuration reloaded from .*mounts\.yaml: 1 mount, 2 users")
    bob = login_at("127.0.0.1", port, "bob", "b0b")
    bob.storbinary("STOR from-bob", io.BytesIO(b"hi"))
    bob.quit()
    running.storbinary("STOR from-alice", io.BytesIO(b"still here"))  # untouched

    cfg.write_text("server:\n  port: [not, a, port]\n", encoding="utf-8")
    p.signal(signal.SIGHUP)
    p.wait_line(r"reload rejected, old configuration kept: .*server\.port: expected an integer")
    login_at("127.0.0.1", port, "bob", "b0b").quit()  # the previous configuration still serves
    running.quit()
    p.signal(signal.SIGTERM)
    assert p.proc.wait(20) == 0
    assert (tmp_path / "data" / "from-bob").read_bytes() == b"hi"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")
def test_the_serving_process_never_loads_the_validator(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    """mounts.yaml is validated in a child process, at start-up and at each
    reload (vfsftp.config.isolated): pydantic-core's library is never
    mapped into the process that serves (~15 MB of its idle RSS)."""
    cfg = tmp_path / "mounts.yaml"
    write_config(cfg, {USER: PASSWORD})
    p = serve(cfg, args=("--port", "0"))
    port = p.port

    def maps() -> str:
        return Path(f"/proc/{p.proc.pid}/maps").read_text()

    # (extension modules are listed: the check would see pydantic-core's)
    assert "pydantic" not in maps() and "_ssl" in maps()
    write_config(cfg, {USER: PASSWORD, "bob": "b0b"})
    p.signal(signal.SIGHUP)
    p.wait_line(r"configuration reloaded from .*mounts\.yaml: 1 mount, 2 users")
    login_at("127.0.0.1", port, "bob", "b0b").quit()
    assert "pydantic" not in maps()


def test_sigusr1_dumps_every_threads_stack_and_serving_goes_on(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    """A server that stopped answering can say where it is stuck: SIGUSR1
    writes each thread's stack to stderr (faulthandler) and changes nothing."""
    cfg = tmp_path / "mounts.yaml"
    write_config(cfg, {USER: PASSWORD})
    p = serve(cfg)
    port = p.port
    session = login_at("127.0.0.1", port)
    p.signal(signal.SIGUSR1)
    p.wait_line(r"^Current thread 0x[0-9a-f]+ \(most recent call first\):")
    p.wait_line(r'File ".*asyncio.*", line \d+ in run_forever')
    session.storbinary("STOR after-dump", io.BytesIO(b"still serving"))
    session.quit()
    p.signal(signal.SIGTERM)
    assert p.proc.wait(20) == 0
    assert (tmp_path / "data" / "after-dump").read_bytes() == b"still serving"


@pytest.mark.parametrize("case", BROKEN, ids=[c.name for c in BROKEN])
def test_serve_refuses_what_check_config_refuses(case: Broken, tmp_path: Path) -> None:
    """The same first line as check-config (tests/unit/test_cli.py), exit
    status 2, before anything listens."""
    path, first_line = write(case, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "vfsftp", "serve", "-c", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    # ("using config" comes once the file has been read and validated)
    lines = [x for x in done.stderr.splitlines() if x != f"vfsftp: using config {path}"]
    assert lines[0] == first_line
    assert "Traceback" not in done.stderr and "listening" not in done.stderr


def test_serve_names_the_key_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        cfg = tmp_path / "mounts.yaml"
        cfg.write_text(f"server:\n  listen: 127.0.0.1\n  port: {port}\nmounts:\n  /: mem://\n")
        done = subprocess.run(
            [sys.executable, "-m", "vfsftp", "serve", "-c", str(cfg)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=30,
        )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"vfsftp: {cfg}: server.listen[0], server.port: cannot listen on 127.0.0.1 port "
        f"{port} (Address already in use); another program listens there (another vfsftp?); "
        "stop it or choose another port"
    )


def test_sighup_rejects_a_missing_folder_with_the_path_of_start_up(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    """The same message, the same (absolute) path, at a reload as at
    start-up, whatever the current directory."""
    cfg = tmp_path / "mounts.yaml"
    write_config(cfg, {USER: PASSWORD})
    p = serve(cfg)
    login_at("127.0.0.1", p.port).quit()
    text = cfg.read_text().replace("osfs://./data", "osfs://./gone")
    cfg.write_text(text)
    p.signal(signal.SIGHUP)
    expected = (
        f"{cfg}: mounts./.fs: folder {tmp_path}/gone ('osfs://./gone') does not exist; "
        "create it, or set create: true to have the server make it"
    )
    p.wait_line("reload rejected, old configuration kept: " + re.escape(expected))
    p.signal(signal.SIGTERM)
    assert p.proc.wait(20) == 0
    started = subprocess.run(
        [sys.executable, "-m", "vfsftp", "serve", "-c", str(cfg)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        timeout=30,
    )
    assert started.returncode == 2
    assert started.stderr.splitlines()[1] == expected


def test_embedding_example_logs_and_stops_cleanly_on_ctrl_c(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "mounts.yaml"
    write_config(cfg, {USER: PASSWORD})
    p = serve(cfg, command=(str(REPO / "examples" / "serve_embedded.py"),))
    login_at("127.0.0.1", p.port).quit()
    p.wait_line(rf"login ok .* user={USER}")
    p.signal(signal.SIGINT)
    assert p.proc.wait(20) == 0
    p.wait_line("stop signal received")
    p.close()
    assert "Traceback" not in p.text and "KeyboardInterrupt" not in p.text


def test_startup_summary_on_a_terminal(serve: type[ServeProcess], tmp_path: Path) -> None:
    cfg = tmp_path / "mounts.yaml"
    write_config(
        cfg,
        {USER: PASSWORD, "bob": "b0b"},
        extra="  anonymous: {}\nmetrics:\n  port: 0\n",
    )
    p = serve(cfg, tty=True)
    port = int(p.wait_line(r"^  listening  ftp://127\.0\.0\.1:(\d+)$").group(1))
    p.wait_line(r"^  mounts     /  osfs  .*data$")
    p.wait_line(r"^  users      2, anonymous on$")
    p.wait_line(r"^  TLS        off$")
    p.wait_line(r"^  metrics    http://127\.0\.0\.1:\d+/metrics$")
    login_at("127.0.0.1", port).quit()
    p.signal(signal.SIGTERM)
    assert p.proc.wait(20) == 0


def test_no_summary_when_stderr_is_not_a_terminal(
    serve: type[ServeProcess], tmp_path: Path
) -> None:
    cfg = tmp_path / "mounts.yaml"
    write_config(cfg, {USER: PASSWORD})
    p = serve(cfg)
    login_at("127.0.0.1", p.port).quit()
    p.signal(signal.SIGTERM)
    assert p.proc.wait(20) == 0
    p.close()
    assert "  listening  " not in p.text and "listening on 127.0.0.1" in p.text


def test_vfsftp_reload_command(
    serve: type[ServeProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vfsftp.cli import main

    cfg, pid_file = tmp_path / "mounts.yaml", tmp_path / "vfsftp.pid"
    write_config(cfg, {USER: PASSWORD})
    p = serve(cfg, args=("--pid-file", str(pid_file)))
    port = p.port
    # Written once the signal handlers are in place, just after listening.
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pid_file.read_text().strip() == str(p.proc.pid)
    write_config(cfg, {USER: PASSWORD, "bob": "b0b"})
    assert main(["reload", "--pid-file", str(pid_file)]) == 0
    assert f"asked process {p.proc.pid} to reload" in capsys.readouterr().out
    p.wait_line(r"configuration reloaded from .*: 1 mount, 2 users")
    login_at("127.0.0.1", port, "bob", "b0b").quit()
    p.signal(signal.SIGTERM)
    assert p.proc.wait(20) == 0
    assert not pid_file.exists()  # removed at exit
    # A stale pid file: the process is gone.
    pid_file.write_text(f"{p.proc.pid}\n")
    assert main(["reload", "--pid-file", str(pid_file)]) == 1
    assert "not running" in capsys.readouterr().err
