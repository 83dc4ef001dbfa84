"""session/deadlines.py: sessions' timeouts sharing loop timers, on a loop
whose clock and timers the test holds (a deadline is pure arithmetic on the
loop's time; the one real-loop case checks the wiring)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vfsftp.session.deadlines import RESOLUTION, Deadlines

pytestmark = pytest.mark.timeout(10)


class Clock:
    """The part of a loop Deadlines uses: time, call_at, the exception handler."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.timers: list[tuple[float, Any, tuple[Any, ...]]] = []
        self.reported: list[dict[str, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any) -> None:
        self.timers.append((when, callback, args))

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.reported.append(context)

    def advance(self, to: float) -> None:
        """Run, in order and each at its time, the timers due by ``to``."""
        while True:
            due = sorted((t for t in self.timers if t[0] <= to), key=lambda t: t[0])
            if not due:
                self.now = to
                return
            self.timers.remove(due[0])
            self.now = max(self.now, due[0][0])
            due[0][1](*due[0][2])


class Target:
    def __init__(self, clock: Clock, name: str, fail: bool = False) -> None:
        self.clock, self.name, self.fail = clock, name, fail
        self.called: list[float] = []

    def deadline_passed(self) -> None:
        self.called.append(self.clock.now)
        if self.fail:
            raise RuntimeError(self.name)


def _make(now: float = 1000.0) -> tuple[Clock, Deadlines]:
    clock = Clock(now)
    return clock, Deadlines(clock)  # type: ignore[arg-type]


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.049, 0.05, 0.3, 1.0, 900.0])
def test_a_deadline_comes_never_early_and_at_most_a_resolution_late(delay: float) -> None:
    clock, deadlines = _make(1000.013)
    target = Target(clock, "a")
    deadlines.arm(delay, target)
    ((when, _, _),) = clock.timers
    assert 1000.013 + delay - 1e-9 <= when <= 1000.013 + delay + RESOLUTION + 1e-9
    clock.advance(when - 1e-6)
    assert target.called == []
    clock.advance(when)
    assert target.called == [when]
    assert deadlines.pending() == 0


def test_sessions_due_in_one_slot_share_one_loop_timer() -> None:
    clock, deadlines = _make(1000.0)
    targets = [Target(clock, str(i)) for i in range(100)]
    for i, target in enumerate(targets):
        clock.now = 1000.0 + RESOLUTION / 4 + i * RESOLUTION / 200  # all within one slot
        deadlines.arm(30.0, target)
    assert len(clock.timers) == 1
    assert deadlines.pending() == 100
    clock.advance(1031.0)
    assert all(len(t.called) == 1 for t in targets)


def test_a_disarmed_target_is_not_called_and_the_others_are() -> None:
    clock, deadlines = _make()
    kept, dropped = Target(clock, "kept"), Target(clock, "dropped")
    slot = deadlines.arm(1.0, dropped)
    deadlines.arm(1.0, kept)
    deadlines.disarm(slot, dropped)
    deadlines.disarm(slot, dropped)  # (twice: harmless)
    deadlines.disarm(slot + 999, kept)  # (a slot that has none: harmless)
    clock.advance(1002.0)
    assert dropped.called == [] and len(kept.called) == 1


def test_a_failing_check_is_reported_and_the_others_still_run() -> None:
    clock, deadlines = _make()
    bad, good = Target(clock, "bad", fail=True), Target(clock, "good")
    deadlines.arm(1.0, bad)
    deadlines.arm(1.0, good)
    clock.advance(1002.0)
    assert len(good.called) == 1
    assert [str(r["exception"]) for r in clock.reported] == ["bad"]


def test_a_check_may_arm_again_from_its_callback() -> None:
    clock, deadlines = _make()

    class Again(Target):
        def deadline_passed(self) -> None:
            super().deadline_passed()
            if len(self.called) < 3:
                deadlines.arm(10.0, self)

    target = Again(clock, "again")
    deadlines.arm(10.0, target)
    clock.advance(1100.0)
    assert len(target.called) == 3
    gaps = [b - a for a, b in zip(target.called, target.called[1:], strict=False)]
    assert all(10.0 - 1e-9 <= g <= 10.0 + RESOLUTION + 1e-9 for g in gaps)


def test_on_a_real_loop() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        fired = loop.create_future()

        class Real:
            def deadline_passed(self) -> None:
                fired.set_result(loop.time())

        start = loop.time()
        deadlines.arm(0.1, Real())
        return await fired - start

    waited = asyncio.run(main())
    assert 0.1 - 1e-3 <= waited < 0.1 + RESOLUTION + 0.5
