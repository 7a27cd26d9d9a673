"""The background worker: expire unpaid holds, send reminders, extend calendars, record
no-shows, purge, and once a day apply the retention of personal data."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from bot.ballot import draw_due, offer_waitlists
from bot.consoles import session_secret
from bot.delivery import Delivery
from bot.logsafe import log_failure
from bot.mailer import Mailer
from bot.payments import sweep
from bot.reminders import plan_round, send_due
from bot.retention import run_daily
from bot.runtime import build_channels
from bot.seed import extend_calendars
from bot.service import Loket
from bot.uploads import public_base, remind_missing
from bot.waiting_room import admit_everywhere
from storage.booking import mark_no_shows
from storage.inbox import purge_applied
from storage.outbox import delivery_figures, purge_outbox
from storage.whatsapp import purge_statuses

log = logging.getLogger(__name__)
WESTERNMOST = ZoneInfo("Asia/Jakarta")
KEEP_APPLIED = timedelta(days=7)  # applied inbox rows and processed-event keys
KEEP_DELIVERED = timedelta(days=7)  # outbox rows delivered or set aside (their texts)


def run_once(loket: Loket, channels: Sequence[Delivery] = ()) -> dict[str, int]:
    """Do one round of background work and say what it did (`channels`: the push channels
    whose leftovers to apply and deliver)."""
    expired = sweep(loket)
    with loket.sessions() as session, session.begin():
        now = loket.now(session)
        made = extend_calendars(session, now, loket.settings.booking_horizon_days)
        # A day is over in every Indonesian zone once it is over in WIB, the westernmost.
        no_shows = mark_no_shows(session, now.astimezone(WESTERNMOST).date())
        purged = purge_applied(session, now - KEEP_APPLIED)
        purged_outbox = purge_outbox(session, now - KEEP_DELIVERED)
        purge_statuses(session, now - KEEP_DELIVERED)  # WhatsApp's statuses of those rows
    with loket.sessions() as session, session.begin():
        planned = plan_round(session, loket.now(session))
    reminders = send_due(loket.sessions, loket.now, email=loket.settings.smtp_host is not None)
    with loket.sessions() as session, session.begin():
        # Waiting rooms admit on time even when nobody taps; the admitted are told.
        admit_everywhere(session, loket.now(session))
    with loket.sessions() as session, session.begin():
        # Ballots whose window closed are drawn once (a conditional UPDATE picks the drawer).
        drawn = draw_due(session, loket.now(session), loket.settings, loket.billing)
    with loket.sessions() as session, session.begin():
        # Seats freed at a drawn ballot's dates go to its waitlist, in order.
        offered = offer_waitlists(session, loket.now(session), loket.settings, loket.billing)
    with loket.sessions() as session, session.begin():
        # Callers whose documents are still missing are reminded a day before the deadline.
        reminded = remind_missing(
            session, loket.now(session), public_base(loket.settings),
            session_secret(loket.settings),
        )  # fmt: skip
    figures = {"expired": expired, "slots_made": made, "no_shows": no_shows, "purged": purged,
               "outbox_purged": purged_outbox, "ballots_drawn": drawn,
               "waitlist_offered": offered, "documents_reminded": reminded,
               "reminders_planned": planned,
               "reminders_sent": reminders.get("reminders_sent", 0),
               "reminders_moot": reminders.get("reminders_moot", 0)}  # fmt: skip
    # SMS/WhatsApp messages (one-time codes, upload links, reminders) a turn, a console or
    # this round queued and a failure or a crash left (turns kick their own).
    figures["sms_sent"] = loket.deliver_phone_messages()
    # Personal data past its retention, once a day (counts only; see bot/retention.py).
    retention = run_daily(loket)
    if retention is not None:
        figures.update({f"retention_{name}": number for name, number in retention.items()})
    for channel in channels:
        figures[f"{channel.name}_sent"] = channel.flush_pending()
    if loket.settings.smtp_host:
        figures["email_sent"] = Mailer(loket).flush_pending()
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
    channels: Sequence[Delivery] | None = None,
) -> int:
    """Repeat `run_once` every interval (forever, or `rounds` times); return how many rounds
    failed. `channels` are the process's push channels (`serve` shares its own); built from
    the settings if not given."""
    if channels is None:
        channels = build_channels(loket)
    done = failed = 0
    while rounds is None or done < rounds:
        try:
            log.info("worker round %s", run_once(loket, channels))
        except Exception as error:
            failed += 1
            log_failure(log, "worker round failed", error)
        done += 1
        if rounds is None or done < rounds:
            time.sleep(interval_seconds)
    return failed
