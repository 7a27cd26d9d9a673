"""Outbox rows that cannot be delivered, chats that refuse delivery, and the outbox's retention.

A failed send is retried with backoff a bounded number of times, then set aside (`failed_at`)
so the chat's later rows still go out; a chat that blocked the bot is marked inactive until it
writes again. Delivered and set-aside rows lose their texts after a retention period.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import InactiveChat, OutboxMessage

SMS_CHANNEL = "sms"  # outbox rows to phone numbers (user_ref is the E.164 number)


def count_failure(session: Session, row_id: int) -> int:
    """Count one failed send of a row; return how many it has had."""
    return int(
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.attempts)
            .execution_options(synchronize_session=False)
        ).scalar_one()
    )


def set_aside(session: Session, row_ids: Sequence[int], failure: str, now: datetime) -> None:
    """Give up on rows still unsent: never sent, kept for the count until purged."""
    if row_ids:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(row_ids), OutboxMessage.sent_at.is_(None))
            .values(failed_at=now, failure=failure, claimed_until=None)
            .execution_options(synchronize_session=False)
        )


def set_aside_chat(
    session: Session, channel: str, user_ref: str, failure: str, now: datetime
) -> None:
    """Give up on every unsent row of one chat (it blocked the bot)."""
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel == channel,
            OutboxMessage.user_ref == user_ref,
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.failed_at.is_(None),
        )
        .values(failed_at=now, failure=failure, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def mark_inactive(
    session: Session, channel: str, user_ref: str, reason: str, now: datetime
) -> None:
    """Record that a chat refuses delivery (kept as first recorded)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(InactiveChat)
        .values(channel=channel, user_ref=user_ref, since=now, reason=reason)
        .on_conflict_do_nothing(index_elements=["channel", "user_ref"])
    )


def is_inactive(session: Session, channel: str, user_ref: str) -> bool:
    """Tell whether a chat refuses delivery."""
    found = session.execute(_inactive(), {"channel": channel, "user_ref": user_ref}).first()
    return found is not None


# Statements the delivery path runs every turn are built once, with bound parameters
# (building one costs more CPU than running it; see bench/channel_cpu.py).
_INACTIVE = cast(Table, InactiveChat.__table__)
_OUTBOX = cast(Table, OutboxMessage.__table__)


@functools.cache
def _inactive() -> Any:
    c = _INACTIVE.c
    return select(c.channel).where(
        c.channel == bindparam("channel"), c.user_ref == bindparam("user_ref")
    )


@functools.cache
def _reactivate() -> Any:
    c = _INACTIVE.c
    return delete(_INACTIVE).where(
        c.channel == bindparam("of_channel"), c.user_ref == bindparam("of_user")
    )


def reactivate(session: Session, channel: str, user_ref: str) -> None:
    """The chat wrote to us: it takes messages again."""
    session.execute(_reactivate(), {"of_channel": channel, "of_user": user_ref})


def purge_outbox(session: Session, before: datetime) -> int:
    """Delete rows delivered or set aside before a time: their texts (a NIK, a name) have
    served. Rows still waiting are kept."""
    result = session.execute(
        delete(OutboxMessage).where(
            or_(OutboxMessage.sent_at < before, OutboxMessage.failed_at < before)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def delivery_figures(session: Session) -> dict[str, int]:
    """Counts for operators, without personal data: rows set aside, chats inactive, waiting."""
    set_aside_rows = session.execute(
        select(func.count(OutboxMessage.id)).where(OutboxMessage.failed_at.is_not(None))
    ).scalar_one()
    waiting = session.execute(
        select(func.count(OutboxMessage.id)).where(
            OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None)
        )
    ).scalar_one()
    inactive = session.execute(select(func.count()).select_from(InactiveChat)).scalar_one()
    return {"outbox_set_aside": set_aside_rows, "outbox_waiting": waiting,
            "inactive_chats": inactive}  # fmt: skip


def latest_question(session: Session, channel: str, user_ref: str) -> tuple[int, set[str]] | None:
    """Return the channel's id of the last question delivered to a chat (a message that waits
    for an answer) and its buttons' values; None when none is known. Notices pushed after it
    (a payment confirmed, a turn in the queue) are not questions and do not count."""
    rows = session.execute(_latest(), {"channel": channel, "user_ref": user_ref}).all()
    for message_id, payload in rows:
        choices = payload.get("choices") or []
        asks = choices or payload.get("expects", "none") != "none"
        if asks and str(message_id).isdigit() and int(message_id) > 0:
            return int(message_id), {str(value) for value, _label in choices}
    return None


QUESTION_LOOKBACK = 20  # delivered rows looked through for the last question


@functools.cache
def _latest() -> Any:
    c = _OUTBOX.c
    return (
        select(c.message_id, c.payload)
        .where(
            c.channel == bindparam("channel"),
            c.user_ref == bindparam("user_ref"),
            c.sent_at.is_not(None),
            c.message_id.is_not(None),
        )
        .order_by(c.id.desc())
        .limit(QUESTION_LOOKBACK)
    )
