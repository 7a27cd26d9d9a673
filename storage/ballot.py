"""The ballot (undian): entries in a window, then a seeded draw anyone can recompute.

Commit then reveal: when an office chooses a ballot, `new_ballot` draws a secret 32-byte seed
(`secrets.token_bytes`) and stores it with its commitment, `sha256(seed).hexdigest()`, which
is published at once; the seed itself is shown only after the entry window closes.

The draw order, exactly (`draw_order`): every entry has a numeric id that carries no personal
data; its key is `HMAC-SHA256(key=seed bytes, message=ASCII decimal of the id).hexdigest()`;
entries are sorted by key ascending (then by id, which never matters in practice). Anyone
holding the revealed seed (hex) and the entry ids from `GET /ballot/<office_code>` recomputes
the order with Python's `hmac` and `hashlib` alone.

Seats go in that order: each entry gets the earliest free seat among the dates it chose
(`days`; every date of the ballot when it chose all), held through `hold_seat` (so the
per-number cap and one booking per NIK hold); an entry whose hold is refused, or whose dates
have no seat left, joins the waitlist in order. A seat freed later (a hold expired, a booking
cancelled) is held by `offer_freed` for the first on the waitlist who chose its date; one
whose turn comes but who may not hold a seat (a booking elsewhere, the number's cap, the
application closed) is passed over with the reason (`passed_reason`), to be told, and the
next in order is tried. `claim_draw` is a conditional UPDATE of `drawn_at`: of two workers at
the close exactly one draws (PostgreSQL's row lock makes the second re-read the row; SQLite
serialises writers).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import JSON, CursorResult, Engine, and_, bindparam, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.booking import HoldRefusal, hold_seat
from storage.inbox import ACCEPT_MADE, Pending, store
from storage.models import (
    Application,
    Ballot,
    BallotEntry,
    BallotStatus,
    Booking,
    Office,
    PhoneVerification,
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


def ballot_days(session: Session, ballot: Ballot) -> list[date]:
    """Return the dates of the ballot that have seats to draw (open reguler windows)."""
    return list(
        session.execute(
            select(Slot.day)
            .where(
                Slot.office_id == ballot.office_id,
                Slot.day >= ballot.first_day,
                Slot.day <= ballot.last_day,
                Slot.kind == SlotKind.REGULER,
                Slot.closed.is_(False),
            )
            .distinct()
            .order_by(Slot.day)
        ).scalars()
    )


def enter(
    session: Session,
    ballot: Ballot,
    application: Application,
    now: datetime,
    days: list[date] | None = None,
) -> BallotEntry:
    """Return the NIK's one entry, making it on the first call with the dates it chose (None:
    every date); a double tap, another channel or a race returns the same entry: the unique
    key decides."""
    existing = entry_of(session, ballot.id, application.nik)
    if existing is not None and existing.status == BallotStatus.VOID:
        # Recorded at accept time, then found ineligible; eligible now: the entry stands again.
        existing.status = BallotStatus.ENTERED
        existing.entered_at = now
        existing.days = sorted(day.isoformat() for day in days) if days else None
        session.flush()
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
                days=sorted(day.isoformat() for day in days) if days else None,
            )
            session.add(entry)
            session.flush()
    except IntegrityError:
        winner = entry_of(session, ballot.id, application.nik)
        assert winner is not None
        return winner
    return entry


@dataclass(frozen=True)
class Entrant:
    """What the release gate needs of an application to enter it at accept time."""

    nik: str
    channel: str
    account_ref: str
    phone: str | None  # the account's verified number, if it has one


@functools.cache
def _entrant_statement() -> Any:
    """The application and its account's verified number in one query (built once: every
    ballot tap at release runs it)."""
    return (
        select(Application.nik, Application.channel, Application.account_ref,
               PhoneVerification.phone)
        .outerjoin(PhoneVerification, and_(
            PhoneVerification.channel == Application.channel,
            PhoneVerification.user_ref == Application.account_ref))
        .where(Application.id == bindparam("application_id"))
    )  # fmt: skip


def entrant(engine: Engine, application_id: int) -> Entrant | None:
    """Read an application's NIK, account and verified number (one round trip; give it an
    autocommit engine on PostgreSQL: no BEGIN or ROLLBACK)."""
    with engine.connect() as connection:
        row = connection.execute(_entrant_statement(), {"application_id": application_id}).first()
    return None if row is None else Entrant(row.nik, row.channel, row.account_ref, row.phone)


# One round trip on PostgreSQL: the NIK's entry, new or the one it has, and with a new one the
# tap's update in the inbox (the entry's turn), in one statement (atomic: the engine
# autocommits). An entry a concurrent tap is making is waited for by ON CONFLICT but not seen
# by this statement's snapshot: no row then, and the caller reads it.
_ENTER_SQL = text(
    """
    WITH made AS (
        INSERT INTO ballot_entries (ballot_id, nik, application_id, channel, account_ref,
                                    status, entered_at)
        VALUES (:ballot, :nik, :application, :channel, :ref, 'entered', :now)
        ON CONFLICT DO NOTHING
        RETURNING id, status
    ), """
    + ACCEPT_MADE
    + """
    SELECT id, status, true AS new FROM made
    UNION ALL
    SELECT id, status, false AS new FROM ballot_entries
    WHERE ballot_id = :ballot AND nik = :nik AND NOT EXISTS (SELECT 1 FROM made)
    """
).bindparams(bindparam("turn_payload", type_=JSON))


def enter_at_accept(
    engine: Engine,
    ballot_id: int,
    application_id: int,
    person: Entrant,
    now: datetime,
    turn: Pending,
) -> tuple[int | None, bool]:
    """Record the NIK's entry (every date: a one-date ballot) when its tap is accepted and,
    with a new entry, accept the tap's update (`turn`) with it, so neither is stored without
    the other; return the entry's id (None: voided before) and whether it is new.

    Give it an autocommit engine on PostgreSQL (one statement, committed when it returns)."""
    values = {
        "ballot": ballot_id, "nik": person.nik, "application": application_id,
        "channel": person.channel, "ref": person.account_ref, "now": now,
    }  # fmt: skip
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            row = connection.execute(_ENTER_SQL, {**values, **turn.turn_values()}).first()
            if row is None:  # made by a concurrent tap: committed by now
                row = connection.execute(_entry_row(), values).first()
    else:
        with engine.begin() as connection:
            made = connection.execute(
                sqlite.insert(BallotEntry)
                .values(ballot_id=ballot_id, nik=person.nik, application_id=application_id,
                        channel=person.channel, account_ref=person.account_ref,
                        status=BallotStatus.ENTERED, entered_at=now)
                .on_conflict_do_nothing()
                .returning(BallotEntry.id)
            ).scalar_one_or_none()  # fmt: skip
            if made is not None:
                store(connection, turn)
                return int(made), True
            row = connection.execute(_entry_row(), values).first()
    if row is None or row.status == BallotStatus.VOID:
        return None, False
    return int(row.id), bool(getattr(row, "new", False))


@functools.cache
def _entry_row() -> Any:
    return select(BallotEntry.id, BallotEntry.status).where(
        BallotEntry.ballot_id == bindparam("ballot"), BallotEntry.nik == bindparam("nik")
    )


def void_entry(session: Session, ballot: Ballot, nik: str) -> bool:
    """Void the NIK's undrawn entry (recorded when its tap was accepted, found ineligible when
    its turn ran): the draw leaves it out. True when there was one to void."""
    result = session.execute(
        update(BallotEntry)
        .where(
            BallotEntry.ballot_id == ballot.id,
            BallotEntry.nik == nik,
            BallotEntry.status == BallotStatus.ENTERED,
        )
        .values(status=BallotStatus.VOID)
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount == 1 and ballot.drawn_at is None


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


PERSONAL = (
    HoldRefusal.ACTIVE_BOOKING,
    HoldRefusal.PHONE_LIMIT,
    HoldRefusal.NOT_OPEN,
    HoldRefusal.NOT_ELIGIBLE,
)  # refusals that are about the person, not the seat: trying another seat would not help


def _free_slots(
    session: Session, ballot: Ballot, now: datetime, days: list[str] | None = None
) -> list[Slot]:
    """Return the free, released reguler seats of the ballot's dates from tomorrow on (of
    `days` only, when given), earliest first."""
    query = select(Slot).where(
        Slot.office_id == ballot.office_id,
        Slot.day >= max(ballot.first_day, now.date() + timedelta(days=1)),
        Slot.day <= ballot.last_day,
        Slot.kind == SlotKind.REGULER,
        Slot.closed.is_(False),
        Slot.taken < Slot.capacity,
        Slot.release_at <= now,
    )
    if days:
        query = query.where(Slot.day.in_([date.fromisoformat(day) for day in days]))
    return list(session.execute(query.order_by(Slot.day, Slot.start_time, Slot.id)).scalars())


def seat_entry(
    session: Session,
    ballot: Ballot,
    entry: BallotEntry,
    now: datetime,
    hold: Hold,
) -> tuple[Booking | None, HoldRefusal | None]:
    """Hold the earliest free seat of the entry's chosen dates for it; else say why not: no
    seat left on those dates (SOLD_OUT), or a refusal about the person (`PERSONAL`)."""
    application = session.get(Application, entry.application_id)
    assert application is not None
    for slot in _free_slots(session, ballot, now, entry.days):
        booking, refusal = hold(application, slot.id)
        if booking is not None:
            return booking, None
        if refusal not in (HoldRefusal.SOLD_OUT, HoldRefusal.NOT_RELEASED):
            return None, refusal  # refused for the person (or the office), not the seat
    return None, HoldRefusal.SOLD_OUT


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
            select(BallotEntry).where(
                BallotEntry.ballot_id == ballot.id, BallotEntry.status != BallotStatus.VOID
            )
        ).scalars()
    }
    order = draw_order(ballot.seed, list(entries))
    ballot.draw_order = order
    position = 0
    seats_left = True
    for entry_id in order:
        entry = entries[entry_id]
        booking = seat_entry(session, ballot, entry, now, hold)[0] if seats_left else None
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
    """Hold freed seats of the ballot's dates for the waitlist, in order, each for the first
    waiting entrant who chose its date, under the ballot's row lock (one offerer at a time);
    an entrant whose turn comes but who may not hold a seat is passed over with the reason.
    Return the entries that got a seat (OFFERED) or were passed over (PASSED), in order."""
    session.execute(select(Ballot.id).where(Ballot.id == ballot.id).with_for_update())
    changed: list[BallotEntry] = []
    if not _free_slots(session, ballot, now):
        return changed
    waiting = list(
        session.execute(
            select(BallotEntry)
            .where(
                BallotEntry.ballot_id == ballot.id,
                BallotEntry.status == BallotStatus.WAITLISTED,
            )
            .order_by(BallotEntry.position)
        ).scalars()
    )
    for entry in waiting:
        if not _free_slots(session, ballot, now):
            break
        booking, refusal = seat_entry(session, ballot, entry, now, hold)
        if booking is not None:
            entry.status = BallotStatus.OFFERED
            entry.booking_id = booking.id
        elif refusal in PERSONAL:
            entry.status = BallotStatus.PASSED  # told why; the next in order is tried
            entry.passed_reason = refusal.value if refusal is not None else None
            entry.position = None
        else:
            continue  # no seat on the dates it chose: it keeps its place
        session.flush()
        changed.append(entry)
    return changed


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
    "commitment = sha256(bytes.fromhex(seed)).hexdigest(); "
    "in that order each entry is given the earliest free seat (by date, then window) among "
    "its own chosen days, if any is left; the others form the waitlist in the same order"
)


def public_ballot(session: Session, office_code: str) -> dict[str, Any] | None:
    """Describe the office's latest ballot for anyone: the commitment at once; the seed, the
    entry ids in draw order, the dates each entry chose and each one's outcome only after
    the draw. No personal data."""
    office = session.execute(select(Office).where(Office.code == office_code)).scalar_one_or_none()
    if office is None:
        return None
    ballot = current_ballot(session, office.id)
    if ballot is None:
        return None
    all_days = [day.isoformat() for day in ballot_days(session, ballot)]
    body: dict[str, Any] = {
        "office": office.code,
        "opens_at": aware(ballot.opens_at).isoformat(),
        "closes_at": aware(ballot.closes_at).isoformat(),
        "first_day": ballot.first_day.isoformat(),
        "last_day": ballot.last_day.isoformat(),
        "days": all_days,
        "commitment": ballot.commitment,
        "algorithm": ALGORITHM,
        "drawn_at": None,
        "seed": None,
        "order": None,
        "outcomes": None,
    }
    if ballot.drawn_at is None:
        return body
    rows = session.execute(
        select(BallotEntry, Slot.day)
        .outerjoin(Booking, Booking.id == BallotEntry.booking_id)
        .outerjoin(Slot, Slot.id == Booking.slot_id)
        .where(BallotEntry.ballot_id == ballot.id)
    ).all()
    entries = {entry.id: (entry, seat_day) for entry, seat_day in rows}
    order = list(ballot.draw_order or [])

    def outcome(entry_id: int) -> dict[str, Any]:
        entry, seat_day = entries[entry_id]
        won = entry.status == BallotStatus.WON
        return {
            "entry": entry_id,
            "days": entry.days or all_days,
            "drawn_seat": won,
            "seat_day": seat_day.isoformat() if won and seat_day is not None else None,
            "waitlist_position": entry.position,
        }

    body.update(
        drawn_at=aware(ballot.drawn_at).isoformat(),
        seed=ballot.seed,
        order=order,
        outcomes=[outcome(entry_id) for entry_id in order],
    )
    return body
