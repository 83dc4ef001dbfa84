"""The state a fleet of vfsftp instances shares, in Redis (6 or later) or
Valkey (``cluster: {url: redis://...}``): connection counts, failed logins
and bans, quota usage, rate limits. Without ``cluster`` none of this is
loaded: each process (or ``--workers`` host, vfsftp.service.counts) keeps
its own.

What each instance holds right now (its sessions by key, the quota bytes
its uploads have reserved) is a hash of its own, ``held:ID``, leased: the
instance's heartbeat renews it, and a crashed instance's hash stops
counting once its lease runs out (its entry in the ``instances`` sorted
set, scored by the lease's end, falls behind Redis's clock). A limit is
checked against the sum over the live instances and taken in the same Lua
script, so two instances never both take the last place.

What the fleet has done (stored quota usage, failed logins, bans) lives
in keys of their own: kept as long as Redis keeps its data (persistence),
else re-measured (quota usage, from the storage, at the next upload into
the scope) or forgotten (failed logins and bans).

The instance's own count of what it holds is the truth its hash is
rebuilt from: after Redis restarted (its hash is gone) or was unreachable
(changes were not sent), the heartbeat writes the hash again from it.
While Redis cannot be reached the instance serves with its own limits (a
session is admitted by the instance's counters alone: fail-open) and logs
that it does; a quota's usage is unknown then, so uploads into a scope
with a quota are refused (fail-closed; docs/operations.md argues both).

Every key starts with ``{prefix}:``; the braces keep a fleet's keys in one
hash slot. The scripts read the instances' hashes by name, so a sharded
Redis Cluster is not supported: use one Redis (with replicas, Sentinel).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..storage.quota import Quota, QuotaUnavailable

if TYPE_CHECKING:
    from ..config.schema import ClusterConfig

__all__ = ["ClusterState", "FleetStatus", "SharedQuotas", "fleet_status", "unban"]

log = logging.getLogger("vfsftp.cluster")

# --------------------------------------------------------------- scripts

_PRELUDE = """
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live(now)
  return redis.call('ZRANGEBYSCORE', P .. 'instances', now, '+inf')
end
local function held(ids, field)
  local total = 0
  for _, id in ipairs(ids) do
    total = total + (tonumber(redis.call('HGET', P .. 'held:' .. id, field)) or 0)
  end
  return total
end
-- Increments commute (see ClusterState._resync): a field may dip below 0
-- for a moment when a release overtakes the increment it undoes.
local function hold(me, field, n, lease)
  local key = P .. 'held:' .. me
  if redis.call('HINCRBY', key, field, n) == 0 then
    redis.call('HDEL', key, field)
  end
  redis.call('PEXPIRE', key, lease)
end
"""

#: ARGV: P, me, lease, ban key ('' none), guess key, guess token ('' none),
#: n, then n (field, limit) pairs. The guess (a password check that
#: succeeded, see _ATTEMPT) is over first. Refused while the ban key is
#: banned ({'banned', ms left}) or a field holds its limit over the live
#: instances ({'full', field}); else every field is taken here.
_ACQUIRE = (
    _PRELUDE
    + """
local now = now_ms()
if ARGV[6] ~= '' then redis.call('ZREM', P .. 'guess:' .. ARGV[5], ARGV[6]) end
if ARGV[4] ~= '' then
  local left = redis.call('PTTL', P .. 'ban:' .. ARGV[4])
  if left > 0 then return {'banned', left} end
end
local ids = live(now)
local n = tonumber(ARGV[7])
for i = 0, n - 1 do
  if held(ids, ARGV[8 + 2 * i]) >= tonumber(ARGV[9 + 2 * i]) then
    return {'full', ARGV[8 + 2 * i]}
  end
end
for i = 0, n - 1 do hold(ARGV[2], ARGV[8 + 2 * i], 1, ARGV[3]) end
return {'ok'}
"""
)

#: ARGV: P, me, lease, then (field, n) pairs: n more (or fewer) of each.
_ADD = (
    _PRELUDE
    + """
for i = 4, #ARGV, 2 do hold(ARGV[2], ARGV[i], tonumber(ARGV[i + 1]), ARGV[3]) end
return 1
"""
)

#: ARGV: P, me, lease. Renews the lease; 0 when the instance's entry was
#: gone (Redis restarted or lost it): the caller writes it again.
_HEARTBEAT = (
    _PRELUDE
    + """
local now = now_ms()
local known = redis.call('PEXPIRE', P .. 'info:' .. ARGV[2], ARGV[3])
redis.call('PEXPIRE', P .. 'held:' .. ARGV[2], ARGV[3])
redis.call('ZADD', P .. 'instances', now + tonumber(ARGV[3]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', P .. 'instances', '-inf', now)
return known
"""
)

#: ARGV: P, me, lease, about (JSON), then (field, count) pairs: the
#: instance's entry and hash written anew from its own truth.
_RESYNC = (
    _PRELUDE
    + """
local now = now_ms()
local held_key = P .. 'held:' .. ARGV[2]
local info = P .. 'info:' .. ARGV[2]
redis.call('DEL', held_key)
for i = 5, #ARGV, 2 do redis.call('HSET', held_key, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', info, 'about', ARGV[4])
redis.call('PEXPIRE', info, ARGV[3])
redis.call('PEXPIRE', held_key, ARGV[3])
redis.call('ZADD', P .. 'instances', now + tonumber(ARGV[3]), ARGV[2])
return 1
"""
)

#: ARGV: P, me.
_LEAVE = """
local P = ARGV[1]
redis.call('ZREM', P .. 'instances', ARGV[2])
redis.call('DEL', P .. 'info:' .. ARGV[2], P .. 'held:' .. ARGV[2])
return 1
"""

#: ARGV: P, me, lease, nbytes, nfiles, k, then k (scope, max bytes, max
#: files) triples ('' for no limit). Reserves in every scope or in none:
#: {'ok'}, or {'unmeasured'|'bytes'|'files', index of the scope}.
_QUOTA_CHARGE = (
    _PRELUDE
    + """
local now = now_ms()
local ids = live(now)
local nb, nf = tonumber(ARGV[4]), tonumber(ARGV[5])
local k = tonumber(ARGV[6])
for i = 0, k - 1 do
  local scope = ARGV[7 + 3 * i]
  local used = redis.call('HMGET', P .. 'quota:' .. scope, 'bytes', 'files')
  if not used[1] then return {'unmeasured', i} end
  local mb, mf = ARGV[8 + 3 * i], ARGV[9 + 3 * i]
  if nb > 0 and mb ~= '' and
      tonumber(used[1]) + held(ids, 'qb:' .. scope) + nb > tonumber(mb) then
    return {'bytes', i}
  end
  if nf > 0 and mf ~= '' and
      tonumber(used[2]) + held(ids, 'qf:' .. scope) + nf > tonumber(mf) then
    return {'files', i}
  end
end
for i = 0, k - 1 do
  local scope = ARGV[7 + 3 * i]
  if nb > 0 then hold(ARGV[2], 'qb:' .. scope, nb, ARGV[3]) end
  if nf > 0 then hold(ARGV[2], 'qf:' .. scope, nf, ARGV[3]) end
end
return {'ok'}
"""
)

#: ARGV: P, me, lease, nbytes, nfiles, mode, scopes... mode 'unreserve':
#: a reservation given back; 'commit': a reservation kept (moved into the
#: stored usage); 'release': stored data gone. A scope not measured (after
#: a Redis restart) is left for its measurement, which sees the storage.
_QUOTA_SETTLE = (
    _PRELUDE
    + """
local nb, nf, mode = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
for i = 7, #ARGV do
  local scope = ARGV[i]
  if mode ~= 'release' then
    if nb > 0 then hold(ARGV[2], 'qb:' .. scope, -nb, ARGV[3]) end
    if nf > 0 then hold(ARGV[2], 'qf:' .. scope, -nf, ARGV[3]) end
  end
  local q = P .. 'quota:' .. scope
  if mode ~= 'unreserve' and redis.call('EXISTS', q) == 1 then
    local sign = (mode == 'commit') and 1 or -1
    if redis.call('HINCRBY', q, 'bytes', sign * nb) < 0 then redis.call('HSET', q, 'bytes', 0) end
    if redis.call('HINCRBY', q, 'files', sign * nf) < 0 then redis.call('HSET', q, 'files', 0) end
  end
end
return 1
"""
)

#: ARGV: P, scope, bytes, files: a measurement, unless one is there.
_QUOTA_INIT = """
local q = ARGV[1] .. 'quota:' .. ARGV[2]
if redis.call('EXISTS', q) == 0 then
  redis.call('HSET', q, 'bytes', ARGV[3], 'files', ARGV[4])
end
return 1
"""

#: ARGV: P, scope: {bytes, files} stored and reserved, or {} unmeasured.
_QUOTA_USAGE = (
    _PRELUDE
    + """
local used = redis.call('HMGET', P .. 'quota:' .. ARGV[2], 'bytes', 'files')
if not used[1] then return {} end
local ids = live(now_ms())
return {tonumber(used[1]) + held(ids, 'qb:' .. ARGV[2]),
        tonumber(used[2]) + held(ids, 'qf:' .. ARGV[2])}
"""
)

#: ARGV: P, n, k, then k (key, rate, burst): token buckets as
#: vfsftp.session.throttle.TokenBucket keeps them (tokens may go into
#: debt), shared. Returns the microseconds to wait before sending n bytes.
_RATE = """
local P = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = tonumber(ARGV[2])
local wait = 0
for i = 0, tonumber(ARGV[3]) - 1 do
  local key = P .. 'rate:' .. ARGV[4 + 3 * i]
  local rate, burst = tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  local v = redis.call('HMGET', key, 't', 'at')
  local tokens, at = tonumber(v[1]) or burst, tonumber(v[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000) - n
  redis.call('HSET', key, 't', string.format('%.17g', tokens), 'at', string.format('%.17g', now))
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 60000)
  if tokens < 0 then wait = math.max(wait, -tokens / rate) end
end
return math.floor(wait * 1000000)
"""

#: ARGV: P, key, max failures, window ms, stale ms, token. 1: the guess
#: may be checked; -1: max failures failed or are being checked; -2:
#: banned.
_ATTEMPT = (
    _PRELUDE
    + """
local now = now_ms()
if redis.call('PTTL', P .. 'ban:' .. ARGV[2]) > 0 then return -2 end
local f, g = P .. 'fail:' .. ARGV[2], P .. 'guess:' .. ARGV[2]
redis.call('ZREMRANGEBYSCORE', f, '-inf', now - tonumber(ARGV[4]))
redis.call('ZREMRANGEBYSCORE', g, '-inf', now - tonumber(ARGV[5]))
if redis.call('ZCARD', f) + redis.call('ZCARD', g) >= tonumber(ARGV[3]) then return -1 end
redis.call('ZADD', g, now, ARGV[6])
redis.call('PEXPIRE', g, ARGV[5])
return 1
"""
)

#: ARGV: P, key, token, failed (0/1), max failures, window ms, ban ms.
#: 1: this failure starts a ban.
_FINISH = (
    _PRELUDE
    + """
local now = now_ms()
local f, g = P .. 'fail:' .. ARGV[2], P .. 'guess:' .. ARGV[2]
redis.call('ZREM', g, ARGV[3])
if ARGV[4] ~= '1' then return 0 end
redis.call('ZADD', f, now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', f, '-inf', now - tonumber(ARGV[6]))
redis.call('PEXPIRE', f, ARGV[6])
if redis.call('ZCARD', f) < tonumber(ARGV[5]) then return 0 end
redis.call('SET', P .. 'ban:' .. ARGV[2], now + tonumber(ARGV[7]), 'PX', ARGV[7])
redis.call('DEL', f)
return 1
"""
)

#: a guess marked as being checked for longer is one whose instance died
#: (as vfsftp.service.counts.SharedBanList.STALE)
GUESS_STALE = 60.0


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _errors() -> tuple[type[BaseException], ...]:
    import redis

    # ResponseError too: a script refused (OOM, a read-only replica after
    # a failover) is the store failing, not a verdict.
    return (redis.RedisError, OSError, asyncio.TimeoutError)


def _clients(config: ClusterConfig) -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return {
        "socket_timeout": config.timeout,
        "socket_connect_timeout": config.timeout,
        "decode_responses": True,
        # One immediate retry, on a broken connection only: a pooled
        # connection to a Redis that restarted fails once, before the
        # command reached it. A timeout is not retried: the store is slow,
        # and waiting twice for it helps nobody.
        "retry_kind": (NoBackoff, RedisConnectionError),
    }


@dataclass
class Verdict:
    """The fleet's answer to a session: ``refusal`` None (admitted), or
    ``"banned"`` (``seconds`` left) or ``"full"`` (``field`` at its limit)."""

    refusal: str | None = None
    field: str = ""
    seconds: float = 0.0


ADMITTED = Verdict()


class ClusterState:
    """One instance's view of the fleet's shared state.

    On the event loop: ``acquire``/``release`` (connection counts),
    ``attempt``/``finish`` (password guesses, bans), the heartbeat. In
    worker threads: the QuotaStore calls (vfsftp.storage.quota) and
    ``reserve`` (vfsftp.session.throttle's RateStore)."""

    def __init__(self, config: ClusterConfig, about: dict[str, Any] | None = None) -> None:
        self.config = config
        self.prefix = "{" + config.prefix + "}:"
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.about = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
            **(about or {}),
        }
        self.lease_ms = max(1, int(config.lease * 1000))
        #: bytes an upload reserves at a time (QuotaStore)
        self.reserve_ahead = config.quota_reserve
        self.url = redact(config.url)
        #: what this instance holds: sessions ("c:*", "c:ip:A", "c:user:N")
        #: and quota reservations ("qb:SCOPE", "qf:SCOPE"); its hash in
        #: Redis is rewritten from this after an outage
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()  # _held, _flying, _dirty: threads change them
        #: calls to Redis under way that change this instance's hash; a
        #: rewrite waits for them (see _resync)
        self._flying = 0
        #: quota scopes whose stored usage missed a change while Redis was
        #: unreachable: measured again once it is back
        self._dirty: set[str] = set()
        #: Redis answers as far as this instance knows (else: local limits)
        self.up = False
        self._aredis: Any = None
        self._sredis: Any = None
        self._scripts: dict[str, Any] = {}
        self._sscripts: dict[str, Any] = {}
        self._beat: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._releasing: list[list[str]] = []  # this iteration's releases
        self._errors = _errors()
        self._reported = False  # the outage is logged (once)

    # ------------------------------------------------------------ lifecycle

    def _connect(self) -> None:
        import redis
        import redis.asyncio
        from redis.asyncio.retry import Retry as AsyncRetry
        from redis.retry import Retry

        options = _clients(self.config)
        backoff, retry_on = options.pop("retry_kind")
        self._aredis = redis.asyncio.Redis.from_url(
            self.config.url,
            retry=AsyncRetry(backoff(), 1, supported_errors=(retry_on,)),
            **options,
        )
        self._sredis = redis.Redis.from_url(
            self.config.url, retry=Retry(backoff(), 1, supported_errors=(retry_on,)), **options
        )
        for name, text in _SCRIPTS.items():
            self._scripts[name] = self._aredis.register_script(text)
            self._sscripts[name] = self._sredis.register_script(text)

    async def start(self) -> None:
        """Join the fleet (or, when Redis cannot be reached, serve with
        local limits until it can) and start the heartbeat."""
        self._connect()
        await self._resync()
        self._next_beat()

    def _next_beat(self) -> None:
        # A timer between beats, a task only while one runs: an idle server
        # has no task of its own waiting (the test kit checks for those).
        if not self._closing:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.config.beat, self._beat_now)

    def _beat_now(self) -> None:
        self._beat = asyncio.get_running_loop().create_task(self._heartbeat())
        self._beat.add_done_callback(lambda _: self._next_beat())

    async def close(self) -> None:
        """Leave the fleet: this instance's counts stop at once."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._beat is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        if self._releasing:
            self._flush()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.config.timeout * 2)
        if self._aredis is None:
            return
        if self.up:
            with contextlib.suppress(*self._errors):
                await self._call("leave", [self.prefix, self.instance])
        self.up = False
        closing = getattr(self._aredis, "aclose", None) or self._aredis.close
        with contextlib.suppress(*self._errors):
            await closing()
        self._sredis.close()

    async def _heartbeat(self) -> None:
        if not self.up:
            await self._resync()
            return
        try:
            known = await self._call("heartbeat", [self.prefix, self.instance, self.lease_ms])
        except self._errors as exc:
            self._lost(exc)
            return
        if not known:
            # Redis restarted, or failed over to a replica that had not
            # seen this instance yet: its sessions are written again.
            log.warning("cluster store %s lost this instance's entry; re-counting", self.url)
            await self._resync()

    async def _resync(self) -> None:
        """Write this instance's entry and hash anew from its own truth.

        Calls under way that change them finish first; from then until the
        hash is written, changes are counted here only (``up`` is False).
        Then, in one step on the loop, ``up`` turns True and what changed
        meanwhile is sent as increments: increments commute with those of
        the calls that follow, so nothing is lost or counted twice. The
        quota scopes that missed a change are measured again."""
        self.up = False
        deadline = time.monotonic() + self.config.timeout * 2 + 1
        while self._flying and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        with self._lock:
            base = Counter({f: n for f, n in self._held.items() if n > 0})
            dirty = sorted(self._dirty)
        pairs = [str(x) for field, n in base.items() for x in (field, n)]
        about = json.dumps(self.about, sort_keys=True)
        try:
            await self._call("resync", [self.prefix, self.instance, self.lease_ms, about, *pairs])
            if dirty:
                await self._aredis.delete(*(self.prefix + "quota:" + s for s in dirty))
        except self._errors as exc:
            self._lost(exc)
            return
        with self._lock:
            self._dirty.difference_update(dirty)
            delta = Counter(self._held)
            delta.subtract(base)
            changes = [str(x) for field, n in delta.items() if n for x in (field, n)]
            self.up = True
            if changes:
                self._flying += 1
        if changes:
            try:
                await self._call("add", [self.prefix, self.instance, self.lease_ms, *changes])
            except self._errors as exc:
                self._lost(exc)
            finally:
                with self._lock:
                    self._flying -= 1
        if self._reported and self.up:
            self._reported = False
            log.warning(
                "cluster store %s reachable again: %d session(s) of this instance counted "
                "in the fleet's limits again",
                self.url,
                self.held("c:*"),
            )

    def _lost(self, exc: BaseException) -> None:
        """Redis failed a call: serve with local limits until the heartbeat
        gets through (any thread)."""
        self.up = False
        if not self._reported:
            self._reported = True
            log.warning(
                "cluster store %s unreachable (%s): serving with this instance's own "
                "limits; uploads into quotas are refused until it is back",
                self.url,
                f"{type(exc).__name__}: {exc}",
            )

    async def _call(self, name: str, args: Sequence[Any]) -> Any:
        """Run a script from the event loop."""
        call = self._scripts[name](args=list(args))
        if asyncio.current_task() is None:
            # Started eagerly (vfsftp.session.eager), outside any Task:
            # redis-py's timeouts (asyncio.timeout) need one.
            return await asyncio.get_running_loop().create_task(call)
        return await call

    @contextlib.contextmanager
    def _flight(self) -> Iterator[None]:
        with self._lock:
            self._flying += 1
        try:
            yield
        finally:
            with self._lock:
                self._flying -= 1

    def _hold(self, fields: Sequence[str], n: int) -> None:
        with self._lock:
            for field in fields:
                left = self._held[field] + n
                if left > 0:
                    self._held[field] = left
                else:
                    self._held.pop(field, None)

    def held(self, field: str) -> int:
        """What this instance holds under ``field`` (tests, status)."""
        with self._lock:
            return self._held.get(field, 0)

    # ------------------------------------------------------------ sessions

    async def acquire(
        self,
        limits: Sequence[tuple[str, int]],
        ban_key: str = "",
        guess: tuple[str, str] | None = None,
    ) -> Verdict:
        """Count one more session under each (key, limit), or say why the
        fleet refuses it. Redis unreachable: counted here only, admitted
        (the instance's own limits have been checked already). ``guess``:
        (key, token) of a password check that succeeded, ended in the same
        call (``finish`` for it, one round trip less per login)."""
        fields = ["c:" + key for key, _ in limits]
        if not self.up:
            self._hold(fields, 1)
            return ADMITTED
        guess_key, token = guess if guess is not None else ("", "")
        args: list[Any] = [self.prefix, self.instance, self.lease_ms, ban_key, guess_key, token]
        args.append(len(limits))
        for field, (_, limit) in zip(fields, limits, strict=True):
            args += [field, limit]
        with self._flight():
            try:
                answer = await self._call("acquire", args)
            except self._errors as exc:
                self._lost(exc)
                answer = ["ok"]
            if answer[0] == "ok":
                self._hold(fields, 1)
                return ADMITTED
        if answer[0] == "banned":
            return Verdict("banned", seconds=int(answer[1]) / 1000)
        return Verdict("full", field=str(answer[1])[2:])

    def release(self, keys: Sequence[str]) -> None:
        """Sessions under ``keys`` ended (on the loop; returns at once). The
        releases of one loop iteration go to Redis in one call."""
        fields = ["c:" + key for key in keys]
        self._hold(fields, -1)
        if not self.up or self._aredis is None:
            return
        with self._lock:
            self._flying += 1  # (until the call that takes them is done)
        if not self._releasing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._releasing.append(fields)

    def _flush(self) -> None:
        batch, self._releasing = self._releasing, []
        if not batch:
            return  # (flushed by close meanwhile)
        task = asyncio.get_running_loop().create_task(self._release(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release(self, batch: list[list[str]]) -> None:
        try:
            pairs = [x for fields in batch for field in fields for x in (field, -1)]
            await self._call("add", [self.prefix, self.instance, self.lease_ms, *pairs])
        except self._errors as exc:
            self._lost(exc)
        finally:
            with self._lock:
                self._flying -= len(batch)

    # ------------------------------------------------------------ bans

    async def attempt(self, key: str, max_failures: int, window: float) -> str | bool | None:
        """Reserve the check of a password guess from ``key``: a token,
        None (no place now: ask again), False (banned meanwhile); True when
        Redis cannot be reached (use the local ban list)."""
        if not self.up:
            return True
        token = os.urandom(8).hex()
        args = [self.prefix, key, max_failures, int(window * 1000), int(GUESS_STALE * 1000), token]
        try:
            answer = await self._call("attempt", args)
        except self._errors as exc:
            self._lost(exc)
            return True
        if answer == 1:
            return token
        return None if answer == -1 else False

    async def finish(
        self, key: str, token: str, failed: bool, max_failures: int, window: float, duration: float
    ) -> bool | None:
        """The guess was checked: True when its failure starts a ban; None
        when Redis cannot be reached (count it in the local ban list)."""
        args = [
            self.prefix,
            key,
            token,
            "1" if failed else "0",
            max_failures,
            int(window * 1000),
            max(1, int(duration * 1000)),
        ]
        try:
            return bool(await self._call("finish", args))
        except self._errors as exc:
            self._lost(exc)
            return None

    # ------------------------------------------------------------ quotas (threads)

    def _quota_call(self, name: str, args: list[Any]) -> Any:
        """A quota script from a worker thread; QuotaUnavailable when Redis
        cannot be reached."""
        if not self.up:
            raise QuotaUnavailable()
        try:
            return self._sscripts[name](args=args)
        except self._errors as exc:
            self._lost(exc)
            raise QuotaUnavailable() from None

    def quota_charge(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        args: list[Any] = [
            self.prefix,
            self.instance,
            self.lease_ms,
            nbytes,
            nfiles,
            len(quotas),
        ]
        for q in quotas:
            args += [
                q.scope,
                "" if q.max_bytes is None else q.max_bytes,
                "" if q.max_files is None else q.max_files,
            ]
        fields = [f for q in quotas for f in self._fields(q, nbytes, nfiles)]
        for _ in range(3):
            with self._flight():
                answer = self._quota_call("charge", args)
                if answer[0] == "ok":
                    self._hold_counts(fields, nbytes, nfiles)
                    return
            quota = quotas[int(answer[1])]
            if answer[0] != "unmeasured":
                raise quota.exceeded(files=answer[0] == "files")
            used, files = quota.measure_now()  # a walk of the storage (this thread)
            self._quota_call("init", [self.prefix, quota.scope, used, files])
        raise QuotaUnavailable()

    @staticmethod
    def _fields(q: Quota, nbytes: int, nfiles: int) -> list[str]:
        return (["qb:" + q.scope] if nbytes else []) + (["qf:" + q.scope] if nfiles else [])

    def _hold_counts(self, fields: list[str], nbytes: int, nfiles: int) -> None:
        with self._lock:
            self._hold_counts_locked(fields, nbytes, nfiles)

    def _hold_counts_locked(self, fields: list[str], nbytes: int, nfiles: int) -> None:
        for field in fields:
            n = nbytes if field.startswith("qb:") else nfiles
            left = self._held[field] + n
            if left > 0:
                self._held[field] = left
            else:
                self._held.pop(field, None)

    def quota_settle(self, mode: str, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        """``mode``: "unreserve", "commit" or "release" (see _QUOTA_SETTLE).
        Never raises: Redis unreachable, a change of stored usage makes the
        scope measured again once it is back."""
        if not (nbytes or nfiles):
            return
        scopes = [q.scope for q in quotas]
        fields = [f for q in quotas for f in self._fields(q, nbytes, nfiles)]
        with self._flight():
            with self._lock:
                send = self.up  # (read with the change: see _resync)
                if mode != "release":
                    self._hold_counts_locked(fields, -nbytes, -nfiles)
            ok = False
            if send:
                args = [self.prefix, self.instance, self.lease_ms, nbytes, nfiles, mode, *scopes]
                try:
                    self._sscripts["settle"](args=args)
                    ok = True
                except self._errors as exc:
                    self._lost(exc)
        if not ok and mode != "unreserve":
            # The stored usage missed this: measured again when Redis is back.
            with self._lock:
                self._dirty.update(scopes)

    def quota_usage(self, quota: Quota) -> tuple[int, int]:
        for _ in range(3):
            answer = self._quota_call("usage", [self.prefix, quota.scope])
            if answer:
                return int(answer[0]), int(answer[1])
            used, files = quota.measure_now()
            self._quota_call("init", [self.prefix, quota.scope, used, files])
        raise QuotaUnavailable()

    # ------------------------------------------------------------ rates (threads)

    def reserve(self, buckets: Sequence[tuple[str, float, float]], n: int) -> float | None:
        """Take ``n`` bytes' worth of tokens from each shared bucket (key,
        rate, burst): seconds to wait before sending them, or None when
        Redis cannot be reached (pace with the local buckets)."""
        if not self.up:
            return None
        args: list[Any] = [self.prefix, n, len(buckets)]
        for key, rate, burst in buckets:
            args += [key, rate, burst]
        try:
            return int(self._sscripts["rate"](args=args)) / 1_000_000
        except self._errors as exc:
            self._lost(exc)
            return None


class SharedQuotas:
    """The cluster state as the storage's QuotaStore (vfsftp.storage.quota)."""

    def __init__(self, cluster: ClusterState) -> None:
        self.cluster = cluster
        self.reserve_ahead = cluster.reserve_ahead

    def charge(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        self.cluster.quota_charge(quotas, nbytes, nfiles)

    def unreserve(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        self.cluster.quota_settle("unreserve", quotas, nbytes, nfiles)

    def commit(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        self.cluster.quota_settle("commit", quotas, nbytes, nfiles)

    def release(self, quotas: Sequence[Quota], nbytes: int, nfiles: int) -> None:
        self.cluster.quota_settle("release", quotas, nbytes, nfiles)

    def usage(self, quota: Quota) -> tuple[int, int]:
        return self.cluster.quota_usage(quota)


_SCRIPTS = {
    "acquire": _ACQUIRE,
    "add": _ADD,
    "heartbeat": _HEARTBEAT,
    "resync": _RESYNC,
    "leave": _LEAVE,
    "charge": _QUOTA_CHARGE,
    "settle": _QUOTA_SETTLE,
    "init": _QUOTA_INIT,
    "usage": _QUOTA_USAGE,
    "rate": _RATE,
    "attempt": _ATTEMPT,
    "finish": _FINISH,
}


# --------------------------------------------------------------- status, unban


@dataclass
class FleetStatus:
    """What ``vfsftp status`` prints."""

    instances: list[dict[str, Any]]
    users: dict[str, int]
    bans: dict[str, float]  # key → seconds left


def _sync_client(config: ClusterConfig) -> Any:
    import redis
    from redis.retry import Retry

    options = _clients(config)
    backoff, retry_on = options.pop("retry_kind")
    return redis.Redis.from_url(
        config.url, retry=Retry(backoff(), 1, supported_errors=(retry_on,)), **options
    )


def fleet_status(config: ClusterConfig) -> FleetStatus:
    """Blocking: the live instances with their sessions, the sessions per
    user, the bans. Raises redis.RedisError when Redis cannot be reached."""
    prefix = "{" + config.prefix + "}:"
    client = _sync_client(config)
    try:
        seconds, micros = client.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        ids = client.zrangebyscore(prefix + "instances", now, "+inf", withscores=True)
        instances: list[dict[str, Any]] = []
        users: Counter[str] = Counter()
        for instance, expires in ids:
            about = client.hget(prefix + "info:" + instance, "about")
            held = client.hgetall(prefix + "held:" + instance)
            row: dict[str, Any] = {"id": instance, "lease_left": (expires - now) / 1000}
            with contextlib.suppress(ValueError, TypeError):
                row.update(json.loads(about or "{}"))
            row["sessions"] = int(held.get("c:*", 0))
            for field, n in held.items():
                if field.startswith("c:user:"):
                    users[field[len("c:user:") :]] += int(n)
            instances.append(row)
        bans: dict[str, float] = {}
        for key in client.scan_iter(match=prefix + "ban:*", count=500):
            left = client.pttl(key)
            if left > 0:
                bans[key[len(prefix + "ban:") :]] = left / 1000
        return FleetStatus(instances, dict(users), bans)
    finally:
        client.close()


def unban(config: ClusterConfig, key: str) -> bool:
    """Blocking: lift the ban of ``key`` (an address, or an IPv6 /64) and
    forget its failed logins; True when it was banned."""
    prefix = "{" + config.prefix + "}:"
    client = _sync_client(config)
    try:
        banned = int(client.delete(prefix + "ban:" + key))
        client.delete(prefix + "fail:" + key, prefix + "guess:" + key)
        return banned > 0
    finally:
        client.close()
