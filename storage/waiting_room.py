"""The waiting room: durable queue numbers at an office's release, admitted in arrival order.

A release is the latest `slots.release_at` of the office that has passed. Whoever asks for a
date there gets one number per NIK (a unique key; tapping again returns the same row). The
number comes from one counter row per office release, incremented by a conditional UPDATE
whose row lock orders concurrent joins on PostgreSQL (SQLite serialises writers), inside a
savepoint with the entry, so a lost race neither burns a number nor makes a second one.

Admission is computed from the clock the turn runs on (the database's): from the release on,
`admit_per_minute` admissions are granted at each whole minute (the first at the release).
Entries admitted or booked use a grant; an admitted entry that did not hold a seat within
`admit_minutes` is marked expired and gives its grant back, so the next in line is admitted.
`admit_due` does this under the counter row's lock; every turn at the office and every worker
round call it, and `claim_admission` (in the hold's savepoint) is what lets a hold through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Connection,
    CursorResult,
    Engine,
    bindparam,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.inbox import ACCEPT_MADE, Pending, store
from storage.models import (
    Application,
    InboxUpdate,
    Office,
    QueueEntry,
    QueueStatus,
    QueueTicket,
    ReleaseMode,
    ReleaseQueue,
    Slot,
    TicketStatus,
)

# A ticket whose chat has nothing waiting in the inbox this long after it was issued was
# applied without being used (the applicant could not queue, or had moved on): voided.
TICKET_GRACE = timedelta(seconds=30)

LIVE = (QueueStatus.ADMITTED, QueueStatus.BOOKED)  # entries that use an admission grant
ADMISSIONS = (*LIVE, QueueStatus.EXPIRED)  # entries that were admitted (`admitted_at` set)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def gated(office: Office) -> bool:
    """Tell whether holds at this office need an admission from its waiting room."""
    return office.release_mode == ReleaseMode.WAITING_ROOM and not office.walk_in_only


def current_release(session: Session, office_id: int, now: datetime) -> datetime | None:
    """Return the office's latest release that has passed (the waiting room's key)."""
    value = session.execute(
        select(func.max(Slot.release_at)).where(Slot.office_id == office_id, Slot.release_at <= now)
    ).scalar_one_or_none()
    return _aware(value) if value is not None else None


def latest_entry(
    session: Session, office_id: int, release_at: datetime, nik: str
) -> QueueEntry | None:
    """Return this NIK's newest entry in one office release's queue."""
    return session.execute(
        select(QueueEntry)
        .where(
            QueueEntry.office_id == office_id,
            QueueEntry.release_at == release_at,
            QueueEntry.nik == nik,
        )
        .order_by(QueueEntry.attempt.desc())
        .limit(1)
    ).scalar_one_or_none()


def _ensure_counter(session: Session | Connection, office_id: int, release_at: datetime) -> None:
    values = {"office_id": office_id, "release_at": release_at, "issued": 0}
    dialect = session.get_bind().dialect.name if isinstance(session, Session) else (
        session.dialect.name)  # fmt: skip
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(ReleaseQueue).values(values).on_conflict_do_nothing())


def _next_number(session: Session | Connection, office_id: int, release_at: datetime) -> int:
    """Take the next number of an office release (the counter row's UPDATE orders takers)."""
    take = (
        update(ReleaseQueue)
        .where(ReleaseQueue.office_id == office_id, ReleaseQueue.release_at == release_at)
        .values(issued=ReleaseQueue.issued + 1)
        .returning(ReleaseQueue.issued)
    )
    number = session.execute(take).scalar_one_or_none()
    if number is None:
        _ensure_counter(session, office_id, release_at)
        number = session.execute(take).scalar_one()
    return int(number)


# ---- tickets: numbers given when a tap is accepted ------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """A chat's queue number in one office release, given at accept time."""

    number: int
    status: str
    new: bool


def _ticket_row(
    connection: Connection, office_id: int, release_at: datetime, channel: str, account_ref: str
) -> Ticket | None:
    row = connection.execute(
        select(QueueTicket.number, QueueTicket.status).where(
            QueueTicket.office_id == office_id,
            QueueTicket.release_at == release_at,
            QueueTicket.channel == channel,
            QueueTicket.account_ref == account_ref,
        )
    ).first()
    return None if row is None else Ticket(int(row.number), str(row.status), False)


# One round trip on PostgreSQL: the chat's ticket if it has one, else the next number from the
# counter row (locked only for this statement: the engine autocommits), a new ticket with it,
# and the tap's update in the inbox (the ticket's turn), all in this one statement.
_TICKET_SQL = text(
    """
    WITH existing AS (
        SELECT number, status FROM queue_tickets
        WHERE office_id = :office AND release_at = :release AND channel = :channel
          AND account_ref = :ref
    ), taken AS (
        UPDATE release_queues SET issued = issued + 1
        WHERE office_id = :office AND release_at = :release
          AND NOT EXISTS (SELECT 1 FROM existing)
        RETURNING issued
    ), made AS (
        INSERT INTO queue_tickets (office_id, release_at, number, channel, account_ref, status,
                                   issued_at)
        SELECT :office, :release, issued, :channel, :ref, 'issued', :now FROM taken
        ON CONFLICT DO NOTHING
        RETURNING number, status
    ), """
    + ACCEPT_MADE
    + """
    SELECT number, status, true AS new FROM made
    UNION ALL
    SELECT number, status, false AS new FROM existing
    """
).bindparams(bindparam("turn_payload", type_=JSON))


def issue_ticket(
    engine: Engine,
    office_id: int,
    release_at: datetime,
    now: datetime,
    turn: Pending,
) -> Ticket:
    """Return the chat's ticket in this office release, numbering a new one at the back, and
    accept the tap's update (`turn`, the ticket's turn) with a new ticket in one transaction:
    a ticket and its turn are stored together or not at all, so a failure between them cannot
    leave a number whose turn never runs (a retried tap finds no ticket and makes both).

    Give it an autocommit engine on PostgreSQL (each statement commits: the counter row is
    locked only for its own statement, never across a turn). A second tap, or a race of two,
    returns the same ticket and stores nothing (the unique key decides; a number lost to the
    race is a gap)."""
    channel, account_ref = turn.channel, turn.user_ref  # the tapping chat
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            for _attempt in range(3):
                row = connection.execute(_TICKET_SQL, {
                    "office": office_id, "release": release_at, "channel": channel,
                    "ref": account_ref, "now": now, **turn.turn_values()}).first()  # fmt: skip
                if row is not None:
                    return Ticket(int(row.number), str(row.status), bool(row.new))
                # No counter row yet (the release's first ticket), or a twin won the race.
                _ensure_counter(connection, office_id, release_at)
        raise RuntimeError("no ticket after three attempts")
    with engine.begin() as conn:
        found = _ticket_row(conn, office_id, release_at, channel, account_ref)
        if found is not None:
            return found
        number = _next_number(conn, office_id, release_at)
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        made = conn.execute(
            insert(QueueTicket)
            .values(office_id=office_id, release_at=release_at, number=number, channel=channel,
                    account_ref=account_ref, status=TicketStatus.ISSUED, issued_at=now)
            .on_conflict_do_nothing()
            .returning(QueueTicket.number)
        ).scalar_one_or_none()  # fmt: skip
        if made is not None:
            store(conn, turn)
            return Ticket(number, TicketStatus.ISSUED, True)
        twin = _ticket_row(conn, office_id, release_at, channel, account_ref)
        assert twin is not None
        return twin


def _settle_ticket(
    session: Session, office_id: int, release_at: datetime, application: Application, to: str
) -> int | None:
    """Mark the chat's issued ticket used or void; return its number (None: none issued)."""
    # Found by the chat's key alone (a subquery that does not ask for the status), so the
    # issued tickets' index cannot be chosen for it while statistics lag (models.py).
    chats = (
        select(QueueTicket.id)
        .where(
            QueueTicket.office_id == office_id,
            QueueTicket.release_at == release_at,
            QueueTicket.channel == application.channel,
            QueueTicket.account_ref == application.account_ref,
        )
        .scalar_subquery()
    )
    return session.execute(
        update(QueueTicket)
        .where(QueueTicket.id == chats, QueueTicket.status == TicketStatus.ISSUED)
        .values(status=to)
        .returning(QueueTicket.number)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()


def void_ticket(session: Session, office: Office, application: Application, now: datetime) -> None:
    """Void the chat's issued ticket at the office's current release (the turn found the
    applicant cannot queue): admissions skip it."""
    release_at = current_release(session, office.id, now)
    if release_at is not None:
        _settle_ticket(session, office.id, release_at, application, TicketStatus.VOID)


def join_queue(
    session: Session,
    office: Office,
    application: Application,
    release_at: datetime,
    now: datetime,
) -> QueueEntry:
    """Return the NIK's queue entry for this release, numbering a new one at the back when it
    has none or its last one is over (the turn passed, or its hold lapsed later); a double tap
    or a race returns the same entry."""
    latest = latest_entry(session, office.id, release_at, application.nik)
    if latest is not None and latest.status in (QueueStatus.WAITING, QueueStatus.ADMITTED):
        _settle_ticket(session, office.id, release_at, application, TicketStatus.VOID)
        return latest
    attempt = latest.attempt + 1 if latest is not None else 1
    try:
        with session.begin_nested():
            # A number given when the tap was accepted keeps the tap's place (accept order).
            ticketed = _settle_ticket(session, office.id, release_at, application,
                                      TicketStatus.USED)  # fmt: skip
            number = ticketed if ticketed is not None else _next_number(
                session, office.id, release_at)  # fmt: skip
            entry = QueueEntry(
                office_id=office.id,
                release_at=release_at,
                number=number,
                nik=application.nik,
                attempt=attempt,
                application_id=application.id,
                channel=application.channel,
                account_ref=application.account_ref,
                status=QueueStatus.WAITING,
                joined_at=now,
            )
            session.add(entry)
            session.flush()
    except IntegrityError:
        # The same NIK joined from another tap or channel at the same moment: the savepoint
        # undid our number, and the winner's entry is the one.
        winner = latest_entry(session, office.id, release_at, application.nik)
        assert winner is not None
        return winner
    return entry


def grants(office: Office, release_at: datetime, now: datetime) -> int:
    """Return how many admissions the office's rate has granted since the release."""
    if now < release_at:
        return 0
    minutes = int((now - release_at).total_seconds() // 60)
    return office.admit_per_minute * (minutes + 1)


@dataclass(frozen=True)
class Admissions:
    """What one `admit_due` call changed: entries newly admitted, and turns that passed."""

    admitted: list[QueueEntry]
    expired: list[QueueEntry]


def admit_due(
    session: Session,
    office: Office,
    release_at: datetime,
    now: datetime,
    applying: tuple[str, str] | None = None,
) -> Admissions:
    """Pass the turns that ran out and admit the next waiting entries the rate allows, in
    number order, under the queue's lock (one admitter at a time per office release).

    Numbers given at accept time whose turns are not applied yet hold their place: nobody
    numbered after the first such ticket is admitted before it (the frontier); a ticket whose
    chat has nothing left waiting (`TICKET_GRACE` after it was issued) was not used, and is
    voided and skipped (never the ticket of the chat whose turn is `applying` now)."""
    if session.get_bind().dialect.name == "postgresql":
        # An advisory lock, not the counter row's: tickets take numbers from that row at
        # accept time and must not wait for a turn's transaction (SQLite serialises anyway).
        key = int(_aware(release_at).timestamp()) % 2_000_000_000
        session.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": office.id, "b": key})
    locked = session.execute(
        select(ReleaseQueue.issued).where(
            ReleaseQueue.office_id == office.id, ReleaseQueue.release_at == release_at
        )
    ).first()
    if locked is None:
        return Admissions([], [])
    of_queue = (QueueEntry.office_id == office.id, QueueEntry.release_at == release_at)
    expired = list(
        session.execute(
            select(QueueEntry).where(
                *of_queue,
                QueueEntry.status == QueueStatus.ADMITTED,
                QueueEntry.expires_at <= now,
            )
        ).scalars()
    )
    for entry in expired:
        entry.status = QueueStatus.EXPIRED
    session.flush()
    live = session.execute(
        select(func.count()).where(*of_queue, QueueEntry.status.in_(LIVE))
    ).scalar_one()
    room = grants(office, release_at, now) - live
    admitted: list[QueueEntry] = []
    if room > 0:
        frontier = _ticket_frontier(session, office.id, release_at, now, applying)
        below = () if frontier is None else (QueueEntry.number < frontier,)
        admitted = list(
            session.execute(
                select(QueueEntry)
                .where(*of_queue, QueueEntry.status == QueueStatus.WAITING, *below)
                .order_by(QueueEntry.number)
                .limit(room)
            ).scalars()
        )
        window = timedelta(minutes=office.admit_minutes)
        for entry in admitted:
            entry.status = QueueStatus.ADMITTED
            entry.admitted_at = now
            entry.expires_at = now + window
        session.flush()
    return Admissions(admitted, expired)


def _ticket_frontier(
    session: Session,
    office_id: int,
    release_at: datetime,
    now: datetime,
    applying: tuple[str, str] | None,
) -> int | None:
    """Return the lowest number still held by an issued ticket whose turn waits (nobody after
    it is admitted first), voiding the unused tickets in front of it."""
    tickets = list(
        session.execute(
            select(QueueTicket)
            .where(
                QueueTicket.office_id == office_id,
                QueueTicket.release_at == release_at,
                QueueTicket.status == TicketStatus.ISSUED,
            )
            .order_by(QueueTicket.number)
            .limit(100)
        ).scalars()
    )
    for ticket in tickets:
        if (ticket.channel, ticket.account_ref) == applying:
            return ticket.number  # its turn runs in this transaction
        waits = session.execute(
            select(
                exists().where(
                    InboxUpdate.channel == ticket.channel,
                    InboxUpdate.user_ref == ticket.account_ref,
                    InboxUpdate.applied_at.is_(None),
                )
            )
        ).scalar_one()
        if waits or _aware(ticket.issued_at) > now - TICKET_GRACE:
            return ticket.number
        session.execute(
            update(QueueTicket)
            .where(QueueTicket.id == ticket.id, QueueTicket.status == TicketStatus.ISSUED)
            .values(status=TicketStatus.VOID)
            .execution_options(synchronize_session=False)
        )
    return None


def waiting_ahead(session: Session, entry: QueueEntry) -> int:
    """Count the entries (and accept-time tickets not applied yet) waiting in front of this
    one."""
    entries = session.execute(
        select(func.count()).where(
            QueueEntry.office_id == entry.office_id,
            QueueEntry.release_at == entry.release_at,
            QueueEntry.status == QueueStatus.WAITING,
            QueueEntry.number < entry.number,
        )
    ).scalar_one()
    tickets = session.execute(
        select(func.count()).where(
            QueueTicket.office_id == entry.office_id,
            QueueTicket.release_at == entry.release_at,
            QueueTicket.status == TicketStatus.ISSUED,
            QueueTicket.number < entry.number,
        )
    ).scalar_one()
    return int(entries) + int(tickets)


def admissions_so_far(session: Session, office_id: int, release_at: datetime) -> int:
    """Count the turns given in one office release so far (used, running or passed: the
    statuses an entry reaches only through an admission, counted on the status index)."""
    return session.execute(
        select(func.count()).where(
            QueueEntry.status.in_(ADMISSIONS),
            QueueEntry.office_id == office_id,
            QueueEntry.release_at == release_at,
        )
    ).scalar_one()


def admitted_now(session: Session, office_id: int, nik: str, now: datetime) -> QueueEntry | None:
    """Return the NIK's admission at this office that has not run out, if any."""
    return session.execute(
        select(QueueEntry)
        .where(
            QueueEntry.office_id == office_id,
            QueueEntry.nik == nik,
            QueueEntry.status == QueueStatus.ADMITTED,
            QueueEntry.expires_at > now,
        )
        .limit(1)
    ).scalar_one_or_none()


def claim_admission(session: Session, office_id: int, nik: str, now: datetime) -> bool:
    """Use the NIK's running admission for a hold (a conditional UPDATE: a turn that ran
    out, or was just passed on, is not claimed); True when it was."""
    result = session.execute(
        update(QueueEntry)
        .where(
            QueueEntry.office_id == office_id,
            QueueEntry.nik == nik,
            QueueEntry.status == QueueStatus.ADMITTED,
            QueueEntry.expires_at > now,
        )
        .values(status=QueueStatus.BOOKED)
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount >= 1


def start_turn(session: Session, entry_id: int, until: datetime) -> None:
    """Let a running turn last until `until` (never shorter: its notice was just delivered)."""
    session.execute(
        update(QueueEntry)
        .where(
            QueueEntry.id == entry_id,
            QueueEntry.status == QueueStatus.ADMITTED,
            QueueEntry.expires_at < until,
        )
        .values(expires_at=until)
        .execution_options(synchronize_session=False)
    )


def account_entries(session: Session, channel: str, account_ref: str) -> list[QueueEntry]:
    """Return this chat account's waiting or admitted entries (for /antrean)."""
    return list(
        session.execute(
            select(QueueEntry)
            .where(
                QueueEntry.channel == channel,
                QueueEntry.account_ref == account_ref,
                QueueEntry.status.in_((QueueStatus.WAITING, QueueStatus.ADMITTED)),
            )
            .order_by(QueueEntry.joined_at, QueueEntry.id)
        ).scalars()
    )


def waiting_room_offices(session: Session) -> list[Office]:
    """Return the offices whose releases go through the waiting room."""
    return list(
        session.execute(
            select(Office).where(
                Office.release_mode == ReleaseMode.WAITING_ROOM, Office.walk_in_only.is_(False)
            )
        ).scalars()
    )
