"""The background worker: expire unpaid holds, extend calendars, record no-shows."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.channels.telegram import BotRunner, TelegramChannel
from bot.logsafe import log_failure
from bot.payments import sweep
from bot.seed import extend_calendars
from bot.service import Loket
from storage.booking import mark_no_shows
from storage.inbox import purge_applied

log = logging.getLogger(__name__)
WESTERNMOST = ZoneInfo("Asia/Jakarta")
KEEP_APPLIED = timedelta(days=7)  # applied inbox rows and processed-event keys


def run_once(loket: Loket, telegram: TelegramChannel | None = None) -> dict[str, int]:
    """Do one round of background work and say what it did."""
    expired = sweep(loket)
    with loket.sessions() as session, session.begin():
        now = loket.now(session)
        made = extend_calendars(session, now, loket.settings.booking_horizon_days)
        # A day is over in every Indonesian zone once it is over in WIB, the westernmost.
        no_shows = mark_no_shows(session, now.astimezone(WESTERNMOST).date())
        purged = purge_applied(session, now - KEEP_APPLIED)
    figures = {"expired": expired, "slots_made": made, "no_shows": no_shows, "purged": purged}
    if telegram is not None:
        figures["telegram_sent"] = telegram.flush_pending()
    return figures


def run(loket: Loket, interval_seconds: float, rounds: int | None = None) -> None:
    """Repeat `run_once` every interval (forever, or `rounds` times)."""
    telegram = None
    if loket.settings.telegram_token:
        telegram = TelegramChannel(loket, BotRunner(loket.settings))
    done = 0
    while rounds is None or done < rounds:
        try:
            log.info("worker round %s", run_once(loket, telegram))
        except Exception as error:
            log_failure(log, "worker round failed", error)
        done += 1
        if rounds is None or done < rounds:
            time.sleep(interval_seconds)
