"""Session log, transfer log and counters (Medusa's logger and counter).

Loggers:
- ``vfsftp.session``: connect, login ok/failed, commands (debug; PASS is
  redacted by the channel), disconnect. Every line of one control
  connection carries the same session id (``[3f9a0c21]``), also in the
  JSON transfer log, so a session's lines can be pulled together;
- ``vfsftp.transfer``: one line per RETR/STOR/STOU/APPE. In its own file it
  is written as xferlog(5) lines (the wu-ftpd/vsftpd layout that log
  analysers read) or as JSON lines; inside the session log as key=value.

Files are opened with ``WatchedFileHandler``: after logrotate renames a file
the next line goes to a new one (no copytruncate, no signal needed).
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import random
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .config import LoggingConfig

__all__ = [
    "Counters",
    "TransferRecord",
    "configure_logging",
    "format_json",
    "format_transfer_line",
    "format_xferlog",
    "lean_log_records",
    "log_transfer",
    "new_session_id",
    "parse_xferlog",
    "session_id",
    "transfer_log",
]

transfer_log = logging.getLogger("vfsftp.transfer")

#: The id of the session whose task (or transfer task) is running; asyncio
#: copies context variables into tasks created from it.
session_id: contextvars.ContextVar[str] = contextvars.ContextVar("vfsftp_session", default="-")

_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(session)s]: %(message)s"
_installed: list[tuple[logging.Logger, logging.Handler]] = []


def new_session_id() -> str:
    # Random, not a counter: ids stay unique across restarts and across the
    # instances of a scaled-out service writing to one log store. Not a
    # secret: the random module (seeded from the OS, reseeded after fork)
    # spares a getrandom() call per connection.
    return f"{random.getrandbits(32):08x}"


@dataclass(slots=True)  # not frozen: one per transfer, and frozen __init__ costs 3x
class TransferRecord:
    """One finished (or failed) transfer, as every log format sees it."""

    time: float  # end of the transfer, epoch seconds
    seconds: float
    peer: str  # remote IP address
    bytes: int
    path: str
    binary: bool
    direction: str  # "i" upload, "o" download
    anonymous: bool
    user: str
    complete: bool
    verb: str = "RETR"
    outcome: str = "ok"  # ok | abort | fail
    session: str = "-"
    mount: str = "/"


def _xferlog_name(path: str) -> str:
    # Analysers split the line on whitespace: spaces and control characters
    # become '_', as ProFTPD writes them (the JSON log keeps the exact name).
    return "".join("_" if c.isspace() or ord(c) < 32 or ord(c) == 127 else c for c in path)


def format_xferlog(rec: TransferRecord) -> str:
    """The xferlog(5) line: current-time transfer-time remote-host file-size
    filename transfer-type special-action-flag direction access-mode
    username service-name authentication-method authenticated-user-id
    completion-status. Times are local, as in wu-ftpd's ctime() stamp; the
    transfer time is whole seconds, at least 1 (so that size / time, the
    rate analysers compute, is defined)."""
    stamp = time.asctime(time.localtime(rec.time))
    return " ".join(
        (
            stamp,
            str(max(1, round(rec.seconds))),
            rec.peer,
            str(rec.bytes),
            _xferlog_name(rec.path),
            "b" if rec.binary else "a",
            "_",  # no compression / tar on the fly
            rec.direction,
            "a" if rec.anonymous else "r",
            rec.user.replace(" ", "_") or "-",
            "ftp",
            "0",  # no RFC 931 authentication
            "*",
            "c" if rec.complete else "i",
        )
    )


# Anchored at both ends: other servers' logs may have spaces in file names,
# no other field has, so the name is whatever lies between the fixed fields.
_XFERLOG = re.compile(
    r"^(?P<stamp>\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}) (?P<seconds>\d+) (?P<peer>\S+) "
    r"(?P<bytes>\d+) (?P<path>.*) (?P<type>[ab]) (?P<action>[CUT_]+) (?P<direction>[oid]) "
    r"(?P<access>[agr]) (?P<user>\S+) (?P<service>\S+) (?P<auth>[01]) (?P<authuser>\S+) "
    r"(?P<status>[ci])$"
)


def parse_xferlog(line: str) -> dict[str, Any]:
    """An xferlog(5) line back into its fields (numbers as ints); raises
    ValueError for a line that is not one."""
    m = _XFERLOG.match(line.rstrip("\n"))
    if m is None:
        raise ValueError(f"not an xferlog line: {line!r}")
    out: dict[str, Any] = m.groupdict()
    out["time"] = time.mktime(time.strptime(out.pop("stamp"), "%a %b %d %H:%M:%S %Y"))
    for key in ("seconds", "bytes"):
        out[key] = int(out[key])
    return out


def format_json(rec: TransferRecord) -> str:
    data = asdict(rec)
    data["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(rec.time)) + (
        f".{int(rec.time % 1 * 1000):03d}Z"
    )
    data["seconds"] = round(rec.seconds, 3)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def format_transfer_line(
    verb: str, user: str, peer: str, path: str, nbytes: int, seconds: float, outcome: str
) -> str:
    # Paths are quoted so that spaces in names keep the line parseable.
    quoted = '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return (
        f"{verb} user={user} peer={peer} path={quoted} bytes={nbytes} "
        f"secs={seconds:.3f} result={outcome}"
    )


class _SessionFilter(logging.Filter):
    """Stamps each record with the session id of the task that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "session"):
            record.session = session_id.get()
        return True


class _Formatter(logging.Formatter):
    """``logging.Formatter`` with the time stamp's text made once per second
    (strftime was a tenth of the cost of a record)."""

    _stamp: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._stamp  # (one read: another thread may replace it)
        if cached[0] != second:
            cached = self._stamp = (
                second,
                time.strftime(self.default_time_format, self.converter(record.created)),
            )
        return f"{cached[1]},{int(record.msecs):03d}"


class _TransferFormatter(_Formatter):
    """Renders the TransferRecord a transfer-log record carries."""

    def __init__(self, kind: str) -> None:
        super().__init__("%(asctime)s %(message)s")
        self.kind = kind

    def format(self, record: logging.LogRecord) -> str:
        rec = getattr(record, "transfer", None)
        if not isinstance(rec, TransferRecord) or self.kind == "text":
            return super().format(record)
        return format_xferlog(rec) if self.kind == "xferlog" else format_json(rec)


def _file_or_stderr(name: str | None) -> logging.Handler:
    if name is None or name == "-":
        return logging.StreamHandler(sys.stderr)
    return logging.handlers.WatchedFileHandler(name, encoding="utf-8")


def configure_logging(cfg: LoggingConfig) -> None:
    """Install handlers for the configured destinations (idempotent: a second
    call replaces what the first installed)."""
    for logger, handler in _installed:
        logger.removeHandler(handler)
        handler.close()
    _installed.clear()
    root = logging.getLogger("vfsftp")
    root.setLevel(cfg.level.upper())
    main = _file_or_stderr(cfg.file)
    main.setFormatter(_Formatter(_FORMAT))
    main.addFilter(_SessionFilter())
    root.addHandler(main)
    _installed.append((root, main))
    if cfg.transfer_log:
        handler = _file_or_stderr(cfg.transfer_log)
        handler.setFormatter(_TransferFormatter(cfg.transfer_log_format))
        handler.addFilter(_SessionFilter())
        transfer_log.addHandler(handler)
        transfer_log.propagate = False
        transfer_log.setLevel(logging.INFO)
        _installed.append((transfer_log, handler))
    else:
        transfer_log.propagate = True


def lean_log_records() -> None:
    """Process-wide: log records without the caller's file and line, thread
    and process, which no vfsftp format shows (the logging HOWTO's
    "Optimization" settings; a third of the cost of a record). For the
    ``vfsftp serve`` process only: an application embedding the server
    keeps its own logging as it set it."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def log_transfer(rec: TransferRecord) -> None:
    transfer_log.info(
        format_transfer_line(
            rec.verb, rec.user, rec.peer, rec.path, rec.bytes, rec.seconds, rec.outcome
        ),
        extra={"transfer": rec},
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
