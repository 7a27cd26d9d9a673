"""Web pages: the applicants' web chat and the staff consoles, on the same engine as every channel.

`install(app)` sets what every page shares: signed session cookies (Secure, HttpOnly,
SameSite=Lax), CSRF protection on every form and page script (Flask-WTF), security headers on
every response, the page language (Indonesian, English by the switch), and the logged-in staff
member (a server-side session the cookie only points to).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, abort, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response

from bot.billing import group_code
from bot.crypto_store import load_or_create_key
from bot.i18n import SUPPORTED_LOCALES, _, format_date, format_money, reset_locale, set_locale
from bot.rules import seat_kind_label
from bot.service import Loket
from bot.settings import Settings
from bot.timezones import format_moment, format_window
from bot.validators import mask_nik
from storage.models import Staff, StaffRole
from storage.staff import session_staff

csrf = CSRFProtect()
F = TypeVar("F", bound=Callable[..., Any])
LANGUAGE_COOKIE = "loket_lang"
STAFF_SESSION = timedelta(hours=12)  # staff log in again after this; applicants' chats last longer
STAFF_TOKEN = "staff_token"  # in the signed cookie: the random token of a row in staff_sessions
STAFF_UNTIL = "staff_until"  # in the signed cookie: when that session ends (Unix time)
# Only the app's own scripts, styles and frames; QR codes come as data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HSTS = "max-age=31536000"


class CookieSessions(SecureCookieSessionInterface):
    """Signed cookie sessions whose cookie ends no later than the staff log-in it carries."""

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        """A staff log-in's cookie ends with its session; others live the app's lifetime."""
        until = session.get(STAFF_UNTIL)
        if isinstance(until, int | float):
            return datetime.fromtimestamp(until, UTC)
        return super().get_expiration_time(app, session)


def session_secret(settings: Settings) -> str:
    """The key that signs cookies: LOKET_SECRET_KEY, else derived from the document key."""
    if settings.secret_key:
        return settings.secret_key
    document_key = load_or_create_key(settings.data_dir, settings.document_key)
    return hmac.new(document_key, b"loket session cookies", hashlib.sha256).hexdigest()


def install(app: Flask, settings: Settings) -> None:
    """Give the app cookies, CSRF protection, page languages and the staff blueprints."""
    from bot.consoles import agent, auth, labels, office, outreach, upload, webchat

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
    app.session_interface = CookieSessions()
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
        mask_nik=mask_nik,
        seat_kind_label=seat_kind_label,
    )

    @app.before_request
    def choose_language() -> None:
        """Use ?lang=, then the language cookie, then Indonesian."""
        wanted = request.args.get("lang") or request.cookies.get(LANGUAGE_COOKIE) or "id"
        g.locale = wanted if wanted in SUPPORTED_LOCALES else "id"
        g.locale_token = set_locale(g.locale)

    @app.after_request
    def remember_language(response: Response) -> Response:
        """Keep a chosen language, and give every response its security headers."""
        if request.args.get("lang") in SUPPORTED_LOCALES:
            response.set_cookie(
                LANGUAGE_COOKIE,
                request.args["lang"],
                max_age=365 * 24 * 3600,
                secure=settings.secure_cookies,
                httponly=True,
                samesite="Lax",
            )
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if settings.secure_cookies:  # served over HTTPS: browsers should never try plain HTTP
            response.headers.setdefault("Strict-Transport-Security", HSTS)
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
    app.register_blueprint(upload.blueprint)
    app.register_blueprint(outreach.blueprint)


def loket() -> Loket:
    """The app's service."""
    from flask import current_app

    return cast(Loket, current_app.config["LOKET"])


def current_staff() -> Staff | None:
    """The logged-in staff member of this request, if any (read once per request).

    The cookie only names a server-side session; an ended, expired or deactivated one logs
    nobody in, whatever the cookie says.
    """
    if "staff" not in g:
        g.staff = None
        token = session.get(STAFF_TOKEN)
        if isinstance(token, str):
            service = loket()
            with service.sessions() as db:
                staff = session_staff(db, token, service.now(db))
                if staff is not None and staff.office is not None:
                    _ = staff.office.name  # load it before the session closes
                db.expunge_all()
            if staff is None:
                session.pop(STAFF_TOKEN, None)
                session.pop(STAFF_UNTIL, None)
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
