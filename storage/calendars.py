"""Slots made from weekday templates, with national holidays closed and release times set."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Office, Slot, SlotTemplate


@cache
def _holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("ID", years=year, language="id")


def is_holiday(day: date) -> bool:
    """Tell whether offices are closed for an Indonesian national holiday."""
    return day in _holidays(day.year)


def holiday_name(day: date) -> str | None:
    """Return the holiday's Indonesian name, if the day is one."""
    name = _holidays(day.year).get(day)
    return str(name) if name else None


def release_at(office: Office, day: date) -> datetime:
    """Return when the seats of `day` open, in UTC (the office's rule, in office time)."""
    month_index = day.year * 12 + (day.month - 1) - office.release_months_before
    year, month = divmod(month_index, 12)
    local = datetime.combine(
        date(year, month + 1, office.release_day), office.release_time, ZoneInfo(office.timezone)
    )
    return local.astimezone(UTC)


def office_today(office: Office, now: datetime) -> date:
    """Return today's date at the office."""
    return now.astimezone(ZoneInfo(office.timezone)).date()


def ensure_slots(session: Session, office: Office, start: date, days: int) -> int:
    """Create the template slots of `days` days from `start` that do not exist yet.

    Idempotent: existing slots (and what is taken of them) are left alone, so this can run
    every day from the worker and on every start.
    """
    templates = (
        session.execute(select(SlotTemplate).where(SlotTemplate.office_id == office.id))
        .scalars()
        .all()
    )
    rows = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        if is_holiday(day):
            continue
        for template in templates:
            if template.weekday != day.weekday():
                continue
            rows.append(
                {
                    "office_id": office.id,
                    "day": day,
                    "start_time": template.start_time,
                    "end_time": template.end_time,
                    "kind": template.kind,
                    "capacity": template.capacity,
                    "taken": 0,
                    "release_at": release_at(office, day),
                    "closed": False,
                }
            )
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    created = session.execute(
        insert(Slot)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["office_id", "day", "start_time", "kind"])
        .returning(Slot.id)
    ).all()
    return len(created)
