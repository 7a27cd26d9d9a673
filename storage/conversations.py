"""Load and lock one chat identity's conversation for the duration of a turn."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Conversation


def lock_conversation(
    session: Session, channel: str, user_ref: str
) -> tuple[Conversation, datetime]:
    """Return the conversation (created if new), locked until the caller's transaction ends,
    and the database's clock, read in the same round trip.

    Creation is an INSERT that ignores a concurrent twin, so two first messages from the same
    user at once still end up on one row; `FOR UPDATE` then makes their turns take it in turn.
    """
    statement = (
        select(Conversation, func.now())
        .where(Conversation.channel == channel, Conversation.user_ref == user_ref)
        .with_for_update(of=Conversation)
        .execution_options(populate_existing=True)
    )
    row = session.execute(statement).first()
    if row is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(Conversation)
            .values(channel=channel, user_ref=user_ref, state={})
            .on_conflict_do_nothing(index_elements=["channel", "user_ref"])
        )
        row = session.execute(statement).one()
    conversation, now = row
    if isinstance(now, str):  # SQLite's CURRENT_TIMESTAMP is text
        now = datetime.fromisoformat(now)
    return conversation, now if now.tzinfo is not None else now.replace(tzinfo=UTC)
