"""Rate limits of the web chat and the chat API: token buckets in shared state.

Per account (channel and user), per verified phone number (every account on it together) and
per source address. Indonesian mobile users share addresses through carrier-grade NAT, so the
address bucket is generous and never the only defence; accounts and numbers carry the weight.
Bucket keys carry a digest of the phone number and address, never the values themselves.
"""

from __future__ import annotations

import hashlib
import math

from flask import Response, jsonify

from bot.i18n import _
from bot.metrics import refused
from bot.service import Loket
from storage.phones import verified_phone


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def turn_wait(
    loket: Loket, channel: str, user_ref: str, address: str | None, phone: str | None = None
) -> float | None:
    """Take one turn from each of the caller's buckets; None if allowed, else the wait.

    `phone` is a number the request itself vouches for (a gateway's); otherwise the
    account's verified number, if any, is looked up.
    """
    settings = loket.settings
    buckets = [(f"rate:account:{channel}:{_digest(user_ref)}", settings.rate_account_per_second,
                settings.rate_account_burst)]  # fmt: skip
    if address:
        buckets.insert(0, (f"rate:address:{_digest(address)}", settings.rate_address_per_second,
                           settings.rate_address_burst))  # fmt: skip
    if phone is None:
        with loket.sessions() as session:
            phone = verified_phone(session, channel, user_ref)
    if phone is not None:
        buckets.append((f"rate:phone:{_digest(phone)}", settings.rate_phone_per_second,
                        settings.rate_phone_burst))  # fmt: skip
    for key, rate, burst in buckets:
        allowed, wait = loket.shared.take(key, rate, burst)
        if not allowed:
            return wait
    return None


def too_many(wait: float) -> tuple[Response, int]:
    """Answer 429 with Retry-After and a message the chat shows."""
    refused("rate_limited")
    seconds = max(1, math.ceil(wait))
    text = _("Pesan Anda terlalu cepat. Tunggu {seconds} detik, lalu kirim lagi.").format(
        seconds=seconds
    )
    response = jsonify(
        error="too many requests",
        retry_after=seconds,
        messages=[{"text": text, "choices": [], "expects": "none", "qr": None,
                   "offers_location": False}],
    )  # fmt: skip
    response.headers["Retry-After"] = str(seconds)
    return response, 429
