"""A small run of bench/channel_cpu.py on both backends: both paths complete, nothing timed."""

from __future__ import annotations

import pytest

from bench.channel_cpu import run
from tests.conftest import POSTGRES_ADMIN_URL, require_postgres
from tests.test_bench_release import REDIS_URL


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_registration_through_the_terminal_and_through_telegram(backend: str) -> None:
    database_url = redis_url = None
    if backend == "postgresql":
        require_postgres()
        database_url, redis_url = POSTGRES_ADMIN_URL, REDIS_URL
    figures = run(1, database_url, redis_url, warmup=0)
    assert figures["backend"] == ("sqlite" if backend == "sqlite" else "postgresql+redis")
    # Both applicants got through registration and booking (the driver asserts every step);
    # the Telegram one in 27 updates: /start, 19 answers, the summary, 5 booking turns.
    assert figures["turns_per_registration"] == 27
    assert figures["terminal_turns_per_registration"] == 28  # the one-time code typed back
    calls = figures["bot_api_calls_by_method"]
    assert calls["getFile"] == 3  # the three document photos
    assert calls["sendMessage"] >= 1
    assert sum(calls.values()) == figures["bot_api_calls_per_registration"]
    assert figures["terminal_cpu_s_per_registration"] > 0
    assert figures["push_cpu_s_per_registration"] > 0
