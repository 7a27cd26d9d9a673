"""Overload, answered: when the backlog or the database's latency passes its threshold, a new
turn gets "Layanan sedang ramai" at once, with when to try again, instead of timing out.

One reading (how many updates wait in the inbox, and how long that count took the database) is
taken at most once per `every` seconds per process, so checking costs the herd nothing; the
clock and the measure are arguments, so tests move them instead of waiting.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import _
from bot.settings import Settings
from storage.inbox import count_waiting


@dataclass(frozen=True)
class Reading:
    """One look at the load: updates waiting, and the database's answer time (None: down)."""

    backlog: int
    latency: float | None


Measure = Callable[[], Reading]


def database_measure(
    sessions: sessionmaker[Session], clock: Callable[[], float] = time.perf_counter
) -> Measure:
    """Count the waiting updates and time the count (one cheap indexed query)."""

    def measure() -> Reading:
        started = clock()
        try:
            with sessions() as session:
                backlog = count_waiting(session)
        except Exception:  # unreachable: said by the reading, not raised at the caller
            return Reading(0, None)
        return Reading(backlog, clock() - started)

    return measure


class LoadGauge:
    """Tell whether to take new turns now, from a reading at most `every` seconds old."""

    def __init__(
        self,
        settings: Settings,
        measure: Measure,
        clock: Callable[[], float] = time.monotonic,
        every: float = 1.0,
    ) -> None:
        self.settings = settings
        self.measure = measure
        self.clock = clock
        self.every = every
        self._lock = threading.Lock()
        self._last: tuple[float, Reading] | None = None

    def reading(self) -> Reading:
        """Return the latest reading, measuring again when it is older than `every`."""
        with self._lock:
            now = self.clock()
            if self._last is None or now - self._last[0] >= self.every:
                self._last = (now, self.measure())
            return self._last[1]

    def fresh(self) -> Reading:
        """Measure now (readiness probes ask seldom and want the truth)."""
        with self._lock:
            self._last = (self.clock(), self.measure())
            return self._last[1]

    def busy_minutes(self) -> int | None:
        """Return in how many minutes to try again when overloaded, else None."""
        reading = self.reading()
        settings = self.settings
        slow = reading.latency is None or reading.latency * 1000 > settings.overload_db_ms
        if not slow and reading.backlog < settings.overload_backlog:
            return None
        # The backlog drains at about `apply_rate` a second: say when it will have.
        drain = reading.backlog / max(settings.apply_rate, 1) / 60
        return max(settings.overload_retry_minutes, math.ceil(drain))


def busy_text(minutes: int) -> str:
    """The answer to a turn refused under load, in the current locale."""
    return _("Layanan sedang ramai. Silakan coba lagi dalam sekitar {minutes} menit.").format(
        minutes=minutes
    )
