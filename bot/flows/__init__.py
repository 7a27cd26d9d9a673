"""Every flow, registered in one place and composed into one engine."""

from __future__ import annotations

from bot.core.engine import Engine
from bot.flows import menu, registration
from bot.i18n import N_

WELCOME = N_(
    "Selamat datang di Loket, layanan pendaftaran paspor lewat chat. Kami bantu Anda mengisi "
    "data, mengirim foto dokumen, dan memilih jadwal di kantor imigrasi."
)

GENERAL_HELP = N_(
    "Perintah yang bisa dipakai kapan saja:\n"
    "• kembali: ke pertanyaan sebelumnya\n"
    "• batal: membatalkan pendaftaran yang sedang diisi\n"
    "• bantuan: penjelasan langkah ini\n"
    "• /mulai: ke menu utama\n"
    "• /status: melihat permohonan Anda\n"
    "• /bahasa: ganti bahasa"
)


def build_engine() -> Engine:
    """Compose the flows, commands and start guards into the engine every channel uses."""
    return Engine(
        {menu.NAME: menu.FLOW, registration.NAME: registration.FLOW},
        home=menu.NAME,
        welcome=WELCOME,
        general_help=GENERAL_HELP,
        commands=menu.COMMANDS,
        on_start={registration.NAME: registration.may_start},
    )
