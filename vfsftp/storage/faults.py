"""A filesystem that fails on purpose: full disks, I/O errors, failed renames.

``FaultyFS`` wraps any PyFilesystem2 filesystem and makes chosen operations
fail with a chosen ``errno``: every time, after so many bytes of a file, for
a share of the calls, a given number of times, on matching paths only. The
faults can be changed while it runs (``set_faults``, or a control file that
is re-read when it changes), so a test can fill the disk in the middle of a
transfer and empty it again.

    from vfsftp.storage.faults import Fault, FaultyFS

    disk = FaultyFS(OSFS("/tmp/data"), [Fault.parse("write:ENOSPC:after=1048576")])
    disk.set_faults([])          # healthy again

As a mount (the ``faulty+`` prefix goes in front of ``osfs://``, ``mem://``
or ``temp://``; installing vfsftp registers these opener URLs):

    mounts:
      /data: "faulty+osfs:///srv/data?faults=write:ENOSPC:after=1048576"
      /flaky: "faulty+mem://?control=/tmp/faults.txt&seed=1"

A fault is ``OP:ERRNO[:after=BYTES][:p=PROBABILITY][:times=N][:path=GLOB]``:

- ``OP``: ``write`` and ``read`` (the data of a file: they fail once that
  file has moved ``after`` bytes, ``1048576`` or ``1MiB``; ``p`` is the
  share of *files* that get the fault, and a fault set while a file is
  open hits its next call), ``open`` (opening a file for writing), ``rename`` (move,
  movedir), ``remove`` (remove, removedir, removetree), ``mkdir`` (makedir,
  makedirs), ``list`` (listdir, scandir); ``p`` is then the share of calls;
- ``ERRNO``: a name (``ENOSPC``, ``EIO``, ``EDQUOT``, ``EACCES``...) or a number;
- ``times``: inject it at most N times (then it is spent); default no limit;
- ``path``: an ``fnmatch`` pattern on the path inside this filesystem.

Errors look like the real ones: a call of the filesystem raises the
``fs.errors`` exception OSFS raises for that errno (``InsufficientStorage``
for ENOSPC, ``OperationFailed`` for EIO), a file's ``write``/``read`` raises
``OSError`` itself, after writing the bytes that still fitted. Each fault
injected is logged (logger ``vfsftp.faults``, WARNING, with the session id
inside a server) and counted in ``FaultyFS.injected``.

The control file holds one fault per line (``#`` starts a comment); a
missing or empty file means no faults. It is checked (one ``stat``) at
every operation and re-read when it changed.

The wrapper offers no system path (``getsyspath`` raises ``NoSysPath``),
so that nothing can write past it with plain ``os`` calls; a file without
read faults still hands out its descriptor (``sendfile`` works).
"""

from __future__ import annotations

import errno as errno_mod
import fnmatch
import io
import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO
from urllib.parse import urlencode

import fs.errors
from fs.base import FS
from fs.error_tools import convert_os_errors
from fs.info import Info
from fs.opener import Opener
from fs.opener.parse import ParseResult
from fs.wrapfs import WrapFS

__all__ = ["OPS", "Fault", "FaultyFS", "FaultyOpener", "parse_faults"]

log = logging.getLogger("vfsftp.faults")

#: what a fault can hit
OPS = ("write", "read", "open", "rename", "remove", "mkdir", "list")
_DATA_OPS = ("write", "read")
_WRITE_MODES = frozenset("wax+")
_SUFFIXES = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "k": 1000, "m": 10**6, "g": 10**9}


def _errno(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    value = getattr(errno_mod, text.upper(), None)
    if not isinstance(value, int):
        raise ValueError(f"unknown errno {text!r}; expected a name such as ENOSPC or a number")
    return value


def _size(text: str) -> int:
    low = text.strip().lower()
    for suffix, factor in _SUFFIXES.items():
        if low.endswith(suffix) and low[: -len(suffix)].strip().isdigit():
            return int(low[: -len(suffix)]) * factor
    if not low.isdigit():
        raise ValueError(f"expected a byte count such as 1048576 or 1MiB, got {text!r}")
    return int(low)


@dataclass(frozen=True)
class Fault:
    """One kind of failure (see the module's docstring for the fields)."""

    op: str
    errno: int
    after: int = 0
    p: float = 1.0
    times: int | None = None
    path: str = "*"

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown operation {self.op!r}; expected one of {', '.join(OPS)}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be between 0 and 1, got {self.p}")
        if self.after < 0:
            raise ValueError(f"after must be 0 or more, got {self.after}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be 1 or more, got {self.times}")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``OP:ERRNO[:after=BYTES][:p=PROBABILITY][:times=N][:path=GLOB]``"""
        parts = text.strip().split(":")
        if len(parts) < 2:
            raise ValueError(f"expected OP:ERRNO[:key=value...], got {text!r}")
        fields: dict[str, Any] = {"op": parts[0].strip().lower(), "errno": _errno(parts[1])}
        for item in parts[2:]:
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if not sep:
                raise ValueError(f"expected key=value, got {item!r} in {text!r}")
            if key == "after":
                fields["after"] = _size(value)
            elif key == "p":
                fields["p"] = float(value)
            elif key == "times":
                fields["times"] = int(value)
            elif key == "path":
                fields["path"] = value.strip()
            else:
                raise ValueError(f"unknown key {key!r} in {text!r}; expected after, p, times, path")
        return cls(**fields)

    def __str__(self) -> str:
        text = f"{self.op}:{errno_mod.errorcode.get(self.errno, str(self.errno))}"
        if self.after:
            text += f":after={self.after}"
        if self.p != 1.0:
            text += f":p={self.p:g}"
        if self.times is not None:
            text += f":times={self.times}"
        if self.path != "*":
            text += f":path={self.path}"
        return text

    def matches(self, op: str, path: str) -> bool:
        return op == self.op and (self.path == "*" or fnmatch.fnmatchcase(path, self.path))


def parse_faults(text: str) -> list[Fault]:
    """Faults from text: one per line or separated by commas; ``#`` comments."""
    found = []
    for line in text.splitlines():
        for item in line.split("#", 1)[0].split(","):
            if item.strip():
                found.append(Fault.parse(item))
    return found


def _oserror(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


class FaultyFile(io.RawIOBase):
    """A file of a ``FaultyFS``: each read and write asks the filesystem's
    faults of the moment, so a fault switched on mid-file hits the next
    write. Whether a fault with ``p`` < 1 hits this file is drawn once per
    file; once fired, a fault keeps failing this file's calls while it is
    set."""

    def __init__(self, owner: FaultyFS, inner: IO[bytes], path: str) -> None:
        super().__init__()
        self._owner = owner
        self._inner = inner
        self._path = path
        self._decisions: dict[Fault, bool] = {}
        self._fired: set[Fault] = set()
        self.written = 0
        self.read_bytes = 0

    def _fault(self, op: str) -> Fault | None:
        return self._owner._data_fault(op, self._path, self._decisions, self._fired)

    def _fire(self, fault: Fault, moved: int) -> OSError:
        if fault not in self._fired:
            self._fired.add(fault)
            self._owner._fired(fault, self._path, moved)
        return _oserror(fault.errno, self._path)

    # -- data
    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        fault = self._fault("write")
        if fault is not None and (fault in self._fired or self.written + len(view) > fault.after):
            fits = 0 if fault in self._fired else max(0, fault.after - self.written)
            if fits:
                self._inner.write(view[:fits])
                self.written += fits
            raise self._fire(fault, self.written)
        n = self._inner.write(view)
        n = len(view) if n is None else n
        self.written += n
        return n

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        fault = self._fault("read")
        if fault is not None:
            left = fault.after - self.read_bytes
            if fault in self._fired or left <= 0:
                raise self._fire(fault, self.read_bytes)
            view = view[:left]
        data = self._inner.read(len(view))
        n = len(data)
        view[:n] = data
        self.read_bytes += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            chunks: list[bytes] = []
            while True:
                chunk = self.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf[:n])

    def readall(self) -> bytes:
        return self.read(-1)

    # -- the rest goes to the real file
    @property
    def mode(self) -> str:
        return str(getattr(self._inner, "mode", ""))

    @property
    def name(self) -> str:
        return self._path

    def readable(self) -> bool:
        return bool(self._inner.readable())

    def writable(self) -> bool:
        return bool(self._inner.writable())

    def seekable(self) -> bool:
        return bool(self._inner.seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._inner.seek(offset, whence))

    def tell(self) -> int:
        return int(self._inner.tell())

    def truncate(self, size: int | None = None) -> int:
        return int(self._inner.truncate(size))

    def flush(self) -> None:
        if not self.closed:
            self._inner.flush()

    def fileno(self) -> int:
        # With a read fault set, a descriptor would let sendfile read past it.
        if self._fault("read") is not None:
            raise io.UnsupportedOperation("fileno: a read fault is set for this file")
        return int(self._inner.fileno())

    def close(self) -> None:
        if not self.closed:
            try:
                super().close()  # (flushes first)
            finally:
                self._inner.close()

    def __repr__(self) -> str:
        return f"<FaultyFile {self._path!r} {self._inner!r}>"


class FaultyFS(WrapFS[FS]):  # type: ignore[misc]
    """``wrap_fs`` whose operations fail as ``faults`` say (see the module).

    ``control``: a file (host path) of faults, re-read when it changes; it
    replaces the faults given here and by ``set_faults`` whenever it does.
    ``seed``: for the random draws of ``p`` (reproducible runs).
    """

    wrap_name = "faulty"

    def __init__(
        self,
        wrap_fs: FS,
        faults: Iterable[Fault] = (),
        *,
        control: str | os.PathLike[str] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(wrap_fs)
        self._fault_lock = threading.Lock()
        self._faults: tuple[Fault, ...] = tuple(faults)
        self._spent: Counter[Fault] = Counter()
        self._random = random.Random(seed)
        self.control = os.fspath(control) if control is not None else None
        self._control_key: tuple[int, int, int] | None = None
        #: faults injected so far, by operation
        self.injected: Counter[str] = Counter()

    # ------------------------------------------------------------ faults

    @property
    def faults(self) -> tuple[Fault, ...]:
        self._refresh()
        return self._faults

    def set_faults(self, faults: Iterable[Fault]) -> None:
        """Replace the faults (from any thread); their ``times`` start again."""
        with self._fault_lock:
            self._faults = tuple(faults)
            self._spent.clear()

    def _refresh(self) -> None:
        if self.control is None:
            return
        try:
            st = os.stat(self.control)
            key: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            key = None
        if key == self._control_key:
            return
        text = ""
        if key is not None:
            try:
                with open(self.control, encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                return  # replaced as we looked: the next call sees it
        try:
            faults = parse_faults(text)
        except ValueError as exc:
            log.error("fault control file %s: %s; faults unchanged", self.control, exc)
            self._control_key = key
            return
        with self._fault_lock:
            if key != self._control_key:
                self._control_key = key
                self._faults = tuple(faults)
                self._spent.clear()
        log.info(
            "fault control file %s: %s", self.control, ", ".join(map(str, faults)) or "no faults"
        )

    def _draw(self, op: str, path: str) -> Fault | None:
        """The fault this call gets, if any; counts it as used."""
        self._refresh()
        with self._fault_lock:
            for fault in self._faults:
                if not fault.matches(op, path):
                    continue
                if fault.times is not None and self._spent[fault] >= fault.times:
                    continue
                if fault.p < 1.0 and self._random.random() >= fault.p:
                    continue
                self._spent[fault] += 1
                self.injected[op] += 1
                return fault
        return None

    def _data_fault(
        self, op: str, path: str, decisions: dict[Fault, bool], fired: set[Fault]
    ) -> Fault | None:
        """The data fault (write, read) set now for a file, if any."""
        self._refresh()
        with self._fault_lock:
            for fault in self._faults:
                if not fault.matches(op, path):
                    continue
                if fault in fired:
                    return fault
                if fault.times is not None and self._spent[fault] >= fault.times:
                    continue
                hit = decisions.get(fault)
                if hit is None:
                    hit = decisions[fault] = fault.p >= 1.0 or self._random.random() < fault.p
                if hit:
                    return fault
        return None

    def _check(self, op: str, path: str, *, directory: bool = False) -> None:
        fault = self._draw(op, path)
        if fault is None:
            return
        log.warning(
            "injected %s on %s %s", errno_mod.errorcode.get(fault.errno, fault.errno), op, path
        )
        with convert_os_errors(op, path, directory=directory):
            raise _oserror(fault.errno, path)

    def _fired(self, fault: Fault, path: str, moved: int) -> None:
        with self._fault_lock:
            self._spent[fault] += 1
            self.injected[fault.op] += 1
        log.warning(
            "injected %s on %s %s after %d bytes",
            errno_mod.errorcode.get(fault.errno, fault.errno),
            fault.op,
            path,
            moved,
        )

    # ------------------------------------------------------------ files

    def openbin(self, path: str, mode: str = "r", buffering: int = -1, **options: Any) -> BinaryIO:
        if _WRITE_MODES & set(mode):
            self._check("open", path)
        inner = super().openbin(path, mode, buffering, **options)
        return FaultyFile(self, inner, path)  # type: ignore[return-value]

    def open(
        self,
        path: str,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str = "",
        line_buffering: bool = False,
        **options: Any,
    ) -> IO[Any]:
        # FS.open builds on self.openbin (WrapFS.open would go around it).
        options["line_buffering"] = line_buffering
        return FS.open(  # type: ignore[no-any-return]
            self, path, mode, buffering, encoding, errors, newline, **options
        )

    # Data helpers of FS, built on openbin (WrapFS sends them around it).
    def appendbytes(self, path: str, data: bytes) -> None:
        FS.appendbytes(self, path, data)

    def appendtext(self, path: str, text: str, *args: Any, **kwargs: Any) -> None:
        FS.appendtext(self, path, text, *args, **kwargs)

    def writebytes(self, path: str, contents: bytes) -> None:
        FS.writebytes(self, path, contents)

    def writetext(self, path: str, contents: str, *args: Any, **kwargs: Any) -> None:
        FS.writetext(self, path, contents, *args, **kwargs)

    def writefile(self, path: str, file: IO[Any], *args: Any, **kwargs: Any) -> None:
        FS.writefile(self, path, file, *args, **kwargs)

    def upload(
        self, path: str, file: BinaryIO, chunk_size: int | None = None, **options: Any
    ) -> None:
        FS.upload(self, path, file, chunk_size, **options)

    def create(self, path: str, wipe: bool = False) -> bool:
        return bool(FS.create(self, path, wipe))

    def readbytes(self, path: str) -> bytes:
        return bytes(FS.readbytes(self, path))

    def readtext(self, path: str, *args: Any, **kwargs: Any) -> str:
        return str(FS.readtext(self, path, *args, **kwargs))

    def download(
        self, path: str, file: BinaryIO, chunk_size: int | None = None, **options: Any
    ) -> None:
        FS.download(self, path, file, chunk_size, **options)

    def copy(
        self, src_path: str, dst_path: str, overwrite: bool = False, preserve_time: bool = False
    ) -> None:
        FS.copy(self, src_path, dst_path, overwrite, preserve_time)

    def copydir(
        self, src_path: str, dst_path: str, create: bool = False, preserve_time: bool = False
    ) -> None:
        FS.copydir(self, src_path, dst_path, create, preserve_time)

    # ------------------------------------------------------------ metadata

    def move(
        self, src_path: str, dst_path: str, overwrite: bool = False, preserve_time: bool = False
    ) -> None:
        self._check("rename", src_path)
        super().move(src_path, dst_path, overwrite, preserve_time)

    def movedir(
        self, src_path: str, dst_path: str, create: bool = False, preserve_time: bool = False
    ) -> None:
        self._check("rename", src_path, directory=True)
        super().movedir(src_path, dst_path, create, preserve_time)

    def remove(self, path: str) -> None:
        self._check("remove", path)
        super().remove(path)

    def removedir(self, path: str) -> None:
        self._check("remove", path, directory=True)
        super().removedir(path)

    def removetree(self, dir_path: str) -> None:
        self._check("remove", dir_path, directory=True)
        super().removetree(dir_path)

    def makedir(self, path: str, permissions: Any = None, recreate: bool = False) -> Any:
        self._check("mkdir", path, directory=True)
        return super().makedir(path, permissions, recreate)

    def makedirs(self, path: str, permissions: Any = None, recreate: bool = False) -> Any:
        self._check("mkdir", path, directory=True)
        return super().makedirs(path, permissions, recreate)

    def listdir(self, path: str) -> list[str]:
        self._check("list", path, directory=True)
        return list(super().listdir(path))

    def scandir(
        self,
        path: str,
        namespaces: Collection[str] | None = None,
        page: tuple[int, int] | None = None,
    ) -> Iterator[Info]:
        self._check("list", path, directory=True)
        return super().scandir(path, namespaces, page)  # type: ignore[no-any-return]

    def getsyspath(self, path: str) -> str:
        raise fs.errors.NoSysPath(path=path)

    def hassyspath(self, path: str) -> bool:
        return False


# ---------------------------------------------------------------- opener

_OWN_PARAMS = ("faults", "control", "seed")


class FaultyOpener(Opener):  # type: ignore[misc]
    """``faulty+osfs://PATH``, ``faulty+mem://``, ``faulty+temp://``, with
    the parameters ``faults`` (comma-separated), ``control`` (a file of
    faults, relative to ``cwd``) and ``seed``; other parameters go to the
    wrapped filesystem's URL. A local folder is wrapped as vfsftp mounts it
    (symbolic links leading out of it refused)."""

    protocols = ["faulty+osfs", "faulty+mem", "faulty+temp"]

    def open_fs(
        self,
        fs_url: str,
        parse_result: ParseResult,
        writeable: bool,
        create: bool,
        cwd: str,
    ) -> FaultyFS:
        import fs.opener
        from fs.osfs import OSFS

        from .local import JailedOSFS

        inner_url = _inner_url(fs_url, parse_result.params)
        params: Mapping[str, str] = parse_result.params
        try:
            faults = parse_faults(params.get("faults", "").replace(",", "\n"))
            seed = int(params["seed"]) if params.get("seed") else None
        except ValueError as exc:
            raise fs.opener.errors.OpenerError(f"{fs_url}: {exc}") from None
        control = params.get("control") or None
        if control is not None:
            control = os.path.join(cwd, os.path.expanduser(control))
        inner = fs.opener.open_fs(inner_url, writeable=writeable, create=create, cwd=cwd)
        if type(inner) is OSFS:
            inner = JailedOSFS(inner._root_path)
        return FaultyFS(inner, faults, control=control, seed=seed)


def _inner_url(fs_url: str, params: Mapping[str, str]) -> str:
    url = fs_url.split("+", 1)[1]
    base, _, _ = url.partition("?")
    rest: Sequence[tuple[str, str]] = [(k, v) for k, v in params.items() if k not in _OWN_PARAMS]
    return f"{base}?{urlencode(rest)}" if rest else base
