"""Staff log-in and log-out, with per-address rate limiting and per-account lockout."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from bot.consoles import current_staff, loket
from bot.i18n import _
from bot.timezones import format_moment
from storage.models import StaffRole
from storage.staff import LoginOutcome, authenticate

blueprint = Blueprint("auth", __name__)
ATTEMPTS_PER_ADDRESS = 20  # log-in attempts from one address per window
WINDOW_SECONDS = 15 * 60


def home_for(role: str) -> str:
    """Where a staff member starts."""
    return (
        url_for("office.dashboard")
        if role == StaffRole.OFFICE_ADMIN
        else url_for("agent.dashboard")
    )


def _safe_next(target: str | None) -> str | None:
    """Only follow a local path after log-in (never another site).

    Control characters are refused outright: browsers and Werkzeug drop some of them, which
    would turn "/<TAB>/evil.example" into "//evil.example".
    """
    if not target or any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target:
        return None
    return target


@blueprint.route("/staff/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    """Show the log-in form; check it; lock out guessing."""
    staff = current_staff()
    if request.method == "GET":
        if staff is not None:
            return redirect(home_for(staff.role))
        return render_template("login.html", error=None)
    service = loket()
    address = request.remote_addr or "unknown"
    attempts = service.shared.incr(f"login-attempts:{address}", WINDOW_SECONDS)
    if attempts > ATTEMPTS_PER_ADDRESS:
        error = _("Terlalu banyak percobaan masuk dari alamat ini. Coba lagi 15 menit lagi.")
        return render_template("login.html", error=error), 429
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    with service.sessions() as db, db.begin():
        result = authenticate(db, username, password, service.now(db))
        staff_id = result.staff.id if result.staff is not None else None
        role = result.staff.role if result.staff is not None else ""
    if result.outcome is LoginOutcome.LOCKED:
        assert result.locked_until is not None
        error = _(
            "Akun ini dikunci sementara karena terlalu banyak kata sandi salah. Coba lagi "
            "setelah {time}."
        ).format(time=format_moment(result.locked_until, "Asia/Jakarta"))
        return render_template("login.html", error=error), 423
    if result.outcome is LoginOutcome.WRONG:
        error = _("Nama pengguna atau kata sandi salah.")
        return render_template("login.html", error=error), 401
    session.clear()  # a fresh session (and CSRF token) for the logged-in staff member
    session.permanent = True
    session["staff_id"] = staff_id
    session["staff_since"] = time.time()
    return redirect(_safe_next(request.args.get("next")) or home_for(role))


@blueprint.post("/staff/logout")
def logout() -> Response:
    """Forget the staff member (and the session's CSRF token)."""
    session.clear()
    return redirect(url_for("auth.login"))
