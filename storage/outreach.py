"""Paspor keliling and Eazy Passport: outreach sessions, group requests and their members.

An outreach session's seats are ordinary slots (kind `keliling`, linked by `outreach_id`), so
holding, billing, the seat chart, check-in and status moves are the office's own machinery.
Every function takes the caller's session.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from storage.applications import REG_ALPHABET
from storage.models import (
    Application,
    ApplicationStatus,
    Booking,
    BookingStatus,
    OutreachAccess,
    OutreachMember,
    OutreachRequest,
    OutreachSession,
    RequestStatus,
    Slot,
    SlotKind,
)

MAX_CAPACITY = 500
NEAR_KM = 50.0  # a shared location sees sessions within this distance


class OutreachRefusal(ValueError):
    """Why an outreach session or a request's answer cannot be saved (the code says which)."""


@dataclass(frozen=True)
class Window:
    """One day's window of a session, with its seats."""

    day: date
    start: time
    end: time
    capacity: int


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the great-circle distance between two points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 6371.0 * 2 * math.asin(math.sqrt(h))


# ---- sessions ------------------------------------------------------------------------------


def create_session(
    session: Session,
    *,
    office_id: int,
    venue: str,
    address: str,
    city: str,
    latitude: float,
    longitude: float,
    access: str,
    documents: str,
    windows: Sequence[Window],
    today: date,
    now: datetime,
    staff_id: int | None,
    request_id: int | None = None,
) -> OutreachSession:
    """Open an outreach session at a venue with its windows, bookable at once."""
    if not (venue.strip() and address.strip() and city.strip()):
        raise OutreachRefusal("fields")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise OutreachRefusal("coords")
    if access not in set(OutreachAccess):
        raise OutreachRefusal("access")
    if access == OutreachAccess.GROUP and request_id is None:
        raise OutreachRefusal("group")
    if not windows:
        raise OutreachRefusal("windows")
    for window in windows:
        if window.day <= today:
            raise OutreachRefusal("past")
        if not window.start < window.end:
            raise OutreachRefusal("hours")
        if not 1 <= window.capacity <= MAX_CAPACITY:
            raise OutreachRefusal("quota")
    outreach = OutreachSession(
        office_id=office_id,
        venue=venue.strip()[:120],
        address=address.strip()[:300],
        city=city.strip()[:60],
        latitude=latitude,
        longitude=longitude,
        access=access,
        documents=documents.strip()[:500] or None,
        request_id=request_id,
        created_by=staff_id,
        created_at=now,
    )
    try:
        with session.begin_nested():  # one session per office, day and starting time
            session.add(outreach)
            session.flush()
            for window in windows:
                session.add(
                    Slot(
                        office_id=office_id,
                        day=window.day,
                        start_time=window.start,
                        end_time=window.end,
                        kind=SlotKind.KELILING,
                        capacity=window.capacity,
                        taken=0,
                        release_at=now,
                        closed=False,
                        note=outreach.venue,
                        outreach_id=outreach.id,
                    )
                )
            session.flush()
    except IntegrityError as error:
        raise OutreachRefusal("exists") from error
    return outreach


def sessions_of_office(session: Session, office_id: int, today: date) -> list[OutreachSession]:
    """Return the office's sessions with a window from today on, soonest first."""
    first = (
        select(Slot.outreach_id, func.min(Slot.day).label("first"))
        .where(Slot.office_id == office_id, Slot.outreach_id.is_not(None), Slot.day >= today)
        .group_by(Slot.outreach_id)
        .subquery()
    )
    return list(
        session.execute(
            select(OutreachSession)
            .join(first, first.c.outreach_id == OutreachSession.id)
            .order_by(first.c.first, OutreachSession.id)
        ).scalars()
    )


def _bookable(now: datetime, today: date, local_time: time) -> list[ColumnElement[bool]]:
    return [
        or_(Slot.day > today, and_(Slot.day == today, Slot.start_time > local_time)),
        Slot.closed.is_(False),
        Slot.release_at <= now,
        Slot.taken < Slot.capacity,
    ]


def open_sessions(session: Session, now: datetime, today: date) -> list[OutreachSession]:
    """Return every session with free seats still to come (today's by the office's date)."""
    ids = select(Slot.outreach_id).where(
        Slot.outreach_id.is_not(None), *_bookable(now, today, time(0, 0))
    )
    return list(
        session.execute(
            select(OutreachSession).where(OutreachSession.id.in_(ids)).order_by(OutreachSession.id)
        ).scalars()
    )


def sessions_near(
    session: Session,
    now: datetime,
    today: date,
    *,
    city: str | None = None,
    here: tuple[float, float] | None = None,
) -> list[tuple[OutreachSession, float | None]]:
    """Find open sessions in a typed city (or venue name), or within NEAR_KM of a location."""
    found: list[tuple[OutreachSession, float | None]] = []
    for outreach in open_sessions(session, now, today):
        if here is not None:
            km = distance_km(here, (outreach.latitude, outreach.longitude))
            if km <= NEAR_KM:
                found.append((outreach, km))
        elif city is not None:
            typed = city.casefold()
            if typed in outreach.city.casefold() or typed in outreach.venue.casefold():
                found.append((outreach, None))
    found.sort(key=lambda pair: pair[1] if pair[1] is not None else 0.0)
    return found


def session_days(
    session: Session, outreach_id: int, now: datetime, today: date, local_time: time
) -> list[tuple[date, int]]:
    """Return a session's days with free seats, with counts."""
    rows = session.execute(
        select(Slot.day, func.sum(Slot.capacity - Slot.taken))
        .where(Slot.outreach_id == outreach_id, *_bookable(now, today, local_time))
        .group_by(Slot.day)
        .order_by(Slot.day)
    ).all()
    return [(day, int(free)) for day, free in rows]


def session_slots(
    session: Session, outreach_id: int, day: date, now: datetime, today: date, local_time: time
) -> list[Slot]:
    """Return a session's released, open windows of one day (full ones too)."""
    return list(
        session.execute(
            select(Slot)
            .where(
                Slot.outreach_id == outreach_id,
                Slot.day == day,
                Slot.closed.is_(False),
                Slot.release_at <= now,
                or_(Slot.day > today, Slot.start_time > local_time),
            )
            .order_by(Slot.start_time)
        ).scalars()
    )


def refusal_for(session: Session, outreach_id: int, application: Application) -> str | None:
    """Say why this application may not book the session ("new_only", "not_member"), if so."""
    outreach = session.get(OutreachSession, outreach_id)
    if outreach is None:
        return None
    if outreach.access == OutreachAccess.NEW_ONLY and application.application_type != "baru":
        return "new_only"
    if outreach.access == OutreachAccess.GROUP:
        assert outreach.request_id is not None
        if not is_member(
            session, outreach.request_id, application.channel, application.account_ref
        ):
            return "not_member"
    return None


# ---- Eazy Passport requests ----------------------------------------------------------------


def new_group_code() -> str:
    """Return a group code such as `GRP-7QH3K9` (said aloud, typed, or in a link)."""
    return "GRP-" + "".join(secrets.choice(REG_ALPHABET) for _ in range(6))


def normalize_group_code(text: str) -> str | None:
    """Read a typed group code (spaces, case and a missing dash forgiven)."""
    body = "".join(text.split()).upper().replace("-", "")
    body = body.removeprefix("GRP")
    if len(body) != 6 or any(ch not in REG_ALPHABET for ch in body):
        return None
    return "GRP-" + body


def group_by_code(session: Session, code: str) -> OutreachRequest | None:
    """Return the approved request (group) with this code."""
    return session.execute(
        select(OutreachRequest).where(
            OutreachRequest.group_code == code, OutreachRequest.status == RequestStatus.APPROVED
        )
    ).scalar_one_or_none()


REQUEST_KINDS = ("company", "school", "community", "mosque", "church", "other")
MIN_GROUP, MAX_GROUP = 30, 2000  # Eazy Passport serves groups of about 30-50 or more


def create_request(session: Session, *, now: datetime, **fields: object) -> OutreachRequest:
    """Record an organisation's request for a visit (fields already checked by the form)."""
    request = OutreachRequest(status=RequestStatus.NEW, created_at=now, updated_at=now, **fields)
    session.add(request)
    session.flush()
    return request


def requests_of_office(session: Session, office_id: int) -> list[OutreachRequest]:
    """Return the office's requests, open ones first, newest first."""
    waiting = OutreachRequest.status.in_((RequestStatus.NEW, RequestStatus.PROPOSED))
    return list(
        session.execute(
            select(OutreachRequest)
            .where(OutreachRequest.office_id == office_id)
            .order_by(waiting.desc(), OutreachRequest.id.desc())
        ).scalars()
    )


def approve(
    session: Session,
    request: OutreachRequest,
    window: Window,
    latitude: float,
    longitude: float,
    documents: str,
    today: date,
    now: datetime,
    staff_id: int | None,
) -> OutreachSession:
    """Approve a request: a members-only session at its venue and a group code."""
    if request.status in (RequestStatus.APPROVED, RequestStatus.DECLINED):
        raise OutreachRefusal("decided")
    outreach = create_session(
        session,
        office_id=request.office_id,
        venue=request.venue,
        address=request.address,
        city=request.city,
        latitude=latitude,
        longitude=longitude,
        access=OutreachAccess.GROUP,
        documents=documents,
        windows=[window],
        today=today,
        now=now,
        staff_id=staff_id,
        request_id=request.id,
    )
    request.status = RequestStatus.APPROVED
    request.session_id = outreach.id
    request.proposed_day = window.day
    request.group_code = new_group_code()
    request.updated_at = now
    return outreach


def propose(
    session: Session, request: OutreachRequest, day: date, reason: str, today: date, now: datetime
) -> None:
    """Propose another date for a request; the contact person answers the office."""
    if request.status in (RequestStatus.APPROVED, RequestStatus.DECLINED):
        raise OutreachRefusal("decided")
    if day <= today:
        raise OutreachRefusal("past")
    request.status = RequestStatus.PROPOSED
    request.proposed_day = day
    request.reason = reason.strip()[:300] or None
    request.updated_at = now


def accept_proposal(request: OutreachRequest, now: datetime) -> bool:
    """The contact person agrees to the office's proposed date: back to the office to approve.

    Return False when there is no proposal to accept (already answered, or none made).
    """
    if request.status != RequestStatus.PROPOSED or request.proposed_day is None:
        return False
    request.status = RequestStatus.NEW
    request.preferred_dates = f"Setuju tanggal usulan kantor: {request.proposed_day.isoformat()}"
    request.updated_at = now
    return True


def decline(session: Session, request: OutreachRequest, reason: str, now: datetime) -> None:
    """Decline a request with the reason the contact person is told."""
    if request.status in (RequestStatus.APPROVED, RequestStatus.DECLINED):
        raise OutreachRefusal("decided")
    if len(reason.strip()) < 5:
        raise OutreachRefusal("reason")
    request.status = RequestStatus.DECLINED
    request.reason = reason.strip()[:300]
    request.updated_at = now


# ---- group members -------------------------------------------------------------------------


def is_member(session: Session, request_id: int, channel: str, user_ref: str) -> bool:
    """Tell whether a chat account joined this group."""
    return session.get(OutreachMember, (request_id, channel, user_ref)) is not None


def join(
    session: Session, request: OutreachRequest, channel: str, user_ref: str, now: datetime
) -> None:
    """Record that a chat account joined the group (joining twice is one membership)."""
    if is_member(session, request.id, channel, user_ref):
        return
    try:
        with session.begin_nested():
            session.add(
                OutreachMember(
                    request_id=request.id, channel=channel, user_ref=user_ref, joined_at=now
                )
            )
    except IntegrityError:
        pass  # joined meanwhile from another door


def group_of_account(session: Session, channel: str, user_ref: str) -> OutreachRequest | None:
    """Return the latest approved group this account joined whose session has free seats."""
    return session.execute(
        select(OutreachRequest)
        .join(OutreachMember, OutreachMember.request_id == OutreachRequest.id)
        .where(
            OutreachMember.channel == channel,
            OutreachMember.user_ref == user_ref,
            OutreachRequest.status == RequestStatus.APPROVED,
        )
        .order_by(OutreachMember.joined_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def member_applications(session: Session, request: OutreachRequest) -> list[Application]:
    """Return the applications of the group's member accounts (for the office only)."""
    return list(
        session.execute(
            select(Application)
            .join(
                OutreachMember,
                and_(
                    OutreachMember.channel == Application.channel,
                    OutreachMember.user_ref == Application.account_ref,
                ),
            )
            .where(
                OutreachMember.request_id == request.id,
                Application.status != ApplicationStatus.CANCELLED,
            )
            .order_by(Application.id)
        ).scalars()
    )


@dataclass(frozen=True)
class Progress:
    """A group's progress as counts, without anyone's personal data."""

    members: int  # chat accounts that joined with the code
    registered: int  # their applications
    held: int  # seats held in the session, waiting for payment
    paid: int  # seats paid (including those checked in)
    checked_in: int


def progress(session: Session, request: OutreachRequest) -> Progress:
    """Count the group's members, registrations, paid seats and check-ins."""
    members = session.execute(
        select(func.count()).where(OutreachMember.request_id == request.id)
    ).scalar_one()
    registered = len(member_applications(session, request))
    counts: dict[str, int] = {}
    if request.session_id is not None:
        counts = {
            status: n
            for status, n in session.execute(
                select(Booking.status, func.count())
                .join(Slot, Slot.id == Booking.slot_id)
                .where(Slot.outreach_id == request.session_id)
                .group_by(Booking.status)
            ).all()
        }
    checked_in = counts.get(BookingStatus.CHECKED_IN, 0)
    return Progress(
        members=int(members),
        registered=registered,
        held=counts.get(BookingStatus.HELD, 0),
        paid=counts.get(BookingStatus.CONFIRMED, 0) + checked_in,
        checked_in=checked_in,
    )
