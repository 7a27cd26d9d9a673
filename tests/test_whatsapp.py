"""End to end: signed webhooks through the real Flask app, the real delivery layer and the real
Graph API client, against a fake Graph API on 127.0.0.1 (tests/fake_whatsapp.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bot.channels.whatsapp import WhatsAppTransport
from bot.channels.whatsapp_api import GraphError
from bot.channels.whatsapp_render import (
    BODY_LIMIT,
    BUTTON_TITLE,
    ROW_DESCRIPTION,
    ROW_TITLE,
    ROWS,
    render,
)
from bot.core.messages import Choice, Expect, Outbound
from bot.delivery.layer import Delivery
from bot.delivery.transport import ChatBlocked, Refused, RetryLater
from bot.flows.subscription import announcement_payload
from bot.load import LoadGauge, Reading
from bot.payments import apply_notice
from bot.runtime import Runtime
from bot.service import Loket
from bot.settings import Settings
from bot.shared import SharedState
from bot.web import create_app
from storage.booking import queue_message
from storage.models import (
    Application,
    Conversation,
    InboxUpdate,
    Office,
    OutboxMessage,
    PhoneVerification,
    ProcessedEvent,
    WhatsAppStatus,
)
from storage.privacy import erase_chat
from storage.subscriptions import announce, subscribe
from storage.whatsapp import status_of
from tests.conftest import FakeClock
from tests.fake_whatsapp import (
    APP_SECRET,
    PHONE_ID,
    TOKEN,
    VERIFY_TOKEN,
    FakeWhatsApp,
    Sent,
    Webhooks,
)
from tests.test_images import minimal_pdf
from tests.transcript import ADULT_NEW, photo_bytes

WA = "6281234567890"  # the applicant's WhatsApp id: their number


@dataclass
class WhatsApp:
    """The channel under test: the service, its delivery, the web app and the fake API."""

    loket: Loket
    delivery: Delivery
    client: FlaskClient
    fake: FakeWhatsApp
    hooks: Webhooks
    clock: FakeClock

    def post(self, *messages: dict[str, Any], statuses: list[dict[str, Any]] = (),  # type: ignore[assignment]
             secret: str | None = None, signed: bool = True) -> int:  # fmt: skip
        """POST one webhook carrying these messages and statuses; return the status code."""
        body = self.hooks.body(list(messages), list(statuses))
        headers = self.hooks.headers(body, secret)
        if not signed:
            headers.pop("X-Hub-Signature-256")
        return self.client.post("/whatsapp/webhook", data=body, headers=headers).status_code

    def step(self, wa_id: str = WA) -> str | None:
        """The conversation's step (for the driver, not for assertions on behaviour)."""
        with self.loket.sessions() as session:
            conversation = session.execute(
                select(Conversation).where(
                    Conversation.channel == "whatsapp", Conversation.user_ref == wa_id
                )
            ).scalar_one_or_none()
            return None if conversation is None else conversation.state.get("step")

    def last(self, wa_id: str = WA) -> Sent:
        """The last message this person received."""
        return self.fake.last(wa_id)

    def choose(self, title: str, wa_id: str = WA) -> int:
        """Press a button or choose a list row of the last message by its title."""
        return self.post(self.hooks.choose(wa_id, self.fake.last(wa_id), title))

    def photo(self, tag: str, wa_id: str = WA) -> int:
        """Send a document photo."""
        media_id = self.fake.add_media(photo_bytes(f"{wa_id}-{tag}"))
        return self.post(self.hooks.image(wa_id, media_id))

    def count(self, model: Any) -> int:
        """Rows of a table."""
        with self.loket.sessions() as session:
            return int(session.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.fixture
def fake() -> Iterator[FakeWhatsApp]:
    """A fake Graph API server for this test."""
    server = FakeWhatsApp().start()
    yield server
    server.stop()


def configured(settings: Settings, fake: FakeWhatsApp) -> Settings:
    """Settings of a deployment with WhatsApp pointed at the fake server."""
    return replace(
        settings,
        whatsapp_token=TOKEN,
        whatsapp_phone_id=PHONE_ID,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        whatsapp_api_base=fake.base_url,
        whatsapp_chat_rate=1000,  # pacing has its own tests; transcripts need no waiting
    )


@pytest.fixture
def whatsapp(
    fake: FakeWhatsApp,
    settings: Settings,
    loket: Loket,
    clock: FakeClock,
    shared_state: SharedState,
) -> Iterator[WhatsApp]:
    """The WhatsApp channel of a Loket web app pointed at the fake server."""
    ready = configured(settings, fake)
    service = Loket(ready, db=loket.db, clock=clock, shared=shared_state)
    delivery = Delivery(service, WhatsAppTransport(ready))
    runtime = Runtime(service, [delivery])
    app = create_app(ready, service, runtime=runtime)
    yield WhatsApp(service, delivery, app.test_client(), fake, Webhooks(clock), clock)
    runtime.close(service=False)
    service.image_checks.shutdown(wait=True)


def answer(channel: WhatsApp, step: str, plan: dict[str, str]) -> None:
    """Do what an applicant does at a step: a photo, their own contact, a choice or text."""
    if step.startswith("doc_"):
        assert channel.photo(step) == 200
        return
    if step == "phone":  # their own contact card: the number WhatsApp verified
        assert channel.post(channel.hooks.contact(WA, "+62 812-3456-7890", WA)) == 200
        return
    wanted = plan[step]
    options = channel.last().options
    match = next((t for t, _id in options if t.casefold().startswith(wanted.casefold())), None)
    if match is not None:
        assert channel.choose(match) == 200
    else:
        assert channel.post(channel.hooks.text(WA, wanted)) == 200


PLAN = {
    **ADULT_NEW,
    "consent": "Saya setuju",
    "category": "Dewasa",
    "service": "Reguler",
    "had_passport": "Belum pernah",
    "passport_kind": "Paspor elektronik",
    "validity": "10 tahun",
    "travel_purpose": "Wisata",
    "supporting_kind": "Akta kelahiran",
    "email": "Lewati",
}


def register(channel: WhatsApp) -> None:
    """Register from /daftar to the summary and submit it."""
    assert channel.post(channel.hooks.text(WA, "/daftar")) == 200
    assert "UU PDP" in channel.last().text
    for _turn in range(40):
        step = channel.step()
        if step == "summary":
            break
        assert step is not None
        answer(channel, step, PLAN)
        assert channel.step() != step, channel.fake.texts(WA)[-3:]
    assert "Ringkasan pendaftaran" in channel.last().text
    assert channel.choose("Benar, kirim") == 200
    assert "Nomor pendaftaran: LK-" in channel.fake.texts(WA)[-1]


def book(channel: WhatsApp) -> str:
    """Book the first free window at the nearest office; return the billing code."""
    ask_location = channel.last()
    assert ask_location.interactive["type"] == "location_request_message"
    assert channel.post(channel.hooks.location(WA, -6.92, 107.60)) == 200
    offices = channel.last()
    assert offices.options[0][0].startswith("Kantor Imigrasi")
    # A row title is cut to 24 characters; the description carries the whole name.
    assert all(len(title) <= ROW_TITLE for title, _id in offices.options)
    assert channel.choose(offices.options[0][0]) == 200
    assert channel.choose(channel.last().options[0][0]) == 200  # the first date
    assert channel.choose(channel.last().options[0][0]) == 200  # the first window
    billing = next(text for text in channel.fake.texts(WA) if "Kode billing:" in text)
    return billing.split("Kode billing: ")[1].split("\n")[0].replace(" ", "")


def test_registration_and_booking_through_buttons_lists_and_photos(whatsapp: WhatsApp) -> None:
    assert whatsapp.post(whatsapp.hooks.text(WA, "/start")) == 200
    first = whatsapp.last()
    assert "Apa yang ingin Anda lakukan?" in first.text
    assert first.kind == "interactive"  # the menu as a list (its labels are long)
    register(whatsapp)
    # Every choice went out within WhatsApp's limits.
    for sent in whatsapp.fake.to(WA):
        if sent.interactive.get("type") == "button":
            assert len(sent.options) <= 3
            assert all(len(title) <= BUTTON_TITLE for title, _id in sent.options)
        if sent.interactive.get("type") == "list":
            assert len(sent.options) <= ROWS
        if sent.kind == "interactive":
            assert len(sent.text) <= BODY_LIMIT
    code = book(whatsapp)
    # No number was asked for: WhatsApp's sender number is the verified one.
    assert not any("Sebelum kursi ditahan" in text for text in whatsapp.fake.texts(WA))
    with whatsapp.loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        assert application.channel == "whatsapp"
        assert [d.kind for d in application.documents] == ["ktp", "kk", "supporting"]
        proof = session.get(PhoneVerification, ("whatsapp", WA))
        assert proof is not None and (proof.phone, proof.method) == ("+6281234567890", "whatsapp")
        now = whatsapp.loket.now(session)
    # Every photo was looked up, then downloaded through the media endpoint.
    assert len(whatsapp.fake.downloads) == 3 and whatsapp.fake.lookups == whatsapp.fake.downloads

    apply_notice(whatsapp.loket, reference="WA-1", code=code, amount=950_000, paid_at=now)
    assert whatsapp.delivery.flush_pending() == 1
    confirmed, qr = whatsapp.fake.to(WA)[-2:]
    assert confirmed.kind == "text" and "Pembayaran diterima" in confirmed.text
    assert qr.kind == "image"  # the check-in QR code, uploaded first
    assert qr.body["image"]["id"] in whatsapp.fake.uploads


def test_the_verification_handshake(whatsapp: WhatsApp) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    answer = whatsapp.client.get("/whatsapp/webhook", query_string=query)
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "1158201444")
    wrong = whatsapp.client.get(
        "/whatsapp/webhook", query_string={**query, "hub.verify_token": "x"}
    )
    assert wrong.status_code == 403 and "1158201444" not in wrong.get_data(as_text=True)
    not_subscribe = whatsapp.client.get(
        "/whatsapp/webhook", query_string={**query, "hub.mode": "unsubscribe"}
    )
    assert not_subscribe.status_code == 403


def test_a_bad_or_missing_signature_is_refused_and_nothing_stored(whatsapp: WhatsApp) -> None:
    message = whatsapp.hooks.text(WA, "/daftar")
    assert whatsapp.post(message, secret="not-the-app-secret") == 403
    assert whatsapp.post(message, signed=False) == 401
    body = whatsapp.hooks.body([message])
    tampered = body.replace(b"/daftar", b"/status")
    headers = whatsapp.hooks.headers(body)  # signed for the other body
    answer = whatsapp.client.post("/whatsapp/webhook", data=tampered, headers=headers)
    assert answer.status_code == 403
    for model in (InboxUpdate, ProcessedEvent, Conversation, OutboxMessage):
        assert whatsapp.count(model) == 0
    assert whatsapp.fake.sent == []
    assert whatsapp.post(message) == 200  # the same message, signed: taken
    assert whatsapp.count(InboxUpdate) == 1 and "UU PDP" in whatsapp.last().text


def test_a_replayed_webhook_is_applied_once(whatsapp: WhatsApp) -> None:
    assert whatsapp.post(whatsapp.hooks.text(WA, "/daftar")) == 200
    agree = whatsapp.hooks.choose(WA, whatsapp.last(), "Saya setuju")
    for _attempt in range(4):
        assert whatsapp.post(agree) == 200
    assert whatsapp.count(InboxUpdate) == 2
    assert whatsapp.step() == "category"
    assert len(whatsapp.fake.sent) == 2, whatsapp.fake.texts(WA)  # one answer to the four


def test_statuses_are_recorded_once_and_never_go_back(whatsapp: WhatsApp) -> None:
    assert whatsapp.post(whatsapp.hooks.text(WA, "/start")) == 200
    sent = whatsapp.last().id
    hooks = whatsapp.hooks
    assert whatsapp.post(statuses=[hooks.status(sent, WA, "delivered")]) == 200
    assert whatsapp.post(statuses=[hooks.status(sent, WA, "sent")]) == 200  # late, older news
    with whatsapp.loket.sessions() as session:
        assert status_of(session, sent) == ("delivered", None)
    assert whatsapp.post(statuses=[hooks.status(sent, WA, "read")] * 2) == 200
    with whatsapp.loket.sessions() as session:
        assert status_of(session, sent) == ("read", None)
    assert whatsapp.count(WhatsAppStatus) == 1
    # Meta accepted a message and reports later that it was outside the window: recorded.
    assert whatsapp.post(statuses=[hooks.status("wamid.OLD", WA, "failed", 131047)]) == 200
    with whatsapp.loket.sessions() as session:
        assert status_of(session, "wamid.OLD") == ("failed", 131047)
    assert whatsapp.count(InboxUpdate) == 1  # statuses are no messages


def test_a_notice_outside_the_24_hour_window_goes_as_a_template(whatsapp: WhatsApp) -> None:
    register(whatsapp)
    code = book(whatsapp)
    whatsapp.clock.advance(hours=1)
    with whatsapp.loket.sessions() as session:
        now = whatsapp.loket.now(session)
    # Inside the window (an hour after the last message): free-form.
    apply_notice(whatsapp.loket, reference="WA-2", code=code, amount=950_000, paid_at=now)
    assert whatsapp.delivery.flush_pending() == 1
    assert whatsapp.fake.to(WA)[-2].kind == "text"
    # A day later, nothing written meanwhile: the reminder goes as its template.
    whatsapp.clock.advance(hours=24)
    with whatsapp.loket.sessions() as session, session.begin():
        reminder = Outbound("Pengingat: besok jadwal Anda.\n\nKode booking: X", qr="X",
                            kind="reminder")  # fmt: skip
        queue_message(session, "whatsapp", WA, {**reminder.to_payload(), "locale": "id"},
                      whatsapp.loket.now(session))  # fmt: skip
    assert whatsapp.delivery.flush_pending() == 1
    template = whatsapp.last()
    assert template.kind == "template"
    assert template.body["template"]["name"] == "loket_pengingat"
    assert template.body["template"]["language"] == {"code": "id"}
    assert template.text == "Pengingat: besok jadwal Anda. · Kode booking: X"  # one line
    # They write again: the window opens and replies are free-form.
    assert whatsapp.post(whatsapp.hooks.text(WA, "/status")) == 200
    assert whatsapp.last().kind != "template"


def test_an_announcement_reaches_whatsapp_subscribers_as_a_template(whatsapp: WhatsApp) -> None:
    whatsapp.loket.prepare_demo()
    with whatsapp.loket.sessions() as session, session.begin():
        office = session.execute(select(Office).where(Office.code == "bandung")).scalar_one()
        now = whatsapp.loket.now(session)
        subscribe(session, "whatsapp", "6281200000001", office.id, "id", now)
        subscribe(session, "whatsapp", "6281200000002", office.id, "en", now)
        announce(session, office.id, None, "Sesi simpatik Sabtu, kuota 30.", now,
                 announcement_payload)  # fmt: skip
    assert whatsapp.delivery.flush_pending(grace=timedelta(0)) == 2
    indonesian, english = whatsapp.last("6281200000001"), whatsapp.last("6281200000002")
    assert indonesian.body["template"]["name"] == "loket_pengumuman"
    assert indonesian.body["template"]["language"] == {"code": "id"}
    assert english.body["template"]["language"] == {"code": "en"}
    assert "Sesi simpatik Sabtu, kuota 30." in indonesian.text and "/berhenti" in indonesian.text


def long_question(count: int) -> Outbound:
    """A question with `count` choices whose labels are longer than a row title."""
    choices = tuple(
        Choice(f"pilih:{n}", f"Kantor Imigrasi Nomor {n:02d} Kota") for n in range(count)
    )
    return Outbound("Ada catatan.\n\nPilih kantor:", choices, Expect.CHOICE)


def test_a_long_list_is_paged_with_lainnya_and_every_row_can_be_chosen(whatsapp: WhatsApp) -> None:
    assert whatsapp.post(whatsapp.hooks.text(WA, "/start")) == 200
    with whatsapp.loket.sessions() as session, session.begin():
        queue_message(session, "whatsapp", WA, {**long_question(25).to_payload(), "locale": "id"},
                      whatsapp.loket.now(session))  # fmt: skip
    whatsapp.delivery.flush(WA)
    first = whatsapp.last()
    assert first.interactive["type"] == "list" and len(first.options) == ROWS
    sections = first.interactive["action"]["sections"]
    assert [len(s["rows"]) for s in sections] == [9, 1]
    assert sections[0]["rows"][0]["title"] == "Kantor Imigrasi Nomor 0…"
    assert sections[0]["rows"][0]["description"] == "Kantor Imigrasi Nomor 00 Kota"
    assert all(
        len(r.get("description", "")) <= ROW_DESCRIPTION for s in sections for r in s["rows"]
    )
    assert first.options[-1][0] == "Lainnya (10–18 dari 25)"

    more = whatsapp.hooks.choose(WA, first, "Lainnya (10–18 dari 25)")
    assert whatsapp.post(more) == 200
    assert whatsapp.post(more) == 200  # a replay shows nothing twice
    second = whatsapp.last()
    assert second.text == "Pilih kantor:"  # the question, without the notes before it
    assert [i for _t, i in second.options][:9] == [f"pilih:{n}" for n in range(9, 18)]
    assert second.options[-1][0] == "Lainnya (19–25 dari 25)"
    assert whatsapp.post(whatsapp.hooks.choose(WA, second, second.options[-1][0])) == 200
    third = whatsapp.last()
    assert [i for _t, i in third.options] == [f"pilih:{n}" for n in range(18, 25)]
    assert len(whatsapp.fake.to(WA)) == 4  # the menu and three pages: no turn ran


def test_a_medium_too_large_is_refused_before_download(whatsapp: WhatsApp) -> None:
    to_documents(whatsapp)
    media_id = whatsapp.fake.add_media(b"\xff\xd8" + b"0" * 100, size=25 * 1024 * 1024)
    assert whatsapp.post(whatsapp.hooks.image(WA, media_id)) == 200
    assert "melebihi batas 10 MB" in whatsapp.last().text
    assert whatsapp.fake.lookups == [media_id] and whatsapp.fake.downloads == []
    assert whatsapp.step() == "doc_ktp"


def to_documents(whatsapp: WhatsApp) -> None:
    """Register up to the first document step."""
    assert whatsapp.post(whatsapp.hooks.text(WA, "/daftar")) == 200
    for _turn in range(30):
        step = whatsapp.step()
        if step == "doc_ktp":
            return
        answer(whatsapp, step or "", PLAN)
    raise AssertionError("never reached the documents")


def test_a_photo_sent_as_a_document_is_taken_and_a_pdf_is_refused(whatsapp: WhatsApp) -> None:
    to_documents(whatsapp)
    pdf = whatsapp.fake.add_media(minimal_pdf(), "application/pdf")
    assert whatsapp.post(whatsapp.hooks.document(WA, pdf, "ktp.pdf")) == 200
    assert whatsapp.step() == "doc_ktp"
    assert "File PDF tidak bisa kami terima" in whatsapp.last().text
    scan = whatsapp.fake.add_media(photo_bytes("scan"), "image/jpeg")
    assert whatsapp.post(whatsapp.hooks.document(WA, scan, "ktp.jpg", "image/jpeg")) == 200
    assert whatsapp.step() == "doc_kk"


def test_graph_api_failures_tell_the_delivery_layer_what_to_do() -> None:
    throughput = WhatsAppTransport._error(GraphError(429, 130429, 2.0), "send")
    assert isinstance(throughput, RetryLater) and throughput.retry_after == 2.0
    pair = WhatsAppTransport._error(GraphError(400, 131056), "send")  # one person, too fast
    assert isinstance(pair, RetryLater) and pair.retry_after is None
    assert isinstance(WhatsAppTransport._error(GraphError(400, 131026), "send"), ChatBlocked)
    assert isinstance(WhatsAppTransport._error(GraphError(400, 131009), "send"), Refused)
    assert isinstance(WhatsAppTransport._error(GraphError(401, 190), "send"), RetryLater)
    assert isinstance(WhatsAppTransport._error(GraphError(503, 1), "send"), RetryLater)
    assert isinstance(WhatsAppTransport._error(GraphError(0), "send"), RetryLater)  # network


def test_someone_elses_contact_card_counts_as_typed(whatsapp: WhatsApp) -> None:
    transport = whatsapp.delivery.transport
    own = transport.read(whatsapp.hooks.contact(WA, "+62 812-3456-7890", WA))
    other = transport.read(whatsapp.hooks.contact(WA, "+62 813-0000-0000", "6281300000000"))
    assert own is not None and own.event is not None and own.event.kind == "contact"
    assert own.event.text == "+6281234567890"
    assert other is not None and other.event is not None and other.event.kind == "text"


def test_send_failures_are_retried_set_aside_or_hold_the_chat(whatsapp: WhatsApp) -> None:
    assert whatsapp.post(whatsapp.hooks.text(WA, "/start")) == 200
    fake = whatsapp.fake

    def queue(text: str, wa_id: str = WA) -> None:
        with whatsapp.loket.sessions() as session, session.begin():
            queue_message(session, "whatsapp", wa_id, {**Outbound(text).to_payload(),
                          "locale": "id"}, whatsapp.loket.now(session))  # fmt: skip

    def rows() -> list[Any]:
        with whatsapp.loket.sessions() as session:
            return list(session.execute(select(OutboxMessage.failure, OutboxMessage.sent_at)
                                        .order_by(OutboxMessage.id)).all())  # fmt: skip

    fake.fail_next_sends = 1  # a 5xx: retried later, not lost
    queue("satu")
    assert whatsapp.delivery.flush(WA) == 0
    whatsapp.clock.advance(minutes=1)
    assert whatsapp.delivery.flush(WA) == 1 and whatsapp.last().text == "satu"
    fake.throttle_next_sends = 1  # a 429: held until Retry-After, then sent, not counted
    queue("satu lagi")
    assert whatsapp.delivery.flush(WA) == 0
    assert whatsapp.delivery.flush(WA) == 0  # still held (the fake clock has not moved)
    whatsapp.clock.advance(seconds=2)
    assert whatsapp.delivery.flush(WA) == 1 and whatsapp.last().text == "satu lagi"
    with whatsapp.loket.sessions() as session:
        attempts = session.execute(select(OutboxMessage.attempts).order_by(
            OutboxMessage.id.desc()).limit(1)).scalar_one()  # fmt: skip
    assert attempts == 0
    fake.refuse_next_sends = 1  # a 400: that row is set aside, the next goes on
    queue("dua")
    queue("tiga")
    assert whatsapp.delivery.flush(WA) == 1 and whatsapp.last().text == "tiga"
    assert rows()[-2].failure == "rejected"
    fake.undeliverable.add("6281299999999")  # not on WhatsApp: the chat is set aside
    queue("empat", "6281299999999")
    assert whatsapp.delivery.flush("6281299999999") == 0
    assert rows()[-1].failure == "blocked"


def test_rendering_stays_within_whatsapps_limits() -> None:
    short = Outbound("Ya?", (Choice("y", "Ya"), Choice("n", "Tidak")), Expect.CHOICE)
    (buttons,) = render(short)
    assert buttons["interactive"]["type"] == "button"
    four = Outbound("?", tuple(Choice(str(n), str(n)) for n in range(4)), Expect.CHOICE)
    assert render(four)[0]["interactive"]["type"] == "list"  # more than 3: a list
    wordy = Outbound("?", (Choice("a", "Dewasa (17 tahun ke atas)"),), Expect.CHOICE)
    assert render(wordy)[0]["interactive"]["type"] == "list"  # a title over 20: a list
    ten = render(long_question(10))[0]["interactive"]["action"]["sections"]
    assert len(ten) == 1 and len(ten[0]["rows"]) == 10  # ten fit one page
    long_text = "\n".join(f"Baris {n:04d} " + "x" * 90 for n in range(100))  # ~10,000 chars
    parts = render(Outbound(long_text))
    assert [p["type"] for p in parts] == ["text"] * 3
    assert all(len(p["text"]["body"]) <= 4096 for p in parts)
    assert "\n".join(p["text"]["body"] for p in parts) == long_text
    asked = render(Outbound(long_text, short.choices, Expect.CHOICE))
    assert asked[-1]["interactive"]["type"] == "button"
    assert len(asked[-1]["interactive"]["body"]["text"]) <= BODY_LIMIT
    assert all(p["type"] == "text" for p in asked[:-1])


def test_no_token_or_message_text_reaches_the_logs(
    whatsapp: WhatsApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_text = "3174010101900001"
    whatsapp.fake.fail_next_sends = 1
    assert whatsapp.post(whatsapp.hooks.text(WA, secret_text)) == 200
    assert whatsapp.post({"from": WA, "id": "wamid.BAD", "timestamp": "x", "type": "text",
                          "text": {"body": secret_text}}) == 200  # fmt: skip
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert TOKEN not in logged and secret_text not in logged
    assert "unreadable" in logged


def test_a_long_message_id_still_fits_the_inbox_key(whatsapp: WhatsApp) -> None:
    message = whatsapp.hooks.text(WA, "/start")
    message["id"] = "wamid." + "A" * 150
    assert whatsapp.post(message) == 200
    assert whatsapp.post(message) == 200  # the same long id: the same key, applied once
    with whatsapp.loket.sessions() as session:
        keys = session.execute(select(InboxUpdate.key)).scalars().all()
    assert len(keys) == 1 and len(keys[0]) <= 80
    assert len(whatsapp.fake.to(WA)) == 1


def test_erasing_the_chat_forgets_its_statuses(whatsapp: WhatsApp) -> None:
    assert whatsapp.post(whatsapp.hooks.text(WA, "/start")) == 200
    other = "6281200000009"
    statuses = [whatsapp.hooks.status(whatsapp.last().id, WA, "read"),
                whatsapp.hooks.status("wamid.OTHER", other, "delivered")]  # fmt: skip
    assert whatsapp.post(statuses=statuses) == 200
    with whatsapp.loket.sessions() as session, session.begin():
        erase_chat(session, "whatsapp", WA, whatsapp.loket.now(session))
    with whatsapp.loket.sessions() as session:
        left = session.execute(select(WhatsAppStatus.user_ref)).scalars().all()
    assert left == [other]  # the number erased; nobody else's


def test_overloaded_the_webhook_accepts_nothing_and_tells_each_sender_at_once(
    whatsapp: WhatsApp,
) -> None:
    busy = Reading(backlog=5000, latency=0.001)
    whatsapp.client.application.config["LOAD"] = LoadGauge(
        whatsapp.loket.settings, lambda: busy, clock=lambda: 0.0
    )
    hooks = whatsapp.hooks
    assert whatsapp.post(hooks.text(WA, "/daftar"), hooks.text(WA, "halo")) == 200
    assert whatsapp.count(InboxUpdate) == 0 and whatsapp.count(Conversation) == 0
    told = "Layanan sedang ramai. Silakan coba lagi dalam sekitar 2 menit."
    assert whatsapp.fake.texts(WA) == [told]  # once for the two messages
