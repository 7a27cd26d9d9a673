"""Read WhatsApp Cloud API webhooks defensively: messages become inbox rows, statuses records.

A webhook POST carries `entry[].changes[].value` objects holding `messages` (what people sent)
and `statuses` (what became of what we sent: sent, delivered, read, failed). Each message is
accepted on its own, keyed by its WhatsApp id (`wamid...`), so a redelivered webhook adds
nothing; what we cannot read is logged by shape, never by content, and answered 200 (Meta
would redeliver anything else for days).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.core.messages import Inbound
from bot.delivery.transport import Unreadable, checked_tree
from bot.delivery.transport import expect_object as _object
from bot.delivery.transport import expect_text as _text

# The id of a list's "lainnya" row: MORE + the next page's number [+ ":" + the id of the
# message that first showed the whole question, on later pages].
MORE = "loket:more:"
ID_LIMIT = 200  # characters of a WhatsApp id we keep (real ones are about 60)
KEY_LIMIT = 64  # characters of a message's key ("whatsapp:" + key fits 80)
STATUSES = ("sent", "delivered", "read", "failed")


@dataclass(frozen=True)
class Incoming:
    """What one WhatsApp message means for us."""

    message_id: str
    chat_id: str  # the sender's WhatsApp id: their phone number in digits
    sent_at: datetime  # when they sent it (opens the 24-hour customer-service window)
    event: Inbound | None  # None: a medium still to download
    media_id: str | None = None
    filename: str | None = None
    mime_type: str | None = None
    replied_to: str | None = None  # the id of our message whose button or row was chosen
    more: int | None = None  # a "lainnya" row: the page of the list to show next
    more_of: str | None = None  # ...of the question first sent as this WhatsApp message


@dataclass(frozen=True)
class Status:
    """What became of one message we sent."""

    message_id: str
    chat_id: str
    status: str
    at: datetime
    error_code: int | None


def _id(value: Any, what: str) -> str:
    text = _text(value, what)
    if not text or len(text) > ID_LIMIT:
        raise Unreadable(f"{what} is empty or too long")
    return text


def _wa_id(value: Any, what: str) -> str:
    text = _text(value, what)
    if not text.isdigit() or not 6 <= len(text) <= 20:
        raise Unreadable(f"{what} is not a phone number in digits")
    return text


def _moment(value: Any) -> datetime:
    """Meta's timestamps are Unix seconds as a string."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        return datetime.fromtimestamp(int(value), UTC)
    raise Unreadable("timestamp is not Unix seconds")


def _number(value: Any, what: str) -> float:
    if type(value) not in (int, float):
        raise Unreadable(f"{what} is not a number")
    return float(value)


def split(body: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return a webhook's messages and statuses as plain objects (checked shallow and
    printable); raise Unreadable when the envelope itself is malformed."""
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        raise Unreadable("not a WhatsApp Business webhook")
    checked_tree(body)
    messages: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise Unreadable("entry is not a list")
    for entry in entries:
        changes = _object(entry, "entry").get("changes")
        if not isinstance(changes, list):
            raise Unreadable("changes is not a list")
        for change in changes:
            change = _object(change, "change")
            if change.get("field") != "messages":
                continue  # account updates, template reviews: nothing for a chat
            value = _object(change.get("value"), "value")
            for key, into in (("messages", messages), ("statuses", statuses)):
                items = value.get(key) or []
                if not isinstance(items, list):
                    raise Unreadable(f"{key} is not a list")
                into.extend(_object(item, key[:-1]) for item in items)
    return messages, statuses


def key_of(message: dict[str, Any]) -> tuple[str, str]:
    """Return a message's key and its sender, the two things accepting it needs.

    The key is the WhatsApp id (about 60 characters), or its digest when longer than
    KEY_LIMIT: inbox and processed-event keys hold 80 characters with the channel's prefix.
    """
    message_id = _id(message.get("id"), "message id")
    if len(message_id) > KEY_LIMIT:
        message_id = "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()[: KEY_LIMIT - 7]
    return message_id, _wa_id(message.get("from"), "sender")


def translate(message: dict[str, Any]) -> Incoming | None:
    """Read one message; None for what needs no turn (a reaction, a deleted message)."""
    message_id, chat_id = key_of(message)
    sent_at = _moment(message.get("timestamp"))
    kind = message.get("type")
    context = message.get("context")
    replied_to = context.get("id") if isinstance(context, dict) else None
    replied_to = replied_to if isinstance(replied_to, str) else None

    def incoming(event: Inbound | None, **more: Any) -> Incoming:
        return Incoming(message_id, chat_id, sent_at, event, replied_to=replied_to, **more)

    if kind == "text":
        body = _text(_object(message.get("text"), "text").get("body"), "text body")
        return incoming(Inbound.say(body))
    if kind == "interactive":
        interactive = _object(message.get("interactive"), "interactive")
        reply_kind = interactive.get("type")
        if reply_kind not in ("button_reply", "list_reply"):
            raise Unreadable("interactive reply of an unknown kind")
        chosen = _id(_object(interactive.get(reply_kind), reply_kind).get("id"), "reply id")
        page, _colon, original = chosen.removeprefix(MORE).partition(":")
        if chosen.startswith(MORE) and page.isdigit() and len(page) < 4:
            return incoming(None, more=int(page), more_of=original or replied_to)
        return incoming(Inbound.press(chosen))
    if kind == "button":  # a quick-reply button of a template message: its text is the answer
        button = _object(message.get("button"), "button")
        return incoming(Inbound.say(_text(button.get("text"), "button text")))
    if kind in ("image", "document"):
        medium = _object(message.get(kind), kind)
        name = medium.get("filename")
        mime = medium.get("mime_type")
        return incoming(
            None,
            media_id=_id(medium.get("id"), "media id"),
            filename=name if isinstance(name, str) else None,
            mime_type=mime if isinstance(mime, str) else None,
        )
    if kind == "contacts":
        cards = message.get("contacts")
        if not isinstance(cards, list) or not cards:
            raise Unreadable("contacts is not a list")
        phones = _object(cards[0], "contact").get("phones") or []
        if not isinstance(phones, list) or not phones:
            return incoming(Inbound.say(""))  # a card without a number: asked again
        phone = _object(phones[0], "phone")
        number = _text(phone.get("phone"), "contact phone")
        if phone.get("wa_id") == chat_id:
            # Their own card: WhatsApp itself verified the sender's number.
            return incoming(Inbound.contact("+" + chat_id))
        # Someone else's card: the number counts as typed, and is checked as such.
        return incoming(Inbound.say(number))
    if kind == "location":
        where = _object(message.get("location"), "location")
        latitude = _number(where.get("latitude"), "latitude")
        longitude = _number(where.get("longitude"), "longitude")
        return incoming(Inbound.at(latitude, longitude))
    if kind in ("reaction", "system", "ephemeral", "request_welcome", "order"):
        return None
    # Stickers, voice notes, videos, unsupported kinds: an empty answer asks the question again.
    return incoming(Inbound.say(""))


def read_status(status: dict[str, Any]) -> Status | None:
    """Read one status; None for kinds we do not record (deleted, warnings)."""
    if status.get("status") not in STATUSES:
        return None
    code: int | None = None
    errors = status.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        raw = errors[0].get("code")
        code = raw if type(raw) is int else None
    return Status(
        message_id=_id(status.get("id"), "status id"),
        chat_id=_wa_id(status.get("recipient_id"), "recipient"),
        status=str(status["status"]),
        at=_moment(status.get("timestamp")),
        error_code=code,
    )
