"""What applicants read about release modes: the waiting room's numbers and turns, walk-in days.

The rules live in storage (`storage/waiting_room.py`: numbering, admission, the hold's claim);
this module runs them for a turn or a worker round and words them, sending "Giliran Anda" and
"giliran habis" through the outbox in each recipient's language.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.flow import Context, Transition
from bot.core.messages import Choice, Expect, Outbound, merge
from bot.documents import document_label, required_documents
from bot.i18n import _, format_count, use_locale
from bot.logsafe import log_failure
from bot.metrics import ADMISSION_RATE
from bot.notices import chat_locale
from bot.settings import Settings
from bot.timezones import format_moment, local, zone_label
from storage.booking import aware, queue_message
from storage.models import Application, Office, QueueEntry, QueueStatus, ReleaseMode, WalkIn
from storage.waiting_room import (
    account_entries,
    admissions_so_far,
    admit_due,
    current_release,
    gated,
    join_queue,
    latest_entry,
    start_turn,
    waiting_ahead,
    waiting_room_offices,
)

if TYPE_CHECKING:  # the delivery package imports this module
    from bot.delivery.transport import Incoming


log = logging.getLogger(__name__)

REFRESH = "queue:refresh"  # the date question asked again ("Lihat giliran saya")


def release_words(office: Office, moment: datetime) -> str:
    """Say when and how the next quota opens: "Senin, ... pukul 08.00 WIB lewat antrean"."""
    shown = format_moment(moment, office.timezone)
    if office.release_mode == ReleaseMode.WAITING_ROOM:
        return _("{moment} lewat antrean").format(moment=shown)
    if office.release_mode == ReleaseMode.BALLOT:
        return _("{moment} lewat undian").format(moment=shown)
    return _("{moment}, siapa cepat dia dapat").format(moment=shown)


# ---- notices -------------------------------------------------------------------------------


def _notify(
    session: Session,
    entry: QueueEntry,
    render: Outbound,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    payload = {**render.to_payload(), **(extra or {})}
    queue_message(session, entry.channel, entry.account_ref, payload, now)


TURN_ENTRY = "turn_entry"  # a "Giliran Anda" notice's entry: its turn starts when delivered


def turn_delivered(sessions: Any, payload: dict[str, Any], now: datetime) -> None:
    """Start an admitted person's turn when its "Giliran Anda" notice is delivered (a push
    channel's sender calls this after the send), not when admitted: a notice that waited in
    the outbox does not eat the minutes to choose a seat."""
    entry_id = payload.get(TURN_ENTRY)
    if type(entry_id) is not int:
        return
    minutes = int(payload.get("turn_minutes") or 0)
    try:
        with sessions() as session, session.begin():
            start_turn(session, entry_id, now + timedelta(minutes=minutes))
    except Exception as error:  # the notice went out: never send it again for this
        log_failure(log, "starting a turn at delivery failed; it counts from admission", error)


NOTE_KEY = "loket_gate"  # what the release gate decided, kept in the accepted update's payload


def gate_note(payload: Any) -> dict[str, Any] | None:
    """Return what the release gate (`bot.release_gate`) decided about an accepted update
    (None: an ordinary one)."""
    note = payload.get(NOTE_KEY) if isinstance(payload, dict) else None
    return note if isinstance(note, dict) else None


class GateShaper:
    """Shape the replies of a turn whose tap was answered at accept time: a ticket's turn
    whose entry still waits sends nothing (the number was the answer); any other outcome
    edits the tapped message (the ballot's confirmation, a first-come result, a refusal)."""

    answers_tap = True  # answered in the webhook's response already

    def __init__(self, incoming: Incoming, note: dict[str, Any]) -> None:
        self.incoming = incoming
        self.note = note

    def __call__(self, replies: list[Outbound]) -> list[Outbound | dict[str, Any]]:
        """Return the outbox payloads of the turn's replies."""
        waiting = any(choice.value == REFRESH for reply in replies for choice in reply.choices)
        if self.note.get("kind") == "ticket" and waiting:
            return []
        tapped = self.incoming.tap.message_id if self.incoming.tap is not None else None
        shaped: list[Outbound | dict[str, Any]] = []
        for number, reply in enumerate(merge(replies)):
            editable = number == 0 and tapped is not None and tapped.isdigit()
            editable = editable and not (reply.qr or reply.copy or reply.export)
            editable = editable and reply.expects is not Expect.CONTACT and len(reply.text) <= 4096
            edit = int(tapped) if editable and tapped is not None else None
            shaped.append({**reply.to_payload(), "edit": edit} if edit is not None else reply)
        return shaped


def turn_text(office: Office, entry: QueueEntry) -> str:
    """Tell an admitted applicant their turn and until when it lasts."""
    assert entry.expires_at is not None
    until = local(entry.expires_at, office.timezone)
    return _(
        "Giliran Anda: pilih tanggal dan jam di {office} dalam {minutes} menit (sampai pukul "
        "{time} {zone}). Bila pilihan tanggal belum tampil, ketik /jadwal (atau /ubahjadwal "
        "bila Anda sedang mengubah jadwal)."
    ).format(
        office=office.name,
        minutes=office.admit_minutes,
        time=until.strftime("%H.%M"),
        zone=zone_label(office.timezone),
    )


def passed_text(office: Office) -> str:
    """Tell an applicant their turn ran out and how to queue again."""
    return _(
        "Waktu giliran Anda di {office} sudah habis, jadi giliran berpindah ke antrean "
        "berikutnya. Bila masih ingin memesan, ketik /jadwal: Anda mendapat nomor antrean baru "
        "di urutan paling belakang."
    ).format(office=office.name)


def admit_and_tell(
    session: Session,
    office: Office,
    release_at: datetime,
    now: datetime,
    skip: tuple[str, str] | None = None,
) -> None:
    """Run the office's admissions and tell whoever was admitted or passed over (except the
    chat `skip`, which reads it in its own reply)."""
    changes = admit_due(session, office, release_at, now, applying=skip)
    ADMISSION_RATE.labels(office.code).set(office.admit_per_minute / 60)
    for entries, admitted in ((changes.admitted, True), (changes.expired, False)):
        for entry in entries:
            if (entry.channel, entry.account_ref) == skip:
                continue
            with use_locale(chat_locale(session, entry.channel, entry.account_ref)):
                text = turn_text(office, entry) if admitted else passed_text(office)
                # One tap from the notice shows the dates (the date question asked again).
                go_on = (Choice(REFRESH, _("Pilih tanggal sekarang")),) if admitted else ()
            extra = {TURN_ENTRY: entry.id, "turn_minutes": office.admit_minutes} if admitted else {}
            _notify(session, entry, Outbound(text, go_on), now, extra)


def admit_everywhere(session: Session, now: datetime) -> int:
    """Run every waiting-room office's admissions (a worker round); return the offices seen."""
    offices = waiting_room_offices(session)
    for office in offices:
        release_at = current_release(session, office.id, now)
        if release_at is not None:
            admit_and_tell(session, office, release_at, now)
    return len(offices)


# ---- one applicant's place -----------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """An applicant's entry after this turn's admissions; `rejoined` after a passed turn;
    `minutes` the estimated wait (see `estimate_minutes`)."""

    entry: QueueEntry
    ahead: int
    rejoined: bool
    minutes: int = 1

    @property
    def admitted(self) -> bool:
        """Tell whether the applicant may choose a seat now."""
        return self.entry.status == QueueStatus.ADMITTED


def estimate_minutes(
    session: Session, office: Office, entry: QueueEntry, ahead: int, now: datetime
) -> int:
    """Estimate the wait of a waiting entry with `ahead` people still waiting before it.

    The office's rate is a floor, not the pace: a turn that passes unused gives its grant
    back, so the queue moves faster when many turns go unused. The pace is the turns given
    so far in this release per minute since it (each minute started counts, as grants do),
    never below the office's rate; the people still waiting ahead, plus this one, at that
    pace.
    """
    started = max(0.0, (now - aware(entry.release_at)).total_seconds())
    minutes_so_far = int(started // 60) + 1
    given = admissions_so_far(session, entry.office_id, entry.release_at)
    pace = max(float(office.admit_per_minute), given / minutes_so_far, 1e-9)
    return max(1, math.ceil((ahead + 1) / pace))


def take_place(ctx: Context, office: Office, application: Application) -> Place | None:
    """Give the applicant their number in the office's current release (the same one on every
    tap), run admissions, and say where they stand; None when the office has no queue."""
    if not gated(office):
        return None
    release_at = current_release(ctx.session, office.id, ctx.now)
    if release_at is None:
        return None
    me = (ctx.channel, ctx.user_ref)
    admit_and_tell(ctx.session, office, release_at, ctx.now, skip=me)
    prior = latest_entry(ctx.session, office.id, release_at, application.nik)
    rejoined = prior is not None and prior.status == QueueStatus.EXPIRED
    entry = join_queue(ctx.session, office, application, release_at, ctx.now)
    if entry.status == QueueStatus.WAITING:
        admit_and_tell(ctx.session, office, release_at, ctx.now, skip=me)
    ahead = waiting_ahead(ctx.session, entry) if entry.status == QueueStatus.WAITING else 0
    minutes = estimate_minutes(ctx.session, office, entry, ahead, ctx.now)
    return Place(entry, ahead, rejoined, minutes)


def place_text(office: Office, place: Place) -> str:
    """Describe a waiting applicant's number, the people ahead and the estimated wait."""
    minutes = place.minutes
    lines = []
    if place.rejoined:
        lines.append(
            _("Giliran Anda sebelumnya sudah habis; Anda mendapat nomor baru di belakang.")
        )
    lines.append(
        _("Nomor antrean Anda {number}; di depan Anda {ahead} orang; perkiraan {minutes} menit.")
        .format(number=format_count(place.entry.number), ahead=format_count(place.ahead),
                minutes=minutes)
    )  # fmt: skip
    lines.append(
        _(
            "{office} membagikan kuota lewat antrean, sesuai urutan datang. Kami akan mengabari "
            "Anda saat giliran tiba; lalu Anda punya {window} menit untuk memilih tanggal dan "
            "jam. Mengetuk berkali-kali tidak mengubah nomor Anda."
        ).format(office=office.name, window=office.admit_minutes)
    )
    return "\n".join(lines)


def queue_status(ctx: Context) -> Transition | None:
    """Answer /antrean: every waiting or admitted number of this chat account."""
    if ctx.answers.get("office") and ctx.answers.get("application"):
        return None  # choosing a date: the question asked again shows the place
    entries = account_entries(ctx.session, ctx.channel, ctx.user_ref)
    lines: list[str] = []
    for entry in entries:
        office = ctx.session.get(Office, entry.office_id)
        assert office is not None
        admit_and_tell(ctx.session, office, entry.release_at, ctx.now, skip=(ctx.channel,
                       ctx.user_ref))  # fmt: skip
        ctx.session.refresh(entry)
        if entry.status == QueueStatus.ADMITTED:
            lines.append(turn_text(office, entry))
        elif entry.status == QueueStatus.WAITING:
            ahead = waiting_ahead(ctx.session, entry)
            minutes = estimate_minutes(ctx.session, office, entry, ahead, ctx.now)
            lines.append(place_text(office, Place(entry, ahead, False, minutes)))
        elif entry.status == QueueStatus.EXPIRED:
            lines.append(passed_text(office))
    if not lines:
        lines.append(
            _(
                "Anda tidak sedang dalam antrean. Antrean berlaku di kantor yang membagikan "
                "kuota lewat antrean; pilih jadwal dengan /jadwal."
            )
        )
    ctx.say("\n\n".join(lines))
    return None


# ---- walk-in -------------------------------------------------------------------------------


def walk_in_quota(office: Office, settings: Settings) -> int:
    """Return the walk-ins the office serves a day (its own number, else the setting)."""
    return (
        office.walk_in_quota if office.walk_in_quota is not None else settings.walk_in_daily_quota
    )


def walk_in_text(ctx: Context, office: Office, application: Application) -> str:
    """Tell what to bring, the hours and the day's walk-in quota instead of offering seats."""
    today = local(ctx.now, office.timezone).date()
    given = ctx.session.execute(
        select(func.count()).where(WalkIn.office_id == office.id, WalkIn.day == today)
    ).scalar_one()
    quota = walk_in_quota(office, ctx.settings)
    documents = [
        document_label(requirement, application.answers)
        for requirement in required_documents(application.answers)
    ]
    return "\n".join(
        [
            _(
                "{office} sedang melayani tanpa jadwal (walk-in), jadi untuk sementara kursi "
                "tidak dipesan lewat chat. Jadwal yang sudah dipesan tetap berlaku."
            ).format(office=office.name),
            "",
            _("Datang langsung pada jam layanan: {hours}").format(hours=office.hours),
            _("Alamat: {address}").format(address=office.address),
            _(
                "Kuota walk-in hari ini: {quota} orang (tersisa {left}), dilayani sesuai urutan "
                "kedatangan."
            ).format(quota=quota, left=max(0, quota - given)),
            _("Bawa dokumen asli: {documents}").format(documents=", ".join(documents)),
        ]
    )
