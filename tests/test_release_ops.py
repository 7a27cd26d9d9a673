"""Release-day operations: a flood answered once, overload answered, taps answered in place."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select, update

from bot.channels.telegram import TelegramChannel
from bot.load import LoadGauge, Reading
from bot.metrics import REFUSALS, refused
from bot.service import Loket
from bot.settings import Settings
from bot.web import create_app
from storage.models import Conversation, InboxUpdate, ProcessedEvent, Slot
from tests.fake_telegram import FakeTelegram
from tests.test_api import AUTH, KEY
from tests.test_telegram import CHAT, SECRET, current_step, fake, telegram  # noqa: F401
from tests.transcript import ADULT_NEW, Chat, book, register


def sends(server: FakeTelegram) -> int:
    """Count the messages the bot sent (sendMessage and sendPhoto)."""
    return len(server.methods("sendMessage")) + len(server.methods("sendPhoto"))


def test_twenty_taps_on_one_question_get_one_answer(
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,  # noqa: F811
) -> None:
    telegram.handle_update(fake.text(CHAT, "/daftar"))
    before = sends(fake)
    taps = [fake.press(CHAT, "Saya setuju") for _ in range(20)]
    for tap in taps:  # all waiting at once, as when the applier is behind
        assert telegram.accept(tap) == (str(CHAT), True)
    assert telegram.drain(str(CHAT)) == 1
    assert sends(fake) == before + 1  # one reply, not twenty
    assert "Untuk siapa paspor ini?" in fake.last(CHAT).text
    assert current_step(telegram, CHAT) == "category"  # the state moved once
    # Every tap was answered (no spinner left), each once.
    assert sorted(fake.answered) == sorted(tap["callback_query"]["id"] for tap in taps)
    with telegram.loket.sessions() as session:
        waiting = session.execute(
            select(func.count(InboxUpdate.id)).where(InboxUpdate.applied_at.is_(None))
        ).scalar_one()
        turns = session.execute(select(func.count()).select_from(ProcessedEvent)).scalar_one()
    assert waiting == 0 and turns == 2  # /daftar and the first tap


def test_a_command_sent_twenty_times_while_waiting_is_answered_once(
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,  # noqa: F811
) -> None:
    for _ in range(20):
        telegram.accept(fake.text(CHAT, "/start"))
    telegram.accept(fake.text(CHAT, "/daftar"))  # something else: a turn of its own
    assert telegram.drain(str(CHAT)) == 2
    assert sends(fake) == 2
    assert fake.texts(CHAT)[0].startswith("Selamat datang di Loket")
    assert "UU PDP" in fake.texts(CHAT)[1]


def test_typed_answers_that_repeat_are_not_folded(
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,  # noqa: F811
) -> None:
    # "1" for the consent, then "1" for the category: typed ahead, two answers.
    for text in ("/daftar", "1", "1"):
        telegram.accept(fake.text(CHAT, text))
    assert telegram.drain(str(CHAT)) == 3
    assert current_step(telegram, CHAT) not in ("consent", "category")


# ---- overload answered, not timed out -------------------------------------------------------


class FakeLoad:
    """A load measure tests set by hand, counting how often it was read."""

    def __init__(self, backlog: int = 0, latency: float | None = 0.001) -> None:
        self.reading = Reading(backlog, latency)
        self.measured = 0

    def __call__(self) -> Reading:
        self.measured += 1
        return self.reading


def app_with(loket: Loket, load: FakeLoad, clock: list[float] | None = None, **changes: Any) -> Any:
    """The real Flask app on this service, its load read from `load` (time from `clock`)."""
    loket.settings = replace(loket.settings, api_key=KEY, **changes)
    now = clock or [0.0]
    gauge = LoadGauge(loket.settings, load, clock=lambda: now[0])
    return create_app(loket.settings, loket, load=gauge)


def test_the_load_is_measured_at_most_once_a_second(settings: Settings) -> None:
    load, now = FakeLoad(), [100.0]
    gauge = LoadGauge(replace(settings, overload_backlog=10), load, clock=lambda: now[0])
    assert gauge.busy_minutes() is None
    now[0] += 0.5
    load.reading = Reading(50, 0.001)  # the backlog grew; the last reading still stands
    assert gauge.busy_minutes() is None and load.measured == 1
    now[0] += 0.5
    assert gauge.busy_minutes() == 2 and load.measured == 2
    load.reading = Reading(30_000, 0.001)  # 30,000 at 100 a second: five minutes to drain
    now[0] += 1
    assert gauge.busy_minutes() == 5
    load.reading = Reading(0, 1.5)  # a slow database alone is overload too
    now[0] += 1
    assert gauge.busy_minutes() == 2
    load.reading = Reading(0, None)  # and one that does not answer
    now[0] += 1
    assert gauge.busy_minutes() == 2


def test_overloaded_chat_api_answers_503_with_retry_after_at_once(loket: Loket) -> None:
    load = FakeLoad()
    client = app_with(loket, load, overload_backlog=100).test_client()
    body = {"user": "wa-1", "text": "/daftar"}
    assert client.post("/api/v1/chat", json=body, headers=AUTH).status_code == 200
    load.reading = Reading(500, 0.001)
    client = app_with(loket, load, overload_backlog=100).test_client()
    busy = client.post("/api/v1/chat", json={"user": "wa-2", "text": "/daftar"}, headers=AUTH)
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "120"
    message = "Layanan sedang ramai. Silakan coba lagi dalam sekitar 2 menit."
    assert busy.get_json()["message"] == message
    assert busy.get_json()["messages"][0]["text"] == message
    with loket.sessions() as session:  # the refused turn did not run
        users = session.execute(select(Conversation.user_ref)).scalars().all()
    assert users == ["wa-1"]


def test_overloaded_web_chat_answers_503_in_the_pages_language(loket: Loket) -> None:
    load = FakeLoad(latency=3.0)  # the database takes 3 s to answer
    client = app_with(loket, load, secure_cookies=False).test_client()
    page = client.get("/?lang=en").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf
    busy = client.post("/chat/send", json={"text": "/mulai"}, headers={"X-CSRFToken": csrf[1]})
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "120"
    assert busy.get_json()["messages"][0]["text"] == (
        "The service is busy. Please try again in about 2 minutes."
    )


def test_overloaded_webhook_answers_the_tap_in_its_response_and_accepts_nothing(
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,  # noqa: F811
) -> None:
    telegram.handle_update(fake.text(CHAT, "/daftar"))
    load = FakeLoad(backlog=5000)
    app = create_app(
        telegram.loket.settings, telegram.loket, telegram=telegram,
        load=LoadGauge(telegram.loket.settings, load),
    )  # fmt: skip
    client = app.test_client()
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    tap = fake.press(CHAT, "Saya setuju")
    answer = client.post("/telegram/webhook", json=tap, headers=headers)
    assert answer.status_code == 200
    assert answer.get_json() == {
        "method": "answerCallbackQuery", "callback_query_id": tap["callback_query"]["id"],
        "text": "Layanan sedang ramai. Silakan coba lagi dalam sekitar 2 menit.",
        "show_alert": True,
    }  # fmt: skip
    typed = client.post("/telegram/webhook", json=fake.text(CHAT, "halo"), headers=headers)
    assert typed.get_json()["method"] == "sendMessage"
    assert typed.get_json()["chat_id"] == str(CHAT)
    with telegram.loket.sessions() as session:
        assert session.execute(select(func.count(InboxUpdate.id))).scalar_one() == 1
    assert current_step(telegram, CHAT) == "consent"


def test_liveness_and_readiness(loket: Loket) -> None:
    load = FakeLoad()
    client = app_with(loket, load, overload_backlog=100, ready_timeout_ms=500).test_client()
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ready", "backlog": 0}
    load.reading = Reading(100, 0.001)
    assert client.get("/readyz").status_code == 503
    load.reading = Reading(0, 0.8)
    assert client.get("/readyz").get_json()["reason"] == "database slower than the timeout"
    load.reading = Reading(0, None)
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.get_json()["reason"] == "database not reachable"
    assert client.get("/livez").status_code == 200  # alive: restarting would not help


def test_readiness_measures_the_real_database(loket: Loket) -> None:
    client = create_app(loket.settings, loket).test_client()
    assert client.get("/readyz").get_json() == {"status": "ready", "backlog": 0}


# ---- metrics --------------------------------------------------------------------------------


def test_metrics_need_the_key_or_loopback_and_hold_no_personal_data(loket: Loket) -> None:
    chat = Chat(loket, "metrics-user")
    register(chat)
    book(chat)
    refused("overload")
    local = create_app(loket.settings, loket).test_client()
    text = local.get("/metrics").get_data(as_text=True)
    assert 'loket_turns_total{channel="test"}' in text
    assert 'loket_turn_seconds_bucket{channel="test",le="+Inf"}' in text
    assert 'loket_refusals_total{reason="overload"}' in text
    assert "loket_inbox_waiting 0.0" in text
    assert "loket_outbox_lag_seconds" in text and "loket_outbox_set_aside 0.0" in text
    held = re.findall(r'loket_seats_held\{office="([^"]+)"\} 1\.0', text)
    assert len(held) == 1
    left = re.search(rf'loket_seats_left\{{office="{held[0]}"\}} ([\d.]+)', text)
    assert left and float(left[1]) > 0
    assert "loket_waiting_room_admission_rate" in text
    # No chat ids, no NIKs (the whole NIK: a latency's digits may contain any short run).
    assert "metrics-user" not in text and ADULT_NEW["nik"] not in text
    remote = local.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 403
    loket.settings = replace(loket.settings, metrics_key="scrape-key")
    keyed = create_app(loket.settings, loket).test_client()
    assert keyed.get("/metrics").status_code == 401  # the key counts, even from loopback
    allowed = keyed.get(
        "/metrics", headers={"Authorization": "Bearer scrape-key"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )  # fmt: skip
    assert allowed.status_code == 200 and "loket_seats_left" in allowed.get_data(as_text=True)


def test_a_sold_out_hold_is_counted_by_reason(loket: Loket) -> None:
    chat = Chat(loket, "late-comer")
    register(chat)
    # Proved before (as after an earlier hold): the chosen window goes straight to the hold.
    loket.vouch_phone(chat.channel, chat.user, chat.phone(), "code")
    for said in ("Bandung", "1", "1"):  # up to the windows of the first date
        chat.say(said)
    with loket.sessions() as session, session.begin():  # the herd took every seat meanwhile
        session.execute(update(Slot).values(taken=Slot.capacity))
    before = REFUSALS.labels("sold_out")._value.get()
    assert "baru saja" in chat.say("1").text
    assert REFUSALS.labels("sold_out")._value.get() == before + 1


# ---- Telegram at release: taps answered in place ---------------------------------------------


def test_a_seat_gone_at_the_tap_is_an_alert_and_the_tapped_question_is_refreshed(
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,  # noqa: F811
) -> None:
    chat = Chat(telegram.loket, str(CHAT), channel="telegram")
    register(chat)
    # Shared the account's contact before (an earlier hold): the tap goes straight to the hold.
    telegram.loket.vouch_phone("telegram", str(CHAT), chat.phone(), "contact")
    for said in ("Bandung", "1"):  # up to the windows of the first date
        chat.say(said)
    windows = chat.say("1").question
    # The windows question as the applicant sees it in Telegram.
    telegram.loket.pending_messages("telegram", str(CHAT))
    shown = fake.message(str(CHAT), 777, windows.text)
    with telegram.loket.sessions() as session, session.begin():
        first = int(windows.choices[0].value)
        session.execute(update(Slot).where(Slot.id == first).values(taken=Slot.capacity))
    rows = [[{"text": c.label, "callback_data": c.value}] for c in windows.choices]
    tap = fake._update(CHAT, {"callback_query": {
        "id": "tap-1", "chat_instance": "1", "data": windows.choices[0].value,
        "message": {**shown, "reply_markup": {"inline_keyboard": rows}}}})  # fmt: skip
    before = sends(fake)
    telegram.handle_update(tap)
    assert sends(fake) == before  # no new message
    alert = fake.methods("answerCallbackQuery")[-1]
    assert alert["callback_query_id"] == "tap-1" and alert["show_alert"] in (True, "true")
    assert alert["text"] == "Maaf, jam itu baru saja penuh. Silakan pilih jam lain."
    edit = fake.methods("editMessageText")[-1]
    assert int(edit["message_id"]) == 777
    labels = [b["text"] for row in edit["reply_markup"]["inline_keyboard"] for b in row]
    assert windows.choices[0].label not in labels and labels  # the question, refreshed
    assert fake.answered == ["tap-1"]  # answered once


def test_a_tap_on_an_older_question_is_answered_with_an_alert_and_no_message(
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,  # noqa: F811
) -> None:
    telegram.handle_update(fake.text(CHAT, "/daftar"))
    consent_tap = fake.press(CHAT, "Saya setuju")  # on the consent question, kept for later
    telegram.handle_update(fake.text(CHAT, "setuju"))  # answered by typing instead
    assert "Untuk siapa paspor ini?" in fake.last(CHAT).text
    assert current_step(telegram, CHAT) == "category"
    before = sends(fake)
    edits = len(fake.methods("editMessageText"))
    telegram.handle_update(consent_tap)  # the old consent message's button, tapped now
    assert sends(fake) == before  # no new message
    assert len(fake.methods("editMessageText")) == edits  # and no message changed
    alert = fake.methods("answerCallbackQuery")[-1]
    assert alert["callback_query_id"] == consent_tap["callback_query"]["id"]
    assert alert["show_alert"] in (True, "true")
    assert alert["text"] == "Tombol ini sudah tidak berlaku, silakan pilih dari pesan terbaru."
    assert current_step(telegram, CHAT) == "category"  # the conversation did not move
    assert fake.answered.count(consent_tap["callback_query"]["id"]) == 1
    assert REFUSALS.labels("stale_button")._value.get() >= 1
    # A tap on the current question is a turn as always.
    telegram.handle_update(fake.press(CHAT, "Dewasa (17 tahun ke atas)"))
    assert current_step(telegram, CHAT) != "category"
    assert sends(fake) == before + 1


def test_a_stale_button_on_the_current_question_still_refreshes_it(
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,  # noqa: F811
) -> None:
    telegram.handle_update(fake.text(CHAT, "/daftar"))
    before = sends(fake)
    shown = fake.last(CHAT)
    forged = fake._update(CHAT, {"callback_query": {
        "id": "forged-1", "chat_instance": "1", "data": "no-such-choice",
        "message": fake.message(str(CHAT), shown.message_id, shown.text)}})  # fmt: skip
    telegram.handle_update(forged)
    # Not an older message: the engine answers as before (the question asked again).
    assert sends(fake) == before + 1
    assert "Tombol itu sudah tidak berlaku" in fake.last(CHAT).text
