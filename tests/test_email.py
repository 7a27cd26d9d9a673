"""Email through the outbox to a local SMTP server (aiosmtpd on 127.0.0.1): the booking
confirmation and the H-1 reminder with an .ics file; retries, and rows set aside."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from bot.mailer import MAX_SEND_ATTEMPTS, Mailer
from bot.phone_sender import RecordingSender
from bot.service import Loket
from bot.worker import run_once
from storage.booking import aware
from storage.models import OutboxMessage
from tests.conftest import FakeClock
from tests.test_booking import pay
from tests.transcript import Chat, billing_code, book, register

WIB = ZoneInfo("Asia/Jakarta")


def free_port() -> int:
    """Return a port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Inbox:
    """What the local SMTP server received; addresses in `refuse` are refused for good."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A local SMTP server on 127.0.0.1 and what it received."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def mailing(
    loket: Loket, clock: FakeClock, smtp: tuple[Inbox, int], sender: RecordingSender
) -> Iterator[Loket]:
    """The service with SMTP settings pointing at the local server (no STARTTLS)."""
    settings = replace(loket.settings, smtp_host="127.0.0.1", smtp_port=smtp[1],
                       smtp_starttls=False, smtp_from="Loket <loket@example.test>",
                       email_rate=1000)  # fmt: skip
    service = Loket(settings, db=loket.db, clock=clock, shared=loket.shared, phone_sender=sender)
    yield service
    service.image_checks.shutdown(wait=True)


def at(clock: FakeClock, day: int, hour: int, minute: int = 0) -> None:
    """Move the fake clock to a WIB moment in November 2026 (kept in UTC)."""
    clock.now = datetime(2026, 11, day, hour, minute, tzinfo=WIB).astimezone(UTC)


def event_of(message: EmailMessage) -> icalendar.Event:
    """Return the one event of a message's .ics attachment."""
    [part] = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert part.get_filename() == "jadwal-paspor.ics"
    calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    [event] = calendar.walk("VEVENT")
    return event


def test_confirmation_and_day_before_reminder_arrive_by_email_with_ics(
    mailing: Loket, clock: FakeClock, smtp: tuple[Inbox, int]
) -> None:
    inbox, _port = smtp
    chat = Chat(mailing, "mail-user")
    register(chat)  # gave Budi@Example.com
    pay(mailing, billing_code(book(chat, day="2")))  # Tuesday 24 November, 08.00 WIB
    assert Mailer(mailing).flush_pending() == 1
    [confirmed] = inbox.messages
    assert confirmed["To"].lower() == "budi@example.com"
    assert confirmed["Subject"] == "Jadwal paspor Anda sudah pasti"
    body = confirmed.get_body(("plain",))
    assert body is not None and "Jadwal Anda sudah pasti" in body.get_content()
    event = event_of(confirmed)
    assert event.decoded("dtstart") == datetime(2026, 11, 24, 8, 0, tzinfo=WIB)
    assert event.decoded("dtend") == datetime(2026, 11, 24, 10, 0, tzinfo=WIB)
    assert "Bandung" in str(event.get("location")) or "Bandung" in str(event.get("summary"))
    assert Mailer(mailing).flush_pending() == 0  # sent once

    at(clock, 23, 10, 0)
    figures = run_once(mailing)
    assert figures["email_sent"] == 1
    reminder = inbox.messages[-1]
    assert reminder["Subject"] == "Pengingat: jadwal paspor Anda besok"
    body = reminder.get_body(("plain",))
    assert body is not None and "https://www.google.com/maps/search/" in body.get_content()
    assert event_of(reminder).decoded("dtstart") == datetime(2026, 11, 24, 8, 0, tzinfo=WIB)
    run_once(mailing)
    assert len(inbox.messages) == 2


def test_no_address_no_email(mailing: Loket, smtp: tuple[Inbox, int]) -> None:
    chat = Chat(mailing, "no-mail")
    register(chat, {"email": "lewati"})
    pay(mailing, billing_code(book(chat, day="2")))
    assert Mailer(mailing).flush_pending() == 0
    with mailing.sessions() as session:
        assert session.execute(select(OutboxMessage).where(OutboxMessage.channel == "email")
                               ).first() is None  # fmt: skip


def test_a_server_that_is_down_is_retried_with_backoff_then_the_row_is_set_aside(
    mailing: Loket, clock: FakeClock, smtp: tuple[Inbox, int]
) -> None:
    chat = Chat(mailing, "mail-down")
    register(chat)
    pay(mailing, billing_code(book(chat, day="2")))
    down = replace(mailing.settings, smtp_port=free_port())
    unreachable = Loket(down, db=mailing.db, clock=clock, shared=mailing.shared)
    try:
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            assert Mailer(unreachable).flush_pending() == 0
            with unreachable.sessions() as session:
                row = session.execute(
                    select(OutboxMessage).where(OutboxMessage.channel == "email")
                ).scalar_one()
            assert row.attempts == attempt
            if attempt < MAX_SEND_ATTEMPTS:
                assert row.failed_at is None and row.claimed_until is not None
                assert Mailer(unreachable).flush_pending() == 0  # not before its retry time
                clock.now = aware(row.claimed_until)
        assert row.failed_at is not None and row.failure == "gave_up"
    finally:
        unreachable.image_checks.shutdown(wait=True)
    assert Mailer(mailing).flush_pending() == 0  # set aside: never sent
    assert smtp[0].messages == []


def test_an_address_refused_for_good_is_set_aside_at_once(
    mailing: Loket, smtp: tuple[Inbox, int]
) -> None:
    inbox, _port = smtp
    inbox.refuse.add("budi@example.com")
    chat = Chat(mailing, "mail-refused")
    register(chat)
    pay(mailing, billing_code(book(chat, day="2")))
    assert Mailer(mailing).flush_pending() == 0
    with mailing.sessions() as session:
        row = session.execute(
            select(OutboxMessage).where(OutboxMessage.channel == "email")
        ).scalar_one()
    assert row.failure == "rejected" and row.attempts == 0
