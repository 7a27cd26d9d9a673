"""Web pages: the applicants' web chat and the staff consoles, on the same engine as every channel.

`install(app)` sets what every page shares: signed session cookies (Secure, HttpOnly,
SameSite=Lax), CSRF protection on every form and page script (Flask-WTF), the page language
(Indonesian, English by the switch), and the logged-in staff member.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, abort, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response

from bot.billing import group_code
from bot.crypto_store import load_or_create_key
from bot.i18n import SUPPORTED_LOCALES, _, format_date, format_money, reset_locale, set_locale
from bot.service import Loket
from bot.settings import Settings
from bot.timezones import format_moment, format_window
from storage.models import Staff, StaffRole

csrf = CSRFProtect()
F = TypeVar("F", bound=Callable[..., Any])
LANGUAGE_COOKIE = "loket_lang"
STAFF_SESSION = timedelta(hours=12)  # staff log in again after this; applicants' chats last longer


def session_secret(settings: Settings) -> str:
    """The key that signs cookies: LOKET_SECRET_KEY, else derived from the document key."""
    if settings.secret_key:
        return settings.secret_key
    document_key = load_or_create_key(settings.data_dir, settings.document_key)
    return hmac.new(document_key, b"loket session cookies", hashlib.sha256).hexdigest()


def install(app: Flask, settings: Settings) -> None:
    """Give the app cookies, CSRF protection, page languages and the staff blueprints."""
    from bot.consoles import agent, auth, labels, office, webchat

    app.config.update(
        SECRET_KEY=session_secret(settings),
        SESSION_COOKIE_NAME="loket_session",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=30),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        WTF_CSRF_HEADERS=["X-CSRFToken"],
    )
    csrf.init_app(app)
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        _, lambda singular, plural, n: _(singular if n == 1 else plural), newstyle=False
    )
    app.jinja_env.globals.update(
        format_date=format_date,
        format_money=format_money,
        format_moment=format_moment,
        format_window=format_window,
        group_code=group_code,
        current_staff=current_staff,
        status_label=labels.status_label,
        booking_label=labels.booking_label,
        billing_label=labels.billing_label,
        channel_label=labels.channel_label,
    )

    @app.before_request
    def choose_language() -> None:
        """Use ?lang=, then the language cookie, then Indonesian."""
        wanted = request.args.get("lang") or request.cookies.get(LANGUAGE_COOKIE) or "id"
        g.locale = wanted if wanted in SUPPORTED_LOCALES else "id"
        g.locale_token = set_locale(g.locale)

    @app.after_request
    def remember_language(response: Response) -> Response:
        """Keep a chosen language, and tell browsers not to frame or sniff our pages."""
        if request.args.get("lang") in SUPPORTED_LOCALES:
            response.set_cookie(
                LANGUAGE_COOKIE,
                request.args["lang"],
                max_age=365 * 24 * 3600,
                secure=settings.secure_cookies,
                httponly=True,
                samesite="Lax",
            )
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.teardown_request
    def forget_language(_error: BaseException | None) -> None:
        token = g.pop("locale_token", None)
        if token is not None:
            reset_locale(token)

    app.register_blueprint(webchat.blueprint)
    app.register_blueprint(auth.blueprint)
    app.register_blueprint(agent.blueprint)
    app.register_blueprint(office.blueprint)


def loket() -> Loket:
    """The app's service."""
    from flask import current_app

    return cast(Loket, current_app.config["LOKET"])


def current_staff() -> Staff | None:
    """The logged-in staff member of this request, if any (read once per request)."""
    if "staff" not in g:
        g.staff = None
        staff_id = session.get("staff_id")
        since = session.get("staff_since", 0)
        if staff_id is not None and time.time() - since > STAFF_SESSION.total_seconds():
            session.pop("staff_id", None)  # a staff log-in lasts one working day
            staff_id = None
        if staff_id is not None:
            with loket().sessions() as db:
                staff = db.get(Staff, staff_id)
                if staff is not None and staff.active and staff.office is not None:
                    _ = staff.office.name  # load it before the session closes
                if staff is not None and staff.active:
                    db.expunge_all()
                    g.staff = staff
    return cast(Staff | None, g.staff)


def form_id(name: str) -> int | None:
    """A row id posted by a form, or None when it is not a plausible id."""
    text = request.form.get(name, "").strip()
    if not text.isdigit() or len(text) > 12:
        return None
    return int(text)


def current_staff_id() -> int:
    """The logged-in staff member's id (in views guarded by `staff_required`)."""
    staff = current_staff()
    assert staff is not None
    return staff.id


def staff_required(*roles: str) -> Callable[[F], F]:
    """Let in logged-in staff with one of `roles` (superadmins everywhere); others are sent to log
    in, or refused with 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            staff = current_staff()
            if staff is None:
                return redirect(url_for("auth.login", next=request.full_path))
            if staff.role != StaffRole.SUPERADMIN and staff.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return cast(F, guarded)

    return decorate
