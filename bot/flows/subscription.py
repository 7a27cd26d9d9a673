"""Quota news: /langganan follows an office or a whole city, /berhenti stops following.

Offices announce new quota and simpatik sessions; storage/subscriptions.py queues each
announcement to every follower's outbox. Offices are found exactly as booking finds them: by
city or office name (typos forgiven) or by a shared location. A city with several offices is
followed office by office, so a new office in that city is not followed without asking.
"""

from __future__ import annotations

from typing import Any

from bot.core.capabilities import capabilities
from bot.core.flow import Context, Flow, Option, StartFlow, Step, Transition
from bot.core.messages import EventKind, Inbound, Outbound
from bot.flows.booking import all_offices, find_offices, office_options
from bot.i18n import N_, _, current_locale, resolve_locale, use_locale
from storage.models import Office
from storage.subscriptions import subscribe, subscriptions_for, unsubscribe

NAME = "subscription"
STOP_NAME = "unsubscribe"
ALL = "all"

HOW_TO_STOP = N_("Untuk berhenti, ketik /berhenti.")


# ---- following -----------------------------------------------------------------------------


def start_subscription(_ctx: Context) -> Transition:
    """Ask which city or office to follow."""
    return StartFlow(NAME)


def offices_by_city(ctx: Context) -> list[Office]:
    """Return every office (read once per turn)."""
    offices: list[Office] = ctx.remember("offices", lambda: all_offices(ctx))
    return offices


def place_prompt(ctx: Context) -> str:
    """Ask which office to follow; where a location can be shared, offer that too."""
    text = _(
        "Kabar kuota dari kantor imigrasi mana yang ingin Anda terima? Ketik nama kota "
        "(contoh: Bandung); bila di kota itu ada beberapa kantor, Anda menerima kabar "
        "dari semuanya."
    )
    if capabilities(ctx.channel).share_location:
        text += " " + _("Atau bagikan lokasi Anda untuk memilih kantor terdekat.")
    return text


def read_place(ctx: Context, event: Inbound) -> list[dict[str, Any]]:
    """Find offices as booking does, noting which ones were named rather than their city."""
    found = find_offices(ctx, event)
    if event.kind is EventKind.TEXT:
        typed = event.text.strip().casefold()
        offices = {office.id: office for office in offices_by_city(ctx)}
        for item in found:
            office = offices[item["id"]]
            item["named"] = typed in office.name.casefold() and typed not in office.city.casefold()
    return found


def after_place(ctx: Context, found: list[dict[str, Any]]) -> Transition | None:
    """Follow a typed city (all its offices) or one named office; otherwise ask which office."""
    if any(item.get("km") is not None for item in found):
        return None  # a shared location: the user chooses among the nearest offices
    named = [item for item in found if item.get("named")]
    if named:
        if len(named) != 1:
            return None
        office = ctx.session.get(Office, named[0]["id"])
        assert office is not None
        return follow(ctx, [office])
    offices = offices_by_city(ctx)
    ids = {item["id"] for item in found}
    cities = {office.city for office in offices if office.id in ids}
    if len(cities) != 1:
        return None
    city = cities.pop()
    in_city = [office for office in offices if office.city == city]
    return follow(ctx, in_city, city if len(in_city) > 1 else None)


def after_office(ctx: Context, value: Any) -> Transition:
    """Follow the office chosen from the list."""
    office = ctx.session.get(Office, int(value))
    assert office is not None  # the engine accepted only an offered office
    return follow(ctx, [office])


def follow(ctx: Context, offices: list[Office], city: str | None = None) -> Transition:
    """Subscribe this chat to the offices and say truthfully what changed and how to stop."""
    created = [
        subscribe(ctx.session, ctx.channel, ctx.user_ref, office.id, current_locale(), ctx.now)
        for office in offices
    ]
    names = ", ".join(office.name for office in offices)
    if not any(created):
        if city is None:
            text = _(
                "Anda sudah berlangganan kabar kuota dari {office}, jadi tidak ada yang berubah."
            ).format(office=names)
        else:
            text = _(
                "Anda sudah berlangganan kabar kuota dari semua kantor imigrasi di {city}: "
                "{offices}. Tidak ada yang berubah."
            ).format(city=city, offices=names)
    elif city is None:
        text = _(
            "Terima kasih, langganan Anda sudah tercatat. Kami akan mengabari Anda di chat ini "
            "bila {office} membuka kuota baru atau sesi paspor simpatik."
        ).format(office=names)
    else:
        text = _(
            "Terima kasih, langganan Anda sudah tercatat. Kami akan mengabari Anda di chat ini "
            "bila salah satu kantor imigrasi di {city} membuka kuota baru atau sesi paspor "
            "simpatik: {offices}."
        ).format(city=city, offices=names)
    ctx.say(text + "\n" + _(HOW_TO_STOP))
    return StartFlow("menu")


# ---- stopping ------------------------------------------------------------------------------


def followed(ctx: Context) -> list[Office]:
    """Return the offices this chat follows (read once per turn)."""
    offices: list[Office] = ctx.remember(
        "subscriptions", lambda: subscriptions_for(ctx.session, ctx.channel, ctx.user_ref)
    )
    return offices


def start_unsubscribe(ctx: Context) -> Transition | None:
    """Ask which subscription to stop, or say there is none."""
    if not followed(ctx):
        ctx.say(
            _(
                "Anda belum berlangganan kabar kuota dari kantor mana pun. Untuk berlangganan, "
                "ketik /langganan."
            )
        )
        return None
    return StartFlow(STOP_NAME)


def stop_options(ctx: Context) -> list[Option]:
    """Offer each followed office, then all of them at once."""
    options = [Option(str(office.id), office.name) for office in followed(ctx)]
    options.append(Option(ALL, N_("Berhenti semua"), ("semua", "all")))
    return options


def after_stop(ctx: Context, value: Any) -> Transition:
    """Remove one subscription or all of them, and say what is left."""
    office_id = None if value == ALL else int(value)
    office = None if office_id is None else ctx.session.get(Office, office_id)
    removed = unsubscribe(ctx.session, ctx.channel, ctx.user_ref, office_id)
    ctx.forget("subscriptions")
    if not removed:
        ctx.say(_("Tidak ada langganan yang perlu dihentikan."))
    elif office is None:
        ctx.say(
            _(
                "Baik, Anda tidak akan menerima kabar kuota lagi dari kantor mana pun. Untuk "
                "berlangganan lagi, ketik /langganan."
            )
        )
    else:
        text = _("Baik, Anda tidak akan menerima kabar kuota dari {office} lagi.").format(
            office=office.name
        )
        remaining = followed(ctx)
        if remaining:
            text += " " + _("Anda masih berlangganan kabar dari: {offices}.").format(
                offices=", ".join(other.name for other in remaining)
            )
        ctx.say(text)
    return StartFlow("menu")


# ---- announcements -------------------------------------------------------------------------


def announcement_payload(office: Office, text: str, locale: str | None) -> dict[str, Any]:
    """Render an office's announcement in one follower's language, ready for the outbox."""
    chosen = resolve_locale(locale, None)
    with use_locale(chosen):
        body = "\n\n".join(
            [
                _("Pengumuman dari {office}:").format(office=office.name),
                text,  # the staff's words, as written
                _(
                    "Anda menerima pesan ini karena berlangganan kabar kuota {office}. Untuk "
                    "berhenti, ketik /berhenti."
                ).format(office=office.name),
            ]
        )
    return {**Outbound(body, kind="announcement").to_payload(), "locale": chosen}


CANCEL_PROMPT = N_("Berhenti mengatur langganan? Langganan Anda tetap seperti sebelumnya.")
CANCELLED = N_("Baik, langganan Anda tidak berubah.")

FLOW = Flow(
    NAME,
    ask_before_leaving=False,
    cancel_prompt=CANCEL_PROMPT,
    cancelled=CANCELLED,
    steps=(
        Step(
            key="office_query",
            prompt=place_prompt,
            parse=read_place,
            after=after_place,
            offers_location=True,
            help=N_(
                "Bila kantor yang Anda ikuti membuka kuota baru atau sesi paspor simpatik, "
                "petugasnya mengumumkannya dan kami meneruskannya ke chat ini. Berlangganan "
                "tidak memesan kursi; pilih jadwal tetap dengan /jadwal."
            ),
        ),
        Step(
            key="office",
            prompt=N_("Pilih kantor yang kabarnya ingin Anda terima:"),
            options=office_options,
            after=after_office,
        ),
    ),
)

STOP_FLOW = Flow(
    STOP_NAME,
    ask_before_leaving=False,
    cancel_prompt=CANCEL_PROMPT,
    cancelled=CANCELLED,
    steps=(
        Step(
            key="stop",
            prompt=N_("Anda berlangganan kabar kuota dari kantor berikut. Mana yang dihentikan?"),
            options=stop_options,
            after=after_stop,
            store=False,
        ),
    ),
)
