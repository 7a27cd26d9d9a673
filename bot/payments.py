"""Payment notices and expiry, each applied in one transaction with its notice to the applicant.

Banks and gateways retry; the payment reference makes every notice count once. The CLI
(`python -m bot payment`) and the signed endpoint (`POST /payments/notify`) both call
`apply_notice`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from bot.billing import clean_code, is_valid_code
from bot.flows.booking import sold_out_key
from bot.notices import expiry_notice, notify, payment_notice
from bot.service import Loket
from storage.booking import DuplicateNotice, record_payment, release_expired
from storage.models import Booking, Payment, PaymentOutcome

SIGNATURE_HEADER = "X-Loket-Signature"


class BadNotice(ValueError):
    """A payment notice that cannot be read; nothing was recorded."""


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
    """Record one payment notice (once per reference) and tell the applicant what it did."""
    reference = reference.strip()
    if not reference or len(reference) > 64:
        raise BadNotice("reference must be 1 to 64 characters")
    if paid_at.tzinfo is None:
        raise BadNotice("paid_at must carry a time zone")
    if amount <= 0:
        raise BadNotice("amount must be positive")
    code = clean_code(code)
    if not is_valid_code(code):
        # Recorded all the same: money that arrived is never dropped.
        code = code[:32]
    try:
        with loket.sessions() as session, session.begin():
            now = loket.now(session)

            def tell(booking: Booking, outcome: PaymentOutcome) -> None:
                notify(session, booking, lambda b: payment_notice(b, outcome), now)

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
            return NoticeResult(twin.reference, twin.outcome, True, twin.needs_refund)


def sweep(loket: Loket) -> int:
    """Expire unpaid holds in database time, return their seats, and tell the applicants."""
    with loket.sessions() as session, session.begin():
        now = loket.now(session)
        released: list[int] = []

        def expired(booking: Booking) -> None:
            notify(session, booking, expiry_notice, now)
            released.append(booking.slot_id)

        count = release_expired(session, now, on_expired=expired)
    for slot_id in released:
        loket.shared.delete(sold_out_key(slot_id))
    return count
