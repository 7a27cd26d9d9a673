"""Every flow, registered in one place and composed into one engine."""

from __future__ import annotations

from bot.core.engine import Engine
from bot.flows import (
    booking,
    cancellation,
    menu,
    outreach,
    privacy,
    registration,
    reschedule,
    subscription,
)
from bot.i18n import N_
from bot.waiting_room import queue_status

WELCOME = N_(
    "Selamat datang di Loket, layanan pendaftaran paspor lewat chat. Kami bantu Anda mengisi "
    "data, mengirim foto dokumen, dan memilih jadwal di kantor imigrasi."
)

GENERAL_HELP = N_(
    "Perintah yang bisa dipakai kapan saja:\n"
    "• kembali: ke pertanyaan sebelumnya\n"
    "• batal: membatalkan yang sedang diisi\n"
    "• bantuan: penjelasan langkah ini\n"
    "• /mulai: ke menu utama\n"
    "• /daftar: daftar paspor\n"
    "• /jadwal: pilih jadwal dan dapatkan kode billing\n"
    "• /status: status permohonan dan pembayaran\n"
    "• /antrean: nomor antrean dan giliran Anda (kantor yang membagikan kuota lewat antrean)\n"
    "• /ubahjadwal: ubah jadwal (sekali, setelah bayar, paling lambat H-1)\n"
    "• /batalkan: batalkan permohonan\n"
    "• /langganan: terima kabar kuota baru dan sesi paspor simpatik dari kantor imigrasi\n"
    "• /berhenti: berhenti berlangganan kabar kuota\n"
    "• /grup: masukkan kode grup Eazy Passport (pendaftaran rombongan)\n"
    "• /datasaya: data pribadi Anda yang disimpan Loket, dan salinannya\n"
    "• /hapusdata: hapus data pribadi Anda\n"
    "• /bahasa: ganti bahasa"
)

FLOWS = (menu, registration, booking, reschedule, cancellation, subscription, privacy, outreach)


def build_engine() -> Engine:
    """Compose the flows, commands and start guards into the engine every channel uses."""
    return Engine(
        {
            **{module.NAME: module.FLOW for module in FLOWS},
            subscription.STOP_NAME: subscription.STOP_FLOW,  # /berhenti, beside /langganan
        },
        home=menu.NAME,
        welcome=WELCOME,
        general_help=GENERAL_HELP,
        commands={
            "/daftar": menu.register,
            "/status": menu.status,
            "/jadwal": booking.start_booking,
            "/antrean": queue_status,
            "/ubahjadwal": reschedule.start_reschedule,
            "/batalkan": cancellation.start_cancellation,
            "/langganan": subscription.start_subscription,
            "/berhenti": subscription.start_unsubscribe,
            "/grup": outreach.start_group,
            "/datasaya": privacy.my_data,
            "/hapusdata": privacy.start_erasure,
        },
        on_start={registration.NAME: registration.may_start},
        cancel_command="/batalkan",
        deep_link=outreach.open_link,
    )
