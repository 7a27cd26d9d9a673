"""A small run of bench/outbox.py: the real sender against the fake Bot API's limits."""

from __future__ import annotations

from bench.outbox import run


def test_small_outbox_run_loses_nothing_doubles_nothing_and_keeps_the_limits() -> None:
    figures = run(messages=40, chats=10, cap=50, threads=4, database_url=None)
    assert figures["sent"] == 40
    assert figures["lost"] == 0 and figures["duplicated"] == 0
    assert figures["max_per_chat_per_s"] == 1
    assert figures["retry_after_violations"] == 0
    assert set(figures) >= {
        "messages",
        "sent",
        "lost",
        "duplicated",
        "max_per_chat_per_s",
        "global_rate",
        "cap",
        "rate_over_cap",
        "retry_after_violations",
    }
