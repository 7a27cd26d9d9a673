"""One unit of work per inbound event: lock the conversation, run the engine, save, commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine as SqlEngine
from sqlalchemy.orm import Session, sessionmaker

from bot.core.engine import ConversationState, Engine
from bot.core.flow import Context
from bot.core.messages import Inbound, Outbound
from bot.documents import BlobStore, LocalBlobStore
from bot.flows import build_engine
from bot.settings import Settings
from storage.conversations import lock_conversation
from storage.db import make_engine, make_session_factory, upgrade

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current time, timezone-aware."""
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Loket:
    """The product's core service: what every channel calls with an inbound event."""

    def __init__(
        self,
        settings: Settings,
        *,
        db: SqlEngine | None = None,
        blobs: BlobStore | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        if db is None:
            if settings.auto_migrate:
                upgrade(settings.database_url)
            db = make_engine(settings.database_url)
        self.db = db
        self.sessions: sessionmaker[Session] = make_session_factory(db)
        self.blobs = blobs or LocalBlobStore(settings.data_dir / "documents")
        self.clock = clock
        self.engine: Engine = build_engine()

    def handle(self, channel: str, user_ref: str, event: Inbound) -> list[Outbound]:
        """Apply one event for one chat identity in one transaction and return the replies."""
        with self.sessions() as session, session.begin():
            conversation = lock_conversation(session, channel, user_ref)
            state = ConversationState.from_dict(conversation.state)
            now = self.clock()
            ctx = Context(
                session=session,
                settings=self.settings,
                blobs=self.blobs,
                channel=channel,
                user_ref=user_ref,
                now=now,
                answers=state.answers,
            )
            replies = self.engine.handle(state, event, ctx, _aware(conversation.last_activity_at))
            conversation.state = state.to_dict()
            conversation.locale = state.locale
            conversation.last_activity_at = now
            log.info(
                "turn channel=%s kind=%s flow=%s step=%s replies=%d",
                channel,
                event.kind.value,
                state.flow,
                state.step,
                len(replies),
            )
        return replies

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()
