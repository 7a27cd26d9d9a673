"""The customer-care console (`/agent`): register callers through the same chat, find and change
their applications. Every action is in the audit log; every record the agent makes names them."""

from __future__ import annotations

import secrets
from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.consoles import current_staff_id, form_id, loket, staff_required
from bot.consoles.notify import changed_by_staff
from bot.consoles.webchat import chat_turn
from bot.core.flow import Invalid
from bot.flows.booking import seat_kinds, sold_out_key
from bot.i18n import _
from bot.timezones import local
from bot.validators import parse_phone
from storage.applications import applications_for_account
from storage.booking import (
    RescheduleRefusal,
    active_booking,
    billing_for,
    bookings_for_application,
    cancel_booking,
    reschedule,
)
from storage.models import (
    CLOSED_STATUSES,
    Application,
    ApplicationStatus,
    AuditEntry,
    Booking,
    Slot,
    Staff,
    StaffRole,
)
from storage.office import find_applications
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
    """Start a call, or search for an application (posted, so a NIK never sits in a URL)."""
    query = request.form.get("q", "").strip() if request.method == "POST" else ""
    results: list[Application] = []
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
            db.expunge_all()
    return render_template("agent_dashboard.html", query=query, results=results)


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
        now = service.now(db)
        for booking in bookings:
            _ = booking.slot.office.name
        current = bookings[0] if bookings else None
        alternatives: list[Slot] = []
        if current is not None and current.status == "confirmed":
            alternatives = reschedule_options(db, found, current, now)
        timezone = current.slot.office.timezone if current is not None else "Asia/Jakarta"
        audit(db, current_staff_id(), "agent.view", found.reg_number, {}, now)
        db.expunge_all()
    return render_template(
        "agent_application.html",
        application=found,
        bookings=bookings,
        billing=billing,
        documents=documents,
        alternatives=alternatives,
        timezone=timezone,
        now=now,
        closed=found.status in CLOSED_STATUSES,
    )


def reschedule_options(
    db: Session, application: Application, booking: Booking, now: datetime
) -> list[Slot]:
    """Windows a paid booking may move to: same office, a later day, released, open, with a
    free seat, of a kind this application may book (no express seat for a reguler fee)."""
    office = booking.slot.office
    today = local(now, office.timezone).date()
    return list(
        db.execute(
            select(Slot)
            .where(
                Slot.office_id == office.id,
                Slot.day > today,
                Slot.closed.is_(False),
                Slot.release_at <= now,
                Slot.taken < Slot.capacity,
                Slot.id != booking.slot_id,
                Slot.kind.in_(seat_kinds(application, today)),
            )
            .order_by(Slot.day, Slot.start_time)
            .limit(RESCHEDULE_CHOICES)
        ).scalars()
    )


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
        if found.status in CLOSED_STATUSES:
            flash(_("Permohonan ini sudah tidak aktif."), "error")
            return redirect(url_for("agent.application", reg_number=reg_number))
        now = service.now(db)
        booking = active_booking(db, found.nik)
        if booking is not None and booking.application_id == found.id:
            cancel_booking(db, booking, f"agent: {reason}")
            service.shared.delete(sold_out_key(booking.slot_id))
        found.status = ApplicationStatus.CANCELLED
        found.closed_at = now
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
        today = local(now, booking.slot.office.timezone).date()
        refusal = reschedule(db, booking, slot_id, today, now)
        if refusal is not None:
            flash(refusal_text(refusal), "error")
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


def refusal_text(refusal: RescheduleRefusal) -> str:
    """Say why a reschedule was refused, in the agent's language."""
    return {
        RescheduleRefusal.NOT_PAID: _("Jadwal hanya bisa diubah setelah dibayar."),
        RescheduleRefusal.ALREADY_RESCHEDULED: _("Jadwal ini sudah pernah diubah (hanya sekali)."),
        RescheduleRefusal.TOO_LATE: _("Jadwal hanya bisa diubah paling lambat H-1."),
        RescheduleRefusal.SOLD_OUT: _("Jadwal baru itu sudah penuh. Pilih yang lain."),
        RescheduleRefusal.SAME_SLOT: _("Itu jadwal yang sama."),
        RescheduleRefusal.NOT_ELIGIBLE: _(
            "Paspor simpatik hanya untuk permohonan baru dan penggantian karena habis berlaku."
        ),
    }[refusal]


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
