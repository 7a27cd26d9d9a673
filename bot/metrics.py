"""Prometheus metrics at `/metrics` (prometheus-client): what an operator watches at release.

Counters and histograms live in the process that counts them; under several gunicorn workers
set `PROMETHEUS_MULTIPROC_DIR` to an empty folder shared by the workers (emptied before each
start) and the scrape adds every worker's figures (prometheus-client's multiprocess mode).
Figures that live in the database (inbox depth, outbox lag and set-aside rows, seats held and
left per office) are read at scrape time by a few cheap aggregate queries, so every worker
answers the same. Labels carry channels, reasons and office codes, never personal data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Booking, InboxUpdate, Office, OutboxMessage, Slot

TURNS = Counter("loket_turns_total", "Turns run through the engine", ["channel"])
TURN_SECONDS = Histogram(
    "loket_turn_seconds",
    "Time from a turn's start to its commit",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REFUSALS = Counter(
    "loket_refusals_total",
    "Turns or holds refused, by reason (overload, rate_limited, sold_out, hold refusals)",
    ["reason"],
)
ADMISSION_RATE = Gauge(
    "loket_waiting_room_admission_rate",
    "People a second the waiting room admits, by office (set by the waiting room)",
    ["office"],
    multiprocess_mode="mostrecent",
)


def refused(reason: str) -> None:
    """Count one refusal; `reason` is a short fixed word (never user input)."""
    REFUSALS.labels(reason).inc()


@contextmanager
def timed_turn(channel: str) -> Iterator[None]:
    """Count a turn and its duration under its channel."""
    started = time.perf_counter()
    try:
        yield
    finally:
        TURNS.labels(channel).inc()
        TURN_SECONDS.labels(channel).observe(time.perf_counter() - started)


class DatabaseCollector(Collector):
    """Read the queue and seat figures from the database at scrape time."""

    def __init__(self, sessions: sessionmaker[Session], now: datetime) -> None:
        self.sessions = sessions
        self.now = now

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Yield inbox depth, outbox lag and set-aside rows, seats held and left per office."""
        with self.sessions() as session:
            waiting = session.execute(
                select(func.count(InboxUpdate.id)).where(InboxUpdate.applied_at.is_(None))
            ).scalar_one()
            unsent = OutboxMessage.sent_at.is_(None) & OutboxMessage.failed_at.is_(None)
            outbox_waiting, oldest = session.execute(
                select(func.count(OutboxMessage.id), func.min(OutboxMessage.created_at)).where(
                    unsent
                )
            ).one()
            set_aside = session.execute(
                select(func.count(OutboxMessage.id)).where(OutboxMessage.failed_at.is_not(None))
            ).scalar_one()
            left = session.execute(
                select(Office.code, func.coalesce(func.sum(Slot.capacity - Slot.taken), 0))
                .join(Slot, Slot.office_id == Office.id)
                .where(Slot.day >= self.now.date(), Slot.closed.is_(False))
                .group_by(Office.code)
            ).all()
            held = session.execute(
                select(Office.code, func.count(Booking.id))
                .join(Slot, Slot.office_id == Office.id)
                .join(Booking, Booking.slot_id == Slot.id)
                .where(Booking.status == "held")
                .group_by(Office.code)
            ).all()
        yield GaugeMetricFamily("loket_inbox_waiting", "Updates accepted, not yet applied", waiting)
        yield GaugeMetricFamily(
            "loket_outbox_waiting", "Replies waiting to be sent", outbox_waiting
        )
        lag = 0.0
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=self.now.tzinfo)
            lag = max((self.now - oldest).total_seconds(), 0.0)
        yield GaugeMetricFamily(
            "loket_outbox_lag_seconds", "Age of the oldest reply waiting to be sent", lag
        )
        yield GaugeMetricFamily(
            "loket_outbox_set_aside", "Replies given up on (kept until purged)", set_aside
        )
        seats_left = GaugeMetricFamily(
            "loket_seats_left", "Free seats from today on, by office", labels=["office"]
        )
        for code, count in left:
            seats_left.add_metric([code], float(count))
        yield seats_left
        seats_held = GaugeMetricFamily(
            "loket_seats_held", "Seats held for payment, by office", labels=["office"]
        )
        for code, count in held:
            seats_held.add_metric([code], float(count))
        yield seats_held


def exposition(sessions: sessionmaker[Session], now: datetime) -> bytes:
    """Render every metric in Prometheus' text format: the process's (or, in multiprocess
    mode, every worker's) counters, then the database's figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        workers = CollectorRegistry()
        multiprocess.MultiProcessCollector(workers)  # type: ignore[no-untyped-call]
        counted = generate_latest(workers)
    else:
        counted = generate_latest(REGISTRY)
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseCollector(sessions, now))
    return counted + generate_latest(database)
