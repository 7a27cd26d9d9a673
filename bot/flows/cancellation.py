"""Cancel an application (and its booking): asked twice, the seat goes back at once."""

from __future__ import annotations

from typing import Any

from bot.core.flow import Context, Flow, Option, StartFlow, Step, Transition
from bot.i18n import N_, _
from bot.rules import CLOSED, Audience, cancel_application
from storage.applications import applications_for_account
from storage.models import Application, ApplicationStatus

NAME = "cancellation"


def open_applications(ctx: Context) -> list[Application]:
    """Return this account's open applications."""
    return list(
        applications_for_account(
            ctx.session, ctx.channel, ctx.user_ref, only_open=True, newest_first=False
        )
    )


def application_options(ctx: Context) -> list[Option]:
    """Offer this account's open applications."""
    return [Option(str(a.id), f"{a.reg_number}: {a.full_name}") for a in open_applications(ctx)]


def confirm_prompt(ctx: Context) -> str:
    """Warn before cancelling; a paid fee is not refunded."""
    application = next(a for a in open_applications(ctx) if str(a.id) == ctx.answers["application"])
    text = _("Batalkan permohonan {number} atas nama {name}?").format(
        number=application.reg_number, name=application.full_name
    )
    if application.status == ApplicationStatus.CONFIRMED:
        text += "\n" + _(
            "Biaya yang sudah dibayar tidak dapat dikembalikan (ketentuan PNBP). Jika hanya "
            'ingin mengganti tanggal, pilih "Tidak" lalu gunakan /ubahjadwal.'
        )
    return text


def after_confirm(ctx: Context, value: Any) -> Transition | None:
    """Cancel the application and its booking, giving the seat back."""
    if value != "yes":
        ctx.say(_("Baik, permohonan tidak dibatalkan."))
        return StartFlow("menu")
    mine = applications_for_account(ctx.session, ctx.channel, ctx.user_ref)
    application = next((a for a in mine if str(a.id) == ctx.answers["application"]), None)
    if application is None:  # erased meanwhile: as good as closed
        ctx.say(CLOSED.text(Audience.APPLICANT))
        return StartFlow("menu")
    # Closed meanwhile (another channel, an agent): the rule refuses it.
    decision, freed = cancel_application(
        ctx.session, ctx.shared, application, "cancelled by applicant", ctx.now
    )
    if not decision.allowed:
        ctx.say(decision.reason())
        return StartFlow("menu")
    ctx.say(
        _("Permohonan {number} dibatalkan.").format(number=application.reg_number)
        + (" " + _("Kursinya sudah dilepas.") if freed is not None else "")
    )
    return StartFlow("menu")


def start_cancellation(ctx: Context) -> Transition | None:
    """Start cancelling, or say there is nothing to cancel."""
    if not open_applications(ctx):
        ctx.say(_("Tidak ada permohonan aktif yang bisa dibatalkan."))
        return None
    return StartFlow(NAME)


FLOW = Flow(
    NAME,
    ask_before_leaving=False,
    cancel_prompt=N_("Berhenti? Permohonan Anda tidak akan dibatalkan."),
    cancelled=N_("Baik, permohonan tidak dibatalkan."),
    steps=(
        Step(
            key="application",
            prompt=N_("Permohonan mana yang ingin dibatalkan?"),
            options=application_options,
        ),
        Step(
            key="confirm",
            prompt=confirm_prompt,
            options=(
                Option("yes", N_("Ya, batalkan permohonan"), ("ya", "yes")),
                Option("no", N_("Tidak"), ("tidak", "no")),
            ),
            after=after_confirm,
        ),
    ),
)
