"""Verified phone numbers, one-time codes, and the per-number seat limit.

A seat is held only by an account whose phone number was verified, and one number holds seats
for at most `PHONE_SEAT_LIMIT` people (a family) across every account and channel. The count is
taken under a lock on the number's `phone_locks` row, in the hold's own transaction: two
accounts of one number racing for the last place serialise on that row (PostgreSQL) or on the
write lock (SQLite's `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Booking, BookingStatus, PhoneCode, PhoneLock, PhoneVerification

PHONE_SEAT_LIMIT = 5
CODE_LIFETIME = timedelta(minutes=10)
CODE_TRIES = 5
CODE_DIGITS = 6


def verified_phone(session: Session, channel: str, user_ref: str) -> str | None:
    """Return the account's verified number (E.164), if it has one."""
    row = session.get(PhoneVerification, (channel, user_ref))
    return None if row is None else row.phone


def record_verification(
    session: Session,
    channel: str,
    user_ref: str,
    phone: str,
    method: str,
    now: datetime,
    verified_by: int | None = None,
) -> None:
    """Remember that this account's number is `phone`, verified by `method`."""
    row = session.get(PhoneVerification, (channel, user_ref))
    if row is None:
        row = PhoneVerification(channel=channel, user_ref=user_ref)
        session.add(row)
    row.phone = phone
    row.method = method
    row.verified_at = now
    row.verified_by = verified_by
    session.flush()


def _code_hash(channel: str, user_ref: str, phone: str, code: str) -> str:
    # Salted by who asked and for which number: a leaked table gives no reusable digests, and
    # a 6-digit code is guessable offline anyway, so the tries limit is what protects it.
    key = f"{channel}\n{user_ref}\n{phone}".encode()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


def issue_code(session: Session, channel: str, user_ref: str, phone: str, now: datetime) -> str:
    """Draw a new one-time code for this account and number; keep only its hash."""
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    row = session.get(PhoneCode, (channel, user_ref))
    if row is None:
        row = PhoneCode(channel=channel, user_ref=user_ref)
        session.add(row)
    row.phone = phone
    row.code_hash = _code_hash(channel, user_ref, phone, code)
    row.expires_at = now + CODE_LIFETIME
    row.tries = 0
    session.flush()
    return code


class CodeCheck(StrEnum):
    """What a typed one-time code turned out to be."""

    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"  # older than 10 minutes, or none was sent
    EXHAUSTED = "exhausted"  # too many wrong tries: ask for a new code


@dataclass(frozen=True)
class CodeResult:
    """A code check's verdict, the number it verified and the tries left."""

    verdict: CodeCheck
    phone: str | None = None
    tries_left: int = 0


def check_code(
    session: Session, channel: str, user_ref: str, code: str, now: datetime
) -> CodeResult:
    """Check a typed code; a right one is used up, a wrong one costs one of 5 tries."""
    row = session.get(PhoneCode, (channel, user_ref))
    if row is None:
        return CodeResult(CodeCheck.EXPIRED)
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    if expires <= now:
        session.delete(row)
        return CodeResult(CodeCheck.EXPIRED)
    if row.tries >= CODE_TRIES:
        return CodeResult(CodeCheck.EXHAUSTED)
    given = _code_hash(channel, user_ref, row.phone, code)
    if hmac.compare_digest(given, row.code_hash):
        phone = row.phone
        session.delete(row)
        return CodeResult(CodeCheck.OK, phone=phone)
    row.tries += 1
    if row.tries >= CODE_TRIES:
        return CodeResult(CodeCheck.EXHAUSTED)
    return CodeResult(CodeCheck.WRONG, tries_left=CODE_TRIES - row.tries)


def lock_phone(session: Session, phone: str, now: datetime) -> None:
    """Take the number's lock row for the rest of the transaction (created on first use)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # One statement both creates and locks: a concurrent insert of the same number waits on
    # the primary key, then updates (and so locks) the row the first one committed.
    statement = insert(PhoneLock).values(phone=phone, touched_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["phone"], set_={"touched_at": statement.excluded.touched_at}
        )
    )


def seats_held_by_phone(session: Session, phone: str) -> int:
    """Count the active bookings (held or paid) this number holds, across all accounts."""
    return session.execute(
        select(func.count())
        .select_from(Booking)
        .where(
            Booking.phone == phone,
            Booking.status.in_((BookingStatus.HELD, BookingStatus.CONFIRMED)),
        )
    ).scalar_one()
