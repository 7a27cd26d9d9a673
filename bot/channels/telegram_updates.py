"""Read Bot API updates defensively: what we cannot read is set aside, never retried.

A correctly signed update can still be malformed (a chat without an id, a chat id that is an
object, 10,000 nested arrays). Answering non-2xx makes Telegram redeliver it for hours and hold
the chat behind it, so the webhook and the poller both answer/acknowledge it and log only its
update_id and what was wrong, never its content.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.core.messages import Inbound
from bot.delivery.transport import FileRef, Incoming, Tap, Unreadable, checked_tree
from bot.delivery.transport import expect_object as _object
from bot.delivery.transport import expect_text as _text

# `Unreadable` and `Incoming` are the delivery layer's; importable from here as before.
__all__ = ["Incoming", "Unreadable", "checked_id", "loads", "translate", "update_id_of"]

CUT_DEPTH = 64  # a bounded parse replaces containers deeper than this with null
ID_RANGE = 2**63  # ids fit a signed 64-bit integer (the Bot API says 52 bits)
_UPDATE_ID = re.compile(rb'\s*\{\s*"update_id"\s*:\s*(-?\d{1,19})\s*[,}]')


def loads(data: bytes | str) -> Any:
    """Parse JSON whatever its nesting: containers deeper than CUT_DEPTH become null.

    `json.loads` raises RecursionError (not ValueError) on deep nesting; the bounded parse
    keeps the update_id readable so the update can be acknowledged and set aside.
    """
    try:
        return json.loads(data)
    except RecursionError:
        return json.loads(_cut_deep(data if isinstance(data, str) else data.decode("utf-8")))


def _cut_deep(text: str) -> str:
    """Replace every container nested deeper than CUT_DEPTH with `null` (strings respected)."""
    out: list[str] = []
    depth = 0
    skip_from: int | None = None  # where the container being cut began
    copied = 0
    in_string = escaped = False
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > CUT_DEPTH and skip_from is None:
                skip_from = position
        elif char in "]}":
            depth -= 1
            if skip_from is not None and depth == CUT_DEPTH:
                out.append(text[copied:skip_from] + "null")
                copied = position + 1
                skip_from = None
    out.append(text[copied:])
    return "".join(out)


def update_id_of(body: bytes) -> int | None:
    """The update_id of a body we could not parse at all, when Telegram put it first."""
    found = _UPDATE_ID.match(body)
    return int(found.group(1)) if found else None


def checked_id(update: Any) -> int:
    """Return an update's id after checking the whole update is plain, shallow JSON."""
    if not isinstance(update, dict):
        raise Unreadable("not an object")
    update_id = update.get("update_id")
    if type(update_id) is not int or not -ID_RANGE < update_id < ID_RANGE:
        raise Unreadable("update_id is not an integer")
    try:
        checked_tree(update)
    except Unreadable as error:
        error.ref = update_id
        raise
    return update_id


def _number(value: Any, what: str) -> float:
    if type(value) not in (int, float):
        raise Unreadable(f"{what} is not a number")
    return float(value)


def _size(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _chat_id(message: dict[str, Any]) -> str | None:
    """The private chat's id as text; None for groups and channels (we do not serve them)."""
    chat = _object(message.get("chat"), "chat")
    if chat.get("type", "private") != "private":
        return None
    chat_id = chat.get("id")
    if type(chat_id) is not int or not -ID_RANGE < chat_id < ID_RANGE:
        raise Unreadable("chat id is not an integer")
    return str(chat_id)


def _language(sender: Any) -> str | None:
    code = sender.get("language_code") if isinstance(sender, dict) else None
    return code if isinstance(code, str) and len(code) <= 35 else None


def translate(update: dict[str, Any]) -> Incoming | None:
    """Read a Bot API update; None for what we do not handle (groups, edits, stickers...).

    Raises Unreadable (with the update_id as its `ref` when readable) when an update we would
    handle lacks what we need or has it in the wrong shape.
    """
    update_id = checked_id(update)
    try:
        return _translate(update, update_id)
    except Unreadable as error:
        error.ref = update_id
        raise


def _translate(update: dict[str, Any], update_id: int) -> Incoming | None:
    """`translate` once the update's id and shape are checked."""
    key = str(update_id)
    if "callback_query" in update:
        query = _object(update["callback_query"], "callback_query")
        if "message" not in query:
            raise Unreadable("callback without message")
        message = _object(query["message"], "callback message")
        chat_id = _chat_id(message)
        if chat_id is None or "data" not in query:
            return None
        data = _text(query["data"], "callback data")
        tapped = message.get("message_id")
        tap = Tap(
            id=_text(query.get("id"), "callback id"),
            message_id=str(tapped) if type(tapped) is int else None,
            label=_label(message, data),
            text=str(message.get("text", "")),
        )
        event = Inbound.press(data, _language(query.get("from")))
        return Incoming(key, chat_id, event, tap=tap)
    if update.get("message") is None:
        return None
    message = _object(update["message"], "message")
    chat_id = _chat_id(message)
    if chat_id is None:
        return None
    sender = message.get("from")
    language = _language(sender)
    if "text" in message:
        return Incoming(key, chat_id, Inbound.say(_text(message["text"], "text"), language))
    if "contact" in message:
        contact = _object(message["contact"], "contact")
        phone = _text(contact.get("phone_number"), "contact phone number")
        own = sender.get("id") if isinstance(sender, dict) else None
        if contact.get("user_id") not in (None, own):
            # Someone else's contact card: treat the number as typed, so it is checked as such.
            return Incoming(key, chat_id, Inbound.say(phone, language))
        return Incoming(key, chat_id, Inbound.contact(phone, language))
    if "location" in message:
        where = _object(message["location"], "location")
        latitude = _number(where.get("latitude"), "latitude")
        longitude = _number(where.get("longitude"), "longitude")
        return Incoming(key, chat_id, Inbound.at(latitude, longitude, language))
    if message.get("photo"):
        sizes = message["photo"]
        if not isinstance(sizes, list) or not all(isinstance(p, dict) for p in sizes):
            raise Unreadable("photo is not a list of sizes")

        def area(size: dict[str, Any]) -> int:
            width, height = size.get("width"), size.get("height")
            return width * height if type(width) is int and type(height) is int else 0

        largest = max(sizes, key=area)
        file_id = _text(largest.get("file_id"), "photo file_id")
        return Incoming(key, chat_id, None, FileRef(file_id, _size(largest.get("file_size"))))
    if "document" in message:
        document = _object(message["document"], "document")
        name = document.get("file_name")
        file = FileRef(
            _text(document.get("file_id"), "document file_id"),
            _size(document.get("file_size")),
            name if isinstance(name, str) else None,
        )
        return Incoming(key, chat_id, None, file)
    return Incoming(key, chat_id, Inbound.say("", language))


def _label(message: dict[str, Any], data: str) -> str | None:
    """The label of the tapped message's button that carries `data` (shown when folded)."""
    label = None
    markup = message.get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    for row in rows if isinstance(rows, list) else []:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data:
                text = button.get("text")
                label = text if isinstance(text, str) else label
    return label
