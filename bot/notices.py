"""Messages caused by something other than the user's last message: payment, expiry.

They are written to the outbox in the transaction that caused them, rendered in the chat's
language; pull channels (terminal, web chat) show them on the next turn, push channels send
them from the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from bot.billing import group_code
from bot.core.engine import ConversationState
from bot.core.messages import Outbound
from bot.documents import document_label, required_documents
from bot.i18n import _, format_date, format_money, resolve_locale, use_locale
from bot.outreach import slot_venue_lines
from bot.rules import moved_already
from bot.timezones import format_moment, format_window
from storage.booking import queue_message
from storage.models import Booking, Conversation, Office, PaymentOutcome, Slot


def chat_locale(session: Session, channel: str, user_ref: str) -> str:
    """Return the language a chat reads: its own choice, else its channel's, else Indonesian."""
    conversation = session.execute(
        select(Conversation).where(
            Conversation.channel == channel, Conversation.user_ref == user_ref
        )
    ).scalar_one_or_none()
    if conversation is None:
        return resolve_locale(None, None)
    state = ConversationState.from_dict(conversation.state)
    return resolve_locale(state.locale, state.channel_language)


def confirmation(booking: Booking) -> Outbound:
    """Describe a confirmed appointment with what to bring, and its QR code for check-in."""
    application = booking.application
    office = booking.slot.office
    documents = [
        document_label(requirement, application.answers)
        for requirement in required_documents(application.answers)
    ]
    text = "\n".join(
        [
            _("Jadwal Anda sudah pasti."),
            "",
            _("Kode booking: {code}").format(code=booking.code),
            _("Nama: {name}").format(name=application.full_name),
            _("Kantor: {office}").format(office=office.name),
            _("Alamat: {address}").format(address=office.address),
            _("Jadwal: {date}, {window}").format(
                date=format_date(booking.slot.day),
                window=format_window(
                    booking.slot.start_time, booking.slot.end_time, office.timezone
                ),
            ),
            _("Bawa dokumen asli: {documents}").format(documents=", ".join(documents)),
            *away_lines(booking),
            "",
            _(
                "Tunjukkan kode QR ini (atau kode booking) saat check-in, dan datang 15 menit "
                "sebelum jam mulai."
            )
            + " "
            + change_rule(booking),
        ]
    )
    return Outbound(text, qr=booking.code)


def away_lines(booking: Booking) -> list[str]:
    """Say where an outreach (paspor keliling) appointment really is: not at the office."""
    session = object_session(booking)
    if session is None or booking.slot.outreach_id is None:
        return []
    return ["", *slot_venue_lines(session, booking.slot)]


def change_rule(booking: Booking) -> str:
    """Say whether the one allowed change of date is still available."""
    if moved_already(booking):
        return _("Jadwal ini sudah pernah diubah satu kali, jadi tidak dapat diubah lagi.")
    return _("Jadwal dapat diubah satu kali, paling lambat sehari sebelumnya, dengan /ubahjadwal.")


def payment_notice(booking: Booking, outcome: PaymentOutcome) -> Outbound:
    """Tell the applicant what their payment did (a notice of kind "payment")."""
    return replace(payment_outcome(booking, outcome), kind="payment")


def payment_outcome(booking: Booking, outcome: PaymentOutcome) -> Outbound:
    """Word what a payment did."""
    if outcome is PaymentOutcome.CONFIRMED:
        confirmed = confirmation(booking)
        return Outbound(_("Pembayaran diterima.") + " " + confirmed.text, qr=confirmed.qr)
    if outcome is PaymentOutcome.LATE_REFUND:
        return Outbound(
            _(
                "Pembayaran untuk permohonan {number} kami terima setelah batas waktu, dan "
                "kursinya sudah dilepas. Pembayaran Anda tercatat dan ditandai untuk "
                "dikembalikan. Silakan pilih jadwal baru dengan /jadwal."
            ).format(number=booking.application.reg_number)
        )
    if outcome is PaymentOutcome.ALREADY_PAID:
        return Outbound(
            _(
                "Kode billing untuk permohonan {number} sudah dibayar sebelumnya. Pembayaran "
                "kedua tercatat dan ditandai untuk dikembalikan."
            ).format(number=booking.application.reg_number)
        )
    if outcome is PaymentOutcome.SUSPECT_TIME:
        return Outbound(
            _(
                "Pembayaran untuk permohonan {number} tercatat, tetapi waktu pembayarannya tidak "
                "cocok dengan kode billing. Petugas akan memeriksanya dan menghubungi Anda."
            ).format(number=booking.application.reg_number)
        )
    return Outbound(
        _(
            "Pembayaran untuk permohonan {number} tercatat, tetapi jumlahnya tidak sesuai "
            "tagihan. Petugas akan memeriksanya dan menghubungi Anda."
        ).format(number=booking.application.reg_number)
    )


def expiry_notice(booking: Booking) -> Outbound:
    """Tell the applicant their unpaid hold ended and the seat went back to the pool."""
    return Outbound(
        _(
            "Batas waktu pembayaran untuk permohonan {number} sudah lewat, jadi kursinya "
            "dilepas. Data pendaftaran Anda tetap tersimpan: pilih jadwal baru dengan /jadwal."
        ).format(number=booking.application.reg_number)
    )


def queue_for_applicant(session: Session, booking: Booking, message: Outbound,
                        now: datetime) -> None:  # fmt: skip
    """Write a message to the applicant's chat outbox (in the caller's transaction)."""
    application = booking.application
    queue_message(session, application.channel, application.account_ref, message.to_payload(), now)


def notify(
    session: Session, booking: Booking, render: Callable[[Booking], Outbound], now: datetime
) -> None:
    """Render a notice in the applicant's language and queue it."""
    application = booking.application
    with use_locale(chat_locale(session, application.channel, application.account_ref)):
        message = render(booking)
    queue_for_applicant(session, booking, message, now)


def payment_lines(
    office: Office, slot: Slot, code: str, amount: int, deadline: datetime
) -> list[str]:
    """Say the seat, the billing code, the amount and the deadline in office time: one
    wording for every seat held (chosen in the chat or won in a ballot)."""
    return [
        _("Jadwal: {date}, {window}").format(
            date=format_date(slot.day),
            window=format_window(slot.start_time, slot.end_time, office.timezone),
        ),
        _("Kode billing: {code}").format(code=group_code(code)),
        _("Jumlah: {amount}").format(amount=format_money(amount)),
        _("Bayar sebelum: {deadline}").format(deadline=format_moment(deadline, office.timezone)),
    ]


def how_to_pay() -> list[str]:
    """Say where a billing code is paid and what happens when it is not paid in time."""
    return [
        _(
            "Cara bayar: teller bank, ATM, mobile/internet banking, kantor pos, marketplace, "
            "atau minimarket. Pilih menu Penerimaan Negara / MPN G2 / PNBP, lalu masukkan "
            "kode billing (15 angka)."
        ),
        _(
            "Jika belum dibayar sampai batas waktu, kursi dilepas untuk pemohon lain dan "
            "Anda perlu memilih jadwal lagi. Ketik /status untuk melihat status pembayaran."
        ),
    ]
