"""Seats, holds, billing codes and payments. Every function takes the caller's session.

Seat accounting is exact under concurrency because every change to `slots.taken` is one
conditional UPDATE (`... WHERE taken < capacity`) whose row count says whether it happened, in
the same transaction as the booking row it pays for. SQLite serialises writers; PostgreSQL at
READ COMMITTED re-checks the condition on the latest row version. The database, never Redis,
is the source of truth for seats.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Result,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import outreach, waiting_room
from storage.applications import REG_ALPHABET
from storage.models import (
    Application,
    ApplicationStatus,
    Ballot,
    BillingCode,
    BillingStatus,
    Booking,
    BookingStatus,
    Office,
    OutboxMessage,
    Payment,
    PaymentOutcome,
    ProcessedEvent,
    ReleaseMode,
    Slot,
    SlotKind,
)
from storage.phones import PHONE_SEAT_LIMIT, lock_phone, seats_held_by_phone

ACTIVE = (BookingStatus.HELD, BookingStatus.CONFIRMED)


def aware(moment: datetime) -> datetime:
    """Treat naive datetimes (SQLite hands them back) as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_NOW = select(func.now())  # built once: every unit of work of a push channel reads the clock


def db_now(session: Session) -> datetime:
    """Return the database's clock, the one every worker agrees on."""
    value = session.execute(_NOW).scalar_one()
    if isinstance(value, str):  # SQLite's CURRENT_TIMESTAMP is text
        value = datetime.fromisoformat(value)
    return aware(value)


def changed_rows(result: Result[Any]) -> int:
    """Return how many rows an UPDATE changed (its row count is the conditional's verdict)."""
    return cast("CursorResult[Any]", result).rowcount


def new_booking_code() -> str:
    """Return a booking code such as `BK-4F7Q-9XZD` (shown as text and as a QR code)."""
    body = "".join(secrets.choice(REG_ALPHABET) for _ in range(8))
    return f"BK-{body[:4]}-{body[4:]}"


# ---- holding a seat ------------------------------------------------------------------------


class HoldRefusal(StrEnum):
    """Why no seat was held."""

    SOLD_OUT = "sold_out"
    NOT_RELEASED = "not_released"
    CLOSED = "closed"
    ACTIVE_BOOKING = "active_booking"  # this NIK already holds or has a seat
    NOT_ELIGIBLE = "not_eligible"  # e.g. simpatik for a lost passport
    NOT_OPEN = "not_open"  # the application is cancelled or completed
    PAST = "past"
    NOT_ADMITTED = "not_admitted"  # waiting room: no running turn for this NIK
    WALK_IN = "walk_in"  # the office serves walk-ins only for now
    BALLOT = "ballot"  # the office hands seats out by its ballot's draw only
    PHONE_LIMIT = "phone_limit"  # this phone number already holds seats for 5 people
    NEW_ONLY = "new_only"  # an outreach session for first passports only
    NOT_MEMBER = "not_member"  # an outreach session for one Eazy Passport group only


class TurnPassed(Exception):
    """A waiting-room turn ran out between the check and the hold."""


@dataclass(frozen=True)
class HoldResult:
    """A held booking, or the reason there is none."""

    booking: Booking | None = None
    refusal: HoldRefusal | None = None


def simpatik_allowed(application: Application) -> bool:
    """Weekend simpatik service takes new and expired-replacement applications only."""
    return application.application_type == "baru" or application.replacement_reason == "expired"


def active_booking(session: Session, nik: str) -> Booking | None:
    """Return the NIK's held or confirmed booking, if any."""
    return session.execute(
        select(Booking).where(Booking.nik == nik, Booking.status.in_(ACTIVE))
    ).scalar_one_or_none()


def take_seat(session: Session, slot_id: int, now: datetime) -> bool:
    """Take one seat if one is free, released and open; True when it was taken."""
    result = session.execute(
        update(Slot)
        .where(
            Slot.id == slot_id,
            Slot.taken < Slot.capacity,
            Slot.closed.is_(False),
            Slot.release_at <= now,
        )
        .values(taken=Slot.taken + 1)
        .execution_options(synchronize_session=False)
    )
    return changed_rows(result) == 1


def give_back_seat(session: Session, slot_id: int) -> None:
    """Return one seat to the pool."""
    session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.taken > 0)
        .values(taken=Slot.taken - 1)
        .execution_options(synchronize_session=False)
    )


def _refusal_for(slot: Slot | None, now: datetime) -> HoldRefusal:
    if slot is None:
        return HoldRefusal.SOLD_OUT
    if slot.closed:
        return HoldRefusal.CLOSED
    if aware(slot.release_at) > now:
        return HoldRefusal.NOT_RELEASED
    return HoldRefusal.SOLD_OUT


def hold_seat(
    session: Session,
    application: Application,
    slot_id: int,
    now: datetime,
    hold_for: timedelta,
    phone: str | None = None,
    phone_limit: int = PHONE_SEAT_LIMIT,
    ballot_draw: bool = False,
) -> HoldResult:
    """Hold one seat for an application until `now + hold_for`, or say why not.

    `phone` is the verified number holding the seat: it may hold seats for at most
    `phone_limit` people, counted under the number's lock row in this transaction. At an
    office in ballot mode only the draw (`ballot_draw`, storage/ballot.py) holds seats.
    """
    if application.status in (ApplicationStatus.CANCELLED, ApplicationStatus.COMPLETED):
        return HoldResult(refusal=HoldRefusal.NOT_OPEN)
    if active_booking(session, application.nik) is not None:
        return HoldResult(refusal=HoldRefusal.ACTIVE_BOOKING)
    slot = session.get(Slot, slot_id)
    if slot is None:
        return HoldResult(refusal=HoldRefusal.SOLD_OUT)
    if slot.kind == SlotKind.SIMPATIK and not simpatik_allowed(application):
        return HoldResult(refusal=HoldRefusal.NOT_ELIGIBLE)
    office = session.get(Office, slot.office_id)
    assert office is not None
    # An outreach session (paspor keliling) is its own quota, away from the office: the
    # office's walk-in switch, ballot and waiting room do not apply to it; its access does.
    away = slot.outreach_id is not None
    if away:
        assert slot.outreach_id is not None
        refusal = outreach.refusal_for(session, slot.outreach_id, application)
        if refusal is not None:
            return HoldResult(refusal=HoldRefusal(refusal))
    if office.walk_in_only and not away:
        return HoldResult(refusal=HoldRefusal.WALK_IN)
    if office.release_mode == ReleaseMode.BALLOT and not ballot_draw and not away:
        return HoldResult(refusal=HoldRefusal.BALLOT)
    queued = waiting_room.gated(office) and not away
    if queued and waiting_room.admitted_now(session, office.id, application.nik, now) is None:
        return HoldResult(refusal=HoldRefusal.NOT_ADMITTED)
    if phone is not None:
        lock_phone(session, phone, now)
        if seats_held_by_phone(session, phone) >= phone_limit:
            return HoldResult(refusal=HoldRefusal.PHONE_LIMIT)
    try:
        with session.begin_nested():
            if not take_seat(session, slot_id, now):
                session.refresh(slot)
                return HoldResult(refusal=_refusal_for(slot, now))
            if queued and not waiting_room.claim_admission(
                session, office.id, application.nik, now
            ):
                raise TurnPassed  # the turn ran out meanwhile: the savepoint gives the seat back
            booking = Booking(
                code=new_booking_code(),
                application_id=application.id,
                slot_id=slot_id,
                nik=application.nik,
                status=BookingStatus.HELD,
                held_until=now + hold_for,
                created_at=now,
                phone=phone,
            )
            session.add(booking)
            session.flush()
    except TurnPassed:
        return HoldResult(refusal=HoldRefusal.NOT_ADMITTED)
    except IntegrityError:
        # Another channel of the same NIK won the race: the savepoint undid our seat too.
        return HoldResult(refusal=HoldRefusal.ACTIVE_BOOKING)
    application.status = ApplicationStatus.HELD
    return HoldResult(booking=booking)


# ---- billing -------------------------------------------------------------------------------


def billing_for(session: Session, booking_id: int) -> BillingCode | None:
    """Return the booking's billing code, if one was issued."""
    return session.execute(
        select(BillingCode).where(BillingCode.booking_id == booking_id)
    ).scalar_one_or_none()


def issue_billing(
    session: Session,
    booking: Booking,
    amount: int,
    new_code: Callable[[], str],
    now: datetime,
) -> BillingCode:
    """Return the booking's one billing code, creating it on the first call only.

    Retries, double taps and duplicate deliveries all get the stored code: the unique
    constraint on `booking_id` makes a second code impossible even in a race.
    """
    existing = billing_for(session, booking.id)
    if existing is not None:
        return existing
    for _attempt in range(5):
        billing = BillingCode(
            booking_id=booking.id,
            code=new_code(),
            amount=amount,
            status=BillingStatus.UNPAID,
            expires_at=booking.held_until,
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(billing)
                session.flush()
            return billing
        except IntegrityError:
            existing = billing_for(session, booking.id)
            if existing is not None:
                return existing
            # Otherwise a code collision (1 in 10^14): draw again.
    raise RuntimeError("could not issue a unique billing code")


# ---- payment -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentResult:
    """What a payment notice did, and whether it was a repeat of an earlier notice."""

    payment: Payment
    repeated: bool


def record_payment(
    session: Session,
    *,
    reference: str,
    code: str,
    amount: int,
    paid_at: datetime,
    now: datetime,
    notify: Callable[[Booking, PaymentOutcome], None] | None = None,
) -> PaymentResult:
    """Apply a payment notice once per reference; every notice is recorded, none is lost.

    Paid in time: the booking is confirmed (if the sweeper already released the seat, it is
    taken again when one is free). Paid after expiry, paid twice, paid with the wrong amount,
    or paid at an impossible time (before the code was issued, or in the future): recorded and
    flagged for refund or review. A reference already used by a different notice raises
    `ConflictingNotice` and records nothing.
    """
    earlier = session.execute(
        select(Payment).where(Payment.reference == reference)
    ).scalar_one_or_none()
    if earlier is not None:
        if not same_notice(earlier, code=code, amount=amount, paid_at=paid_at):
            raise ConflictingNotice(reference)
        return PaymentResult(earlier, repeated=True)

    billing = session.execute(
        select(BillingCode).where(BillingCode.code == code).with_for_update()
    ).scalar_one_or_none()
    payment = Payment(
        reference=reference,
        billing_code=code,
        amount=amount,
        paid_at=paid_at,
        received_at=now,
        outcome=PaymentOutcome.UNKNOWN_CODE,
        needs_refund=True,
        booking_id=billing.booking_id if billing else None,
    )
    if billing is not None:
        booking = session.get(Booking, billing.booking_id, with_for_update=True)
        assert booking is not None
        outcome = _apply_payment(session, billing, booking, amount, paid_at, now)
        payment.outcome = outcome
        payment.needs_refund = outcome != PaymentOutcome.CONFIRMED
        if notify is not None:
            notify(booking, outcome)
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
    except IntegrityError:
        # The same notice arrived twice at once; the other transaction recorded it.
        raise DuplicateNotice(reference) from None
    return PaymentResult(payment, repeated=False)


class DuplicateNotice(Exception):
    """A concurrent twin of this payment notice is being recorded; retry to read its result."""


class ConflictingNotice(Exception):
    """The payment reference was already used by a notice that says something else."""


# How far a bank's clock may be off ours before a payment time is called impossible.
PAID_AT_SKEW = timedelta(minutes=5)


def same_notice(payment: Payment, *, code: str, amount: int, paid_at: datetime) -> bool:
    """Tell whether a notice says what the recorded payment says (a true repeat)."""
    return (
        payment.billing_code == code
        and payment.amount == amount
        and aware(payment.paid_at) == aware(paid_at)
    )


def _apply_payment(
    session: Session,
    billing: BillingCode,
    booking: Booking,
    amount: int,
    paid_at: datetime,
    now: datetime,
) -> PaymentOutcome:
    paid = aware(paid_at)
    if paid < aware(billing.created_at) - PAID_AT_SKEW or paid > now + PAID_AT_SKEW:
        return PaymentOutcome.SUSPECT_TIME
    if billing.status == BillingStatus.PAID:
        return PaymentOutcome.ALREADY_PAID
    if amount != billing.amount:
        return PaymentOutcome.AMOUNT_MISMATCH
    if aware(paid_at) > aware(billing.expires_at) or billing.status == BillingStatus.CANCELLED:
        return PaymentOutcome.LATE_REFUND
    if booking.status == BookingStatus.EXPIRED:
        # Paid in time but the notice came after the sweep: take the seat again if we can.
        if active_booking(session, booking.nik) is not None or not take_seat(
            session, booking.slot_id, now
        ):
            billing.status = BillingStatus.EXPIRED
            return PaymentOutcome.LATE_REFUND
    elif booking.status != BookingStatus.HELD:
        return PaymentOutcome.LATE_REFUND
    billing.status = BillingStatus.PAID
    billing.paid_at = paid_at
    booking.status = BookingStatus.CONFIRMED
    booking.confirmed_at = now
    booking.application.status = ApplicationStatus.CONFIRMED
    return PaymentOutcome.CONFIRMED


# ---- expiry, cancellation, reschedule, no-show ---------------------------------------------


def release_expired(
    session: Session, now: datetime, on_expired: Callable[[Booking], None] | None = None
) -> int:
    """Expire unpaid holds whose time is up and give their seats back; return how many.

    Each booking changes state by a conditional UPDATE (`WHERE status = 'held'`), so two
    sweepers, or a sweeper racing a payment, never return one seat twice.
    """
    candidates = (
        session.execute(
            select(Booking.id).where(
                Booking.status == BookingStatus.HELD, Booking.held_until <= now
            )
        )
        .scalars()
        .all()
    )
    released = 0
    for booking_id in candidates:
        changed = session.execute(
            update(Booking)
            .where(Booking.id == booking_id, Booking.status == BookingStatus.HELD)
            .values(status=BookingStatus.EXPIRED)
            .execution_options(synchronize_session=False)
        )
        if changed_rows(changed) != 1:
            continue
        booking = session.get(Booking, booking_id, populate_existing=True)
        assert booking is not None
        give_back_seat(session, booking.slot_id)
        session.execute(
            update(BillingCode)
            .where(BillingCode.booking_id == booking_id, BillingCode.status == BillingStatus.UNPAID)
            .values(status=BillingStatus.EXPIRED)
            .execution_options(synchronize_session=False)
        )
        if booking.application.status == ApplicationStatus.HELD:
            booking.application.status = ApplicationStatus.REGISTERED
        if on_expired is not None:
            on_expired(booking)
        released += 1
    return released


def cancel_booking(session: Session, booking: Booking, reason: str) -> None:
    """Cancel a held or confirmed booking and give its seat back (no refund: PNBP rule)."""
    changed = session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status.in_(ACTIVE))
        .values(status=BookingStatus.CANCELLED, cancel_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if changed_rows(changed) == 1:
        give_back_seat(session, booking.slot_id)
        session.execute(
            update(BillingCode)
            .where(BillingCode.booking_id == booking.id, BillingCode.status == BillingStatus.UNPAID)
            .values(status=BillingStatus.CANCELLED)
            .execution_options(synchronize_session=False)
        )
    session.refresh(booking)


RESCHEDULES_ALLOWED = 1  # a paid booking may be moved once (M-Paspor's rule)


class RescheduleRefusal(StrEnum):
    """Why a reschedule was refused."""

    NOT_PAID = "not_paid"
    ALREADY_RESCHEDULED = "already_rescheduled"
    TOO_LATE = "too_late"  # later than H-1
    SOLD_OUT = "sold_out"
    SAME_SLOT = "same_slot"
    NOT_ELIGIBLE = "not_eligible"
    NOT_ADMITTED = "not_admitted"  # waiting room: no running turn for this NIK
    BALLOT = "ballot"  # the date's seats are the ballot's: only its draw and waitlist hold them


def reschedule_refusal(booking: Booking, today: date) -> RescheduleRefusal | None:
    """Check the rules that do not depend on the new slot: paid, once, no later than H-1.

    A booking whose day the office closed (an outage, a holiday) may always be moved.
    """
    if booking.status != BookingStatus.CONFIRMED:
        return RescheduleRefusal.NOT_PAID
    if booking.slot.closed:
        return None
    if booking.reschedules >= RESCHEDULES_ALLOWED:
        return RescheduleRefusal.ALREADY_RESCHEDULED
    if today > booking.slot.day - timedelta(days=1):
        return RescheduleRefusal.TOO_LATE
    return None


def reschedule(
    session: Session, booking: Booking, new_slot_id: int, today: date, now: datetime
) -> RescheduleRefusal | None:
    """Move a paid booking to another slot once; None when it moved."""
    refusal = reschedule_refusal(booking, today)
    if refusal is not None:
        return refusal
    if new_slot_id == booking.slot_id:
        return RescheduleRefusal.SAME_SLOT
    new_slot = session.get(Slot, new_slot_id)
    if new_slot is None or new_slot.closed or aware(new_slot.release_at) > now:
        return RescheduleRefusal.SOLD_OUT
    if new_slot.kind == SlotKind.SIMPATIK and not simpatik_allowed(booking.application):
        return RescheduleRefusal.NOT_ELIGIBLE
    office = session.get(Office, new_slot.office_id)
    assert office is not None
    ballot_office = office.release_mode == ReleaseMode.BALLOT
    if ballot_office and ballot_covers(session, office.id, new_slot.day):
        return RescheduleRefusal.BALLOT
    # A new date at a waiting-room office is a seat like a new booking's: it needs a running
    # turn, claimed in the move's savepoint (so a reschedule cannot jump the queue).
    queued = waiting_room.gated(office)
    if queued and waiting_room.admitted_now(session, office.id, booking.nik, now) is None:
        return RescheduleRefusal.NOT_ADMITTED
    try:
        with session.begin_nested():
            refusal = _move(session, booking, new_slot_id, now)
            if (
                refusal is None
                and queued
                and not waiting_room.claim_admission(session, office.id, booking.nik, now)
            ):
                raise TurnPassed  # the turn ran out meanwhile: the savepoint undoes the move
    except TurnPassed:
        session.refresh(booking)
        return RescheduleRefusal.NOT_ADMITTED
    session.refresh(booking)
    return refusal


def ballot_covers(session: Session, office_id: int, day: date) -> bool:
    """Tell whether one of the office's ballots hands out the seats of this date."""
    return (
        session.execute(
            select(Ballot.id)
            .where(Ballot.office_id == office_id, Ballot.first_day <= day, Ballot.last_day >= day)
            .limit(1)
        ).first()
        is not None
    )


def _move(
    session: Session, booking: Booking, new_slot_id: int, now: datetime
) -> RescheduleRefusal | None:
    """Take the new seat, give the old one back and count the one reschedule."""
    moved = session.execute(
        update(Booking)
        .where(
            Booking.id == booking.id,
            Booking.reschedules == booking.reschedules,  # nobody moved it meanwhile
            Booking.status == "confirmed",
        )
        .values(reschedules=Booking.reschedules + 1)
        .execution_options(synchronize_session=False)
    )
    if changed_rows(moved) != 1:
        return RescheduleRefusal.ALREADY_RESCHEDULED
    if not take_seat(session, new_slot_id, now):
        session.execute(
            update(Booking)
            .where(Booking.id == booking.id)
            .values(reschedules=Booking.reschedules - 1)
            .execution_options(synchronize_session=False)
        )
        return RescheduleRefusal.SOLD_OUT
    give_back_seat(session, booking.slot_id)
    session.execute(
        update(Booking)
        .where(Booking.id == booking.id)
        .values(slot_id=new_slot_id)
        .execution_options(synchronize_session=False)
    )
    return None


def mark_no_shows(session: Session, before: date) -> int:
    """Record confirmed bookings of days before `before` that never checked in."""
    past_slots = select(Slot.id).where(Slot.day < before)
    result = session.execute(
        update(Booking)
        .where(Booking.status == BookingStatus.CONFIRMED, Booking.slot_id.in_(past_slots))
        .values(status=BookingStatus.NO_SHOW)
        .execution_options(synchronize_session=False)
    )
    return changed_rows(result)


# ---- queries for the conversation ----------------------------------------------------------


@dataclass(frozen=True)
class DayFree:
    """Free seats on one day."""

    day: date
    free: int
    simpatik: bool


def not_started(today: date, local_time: time) -> Any:
    """Match slots after today, or later today than the office's current time."""
    return or_(Slot.day > today, and_(Slot.day == today, Slot.start_time > local_time))


def open_days(
    session: Session,
    office_id: int,
    kinds: Sequence[str],
    now: datetime,
    today: date,
    limit: int | None = None,
    local_time: time = time(0, 0),
) -> list[DayFree]:
    """Return the days with released, free seats of these kinds, with counts (all of them up
    to the calendar's end unless `limit` is given).

    Windows of today that already started (office time `local_time`) are not offered.
    """
    free = func.sum(Slot.capacity - Slot.taken)
    simpatik = func.max(case((Slot.kind == SlotKind.SIMPATIK, 1), else_=0))
    rows = session.execute(
        select(Slot.day, free, simpatik)
        .where(
            Slot.office_id == office_id,
            Slot.kind.in_(kinds),
            not_started(today, local_time),
            Slot.closed.is_(False),
            Slot.release_at <= now,
            Slot.taken < Slot.capacity,
        )
        .group_by(Slot.day)
        .order_by(Slot.day)
        .limit(limit)
    ).all()
    return [DayFree(day, int(seats), bool(weekend)) for day, seats, weekend in rows]


def slots_of_day(session: Session, office_id: int, day: date) -> list[Slot]:
    """Return every slot of an office on one day, whatever its kind or state (to explain why
    a typed date cannot be booked)."""
    return list(
        session.execute(
            select(Slot)
            .where(Slot.office_id == office_id, Slot.day == day)
            .order_by(Slot.start_time, Slot.kind)
        ).scalars()
    )


def next_release(
    session: Session, office_id: int, kinds: Sequence[str], now: datetime, today: date
) -> datetime | None:
    """Return when the next unreleased seats of these kinds open, if any are planned."""
    value = session.execute(
        select(func.min(Slot.release_at)).where(
            Slot.office_id == office_id,
            Slot.kind.in_(kinds),
            Slot.day >= today,
            Slot.closed.is_(False),
            Slot.release_at > now,
        )
    ).scalar_one_or_none()
    return aware(value) if value is not None else None


def slots_on(
    session: Session,
    office_id: int,
    day: date,
    kinds: Sequence[str],
    now: datetime,
    today: date,
    local_time: time,
) -> list[Slot]:
    """Return the released, open, not yet started slots of these kinds on a day."""
    return list(
        session.execute(
            select(Slot)
            .where(
                Slot.office_id == office_id,
                Slot.day == day,
                not_started(today, local_time),
                Slot.kind.in_(kinds),
                Slot.closed.is_(False),
                Slot.release_at <= now,
            )
            .order_by(Slot.start_time, Slot.kind)
        ).scalars()
    )


def bookings_for_application(session: Session, application_id: int) -> Sequence[Booking]:
    """Return an application's bookings, newest first."""
    return (
        session.execute(
            select(Booking)
            .where(Booking.application_id == application_id)
            .order_by(Booking.id.desc())
        )
        .scalars()
        .all()
    )


def queue_message(
    session: Session, channel: str, user_ref: str, payload: dict[str, object], now: datetime
) -> None:
    """Write a message to the outbox in the caller's transaction."""
    session.execute(
        _queue(), {"to_channel": channel, "to_user": user_ref, "body": payload, "now": now}
    )


# The delivery path's statements are built once, with bound parameters: building a statement
# costs more CPU than running it (bench/channel_cpu.py), and these run several times a turn.
# They are Core statements on the table (no ORM objects are loaded or synchronised).
_OUTBOX = cast(Table, OutboxMessage.__table__)


@functools.cache
def _queue() -> Any:
    return insert(_OUTBOX).values(
        channel=bindparam("to_channel"),
        user_ref=bindparam("to_user"),
        payload=bindparam("body", type_=_OUTBOX.c.payload.type),
        created_at=bindparam("now", type_=_OUTBOX.c.created_at.type),
    )


def take_outbox(
    session: Session, channel: str, user_ref: str, now: datetime
) -> list[dict[str, object]]:
    """Mark one chat's pending outbox messages sent and return their payloads, oldest first."""
    rows = (
        session.execute(
            select(OutboxMessage)
            .where(
                and_(
                    OutboxMessage.channel == channel,
                    OutboxMessage.user_ref == user_ref,
                    OutboxMessage.sent_at.is_(None),
                )
            )
            .order_by(OutboxMessage.id)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    for row in rows:
        row.sent_at = now
    return [dict(row.payload) for row in rows]


def record_event(session: Session, key: str) -> bool:
    """Record an inbound event's key; False when it was already processed (a repeat)."""
    statement = _record_event(session.get_bind().dialect.name)
    return session.execute(statement, {"event_key": key}).first() is not None


@functools.cache
def _record_event(dialect: str) -> Any:
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(Table, ProcessedEvent.__table__)
    return (
        insert_for(table)
        .values(key=bindparam("event_key"), processed_at=func.now())
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(table.c.key)
    )


def event_seen(session: Session, key: str) -> bool:
    """Tell whether an inbound event was already processed."""
    return session.get(ProcessedEvent, key) is not None


def claim_outbox(
    session: Session, channel: str, user_ref: str, now: datetime, hold: timedelta
) -> list[tuple[int, dict[str, Any]]]:
    """Claim one chat's unsent rows for `hold` in one statement; return them oldest first.

    A row whose claim ran out (its sender died) can be claimed again. The claim is one
    conditional UPDATE, so two senders never both win a row; and while another sender holds
    a claim on this chat nothing is claimed: that sender sends in order, then looks again.
    A claim left after a failed send is the time of the next try (backoff); set-aside rows
    are never claimed.
    """
    claimed = session.execute(
        _claim(),
        {"of_channel": channel, "of_user": user_ref, "now": now, "until": now + hold},
    ).all()
    return sorted((row_id, dict(payload)) for row_id, payload in claimed)


@functools.cache
def _claim() -> Any:
    c = _OUTBOX.c
    now = bindparam("now", type_=c.claimed_until.type)
    mine = (c.channel == bindparam("of_channel")) & (c.user_ref == bindparam("of_user"))
    unsent = c.sent_at.is_(None) & c.failed_at.is_(None)
    held_by_other = select(c.id).where(mine, unsent, c.claimed_until > now).exists()
    return (
        update(_OUTBOX)
        .where(mine, unsent, or_(c.claimed_until.is_(None), c.claimed_until <= now),
               ~held_by_other)
        .values(claimed_until=bindparam("until", type_=c.claimed_until.type))
        .returning(c.id, c.payload)
    )  # fmt: skip


def mark_sent(session: Session, row_id: int, message_id: str, now: datetime) -> None:
    """Record that a row was delivered, with the channel's message id."""
    session.execute(_mark_sent(), {"row_id": row_id, "sent_as": message_id, "now": now})


@functools.cache
def _mark_sent() -> Any:
    c = _OUTBOX.c
    return (
        update(_OUTBOX)
        .where(c.id == bindparam("row_id"))
        .values(sent_at=bindparam("now", type_=c.sent_at.type),
                message_id=bindparam("sent_as"), claimed_until=None)
    )  # fmt: skip


def release_claim(
    session: Session, row_ids: Sequence[int], not_before: datetime | None = None
) -> None:
    """Give rows back after a failed send; nobody retries them before `not_before` (if set)."""
    if row_ids:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(row_ids), OutboxMessage.sent_at.is_(None))
            .values(claimed_until=not_before)
            .execution_options(synchronize_session=False)
        )


def pending_chats(session: Session, channel: str) -> list[str]:
    """Return the chats of one channel with unsent outbox rows."""
    return list(
        session.execute(
            select(OutboxMessage.user_ref)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.failed_at.is_(None),
            )
            .distinct()
        ).scalars()
    )
