"""Smoke tests of bench/webhook.py and bench/whatsapp_webhook.py at tiny sizes.

Each runs as its command does (gunicorn on a fresh PostgreSQL database, Redis, the fake API
in the benchmark's process) for one second a phase, and the test checks what the benchmark
reports, never its timings: every update the webhook accepted got its one reply, and the
bare phase was served.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ADMIN_URL, redis_test_state, require_postgres

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("LOKET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def services() -> Iterator[dict[str, str]]:
    """The benchmarks' environment: PostgreSQL (a fresh database per run) and Redis (each run
    deletes the keys of its own prefix)."""
    with redis_test_state():
        pass  # reachable (else skipped, or failed where services are required)
    require_postgres()
    yield {**os.environ, "DATABASE_URL": POSTGRES_ADMIN_URL, "REDIS_URL": REDIS_URL}


def run(script: str, env: dict[str, str], *options: str) -> dict[str, float]:
    """Run a benchmark for one second a phase; return its last line (JSON)."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--seconds", "1", "--clients", "2",
         "--drain-limit", "60", *options],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


@pytest.mark.parametrize("web", [["--keep-alive", "0", "--worker-connections", "8"], []],
                         ids=["as-the-procfile", "gunicorn-defaults"])  # fmt: skip
def test_webhook_bench_answers_every_update_it_accepted(
    services: dict[str, str], web: list[str]
) -> None:
    figures = run("webhook.py", services, *web)
    assert figures["accepted"] > 0 and figures["busy"] == 0
    assert figures["accepted"] == round(figures["updates_per_s"] * 1)  # one second a phase
    assert figures["answered"] == figures["accepted"]
    assert figures["bare_per_s"] > 0


def test_whatsapp_webhook_bench_answers_every_message_it_accepted(
    services: dict[str, str],
) -> None:
    figures = run("whatsapp_webhook.py", services, "--applier")
    assert figures["accepted"] > 0
    assert figures["answered"] == figures["accepted"]
    assert figures["bare_per_s"] > 0
