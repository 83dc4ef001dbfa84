"""Running ``vfsftp serve`` as a service: signals, reload, start-up summary.

- SIGTERM / SIGINT: graceful shutdown (no new connections, running
  transfers get ``server.shutdown_timeout`` seconds, then every session is
  closed); the process exits 0.
- SIGHUP: re-read the configuration file. New sessions see the new users,
  mounts, hooks, TLS files and rate limits; running sessions and transfers
  keep theirs. An invalid file is rejected, its errors logged, and the old
  configuration stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..config.errors import ConfigError
from ..config.names import fs_kind
from .memory import freeze_startup_objects
from .server import FTPServer

if TYPE_CHECKING:
    from ..config.schema import Config

__all__ = ["reload_server", "run_service", "startup_summary"]

log = logging.getLogger("vfsftp.session")

_USERINFO = re.compile(r"://[^/@]*@")


def _where(url: str) -> str:
    # Opener URLs (ftp://user:pass@host/...) may carry credentials.
    clean = _USERINFO.sub("://***@", url)
    return clean.split("://", 1)[1] if "://" in clean else clean


def _addr(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def startup_summary(
    config: Config,
    addresses: Sequence[tuple[str, int]],
    implicit_addresses: Sequence[tuple[str, int]] = (),
    metrics_address: tuple[str, int] | None = None,
    label: str | None = None,
) -> list[str]:
    """The lines ``vfsftp`` prints on a terminal when it starts."""
    lines = [f"vfsftp serving {label or config.source}"]
    listen = [_addr("ftp", h, p) for h, p in addresses]
    listen += [_addr("ftps", h, p) for h, p in implicit_addresses]
    lines.append(f"  listening  {', '.join(listen) or '-'}")
    mounts = sorted(config.mounts.items())
    width = max((len(path) for path, _ in mounts), default=1)
    for i, (path, spec) in enumerate(mounts):
        flags = " (read-only)" if spec.read_only else ""
        head = "  mounts     " if i == 0 else " " * 13
        lines.append(
            f"{head}{path:<{width}}  {fs_kind(spec.fs):<5} {_where(spec.fs)}{flags}".rstrip()
        )
    if not mounts:
        lines.append("  mounts     none (an empty, read-only root)")
    users = [u for u in config.users.values() if not u.anonymous]
    anonymous = any(u.anonymous for u in config.users.values())
    store = f", and those of {config.users_store.redacted}" if config.users_store else ""
    lines.append(f"  users      {len(users)}, anonymous {'on' if anonymous else 'off'}{store}")
    tls = config.server.tls
    if tls is None:
        lines.append("  TLS        off")
    else:
        policy = "required" if tls.require_tls else "optional"
        implicit = "" if tls.implicit_port is None else " + implicit"
        lines.append(f"  TLS        on (explicit AUTH TLS{implicit}, {policy})")
    if metrics_address is not None:
        lines.append(f"  metrics    {_addr('http', *metrics_address)}/metrics")
    lines.append("  Ctrl-C or SIGTERM stops (transfers finish first), SIGHUP reloads the config")
    return lines


def _hurry(server: FTPServer) -> None:
    log.warning("second stop signal: aborting running transfers")
    server.stop_now()


def _write_pid_file(path: Path) -> None:
    # Whole or not at all: `vfsftp reload` may read it at any moment.
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(f"{os.getpid()}\n", encoding="ascii")
    os.replace(partial, path)


async def reload_server(server: FTPServer, load: Callable[[], Config]) -> bool:
    """Re-read the configuration with ``load`` (a worker thread: it reads a
    file) and hand it to the server; on any error, log it and keep the old
    configuration. True when the new one is in use."""
    try:
        try:
            config = await asyncio.to_thread(load)
        except BaseException:
            # A file that does not validate counts like one the server
            # refuses (server.reload counts its own).
            server.metrics.reloaded(ok=False)
            raise
        await server.reload(config)
    except ConfigError as exc:
        for line in exc.problems:
            log.error("reload rejected, old configuration kept: %s", line)
        return False
    except Exception:
        log.exception("reload failed, old configuration kept")
        return False
    return True


async def run_service(
    server: FTPServer,
    load: Callable[[], Config] | None,
    *,
    label: str | None = None,
    terminal: TextIO | None = None,
    pid_file: str | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully. ``load``
    re-reads the configuration on SIGHUP (None: nothing to re-read, e.g.
    the built-in default). ``terminal``: where the start-up summary goes
    (stderr when it is a terminal). ``pid_file``: written once listening,
    removed at exit (``vfsftp reload --pid-file`` reads it)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    started = asyncio.Event()
    reloads: set[asyncio.Task[bool]] = set()

    async def reload_once_started(load: Callable[[], Config]) -> bool:
        await started.wait()
        return await reload_server(server, load)

    def hangup() -> None:
        if load is None:
            log.warning("SIGHUP: no configuration file to re-read (built-in default)")
            return
        log.info("SIGHUP: re-reading the configuration")
        task = loop.create_task(reload_once_started(load))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    # The handlers come before the listeners: a signal sent the moment the
    # log says "listening" is acted on (a reload waits for the start), not
    # lost.
    signals = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
    for sig in signals[:2]:
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        await server.start()
    except BaseException:
        for sig in signals:
            loop.remove_signal_handler(sig)
        for task in reloads:
            task.cancel()
        raise
    started.set()
    try:
        await asyncio.to_thread(server.mounts.warm_up)
    except Exception as exc:  # (its first use meets the same and answers 451)
        log.warning("preparing the mounts' clients failed: %s", exc)
    freeze_startup_objects()  # no later collection walks them (vfsftp/service/memory.py)
    if pid_file is not None:
        await asyncio.to_thread(_write_pid_file, Path(pid_file))
    out = terminal if terminal is not None else (sys.stderr if sys.stderr.isatty() else None)
    if out is not None:
        summary = startup_summary(
            server.config,
            server.addresses,
            server.implicit_addresses,
            server.metrics.address,
            label,
        )
        print("\n".join(summary), file=out, flush=True)
    try:
        await stop.wait()
        log.info("stop signal received")
    finally:
        # While shutting down, a second SIGTERM/SIGINT aborts the transfers
        # instead of waiting for them; SIGHUP is ignored.
        for sig in signals[:2]:
            loop.add_signal_handler(sig, _hurry, server)
        loop.add_signal_handler(signal.SIGHUP, log.info, "SIGHUP ignored: shutting down")
        try:
            if reloads:
                await asyncio.gather(*reloads, return_exceptions=True)
            await server.shutdown()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
        if pid_file is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(Path(pid_file).unlink)
