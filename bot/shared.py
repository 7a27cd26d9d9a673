"""Shared, expiring state behind one small interface: Redis when configured, else in-process.

Used for hints that make the herd cheap (a slot is sold out; cached availability), never for
anything that must be true: seats live in the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis


class SharedState(Protocol):
    """Keys with a time to live."""

    def get(self, key: str) -> str | None:
        """Return the value, or None when absent or expired."""

    def set(self, key: str, value: str, ttl_seconds: float) -> None:
        """Store a value that disappears after `ttl_seconds`."""

    def delete(self, key: str) -> None:
        """Remove a key."""

    def incr(self, key: str, ttl_seconds: float) -> int:
        """Add one to a counter that disappears `ttl_seconds` after its first use; return it."""

    def close(self) -> None:
        """Release connections."""


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

    def close(self) -> None:
        """Nothing to release."""


class RedisState:
    """Keys in Redis under a prefix, shared by every worker and machine."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, decode_responses=True)
        self.prefix = prefix

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

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def make_shared_state(redis_url: str | None, prefix: str) -> SharedState:
    """Return Redis-backed state when a URL is configured, else in-process state."""
    if redis_url:
        return RedisState(redis_url, prefix)
    return InProcessState()
