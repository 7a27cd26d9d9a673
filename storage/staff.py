"""Staff accounts, their log-ins (with lockout) and the audit log of what they do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from storage.models import AuditEntry, Office, Staff, StaffRole

MIN_PASSWORD_LENGTH = 10
LOCK_AFTER_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
# Checked against when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a real password")


class StaffError(ValueError):
    """An account cannot be created as asked; the message says why."""


class LoginOutcome(StrEnum):
    """How a log-in attempt ended."""

    OK = "ok"
    WRONG = "wrong"  # unknown user or wrong password: the page does not say which
    LOCKED = "locked"


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


def authenticate(session: Session, username: str, password: str, now: datetime) -> LoginResult:
    """Check a log-in; five wrong passwords in a row lock the account for 15 minutes."""
    staff = session.execute(
        select(Staff).where(Staff.username == username.strip().lower()).with_for_update()
    ).scalar_one_or_none()
    if staff is None or not staff.active:
        check_password_hash(_DUMMY_HASH, password)
        return LoginResult(LoginOutcome.WRONG)
    if staff.locked_until is not None and _aware(staff.locked_until) > now:
        return LoginResult(LoginOutcome.LOCKED, locked_until=_aware(staff.locked_until))
    if not check_password_hash(staff.password_hash, password):
        staff.failed_logins += 1
        if staff.failed_logins >= LOCK_AFTER_FAILURES:
            staff.locked_until = now + LOCK_FOR
            staff.failed_logins = 0
            audit(session, staff.id, "login.locked", None, {}, now, staff.office_id)
            return LoginResult(LoginOutcome.LOCKED, locked_until=staff.locked_until)
        return LoginResult(LoginOutcome.WRONG)
    staff.failed_logins = 0
    staff.locked_until = None
    audit(session, staff.id, "login", None, {}, now, staff.office_id)
    return LoginResult(LoginOutcome.OK, staff=staff)


def audit(
    session: Session,
    staff_id: int | None,
    action: str,
    target: str | None,
    detail: dict[str, Any],
    now: datetime,
    office_id: int | None = None,
) -> None:
    """Record one staff action in the caller's transaction."""
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


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
