"""BanList rules with an injected clock: no waiting."""

from __future__ import annotations

import ipaddress

import pytest

from vfsftp.service.limits import BanList


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _bans(clock: Clock, **kw: object) -> BanList:
    opts: dict[str, object] = {"max_failures": 3, "window": 60.0, "duration": 300.0}
    opts.update(kw)
    return BanList(clock=clock, **opts)  # type: ignore[arg-type]


# (seconds between failures, expected "banned" after each)
SEQUENCES = [
    ([0, 1, 1], [False, False, True]),  # three within the window
    ([0, 59, 0.5], [False, False, True]),
    ([0, 30, 31], [False, False, False]),  # the first fell out of the window
    ([0, 61, 1, 1], [False, False, False, True]),
]


@pytest.mark.parametrize(("gaps", "expected"), SEQUENCES)
def test_failures_within_the_window_ban(gaps: list[float], expected: list[bool]) -> None:
    clock = Clock()
    bans = _bans(clock)
    got = []
    for gap in gaps:
        clock.now += gap
        got.append(bans.failure("192.0.2.1"))
    assert got == expected


def test_ban_lasts_its_duration_then_counting_starts_afresh() -> None:
    clock = Clock()
    bans = _bans(clock)
    for _ in range(3):
        bans.failure("192.0.2.1")
    assert bans.ban_left("192.0.2.1") == 300
    assert bans.ban_left("192.0.2.2") == 0
    clock.now += 299.5
    assert bans.ban_left("192.0.2.1") == 0.5
    assert bans.banned() == {"192.0.2.1": 0.5}
    clock.now += 0.5
    assert bans.ban_left("192.0.2.1") == 0
    assert bans.banned() == {}
    assert not bans.failure("192.0.2.1")  # earlier failures were forgotten


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4 seen through an IPv6 socket
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # one host's /64
        ("fe80::1%eth0", "fe80::/64"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_key(ip: str, key: str) -> None:
    assert BanList.key(ip) == key


def test_ipv6_neighbours_in_one_64_share_a_ban() -> None:
    bans = _bans(Clock(), max_failures=2)
    bans.failure("2001:db8::1")
    assert bans.failure("2001:db8::2")
    assert bans.ban_left("2001:db8::ffff") > 0
    assert bans.ban_left("2001:db8:0:1::1") == 0


def test_exempt_networks_are_never_banned() -> None:
    bans = _bans(Clock(), max_failures=1, exempt=[ipaddress.ip_network("10.0.0.0/8")])
    assert not bans.failure("10.1.2.3")
    assert bans.ban_left("10.1.2.3") == 0
    assert bans.failure("192.0.2.1")


def test_memory_is_bounded() -> None:
    bans = _bans(Clock(), max_tracked=100)
    for i in range(1000):
        bans.failure(f"10.0.{i // 256}.{i % 256}")
    assert len(bans._failures) == 100


def test_max_failures_must_be_positive() -> None:
    with pytest.raises(ValueError):
        _bans(Clock(), max_failures=0)


# ------------------------------------------------------------------ guesses in flight


def _both(clock: Clock) -> list[BanList]:
    from vfsftp.service.counts import SharedBanList

    return [_bans(clock), SharedBanList(3, window=60.0, duration=300.0, clock=clock, slots=64)]


@pytest.mark.parametrize("kind", [0, 1], ids=["local", "shared"])
def test_guesses_in_flight_count_like_failures(kind: int) -> None:
    clock = Clock()
    bans = _both(clock)[kind]
    ip = "192.0.2.1"
    tokens = [bans.attempt(ip) for _ in range(3)]
    assert all(t >= 0 for t in tokens)
    assert bans.attempt(ip) == -1  # three being checked: the fourth waits
    assert bans.attempt("192.0.2.2") >= 0  # other addresses do not
    assert not bans.finish(ip, tokens[0], failed=False)  # a right password frees its place
    tokens[0] = bans.attempt(ip)
    assert tokens[0] >= 0
    assert not bans.finish(ip, tokens[0], failed=True)  # a wrong one keeps it, as a failure
    assert bans.attempt(ip) == -1
    assert not bans.finish(ip, tokens[1], failed=True)
    assert bans.finish(ip, tokens[2], failed=True)  # the third failure bans
    assert bans.ban_left(ip) == 300
    clock.now += 301
    assert bans.attempt(ip) >= 0  # after the ban, counting starts afresh


@pytest.mark.parametrize("kind", [0, 1], ids=["local", "shared"])
def test_failures_leave_the_window_and_free_places(kind: int) -> None:
    clock = Clock()
    bans = _both(clock)[kind]
    ip = "192.0.2.1"
    for _ in range(2):
        assert not bans.finish(ip, bans.attempt(ip), failed=True)
    t = bans.attempt(ip)
    assert t >= 0 and bans.attempt(ip) == -1
    clock.now += 61  # the two failures are out of the window
    assert bans.attempt(ip) >= 0 and bans.attempt(ip) >= 0
    bans.finish(ip, t, failed=False)


def test_exempt_guesses_are_never_held() -> None:
    clock = Clock()
    bans = _bans(clock, exempt=[ipaddress.ip_network("10.0.0.0/8")])
    assert all(bans.attempt("10.1.2.3") >= 0 for _ in range(10))
    assert not any(bans.finish("10.1.2.3", 0, failed=True) for _ in range(10))


def test_shared_guess_of_a_dead_worker_frees_its_place() -> None:
    from vfsftp.service.counts import SharedBanList

    clock = Clock()
    bans = SharedBanList(2, window=600.0, duration=300.0, clock=clock, slots=64)
    try:
        assert bans.attempt("192.0.2.1") >= 0
        assert bans.attempt("192.0.2.1") >= 0
        assert bans.attempt("192.0.2.1") == -1
        clock.now += SharedBanList.STALE + 1  # never finished: its worker died
        assert bans.attempt("192.0.2.1") >= 0
    finally:
        bans.close()
