"""Scheduled messages: planned once per booking, kind and slot; claimed once when due."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.booking import changed_rows
from storage.models import ScheduledMessage


def plan(
    session: Session, booking_id: int, kind: str, slot_id: int, due_at: datetime, now: datetime
) -> tuple[ScheduledMessage, bool]:
    """Plan one message (kept as first planned when it exists); return its row and whether
    this call planned it."""
    due_at = due_at.astimezone(UTC)  # SQLite keeps the wall time it is given: always UTC
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inserted = session.execute(
        insert(ScheduledMessage)
        .values(booking_id=booking_id, kind=kind, slot_id=slot_id, due_at=due_at, created_at=now)
        .on_conflict_do_nothing(index_elements=["booking_id", "kind", "slot_id"])
    )
    row = session.execute(
        select(ScheduledMessage).where(
            ScheduledMessage.booking_id == booking_id,
            ScheduledMessage.kind == kind,
            ScheduledMessage.slot_id == slot_id,
        )
    ).scalar_one()
    return row, changed_rows(inserted) == 1


def due_ids(session: Session, now: datetime, limit: int = 500) -> list[int]:
    """Return the ids of open rows whose time has come, oldest due first."""
    return list(
        session.execute(
            select(ScheduledMessage.id)
            .where(ScheduledMessage.done_at.is_(None), ScheduledMessage.due_at <= now)
            .order_by(ScheduledMessage.due_at, ScheduledMessage.id)
            .limit(limit)
        ).scalars()
    )


def claim(session: Session, row_id: int, outcome: str, now: datetime) -> bool:
    """Close an open row with its outcome; False when another worker closed it first.

    The caller writes the message (or nothing, when moot) in the same transaction, so the
    claim and its effect commit or vanish together.
    """
    return (
        changed_rows(
            session.execute(
                update(ScheduledMessage)
                .where(ScheduledMessage.id == row_id, ScheduledMessage.done_at.is_(None))
                .values(done_at=now, outcome=outcome)
                .execution_options(synchronize_session=False)
            )
        )
        == 1
    )


def postpone(session: Session, row_id: int, due_at: datetime) -> None:
    """Move an open row's time (it came due in the office's night)."""
    session.execute(
        update(ScheduledMessage)
        .where(ScheduledMessage.id == row_id, ScheduledMessage.done_at.is_(None))
        .values(due_at=due_at.astimezone(UTC))
        .execution_options(synchronize_session=False)
    )
