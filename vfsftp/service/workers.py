"""``vfsftp serve --workers N``: N server processes sharing the listening
port, one event loop each, so that sessions use more than one core.

The parent process (POSIX only: it forks):

- fixes each listening port. On Linux every worker opens its own listening
  socket with SO_REUSEPORT and the kernel spreads new connections over
  them; the parent holds a bound, non-listening socket on each port (which
  also resolves ``port: 0``). Elsewhere (macOS and the BSDs accept
  SO_REUSEPORT but hand every connection to one socket) the parent opens
  the listening sockets and the workers inherit them: all accept on the
  same socket and whichever is idle takes the connection.
- leaves ``passive_ports`` whole to every worker: a port listening for a
  session of one worker cannot be bound by another (see
  data.open_passive), so the kernel keeps them apart, and no worker runs
  dry while another has free ports;
- creates the connection counters and the ban list in shared memory
  (vfsftp.service.counts) before forking: the server-wide, per-address and
  per-user limits count the sessions of every worker, and failed logins
  on any worker count towards the same ban;
- restarts a worker that dies; stops them all on SIGINT or SIGTERM (each
  worker shuts down gracefully, as a single server does); passes SIGHUP
  on, so that ``vfsftp reload --pid-file`` reloads every worker.

What stays per worker: in-memory (mem://) mounts, which is why they are
refused with more than one worker; rate limits (each worker paces its own
transfers, so a user's total can reach N times ``max_download_rate``); the
wait for an upload still arriving after its session's QUIT.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fastpaths
from ..config.errors import ConfigError
from ..config.names import key_path
from ..config.plain import replace
from .counts import SharedBanList, SharedCounts
from .preflight import bind_error, ensure_ready

if TYPE_CHECKING:
    from ..config.schema import Config
    from .server import FTPServer

__all__ = ["check_workers", "serve_workers"]

log = logging.getLogger("vfsftp.session")

#: a worker that dies this soon after starting counts as a crash loop
_QUICK_DEATH = 2.0
_MAX_QUICK_DEATHS = 5
#: the signals the parent passes on to its workers (stop, stop, reload)
_PASSED_ON = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})

#: runs one worker's server until it stops: (server, how to reload its config)
Runner = Callable[["FTPServer", "Callable[[], Config] | None"], None]


def check_workers(config: Config, workers: int) -> None:
    """Refuse what cannot work with more than one worker process."""
    if workers < 1:
        raise ConfigError(["--workers must be at least 1"])
    if workers == 1:
        return
    if not hasattr(os, "fork"):
        raise ConfigError(["--workers needs fork(), which this platform lacks"])
    mounts = [(key_path("mounts", path), spec) for path, spec in config.mounts.items()]
    for user in config.users.values():
        mounts += [
            (key_path("users", user.name, "mounts", path), spec)
            for path, spec in user.mounts.items()
        ]
    problems = []
    for key, mount in mounts:
        if mount.fs.lower().startswith("mem://"):
            problems.append(
                f"{config.source}: {key}.fs: {mount.fs!r}: an in-memory mount would differ "
                "in every worker process; use --workers 1, or a folder"
            )
    if problems:
        raise ConfigError(problems)


def _with_ports(config: Config, port: int, implicit_port: int | None) -> Config:
    """``config`` on the ports the parent fixed (values it chose, not
    validated again: a Section or a model alike)."""
    server = config.server
    changes: dict[str, Any] = {"port": port}
    if implicit_port is not None and server.tls is not None:
        changes["tls"] = replace(server.tls, implicit_port=implicit_port)
    fixed: Config = replace(config, server=replace(server, **changes))
    return fixed


def _reuseport_spreads() -> bool:
    return fastpaths.REUSEPORT_SPREADS


def _bind(host: str, port: int, listen: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio does
        if not listen:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(512)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Plan:
    """The parent's sockets and what each worker is told."""

    def __init__(self, config: Config, workers: int) -> None:
        cfg = config.server
        self.reuseport = _reuseport_spreads()
        self.held: list[socket.socket] = []  # parent's bound placeholders (SO_REUSEPORT)
        self.inherited: list[tuple[socket.socket, bool]] = []  # listening, for the fallback
        ports: dict[str, int] = {}
        wanted = [("port", cfg.port, False)]
        tls = cfg.tls
        if tls is not None and tls.implicit_port is not None:
            wanted.append(("implicit_port", tls.implicit_port, True))
        try:
            for key, port, implicit in wanted:
                for i, host in enumerate(cfg.listen):
                    # Port 0: the first address picks the port, the others follow.
                    try:
                        sock = _bind(host, ports.get(key, port), listen=not self.reuseport)
                    except OSError as exc:
                        port_key = "server.tls.implicit_port" if implicit else "server.port"
                        raise bind_error(
                            exc, config.source, f"server.listen[{i}]", port_key, host, port
                        ) from None
                    ports.setdefault(key, int(sock.getsockname()[1]))
                    if self.reuseport:
                        self.held.append(sock)
                    else:
                        self.inherited.append((sock, implicit))
        except BaseException:
            self.close()
            raise
        self.port = ports["port"]
        self.implicit_port = ports.get("implicit_port")
        # Every worker listens on the ports fixed here.
        self.config = _with_ports(config, self.port, self.implicit_port)

    def close(self) -> None:
        for sock in self.held:
            sock.close()
        for sock, _ in self.inherited:
            sock.close()


def _worker(
    index: int,
    plan: _Plan,
    counts: SharedCounts,
    bans: SharedBanList | None,
    run: Runner,
    load: Callable[[], Config] | None,
    fresh: bool = False,
    cpu: int | None = None,
    mask: Iterable[int] = (),
) -> int:
    """A forked worker: one FTPServer on its own event loop, stopped and
    reloaded by the signals the parent passes on (run_service handles them).
    ``mask``: the signal mask to restore once the worker's own handlers are
    in place (the parent blocks the signals it passes on while it forks)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # may be ignored in the parent
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Until run_service takes SIGHUP over, one must not kill the worker (its
    # default action).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A stop the parent passed on meanwhile acts now: SIGTERM ends the
    # worker before it serves.
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if cpu is not None:  # first: the threads started from here on inherit it
        from .affinity import pin_process

        pin_process(cpu)
    from .server import FTPServer

    for sock in plan.held:  # the parent's placeholders are not ours to keep
        sock.close()

    def reload() -> Config:
        # The file again, with the port fixed by the parent again.
        assert load is not None
        return _with_ports(load(), plan.port, plan.implicit_port)

    config = plan.config
    if fresh and load is not None:
        # Started after a reload (a worker restarted): the file as it is
        # now, not as it was when the parent started.
        try:
            config = reload()
        except ConfigError as exc:
            logging.getLogger("vfsftp").error("worker %d: %s; using the first config", index, exc)
    server = FTPServer(
        config,
        counts=counts,
        bans=bans,
        reuse_port=plan.reuseport,
        listen_sockets=plan.inherited,
        checked=not fresh,  # the parent checked the first config
    )
    try:
        run(server, reload if load is not None else None)
    except KeyboardInterrupt:
        return 0
    except Exception:
        logging.getLogger("vfsftp").exception("worker %d failed", index)
        return 1
    return 0


def _write_pid_file(path: Path) -> None:
    """The parent's pid, written whole (a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n", encoding="ascii")
    os.replace(tmp, path)


def serve_workers(
    config: Config,
    workers: int,
    run: Runner,
    load: Callable[[], Config] | None = None,
    pid_file: str | None = None,
    checked: bool = False,
    cpus: list[int] | None = None,
) -> int:
    """Run ``workers`` server processes until SIGINT/SIGTERM; the exit
    status. SIGHUP (``vfsftp reload --pid-file``, the parent's pid) is
    passed on: each worker reloads ``load()``, keeping the port the
    parent fixed. ``checked``: the caller has run vfsftp.service.preflight's
    checks on ``config``. ``cpus``: worker *i* runs on CPU ``cpus[i]``
    (``--cpu-affinity``, vfsftp.service.affinity), a restarted one too."""
    check_workers(config, workers)
    if not checked:  # (vfsftp serve has checked it)
        # Here, once: a worker would die of it, and be restarted.
        for problem in ensure_ready(config):
            log.warning("%s", problem)
    # Imported before the fork, so that every worker has the same key for
    # MLST's unique facts (storage.sessionfs._UNIQUE_KEY): a client's sessions may land
    # on different workers.

    plan = _Plan(config, workers)
    counts = SharedCounts()
    ban = config.server.ban
    bans = SharedBanList(ban.max_failures, ban.window, ban.duration, ban.exempt) if ban else None
    children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, start time)
    stopping = False

    reloaded = False  # a SIGHUP came: workers started from now on read the file

    def spawn(index: int) -> None:
        fresh = reloaded
        # The parent's signals wait while a worker is made: a new worker runs
        # the parent's handlers until it installs its own, and a SIGTERM the
        # parent passed on in that moment was handled as the parent's (the
        # worker then served on, and the parent waited for it for ever).
        # Blocked, it waits for the worker's own handlers (and the parent's
        # own, for the new pid in `children`).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _PASSED_ON)
        try:
            pid = os.fork()
            if pid == 0:  # the worker
                status = 1
                try:
                    cpu = cpus[index] if cpus is not None else None
                    status = _worker(index, plan, counts, bans, run, load, fresh, cpu, mask)
                finally:
                    logging.shutdown()
                    os._exit(status)
            children[pid] = (index, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def tell_workers(sig: int) -> None:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        # A worker stops gracefully on the first, at once on a second.
        tell_workers(signal.SIGTERM)

    def hangup(signum: int, frame: object) -> None:
        nonlocal reloaded
        reloaded = True
        # (A worker still starting ignores it: the milliseconds between its
        # fork and run_service's handler. Workers started after this read
        # the file themselves.)
        tell_workers(signal.SIGHUP)

    old_int = signal.signal(signal.SIGINT, stop)
    old_term = signal.signal(signal.SIGTERM, stop)
    old_hup = signal.signal(signal.SIGHUP, hangup)
    mode = "SO_REUSEPORT" if plan.reuseport else "one shared listening socket"
    hosts = ", ".join(config.server.listen)
    log.info("%d workers listening on %s port %d (%s)", workers, hosts, plan.port, mode)
    if cpus is not None:
        log.info("workers pinned to CPUs %s (--cpu-affinity)", ", ".join(map(str, cpus)))
    print(
        f"vfsftp: {workers} workers on port {plan.port}"
        + (f", implicit TLS port {plan.implicit_port}" if plan.implicit_port else ""),
        file=sys.stderr,
        flush=True,
    )
    quick_deaths = 0
    status = 0
    try:
        for i in range(workers):
            spawn(i)
        if pid_file is not None:
            _write_pid_file(Path(pid_file))
        while children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            index, started = children.pop(pid, (-1, 0.0))
            if stopping or index < 0:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            log.error("worker %d (pid %d) ended with status %d; restarting it", index, pid, code)
            if time.monotonic() - started < _QUICK_DEATH:
                quick_deaths += 1
                if quick_deaths >= _MAX_QUICK_DEATHS:
                    log.error("workers keep dying at start; stopping")
                    status = 1
                    stop(signal.SIGTERM, None)
                    continue
                time.sleep(0.5)
            spawn(index)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)
        if pid_file is not None:
            with contextlib.suppress(OSError):
                Path(pid_file).unlink()
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        plan.close()
        counts.close()
        if bans is not None:
            bans.close()
    return status
