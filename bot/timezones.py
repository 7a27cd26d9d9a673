"""Office time: every time shown to a person is in the office's zone, with its label."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.i18n import _, format_date

ZONE_LABELS = {"Asia/Jakarta": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"}
# Dates with no office to go by (fee table in force, an applicant's age) are Jakarta dates;
# "not in the future" is judged where the day starts first, so no birth today is refused.
HOME_ZONE = "Asia/Jakarta"
EASTERNMOST = "Asia/Jayapura"


def local_date(moment: datetime, timezone: str = HOME_ZONE) -> date:
    """Return the calendar date of a moment in an Indonesian zone (never the UTC date)."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def zone_label(timezone: str) -> str:
    """Return WIB, WITA or WIT for an Indonesian zone."""
    return ZONE_LABELS.get(timezone, timezone)


def local(moment: datetime, timezone: str) -> datetime:
    """Convert an aware moment to office time."""
    return moment.astimezone(ZoneInfo(timezone))


def format_moment(moment: datetime, timezone: str) -> str:
    """Show a moment as "Minggu, 22 November 2026 pukul 12.00 WIB" in office time."""
    here = local(moment, timezone)
    return _("{date} pukul {time} {zone}").format(
        date=format_date(here.date()), time=here.strftime("%H.%M"), zone=zone_label(timezone)
    )


def format_window(start: time, end: time, timezone: str) -> str:
    """Show a time window as "08.00–10.00 WIB"."""
    return f"{start.strftime('%H.%M')}–{end.strftime('%H.%M')} {zone_label(timezone)}"


# An office's night: messages that can wait are not sent between these local times.
QUIET_FROM = time(21, 0)
QUIET_UNTIL = time(6, 0)


def quiet(moment: datetime, timezone: str) -> bool:
    """Tell whether a moment falls in the office's night (21.00 to 06.00 local)."""
    clock = moment.astimezone(ZoneInfo(timezone)).time()
    return clock >= QUIET_FROM or clock < QUIET_UNTIL


def out_of_night(moment: datetime, timezone: str) -> datetime:
    """Return the moment itself, or the next 06.00 local when it falls in the night."""
    if not quiet(moment, timezone):
        return moment
    here = moment.astimezone(ZoneInfo(timezone))
    day = here.date() + timedelta(days=1) if here.time() >= QUIET_FROM else here.date()
    return datetime.combine(day, QUIET_UNTIL, ZoneInfo(timezone))
