"""Staff log-in and log-out, with limits on guessing that nobody can turn against a colleague.

How guessing is held back, and why this way:

- Only failures count. Behind the Procfile's router, `remote_addr` is the client's address
  only because `LOKET_TRUSTED_PROXIES` says how many proxies' X-Forwarded-For to believe
  (never the client's own); one office still shares one public address, so an address is a
  crowd, not a person.
- Five failures for one username from one address hold that pair back for 15 minutes:
  targeted guessing stops, and the rest of the office (other usernames) is untouched. A
  generous per-address budget (50 failures in 15 minutes) stops spraying many usernames.
- Twenty failures for one account from anywhere lock the account for an hour, against
  guessing spread over many addresses, and end its sessions (`storage.staff.authenticate`).
- None of these applies to a browser the account has logged in from before: a successful
  log-in leaves a signed device cookie naming the account, and that browser has a budget of
  its own (five failures in 15 minutes). So a colleague typing someone's username, from the
  same office or anywhere, can lock out only browsers that never logged in to that account;
  the owner's own browser still gets in (the "device cookie" scheme of OWASP's guidance on
  brute-force protection). Locking the account itself would let anyone keep its owner out by
  typing the username every 15 minutes.
- An unknown username, a wrong password and any lockout answer the same status and words
  (which still tell a locked-out person what to do), and each costs one password hash.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from bot.consoles import STAFF_SESSION, STAFF_TOKEN, STAFF_UNTIL, current_staff, loket
from bot.i18n import _
from storage.models import StaffRole
from storage.staff import (
    LoginOutcome,
    authenticate,
    end_session,
    normalize_username,
    open_session,
)

blueprint = Blueprint("auth", __name__)
WINDOW_SECONDS = 15 * 60
FAILURES_PER_ADDRESS = 50  # any usernames, from one address (an office shares one)
FAILURES_PER_ADDRESS_AND_USER = 5
FAILURES_PER_DEVICE = 5  # a browser the account logged in from before
DEVICE_COOKIE = "loket_device"
DEVICE_SECONDS = 180 * 24 * 3600
DEVICE_ACCOUNTS = 5  # accounts one shared office browser is remembered for


@dataclass(frozen=True)
class Device:
    """A browser that logged in before: its random id and the accounts it logged in to."""

    id: str
    usernames: tuple[str, ...]


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


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="loket staff device")


def _device() -> Device | None:
    """The device cookie this browser carries, if it is ours and not too old."""
    value = request.cookies.get(DEVICE_COOKIE)
    if not value:
        return None
    try:
        data = _signer().loads(value, max_age=DEVICE_SECONDS)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("d"), str):
        return None
    names = data.get("u")
    if not isinstance(names, list):
        return None
    return Device(data["d"], tuple(name for name in names if isinstance(name, str)))


def _remember_device(response: Response, device: Device | None, username: str) -> None:
    """Mark this browser as one the account logged in from."""
    usernames = [name for name in (device.usernames if device else ()) if name != username]
    usernames = [*usernames[-(DEVICE_ACCOUNTS - 1) :], username]
    device_id = device.id if device else secrets.token_urlsafe(16)
    response.set_cookie(
        DEVICE_COOKIE,
        _signer().dumps({"d": device_id, "u": usernames}),
        max_age=DEVICE_SECONDS,
        path=url_for("auth.login"),
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Strict",
    )


def _key(kind: str, *parts: str) -> str:
    """A shared-state key for a failure counter (hashed: usernames are typed by anyone)."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return f"login-failures:{kind}:{digest}"


def _count(key: str) -> int:
    value = loket().shared.get(key)
    return int(value) if value and value.isdigit() else 0


def _refused() -> tuple[str, int]:
    """One answer for an unknown name, a wrong password and every lockout alike."""
    error = _(
        "Nama pengguna atau kata sandi salah, atau terlalu banyak percobaan; coba lagi dalam "
        "15 menit."
    )
    return render_template("login.html", error=error), 401


@blueprint.route("/staff/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    """Show the log-in form; check it; hold back guessing (see the module's docstring)."""
    staff = current_staff()
    if request.method == "GET":
        if staff is not None:
            return redirect(home_for(staff.role))
        return render_template("login.html", error=None)
    service = loket()
    username = normalize_username(request.form.get("username", ""))
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    device = _device()
    trusted = device is not None and username in device.usernames
    if trusted:
        assert device is not None
        counters = [_key("device", device.id)]
        held_back = _count(counters[0]) >= FAILURES_PER_DEVICE
        trusted = not held_back  # a device that guessed too much is treated as any other
    if not trusted:
        counters = [_key("address", address), _key("pair", address, username)]
        held_back = (
            _count(counters[0]) >= FAILURES_PER_ADDRESS
            or _count(counters[1]) >= FAILURES_PER_ADDRESS_AND_USER
        )
    with service.sessions() as db, db.begin():
        now = service.now(db)
        result = authenticate(db, username, password, now, held_back=held_back, trusted=trusted)
        if result.outcome is LoginOutcome.OK:
            assert result.staff is not None
            role = result.staff.role
            token = open_session(db, result.staff.id, now, STAFF_SESSION)
    if result.outcome is not LoginOutcome.OK:
        if not held_back:
            for key in counters:
                service.shared.incr(key, WINDOW_SECONDS)
        return _refused()
    session.clear()  # a fresh session (and CSRF token) for the logged-in staff member
    session.permanent = True
    session[STAFF_TOKEN] = token
    session[STAFF_UNTIL] = time.time() + STAFF_SESSION.total_seconds()
    response = redirect(_safe_next(request.args.get("next")) or home_for(role))
    _remember_device(response, device, username)
    return response


@blueprint.post("/staff/logout")
def logout() -> Response:
    """End the staff session on the server, then forget it (and its CSRF token) here."""
    token = session.get(STAFF_TOKEN)
    if isinstance(token, str):
        service = loket()
        with service.sessions() as db, db.begin():
            end_session(db, token, service.now(db))
    session.clear()
    return redirect(url_for("auth.login"))
