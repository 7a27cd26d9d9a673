"""Scheduled messages: reminders and notices sent once, at their time, in office time.

Kinds, and when each is due (times in the office's zone):

- `payment_reminder`: 30 minutes before an unpaid billing code expires. It cannot wait: a
  reminder after the deadline is useless, so it is the one kind sent at night as well.
- `expiry_notice`: when an unpaid hold expired (the sweeper plans it), with how to book again.
- `day_before`: the day before the appointment (H-1) at 10.00, with the documents to bring,
  the office's address and a map link, and the QR code; by email too, with an .ics file.

The documents reminder (H-3, with the personal upload link) is `bot.uploads.remind_missing`:
it needs the link's address and key, and reads what is missing afresh each round.

Nothing but `payment_reminder` is sent between 21.00 and 06.00 local time: a message due
then waits for 06.00. Each row is checked at send time and closed without a message when it
became moot (paid, cancelled, moved, the appointment passed).
Planning is a worker round that reads the bookings, so every path that holds, pays, moves or
cancels a seat (chat, consoles, ballot) is covered without a hook in each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.messages import Outbound
from bot.documents import document_label, required_documents
from bot.i18n import _, format_date
from bot.mailer import queue_email
from bot.notices import expiry_notice, notify
from bot.timezones import format_moment, format_window, out_of_night, quiet
from storage.booking import active_booking, aware
from storage.models import (
    ApplicationStatus,
    BillingCode,
    BillingStatus,
    Booking,
    BookingStatus,
    ScheduledMessage,
    Slot,
)
from storage.schedule import claim, due_ids, plan, postpone

log = logging.getLogger(__name__)

REMIND_AT = time(10, 0)  # local time of the H-1 reminder
PAYMENT_LEAD = timedelta(minutes=30)


class Kind(StrEnum):
    """What a scheduled message is."""

    PAYMENT_REMINDER = "payment_reminder"
    EXPIRY_NOTICE = "expiry_notice"
    DAY_BEFORE = "day_before"


# Kinds no longer planned; a row of one still open from before is closed unsent.
RETIRED = frozenset({"documents_missing"})  # now bot.uploads.remind_missing, with the link


URGENT = frozenset({Kind.PAYMENT_REMINDER})  # sent at night too: later is too late
SENT = "sent"


def at_local(day: date, clock: time, timezone: str) -> datetime:
    """Return a local date and time of an office as an aware moment."""
    return datetime.combine(day, clock, ZoneInfo(timezone))


def appointment_start(slot: Slot) -> datetime:
    """Return when a slot's window opens, as an aware moment."""
    return at_local(slot.day, slot.start_time, slot.office.timezone)


def map_link(latitude: float, longitude: float) -> str:
    """Return a map link to a place (opens the map app on a phone)."""
    return f"https://www.google.com/maps/search/?api=1&query={latitude:.6f},{longitude:.6f}"


# ---- wording ----------------------------------------------------------------------------


def payment_reminder(booking: Booking, billing: BillingCode) -> Outbound:
    """Remind of an unpaid billing code half an hour before it expires."""
    office = booking.slot.office
    return Outbound(
        _(
            "Pengingat: kode billing {code} untuk permohonan {number} belum dibayar dan "
            "berlaku sampai {deadline}. Jika tidak dibayar sebelum itu, kursi Anda dilepas "
            "untuk pemohon lain. Ketik /status untuk melihat status pembayaran."
        ).format(
            code=billing.code,
            number=booking.application.reg_number,
            deadline=format_moment(aware(billing.expires_at), office.timezone),
        ),
        kind="reminder",
    )


def day_before(booking: Booking) -> Outbound:
    """Remind of tomorrow's appointment: documents, address, map link, and the QR code."""
    application = booking.application
    slot = booking.slot
    office = slot.office
    documents = [
        document_label(requirement, application.answers)
        for requirement in required_documents(application.answers)
    ]
    text = "\n".join(
        [
            _("Pengingat: besok jadwal Anda di kantor imigrasi."),
            "",
            _("Kode booking: {code}").format(code=booking.code),
            _("Kantor: {office}").format(office=office.name),
            _("Alamat: {address}").format(address=office.address),
            _("Peta: {link}").format(link=map_link(office.latitude, office.longitude)),
            _("Jadwal: {date}, {window}").format(
                date=format_date(slot.day),
                window=format_window(slot.start_time, slot.end_time, office.timezone),
            ),
            _("Bawa dokumen asli: {documents}").format(documents=", ".join(documents)),
            "",
            _(
                "Tunjukkan kode QR ini (atau kode booking) saat check-in, dan datang 15 menit "
                "sebelum jam mulai."
            ),
        ]
    )
    return Outbound(text, qr=booking.code, kind="reminder")


# ---- planning ---------------------------------------------------------------------------


def plan_round(session: Session, now: datetime) -> int:
    """Plan the reminders of held and soon-due confirmed bookings; return rows now planned.

    Rows already planned are kept as they are (one per booking, kind and slot).
    """
    planned = 0
    held = session.execute(
        select(Booking, BillingCode)
        .join(BillingCode, BillingCode.booking_id == Booking.id)
        .where(Booking.status == BookingStatus.HELD, BillingCode.status == BillingStatus.UNPAID)
    ).all()
    for booking, billing in held:
        due = aware(billing.expires_at) - PAYMENT_LEAD
        if due > aware(billing.created_at):  # a hold shorter than the lead gets none
            planned += plan(session, booking.id, Kind.PAYMENT_REMINDER, booking.slot_id, due,
                            now)[1]  # fmt: skip
    soon = now.date() + timedelta(days=2)  # H-1 falls within this in every zone
    confirmed = (
        session.execute(
            select(Booking)
            .join(Slot, Slot.id == Booking.slot_id)
            .where(
                Booking.status == BookingStatus.CONFIRMED,
                Slot.day >= now.date() - timedelta(days=1),
                Slot.day <= soon,
            )
        )
        .scalars()
        .all()
    )
    for booking in confirmed:
        slot = booking.slot
        zone = slot.office.timezone
        confirmed_at = aware(booking.confirmed_at or booking.created_at)
        # Confirmed after a reminder's time: the confirmation itself said all of it.
        due = at_local(slot.day - timedelta(days=1), REMIND_AT, zone)
        if confirmed_at < due:
            planned += plan(session, booking.id, Kind.DAY_BEFORE, slot.id,
                            out_of_night(due, zone), now)[1]  # fmt: skip
    return planned


def plan_expiry_notice(session: Session, booking: Booking, now: datetime) -> None:
    """Plan the notice of an expired hold (the sweeper's transaction) and, by day, send it
    at once in the same transaction."""
    zone = booking.slot.office.timezone
    due = out_of_night(now, zone)
    row, _new = plan(session, booking.id, Kind.EXPIRY_NOTICE, booking.slot_id, due, now)
    if row.done_at is None and aware(row.due_at) <= now:
        fire(session, row, now)


# ---- sending ----------------------------------------------------------------------------


def moot_reason(
    session: Session, row: ScheduledMessage, booking: Booking, now: datetime
) -> str | None:
    """Say why a due message should no longer be sent, or None to send it."""
    if row.kind in RETIRED:
        return "retired"
    if row.kind == Kind.PAYMENT_REMINDER:
        billing = session.execute(
            select(BillingCode).where(BillingCode.booking_id == booking.id)
        ).scalar_one_or_none()
        if billing is not None and billing.status == BillingStatus.PAID:
            return "paid"
        if booking.status != BookingStatus.HELD or billing is None:
            return "not_held"
        if billing.status != BillingStatus.UNPAID:
            return "not_unpaid"
        if now >= aware(billing.expires_at):
            return "expired"
        return None
    if row.kind == Kind.EXPIRY_NOTICE:
        if booking.status != BookingStatus.EXPIRED:
            return "paid_after_all"
        if booking.application.status in (ApplicationStatus.CANCELLED, ApplicationStatus.COMPLETED):
            return "closed"
        if active_booking(session, booking.nik) is not None:
            return "booked_again"
        return None
    # Reminders of an appointment.
    if booking.status != BookingStatus.CONFIRMED:
        return "cancelled" if booking.status == BookingStatus.CANCELLED else "not_confirmed"
    if booking.slot_id != row.slot_id:
        return "rescheduled"
    if booking.slot.closed:
        return "slot_closed"
    if now >= appointment_start(booking.slot):
        return "too_late"
    return None


Render = Callable[[Booking], Outbound]


def fire(session: Session, row: ScheduledMessage, now: datetime, email: bool = False) -> str | None:
    """Send one due row now (in the caller's transaction) or close it as moot; return its
    outcome, or None when another worker closed it first or it waits for the morning.
    With `email` (SMTP configured) the H-1 reminder also goes by email with an .ics file."""
    booking = session.get(Booking, row.booking_id)
    assert booking is not None
    zone = booking.slot.office.timezone
    reason = moot_reason(session, row, booking, now)
    if reason is None and row.kind not in URGENT and quiet(now, zone):
        postpone(session, row.id, out_of_night(now, zone))  # due in the day, sent late at night
        return None
    outcome = reason or SENT
    if not claim(session, row.id, outcome, now):
        return None
    if reason is not None:
        return outcome
    render: Render
    if row.kind == Kind.PAYMENT_REMINDER:
        billing = session.execute(
            select(BillingCode).where(BillingCode.booking_id == booking.id)
        ).scalar_one()
        render = lambda b: payment_reminder(b, billing)  # noqa: E731
    elif row.kind == Kind.EXPIRY_NOTICE:
        render = expiry_notice
    else:
        render = day_before
    notify(session, booking, render, now)
    if email and row.kind == Kind.DAY_BEFORE:
        queue_email(session, booking, lambda: _("Pengingat: jadwal paspor Anda besok"), render,
                    now)  # fmt: skip
    return outcome


def send_due(
    sessions: Callable[[], Session], clock: Callable[[Session], datetime], email: bool = False
) -> dict[str, int]:
    """Send (or close as moot) every due row, each in its own transaction; count outcomes."""
    with sessions() as session:
        ids = due_ids(session, clock(session))
    counts: dict[str, int] = {}
    for row_id in ids:
        with sessions() as session, session.begin():
            now = clock(session)
            row = session.get(ScheduledMessage, row_id)
            if row is None or row.done_at is not None:
                continue
            outcome = fire(session, row, now, email)
        if outcome is not None:
            key = "reminders_sent" if outcome == SENT else "reminders_moot"
            counts[key] = counts.get(key, 0) + 1
    return counts
