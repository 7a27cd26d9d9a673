"""Reschedule: once, only after payment, no later than the day before (H-1), within free seats."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.core.flow import Context, Flow, Invalid, Option, StartFlow, Stay, Step, Transition
from bot.core.messages import EventKind, Expect, Inbound
from bot.flows import booking as booking_flow
from bot.i18n import N_, _, format_date
from bot.notices import confirmation
from bot.timezones import format_window
from storage.booking import DayFree, RescheduleRefusal, reschedule, reschedule_refusal
from storage.calendars import office_today
from storage.models import Application, Booking, BookingStatus, Office

NAME = "reschedule"

REFUSALS = {
    RescheduleRefusal.NOT_PAID: N_(
        "Jadwal hanya dapat diubah setelah pembayaran diterima. Cek dengan /status."
    ),
    RescheduleRefusal.ALREADY_RESCHEDULED: N_(
        "Jadwal ini sudah pernah diubah. Perubahan jadwal hanya boleh satu kali."
    ),
    RescheduleRefusal.TOO_LATE: N_(
        "Jadwal hanya dapat diubah paling lambat sehari sebelum tanggal kedatangan (H-1)."
    ),
    RescheduleRefusal.SOLD_OUT: N_("Maaf, jam itu baru saja penuh. Silakan pilih jam lain."),
    RescheduleRefusal.SAME_SLOT: N_("Itu jadwal Anda yang sekarang. Pilih jam lain."),
    RescheduleRefusal.NOT_ELIGIBLE: N_(
        "Paspor simpatik hanya untuk paspor baru dan penggantian karena habis berlaku atau "
        "penuh, bukan untuk paspor hilang atau rusak."
    ),
}


def account_bookings(ctx: Context) -> list[Booking]:
    """Return this account's confirmed bookings."""
    return list(
        ctx.session.execute(
            select(Booking)
            .join(Application, Booking.application_id == Application.id)
            .where(
                Application.channel == ctx.channel,
                Application.account_ref == ctx.user_ref,
                Booking.status == BookingStatus.CONFIRMED,
            )
            .order_by(Booking.id)
        ).scalars()
    )


def own_booking(ctx: Context, booking_id: Any) -> Booking:
    """Return a booking of this account, refusing anyone else's."""
    for candidate in account_bookings(ctx):
        if str(candidate.id) == str(booking_id):
            return candidate
    raise Invalid(_("Jadwal itu tidak ditemukan di akun ini."))


def booking_options(ctx: Context) -> list[Option]:
    """Offer the account's confirmed bookings."""
    return [
        Option(str(b.id), f"{b.code}: {b.application.full_name}, {format_date(b.slot.day)}")
        for b in account_bookings(ctx)
    ]


def read_booking(ctx: Context, event: Inbound) -> str:
    """Pick a booking and check the rules that do not depend on the new date."""
    options = booking_options(ctx)
    chosen = None
    if event.kind is EventKind.CHOICE:
        chosen = event.text
    else:
        typed = event.text.strip().casefold()
        for number, option in enumerate(options, start=1):
            if typed in (str(number), option.label.casefold()) or typed in option.label.casefold():
                chosen = option.value
    if chosen is None:
        raise Invalid(_("Mohon pilih salah satu jadwal di bawah ini."))
    booking = own_booking(ctx, chosen)
    refusal = reschedule_refusal(booking, office_today(booking.slot.office, ctx.now))
    if refusal is not None:
        raise Invalid(_(REFUSALS[refusal]))
    return str(booking.id)


def seed_office(ctx: Context, value: Any) -> Transition | None:
    """Keep the office of the booking; the applicant chooses a new date there.

    Moving to another office is a new booking at that office, not a reschedule.
    """
    booking = own_booking(ctx, value)
    ctx.answers["application"] = str(booking.application_id)
    ctx.answers["office"] = str(booking.slot.office_id)
    return None


def after_slot(ctx: Context, value: Any) -> Transition | None:
    """Move the booking to the chosen slot, or explain why not."""
    booking = own_booking(ctx, ctx.answers["booking"])
    office = ctx.session.get(Office, booking.slot.office_id)
    assert office is not None
    refusal = reschedule(ctx.session, booking, int(value), office_today(office, ctx.now), ctx.now)
    if refusal is RescheduleRefusal.SOLD_OUT or refusal is RescheduleRefusal.SAME_SLOT:
        ctx.say(_(REFUSALS[refusal]))
        return Stay()
    if refusal is not None:
        ctx.say(_(REFUSALS[refusal]))
        return StartFlow("menu")
    ctx.say(
        _("Jadwal berhasil diubah ke {date}, {window}.").format(
            date=format_date(booking.slot.day),
            window=format_window(booking.slot.start_time, booking.slot.end_time, office.timezone),
        )
    )
    ctx.notes.append(confirmation(booking))
    return StartFlow("menu")


def start_reschedule(ctx: Context) -> Transition | None:
    """Start rescheduling, or say why there is nothing to reschedule."""
    if not account_bookings(ctx):
        ctx.say(_("Belum ada jadwal yang sudah dibayar di akun ini. Ketik /status untuk melihat."))
        return None
    return StartFlow(NAME)


def later_days(ctx: Context) -> list[DayFree]:
    """The dates a booking may move to: after today at the office (its local date)."""
    today = office_today(booking_flow.chosen_office(ctx), ctx.now)
    return [free for free in booking_flow.available_days(ctx) if free.day > today]


def day_prompt(ctx: Context) -> str:
    """Ask for a later date, or say plainly that the office has none (today is not a move)."""
    if not later_days(ctx) and booking_flow.available_days(ctx):
        return _(
            "Belum ada tanggal lain dengan kursi kosong di {office}. Jadwal Anda yang sekarang "
            "tetap berlaku; silakan coba lagi nanti."
        ).format(office=booking_flow.chosen_office(ctx).name)
    return booking_flow.day_prompt(ctx)


def day_options(ctx: Context) -> list[Option]:
    """Offer later dates at the same office, a page at a time, and a way back to the menu."""
    options = booking_flow.page_of_days(ctx, later_days(ctx))
    options.append(Option("menu", N_("Kembali ke menu")))
    return options


FLOW = Flow(
    NAME,
    ask_before_leaving=False,
    cancel_prompt=N_("Berhenti mengubah jadwal? Jadwal Anda yang sekarang tetap berlaku."),
    cancelled=N_("Baik, jadwal Anda tidak diubah."),
    steps=(
        Step(
            key="booking",
            prompt=N_("Jadwal mana yang ingin diubah? (Perubahan hanya boleh satu kali.)"),
            expects=Expect.CHOICE,
            options=booking_options,
            parse=read_booking,
            after=seed_office,
        ),
        Step(
            key="day",
            prompt=day_prompt,
            options=day_options,
            parse=booking_flow.day_reader(later_days, day_options, from_tomorrow=True),
            after=booking_flow.after_day,
            help=booking_flow.DAY.help,
        ),
        Step(
            key="slot",
            prompt=N_("Pilih jam kedatangan yang baru:"),
            expects=Expect.CHOICE,
            options=booking_flow.slot_options,
            parse=booking_flow.read_slot,
            after=after_slot,
            store=False,
        ),
    ),
)
