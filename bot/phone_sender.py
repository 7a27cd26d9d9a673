"""Sending one-time codes by SMS or WhatsApp: queued in the outbox, delivered off the turn.

A turn never talks to the gateway: `OutboxSender` writes the message to the outbox in the
turn's own transaction (channel "sms", the number as the chat), and `PhoneDelivery` sends it
after commit on a thread of its own (kicked by the turn, and by every worker round for what a
crash or a failure left), through the process's `PhoneSender`. A slow or failing gateway
therefore never holds a turn, a conversation lock or SQLite's write lock. A failed send is
retried with backoff; a message whose code has expired (10 minutes) is set aside unsent, and
a delivered message's text (the code) is wiped from the outbox at once.

Senders: `HttpGatewaySender`, a generic HTTP SMS/WhatsApp gateway configured from the
environment (`LOKET_SMS_GATEWAY_URL`, `LOKET_SMS_GATEWAY_TOKEN`; README, "One-time codes");
`TerminalSender`, the embedded default, which prints the code on the terminal (stdout, never
the log); `RecordingSender` for tests.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TextIO

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from bot.core.ports import PhoneSender as PhoneSender  # the port this module implements
from bot.settings import Settings
from storage.booking import (
    aware,
    claim_outbox,
    mark_sent,
    pending_chats,
    queue_message,
    release_claim,
)
from storage.models import OutboxMessage
from storage.outbox import SMS_CHANNEL, count_failure, set_aside
from storage.phones import CODE_LIFETIME

log = logging.getLogger(__name__)

CLAIM_FOR = timedelta(seconds=60)  # longer than a gateway request may take
MAX_SEND_ATTEMPTS = 6
FIRST_RETRY = timedelta(seconds=5)
LAST_RETRY = timedelta(minutes=2)


class TerminalSender:
    """The embedded default: prints the message for the person at the terminal.

    Written to stdout, not to the log: a code is a secret, and logs are kept and shipped.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out

    def send(self, phone: str, text: str) -> None:
        """Print the message as an SMS would show it."""
        out = self.out or sys.stdout
        print(f"[SMS ke {phone}] {text}", file=out, flush=True)


class GatewayError(Exception):
    """The gateway did not accept a message (its HTTP status, never the message's text)."""


class HttpGatewaySender:
    """A generic HTTP SMS/WhatsApp gateway: `POST <url>` with `Authorization: Bearer <token>`
    and the JSON body `{"to": "+62812...", "text": "..."}`; any 2xx is accepted, anything else
    (or no answer within the timeout) raises and the outbox retries.

    Most providers (or a small adapter in front of them) take this shape; the README says how
    to plug one in.
    """

    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.client = httpx.Client(timeout=timeout, headers=headers)

    def send(self, phone: str, text: str) -> None:
        """Post the message; raise GatewayError unless the gateway answers 2xx."""
        try:
            answer = self.client.post(self.url, json={"to": phone, "text": text})
        except httpx.HTTPError as error:
            raise GatewayError(type(error).__name__) from None
        if not answer.is_success:
            raise GatewayError(f"HTTP {answer.status_code}")

    def close(self) -> None:
        """Close the HTTP client's connections."""
        self.client.close()


class RecordingSender:
    """Keeps every message sent, for tests."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def send(self, phone: str, text: str) -> None:
        """Record the message."""
        with self._lock:
            self.sent.append((phone, text))

    def last_code(self, phone: str) -> str:
        """Return the digits of the last message sent to `phone`."""
        for to, text in reversed(self.sent):
            if to == phone:
                return "".join(ch for ch in text.split(":", 1)[1].split(".")[0] if ch.isdigit())
        raise LookupError("nothing was sent to that number")


def make_phone_sender(settings: Settings) -> PhoneSender:
    """Return the configured gateway's sender, else the terminal's."""
    if settings.sms_gateway_url:
        return HttpGatewaySender(
            settings.sms_gateway_url, settings.sms_gateway_token, settings.sms_gateway_timeout
        )
    return TerminalSender()


class OutboxSender:
    """A turn's sender: queues the message in the outbox, in the turn's transaction."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.queued = False  # the turn queued a message: deliver after its commit

    def send(self, phone: str, text: str) -> None:
        """Queue `text` for `phone`; it is delivered once the turn commits."""
        queue_message(self.session, SMS_CHANNEL, phone, {"text": text, "code": True}, self.now)
        self.queued = True


def send_backoff(attempts: int) -> timedelta:
    """How long to wait after the n-th failed send: 5 s, doubling, at most 2 minutes."""
    doublings = min(max(attempts - 1, 0), 10)
    return min(FIRST_RETRY * (1 << doublings), LAST_RETRY)


class PhoneDelivery:
    """Delivers the queued SMS/WhatsApp messages through the process's sender, off the turn
    (one thread of its own, started on the first kick)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        now: Callable[[Session], datetime],
        sender: PhoneSender,
    ) -> None:
        self.sessions = sessions
        self.now = now
        self.sender = sender
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loket-sms")

    def kick(self) -> Future[int]:
        """Deliver what waits, on the delivery thread; the future says how many were sent
        (after every earlier kick's delivery: one thread, in order)."""
        return self.thread.submit(self.deliver_safely)

    def deliver_safely(self) -> int:
        """`deliver_pending` for the thread: a failure is logged; the worker tries again."""
        try:
            return self.deliver_pending()
        except Exception as error:
            log.warning("phone message delivery failed: %s", type(error).__name__)
            return 0

    def deliver_pending(self) -> int:
        """Send every number's waiting messages in order; return how many were sent."""
        with self.sessions() as session:
            phones = pending_chats(session, SMS_CHANNEL)
        return sum(self._deliver(phone) for phone in phones)

    def _deliver(self, phone: str) -> int:
        with self.sessions() as session, session.begin():
            now = self.now(session)
            rows = claim_outbox(session, SMS_CHANNEL, phone, now, CLAIM_FOR)
            created = {
                row.id: aware(row.created_at)
                for row in session.query(OutboxMessage).filter(
                    OutboxMessage.id.in_([row_id for row_id, _payload in rows])
                )
            }
        sent = 0
        for position, (row_id, payload) in enumerate(rows):
            if payload.get("code") and created[row_id] + CODE_LIFETIME <= now:
                with self.sessions() as session, session.begin():
                    set_aside(session, [row_id], "expired", now)
                    _wipe(session, row_id)
                continue  # the code died unsent: sending it now would only confuse
            try:
                self.sender.send(phone, str(payload.get("text", "")))
            except Exception as error:
                self._failed([r for r, _p in rows[position:]], error)
                return sent
            with self.sessions() as session, session.begin():
                mark_sent(session, row_id, "0", self.now(session))
                _wipe(session, row_id)
            sent += 1
        return sent

    def _failed(self, row_ids: list[int], error: Exception) -> None:
        """Count a failed send of `row_ids[0]`; retry it later, or set it aside at the last."""
        with self.sessions() as session, session.begin():
            now = self.now(session)
            attempts = count_failure(session, row_ids[0])
            if attempts >= MAX_SEND_ATTEMPTS:
                set_aside(session, [row_ids[0]], "gave_up", now)
                _wipe(session, row_ids[0])
                release_claim(session, row_ids[1:])
            else:
                release_claim(session, row_ids, now + send_backoff(attempts))
        # The number and the text stay out of the log: the row id and the kind say enough.
        kind = str(error) if isinstance(error, GatewayError) else type(error).__name__
        log.warning("phone message send failed row=%s attempt=%s: %s",
                    row_ids[0], attempts, kind)  # fmt: skip

    def close(self) -> None:
        """Finish the delivery in progress and stop the thread."""
        self.thread.shutdown(wait=True, cancel_futures=True)
        close = getattr(self.sender, "close", None)
        if callable(close):
            close()


def _wipe(session: Session, row_id: int) -> None:
    """Drop a message's text (a one-time code) once it is delivered or given up on."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row_id)
        .values(payload={"text": ""})
        .execution_options(synchronize_session=False)
    )
