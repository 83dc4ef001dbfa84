"""The server process's memory after a load: what a burst of transfers
freed goes back to the system.

glibc's allocator keeps it otherwise. A freed block that was mmapped raises
the mmap threshold to its size (up to 32 MiB), and the trim threshold to
twice that: later large blocks (files of a ``mem://`` mount, receive
buffers, S3 parts) then come from the per-thread heap arenas, and each arena
keeps up to 64 MiB of free memory resident, well after the load and its
files are gone. So ``vfsftp serve``:

- pins the mmap threshold at 1 MiB (``tune_allocator``): a block of 1 MiB
  or more is always its own mapping, unmapped when freed, and arenas keep
  no more than glibc's default 128 KiB free at their top. Smaller blocks
  (TLS records, 256 KiB read chunks) stay on the fast path;
  ``MALLOC_MMAP_THRESHOLD_`` in the environment wins;
- once nothing has moved for a second (``IdleTrimmer``), collects the
  garbage in a worker thread (closed sessions' objects in reference
  cycles, which an idle server allocates nothing to have collected) and
  calls ``malloc_trim(0)``: the free pages that smaller blocks leave inside
  the arenas. A busy server never pays for it.

An application that embeds ``FTPServer`` keeps its allocator settings
(only ``vfsftp serve`` pins the threshold); the idle trim runs in any
``FTPServer``. Not glibc (musl, macOS): nothing to do. The figures are in
benchmarks/README.md (the soak).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "MMAP_THRESHOLD",
    "IdleTrimmer",
    "freeze_startup_objects",
    "malloc_trim",
    "release_memory",
    "tune_allocator",
]

MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The process's own symbols: glibc's where the interpreter is linked
        # against it (ctypes.util.find_library runs ldconfig, ~5 ms of every
        # start-up).
        libc = ctypes.CDLL(None)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc (musl has neither)
        return None
    return libc


_LIBC = _glibc()


def _trim() -> None:
    _LIBC.malloc_trim(0)


#: glibc's ``malloc_trim(0)``, or None where there is none
malloc_trim: Callable[[], Any] | None = _trim if _LIBC is not None else None


def release_memory() -> None:
    """Blocking: free what only reference cycles hold (a closed session's
    objects can wait for a full collection, which allocations trigger and an
    idle server makes none of), then give free pages back (glibc)."""
    gc.collect()
    if malloc_trim is not None:
        malloc_trim()


def tune_allocator(environ: Mapping[str, str] = os.environ) -> bool:
    """Pin glibc's mmap threshold at ``MMAP_THRESHOLD`` (which also stops
    its dynamic growth, and the trim threshold's); True when done. Not when
    ``MALLOC_MMAP_THRESHOLD_`` is set: the operator chose."""
    if _LIBC is None or "MALLOC_MMAP_THRESHOLD_" in environ:
        return False
    return bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def freeze_startup_objects() -> int:
    """Leave what exists once the server listens (modules, the config, the
    mounts: objects that live as long as the process) out of every later
    garbage collection; how many were left out.

    A full collection walks every object the collector tracks, and holds
    every thread of the process meanwhile, the event loop's included: each
    is a pause of every session, and start-up objects are most of what it
    walks (with the clients of S3 mounts, made before it: see
    MountTable.warm_up). Objects made later are walked as before."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class IdleTrimmer:
    """Calls ``trim`` (through ``submit``, a worker thread) once ``delay``
    seconds passed since the last ``activity()`` and ``busy()`` is false.
    Runs on the event loop; one timer at most."""

    def __init__(
        self,
        busy: Callable[[], bool],
        submit: Callable[[Callable[[], Any]], Any],
        trim: Callable[[], Any] | None = release_memory,
        delay: float = 1.0,
    ) -> None:
        self.busy = busy
        self.submit = submit
        self.trim = trim
        self.delay = delay
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        # (kept from the first activity(): see session.state.Channel.loop)
        self._loop: asyncio.AbstractEventLoop | None = None

    def activity(self) -> None:
        """Something moved (a transfer ended, a session closed)."""
        if self.trim is None or self._closed:
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._last = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self.delay, self._check)

    def _check(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None  # (set by the activity() that scheduled this)
        quiet = loop.time() - self._last
        if quiet < self.delay:
            self._timer = loop.call_later(self.delay - quiet, self._check)
            return
        if self.busy():
            return  # the running transfer's end calls activity() again
        assert self.trim is not None
        self.submit(self.trim)

    def close(self) -> None:
        """No trim from now on (the worker threads are going away)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
