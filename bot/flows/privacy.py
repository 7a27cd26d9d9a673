"""The person's rights over their data (UU PDP No. 27/2022): `/datasaya` shows what Loket
holds about this chat and hands over the whole of it as a file; `/hapusdata` erases it after
a confirmation by button and by a typed word.

A chat sees and erases only what its own conversation gave (storage/privacy.py says why a
phone number does not prove whose a NIK is). What must stay (payments, billing codes, staff
actions) stays without NIK or name, and the person is told so before confirming. A paid
appointment that still stands, or a passport the office is working on, stops an erasure with
the reason; an unpaid hold is cancelled by it, as the confirmation says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from bot.billing import group_code
from bot.core.flow import Context, Flow, Invalid, Option, StartFlow, Step, Transition
from bot.core.messages import EventKind, Inbound, Outbound
from bot.documents import REQUIREMENTS
from bot.i18n import N_, _, format_date, format_money
from bot.privacy import conversation_id, export_token
from bot.rules import sold_out_key
from bot.timezones import format_moment
from bot.validators import mask_nik
from storage.booking import billing_for, bookings_for_application
from storage.models import Application, ApplicationStatus, BillingStatus, BookingStatus
from storage.phones import verified_phone
from storage.privacy import (
    erase_chat,
    erasure_blockers,
    owned_applications,
    staff_actions,
)
from storage.subscriptions import subscriptions_for

NAME = "erasure"
CONFIRM_WORDS = ("hapus", "erase")  # the typed word, in Indonesian or English
# Channels where a chat is not the person's own: an agent types for a caller on the phone.
NOT_OWN_CHAT = ("agent",)


def document_name(kind: str) -> str:
    """The document's name as the checklist says it."""
    for requirement in REQUIREMENTS:
        if requirement.key == kind:
            return _(requirement.label)
    return kind


def refuse_for_agents(ctx: Context) -> bool:
    """Say why this door cannot serve a data request; True when it refused."""
    if ctx.channel not in NOT_OWN_CHAT:
        return False
    ctx.say(
        _(
            "Salinan dan penghapusan data pribadi hanya dilayani dari chat pemohon sendiri "
            "(Telegram atau web chat), karena di sana pemohon sendiri yang meminta. Mohon "
            "sampaikan kepada penelepon untuk mengetik /datasaya atau /hapusdata di chat "
            "Loket miliknya."
        )
    )
    return True


def describe_application(ctx: Context, application: Application) -> list[str]:
    """The lines that tell one application's data, masked where a chat screen may be seen."""
    lines = [
        f"• {application.reg_number}: {application.full_name}, NIK {mask_nik(application.nik)}",
        "  "
        + _(
            "Juga tersimpan: tempat dan tanggal lahir, jenis kelamin, nomor HP, email, alamat, "
            "tujuan perjalanan dan jawaban pendaftaran lainnya (lengkap di file)."
        ),
    ]
    documents = [document_name(document.kind) for document in application.documents]
    if documents:
        lines.append("  " + _("Foto dokumen: {names}.").format(names=", ".join(documents)))
    elif application.documents_deleted_at is not None:
        lines.append("  " + _("Foto dokumen sudah dihapus sesuai masa simpan."))
    codes = []
    for booking in bookings_for_application(ctx.session, application.id):
        codes.append(booking.code)
        office = booking.slot.office
        line = _("Jadwal {code}: {day}, {office} ({status}).").format(
            code=booking.code,
            day=format_date(booking.slot.day),
            office=office.name,
            status=_(BOOKING_WORDS[BookingStatus(booking.status)]),
        )
        billing = billing_for(ctx.session, booking.id)
        if billing is not None:
            line += " " + _("Kode billing {code}, {amount}, {status}.").format(
                code=group_code(billing.code),
                amount=format_money(billing.amount),
                status=_(BILLING_WORDS[BillingStatus(billing.status)]),
            )
        lines.append("  " + line)
    actions = staff_actions(ctx.session, [application.reg_number, *codes])
    if actions:
        lines.append("  " + _("Dibuka atau diubah petugas:"))
        for action in actions[-5:]:
            lines.append(
                "    "
                + "{when}: {staff} ({action})".format(
                    when=format_moment(action_time(action), "Asia/Jakarta"),
                    staff=action["staff"] or _("sistem"),
                    action=_(ACTION_WORDS.get(action["action"], action["action"])),
                )
            )
        if len(actions) > 5:
            lines.append("    " + _("dan {count} lainnya (lengkap di file).").format(
                count=len(actions) - 5))  # fmt: skip
    else:
        lines.append("  " + _("Belum pernah dibuka petugas."))
    return lines


def action_time(action: dict[str, Any]) -> datetime:
    """The moment of an audited action, as a datetime."""
    return datetime.fromisoformat(action["at"])


# Where a seat stands, in the applicant's words (the file keeps the stored values).
BOOKING_WORDS = {
    BookingStatus.HELD: N_("ditahan, menunggu pembayaran"),
    BookingStatus.CONFIRMED: N_("sudah dibayar"),
    BookingStatus.CHECKED_IN: N_("sudah hadir"),
    BookingStatus.EXPIRED: N_("kedaluwarsa, tidak dibayar"),
    BookingStatus.CANCELLED: N_("dibatalkan"),
    BookingStatus.NO_SHOW: N_("tidak hadir"),
}
# What a staff member did, in the applicant's words (the file keeps the audit log's names).
ACTION_WORDS = {
    "agent.view": N_("membuka data lengkap, layanan pelanggan"),
    "office.view": N_("membuka data lengkap, kantor imigrasi"),
    "agent.cancel": N_("membatalkan permohonan"),
    "agent.reschedule": N_("mengubah jadwal"),
    "office.checkin": N_("mencatat kehadiran"),
    "office.status": N_("mengubah status"),
}
BILLING_WORDS = {
    BillingStatus.UNPAID: N_("belum dibayar"),
    BillingStatus.PAID: N_("lunas"),
    BillingStatus.EXPIRED: N_("kedaluwarsa"),
    BillingStatus.CANCELLED: N_("dibatalkan"),
}


def my_data(ctx: Context) -> Transition | None:
    """/datasaya: what Loket holds about this chat, and the whole of it as a file."""
    if refuse_for_agents(ctx):
        return None
    lines = [_("Data Anda yang disimpan Loket (dari akun chat ini):")]
    phone = verified_phone(ctx.session, ctx.channel, ctx.user_ref)
    if phone is not None:
        lines.append(_("• Nomor HP terverifikasi: {phone}").format(phone=phone))
    offices = subscriptions_for(ctx.session, ctx.channel, ctx.user_ref)
    if offices:
        lines.append(
            _("• Langganan info kuota: {offices}").format(
                offices=", ".join(office.name for office in offices)
            )
        )
    if ctx.answers:
        lines.append(_("• Isian pendaftaran yang belum selesai."))
    applications = owned_applications(ctx.session, ctx.channel, ctx.user_ref)
    for application in applications:
        lines.extend(describe_application(ctx, application))
    if not applications:
        lines.append(_("• Belum ada permohonan dari akun ini."))
    lines.append(
        _(
            "Hanya permohonan yang dibuat lewat akun chat ini yang ditampilkan. Untuk menghapus "
            "data ini, ketik /hapusdata."
        )
    )
    ctx.say("\n".join(lines))
    found = conversation_id(ctx.session, ctx.channel, ctx.user_ref)
    if found is not None:
        if ctx.channel == "web":  # a download link (bot/consoles/webchat.py)
            said = _(
                "Salinan lengkap data Anda (file JSON). Tautan unduhan berlaku {minutes} "
                "menit dan hanya untuk Anda."
            ).format(minutes=ctx.settings.export_link_minutes)
        else:  # Telegram sends a document, the chat API a file, the terminal writes one
            said = _("Salinan lengkap data Anda ada di file JSON terlampir.")
        ctx.notes.append(Outbound(said, export=export_token(ctx.settings, found)))
    return None


# ---- /hapusdata -------------------------------------------------------------------------------


def blocker_reason(application: Application) -> str:
    """Why this application stops an erasure, and what the person can do."""
    if application.status == ApplicationStatus.CONFIRMED:
        return _(
            "Permohonan {number} sudah dibayar dan jadwalnya masih berlaku, jadi datanya belum "
            "bisa dihapus (kantor imigrasi memerlukannya pada hari kedatangan). Jika Anda tidak "
            "jadi datang, batalkan dulu dengan /batalkan (biaya yang sudah dibayar tidak dapat "
            "dikembalikan), lalu ketik /hapusdata lagi."
        ).format(number=application.reg_number)
    return _(
        "Permohonan {number} sedang diproses di kantor imigrasi; datanya diperlukan sampai "
        "paspor diserahkan. Ketik /hapusdata lagi setelah paspor Anda terima."
    ).format(number=application.reg_number)


def start_erasure(ctx: Context) -> Transition | None:
    """/hapusdata: refuse with the reason, or ask for the confirmation."""
    if refuse_for_agents(ctx):
        return None
    blockers = erasure_blockers(ctx.session, ctx.channel, ctx.user_ref)
    if blockers:
        ctx.say("\n\n".join(blocker_reason(application) for application in blockers))
        return None
    return StartFlow(NAME)


def confirm_prompt(ctx: Context) -> str:
    """Say plainly what goes, what stays (and why), and what happens to an unpaid hold."""
    parts = [
        _("Anda meminta penghapusan data pribadi Anda dari Loket."),
        _(
            "Yang dihapus: NIK, nama, tempat dan tanggal lahir, jenis kelamin, nomor HP, email, "
            "alamat, nomor paspor lama, semua jawaban pendaftaran, foto dokumen (dihapus dari "
            "penyimpanan), isi percakapan, nomor HP terverifikasi, langganan info kuota, dan "
            "nomor antrean."
        ),
        _(
            "Yang tetap disimpan, tanpa NIK dan tanpa nama: nomor pendaftaran, jenis layanan dan "
            "biayanya, kode booking, kode billing dan catatan pembayaran (catatan penerimaan "
            "negara dan dasar pengembalian dana), serta catatan tindakan petugas."
        ),
    ]
    held = []
    for application in owned_applications(ctx.session, ctx.channel, ctx.user_ref):
        if application.status == ApplicationStatus.HELD:
            held.append(application.reg_number)
    if held:
        parts.append(
            _(
                "Jadwal yang belum dibayar ({numbers}) akan dibatalkan dan kursinya dilepas; "
                "kode billing-nya tidak berlaku lagi. Jangan membayarnya."
            ).format(numbers=", ".join(held))
        )
    open_ones = [
        a.reg_number
        for a in owned_applications(ctx.session, ctx.channel, ctx.user_ref)
        if a.status == ApplicationStatus.REGISTERED
    ]
    if open_ones:
        parts.append(
            _("Permohonan {numbers} akan dibatalkan.").format(numbers=", ".join(open_ones))
        )
    parts.append(_("Penghapusan tidak dapat dibatalkan. Lanjutkan?"))
    return "\n\n".join(parts)


def read_word(_ctx: Context, event: Inbound) -> str:
    """Accept only the typed word HAPUS (a button cannot confirm this step)."""
    if event.kind is EventKind.TEXT and event.text.strip().casefold() in CONFIRM_WORDS:
        return CONFIRM_WORDS[0]
    raise Invalid(_('Untuk menghapus, ketik kata HAPUS. Jika tidak jadi, ketik "batal".'))


def after_confirm(ctx: Context, value: Any) -> Transition | None:
    """Stop here when the person said no."""
    if value != "yes":
        ctx.say(_("Baik, data Anda tidak dihapus."))
        return StartFlow("menu")
    return None


def erase(ctx: Context, _value: Any) -> Transition:
    """Erase the chat's data (checked again: a payment may have arrived meanwhile)."""
    blockers = erasure_blockers(ctx.session, ctx.channel, ctx.user_ref)
    if blockers:
        ctx.say("\n\n".join(blocker_reason(application) for application in blockers))
        return StartFlow("menu")
    done = erase_chat(ctx.session, ctx.channel, ctx.user_ref, ctx.now)
    for slot_id in done.freed_slots:
        ctx.shared.delete(sold_out_key(slot_id))
    delete_after_commit(ctx, done.blob_keys)
    ctx.answers.clear()
    text = _("Data pribadi Anda sudah dihapus.")
    if done.counts.get("applications_anonymised"):
        text += " " + _(
            "Dari {count} permohonan hanya tersisa catatan tanpa NIK dan tanpa nama (nomor "
            "pendaftaran, kode booking dan billing, pembayaran)."
        ).format(count=done.counts["applications_anonymised"])
    if done.counts.get("holds_cancelled"):
        text += " " + _("Jadwal yang belum dibayar sudah dibatalkan.")
    ctx.notes.append(Outbound(text, forget=True))
    return StartFlow("menu")


def delete_after_commit(ctx: Context, keys: set[str]) -> None:
    """Delete photo files once the erasure has committed (a rollback keeps them)."""
    if not keys:
        return
    blobs = ctx.blobs

    def remove(_session: Session) -> None:
        for key in sorted(keys):
            blobs.delete(key)

    event.listen(ctx.session, "after_commit", remove, once=True)


FLOW = Flow(
    NAME,
    ask_before_leaving=False,
    cancel_prompt=N_("Berhenti? Data Anda tidak akan dihapus."),
    cancelled=N_("Baik, data Anda tidak dihapus."),
    steps=(
        Step(
            key="confirm",
            prompt=confirm_prompt,
            options=(
                Option("yes", N_("Ya, hapus data saya"), ("ya", "yes")),
                Option("no", N_("Tidak, jangan hapus"), ("tidak", "no")),
            ),
            after=after_confirm,
        ),
        Step(
            key="word",
            prompt=N_("Untuk memastikan, ketik kata HAPUS."),
            parse=read_word,
            after=erase,
        ),
    ),
)
