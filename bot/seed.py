"""Demo offices from `bot/data/offices.toml`, and their slots for the booking horizon."""

from __future__ import annotations

import tomllib
from datetime import datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.calendars import ensure_slots, office_today
from storage.models import Office, SlotTemplate

OFFICES_FILE = Path(__file__).parent / "data" / "offices.toml"
WORKDAYS = range(5)  # Monday-Friday


def _time(text: str) -> time:
    return time.fromisoformat(text)


def load_offices(path: Path = OFFICES_FILE) -> list[dict[str, Any]]:
    """Read the office list with defaults applied."""
    with path.open("rb") as offices_file:
        raw = tomllib.load(offices_file)
    defaults = raw["defaults"]
    offices = []
    for item in raw["office"]:
        offices.append(
            {
                **{key: value for key, value in defaults.items() if key != "window"},
                "window": defaults["window"],
                **item,
            }
        )
    return offices


def seed_offices(session: Session, path: Path = OFFICES_FILE) -> int:
    """Create the offices and templates that do not exist yet; return how many were new."""
    created = 0
    for item in load_offices(path):
        office = session.execute(
            select(Office).where(Office.code == item["code"])
        ).scalar_one_or_none()
        if office is not None:
            continue
        office = Office(
            code=item["code"],
            name=item["name"],
            city=item["city"],
            province=item["province"],
            timezone=item["timezone"],
            address=item["address"],
            hours=item["hours"],
            latitude=item["latitude"],
            longitude=item["longitude"],
            release_day=item["release_day"],
            release_time=_time(item["release_time"]),
            release_months_before=item["release_months_before"],
        )
        session.add(office)
        session.flush()
        for window in item["window"]:
            for kind, capacity in window["capacity"].items():
                for weekday in WORKDAYS:
                    session.add(
                        SlotTemplate(
                            office_id=office.id,
                            weekday=weekday,
                            start_time=_time(window["start"]),
                            end_time=_time(window["end"]),
                            kind=kind,
                            capacity=capacity,
                        )
                    )
        created += 1
    session.flush()
    return created


def extend_calendars(session: Session, now: datetime, horizon_days: int) -> int:
    """Make sure every office has slots from today to the horizon; return how many were made."""
    made = 0
    for office in session.execute(select(Office)).scalars():
        today = office_today(office, now)
        made += ensure_slots(session, office, today, horizon_days)
    return made
