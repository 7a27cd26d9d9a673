"""What applicants read about the ballot (undian), and the worker's draw and waitlist rounds.

The rules live in `storage/ballot.py` (the seed, its commitment, the draw order, the seats);
this module words them and tells every entrant through the outbox in their own language.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from bot.core.messages import Outbound
from bot.core.ports import BillingProvider
from bot.i18n import N_, _, format_date, use_locale
from bot.notices import chat_locale, how_to_pay, payment_lines
from bot.settings import Settings
from bot.timezones import format_moment
from storage.ballot import (
    Hold,
    aware,
    ballot_days,
    ballot_hold,
    claim_draw,
    current_ballot,
    drawn_ballots,
    due_ballots,
    enter,
    entry_of,
    is_open,
    offer_freed,
    run_draw,
)
from storage.booking import HoldRefusal, issue_billing, queue_message
from storage.models import Application, Ballot, BallotEntry, BallotStatus, Booking, Office
from storage.phones import verified_phone


def window_text(office: Office, ballot: Ballot) -> str:
    """Say the entry window, the dates and the commitment (the seed only after the draw)."""
    lines = [
        _(
            "Undian: pendaftaran dibuka {opens}, ditutup {closes}; untuk jadwal {first} sampai "
            "{last}; komitmen benih: {commitment}"
        ).format(
            opens=format_moment(aware(ballot.opens_at), office.timezone),
            closes=format_moment(aware(ballot.closes_at), office.timezone),
            first=format_date(ballot.first_day),
            last=format_date(ballot.last_day),
            commitment=ballot.commitment,
        )
    ]
    if ballot.drawn_at is not None:
        lines.append(_("Benih undian (dibuka setelah ditutup): {seed}").format(seed=ballot.seed))
    return "\n".join(lines)


def days_words(days: list[str] | None) -> str:
    """Name an entry's chosen dates ("semua tanggal undian" when it chose all)."""
    if not days:
        return _("semua tanggal undian")
    return ", ".join(format_date(date.fromisoformat(day)) for day in days)


def entered_text(office: Office, ballot: Ballot, entry: BallotEntry) -> str:
    """Tell an entrant their entry is recorded, for which dates, and when the draw is."""
    return _(
        "Pendaftaran undian Anda di {office} tercatat (nomor pendaftaran {number}) untuk "
        "tanggal: {days}. Undian diundi {closes}; hasilnya kami kirim ke chat ini. Mengetuk "
        "lagi tidak menambah peluang: satu NIK satu pendaftaran."
    ).format(
        office=office.name,
        number=entry.id,
        days=days_words(entry.days),
        closes=format_moment(aware(ballot.closes_at), office.timezone),
    )


PASSED_REASONS = {
    HoldRefusal.ACTIVE_BOOKING: N_(
        "NIK Anda sudah memegang satu jadwal (dari akun atau saluran mana pun), dan satu NIK "
        "hanya boleh punya satu jadwal aktif."
    ),
    HoldRefusal.PHONE_LIMIT: N_(
        "nomor HP Anda sudah memegang jadwal untuk {limit} orang, batas untuk satu nomor."
    ),
    HoldRefusal.NOT_OPEN: N_("permohonan Anda sudah dibatalkan atau selesai."),
    HoldRefusal.NOT_ELIGIBLE: N_("permohonan Anda tidak dapat memakai kursi itu."),
}


def passed_text(office: Office, entry: BallotEntry, limit: int) -> str:
    """Tell a waitlisted entrant why the freed seat offered in their turn could not be held
    for them, that it went to the next in line, and what they can do."""
    reason = HoldRefusal(entry.passed_reason or HoldRefusal.NOT_OPEN)
    why = _(PASSED_REASONS.get(reason, PASSED_REASONS[HoldRefusal.NOT_OPEN])).format(limit=limit)
    return _(
        "Daftar tunggu undian {office}: giliran Anda tiba, tetapi kursi tidak dapat ditahan "
        "untuk Anda karena {why} Kursi itu kami tawarkan ke urutan berikutnya, dan Anda "
        "keluar dari daftar tunggu. Ketik /status untuk melihat jadwal dan permohonan Anda; "
        "bila keadaannya berubah, Anda dapat ikut undian berikutnya."
    ).format(office=office.name, why=why)


def won_text(office: Office, booking: Booking, code: str, amount: int, deadline: datetime) -> str:
    """Tell a winner the seat held for them and the billing code to pay."""
    slot = booking.slot
    return "\n".join(
        [
            _("Selamat, Anda terpilih dalam undian {office}. Kursi Anda ditahan.").format(
                office=office.name
            ),
            *payment_lines(office, slot, code, amount, deadline),
            "",
            *how_to_pay(),
        ]
    )


def waitlist_text(office: Office, entry: BallotEntry) -> str:
    """Tell an entrant who was not drawn their place on the waitlist."""
    return _(
        "Hasil undian {office}: Anda belum mendapat kursi. Anda di daftar tunggu nomor "
        "{position}; bila ada kursi yang dilepas (tidak dibayar atau dibatalkan), kursi itu "
        "ditawarkan sesuai urutan dan kami kabari lewat chat ini."
    ).format(office=office.name, position=entry.position)


def _seat_and_tell(
    session: Session,
    office: Office,
    entry: BallotEntry,
    billing: BillingProvider,
    now: datetime,
    settings: Settings,
) -> None:
    with use_locale(chat_locale(session, entry.channel, entry.account_ref)):
        if entry.status == BallotStatus.PASSED:
            text = passed_text(office, entry, settings.max_seats_per_phone)
        elif entry.booking_id is not None:
            booking = session.get(Booking, entry.booking_id)
            application = session.get(Application, entry.application_id)
            assert booking is not None and application is not None
            code = issue_billing(session, booking, application.fee_amount, billing.new_code, now)
            text = won_text(office, booking, code.code, code.amount, code.expires_at)
        else:
            text = waitlist_text(office, entry)
    payload = Outbound(text).to_payload()
    queue_message(session, entry.channel, entry.account_ref, payload, now)


def _hold(session: Session, now: datetime, settings: Settings) -> Hold:
    return ballot_hold(
        session,
        now,
        settings.payment_window,
        lambda channel, ref: verified_phone(session, channel, ref),
        settings.max_seats_per_phone,
    )


def draw_due(session: Session, now: datetime, settings: Settings, billing: BillingProvider) -> int:
    """Draw every ballot whose window closed (once, whoever else tries) and tell every
    entrant the result; return the ballots drawn."""
    drawn = 0
    for ballot in due_ballots(session, now):
        if not claim_draw(session, ballot.id, now):
            continue  # another worker drew it
        session.refresh(ballot)
        office = session.get(Office, ballot.office_id)
        assert office is not None
        for entry in run_draw(session, ballot, now, _hold(session, now, settings)):
            _seat_and_tell(session, office, entry, billing, now, settings)
        drawn += 1
    return drawn


def offer_waitlists(
    session: Session, now: datetime, settings: Settings, billing: BillingProvider
) -> int:
    """Hold seats freed at drawn ballots' dates for the next on each waitlist who chose that
    date, in order, and tell them (or tell one passed over why); return the seats offered."""
    offered = 0
    for ballot in drawn_ballots(session, now):
        office = session.get(Office, ballot.office_id)
        assert office is not None
        for entry in offer_freed(session, ballot, now, _hold(session, now, settings)):
            _seat_and_tell(session, office, entry, billing, now, settings)
            offered += entry.status == BallotStatus.OFFERED
    return offered


def can_enter(session: Session, office: Office, application: Application, now: datetime) -> bool:
    """Tell whether this applicant may enter the office's ballot now (open, not entered)."""
    ballot = current_ballot(session, office.id)
    return (
        ballot is not None
        and is_open(ballot, now)
        and entry_of(session, ballot.id, application.nik) is None
    )


def ballot_text(
    session: Session, office: Office, application: Application, now: datetime, settings: Settings
) -> str:
    """Say where an applicant stands at a ballot office, instead of offering seats."""
    ballot = current_ballot(session, office.id)
    if ballot is None:
        return _(
            "{office} membagikan kuota lewat undian. Jadwal undian berikutnya belum "
            "diumumkan; silakan kembali nanti atau pilih kantor lain."
        ).format(office=office.name)
    head = window_text(office, ballot)
    entry = entry_of(session, ballot.id, application.nik)
    if ballot.drawn_at is not None:
        if entry is None:
            tail = _("Undian ini sudah diundi; Anda tidak ikut mendaftar.")
        elif entry.status == BallotStatus.WAITLISTED:
            tail = waitlist_text(office, entry)
        elif entry.status == BallotStatus.PASSED:
            tail = passed_text(office, entry, settings.max_seats_per_phone)
        elif entry.booking_id is not None:
            tail = _("Anda terpilih dan kursi sudah ditahan untuk Anda; ketik /status.")
        else:
            tail = _("Hasil undian Anda sudah dikirim ke chat ini; ketik /status.")
    elif entry is not None:
        tail = entered_text(office, ballot, entry)
    elif now < aware(ballot.opens_at):
        tail = _("Pendaftaran undian belum dibuka.")
    elif now < aware(ballot.closes_at):
        tail = _(
            'Ketuk "Ikut undian" untuk mendaftar. Satu NIK satu pendaftaran; kursi dibagikan '
            "lewat undian saat pendaftaran ditutup, bukan menurut siapa cepat."
        )
    else:
        tail = _("Pendaftaran undian sudah ditutup; hasilnya segera diundi.")
    return head + "\n\n" + tail


def enter_ballot(
    session: Session,
    office: Office,
    application: Application,
    now: datetime,
    days: list[date] | None = None,
) -> bool:
    """Enter the applicant in the office's open ballot (once) for the dates chosen (None:
    every date); False when it is not open."""
    ballot = current_ballot(session, office.id)
    if ballot is None or not is_open(ballot, now):
        return False
    enter(session, ballot, application, now, days)
    return True


def open_ballot_days(session: Session, office: Office, now: datetime) -> list[date]:
    """Return the dates of the office's open ballot an entrant may choose from."""
    ballot = current_ballot(session, office.id)
    if ballot is None or not is_open(ballot, now):
        return []
    return ballot_days(session, ballot)
