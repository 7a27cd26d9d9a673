"""The background worker: expire unpaid holds, extend calendars, record no-shows, purge, and
once a day apply the retention of personal data."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from bot.ballot import draw_due, offer_waitlists
from bot.channels.telegram import BotRunner, TelegramChannel
from bot.logsafe import log_failure
from bot.payments import sweep
from bot.retention import run_daily
from bot.seed import extend_calendars
from bot.service import Loket
from bot.waiting_room import admit_everywhere
from storage.booking import mark_no_shows
from storage.inbox import purge_applied
from storage.outbox import delivery_figures, purge_outbox

log = logging.getLogger(__name__)
WESTERNMOST = ZoneInfo("Asia/Jakarta")
KEEP_APPLIED = timedelta(days=7)  # applied inbox rows and processed-event keys
KEEP_DELIVERED = timedelta(days=7)  # outbox rows delivered or set aside (their texts)


def run_once(loket: Loket, telegram: TelegramChannel | None = None) -> dict[str, int]:
    """Do one round of background work and say what it did."""
    expired = sweep(loket)
    with loket.sessions() as session, session.begin():
        now = loket.now(session)
        made = extend_calendars(session, now, loket.settings.booking_horizon_days)
        # A day is over in every Indonesian zone once it is over in WIB, the westernmost.
        no_shows = mark_no_shows(session, now.astimezone(WESTERNMOST).date())
        purged = purge_applied(session, now - KEEP_APPLIED)
        purged_outbox = purge_outbox(session, now - KEEP_DELIVERED)
    with loket.sessions() as session, session.begin():
        # Waiting rooms admit on time even when nobody taps; the admitted are told.
        admit_everywhere(session, loket.now(session))
    with loket.sessions() as session, session.begin():
        # Ballots whose window closed are drawn once (a conditional UPDATE picks the drawer).
        drawn = draw_due(session, loket.now(session), loket.settings, loket.billing)
    with loket.sessions() as session, session.begin():
        # Seats freed at a drawn ballot's dates go to its waitlist, in order.
        offered = offer_waitlists(session, loket.now(session), loket.settings, loket.billing)
    figures = {"expired": expired, "slots_made": made, "no_shows": no_shows, "purged": purged,
               "outbox_purged": purged_outbox, "ballots_drawn": drawn,
               "waitlist_offered": offered}  # fmt: skip
    # Personal data past its retention, once a day (counts only; see bot/retention.py).
    retention = run_daily(loket)
    if retention is not None:
        figures.update({f"retention_{name}": number for name, number in retention.items()})
    if telegram is not None:
        figures["telegram_sent"] = telegram.flush_pending()
    with loket.sessions() as session:
        figures.update(delivery_figures(session))  # counts for operators, no personal data
    return figures


def check_database(loket: Loket) -> None:
    """Raise at once if the database does not answer (rather than fail every round)."""
    with loket.sessions() as session:
        session.execute(text("SELECT 1"))


def run(
    loket: Loket,
    interval_seconds: float,
    rounds: int | None = None,
    telegram: TelegramChannel | None = None,
) -> int:
    """Repeat `run_once` every interval (forever, or `rounds` times); return how many rounds
    failed. `telegram` is the process's channel (`serve` shares its own); made if not given."""
    if telegram is None and loket.settings.telegram_token:
        telegram = TelegramChannel(loket, BotRunner(loket.settings))
    done = failed = 0
    while rounds is None or done < rounds:
        try:
            log.info("worker round %s", run_once(loket, telegram))
        except Exception as error:
            failed += 1
            log_failure(log, "worker round failed", error)
        done += 1
        if rounds is None or done < rounds:
            time.sleep(interval_seconds)
    return failed
