"""The Flask app: payment notices now; the Telegram webhook and web pages join it later."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy import text

from bot.payments import SIGNATURE_HEADER, BadNotice, apply_notice, signature_ok
from bot.service import Loket
from bot.settings import Settings


def create_app(settings: Settings | None = None, loket: Loket | None = None) -> Flask:
    """Build the web app around one Loket service (made from the environment if not given)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["LOKET"] = loket or Loket(settings)
    app.config["SETTINGS"] = settings

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
            if not isinstance(data, dict):
                raise BadNotice("body must be a JSON object")
            result = apply_notice(
                current_app.config["LOKET"],
                reference=str(data["reference"]),
                code=str(data["billing_code"]),
                amount=int(data["amount"]),
                paid_at=datetime.fromisoformat(str(data["paid_at"])),
            )
        except (BadNotice, KeyError, ValueError, TypeError) as error:
            return jsonify(error=f"bad notice: {error}"), 400
        return jsonify(result.to_json()), 200

    return app
