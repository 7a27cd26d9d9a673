"""Messages staff actions send to applicants, in each applicant's own language, via the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.core.messages import Outbound
from bot.i18n import N_, _, format_date, use_locale
from bot.notices import chat_locale
from bot.timezones import format_window
from storage.booking import queue_message
from storage.models import Application, ApplicationStatus, Booking

STATUS_NOTICES = {
    ApplicationStatus.CHECKED_IN: N_(
        "Permohonan {number}: Anda sudah tercatat hadir. Silakan tunggu panggilan nomor antrean."
    ),
    ApplicationStatus.VERIFIED: N_("Permohonan {number}: berkas Anda sudah diverifikasi."),
    ApplicationStatus.INTERVIEWED: N_(
        "Permohonan {number}: foto dan wawancara sudah selesai. "
        "Kami kabari lagi saat paspor dicetak."
    ),
    ApplicationStatus.PRINTED: N_("Permohonan {number}: paspor Anda sudah dicetak."),
    ApplicationStatus.READY: N_(
        "Permohonan {number}: paspor Anda siap diambil di {office}. "
        "Bawa KTP asli dan bukti pembayaran."
    ),
    ApplicationStatus.POSTED: N_(
        "Permohonan {number}: paspor Anda sudah dikirim lewat Pos ke alamat yang Anda daftarkan."
    ),
    ApplicationStatus.COMPLETED: N_(
        "Permohonan {number}: paspor sudah Anda terima. Terima kasih telah menggunakan Loket."
    ),
}


def tell(session: Session, application: Application, text: str, now: datetime) -> None:
    """Queue one message (already translated) to the applicant's chat."""
    queue_message(
        session,
        application.channel,
        application.account_ref,
        {**Outbound(text).to_payload(), "locale": _locale(session, application)},
        now,
    )


def _locale(session: Session, application: Application) -> str:
    return chat_locale(session, application.channel, application.account_ref)


def status_changed(
    session: Session, application: Application, office_name: str, now: datetime
) -> None:
    """Tell the applicant where their application now stands."""
    with use_locale(_locale(session, application)):
        text = _(STATUS_NOTICES[ApplicationStatus(application.status)]).format(
            number=application.reg_number, office=office_name
        )
    tell(session, application, text, now)


def day_closed(session: Session, booking: Booking, reason: str, now: datetime) -> None:
    """Tell a booked applicant their office closed that day, and what to do."""
    application = booking.application
    office = booking.slot.office
    with use_locale(_locale(session, application)):
        text = _(
            "Mohon maaf, {office} tutup pada {date} ({reason}). Jadwal Anda {window} tidak bisa "
            "dilayani. Jika sudah membayar, pilih jadwal pengganti dengan /ubahjadwal (tetap "
            "bisa walau jadwal pernah diubah), atau hubungi layanan pelanggan dengan kode "
            "booking {code}."
        ).format(
            office=office.name,
            date=format_date(booking.slot.day),
            reason=reason,
            window=format_window(booking.slot.start_time, booking.slot.end_time, office.timezone),
            code=booking.code,
        )
    tell(session, application, text, now)


def changed_by_staff(
    session: Session, application: Application, what: str, reason: str, now: datetime
) -> None:
    """Tell the applicant an agent rescheduled or cancelled for them, and why."""
    with use_locale(_locale(session, application)):
        if what == "cancelled":
            text = _("Permohonan {number} dibatalkan oleh petugas. Alasan: {reason}.")
        else:
            text = _(
                "Jadwal permohonan {number} diubah oleh petugas. Alasan: {reason}. Cek "
                "jadwal baru dengan /status."
            )
        text = text.format(number=application.reg_number, reason=reason)
    tell(session, application, text, now)
