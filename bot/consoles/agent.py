"""The customer-care console (`/agent`): register callers through the same chat, find and change
their applications. Every action is in the audit log; every record the agent makes names them."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.caller_form import (
    FIELDS,
    Found,
    booking_context,
    check_form,
    consent_script,
    days_for,
    describe,
    hold_for_caller,
    submit_form,
    windows_for,
)
from bot.consoles import current_staff_id, form_id, loket, session_secret, staff_required
from bot.consoles.labels import channel_label
from bot.consoles.notify import changed_by_staff
from bot.consoles.webchat import chat_turn
from bot.core.flow import Context, Invalid
from bot.core.messages import Outbound
from bot.flows.booking import mask_phone
from bot.flows.registration import FLOW as REGISTRATION
from bot.i18n import N_, _, format_money
from bot.notices import payment_lines
from bot.rules import (
    Audience,
    cancel_application,
    may_move_to,
    move_booking,
    reschedule_ballots,
    reschedule_decision,
    seat_kinds,
)
from bot.timezones import local_date
from bot.uploads import group, missing_labels, send_link, telegram_chat_for
from bot.validators import parse_date, parse_full_name, parse_nik, parse_phone
from storage.applications import applications_for_account, find_callers
from storage.booking import (
    active_booking,
    billing_for,
    bookings_for_application,
    queue_message,
)
from storage.calendars import office_today
from storage.models import (
    CLOSED_STATUSES,
    Application,
    AuditEntry,
    Booking,
    Office,
    Slot,
    Staff,
    StaffRole,
)
from storage.office import find_applications
from storage.outbox import SMS_CHANNEL
from storage.staff import audit

CHANNEL = "agent"  # callers registered by an agent; their phone number is their identity
blueprint = Blueprint("agent", __name__, url_prefix="/agent")
AGENTS = (StaffRole.AGENT,)
AUDIT_PAGE = 200
RESCHEDULE_CHOICES = 60
CALL_SECONDS = 12 * 3600  # a call id works for a working day


@blueprint.route("", methods=["GET", "POST"])
@staff_required(*AGENTS)
def dashboard() -> ResponseReturnValue:
    """The caller form (the default), the chat panel's door, and the search (posted, so a NIK
    never sits in a URL)."""
    query = request.form.get("q", "").strip() if request.method == "POST" else ""
    results: list[Application] = []
    service = loket()
    with service.sessions() as db:
        offices = list(db.execute(select(Office).order_by(Office.city, Office.name)).scalars())
        db.expunge_all()
    if query:
        service = loket()
        with service.sessions() as db, db.begin():
            results = find_applications(db, query)
            audit(
                db,
                current_staff_id(),
                "agent.search",
                None,
                {"kind": _query_kind(query), "found": len(results)},
                service.now(db),
            )
            db.flush()  # write the audit row before expunging (an expunged one is lost)
            db.expunge_all()
    callers, looked = find_caller() if request.form.get("find") else ([], False)
    return render_template(
        "agent_dashboard.html",
        query=query,
        results=results,
        callers=callers,
        looked=looked,
        fields=form_fields(),
        consent=consent_script(),
        offices=offices,
    )


def find_caller() -> tuple[list[Found], bool]:
    """Find the caller by phone (every channel), NIK, or name and birth date (posted, audited
    by the kinds of keys only); a key typed wrongly is refused with the chat's words."""
    form = request.form
    service = loket()
    with service.sessions() as db, db.begin():
        now = service.now(db)
        keys: dict[str, Any] = {}
        try:
            if form.get("caller_phone", "").strip():
                keys["phone"] = parse_phone(form["caller_phone"])
            if form.get("caller_nik", "").strip():
                keys["nik"] = parse_nik(form["caller_nik"])
            if form.get("caller_name", "").strip() or form.get("caller_birth", "").strip():
                keys["name"] = parse_full_name(form.get("caller_name", ""))
                keys["birth_date"] = parse_date(form.get("caller_birth", ""), local_date(now))
        except Invalid as error:
            flash(str(error), "error")
            return [], False
        if not keys:
            flash(_("Isi nomor HP, NIK, atau nama dan tanggal lahir penelepon."), "error")
            return [], False
        found = describe(db, find_callers(db, **keys))
        audit(db, current_staff_id(), "agent.find", None,
              {"by": sorted(keys), "found": len(found)}, now)  # fmt: skip
        db.flush()  # write the audit row before expunging (an expunged one is lost)
        db.expunge_all()
    return found, True


def _query_kind(query: str) -> str:
    """Say what was searched for without keeping the query (it may be a NIK)."""
    typed = "".join(query.split())
    if typed.isdigit():
        return {16: "nik", 15: "billing_code"}.get(len(typed), "digits")
    return "reg_or_booking"


@blueprint.post("/call")
@staff_required(*AGENTS)
def start_call() -> ResponseReturnValue:
    """Open the chat panel for a caller, identified by their phone number.

    The number stays out of URLs (and so out of access logs) and out of cookies: the panel's
    address carries a random call id, mapped to the number in shared state for a working day.
    """
    try:
        phone = parse_phone(request.form.get("phone", ""))
    except Invalid as error:
        flash(str(error), "error")
        return redirect(url_for("agent.dashboard"))
    call_id = secrets.token_urlsafe(9)
    loket().shared.set(_call_key(call_id), phone, CALL_SECONDS)
    return redirect(url_for("agent.call", call_id=call_id))


def _call_key(call_id: str) -> str:
    """Where one agent's call id is kept (server side: the number never leaves the server)."""
    return f"agent-call:{current_staff_id()}:{call_id}"


def _caller(call_id: str) -> str:
    """The phone number behind one of this agent's call ids."""
    phone = loket().shared.get(_call_key(call_id))
    if phone is None:
        abort(404)
    return phone


@blueprint.get("/call/<call_id>")
@staff_required(*AGENTS)
def call(call_id: str) -> ResponseReturnValue:
    """The chat panel for one caller, with the caller's applications beside it."""
    caller = _caller(call_id)
    service = loket()
    with service.sessions() as db:
        applications = list(applications_for_account(db, CHANNEL, caller, newest_first=True))
        db.expunge_all()
    return render_template(
        "agent_call.html", phone=caller, call_id=call_id, applications=applications
    )


@blueprint.post("/call/<call_id>/send")
@staff_required(*AGENTS)
def call_send(call_id: str) -> ResponseReturnValue:
    """One turn of the caller's conversation, typed by the agent (attributed and audited)."""
    return chat_turn(CHANNEL, _caller(call_id), actor=current_staff_id())


@blueprint.get("/application/<reg_number>")
@staff_required(*AGENTS)
def application(reg_number: str) -> ResponseReturnValue:
    """Everything an agent reads to a caller: status, payment, billing code and deadline."""
    service = loket()
    with service.sessions() as db, db.begin():
        found = db.execute(
            select(Application).where(Application.reg_number == reg_number)
        ).scalar_one_or_none()
        if found is None:
            abort(404)
        bookings = list(bookings_for_application(db, found.id))
        billing = billing_for(db, bookings[0].id) if bookings else None
        documents = list(found.documents)
        missing = missing_labels(found)
        now = service.now(db)
        for booking in bookings:
            _ = booking.slot.office.name
        current = bookings[0] if bookings else None
        alternatives: list[Slot] = []
        move_refusal = None  # why this booking cannot be moved at all (the chat's rule)
        if current is not None and current.status == "confirmed":
            decision = reschedule_decision(current, now)
            if decision.allowed:
                alternatives = reschedule_options(db, found, current, now)
            else:
                move_refusal = decision.reason(Audience.STAFF)
        timezone = current.slot.office.timezone if current is not None else "Asia/Jakarta"
        audit(db, current_staff_id(), "agent.view", found.reg_number, {}, now)
        db.flush()  # write the audit row before expunging (an expunged one is lost)
        db.expunge_all()
    return render_template(
        "agent_application.html",
        application=found,
        bookings=bookings,
        billing=billing,
        documents=documents,
        missing=missing,
        alternatives=alternatives,
        move_refusal=move_refusal,
        timezone=timezone,
        now=now,
        closed=found.status in CLOSED_STATUSES,
    )


def reschedule_options(
    db: Session, application: Application, booking: Booking, now: datetime
) -> list[Slot]:
    """Windows a paid booking may move to: same office, a date the rules allow (later, not a
    ballot's), released, open, with a free seat, of a kind this application may book (no
    express seat for a reguler fee)."""
    office = booking.slot.office
    today = office_today(office, now)
    ballots = reschedule_ballots(db, office, today)
    query = select(Slot).where(
        Slot.office_id == office.id,
        Slot.day > today,
        Slot.closed.is_(False),
        Slot.release_at <= now,
        Slot.taken < Slot.capacity,
        Slot.id != booking.slot_id,
        Slot.kind.in_(seat_kinds(application, today)),
    )
    slots = db.execute(query.order_by(Slot.day, Slot.start_time)).scalars()
    return [slot for slot in slots if may_move_to(slot.day, today, ballots)][:RESCHEDULE_CHOICES]


def _reason() -> str | None:
    reason = " ".join(request.form.get("reason", "").split())
    return reason[:200] if len(reason) >= 5 else None


@blueprint.post("/application/<reg_number>/cancel")
@staff_required(*AGENTS)
def cancel(reg_number: str) -> ResponseReturnValue:
    """Cancel an application (and free its seat) with a mandatory reason."""
    reason = _reason()
    if reason is None:
        flash(_("Tulis alasan pembatalan (minimal 5 huruf)."), "error")
        return redirect(url_for("agent.application", reg_number=reg_number))
    service = loket()
    with service.sessions() as db, db.begin():
        found = db.execute(
            select(Application).where(Application.reg_number == reg_number).with_for_update()
        ).scalar_one_or_none()
        if found is None:
            abort(404)
        now = service.now(db)
        decision, _freed = cancel_application(db, service.shared, found, f"agent: {reason}", now)
        if not decision.allowed:
            flash(decision.reason(Audience.STAFF), "error")
            return redirect(url_for("agent.application", reg_number=reg_number))
        audit(db, current_staff_id(), "agent.cancel", found.reg_number, {"reason": reason}, now)
        changed_by_staff(db, found, "cancelled", reason, now)
    flash(_("Permohonan {number} dibatalkan.").format(number=reg_number), "success")
    return redirect(url_for("agent.application", reg_number=reg_number))


@blueprint.post("/application/<reg_number>/reschedule")
@staff_required(*AGENTS)
def move(reg_number: str) -> ResponseReturnValue:
    """Move a paid booking to another window of the same office, with a mandatory reason."""
    reason = _reason()
    if reason is None:
        flash(_("Tulis alasan perubahan jadwal (minimal 5 huruf)."), "error")
        return redirect(url_for("agent.application", reg_number=reg_number))
    slot_id = form_id("slot")
    if slot_id is None:
        flash(_("Pilih jadwal baru."), "error")
        return redirect(url_for("agent.application", reg_number=reg_number))
    service = loket()
    with service.sessions() as db, db.begin():
        found = db.execute(
            select(Application).where(Application.reg_number == reg_number)
        ).scalar_one_or_none()
        booking = active_booking(db, found.nik) if found is not None else None
        if found is None or booking is None or booking.application_id != found.id:
            flash(_("Tidak ada jadwal aktif untuk diubah."), "error")
            return redirect(url_for("agent.application", reg_number=reg_number))
        now = service.now(db)
        if slot_id not in {slot.id for slot in reschedule_options(db, found, booking, now)}:
            flash(
                _("Jadwal itu tidak bisa dipilih: pilih dari daftar (kantor yang sama, hari "
                  "berikutnya, jenis kursi yang sesuai, masih ada kursi)."),
                "error",
            )  # fmt: skip
            return redirect(url_for("agent.application", reg_number=reg_number))
        decision = move_booking(db, booking, slot_id, now)
        if not decision.allowed:
            flash(decision.reason(Audience.STAFF), "error")
            return redirect(url_for("agent.application", reg_number=reg_number))
        audit(
            db,
            current_staff_id(),
            "agent.reschedule",
            found.reg_number,
            {"reason": reason, "slot": slot_id},
            now,
        )
        changed_by_staff(db, found, "rescheduled", reason, now)
    flash(_("Jadwal {number} sudah diubah.").format(number=reg_number), "success")
    return redirect(url_for("agent.application", reg_number=reg_number))


@blueprint.get("/audit")
@staff_required()  # superadmins only
def audit_log() -> ResponseReturnValue:
    """The latest staff actions, newest first (who, what, on which record, why)."""
    service = loket()
    with service.sessions() as db:
        rows = db.execute(
            select(AuditEntry, Staff.username)
            .outerjoin(Staff, Staff.id == AuditEntry.staff_id)
            .order_by(AuditEntry.id.desc())
            .limit(AUDIT_PAGE)
        ).all()
        db.expunge_all()
    return render_template("audit.html", rows=rows)


# ---- the caller form ------------------------------------------------------------------------

# What the agent is asked, about the caller (the chat's questions speak to the applicant).
FIELD_LABELS = {
    "phone": N_("Nomor HP penelepon"),
    "full_name": N_("Nama lengkap pemohon (seperti di KTP; anak: seperti di akta kelahiran)"),
    "nik": N_("NIK pemohon (16 digit)"),
    "birth_date": N_("Tanggal lahir pemohon"),
    "sex": N_("Jenis kelamin pemohon"),
    "birth_place": N_("Tempat lahir pemohon"),
    "had_passport": N_("Pemohon pernah punya paspor RI?"),
    "replace_reason": N_("Alasan penggantian"),
    "old_passport_number": N_("Nomor paspor lama"),
    "name_same": N_("Nama di paspor lama sama dengan di KTP?"),
    "service": N_("Layanan"),
    "passport_kind": N_("Jenis paspor"),
    "validity": N_("Masa berlaku"),
    "supporting_kind": N_("Dokumen pendukung (paspor pertama)"),
    "travel_purpose": N_("Tujuan perjalanan"),
    "address": N_("Alamat tempat tinggal pemohon"),
    "email": N_("Email (tidak wajib)"),
}
FIELD_HINTS = {
    "phone": N_("Nomor yang sedang menelepon, atau yang penelepon sebutkan dan Anda pastikan."),
    "birth_date": N_("Contoh: 17-08-1990. Anak atau dewasa dihitung dari tanggal ini."),
    "nik": N_("Dicocokkan dengan tanggal lahir dan jenis kelamin."),
}
DEFAULTS = {"service": "reguler"}


def form_fields() -> list[dict[str, Any]]:
    """The form's fields in the order an agent asks them, with the chat's own options."""
    fields = []
    for key in FIELDS:
        step = REGISTRATION.step(key)
        options = step.options if not callable(step.options) else ()
        fields.append(
            {
                "key": key,
                "label": _(FIELD_LABELS[key]),
                "hint": _(FIELD_HINTS[key]) if key in FIELD_HINTS else "",
                "options": [(option.value, _(option.label)) for option in options],
                "default": DEFAULTS.get(key, ""),
                "optional": key == "email",
            }
        )
    return fields


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400)
    return body


def _fields(body: dict[str, Any]) -> dict[str, str]:
    raw = body.get("fields")
    if not isinstance(raw, dict):
        abort(400)
    return {key: str(value)[:400] for key, value in raw.items() if key in FIELDS}


def _form_context(db: Session, now: datetime) -> Context:
    service = loket()
    return service.context(db, CHANNEL, "", now, current_staff_id())


@blueprint.post("/form/check")
@staff_required(*AGENTS)
def form_check() -> ResponseReturnValue:
    """Check what the agent typed so far with the chat's own steps; nothing is written."""
    raw = _fields(_body())
    service = loket()
    with service.sessions() as db:
        ctx = _form_context(db, service.now(db))
        check = check_form(service.engine, ctx, raw, final=False)
        db.rollback()
    return jsonify(check.to_json())


@blueprint.post("/form/submit")
@staff_required(*AGENTS)
def form_submit() -> ResponseReturnValue:
    """Create the caller's application (consent recorded, number vouched, all audited)."""
    body = _body()
    raw = _fields(body)
    service = loket()
    with service.sessions() as db, db.begin():
        ctx = _form_context(db, service.now(db))
        done = submit_form(service.engine, ctx, raw, consent=body.get("consent") is True)
        if done.application is None:
            db.rollback()
            return jsonify(done.check.to_json()), 422
        created = done.application
        answer = {
            **done.check.to_json(),
            "reg_number": created.reg_number,
            "name": created.full_name,
            "total": format_money(created.fee_amount),
        }
    return jsonify(answer)


def _caller_application(db: Session, body: dict[str, Any]) -> Application:
    """The application an agent's request names (any agent may help any caller's)."""
    reg_number = body.get("application")
    if not isinstance(reg_number, str):
        abort(400)
    found = db.execute(
        select(Application).where(Application.reg_number == reg_number)
    ).scalar_one_or_none()
    if found is None:
        abort(404)
    return found


def _bookable(db: Session, body: dict[str, Any]) -> Application:
    """An application registered by phone, whose seat the agent may choose for the caller
    (one made in a chat is booked by its own account, with that account's proved number)."""
    found = _caller_application(db, body)
    if found.channel != CHANNEL:
        refusal = _("Permohonan ini didaftarkan lewat {channel}: jadwalnya dipilih di sana.")
        message = refusal.format(channel=channel_label(found.channel))
        abort(make_response(jsonify(message=message), 409))
    return found


def _posted_int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        return int(value)
    abort(400)


@blueprint.post("/form/days")
@staff_required(*AGENTS)
def form_days() -> ResponseReturnValue:
    """The dates with seats for the caller at an office, or why there are none."""
    body = _body()
    service = loket()
    with service.sessions() as db, db.begin():
        application = _bookable(db, body)
        office_id = _posted_int(body, "office")
        if db.get(Office, office_id) is None:
            abort(404)
        ctx = _form_context(db, service.now(db))
        booking_context(ctx, application, office_id)
        days, message = days_for(ctx)
    return jsonify(days=days, message=message)


@blueprint.post("/form/windows")
@staff_required(*AGENTS)
def form_windows() -> ResponseReturnValue:
    """The windows with free seats on one date."""
    body = _body()
    try:
        day = date.fromisoformat(str(body.get("day")))
    except ValueError:
        abort(400)
    service = loket()
    with service.sessions() as db:
        application = _bookable(db, body)
        office_id = _posted_int(body, "office")
        if db.get(Office, office_id) is None:
            abort(404)
        ctx = _form_context(db, service.now(db))
        booking_context(ctx, application, office_id)
        windows = windows_for(ctx, day)
        db.rollback()
    return jsonify(windows=windows)


@blueprint.post("/form/hold")
@staff_required(*AGENTS)
def form_hold() -> ResponseReturnValue:
    """Hold the chosen window and answer with what to read out, without a reload."""
    body = _body()
    service = loket()
    with service.sessions() as db, db.begin():
        application = _bookable(db, body)
        ctx = _form_context(db, service.now(db))
        outcome = hold_for_caller(ctx, application, _posted_int(body, "slot"))
        if isinstance(outcome, str):
            return jsonify(message=outcome), 409
    return jsonify(outcome.to_json())


@blueprint.post("/form/send")
@staff_required(*AGENTS)
def form_send() -> ResponseReturnValue:
    """Send the billing code through the caller's channel: their Telegram chat when the number
    has one, else SMS/WhatsApp through the phone sender."""
    body = _body()
    service = loket()
    with service.sessions() as db, db.begin():
        application = _caller_application(db, body)
        now = service.now(db)
        booking = active_booking(db, application.nik)
        billing = billing_for(db, booking.id) if booking is not None else None
        if booking is None or billing is None or booking.application_id != application.id:
            return jsonify(message=_("Belum ada kode billing untuk dikirim.")), 409
        office = booking.slot.office
        text = "\n".join(
            [
                _("Nomor pendaftaran: {number}").format(number=application.reg_number),
                *payment_lines(office, booking.slot, billing.code, billing.amount,
                               billing.expires_at),
            ]
        )  # fmt: skip
        chat = telegram_chat_for(db, application.phone)
        if chat is not None:  # the caller uses Loket on Telegram: it goes there, after commit
            payload = Outbound(text, copy=billing.code).to_payload()
            queue_message(db, "telegram", chat, payload, now)
            where = _("Telegram")
        else:  # SMS/WhatsApp through the outbox, sent right after the commit
            queue_message(db, SMS_CHANNEL, application.phone, {"text": text}, now)
            where = _("SMS/WhatsApp")
        audit(db, current_staff_id(), "agent.send_billing", application.reg_number,
              {"to": mask_phone(application.phone), "by": where}, now)  # fmt: skip
    service.phone_delivery.kick()
    return jsonify(
        message=_("Terkirim lewat {channel} ke {phone}.").format(
            channel=where, phone=mask_phone(application.phone)
        )
    )


LINK_CHANNELS = ("telegram", "sms", "code")


@blueprint.post("/form/documents")
@staff_required(*AGENTS)
def form_documents() -> ResponseReturnValue:
    """Send the caller a personal link for the documents still missing (Telegram when the
    number has a chat, SMS/WhatsApp otherwise), or make a short code to read out."""
    body = _body()
    channel = body.get("channel")
    if channel not in LINK_CHANNELS:
        abort(400)
    service = loket()
    with service.sessions() as db, db.begin():
        message, code = documents_link(db, _caller_application(db, body), str(channel))
    service.phone_delivery.kick()  # an SMS link goes out right after the commit
    if message is None:
        return jsonify(message=_("Dokumen penelepon ini sudah lengkap.")), 409
    return jsonify(message=message, code=code)


@blueprint.post("/application/<reg_number>/documents")
@staff_required(*AGENTS)
def application_documents(reg_number: str) -> ResponseReturnValue:
    """The same link from an application's page (a caller who calls back)."""
    channel = request.form.get("channel", "")
    if channel not in LINK_CHANNELS:
        abort(400)
    service = loket()
    with service.sessions() as db, db.begin():
        message, _code = documents_link(db, _caller_application(db, {"application": reg_number}),
                                        channel)  # fmt: skip
    service.phone_delivery.kick()
    flash(message or _("Dokumen penelepon ini sudah lengkap."), "success" if message else "error")
    return redirect(url_for("agent.application", reg_number=reg_number))


def documents_link(
    db: Session, application: Application, channel: str
) -> tuple[str | None, str | None]:
    """Send the upload link (audited); say what the agent tells the caller, and the short code
    if one was made. None when nothing is missing."""
    service = loket()
    now = service.now(db)
    if not missing_labels(application):
        return None, None
    base = service.settings.public_url or request.host_url
    delivery = send_link(
        db, service.shared, application, channel, base, session_secret(service.settings), now
    )
    audit(db, current_staff_id(), "agent.documents_link", application.reg_number,
          {"channel": delivery.channel}, now)  # fmt: skip
    if delivery.code is not None:
        message = _(
            'Bacakan: "Buka {address} lalu ketik kode {code}." Kode berlaku sampai batas '
            "waktu dokumen."
        ).format(address=base.rstrip("/") + "/unggah", code=group(delivery.code))
        return message, group(delivery.code)
    where = _("Telegram") if delivery.channel == "telegram" else _("SMS/WhatsApp")
    return _("Tautan unggah dokumen dikirim lewat {channel} ke {phone}.").format(
        channel=where, phone=mask_phone(application.phone)
    ), None
