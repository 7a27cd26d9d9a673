"""Sustained signed Telegram updates through the webhook, against the same server's ceiling.

gunicorn serves `bot.web:create_app()` on PostgreSQL + Redis (DATABASE_URL, REDIS_URL); a fake
Bot API server in this process takes the replies. Client threads post signed updates of many
chats for a fixed time, then post to `/ping` (a bare 200 from the same server) for the same
time. The last line printed is JSON with both rates and their ratio.

    python bench/webhook.py --seconds 20 --clients 16 --workers 2 --threads 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.herd import fresh_database  # noqa: E402
from bot.seed import extend_calendars, seed_offices  # noqa: E402
from storage.booking import db_now  # noqa: E402
from storage.db import make_engine, make_session_factory  # noqa: E402
from tests.fake_telegram import TOKEN, FakeTelegram  # noqa: E402

SECRET = "bench-secret"


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load(
    url: str,
    seconds: float,
    clients: int,
    body: Any,
    headers: dict[str, str],
    answered_in_response: list[float] | None = None,
) -> list[float]:
    """Post as fast as `clients` threads can for `seconds`; return each accepted request's
    latency. A response that answers the update itself (a Bot API method in its body: the
    "sedang ramai" answer under overload) was not accepted: its latency goes to
    `answered_in_response` when given."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    counter = itertools.count(1)

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop_at:
                number = next(counter)
                began = time.perf_counter()
                response = http.post(url, json=body(number), headers=headers)
                elapsed = (time.perf_counter() - began) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                answered = (
                    response.headers.get("content-type", "").startswith("application/json")
                    and "method" in response.json()
                )
                with lock:
                    if answered and answered_in_response is not None:
                        answered_in_response.append(elapsed)
                    else:
                        latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def percentile(values: list[float], share: float) -> float:
    """Return a percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> int:
    """Run both phases once and print the figures; the last line is JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--chats", type=int, default=5000)
    parser.add_argument("--applier", action="store_true", help="apply in a niced process")
    parser.add_argument("--nice", type=int, default=19, help="the applier's niceness")
    parser.add_argument("--drain-limit", type=float, default=300, help="seconds to wait")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    fake = FakeTelegram().start()
    with fresh_database(base) as url:
        engine = make_engine(url)
        with make_session_factory(engine)() as session, session.begin():
            seed_offices(session)
            extend_calendars(session, db_now(session), 14)
        engine.dispose()
        port = free_port()
        env = {
            **os.environ, "DATABASE_URL": url, "LOKET_AUTO_MIGRATE": "0",
            "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url,
            "TELEGRAM_BASE_FILE_URL": fake.base_file_url, "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "LOG_LEVEL": "WARNING", "TELEGRAM_RATE_PER_SECOND": "100000",
            "TELEGRAM_CHAT_RATE_PER_SECOND": "100000",
            "LOKET_REDIS_PREFIX": f"bench-webhook-{port}",
        }  # fmt: skip
        if args.applier:
            env["LOKET_APPLY_IN_WEB"] = "0"
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--threads",
             str(args.threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
             "bot.web:create_app()"],
            env=env, cwd=ROOT,
        )  # fmt: skip
        applier = None
        if args.applier:
            command = ["nice", "-n", str(args.nice), sys.executable, "-m", "bot", "apply"]
            applier = subprocess.Popen(command, env=env, cwd=ROOT)
        try:
            for _ in range(100):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            print(f"gunicorn {args.workers}x{args.threads}, {args.clients} clients, "
                  f"{args.seconds:.0f} s per phase", flush=True)  # fmt: skip

            def update(number: int) -> dict[str, Any]:
                chat = 10_000 + number % args.chats
                return {"update_id": number, "message": {
                    "message_id": number, "date": int(time.time()), "text": "/status",
                    "chat": {"id": chat, "type": "private"},
                    "from": {"id": chat, "is_bot": False, "first_name": "P"}}}  # fmt: skip

            signed = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            began = time.monotonic()
            busy: list[float] = []
            webhook = load(f"http://127.0.0.1:{port}/telegram/webhook", args.seconds,
                           args.clients, update, signed, busy)  # fmt: skip
            # Every accepted update is answered with one message: wait (bounded) for the last.
            drain_deadline = time.monotonic() + args.drain_limit
            while len(fake.sent) < len(webhook) and time.monotonic() < drain_deadline:
                time.sleep(0.05)
            answered_after = time.monotonic() - began
            bare = load(f"http://127.0.0.1:{port}/ping", args.seconds, args.clients,
                        lambda number: {"n": number}, {})  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)
            if applier is not None:
                applier.terminate()
                applier.wait(timeout=30)
    fake.stop()
    replies = len(fake.sent)
    rate = len(webhook) / args.seconds
    answered_rate = replies / answered_after
    ceiling = len(bare) / args.seconds
    median = statistics.median(webhook)
    print(f"webhook: {len(webhook)} updates accepted in {args.seconds:.0f} s (median "
          f"{median:.1f} ms), {len(busy)} answered busy in the response; {replies} replies, the "
          f"last {answered_after:.1f} s after the first update")  # fmt: skip
    print(f"bare: {len(bare)} requests", flush=True)
    print(json.dumps({
        "updates_per_s": round(rate, 1),
        "p50_ms": round(percentile(webhook, 0.5), 1),
        "p99_ms": round(percentile(webhook, 0.99), 1),
        "bare_per_s": round(ceiling, 1),
        "bare_p50_ms": round(percentile(bare, 0.5), 1),
        "bare_p99_ms": round(percentile(bare, 0.99), 1),
        "ratio": round(rate / ceiling, 3),
        "answered": replies,
        "answered_per_s": round(answered_rate, 1),
        "answered_ratio": round(answered_rate / ceiling, 3),
        "busy": len(busy),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
