"""Staff accounts, their log-ins (with lockout), their server-side sessions, and the audit log
of what they do."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from storage.models import AuditEntry, Office, Staff, StaffRole, StaffSession

MIN_PASSWORD_LENGTH = 10
# Account-wide lockout, for guessing spread over many addresses (one address is held back
# sooner, per address and username, by the log-in page). Long window, high threshold, and
# only for browsers the account has not logged in from before: see bot/consoles/auth.py.
LOCK_AFTER_FAILURES = 20
LOCK_FOR = timedelta(hours=1)
# Checked against when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a real password")


class StaffError(ValueError):
    """An account cannot be created as asked; the message says why."""


class LoginOutcome(StrEnum):
    """How a log-in attempt ended."""

    OK = "ok"
    WRONG = "wrong"  # unknown user or wrong password
    LOCKED = "locked"  # too many failures; the page answers exactly as for WRONG


@dataclass(frozen=True)
class LoginResult:
    """A log-in's outcome, and the account when it succeeded."""

    outcome: LoginOutcome
    staff: Staff | None = None
    locked_until: datetime | None = None


def add_staff(
    session: Session,
    username: str,
    full_name: str,
    role: str,
    password: str,
    office_code: str | None = None,
) -> Staff:
    """Create an account; an office admin belongs to exactly one office."""
    username = username.strip().lower()
    plain = username.replace(".", "").replace("_", "")
    if not username or len(username) > 60 or not plain.isalnum():
        raise StaffError("username: 1-60 letters, digits, '.' or '_'")
    if role not in set(StaffRole):
        raise StaffError(f"role must be one of: {', '.join(StaffRole)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    office_id = None
    if role == StaffRole.OFFICE_ADMIN:
        if not office_code:
            raise StaffError("an office admin needs --office CODE")
        office = session.execute(
            select(Office).where(Office.code == office_code)
        ).scalar_one_or_none()
        if office is None:
            raise StaffError(f"no office with code {office_code!r}")
        office_id = office.id
    elif office_code:
        raise StaffError("only an office admin belongs to one office")
    if session.execute(select(Staff.id).where(Staff.username == username)).first() is not None:
        raise StaffError(f"username {username!r} is taken")
    staff = Staff(
        username=username,
        full_name=full_name.strip() or username,
        role=role,
        office_id=office_id,
        password_hash=generate_password_hash(password),
    )
    session.add(staff)
    session.flush()
    return staff


def authenticate(
    session: Session,
    username: str,
    password: str,
    now: datetime,
    *,
    held_back: bool = False,
    trusted: bool = False,
) -> LoginResult:
    """Check a log-in at the cost of exactly one password hash, whatever the outcome.

    `held_back`: the page's own limits (per address, per address and username) refuse this
    attempt. `trusted`: the browser logged in to this account before (a device cookie), so
    the account-wide lockout neither applies to it nor counts its failures. Twenty failures
    from untrusted browsers lock the account for an hour against them and end its sessions.
    """
    staff = session.execute(
        select(Staff).where(Staff.username == normalize_username(username)).with_for_update()
    ).scalar_one_or_none()
    if staff is not None and not staff.active:
        staff = None
    # One hash on every path: an unknown name or a lockout costs what a wrong password costs.
    matches = check_password_hash(staff.password_hash if staff else _DUMMY_HASH, password)
    if staff is None:
        return LoginResult(LoginOutcome.WRONG)
    if held_back:
        return LoginResult(LoginOutcome.LOCKED)
    locked_until = _aware(staff.locked_until) if staff.locked_until is not None else None
    if locked_until is not None and locked_until > now and not trusted:
        return LoginResult(LoginOutcome.LOCKED, locked_until=locked_until)
    if not matches:
        if trusted:
            return LoginResult(LoginOutcome.WRONG)
        staff.failed_logins += 1
        if staff.failed_logins >= LOCK_AFTER_FAILURES:
            staff.locked_until = now + LOCK_FOR
            staff.failed_logins = 0
            end_sessions(session, staff.id, now)
            audit(session, staff.id, "login.locked", None, {}, now, staff.office_id)
            return LoginResult(LoginOutcome.LOCKED, locked_until=staff.locked_until)
        return LoginResult(LoginOutcome.WRONG)
    # The lock (if any) stays until it runs out: the owner's browser got past it, strangers not.
    staff.failed_logins = 0
    audit(session, staff.id, "login", None, {}, now, staff.office_id)
    return LoginResult(LoginOutcome.OK, staff=staff)


def normalize_username(username: str) -> str:
    """Read a username as typed (case and surrounding spaces do not matter)."""
    return username.strip().lower()[:60]


# ---- sessions: a log-in lives on the server, so it can be ended there ------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, staff_id: int, now: datetime, lifetime: timedelta) -> str:
    """Start a staff session and return its token (kept by the browser, only hashed here)."""
    token = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            token_hash=_token_hash(token),
            staff_id=staff_id,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def session_staff(session: Session, token: str, now: datetime) -> Staff | None:
    """The active staff member a token logs in, or None (unknown, ended, expired, deactivated)."""
    return session.execute(
        select(Staff)
        .join(StaffSession, StaffSession.staff_id == Staff.id)
        .where(
            StaffSession.token_hash == _token_hash(token),
            StaffSession.revoked_at.is_(None),
            StaffSession.expires_at > now,
            Staff.active.is_(True),
        )
    ).scalar_one_or_none()


def end_session(session: Session, token: str, now: datetime) -> None:
    """End one session (log-out)."""
    session.execute(
        update(StaffSession)
        .where(StaffSession.token_hash == _token_hash(token), StaffSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def end_sessions(session: Session, staff_id: int, now: datetime) -> int:
    """End every open session of one staff member; return how many."""
    result = session.execute(
        update(StaffSession)
        .where(StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _account(session: Session, username: str) -> Staff:
    staff = session.execute(
        select(Staff).where(Staff.username == normalize_username(username)).with_for_update()
    ).scalar_one_or_none()
    if staff is None:
        raise StaffError(f"no staff account {normalize_username(username)!r}")
    return staff


def set_password(session: Session, username: str, password: str, now: datetime) -> Staff:
    """Give an account a new password, lift its lockout, and end its sessions everywhere."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    staff = _account(session, username)
    staff.password_hash = generate_password_hash(password)
    staff.failed_logins = 0
    staff.locked_until = None
    ended = end_sessions(session, staff.id, now)
    audit(session, staff.id, "staff.passwd", staff.username, {"ended": ended}, now)
    return staff


def deactivate(session: Session, username: str, now: datetime) -> Staff:
    """Close an account: it can no longer log in, and its open sessions end at once."""
    staff = _account(session, username)
    staff.active = False
    ended = end_sessions(session, staff.id, now)
    audit(session, staff.id, "staff.deactivate", staff.username, {"ended": ended}, now)
    return staff


def audit(
    session: Session,
    staff_id: int | None,
    action: str,
    target: str | None,
    detail: dict[str, Any],
    now: datetime,
    office_id: int | None = None,
) -> None:
    """Record one staff action in the caller's transaction.

    Written at once (a flush): views detach what they loaded (`expunge_all`) before their
    transaction commits, which silently dropped a pending entry (agent.search, agent.view).
    """
    session.add(
        AuditEntry(
            staff_id=staff_id,
            office_id=office_id,
            action=action,
            target=target,
            detail=detail,
            at=now,
        )
    )
    session.flush()


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
