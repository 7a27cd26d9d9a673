"""Personal data under UU PDP No. 27/2022: what one chat may see, erasure, and retention.

Who owns an application: the chat account (channel and account) whose conversation created
it, and nobody else. An application's phone number is typed by whoever registers, and one
verified number may register a family of five, so a number never proves who a NIK and its
document photos belong to; callers registered by an agent ask the office instead.

What erasure and retention keep: the application's registration number, status, service,
passport kind and fee; its bookings' codes, statuses and seats; billing codes and payment
notices (state revenue records and refunds); the audit log of staff actions (kept so staff
stay accountable; it names records by registration number or booking code, never a NIK).
Everything that names the person goes: NIK, name, birth place and date, sex, phone, email,
address, old passport number, the answers as typed, document photos (deleted from the store,
not only unlinked), the chat's conversation, phone verification and codes, subscriptions,
waiting-room numbers, the texts waiting or sent in the outbox and the updates in the inbox.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from storage.booking import ACTIVE, bookings_for_application, cancel_booking
from storage.models import (
    CLOSED_STATUSES,
    Application,
    ApplicationStatus,
    AuditEntry,
    BallotEntry,
    BallotStatus,
    BillingCode,
    Booking,
    BookingStatus,
    Conversation,
    Document,
    InactiveChat,
    InboxUpdate,
    Office,
    OutboxMessage,
    Payment,
    PhoneCode,
    PhoneLock,
    PhoneVerification,
    QueueEntry,
    Slot,
    Staff,
    StaffSession,
    Subscription,
    WhatsAppStatus,
)
from storage.outbox import SMS_CHANNEL
from storage.phones import seats_held_by_phone
from storage.whatsapp import CHANNEL as WHATSAPP

# Statuses in which the office is working on the passport: the data is needed until it ends.
AT_THE_OFFICE = (
    ApplicationStatus.CHECKED_IN,
    ApplicationStatus.VERIFIED,
    ApplicationStatus.INTERVIEWED,
    ApplicationStatus.PRINTED,
    ApplicationStatus.READY,
    ApplicationStatus.POSTED,
)
# Placeholders an anonymised row carries where a column cannot be empty.
BLANK_BIRTH_DATE = date(1900, 1, 1)
_HEX_KEY = re.compile(r"[0-9a-f]{64}")


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def owned_applications(session: Session, channel: str, user_ref: str) -> list[Application]:
    """The applications this chat's own conversation created (anonymised ones are nobody's)."""
    return list(
        session.execute(
            select(Application)
            .where(Application.channel == channel, Application.account_ref == user_ref)
            .order_by(Application.id)
        ).scalars()
    )


# ---- the person's own copy ---------------------------------------------------------------


def _moment(value: datetime | None) -> str | None:
    return None if value is None else aware(value).isoformat()


def staff_actions(session: Session, targets: list[str]) -> list[dict[str, Any]]:
    """Staff actions on these records (registration numbers, booking codes): who and when."""
    if not targets:
        return []
    rows = session.execute(
        select(AuditEntry, Staff)
        .outerjoin(Staff, Staff.id == AuditEntry.staff_id)
        .where(AuditEntry.target.in_(targets))
        .order_by(AuditEntry.at, AuditEntry.id)
    ).all()
    return [
        {
            "at": _moment(entry.at),
            "action": entry.action,
            "record": entry.target,
            "staff": staff.full_name if staff is not None else None,
            "staff_role": staff.role if staff is not None else None,
        }
        for entry, staff in rows
    ]


def export_data(session: Session, channel: str, user_ref: str, now: datetime) -> dict[str, Any]:
    """Everything Loket holds about this chat and the applications it made, as plain data."""
    verification = session.get(PhoneVerification, (channel, user_ref))
    subscriptions = session.execute(
        select(Office.name)
        .join(Subscription, Subscription.office_id == Office.id)
        .where(Subscription.channel == channel, Subscription.user_ref == user_ref)
        .order_by(Office.name)
    ).scalars()
    conversation = session.execute(
        select(Conversation).where(
            Conversation.channel == channel, Conversation.user_ref == user_ref
        )
    ).scalar_one_or_none()
    in_progress = dict((conversation.state or {}).get("answers") or {}) if conversation else {}
    applications = []
    for application in owned_applications(session, channel, user_ref):
        bookings = []
        codes = []
        for booking in bookings_for_application(session, application.id):
            codes.append(booking.code)
            billing = session.execute(
                select(BillingCode).where(BillingCode.booking_id == booking.id)
            ).scalar_one_or_none()
            payments = session.execute(
                select(Payment).where(Payment.booking_id == booking.id).order_by(Payment.id)
            ).scalars()
            office = booking.slot.office
            bookings.append(
                {
                    "code": booking.code,
                    "status": booking.status,
                    "office": office.name,
                    "day": booking.slot.day.isoformat(),
                    "window": f"{booking.slot.start_time:%H:%M}-{booking.slot.end_time:%H:%M}",
                    "timezone": office.timezone,
                    "held_at": _moment(booking.created_at),
                    "paid_at": _moment(booking.confirmed_at),
                    "checked_in_at": _moment(booking.checked_in_at),
                    "reschedules": booking.reschedules,
                    "phone_that_held": booking.phone,
                    "billing": None
                    if billing is None
                    else {
                        "code": billing.code,
                        "amount": billing.amount,
                        "status": billing.status,
                        "expires_at": _moment(billing.expires_at),
                        "paid_at": _moment(billing.paid_at),
                    },
                    "payments": [
                        {
                            "reference": payment.reference,
                            "amount": payment.amount,
                            "paid_at": _moment(payment.paid_at),
                            "outcome": payment.outcome,
                            "needs_refund": payment.needs_refund,
                        }
                        for payment in payments
                    ],
                }
            )
        applications.append(
            {
                "reg_number": application.reg_number,
                "status": application.status,
                "created_at": _moment(application.created_at),
                "registered_by_staff": application.registered_by is not None,
                "service": application.service,
                "application_type": application.application_type,
                "replacement_reason": application.replacement_reason,
                "passport_kind": application.passport_kind,
                "validity_years": application.validity_years,
                "category": application.category,
                "nik": application.nik,
                "full_name": application.full_name,
                "birth_place": application.birth_place,
                "birth_date": application.birth_date.isoformat(),
                "sex": application.sex,
                "phone": application.phone,
                "email": application.email,
                "address": application.address,
                "travel_purpose": application.travel_purpose,
                "old_passport_number": application.old_passport_number,
                "fee_amount": application.fee_amount,
                "documents": [
                    {
                        "kind": document.kind,
                        "content_type": document.content_type,
                        "size_bytes": document.size,
                        "received_at": _moment(document.created_at),
                    }
                    for document in application.documents
                ],
                "documents_deleted_at": _moment(application.documents_deleted_at),
                "bookings": bookings,
                "staff_actions": staff_actions(session, [application.reg_number, *codes]),
            }
        )
    return {
        "generated_at": now.astimezone(UTC).isoformat(),
        "controller": "Loket",
        "channel": channel,
        "verified_phone": None
        if verification is None
        else {
            "phone": verification.phone,
            "method": verification.method,
            "verified_at": _moment(verification.verified_at),
        },
        "subscriptions": list(subscriptions),
        "registration_in_progress": in_progress,
        "applications": applications,
    }


# ---- erasure -------------------------------------------------------------------------------


@dataclass
class Erasure:
    """What an erasure or a retention round did: counts, and the photo files to delete once
    the transaction has committed (a rolled-back erasure must not lose photos)."""

    counts: dict[str, int] = field(default_factory=dict)
    blob_keys: set[str] = field(default_factory=set)
    freed_slots: list[int] = field(default_factory=list)

    def add(self, name: str, number: int = 1) -> None:
        """Count `number` more of one kind."""
        self.counts[name] = self.counts.get(name, 0) + number


def _rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def erasure_blockers(session: Session, channel: str, user_ref: str) -> list[Application]:
    """The chat's applications that stop an erasure: a paid appointment that still stands
    (the applicant cancels it first, knowing the fee is not refunded), or a passport the
    office is working on (its data is needed until the passport is handed over)."""
    blocking = []
    for application in owned_applications(session, channel, user_ref):
        if application.status == ApplicationStatus.CONFIRMED or application.status in AT_THE_OFFICE:
            blocking.append(application)
    return blocking


def drop_documents(session: Session, application: Application, now: datetime) -> set[str]:
    """Delete an application's document rows (and their photo hashes); return the photo
    keys no other document still uses (identical photos share one file in the store)."""
    keys = {document.sha256 for document in application.documents}
    for document in list(application.documents):
        session.delete(document)
    application.documents_deleted_at = now
    session.flush()
    if not keys:
        return set()
    still_used = set(
        session.execute(select(Document.sha256).where(Document.sha256.in_(keys))).scalars()
    )
    return keys - still_used


def anonymise(session: Session, application: Application, now: datetime) -> set[str]:
    """Blank everything in an application that names the person, and in its bookings and
    ballot entries; delete its documents and waiting-room numbers. Returns photo keys to
    delete from the store. Idempotent."""
    keys = drop_documents(session, application, now)
    # A blank NIK must not sit on an open application or an active seat: the unique indexes
    # of open NIKs would make two blanks collide. Erasure cancels first; retention reaches
    # only applications whose appointment is long over (the worker marks no-shows daily).
    if application.status not in CLOSED_STATUSES:
        served = application.status in AT_THE_OFFICE  # a missed appointment: cancelled
        application.status = ApplicationStatus.COMPLETED if served else ApplicationStatus.CANCELLED
        application.closed_at = application.closed_at or now
    session.execute(
        update(Booking)
        .where(Booking.application_id == application.id, Booking.status == BookingStatus.CONFIRMED)
        .values(status=BookingStatus.NO_SHOW)
        .execution_options(synchronize_session=False)
    )
    application.nik = ""
    application.full_name = ""
    application.birth_place = ""
    application.birth_date = BLANK_BIRTH_DATE
    application.sex = "-"
    application.phone = ""
    application.email = None
    application.address = ""
    application.old_passport_number = None
    application.answers = {}
    application.account_ref = ""
    application.anonymised_at = now
    session.execute(
        update(Booking)
        .where(Booking.application_id == application.id)
        .values(nik="", phone=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(QueueEntry).where(QueueEntry.application_id == application.id))
    for entry in session.execute(
        select(BallotEntry).where(BallotEntry.application_id == application.id)
    ).scalars():
        if entry.status == BallotStatus.ENTERED:
            session.delete(entry)  # not drawn yet: as if never entered
            continue
        # Drawn: the public draw names entry ids, so the row stays, without the person.
        entry.nik = f"x{entry.id}"[:16]
        entry.account_ref = ""
        if entry.status == BallotStatus.WAITLISTED:
            entry.status = BallotStatus.OFFERED  # passed: no seat is held for nobody
            entry.position = None
    session.flush()
    return keys


def erase_chat(session: Session, channel: str, user_ref: str, now: datetime) -> Erasure:
    """Erase what this chat account gave Loket (after `erasure_blockers` found none).

    Open applications are cancelled first, an unpaid hold's seat given back; then each
    application is anonymised and the chat's own rows deleted. The caller deletes
    `blob_keys` from the document store after commit.
    """
    done = Erasure()
    verification = session.get(PhoneVerification, (channel, user_ref))
    # SMS/WhatsApp messages (codes, links) are addressed to numbers, not to this chat.
    phones = {verification.phone} if verification is not None else set()
    for application in owned_applications(session, channel, user_ref):
        if application.phone:
            phones.add(application.phone)
        for booking in bookings_for_application(session, application.id):
            if booking.status in ACTIVE:
                cancel_booking(session, booking, "erased at the applicant's request")
                done.freed_slots.append(booking.slot_id)
                done.add("holds_cancelled")
        if application.status not in CLOSED_STATUSES:
            application.status = ApplicationStatus.CANCELLED
            application.closed_at = now
        done.blob_keys |= anonymise(session, application, now)
        done.add("applications_anonymised")
    chat = {"channel": channel, "user_ref": user_ref}
    for model in (PhoneVerification, PhoneCode, Subscription, InactiveChat):
        done.add(model.__tablename__, _rows(session.execute(delete(model).filter_by(**chat))))
    done.add(
        "outbox",
        _rows(session.execute(delete(OutboxMessage).filter_by(**chat)))
        + _rows(
            session.execute(
                delete(OutboxMessage).where(
                    OutboxMessage.channel == SMS_CHANNEL, OutboxMessage.user_ref.in_(phones)
                )
            )
        ),
    )
    # Updates already applied (their texts, photos' ids); later ones still wait their turn.
    done.add(
        "inbox",
        _rows(
            session.execute(
                delete(InboxUpdate).where(
                    InboxUpdate.channel == channel,
                    InboxUpdate.user_ref == user_ref,
                    InboxUpdate.applied_at.is_not(None),
                )
            )
        ),
    )
    session.execute(
        delete(QueueEntry).where(QueueEntry.channel == channel, QueueEntry.account_ref == user_ref)
    )
    if channel == WHATSAPP:  # the chat's id is the number: its statuses name it
        statuses = delete(WhatsAppStatus).where(WhatsAppStatus.user_ref == user_ref)
        done.add("whatsapp_statuses", _rows(session.execute(statuses)))
    # The number's lock row names it too; it is made again by the next hold that needs it.
    if verification is not None and not seats_held_by_phone(session, verification.phone):
        session.execute(delete(PhoneLock).where(PhoneLock.phone == verification.phone))
    return done


# ---- retention -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    """How long personal data is kept (settings: LOKET_RETENTION_*)."""

    documents: timedelta = timedelta(days=30)  # after the appointment or the cancellation
    applications: timedelta = timedelta(days=365)  # then anonymised
    conversations: timedelta = timedelta(days=90)  # since the chat's last message
    staff_sessions: timedelta = timedelta(days=30)  # after they ended
    orphan_photos: timedelta = timedelta(days=1)  # stored but never part of an application


def _appointment_day(session: Session, application_id: int) -> date | None:
    """The day of the application's latest seat that stood (paid, attended or missed)."""
    day: date | None = session.execute(
        select(func.max(Slot.day))
        .join(Booking, Booking.slot_id == Slot.id)
        .where(
            Booking.application_id == application_id,
            Booking.status.in_(
                (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN, BookingStatus.NO_SHOW)
            ),
        )
    ).scalar_one_or_none()
    return day


def _seat_pending(session: Session, application_id: int, now: datetime) -> bool:
    """Tell whether a seat still waits: held for payment, or paid for a day not yet over."""
    today = now.astimezone(UTC).date()
    return (
        session.execute(
            select(Booking.id)
            .join(Slot, Slot.id == Booking.slot_id)
            .where(
                Booking.application_id == application_id,
                or_(
                    Booking.status == BookingStatus.HELD,
                    (Booking.status == BookingStatus.CONFIRMED) & (Slot.day >= today),
                ),
            )
        ).first()
        is not None
    )


def _last_moment(session: Session, application: Application) -> datetime:
    """The latest thing that happened to an application: made, closed, or its appointment."""
    moments = [aware(application.created_at)]
    if application.closed_at is not None:
        moments.append(aware(application.closed_at))
    day = _appointment_day(session, application.id)
    if day is not None:
        moments.append(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))
    return max(moments)


def photos_due(session: Session, application: Application, now: datetime, keep: timedelta) -> bool:
    """Tell whether an application's photos have been kept long enough: `keep` after its
    appointment day (once no seat is active any more) or after its cancellation."""
    closed = application.closed_at
    cancelled = application.status == ApplicationStatus.CANCELLED and closed is not None
    if cancelled and closed is not None and aware(closed) + keep <= now:
        return True
    if _seat_pending(session, application.id, now):
        return False
    day = _appointment_day(session, application.id)
    if day is None:
        return False
    end_of_day = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return end_of_day + keep <= now


def referenced_photo_keys(session: Session) -> set[str]:
    """Photo keys a document row or a registration in progress still uses."""
    keys = set(session.execute(select(Document.sha256)).scalars())
    for state in session.execute(select(Conversation.state)).scalars():
        keys.update(_HEX_KEY.findall(json.dumps(state or {})))
    return keys


def retention_round(session: Session, now: datetime, keep: Retention) -> Erasure:
    """One retention round: photos deleted `keep.documents` after the appointment or the
    cancellation, applications anonymised `keep.applications` after their last event, old
    conversations, expired phone codes, unused phone locks and ended staff sessions pruned.
    Returns counts (no personal data) and the photo keys to delete after commit."""
    done = Erasure()
    for name in ("documents_deleted", "applications_anonymised"):
        done.add(name, 0)
    candidates = session.execute(
        select(Application).where(
            Application.documents_deleted_at.is_(None),
            or_(
                Application.status == ApplicationStatus.CANCELLED,
                Application.created_at <= now - keep.documents,
            ),
        )
    ).scalars()
    for application in candidates:
        if photos_due(session, application, now, keep.documents):
            done.blob_keys |= drop_documents(session, application, now)
            done.add("documents_deleted")
    old = session.execute(
        select(Application).where(
            Application.anonymised_at.is_(None),
            Application.created_at <= now - keep.applications,
        )
    ).scalars()
    for application in old:
        if _seat_pending(session, application.id, now):
            continue
        if _last_moment(session, application) + keep.applications > now:
            continue
        done.blob_keys |= anonymise(session, application, now)
        done.add("applications_anonymised")
    done.add(
        "conversations",
        _rows(
            session.execute(
                delete(Conversation).where(
                    or_(
                        Conversation.last_activity_at < now - keep.conversations,
                        Conversation.last_activity_at.is_(None)
                        & (Conversation.created_at < now - keep.conversations),
                    )
                )
            )
        ),
    )
    # Messages never taken (a pull channel's notices nobody came back for) and updates never
    # applied: after as long as a silent conversation, their texts are of no use to anyone.
    stale = now - keep.conversations
    outbox = delete(OutboxMessage).where(OutboxMessage.created_at < stale)
    done.add("outbox", _rows(session.execute(outbox)))
    inbox = delete(InboxUpdate).where(InboxUpdate.received_at < stale)
    done.add("inbox", _rows(session.execute(inbox)))
    statuses = delete(WhatsAppStatus).where(WhatsAppStatus.updated_at < stale)
    done.add("whatsapp_statuses", _rows(session.execute(statuses)))
    done.add(
        "phone_codes", _rows(session.execute(delete(PhoneCode).where(PhoneCode.expires_at < now)))
    )
    done.add(
        "phone_verifications",
        _rows(
            session.execute(
                delete(PhoneVerification).where(
                    PhoneVerification.verified_at < now - keep.applications
                )
            )
        ),
    )
    done.add(
        "phone_locks",
        _rows(
            session.execute(delete(PhoneLock).where(PhoneLock.touched_at < now - keep.applications))
        ),
    )
    ended = now - keep.staff_sessions
    done.add(
        "staff_sessions",
        _rows(
            session.execute(
                delete(StaffSession).where(
                    or_(StaffSession.expires_at < ended, StaffSession.revoked_at < ended)
                )
            )
        ),
    )
    return done
