"""The outbox against Telegram's limits: N messages to C chats through the real sender.

The fake Bot API server on 127.0.0.1 (tests/fake_telegram.py) enforces the limits Telegram
documents: at most `--cap` messages a second overall and one a second to one chat, counted
per clock second, answering 429 with `retry_after` beyond them and counting any send to a
chat (or, after a global 429, to any chat) before its retry_after ran out. N rows are written
to the outbox (several per chat, as an announcement plus replies would), then the real
`TelegramChannel.deliver_pending` sends them with the real pacer (`--cap` a second overall,
one a second per chat) on a fresh SQLite database, or `DATABASE_URL`'s (a fresh database made
on that server and dropped after). The last line is JSON:
{"messages", "sent", "lost", "duplicated", "max_per_chat_per_s", "global_rate", "cap",
 "rate_over_cap", "retry_after_violations"}.

    python bench/outbox.py --messages 20000 --chats 5000 --cap 30
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot.channels.telegram import BotRunner, TelegramChannel  # noqa: E402
from bot.core.messages import Outbound  # noqa: E402
from bot.service import Loket  # noqa: E402
from bot.settings import Settings  # noqa: E402
from storage.models import OutboxMessage  # noqa: E402
from tests.fake_telegram import TOKEN, FakeTelegram  # noqa: E402


def fresh_database(url: str | None, folder: str) -> tuple[str, str | None]:
    """Return a URL of an empty database (and the PostgreSQL database to drop after)."""
    if not url or url.startswith("sqlite"):
        return f"sqlite:///{folder}/bench.db", None
    name = f"loket_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False), name


def drop_database(url: str, name: str) -> None:
    """Drop the bench's PostgreSQL database."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run(messages: int, chats: int, cap: int, threads: int, database_url: str | None) -> dict:
    """Queue the messages, deliver them, and measure what the fake server saw."""
    fake = FakeTelegram(limit_per_second=cap, limit_per_chat=1, retry_after=1).start()
    with tempfile.TemporaryDirectory() as folder:
        url, created = fresh_database(database_url, folder)
        try:
            settings = replace(
                Settings.from_env({"LOKET_DATA_DIR": folder}),
                database_url=url,
                auto_migrate=True,
                telegram_token=TOKEN,
                telegram_base_url=fake.base_url,
                telegram_base_file_url=fake.base_file_url,
                telegram_rate=cap,
                telegram_chat_rate=1,
                telegram_send_threads=threads,
            )
            loket = Loket(settings)
            now = datetime.now(UTC)
            rows = [
                {"channel": "telegram", "user_ref": str(800_000 + number % chats),
                 "payload": Outbound(f"bench message {number}").to_payload(), "created_at": now}
                for number in range(messages)
            ]  # fmt: skip
            with loket.sessions() as session, session.begin():
                for start in range(0, len(rows), 1000):
                    session.execute(insert(OutboxMessage), rows[start : start + 1000])
            runner = BotRunner(settings)
            channel = TelegramChannel(loket, runner)
            started = time.time()
            deadline = started + messages / cap * 3 + 60
            while time.time() < deadline:
                channel.deliver_pending()
                with loket.sessions() as session:
                    waiting = session.execute(
                        select(func.count(OutboxMessage.id)).where(
                            OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None)
                        )
                    ).scalar_one()
                if waiting == 0:
                    break
                time.sleep(0.2)  # rows held by flood control wait for their retry time
            runner.close()
            loket.close()
        finally:
            if created and database_url:
                drop_database(database_url, created)
    fake.stop()
    texts = Counter(text for _chat, _at, text in fake.accepted)
    per_chat_second = Counter((chat, int(at)) for chat, at, _text in fake.accepted)
    times = [at for _chat, at, _text in fake.accepted]
    span = max(times) - min(times) if len(times) > 1 else 0.0
    # Messages over whole seconds: the first and last seconds are partly used.
    rate = (len(times) - 1) / span if span > 0 else 0.0
    expected = {f"bench message {number}" for number in range(messages)}
    return {
        "messages": messages,
        "sent": len(texts),
        "lost": len(expected - set(texts)),
        "duplicated": sum(count - 1 for count in texts.values()),
        "max_per_chat_per_s": max(per_chat_second.values(), default=0),
        "global_rate": round(rate, 2),
        "cap": cap,
        "rate_over_cap": round(rate / cap, 3),
        "retry_after_violations": fake.retry_after_violations,
        "throttled": fake.throttled,
        "seconds": round(span, 1),
    }


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--chats", type=int, default=5_000)
    parser.add_argument("--cap", type=int, default=30, help="messages a second Telegram allows")
    parser.add_argument("--threads", type=int, default=16, help="chats sent to side by side")
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL server for a fresh database (else SQLite)"
    )
    args = parser.parse_args()
    figures = run(args.messages, args.chats, args.cap, args.threads, args.database_url)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
