"""The office console (`/office`): one office's seats, simpatik sessions, check-in, statuses and
walk-in queue. Office admins see and change only their own office; superadmins pick one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.ballot import window_text
from bot.consoles import current_staff, current_staff_id, form_id, loket, staff_required
from bot.consoles.labels import category_label, status_label
from bot.consoles.notify import day_closed, status_changed
from bot.flows.subscription import announcement_payload
from bot.i18n import _, format_date
from bot.timezones import format_window, local
from bot.uploads import missing_labels
from bot.waiting_room import walk_in_quota
from storage.applications import normalize_booking_code
from storage.ballot import aware, current_ballot, new_ballot
from storage.models import (
    OFFICE_MOVES,
    Announcement,
    Office,
    ReleaseMode,
    SlotTemplate,
    StaffRole,
    WalkInCategory,
)
from storage.office import (
    CheckInRefusal,
    SessionRefusal,
    add_walk_in,
    call_next_walk_in,
    check_in,
    close_day,
    create_simpatik,
    day_bookings,
    move_status,
    office_application,
    seat_chart,
    set_template_capacity,
    templates_of,
    walk_ins,
)
from storage.staff import audit
from storage.subscriptions import announce, announcement_progress, count_subscribers

blueprint = Blueprint("office", __name__, url_prefix="/office")
ADMINS = (StaffRole.OFFICE_ADMIN,)
CHART_DAYS = 14
ANNOUNCEMENT_MIN, ANNOUNCEMENT_MAX = 10, 800


def check_in_refusal(reason: str, code: str) -> str:
    """Say why a check-in was refused."""
    texts = {
        "unknown": _("Kode booking {code} tidak ditemukan. Periksa lagi kodenya."),
        "already": _("Kode booking {code} sudah tercatat hadir."),
        "not_paid": _("Kode booking {code} belum dibayar."),
        "inactive": _("Kode booking {code} sudah tidak berlaku (dibatalkan atau kedaluwarsa)."),
        "other_day": _("Kode booking {code} bukan untuk hari ini."),
    }
    return texts[reason].format(code=code)


def session_refusal(reason: str) -> str:
    """Say why a simpatik session was refused."""
    return {
        "weekday": _("Paspor simpatik hanya pada hari Sabtu atau Minggu."),
        "past": _("Tanggal sesi harus setelah hari ini."),
        "hours": _("Jam selesai harus setelah jam mulai."),
        "quota": _("Kuota harus antara 1 dan 500."),
        "exists": _("Sesi pada tanggal dan jam mulai itu sudah ada."),
    }[reason]


def my_office(db: Session) -> Office:
    """The office this request acts on: the admin's own; a superadmin's choice (?office=)."""
    staff = current_staff()
    assert staff is not None
    if staff.role == StaffRole.OFFICE_ADMIN:
        office = db.get(Office, staff.office_id)
    else:
        code = request.values.get("office") or ""
        office = db.execute(select(Office).where(Office.code == code)).scalar_one_or_none()
        if office is None:
            office = db.execute(select(Office).order_by(Office.id).limit(1)).scalar_one_or_none()
    if office is None:
        abort(404)
    return office


@contextmanager
def office_work() -> Iterator[tuple[Session, Office, datetime, date]]:
    """One unit of work on the office this request acts on: (session, office, now, its date)."""
    service = loket()
    with service.sessions() as db, db.begin():
        office = my_office(db)
        now = service.now(db)
        yield db, office, now, local(now, office.timezone).date()


def _back(day: str | None = None) -> ResponseReturnValue:
    """Back to the dashboard (for a superadmin, of the office they were looking at)."""
    staff = current_staff()
    office = None
    if staff is not None and staff.role == StaffRole.SUPERADMIN:
        office = request.values.get("office")
    return redirect(url_for("office.dashboard", day=day, office=office))


def _day(text: str | None, default: date) -> date:
    try:
        return date.fromisoformat(text) if text else default
    except ValueError:
        return default


@blueprint.get("")
@staff_required(*ADMINS)
def dashboard() -> ResponseReturnValue:
    """Today at a glance: seats, bookings, check-in, walk-ins."""
    with office_work() as (db, office, now, today):
        day = _day(request.args.get("day"), today)
        chart = seat_chart(db, office.id, today, CHART_DAYS)
        bookings = day_bookings(db, office.id, day)
        missing: dict[int, list[str]] = {}
        for booking in bookings:
            _ = (booking.application.full_name, booking.slot.kind)  # load before detaching
            missing[booking.id] = missing_labels(booking.application)
        queue = walk_ins(db, office.id, today)
        followers = count_subscribers(db, office.id)
        latest = db.execute(
            select(Announcement.id).where(Announcement.office_id == office.id)
            .order_by(Announcement.id.desc()).limit(1)
        ).scalar_one_or_none()  # fmt: skip
        progress = None if latest is None else announcement_progress(db, latest, now)
        offices = list(db.execute(select(Office).order_by(Office.name)).scalars())
        db.expunge_all()
    days: dict[date, list[object]] = {}
    for window in chart:
        days.setdefault(window.slot.day, []).append(window)
    return render_template(
        "office_dashboard.html",
        office=office,
        followers=followers,
        progress=progress,
        today=today,
        day=day,
        days=days,
        bookings=bookings,
        missing=missing,
        queue=queue,
        offices=offices,
        moves=OFFICE_MOVES,
        status_label=status_label,
        category_label=category_label,
        categories=list(WalkInCategory),
        format_window=format_window,
        now=now,
    )


@blueprint.post("/checkin")
@staff_required(*ADMINS)
def checkin() -> ResponseReturnValue:
    """Check an applicant in by booking code (typed, or read from their QR by a scanner)."""
    typed = request.form.get("code", "")
    # Shown back as read (BK-XXXX-XXXX), or as typed when it is no booking code at all.
    code = normalize_booking_code(typed) or " ".join(typed.split())[:40]
    if not code:
        flash(_("Masukkan kode booking atau pindai QR."), "error")
        return _back()
    with office_work() as (db, office, now, today):
        try:
            booking = check_in(db, office.id, typed, today, now)
        except CheckInRefusal as refusal:
            flash(check_in_refusal(str(refusal), code), "error")
            return _back()
        application = booking.application
        reg_number = application.reg_number
        audit(db, current_staff_id(), "office.checkin", booking.code, {}, now, office.id)
        status_changed(db, application, office.name, now)
    # The flash travels in the (signed, not encrypted) cookie: no name in it.
    flash(_("{code} ({number}) tercatat hadir.").format(code=code, number=reg_number), "success")
    return _back()


@blueprint.get("/application/<reg_number>")
@staff_required(*ADMINS)
def application(reg_number: str) -> ResponseReturnValue:
    """One applicant's whole data, NIK included, for verifying the berkas at the counter
    against the e-KTP; every opening is recorded in the audit log (lists show NIKs masked)."""
    with office_work() as (db, office, now, _today):
        found = office_application(db, office.id, reg_number)
        if found is None:
            abort(404)  # another office's application: not even its existence is shown
        documents = list(found.documents)
        audit(db, current_staff_id(), "office.view", reg_number, {}, now, office.id)
        db.expunge_all()
    return render_template(
        "office_application.html",
        application=found,
        documents=documents,
        office=office,
        status_label=status_label,
    )


@blueprint.post("/application/<reg_number>/status")
@staff_required(*ADMINS)
def move(reg_number: str) -> ResponseReturnValue:
    """Move an application to its next status; the applicant is told on their channel."""
    to = request.form.get("to", "")
    with office_work() as (db, office, now, _today):
        application = office_application(db, office.id, reg_number)
        if application is None:
            abort(404)  # another office's application: not even its existence is shown
        if not move_status(db, application, to):
            flash(
                _("Status itu bukan langkah berikutnya untuk {number}.").format(number=reg_number),
                "error",
            )
            return _back(day=request.form.get("day"))
        audit(db, current_staff_id(), "office.status", reg_number, {"to": to}, now, office.id)
        status_changed(db, application, office.name, now)
    flash(
        _("{number}: {status}. Pemohon sudah diberi tahu.").format(
            number=reg_number, status=status_label(to)
        ),
        "success",
    )
    return _back(day=request.form.get("day"))


def _time(text: str | None) -> time | None:
    """A wall-clock time as typed (office time); None for anything else, zones included."""
    try:
        parsed = time.fromisoformat(text or "")
    except ValueError:
        return None
    return parsed if parsed.tzinfo is None else None


@blueprint.route("/simpatik", methods=["GET", "POST"])
@staff_required(*ADMINS)
def simpatik() -> ResponseReturnValue:
    """Create a weekend paspor simpatik session and, if asked, announce it to subscribers."""
    with office_work() as (db, office, now, today):
        saturday = today + timedelta(days=(5 - today.weekday()) % 7 or 7)
        form = {
            "day": saturday.isoformat(),
            "start": "08:00",
            "end": "12:00",
            "quota": "30",
            "note": "",
            "announce": "1",
        }
        error = None
        if request.method == "POST":
            form = {key: request.form.get(key, "").strip() for key in form}
            start, end = _time(form["start"]), _time(form["end"])
            try:
                day = date.fromisoformat(form["day"])
                quota = int(form["quota"])
            except ValueError:
                error = _("Isi tanggal (HH-BB-TTTT) dan kuota (angka) dengan benar.")
            else:
                if start is None or end is None:
                    error = _("Isi jam mulai dan jam selesai, misalnya 08:00 dan 12:00.")
                else:
                    try:
                        slot = create_simpatik(
                            db, office, day, start, end, quota, form["note"], today, now
                        )
                    except SessionRefusal as refusal:
                        error = session_refusal(str(refusal))
                    else:
                        audit(
                            db,
                            current_staff_id(),
                            "office.simpatik",
                            day.isoformat(),
                            {"quota": quota, "slot": slot.id},
                            now,
                            office.id,
                        )
                        message = _(
                            "Sesi paspor simpatik {date}, {window}, kuota {quota}, "
                            "sudah dibuka dan bisa dipesan lewat chat."
                        ).format(
                            date=format_date(day),
                            window=format_window(start, end, office.timezone),
                            quota=quota,
                        )
                        if form["announce"]:
                            text = _announcement(office, day, start, end, quota, form["note"])
                            sent = announce(
                                db, office.id, current_staff_id(), text, now, announcement_payload
                            )
                            audit(
                                db,
                                current_staff_id(),
                                "office.announce",
                                day.isoformat(),
                                {"recipients": sent.recipients},
                                now,
                                office.id,
                            )
                            message += " " + _("Pengumuman diantrekan untuk {n} pelanggan.").format(
                                n=sent.recipients
                            )
                        flash(message, "success")
                        return _back()
        db.expunge_all()
    return render_template("office_simpatik.html", office=office, form=form, error=error), (
        400 if error else 200
    )


def _announcement(office: Office, day: date, start: time, end: time, quota: int, note: str) -> str:
    """The announcement's text, in Indonesian as the office publishes it."""
    lines = [
        f"Paspor simpatik di {office.name}: {format_date(day)}, "
        f"{format_window(start, end, office.timezone)}, kuota {quota} pemohon.",
        "Untuk permohonan baru dan penggantian paspor habis berlaku. Pesan lewat chat: /jadwal.",
    ]
    if note.strip():
        lines.append(note.strip()[:300])
    return "\n".join(lines)


@blueprint.post("/announce")
@staff_required(*ADMINS)
def announce_text() -> ResponseReturnValue:
    """Send a written announcement (new quota, changed hours) to the office's subscribers."""
    text = request.form.get("text", "").strip()
    if not ANNOUNCEMENT_MIN <= len(text) <= ANNOUNCEMENT_MAX:
        flash(
            _("Tulis pengumuman {low} sampai {high} huruf.").format(
                low=ANNOUNCEMENT_MIN, high=ANNOUNCEMENT_MAX
            ),
            "error",
        )
        return _back()
    with office_work() as (db, office, now, _today):
        sent = announce(db, office.id, current_staff_id(), text, now, announcement_payload)
        audit(db, current_staff_id(), "office.announce", None,
              {"recipients": sent.recipients}, now, office.id)  # fmt: skip
    flash(_("Pengumuman diantrekan untuk {n} pelanggan.").format(n=sent.recipients), "success")
    return _back()


@blueprint.get("/announcements/<int:announcement_id>/progress")
@staff_required(*ADMINS)
def announcement_progress_json(announcement_id: int) -> ResponseReturnValue:
    """How far an announcement's delivery got (counts only), for the dashboard to poll."""
    with office_work() as (db, office, now, _today):
        entry = db.get(Announcement, announcement_id)
        if entry is None or entry.office_id != office.id:
            abort(404)
        progress = announcement_progress(db, announcement_id, now)
    answer = jsonify(progress)
    answer.headers["Cache-Control"] = "no-store"
    return answer


@blueprint.post("/close-day")
@staff_required(*ADMINS)
def close() -> ResponseReturnValue:
    """Close a day (an outage, a holiday): no new bookings; booked applicants are told."""
    reason = " ".join(request.form.get("reason", "").split())[:200]
    with office_work() as (db, office, now, today):
        day = _day(request.form.get("day"), date.min)
        if day < today or len(reason) < 3:
            flash(_("Pilih tanggal mulai hari ini dan tulis alasannya."), "error")
            return _back()
        affected = close_day(db, office.id, day, reason)
        for booking in affected:
            day_closed(db, booking, reason, now)
        audit(
            db,
            current_staff_id(),
            "office.close_day",
            day.isoformat(),
            {"reason": reason, "affected": len(affected)},
            now,
            office.id,
        )
    flash(
        _("{date} ditutup. {n} pemohon yang sudah memesan diberi tahu.").format(
            date=format_date(day), n=len(affected)
        ),
        "success",
    )
    return _back(day=day.isoformat())


@blueprint.route("/templates", methods=["GET", "POST"])
@staff_required(*ADMINS)
def templates() -> ResponseReturnValue:
    """Weekly windows and their capacities."""
    with office_work() as (db, office, now, _today):
        if request.method == "POST":
            template_id = form_id("template")
            template = db.get(SlotTemplate, template_id) if template_id is not None else None
            try:
                capacity = int(request.form.get("capacity", ""))
            except ValueError:
                capacity = -1
            if template is None or template.office_id != office.id:
                abort(404)
            if not 0 <= capacity <= 1000:
                flash(_("Kapasitas harus angka 0 sampai 1000."), "error")
            else:
                days = set_template_capacity(db, template, capacity, now)
                audit(
                    db,
                    current_staff_id(),
                    "office.template",
                    str(template.id),
                    {"capacity": capacity, "days": days},
                    now,
                    office.id,
                )
                flash(
                    _("Kapasitas disimpan; {n} hari yang belum dibuka ikut berubah.").format(
                        n=days
                    ),
                    "success",
                )
            return redirect(url_for("office.templates", office=request.values.get("office")))
        rows = templates_of(db, office.id)
        db.expunge_all()
    return render_template("office_templates.html", office=office, rows=rows)


@blueprint.post("/walk-in")
@staff_required(*ADMINS)
def walk_in() -> ResponseReturnValue:
    """Give a priority walk-in a number."""
    category = request.form.get("category", "")
    if category not in set(WalkInCategory):
        flash(_("Pilih kategori prioritas."), "error")
        return _back()
    with office_work() as (db, office, now, today):
        quota = walk_in_quota(office, loket().settings)
        entry = add_walk_in(db, office.id, today, category, now, quota)
        if entry is None:
            flash(
                _("Kuota walk-in prioritas hari ini ({quota}) sudah habis.").format(quota=quota),
                "error",
            )
            return _back()
        number = entry.number
        audit(
            db,
            current_staff_id(),
            "office.walk_in",
            str(number),
            {"category": category},
            now,
            office.id,
        )
    flash(
        _("Nomor antrean prioritas: P-{number:03d} ({category}).").format(
            number=number, category=category_label(category)
        ),
        "success",
    )
    return _back()


@blueprint.post("/walk-in/next")
@staff_required(*ADMINS)
def walk_in_next() -> ResponseReturnValue:
    """Call the next priority number."""
    with office_work() as (db, office, now, _today):
        called = call_next_walk_in(db, office.id, local(now, office.timezone).date(), now)
        number = called.number if called is not None else None
    if number is None:
        flash(_("Tidak ada antrean prioritas yang menunggu."), "error")
    else:
        flash(_("Dipanggil: P-{number:03d}.").format(number=number), "success")
    return _back()


RATE_MAX, TURN_MINUTES_MAX, WALK_IN_MAX = 10_000, 60, 5_000


def release_mode_label(mode: str) -> str:
    """Name a release mode for staff."""
    labels: dict[str, str] = {
        ReleaseMode.FIRST_COME: _("Siapa cepat dia dapat"),
        ReleaseMode.WAITING_ROOM: _("Antrean (ruang tunggu)"),
        ReleaseMode.BALLOT: _("Undian"),
    }
    return labels.get(mode, mode)


def _whole(text: str, low: int, high: int) -> int | None:
    """A whole number typed in a form, within bounds; None for anything else."""
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if low <= value <= high else None


def _local_moment(text: str, timezone: str) -> datetime | None:
    """A moment typed in a datetime-local field, read in office time; None when malformed."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return None
    return moment.replace(tzinfo=ZoneInfo(timezone))


def _typed_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def ballot_from_form(db: Session, office: Office, now: datetime, form: Any) -> str | None:
    """Set a new ballot from the form (a fresh secret seed, its commitment published at once)
    unless the same window is already set and not drawn; return an error to show, if any."""
    opens = _local_moment(form.get("ballot_opens", ""), office.timezone)
    closes = _local_moment(form.get("ballot_closes", ""), office.timezone)
    first = _typed_day(form.get("ballot_first_day", ""))
    last = _typed_day(form.get("ballot_last_day", ""))
    if opens is None or closes is None:
        return _("Isi waktu pendaftaran undian dibuka dan ditutup (tanggal dan jam).")
    if closes <= opens or closes <= now:
        return _("Waktu ditutup harus sesudah waktu dibuka dan belum lewat.")
    if first is None or last is None or last < first:
        return _("Isi tanggal jadwal undian: dari dan sampai (sampai tidak sebelum dari).")
    same = current_ballot(db, office.id)
    if (
        same is not None
        and same.drawn_at is None
        and (aware(same.opens_at), aware(same.closes_at), same.first_day, same.last_day)
        == (opens, closes, first, last)
    ):
        return None
    ballot = new_ballot(db, office, opens, closes, first, last, now)
    audit(db, current_staff_id(), "office.ballot", str(ballot.id),
          {"commitment": ballot.commitment, "first_day": first.isoformat(),
           "last_day": last.isoformat()}, now, office.id)  # fmt: skip
    return None


@blueprint.route("/release", methods=["GET", "POST"])
@staff_required(*ADMINS)
def release() -> ResponseReturnValue:
    """Choose how released seats are handed out (first come or the waiting room, its rate and
    turn length) and switch walk-in only on or off; every change is audited."""
    with office_work() as (db, office, now, _today):
        error = None
        if request.method == "POST":
            mode = request.form.get("release_mode", "")
            rate = _whole(request.form.get("admit_per_minute", ""), 1, RATE_MAX)
            minutes = _whole(request.form.get("admit_minutes", ""), 1, TURN_MINUTES_MAX)
            typed_quota = request.form.get("walk_in_quota", "").strip()
            quota = _whole(typed_quota, 0, WALK_IN_MAX) if typed_quota else None
            if mode not in set(ReleaseMode):
                error = _("Pilih cara pembagian kuota.")
            elif rate is None:
                error = _("Isi jumlah orang per menit dengan angka 1 sampai {high}.").format(
                    high=RATE_MAX
                )
            elif minutes is None:
                error = _("Isi waktu memilih dengan angka 1 sampai {high} menit.").format(
                    high=TURN_MINUTES_MAX
                )
            elif typed_quota and quota is None:
                error = _("Isi kuota walk-in dengan angka 0 sampai {high}, atau kosongkan.").format(
                    high=WALK_IN_MAX
                )
            elif mode == ReleaseMode.BALLOT and (
                error := ballot_from_form(db, office, now, request.form)
            ):
                pass
            else:
                walk_in_only = request.form.get("walk_in_only") == "1"
                office.release_mode = mode
                office.admit_per_minute = rate
                office.admit_minutes = minutes
                office.walk_in_only = walk_in_only
                office.walk_in_quota = quota
                audit(
                    db,
                    current_staff_id(),
                    "office.release_mode",
                    mode,
                    {
                        "admit_per_minute": rate,
                        "admit_minutes": minutes,
                        "walk_in_only": walk_in_only,
                        "walk_in_quota": quota,
                    },
                    now,
                    office.id,
                )
                if walk_in_only:
                    flash(
                        _(
                            "Kantor melayani walk-in saja: pemohon diberi tahu jam layanan, "
                            "dokumen yang dibawa dan kuota walk-in. Jadwal yang sudah dipesan "
                            "tetap berlaku."
                        ),
                        "success",
                    )
                else:
                    flash(
                        _("Kuota dibagikan dengan cara: {mode}.").format(
                            mode=release_mode_label(mode)
                        ),
                        "success",
                    )
                return redirect(url_for("office.release", office=request.values.get("office")))
        default_quota = loket().settings.walk_in_daily_quota
        ballot = current_ballot(db, office.id)
        ballot_lines = window_text(office, ballot).split("\n") if ballot is not None else []
        ballot_fields = {"opens": "", "closes": "", "first": "", "last": ""}
        if ballot is not None:
            typed = "%Y-%m-%dT%H:%M"
            ballot_fields = {
                "opens": local(aware(ballot.opens_at), office.timezone).strftime(typed),
                "closes": local(aware(ballot.closes_at), office.timezone).strftime(typed),
                "first": ballot.first_day.isoformat(),
                "last": ballot.last_day.isoformat(),
            }
        db.expunge_all()
    return render_template(
        "office_release.html",
        office=office,
        ballot_lines=ballot_lines,
        ballot_fields=ballot_fields,
        modes=list(ReleaseMode),
        mode_label=release_mode_label,
        default_quota=default_quota,
        error=error,
    ), (400 if error else 200)
