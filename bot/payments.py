"""Payment notices and expiry, each applied in one transaction with its notice to the applicant.

Banks and gateways retry; the payment reference makes every notice count once. The CLI
(`python -m bot payment`) and the signed endpoint (`POST /payments/notify`) both call
`apply_notice`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from bot.billing import clean_code, is_valid_code
from bot.i18n import _
from bot.mailer import queue_email
from bot.notices import confirmation, notify, payment_notice
from bot.reminders import plan_expiry_notice
from bot.rules import sold_out_key
from bot.service import Loket
from storage.booking import (
    ConflictingNotice,
    DuplicateNotice,
    record_payment,
    release_expired,
    same_notice,
)
from storage.models import Booking, Payment, PaymentOutcome

SIGNATURE_HEADER = "X-Loket-Signature"
# Far above any passport fee, and inside the column (a 32-bit INTEGER on PostgreSQL).
MAX_AMOUNT = 1_000_000_000
FIELDS = ("reference", "billing_code", "amount", "paid_at")

__all__ = ["BadNotice", "ConflictingNotice", "Notice", "apply_notice", "read_notice"]


class BadNotice(ValueError):
    """A payment notice that cannot be read; nothing was recorded. The message says why."""


@dataclass(frozen=True)
class Notice:
    """A payment notice read field by field, as `apply_notice` takes it."""

    reference: str
    code: str
    amount: int
    paid_at: datetime


def read_notice(data: object) -> Notice:
    """Read a decoded JSON notice strictly: no field is coerced (a float, `true` or a quoted
    number is not an amount), so what is recorded is exactly what the sender meant."""
    if not isinstance(data, dict):
        raise BadNotice("body must be a JSON object")
    missing = [name for name in FIELDS if name not in data]
    if missing:
        raise BadNotice(f"missing field(s): {', '.join(missing)}")
    for name in ("reference", "billing_code", "paid_at"):
        if not isinstance(data[name], str):
            raise BadNotice(f"{name} must be a JSON string")
    amount = data["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise BadNotice("amount must be a JSON integer (whole rupiah, no decimals or quotes)")
    return Notice(data["reference"], data["billing_code"], amount, parse_paid_at(data["paid_at"]))


def parse_paid_at(text: str) -> datetime:
    """Read an ISO 8601 time that carries its zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadNotice(
            "paid_at must be an ISO 8601 time with a zone, e.g. 2026-11-22T10:05:00+07:00"
        ) from None
    if moment.tzinfo is None:
        raise BadNotice("paid_at must carry a time zone, e.g. +07:00")
    return moment


def parse_amount(text: str) -> int:
    """Read an amount typed on the command line: digits only, as in a JSON integer."""
    if not (text.isascii() and text.isdigit()):
        raise BadNotice("amount must be a whole number of rupiah, digits only")
    return int(text)


@dataclass(frozen=True)
class NoticeResult:
    """What a payment notice did."""

    reference: str
    outcome: str
    repeated: bool
    needs_refund: bool

    def to_json(self) -> dict[str, object]:
        """Render for the endpoint's answer and the CLI."""
        return {
            "reference": self.reference,
            "outcome": self.outcome,
            "repeated": self.repeated,
            "needs_refund": self.needs_refund,
        }


def sign(secret: str, body: bytes) -> str:
    """Return the signature a sender puts in the X-Loket-Signature header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Check a signature in constant time."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def apply_notice(
    loket: Loket, *, reference: str, code: str, amount: int, paid_at: datetime
) -> NoticeResult:
    """Record one payment notice (once per reference) and tell the applicant what it did.

    Raises `BadNotice` (nothing recorded) for a notice that cannot be right, and
    `ConflictingNotice` (nothing recorded) when the reference was used by a different notice.
    """
    reference = reference.strip()
    if not reference or len(reference) > 64 or not reference.isprintable():
        raise BadNotice("reference must be 1 to 64 printable characters")
    if paid_at.tzinfo is None:
        raise BadNotice("paid_at must carry a time zone")
    paid_at = paid_at.astimezone(UTC)  # stored as UTC on every database
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise BadNotice("amount must be an integer")
    if not 1 <= amount <= MAX_AMOUNT:
        raise BadNotice(f"amount must be from 1 to {MAX_AMOUNT} rupiah")
    code = clean_code(code)
    if not is_valid_code(code):
        # Recorded all the same: money that arrived is never dropped.
        code = code[:32]
    try:
        with loket.sessions() as session, session.begin():
            now = loket.now(session)

            def tell(booking: Booking, outcome: PaymentOutcome) -> None:
                notify(session, booking, lambda b: payment_notice(b, outcome), now)
                if outcome is PaymentOutcome.CONFIRMED and loket.settings.smtp_host:
                    queue_email(session, booking, lambda: _("Jadwal paspor Anda sudah pasti"),
                                confirmation, now)  # fmt: skip

            result = record_payment(
                session,
                reference=reference,
                code=code,
                amount=amount,
                paid_at=paid_at,
                now=now,
                notify=tell,
            )
            payment = result.payment
            return NoticeResult(
                payment.reference, payment.outcome, result.repeated, payment.needs_refund
            )
    except DuplicateNotice:
        with loket.sessions() as session:
            twin = session.execute(
                select(Payment).where(Payment.reference == reference)
            ).scalar_one()
            if not same_notice(twin, code=code, amount=amount, paid_at=paid_at):
                raise ConflictingNotice(reference) from None
            return NoticeResult(twin.reference, twin.outcome, True, twin.needs_refund)


def sweep(loket: Loket) -> int:
    """Expire unpaid holds in database time, return their seats, and tell the applicants
    (by day at once; a hold that expired at night is told at 06.00 office time)."""
    with loket.sessions() as session, session.begin():
        now = loket.now(session)
        released: list[int] = []

        def expired(booking: Booking) -> None:
            plan_expiry_notice(session, booking, now)
            released.append(booking.slot_id)

        count = release_expired(session, now, on_expired=expired)
    for slot_id in released:
        loket.shared.delete(sold_out_key(slot_id))
    return count
