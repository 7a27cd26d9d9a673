"""A first-time user's journey (issue 10): bounded echoes, every date reachable, office dates,
wording that fits the channel and the booking, typo'd email domains, the "ubah data" list."""

from __future__ import annotations

import pytest

from bot.core.messages import excerpt
from tests.transcript import Chat, fill_until, register

HUGE = "x" * (5 * 1024 * 1024)  # 5 MB typed (a script, or a paste gone wrong)


def test_excerpt_is_short_and_on_one_line() -> None:
    assert excerpt("Bandnug") == "Bandnug"
    assert excerpt("  two\nlines ") == "two lines"
    quoted = excerpt(HUGE)
    assert len(quoted) == 41 and quoted.endswith("…")


def test_city_question_quotes_a_huge_input_in_a_few_characters(chat: Chat) -> None:
    register(chat)
    assert chat.step() == "office_query"
    reply = chat.say(HUGE)
    assert "Belum ada kantor imigrasi Loket di" in reply
    assert "x" * 40 + "…" in reply.text
    assert sum(len(message.text) for message in reply.messages) < 2_000
    assert chat.step() == "office_query"


@pytest.mark.parametrize(
    ("step", "typed", "expected"),
    [
        ("birth_date", "17 " + "a" * 100_000 + " 1990", 'Nama bulan "' + "a" * 40 + '…"'),
        ("phone", "0812 " + "- " * 100 + "345", "Nomor 0812 - - - - - - - - - - - - - - - - - -… tidak valid"),
    ],
)
def test_refusals_quote_at_most_an_excerpt(
    chat: Chat, step: str, typed: str, expected: str
) -> None:
    fill_until(chat, step)
    reply = chat.say(typed)
    assert expected in reply.text
    assert len(reply.text) < 1_000
