"""End to end: the real python-telegram-bot HTTP stack against a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from bot.channels.telegram import (
    MAX_APPLY_ATTEMPTS,
    MAX_SEND_ATTEMPTS,
    BotRunner,
    Pacer,
    TelegramChannel,
    Unreadable,
    send_backoff,
    translate,
)
from bot.core.messages import Outbound
from bot.flows.subscription import announcement_payload
from bot.payments import apply_notice
from bot.service import Loket
from bot.settings import Settings
from bot.shared import SharedState
from bot.web import create_app
from bot.worker import run_once
from storage.booking import queue_message
from storage.models import (
    Application,
    InboxUpdate,
    Office,
    OutboxMessage,
    PhoneVerification,
    ProcessedEvent,
)
from storage.outbox import delivery_figures
from storage.subscriptions import announce, subscribe
from tests.conftest import FakeClock
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.test_images import minimal_pdf
from tests.transcript import ADULT_NEW, photo_bytes

ROOT = Path(__file__).resolve().parent.parent
SECRET = "webhook-secret-for-tests"
CHAT = 424242


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    """A fake Bot API server for this test."""
    server = FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture
def telegram(
    fake: FakeTelegram,
    settings: Settings,
    loket: Loket,
    clock: FakeClock,
    shared_state: SharedState,
) -> Iterator[TelegramChannel]:
    """The Telegram channel of a Loket pointed at the fake server."""
    configured = replace(
        settings,
        telegram_token=TOKEN,
        telegram_base_url=fake.base_url,
        telegram_base_file_url=fake.base_file_url,
        telegram_webhook_secret=SECRET,
        telegram_chat_rate=1000,  # pacing has its own test; transcripts need no waiting
    )
    service = Loket(configured, db=loket.db, clock=clock, shared=shared_state)
    runner = BotRunner(configured)
    yield TelegramChannel(service, runner)
    runner.close()


def current_step(channel: TelegramChannel, chat: int) -> str | None:
    """Read the conversation's step (for the driver, not for assertions on behaviour)."""
    from storage.models import Conversation

    with channel.loket.sessions() as session:
        conversation = session.execute(
            select(Conversation).where(Conversation.user_ref == str(chat))
        ).scalar_one()
        return conversation.state.get("step")


def answer(fake: FakeTelegram, chat: int, step: str, plan: dict[str, str]) -> None:
    """Queue what an applicant does at a step: a photo, a contact, a button or text."""
    if step.startswith("doc_"):
        fake.photo(chat, photo_bytes(f"{chat}-{step}"))
    elif step == "phone":
        fake.contact(chat, "+62 812-3456-7890")
    else:
        wanted = plan[step]
        labels = [label for label, _data in fake.last(chat).buttons]
        match = next((label for label in labels if label.casefold() == wanted.casefold()), None)
        if match is not None:
            fake.press(chat, match)
        else:
            fake.text(chat, wanted)


def poll(channel: TelegramChannel) -> None:
    """Take what is waiting, once."""
    channel.poll(rounds=1, timeout=0)


def test_polling_registration_with_buttons_contact_and_photos(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    telegram.set_commands()
    languages = [params.get("language_code") for params in fake.methods("setMyCommands")]
    assert sorted(str(code) for code in languages) == ["None", "en"]
    english = next(p for p in fake.methods("setMyCommands") if p.get("language_code") == "en")
    assert {"command": "daftar", "description": "Apply for a passport"} in english["commands"]
    assert {"langganan", "berhenti"} <= {c["command"] for c in english["commands"]}

    fake.text(CHAT, "/start")
    poll(telegram)
    assert fake.texts(CHAT)[0].startswith("Selamat datang di Loket")
    assert "Apa yang ingin Anda lakukan?" in fake.texts(CHAT)[0]  # one message per turn
    assert ("Daftar paspor", "/daftar") in fake.last(CHAT).buttons
    fake.press(CHAT, "Daftar paspor")
    poll(telegram)
    assert "UU PDP" in fake.last(CHAT).text
    # The pressed question was answered and folded with the chosen answer.
    assert fake.methods("answerCallbackQuery")
    assert fake.methods("editMessageText")[-1]["text"].endswith("✓ Daftar paspor")

    plan = {
        **ADULT_NEW,
        "consent": "Saya setuju",
        "category": "Dewasa (17 tahun ke atas)",
        "service": "Reguler",
        "had_passport": "Belum pernah",
        "passport_kind": "Paspor elektronik",
        "validity": "10 tahun",
        "travel_purpose": "Wisata",
        "supporting_kind": "Akta kelahiran",
        "email": "Lewati",
    }
    for _turn in range(40):
        step = current_step(telegram, CHAT)
        if step == "summary":
            break
        assert step is not None
        if step == "phone":
            assert fake.last(CHAT).reply_markup == {
                "keyboard": [[{"text": "Bagikan nomor HP saya", "request_contact": True}]],
                "one_time_keyboard": True, "resize_keyboard": True}  # fmt: skip
        answer(fake, CHAT, step, plan)
        poll(telegram)
        assert current_step(telegram, CHAT) != step, fake.texts(CHAT)[-3:]
    assert "Ringkasan pendaftaran" in fake.last(CHAT).text
    assert "Nomor HP: +6281234567890" in fake.last(CHAT).text
    fake.press(CHAT, "Benar, kirim")
    poll(telegram)
    assert "Nomor pendaftaran: LK-" in fake.last(CHAT).text
    assert fake.last(CHAT).reply_markup == {
        "keyboard": [[{"text": "Bagikan lokasi saya", "request_location": True}]],
        "one_time_keyboard": True, "resize_keyboard": True}  # fmt: skip

    fake.location(CHAT, -6.92, 107.60)
    poll(telegram)
    nearest = fake.last(CHAT).buttons[0][0]
    assert nearest.startswith("Kantor Imigrasi Kelas I TPI Bandung (")
    fake.press(CHAT, nearest)
    poll(telegram)
    fake.press(CHAT, fake.last(CHAT).buttons[0][0])  # the first date
    poll(telegram)
    fake.press(CHAT, fake.last(CHAT).buttons[0][0])  # the first window
    poll(telegram)
    # Before the hold, the account's own number, shared with the button (never typed).
    assert "Sebelum kursi ditahan" in fake.last(CHAT).text
    assert fake.last(CHAT).reply_markup == {
        "keyboard": [[{"text": "Bagikan nomor HP saya", "request_contact": True}]],
        "one_time_keyboard": True, "resize_keyboard": True}  # fmt: skip
    assert not any("Kode billing:" in text for text in fake.texts(CHAT))
    fake.contact(CHAT, "+62 812-3456-7890")
    poll(telegram)
    billing = next(text for text in fake.texts(CHAT) if "Kode billing:" in text)
    code = billing.split("Kode billing: ")[1].split("\n")[0].replace(" ", "")

    with telegram.loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        assert [d.kind for d in application.documents] == ["ktp", "kk", "supporting"]
        proof = session.get(PhoneVerification, ("telegram", str(CHAT)))
        assert proof is not None and (proof.phone, proof.method) == ("+6281234567890", "contact")
        now = telegram.loket.now(session)
    apply_notice(telegram.loket, reference="TG-1", code=code, amount=950_000, paid_at=now)
    assert telegram.flush_pending() == 1
    assert "Pembayaran diterima" in fake.texts(CHAT)[-2]
    assert fake.sent[-2].method == "sendMessage"
    assert fake.sent[-1].method == "sendPhoto"  # the check-in QR code


def test_text_in_english_for_an_english_telegram_user(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    fake.text(CHAT, "/start", language="en")
    poll(telegram)
    assert fake.texts(CHAT)[0].startswith("Welcome to Loket")


def test_oversized_photo_is_refused_before_download(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    fake.text(CHAT, "/daftar")
    poll(telegram)
    for _turn in range(30):
        step = current_step(telegram, CHAT)
        if step == "doc_ktp":
            break
        answer(fake, CHAT, step or "", {**ADULT_NEW, "email": "lewati"})
        poll(telegram)
    fake.big_photo(CHAT, 25 * 1024 * 1024)
    poll(telegram)
    assert "melebihi batas 10 MB" in fake.last(CHAT).text
    assert fake.methods("getFile") == [] or len(fake.methods("getFile")) == 0
    assert current_step(telegram, CHAT) == "doc_ktp"


def test_translate_ignores_groups_and_reads_each_kind() -> None:
    group = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "hi",
                                         "chat": {"id": -5, "type": "group"}}}  # fmt: skip
    assert translate(group) is None
    other_contact = {"update_id": 2, "message": {
        "message_id": 2, "date": 0, "chat": {"id": 7, "type": "private"}, "from": {"id": 7},
        "contact": {"phone_number": "0812", "user_id": 99}}}  # fmt: skip
    incoming = translate(other_contact)
    assert incoming is not None and incoming.event is not None
    assert incoming.event.kind.value == "text"  # someone else's card counts as typed


# ---- webhook -------------------------------------------------------------------------------


@pytest.fixture
def webhook(telegram: TelegramChannel) -> Iterator[str]:
    """Serve the real Flask app on 127.0.0.1 and yield its webhook URL."""
    app = create_app(telegram.loket.settings, telegram.loket, telegram=telegram)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/telegram/webhook"
    server.shutdown()


def deliver(url: str, update: dict[str, Any], secret: str | None = SECRET) -> int:
    """POST an update as Telegram does."""
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    return httpx.post(url, json=update, headers=headers, timeout=30).status_code


def counts(channel: TelegramChannel) -> tuple[int, int]:
    """Return (processed updates, outbox rows)."""
    with channel.loket.sessions() as session:
        return (
            session.execute(select(func.count()).select_from(ProcessedEvent)).scalar_one(),
            session.execute(select(func.count(OutboxMessage.id))).scalar_one(),
        )


def test_webhook_refuses_missing_or_wrong_secret(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str
) -> None:
    update = fake.text(CHAT, "/start")
    assert deliver(webhook, update, secret=None) == 401
    assert deliver(webhook, update, secret="not-the-secret") == 403
    assert counts(telegram) == (0, 0) and fake.sent == []
    assert deliver(webhook, {"not": "an update"}) == 200  # set aside: a retry would not help
    assert deliver(webhook, update) == 200
    assert "Selamat datang" in fake.texts(CHAT)[0]


def test_same_update_five_times_in_sequence_has_one_effect(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str
) -> None:
    update = fake.text(CHAT, "/daftar")
    assert [deliver(webhook, update) for _ in range(5)] == [200] * 5
    assert counts(telegram) == (1, 1)  # welcome and consent question, once, in one message
    assert len(fake.sent) == 1


def test_same_update_five_times_concurrently_has_one_effect(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str
) -> None:
    deliver(webhook, fake.text(CHAT, "/daftar"))
    press = fake.press(CHAT, "Saya setuju")
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(deliver(webhook, press)))
               for _ in range(5)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 5
    assert counts(telegram) == (2, 2)
    assert len(fake.sent) == 2
    assert "Untuk siapa paspor ini?" in fake.last(CHAT).text
    assert current_step(telegram, CHAT) == "category"


def to_documents(fake: FakeTelegram, telegram: TelegramChannel, webhook: str) -> None:
    """Register through the webhook up to the first document step."""
    deliver(webhook, fake.text(CHAT, "/daftar"))
    for _turn in range(30):
        step = current_step(telegram, CHAT)
        if step == "doc_ktp":
            return
        answer(fake, CHAT, step or "", {**ADULT_NEW, "email": "lewati"})
        deliver(webhook, fake.updates[-1])
    raise AssertionError("never reached the documents")


def test_accepted_updates_are_applied_once_in_arrival_order_by_racing_drains(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    # Three updates of one chat accepted (as the webhook does), nothing applied yet.
    texts = ["/daftar", "1", "1", "2"]  # start, consent (the first button), and two answers
    updates = [fake.text(CHAT, text) for text in texts]
    for update in updates:
        assert telegram.accept(update) == (str(CHAT), True)
    assert telegram.accept(updates[0]) == (str(CHAT), False)  # a repeat adds nothing
    assert counts(telegram) == (0, 0)
    # Four threads drain the same chat at once: each update applied once, in order.
    threads = [threading.Thread(target=telegram.drain, args=(str(CHAT),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert counts(telegram) == (4, 4)
    with telegram.loket.sessions() as session:
        rows = session.execute(select(InboxUpdate).order_by(InboxUpdate.id)).scalars().all()
        events = session.execute(select(ProcessedEvent.key)).scalars().all()
    assert all(row.applied_at is not None and row.payload == {} for row in rows)
    assert set(events) == {f"telegram:{u['update_id']}" for u in updates}
    # The same texts applied one by one in another chat end at the same step with the same
    # replies: the drains kept the arrival order.
    other = CHAT + 1
    for text in texts:
        telegram.handle_update(fake.text(other, text))
    assert current_step(telegram, CHAT) == current_step(telegram, other) != "consent"
    assert fake.texts(CHAT) == fake.texts(other) and len(fake.texts(CHAT)) == 4


def test_the_worker_applies_updates_left_waiting(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    # Accepted by a web process that died before applying it.
    assert telegram.accept(fake.text(CHAT, "/start")) == (str(CHAT), True)
    assert telegram.flush_pending() == 0  # too fresh: its own process may still be on it
    assert counts(telegram) == (0, 0)
    telegram.drain_waiting(received_before=datetime.now(UTC) + timedelta(minutes=1))
    assert counts(telegram) == (1, 1)
    assert fake.texts(CHAT)[0].startswith("Selamat datang")


def test_web_that_only_accepts_and_a_separate_applier(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str, database_url: str, tmp_path: Path
) -> None:
    telegram.loket.settings = replace(telegram.loket.settings, apply_in_web=False)
    assert deliver(webhook, fake.text(CHAT, "/start")) == 200
    assert deliver(webhook, fake.text(CHAT + 1, "/status")) == 200
    assert counts(telegram) == (0, 0) and fake.sent == []  # accepted, not applied
    env = {
        **os.environ, "DATABASE_URL": database_url, "LOKET_DATA_DIR": str(tmp_path),
        "LOKET_AUTO_MIGRATE": "0", "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": fake.base_url, "TELEGRAM_BASE_FILE_URL": fake.base_file_url,
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "bot", "apply", "--seconds", "2", "--threads", "2"],
        env=env, cwd=ROOT, check=True, timeout=120, capture_output=True, text=True,
    )  # fmt: skip
    assert json.loads(done.stdout) == {"applied": 2}
    assert counts(telegram) == (2, 2)
    assert fake.texts(CHAT)[0].startswith("Selamat datang") and fake.texts(CHAT + 1)


def test_a_file_telegram_no_longer_serves_is_asked_for_again(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str
) -> None:
    to_documents(fake, telegram, webhook)
    update = fake.photo(CHAT, photo_bytes("gone"))
    fake.files.clear()  # expired on Telegram's side before we fetched it
    assert deliver(webhook, update) == 200
    assert current_step(telegram, CHAT) == "doc_ktp"  # applied, and the same question again
    assert "Foto e-KTP" in fake.last(CHAT).text


def test_a_pdf_sent_as_a_document_is_refused_with_a_request_for_a_photo(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str
) -> None:
    to_documents(fake, telegram, webhook)
    deliver(webhook, fake.document(CHAT, minimal_pdf(), "ktp.pdf", "application/pdf"))
    assert current_step(telegram, CHAT) == "doc_ktp"
    assert "File PDF tidak bisa kami terima" in "\n".join(fake.texts(CHAT)[-2:])


def test_photo_through_the_webhook(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str
) -> None:
    deliver(webhook, fake.text(CHAT, "/daftar"))
    for _turn in range(30):
        step = current_step(telegram, CHAT)
        if step == "doc_ktp":
            break
        answer(fake, CHAT, step or "", {**ADULT_NEW, "email": "lewati"})
        deliver(webhook, fake.updates[-1])
    deliver(webhook, fake.photo(CHAT, photo_bytes("webhook-ktp")))
    assert current_step(telegram, CHAT) == "doc_kk"
    assert len(fake.methods("getFile")) == 1


def test_a_failed_send_is_delivered_later_once(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str, clock: FakeClock
) -> None:
    fake.fail_next_sends = 1
    assert deliver(webhook, fake.text(CHAT, "/start")) == 200  # applied; sending failed
    assert fake.sent == []
    assert telegram.flush_pending() == 0  # backing off
    clock.advance(seconds=send_backoff(1).total_seconds())
    assert telegram.flush_pending() == 1  # the welcome and the menu, in one message
    assert telegram.flush_pending() == 0
    assert fake.sent[0].text.startswith("Selamat") and fake.sent[0].buttons
    with telegram.loket.sessions() as session:
        rows = session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
        assert [row.message_id for row in rows] == [str(s.message_id) for s in fake.sent]
        assert all(row.sent_at is not None for row in rows)


def test_webhook_registration_and_polling_clear_each_other(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    telegram.set_webhook("https://loket.example.id/", SECRET)
    [registered] = fake.methods("setWebhook")
    assert registered["url"] == "https://loket.example.id/telegram/webhook"
    assert registered["secret_token"] == SECRET
    assert registered["allowed_updates"] == ["message", "callback_query"]
    poll(telegram)  # polling first removes any webhook, as the Bot API requires
    assert len(fake.methods("deleteWebhook")) == 1


def test_flood_control_holds_the_chat_until_retry_after(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str, clock: FakeClock
) -> None:
    fake.flood_next_sends = 1
    assert deliver(webhook, fake.text(CHAT, "/start")) == 200
    assert fake.sent == []
    assert telegram.flush_pending() == 0  # Telegram said wait 3 s: nobody sends earlier
    clock.advance(seconds=4)
    assert telegram.flush_pending() == 1
    assert len(fake.sent) == 1


def test_the_bot_token_and_personal_data_never_reach_the_logs(
    fake: FakeTelegram, telegram: TelegramChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    fake.text(CHAT, "/daftar")
    poll(telegram)
    for step in ("consent", "category", "service", "had_passport", "passport_kind", "validity",
                 "full_name", "birth_place", "birth_date", "sex", "nik"):  # fmt: skip
        answer(fake, CHAT, step, ADULT_NEW)
        poll(telegram)
    assert current_step(telegram, CHAT) == "phone"  # the NIK was accepted
    assert fake.sent  # the bot did talk to the Bot API
    assert TOKEN not in caplog.text
    assert TOKEN.split(":")[1] not in caplog.text
    assert ADULT_NEW["nik"] not in caplog.text and "BUDI" not in caplog.text


def test_pacing_waits_for_the_next_second(shared_state: SharedState) -> None:
    moments = [100.2]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        moments[0] += seconds

    pacer = Pacer(shared_state, per_second=3, per_chat=1, clock=lambda: moments[0], sleep=sleep)
    pacer.wait("a")  # second 100: a's one message
    pacer.wait("b")
    pacer.wait("a")  # a must wait for second 101
    assert slept == [0.8]
    pacer.wait("c")  # second 101: a, c
    pacer.wait("d")  # second 101: three in all
    pacer.wait("e")  # the fourth this second waits for 102
    assert slept == [0.8, 1.0]


def test_an_update_that_keeps_failing_is_set_aside_and_the_chat_goes_on(
    fake: FakeTelegram, telegram: TelegramChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_handle = telegram.loket.engine.handle

    def handle(state: Any, event: Any, ctx: Any, last: Any) -> Any:
        if event.text == "racun":  # a message some bug cannot handle
            raise RuntimeError("a bug")
        return real_handle(state, event, ctx, last)

    monkeypatch.setattr(telegram.loket.engine, "handle", handle)
    chat_id, new = telegram.accept(fake.text(CHAT, "racun"))
    assert chat_id == str(CHAT) and new
    telegram.accept(fake.text(CHAT, "/status"))
    for _attempt in range(MAX_APPLY_ATTEMPTS - 1):
        with pytest.raises(RuntimeError):
            telegram.drain(str(CHAT))
    assert fake.sent == []  # held in order behind the failing update, not skipped early
    assert telegram.drain(str(CHAT)) == 1  # the fifth failure sets it aside; /status goes on
    texts = fake.texts(CHAT)
    assert texts[0].startswith("Maaf, pesan Anda tadi tidak bisa kami proses.")
    assert "Belum ada permohonan dari akun ini" in texts[1]
    with telegram.loket.sessions() as session:
        rows = session.execute(
            select(InboxUpdate.attempts, InboxUpdate.failed_at, InboxUpdate.payload).order_by(
                InboxUpdate.id
            )
        ).all()
    assert rows[0].attempts == MAX_APPLY_ATTEMPTS and rows[0].failed_at is not None
    assert rows[0].payload == {}  # the text is not kept
    assert rows[1].failed_at is None


def test_an_announcement_reaches_telegram_subscribers_through_the_worker(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    telegram.loket.prepare_demo()
    with telegram.loket.sessions() as session, session.begin():
        office = session.execute(select(Office).where(Office.code == "bandung")).scalar_one()
        now = telegram.loket.now(session)
        subscribe(session, "telegram", "7001", office.id, "id", now)
        subscribe(session, "telegram", "7002", office.id, "en", now)
        subscribe(session, "web", "browser-1", office.id, "id", now)
        announce(session, office.id, None, "Sesi simpatik Sabtu, kuota 30.", now,
                 announcement_payload)  # fmt: skip
    assert telegram.flush_pending(grace=timedelta(0)) == 2
    assert "Sesi simpatik Sabtu, kuota 30." in fake.last(7001).text
    assert "Sesi simpatik Sabtu, kuota 30." in fake.last(7002).text
    assert "/berhenti" in fake.last(7002).text
    with telegram.loket.sessions() as session:
        web_row = session.execute(
            select(OutboxMessage.sent_at).where(OutboxMessage.channel == "web")
        ).scalar_one()
    assert web_row is None  # the web chat takes its own when the page asks


# ---- malformed updates ---------------------------------------------------------------------

SECRET_TEXT = "3174010101900001"  # content that must never reach the logs
DEEP = "[" * 10_000 + "]" * 10_000


def malformed(update_id: int | str) -> dict[str, str]:
    """Correctly signed but malformed updates, by what is wrong, as raw JSON texts."""
    chat = '"chat": {"id": ' + str(CHAT) + ', "type": "private"}'
    sender = '"from": {"id": ' + str(CHAT) + ', "is_bot": false, "first_name": "A"}'
    message = '"message_id": 1, "date": 0, ' + sender
    head = '{"update_id": ' + str(update_id) + ", "
    bad_chat_ids = {"object": '{"x": 1}', "string": '"424242"', "float": "424242.0",
                    "bool": "true", "null": "null"}  # fmt: skip
    shapes = {
        "deep nesting": head + '"message": {' + message + ", " + chat + ', "text": ' + DEEP + "}}",
        "deep nesting outside what we read": head
        + '"message": {'
        + message
        + ", "
        + chat
        + f', "text": "{SECRET_TEXT}", "extra": '
        + DEEP
        + "}}",
        "callback without message": head
        + '"callback_query": {"id": "9", '
        + sender
        + ', "chat_instance": "1", "data": "'
        + SECRET_TEXT
        + '"}}',
        "chat without id": head + '"message": {' + message + ', "chat": {"type": "private"}, '
        f'"text": "{SECRET_TEXT}"' + "}}",
        "contact without phone number": head
        + '"message": {'
        + message
        + ", "
        + chat
        + ', "contact": {"first_name": "'
        + SECRET_TEXT
        + '", "user_id": '
        + str(CHAT)
        + "}}}",
        "text that is an object": head
        + '"message": {'
        + message
        + ", "
        + chat
        + ', "text": {"a": "'
        + SECRET_TEXT
        + '"}}}',
        "message that is a list": head + '"message": ["' + SECRET_TEXT + '"]}',
    }
    for kind, value in bad_chat_ids.items():
        shapes[f"chat id as {kind}"] = (
            head + '"message": {' + message + ', "chat": {"id": ' + value
            + f', "type": "private"}}, "text": "{SECRET_TEXT}"' + "}}"
        )  # fmt: skip
    return shapes


NOT_UPDATES = {
    "update_id as text": '{"update_id": "77", "message": {"text": "x"}}',
    "update_id as float": '{"update_id": 77.5}',
    "update_id as bool": '{"update_id": true}',
    "update_id missing": '{"message": {}}',
    "deep nesting only": DEEP,
    "not JSON": '{"update_id": 78, "message": ',
    "a list": "[1, 2]",
}


def test_malformed_signed_updates_are_answered_200_and_set_aside(
    fake: FakeTelegram, telegram: TelegramChannel, webhook: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    shapes: dict[str, int] = {}
    for number, kind in enumerate(malformed(0)):
        shapes[kind] = 5000 + number
        body = malformed(5000 + number)[kind]
        response = httpx.post(webhook, content=body.encode(), headers=headers, timeout=30)
        assert response.status_code == 200, kind
    for kind, body in NOT_UPDATES.items():
        response = httpx.post(webhook, content=body.encode(), headers=headers, timeout=30)
        assert response.status_code == 200, kind
    assert counts(telegram) == (0, 0) and fake.sent == []
    with telegram.loket.sessions() as session:
        assert session.execute(select(func.count(InboxUpdate.id))).scalar_one() == 0
    for kind, update_id in shapes.items():
        assert f"unreadable update {update_id} set aside" in caplog.text, kind
    assert "unreadable update 78 set aside: not JSON" in caplog.text
    assert "unreadable update without id set aside" in caplog.text
    assert SECRET_TEXT not in caplog.text
    # The chat goes on: its next, well-formed update is applied at once.
    assert deliver(webhook, fake.text(CHAT, "/start")) == 200
    assert fake.texts(CHAT)[0].startswith("Selamat datang")


def test_polling_sets_malformed_updates_aside_without_stalling(
    fake: FakeTelegram, telegram: TelegramChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    for body in malformed("{id}").values():
        fake.raw(body)
    fake.raw('{"update_id": "not a number", "message": {"text": "x"}}')
    fake.text(CHAT, "/start")
    telegram.poll(rounds=2, timeout=0)
    assert fake.texts(CHAT)[0].startswith("Selamat datang")
    assert caplog.text.count("unreadable update") == len(malformed(0)) + 1
    assert SECRET_TEXT not in caplog.text
    # Everything with an id was acknowledged: the second round asked past all of it.
    last_offset = fake.methods("getUpdates")[-1]["offset"]
    assert last_offset == max(u["update_id"] for u in fake.updates if isinstance(u, dict)) + 1
    assert len(fake.texts(CHAT)) == 1


def test_translate_reads_well_formed_updates_and_refuses_bad_shapes() -> None:
    good = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "hai",
                                        "chat": {"id": 7, "type": "private"}}}  # fmt: skip
    incoming = translate(good)
    assert incoming is not None and incoming.chat_id == "7"
    for chat_id in ({"id": 1}, "7", 7.0, True, None, 2**70):
        bad = {**good, "message": {**good["message"], "chat": {"id": chat_id, "type": "private"}}}
        with pytest.raises(Unreadable, match="chat id is not an integer"):
            translate(bad)


# ---- replies that cannot be delivered ------------------------------------------------------


def outbox_rows(channel: TelegramChannel) -> list[Any]:
    """Every outbox row, oldest first."""
    with channel.loket.sessions() as session:
        return list(
            session.execute(
                select(
                    OutboxMessage.attempts,
                    OutboxMessage.sent_at,
                    OutboxMessage.failed_at,
                    OutboxMessage.failure,
                ).order_by(OutboxMessage.id)
            ).all()
        )


def figures(channel: TelegramChannel) -> dict[str, int]:
    """What operators are shown."""
    with channel.loket.sessions() as session:
        return delivery_figures(session)


def queue(channel: TelegramChannel, chat: int, text: str) -> None:
    """Queue a notice to a chat, as a payment or a staff action does."""
    with channel.loket.sessions() as session, session.begin():
        now = channel.loket.now(session)
        queue_message(session, "telegram", str(chat), Outbound(text).to_payload(), now)


def test_a_reply_that_never_goes_through_is_retried_with_backoff_then_set_aside(
    fake: FakeTelegram, telegram: TelegramChannel, clock: FakeClock
) -> None:
    fake.fail_next_sends = 1000  # Telegram answers 500 to every send
    telegram.handle_update(fake.text(CHAT, "/start"))
    assert len(fake.methods("sendMessage")) == 1
    waits = []
    for attempt in range(1, MAX_SEND_ATTEMPTS):
        for _ in range(3):  # the worker comes by every 30 s: nothing is sent before its time
            assert telegram.flush_pending() == 0
        assert len(fake.methods("sendMessage")) == attempt
        waits.append(send_backoff(attempt))
        clock.advance(seconds=send_backoff(attempt).total_seconds())
        telegram.flush_pending()
    assert len(fake.methods("sendMessage")) == MAX_SEND_ATTEMPTS  # bounded, then given up
    assert waits[:3] == [timedelta(seconds=15), timedelta(seconds=30), timedelta(seconds=60)]
    assert sum(waits, timedelta()) > timedelta(hours=1)  # a long outage is ridden out
    [row] = outbox_rows(telegram)
    assert row.failure == "gave_up" and row.failed_at is not None and row.sent_at is None
    assert row.attempts == MAX_SEND_ATTEMPTS
    clock.advance(hours=5)
    telegram.flush_pending()
    assert len(fake.methods("sendMessage")) == MAX_SEND_ATTEMPTS  # set aside: never again
    # Later messages to that chat still go out.
    fake.fail_next_sends = 0
    telegram.handle_update(fake.text(CHAT, "/status"))
    assert "Belum ada permohonan dari akun ini" in fake.last(CHAT).text
    assert figures(telegram) == {"outbox_set_aside": 1, "outbox_waiting": 0, "inactive_chats": 0}


def test_a_permanent_refusal_sets_the_row_aside_at_once_and_the_next_goes_out(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    queue(telegram, CHAT, "pertama")
    queue(telegram, CHAT, "kedua")
    fake.refuse_next_sends = 1  # 400 "message is too long": retrying cannot help
    assert telegram.flush_pending() == 1
    assert fake.texts(CHAT) == ["kedua"]
    assert len(fake.methods("sendMessage")) == 2
    assert [row.failure for row in outbox_rows(telegram)] == ["rejected", None]
    assert telegram.flush_pending() == 0 and len(fake.methods("sendMessage")) == 2


def test_a_user_who_blocked_the_bot_makes_the_chat_inactive_until_they_write_again(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    queue(telegram, CHAT, "pertama")
    queue(telegram, CHAT, "kedua")
    fake.blocked.add(str(CHAT))  # 403 "Forbidden: bot was blocked by the user"
    assert telegram.flush_pending() == 0
    assert len(fake.methods("sendMessage")) == 1  # one try tells: the rest is not tried
    assert [row.failure for row in outbox_rows(telegram)] == ["blocked", "blocked"]
    assert figures(telegram)["inactive_chats"] == 1
    queue(telegram, CHAT, "ketiga")  # a payment notice, an announcement...
    assert telegram.flush_pending() == 0
    assert len(fake.methods("sendMessage")) == 1  # nothing is sent to an inactive chat
    assert outbox_rows(telegram)[-1].failure == "inactive"
    # They unblock the bot and write: the chat is active again and the answer goes out.
    fake.blocked.clear()
    telegram.handle_update(fake.text(CHAT, "/start"))
    assert fake.texts(CHAT)[-1].startswith("Selamat datang")
    assert figures(telegram) == {"outbox_set_aside": 3, "outbox_waiting": 0, "inactive_chats": 0}


def test_chat_not_found_is_treated_as_inactive(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    fake.refused[str(CHAT)] = "Bad Request: chat not found"
    queue(telegram, CHAT, "pertama")
    queue(telegram, CHAT, "kedua")
    assert telegram.flush_pending() == 0
    assert len(fake.methods("sendMessage")) == 1
    assert figures(telegram)["inactive_chats"] == 1


def age(channel: TelegramChannel, **delta: float) -> None:
    """Move every outbox row's times into the past."""
    with channel.loket.sessions() as session, session.begin():
        for row in session.execute(select(OutboxMessage)).scalars():
            row.sent_at = row.sent_at and row.sent_at - timedelta(**delta)
            row.failed_at = row.failed_at and row.failed_at - timedelta(**delta)


def test_the_worker_purges_delivered_and_set_aside_rows_after_a_week(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    telegram.handle_update(fake.text(CHAT, "/start"))  # delivered
    fake.blocked.add(str(CHAT + 1))
    queue(telegram, CHAT + 1, "NIK 3174010101900001")  # set aside: the user blocked the bot
    telegram.flush_pending()
    fake.fail_next_sends = 1
    queue(telegram, CHAT + 2, "menunggu")  # still waiting (backing off)
    telegram.flush_pending()
    assert [(r.sent_at is not None, r.failure) for r in outbox_rows(telegram)] == [
        (True, None), (False, "blocked"), (False, None)]  # fmt: skip
    # (Rows are aged, not the clock: a round a week ahead would extend the shared calendars.)
    age(telegram, days=6)
    assert run_once(telegram.loket)["outbox_purged"] == 0  # kept for a week
    age(telegram, days=1, minutes=1)
    figures = run_once(telegram.loket)
    assert figures["outbox_purged"] == 2
    assert figures["outbox_waiting"] == 1 and figures["outbox_set_aside"] == 0
    with telegram.loket.sessions() as session:
        texts = session.execute(select(OutboxMessage.payload)).scalars().all()
    assert [payload["text"] for payload in texts] == ["menunggu"]
