"""Rules the chat flows and the staff consoles share: cancelling, rescheduling, seat kinds.

Each rule is decided here once, and a door (a flow step, a console view) only shows the
answer: a `Decision` that is allowed, or refused with a code and the reason in Indonesian
(translated when read, in the reader's language). A reason is worded for the applicant
("Anda") and, where the words must differ, for staff speaking about the applicant. The
transactional parts (the seat given back, the one move counted) stay in storage/booking.py,
called from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.ports import SharedState
from bot.i18n import N_, _
from bot.validators import age_on
from storage.booking import (
    RESCHEDULES_ALLOWED,
    RescheduleRefusal,
    active_booking,
    cancel_booking,
    reschedule,
    reschedule_refusal,
    simpatik_allowed,
)
from storage.calendars import office_today
from storage.models import (
    CLOSED_STATUSES,
    Application,
    ApplicationStatus,
    Ballot,
    Booking,
    Office,
    ReleaseMode,
    SlotKind,
)


class Audience(StrEnum):
    """Who reads a reason: the applicant in the chat, or staff on a console."""

    APPLICANT = "applicant"
    STAFF = "staff"


@dataclass(frozen=True)
class Wording:
    """A refusal's message ids: the applicant's, and staff's when it must differ."""

    applicant: str
    staff: str | None = None

    def text(self, audience: Audience) -> str:
        """Translate the wording for its reader (in the current locale)."""
        if audience is Audience.STAFF and self.staff is not None:
            return _(self.staff)
        return _(self.applicant)


@dataclass(frozen=True)
class Decision:
    """A rule's answer: allowed (no refusal), or the refusal's code and its wording."""

    refusal: str | None = None
    wording: Wording | None = None

    @property
    def allowed(self) -> bool:
        """Tell whether the rule lets the action go ahead."""
        return self.refusal is None

    def reason(self, audience: Audience = Audience.APPLICANT) -> str:
        """Say why the action was refused, for the applicant or for staff."""
        assert self.wording is not None, "an allowed decision has no reason"
        return self.wording.text(audience)


ALLOWED = Decision()


# ---- seat kinds ----------------------------------------------------------------------------

SEAT_KIND_LABELS = {
    SlotKind.REGULER: N_("reguler"),
    SlotKind.PERCEPATAN: N_("percepatan"),
    SlotKind.PRIORITAS: N_("prioritas"),
    SlotKind.SIMPATIK: N_("simpatik"),
    SlotKind.KELILING: N_("keliling"),
}

SIMPATIK_ONLY = N_(
    "Paspor simpatik hanya untuk paspor baru dan penggantian karena habis berlaku atau "
    "penuh, bukan untuk paspor hilang atau rusak."
)


def seat_kinds(application: Application, today: date) -> list[str]:
    """Return the slot kinds this application may book.

    Percepatan uses its own seats; reguler may also use the priority seats when the applicant
    is 60 or older or under 5 (disability and pregnancy are declared at the office); weekend
    simpatik sessions take new and expired-replacement applications only.
    """
    if application.service == "percepatan":
        return [SlotKind.PERCEPATAN]
    kinds: list[str] = [SlotKind.REGULER]
    age = age_on(application.birth_date, today)
    if age >= 60 or age < 5:
        kinds.append(SlotKind.PRIORITAS)
    if simpatik_allowed(application):
        kinds.append(SlotKind.SIMPATIK)
    return kinds


def seat_kind_label(kind: str) -> str:
    """Name a seat kind in the reader's language (an unknown kind as stored)."""
    try:
        return _(SEAT_KIND_LABELS[SlotKind(kind)])
    except ValueError:
        return kind


def sold_out_key(slot_id: int) -> str:
    """Name the shared hint that a slot is full (dropped whenever a seat comes back)."""
    return f"soldout:{slot_id}"


# ---- cancelling ----------------------------------------------------------------------------

CLOSED = Wording(
    N_("Permohonan itu sudah tidak aktif."), staff=N_("Permohonan ini sudah tidak aktif.")
)


def cancel_decision(application: Application) -> Decision:
    """Decide whether an application may be cancelled: any that is not closed may (a paid
    fee is not refunded, which the doors say before asking)."""
    if application.status in CLOSED_STATUSES:
        return Decision("closed", CLOSED)
    return ALLOWED


def cancel_application(
    session: Session, shared: SharedState, application: Application, reason: str, now: datetime
) -> tuple[Decision, Booking | None]:
    """Cancel an application and give its seat back at once; return the decision and the
    booking whose seat was freed (None when it held none)."""
    decision = cancel_decision(application)
    if not decision.allowed:
        return decision, None
    booking = active_booking(session, application.nik)
    if booking is not None and booking.application_id == application.id:
        cancel_booking(session, booking, reason)
        shared.delete(sold_out_key(booking.slot_id))
    else:
        booking = None
    application.status = ApplicationStatus.CANCELLED
    application.closed_at = now
    return decision, booking


# ---- rescheduling --------------------------------------------------------------------------

RESCHEDULE_WORDING = {
    RescheduleRefusal.NOT_PAID: Wording(
        N_("Jadwal hanya dapat diubah setelah pembayaran diterima. Cek dengan /status."),
        staff=N_("Jadwal hanya bisa diubah setelah dibayar."),
    ),
    RescheduleRefusal.ALREADY_RESCHEDULED: Wording(
        N_("Jadwal ini sudah pernah diubah. Perubahan jadwal hanya boleh satu kali."),
        staff=N_("Jadwal ini sudah pernah diubah (hanya sekali)."),
    ),
    RescheduleRefusal.TOO_LATE: Wording(
        N_("Jadwal hanya dapat diubah paling lambat sehari sebelum tanggal kedatangan (H-1)."),
        staff=N_("Jadwal hanya bisa diubah paling lambat H-1."),
    ),
    RescheduleRefusal.SOLD_OUT: Wording(
        N_("Maaf, jam itu baru saja penuh. Silakan pilih jam lain."),
        staff=N_("Jadwal baru itu sudah penuh. Pilih yang lain."),
    ),
    RescheduleRefusal.SAME_SLOT: Wording(
        N_("Itu jadwal Anda yang sekarang. Pilih jam lain."),
        staff=N_("Itu jadwal yang sama."),
    ),
    RescheduleRefusal.NOT_ELIGIBLE: Wording(SIMPATIK_ONLY),
    RescheduleRefusal.NOT_ADMITTED: Wording(
        N_(
            "Maaf, Anda belum mendapat giliran memilih tanggal baru, atau waktu giliran Anda "
            "sudah habis. Di kantor ini tanggal baru dipilih lewat antrean, sama seperti "
            "pemesanan baru; jadwal Anda yang sekarang tetap berlaku sampai Anda berhasil "
            "memilih tanggal baru."
        ),
        staff=N_(
            "Kantor ini membagikan kursi lewat antrean: tanggal baru hanya bisa dipilih saat "
            "pemohon mendapat giliran, sama seperti pemesanan baru. Ubah jadwal lewat chat "
            "(/ubahjadwal oleh pemohon sendiri, atau di panel chat agen bila permohonan "
            "didaftarkan lewat telepon): di sana pemohon mendapat nomor antrean."
        ),
    ),
    RescheduleRefusal.BALLOT: Wording(
        N_(
            "Maaf, kursi pada tanggal itu dibagikan lewat undian: hanya untuk pemenang undian "
            "dan daftar tunggunya. Jadwal Anda yang sekarang tetap berlaku; pilih tanggal lain "
            "di luar tanggal undian."
        ),
        staff=N_(
            "Kursi tanggal itu dibagikan lewat undian, hanya untuk pemenang dan daftar "
            "tunggunya. Pilih tanggal lain."
        ),
    ),
}


def moved_already(booking: Booking) -> bool:
    """Tell whether a booking has used its one change of date."""
    return booking.reschedules >= RESCHEDULES_ALLOWED


def _refused(refusal: RescheduleRefusal | None) -> Decision:
    """Wrap storage's verdict on a reschedule as a decision with its wording."""
    if refusal is None:
        return ALLOWED
    return Decision(refusal.value, RESCHEDULE_WORDING[refusal])


def reschedule_refused(refusal: RescheduleRefusal) -> Decision:
    """The decision for a refusal found without asking storage (a ballot date typed)."""
    return _refused(refusal)


def reschedule_decision(booking: Booking, now: datetime) -> Decision:
    """Decide whether a booking may be moved at all, before a new date is chosen: paid,
    moved at most once, no later than the day before (H-1) at the office."""
    return _refused(reschedule_refusal(booking, office_today(booking.slot.office, now)))


def move_booking(session: Session, booking: Booking, slot_id: int, now: datetime) -> Decision:
    """Move a paid booking to another window once (the seat taken and given back in the
    caller's transaction), or say why not: the rules above, then the new window's (free,
    open, its kind, the release mode's turn or ballot)."""
    today = office_today(booking.slot.office, now)
    return _refused(reschedule(session, booking, slot_id, today, now))


def reschedule_ballots(session: Session, office: Office, today: date) -> list[Ballot]:
    """The ballots of a ballot office whose dates are not over: their seats are the draw's
    and its waitlist's, never a reschedule's."""
    if office.release_mode != ReleaseMode.BALLOT:
        return []
    return list(
        session.execute(
            select(Ballot).where(Ballot.office_id == office.id, Ballot.last_day >= today)
        ).scalars()
    )


def may_move_to(day: date, today: date, ballots: list[Ballot]) -> bool:
    """Tell whether a booking may move to a date: after today at the office, outside every
    ballot's dates."""
    return day > today and not any(b.first_day <= day <= b.last_day for b in ballots)
