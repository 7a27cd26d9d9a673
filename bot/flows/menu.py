"""The home menu, and the commands any flow can reach: /daftar, /status."""

from __future__ import annotations

from typing import Any

from bot.core.flow import Command, Context, Flow, Option, StartFlow, Step, Transition
from bot.i18n import N_, _, format_money
from storage.applications import applications_for_account
from storage.models import ApplicationStatus

NAME = "menu"

STATUS_LABELS = {
    ApplicationStatus.REGISTERED: N_("Terdaftar, menunggu pemilihan jadwal"),
    ApplicationStatus.CANCELLED: N_("Dibatalkan"),
    ApplicationStatus.COMPLETED: N_("Selesai"),
}


def register(_ctx: Context) -> Transition:
    """Start a registration (the engine asks first if one is half-filled)."""
    return StartFlow("registration")


def status(ctx: Context) -> Transition | None:
    """Tell the account's applications and where each stands."""
    applications = applications_for_account(ctx.session, ctx.channel, ctx.user_ref)
    if not applications:
        ctx.say(_('Belum ada permohonan dari akun ini. Pilih "Daftar paspor" untuk mulai.'))
        return None
    lines = [_("Permohonan dari akun ini:")]
    for application in applications:
        lines.append(
            _("• {number}: {name}, {status}, biaya {fee}").format(
                number=application.reg_number,
                name=application.full_name,
                status=_(STATUS_LABELS.get(ApplicationStatus(application.status), "-")),
                fee=format_money(application.fee_amount),
            )
        )
    ctx.say("\n".join(lines))
    return None


def after_action(_ctx: Context, value: Any) -> Transition:
    """Menu entries are shortcuts for commands and keywords."""
    return Command(value)


FLOW = Flow(
    NAME,
    (
        Step(
            key="action",
            prompt=N_("Apa yang ingin Anda lakukan?"),
            options=(
                Option("/daftar", N_("Daftar paspor"), ("daftar", "register")),
                Option("/status", N_("Status permohonan"), ("status", "cek")),
                Option("/bahasa", N_("Bahasa / Language"), ("language",)),
                Option("/bantuan", N_("Bantuan"), ("help",)),
            ),
            after=after_action,
            store=False,
        ),
    ),
)

COMMANDS = {"/daftar": register, "/status": status}
