"""Release taps decided when the webhook accepts them: queue numbers, ballot entries, "habis"."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select, update

from bot.channels.telegram import TelegramChannel
from bot.load import LoadGauge
from bot.web import create_app
from bot.worker import run_once
from storage.ballot import aware
from storage.models import (
    Application,
    BallotEntry,
    InboxUpdate,
    Office,
    PhoneVerification,
    QueueEntry,
    QueueTicket,
    Slot,
)
from tests.conftest import FakeClock
from tests.fake_telegram import FakeTelegram
from tests.seats_helpers import make_applications
from tests.test_ballot import ballot_office, calendars_kept  # noqa: F401
from tests.test_release_modes import RELEASE, only_january, set_office, statuses
from tests.test_release_ops import FakeLoad
from tests.test_telegram import SECRET, current_step, fake, telegram  # noqa: F401
from tests.transcript import Chat

HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
FIRST = 7_100_001  # chat ids of this file's applicants


class Release:
    """The webhook of a busy service (5,000 updates waiting: ordinary turns get "sedang
    ramai"), its web app and the applicants' Telegram chats, applied only when a test says."""

    def __init__(self, channel: TelegramChannel, server: FakeTelegram, people: int) -> None:
        loket = channel.loket
        loket.settings = replace(loket.settings, apply_in_web=False)
        self.telegram, self.fake, self.loket = channel, server, loket
        gauge = LoadGauge(loket.settings, FakeLoad(backlog=5000))
        self.app = create_app(loket.settings, loket, telegram=channel, load=gauge)
        self.client = self.app.test_client()
        self.view_clock = [0.0]
        self.app.config["GATE"].views.clock = lambda: self.view_clock[0]
        with loket.sessions() as session, session.begin():
            ids = make_applications(session, people, "gate")
            for number, application_id in enumerate(ids):
                session.execute(
                    update(Application)
                    .where(Application.id == application_id)
                    .values(channel="telegram", account_ref=str(FIRST + number))
                )
        self.chats = [Chat(loket, str(FIRST + n), channel="telegram") for n in range(people)]

    def later(self) -> None:
        """Let the office views cached by the gate age past their second."""
        self.view_clock[0] += 5

    def tapped(self, chat: Chat, data: str, message_id: int = 900) -> dict[str, Any]:
        """The update of a tap on a button with `data` on message `message_id`."""
        shown = {
            **self.fake.message(chat.user, message_id, "pertanyaan"),
            "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": data}]]},
        }
        return self.fake._update(int(chat.user), {"callback_query": {
            "id": f"{chat.user}-{len(self.fake.updates)}", "chat_instance": "1", "data": data,
            "message": shown}})  # fmt: skip

    def tap(self, chat: Chat, data: str, message_id: int = 900) -> dict[str, Any]:
        """Tap a button with `data` on message `message_id` through the webhook; return the
        webhook's response body."""
        update_ = self.tapped(chat, data, message_id)
        answer = self.client.post("/telegram/webhook", json=update_, headers=HEADERS)
        assert answer.status_code == 200
        body: dict[str, Any] = answer.get_json()
        return body

    def waiting(self) -> int:
        """Count the accepted updates not applied yet."""
        with self.loket.sessions() as session:
            return int(
                session.execute(
                    select(func.count(InboxUpdate.id)).where(InboxUpdate.applied_at.is_(None))
                ).scalar_one()
            )

    def calls_to(self, chat: Chat, method: str) -> list[dict[str, Any]]:
        """The Bot API calls of one kind the bot made for a chat."""
        return [call for call in self.fake.methods(method) if str(call.get("chat_id")) == chat.user]


@pytest.fixture
def release(telegram: TelegramChannel, fake: FakeTelegram, clock: FakeClock) -> Release:  # noqa: F811
    """Bandung as a waiting room at its 1 December release, three applicants at the office
    question in Telegram."""
    set_office(telegram.loket, release_mode="waiting_room", admit_per_minute=2, admit_minutes=5)
    only_january(telegram.loket)
    clock.now = RELEASE
    release = Release(telegram, fake, 4)
    for chat in release.chats:
        chat.say("/jadwal")
        chat.say("Bandung")  # the office question, Bandung offered
    return release


def office_id(release: Release) -> str:
    """Bandung's id as its office button carries it."""
    with release.loket.sessions() as session:
        return str(session.execute(select(Office.id).where(Office.code == "bandung")).scalar_one())


def test_a_queue_number_is_given_in_the_webhook_response_and_kept_in_accept_order(
    release: Release, clock: FakeClock
) -> None:
    bandung = office_id(release)
    first, second, third, _fourth = release.chats
    answers = [release.tap(chat, bandung) for chat in (first, second, third)]
    # Answered at once in the response, although ordinary turns get "sedang ramai" now.
    assert answers[0]["method"] == "answerCallbackQuery" and answers[0]["show_alert"] is True
    assert answers[0]["text"] == (
        "Nomor antrean Anda 1 di Kantor Imigrasi Kelas I TPI Bandung; di depan Anda sekitar 0 "
        "orang; perkiraan 1 menit. Kami kabari di chat ini saat giliran Anda tiba."
    )
    assert "Nomor antrean Anda 3 di " in answers[2]["text"]
    assert "di depan Anda sekitar 2 orang; perkiraan 2 menit" in answers[2]["text"]
    # Tapping again gives the same number and adds no turn.
    for _again in range(3):
        assert release.tap(first, bandung)["text"] == answers[0]["text"]
    assert release.waiting() == 3
    typed = release.client.post(
        "/telegram/webhook", json=release.fake.text(int(first.user), "halo"), headers=HEADERS
    )
    assert "sedang ramai" in typed.get_json()["text"]  # the ordinary path is still guarded

    # The turns are applied in another order than accepted: the numbers stay the tickets'.
    for chat in (third, first, second):
        release.telegram.drain(chat.user)
    assert statuses(release.loket) == [(1, "admitted"), (2, "admitted"), (3, "waiting")]
    assert release.waiting() == 0
    # The admitted see their dates in the tapped message (an edit); the one still waiting
    # gets nothing more: the number in the webhook's answer was the answer.
    for chat in (first, second):
        edits = release.calls_to(chat, "editMessageText")
        assert len(edits) == 1 and int(edits[0]["message_id"]) == 900
        assert edits[0]["text"].startswith("Giliran Anda: pilih tanggal dan jam di ")
        assert release.calls_to(chat, "sendMessage") == []
    assert release.calls_to(third, "sendMessage") == []
    assert release.calls_to(third, "editMessageText") == []
    assert release.fake.answered == []  # every tap was answered in the webhook's response
    assert current_step(release.telegram, int(third.user)) == "day"

    # A minute on, the third is admitted by the worker and told, with a button to go on.
    clock.advance(minutes=1)
    run_once(release.loket)
    clock.advance(minutes=2)  # the notice waited in the outbox
    release.telegram.flush(third.user)
    notice = release.calls_to(third, "sendMessage")[-1]
    assert notice["text"].startswith("Giliran Anda: pilih tanggal dan jam di ")
    buttons = [b["callback_data"] for row in notice["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["queue:refresh"]
    assert statuses(release.loket)[2] == (3, "admitted")
    # The five minutes of the turn count from the delivery, not from the admission.
    with release.loket.sessions() as session:
        ends = session.execute(select(QueueEntry.expires_at).where(QueueEntry.number == 3))
        assert aware(ends.scalar_one()) == RELEASE + timedelta(minutes=3 + 5)


class InboxDown(Exception):
    """The database failing the inbox's INSERT (once)."""


def post_with_inbox_failing_once(release: Release, tap: dict[str, Any]) -> dict[str, Any]:
    """Post a tap while the database fails the inbox's INSERT once, then post it again:
    whatever was answered the first time (500, so Telegram sends the update again, or
    "sedang ramai", so the person taps again), the same tap comes again. Return the second
    answer."""
    failures = [1]

    def fail_inbox_once(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "INSERT INTO inbox" in statement and failures:
            failures.pop()
            raise InboxDown()

    engines = {release.loket.autocommit_db, release.loket.db}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", fail_inbox_once)
    try:
        failed = release.client.post("/telegram/webhook", json=tap, headers=HEADERS)
        assert failed.status_code == 500 or "sedang ramai" in failed.get_json()["text"]
        again = release.client.post("/telegram/webhook", json=tap, headers=HEADERS)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", fail_inbox_once)
    assert not failures and again.status_code == 200
    answer: dict[str, Any] = again.get_json()
    return answer


def test_a_tap_whose_accept_failed_gets_its_number_and_its_turn_when_it_comes_again(
    release: Release,
) -> None:
    first = release.chats[0]
    again = post_with_inbox_failing_once(release, release.tapped(first, office_id(release)))
    assert "Nomor antrean Anda 1 " in again["text"]
    assert release.waiting() == 1  # the ticket's turn was stored with it
    release.telegram.drain(first.user)
    assert statuses(release.loket) == [(1, "admitted")]


def test_a_ticket_not_used_by_its_turn_is_voided_and_skipped(
    release: Release, clock: FakeClock
) -> None:
    bandung = office_id(release)
    first, second, *_rest = release.chats
    set_office(release.loket, admit_per_minute=1)
    assert "Nomor antrean Anda 1 " in release.tap(first, bandung)["text"]
    assert "Nomor antrean Anda 2 " in release.tap(second, bandung)["text"]
    # The first moves on before its turn is applied (another door): the tap no longer
    # answers the office question, so the turn gives it no entry.
    first.say("/start")
    release.telegram.drain(first.user)
    release.telegram.drain(second.user)
    assert statuses(release.loket) == [(2, "waiting")]  # held back by ticket 1 for now
    with release.loket.sessions() as session:
        assert session.execute(select(QueueTicket.status).order_by(QueueTicket.number)).scalars(
        ).all() == ["issued", "used"]  # fmt: skip
    clock.advance(minutes=1)
    run_once(release.loket)
    assert statuses(release.loket) == [(2, "admitted")]  # the unused ticket was skipped
    with release.loket.sessions() as session:
        assert session.execute(select(QueueTicket.status).order_by(QueueTicket.number)).scalars(
        ).all() == ["void", "used"]  # fmt: skip


def test_no_number_before_the_release_or_when_sold_out(release: Release, clock: FakeClock) -> None:
    bandung = office_id(release)
    first, second, *_rest = release.chats
    clock.now = RELEASE.replace(hour=0)  # 07:00 WIB: not released yet
    before = release.tap(first, bandung)
    assert "sedang ramai" in before["text"]  # the ordinary path (here: busy)
    clock.now = RELEASE
    with release.loket.sessions() as session, session.begin():
        session.execute(update(Slot).values(taken=Slot.capacity))
    release.later()
    assert "sedang ramai" in release.tap(second, bandung)["text"]
    with release.loket.sessions() as session:
        assert session.execute(select(func.count(QueueTicket.id))).scalar_one() == 0


def at_the_ballot(
    telegram: TelegramChannel,  # noqa: F811
    fake: FakeTelegram,  # noqa: F811
    clock: FakeClock,
    people: int,
) -> Release:
    """Bandung as a ballot office whose entry window is open, and `people` applicants with
    proved numbers at its date question in Telegram."""
    ballot_office(telegram.loket, seats=1)
    clock.now = RELEASE - timedelta(hours=1)
    release = Release(telegram, fake, people)
    for chat in release.chats:
        telegram.loket.vouch_phone("telegram", chat.user, chat.phone(), "contact")
        chat.say("/jadwal")
        chat.say("Bandung")
        assert "Ikut undian" in chat.say("1").labels  # the date question of a ballot office
    return release


def test_a_ballot_entry_is_recorded_at_accept_time_and_confirmed_by_an_edit(
    telegram: TelegramChannel,  # noqa: F811
    fake: FakeTelegram,  # noqa: F811
    clock: FakeClock,
) -> None:
    release = at_the_ballot(telegram, fake, clock, 2)
    proved, unproved = release.chats
    answer = release.tap(proved, "ballot:enter")
    assert answer["text"].startswith(
        "Pendaftaran undian Anda di Kantor Imigrasi Kelas I TPI Bandung tercatat (nomor "
        "pendaftaran "
    )
    with telegram.loket.sessions() as session:
        entries = session.execute(select(BallotEntry.account_ref, BallotEntry.status)).all()
    assert entries == [(proved.user, "entered")]  # durable before any turn ran
    assert release.tap(proved, "ballot:enter")["text"] == answer["text"]  # the same entry
    release.tap(unproved, "ballot:enter")
    assert release.waiting() == 2

    # The second account's number is no longer proved when its turn runs: voided, told why.
    with telegram.loket.sessions() as session, session.begin():
        session.execute(delete(PhoneVerification).where(
            PhoneVerification.user_ref == unproved.user))  # fmt: skip
    for chat in release.chats:
        telegram.drain(chat.user)
    with telegram.loket.sessions() as session:
        entries = session.execute(
            select(BallotEntry.account_ref, BallotEntry.status).order_by(BallotEntry.id)
        ).all()
    assert entries == [(proved.user, "entered"), (unproved.user, "void")]
    # The confirmation replaces the tapped message: no new message.
    edit = release.calls_to(proved, "editMessageText")
    assert len(edit) == 1 and int(edit[0]["message_id"]) == 900
    assert "Pendaftaran undian Anda di Kantor Imigrasi Kelas I TPI Bandung tercatat" in (
        edit[0]["text"])  # fmt: skip
    assert release.calls_to(proved, "sendMessage") == []
    told = release.calls_to(unproved, "editMessageText") + release.calls_to(unproved, "sendMessage")
    assert any("belum berlaku karena nomor HP akun ini belum terverifikasi" in call["text"]
               for call in told)  # fmt: skip
    assert current_step(telegram, int(unproved.user)) == "verify_phone"


def test_a_ballot_tap_whose_accept_failed_is_entered_with_its_turn_when_it_comes_again(
    telegram: TelegramChannel,  # noqa: F811
    fake: FakeTelegram,  # noqa: F811
    clock: FakeClock,
) -> None:
    release = at_the_ballot(telegram, fake, clock, 1)
    (person,) = release.chats
    again = post_with_inbox_failing_once(release, release.tapped(person, "ballot:enter"))
    assert "Pendaftaran undian Anda di Kantor Imigrasi Kelas I TPI Bandung tercatat" in (
        again["text"])  # fmt: skip
    assert release.waiting() == 1  # the entry's turn was stored with it
    telegram.drain(person.user)
    edit = release.calls_to(person, "editMessageText")
    assert len(edit) == 1 and "tercatat" in edit[0]["text"]  # confirmed by its turn


def test_first_come_says_habis_at_accept_time_only_when_every_seat_is_gone(
    telegram: TelegramChannel,  # noqa: F811
    fake: FakeTelegram,  # noqa: F811
    clock: FakeClock,
) -> None:
    release = Release(telegram, fake, 3)
    # An ordinary service, not busy: the tap with seats left is accepted and acknowledged.
    release.app.config["LOAD"].measure = FakeLoad(backlog=0)
    early, late, later = release.chats
    windows = []
    for chat in release.chats:
        telegram.loket.vouch_phone("telegram", chat.user, chat.phone(), "contact")
        chat.say("/jadwal")
        chat.say("Bandung")
        chat.say("1")
        windows.append(chat.say("1").question.choices[0].value)  # the first date's windows
    answer = release.tap(early, windows[0])
    assert answer["text"] == "Permintaan Anda kami terima, hasilnya kami kirim sebentar lagi."
    assert answer["show_alert"] is False and release.waiting() == 1
    with telegram.loket.sessions() as session, session.begin():
        bandung = session.execute(select(Office.id).where(Office.code == "bandung")).scalar_one()
        session.execute(update(Slot).where(Slot.office_id == bandung).values(
            taken=Slot.capacity))  # fmt: skip
        one = session.execute(
            select(Slot.id).where(Slot.office_id == bandung, Slot.day > RELEASE.date()).limit(1)
        ).scalar_one()
        session.execute(update(Slot).where(Slot.id == one).values(taken=Slot.capacity - 1))
    release.later()
    # One seat is left somewhere at the office: not "habis".
    assert "kami terima" in release.tap(late, windows[1])["text"]
    with telegram.loket.sessions() as session, session.begin():
        session.execute(update(Slot).where(Slot.id == one).values(taken=Slot.capacity))
    release.later()
    gone = release.tap(later, windows[2])
    assert gone["text"].startswith("Maaf, kuota di Kantor Imigrasi Kelas I TPI Bandung sudah habis")
    assert gone["show_alert"] is True
    assert release.waiting() == 2  # "habis" needs no turn
    # The accepted tap's result replaces the tapped message.
    telegram.drain(early.user)
    assert int(release.calls_to(early, "editMessageText")[0]["message_id"]) == 900
