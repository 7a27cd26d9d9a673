"""Helpers for concurrency tests: applications made directly, and a process entry point."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.booking import HoldRefusal, hold_seat
from storage.db import make_engine, make_session_factory
from storage.models import Application, Office, Slot
from tests.transcript import make_nik

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
TEST_SLOT_NOTE = "test slot"  # removed by the per-test cleanup in conftest
_serials = itertools.count(1)


def make_applications(session: Session, count: int, prefix: str = "herd") -> list[int]:
    """Insert `count` open applications with distinct NIKs; return their ids."""
    ids = []
    batch = uuid.uuid4().hex[:4].upper()
    for number in range(count):
        serial = next(_serials)
        birth = date(1960, 1, 1) + timedelta(days=serial % 15000)
        application = Application(
            reg_number=f"LK-{batch}-{number:04d}",
            channel="test", account_ref=f"{prefix}-{number}", service="reguler",
            application_type="baru", passport_kind="biasa", validity_years=5,
            category="adult", nik=make_nik(birth, serial=serial % 9000 + 1),
            full_name=f"PEMOHON {number}", birth_place="Bandung", birth_date=birth, sex="M",
            phone="+6281234567890", address="Jl. Merdeka 10 Bandung", travel_purpose="wisata",
            fee_amount=350_000, fee_schedule="PP 45/2024", answers={},
        )  # fmt: skip
        session.add(application)
        session.flush()
        ids.append(application.id)
    return ids


def make_slot(session: Session, capacity: int, day: date = date(2026, 11, 30)) -> int:
    """Add a slot of its own for a race (kind "reguler", 16:00, already released)."""
    office = session.execute(select(Office).where(Office.code == "bandung")).scalar_one()
    slot = Slot(
        office_id=office.id, day=day, start_time=time(16, 0), end_time=time(17, 0),
        kind="reguler", capacity=capacity, taken=0, release_at=NOW - timedelta(days=30),
        closed=False, note=TEST_SLOT_NOTE,
    )  # fmt: skip
    session.add(slot)
    session.flush()
    return slot.id


def race(database_url: str, slot_id: int, application_ids: list[int]) -> dict[str, int]:
    """Try to hold one seat for each application, each in its own transaction."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    outcome = {"held": 0, "sold_out": 0, "other": 0}
    try:
        for application_id in application_ids:
            with sessions() as session, session.begin():
                application = session.get(Application, application_id)
                assert application is not None
                result = hold_seat(session, application, slot_id, NOW, timedelta(hours=2))
            if result.booking is not None:
                outcome["held"] += 1
            elif result.refusal is HoldRefusal.SOLD_OUT:
                outcome["sold_out"] += 1
            else:
                outcome["other"] += 1
    finally:
        engine.dispose()
    return outcome
