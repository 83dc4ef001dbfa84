"""Where a server's event loop is held: every loop callback and every garbage
collection that took longer than a threshold, written as it happens.

A diagnostic for the soak's probe latency (benchmarks/README.md, "Where the
loop waits"), not part of vfsftp. Python imports ``sitecustomize`` at
start-up from its path, so a server started with this folder on
``PYTHONPATH`` and ``VFSFTP_LOOPLAG`` set writes one file per process,
``$VFSFTP_LOOPLAG.<pid>``::

    .venv/bin/python benchmarks/soak.py --quick --keep \\
        --server-env PYTHONPATH=$PWD/benchmarks/looplag \\
        --server-env VFSFTP_LOOPLAG=/tmp/lag

Each line: the wall-clock time it ended, its length, and the callback (a
transport's read, a task's step) or ``GC genN``. ``VFSFTP_LOOPLAG_MS`` is
the threshold (default 4). A callback's length is wall time: a wait for
the GIL or for a CPU inside it counts, which is what a client waits for.
Without ``VFSFTP_LOOPLAG`` it does nothing.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any


def _install(prefix: str) -> None:
    import asyncio.events

    threshold = float(os.environ.get("VFSFTP_LOOPLAG_MS", "4")) / 1000
    out = open(f"{prefix}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115 (the process's life)
    out.write(f"argv {sys.argv}\n")
    clock = time.perf_counter
    run = asyncio.events.Handle._run

    def timed_run(self: asyncio.events.Handle) -> None:
        start = clock()
        try:
            run(self)
        finally:
            took = clock() - start
            if took > threshold:
                out.write(f"{time.time():.3f} {took * 1000:.1f}ms {self._callback!r}\n")  # type: ignore[attr-defined]

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
    started = [0.0]

    def collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = clock()
            return
        took = clock() - started[0]
        if took > threshold:
            out.write(
                f"{time.time():.3f} {took * 1000:.1f}ms GC gen{info['generation']} "
                f"collected={info['collected']}\n"
            )

    gc.callbacks.append(collection)


if os.environ.get("VFSFTP_LOOPLAG"):
    _install(os.environ["VFSFTP_LOOPLAG"])
