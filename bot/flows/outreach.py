"""Joining an Eazy Passport group with its code: `/grup`, or the group's link (`/start CODE`).

A member's chat account is recorded in the group; their registration then goes straight to
the group's members-only session (bot/outreach.py `member_seed`).
"""

from __future__ import annotations

from typing import Any

from bot.core.flow import Context, Flow, Invalid, StartFlow, Step, Transition
from bot.core.messages import EventKind, Inbound
from bot.flows import booking
from bot.i18n import N_, _
from bot.outreach import group_welcome, member_seed, read_group_code
from storage.models import OutreachRequest
from storage.outreach import join

NAME = "grup"


def read_code(ctx: Context, event: Inbound) -> int:
    """Read a typed group code; return the group's id."""
    if event.kind is not EventKind.TEXT:
        raise Invalid(_("Ketik kode grup dari penyelenggara, contoh: GRP-7QH3K9."))
    return read_group_code(ctx, event.text).id


def enter_group(ctx: Context, group: OutreachRequest) -> Transition:
    """Record the membership, then book for a waiting application or register first."""
    join(ctx.session, group, ctx.channel, ctx.user_ref, ctx.now)
    ctx.say(group_welcome(ctx, group))
    waiting = booking.unbooked_applications(ctx)
    if len(waiting) == 1:
        return StartFlow(
            booking.NAME, seed=(("application", str(waiting[0].id)), *member_seed(waiting[0]))
        )
    if waiting:
        return StartFlow(booking.NAME, seed=member_seed(waiting[0]))
    ctx.say(
        _(
            "Silakan isi data pendaftaran paspor. Setelah selesai, Anda langsung memilih jam "
            "di sesi grup."
        )
    )
    return StartFlow("registration")


def after_code(ctx: Context, value: Any) -> Transition:
    """Join the group whose code was typed."""
    group = ctx.session.get(OutreachRequest, int(value))
    assert group is not None
    return enter_group(ctx, group)


def open_link(ctx: Context, payload: str) -> Transition | None:
    """Act on "/start PAYLOAD": a group code joins its group; anything else opens the menu."""
    try:
        group = read_group_code(ctx, payload)
    except Invalid as refusal:
        ctx.say(refusal.reason)
        return StartFlow(NAME)
    return enter_group(ctx, group)


def start_group(_ctx: Context) -> Transition:
    """Ask for a group code (/grup)."""
    return StartFlow(NAME)


FLOW = Flow(
    NAME,
    ask_before_leaving=False,
    cancel_prompt=N_("Berhenti memasukkan kode grup?"),
    cancelled=N_("Baik. Ketik /grup bila ingin memasukkan kode grup lagi."),
    steps=(
        Step(
            key="code",
            prompt=N_(
                "Ketik kode grup Eazy Passport dari penyelenggara (perusahaan, sekolah, "
                "komunitas, masjid atau gereja), contoh: GRP-7QH3K9."
            ),
            parse=read_code,
            after=after_code,
            store=False,
            help=N_(
                "Kode grup diberikan kantor imigrasi kepada penyelenggara setelah permohonan "
                "kunjungan disetujui. Anggota grup memesan kursi di sesi khusus grup."
            ),
        ),
    ),
)
