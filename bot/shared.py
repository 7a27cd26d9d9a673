"""Shared, expiring state behind one small interface: Redis when configured, else in-process.

Used for hints that make the herd cheap (a slot is sold out; cached availability), never for
anything that must be true: seats live in the database.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import redis

from bot.core.ports import PACE_TTL, Paced, PaceKeys
from bot.core.ports import SharedState as SharedState  # the port this module implements


def _bucket(rate: float, burst: int) -> tuple[int, int]:
    """A token bucket as a debt in milliseconds (GCRA): one token costs `interval`, and a
    take is allowed while the debt after it stays within `limit`; the debt pays itself off
    as time passes. The debt is the key's remaining lifetime, so the stores' own expiry keeps
    the time and a full bucket is simply an absent key."""
    interval = max(1, math.ceil(1000 / rate))
    return interval, interval * max(1, burst)


class InProcessState:
    """A dict with expiry, for the embedded default and single-process runs."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # The clock is an argument so tests can move time instead of sleeping.
        self._clock = clock
        self._values: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        """Return the value, or None when absent or expired."""
        with self._lock:
            item = self._values.get(key)
            if item is None:
                return None
            value, expires = item
            if expires <= self._clock():
                del self._values[key]
                return None
            return value

    def set(self, key: str, value: str, ttl_seconds: float) -> None:
        """Store a value that disappears after `ttl_seconds`."""
        with self._lock:
            self._values[key] = (value, self._clock() + ttl_seconds)

    def delete(self, key: str) -> None:
        """Remove a key."""
        with self._lock:
            self._values.pop(key, None)

    def incr(self, key: str, ttl_seconds: float) -> int:
        """Add one to a counter that disappears `ttl_seconds` after its first use; return it."""
        with self._lock:
            value, expires = self._values.get(key, ("0", 0.0))
            if expires <= self._clock():
                value, expires = "0", self._clock() + ttl_seconds
            count = int(value) + 1
            self._values[key] = (str(count), expires)
            return count

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """Take one token from a bucket refilled at `rate` a second, holding at most `burst`."""
        interval, limit = _bucket(rate, burst)
        with self._lock:
            now = self._clock()
            _value, expires = self._values.get(key, ("", now))
            debt = max(0.0, (expires - now) * 1000) + interval
            if debt > limit:
                return False, (debt - limit) / 1000
            self._values[key] = ("1", now + debt / 1000)
            return True, 0.0

    def pace(self, keys: PaceKeys, now: float, per_chat: int, count: bool) -> Paced:
        """One pacing step (see `SharedState.pace`)."""
        held = self.get(keys.hold)
        if held is not None and float(held) > now:
            return Paced(held_until=float(held))
        if not count:
            return Paced()
        mine = self.incr(keys.chat, PACE_TTL)
        if mine > per_chat:
            return Paced(chat=mine)
        return Paced(chat=mine, overall=self.incr(keys.overall, PACE_TTL))

    def close(self) -> None:
        """Nothing to release."""


# KEYS[1] the bucket, ARGV[1] a token's cost and ARGV[2] the largest debt, in milliseconds.
TAKE_SCRIPT = """
local debt = redis.call('PTTL', KEYS[1])
if debt < 0 then debt = 0 end
debt = debt + tonumber(ARGV[1])
if debt > tonumber(ARGV[2]) then return debt - tonumber(ARGV[2]) end
redis.call('SET', KEYS[1], '1', 'PX', debt)
return 0
"""


# KEYS: the hold, the chat's and the overall counter of this second; ARGV: now, whether to
# count, the chat's limit, the counters' lifetime in milliseconds. Returns {hold or '', chat
# count, overall count}: the three round trips of a pacing step in one.
PACE_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held and tonumber(held) > tonumber(ARGV[1]) then return {held, 0, 0} end
if ARGV[2] ~= '1' then return {'', 0, 0} end
local mine = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4], 'NX')
if mine > tonumber(ARGV[3]) then return {'', mine, 0} end
local everyone = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[4], 'NX')
return {'', mine, everyone}
"""


class RedisState:
    """Keys in Redis under a prefix, shared by every worker and machine."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, decode_responses=True)
        self.prefix = prefix
        self._take = self.client.register_script(TAKE_SCRIPT)
        self._pace = self.client.register_script(PACE_SCRIPT)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def get(self, key: str) -> str | None:
        """Return the value, or None when absent or expired."""
        value = self.client.get(self._key(key))
        return None if value is None else str(value)

    def set(self, key: str, value: str, ttl_seconds: float) -> None:
        """Store a value that disappears after `ttl_seconds`."""
        self.client.set(self._key(key), value, px=max(1, int(ttl_seconds * 1000)))

    def delete(self, key: str) -> None:
        """Remove a key."""
        self.client.delete(self._key(key))

    def incr(self, key: str, ttl_seconds: float) -> int:
        """Add one to a counter that disappears `ttl_seconds` after its first use; return it."""
        name = self._key(key)
        pipeline = self.client.pipeline()
        pipeline.incr(name)
        pipeline.pexpire(name, max(1, int(ttl_seconds * 1000)), nx=True)
        count, _expiry = pipeline.execute()
        return int(count)

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """Take one token from a bucket refilled at `rate` a second, holding at most `burst`.

        One Lua script, so concurrent takes from every worker are serialised by Redis.
        """
        interval, limit = _bucket(rate, burst)
        wait = int(self._take(keys=[self._key(key)], args=[interval, limit]))
        return wait == 0, wait / 1000

    def pace(self, keys: PaceKeys, now: float, per_chat: int, count: bool) -> Paced:
        """One pacing step in one Lua script (see `SharedState.pace`)."""
        names = [self._key(keys.hold), self._key(keys.chat), self._key(keys.overall)]
        ttl = max(1, int(PACE_TTL * 1000))
        held, mine, everyone = self._pace(
            keys=names, args=[repr(now), "1" if count else "0", per_chat, ttl]
        )
        if held:
            return Paced(held_until=float(held))
        return Paced(chat=int(mine), overall=int(everyone))

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def make_shared_state(redis_url: str | None, prefix: str) -> SharedState:
    """Return Redis-backed state when a URL is configured, else in-process state."""
    if redis_url:
        return RedisState(redis_url, prefix)
    return InProcessState()
