"""The ballot (undian): entries in a window, then a seeded draw anyone can recompute.

Commit then reveal: when an office chooses a ballot, `new_ballot` draws a secret 32-byte seed
(`secrets.token_bytes`) and stores it with its commitment, `sha256(seed).hexdigest()`, which
is published at once; the seed itself is shown only after the entry window closes.

The draw order, exactly (`draw_order`): every entry has a numeric id that carries no personal
data; its key is `HMAC-SHA256(key=seed bytes, message=ASCII decimal of the id).hexdigest()`;
entries are sorted by key ascending (then by id, which never matters in practice). Anyone
holding the revealed seed (hex) and the entry ids from `GET /ballot/<office_code>` recomputes
the order with Python's `hmac` and `hashlib` alone.

Seats go in that order: each entry gets the earliest free seat of the ballot's dates that is
released by the draw, held through `hold_seat` (so the per-number cap and one booking per NIK
hold); an entry whose hold is refused, and every entry after the seats run out, joins the
waitlist in order. A seat freed later (a hold expired, a booking cancelled) is held for the
next on the waitlist by `offer_freed`. `claim_draw` is a conditional UPDATE of `drawn_at`: of
two workers at the close exactly one draws (PostgreSQL's row lock makes the second re-read
the row; SQLite serialises writers).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.booking import HoldRefusal, hold_seat
from storage.models import (
    Application,
    Ballot,
    BallotEntry,
    BallotStatus,
    Booking,
    Office,
    ReleaseMode,
    Slot,
    SlotKind,
)


def commitment_of(seed_hex: str) -> str:
    """Return the published commitment of a seed: SHA-256 of its 32 bytes, in hex."""
    return hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()


def draw_key(seed_hex: str, entry_id: int) -> str:
    """Return an entry's draw key: HMAC-SHA256 keyed by the seed over the id's decimal."""
    message = str(entry_id).encode("ascii")
    return hmac.new(bytes.fromhex(seed_hex), message, hashlib.sha256).hexdigest()


def draw_order(seed_hex: str, entry_ids: list[int]) -> list[int]:
    """Return the entry ids in draw order (keys ascending, then ids)."""
    return sorted(entry_ids, key=lambda entry_id: (draw_key(seed_hex, entry_id), entry_id))


def new_ballot(
    session: Session,
    office: Office,
    opens_at: datetime,
    closes_at: datetime,
    first_day: date,
    last_day: date,
    now: datetime,
) -> Ballot:
    """Set a ballot for the office with a fresh secret seed and its commitment."""
    seed = secrets.token_bytes(32).hex()
    ballot = Ballot(
        office_id=office.id,
        opens_at=opens_at.astimezone(UTC),  # stored in UTC: SQLite keeps no offset
        closes_at=closes_at.astimezone(UTC),
        first_day=first_day,
        last_day=last_day,
        seed=seed,
        commitment=commitment_of(seed),
        created_at=now,
    )
    session.add(ballot)
    session.flush()
    return ballot


def current_ballot(session: Session, office_id: int) -> Ballot | None:
    """Return the office's latest ballot, if any."""
    return session.execute(
        select(Ballot).where(Ballot.office_id == office_id).order_by(Ballot.id.desc()).limit(1)
    ).scalar_one_or_none()


def aware(moment: datetime) -> datetime:
    """Return a stored moment as UTC-aware (SQLite gives it back naive)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def is_open(ballot: Ballot, now: datetime) -> bool:
    """Tell whether entries are taken now."""
    return aware(ballot.opens_at) <= now < aware(ballot.closes_at) and ballot.drawn_at is None


def entry_of(session: Session, ballot_id: int, nik: str) -> BallotEntry | None:
    """Return this NIK's entry in the ballot, if any."""
    return session.execute(
        select(BallotEntry).where(BallotEntry.ballot_id == ballot_id, BallotEntry.nik == nik)
    ).scalar_one_or_none()


def enter(session: Session, ballot: Ballot, application: Application, now: datetime) -> BallotEntry:
    """Return the NIK's one entry, making it on the first call (a double tap, another
    channel or a race returns the same entry: the unique key decides)."""
    existing = entry_of(session, ballot.id, application.nik)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            entry = BallotEntry(
                ballot_id=ballot.id,
                nik=application.nik,
                application_id=application.id,
                channel=application.channel,
                account_ref=application.account_ref,
                status=BallotStatus.ENTERED,
                entered_at=now,
            )
            session.add(entry)
            session.flush()
    except IntegrityError:
        winner = entry_of(session, ballot.id, application.nik)
        assert winner is not None
        return winner
    return entry


def due_ballots(session: Session, now: datetime) -> list[Ballot]:
    """Return the ballots whose window closed and which are not drawn yet."""
    return list(
        session.execute(
            select(Ballot)
            .join(Office, Office.id == Ballot.office_id)
            .where(
                Ballot.closes_at <= now,
                Ballot.drawn_at.is_(None),
                Office.release_mode == ReleaseMode.BALLOT,
            )
            .order_by(Ballot.id)
        ).scalars()
    )


def claim_draw(session: Session, ballot_id: int, now: datetime) -> bool:
    """Make this transaction the ballot's one drawer (False: another drew or draws it)."""
    result = session.execute(
        update(Ballot)
        .where(Ballot.id == ballot_id, Ballot.drawn_at.is_(None), Ballot.closes_at <= now)
        .values(drawn_at=now)
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount == 1


Hold = Callable[[Application, int], tuple[Booking | None, HoldRefusal | None]]


def _free_slots(session: Session, ballot: Ballot, now: datetime) -> list[Slot]:
    return list(
        session.execute(
            select(Slot)
            .where(
                Slot.office_id == ballot.office_id,
                Slot.day >= max(ballot.first_day, now.date() + timedelta(days=1)),
                Slot.day <= ballot.last_day,
                Slot.kind == SlotKind.REGULER,
                Slot.closed.is_(False),
                Slot.taken < Slot.capacity,
                Slot.release_at <= now,
            )
            .order_by(Slot.day, Slot.start_time, Slot.id)
        ).scalars()
    )


def seat_entry(
    session: Session,
    ballot: Ballot,
    entry: BallotEntry,
    now: datetime,
    hold: Hold,
) -> Booking | None:
    """Hold the earliest free seat of the ballot's dates for the entry; None when there is no
    seat left or the hold is refused for the person (their booking elsewhere, the number's cap)."""
    application = session.get(Application, entry.application_id)
    assert application is not None
    for slot in _free_slots(session, ballot, now):
        booking, refusal = hold(application, slot.id)
        if booking is not None:
            return booking
        if refusal not in (HoldRefusal.SOLD_OUT, HoldRefusal.NOT_RELEASED):
            return None  # refused for the person, not the seat
    return None


def run_draw(
    session: Session,
    ballot: Ballot,
    now: datetime,
    hold: Hold,
) -> list[BallotEntry]:
    """Draw a claimed ballot: store the order, seat the winners, number the waitlist; return
    the entries in draw order (each with its new status)."""
    entries = {
        entry.id: entry
        for entry in session.execute(
            select(BallotEntry).where(BallotEntry.ballot_id == ballot.id)
        ).scalars()
    }
    order = draw_order(ballot.seed, list(entries))
    ballot.draw_order = order
    position = 0
    seats_left = True
    for entry_id in order:
        entry = entries[entry_id]
        booking = seat_entry(session, ballot, entry, now, hold) if seats_left else None
        if booking is not None:
            entry.status = BallotStatus.WON
            entry.booking_id = booking.id
            continue
        if seats_left and not _free_slots(session, ballot, now):
            seats_left = False
        position += 1
        entry.status = BallotStatus.WAITLISTED
        entry.position = position
    session.flush()
    return [entries[entry_id] for entry_id in order]


def drawn_ballots(session: Session, now: datetime) -> list[Ballot]:
    """Return the drawn ballots of offices still in ballot mode whose dates are not over
    (their waitlists may still move); seats from tomorrow on are offered."""
    return list(
        session.execute(
            select(Ballot)
            .join(Office, Office.id == Ballot.office_id)
            .where(
                Ballot.drawn_at.is_not(None),
                Ballot.last_day > now.date(),
                Office.release_mode == ReleaseMode.BALLOT,
            )
            .order_by(Ballot.id)
        ).scalars()
    )


def offer_freed(
    session: Session,
    ballot: Ballot,
    now: datetime,
    hold: Hold,
) -> list[BallotEntry]:
    """Hold freed seats of the ballot's dates for the waitlist, in order, under the ballot's
    row lock (one offerer at a time); return the entries that got one."""
    session.execute(select(Ballot.id).where(Ballot.id == ballot.id).with_for_update())
    offered: list[BallotEntry] = []
    while _free_slots(session, ballot, now):
        entry = session.execute(
            select(BallotEntry)
            .where(
                BallotEntry.ballot_id == ballot.id,
                BallotEntry.status == BallotStatus.WAITLISTED,
            )
            .order_by(BallotEntry.position)
            .limit(1)
        ).scalar_one_or_none()
        if entry is None:
            break
        booking = seat_entry(session, ballot, entry, now, hold)
        if booking is None:
            entry.status = BallotStatus.OFFERED  # no seat it may hold: passed, not retried
            entry.position = None
            session.flush()
            continue
        entry.status = BallotStatus.OFFERED
        entry.booking_id = booking.id
        session.flush()
        offered.append(entry)
    return offered


def ballot_hold(
    session: Session,
    now: datetime,
    hold_for: Any,
    phone_of: Callable[[str, str], str | None],
    phone_limit: int,
) -> Hold:
    """Return the hold the draw uses: `hold_seat` for the ballot, with the entrant's number."""

    def hold(application: Application, slot_id: int) -> tuple[Booking | None, HoldRefusal | None]:
        result = hold_seat(
            session, application, slot_id, now, hold_for,
            phone=phone_of(application.channel, application.account_ref),
            phone_limit=phone_limit, ballot_draw=True,
        )  # fmt: skip
        return result.booking, result.refusal

    return hold


ALGORITHM = (
    "order = entry ids sorted by HMAC-SHA256(key=bytes.fromhex(seed), "
    "msg=str(entry_id).encode('ascii')).hexdigest(), ascending, ties by id; "
    "commitment = sha256(bytes.fromhex(seed)).hexdigest()"
)


def public_ballot(session: Session, office_code: str) -> dict[str, Any] | None:
    """Describe the office's latest ballot for anyone: the commitment at once; the seed, the
    entry ids in draw order and each one's outcome only after the draw. No personal data."""
    office = session.execute(select(Office).where(Office.code == office_code)).scalar_one_or_none()
    if office is None:
        return None
    ballot = current_ballot(session, office.id)
    if ballot is None:
        return None
    body: dict[str, Any] = {
        "office": office.code,
        "opens_at": aware(ballot.opens_at).isoformat(),
        "closes_at": aware(ballot.closes_at).isoformat(),
        "first_day": ballot.first_day.isoformat(),
        "last_day": ballot.last_day.isoformat(),
        "commitment": ballot.commitment,
        "algorithm": ALGORITHM,
        "drawn_at": None,
        "seed": None,
        "order": None,
        "outcomes": None,
    }
    if ballot.drawn_at is None:
        return body
    outcomes = {
        entry_id: (status, position)
        for entry_id, status, position in session.execute(
            select(BallotEntry.id, BallotEntry.status, BallotEntry.position).where(
                BallotEntry.ballot_id == ballot.id
            )
        ).all()
    }
    order = list(ballot.draw_order or [])
    body.update(
        drawn_at=aware(ballot.drawn_at).isoformat(),
        seed=ballot.seed,
        order=order,
        outcomes=[
            {
                "entry": entry_id,
                "drawn_seat": outcomes[entry_id][0] == BallotStatus.WON,
                "waitlist_position": outcomes[entry_id][1],
            }
            for entry_id in order
        ],
    )
    return body
