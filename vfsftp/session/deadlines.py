"""Many sessions' timeouts on few loop timers (a coarse timer wheel).

Every session has one pending check at a time (its idle timeout and, until
it logs in, its login timeout), which is far more often dropped (the session
ends) or found early (the client was active meanwhile: the check re-arms)
than due. One asyncio ``TimerHandle`` per session costs, besides a push on
the loop's heap per arming, some 150 bytes an idle session holds (issue 22's
idle-memory figure). Here a deadline is rounded up to the next multiple of
``RESOLUTION`` and the sessions due in one such slot share one loop timer;
a slot is a dict, so arming and disarming are O(1) (Varghese and Lauck's
hashed timing wheel, with the loop's own timers as the wheel).

A check runs up to ``RESOLUTION`` late, never early.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

__all__ = ["RESOLUTION", "DeadlineTarget", "Deadlines"]

#: seconds: the precision of a deadline (timeouts are seconds or more)
RESOLUTION = 0.05


class DeadlineTarget(Protocol):
    def deadline_passed(self) -> None:
        """The deadline it was armed for has come (it may have moved)."""


class Deadlines:
    """The deadlines of the sessions of one loop."""

    __slots__ = ("_loop", "_slots")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        #: slot number (deadline / RESOLUTION, rounded up) -> its targets
        self._slots: dict[int, dict[DeadlineTarget, None]] = {}

    def arm(self, delay: float, target: DeadlineTarget) -> int:
        """Call ``target.deadline_passed()`` in ``delay`` seconds (or up to
        RESOLUTION later); returns the slot, for ``disarm``."""
        key = math.ceil((self._loop.time() + delay) / RESOLUTION)
        slot = self._slots.get(key)
        if slot is None:
            self._slots[key] = slot = {}
            self._loop.call_at(key * RESOLUTION, self._fire, key)
        slot[target] = None
        return key

    def disarm(self, key: int, target: DeadlineTarget) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            slot.pop(target, None)

    def pending(self) -> int:
        """Targets armed and not yet called (for tests and metrics)."""
        return sum(len(slot) for slot in self._slots.values())

    def _fire(self, key: int) -> None:
        for target in self._slots.pop(key, {}):
            try:
                target.deadline_passed()
            except Exception as exc:  # one session's failure is not the others'
                self._loop.call_exception_handler(
                    {"message": "deadline check failed", "exception": exc, "target": target}
                )
