"""The applicants' web chat at `/`: the same engine in a browser, for those without Telegram.

The chat identity is a random id in the signed session cookie; the conversation lives on the
server as for every channel, and the page keeps its transcript in the tab's sessionStorage, so
a reload shows the conversation again and the next answer continues where it was.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from flask import Blueprint, Response, g, jsonify, render_template, request, session

from bot.consoles import loket
from bot.core.messages import Inbound, Outbound
from bot.i18n import _
from bot.qr import qr_png

CHANNEL = "web"
blueprint = Blueprint("webchat", __name__)


class Unreadable(ValueError):
    """The page sent something we cannot read; the message is shown to the user."""


def render_message(message: Outbound) -> dict[str, Any]:
    """Shape a bot message for the page: buttons carry their value, QR codes come as images."""
    return {
        "text": message.text,
        "choices": [[choice.value, choice.label] for choice in message.choices],
        "expects": message.expects.value,
        "qr": (
            "data:image/png;base64," + base64.b64encode(qr_png(message.qr)).decode("ascii")
            if message.qr
            else None
        ),
        "offers_location": message.offers_location,
    }


def read_event() -> Inbound:
    """Read what the page sent: a typed text, a pressed button, a location, a file, or 'open'."""
    language = g.get("locale")  # the page's language (Indonesian unless switched)
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise Unreadable(_("File tidak terbaca. Silakan pilih file lagi."))
        return Inbound.file(
            upload.read(), upload.filename or None, upload.mimetype, language_code=language
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Unreadable(_("Pesan tidak terbaca. Silakan coba lagi."))
    if body.get("open"):
        return Inbound.open(language)
    if isinstance(body.get("choice"), str):
        return Inbound.press(body["choice"][:64], language)
    if isinstance(body.get("location"), dict):
        try:
            latitude = float(body["location"]["latitude"])
            longitude = float(body["location"]["longitude"])
        except (KeyError, TypeError, ValueError) as error:
            raise Unreadable(_("Lokasi tidak terbaca. Silakan ketik nama kota.")) from error
        return Inbound.at(latitude, longitude, language)
    if isinstance(body.get("text"), str):
        return Inbound.say(body["text"][:2000], language)
    raise Unreadable(_("Pesan tidak terbaca. Silakan coba lagi."))


def chat_turn(channel: str, user_ref: str, actor: int | None = None) -> tuple[Response, int]:
    """Run one turn and answer with the waiting notices first, then the replies."""
    try:
        event = read_event()
    except Unreadable as error:
        return jsonify(messages=[render_message(Outbound(str(error)))]), 400
    # Notices that arrived meanwhile (payment confirmed, status changed) are shown first; they
    # are taken with the turn, so a failed turn loses none of them.
    messages = loket().converse(channel, user_ref, event, actor=actor)
    return jsonify(messages=[render_message(message) for message in messages]), 200


def web_user() -> str:
    """This browser's chat identity (created on first use)."""
    if "web_user" not in session:
        session.permanent = True
        session["web_user"] = secrets.token_urlsafe(18)
    return str(session["web_user"])


@blueprint.get("/")
def page() -> str:
    """The chat page."""
    web_user()
    return render_template("chat.html")


@blueprint.post("/chat/send")
def send() -> tuple[Response, int]:
    """One turn of this browser's conversation."""
    return chat_turn(CHANNEL, web_user())


@blueprint.post("/chat/poll")
def poll() -> tuple[Response, int]:
    """Notices that arrived meanwhile (payment confirmed, status changed); a POST with the
    page's CSRF token, so another site cannot make a browser take them."""
    if "web_user" not in session:
        return jsonify(messages=[]), 200
    messages = loket().pending_messages(CHANNEL, str(session["web_user"]))
    return jsonify(messages=[render_message(message) for message in messages]), 200
