"""Quota release under a thundering herd: N applicants race for M seats.

Every simulated applicant has a submitted application and a conversation waiting at the
window question (as a channel leaves it after "choose a date"); at the start signal all of
them press a window through `Loket.handle`, the same call every channel makes. Work runs in
several processes with threads each, so the machine's cores are used despite the GIL.

Usage (the database and Redis come from DATABASE_URL and REDIS_URL, as for the product):

    python bench/herd.py --users 20000 --seats 500 --concurrency 32

A fresh database (PostgreSQL) or file (SQLite) is made for the run and removed afterwards;
Redis keys live under a prefix of the run's own. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from bot.core.messages import Inbound
from bot.service import Loket
from bot.settings import Settings
from bot.shared import RedisState
from storage.booking import db_now
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import (
    Application,
    BillingCode,
    Booking,
    Conversation,
    Office,
    Slot,
)

CHANNEL = "bench"
WINDOWS = 5


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """Yield the URL of a new, migrated database on the configured server; drop it after."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            fresh = f"sqlite:///{folder}/herd.db"
            upgrade(fresh)
            yield fresh
        return
    name = f"loket_herd_{uuid.uuid4().hex[:10]}"
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    fresh = parsed.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(fresh)
        yield fresh
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def nik_for(number: int) -> str:
    """Return a distinct, structurally valid NIK for applicant `number`."""
    birth = date(1950, 1, 1) + timedelta(days=number % 20000)
    district = number // 9999 % 100
    encoded_birth = f"{birth.day:02d}{birth.month:02d}{birth.year % 100:02d}"
    return f"3273{district:02d}{encoded_birth}{number % 9999 + 1:04d}"


def prepare(url: str, users: int, seats: int) -> list[int]:
    """Create one office day with `seats` seats in windows, and `users` waiting applicants."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        now = db_now(session)
        office = Office(
            code="herd", name="Kantor Imigrasi Herd", city="Herdtown", province="Bench",
            timezone="Asia/Jakarta", address="Jl. Benchmark 1", hours="08.00-15.00",
            latitude=-6.9, longitude=107.6,
        )  # fmt: skip
        session.add(office)
        session.flush()
        day = (now + timedelta(days=7)).date()
        per_window, extra = divmod(seats, WINDOWS)
        slot_ids = []
        for window in range(WINDOWS):
            slot = Slot(
                office_id=office.id, day=day, start_time=clock_time(8 + window, 0),
                end_time=clock_time(9 + window, 0), kind="reguler",
                capacity=per_window + (1 if window < extra else 0), taken=0,
                release_at=now - timedelta(minutes=1), closed=False,
            )  # fmt: skip
            session.add(slot)
            session.flush()
            slot_ids.append(slot.id)
        office_id = office.id
    batch = 2000
    for start in range(0, users, batch):
        numbers = range(start, min(start + batch, users))
        with sessions() as session, session.begin():
            session.execute(
                insert(Application),
                [
                    {
                        "reg_number": f"LK-H{n:08d}"[:16], "channel": CHANNEL,
                        "account_ref": f"u{n}", "status": "registered", "service": "reguler",
                        "application_type": "baru", "passport_kind": "biasa",
                        "validity_years": 5, "category": "adult", "nik": nik_for(n),
                        "full_name": f"PEMOHON {n}", "birth_place": "Bandung",
                        "birth_date": date(1990, 1, 1), "sex": "M", "phone": "+6281234567890",
                        "address": "Jl. Merdeka 10 Bandung", "travel_purpose": "wisata",
                        "name_changed": False, "fee_amount": 350000,
                        "fee_schedule": "PP 45/2024", "answers": {}, "created_at": now,
                    }
                    for n in numbers
                ],
            )  # fmt: skip
            ids = dict(
                session.execute(
                    select(Application.account_ref, Application.id).where(
                        Application.account_ref.in_([f"u{n}" for n in numbers])
                    )
                ).all()
            )
            session.execute(
                insert(Conversation),
                [
                    {
                        "channel": CHANNEL, "user_ref": f"u{n}", "locale": None,
                        "created_at": now, "last_activity_at": now,
                        "state": {
                            "flow": "booking", "step": "slot",
                            "answers": {
                                "application": str(ids[f"u{n}"]),
                                "office_query": [{"id": office_id, "km": None}],
                                "office": str(office_id), "day": day.isoformat(),
                            },
                            "history": ["office_query", "office", "day"],
                            "shown": [str(slot_id) for slot_id in slot_ids],
                        },
                    }
                    for n in numbers
                ],
            )  # fmt: skip
    engine.dispose()
    return slot_ids


def run_worker(
    args: tuple[str, str | None, str, list[int], list[int], int, Any, Any],
) -> list[tuple[str, float]]:
    """In one process: press a window for each user from several threads; return timings."""
    url, redis_url, prefix, users, slot_ids, threads, start_event, ready = args
    settings = replace(
        Settings.from_env({}), database_url=url, redis_url=redis_url, redis_prefix=prefix,
        auto_migrate=False,
    )  # fmt: skip
    engine = make_engine(url, pool_size=threads + 2, max_overflow=4)
    loket = Loket(settings, db=engine)
    results: list[tuple[str, float]] = []
    lock = threading.Lock()
    queue = list(reversed(users))

    def work() -> None:
        rng_slot = slot_ids
        while True:
            with lock:
                if not queue:
                    return
                user = queue.pop()
            slot = rng_slot[(user * 7919) % len(rng_slot)]
            began = time.perf_counter()
            try:
                replies = loket.handle(CHANNEL, f"u{user}", Inbound.press(str(slot)))
                text_out = "\n".join(reply.text for reply in replies)
                if "Kursi Anda ditahan" in text_out:
                    kind = "held"
                elif "penuh" in text_out or "habis" in text_out:
                    kind = "sold_out"
                else:
                    kind = "other"
            except Exception as error:  # counted, not hidden
                kind = f"error:{type(error).__name__}"
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                results.append((kind, elapsed))

    ready.wait()
    start_event.wait()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    loket.close()
    return results


def check(url: str) -> dict[str, int]:
    """Count bookings and every invariant violation in the database."""
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        active = Booking.status.in_(("held", "confirmed"))
        bookings = session.execute(select(func.count(Booking.id)).where(active)).scalar_one()
        over_capacity = session.execute(
            select(func.count(Slot.id)).where(Slot.taken > Slot.capacity)
        ).scalar_one()
        per_slot = session.execute(
            select(Slot.id, Slot.capacity, Slot.taken, func.count(Booking.id))
            .join(Booking, (Booking.slot_id == Slot.id) & active, isouter=True)
            .group_by(Slot.id, Slot.capacity, Slot.taken)
        ).all()
        miscounted = sum(1 for _id, capacity, taken, count in per_slot
                         if count > capacity or count != taken)  # fmt: skip
        billing_twice = session.execute(
            select(func.count()).select_from(
                select(BillingCode.booking_id).group_by(BillingCode.booking_id)
                .having(func.count(BillingCode.id) > 1).subquery()
            )
        ).scalar_one()  # fmt: skip
        same_code = session.execute(
            select(func.count()).select_from(
                select(BillingCode.code).group_by(BillingCode.code)
                .having(func.count(BillingCode.id) > 1).subquery()
            )
        ).scalar_one()  # fmt: skip
        nik_twice = session.execute(
            select(func.count()).select_from(
                select(Booking.nik).where(active).group_by(Booking.nik)
                .having(func.count(Booking.id) > 1).subquery()
            )
        ).scalar_one()  # fmt: skip
        billed = session.execute(select(func.count(BillingCode.id))).scalar_one()
    engine.dispose()
    return {
        "bookings": int(bookings),
        "overbooked": int(over_capacity) + int(miscounted),
        "duplicate_billing_codes": int(billing_twice)
        + int(same_code)
        + abs(int(billed) - int(bookings)),
        "duplicate_nik_bookings": int(nik_twice),
    }


def percentile(values: list[float], share: float) -> float:
    """Return a percentile (nearest rank) of a list of numbers."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> int:
    """Run the herd once and print the figures; the last line is JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--seats", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8, help="turns in flight at once")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    settings = Settings.from_env()
    prefix = f"loket-herd-{uuid.uuid4().hex[:8]}"
    with fresh_database(settings.database_url) as url:
        state = "Redis" if settings.redis_url else "in-process state"
        backend = make_url(url).get_backend_name()
        print(f"preparing {args.users} applicants, {args.seats} seats, {backend} + {state}")
        slot_ids = prepare(url, args.users, args.seats)
        processes = max(1, min(args.processes, args.concurrency))
        threads = max(1, args.concurrency // processes)
        context = multiprocessing.get_context("spawn")
        manager = context.Manager()
        start_event = manager.Event()
        ready = manager.Barrier(processes + 1)
        shares = [list(range(args.users))[n::processes] for n in range(processes)]
        with context.Pool(processes) as pool:
            pending = pool.map_async(
                run_worker,
                [(url, settings.redis_url, prefix, share, slot_ids, threads, start_event, ready)
                 for share in shares],
            )  # fmt: skip
            ready.wait()
            began = time.perf_counter()
            start_event.set()
            timings = [item for part in pending.get() for item in part]
            seconds = time.perf_counter() - began
        figures = check(url)
    if settings.redis_url:
        cleanup = RedisState(settings.redis_url, prefix)
        for key in cleanup.client.scan_iter(f"{prefix}:*"):
            cleanup.client.delete(key)
        cleanup.close()

    latencies = [ms for _kind, ms in timings]
    sold_out = [ms for kind, ms in timings if kind == "sold_out"]
    kinds: dict[str, int] = {}
    for kind, _ms in timings:
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"turns: {kinds}; {len(timings) / seconds:.0f} turns/s; "
          f"median {statistics.median(latencies):.1f} ms", flush=True)  # fmt: skip
    result = {
        "users": args.users,
        "seats": args.seats,
        **figures,
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "sold_out_p99_ms": round(percentile(sold_out, 0.99), 1),
        "seconds": round(seconds, 1),
    }
    ordered = [
        "users", "seats", "bookings", "overbooked", "duplicate_billing_codes",
        "duplicate_nik_bookings", "p50_ms", "p99_ms", "sold_out_p99_ms", "seconds",
    ]  # fmt: skip
    print(json.dumps({key: result[key] for key in ordered}))
    return 0 if kinds.get("other", 0) == 0 and not any(k.startswith("error") for k in kinds) else 1


if __name__ == "__main__":
    sys.exit(main())
