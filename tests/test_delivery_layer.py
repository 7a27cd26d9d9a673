"""The delivery layer through its `Transport` interface alone, with a transport shaped like
WhatsApp's: no tap answers, no edits, a customer-service window, files fetched on request.

Everything else is real: the service, the inbox and outbox on both backends, the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.core.messages import Inbound, Outbound
from bot.delivery import (
    ChatBlocked,
    Delivery,
    FileRef,
    Incoming,
    Limits,
    Recipient,
    Refused,
    Rendered,
    RetryLater,
    Tap,
    TooLarge,
    Transport,
    Unreadable,
    send_backoff,
)
from bot.service import Loket
from storage.booking import queue_message
from storage.models import InactiveChat, InboxUpdate, OutboxMessage
from tests.conftest import FakeClock

CHAT = "6281234567890"


@dataclass
class FakeTransport:
    """A transport that records what the layer asks of it and fails as told."""

    name: str = "fake"
    limits: Limits = field(
        default_factory=lambda: Limits(
            per_second=1000, per_chat=1000, text=300, window=timedelta(hours=24)
        )
    )
    sent: list[tuple[str, Any]] = field(default_factory=list)
    recipients: list[Recipient] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)  # raised by the next sends
    fetches: list[tuple[str, int]] = field(default_factory=list)
    fetch_error: Exception | None = None
    calls: list[str] = field(default_factory=list)

    def read(self, payload: Any) -> Incoming | None:
        """Read {"id", "chat", and "text" | "button" | "media"}."""
        if not isinstance(payload, dict) or "id" not in payload:
            raise Unreadable("not a message")
        chat = str(payload["chat"])
        if "button" in payload:
            tap = Tap(message_id=payload.get("context"))
            return Incoming(payload["id"], chat, Inbound.press(payload["button"]), tap=tap)
        if "media" in payload:
            return Incoming(payload["id"], chat, None, FileRef(payload["media"]))
        return Incoming(payload["id"], chat, Inbound.say(payload["text"]))

    def render(self, message: Outbound, to: Recipient) -> Rendered:
        """One part per message: its text, or a template outside the window."""
        self.recipients.append(to)
        inside = to.last_inbound is not None and to.now - to.last_inbound < timedelta(hours=24)
        part = ("text", message.text) if inside else ("template", "notice")
        return Rendered([part], edit=None)

    def send(self, chat_id: str, payload: Any) -> str:
        """Record the send, or fail as told."""
        self.calls.append("send")
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((chat_id, payload))
        return f"wamid.{len(self.sent)}"

    def edit(self, chat_id: str, message_id: str, payload: Any) -> str:
        """Never called: this transport has no edits."""
        raise AssertionError("edit called on a transport without edits")

    def answer_tap(self, tap_id: str, text: str | None = None, alert: bool = False) -> None:
        """Never called: taps here carry no id."""
        raise AssertionError("answer_tap called for a tap without id")

    def fetch(self, file: FileRef, limit: int) -> bytes:
        """Record the fetch; fail as told."""
        self.fetches.append((file.id, limit))
        if self.fetch_error is not None:
            raise self.fetch_error
        return b"not an image"

    def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
def transport() -> FakeTransport:
    """A WhatsApp-shaped transport."""
    return FakeTransport()


@pytest.fixture
def delivery(loket: Loket, transport: FakeTransport) -> Delivery:
    """The shared layer on the fake transport."""
    assert isinstance(transport, Transport)
    return Delivery(loket, transport)


def outbox(loket: Loket) -> list[OutboxMessage]:
    """The fake channel's outbox rows, oldest first."""
    with loket.sessions() as session:
        return list(
            session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.channel == "fake")
                .order_by(OutboxMessage.id)
            ).scalars()
        )


def queue(loket: Loket, text: str) -> None:
    """Queue a notice for the chat (as a payment confirmation would)."""
    with loket.sessions() as session, session.begin():
        payload = {**Outbound(text).to_payload(), "locale": "id"}
        queue_message(session, "fake", CHAT, payload, loket.now(session))


def test_a_message_is_applied_once_and_answered_inside_the_window(
    delivery: Delivery, transport: FakeTransport, loket: Loket, clock: FakeClock
) -> None:
    assert delivery.accept({"id": "m1", "chat": CHAT, "text": "/start"}) == (CHAT, True)
    assert delivery.accept({"id": "m1", "chat": CHAT, "text": "/start"}) == (CHAT, False)
    assert delivery.drain(CHAT) == 1
    assert transport.sent and all(kind == "text" for _chat, (kind, _t) in transport.sent)
    assert transport.recipients[0].last_inbound == clock.now  # the turn's time, read back
    assert delivery.drain(CHAT) == 0  # applied once
    # A day later the person has not written: a notice goes as a template.
    clock.advance(hours=25)
    queue(loket, "Pembayaran Anda sudah kami terima.")
    before = len(transport.sent)
    assert delivery.deliver_pending() == 1
    assert transport.sent[before:] == [(CHAT, ("template", "notice"))]


def test_a_tap_without_tap_answers_or_edits_is_answered_with_a_new_message(
    delivery: Delivery, transport: FakeTransport
) -> None:
    delivery.handle({"id": "m1", "chat": CHAT, "text": "/start"})
    before = len(transport.sent)
    delivery.handle({"id": "m2", "chat": CHAT, "button": "/bantuan", "context": "wamid.1"})
    assert len(transport.sent) > before  # no edit, no tap answer: a message of its own


def test_unreadable_payloads_are_not_stored(delivery: Delivery, loket: Loket) -> None:
    assert delivery.accept({"chat": CHAT}) == (None, False)
    with loket.sessions() as session:
        assert session.execute(select(InboxUpdate)).first() is None


def test_send_failures_are_retried_set_aside_or_stop_a_blocked_chat(
    delivery: Delivery, transport: FakeTransport, loket: Loket, clock: FakeClock
) -> None:
    queue(loket, "satu")
    transport.failures = [RetryLater("NetworkError")]
    assert delivery.flush(CHAT) == 0
    [row] = outbox(loket)
    assert row.attempts == 1 and row.sent_at is None and row.failed_at is None
    assert delivery.flush(CHAT) == 0  # waits for its backoff
    clock.advance(seconds=send_backoff(1).total_seconds())
    assert delivery.flush(CHAT) == 1
    assert outbox(loket)[0].message_id == "wamid.1"

    queue(loket, "dua")
    queue(loket, "tiga")
    transport.failures = [Refused("BadRequest")]
    assert delivery.flush(CHAT) == 1  # "dua" set aside for good, "tiga" still goes
    rows = outbox(loket)
    assert rows[1].failure == "rejected" and rows[2].sent_at is not None

    queue(loket, "empat")
    queue(loket, "lima")
    transport.failures = [ChatBlocked("Forbidden")]
    assert delivery.flush(CHAT) == 0
    assert [row.failure for row in outbox(loket)[3:]] == ["blocked", "blocked"]
    with loket.sessions() as session:
        assert session.get(InactiveChat, ("fake", CHAT)) is not None
    queue(loket, "enam")
    calls = len(transport.calls)
    assert delivery.flush(CHAT) == 0 and len(transport.calls) == calls  # nothing tried


def test_flood_control_holds_the_row_until_retry_after(
    delivery: Delivery, transport: FakeTransport, loket: Loket, clock: FakeClock
) -> None:
    queue(loket, "satu")
    transport.failures = [RetryLater("RetryAfter", retry_after=0.01)]
    assert delivery.flush(CHAT) == 0
    [row] = outbox(loket)
    assert row.attempts == 0  # not counted as a failure
    assert row.claimed_until is not None
    until = (
        row.claimed_until.replace(tzinfo=None) if row.claimed_until.tzinfo else row.claimed_until
    )
    now = clock.now.replace(tzinfo=None)
    assert until - now == timedelta(seconds=0.01)
    clock.advance(seconds=1)
    assert delivery.flush(CHAT) == 1


def test_files_are_fetched_with_the_limit_and_network_failures_wait(
    delivery: Delivery, transport: FakeTransport, loket: Loket
) -> None:
    delivery.handle({"id": "m1", "chat": CHAT, "text": "/start"})
    transport.fetch_error = RetryLater("NetworkError")
    delivery.accept({"id": "m2", "chat": CHAT, "media": "media-1"})
    with pytest.raises(RetryLater):
        delivery.drain(CHAT)
    assert transport.fetches == [("media-1", loket.settings.max_upload_bytes)]
    with loket.sessions() as session:
        row = session.execute(select(InboxUpdate).where(InboxUpdate.key == "fake:m2")).scalar_one()
        assert row.applied_at is None and row.attempts == 0  # waits, not counted
    transport.fetch_error = TooLarge(loket.settings.max_upload_bytes + 1)
    assert delivery.drain(CHAT) == 1  # applied as a file too large: the step says so
    with loket.sessions() as session:
        row = session.execute(select(InboxUpdate).where(InboxUpdate.key == "fake:m2")).scalar_one()
        assert row.applied_at is not None


def test_the_recipient_knows_nothing_of_the_window_when_the_transport_has_none(
    loket: Loket,
) -> None:
    transport = FakeTransport(limits=Limits(per_second=1000, per_chat=1000, text=300))
    delivery = Delivery(loket, transport)
    delivery.handle({"id": "m1", "chat": CHAT, "text": "/start"})
    assert transport.recipients and all(r.last_inbound is None for r in transport.recipients)
    assert isinstance(transport.recipients[0].now, datetime)
