"""One unit of work per inbound event: lock the conversation, run the engine, save, commit."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.billing import BillingProvider, LocalBilling
from bot.core.engine import ConversationState, Engine
from bot.core.flow import Context
from bot.core.messages import Inbound, Outbound, merge
from bot.crypto_store import EncryptedBlobStore, load_or_create_key
from bot.documents import BlobStore, check_event, needs_check, upload_rules
from bot.faults import failpoint
from bot.flows import build_engine
from bot.i18n import resolve_locale
from bot.identity import IdentityRegistry, StructuralIdentity
from bot.images import NEAR_DISTANCE, CleanDocument, MemoryBudget
from bot.metrics import timed_turn
from bot.phone_sender import OutboxSender, PhoneDelivery, PhoneSender, make_phone_sender
from bot.privacy import export_file
from bot.seed import extend_calendars, seed_offices
from bot.settings import Settings
from bot.shared import SharedState, make_shared_state
from storage.applications import photo_twins
from storage.booking import db_now, queue_message, record_event, take_outbox
from storage.conversations import lock_conversation
from storage.db import make_engine, make_session_factory, upgrade
from storage.inbox import mark_applied, mark_folded
from storage.models import Conversation, Office
from storage.outbox import reactivate
from storage.phones import record_verification, verified_phone
from storage.staff import audit

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def mask(identity: str) -> str:
    """Keep enough of a caller's number to tell calls apart in the audit log, not to dial it."""
    if len(identity) <= 7:
        return "*" * len(identity)
    return identity[:5] + "*" * (len(identity) - 8) + identity[-3:]


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Loket:
    """The product's core service: what every channel calls with an inbound event.

    Time comes from the database unless a clock is given (tests move a fake one), so every
    worker agrees on when a hold expires.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        db: SqlEngine | None = None,
        blobs: BlobStore | None = None,
        shared: SharedState | None = None,
        billing: BillingProvider | None = None,
        identity: IdentityRegistry | None = None,
        clock: Clock | None = None,
        phone_sender: PhoneSender | None = None,
    ) -> None:
        self.settings = settings
        if db is None:
            if settings.auto_migrate:
                upgrade(settings.database_url)
            db = make_engine(settings.database_url)
        self.db = db
        self.sessions: sessionmaker[Session] = make_session_factory(db)
        self.blobs = blobs or EncryptedBlobStore(
            settings.data_dir / "documents",
            load_or_create_key(settings.data_dir, settings.document_key),
        )
        self.shared = shared or make_shared_state(settings.redis_url, settings.redis_prefix)
        self.billing = billing or LocalBilling()
        self.identity = identity or StructuralIdentity()
        self.phone_sender: PhoneSender = phone_sender or make_phone_sender(settings)
        self.clock = clock
        # One-time codes are queued by the turn and sent after its commit, off the turn.
        self.phone_delivery = PhoneDelivery(self.sessions, self.now, self.phone_sender)
        self.engine: Engine = build_engine()
        self.image_rules = upload_rules(settings)
        # One per process: every channel's photo checks run on these few threads (made on
        # the first photo), admitted in arrival order by the shared memory budget. A thread
        # keeps the memory its checks freed for its next ones (its malloc arena), so few
        # long-lived threads bound what the process keeps; a thread per request would not.
        self.image_budget = MemoryBudget(settings.image_memory_budget)
        self.image_checks = ThreadPoolExecutor(
            max_workers=settings.image_check_threads, thread_name_prefix="loket-image"
        )

    @functools.cached_property
    def autocommit_db(self) -> SqlEngine:
        """An engine whose statements commit one by one (PostgreSQL), for single-statement
        writes that must be durable in one round trip (accepting a webhook update).

        No ping before each checkout either: if the database restarted, the first statement on
        a stale connection fails (the webhook answers 500 and Telegram retries) and SQLAlchemy
        then discards the whole pool.
        """
        if self.db.dialect.name != "postgresql":
            return self.db
        return make_engine(
            self.db.url.render_as_string(hide_password=False),
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=False,
        )

    def now(self, session: Session) -> datetime:
        """Return the time of this unit of work."""
        return self.clock() if self.clock is not None else db_now(session)

    def log_start(self) -> None:
        """Say once, when a long-running process starts, what identity checks really verify."""
        log.info("identity checks: %s", self.identity.describe())

    def prepare_demo(self) -> None:
        """On the embedded default: create the demo offices once and extend their calendars."""
        with self.sessions() as session, session.begin():
            if session.execute(select(Office.id).limit(1)).first() is None:
                seed_offices(session)
            extend_calendars(session, self.now(session), self.settings.booking_horizon_days)

    def context(
        self,
        session: Session,
        channel: str,
        user_ref: str,
        now: datetime,
        actor: int | None = None,
    ) -> Context:
        """Build the context a turn's steps work with."""
        return Context(
            session=session,
            settings=self.settings,
            blobs=self.blobs,
            shared=self.shared,
            billing=self.billing,
            identity=self.identity,
            channel=channel,
            user_ref=user_ref,
            now=now,
            answers={},
            actor=actor,
            phone_sender=OutboxSender(session, now),
        )

    def handle(
        self, channel: str, user_ref: str, event: Inbound, actor: int | None = None
    ) -> list[Outbound]:
        """Apply one event for one chat identity in one transaction and return the replies.

        `actor` is the staff member typing for the applicant (the agent console): records the
        turn creates carry it, and the turn is written to the audit log in the same transaction.
        """
        return self._turn(channel, user_ref, event, actor, take_notices=False)

    def converse(
        self, channel: str, user_ref: str, event: Inbound, actor: int | None = None
    ) -> list[Outbound]:
        """One turn of a pull channel (terminal, web chat, chat API): the notices that were
        waiting (payment confirmed, hold expired), then the replies.

        The notices are taken in the turn's own transaction, so a turn that fails loses none
        of them: every door that shows notices calls this, not `handle` and a second step.
        """
        return self._turn(channel, user_ref, event, actor, take_notices=True)

    def _turn(
        self,
        channel: str,
        user_ref: str,
        event: Inbound,
        actor: int | None,
        *,
        take_notices: bool,
    ) -> list[Outbound]:
        event = self.check_upload(event)
        with timed_turn(channel), self.sessions() as session, session.begin():
            conversation, now = self._lock(session, channel, user_ref)
            replies, _locale, sms_queued = self._run(
                session, conversation, now, channel, user_ref, event, actor
            )
            if actor is not None:
                state = conversation.state
                audit(
                    session, actor, "agent.turn", mask(user_ref),
                    {"event": event.kind.value, "flow": state.get("flow"),
                     "step": state.get("step")},
                    now,
                )  # fmt: skip
            if take_notices:
                notices = take_outbox(session, channel, user_ref, now)
                replies = [Outbound.from_payload(payload) for payload in notices] + replies
        if sms_queued:
            self.phone_delivery.kick()  # committed: the code goes out off this turn
        return replies

    def process(
        self,
        channel: str,
        user_ref: str,
        event: Inbound,
        event_key: str,
        inbox_row: int | None = None,
        folded: Sequence[int] = (),
        shape: Callable[[list[Outbound]], list[Outbound | dict[str, Any]]] | None = None,
    ) -> bool:
        """Apply an event exactly once and queue its replies in the outbox; False if a repeat.

        The event's key (a Telegram update_id, ...) is recorded in the same transaction as the
        conversation change and the outgoing messages, so a retried or doubled delivery, or a
        crash before commit, can neither lose nor double the turn. An event taken from the
        inbox has its row marked applied in that transaction too, with `folded`: the chat's
        waiting repeats of the same tap or command, answered by this one turn. `shape` lets a
        channel turn the replies into its own outbox payloads (Telegram: a notice as the tap's
        alert, the question after it as an edit of the tapped message).
        """
        event = self.check_upload(event)
        with timed_turn(channel), self.sessions() as session, session.begin():
            conversation, now = self._lock(session, channel, user_ref)
            if inbox_row is not None and not mark_applied(session, inbox_row, now):
                return False
            if not record_event(session, event_key):
                return False
            mark_folded(session, folded, now)
            reactivate(session, channel, user_ref)  # they wrote: they take messages again
            replies, locale, sms_queued = self._run(
                session, conversation, now, channel, user_ref, event
            )
            shaped = merge(replies) if shape is None else shape(replies)
            for reply in shaped:
                payload = reply.to_payload() if isinstance(reply, Outbound) else reply
                queue_message(session, channel, user_ref, {**payload, "locale": locale}, now)
            failpoint("before-commit")
        if sms_queued:
            self.phone_delivery.kick()  # committed: the code goes out off this turn
        return True

    def check_upload(self, event: Inbound) -> Inbound:
        """Check and clean an event's photo before the turn's transaction opens.

        Decoding a photo takes up to a second and tens of megabytes: done inside the turn, it
        would hold the conversation's row lock (and SQLite's one write lock, so every other
        applicant's turn) meanwhile. The check runs on one of `image_checks`' threads (this
        thread waits for it) within the process's `image_budget`.
        """
        if not needs_check(event):
            return event  # no hop to the image threads for a text or a button
        checked = self.image_checks.submit(
            check_event, event, self.image_rules, self.image_budget
        ).result()
        return self.find_twins(checked)

    def find_twins(self, event: Inbound) -> Inbound:
        """Attach the NIKs whose applications hold a near copy of the event's photo.

        One indexed read in its own short transaction, before the turn's: the turn (which
        holds the conversation's lock, and SQLite's write lock) only compares NIKs.
        """
        upload = event.upload
        clean = upload.checked if upload is not None else None
        if upload is None or not isinstance(clean, CleanDocument) or clean.phash is None:
            return event
        with self.sessions() as session, session.begin():
            twins = photo_twins(session, clean.phash, NEAR_DISTANCE)
        if not twins:
            return event
        return replace(event, upload=replace(upload, checked=replace(clean, twins=tuple(twins))))

    def _lock(self, session: Session, channel: str, user_ref: str) -> tuple[Conversation, datetime]:
        """Lock (or create) the chat's conversation; return it and the turn's time."""
        conversation, database_now = lock_conversation(session, channel, user_ref)
        return conversation, self.clock() if self.clock is not None else database_now

    def _run(
        self,
        session: Session,
        conversation: Conversation,
        now: datetime,
        channel: str,
        user_ref: str,
        event: Inbound,
        actor: int | None = None,
    ) -> tuple[list[Outbound], str, bool]:
        """Run the engine on a locked conversation and save its new state; return the
        replies, the chat's locale, and whether the turn queued an SMS/WhatsApp message."""
        state = ConversationState.from_dict(conversation.state)
        ctx = self.context(session, channel, user_ref, now, actor)
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
        queued = isinstance(ctx.phone_sender, OutboxSender) and ctx.phone_sender.queued
        return replies, resolve_locale(state.locale, state.channel_language), queued

    def vouch_phone(self, channel: str, user_ref: str, phone: str, method: str) -> None:
        """Record a number a trusted door verified (a gateway's word), unless already known."""
        with self.sessions() as session, session.begin():
            if verified_phone(session, channel, user_ref) != phone:
                record_verification(session, channel, user_ref, phone, method, self.now(session))

    def pending_messages(self, channel: str, user_ref: str) -> list[Outbound]:
        """Take the outbox messages waiting for one chat (pull channels show them first)."""
        with self.sessions() as session, session.begin():
            payloads = take_outbox(session, channel, user_ref, self.now(session))
        return [Outbound.from_payload(payload) for payload in payloads]

    def export_now(self, channel: str, user_ref: str) -> tuple[str, bytes]:
        """A chat's data export (/datasaya) as (file name, bytes), read now: what is held at
        this moment, nothing if it was erased meanwhile (never stored in the outbox)."""
        with self.sessions() as session:
            return export_file(session, channel, user_ref, self.now(session))

    def deliver_phone_messages(self) -> int:
        """Send the queued SMS/WhatsApp messages now and wait (the worker, tests); return
        how many went out in this round."""
        return self.phone_delivery.kick().result()

    def close(self) -> None:
        """Release database connections, shared state and the image-check and SMS threads."""
        self.phone_delivery.close()
        self.image_checks.shutdown(wait=True, cancel_futures=True)
        self.shared.close()
        self.db.dispose()
        autocommit = self.__dict__.get("autocommit_db")  # made only if a webhook accepted
        if autocommit is not None and autocommit is not self.db:
            autocommit.dispose()
