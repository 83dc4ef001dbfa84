"""Session log, transfer log and counters (Medusa's logger and counter).

Loggers:
- ``vfsftp.session``: connect, login ok/failed, commands (debug; PASS is
  redacted by the channel), disconnect;
- ``vfsftp.transfer``: one line per RETR/STOR/STOU/APPE with user, peer, path,
  bytes, seconds and outcome, in key=value form so it greps and parses.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field, fields

from .config import LoggingConfig

__all__ = ["Counters", "configure_logging", "format_transfer_line", "transfer_log"]

transfer_log = logging.getLogger("vfsftp.transfer")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_installed: list[tuple[logging.Logger, logging.Handler]] = []


def configure_logging(cfg: LoggingConfig) -> None:
    """Install handlers for the configured destinations (idempotent: a second
    call replaces what the first installed)."""
    for logger, handler in _installed:
        logger.removeHandler(handler)
        handler.close()
    _installed.clear()
    root = logging.getLogger("vfsftp")
    root.setLevel(cfg.level.upper())
    main: logging.Handler = (
        logging.FileHandler(cfg.file, encoding="utf-8")
        if cfg.file
        else logging.StreamHandler(sys.stderr)
    )
    main.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(main)
    _installed.append((root, main))
    if cfg.transfer_log:
        handler = (
            logging.StreamHandler(sys.stderr)
            if cfg.transfer_log == "-"
            else logging.FileHandler(cfg.transfer_log, encoding="utf-8")
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        transfer_log.addHandler(handler)
        transfer_log.propagate = False
        transfer_log.setLevel(logging.INFO)
        _installed.append((transfer_log, handler))
    else:
        transfer_log.propagate = True


def format_transfer_line(
    verb: str, user: str, peer: str, path: str, nbytes: int, seconds: float, outcome: str
) -> str:
    # Paths are quoted so that spaces in names keep the line parseable.
    quoted = '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return (
        f"{verb} user={user} peer={peer} path={quoted} bytes={nbytes} "
        f"secs={seconds:.3f} result={outcome}"
    )


@dataclass
class Counters:
    """Server-wide totals, readable while the server runs (thread-safe)."""

    connections: int = 0
    connections_refused: int = 0
    logins: int = 0
    login_failures: int = 0
    files_sent: int = 0
    files_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    transfers_failed: int = 0
    started: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **amounts: int) -> None:
        with self._lock:
            for name, value in amounts.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {
                f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")
            }
