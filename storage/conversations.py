"""Load and lock one chat identity's conversation for the duration of a turn."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Conversation


def lock_conversation(session: Session, channel: str, user_ref: str) -> Conversation:
    """Return the conversation row, created if new, locked until the caller's transaction ends.

    Creation is an INSERT that ignores a concurrent twin, so two first messages from the same
    user at once still end up on one row; `FOR UPDATE` then makes their turns take it in turn.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(Conversation)
        .values(channel=channel, user_ref=user_ref, state={})
        .on_conflict_do_nothing(index_elements=["channel", "user_ref"])
    )
    statement = (
        select(Conversation)
        .where(Conversation.channel == channel, Conversation.user_ref == user_ref)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.execute(statement).scalar_one()
