"""PNBP fees from the data table in `bot/data/fees.toml`, by the schedule in force on a day."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

FEES_FILE = Path(__file__).parent / "data" / "fees.toml"


@dataclass(frozen=True)
class FeeSchedule:
    """One regulation's fee table."""

    name: str
    effective_from: date
    passport: dict[str, int]
    surcharge: dict[str, int]


@dataclass(frozen=True)
class FeeQuote:
    """The fee for one application: its lines (key, amount) and total."""

    schedule: str
    lines: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        """Return the sum of all lines."""
        return sum(amount for _key, amount in self.lines)


@cache
def schedules(path: Path = FEES_FILE) -> tuple[FeeSchedule, ...]:
    """Load every schedule, oldest first."""
    with path.open("rb") as fees_file:
        raw: dict[str, Any] = tomllib.load(fees_file)
    loaded = [
        FeeSchedule(
            name=item["name"],
            effective_from=item["effective_from"],
            passport={key: int(value) for key, value in item["passport"].items()},
            surcharge={key: int(value) for key, value in item["surcharge"].items()},
        )
        for item in raw["schedule"]
    ]
    return tuple(sorted(loaded, key=lambda schedule: schedule.effective_from))


def schedule_on(day: date) -> FeeSchedule:
    """Return the schedule in force on `day`."""
    in_force = [s for s in schedules() if s.effective_from <= day]
    if not in_force:
        raise LookupError(f"no fee schedule in force on {day.isoformat()}")
    return in_force[-1]


def quote(
    *,
    day: date,
    passport_kind: str,
    validity_years: int,
    service: str,
    replacement_reason: str | None,
) -> FeeQuote:
    """Price an application: the passport, then same-day and lost/damaged surcharges."""
    schedule = schedule_on(day)
    lines = [("passport", schedule.passport[f"{passport_kind}_{validity_years}"])]
    if service == "percepatan":
        lines.append(("percepatan", schedule.surcharge["percepatan"]))
    if replacement_reason in ("lost", "damaged"):
        lines.append((replacement_reason, schedule.surcharge[replacement_reason]))
    return FeeQuote(schedule.name, tuple(lines))
