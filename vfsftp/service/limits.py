"""Login defence: temporary bans of addresses that keep failing to log in.

Pure apart from the injected clock, so the rules are tested without waiting.
The server asks ``ban_left(ip)`` when a connection arrives (a banned address
gets 421 before the greeting). Each password guess is bracketed by
``attempt(ip)``, which reserves its check, and ``finish(ip, token,
failed)``: guesses being checked count like failures, so that sixteen
connections sending PASS at once get no more than ``max_failures`` of them
checked within a window (the rest wait for a free place, see FTPServer).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["BanList"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BanList:
    """Ban an address for ``duration`` seconds once it has failed
    ``max_failures`` logins within ``window`` seconds.

    Memory is bounded: at most ``max_tracked`` addresses are remembered (the
    least recently seen are forgotten first), so a flood from many addresses
    cannot grow the table without limit. IPv6 clients are tracked by their
    /64, the smallest block a single host usually controls."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        duration: float,
        exempt: Iterable[IPNetwork] = (),
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = 100_000,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.window = window
        self.duration = duration
        self.exempt = tuple(exempt)
        self._clock = clock
        self._max_tracked = max_tracked
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._banned: OrderedDict[str, float] = OrderedDict()  # key → ban end
        self._in_flight: dict[str, int] = {}  # key → guesses being checked

    @staticmethod
    def key(ip: str) -> str:
        """The unit that is counted and banned: the address itself for IPv4,
        its /64 for IPv6."""
        if ":" not in ip and ip.count(".") == 3 and ip.replace(".", "").isdigit():
            return ip  # dotted IPv4, as the channel passes it (no parsing per login)
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return ip
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.ipv4_mapped is not None:
                return str(addr.ipv4_mapped)
            return str(ipaddress.IPv6Network((addr, 64), strict=False))
        return str(addr)

    def is_exempt(self, ip: str) -> bool:
        if not self.exempt:
            return False  # (the default: no address parsed, thrice a login)
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        return any(addr in net for net in self.exempt)

    def ban_left(self, ip: str) -> float:
        """Seconds left of the address's ban; 0 when it may connect."""
        key = self.key(ip)
        end = self._banned.get(key)
        if end is None:
            return 0.0
        left = end - self._clock()
        if left <= 0:
            del self._banned[key]
            return 0.0
        return left

    def attempt(self, ip: str) -> int:
        """Reserve the check of one password guess from ``ip``: a token for
        ``finish``, or -1 when ``max_failures`` guesses have failed within
        the window or are being checked now (ask again once one is done)."""
        if self.is_exempt(ip):
            return 0
        key = self.key(ip)
        times = self._failures.get(key)
        now = self._clock()
        recent = sum(1 for t in times if t > now - self.window) if times else 0
        flying = self._in_flight.get(key, 0)
        if recent + flying >= self.max_failures:
            return -1
        self._in_flight[key] = flying + 1
        return 0

    def finish(self, ip: str, token: int, failed: bool) -> bool:
        """The guess ``attempt`` reserved was checked: release its place and
        count it if it ``failed``; True when that starts a ban."""
        if self.is_exempt(ip):
            return False
        key = self.key(ip)
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)
        return self.failure(ip) if failed else False

    def failure(self, ip: str) -> bool:
        """Count a failed login; True when this one starts a ban."""
        if self.is_exempt(ip):
            return False
        key = self.key(ip)
        now = self._clock()
        times = self._failures.pop(key, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        times.append(now)
        if len(times) >= self.max_failures:
            self._banned.pop(key, None)
            self._banned[key] = now + self.duration
            _trim(self._banned, self._max_tracked)
            return True
        self._failures[key] = times  # most recently seen last
        _trim(self._failures, self._max_tracked)
        return False

    def banned(self) -> dict[str, float]:
        """Every banned key with the seconds left (for STAT and logs)."""
        now = self._clock()
        return {k: end - now for k, end in self._banned.items() if end > now}


def _trim(table: OrderedDict[str, Any], limit: int) -> None:
    while len(table) > limit:
        table.popitem(last=False)
