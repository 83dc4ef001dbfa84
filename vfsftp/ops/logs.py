"""Session log, transfer log and counters (Medusa's logger and counter).

Loggers:
- ``vfsftp.session``: connect, login ok/failed, commands (debug; PASS is
  redacted by the channel), disconnect. Every line of one control
  connection carries the same session id (``[3f9a0c21]``), also in the
  JSON transfer log, so a session's lines can be pulled together;
- ``vfsftp.transfer``: one line per RETR/STOR/STOU/APPE. In its own file it
  is written as xferlog(5) lines (the wu-ftpd/vsftpd layout that log
  analysers read) or as JSON lines; inside the session log as key=value.

Whatever a client chose (user names, paths, command lines) is written with
its control characters escaped (``\x1b``, ``\r``, ``\u202e``): a line of
the log is one record, and no record can forge another or repaint a
terminal. The xferlog format writes them as ``_`` instead, as it does spaces.

A record is one ``os.write`` of a whole line (``LineWriter``): it is in the
log before the reply that follows it reaches the client, lines of threads or
of ``--workers`` processes sharing a file do not interleave, and after
logrotate renames a file the next line goes to a new one (no copytruncate,
no signal needed).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..protocol.hashes import algorithm_named, checksum_field

if TYPE_CHECKING:
    from ..config.schema import LoggingConfig

__all__ = [
    "Counters",
    "LineWriter",
    "TransferRecord",
    "configure_logging",
    "escape_controls",
    "format_json",
    "format_transfer_line",
    "format_xferlog",
    "lean_log_records",
    "log_handler",
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
    #: why it failed (see vfsftp.session.failures): a keyword, and a text for people
    fault: str = ""
    reason: str = ""
    #: an upload's checksum, computed while its data arrived (server.hash.upload)
    checksum_algorithm: str = ""
    checksum: str = ""


#: C0 and C1 controls, DEL, line and paragraph separators, and the bidi
#: controls that make a viewer show text in another order (CVE-2021-42574)
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(m: re.Match[str]) -> str:
    c = m.group()
    named = _NAMED.get(c)
    if named is not None:
        return named
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape. Pure."""
    return _CONTROLS.sub(_escaped, text)


def _json_escaped(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def _xferlog_name(path: str) -> str:
    # Analysers split the line on whitespace: spaces and control characters
    # become '_', as ProFTPD writes them (the JSON log keeps the exact name).
    return "".join("_" if c.isspace() or _CONTROLS.match(c) else c for c in path)


def format_xferlog(rec: TransferRecord) -> str:
    """The xferlog(5) line: current-time transfer-time remote-host file-size
    filename transfer-type special-action-flag direction access-mode
    username service-name authentication-method authenticated-user-id
    completion-status. Times are local, as in wu-ftpd's ctime() stamp; the
    transfer time is whole seconds, at least 1 (so that size / time, the
    rate analysers compute, is defined). After the fourteen fields that
    analysers read, an incomplete transfer's line has its fault keyword,
    and an upload its checksum (``sha-256:<hex>``, protocol.hashes)."""
    stamp = time.asctime(time.localtime(rec.time))
    fields: tuple[str, ...] = (
        stamp,
        str(max(1, round(rec.seconds))),
        rec.peer,
        str(rec.bytes),
        _xferlog_name(rec.path),
        "b" if rec.binary else "a",
        "_",  # no compression / tar on the fly
        rec.direction,
        "a" if rec.anonymous else "r",
        _xferlog_name(rec.user) or "-",
        "ftp",
        "0",  # no RFC 931 authentication
        "*",
        "c" if rec.complete else "i",
    )
    if not rec.complete and rec.fault:
        fields += (rec.fault,)
    if rec.checksum:
        fields += (checksum_field(rec.checksum_algorithm, rec.checksum),)
    return " ".join(fields)


# Anchored at both ends: other servers' logs may have spaces in file names,
# no other field has, so the name is whatever lies between the fixed fields.
_XFERLOG = re.compile(
    r"^(?P<stamp>\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}) (?P<seconds>\d+) (?P<peer>\S+) "
    r"(?P<bytes>\d+) (?P<path>.*) (?P<type>[ab]) (?P<action>[CUT_]+) (?P<direction>[oid]) "
    r"(?P<access>[agr]) (?P<user>\S+) (?P<service>\S+) (?P<auth>[01]) (?P<authuser>\S+) "
    r"(?P<status>[ci])(?: (?P<fault>[a-z-]+))?(?: (?P<checksum>[a-z0-9-]+:[0-9a-f]+))?$"
)


def parse_xferlog(line: str) -> dict[str, Any]:
    """An xferlog(5) line back into its fields (numbers as ints); raises
    ValueError for a line that is not one."""
    m = _XFERLOG.match(line.rstrip("\n"))
    if m is None:
        raise ValueError(f"not an xferlog line: {line!r}")
    out: dict[str, Any] = m.groupdict()
    out["fault"] = out["fault"] or ""
    algorithm, _, digest = (out.pop("checksum") or "").partition(":")
    out["checksum_algorithm"] = algorithm_named(algorithm) or algorithm
    out["checksum"] = digest
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
    # json escapes C0 controls itself; the others (DEL, C1, separators,
    # bidi controls) are valid in a JSON string but not in a log line.
    return _CONTROLS.sub(_json_escaped, json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_transfer_line(
    verb: str,
    user: str,
    peer: str,
    path: str,
    nbytes: int,
    seconds: float,
    outcome: str,
    fault: str = "",
    reason: str = "",
    checksum: str = "",
) -> str:
    # Paths are quoted so that spaces in names keep the line parseable.
    line = (
        f"{verb} user={user} peer={peer} path={_quoted(path)} bytes={nbytes} "
        f"secs={seconds:.3f} result={outcome}"
    )
    if fault:
        line += f" fault={fault} reason={_quoted(reason)}"
    if checksum:
        line += f" checksum={checksum}"
    return line


class _SessionFilter(logging.Filter):
    """Stamps each record with the session id of the task that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        _stamp_session(record)
        return True


def _stamp_session(record: logging.LogRecord) -> None:
    if not hasattr(record, "session"):
        record.session = session_id.get()


#: The layouts vfsftp installs, as code: ``Formatter.format`` interprets a
#: %-style template per record (usesTime, a dict per line), about twice the
#: cost of an f-string; a record with a traceback still goes the stdlib way.
_LAYOUTS: dict[str, Callable[[logging.LogRecord], str]] = {
    _FORMAT: lambda r: f"{r.asctime} {r.levelname} {r.name} [{r.session}]: {r.message}",  # type: ignore[attr-defined]
    "%(asctime)s %(message)s": lambda r: f"{r.asctime} {r.message}",
}


class _Formatter(logging.Formatter):
    """``logging.Formatter`` with the time stamp's text made once per second
    (strftime was a tenth of the cost of a record), and vfsftp's own
    layouts written without interpreting their template."""

    _stamp: tuple[int, str] = (-1, "")

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._layout = _LAYOUTS.get(fmt)

    def format(self, record: logging.LogRecord) -> str:
        layout = self._layout
        if layout is None or record.exc_info or record.stack_info:
            return super().format(record)
        # The attributes Formatter.format leaves on the record, for any other
        # handler that sees it after this one.
        record.message = escape_controls(record.getMessage())
        record.asctime = self.formatTime(record)
        return layout(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # (the stdlib way: the traceback is added after, on lines of its own)
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

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


class LineWriter(logging.Handler):
    """Writes a record as one ``os.write`` of a whole line: to a file (opened
    for appending, and opened again under its name once logrotate has
    renamed or removed it, as ``WatchedFileHandler`` does), or to standard
    error.

    ``StreamHandler`` goes through a text and a buffered layer and flushes
    after every record, about half the cost of a record written to a file.
    The
    line is written before ``handle`` returns, so a transfer is in the log
    before its 226 goes out. ``O_APPEND`` keeps the lines of several
    processes sharing a file (``--workers``) whole. Text that cannot be
    encoded (a file name in invalid UTF-8 keeps its bytes as surrogates)
    is written backslash-escaped, not dropped."""

    def __init__(self, path: str | None) -> None:
        super().__init__()
        self.path = path
        self._ident: tuple[int, int] | None = None
        if path is None:
            self._fd = sys.stderr.fileno()  # may raise: see log_handler
        else:
            self._fd = -1
            self._open()

    def _open(self) -> None:
        assert self.path is not None
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        st = os.fstat(fd)
        old, self._fd, self._ident = self._fd, fd, (st.st_dev, st.st_ino)
        if old >= 0:
            os.close(old)

    def _moved(self) -> bool:
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._ident

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if self.filters and not self.filter(record):
            return False
        _stamp_session(record)
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            # The lock only keeps a reopen from closing the descriptor under
            # another thread's write (its number could be reused by then).
            with self.lock:  # type: ignore[union-attr]
                if self._fd < 0:
                    return True  # closed
                if self.path is not None and self._moved():
                    self._open()
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self.path is not None and self._fd >= 0:
                os.close(self._fd)
            self._fd = -1
        super().close()


def log_handler(name: str | None) -> logging.Handler:
    """The handler for a configured destination: a file name, or None / "-"
    for standard error (a StreamHandler when it has no file descriptor, as
    under a test runner's capture)."""
    if name is not None and name != "-":
        return LineWriter(name)
    try:
        return LineWriter(None)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(_SessionFilter())
        return handler


def configure_logging(cfg: LoggingConfig) -> None:
    """Install handlers for the configured destinations (idempotent: a second
    call replaces what the first installed)."""
    for logger, handler in _installed:
        logger.removeHandler(handler)
        handler.close()
    _installed.clear()
    root = logging.getLogger("vfsftp")
    root.setLevel(cfg.level.upper())
    main = log_handler(cfg.file)
    main.setFormatter(_Formatter(_FORMAT))
    root.addHandler(main)
    _installed.append((root, main))
    if cfg.transfer_log:
        handler = log_handler(cfg.transfer_log)
        handler.setFormatter(_TransferFormatter(cfg.transfer_log_format))
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
            rec.verb,
            rec.user,
            rec.peer,
            rec.path,
            rec.bytes,
            rec.seconds,
            rec.outcome,
            rec.fault,
            rec.reason,
            checksum_field(rec.checksum_algorithm, rec.checksum) if rec.checksum else "",
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
