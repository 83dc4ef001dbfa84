"""The session's view of its tree: permissions, the async facade over the
blocking ``fs`` API, and the mapping of every filesystem error to a reply.

Every call that can block (a disk, a network store) runs in a worker thread;
calls on in-memory mounts run inline, where a thread hop costs more than the
call itself (see ``Mount.inline``).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import IO, Any, Protocol, TypeVar

import fs.errors
from fs.info import Info

from .errors import FTPError, map_fs_error
from .paths import PathRejected, basename, dirname, is_under, resolve
from .permissions import WRITE_PERMS, effective_perms, mlst_perm_fact
from .protocol import ListEntry
from .quota import Quota, QuotaWriter, charge_all, measure, release_all
from .threads import ThreadPool
from .tree import UPLOAD_PREFIX, Mount, VirtualTree

__all__ = ["SessionFS", "Upload"]

T = TypeVar("T")

_NAMESPACES = ("details", "stat")
_WRITE_MODE_LETTERS = frozenset("wam")
COPY_CHUNK = 1 << 20


class AtomicWriter(Protocol):
    """What a filesystem offers when it can make an upload appear at once on
    its own (an S3 multipart upload is invisible until completed)."""

    def write(self, data: Any) -> int: ...
    def commit(self) -> None: ...
    def discard(self) -> None: ...


@dataclass
class Upload:
    """An upload in progress. A failed or aborted STOR leaves the old file (or
    none), never a partial one: data goes to a hidden temporary name in the
    target directory and is moved over the target only on success — or, where
    the filesystem offers ``open_atomic_upload`` (S3), to a writer that
    publishes nothing until ``commit()``."""

    mount: Mount
    target: str  # path inside the mount
    temp: str
    virtual_path: str
    offset: int = 0  # REST: keep this many bytes of the existing file
    append: bool = False  # APPE: keep all of the existing file
    file: Any = None
    atomic: AtomicWriter | None = None
    #: quota scopes the upload is charged to, and the size of the data it
    #: replaces (see QuotaWriter); a new file's slot is taken by begin_upload
    quotas: tuple[Quota, ...] = ()
    credit: int = 0
    new_file: bool = False
    writer: QuotaWriter | None = None

    def open(self) -> Any:
        """Blocking: create the temporary file (or atomic writer), seeded
        with the part of the existing file that REST or APPE keeps."""
        f = self._open()
        if self.quotas:
            self.writer = QuotaWriter(f, self.quotas, self.credit)
            return self.writer
        return f

    def _open(self) -> Any:
        opener = getattr(self.mount.fs, "open_atomic_upload", None)
        if opener is not None:
            self.atomic = opener(self.target, offset=self.offset, append=self.append)
            return self.atomic
        f = self.mount.fs.openbin(self.temp, "w")
        try:
            if self.offset or self.append:
                try:
                    src = self.mount.fs.openbin(self.target, "r")
                except fs.errors.ResourceNotFound:
                    if self.offset:
                        raise
                else:
                    with src:
                        if self.append:
                            shutil.copyfileobj(src, f, COPY_CHUNK)
                        else:
                            _copy_n(src, f, self.offset)
        except BaseException:
            f.close()
            self.discard()
            raise
        self.file = f
        return f

    def commit(self) -> None:
        """Blocking: make the upload visible under its name; if that fails,
        drop what was written (the temporary file, the multipart upload)."""
        try:
            if self.atomic is not None:
                self.atomic.commit()
            else:
                if self.file is not None:
                    self.file.close()
                self.mount.fs.move(self.temp, self.target, overwrite=True)
        except BaseException:
            self.discard()
            raise
        if self.writer is not None:
            self.writer.committed()

    def _unaccount(self) -> None:
        if self.writer is not None:
            self.writer.discarded()
        if self.new_file:
            release_all(self.quotas, nfiles=1)
            self.new_file = False

    def discard(self) -> None:
        """Blocking: drop everything written; never raises."""
        self._unaccount()
        if self.atomic is not None:
            with contextlib.suppress(Exception):
                self.atomic.discard()
            return
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
        with contextlib.suppress(Exception):
            self.mount.fs.remove(self.temp)


def measure_home(tree: VirtualTree, home: str) -> tuple[int, int]:
    """Blocking: (bytes, files) under ``home`` on the tree's writable mounts
    (what a user quota counts)."""
    total = files = 0
    for m in tree.mounts:
        if m.read_only:
            continue
        if is_under(m.path, home):
            sub = "/"
        elif is_under(home, m.path):
            sub = home if m.path == "/" else home[len(m.path) :]
        else:
            continue
        if m.fs.isdir(sub):
            b, f = measure(m.fs, sub, UPLOAD_PREFIX)
            total, files = total + b, files + f
    return total, files


def _read_up_to(f: IO[bytes], n: int) -> bytes:
    """``n`` bytes, or fewer at the end of the file. One read() may return
    less before the end (a raw file: the bytes before an I/O error, a
    network store's chunk); only an empty read is the end."""
    first = f.read(n)
    if len(first) >= n or not first:
        return first
    parts = [first]
    left = n - len(first)
    while left > 0:
        chunk = f.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _copy_n(src: IO[bytes], dst: IO[bytes], n: int) -> None:
    left = n
    while left > 0:
        chunk = src.read(min(COPY_CHUNK, left))
        if not chunk:
            raise FTPError(554, f"Restart offset {n} is beyond the end of the file")
        dst.write(chunk)
        left -= len(chunk)


def _unique(info: Info, mount_kind: str, path: str) -> str:
    st: Mapping[str, Any] = info.raw.get("stat") or {}
    return _unique_of(int(st.get("st_ino") or 0), int(st.get("st_dev") or 0), mount_kind, path)


def _unique_of(ino: int, dev: int, mount_kind: str, path: str) -> str:
    if ino:
        return f"{dev:x}g{ino:x}"
    return hashlib.blake2s(
        f"{mount_kind}:{path}".encode("utf-8", "surrogateescape"), digest_size=8
    ).hexdigest()


class SessionFS:
    """One logged-in user's filesystem: a tree, a current directory and the
    user's permission letters with their per-path overrides."""

    def __init__(
        self,
        tree: VirtualTree,
        perms: str,
        overrides: Mapping[str, str],
        executor: ThreadPool | None,
        home: str = "/",
        owner: str = "owner",
        user_quota: Quota | None = None,
        quota_home: str = "/",
    ) -> None:
        self.tree = tree
        self.perms = perms
        self.overrides = dict(overrides)
        self.executor = executor
        self.cwd = resolve("/", home)
        self.owner = owner
        self.user_quota = user_quota
        self.quota_home = quota_home  # the user quota counts what is under it

    # ------------------------------------------------------------ pure rules

    def resolve(self, arg: str) -> str:
        try:
            path = resolve(self.cwd, arg)
        except PathRejected as exc:
            raise FTPError(553, f"File name not allowed: {exc}") from None
        if basename(path).startswith(UPLOAD_PREFIX):
            raise FTPError(553, "File name not allowed: reserved for uploads in progress")
        return path

    def rights(self, path: str) -> tuple[frozenset[str], bool]:
        """(letters held at ``path``, whether the path is read-only storage)."""
        found = self.tree.mount_of(path)
        # The virtual skeleton above mount points is never writable; mount
        # points themselves are protected by the tree (cannot be removed or
        # renamed) while their contents follow the mount's read_only flag.
        read_only = found is None or found[0].read_only
        return effective_perms(self.perms, self.overrides, path, read_only), read_only

    def quotas_for(self, path: str) -> tuple[Quota, ...]:
        """The quota scopes a file at ``path`` counts against."""
        found = self.tree.mount_of(path)
        out: list[Quota] = []
        if found is not None and found[0].quota is not None:
            out.append(found[0].quota)
        if (
            self.user_quota is not None
            and found is not None
            and not found[0].read_only
            and is_under(path, self.quota_home)
        ):
            out.append(self.user_quota)
        return tuple(out)

    def require(self, path: str, letter: str) -> None:
        granted, read_only = self.rights(path)
        if letter in granted:
            return
        if letter in WRITE_PERMS and read_only:
            raise FTPError(550, f"Read-only: {path}")
        raise FTPError(550, f"Permission denied: {path}")

    # ------------------------------------------------------------ execution

    async def _run(
        self, paths: tuple[str, ...], fn: Callable[..., T], *args: Any, offload: bool = False
    ) -> T:
        """Run a blocking fs call, inline for in-memory mounts, else in a
        worker thread (always when ``offload``); any error becomes the FTP
        reply for ``paths[0]``."""
        inline = self.executor is None or (
            not offload
            and (
                self.tree.all_inline
                or all((found := self.tree.mount_of(p)) is None or found[0].inline for p in paths)
            )
        )
        try:
            if inline:
                return fn(*args)
            assert self.executor is not None
            return await self.executor.run(fn, *args)
        except (fs.errors.FSError, OSError) as exc:
            raise map_fs_error(exc, paths[0]) from exc

    # ------------------------------------------------------------ metadata

    def _shape(self, path: str) -> tuple[tuple[str, str], tuple[str, str], str]:
        """What a listing shows for entries at ``path``: (dir mode, dir perm
        fact), (file mode, file perm fact), mount kind. DELE, RMD and RNFR
        are checked at the entry's own path, so the perm fact is too."""
        granted, _ = self.rights(path)
        writable = bool(granted & _WRITE_MODE_LETTERS)
        found = self.tree.mount_of(path)
        kind = found[0].kind if found else "virtual"
        return (
            ("rwxr-xr-x" if writable else "r-xr-xr-x", mlst_perm_fact(granted, True, granted)),
            ("rw-r--r--" if writable else "r--r--r--", mlst_perm_fact(granted, False, granted)),
            kind,
        )

    def _entry(
        self,
        info: Info,
        path: str,
        name: str | None = None,
        shape: tuple[tuple[str, str], tuple[str, str], str] | None = None,
        want_unique: bool = True,
    ) -> ListEntry:
        dir_shape, file_shape, kind = shape or self._shape(path)
        is_dir = info.is_dir
        mode, perm = dir_shape if is_dir else file_shape
        details: Mapping[str, Any] = info.raw.get("details") or {}
        mtime = details.get("modified")
        return ListEntry(
            name=name if name is not None else info.name,
            is_dir=is_dir,
            size=int(details.get("size") or 0) if not is_dir else 0,
            mtime=float(mtime) if mtime is not None else None,
            mode=mode,
            owner=self.owner,
            group=self.owner,
            perm=perm,
            unique=_unique(info, kind, path) if want_unique else None,
        )

    async def stat(self, path: str) -> ListEntry:
        info = await self._run((path,), self.tree.getinfo, path, _NAMESPACES)
        return self._entry_at(info, path)

    def _entry_at(self, info: Info, path: str) -> ListEntry:
        """The entry of ``path`` itself (STAT, MLST, MLSD's "." and "..")."""
        return self._entry(info, path, name=basename(path) or "/")

    async def listdir(self, path: str, want_unique: bool = True) -> list[ListEntry]:
        """Entries of a directory. Rights are worked out once for the
        directory; only children that are mount points or carry their own
        permission override are looked at one by one."""
        namespaces = _NAMESPACES if want_unique else ("details",)
        base = path.rstrip("/")
        special = set(self.tree.child_mounts(path))
        for key in self.overrides:
            if key != path and is_under(key, path):
                special.add(key[len(base) + 1 :].split("/", 1)[0])
        if not special:
            # Local folders: rows straight from os.scandir, entries built in
            # the same worker-thread call (no Info objects).
            fast = await self._run((path,), self._fast_entries, path, want_unique)
            if fast is not None:
                return fast

        def scan() -> list[Info]:
            return list(self.tree.scandir(path, namespaces))

        infos = await self._run((path,), scan)
        common = self._shape(f"{base}/\x00") if infos else None  # any non-special child
        out = []
        for i in infos:
            child = f"{base}/{i.name}"
            shape = None if i.name in special else common
            out.append(self._entry(i, child, shape=shape, want_unique=want_unique))
        return out

    def _fast_entries(self, path: str, want_unique: bool) -> list[ListEntry] | None:
        """Blocking: the entries of a directory of a local folder whose
        children all share the directory's rights, or None."""
        rows = self.tree.scan_rows(path)
        if rows is None:
            return None
        if not rows:
            return []
        base = path.rstrip("/")
        (dir_mode, dir_perm), (file_mode, file_perm), kind = self._shape(f"{base}/\x00")
        owner = self.owner
        return [
            ListEntry(
                name,
                is_dir,
                size,
                mtime,
                dir_mode if is_dir else file_mode,
                owner,
                owner,
                dir_perm if is_dir else file_perm,
                _unique_of(ino, dev, kind, f"{base}/{name}") if want_unique else None,
            )
            for name, is_dir, size, mtime, ino, dev in rows
        ]

    async def listdir_or_file(self, path: str, want_unique: bool = True) -> list[ListEntry]:
        """LIST/NLST of a file lists that one file (what ``ls`` does). The
        listing comes first: a directory, the usual case, is then one
        LIST on S3 and no extra stat on disk."""
        try:
            return await self.listdir(path, want_unique)
        except FTPError as exc:
            # (_run raises the FTP reply from the filesystem's error)
            if not isinstance(exc.__cause__, fs.errors.DirectoryExpected):
                raise
        entry = await self.stat(path)
        if entry.is_dir:  # replaced by a directory in the meantime
            return await self.listdir(path, want_unique)
        return [entry]

    async def stat_dir(self, path: str) -> ListEntry | None:
        """The entry of the directory at ``path``; None when something else
        is there (errors as ``stat``'s). Directory first: one LIST on S3,
        where ``stat`` sends a HEAD and then a LIST."""
        info = await self._run((path,), self.tree.dirinfo, path, _NAMESPACES)
        return None if info is None else self._entry_at(info, path)

    async def chdir(self, path: str) -> None:
        if await self._unless_dir(path) is not None:
            raise FTPError(550, f"Not a directory: {path}")
        self.cwd = path

    async def _unless_dir(self, path: str) -> ListEntry | None:
        """None for a directory; else the entry of what is there, or the
        exact error. isdir first: one LIST on S3, where stat costs a HEAD
        and a LIST."""
        if await self._run((path,), self.tree.isdir, path):
            return None
        entry = await self.stat(path)
        return None if entry.is_dir else entry

    async def size(self, path: str) -> int:
        entry = await self.stat(path)
        if entry.is_dir:
            raise FTPError(550, f"Is a directory: {path}")
        return entry.size

    async def mkdir(self, path: str) -> None:
        await self._run((path,), self.tree.makedir, path)

    async def rmdir(self, path: str) -> None:
        if path == self.cwd or path == "/":
            raise FTPError(550, f"Cannot remove the current or root directory: {path}")
        await self._run((path,), self.tree.removedir, path)

    async def remove(self, path: str) -> None:
        quotas = self.quotas_for(path)

        def op() -> None:  # one worker-thread call; a directory: FileExpected → 550
            release_all(quotas, self.tree.remove_file(path), 1)

        await self._run((path,), op)

    async def rename(self, src: str, dst: str) -> None:
        """Within one mount: that filesystem's own move. Across mounts: copy
        then delete (files and directories). The target may be replaced only
        by a file, never a directory (as rename(2))."""
        if src == "/" or self.tree.is_mount_point(src):
            raise FTPError(550, f"Cannot rename a mount point: {src}")
        if dst == src:
            return
        if dst.startswith(src.rstrip("/") + "/"):
            raise FTPError(553, "Cannot move a directory into itself")

        src_quotas, dst_quotas = self.quotas_for(src), self.quotas_for(dst)
        # Scopes the data leaves and enters; within one scope nothing changes.
        leaving = [q for q in src_quotas if q not in dst_quotas]
        entering = [q for q in dst_quotas if q not in src_quotas]

        def do_move() -> None:
            moved = replaced = (0, 0)  # (bytes, files)
            if self.tree.isdir(src):
                if self.tree.exists(dst):
                    raise fs.errors.DestinationExists(dst)
                if leaving or entering:
                    found = self.tree.mount_of(src)
                    assert found is not None
                    moved = measure(found[0].fs, found[1], UPLOAD_PREFIX)
                charge_all(entering, *moved)
                move: Callable[[], None] = partial(self.tree.movedir, src, dst, create=True)
            else:
                try:
                    old = self.tree.getinfo(dst, ("details",))
                except fs.errors.ResourceNotFound:
                    old = None
                if old is not None and old.is_dir:
                    raise fs.errors.FileExpected(dst)
                if leaving or entering:
                    moved = (self.tree.getinfo(src, ("details",)).size, 1)
                if old is not None:
                    replaced = (old.size, 1)
                charge_all(entering, *moved)
                move = partial(self.tree.move, src, dst, overwrite=True)
            try:
                move()
            except BaseException:
                release_all(entering, *moved)
                raise
            release_all(leaving, *moved)
            release_all(dst_quotas, *replaced)

        # Across scopes a directory is measured, and a scope may be measured
        # for the first time: never on the loop.
        await self._run((src, dst), do_move, offload=bool(leaving or entering))

    async def set_mtime(self, path: str, mtime: float) -> None:
        await self._run((path,), self.tree.setinfo, path, {"details": {"modified": mtime}})

    async def chmod(self, path: str, mode: int) -> None:
        from fs.permissions import Permissions

        info = {"access": {"permissions": Permissions(mode=mode).dump()}}
        await self._run((path,), self.tree.setinfo, path, info)

    # ------------------------------------------------------------ transfers

    async def open_read(
        self, path: str, offset: int = 0, preload: int = 0
    ) -> tuple[IO[bytes] | None, int, bytes | None]:
        """Open a file for RETR, in one worker-thread call: (file, size,
        None), or (None, size, content from ``offset``) when that content is
        at most ``preload`` bytes: read at once and the file closed. A REST
        offset past the end is refused (554) before any data moves."""

        def opener() -> tuple[IO[bytes] | None, int, bytes | None]:
            opened = self.tree.open_read(path, offset)
            f: IO[bytes] | None
            if opened is not None:
                f, size = opened
            else:
                info = self.tree.getinfo(path, ("details",))
                if info.is_dir:
                    raise fs.errors.FileExpected(path)
                details: Mapping[str, Any] = info.raw.get("details") or {}
                size = int(details.get("size") or 0)
                f = None  # opened below: on S3 opening would start a GET
            if offset > size:
                if f is not None:
                    f.close()
                raise FTPError(554, f"Restart offset {offset} is beyond the file size {size}")
            if f is None:
                f = self.tree.openbin(path, "r")
            if size - offset > preload:
                return f, size, None
            with f:
                if offset:
                    f.seek(offset)
                # One byte more than expected tells a file that grew since
                # the stat: it then goes the streaming way.
                content = _read_up_to(f, preload + 1)
            if len(content) > preload:
                return self.tree.openbin(path, "r"), size, None
            return None, size, content

        if preload:
            # A small file in the page cache of a local folder: read without
            # blocking, on the loop (a thread hop cost a third of a session).
            cached = self.tree.read_cached(path, offset, preload)
            if cached is not None:
                return None, cached[0], cached[1]
        return await self._run((path,), opener)

    async def begin_upload(self, path: str, offset: int = 0, append: bool = False) -> Upload:
        """Check the target can be written and reserve a temporary name next to
        it. The blocking ``Upload.open`` is left to the transfer thread."""
        found = self.tree.mount_of(path)
        if found is None or found[1] == "/":
            raise FTPError(550, f"Read-only: {path}")
        mount, sub = found
        if mount.read_only:
            raise FTPError(550, f"Read-only: {path}")

        quotas = self.quotas_for(path)

        def check() -> tuple[int, bool]:
            parent = dirname(sub)
            if not mount.fs.isdir(parent):
                raise fs.errors.ResourceNotFound(dirname(path))
            if not quotas:
                if mount.fs.isdir(sub):
                    raise fs.errors.FileExpected(path)
                credit, new_file = 0, False
            else:
                try:
                    old = mount.fs.getinfo(sub, ("details",))
                except fs.errors.ResourceNotFound:
                    old = None
                if old is not None and old.is_dir:
                    raise fs.errors.FileExpected(path)
                # What the upload replaces is freed when it commits.
                credit = 0 if append or old is None else max(0, old.size - offset)
                new_file = old is None
                if not credit:
                    for q in quotas:
                        q.require_room()  # refused before any data moves
            precheck = getattr(mount.fs, "check_atomic_upload", None)
            if precheck is not None:
                precheck(sub, offset, append)
            if new_file:
                charge_all(quotas, nfiles=1)  # last: nothing below may fail
            return credit, new_file

        # A quota's first measurement walks its storage: never on the loop.
        unmeasured = any(not q.measured for q in quotas)
        credit, new_file = await self._run((path,), check, offload=unmeasured)
        temp = f"{dirname(sub).rstrip('/')}/{UPLOAD_PREFIX}{uuid.uuid4().hex}"
        return Upload(
            mount,
            sub,
            temp,
            path,
            offset=offset,
            append=append,
            quotas=quotas,
            credit=credit,
            new_file=new_file,
        )

    async def unique_name(self, directory: str, hint: str = "file") -> str:
        """A name in ``directory`` that does not exist yet (STOU)."""
        for _ in range(100):
            candidate = f"{directory.rstrip('/')}/{hint}.{uuid.uuid4().hex[:8]}"
            if not await self._run((candidate,), self.tree.exists, candidate):
                return candidate
        raise FTPError(450, "Could not find a unique file name")
