"""WhatsApp's own records: each user's customer-service window and our messages' statuses.

Meta lets a business send free-form messages only within 24 hours of the user's last message;
later, only approved templates. The window opens at the time the user's message carries (not
when we got round to it), and closes early when Meta reports a message failed for being
outside it (error 131047). Statuses arrive at least once and out of order: a status is kept
only if it is further along (sent < delivered < read; failed is final).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import OutboxMessage, WhatsAppStatus, WhatsAppWindow

CHANNEL = "whatsapp"
WINDOW = timedelta(hours=24)
OUTSIDE_WINDOW = 131047  # Meta's error: more than 24 hours since the user's last message
RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


def open_window(session: Session, user_ref: str, wrote_at: datetime) -> None:
    """Record that the user wrote at `wrote_at` (kept if later than what is known)."""
    row = session.get(WhatsAppWindow, user_ref, with_for_update=True)
    if row is None:
        insert = postgresql.insert if _is_postgres(session) else sqlite.insert
        session.execute(
            insert(WhatsAppWindow)
            .values(user_ref=user_ref, last_inbound_at=wrote_at)
            .on_conflict_do_nothing(index_elements=["user_ref"])
        )
        row = session.get(WhatsAppWindow, user_ref, populate_existing=True)
        assert row is not None
    known = row.last_inbound_at
    if known is None or _utc(known) < wrote_at:
        row.last_inbound_at = wrote_at
    session.flush()


def window_open(session: Session, user_ref: str, now: datetime) -> bool:
    """Tell whether a free-form message may reach the user now."""
    row = session.get(WhatsAppWindow, user_ref)
    if row is None or row.last_inbound_at is None:
        return False
    return now < _utc(row.last_inbound_at) + WINDOW


def close_window(session: Session, user_ref: str) -> None:
    """Meta refused a free-form message as outside the window: templates until they write."""
    row = session.get(WhatsAppWindow, user_ref)
    if row is not None:
        row.last_inbound_at = None


def record_statuses(
    session: Session,
    statuses: Iterable[tuple[str, str, str, datetime, int | None]],
    now: datetime,
) -> int:
    """Record (message id, recipient, status, Meta's time, error code) tuples; return how many
    changed something. A failure outside the window closes the recipient's window."""
    changed = 0
    for message_id, user_ref, status, at, error_code in statuses:
        row = session.get(WhatsAppStatus, message_id, with_for_update=True)
        if row is None:
            insert = postgresql.insert if _is_postgres(session) else sqlite.insert
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
            if created is not None:
                changed += 1
                if error_code == OUTSIDE_WINDOW:
                    close_window(session, user_ref)
                continue
            row = session.get(WhatsAppStatus, message_id, populate_existing=True)
            assert row is not None
        if RANK.get(status, 0) > RANK.get(row.status, 0):
            row.status, row.error_code, row.status_at, row.updated_at = (
                status, error_code, at, now)  # fmt: skip
            changed += 1
            if error_code == OUTSIDE_WINDOW:
                close_window(session, user_ref)
    session.flush()
    return changed


def status_of(session: Session, message_id: str) -> tuple[str, int | None] | None:
    """Return a sent message's latest status and error code, if Meta reported one."""
    row = session.get(WhatsAppStatus, message_id)
    return None if row is None else (row.status, row.error_code)


def question_sent_as(session: Session, user_ref: str, message_id: str) -> dict[str, object] | None:
    """Return the outbox payload delivered as WhatsApp message `message_id` to this user (a
    list whose "lainnya" row was chosen), if it is still kept."""
    payload = session.execute(
        select(OutboxMessage.payload).where(
            OutboxMessage.channel == CHANNEL,
            OutboxMessage.user_ref == user_ref,
            OutboxMessage.message_id == message_id,
        )
    ).scalar_one_or_none()
    return None if payload is None else dict(payload)


def erase_user(session: Session, user_ref: str) -> None:
    """Forget a user's window and statuses (their number is personal data)."""
    session.execute(delete(WhatsAppWindow).where(WhatsAppWindow.user_ref == user_ref))
    session.execute(delete(WhatsAppStatus).where(WhatsAppStatus.user_ref == user_ref))


def purge_statuses(session: Session, before: datetime) -> int:
    """Delete statuses recorded before a time (kept as long as the outbox rows they follow)."""
    result = session.execute(delete(WhatsAppStatus).where(WhatsAppStatus.updated_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
