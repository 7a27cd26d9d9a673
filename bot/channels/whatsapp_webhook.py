"""The WhatsApp webhook: `/whatsapp/webhook` (the verification handshake, then signed POSTs).

Every POST is checked against `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app
secret) before anything is parsed or stored. Each message is then accepted into the inbox
keyed by its WhatsApp id (a redelivered webhook adds nothing) and applied by the delivery
layer in order per sender; statuses are recorded; a list's "Lainnya" row is answered here
with the question's next page (a view, not a turn). Overloaded, nothing is accepted and each
sender is told at once when to try again. What cannot be read is answered 200 and
logged by shape: Meta would redeliver anything else for days.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from bot.channels.whatsapp_api import SIGNATURE_HEADER, signature_ok
from bot.channels.whatsapp_render import paged
from bot.channels.whatsapp_updates import Incoming, key_of, read_status, split, translate
from bot.core.messages import Outbound
from bot.delivery.layer import Delivery
from bot.delivery.transport import TransportError, Unreadable
from bot.i18n import _, use_locale
from bot.load import busy_text
from bot.metrics import refused
from bot.notices import chat_locale
from bot.service import Loket
from bot.settings import Settings
from storage.booking import queue_message, record_event
from storage.whatsapp import CHANNEL, record_statuses, sent_payload

log = logging.getLogger(__name__)
whatsapp = Blueprint("whatsapp", __name__)


def delivery_of(app_config: Any) -> Delivery | None:
    """The process's WhatsApp delivery, if the channel is configured here."""
    runtime = app_config.get("RUNTIME")
    return runtime.channel(CHANNEL) if runtime is not None else None


@whatsapp.get("/whatsapp/webhook")
def verify() -> tuple[Response | str, int]:
    """Answer Meta's verification handshake: echo the challenge for the right verify token."""
    settings: Settings = current_app.config["SETTINGS"]
    token = settings.whatsapp_verify_token
    if not token:
        return jsonify(error="whatsapp webhook is not configured"), 503
    given = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge", "")
    if request.args.get("hub.mode") != "subscribe" or not challenge:
        return jsonify(error="not a subscription handshake"), 403
    if not hmac.compare_digest(given.encode(), token.encode()):
        return jsonify(error="wrong verify token"), 403
    return Response(challenge[:200], 200, mimetype="text/plain"), 200


@whatsapp.post("/whatsapp/webhook")
def receive() -> tuple[Response, int]:
    """Accept a signed webhook's messages exactly once, record its statuses, answer 200.

    The 200 means every message is durably in the inbox; non-2xx only when a retry is wanted
    (an exception: Meta redelivers the whole POST, and accepted messages are not doubled).
    """
    settings: Settings = current_app.config["SETTINGS"]
    delivery = delivery_of(current_app.config)
    secret = settings.whatsapp_app_secret
    if delivery is None or not secret:
        return jsonify(error="whatsapp webhook is not configured"), 503
    body = request.get_data(cache=False)
    header = request.headers.get(SIGNATURE_HEADER)
    if header is None:
        return jsonify(error="missing signature"), 401
    if not signature_ok(secret, body, header):
        return jsonify(error="bad signature"), 403
    try:
        messages, statuses = split(json.loads(body))
    except (ValueError, RecursionError) as error:  # Unreadable is a ValueError
        log.warning("unreadable whatsapp webhook set aside: %s", _shape(error))
        return jsonify(ok=True), 200
    minutes = current_app.config["LOAD"].busy_minutes()
    if minutes is not None:
        answer_busy(delivery, messages, minutes)
        return jsonify(ok=True), 200
    loket: Loket = current_app.config["LOKET"]
    chats: list[str] = []
    for message in messages:
        try:
            incoming = translate(message)
        except Unreadable as error:
            log.warning("unreadable whatsapp message set aside: %s", error)
            continue
        if incoming is None:
            continue
        if incoming.more is not None:
            if show_page(loket, incoming):
                chats.append(incoming.chat_id)
            continue
        chat_id, _new = delivery.accept(message)  # an exception answers 500: Meta retries
        if chat_id is not None:
            chats.append(chat_id)
    if statuses:
        record(loket, statuses)
    for chat_id in dict.fromkeys(chats):
        delivery.schedule(chat_id)
    return jsonify(ok=True), 200


def answer_busy(delivery: Delivery, messages: list[dict[str, Any]], minutes: int) -> None:
    """Overloaded: accept nothing and tell each sender at once when to try again (as the
    Telegram webhook does), one message per sender, without the database. Statuses wait
    too: Meta does not send them again, so a few go unrecorded rather than add load."""
    senders: set[str] = set()
    for message in messages:
        try:
            _key, sender = key_of(message)
        except Unreadable:
            continue
        if sender in senders:
            continue
        senders.add(sender)
        refused("overload")
        with use_locale("id"):  # WhatsApp sends no language; the chat's is in the database
            text = busy_text(minutes)
        try:
            delivery.transport.send(sender, {"type": "text", "text": {"body": text}})
        except TransportError as error:
            log.warning("overload answer not sent: %s", error)


def _shape(error: Exception) -> str:
    if isinstance(error, Unreadable):
        return str(error)
    return "nested too deeply" if isinstance(error, RecursionError) else "not JSON"


def record(loket: Loket, statuses: list[dict[str, Any]]) -> int:
    """Record a webhook's statuses in one transaction; return how many changed something."""
    read = []
    for status in statuses:
        try:
            found = read_status(status)
        except Unreadable as error:
            log.warning("unreadable whatsapp status set aside: %s", error)
            continue
        if found is not None:
            read.append((found.message_id, found.chat_id, found.status, found.at,
                         found.error_code))  # fmt: skip
    if not read:
        return 0
    with loket.sessions() as session, session.begin():
        return record_statuses(session, read, loket.now(session))


def show_page(loket: Loket, incoming: Incoming) -> bool:
    """Queue the next page of the question whose "Lainnya" row was chosen, once per tap;
    False for a repeat. A question no longer kept is answered with how to go on."""
    assert incoming.more is not None
    chat_id = incoming.chat_id
    with loket.sessions() as session, session.begin():
        if not record_event(session, f"{CHANNEL}:{incoming.message_id}"):
            return False
        now = loket.now(session)
        original = incoming.more_of
        payload = sent_payload(session, chat_id, original) if original else None
        locale = str((payload or {}).get("locale") or chat_locale(session, CHANNEL, chat_id))
        with use_locale(locale):
            if payload is None:
                gone = _(
                    "Daftar pilihan itu sudah tidak tersedia. Ketik jawaban Anda, atau ketik "
                    "/mulai untuk kembali ke menu."
                )
                message = Outbound(gone)
            else:
                message = paged(Outbound.from_payload(payload), incoming.more, original)
        queue_message(session, CHANNEL, chat_id, {**message.to_payload(), "locale": locale}, now)
    return True
