"""The JSON chat API (`POST /api/v1/chat`): the same engine for gateways and call-centre tools.

A gateway (WhatsApp, Instagram, a call-centre tool) sends what its user said and gets back the
bot's messages in the terminal channel's shape. Requests carry `Authorization: Bearer
<LOKET_API_KEY>`; without a configured key the API answers 503. Described in
`docs/openapi.json`.

In (JSON): {"user": ID, "text": "..."} or "choice" (a button's label or number), "contact"
(a shared phone number), "location" ({"latitude", "longitude"}) or "file" ({"name", "data":
base64}); optional "language" ("id" or "en"). A file may also come as multipart/form-data
(fields `user`, `file`). Optional "verified_phone": the number the gateway itself verified
for this user (WhatsApp: the sender's number), which the bot takes as proof before holding a
seat; never send a number the user merely typed.
Out: {"messages": [{"text", "choices", "expects"}, ...]}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from bot.channels.pull import take_turn
from bot.core.flow import Invalid
from bot.core.messages import Inbound, Outbound
from bot.limits import too_many, turn_wait
from bot.privacy import FILE_TYPE
from bot.service import Loket
from bot.validators import parse_phone

CHANNEL = "api"
USER_LIMIT = 128
EVENT_ID_LIMIT = 64

api = Blueprint("api", __name__)


class BadRequest(ValueError):
    """The request cannot be read; the message says why (for the integrating developer)."""


def _user(value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise BadRequest("'user' must be a string or an integer")
    user = str(value).strip()
    if not user or len(user) > USER_LIMIT:
        raise BadRequest(f"'user' must have 1 to {USER_LIMIT} characters")
    return user


def _language(value: Any) -> str | None:
    if value is None:
        return None
    if value not in ("id", "en"):
        raise BadRequest("'language' must be 'id' or 'en'")
    return str(value)


def verified_phone_of(body: Any) -> str | None:
    """The number the gateway vouches for (it verified it itself), normalised to E.164."""
    value = body.get("verified_phone") if isinstance(body, dict) else None
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("'verified_phone' must be a string")
    try:
        return parse_phone(value)
    except Invalid as error:
        raise BadRequest("'verified_phone' is not an Indonesian mobile number") from error


def event_id(body: Any) -> str | None:
    """The gateway's optional id of this message (a retry with the same id is a no-op)."""
    value = body.get("event_id") if isinstance(body, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= EVENT_ID_LIMIT:
        raise BadRequest(f"'event_id' must be a string of 1 to {EVENT_ID_LIMIT} characters")
    return value


def read_json(body: Any) -> tuple[str, Inbound]:
    """Read a JSON request into (user, event)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    user = _user(body.get("user"))
    language = _language(body.get("language"))
    given = [key for key in ("text", "choice", "contact", "location", "file") if key in body]
    if len(given) != 1:
        raise BadRequest("give exactly one of 'text', 'choice', 'contact', 'location', 'file'")
    kind = given[0]
    value = body[kind]
    if kind in ("text", "choice", "contact"):
        if not isinstance(value, str):
            raise BadRequest(f"'{kind}' must be a string")
        # A choice is read like a typed label or number: the engine checks it against the
        # buttons this user was shown, so a gateway cannot press another user's button.
        if kind == "contact":
            return user, Inbound.contact(value, language)
        return user, Inbound.say(value, language)
    if kind == "location":
        try:
            latitude = float(value["latitude"])
            longitude = float(value["longitude"])
        except (TypeError, KeyError, ValueError) as error:
            raise BadRequest("'location' needs numeric 'latitude' and 'longitude'") from error
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise BadRequest("'location' is out of range")
        return user, Inbound.at(latitude, longitude, language)
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise BadRequest("'file' must be an object with base64 'data' (and a 'name')")
    try:
        data = base64.b64decode(value["data"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadRequest("'file.data' is not valid base64") from error
    name = value.get("name")
    return user, Inbound.file(data, str(name) if name else None, language_code=language)


def read_form() -> tuple[str, Inbound]:
    """Read a multipart request (fields `user`, `file`, optional `language`)."""
    user = _user(request.form.get("user"))
    language = _language(request.form.get("language"))
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("a multipart request needs a 'file' field")
    return user, Inbound.file(upload.read(), upload.filename or None, language_code=language)


@api.post("/api/v1/chat")
def chat() -> tuple[Response, int]:
    """Run one turn for a gateway's user and return every message waiting for them."""
    key = current_app.config["SETTINGS"].api_key
    if not key:
        return jsonify(error="the chat API is not configured (LOKET_API_KEY)"), 503
    given = request.headers.get("Authorization", "")
    if not given.startswith("Bearer "):
        return jsonify(error="missing bearer key"), 401
    if not hmac.compare_digest(given.removeprefix("Bearer ").encode(), key.encode()):
        return jsonify(error="wrong key"), 403
    try:
        if request.mimetype == "multipart/form-data":
            user, event = read_form()
            given_id = event_id(dict(request.form))
            vouched = verified_phone_of(dict(request.form))
        else:
            body = request.get_json(silent=True)
            user, event = read_json(body)
            given_id = event_id(body)
            vouched = verified_phone_of(body)
    except BadRequest as error:
        return jsonify(error=str(error)), 400
    service: Loket = current_app.config["LOKET"]
    # No address bucket: every user of a gateway comes from the gateway's address.
    wait = turn_wait(service, CHANNEL, user, None, vouched)
    if wait is not None:
        return too_many(wait)
    if vouched is not None:
        service.vouch_phone(CHANNEL, user, vouched, "gateway")
    event_key = None
    if given_id is not None:
        # Exactly once: the key is recorded with the turn's effects and its replies go to the
        # outbox in the same transaction; a retry of a delivered event changes nothing.
        digest = hashlib.sha256(f"{user}\n{given_id}".encode()).hexdigest()
        event_key = f"{CHANNEL}:{digest[:48]}"  # fits the key column whatever the lengths
    # Notices that arrived meanwhile (payment confirmed, hold expired) come first.
    turn = take_turn(service, CHANNEL, user, event, event_key=event_key)
    if turn.repeated:
        return jsonify(messages=[], repeated=True), 200
    return jsonify(messages=[render(service, user, message) for message in turn.messages]), 200


def render(service: Loket, user: str, message: Outbound) -> dict[str, Any]:
    """A message in the API's shape; the user's data export (/datasaya) rides along as a
    file for the gateway to deliver (`file`: name, content type, base64 content)."""
    shaped = message.to_json()
    if message.export:
        name, data = service.export_now(CHANNEL, user)
        shaped["file"] = {
            "name": name,
            "content_type": FILE_TYPE,
            "base64": base64.b64encode(data).decode("ascii"),
        }
    return shaped
