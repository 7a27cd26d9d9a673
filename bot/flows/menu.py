"""The home menu, and the commands any flow can reach: /daftar, /jadwal, /status, ..."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.billing import group_code
from bot.core.flow import Command, Context, Flow, Invalid, Option, StartFlow, Step, Transition
from bot.core.messages import EventKind, Inbound
from bot.i18n import N_, _, format_date, format_money
from bot.timezones import format_moment, format_window
from storage.applications import applications_for_account
from storage.booking import billing_for, bookings_for_application
from storage.models import Application, ApplicationStatus, Booking, Payment

NAME = "menu"

OPTIONS = (
    Option("/daftar", N_("Daftar paspor"), ("daftar", "register")),
    Option("/jadwal", N_("Pilih jadwal"), ("jadwal", "schedule")),
    Option("/status", N_("Status permohonan"), ("status", "cek")),
    Option("/ubahjadwal", N_("Ubah jadwal"), ("ubah jadwal", "reschedule")),
    Option("/batalkan", N_("Batalkan permohonan"), ("batalkan",)),
    Option("/langganan", N_("Info kuota (langganan)"), ("langganan", "info kuota", "kuota")),
    Option("/bahasa", N_("Bahasa / Language"), ("language",)),
    Option("/bantuan", N_("Bantuan"), ("help",)),
)
# Words that mean "what about my payment?" anywhere in a message typed at the menu.
PAYMENT_WORDS = ("bayar", "billing", "paid", "payment", "pembayaran")


def register(_ctx: Context) -> Transition:
    """Start a registration (the engine asks first if one is half-filled)."""
    return StartFlow("registration")


def describe(ctx: Context, application: Application) -> str:
    """Say truthfully where one application stands, payment included."""
    header = f"• {application.reg_number}: {application.full_name}"
    bookings = bookings_for_application(ctx.session, application.id)
    latest: Booking | None = bookings[0] if bookings else None
    if application.status == ApplicationStatus.CANCELLED:
        return header + "\n  " + _("Dibatalkan.")
    if application.status == ApplicationStatus.COMPLETED:
        return header + "\n  " + _("Selesai.")
    if application.status in AT_THE_OFFICE:
        return header + "\n  " + at_the_office(application, latest)
    lines = [header]
    if application.status == ApplicationStatus.HELD and latest is not None:
        billing = billing_for(ctx.session, latest.id)
        office = latest.slot.office
        lines.append(
            "  "
            + _("Menunggu pembayaran. Jadwal ditahan: {date}, {window}, {office}.").format(
                date=format_date(latest.slot.day),
                window=format_window(latest.slot.start_time, latest.slot.end_time, office.timezone),
                office=office.name,
            )
        )
        if billing is not None:
            lines.append(
                "  "
                + _("Kode billing {code}, {amount}, bayar sebelum {deadline}.").format(
                    code=group_code(billing.code),
                    amount=format_money(billing.amount),
                    deadline=format_moment(billing.expires_at, office.timezone),
                )
            )
        lines.append(
            "  "
            + _(
                "Jika Anda sudah membayar: notifikasi dari bank belum kami terima. Biasanya "
                "tercatat dalam beberapa menit. Simpan bukti bayar (NTPN); pembayaran yang "
                "tercatat sebelum batas waktu tetap berlaku walau notifikasinya terlambat."
            )
        )
    elif application.status == ApplicationStatus.CONFIRMED and latest is not None:
        office = latest.slot.office
        lines.append(
            "  "
            + _(
                "Sudah dibayar. Jadwal pasti: {date}, {window}, {office}. Kode booking {code}."
            ).format(
                date=format_date(latest.slot.day),
                window=format_window(latest.slot.start_time, latest.slot.end_time, office.timezone),
                office=office.name,
                code=latest.code,
            )
        )
    else:
        lines.append("  " + _("Terdaftar, belum memilih jadwal. Pilih jadwal dengan /jadwal."))
        if latest is not None:
            lines.append("  " + _("Kode billing sebelumnya sudah kedaluwarsa."))
    refunds = (
        ctx.session.execute(
            select(Payment).where(
                Payment.booking_id.in_([b.id for b in bookings]), Payment.needs_refund.is_(True)
            )
        )
        .scalars()
        .all()
    )
    for payment in refunds:
        lines.append(
            "  "
            + _("Pembayaran {amount} (ref. {reference}) ditandai untuk dikembalikan.").format(
                amount=format_money(payment.amount), reference=payment.reference
            )
        )
    return "\n".join(lines)


# After check-in the office moves an application on; each step is told as it stands.
AT_THE_OFFICE = {
    ApplicationStatus.CHECKED_IN: N_(
        "Sudah hadir dan tercatat (check-in) di {office}. Silakan tunggu panggilan nomor antrean."
    ),
    ApplicationStatus.VERIFIED: N_(
        "Berkas diverifikasi di {office}. Berikutnya: foto dan wawancara."
    ),
    ApplicationStatus.INTERVIEWED: N_(
        "Foto dan wawancara selesai. Paspor sedang diproses; kami kabari lagi saat dicetak."
    ),
    ApplicationStatus.PRINTED: N_(
        "Paspor sudah dicetak. Kami kabari lagi saat paspor siap diambil atau dikirim."
    ),
    ApplicationStatus.READY: N_("Paspor siap diambil di {office}."),
    ApplicationStatus.POSTED: N_("Paspor sudah dikirim lewat Pos."),
}


def at_the_office(application: Application, latest: Booking | None) -> str:
    """Say where an application stands after check-in, naming its office when known."""
    office = latest.slot.office if latest is not None else None
    text = _(AT_THE_OFFICE[ApplicationStatus(application.status)]).format(
        office=office.name if office else _("kantor imigrasi")
    )
    if application.status == ApplicationStatus.READY and office is not None:
        text += " " + _("Alamat: {address}. Jam layanan: {hours}.").format(
            address=office.address, hours=office.hours
        )
    return text


def status(ctx: Context) -> Transition | None:
    """Tell the account's applications and where each stands."""
    applications = applications_for_account(ctx.session, ctx.channel, ctx.user_ref)
    if not applications:
        ctx.say(_('Belum ada permohonan dari akun ini. Pilih "Daftar paspor" untuk mulai.'))
        return None
    lines = [_("Permohonan dari akun ini:")]
    lines.extend(describe(ctx, application) for application in applications)
    ctx.say("\n".join(lines))
    return None


def read_action(_ctx: Context, event: Inbound) -> str:
    """Match a menu entry; a message about paying is answered with the true status."""
    typed = event.text.strip().casefold()
    if event.kind is EventKind.CHOICE:
        if any(option.value == event.text for option in OPTIONS):
            return event.text
    else:
        for number, option in enumerate(OPTIONS, start=1):
            if typed in (str(number), _(option.label).casefold(), *option.aliases):
                return option.value
        if any(word in typed for word in PAYMENT_WORDS):
            return "/status"
    raise Invalid(
        _("Maaf, saya belum mengerti. Pilih salah satu menu di bawah ini, atau ketik bantuan.")
    )


def after_action(_ctx: Context, value: Any) -> Transition:
    """Menu entries are shortcuts for commands and keywords."""
    return Command(value)


FLOW = Flow(
    NAME,
    steps=(
        Step(
            key="action",
            prompt=N_("Apa yang ingin Anda lakukan?"),
            options=OPTIONS,
            parse=read_action,
            after=after_action,
            store=False,
        ),
    ),
)
