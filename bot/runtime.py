"""The one place that builds the service and its push channels for a process.

`python -m bot serve` builds one `Runtime` and hands the same instance to the web app, the
worker thread and polling; a gunicorn worker (`create_app()`), `python -m bot worker`,
`apply` and `announce` each build their own. A new push channel adds one block to
`build_channels`: nothing else constructs a channel.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from bot.delivery.layer import Delivery
from bot.logsafe import log_failure
from bot.service import Loket
from bot.settings import Settings

log = logging.getLogger(__name__)


def build_channels(loket: Loket, *, web: bool = False, embedded: bool = False) -> list[Delivery]:
    """Build every configured push channel of this process.

    `web`: the process takes webhooks (a channel is built only when its webhook is configured,
    and applies updates on background threads after answering). `embedded`: `serve` on the
    embedded default, where Telegram without a webhook is served by polling.
    """
    settings = loket.settings
    channels: list[Delivery] = []
    if settings.telegram_token:
        webhook = bool(settings.telegram_webhook_secret)
        if webhook or not web or embedded:
            from bot.channels.telegram import BotRunner, TelegramChannel

            channels.append(TelegramChannel(loket, BotRunner(settings), background=web and webhook))
    if settings.whatsapp:  # WhatsApp has only its webhook: every process may send
        from bot.channels.whatsapp import SEND_THREADS, WhatsAppTransport

        transport = WhatsAppTransport(settings)
        channels.append(Delivery(loket, transport, background=web, send_threads=SEND_THREADS))
    return channels


class Runtime:
    """A process's service and push channels, closed together."""

    def __init__(self, loket: Loket, channels: list[Delivery]) -> None:
        self.loket = loket
        self.channels = channels

    @classmethod
    def build(
        cls,
        settings: Settings,
        loket: Loket | None = None,
        *,
        web: bool = False,
        embedded: bool = False,
    ) -> Runtime:
        """Build the service (unless given) and its configured channels."""
        loket = loket or Loket(settings)
        return cls(loket, build_channels(loket, web=web, embedded=embedded))

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self.channels)

    def channel(self, name: str) -> Delivery | None:
        """The push channel of that name, if configured here."""
        return next((channel for channel in self.channels if channel.name == name), None)

    def resume_waiting(self) -> None:
        """Apply and send what an earlier process accepted and left waiting (at start-up of a
        process taking webhooks), on each such channel's background threads."""
        for channel in self.channels:
            if channel.senders is not None:
                channel.senders.submit(resume_waiting, channel)

    def flush_pending(self) -> dict[str, int]:
        """Apply what waits too long and deliver every channel's leftovers (the worker)."""
        return {f"{channel.name}_sent": channel.flush_pending() for channel in self.channels}

    def close(self, *, service: bool = True) -> None:
        """Close the channels' clients, then (unless told not to) the service."""
        for channel in self.channels:
            try:
                channel.close()
            except Exception as error:
                log_failure(log, f"closing {channel.name} failed", error)
        if service:
            self.loket.close()


def resume_waiting(channel: Delivery) -> None:
    """Apply and send what an earlier process accepted and left waiting (run at start-up)."""
    try:
        channel.flush_pending(grace=timedelta(0))
    except Exception as error:
        log_failure(log, "resuming waiting updates failed", error)
