"""Release-day operations: a flood answered once, overload answered, taps answered in place."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.channels.telegram import TelegramChannel
from storage.models import InboxUpdate, ProcessedEvent
from tests.fake_telegram import FakeTelegram
from tests.test_telegram import CHAT, current_step, fake, telegram, webhook  # noqa: F401


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
