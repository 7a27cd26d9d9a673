"""Paspor keliling in the chat: sessions near the applicant, their wording and who may book.

The booking flow (bot/flows/booking.py) offers these sessions beside the offices it finds;
a chosen session sets the flow's office to the session's office and `outreach` to its id, and
the date and window questions then read the session's own seats.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, object_session

from bot.core.flow import Context, Invalid, Option
from bot.core.messages import EventKind, Inbound
from bot.i18n import N_, _, format_date
from bot.timezones import format_window, local
from storage.booking import DayFree
from storage.models import (
    Application,
    Office,
    OutreachAccess,
    OutreachRequest,
    OutreachSession,
    Slot,
)
from storage.outreach import (
    group_by_code,
    group_of_account,
    is_member,
    normalize_group_code,
    session_days,
    session_slots,
    sessions_near,
)

OUTREACH = "outreach"  # the flow's answer: the chosen session's id
PREFIX = "keliling:"  # the office question's value for a session

ACCESS_LABELS = {
    OutreachAccess.EVERYONE: N_("terbuka untuk umum"),
    OutreachAccess.NEW_ONLY: N_("khusus paspor baru"),
    OutreachAccess.GROUP: N_("khusus anggota grup"),
}


def map_link(outreach: OutreachSession) -> str:
    """Return a map link to the venue (coordinates only: no personal data)."""
    return (
        "https://www.google.com/maps/search/?api=1&query="
        f"{outreach.latitude:.6f},{outreach.longitude:.6f}"
    )


def find_sessions(ctx: Context, event: Inbound) -> list[dict[str, Any]]:
    """Find open outreach sessions in a typed city, or near a shared location."""
    today = local(ctx.now, "Asia/Jakarta").date()
    if event.kind is EventKind.LOCATION and event.location is not None:
        found = sessions_near(ctx.session, ctx.now, today, here=event.location)
    elif event.kind is EventKind.TEXT and len(event.text.strip()) >= 3:
        typed = event.text.strip().casefold()
        typed = typed.removeprefix("kota ").removeprefix("kabupaten ").removeprefix("kab. ")
        found = sessions_near(ctx.session, ctx.now, today, city=typed)
    else:
        return []
    return [{"outreach": o.id, "km": None if km is None else round(km)} for o, km in found]


def session_option(ctx: Context, found: dict[str, Any]) -> Option | None:
    """Offer one session, clearly marked as away from the office."""
    outreach = ctx.session.get(OutreachSession, found["outreach"])
    if outreach is None:
        return None
    access = _(ACCESS_LABELS[OutreachAccess(outreach.access)])
    if found.get("km") is not None:
        label = _("Paspor keliling, di luar kantor: {venue}, {km} km ({access})").format(
            venue=outreach.venue, km=found["km"], access=access
        )
    else:
        label = _("Paspor keliling, di luar kantor: {venue}, {city} ({access})").format(
            venue=outreach.venue, city=outreach.city, access=access
        )
    return Option(f"{PREFIX}{outreach.id}", label)


def refusal_text(ctx: Context, reason: str, outreach: OutreachSession | None = None) -> str:
    """Say why this applicant may not book a session, and what to do instead."""
    if reason == "new_only":
        return _(
            "Sesi paspor keliling ini khusus permohonan paspor baru (belum pernah punya paspor). "
            "Untuk penggantian paspor, pilih kantor imigrasi atau sesi lain."
        )
    group = None
    if outreach is not None and outreach.request_id is not None:
        group = ctx.session.get(OutreachRequest, outreach.request_id)
    return _(
        "Sesi paspor keliling ini khusus anggota grup {group} yang mendaftar dengan kode grup "
        "dari penyelenggara. Bila Anda anggota, buka tautan grup atau ketik /grup lalu kode "
        "grupnya; bila bukan, pilih kantor imigrasi atau sesi lain."
    ).format(group=group.organisation if group else "-")


def check_choice(ctx: Context, value: Any, application: Application) -> None:
    """Refuse a session this applicant may not book, with the reason (asked again)."""
    if not (isinstance(value, str) and value.startswith(PREFIX)):
        return
    outreach = ctx.session.get(OutreachSession, int(value.removeprefix(PREFIX)))
    if outreach is None:
        raise Invalid(_("Sesi itu sudah tidak tersedia. Silakan pilih yang lain."))
    if outreach.access == OutreachAccess.NEW_ONLY and application.application_type != "baru":
        raise Invalid(refusal_text(ctx, "new_only"))
    if outreach.access == OutreachAccess.GROUP:
        assert outreach.request_id is not None
        if not is_member(ctx.session, outreach.request_id, ctx.channel, ctx.user_ref):
            raise Invalid(refusal_text(ctx, "not_member", outreach))


def settle_choice(ctx: Context, value: Any) -> None:
    """Turn a chosen session into the flow's office and session; an office clears the session."""
    if isinstance(value, str) and value.startswith(PREFIX):
        outreach = ctx.session.get(OutreachSession, int(value.removeprefix(PREFIX)))
        assert outreach is not None
        ctx.answers["office"] = str(outreach.office_id)
        ctx.answers[OUTREACH] = outreach.id
    else:
        ctx.answers.pop(OUTREACH, None)


def chosen_session(ctx: Context) -> OutreachSession | None:
    """Return the session chosen in this flow, if any."""
    if OUTREACH not in ctx.answers:
        return None
    found = ctx.remember(
        f"outreach:{ctx.answers[OUTREACH]}",
        lambda: ctx.session.get(OutreachSession, int(ctx.answers[OUTREACH])),
    )
    return found if isinstance(found, OutreachSession) else None


def days(ctx: Context, office: Office) -> list[DayFree]:
    """Return the chosen session's dates with free seats."""
    outreach = chosen_session(ctx)
    if outreach is None:
        return []
    here = local(ctx.now, office.timezone)

    def load() -> list[DayFree]:
        rows = session_days(ctx.session, outreach.id, ctx.now, here.date(), here.time())
        return [DayFree(day, free, False) for day, free in rows]

    found: list[DayFree] = ctx.remember(f"outreach_days:{outreach.id}", load)
    return found


def slots(ctx: Context, office: Office, day: Any) -> list[Slot]:
    """Return the chosen session's windows on one day."""
    outreach = chosen_session(ctx)
    assert outreach is not None
    here = local(ctx.now, office.timezone)
    found: list[Slot] = ctx.remember(
        f"slots:{office.id}:{day}",
        lambda: session_slots(ctx.session, outreach.id, day, ctx.now, here.date(), here.time()),
    )
    return found


def venue_lines(outreach: OutreachSession) -> list[str]:
    """Say where the session is: venue, address and a map link, and what to bring."""
    lines = [
        _("Paspor keliling (di luar kantor imigrasi): {venue}").format(venue=outreach.venue),
        _("Alamat: {address}, {city}").format(address=outreach.address, city=outreach.city),
        _("Peta: {link}").format(link=map_link(outreach)),
    ]
    if outreach.documents:
        lines.append(_("Dokumen yang dibawa: {documents}").format(documents=outreach.documents))
    return lines


def day_prompt(ctx: Context, office: Office) -> str:
    """Ask for a date of the chosen session, or say it is full."""
    outreach = chosen_session(ctx)
    assert outreach is not None
    head = "\n".join(venue_lines(outreach))
    if days(ctx, office):
        return head + "\n\n" + _("Petugas dari {office}. Pilih tanggal:").format(office=office.name)
    return (
        head + "\n\n" + _("Maaf, kursi sesi ini sudah habis. Silakan pilih kantor atau sesi lain.")
    )


def why_not(ctx: Context, day: Any) -> str:
    """Say why a typed date is not one of the session's."""
    outreach = chosen_session(ctx)
    venue = outreach.venue if outreach is not None else "-"
    return _(
        "Tanggal {date} bukan jadwal paspor keliling di {venue} atau kursinya sudah habis. "
        "Pilih tanggal di bawah ini."
    ).format(date=format_date(day), venue=venue)


def slot_venue_lines(session: Session, slot: Slot) -> list[str]:
    """Return the venue lines of a seat at an outreach session (none at the office)."""
    if slot.outreach_id is None:
        return []
    outreach = session.get(OutreachSession, slot.outreach_id)
    return venue_lines(outreach) if outreach is not None else []


def member_seed(application: Application) -> tuple[tuple[str, Any], ...]:
    """Pre-answer the office question for a member of a group with an open session."""
    session = object_session(application)
    if session is None:
        return ()
    group = group_of_account(session, application.channel, application.account_ref)
    if group is None or group.session_id is None:
        return ()
    outreach = session.get(OutreachSession, group.session_id)
    if outreach is None:
        return ()
    return (("office_query", []), ("office", str(outreach.office_id)), (OUTREACH, outreach.id))


def group_welcome(ctx: Context, group: OutreachRequest) -> str:
    """Tell a member which group and session they joined."""
    lines = [
        _("Anda bergabung dengan grup Eazy Passport {organisation}.").format(
            organisation=group.organisation
        )
    ]
    outreach = ctx.session.get(OutreachSession, group.session_id) if group.session_id else None
    if outreach is not None:
        office = ctx.session.get(Office, outreach.office_id)
        assert office is not None
        here = local(ctx.now, office.timezone)
        open_days = session_days(ctx.session, outreach.id, ctx.now, here.date(), here.time())
        when = ", ".join(format_date(day) for day, _free in open_days) or "-"
        lines.append(_("Sesi grup: {venue}, {when}.").format(venue=outreach.venue, when=when))
    return "\n".join(lines)


def read_group_code(ctx: Context, text: str) -> OutreachRequest:
    """Find the approved group of a typed code, or say why not."""
    code = normalize_group_code(text)
    if code is None:
        raise Invalid(_("Kode grup terdiri dari GRP- dan 6 huruf/angka, contoh: GRP-7QH3K9."))
    group = group_by_code(ctx.session, code)
    if group is None:
        raise Invalid(
            _(
                "Kode grup {code} tidak ditemukan atau belum disetujui. Periksa lagi kodenya."
            ).format(code=code)
        )
    return group


def window_label(slot: Slot, office: Office) -> str:
    """Describe a session's window: "08.00–12.00 WIB (30 kursi)"."""
    return _("{window} ({free} kursi)").format(
        window=format_window(slot.start_time, slot.end_time, office.timezone),
        free=slot.capacity - slot.taken,
    )
