"""WhatsApp's own records: what became of the messages we sent (status webhooks).

Statuses arrive at least once and out of order: a status is kept only if it is further along
(sent < delivered < read; failed is final). Outside the 24-hour customer-service window Meta
may accept a free-form message and report it `failed` (error 131047) later: such a message is
queued again, to go as a template.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.booking import queue_message
from storage.models import OutboxMessage, WhatsAppStatus

CHANNEL = "whatsapp"
OUTSIDE_WINDOW = 131047  # Meta's error: more than 24 hours since the user's last message
RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
AS_TEMPLATE = "as_template"  # an outbox payload's flag: send it as a template, window or not


def record_statuses(
    session: Session,
    statuses: Iterable[tuple[str, str, str, datetime, int | None]],
    now: datetime,
) -> set[str]:
    """Record (message id, recipient, status, Meta's time, error code) tuples; return the
    recipients with a message queued again as a template (failed outside the window)."""
    requeued: set[str] = set()
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
        outside = status == "failed" and error_code == OUTSIDE_WINDOW
        if outside and _queue_as_template(session, user_ref, message_id, now):
            requeued.add(user_ref)
    session.flush()
    return requeued


def _queue_as_template(session: Session, user_ref: str, message_id: str, now: datetime) -> bool:
    """Queue the refused message again, flagged to go as a template; False if it is unknown
    (purged) or was a template already."""
    payload = sent_payload(session, user_ref, message_id)
    if payload is None or payload.get(AS_TEMPLATE):
        return False
    queue_message(session, CHANNEL, user_ref, {**payload, AS_TEMPLATE: True}, now)
    return True


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


def purge_statuses(session: Session, before: datetime) -> int:
    """Delete statuses recorded before a time (kept as long as the outbox rows they follow)."""
    result = session.execute(delete(WhatsAppStatus).where(WhatsAppStatus.updated_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
