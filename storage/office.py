"""What the staff consoles read and change: search, seat chart, check-in, statuses, simpatik
sessions, closed days, slot templates and the walk-in queue. The caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.applications import (
    normalize_billing_code,
    normalize_booking_code,
    normalize_reg_number,
)
from storage.models import (
    OFFICE_MOVES,
    Application,
    ApplicationStatus,
    BillingCode,
    Booking,
    BookingStatus,
    Office,
    Slot,
    SlotKind,
    SlotTemplate,
    WalkIn,
)

SEARCH_LIMIT = 50


def find_applications(session: Session, query: str) -> list[Application]:
    """Find applications by NIK, registration number, booking code or billing code."""
    typed = "".join(query.split()).upper()
    if not typed:
        return []
    conditions = []
    if typed.isdigit() and len(typed) == 16:
        conditions.append(Application.nik == typed)
    billing = normalize_billing_code(query)
    if billing is not None:
        conditions.append(
            Application.id.in_(
                select(Booking.application_id)
                .join(BillingCode, BillingCode.booking_id == Booking.id)
                .where(BillingCode.code == billing)
            )
        )
    reg = normalize_reg_number(typed)
    if reg is not None:
        conditions.append(Application.reg_number == reg)
    booking_code = normalize_booking_code(typed)
    if booking_code is not None:
        conditions.append(
            Application.id.in_(select(Booking.application_id).where(Booking.code == booking_code))
        )
    if not conditions:
        return []
    return list(
        session.execute(
            select(Application)
            .where(or_(*conditions))
            .order_by(Application.id.desc())
            .limit(SEARCH_LIMIT)
        ).scalars()
    )


@dataclass(frozen=True)
class WindowSeats:
    """One window of one day, as the seat chart shows it."""

    slot: Slot
    held: int
    confirmed: int  # confirmed or checked in

    @property
    def free(self) -> int:
        """Seats nobody holds."""
        return max(0, self.slot.capacity - self.slot.taken)


def seat_chart(session: Session, office_id: int, first: date, days: int) -> list[WindowSeats]:
    """Held, confirmed and free seats per window over the coming days."""
    counts = {
        (slot_id, status): n
        for slot_id, status, n in session.execute(
            select(Booking.slot_id, Booking.status, func.count())
            .join(Slot, Slot.id == Booking.slot_id)
            .where(
                Slot.office_id == office_id,
                Slot.day >= first,
                Slot.day < first + timedelta(days=days),
            )
            .group_by(Booking.slot_id, Booking.status)
        )
    }
    slots = session.execute(
        select(Slot)
        .where(
            Slot.office_id == office_id, Slot.day >= first, Slot.day < first + timedelta(days=days)
        )
        .order_by(Slot.day, Slot.start_time, Slot.kind)
    ).scalars()
    return [
        WindowSeats(
            slot,
            counts.get((slot.id, BookingStatus.HELD), 0),
            counts.get((slot.id, BookingStatus.CONFIRMED), 0)
            + counts.get((slot.id, BookingStatus.CHECKED_IN), 0),
        )
        for slot in slots
    ]


def day_bookings(session: Session, office_id: int, day: date) -> list[Booking]:
    """The day's held, confirmed and checked-in bookings, by window."""
    return list(
        session.execute(
            select(Booking)
            .join(Slot, Slot.id == Booking.slot_id)
            .where(
                Slot.office_id == office_id,
                Slot.day == day,
                Booking.status.in_(
                    (BookingStatus.HELD, BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN)
                ),
            )
            .order_by(Slot.start_time, Booking.id)
        ).scalars()
    )


class CheckInRefusal(ValueError):
    """Why a booking cannot be checked in here and now (the code says which)."""


def check_in(session: Session, office_id: int, code: str, today: date, now: datetime) -> Booking:
    """Check a confirmed booking of this office and day in (the code may come from the QR).

    Another office's code is looked up by the same query as an unknown one and refused the same
    way: an office learns nothing about bookings elsewhere.
    """
    typed = normalize_booking_code(code)
    if typed is None:
        raise CheckInRefusal("unknown")
    booking = session.execute(
        select(Booking)
        .join(Slot, Slot.id == Booking.slot_id)
        .where(Booking.code == typed, Slot.office_id == office_id)
        .with_for_update(of=Booking)
    ).scalar_one_or_none()
    if booking is None:
        raise CheckInRefusal("unknown")
    if booking.status == BookingStatus.CHECKED_IN:
        raise CheckInRefusal("already")
    if booking.status != BookingStatus.CONFIRMED:
        raise CheckInRefusal("not_paid" if booking.status == BookingStatus.HELD else "inactive")
    if booking.slot.day != today:
        raise CheckInRefusal("other_day")
    booking.status = BookingStatus.CHECKED_IN
    booking.checked_in_at = now
    booking.application.status = ApplicationStatus.CHECKED_IN
    return booking


def office_application(session: Session, office_id: int, reg_number: str) -> Application | None:
    """An application whose latest booking is at this office (office staff see only those)."""
    application = session.execute(
        select(Application).where(Application.reg_number == reg_number)
    ).scalar_one_or_none()
    if application is None:
        return None
    latest = session.execute(
        select(Booking)
        .where(Booking.application_id == application.id)
        .order_by(Booking.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if latest is None or latest.slot.office_id != office_id:
        return None
    return application


def move_status(session: Session, application: Application, to: str) -> bool:
    """Move an application one step along its office journey; False if that move is not next."""
    if to not in OFFICE_MOVES.get(application.status, ()):
        return False
    moved = session.execute(
        update(Application)
        .where(Application.id == application.id, Application.status == application.status)
        .values(status=to)
        .execution_options(synchronize_session=False)
    )
    session.refresh(application)
    return bool(getattr(moved, "rowcount", 0) == 1)


class SessionRefusal(ValueError):
    """Why a simpatik session cannot be created as asked (the code says which)."""


def create_simpatik(
    session: Session,
    office: Office,
    day: date,
    start: time,
    end: time,
    quota: int,
    note: str,
    today: date,
    now: datetime,
) -> Slot:
    """Open a weekend paspor simpatik session, bookable at once (new and expired only)."""
    if day.weekday() < 5:
        raise SessionRefusal("weekday")
    if day <= today:
        raise SessionRefusal("past")
    if not start < end:
        raise SessionRefusal("hours")
    if not 1 <= quota <= 500:
        raise SessionRefusal("quota")
    twin = session.execute(
        select(Slot.id).where(
            Slot.office_id == office.id, Slot.day == day, Slot.start_time == start,
            Slot.kind == SlotKind.SIMPATIK,
        )
    ).first()  # fmt: skip
    if twin is not None:
        raise SessionRefusal("exists")
    slot = Slot(
        office_id=office.id,
        day=day,
        start_time=start,
        end_time=end,
        kind=SlotKind.SIMPATIK,
        capacity=quota,
        taken=0,
        release_at=now,
        closed=False,
        note=note.strip()[:200] or None,
    )
    try:
        with session.begin_nested():  # two admins saving the same session at once
            session.add(slot)
    except IntegrityError as error:
        raise SessionRefusal("exists") from error
    return slot


def close_day(session: Session, office_id: int, day: date, reason: str) -> list[Booking]:
    """Close every window of a day (an outage, a holiday); return the bookings it affects."""
    session.execute(
        update(Slot)
        .where(Slot.office_id == office_id, Slot.day == day)
        .values(closed=True, note=reason.strip()[:200])
        .execution_options(synchronize_session=False)
    )
    return [
        booking
        for booking in day_bookings(session, office_id, day)
        if booking.status in (BookingStatus.HELD, BookingStatus.CONFIRMED)
    ]


def set_template_capacity(
    session: Session, template: SlotTemplate, capacity: int, now: datetime
) -> int:
    """Change a weekly window's capacity, and that of its days not yet released.

    Released days keep their seats: applicants may already be holding them. Returns how many
    future days changed.
    """
    template.capacity = capacity
    changed = session.execute(
        update(Slot)
        .where(
            Slot.office_id == template.office_id,
            Slot.kind == template.kind,
            Slot.start_time == template.start_time,
            Slot.end_time == template.end_time,
            Slot.release_at > now,
            Slot.taken <= capacity,
        )
        .values(capacity=capacity)
        .execution_options(synchronize_session=False)
    )
    rows = getattr(changed, "rowcount", 0) or 0
    return int(rows)


def templates_of(session: Session, office_id: int) -> list[SlotTemplate]:
    """An office's weekly windows."""
    return list(
        session.execute(
            select(SlotTemplate)
            .where(SlotTemplate.office_id == office_id)
            .order_by(SlotTemplate.weekday, SlotTemplate.start_time, SlotTemplate.kind)
        ).scalars()
    )


def add_walk_in(
    session: Session, office_id: int, day: date, category: str, now: datetime, quota: int
) -> WalkIn | None:
    """Give a priority walk-in the day's next number (two desks at once get two numbers);
    None when the day's walk-in quota is used up."""
    for _attempt in range(5):
        number = (
            session.execute(
                select(func.max(WalkIn.number)).where(
                    WalkIn.office_id == office_id, WalkIn.day == day
                )
            ).scalar()
            or 0
        ) + 1
        if number > quota:
            return None
        walk_in = WalkIn(
            office_id=office_id, day=day, number=number, category=category, created_at=now
        )
        try:
            with session.begin_nested():
                session.add(walk_in)
        except IntegrityError:
            continue
        return walk_in
    raise RuntimeError("could not number the walk-in; try again")


def walk_ins(session: Session, office_id: int, day: date) -> list[WalkIn]:
    """The day's walk-ins, in number order."""
    return list(
        session.execute(
            select(WalkIn)
            .where(WalkIn.office_id == office_id, WalkIn.day == day)
            .order_by(WalkIn.number)
        ).scalars()
    )


def call_next_walk_in(session: Session, office_id: int, day: date, now: datetime) -> WalkIn | None:
    """Call the lowest waiting number."""
    waiting = session.execute(
        select(WalkIn)
        .where(WalkIn.office_id == office_id, WalkIn.day == day, WalkIn.called_at.is_(None))
        .order_by(WalkIn.number)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if waiting is not None:
        waiting.called_at = now
    return waiting
