"""The ports the conversation core needs from the world, as small Protocols.

The core (the engine, flows' `Context`) names only these; the concrete modules implement
them (bot/documents.py, bot/shared.py, bot/billing.py, bot/identity.py, bot/phone_sender.py)
and import the core, never the reverse, so no import circle ties the core to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol


class BlobStore(Protocol):
    """Where document bytes live; the database keeps only their hash."""

    def put(self, data: bytes) -> str:
        """Store bytes and return their key (the SHA-256 in hex)."""

    def get(self, key: str) -> bytes:
        """Return stored bytes."""

    def delete(self, key: str) -> bool:
        """Remove stored bytes from disk; False when they were not there."""

    def stored_keys(self) -> list[str]:
        """Every stored key."""

    def stored_at(self, key: str) -> float | None:
        """When a key's bytes were written (POSIX time), None when there are none."""


PACE_TTL = 2.0  # seconds a pacing counter of one second is kept


@dataclass(frozen=True)
class PaceKeys:
    """The keys of one pacing step: the hold after a 429, this second's counters."""

    hold: str
    chat: str
    overall: str


@dataclass(frozen=True)
class Paced:
    """What a pacing step found: a hold (every sender waits until then), or the counts."""

    held_until: float | None = None
    chat: int = 0
    overall: int = 0  # 0 when not counted (the chat's own limit was already reached)


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

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """Take one token from a bucket refilled at `rate` a second, holding at most `burst`.

        Atomic; returns (allowed, seconds to wait before a token is there when refused).
        """

    def pace(self, keys: PaceKeys, now: float, per_chat: int, count: bool) -> Paced:
        """One pacing step in one round trip: the time `keys.hold` holds every sender until,
        if later than `now` (then nothing is counted); else, when `count`, one more send on the
        chat's counter and, if that is within `per_chat`, on the overall one (counters last
        PACE_TTL seconds from their first use)."""

    def close(self) -> None:
        """Release connections."""


class BillingProvider(Protocol):
    """Issues billing codes (a local generator now; the state revenue system later)."""

    def new_code(self) -> str:
        """Return a fresh, well-formed billing code."""


class IdentityRegistry(Protocol):
    """Checks a NIK and the person's details; raises `Invalid` with a specific reason."""

    def read_nik(self, text: str) -> str:
        """Return the 16-digit NIK typed, or refuse it."""

    def check_person(self, nik: str, birth_date: date, sex: str) -> None:
        """Refuse when the NIK and the person's details disagree."""

    def describe(self) -> str:
        """Say in one line, without personal data, what this registry really verifies."""


class PhoneSender(Protocol):
    """Sends a short text to a phone number (E.164)."""

    def send(self, phone: str, text: str) -> None:
        """Deliver `text` to `phone`, or raise."""
