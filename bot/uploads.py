"""Documents later: an application registered without photos gets them through a personal link.

The link is signed (the app's secret), names only the application, and ends at the documents
deadline: the end of the day before the appointment, in the office's time. It accepts only
that application's missing documents, through the same photo pipeline as every channel
(`Loket.check_upload`: type, size, bombs, blur, EXIF; then `accept_upload`: the photo-reuse
check). Nothing here needs a table of its own: what is missing follows from the answers and
the stored documents, the deadline from the booking, the one reminder from a processed-event
key, and the channel the caller chose is kept in the application's answers.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.messages import Outbound
from bot.core.ports import SharedState
from bot.documents import Requirement, document_label, missing_documents
from bot.i18n import _, format_date
from bot.notices import notify
from bot.settings import Settings
from bot.timezones import format_moment, quiet
from storage.applications import REG_ALPHABET
from storage.booking import active_booking, queue_message, record_event
from storage.models import (
    CLOSED_STATUSES,
    Application,
    Booking,
    BookingStatus,
    PhoneVerification,
    Slot,
)
from storage.outbox import SMS_CHANNEL

REMIND_DAYS_BEFORE = 3  # the documents reminder: H-3 ...
REMIND_AT = time(10, 0)  # ... at 10.00 office time
UNBOOKED_LINK = timedelta(days=3)  # a link made before any booking lasts this long
CODE_LENGTH = 8  # a short code read out over the phone: Crockford base32, 40 bits
CHANNEL_KEY = "documents_channel"  # in the application's answers: where the link went
READ_AS = str.maketrans("OIL", "011")
SMS = SMS_CHANNEL  # outbox rows handed to the phone sender (SMS/WhatsApp gateway)


def missing_for(application: Application) -> list[Requirement]:
    """The documents this application still lacks (none for a complete one)."""
    return missing_documents(application.answers, (d.kind for d in application.documents))


def missing_labels(application: Application) -> list[str]:
    """The missing documents by name, for consoles and messages."""
    return [document_label(r, application.answers) for r in missing_for(application)]


def documents_deadline(booking: Booking) -> datetime:
    """The end of the day before the appointment, in the office's time (as UTC-aware)."""
    zone = ZoneInfo(booking.slot.office.timezone)
    return datetime.combine(booking.slot.day, time(0, 0), tzinfo=zone)


def link_deadline(session: Session, application: Application, now: datetime) -> datetime:
    """Until when the caller's link works: the documents deadline once a seat is held."""
    booking = active_booking(session, application.nik)
    if booking is not None and booking.application_id == application.id:
        return documents_deadline(booking)
    return now + UNBOOKED_LINK


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt="loket-upload-link")


def make_token(secret: str, application_id: int, until: datetime) -> str:
    """Sign a link naming one application and when it ends (no personal data)."""
    return _serializer(secret).dumps({"a": application_id, "u": int(until.timestamp())})


def read_token(secret: str, token: str, now: datetime) -> int | None:
    """The application a link names, or None when forged, damaged or expired."""
    try:
        data: Any = _serializer(secret).loads(token[:400])
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("a"), int):
        return None
    if not isinstance(data.get("u"), int) or now.timestamp() >= data["u"]:
        return None
    return int(data["a"])


def _code_key(code: str) -> str:
    digest = hashlib.sha256(code.encode()).hexdigest()  # the shared state never sees the code
    return f"upload-code:{digest}"


def issue_code(shared: SharedState, token: str, until: datetime, now: datetime) -> str:
    """A short code for the web page, standing for the link until it ends."""
    code = "".join(secrets.choice(REG_ALPHABET) for _ in range(CODE_LENGTH))
    seconds = max((until - now).total_seconds(), 60.0)
    shared.set(_code_key(code), token, seconds)
    return code


def normalize_code(text: str) -> str:
    """Read a short code as typed (spaces, dashes, lower case, O for 0, I/L for 1)."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    return cleaned.translate(READ_AS)


def token_for_code(shared: SharedState, text: str) -> str | None:
    """The link a typed short code stands for, if it is still valid."""
    code = normalize_code(text)
    if len(code) != CODE_LENGTH:
        return None
    return shared.get(_code_key(code))


def group(code: str) -> str:
    """Show a short code in two groups of four, as read aloud."""
    return f"{code[:4]}-{code[4:]}"


def telegram_chat_for(session: Session, phone: str) -> str | None:
    """The Telegram chat that shared this number as its own contact, if any."""
    return session.execute(
        select(PhoneVerification.user_ref)
        .where(PhoneVerification.channel == "telegram", PhoneVerification.phone == phone)
        .order_by(PhoneVerification.verified_at.desc())
        .limit(1)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class Delivery:
    """Where a caller's link went: an outbox chat, or a code the agent reads out."""

    channel: str  # "telegram", "sms" or "code"
    user_ref: str | None = None
    code: str | None = None


def link_text(application: Application, url: str, until: datetime, timezone: str) -> str:
    """The message carrying the link: what is missing and until when."""
    return "\n".join(
        [
            _("Permohonan paspor {number}: dokumen belum lengkap.").format(
                number=application.reg_number
            ),
            _("Yang perlu dikirim: {documents}.").format(
                documents=", ".join(missing_labels(application))
            ),
            _("Kirim fotonya lewat tautan pribadi ini sebelum {deadline}: {url}").format(
                deadline=format_moment(until, timezone), url=url
            ),
        ]
    )


def office_zone(session: Session, application: Application) -> str:
    """The zone the deadline is told in: the booked office's, else WIB."""
    booking = active_booking(session, application.nik)
    if booking is not None and booking.application_id == application.id:
        return booking.slot.office.timezone
    return "Asia/Jakarta"


def send_link(
    session: Session,
    shared: SharedState,
    application: Application,
    channel: str,
    base_url: str,
    secret: str,
    now: datetime,
) -> Delivery:
    """Send the caller's upload link through the channel the agent picked (in the outbox, so
    it leaves with the commit), or make a short code for the agent to read out."""
    until = link_deadline(session, application, now)
    token = make_token(secret, application.id, until)
    url = f"{base_url.rstrip('/')}/unggah/{token}"
    zone = office_zone(session, application)
    if channel == "code":
        delivery = Delivery("code", code=issue_code(shared, token, until, now))
        reminder = Delivery(SMS, user_ref=application.phone)
    else:
        chat = telegram_chat_for(session, application.phone) if channel == "telegram" else None
        delivery = Delivery("telegram", chat) if chat else Delivery(SMS, application.phone)
        reminder = delivery
        text = link_text(application, url, until, zone)
        queue_message(session, delivery.channel, str(delivery.user_ref), {"text": text}, now)
    application.answers = {
        **application.answers,
        CHANNEL_KEY: {
            "channel": reminder.channel,
            "user_ref": reminder.user_ref,
            "sent_at": now.isoformat(),
        },
    }
    return delivery


def reminder_due(booking: Booking) -> datetime:
    """When the documents reminder is due: 10.00 office time three days before the
    appointment (H-3)."""
    zone = ZoneInfo(booking.slot.office.timezone)
    day = booking.slot.day - timedelta(days=REMIND_DAYS_BEFORE)
    return datetime.combine(day, REMIND_AT, tzinfo=zone)


def documents_reminder(booking: Booking, url: str, deadline: datetime) -> Outbound:
    """Ask the applicant in their chat for the photos still missing, with their link."""
    application = booking.application
    timezone = booking.slot.office.timezone
    return Outbound(
        _(
            "Pengingat: untuk permohonan {number} kami belum menerima foto dokumen berikut: "
            "{documents}. Kirimkan sebelum jadwal Anda pada {date} agar berkas dapat "
            "diperiksa; ketik /status untuk melihat permohonan Anda."
        ).format(
            number=application.reg_number,
            documents=", ".join(missing_labels(application)),
            date=format_date(booking.slot.day),
        )
        + "\n"
        + _("Kirim fotonya lewat tautan pribadi ini sebelum {deadline}: {url}").format(
            deadline=format_moment(deadline, timezone), url=url
        ),
        kind="reminder",
    )


def remind_missing(session: Session, now: datetime, base_url: str, secret: str) -> int:
    """Send the one documents reminder (a worker round); return how many went out.

    Every application whose required documents are still missing for a held or confirmed
    booking is reminded once, from 10.00 office time three days before the appointment (H-3)
    until the documents deadline, never in the office's night (the next round by day sends
    it), with its personal upload link: where an agent sent the link (Telegram or SMS), else
    in the applicant's own chat. Whatever changed meanwhile (paid, moved, cancelled, the
    documents arrived) is read afresh each round, so nothing planned can go stale.
    """
    soon = (now + timedelta(days=REMIND_DAYS_BEFORE + 1)).date()
    rows = session.execute(
        select(Booking, Application)
        .join(Application, Application.id == Booking.application_id)
        .join(Slot, Slot.id == Booking.slot_id)
        .where(
            Booking.status.in_((BookingStatus.HELD, BookingStatus.CONFIRMED)),
            Application.status.not_in(CLOSED_STATUSES),
            Slot.day >= (now - timedelta(days=1)).date(),
            Slot.day <= soon,
        )
        .order_by(Booking.id)
    ).all()
    sent = 0
    for booking, application in rows:
        if not missing_for(application):
            continue
        deadline = documents_deadline(booking)
        due = reminder_due(booking)
        if not (due <= now < deadline) or quiet(now, booking.slot.office.timezone):
            continue  # not yet, too late, or the office's night (the next round by day sends it)
        where = application.answers.get(CHANNEL_KEY)
        sent_at = where.get("sent_at") if isinstance(where, dict) else None
        if isinstance(sent_at, str) and datetime.fromisoformat(sent_at) >= due:
            continue  # the link itself went out since the reminder's time: it is the reminder
        if not record_event(session, f"documents-reminder:application:{application.id}"):
            continue  # reminded already (once per application, whatever moved since)
        url = f"{base_url.rstrip('/')}/unggah/{make_token(secret, application.id, deadline)}"
        if isinstance(where, dict):  # an agent sent the link: the reminder follows it there
            text = (
                _("Pengingat: batas akhir pengiriman dokumen sudah dekat.")
                + "\n"
                + link_text(application, url, deadline, booking.slot.office.timezone)
            )
            channel = str(where.get("channel") or SMS)
            user_ref = str(where.get("user_ref") or application.phone)
            queue_message(session, channel, user_ref, {"text": text}, now)
        else:
            notify(session, booking, partial(documents_reminder, url=url, deadline=deadline), now)
        sent += 1
    return sent


def public_base(settings: Settings) -> str:
    """Where callers open their links: PUBLIC_URL, else this machine's own server."""
    return settings.public_url or f"http://{settings.host}:{settings.port}"
