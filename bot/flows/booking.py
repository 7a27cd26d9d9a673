"""Booking: office (by city or location), date, window; hold a seat; return the billing code.

The seat is held by one conditional UPDATE in the turn's transaction (storage/booking.py).
A shared sold-out hint lets the herd that arrives after the last seat get its answer without
touching the slot row; the database still decides every hold.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import outreach
from bot.ballot import ballot_text, can_enter, enter_ballot, open_ballot_days
from bot.core.capabilities import capabilities
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
from bot.core.messages import EventKind, Expect, Inbound, Outbound, excerpt
from bot.i18n import N_, _, current_locale, format_date
from bot.metrics import refused
from bot.notices import how_to_pay, payment_lines
from bot.rules import SIMPATIK_ONLY, seat_kind_label, seat_kinds, sold_out_key
from bot.timezones import format_window, local
from bot.validators import parse_coming_date, parse_phone
from bot.waiting_room import Place, place_text, release_words, take_place, turn_text, walk_in_text
from storage.applications import applications_for_account
from storage.booking import (
    DayFree,
    HoldRefusal,
    aware,
    hold_seat,
    issue_billing,
    next_release,
    open_days,
    slots_of_day,
    slots_on,
)
from storage.calendars import holiday_name, office_today
from storage.models import Application, ApplicationStatus, Office, ReleaseMode, Slot, SlotKind
from storage.phones import (
    CodeCheck,
    check_code,
    issue_code,
    record_verification,
    verified_phone,
)
from storage.staff import audit
from storage.subscriptions import subscribe, subscriptions_for

NAME = "booking"
SOLD_OUT_HINT_SECONDS = 15.0
NEAREST = 3
PENDING_SLOT = "pending_slot"  # the window (or ballot entry) chosen while the number is verified

# ---- whose application ---------------------------------------------------------------------


def own_application(ctx: Context, application_id: Any) -> Application | None:
    """Return the application only if this chat account owns it (buttons can be forged)."""
    try:
        application = ctx.session.get(Application, int(application_id))
    except (TypeError, ValueError):
        return None
    if application is None:
        return None
    if (application.channel, application.account_ref) != (ctx.channel, ctx.user_ref):
        return None
    return application


def unbooked_applications(ctx: Context) -> list[Application]:
    """Return this account's applications that are waiting for a seat."""
    return list(
        applications_for_account(
            ctx.session,
            ctx.channel,
            ctx.user_ref,
            status=ApplicationStatus.REGISTERED,
            newest_first=False,
        )
    )


# ---- office --------------------------------------------------------------------------------


def all_offices(ctx: Context) -> list[Office]:
    """Return every office, by city."""
    return list(ctx.session.execute(select(Office).order_by(Office.city)).scalars())


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the great-circle distance between two points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 6371.0 * 2 * math.asin(math.sqrt(h))


def find_offices(ctx: Context, event: Inbound) -> list[dict[str, Any]]:
    """Find offices by a typed city or name (typos forgiven), or nearest to a location."""
    offices = all_offices(ctx)
    if event.kind is EventKind.LOCATION and event.location is not None:
        here = event.location
        ranked = sorted(offices, key=lambda o: distance_km(here, (o.latitude, o.longitude)))
        return [
            {"id": o.id, "km": round(distance_km(here, (o.latitude, o.longitude)))}
            for o in ranked[:NEAREST]
        ]
    if event.kind is not EventKind.TEXT:
        if capabilities(ctx.channel).share_location:
            raise Invalid(_("Ketik nama kota, atau bagikan lokasi Anda."))
        raise Invalid(_("Ketik nama kota, contoh: Bandung."))
    typed = event.text.strip().casefold()
    typed = typed.removeprefix("kota ").removeprefix("kabupaten ").removeprefix("kab. ")
    if len(typed) < 3:
        raise Invalid(_("Ketik minimal 3 huruf nama kota, contoh: Bandung."))
    found = [o for o in offices if typed in o.city.casefold() or typed in o.name.casefold()]
    if not found:
        cities = {o.city.casefold(): o for o in offices}
        close = difflib.get_close_matches(typed, list(cities), n=NEAREST, cutoff=0.7)
        found = [cities[city] for city in close]
    if not found:
        raise Invalid(
            _(
                'Belum ada kantor imigrasi Loket di "{typed}". Kantor yang tersedia: {cities}.'
            ).format(typed=excerpt(event.text.strip()), cities=", ".join(o.city for o in offices))
        )
    return [{"id": o.id, "km": None} for o in found]


def find_places(ctx: Context, event: Inbound) -> list[dict[str, Any]]:
    """Find outreach sessions (paspor keliling) and offices by a typed city or a location."""
    sessions = outreach.find_sessions(ctx, event)
    try:
        offices = find_offices(ctx, event)
    except Invalid:
        if not sessions:
            raise
        offices = []
    return offices + sessions  # the offices first, as before; sessions away from them after


def office_options(ctx: Context) -> list[Option]:
    """Offer the offices (and outreach sessions) found in the previous step."""
    options = []
    for found in ctx.answers.get("office_query", []):
        if "outreach" in found:
            option = outreach.session_option(ctx, found)
            if option is not None:
                options.append(option)
            continue
        office = ctx.session.get(Office, found["id"])
        if office is None:
            continue
        label = f"{office.name} ({office.city})"
        if found.get("km") is not None:
            label = f"{office.name} ({found['km']} km)"
        options.append(Option(str(office.id), label))
    return options


def chosen_office(ctx: Context) -> Office:
    """Return the office chosen in this flow."""
    office = ctx.remember(
        f"office:{ctx.answers['office']}",
        lambda: ctx.session.get(Office, int(ctx.answers["office"])),
    )
    assert isinstance(office, Office)
    return office


# ---- date ----------------------------------------------------------------------------------


def booking_application(ctx: Context) -> Application:
    """Return the application this flow is booking for (checked for ownership)."""
    key = f"application:{ctx.answers.get('application')}"
    application = ctx.remember(key, lambda: own_application(ctx, ctx.answers.get("application")))
    if not isinstance(application, Application):
        raise Invalid(_("Permohonan itu tidak ditemukan di akun ini."))
    return application


AVAILABILITY_SECONDS = 2.0  # how long a date list may be served from shared state


def available_days(ctx: Context) -> list[DayFree]:
    """Return the dates with free seats for this applicant at the chosen office.

    At quota release thousands ask for the same list within seconds; it is kept in shared
    state (Redis at scale) for two seconds. A date shown with a seat that just went is
    answered by the hold itself ("baru saja penuh"); the database decides every seat.
    """
    office = chosen_office(ctx)
    if outreach.OUTREACH in ctx.answers:
        return outreach.days(ctx, office)
    here = local(ctx.now, office.timezone)
    kinds = seat_kinds(booking_application(ctx), here.date())
    key = availability_key(ctx)

    def load() -> list[DayFree]:
        cached = ctx.shared.get(key)
        if cached is not None:
            return [DayFree(date.fromisoformat(d), free, weekend)
                    for d, free, weekend in json.loads(cached)]  # fmt: skip
        days = open_days(
            ctx.session, office.id, kinds, ctx.now, here.date(), local_time=here.time()
        )
        share_days(ctx, key, days)
        return days

    days: list[DayFree] = ctx.remember(key, load)
    return days


def availability_key(ctx: Context) -> str:
    """Name the shared date list of this office, seat kinds and minute."""
    office = chosen_office(ctx)
    here = local(ctx.now, office.timezone)
    kinds = seat_kinds(booking_application(ctx), here.date())
    return f"days:{office.id}:{'+'.join(kinds)}:{here.strftime('%Y%m%d%H%M')}"


def share_days(ctx: Context, key: str, days: list[DayFree]) -> None:
    """Publish a date list to shared state for a couple of seconds."""
    ctx.shared.set(
        key,
        json.dumps([[d.day.isoformat(), d.free, d.simpatik] for d in days]),
        AVAILABILITY_SECONDS,
    )


def forget_full_day(ctx: Context, day: str) -> None:
    """A hold just found `day` full: take it out of the shared list if it is still there."""
    days = available_days(ctx)
    remaining = [d for d in days if d.day.isoformat() != day]
    if len(remaining) != len(days):
        key = availability_key(ctx)
        share_days(ctx, key, remaining)
        ctx.memo[key] = remaining


PAGE_SIZE = 7  # dates per page of buttons; "Tanggal lain" shows the next ones
NEXT_DAYS = "days:next"
PREVIOUS_DAYS = "days:prev"
DAY_PAGE = "day_page"  # the page of dates shown (kept with the flow's answers)
DaysOf = Callable[[Context], list[DayFree]]


def day_label(free: DayFree) -> str:
    """Describe a date with its free seats; a weekend simpatik session says so."""
    if free.simpatik:
        label = _("{date}: Paspor Simpatik ({free} kursi)")
    else:
        label = _("{date} ({free} kursi)")
    return label.format(date=format_date(free.day), free=free.free)


def page_of_days(ctx: Context, days: list[DayFree]) -> list[Option]:
    """Offer one page of dates, with "Tanggal lain" and "Tanggal sebelumnya" as needed."""
    pages = max(1, math.ceil(len(days) / PAGE_SIZE))
    page = min(max(int(ctx.answers.get(DAY_PAGE, 0)), 0), pages - 1)
    options = [
        Option(free.day.isoformat(), day_label(free))
        for free in days[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    ]
    if page + 1 < pages:
        options.append(
            Option(NEXT_DAYS, N_("Tanggal lain"), ("lain", "berikutnya", "next", "more"))
        )
    if page > 0:
        options.append(Option(PREVIOUS_DAYS, N_("Tanggal sebelumnya"), ("sebelumnya", "prev")))
    return options


def day_options(ctx: Context) -> list[Option]:
    """Offer a page of dates with free seats, with counts, then a way out."""
    options = page_of_days(ctx, available_days(ctx))
    options.append(Option("other_office", N_("Pilih kantor lain")))
    options.append(Option("menu", N_("Kembali ke menu")))
    return options


def match_typed(options: Sequence[Option], typed: str) -> str | None:
    """Return the option a typed label or alias names, if any."""
    wanted = " ".join(typed.split()).casefold().rstrip(".")
    for option in options:
        names = {option.value.casefold(), _(option.label).casefold(), option.label.casefold()}
        if wanted in names or wanted in option.aliases:
            return option.value
    return None


def day_reader(
    days: DaysOf, options: Callable[[Context], list[Option]], *, from_tomorrow: bool = False
) -> Any:
    """Read a date: a button (of any page), a typed label, or a typed date such as
    "13 Desember"; a date that cannot be booked is refused with the reason.

    `from_tomorrow`: only later days count (a reschedule never moves to today).
    """

    def read(ctx: Context, event: Inbound) -> str:
        offered = options(ctx)
        listed = {free.day.isoformat() for free in days(ctx)}
        if event.kind is EventKind.CHOICE:
            if event.text in listed or any(o.value == event.text for o in offered):
                return event.text
            raise Invalid(_("Tombol itu sudah tidak berlaku. Silakan pilih tanggal di bawah ini."))
        if event.kind is not EventKind.TEXT:
            raise Invalid(
                _("Pilih tanggal dari tombol, atau ketik tanggalnya (contoh: 13 Desember).")
            )
        chosen = match_typed(offered, event.text)
        if chosen is not None:
            return chosen
        office = chosen_office(ctx)
        wanted = parse_coming_date(event.text, office_today(office, ctx.now))
        if wanted is None:
            raise Invalid(
                _(
                    "Mohon pilih salah satu tanggal di bawah ini, atau ketik tanggalnya "
                    "(contoh: 13 Desember atau 13/12)."
                )
            )
        if wanted.isoformat() in listed:
            return wanted.isoformat()
        raise Invalid(why_not_bookable(ctx, wanted, from_tomorrow=from_tomorrow))

    return read


def why_not_bookable(ctx: Context, day: date, *, from_tomorrow: bool = False) -> str:
    """Say exactly why a typed date cannot be booked: past, beyond the calendar, a holiday,
    no service that day, closed, not released yet (and when it opens), or full."""
    office = chosen_office(ctx)
    today = office_today(office, ctx.now)
    shown = format_date(day)
    if outreach.OUTREACH in ctx.answers:
        return outreach.why_not(ctx, day)
    if day < today:
        return _("Tanggal {date} sudah lewat. Pilih tanggal lain.").format(date=shown)
    if from_tomorrow and day == today:
        return _("Jadwal baru paling cepat besok. Pilih tanggal lain.")
    last = today + timedelta(days=ctx.settings.booking_horizon_days - 1)
    if day > last:
        return _("Jadwal hanya dapat dipesan sampai {last}. Tanggal {date} belum tersedia.").format(
            last=format_date(last), date=shown
        )
    holiday = holiday_name(day)
    if holiday is not None:
        return _("{date} adalah hari libur nasional ({holiday}); kantor imigrasi tutup.").format(
            date=shown, holiday=holiday
        )
    kinds = seat_kinds(booking_application(ctx), today)
    slots = slots_of_day(ctx.session, office.id, day)
    mine = [slot for slot in slots if slot.kind in kinds]
    if not mine:
        if any(slot.kind == SlotKind.SIMPATIK for slot in slots):
            return _(
                "Sesi {date} adalah paspor simpatik, hanya untuk paspor baru dan penggantian "
                "karena habis berlaku atau penuh. Pilih tanggal lain."
            ).format(date=shown)
        if day.weekday() >= 5:
            return _(
                "{office} tidak melayani pada akhir pekan {date}: belum ada sesi paspor "
                "simpatik pada tanggal itu. Pilih tanggal lain."
            ).format(office=office.name, date=shown)
        return _("Tidak ada layanan untuk permohonan ini di {office} pada {date}.").format(
            office=office.name, date=shown
        )
    open_slots = [slot for slot in mine if not slot.closed]
    if not open_slots:
        return _("Layanan di {office} pada {date} ditutup. Pilih tanggal lain.").format(
            office=office.name, date=shown
        )
    waiting = [aware(slot.release_at) for slot in open_slots if aware(slot.release_at) > ctx.now]
    if waiting:
        return _("Kuota {date} belum dibuka. Kuota dibuka {moment}.").format(
            date=shown, moment=release_words(office, min(waiting))
        )
    if day == today:
        return _("Jam layanan hari ini sudah dimulai atau penuh. Pilih tanggal lain.")
    return _("Kuota {date} sudah penuh. Pilih tanggal lain.").format(date=shown)


# ---- release modes: walk-in days and the waiting room --------------------------------------

REFRESH = "queue:refresh"
ENTER_BALLOT = "ballot:enter"


def queue_place(ctx: Context) -> Place | None:
    """Return the applicant's place in the office's waiting room (numbered on first ask)."""
    place: Place | None = ctx.remember(
        "queue_place", lambda: take_place(ctx, chosen_office(ctx), booking_application(ctx))
    )
    return place


def seats_barred(ctx: Context) -> str | None:
    """Say why no dates are offered now: walk-in only, or still waiting for a turn."""
    office = chosen_office(ctx)
    if outreach.OUTREACH in ctx.answers:
        return None  # a session away from the office has its own seats
    if office.walk_in_only:
        return walk_in_text(ctx, office, booking_application(ctx))
    if office.release_mode == ReleaseMode.BALLOT:
        return ballot_text(ctx.session, office, booking_application(ctx), ctx.now, ctx.settings)
    if not available_days(ctx):
        return None  # not released or sold out: answered as always
    place = queue_place(ctx)
    if place is not None and not place.admitted:
        return place_text(office, place)
    return None


def gated_day_reader(read: Any) -> Any:
    """Read a date only when seats are offered; otherwise only the buttons shown count."""

    def gate(ctx: Context, event: Inbound) -> str:
        barred = seats_barred(ctx)
        if barred is None:
            value: str = read(ctx, event)
            return value
        offered = booking_day_options(ctx)
        if event.kind is EventKind.CHOICE and any(o.value == event.text for o in offered):
            return event.text
        if event.kind is EventKind.TEXT:
            chosen = match_typed(offered, event.text)
            if chosen is not None:
                return chosen
        raise Invalid(barred)

    return gate


def day_prompt(ctx: Context) -> str:
    """Ask for a date, or say exactly when (and how) quota opens when none is free."""
    office = chosen_office(ctx)
    if outreach.OUTREACH in ctx.answers:
        return outreach.day_prompt(ctx, office)
    barred = seats_barred(ctx)
    if barred is not None:
        return barred
    if available_days(ctx):
        question = _("Pilih tanggal di {office}:").format(office=office.name)
        place = queue_place(ctx)
        if place is not None:
            return turn_text(office, place.entry) + "\n\n" + question
        return question
    opens = release_time(ctx)
    if opens is not None:
        return _(
            "Kuota di {office} belum dibuka. Kuota berikutnya dibuka {moment}. Silakan kembali "
            "pada waktu itu, atau pilih kantor lain."
        ).format(office=office.name, moment=release_words(office, opens))
    return _(
        "Maaf, kuota di {office} sudah habis untuk semua tanggal yang dibuka. Silakan pilih "
        "kantor lain."
    ).format(office=office.name)


RELEASE_SECONDS = 30.0


def release_time(ctx: Context) -> datetime | None:
    """Return when the next seats open at the chosen office (shared for 30 seconds)."""
    office = chosen_office(ctx)
    today = office_today(office, ctx.now)
    kinds = seat_kinds(booking_application(ctx), today)
    key = f"release:{office.id}:{'+'.join(kinds)}:{today.isoformat()}"
    cached = ctx.shared.get(key)
    if cached is not None:
        return datetime.fromisoformat(cached) if cached != "-" else None
    opens = next_release(ctx.session, office.id, kinds, ctx.now, today)
    ctx.shared.set(key, opens.isoformat() if opens else "-", RELEASE_SECONDS)
    return opens


SUBSCRIBE = "subscribe"


def sold_out(ctx: Context) -> bool:
    """Tell whether every opened date at the chosen office is full (and none is still to open)."""
    return not available_days(ctx) and release_time(ctx) is None


def booking_day_options(ctx: Context) -> list[Option]:
    """Offer the dates; at a sold-out office, first offer news of its next quota; on a
    walk-in day or while waiting for a turn, only ways on."""
    barred = seats_barred(ctx) is not None
    if barred:
        options = [Option("other_office", N_("Pilih kantor lain")),
                   Option("menu", N_("Kembali ke menu"))]  # fmt: skip
        office = chosen_office(ctx)
        if office.release_mode == ReleaseMode.BALLOT and not office.walk_in_only:
            if can_enter(ctx.session, office, booking_application(ctx), ctx.now):
                options.insert(0, Option(ENTER_BALLOT, N_("Ikut undian"), ("undian", "daftar")))
        elif not office.walk_in_only:
            options.insert(0, Option(REFRESH, N_("Lihat giliran saya"), ("antrean", "giliran")))
        return options
    options = day_options(ctx)
    if not sold_out(ctx):
        return options
    followed = subscriptions_for(ctx.session, ctx.channel, ctx.user_ref)
    if chosen_office(ctx).id not in {office.id for office in followed}:
        offer = Option(SUBSCRIBE, N_("Kabari saya bila ada kuota baru"), ("kabari", "langganan"))
        options.insert(0, offer)
    return options


def after_day(ctx: Context, value: Any) -> Transition | None:
    """Move on, go back to choosing an office or to the menu, or follow a sold-out office."""
    if value == REFRESH:
        return Stay()  # the question asked again shows the place and admits when due
    if value == ENTER_BALLOT:
        # The entrant first says which of the ballot's dates suit them (skipped when it has
        # one date, or when they already entered: the question asked again says so).
        days = open_ballot_days(ctx.session, chosen_office(ctx), ctx.now)
        if len(days) > 1 and can_enter(
            ctx.session, chosen_office(ctx), booking_application(ctx), ctx.now
        ):
            ctx.answers[CHOOSING_DAYS] = True
            return Jump("ballot_days")
        entered = enter_with_days(ctx, None)
        return Stay() if entered == Jump("day") else entered  # the question asked again
    if value == SUBSCRIBE:
        office = chosen_office(ctx)
        subscribe(ctx.session, ctx.channel, ctx.user_ref, office.id, current_locale(), ctx.now)
        ctx.say(
            _(
                "Baik, kami akan mengabari Anda di chat ini bila {office} membuka kuota baru. "
                "Untuk berhenti, ketik /berhenti."
            ).format(office=office.name)
        )
        return Stay()
    if value in (NEXT_DAYS, PREVIOUS_DAYS):
        ctx.answers.pop("day", None)
        step = 1 if value == NEXT_DAYS else -1
        ctx.answers[DAY_PAGE] = max(0, int(ctx.answers.get(DAY_PAGE, 0)) + step)
        return Stay()
    if value == "other_office":
        ctx.answers.pop(DAY_PAGE, None)
        ctx.answers.pop(outreach.OUTREACH, None)
        return Jump("office_query")
    if value == "menu":
        return StartFlow("menu")
    return None


# ---- the ballot's dates an entrant chooses ---------------------------------------------------

CHOOSING_DAYS = "ballot_choosing"  # set while the ballot's dates are asked
BALLOT_DAYS = "ballot_days_chosen"  # the dates chosen, kept while the number is proved
ALL_DAYS = "ballot:all"


def enter_with_days(ctx: Context, days: list[date] | None) -> Transition | None:
    """Enter the ballot for these dates (None: all), proving the number first if needed."""
    # A winner's seat is held by the draw, so the number is proved before entering, as
    # before any hold: a script's invented applicants gain nothing without phones.
    if needs_phone_proof(ctx):
        ctx.answers[PENDING_SLOT] = ENTER_BALLOT
        if days:
            ctx.answers[BALLOT_DAYS] = [day.isoformat() for day in days]
        return Jump("verify_phone")
    # One entry per NIK (a unique key): a second tap, another channel or a race is the same
    # entry; the question asked again says it is recorded, for which dates, and when.
    enter_ballot(ctx.session, chosen_office(ctx), booking_application(ctx), ctx.now, days)
    return Jump("day")


def ballot_days_prompt(ctx: Context) -> str:
    """Ask which of the ballot's dates suit the entrant."""
    days = open_ballot_days(ctx.session, chosen_office(ctx), ctx.now)
    if not days:
        return _("Pendaftaran undian sudah ditutup.")
    listed = "\n".join(f"{number}. {format_date(day)}" for number, day in enumerate(days, start=1))
    return _(
        "Tanggal mana yang cocok untuk Anda? Undian hanya memberi Anda kursi pada tanggal yang "
        'Anda pilih.\n{days}\n\nTekan "Semua tanggal" atau satu tanggal, atau ketik nomor '
        "beberapa tanggal dipisah koma (contoh: 1, 3)."
    ).format(days=listed)


def ballot_days_options(ctx: Context) -> list[Option]:
    """Offer every date at once, or one date."""
    days = open_ballot_days(ctx.session, chosen_office(ctx), ctx.now)
    return [
        Option(ALL_DAYS, N_("Semua tanggal"), ("semua", "semuanya", "all")),
        *(Option(day.isoformat(), format_date(day)) for day in days),
    ]


def read_ballot_days(ctx: Context, event: Inbound) -> list[str]:
    """Read "all", one date's button, or typed numbers/dates ("1, 3", "6 Januari")."""
    days = open_ballot_days(ctx.session, chosen_office(ctx), ctx.now)
    if not days:
        return []  # the window closed meanwhile: the date question says so next
    offered = ballot_days_options(ctx)
    if event.kind is EventKind.CHOICE:
        if event.text == ALL_DAYS:
            return []
        if event.text in {day.isoformat() for day in days}:
            return [event.text]
        raise Invalid(_("Tombol itu sudah tidak berlaku. Silakan pilih tanggal di bawah ini."))
    if event.kind is not EventKind.TEXT:
        raise Invalid(_("Pilih tanggal dari tombol, atau ketik nomor tanggalnya (contoh: 1, 3)."))
    chosen = match_typed(offered, event.text)
    if chosen is not None:
        return [] if chosen == ALL_DAYS else [chosen]
    today = office_today(chosen_office(ctx), ctx.now)
    picked: set[date] = set()
    for part in event.text.replace(";", ",").replace(" dan ", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if part.isdigit() and 1 <= int(part) <= len(days):
            picked.add(days[int(part) - 1])
            continue
        wanted = parse_coming_date(part, today)
        if wanted is None or wanted not in days:
            raise Invalid(
                _(
                    '"{typed}" bukan salah satu tanggal undian. Ketik nomor tanggal dari daftar '
                    "(1 sampai {count}), dipisah koma, atau pilih dari tombol."
                ).format(typed=excerpt(part), count=len(days))
            )
        picked.add(wanted)
    if not picked:
        raise Invalid(_("Pilih tanggal dari tombol, atau ketik nomor tanggalnya (contoh: 1, 3)."))
    return [] if len(picked) == len(days) else sorted(day.isoformat() for day in picked)


def after_ballot_days(ctx: Context, value: Any) -> Transition | None:
    """Enter the ballot for the dates chosen (an empty list: all of them)."""
    ctx.answers.pop(CHOOSING_DAYS, None)
    if not open_ballot_days(ctx.session, chosen_office(ctx), ctx.now):
        return Jump("day")  # closed while choosing: the date question says where things stand
    return enter_with_days(ctx, [date.fromisoformat(day) for day in value] or None)


# ---- window and hold -----------------------------------------------------------------------


def day_slots(ctx: Context) -> list[Slot]:
    """Return the slots the applicant may book on the chosen day (read once per turn)."""
    office = chosen_office(ctx)
    day = date.fromisoformat(ctx.answers["day"])
    if outreach.OUTREACH in ctx.answers:
        return outreach.slots(ctx, office, day)
    here = local(ctx.now, office.timezone)
    kinds = seat_kinds(booking_application(ctx), here.date())
    slots: list[Slot] = ctx.remember(
        f"slots:{office.id}:{day}",
        lambda: slots_on(ctx.session, office.id, day, kinds, ctx.now, here.date(), here.time()),
    )
    return slots


def slot_label(slot: Slot, timezone: str) -> str:
    """Describe a window: "08.00–10.00 WIB, prioritas (12 kursi)"."""
    window = format_window(slot.start_time, slot.end_time, timezone)
    free = slot.capacity - slot.taken
    # The ordinary seat goes unnamed, and so does an outreach session's (its venue names it).
    if slot.kind not in (SlotKind.REGULER, SlotKind.KELILING):
        kind = seat_kind_label(slot.kind)
        return _("{window}, {kind} ({free} kursi)").format(window=window, kind=kind, free=free)
    return _("{window} ({free} kursi)").format(window=window, free=free)


def slot_options(ctx: Context) -> list[Option]:
    """Offer the windows with free seats on the chosen day."""
    timezone = chosen_office(ctx).timezone
    return [
        Option(str(slot.id), slot_label(slot, timezone))
        for slot in day_slots(ctx)
        if slot.taken < slot.capacity
    ]


def read_slot(ctx: Context, event: Inbound) -> int:
    """Accept any window of the chosen day, even one that filled since it was shown."""
    if event.kind is EventKind.CHOICE and event.text in ctx.shown and event.text.isdigit():
        return int(event.text)  # a button we showed this user for this day
    slots = day_slots(ctx)
    if event.kind is EventKind.CHOICE:
        for slot in slots:
            if str(slot.id) == event.text:
                return slot.id
        raise Invalid(_("Tombol itu sudah tidak berlaku. Silakan pilih jam di bawah ini."))
    options = slot_options(ctx)
    typed = event.text.strip().casefold()
    for number, option in enumerate(options, start=1):
        if typed in (str(number), option.label.casefold()) or option.label.casefold().startswith(
            typed.replace(":", ".")
        ):
            return int(option.value)
    raise Invalid(
        _("Mohon pilih salah satu jam: {options}.").format(
            options="; ".join(option.label for option in options) or "-"
        )
    )


def billing_message(ctx: Context, application: Application, office: Office, slot: Slot,
                    code: str, amount: int, deadline: datetime) -> str:  # fmt: skip
    """Tell the billing code, amount, deadline in office time, and how to pay."""
    return "\n".join(
        [
            _("Kursi Anda ditahan. Segera bayar agar jadwal tidak hilang."),
            "",
            _("Nama: {name}").format(name=application.full_name),
            _("Kantor: {office}").format(office=office.name),
            *outreach.slot_venue_lines(ctx.session, slot),
            *payment_lines(office, slot, code, amount, deadline),
            "",
            *how_to_pay(),
        ]
    )


def after_slot(ctx: Context, value: Any) -> Transition | None:
    """Hold the seat once the account's phone number is verified, else verify it first."""
    if needs_phone_proof(ctx):
        ctx.answers[PENDING_SLOT] = int(value)
        return Jump("verify_phone")
    return hold_chosen(ctx, int(value), from_slot_step=True)


def needs_phone_proof(ctx: Context) -> bool:
    """Tell whether this account must prove its phone number before a seat can be held.

    On a channel whose chat id is the number and which verified it itself (WhatsApp: the
    sender's number), the proof is recorded here, in the turn's own transaction.
    """
    if not ctx.settings.require_verified_phone:
        return False
    if verified_phone(ctx.session, ctx.channel, ctx.user_ref) is not None:
        return False
    return not (verify_mode(ctx.channel) == "sender" and vouch_sender(ctx))


def vouch_sender(ctx: Context) -> bool:
    """Record the sender's own number as verified; False when it is not an Indonesian
    mobile number (it cannot hold seats then, as a typed one could not)."""
    try:
        phone = parse_phone("+" + ctx.user_ref)
    except Invalid:
        return False
    record_verification(ctx.session, ctx.channel, ctx.user_ref, phone, ctx.channel, ctx.now)
    return True


def hold_chosen(ctx: Context, slot_id: int, *, from_slot_step: bool) -> Transition | None:
    """Hold the seat and issue the billing code, or explain why not."""
    ctx.answers.pop(PENDING_SLOT, None)
    application = booking_application(ctx)
    office = chosen_office(ctx)
    phone = verified_phone(ctx.session, ctx.channel, ctx.user_ref)
    known_sold_out = ctx.shared.get(sold_out_key(slot_id)) is not None
    if known_sold_out:
        result_refusal: HoldRefusal | None = HoldRefusal.SOLD_OUT
        booking = None
    else:
        result = hold_seat(
            ctx.session, application, slot_id, ctx.now, ctx.settings.payment_window,
            phone=phone, phone_limit=ctx.settings.max_seats_per_phone,
        )  # fmt: skip
        booking, result_refusal = result.booking, result.refusal
        # Seats changed: read the windows again before offering them.
        ctx.forget(f"slots:{office.id}:{ctx.answers['day']}")
    if booking is not None:
        booking.booked_by = ctx.actor
        billing = issue_billing(
            ctx.session, booking, application.fee_amount, ctx.billing.new_code, ctx.now
        )
        text = billing_message(
            ctx, application, office, booking.slot, billing.code, billing.amount,
            billing.expires_at,
        )  # fmt: skip
        # The code is what the applicant needs next: one tap copies it where the channel can.
        ctx.notes.append(Outbound(text, copy=billing.code))
        return StartFlow("menu")
    if result_refusal is not None:
        refused(result_refusal.value)  # sold_out, active_booking, not_released, ...
    if result_refusal is HoldRefusal.SOLD_OUT:
        if not known_sold_out:
            ctx.shared.set(sold_out_key(slot_id), "1", SOLD_OUT_HINT_SECONDS)
        day_listed = any(d.day.isoformat() == ctx.answers["day"] for d in available_days(ctx))
        if day_listed and slot_options(ctx):
            ctx.notice(_("Maaf, jam itu baru saja penuh. Silakan pilih jam lain."))
            return Stay() if from_slot_step else Jump("slot")
        ctx.notice(_("Maaf, kursi di tanggal itu baru saja habis. Silakan pilih tanggal lain."))
        forget_full_day(ctx, ctx.answers["day"])
        return Jump("day")
    limit = ctx.settings.max_seats_per_phone
    if result_refusal in (HoldRefusal.ACTIVE_BOOKING, HoldRefusal.PHONE_LIMIT):
        ctx.say(hold_refusal_text(result_refusal, limit))
        return StartFlow("menu")
    if result_refusal in (HoldRefusal.NEW_ONLY, HoldRefusal.NOT_MEMBER):
        ctx.say(outreach.refusal_text(ctx, result_refusal.value, outreach.chosen_session(ctx)))
        return Jump("office_query")
    if result_refusal in (HoldRefusal.NOT_ELIGIBLE, HoldRefusal.NOT_ADMITTED):
        ctx.say(hold_refusal_text(result_refusal, limit))
        return Jump("day")
    if result_refusal in (HoldRefusal.WALK_IN, HoldRefusal.BALLOT):
        return Jump("day")  # the date question tells the walk-in arrangements
    if result_refusal is HoldRefusal.NOT_OPEN:
        ctx.say(hold_refusal_text(result_refusal, limit))
        return StartFlow("menu")
    ctx.say(hold_refusal_text(HoldRefusal.CLOSED, limit))
    return Jump("day")


def hold_refusal_text(refusal: HoldRefusal, limit: int) -> str:
    """Say why no seat was held: one wording for the chat and the agent's caller form."""
    if refusal is HoldRefusal.ACTIVE_BOOKING:
        return _(
            "NIK ini sudah memegang satu jadwal (dari akun atau saluran mana pun). Satu NIK "
            "hanya boleh punya satu jadwal aktif. Ketik /status untuk melihatnya."
        )
    if refusal is HoldRefusal.PHONE_LIMIT:
        return _(
            "Nomor HP Anda sudah memegang jadwal untuk {limit} orang (dari akun atau saluran "
            "mana pun). Satu nomor HP hanya boleh memegang jadwal untuk {limit} orang, "
            "misalnya satu keluarga. Jadwal baru bisa dipilih setelah salah satunya selesai, "
            "dibatalkan (/batalkan), atau tidak dibayar sampai batas waktu."
        ).format(limit=limit)
    if refusal is HoldRefusal.NOT_ELIGIBLE:
        return _(SIMPATIK_ONLY)
    if refusal is HoldRefusal.NOT_ADMITTED:
        return _(
            "Maaf, Anda belum mendapat giliran memilih kursi, atau waktu giliran Anda sudah "
            "habis dan berpindah ke antrean berikutnya."
        )
    if refusal is HoldRefusal.NOT_OPEN:
        return _("Permohonan ini sudah dibatalkan atau selesai.")
    if refusal is HoldRefusal.SOLD_OUT:
        return _("Maaf, jam itu baru saja penuh. Silakan pilih jam lain.")
    return _("Jam itu belum dibuka atau sedang ditutup. Silakan pilih jam lain.")


# ---- a verified phone number before the hold ------------------------------------------------
#
# Asked at the moment of holding, not at registration: registering costs nothing scarce, a
# seat does. Each channel proves the number its own way (see README, "What each defence
# stops"): Telegram's own contact, the gateway's word (chat API), a one-time code (web chat,
# terminal), the agent on the phone with the caller (audited).


def verify_mode(channel: str) -> str:
    """Return how this channel proves a phone number: contact, gateway, sender, agent or
    code."""
    modes = {"telegram": "contact", "api": "gateway", "whatsapp": "sender", "agent": "agent"}
    return modes.get(channel, "code")


def verify_prompt(ctx: Context) -> str:
    """Ask for the proof of the phone number this channel can give."""
    mode = verify_mode(ctx.channel)
    if mode == "contact":
        return _(
            "Sebelum kursi ditahan, kami perlu memastikan nomor HP Anda. Tekan tombol "
            '"Bagikan nomor HP saya" di bawah. Hanya nomor milik akun Telegram ini yang '
            "diterima; nomor yang diketik atau kontak orang lain tidak bisa dipakai."
        )
    if mode == "sender":
        return _(
            "Sebelum kursi ditahan, nomor HP Anda perlu terverifikasi. Nomor WhatsApp ini "
            "bukan nomor HP Indonesia, jadi tidak bisa dipakai. Silakan pilih jadwal lewat "
            "web chat, atau hubungi layanan pelanggan."
        )
    if mode == "gateway":
        return _(
            "Sebelum kursi ditahan, nomor HP Anda perlu terverifikasi, tetapi aplikasi yang "
            "Anda pakai belum mengirim nomor terverifikasi. Silakan pilih jadwal lewat "
            "Telegram atau web chat, atau hubungi layanan pelanggan."
        )
    if mode == "agent":
        return _(
            "Sebelum kursi ditahan: ketik nomor HP penelepon yang sudah Anda pastikan "
            "(misalnya nomor yang sedang menelepon). Pernyataan ini dicatat atas nama Anda."
        )
    return _(
        "Sebelum kursi ditahan, kami perlu memastikan nomor HP Anda. Ketik nomor HP Anda "
        "(contoh: 0812 3456 7890); kami kirim kode 6 angka lewat SMS/WhatsApp."
    )


def read_verification(ctx: Context, event: Inbound) -> str:
    """Take this channel's proof of the number; return what to do next ("hold" or "code")."""
    mode = verify_mode(ctx.channel)
    if mode == "sender":
        if verified_phone(ctx.session, ctx.channel, ctx.user_ref) is not None or vouch_sender(ctx):
            return "hold"
        raise Invalid(verify_prompt(ctx))
    if mode == "gateway":
        # The chat API records the gateway's verified number before the turn (bot/api.py).
        if verified_phone(ctx.session, ctx.channel, ctx.user_ref) is not None:
            return "hold"
        raise Invalid(
            _(
                "Nomor HP Anda belum terverifikasi oleh aplikasi ini. Silakan pilih jadwal lewat "
                "Telegram atau web chat, atau hubungi layanan pelanggan."
            )
        )
    if mode == "contact":
        # The Telegram adapter turns only the account's own contact into a CONTACT event;
        # someone else's card arrives as typed text.
        if event.kind is not EventKind.CONTACT:
            raise Invalid(
                _(
                    'Tekan tombol "Bagikan nomor HP saya" di bawah. Nomor yang diketik atau '
                    "kontak orang lain tidak bisa dipakai untuk verifikasi."
                )
            )
        phone = parse_phone(event.text)
        record_verification(ctx.session, ctx.channel, ctx.user_ref, phone, "contact", ctx.now)
        return "hold"
    if event.kind is not EventKind.TEXT:
        raise Invalid(_("Ketik nomor HP, contoh: 0812 3456 7890."))
    phone = parse_phone(event.text)
    if mode == "agent":
        vouch_by_agent(ctx.session, ctx.user_ref, phone, ctx.actor, ctx.now)
        return "hold"
    if ctx.phone_sender is None:
        raise RuntimeError("no phone sender configured for one-time codes")
    code = issue_code(ctx.session, ctx.channel, ctx.user_ref, phone, ctx.now)
    ctx.phone_sender.send(
        phone, _("Kode Loket Anda: {code}. Berlaku 10 menit. Jangan berikan kepada siapa pun.")
        .format(code=code),
    )  # fmt: skip
    ctx.answers["code_phone"] = mask_phone(phone)
    return "code"


def vouch_by_agent(
    session: Session, user_ref: str, phone: str, actor: int | None, now: datetime
) -> None:
    """Record the agent's word for a caller's number (the agent is on the phone with them),
    attributed and audited: the chat panel and the caller form both vouch this way."""
    record_verification(session, "agent", user_ref, phone, "agent", now, verified_by=actor)
    audit(session, actor, "phone.vouch", mask_phone(phone), {}, now)


def mask_phone(phone: str) -> str:
    """Show enough of a number to recognise it, not to dial it: +62812****7890."""
    return phone[:6] + "*" * max(len(phone) - 10, 0) + phone[-4:]


def after_verification(ctx: Context, value: Any) -> Transition | None:
    """Hold the window chosen before verifying, or ask for the code that was sent."""
    if value == "code":
        return Jump("phone_code")
    return hold_pending(ctx)


def hold_pending(ctx: Context) -> Transition | None:
    """Hold the window the applicant chose before verifying their number."""
    pending = ctx.answers.get(PENDING_SLOT)
    if pending is None:
        return Jump("slot")
    if pending == ENTER_BALLOT:  # the number was proved to enter a ballot
        ctx.answers.pop(PENDING_SLOT)
        chosen = ctx.answers.pop(BALLOT_DAYS, None)
        days = [date.fromisoformat(day) for day in chosen] if chosen else None
        enter_ballot(ctx.session, chosen_office(ctx), booking_application(ctx), ctx.now, days)
        return Jump("day")
    return hold_chosen(ctx, int(pending), from_slot_step=False)


def code_prompt(ctx: Context) -> str:
    """Ask for the one-time code."""
    return _(
        "Ketik kode 6 angka yang kami kirim ke {phone}. Kode berlaku 10 menit. Belum menerima "
        'kode? Ketik "kembali" untuk memasukkan nomor lagi.'
    ).format(phone=ctx.answers.get("code_phone", "-"))


def read_code(ctx: Context, event: Inbound) -> str:
    """Check the typed code; 5 wrong tries or 10 minutes and a new code is needed."""
    typed = "".join(event.text.split()) if event.kind is EventKind.TEXT else ""
    if not (typed.isdigit() and len(typed) == 6):
        raise Invalid(_("Kode terdiri dari 6 angka. Ketik kode dari SMS/WhatsApp kami."))
    result = check_code(ctx.session, ctx.channel, ctx.user_ref, typed, ctx.now)
    if result.verdict is CodeCheck.WRONG:
        raise Invalid(_("Kode salah. Sisa percobaan: {tries}.").format(tries=result.tries_left))
    if result.verdict is not CodeCheck.OK or result.phone is None:
        raise Invalid(
            _(
                "Kode sudah tidak berlaku (lewat 10 menit atau 5 kali salah). Ketik "
                '"kembali" lalu masukkan nomor HP Anda untuk menerima kode baru.'
            )
        )
    record_verification(ctx.session, ctx.channel, ctx.user_ref, result.phone, "code", ctx.now)
    return "hold"


# ---- which application ---------------------------------------------------------------------


def application_options(ctx: Context) -> Sequence[Option]:
    """Offer this account's applications that wait for a seat."""
    return [Option(str(a.id), f"{a.reg_number}: {a.full_name}") for a in unbooked_applications(ctx)]


def start_booking(ctx: Context) -> Transition | None:
    """Start booking for the only waiting application, or let the user choose one."""
    waiting = unbooked_applications(ctx)
    if not waiting:
        ctx.say(
            _(
                "Belum ada permohonan yang menunggu jadwal. Daftar dulu dengan memilih "
                '"Daftar paspor", atau ketik /status.'
            )
        )
        return None
    if len(waiting) == 1:
        return StartFlow(NAME, seed=(("application", str(waiting[0].id)),))
    return StartFlow(NAME)


def booking_after_registration(application: Application) -> StartFlow:
    """Go straight from a new registration to choosing its office and date."""
    seed = (("application", str(application.id)), *outreach.member_seed(application))
    return StartFlow(NAME, seed=seed)


def office_query_prompt(ctx: Context) -> str:
    """Ask for a city; where a location can be shared, offer the nearest offices too."""
    if capabilities(ctx.channel).share_location:
        return _(
            "Di kota mana Anda ingin datang ke kantor imigrasi? Ketik nama kota (contoh: "
            "Bandung), atau bagikan lokasi Anda untuk melihat kantor terdekat."
        )
    return _(
        "Di kota mana Anda ingin datang ke kantor imigrasi? Ketik nama kota (contoh: Bandung)."
    )


OFFICE_QUERY = Step(
    key="office_query",
    prompt=office_query_prompt,
    expects=Expect.TEXT,
    parse=find_places,
    offers_location=True,
    help=N_("Kami menampilkan kantor yang cocok dengan nama kota, atau tiga kantor terdekat."),
)
OFFICE = Step(
    key="office",
    prompt=N_("Pilih kantor imigrasi:"),
    options=office_options,
    check=lambda ctx, value: outreach.check_choice(ctx, value, booking_application(ctx)),
    after=lambda ctx, value: outreach.settle_choice(ctx, value),
)
DAY = Step(
    key="day",
    prompt=day_prompt,
    options=booking_day_options,
    parse=gated_day_reader(day_reader(available_days, booking_day_options)),
    after=after_day,
    help=N_(
        'Pilih tanggal dari tombol; "Tanggal lain" menampilkan tanggal berikutnya. Anda juga '
        "bisa mengetik tanggalnya, contoh: 13 Desember atau 13/12."
    ),
)

FLOW = Flow(
    NAME,
    ask_before_leaving=False,
    cancel_prompt=N_(
        "Berhenti memilih jadwal? Permohonan Anda tetap tersimpan; pilih jadwal nanti dengan "
        "/jadwal."
    ),
    cancelled=N_("Baik, pemilihan jadwal dihentikan. Permohonan Anda tetap tersimpan."),
    steps=(
        Step(
            key="application",
            prompt=N_("Untuk permohonan yang mana Anda memilih jadwal?"),
            options=application_options,
        ),
        OFFICE_QUERY,
        OFFICE,
        DAY,
        Step(
            key="slot",
            prompt=N_("Pilih jam kedatangan:"),
            expects=Expect.CHOICE,
            options=slot_options,
            parse=read_slot,
            after=after_slot,
            store=False,
            help=N_(
                "Kursi ditahan setelah Anda memilih jam, lalu Anda menerima kode billing. "
                "Bayar sebelum batas waktu agar jadwal menjadi pasti."
            ),
        ),
        Step(
            key="verify_phone",
            prompt=verify_prompt,
            expects=Expect.CONTACT,
            parse=read_verification,
            after=after_verification,
            when=lambda answers: PENDING_SLOT in answers,
            store=False,
            help=N_(
                "Satu nomor HP boleh memegang jadwal untuk paling banyak 5 orang, dari akun atau "
                "saluran mana pun. Karena itu kursi baru ditahan setelah nomor HP terverifikasi."
            ),
        ),
        Step(
            key="ballot_days",
            prompt=ballot_days_prompt,
            expects=Expect.CHOICE,
            options=ballot_days_options,
            parse=read_ballot_days,
            after=after_ballot_days,
            when=lambda answers: CHOOSING_DAYS in answers,
            store=False,
            help=N_(
                "Pilih tanggal yang benar-benar bisa Anda datangi: bila terpilih, kursi Anda "
                "ada pada tanggal paling awal yang masih kosong di antara pilihan Anda."
            ),
        ),
        Step(
            key="phone_code",
            prompt=code_prompt,
            parse=read_code,
            after=lambda ctx, _value: hold_pending(ctx),
            when=lambda answers: PENDING_SLOT in answers,
            store=False,
            help=N_("Kode dikirim lewat SMS/WhatsApp ke nomor yang Anda ketik, berlaku 10 menit."),
        ),
    ),
)
