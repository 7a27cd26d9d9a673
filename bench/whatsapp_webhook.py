"""Sustained signed WhatsApp webhooks through gunicorn, against the same server's bare ceiling.

The sibling of bench/webhook.py for the WhatsApp channel: gunicorn serves
`bot.web:create_app()` on PostgreSQL + Redis (DATABASE_URL, REDIS_URL) with only WhatsApp
configured; a fake Graph API in this process (tests/fake_whatsapp.py) takes the replies.
Client threads post signed webhooks (one text message each, from many senders) for a fixed
time, the benchmark waits for the last reply, then the same clients post to `/ping` for the
same time. The last line printed is JSON with the accept and answer rates and their ratios
to the ceiling.

    python bench/whatsapp_webhook.py --seconds 15 --clients 16 --workers 2 --threads 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.herd import fresh_database  # noqa: E402
from bench.webhook import free_port, percentile  # noqa: E402
from bot.seed import extend_calendars, seed_offices  # noqa: E402
from storage.booking import db_now  # noqa: E402
from storage.db import make_engine, make_session_factory  # noqa: E402
from tests.fake_whatsapp import (  # noqa: E402
    APP_SECRET,
    PHONE_ID,
    TOKEN,
    VERIFY_TOKEN,
    FakeWhatsApp,
    Webhooks,
)

Request = Callable[[int], tuple[bytes, dict[str, str]]]


def load(url: str, seconds: float, clients: int, request: Request) -> list[float]:
    """Post as fast as `clients` threads can for `seconds`; return each request's latency."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    counter = itertools.count(1)

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop_at:
                body, headers = request(next(counter))
                began = time.perf_counter()
                response = http.post(url, content=body, headers=headers)
                elapsed = (time.perf_counter() - began) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def main() -> int:
    """Run both phases once and print the figures; the last line is JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--senders", type=int, default=5000)
    parser.add_argument("--applier", action="store_true", help="apply in a niced process")
    parser.add_argument("--nice", type=int, default=19, help="the applier's niceness")
    parser.add_argument("--drain-limit", type=float, default=300, help="seconds to wait")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    fake = FakeWhatsApp().start()
    hooks = Webhooks(lambda: datetime.now(UTC))
    with fresh_database(base) as url:
        engine = make_engine(url)
        with make_session_factory(engine)() as session, session.begin():
            seed_offices(session)
            extend_calendars(session, db_now(session), 14)
        engine.dispose()
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("TELEGRAM_")}
        env.update({
            "DATABASE_URL": url, "LOKET_AUTO_MIGRATE": "0", "LOG_LEVEL": "WARNING",
            "WHATSAPP_TOKEN": TOKEN, "WHATSAPP_PHONE_ID": PHONE_ID,
            "WHATSAPP_APP_SECRET": APP_SECRET, "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "WHATSAPP_API_BASE": fake.base_url,
            # The fake API has no limits; at Meta's 80 a second the answered rate would
            # measure Meta's limit, not ours.
            "WHATSAPP_RATE_PER_SECOND": "100000", "WHATSAPP_CHAT_RATE_PER_SECOND": "100000",
            "LOKET_REDIS_PREFIX": f"bench-whatsapp-{port}",
        })  # fmt: skip
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

            def webhook(number: int) -> tuple[bytes, dict[str, str]]:
                sender = f"62812{number % args.senders:08d}"
                body = hooks.body([hooks.text(sender, "/status")])
                return body, hooks.headers(body)

            began = time.monotonic()
            accepted = load(f"http://127.0.0.1:{port}/whatsapp/webhook", args.seconds,
                            args.clients, webhook)  # fmt: skip
            # Every accepted message is answered with one message: wait (bounded) for the last.
            drain_deadline = time.monotonic() + args.drain_limit
            while len(fake.sent) < len(accepted) and time.monotonic() < drain_deadline:
                time.sleep(0.05)
            answered_after = time.monotonic() - began
            bare = load(f"http://127.0.0.1:{port}/ping", args.seconds, args.clients,
                        lambda number: (b"{}", {"Content-Type": "application/json"}))  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)
            if applier is not None:
                applier.terminate()
                applier.wait(timeout=30)
    fake.stop()
    replies = len(fake.sent)
    rate = len(accepted) / args.seconds
    answered_rate = replies / answered_after
    ceiling = len(bare) / args.seconds
    print(f"webhook: {len(accepted)} messages accepted in {args.seconds:.0f} s (median "
          f"{statistics.median(accepted):.1f} ms); {replies} replies, the last "
          f"{answered_after:.1f} s after the first message")  # fmt: skip
    print(f"bare: {len(bare)} requests; load average {os.getloadavg()}", flush=True)
    print(json.dumps({
        "messages_per_s": round(rate, 1),
        "p50_ms": round(percentile(accepted, 0.5), 1),
        "p99_ms": round(percentile(accepted, 0.99), 1),
        "bare_per_s": round(ceiling, 1),
        "bare_p50_ms": round(percentile(bare, 0.5), 1),
        "bare_p99_ms": round(percentile(bare, 0.99), 1),
        "ratio": round(rate / ceiling, 3),
        "answered": replies,
        "answered_per_s": round(answered_rate, 1),
        "answered_ratio": round(answered_rate / ceiling, 3),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
