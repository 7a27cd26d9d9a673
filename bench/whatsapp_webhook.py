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
import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.webhook import add_server_options, phases, serving  # noqa: E402
from tests.fake_whatsapp import (  # noqa: E402
    APP_SECRET,
    PHONE_ID,
    TOKEN,
    VERIFY_TOKEN,
    FakeWhatsApp,
    Webhooks,
)


def main() -> int:
    """Run both phases once and print the figures; the last line is JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_options(parser, seconds=15)
    parser.add_argument("--senders", type=int, default=5000)
    args = parser.parse_args()

    fake = FakeWhatsApp().start()
    hooks = Webhooks(lambda: datetime.now(UTC))

    def environment(url: str, port: int) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("TELEGRAM_")}  # fmt: skip
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
        return env

    def webhook(number: int) -> tuple[bytes, dict[str, str]]:
        sender = f"62812{number % args.senders:08d}"
        body = hooks.body([hooks.text(sender, "/status")])
        return body, hooks.headers(body)

    try:
        with serving(args, environment) as port:
            # Every accepted message is answered with one message.
            figures = phases(args, port, "/whatsapp/webhook", webhook, lambda: len(fake.sent))
    finally:
        fake.stop()
    accepted, bare = figures.pop("latencies"), figures.pop("bare")
    print(f"webhook: {len(accepted)} messages accepted in {args.seconds:.0f} s (median "
          f"{statistics.median(accepted):.1f} ms); {figures['answered']} replies, the last "
          f"{figures.pop('answered_after'):.1f} s after the first message")  # fmt: skip
    print(f"bare: {len(bare)} requests; load average {os.getloadavg()}", flush=True)
    print(json.dumps({"messages_per_s": figures.pop("per_s"), **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
