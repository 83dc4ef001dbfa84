"""``vfsftp serve --cpu-affinity``: each server process on one core of its
own, as nginx's ``worker_cpu_affinity``.

Why: a server process's threads (the event loop, the threads that run
blocking filesystem calls and send S3 parts) take turns holding one GIL.
Spread over several cores, a thread that wakes on another core takes the
GIL while the event loop it was meant to hand work to is still waking, and
the loop waits for it. Measured by the soak (benchmarks/RESULTS.md), the
probe's LIST p99 under load was 206-432 ms in five runs with one worker's
threads on two cores and 40-130 ms in ten on one, for the same
throughput. One core per process keeps those hand-offs on one core; more
cores are used by more workers (``--workers N``), not by more threads.

``SPEC`` is ``auto`` (the CPUs this process may run on, as
``os.sched_getaffinity`` gives them: a container's or ``taskset``'s set is
respected) or a CPU list in taskset's syntax (``0,2-3``). Worker *i* runs
on the *i*-th CPU of that list, wrapping round when there are more workers
than CPUs; one worker (no ``--workers``) runs on the first. Every thread
the process has is pinned, and the threads it starts later inherit it.

Linux only (``sched_setaffinity``); elsewhere the option is refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Sequence

from ..config.errors import ConfigError

__all__ = ["AUTO", "available", "parse_cpu_list", "pin_process", "plan_cpus"]

AUTO = "auto"
_OPTION = "--cpu-affinity"


def available() -> bool:
    """Whether this platform can pin a process's threads to a CPU."""
    return hasattr(os, "sched_setaffinity") and sys.platform.startswith("linux")


def parse_cpu_list(text: str) -> list[int]:
    """``"0,2-3"`` -> ``[0, 2, 3]``: taskset's list syntax (``--cpu-list``),
    in the order written, each CPU once. ValueError says what is wrong."""
    cpus: list[int] = []
    for part in text.split(","):
        item = part.strip()
        low, dash, high = item.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{item!r} is not a CPU number or a range such as 2-3")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"{item!r}: the range ends before it starts")
        for cpu in range(first, last + 1):
            if cpu not in cpus:
                cpus.append(cpu)
    return cpus


def plan_cpus(spec: str, workers: int, allowed: Collection[int]) -> list[int]:
    """The CPU of each of ``workers`` processes for ``--cpu-affinity SPEC``,
    given the CPUs this process may run on; ConfigError names the option
    and what was expected."""
    if spec.strip().lower() == AUTO:
        cpus = sorted(allowed)
    else:
        try:
            cpus = parse_cpu_list(spec)
        except ValueError as exc:
            raise ConfigError(
                [f"{_OPTION} {spec!r}: {exc}; expected 'auto' or a CPU list such as 0,2-3"]
            ) from None
        outside = [cpu for cpu in cpus if cpu not in allowed]
        if outside:
            which = f"CPUs {_format(outside)} are" if len(outside) > 1 else f"CPU {outside[0]} is"
            raise ConfigError(
                [
                    f"{_OPTION} {spec!r}: {which} not among the CPUs this process may run "
                    f"on ({_format(sorted(allowed))})"
                ]
            )
    if not cpus:  # pragma: no cover - a process always may run somewhere
        raise ConfigError([f"{_OPTION} {spec!r}: no CPU to run on"])
    return [cpus[i % len(cpus)] for i in range(workers)]


def _format(cpus: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (taskset's list syntax)."""
    runs: list[str] = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        runs.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(runs)


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on."""
    return set(os.sched_getaffinity(0))


def pin_process(cpu: int) -> None:
    """Every thread of this process on ``cpu``; threads started later
    inherit it. (sched_setaffinity(0) sets the calling thread's only.)"""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # pragma: no cover - no procfs: the calling thread
        threads = [0]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, {cpu})
        except ProcessLookupError:  # pragma: no cover - the thread ended meanwhile
            continue
