"""WhatsApp's own records: what became of the messages we sent (status webhooks).

Statuses arrive at least once and out of order: a status is kept only if it is further along
(sent < delivered < read; failed is final). Outside the 24-hour customer-service window Meta
may accept a free-form message and report it `failed` (error 131047) only later: the 200 of
the send proves nothing, the status row does (operators count them with `failed_statuses`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import OutboxMessage, WhatsAppStatus

CHANNEL = "whatsapp"
OUTSIDE_WINDOW = 131047  # Meta's error: more than 24 hours since the user's last message
RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


def record_statuses(
    session: Session,
    statuses: Iterable[tuple[str, str, str, datetime, int | None]],
    now: datetime,
) -> int:
    """Record (message id, recipient, status, Meta's time, error code) tuples; return how many
    changed what was known (repeats and older news change nothing)."""
    changed = 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for message_id, user_ref, status, at, error_code in statuses:
        created = session.execute(
            insert(WhatsAppStatus)
            .values(
                message_id=message_id,
                user_ref=user_ref,
                status=status,
                error_code=error_code,
                status_at=at,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["message_id"])
            .returning(WhatsAppStatus.message_id)
        ).first()
        if created is None:
            row = session.get(WhatsAppStatus, message_id, with_for_update=True)
            if row is None or RANK.get(status, 0) <= RANK.get(row.status, 0):
                continue  # a repeat, or older news than what we know
            row.status, row.error_code, row.status_at, row.updated_at = (
                status, error_code, at, now)  # fmt: skip
        changed += 1
    session.flush()
    return changed


def status_of(session: Session, message_id: str) -> tuple[str, int | None] | None:
    """Return a sent message's latest status and error code, if Meta reported one."""
    row = session.get(WhatsAppStatus, message_id)
    return None if row is None else (row.status, row.error_code)


def sent_payload(session: Session, user_ref: str, message_id: str) -> dict[str, object] | None:
    """Return the outbox payload delivered as WhatsApp message `message_id` to this user (a
    list whose "lainnya" row was chosen, a message refused later), if it is still kept."""
    payload = session.execute(
        select(OutboxMessage.payload)
        .where(
            OutboxMessage.channel == CHANNEL,
            OutboxMessage.user_ref == user_ref,
            OutboxMessage.message_id == message_id,
        )
        .limit(1)
    ).scalar_one_or_none()
    return None if payload is None else dict(payload)


def failed_statuses(session: Session) -> dict[int, int]:
    """Count failed messages by Meta's error code (131047: sent outside the window)."""
    rows = session.execute(
        select(WhatsAppStatus.error_code, func.count())
        .where(WhatsAppStatus.status == "failed")
        .group_by(WhatsAppStatus.error_code)
    ).all()
    return {int(code or 0): int(count) for code, count in rows}


def purge_statuses(session: Session, before: datetime) -> int:
    """Delete statuses recorded before a time (kept as long as the outbox rows they follow)."""
    result = session.execute(delete(WhatsAppStatus).where(WhatsAppStatus.updated_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
