"""The WhatsApp channel on the Cloud API: translate messages, render replies, call the API.

Everything a push channel shares (the inbox drain in order per sender, the outbox flush,
pacing, retries, set-aside) is the delivery layer's (`bot.delivery`); this transport only
reads webhook messages, renders the engine's messages within WhatsApp's limits and calls the
Graph API. The webhook (`bot/channels/whatsapp_webhook.py`) checks the signature, accepts
each message into the inbox keyed by its WhatsApp id, records statuses and answers a list's
"Lainnya" itself (a view of the question, not a turn).

Outside the 24-hour customer-service window (the person's last message, as the delivery
layer reads it from their last turn) only approved templates reach them: a notice goes as
the template configured for its kind, its text the one body parameter.
"""

from __future__ import annotations

import logging
from datetime import UTC, timedelta
from typing import Any

from bot.channels.whatsapp_api import GraphClient, GraphError
from bot.channels.whatsapp_render import Template, parse_mapping, render, template_message
from bot.channels.whatsapp_updates import key_of, translate
from bot.core.messages import EventKind, Outbound
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
    Unreadable,
)
from bot.qr import qr_png
from bot.settings import Settings
from storage.whatsapp import CHANNEL

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
# A reply decided this close to the window's end may reach Meta after it: sent as a template.
MARGIN = timedelta(minutes=5)
# Chats one sender delivers to side by side (an announcement): each send waits about 0.1 s
# for the API, so 16 keep up with the default 80 messages a second.
SEND_THREADS = 16
AUTH_CODES = (0, 10, 190, 200)  # a token or permission problem: the deployment's, retried


class WhatsAppTransport:
    """The Cloud API as the delivery layer uses it (one business phone number)."""

    name = CHANNEL

    def __init__(self, settings: Settings, client: GraphClient | None = None) -> None:
        assert settings.whatsapp, "WHATSAPP_TOKEN / _PHONE_ID / _APP_SECRET / _VERIFY_TOKEN"
        self.client = client or GraphClient(
            settings.whatsapp_api_base,
            settings.whatsapp_token or "",
            settings.whatsapp_phone_id or "",
        )
        self.limits = Limits(
            per_second=settings.whatsapp_rate,
            per_chat=settings.whatsapp_chat_rate,
            text=4096,
            buttons=3,
            window=WINDOW,
        )
        self.templates = parse_mapping(settings.whatsapp_templates)
        self.languages = parse_mapping(settings.whatsapp_template_languages)

    # ---- inbound -----------------------------------------------------------------------

    def read(self, payload: Any) -> Incoming | None:
        """Translate one accepted WhatsApp message (the webhook splits each POST into them)."""
        if not isinstance(payload, dict):
            raise Unreadable("message is not an object")
        message_id, _sender = key_of(payload)  # without them: Unreadable, nothing to log by
        try:
            incoming = translate(payload)
        except Unreadable as error:
            raise Unreadable(str(error), ref=message_id) from None
        if incoming is None or incoming.more is not None:
            return None  # a reaction; a "lainnya" row, answered by the webhook itself
        pressed = incoming.event is not None and incoming.event.kind is EventKind.CHOICE
        tap = Tap(message_id=incoming.replied_to) if pressed else None
        media = incoming.media_id
        return Incoming(
            key=incoming.message_id,
            chat_id=incoming.chat_id,
            event=incoming.event,
            file=FileRef(media, None, incoming.filename, incoming.mime_type) if media else None,
            tap=tap,
        )

    def fetch(self, file: FileRef, limit: int) -> bytes:
        """Look the medium up (its URL and size), refuse it if too large, then download it."""
        try:
            media = self.client.media(file.id)
            if media.size is not None and media.size > limit:
                raise TooLarge(media.size)
            return self.client.download(media.url, limit)
        except GraphError as error:
            if error.status == 413:
                raise TooLarge(limit + 1) from None
            raise self._error(error, "media") from None

    # ---- outbound ----------------------------------------------------------------------

    def render(self, message: Outbound, to: Recipient) -> Rendered:
        """Render a message: free-form inside the 24-hour window, else its notice template."""
        if not self.window_open(to):
            template = self.template_for(message.kind, to.locale)
            if template is not None:
                return Rendered([template_message(template, message.text)])
            log.warning("no template for a %s notice outside the window", message.kind or "status")
        parts: list[Any] = render(message)
        buttons_at = len(parts) - 1
        if message.qr:
            parts.append({"type": "image", "upload": ("loket-qr.png", "image/png", message.qr)})
        if message.export:
            name, data = to.export()
            parts.append({"type": "document", "upload": (name, "application/json", data)})
        return Rendered(parts, buttons_at=buttons_at)

    def window_open(self, to: Recipient) -> bool:
        """Tell whether a free-form message reaches the person now (they wrote lately)."""
        last = to.last_inbound
        if last is None:
            return False
        last = last if last.tzinfo is not None else last.replace(tzinfo=UTC)
        now = to.now if to.now.tzinfo is not None else to.now.replace(tzinfo=UTC)
        return now < last + WINDOW - MARGIN

    def template_for(self, kind: str | None, locale: str) -> Template | None:
        """The configured template for a notice kind (else the status one) in a language."""
        name = self.templates.get(kind or "status") or self.templates.get("status")
        if not name:
            return None
        return Template(name, self.languages.get(locale, locale))

    def send(self, chat_id: str, payload: Any) -> str:
        """Send one rendered part (uploading its medium first); return its WhatsApp id."""
        try:
            upload = payload.get("upload")
            if upload is None:
                return self.client.send({"to": chat_id, **payload})
            name, mime, content = upload
            data = qr_png(content) if payload["type"] == "image" else content
            media_id = self.client.upload(data, mime, name)
            medium: dict[str, Any] = {"id": media_id}
            if payload["type"] == "document":
                medium["filename"] = name
            return self.client.send(
                {"to": chat_id, "type": payload["type"], payload["type"]: medium}
            )
        except GraphError as error:
            raise self._error(error, "send") from None

    def edit(self, chat_id: str, message_id: str, payload: Any) -> str:
        """WhatsApp cannot replace a sent message (`limits.edits` is off: never called)."""
        raise Refused("whatsapp messages cannot be edited")

    def answer_tap(self, tap_id: str, text: str | None = None, alert: bool = False) -> None:
        """Taps need no answer on WhatsApp (`Tap.id` is None: never called)."""

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    @staticmethod
    def _error(error: GraphError, what: str) -> Exception:
        """Say what the delivery layer should do about a Graph API failure."""
        reason = f"{what}: status {error.status} code {error.code}"
        if error.throttled:
            # Throughput limits hold every sender a moment; the per-user pair limit (131056)
            # only this row, which is retried with backoff.
            if error.code == 131056:
                return RetryLater(reason)
            return RetryLater(reason, retry_after=error.retry_after or 1.0)
        if error.recipient_gone:
            return ChatBlocked(reason)
        if error.status in (401, 403) or (error.code in AUTH_CODES and error.status >= 400):
            return RetryLater(reason)  # our token or permissions: fixed by the deployment
        if error.permanent:
            return Refused(reason)
        return RetryLater(reason)
