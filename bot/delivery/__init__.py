"""The delivery layer shared by every push channel (Telegram, WhatsApp) behind `Transport`.

A channel is a `Transport` (bot/delivery/transport.py: translate and call its API) wrapped in
a `Delivery` (bot/delivery/layer.py: inbox drain, outbox flush, pacing, retries, set-aside),
built in one place (`bot.runtime.build_channels`) and handed to the web app, the worker and
the `apply` / `poll` commands.
"""

from bot.delivery.layer import Delivery, send_backoff
from bot.delivery.pacing import Pacer
from bot.delivery.transport import (
    ChatBlocked,
    FileRef,
    Incoming,
    Limits,
    Recipient,
    Refused,
    Rendered,
    RetryLater,
    Tap,
    TooLarge,
    Transport,
    TransportError,
    Unreadable,
)

__all__ = [
    "ChatBlocked",
    "Delivery",
    "FileRef",
    "Incoming",
    "Limits",
    "Pacer",
    "Recipient",
    "Refused",
    "Rendered",
    "RetryLater",
    "Tap",
    "TooLarge",
    "Transport",
    "TransportError",
    "Unreadable",
    "send_backoff",
]
