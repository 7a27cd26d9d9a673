"""Telegram at release: how many Bot API calls each arriving tap costs, and how many of them
spend the bot's 30-messages-a-second budget.

N chats are each shown the consent question, then every chat taps "Saya setuju" `--taps` times
at once (impatient people tap again while the spinner turns). The taps go through the real
webhook (Flask's own view, in this process) and the real applier, against the fake Bot API
server on 127.0.0.1, on a fresh SQLite database. The last line is JSON:
{"chats", "taps", "send_message", "edit_message_text", "answer_callback_query",
 "calls_per_tap", "budget_messages_per_tap", "budget_seconds"}.

    python bench/taps.py --chats 200 --taps 3 --appliers 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.channels.telegram import BotRunner, TelegramChannel  # noqa: E402
from bot.service import Loket  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.web import create_app  # noqa: E402
from tests.fake_telegram import TOKEN, FakeTelegram  # noqa: E402

SECRET = "bench-secret"
BUDGET = 30  # messages a second Telegram allows a bot (sendMessage and edits)


def main() -> None:
    """Run the taps and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--taps", type=int, default=3, help="taps of each chat, at once")
    parser.add_argument("--appliers", type=int, default=4, help="chats applied side by side")
    args = parser.parse_args()
    fake = FakeTelegram().start()
    with tempfile.TemporaryDirectory() as folder:
        settings = replace(
            Settings.from_env({"LOKET_DATA_DIR": folder}),
            telegram_token=TOKEN,
            telegram_base_url=fake.base_url,
            telegram_base_file_url=fake.base_file_url,
            telegram_webhook_secret=SECRET,
            telegram_rate=100_000,  # count the budget, do not wait for it
            telegram_chat_rate=100_000,
        )
        loket = Loket(settings)
        runner = BotRunner(settings)
        channel = TelegramChannel(loket, runner)
        client = create_app(settings, loket, telegram=channel).test_client()
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        chats = [700_000 + number for number in range(args.chats)]
        for chat in chats:
            client.post("/telegram/webhook", json=fake.text(chat, "/daftar"), headers=headers)
        with fake.lock:
            fake.calls.clear()
        taps = [fake.press(chat, "Saya setuju") for chat in chats for _ in range(args.taps)]
        for tap in taps:  # every tap accepted (the webhook's part) before any is applied
            channel.accept(tap)
        with ThreadPoolExecutor(args.appliers) as pool:  # as `python -m bot apply` does
            list(pool.map(channel.drain, [str(chat) for chat in chats]))
        runner.close()
        loket.close()
    fake.stop()
    count = {name: len(fake.methods(name)) for name in
             ("sendMessage", "editMessageText", "answerCallbackQuery")}  # fmt: skip
    budget = count["sendMessage"] + count["editMessageText"]
    figures = {
        "chats": args.chats,
        "taps": len(taps),
        "send_message": count["sendMessage"],
        "edit_message_text": count["editMessageText"],
        "answer_callback_query": count["answerCallbackQuery"],
        "calls_per_tap": round(sum(count.values()) / len(taps), 3),
        "budget_messages_per_tap": round(budget / len(taps), 3),
        "budget_seconds": round(budget / BUDGET, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
