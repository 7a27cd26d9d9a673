"""Email to applicants who gave an address: through the outbox, paced, retried, set aside.

Rows of the outbox's `email` channel (user_ref: the address) carry a subject, the text and,
for appointments, an .ics calendar file. `Mailer.flush_pending` (a worker round) sends them
over SMTP with the settings from the environment (LOKET_SMTP_*): a failed send is retried
with the Telegram sender's backoff and set aside after as many failures; an address the
server refuses for good (a 5xx answer) is set aside at once.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import icalendar
from sqlalchemy.orm import Session

from bot.core.messages import Outbound
from bot.i18n import _, use_locale
from bot.logsafe import log_failure
from bot.notices import chat_locale
from bot.settings import Settings
from storage.booking import claim_outbox, mark_sent, pending_chats, queue_message, release_claim
from storage.models import Booking

if TYPE_CHECKING:
    from bot.service import Loket
from storage.outbox import count_failure, set_aside

log = logging.getLogger(__name__)

CHANNEL = "email"
CLAIM_FOR = timedelta(minutes=2)
MAX_SEND_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)


def send_backoff(attempts: int) -> timedelta:
    """How long to wait after the n-th failed send: 30 s, doubling, at most an hour."""
    return min(FIRST_RETRY * (1 << min(max(attempts - 1, 0), 20)), LAST_RETRY)


def appointment_ics(booking: Booking) -> str:
    """Return an iCalendar file with the appointment, in the office's zone."""
    slot = booking.slot
    office = slot.office
    zone = ZoneInfo(office.timezone)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Loket//Jadwal paspor//ID")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"{booking.code}-{slot.id}@loket")
    event.add("dtstamp", booking.created_at)
    event.add("dtstart", datetime.combine(slot.day, slot.start_time, zone))
    event.add("dtend", datetime.combine(slot.day, slot.end_time, zone))
    event.add("summary", _("Jadwal paspor: {office}").format(office=office.name))
    event.add("location", office.address)
    event.add("geo", (office.latitude, office.longitude))
    event.add("description", _("Kode booking: {code}").format(code=booking.code))
    calendar.add_component(event)
    return str(calendar.to_ical().decode())


def queue_email(
    session: Session,
    booking: Booking,
    subject: Callable[[], str],
    render: Callable[[Booking], Outbound],
    now: datetime,
) -> bool:
    """Queue an email of a message with the appointment's .ics file, in the applicant's
    language, if they gave an address; return whether one was queued (caller's transaction)."""
    application = booking.application
    if not application.email:
        return False
    with use_locale(chat_locale(session, application.channel, application.account_ref)):
        payload: dict[str, object] = {"subject": subject(), "text": render(booking).text,
                   "ics": appointment_ics(booking)}  # fmt: skip
    queue_message(session, CHANNEL, application.email, payload, now)
    return True


def build_message(settings: Settings, address: str, payload: dict[str, object]) -> EmailMessage:
    """Build the MIME message of one outbox row."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = address
    message["Subject"] = str(payload.get("subject") or "Loket")
    message["Message-ID"] = make_msgid(domain="loket")
    message.set_content(str(payload.get("text") or ""))
    ics = payload.get("ics")
    if ics:
        message.add_attachment(
            str(ics).encode(), maintype="text", subtype="calendar", filename="jadwal-paspor.ics",
            params={"method": "PUBLISH"},
        )  # fmt: skip
    return message


class Mailer:
    """Send the outbox's email rows over SMTP, one connection per round, paced."""

    def __init__(
        self,
        loket: Loket,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.loket = loket
        self.settings = loket.settings
        self.clock = clock
        self.sleep = sleep
        self.last_send: float | None = None

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        assert settings.smtp_host, "LOKET_SMTP_HOST is not set"
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30)
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        return smtp

    def _pace(self) -> None:
        gap = 1.0 / self.settings.email_rate if self.settings.email_rate > 0 else 0.0
        if self.last_send is not None:
            wait = self.last_send + gap - self.clock()
            if wait > 0:
                self.sleep(wait)
        self.last_send = self.clock()

    def flush_pending(self) -> int:
        """Send every waiting email once (failures wait for their retry); return how many
        were sent."""
        with self.loket.sessions() as session:
            addresses = pending_chats(session, CHANNEL)
        if not addresses:
            return 0
        sent = 0
        smtp: smtplib.SMTP | None = None
        try:
            for address in addresses:
                with self.loket.sessions() as session, session.begin():
                    rows = claim_outbox(
                        session, CHANNEL, address, self.loket.now(session), CLAIM_FOR
                    )
                for row_id, payload in rows:
                    try:
                        if smtp is None:
                            smtp = self._connect()
                        self._pace()
                        smtp.send_message(build_message(self.settings, address, payload))
                    except Exception as error:
                        if smtp is not None and not isinstance(
                            error, smtplib.SMTPRecipientsRefused
                        ):
                            smtp.close()
                            smtp = None
                        self._failed([r for r, _p in rows if r >= row_id], error)
                        break
                    with self.loket.sessions() as session, session.begin():
                        mark_sent(session, row_id, "", self.loket.now(session))
                    sent += 1
        finally:
            if smtp is not None:
                try:
                    smtp.quit()
                except smtplib.SMTPException:
                    smtp.close()
        return sent

    def _failed(self, row_ids: list[int], error: Exception) -> None:
        """Refused for good (5xx for the address): set aside; otherwise retry with backoff."""
        row_id = row_ids[0]
        with self.loket.sessions() as session, session.begin():
            now = self.loket.now(session)
            permanent = isinstance(error, smtplib.SMTPRecipientsRefused) or (
                isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500
            )
            if permanent:
                set_aside(session, [row_id], "rejected", now)
                release_claim(session, row_ids[1:])
                log.warning("email refused for good, row set aside row=%s", row_id)
                return
            attempts = count_failure(session, row_id)
            if attempts >= MAX_SEND_ATTEMPTS:
                set_aside(session, [row_id], "gave_up", now)
                release_claim(session, row_ids[1:])
                log.warning("email failed %s times, row set aside row=%s", attempts, row_id)
                return
            release_claim(session, row_ids, now + send_backoff(attempts))
        if isinstance(error, (OSError, smtplib.SMTPException)):
            log.warning("email failed row=%s attempt=%s: %s", row_id, attempts,
                        type(error).__name__)  # fmt: skip
        else:
            log_failure(log, f"email failed row={row_id} attempt={attempts}", error)
