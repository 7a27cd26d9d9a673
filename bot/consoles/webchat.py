"""The applicants' web chat at `/`: the same engine in a browser, for those without Telegram.

The chat identity is a random id in the signed session cookie; the conversation lives on the
server as for every channel, and the page keeps its transcript in the tab's sessionStorage, so
a reload shows the conversation again and the next answer continues where it was.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    jsonify,
    make_response,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from bot.channels.pull import take_turn, take_waiting
from bot.consoles import LANGUAGE_COOKIE, loket
from bot.core.engine import ConversationState
from bot.core.messages import Inbound, Outbound
from bot.i18n import SUPPORTED_LOCALES, _, reset_locale, set_locale
from bot.limits import too_many, turn_wait
from bot.privacy import FILE_TYPE, LinkExpired, export_file, read_export_token
from bot.qr import qr_png
from storage.conversations import lock_conversation
from storage.models import Conversation
from storage.outreach import normalize_group_code

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
        "copy": message.copy,
        "copy_label": _("Salin kode billing") if message.copy else None,
        "copied_label": _("Tersalin") if message.copy else None,
        "download": url_for("webchat.download", token=message.export) if message.export else None,
        "download_label": _("Unduh data saya (JSON)") if message.export else None,
        "forget": message.forget,
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
    messages = take_turn(loket(), channel, user_ref, event, actor=actor).messages
    return jsonify(messages=[render_message(message) for message in messages]), 200


def web_user() -> str:
    """This browser's chat identity (created on first use)."""
    if "web_user" not in session:
        session.permanent = True
        session["web_user"] = secrets.token_urlsafe(18)
    return str(session["web_user"])


def conversation_language(user_ref: str) -> str | None:
    """The language this browser's conversation was set to (/bahasa or the page's switch)."""
    with loket().sessions() as db:
        locale: str | None = db.execute(
            select(Conversation.locale).where(
                Conversation.channel == CHANNEL, Conversation.user_ref == user_ref
            )
        ).scalar_one_or_none()
        return locale


def set_conversation_language(user_ref: str, locale: str) -> None:
    """Make the page's language the conversation's too (one language per person)."""
    with loket().sessions() as db, db.begin():
        conversation, _now = lock_conversation(db, CHANNEL, user_ref)
        state = ConversationState.from_dict(conversation.state)
        state.locale = locale
        conversation.state = state.to_dict()
        conversation.locale = locale


def follow_language(response: Response, locale: str) -> None:
    """Remember the conversation's language as the page's (the switch's cookie)."""
    response.set_cookie(
        LANGUAGE_COOKIE,
        locale,
        max_age=365 * 24 * 3600,
        secure=loket().settings.secure_cookies,
        httponly=True,
        samesite="Lax",
    )


def use_page_language(locale: str) -> None:
    """Render the rest of this request in `locale`."""
    token = g.pop("locale_token", None)
    if token is not None:
        reset_locale(token)
    g.locale = locale
    g.locale_token = set_locale(locale)


@blueprint.get("/")
def page() -> Response:
    """The chat page, in the conversation's language: the switch sets it, and a language
    chosen in the chat (/bahasa) is the page's on the next load."""
    user = web_user()
    switched = request.args.get("lang")
    chosen = None
    if switched in SUPPORTED_LOCALES:
        set_conversation_language(user, switched)
    else:
        chosen = conversation_language(user)
        if chosen in SUPPORTED_LOCALES and chosen != g.locale:
            use_page_language(chosen)
    # A group's link (/?start=GRP-...) starts the chat with its code, as Telegram's deep link
    # does; anything else in `start` is ignored.
    start = normalize_group_code(request.args.get("start", ""))
    response = make_response(render_template("chat.html", start=start))
    if chosen is not None and chosen in SUPPORTED_LOCALES:
        follow_language(response, chosen)
    return response


@blueprint.post("/chat/send")
def send() -> tuple[Response, int]:
    """One turn of this browser's conversation; when the chat changed language (/bahasa),
    the answer says so and the page follows."""
    user = web_user()
    wait = turn_wait(loket(), CHANNEL, user, request.remote_addr)
    if wait is not None:
        return too_many(wait)
    response, status = chat_turn(CHANNEL, user)
    chosen = conversation_language(user)
    if chosen in SUPPORTED_LOCALES and chosen != g.locale and status == 200:
        body = response.get_json()
        response = jsonify(messages=body["messages"], locale=chosen)
        follow_language(response, chosen)
    return response, status


@blueprint.post("/chat/poll")
def poll() -> tuple[Response, int]:
    """Notices that arrived meanwhile (payment confirmed, status changed); a POST with the
    page's CSRF token, so another site cannot make a browser take them."""
    if "web_user" not in session:
        return jsonify(messages=[]), 200
    messages = take_waiting(loket(), CHANNEL, str(session["web_user"]))
    return jsonify(messages=[render_message(message) for message in messages]), 200


@blueprint.get("/datasaya/<token>")
def download(token: str) -> Response:
    """This browser's own data as a JSON file (/datasaya): the link is signed, lasts
    LOKET_EXPORT_LINK_MINUTES, names only a conversation's number, and opens only in the
    browser whose chat it is (another browser, or a forged or expired link, gets nothing)."""
    try:
        conversation_id = read_export_token(loket().settings, token)
    except LinkExpired:
        message = _("Tautan unduhan sudah kedaluwarsa. Ketik /datasaya di chat untuk tautan baru.")
        page = render_template("error.html", title=_("Tautan kedaluwarsa"), text=message)
        response = make_response(page, 410)
        response.headers["Cache-Control"] = "no-store"
        return response
    user = session.get("web_user")
    if conversation_id is None or user is None:
        abort(404)
    service = loket()
    with service.sessions() as db:
        conversation = db.get(Conversation, conversation_id)
        if conversation is None or (conversation.channel, conversation.user_ref) != (CHANNEL, user):
            abort(404)
        name, data = export_file(db, CHANNEL, str(user), service.now(db))
    response = make_response(data)
    response.headers["Content-Type"] = f"{FILE_TYPE}; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response
