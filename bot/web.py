"""The Flask app: web chat, staff consoles, chat API, payment notices, the Telegram webhook."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, make_response, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from bot.api import api
from bot.channels.telegram import TelegramChannel, set_aside_unreadable
from bot.channels.telegram_updates import translate, update_id_of
from bot.channels.whatsapp_webhook import whatsapp
from bot.consoles import csrf
from bot.consoles import install as install_consoles
from bot.delivery import Delivery, Unreadable
from bot.i18n import _, use_locale
from bot.load import LoadGauge, busy_text, database_measure
from bot.logsafe import log_failure
from bot.metrics import exposition, refused
from bot.payments import (
    SIGNATURE_HEADER,
    BadNotice,
    ConflictingNotice,
    apply_notice,
    read_notice,
    signature_ok,
)
from bot.runtime import Runtime
from bot.runtime import resume_waiting as resume_waiting
from bot.service import Loket
from bot.settings import Settings
from storage.ballot import public_ballot

log = logging.getLogger(__name__)
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


# First path segments of the pages people read (errors there are pages, not JSON).
PAGE_AREAS = ("", "agent", "office", "staff")


def page_error(code: int) -> tuple[Response, int]:
    """An error page in the reader's language."""
    titles = {
        400: (_("Permintaan tidak valid"), _("Muat ulang halaman lalu coba lagi.")),
        403: (_("Tidak diizinkan"), _("Akun Anda tidak punya akses ke halaman ini.")),
        404: (_("Tidak ditemukan"), _("Halaman atau data yang Anda cari tidak ada.")),
        429: (_("Terlalu banyak permintaan"), _("Tunggu sebentar lalu coba lagi.")),
    }
    title, text = titles.get(
        code, (_("Terjadi gangguan"), _("Maaf, coba lagi sebentar lagi. Data Anda tidak hilang."))
    )
    return make_response(render_template("error.html", title=title, text=text)), code


def is_chat_turn(path: str) -> bool:
    """Whether a request comes from a chat panel's script (it shows `messages`, not pages)."""
    return path.startswith("/chat/") or (path.startswith("/agent/call/") and path.endswith("/send"))


def chat_error(code: int, max_upload_bytes: int) -> tuple[Response, int]:
    """Tell the person at a chat panel what went wrong and what to do, in their language."""
    if code == 413:
        text = _("File terlalu besar. Kirim foto di bawah {size} MB.").format(
            size=max_upload_bytes // (1024 * 1024)
        )
    elif code == 400:
        text = _("Halaman ini sudah terlalu lama terbuka. Muat ulang halaman, lalu kirim lagi.")
    elif code in (401, 403, 404):
        text = _("Sesi Anda sudah berakhir. Muat ulang halaman untuk melanjutkan.")
    else:
        text = _("Maaf, terjadi gangguan. Jawaban Anda tersimpan sampai langkah terakhir; "
                 "silakan kirim lagi sebentar lagi.")  # fmt: skip
    return jsonify(messages=[{"text": text, "choices": [], "expects": "none", "qr": None,
                              "offers_location": False}]), code  # fmt: skip


def is_loopback(address: str | None) -> bool:
    """Whether a client address is this machine's own."""
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def busy_update_answer(update: Any) -> dict[str, Any] | None:
    """Whom to answer for an update refused under load (its tap, else its chat, and their
    language); None when the update is nothing we answer."""
    try:
        incoming = translate(update)
    except Unreadable:
        return None
    if incoming is None:
        return None
    sender = (update.get("callback_query") or update.get("message") or {}).get("from") or {}
    tap_id = incoming.tap.id if incoming.tap is not None else None
    return {"callback_id": tap_id, "chat_id": incoming.chat_id,
            "language": sender.get("language_code")}  # fmt: skip


def create_app(
    settings: Settings | None = None,
    loket: Loket | None = None,
    telegram: TelegramChannel | None = None,
    load: LoadGauge | None = None,
    runtime: Runtime | None = None,
) -> Flask:
    """Build the web app around one Loket service and its push channels: `runtime` when the
    caller built them (`serve`), else made here from the environment (a gunicorn worker).
    `loket` / `telegram` alone (tests) stand for a runtime of just those."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    if settings.trusted_proxies > 0:
        # Behind a router every request comes from the router: believe the client address
        # (and scheme) it forwards, from exactly that many proxies and never from the client.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    if runtime is None:
        if loket is not None and telegram is not None:
            runtime = Runtime(loket, [telegram])
        else:
            runtime = Runtime.build(settings, loket, web=True)
            # Updates a previous process accepted but did not live to apply: take them up.
            runtime.resume_waiting()
    app.config["RUNTIME"] = runtime
    app.config["LOKET"] = runtime.loket
    app.config["SETTINGS"] = settings
    app.config["TELEGRAM"] = runtime.channel("telegram")
    service: Loket = runtime.loket
    app.config["LOAD"] = load or LoadGauge(settings, database_measure(service.sessions))

    # The largest upload, base64-encoded in a JSON body, and some room for the rest.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes * 4 // 3 + 64 * 1024
    app.register_blueprint(api)
    app.register_blueprint(whatsapp)  # /whatsapp/webhook
    install_consoles(app, settings)
    csrf.exempt(api)  # machine callers authenticate by key or signature, not by cookie
    csrf.exempt(whatsapp)

    @app.errorhandler(Exception)
    def failure(error: Exception) -> tuple[Response, int]:
        """Log without the error's text (it may quote personal data) and ask for a retry."""
        code = error.code or 500 if isinstance(error, HTTPException) else 500
        if not isinstance(error, HTTPException):
            log_failure(app.logger, f"request failed: {request.method} {request.path}", error)
        if is_chat_turn(request.path):
            return chat_error(code, settings.max_upload_bytes)
        wants_page = request.method == "GET" or request.mimetype != "application/json"
        wants_page = wants_page and request.path.split("/")[1] in PAGE_AREAS
        if isinstance(error, HTTPException):
            if wants_page:
                return page_error(code)
            return jsonify(error=error.name), code
        if wants_page:
            return page_error(500)
        return jsonify(error="internal error, please retry"), 500

    @app.before_request
    def refuse_when_busy() -> tuple[Response, int] | None:
        """Answer a new chat turn (web chat, chat API) at once with 503 and Retry-After when
        the service is overloaded, instead of letting it time out."""
        turn = request.method == "POST" and (
            request.path in ("/chat/send", "/api/v1/chat") or is_chat_turn(request.path)
        )
        if not turn:
            return None
        minutes = current_app.config["LOAD"].busy_minutes()
        if minutes is None:
            return None
        refused("overload")
        text = busy_text(minutes)
        body = {"error": "overloaded", "retry_after": minutes * 60, "message": text,
                "messages": [{"text": text, "choices": [], "expects": "none", "qr": None,
                              "offers_location": False}]}  # fmt: skip
        answer = jsonify(body)
        answer.headers["Retry-After"] = str(minutes * 60)
        return answer, 503

    @app.get("/livez")
    def livez() -> tuple[Response, int]:
        """Answer while the process answers (liveness: restart it when this fails)."""
        return jsonify(status="alive"), 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        """Answer 200 when the database answers within the timeout and the backlog is below
        its threshold, else 503 (readiness: send no traffic here meanwhile)."""
        reading = current_app.config["LOAD"].fresh()
        timeout = settings.ready_timeout_ms
        if reading.latency is None:
            return jsonify(status="unready", reason="database not reachable"), 503
        if reading.latency * 1000 > timeout:
            return jsonify(status="unready", reason="database slower than the timeout"), 503
        if reading.backlog >= settings.overload_backlog:
            return jsonify(status="unready", reason="backlog over the threshold"), 503
        return jsonify(status="ready", backlog=reading.backlog), 200

    @app.get("/metrics")
    def metrics() -> Response | tuple[Response, int]:
        """Prometheus metrics: with LOKET_METRICS_KEY for its bearer, else loopback only."""
        key = settings.metrics_key
        if key is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), key.encode()):
                return jsonify(error="metrics need the bearer key"), 401
        elif not is_loopback(request.remote_addr):
            return jsonify(error="metrics are served to this machine only"), 403
        now = service.clock() if service.clock is not None else datetime.now(UTC)
        return Response(exposition(service.sessions, now), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/ballot/<office_code>")
    def ballot(office_code: str) -> tuple[Response, int]:
        """The office's latest ballot, public: its commitment; after the draw the seed and
        the entry ids in draw order with each one's outcome (no personal data)."""
        with service.sessions() as session:
            body = public_ballot(session, office_code)
        if body is None:
            return jsonify(error="no ballot at this office"), 404
        return jsonify(body), 200

    @app.route("/ping", methods=["GET", "POST"])
    def ping() -> tuple[str, int]:
        """Answer at once, without the database (liveness; the webhook benchmark's ceiling)."""
        return "pong", 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """Answer 200 when the database answers."""
        service: Loket = current_app.config["LOKET"]
        with service.sessions() as session:
            session.execute(text("SELECT 1"))
        return jsonify(status="ok"), 200

    @app.post("/payments/notify")
    def payment_notify() -> tuple[Response, int]:
        """Take a signed payment notice; idempotent by its reference."""
        secret = current_app.config["SETTINGS"].payment_secret
        if not secret:
            return jsonify(error="payment notices are not configured"), 503
        body = request.get_data(cache=True)
        if not signature_ok(secret, body, request.headers.get(SIGNATURE_HEADER)):
            return jsonify(error="bad signature"), 401
        data: Any = request.get_json(silent=True)
        try:
            notice = read_notice(data)
            result = apply_notice(
                current_app.config["LOKET"],
                reference=notice.reference,
                code=notice.code,
                amount=notice.amount,
                paid_at=notice.paid_at,
            )
        except BadNotice as error:
            return jsonify(error=f"bad notice: {error}"), 400
        except ConflictingNotice:
            return jsonify(
                error="reference already used by a different notice; nothing recorded"
            ), 409
        return jsonify(result.to_json()), 200

    @app.post("/telegram/webhook")
    def telegram_webhook() -> tuple[Response, int]:
        """Accept a Telegram update exactly once, answer, then apply it off the request.

        The 200 means the update is durably in the inbox; non-2xx only when a retry is wanted.
        """
        channel: Delivery | None = current_app.config["TELEGRAM"]
        secret = current_app.config["SETTINGS"].telegram_webhook_secret
        if channel is None or not secret:
            return jsonify(error="telegram webhook is not configured"), 503
        given = request.headers.get(TELEGRAM_SECRET_HEADER)
        if given is None:
            return jsonify(error="missing secret"), 401
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return jsonify(error="wrong secret"), 403
        # What cannot be read is answered 200 and set aside (logged by id, without content):
        # Telegram would redeliver anything else for hours, holding the chat behind it.
        body = request.get_data(cache=False)
        try:
            update: Any = json.loads(body)
        except (ValueError, RecursionError) as error:
            # Deeper than any update is set aside anyway: its id is all we need, and it comes
            # first, so a bounded parse of up to 13 MB need not hold this thread for seconds.
            why = "nested too deeply" if isinstance(error, RecursionError) else "not JSON"
            set_aside_unreadable({"update_id": update_id_of(body)}, Unreadable(why))
            return jsonify(ok=True), 200
        minutes = current_app.config["LOAD"].busy_minutes()
        if minutes is not None:
            # Overloaded: not accepted; answered in this response (Telegram makes the call).
            refused("overload")
            target = busy_update_answer(update)
            if target is None:
                return jsonify(ok=True), 200
            with use_locale(target["language"] or "id"):
                text = busy_text(minutes)
            if target["callback_id"] is not None:
                return jsonify(method="answerCallbackQuery", callback_query_id=target[
                    "callback_id"], text=text, show_alert=True), 200  # fmt: skip
            return jsonify(method="sendMessage", chat_id=target["chat_id"], text=text), 200
        chat_id, _new = channel.accept(update)  # an exception answers 500: Telegram retries
        if chat_id is not None:
            channel.schedule(chat_id)
        return jsonify(ok=True), 200

    # Machine callers prove themselves by secret or signature, not by a browser's cookie.
    for view in (ping, payment_notify, telegram_webhook, livez, readyz, metrics):
        csrf.exempt(view)
    return app
