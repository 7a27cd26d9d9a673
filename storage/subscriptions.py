"""Quota announcements: which chats follow which office, and what an office announced.

A chat follows offices one by one; following a city is following each of its offices. An
announcement is written once and queued to every follower's outbox in the same transaction,
in the follower's language. The caller owns the session and the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Announcement, Conversation, Office, OutboxMessage, Subscription


def subscribe(
    session: Session, channel: str, user_ref: str, office_id: int, locale: str, now: datetime
) -> bool:
    """Follow an office's announcements; False when the chat already follows it.

    One INSERT .. ON CONFLICT DO NOTHING on the (channel, user_ref, office_id) key, so a double
    tap or two workers subscribing at once leave one row and raise nothing.
    """
    dialect = session.get_bind().dialect.name
    insert_once = postgresql.insert if dialect == "postgresql" else sqlite.insert
    created = session.execute(
        insert_once(Subscription)
        .values(
            channel=channel, user_ref=user_ref, office_id=office_id, locale=locale, created_at=now
        )
        .on_conflict_do_nothing(index_elements=["channel", "user_ref", "office_id"])
        .returning(Subscription.id)
    ).first()
    return created is not None


def unsubscribe(session: Session, channel: str, user_ref: str, office_id: int | None = None) -> int:
    """Stop following one office (or every office when None); return how many were removed."""
    statement = delete(Subscription).where(
        Subscription.channel == channel, Subscription.user_ref == user_ref
    )
    if office_id is not None:
        statement = statement.where(Subscription.office_id == office_id)
    return cast("CursorResult[Any]", session.execute(statement)).rowcount


def subscriptions_for(session: Session, channel: str, user_ref: str) -> list[Office]:
    """Return the offices a chat follows, by city and name."""
    return list(
        session.execute(
            select(Office)
            .join(Subscription, Subscription.office_id == Office.id)
            .where(Subscription.channel == channel, Subscription.user_ref == user_ref)
            .order_by(Office.city, Office.name)
        ).scalars()
    )


def count_subscribers(session: Session, office_id: int) -> int:
    """How many chats follow one office."""
    return int(
        session.execute(
            select(func.count(Subscription.id)).where(Subscription.office_id == office_id)
        ).scalar_one()
    )


def subscribers_of(session: Session, office_id: int) -> Sequence[Subscription]:
    """Return the subscriptions to one office, oldest first."""
    return (
        session.execute(
            select(Subscription)
            .where(Subscription.office_id == office_id)
            .order_by(Subscription.id)
        )
        .scalars()
        .all()
    )


def announce(
    session: Session,
    office_id: int,
    staff_id: int | None,
    text: str,
    now: datetime,
    render: Callable[[Office, str, str | None], dict[str, Any]],
) -> Announcement:
    """Record an office's announcement and queue it to each follower, in their language.

    `render(office, text, locale)` makes one outbox payload (the wording lives with the flows,
    where the catalogs are extracted from). A fixed number of statements whatever the number
    of followers: the office, one read of the followers with their language, one bulk insert
    into the outbox, one of the announcement.
    """
    office = session.get(Office, office_id)
    if office is None:
        raise ValueError(f"no office {office_id}")
    # The chat's own language choice if it made one since subscribing, else the language it
    # used when it subscribed.
    followers = session.execute(
        select(
            Subscription.channel,
            Subscription.user_ref,
            func.coalesce(Conversation.locale, Subscription.locale),
        )
        .outerjoin(
            Conversation,
            and_(
                Conversation.channel == Subscription.channel,
                Conversation.user_ref == Subscription.user_ref,
            ),
        )
        .where(Subscription.office_id == office_id)
        .order_by(Subscription.id)
    ).all()
    entry = Announcement(
        office_id=office_id, staff_id=staff_id, text=text, recipients=len(followers),
        created_at=now,
    )  # fmt: skip
    session.add(entry)
    session.flush()
    payloads: dict[str | None, dict[str, Any]] = {}
    rows = []
    for channel, user_ref, locale in followers:
        if locale not in payloads:
            payloads[locale] = render(office, text, locale)
        rows.append(
            {"channel": channel, "user_ref": user_ref, "payload": payloads[locale],
             "created_at": now, "announcement_id": entry.id}
        )  # fmt: skip
    if rows:
        session.execute(insert(OutboxMessage), rows)
    return entry


RATE_WINDOW = timedelta(minutes=1)  # the "current rate" of an announcement's delivery


def announcement_progress(session: Session, announcement_id: int, now: datetime) -> dict[str, Any]:
    """Say how far an announcement's delivery got: sent, failed (set aside), remaining, the
    rate over the last minute and the finish it gives. Counts only, no personal data."""
    entry = session.get(Announcement, announcement_id)
    if entry is None:
        raise ValueError(f"no announcement {announcement_id}")
    mine = OutboxMessage.announcement_id == announcement_id
    failed, remaining, recent = session.execute(
        select(
            func.count(OutboxMessage.failed_at),
            func.count(OutboxMessage.id).filter(
                OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None)
            ),
            func.count(OutboxMessage.id).filter(OutboxMessage.sent_at > now - RATE_WINDOW),
        ).where(mine)
    ).one()
    # Rows purged a week after delivery count as sent.
    sent = entry.recipients - failed - remaining
    rate = recent / RATE_WINDOW.total_seconds()
    finish = None
    if remaining and rate > 0:
        finish = (now + timedelta(seconds=remaining / rate)).isoformat()
    return {"id": entry.id, "recipients": entry.recipients, "sent": sent, "failed": failed,
            "remaining": remaining, "per_second": round(rate, 2), "finish_at": finish,
            "done": remaining == 0}  # fmt: skip
