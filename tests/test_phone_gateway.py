"""One-time codes through the outbox and a real HTTP gateway (a fake one on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.phone_sender import HttpGatewaySender, TerminalSender, make_phone_sender
from bot.service import Loket
from bot.settings import Settings
from bot.shared import SharedState
from bot.worker import run_once
from storage.models import Booking, OutboxMessage, PhoneVerification
from storage.outbox import SMS_CHANNEL
from tests.conftest import FakeClock
from tests.test_release_modes import applicants, ask_dates
from tests.transcript import Chat

TOKEN = "gateway-token-for-tests"


@dataclass
class FakeGateway:
    """An SMS/WhatsApp gateway on 127.0.0.1: records what it is asked to send, answers with
    the statuses queued in `fail` (500 by default once they run out: 200), and, while `hold`
    is clear, keeps each request waiting (a slow provider)."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self) -> list[tuple[str, str]]:
        """Return the (to, text) pairs the gateway accepted (answered 200)."""
        with self.lock:
            return [(r["body"]["to"], r["body"]["text"]) for r in self.received if r["ok"]]


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    fake.hold.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            fake.arrived.set()
            fake.hold.wait(timeout=30)
            with fake.lock:
                status = fake.fail.pop(0) if fake.fail else 200
                fake.received.append({"auth": self.headers.get("Authorization"),
                                      "path": self.path, "body": body,
                                      "ok": status == 200})  # fmt: skip
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "down"}')

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1/messages"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.hold.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def gateway_loket(
    settings: Settings,
    clean_db: Engine,
    clock: FakeClock,
    shared_state: SharedState,
    gateway: FakeGateway,
) -> Iterator[Loket]:
    """The real service with the HTTP gateway configured as a deployment would."""
    configured = replace(settings, sms_gateway_url=gateway.url, sms_gateway_token=TOKEN)
    service = Loket(configured, db=clean_db, clock=clock, shared=shared_state)
    yield service
    gateway.hold.set()
    service.phone_delivery.close()
    service.image_checks.shutdown(wait=True)


def at_the_code_question(loket: Loket, prefix: str) -> tuple[Chat, str]:
    """An applicant who chose a date and window and is asked for their number."""
    (chat,) = applicants(loket, 1, prefix)
    ask_dates(chat)
    chat.say("1")
    chat.say("1")
    assert chat.step() == "verify_phone"
    return chat, chat.phone()


def outbox_rows(loket: Loket) -> list[OutboxMessage]:
    with loket.sessions() as session:
        return list(
            session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.channel == SMS_CHANNEL)
                .order_by(OutboxMessage.id)
            ).scalars()
        )


def test_the_gateway_is_configured_from_the_environment(tmp_path: Any) -> None:
    env = {"LOKET_DATA_DIR": str(tmp_path), "LOKET_SMS_GATEWAY_URL": "http://127.0.0.1:9/sms",
           "LOKET_SMS_GATEWAY_TOKEN": "t", "LOKET_SMS_GATEWAY_TIMEOUT_SECONDS": "3"}  # fmt: skip
    sender = make_phone_sender(Settings.from_env(env))
    assert isinstance(sender, HttpGatewaySender) and sender.url.endswith("/sms")
    assert sender.client.timeout.read == 3 and sender.client.headers["Authorization"] == "Bearer t"
    assert isinstance(make_phone_sender(Settings.from_env({"LOKET_DATA_DIR": str(tmp_path)})),
                      TerminalSender)  # fmt: skip


def test_a_slow_gateway_never_holds_the_turn(gateway_loket: Loket, gateway: FakeGateway) -> None:
    chat, phone = at_the_code_question(gateway_loket, "slow")
    gateway.hold.clear()  # the provider takes its time
    asked = chat.say(phone)
    # The turn answered while the gateway still holds the request: the code is not sent
    # from inside the turn.
    assert chat.step() == "phone_code" and "Ketik kode 6 angka" in asked
    assert gateway.arrived.wait(timeout=30)
    assert gateway.messages() == []
    (row,) = outbox_rows(gateway_loket)
    assert row.sent_at is None and row.user_ref == phone
    # Another applicant's turn goes on meanwhile (no lock held by the delivery).
    (other,) = applicants(gateway_loket, 1, "other")
    assert "Pilih tanggal di" in ask_dates(other)
    gateway.hold.set()
    gateway_loket.deliver_phone_messages()
    ((to, text),) = gateway.messages()
    assert to == phone and text.startswith("Kode Loket Anda: ")
    assert gateway.received[0]["auth"] == f"Bearer {TOKEN}"
    assert gateway.received[0]["path"] == "/v1/messages"
    (row,) = outbox_rows(gateway_loket)
    assert row.sent_at is not None and row.payload == {"text": ""}  # the code is not kept
    code = "".join(ch for ch in text.split(":", 1)[1].split(".")[0] if ch.isdigit())
    assert "Kode billing" in chat.say(code)
    with gateway_loket.sessions() as session:
        proof = session.execute(select(PhoneVerification)).scalar_one()
        assert proof.phone == phone and proof.method == "code"
        assert session.execute(select(Booking.phone)).scalar_one() == phone


def test_a_failing_gateway_is_retried_with_backoff_and_a_dead_code_is_not_sent(
    gateway_loket: Loket, gateway: FakeGateway, clock: FakeClock
) -> None:
    chat, phone = at_the_code_question(gateway_loket, "retry")
    gateway.fail = [500, 503]
    chat.say(phone)
    gateway_loket.deliver_phone_messages()
    assert gateway.messages() == [] and len(gateway.received) == 1
    (row,) = outbox_rows(gateway_loket)
    assert row.sent_at is None and row.attempts == 1
    assert gateway_loket.deliver_phone_messages() == 0  # not before its backoff (5 s)
    assert len(gateway.received) == 1
    clock.advance(seconds=5)
    assert gateway_loket.deliver_phone_messages() == 0  # the second failure: wait 10 s
    clock.advance(seconds=10)
    assert run_once(gateway_loket)["sms_sent"] == 1  # the worker delivers leftovers too
    assert [to for to, _text in gateway.messages()] == [phone]

    # A code whose 10 minutes ran out while the gateway was down is set aside, not sent.
    chat.say("kembali")
    gateway.fail = [500]
    chat.say(phone)
    gateway_loket.deliver_phone_messages()
    clock.advance(minutes=10)
    assert gateway_loket.deliver_phone_messages() == 0
    rows = outbox_rows(gateway_loket)
    assert rows[-1].failure == "expired" and rows[-1].payload == {"text": ""}
    assert len(gateway.messages()) == 1
