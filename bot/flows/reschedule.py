"""Reschedule: once, only after payment, no later than the day before (H-1), within free seats."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.core.flow import (
    Context,
    Flow,
    Invalid,
    Jump,
    Option,
    StartFlow,
    Stay,
    Step,
    Transition,
)
from bot.core.messages import EventKind, Expect, Inbound
from bot.flows import booking as booking_flow
from bot.i18n import N_, _, format_date
from bot.notices import confirmation
from bot.rules import (
    may_move_to,
    move_booking,
    reschedule_ballots,
    reschedule_decision,
    reschedule_refused,
)
from bot.timezones import format_window
from bot.validators import parse_coming_date
from storage.booking import DayFree, RescheduleRefusal
from storage.calendars import office_today
from storage.models import Application, Ballot, Booking, BookingStatus, Office, ReleaseMode
from storage.waiting_room import gated

NAME = "reschedule"


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
    decision = reschedule_decision(booking, ctx.now)
    if not decision.allowed:
        raise Invalid(decision.reason())
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
    decision = move_booking(ctx.session, booking, int(value), ctx.now)
    if decision.refusal in (RescheduleRefusal.SOLD_OUT, RescheduleRefusal.SAME_SLOT):
        ctx.say(decision.reason())
        return Stay()
    if decision.refusal in (RescheduleRefusal.NOT_ADMITTED, RescheduleRefusal.BALLOT):
        ctx.say(decision.reason())
        ctx.answers.pop("day", None)
        return Jump("day")  # the date question says where the applicant stands
    if not decision.allowed:
        ctx.say(decision.reason())
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


def ballot_dates(ctx: Context) -> list[Ballot]:
    """Return the ballots of a ballot office whose dates are not over (their seats are the
    draw's and its waitlist's, never a reschedule's)."""
    office = booking_flow.chosen_office(ctx)
    today = office_today(office, ctx.now)
    found: list[Ballot] = ctx.remember(
        f"ballots:{office.id}", lambda: reschedule_ballots(ctx.session, office, today)
    )
    return found


def later_days(ctx: Context) -> list[DayFree]:
    """The dates a booking may move to: after today at the office (its local date), outside
    any ballot's dates."""
    today = office_today(booking_flow.chosen_office(ctx), ctx.now)
    ballots = ballot_dates(ctx)
    return [
        free for free in booking_flow.available_days(ctx) if may_move_to(free.day, today, ballots)
    ]


def barred(ctx: Context) -> str | None:
    """Say why no dates are offered: at a waiting-room office during a release, a new date
    needs a turn, as a new booking does (the place in the queue is said instead)."""
    office = booking_flow.chosen_office(ctx)
    if not gated(office) or not later_days(ctx):
        return None
    waiting = booking_flow.seats_barred(ctx)
    if waiting is None:
        return None
    return (
        _(
            "Di kantor ini tanggal baru dipilih lewat antrean, sama seperti pemesanan baru. "
            "Jadwal Anda yang sekarang tetap berlaku sampai Anda memilih tanggal baru."
        )
        + "\n"
        + waiting
    )


def day_prompt(ctx: Context) -> str:
    """Ask for a later date, or say plainly that the office has none (today is not a move);
    at a waiting-room office, the place in the queue; at a ballot office, which dates are
    the draw's."""
    office = booking_flow.chosen_office(ctx)
    waiting = barred(ctx)
    if waiting is not None:
        return waiting
    lines = [ballot_dates_text(b) for b in ballot_dates(ctx)]
    if not later_days(ctx):
        lines.append(
            _(
                "Belum ada tanggal lain dengan kursi kosong di {office}. Jadwal Anda yang "
                "sekarang tetap berlaku; silakan coba lagi nanti."
            ).format(office=office.name)
        )
    elif office.release_mode == ReleaseMode.BALLOT:
        lines.append(_("Pilih tanggal di {office}:").format(office=office.name))
    else:
        lines.append(booking_flow.day_prompt(ctx))
    return "\n\n".join(lines)


def ballot_dates_text(ballot: Ballot) -> str:
    """Say which dates a ballot hands out, so a reschedule does not offer them."""
    if ballot.first_day == ballot.last_day:
        return _(
            "Kursi tanggal {date} dibagikan lewat undian, jadi tanggal itu tidak dapat dipilih "
            "untuk perubahan jadwal."
        ).format(date=format_date(ballot.first_day))
    return _(
        "Kursi tanggal {first} sampai {last} dibagikan lewat undian, jadi tanggal-tanggal itu "
        "tidak dapat dipilih untuk perubahan jadwal."
    ).format(first=format_date(ballot.first_day), last=format_date(ballot.last_day))


def day_options(ctx: Context) -> list[Option]:
    """Offer later dates at the same office, a page at a time, and a way back to the menu
    (while waiting for a turn: a way to see it)."""
    if barred(ctx) is not None:
        return [
            Option(booking_flow.REFRESH, N_("Lihat giliran saya"), ("antrean", "giliran")),
            Option("menu", N_("Kembali ke menu")),
        ]
    options = booking_flow.page_of_days(ctx, later_days(ctx))
    options.append(Option("menu", N_("Kembali ke menu")))
    return options


def read_day(ctx: Context, event: Inbound) -> str:
    """Read a later date, or only the buttons shown while waiting for a turn."""
    waiting = barred(ctx)
    if waiting is None:
        ballots = ballot_dates(ctx)
        if ballots and event.kind is EventKind.TEXT:
            office = booking_flow.chosen_office(ctx)
            typed = parse_coming_date(event.text, office_today(office, ctx.now))
            if typed is not None and any(b.first_day <= typed <= b.last_day for b in ballots):
                raise Invalid(reschedule_refused(RescheduleRefusal.BALLOT).reason())
        value: str = DAY_READER(ctx, event)
        return value
    offered = day_options(ctx)
    if event.kind is EventKind.CHOICE and any(o.value == event.text for o in offered):
        return event.text
    if event.kind is EventKind.TEXT:
        chosen = booking_flow.match_typed(offered, event.text)
        if chosen is not None:
            return chosen
    raise Invalid(waiting)


DAY_READER = booking_flow.day_reader(later_days, day_options, from_tomorrow=True)


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
            parse=read_day,
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
