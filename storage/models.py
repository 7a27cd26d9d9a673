"""Typed SQLAlchemy 2 models: the system of record for conversations and applications."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations get stable constraint names."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


Base.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ApplicationStatus(StrEnum):
    """Where an application is in its journey; only the open ones block a NIK."""

    REGISTERED = "registered"  # submitted, no seat yet
    HELD = "held"  # a seat is held while the billing code waits for payment
    CONFIRMED = "confirmed"  # paid: the appointment stands
    CHECKED_IN = "checked_in"  # arrived at the office on the day
    VERIFIED = "verified"  # berkas diverifikasi
    INTERVIEWED = "interviewed"  # foto dan wawancara selesai
    PRINTED = "printed"  # paspor dicetak
    READY = "ready"  # siap diambil
    POSTED = "posted"  # dikirim lewat Pos
    CANCELLED = "cancelled"
    COMPLETED = "completed"


# The moves an office makes after check-in, in order; each one notifies the applicant.
OFFICE_MOVES: dict[str, tuple[str, ...]] = {
    ApplicationStatus.CHECKED_IN: (ApplicationStatus.VERIFIED,),
    ApplicationStatus.VERIFIED: (ApplicationStatus.INTERVIEWED,),
    ApplicationStatus.INTERVIEWED: (ApplicationStatus.PRINTED,),
    ApplicationStatus.PRINTED: (ApplicationStatus.READY, ApplicationStatus.POSTED),
    ApplicationStatus.READY: (ApplicationStatus.COMPLETED,),
    ApplicationStatus.POSTED: (ApplicationStatus.COMPLETED,),
}


CLOSED_STATUSES = (ApplicationStatus.CANCELLED, ApplicationStatus.COMPLETED)
_OPEN_SQL = "status NOT IN ('cancelled', 'completed')"


class Conversation(Base):
    """One chat identity's conversation state, saved after every turn."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "user_ref"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_ref: Mapped[str] = mapped_column(String(128))
    locale: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_activity_at: Mapped[datetime | None]


class Application(Base):
    """A submitted passport application (one person), owned by a chat account."""

    __tablename__ = "applications"
    __table_args__ = (
        # A NIK may have only one open application, whichever account or channel made it.
        Index(
            "uq_applications_open_nik",
            "nik",
            unique=True,
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
        Index("ix_applications_account", "channel", "account_ref"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    reg_number: Mapped[str] = mapped_column(String(16), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    account_ref: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(24), default=ApplicationStatus.REGISTERED)

    service: Mapped[str] = mapped_column(String(16))
    application_type: Mapped[str] = mapped_column(String(16))
    replacement_reason: Mapped[str | None] = mapped_column(String(16))
    passport_kind: Mapped[str] = mapped_column(String(16))
    validity_years: Mapped[int]
    category: Mapped[str] = mapped_column(String(8))

    nik: Mapped[str] = mapped_column(String(16), index=True)
    full_name: Mapped[str] = mapped_column(String(120))
    birth_place: Mapped[str] = mapped_column(String(80))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    phone: Mapped[str] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(300))
    travel_purpose: Mapped[str] = mapped_column(String(24))
    old_passport_number: Mapped[str | None] = mapped_column(String(12))
    name_changed: Mapped[bool] = mapped_column(default=False)

    fee_amount: Mapped[int]
    fee_schedule: Mapped[str] = mapped_column(String(40))
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The customer-care agent who registered the caller (None: the applicant did it themself).
    registered_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # When the application was cancelled (retention counts from it, or from the appointment).
    closed_at: Mapped[datetime | None]
    # Retention and erasure (storage/privacy.py): photos deleted from the store, then the
    # person's data replaced by blanks; the row keeps only what payments and audit need.
    documents_deleted_at: Mapped[datetime | None]
    anonymised_at: Mapped[datetime | None]

    documents: Mapped[list[Document]] = relationship(
        back_populates="application", cascade="all, delete-orphan", order_by="Document.id"
    )


class Document(Base):
    """A document photo attached to an application; the bytes live in the blob store."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # 64-bit difference hash of the cleaned photo (hex), for near-duplicates (bot.images).
    phash: Mapped[str | None] = mapped_column(String(16))

    application: Mapped[Application] = relationship(back_populates="documents")


class PhotoMark(Base):
    """One 8-bit band of a document photo's perceptual hash, indexed for lookups.

    Two hashes within Hamming distance 7 share at least one of their 8 bands exactly
    (pigeonhole), so the near-duplicates of a photo are found by index, not by a scan.
    """

    __tablename__ = "photo_marks"
    __table_args__ = (Index("ix_photo_marks_band_value", "band", "value"),)

    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    band: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int]


class PhoneVerification(Base):
    """A chat account's phone number, verified once: by Telegram's own contact, a gateway's
    word, a one-time code, or an agent on the phone with the caller."""

    __tablename__ = "phone_verifications"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_ref: Mapped[str] = mapped_column(String(128), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)  # E.164: +628...
    method: Mapped[str] = mapped_column(String(16))  # contact, gateway, code, agent
    verified_at: Mapped[datetime]
    verified_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # the agent


class PhoneCode(Base):
    """A one-time code sent to a number a chat account claims; only its hash is kept."""

    __tablename__ = "phone_codes"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_ref: Mapped[str] = mapped_column(String(128), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    tries: Mapped[int] = mapped_column(default=0)


class PhoneLock(Base):
    """One row per phone number that holds seats: the hold transaction locks it, so the
    count of that number's active bookings cannot be raced past the limit."""

    __tablename__ = "phone_locks"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    touched_at: Mapped[datetime]


BigId = BigInteger().with_variant(Integer, "sqlite")


class SlotKind(StrEnum):
    """Which queue a seat belongs to."""

    REGULER = "reguler"
    PERCEPATAN = "percepatan"
    PRIORITAS = "prioritas"  # 60+, disabled, children under 5, pregnant women
    SIMPATIK = "simpatik"  # weekend "paspor simpatik" sessions created by the office
    KELILING = "keliling"  # outreach sessions away from the office ("paspor keliling")


class BookingStatus(StrEnum):
    """A booking's life: held -> confirmed (paid) -> checked in, or expired/cancelled/no-show."""

    HELD = "held"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


ACTIVE_BOOKING_SQL = "status IN ('held', 'confirmed')"


class ReleaseMode(StrEnum):
    """How an office's released seats are handed out (ballot comes next, beside these)."""

    FIRST_COME = "first_come"  # whoever holds first
    WAITING_ROOM = "waiting_room"  # queue numbers at release, admitted in arrival order
    BALLOT = "ballot"  # entries in a window, a seeded draw at its close (storage/ballot.py)


class Office(Base):
    """A Kantor Imigrasi with its time zone and quota release rule."""

    __tablename__ = "offices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    city: Mapped[str] = mapped_column(String(60))
    province: Mapped[str] = mapped_column(String(60))
    timezone: Mapped[str] = mapped_column(String(40))  # IANA: Asia/Jakarta, Asia/Makassar, ...
    address: Mapped[str] = mapped_column(String(300))
    hours: Mapped[str] = mapped_column(String(120))
    latitude: Mapped[float]
    longitude: Mapped[float]
    # Dates of a month open `release_months_before` months earlier, on `release_day` at
    # `release_time` office time (0 months: on that day of the month itself).
    release_day: Mapped[int] = mapped_column(default=1)
    release_time: Mapped[time] = mapped_column(default=time(8, 0))
    release_months_before: Mapped[int] = mapped_column(default=1)
    # How released seats are handed out (ReleaseMode); the waiting room admits
    # `admit_per_minute` people a minute from the release, each with `admit_minutes` to hold.
    release_mode: Mapped[str] = mapped_column(
        String(16), default=ReleaseMode.FIRST_COME, server_default=ReleaseMode.FIRST_COME
    )
    admit_per_minute: Mapped[int] = mapped_column(default=60, server_default="60")
    admit_minutes: Mapped[int] = mapped_column(default=5, server_default="5")
    # Walk-in only (an outage, or policy): no seats are offered, whatever the release mode,
    # which is kept as it was for when seats come back. Bookings already made stay valid.
    walk_in_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    walk_in_quota: Mapped[int | None]  # walk-ins a day; None: LOKET_WALK_IN_DAILY_QUOTA


class SlotTemplate(Base):
    """A weekday time window with capacity per kind, from which slots are made."""

    __tablename__ = "slot_templates"
    __table_args__ = (UniqueConstraint("office_id", "weekday", "start_time", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    weekday: Mapped[int]  # Monday = 0
    start_time: Mapped[time]
    end_time: Mapped[time]
    kind: Mapped[str] = mapped_column(String(16))
    capacity: Mapped[int]


class Slot(Base):
    """Seats of one kind in one window on one day; `taken` counts held and confirmed seats."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("office_id", "day", "start_time", "kind"),
        CheckConstraint("taken >= 0 AND taken <= capacity", name="taken_within_capacity"),
        Index("ix_slots_office_day", "office_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    start_time: Mapped[time]
    end_time: Mapped[time]
    kind: Mapped[str] = mapped_column(String(16))
    capacity: Mapped[int]
    taken: Mapped[int] = mapped_column(default=0)
    release_at: Mapped[datetime]  # UTC; the seats cannot be held before
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(String(200))
    # The outreach session (paspor keliling) these seats belong to; None: at the office.
    # No foreign key on purpose: slots are reference data that outlive test truncation and
    # a TRUNCATE ... CASCADE of the sessions would take every slot with it.
    outreach_id: Mapped[int | None] = mapped_column(BigId, index=True)

    office: Mapped[Office] = relationship()


class Booking(Base):
    """One seat for one application; at most one active booking per NIK."""

    __tablename__ = "bookings"
    __table_args__ = (
        Index(
            "uq_bookings_active_nik",
            "nik",
            unique=True,
            sqlite_where=text(ACTIVE_BOOKING_SQL),
            postgresql_where=text(ACTIVE_BOOKING_SQL),
        ),
        Index("ix_bookings_status_held_until", "status", "held_until"),
        Index("ix_bookings_application", "application_id"),
        Index("ix_bookings_phone_status", "phone", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"))
    nik: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    held_until: Mapped[datetime]
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    reschedules: Mapped[int] = mapped_column(default=0)
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    booked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # agent, if any
    checked_in_at: Mapped[datetime | None]
    # The verified number that held the seat: one number holds seats for at most 5 people.
    phone: Mapped[str | None] = mapped_column(String(20))

    slot: Mapped[Slot] = relationship()
    application: Mapped[Application] = relationship()


class BillingStatus(StrEnum):
    """A billing code's state."""

    UNPAID = "unpaid"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class BillingCode(Base):
    """The PNBP billing code of a booking: exactly one per booking."""

    __tablename__ = "billing_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), unique=True)
    code: Mapped[str] = mapped_column(String(15), unique=True)
    amount: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=BillingStatus.UNPAID)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]

    booking: Mapped[Booking] = relationship()


class PaymentOutcome(StrEnum):
    """What a payment notice did."""

    CONFIRMED = "confirmed"  # the booking is now confirmed
    ALREADY_PAID = "already_paid"  # a second payment for a paid code: refund
    LATE_REFUND = "late_refund"  # paid after expiry and the seat is gone: refund
    UNKNOWN_CODE = "unknown_code"
    AMOUNT_MISMATCH = "amount_mismatch"
    # paid before the code existed, or in the future: a bank's clock or a forged notice
    SUSPECT_TIME = "suspect_paid_at"


class Payment(Base):
    """A payment notice from a bank or gateway, idempotent by its reference."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    billing_code: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int]
    paid_at: Mapped[datetime]
    received_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    needs_refund: Mapped[bool] = mapped_column(default=False)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"))


class OutboxMessage(Base):
    """A message to deliver to one chat, written in the same transaction as its cause.

    A sender claims a chat's pending rows for a short time (`claimed_until`) so two senders
    never send the same row; a crashed sender's claim runs out and another takes over. After a
    failed send `claimed_until` is the earliest retry (backoff); a row that cannot be delivered
    is set aside (`failed_at`, `failure`), so the chat's later rows go on.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "sent_at", "id"),
        Index("ix_outbox_chat", "channel", "user_ref", "sent_at"),
        Index("ix_outbox_failed_at", "failed_at"),
        Index("ix_outbox_announcement", "announcement_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_ref: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")  # failed sends
    # The channel's id once sent (WhatsApp's "wamid..." ids are about 60 characters).
    message_id: Mapped[str | None] = mapped_column(String(128))
    failed_at: Mapped[datetime | None]  # set aside: never sent (see `failure`)
    failure: Mapped[str | None] = mapped_column(String(32))  # blocked, rejected, gave_up...
    announcement_id: Mapped[int | None] = mapped_column(BigId)  # an announcement's copy


class InactiveChat(Base):
    """A chat the channel refuses to deliver to (the user blocked the bot); nothing is sent
    there until the chat writes to us again."""

    __tablename__ = "inactive_chats"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_ref: Mapped[str] = mapped_column(String(128), primary_key=True)
    since: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(32))


class ProcessedEvent(Base):
    """An inbound event already applied (a Telegram update_id, ...), committed with its effects.

    A retried or doubled delivery finds its key here and changes nothing.
    """

    __tablename__ = "processed_events"
    __table_args__ = (Index("ix_processed_events_processed_at", "processed_at"),)

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    processed_at: Mapped[datetime]


class InboxUpdate(Base):
    """An inbound update accepted from a push channel (the Telegram webhook), not yet applied.

    Accepting is one INSERT keyed by the update's id, so the webhook can answer at once and a
    retried or doubled delivery adds nothing. Each chat's rows are applied in arrival order,
    under the conversation's lock, by whichever process gets there first; `applied_at` is set in
    the same transaction as the turn's effects.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_chat", "channel", "user_ref", "applied_at", "id"),
        Index("ix_inbox_pending", "applied_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_ref: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    applied_at: Mapped[datetime | None]
    # Applying failed this many times (a bug, not the network); after a few the update is set
    # aside (`failed_at`, applied_at set) so the chat's later updates are not held up forever.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    failed_at: Mapped[datetime | None]
    # 0: an ordinary turn (counted by the overload gauge, applied first); 1: a tap already
    # decided and answered when it was accepted (a queue ticket, a ballot entry), applied after.
    lane: Mapped[int] = mapped_column(default=0, server_default="0")


class StaffRole(StrEnum):
    """What a staff account may do."""

    AGENT = "agent"  # customer care: registers callers, finds and changes their bookings
    OFFICE_ADMIN = "office_admin"  # one office: quota, simpatik, check-in, statuses
    SUPERADMIN = "superadmin"  # every office, and staff accounts


class Staff(Base):
    """A staff account; the password is stored only as a salted hash."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    full_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    office: Mapped[Office | None] = relationship()


class StaffSession(Base):
    """One staff log-in, ended on the server: the cookie carries only a random token, stored
    here as its SHA-256, so log-out, lockout, a new password or deactivation end it at once."""

    __tablename__ = "staff_sessions"
    __table_args__ = (Index("ix_staff_sessions_staff_id", "staff_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """One staff action: who, what, on which record, why. Never the applicant's data itself."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_staff_at", "staff_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(80))  # a reg number, booking code, date
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime]


class Subscription(Base):
    """A chat that wants an office's (or a whole city's) quota announcements."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("channel", "user_ref", "office_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_ref: Mapped[str] = mapped_column(String(128))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime]


class Announcement(Base):
    """What an office announced (a simpatik session, new quota) and to how many chats."""

    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    text: Mapped[str] = mapped_column(String(1000))
    recipients: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]


class WalkInCategory(StrEnum):
    """Who may walk in without a booking, within the office's daily quota."""

    LANSIA = "lansia"  # 60 and over
    DISABILITAS = "disabilitas"
    BALITA = "balita"  # children under 5
    IBU_HAMIL = "ibu_hamil"


class WalkIn(Base):
    """A priority walk-in's queue number for one office and day."""

    __tablename__ = "walk_ins"
    __table_args__ = (UniqueConstraint("office_id", "day", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    number: Mapped[int]
    category: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    called_at: Mapped[datetime | None]


class QueueStatus(StrEnum):
    """Where a waiting-room entry stands."""

    WAITING = "waiting"
    ADMITTED = "admitted"  # may hold a seat until `expires_at`
    BOOKED = "booked"  # held a seat in time
    EXPIRED = "expired"  # did not hold in time: the turn passed to the next


class ReleaseQueue(Base):
    """One office release's waiting room: the counter that numbers arrivals (its row lock
    orders joins and admissions on PostgreSQL; SQLite serialises writers anyway)."""

    __tablename__ = "release_queues"

    office_id: Mapped[int] = mapped_column(
        ForeignKey("offices.id", ondelete="CASCADE"), primary_key=True
    )
    release_at: Mapped[datetime] = mapped_column(primary_key=True)
    issued: Mapped[int] = mapped_column(default=0)


class TicketStatus(StrEnum):
    """Where a queue ticket (a number given when the tap was accepted) stands."""

    ISSUED = "issued"  # numbered and answered; its turn not applied yet
    USED = "used"  # its turn gave the NIK's queue entry this number
    VOID = "void"  # its turn found the applicant could not queue (or moved on): skipped


ISSUED = text("status = 'issued'")  # the issued tickets' partial index


class QueueTicket(Base):
    """A queue number given to a chat at the moment its tap was accepted (the webhook), before
    the turn runs: one per chat and office release, so numbers follow accept order. The turn,
    applied later, gives the NIK's entry this number (`USED`) or voids the ticket."""

    __tablename__ = "queue_tickets"
    # At a release, tickets arrive faster than statistics are gathered: the planner believes
    # the release holds about one row, and between two indexes that both start with columns a
    # query names it may take the one that does not find what the query looks for, reading
    # every ticket of the release per tap (quadratic). So no two indexes of this table start
    # with the same column: each starts with what its queries look for (the chat, the number,
    # the issued tickets of a release; tests/test_query_plans.py).
    __table_args__ = (
        UniqueConstraint("channel", "account_ref", "office_id", "release_at"),
        UniqueConstraint("number", "office_id", "release_at"),
        Index(
            "ix_queue_tickets_issued",
            "office_id",
            "release_at",
            "number",
            postgresql_where=ISSUED,
            sqlite_where=ISSUED,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    release_at: Mapped[datetime]
    number: Mapped[int]
    channel: Mapped[str] = mapped_column(String(32))
    account_ref: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.ISSUED)
    issued_at: Mapped[datetime]


class QueueEntry(Base):
    """A durable queue number for one NIK at one office release; `attempt` counts re-joins
    after a turn passed, so a NIK has one number per attempt whatever it taps."""

    __tablename__ = "queue_entries"
    # As for tickets, no two indexes start with the same column (the NIK, the number, the
    # status the admission queries ask for, the chat account).
    __table_args__ = (
        UniqueConstraint("number", "office_id", "release_at"),
        UniqueConstraint("nik", "office_id", "release_at", "attempt"),
        Index("ix_queue_entries_status", "status", "office_id", "release_at", "number"),
        Index("ix_queue_entries_account", "channel", "account_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    release_at: Mapped[datetime]
    number: Mapped[int]
    nik: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(default=1)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    channel: Mapped[str] = mapped_column(String(32))
    account_ref: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=QueueStatus.WAITING)
    joined_at: Mapped[datetime]
    admitted_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class BallotStatus(StrEnum):
    """Where a ballot entry stands."""

    ENTERED = "entered"  # before the draw
    WON = "won"  # drawn in time for a seat: a seat was held
    WAITLISTED = "waitlisted"  # waits for a freed seat, at `position`
    OFFERED = "offered"  # a freed seat was held for it from the waitlist
    PASSED = "passed"  # its turn on the waitlist came but the seat was refused for the person
    VOID = "void"  # recorded when the tap was accepted, then found ineligible: not drawn


class Ballot(Base):
    """One ballot (undian) of an office: the entry window, the seats' dates, the seed.

    `seed` (32 random bytes, hex) is drawn when the ballot is set and kept secret until the
    draw; `commitment` is its SHA-256, published at once. `drawn_at` is set once, by the
    conditional UPDATE that makes one worker the drawer; `draw_order` is the entries' ids in
    draw order (storage/ballot.py says how anyone recomputes it from the seed).
    """

    __tablename__ = "ballots"
    __table_args__ = (Index("ix_ballots_office", "office_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    first_day: Mapped[date]
    last_day: Mapped[date]
    seed: Mapped[str] = mapped_column(String(64))
    commitment: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    drawn_at: Mapped[datetime | None]
    draw_order: Mapped[list[int] | None] = mapped_column(JSON)


class BallotEntry(Base):
    """One NIK's entry in one ballot (unique: a double tap or another channel is the same
    entry); `position` is its place on the waitlist after the draw; `days` the ballot dates
    the entrant chose (ISO dates, ascending; None: every date of the ballot);
    `passed_reason` why its turn on the waitlist was passed over (a hold refusal's value)."""

    __tablename__ = "ballot_entries"
    # No two indexes start with the same column (see QueueTicket): a NIK's entry is looked
    # up at every ballot tap, while statistics lag behind the entry window.
    __table_args__ = (
        UniqueConstraint("ballot_id", "nik"),
        Index("ix_ballot_entries_status", "status", "ballot_id", "position"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ballot_id: Mapped[int] = mapped_column(ForeignKey("ballots.id", ondelete="CASCADE"))
    nik: Mapped[str] = mapped_column(String(16))
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    channel: Mapped[str] = mapped_column(String(32))
    account_ref: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=BallotStatus.ENTERED)
    position: Mapped[int | None]
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"))
    entered_at: Mapped[datetime]
    days: Mapped[list[str] | None] = mapped_column(JSON)
    passed_reason: Mapped[str | None] = mapped_column(String(32))


class ScheduledMessage(Base):
    """A message to a booking's applicant at a set time (a reminder, a notice), sent once.

    One row per booking, kind and slot (a rescheduled booking is reminded of its new day
    once more); the worker claims a due row with a conditional UPDATE in the transaction that
    writes its outbox row, so a crash sends it neither twice nor never. A row that became moot
    (paid, cancelled, moved) is closed with the reason instead.
    """

    __tablename__ = "scheduled_messages"
    __table_args__ = (
        UniqueConstraint("booking_id", "kind", "slot_id"),
        Index("ix_scheduled_messages_due", "done_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))  # bot.reminders.Kind
    slot_id: Mapped[int] = mapped_column(BigId)  # the booking's slot when planned
    due_at: Mapped[datetime]  # UTC, already moved out of the office's night where it may wait
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(24))  # sent, or why it became moot


class OutreachAccess(StrEnum):
    """Who may book an outreach session."""

    EVERYONE = "everyone"
    NEW_ONLY = "new_only"  # first passports only
    GROUP = "group"  # members of one Eazy Passport group only


class OutreachSession(Base):
    """A paspor keliling session: officers of one office serve at a venue on some dates.

    Its seats are ordinary slots (kind `keliling`, `outreach_id` set), so holds, billing
    codes, the seat chart, check-in and status moves work unchanged.
    """

    __tablename__ = "outreach_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    venue: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(300))
    city: Mapped[str] = mapped_column(String(60))
    latitude: Mapped[float]
    longitude: Mapped[float]
    access: Mapped[str] = mapped_column(String(16), default=OutreachAccess.EVERYONE)
    documents: Mapped[str | None] = mapped_column(String(500))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("outreach_requests.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime]

    office: Mapped[Office] = relationship()


class RequestStatus(StrEnum):
    """Where an Eazy Passport request stands."""

    NEW = "new"
    PROPOSED = "proposed"  # the office proposed another date; the contact person answers
    APPROVED = "approved"  # a members-only session exists and the group code is given
    DECLINED = "declined"


class OutreachRequest(Base):
    """An organisation's request for a visit (Eazy Passport), from the web form or an agent.

    The contact person's name, phone and email are personal data: shown to the office only,
    never in URLs or logs; the status page is reached by a signed link to the row's id.
    """

    __tablename__ = "outreach_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"))
    organisation: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(16))  # company, school, community, mosque, ...
    contact_name: Mapped[str] = mapped_column(String(120))
    contact_phone: Mapped[str] = mapped_column(String(20))  # E.164
    contact_email: Mapped[str | None] = mapped_column(String(254))
    expected: Mapped[int]
    preferred_dates: Mapped[str] = mapped_column(String(200))
    venue: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(300))
    city: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.NEW)
    proposed_day: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(300))
    group_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    session_id: Mapped[int | None] = mapped_column(BigId)  # the approved session
    channel: Mapped[str] = mapped_column(String(16))  # web, agent
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # the agent
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    office: Mapped[Office] = relationship()


class OutreachMember(Base):
    """A chat account that joined an Eazy Passport group with its code."""

    __tablename__ = "outreach_members"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("outreach_requests.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_ref: Mapped[str] = mapped_column(String(128), primary_key=True)
    joined_at: Mapped[datetime]


class WhatsAppStatus(Base):
    """What became of a message we sent on WhatsApp (status webhooks: sent, delivered, read,
    failed), keyed by its WhatsApp id; later statuses never go back to earlier ones."""

    __tablename__ = "whatsapp_statuses"
    __table_args__ = (
        Index("ix_whatsapp_statuses_user_ref", "user_ref"),
        Index("ix_whatsapp_statuses_updated_at", "updated_at"),
    )

    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_ref: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[int | None]
    status_at: Mapped[datetime]  # Meta's time of the status
    updated_at: Mapped[datetime]  # when we recorded it (retention)
