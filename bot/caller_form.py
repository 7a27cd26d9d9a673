"""The agent's caller form: the registration's questions on one page, read by the chat's steps.

Nothing about the rules lives here. Every field is read by its own step of the registration
flow (`Engine.read_answer`: the same parsers, option matching and cross-checks, so the same
words), the application is created by `create_from_answers` (the chat's submission), the
caller's number is vouched for as in the chat panel, and seats are held by `hold_seat` with
the booking flow's own date and window lists. This module only orders the questions for a
phone call and shapes the results for the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from bot.core.engine import Engine
from bot.core.flow import Context, Invalid
from bot.core.messages import Inbound
from bot.documents import document_label, required_documents
from bot.flows.booking import (
    available_days,
    day_label,
    day_prompt,
    day_slots,
    hold_refusal_text,
    seats_barred,
    slot_label,
    slot_options,
    vouch_by_agent,
)
from bot.flows.registration import (
    ADULT_AGE,
    FLOW,
    FamilyLimit,
    create_from_answers,
    family_limit_message,
    fee_lines,
    nik_taken_message,
    read_birth_date,
)
from bot.i18n import _, format_date, format_money
from bot.rules import moved_already
from bot.timezones import format_moment, format_window, local_date
from bot.uploads import missing_labels
from bot.validators import age_on, suggest_email
from storage.applications import NikAlreadyOpen
from storage.booking import HoldRefusal, active_booking, billing_for, hold_seat, issue_billing
from storage.models import (
    CLOSED_STATUSES,
    Application,
    BillingCode,
    Booking,
    BookingStatus,
    Office,
    Slot,
)
from storage.phones import verified_phone
from storage.staff import audit

CHANNEL = "agent"

# The order an agent asks on the phone: who is calling and their number, who the passport is
# for, then the application's choices, then the rest. (Cross-checks run in the chat's order,
# whatever order the agent fills the fields in.)
FIELDS = (
    "phone", "full_name", "nik", "birth_date", "sex", "birth_place", "had_passport",
    "replace_reason", "old_passport_number", "name_same", "service", "passport_kind",
    "validity", "supporting_kind", "travel_purpose", "address", "email",
)  # fmt: skip
ASKED = frozenset(FIELDS)


@dataclass
class FormCheck:
    """What the page shows after a check: clean values, errors by field, what applies now,
    the fee once it is known, the document checklist and hints."""

    answers: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    applies: dict[str, bool] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)
    fee: list[str] = field(default_factory=list)
    checklist: list[str] = field(default_factory=list)
    category: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Shape the check for the page (never echoing more than the page sent)."""
        return {
            "errors": self.errors,
            "applies": self.applies,
            "hints": self.hints,
            "fee": self.fee,
            "checklist": self.checklist,
            "category": self.category,
        }


def _derive_category(ctx: Context, raw: dict[str, str]) -> None:
    """Adult or child follows from the birth date: the form does not ask what it can know."""
    text = raw.get("birth_date", "").strip()
    if not text:
        return
    try:
        born = date.fromisoformat(read_birth_date(ctx, Inbound.say(text)))
    except Invalid:
        return  # the birth date's own step says what is wrong with it
    child = age_on(born, local_date(ctx.now)) < ADULT_AGE
    ctx.answers["category"] = "child" if child else "adult"


def check_form(engine: Engine, ctx: Context, raw: dict[str, str], *, final: bool) -> FormCheck:
    """Read every typed field with its registration step, in the chat's order.

    Empty fields are left alone while the agent types (`final=False`); on submission an empty
    required field is read too, so it is refused with the chat's words.
    """
    result = FormCheck()
    ctx.answers.clear()
    _derive_category(ctx, raw)
    result.category = ctx.answers.get("category")
    for step in FLOW.steps:
        if step.key not in ASKED:
            continue
        applies = step.when(ctx.answers)
        result.applies[step.key] = applies
        if not applies:
            continue
        text = str(raw.get(step.key, "")).strip()
        if not text and step.can_skip(ctx.answers):
            ctx.answers[step.key] = None
            continue
        if not text and not final:
            continue
        try:
            ctx.answers[step.key] = engine.read_answer(step, Inbound.say(text), ctx)
        except Invalid as refusal:
            result.errors[step.key] = refusal.reason
    email = ctx.answers.get("email")
    suggestion = suggest_email(email) if email else None
    if suggestion:
        result.hints["email"] = _("Maksud Anda {suggestion}?").format(suggestion=suggestion)
    if priced_enough(ctx.answers):
        result.fee = fee_lines(ctx.answers, local_date(ctx.now))
    if "category" in ctx.answers and "had_passport" in ctx.answers:
        result.checklist = [
            document_label(requirement, ctx.answers)
            for requirement in required_documents(ctx.answers)
        ]
    result.answers = dict(ctx.answers)
    return result


def priced_enough(answers: dict[str, Any]) -> bool:
    """Tell whether the fee can be quoted from what is known so far."""
    needed = ["category", "service", "passport_kind", "had_passport"]
    if answers.get("category") != "child":
        needed.append("validity")
    if answers.get("had_passport") == "yes":
        needed.append("replace_reason")
    return all(answers.get(key) is not None for key in needed)


@dataclass(frozen=True)
class Submitted:
    """A created application, or the errors by field that stopped it."""

    check: FormCheck
    application: Application | None = None


def submit_form(engine: Engine, ctx: Context, raw: dict[str, str], consent: bool) -> Submitted:
    """Create the caller's application in the caller's transaction, as the chat's summary does.

    The consent the agent read out is recorded on the application (when, by whom) and in the
    audit log; the caller's number is the agent's word (vouched, attributed), as in the chat
    panel; documents may follow later.
    """
    check = check_form(engine, ctx, raw, final=True)
    if not consent:
        check.errors["consent"] = _(
            "Bacakan pernyataan persetujuan kepada penelepon dan catat persetujuannya sebelum "
            "mengirim."
        )
    if check.errors:
        return Submitted(check)
    phone = str(ctx.answers["phone"])
    ctx.user_ref = phone
    ctx.answers["consent"] = "yes"
    ctx.answers["consent_at"] = ctx.now.isoformat()
    ctx.answers["consent_by"] = ctx.actor
    try:
        created = create_from_answers(ctx)
    except FamilyLimit as limit:
        check.errors["phone"] = family_limit_message(int(str(limit)))
        return Submitted(check)
    except NikAlreadyOpen:
        check.errors["nik"] = nik_taken_message()
        return Submitted(check)
    if verified_phone(ctx.session, CHANNEL, phone) != phone:
        vouch_by_agent(ctx.session, phone, phone, ctx.actor, ctx.now)
    audit(ctx.session, ctx.actor, "agent.consent", created.reg_number,
          {"at": ctx.now.isoformat()}, ctx.now)  # fmt: skip
    audit(ctx.session, ctx.actor, "agent.register", created.reg_number, {"form": True}, ctx.now)
    return Submitted(check, created)


# ---- booking on the same page --------------------------------------------------------------


def booking_context(ctx: Context, application: Application, office_id: int) -> None:
    """Point the booking flow's helpers at this application and office."""
    ctx.user_ref = application.account_ref
    ctx.answers.clear()
    ctx.answers.update({"application": str(application.id), "office": str(office_id)})


def days_for(ctx: Context) -> tuple[list[dict[str, str]], str | None]:
    """The dates with free seats for the application at the office, or why there are none
    (walk-in only, a ballot, a waiting room, not released yet, sold out): the chat's words."""
    barred = seats_barred(ctx)
    days = available_days(ctx) if barred is None else []
    if not days:
        return [], day_prompt(ctx)
    return [{"value": free.day.isoformat(), "label": day_label(free)} for free in days], None


def windows_for(ctx: Context, day: date) -> list[dict[str, str]]:
    """The windows with free seats on a day (the chat's list)."""
    ctx.answers["day"] = day.isoformat()
    return [{"value": option.value, "label": option.label} for option in slot_options(ctx)]


@dataclass(frozen=True)
class ReadOut:
    """What the agent reads to the caller once a seat is held."""

    reg_number: str
    booking_code: str
    code: str
    amount: str
    deadline: str
    office: str
    window: str
    script: str

    def to_json(self) -> dict[str, str]:
        """Shape for the page's read-out box."""
        return self.__dict__.copy()


def digit_groups(code: str) -> list[str]:
    """Split a billing code into the groups read aloud (the same grouping as everywhere)."""
    return [code[i : i + 4] for i in range(0, len(code), 4)]


def read_out_script(code: str, amount: str, deadline: str) -> str:
    """A script for reading the code aloud, group by group, then the amount and deadline."""
    groups = digit_groups(code)
    spoken = " — ".join(" ".join(group) for group in groups)
    return _(
        'Bacakan: "Kode billing Bapak/Ibu ada {count} kelompok angka: {spoken}. Jumlah yang '
        'dibayar {amount}, paling lambat {deadline}."'
    ).format(count=len(groups), spoken=spoken, amount=amount, deadline=deadline)


def hold_for_caller(ctx: Context, application: Application, slot_id: int) -> ReadOut | str:
    """Hold the window for the application with the caller's vouched number, issue the one
    billing code, and return what to read out, or the chat's reason for no seat."""
    limit = ctx.settings.max_seats_per_phone
    slot = ctx.session.get(Slot, slot_id)
    if slot is None:
        return hold_refusal_text(HoldRefusal.SOLD_OUT, limit)
    # Only a window the chat would offer this caller (the seat kinds their case may use).
    booking_context(ctx, application, slot.office_id)
    ctx.answers["day"] = slot.day.isoformat()
    if slot_id not in {offered.id for offered in day_slots(ctx)}:
        return hold_refusal_text(HoldRefusal.CLOSED, limit)
    phone = verified_phone(ctx.session, CHANNEL, application.account_ref)
    result = hold_seat(
        ctx.session, application, slot_id, ctx.now, ctx.settings.payment_window,
        phone=phone, phone_limit=ctx.settings.max_seats_per_phone,
    )  # fmt: skip
    if result.booking is None:
        assert result.refusal is not None
        return hold_refusal_text(result.refusal, limit)
    booking = result.booking
    booking.booked_by = ctx.actor
    billing = issue_billing(
        ctx.session, booking, application.fee_amount, ctx.billing.new_code, ctx.now
    )
    office = ctx.session.get(Office, booking.slot.office_id)
    assert office is not None
    audit(ctx.session, ctx.actor, "agent.book", application.reg_number,
          {"booking": booking.code}, ctx.now)  # fmt: skip
    amount = format_money(billing.amount)
    deadline = format_moment(billing.expires_at, office.timezone)
    return ReadOut(
        reg_number=application.reg_number,
        booking_code=booking.code,
        code=" ".join(digit_groups(billing.code)),
        amount=amount,
        deadline=deadline,
        office=office.name,
        window=slot_label(booking.slot, office.timezone),
        script=read_out_script(billing.code, amount, deadline),
    )


def consent_script() -> list[str]:
    """The consent the agent reads out: the chat's own statement, spoken about the caller."""
    return [
        _("Bacakan kepada penelepon:"),
        _(
            '"Data Bapak/Ibu (NIK, nama, tempat dan tanggal lahir, jenis kelamin, nomor HP, '
            "email, alamat, tujuan perjalanan, dan foto dokumen) kami pakai hanya untuk "
            "mendaftarkan permohonan paspor ke kantor imigrasi, disimpan selama permohonan "
            "diproses lalu paling lama 1 tahun, kemudian dihapus. Bapak/Ibu dapat melihat, "
            "memperbaiki, meminta penghapusan, dan menarik persetujuan kapan saja. Apakah "
            'Bapak/Ibu setuju?"'
        ),
    ]


# ---- finding the caller ----------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """One of the caller's applications, with its seat, payment and what can be done next."""

    application: Application
    booking: Booking | None
    next_steps: list[str]


def next_steps(
    application: Application,
    booking: Booking | None,
    billing: BillingCode | None,
    missing: list[str],
) -> list[str]:
    """Say, for the agent, what the caller can do next with this application."""
    steps = []
    if application.status in CLOSED_STATUSES:
        return [_("Tidak aktif lagi: penelepon bisa mendaftar baru.")]
    if booking is None:
        steps.append(_("Belum punya jadwal: pilih kantor, tanggal dan jam."))
    elif booking.status == BookingStatus.HELD and billing is not None:
        office = booking.slot.office
        steps.append(
            _("Menunggu pembayaran: kode billing {code}, {amount}, sebelum {deadline}.").format(
                code=" ".join(digit_groups(billing.code)),
                amount=format_money(billing.amount),
                deadline=format_moment(billing.expires_at, office.timezone),
            )
        )
    elif booking.status == BookingStatus.CONFIRMED:
        office = booking.slot.office
        if moved_already(booking):  # the one change of date is used up
            text = _("Jadwal pasti: {date}, {window}, {office}. Sudah pernah diubah sekali, "
                     "jadi tidak bisa diubah lagi.")  # fmt: skip
        else:
            text = _("Jadwal pasti: {date}, {window}, {office}. Bisa diubah sekali sampai H-1.")
        steps.append(
            text.format(
                date=format_date(booking.slot.day),
                window=format_window(booking.slot.start_time, booking.slot.end_time,
                                     office.timezone),
                office=office.name,
            )
        )  # fmt: skip
    if missing:
        steps.append(
            _("Dokumen belum lengkap ({documents}): kirim tautan unggah.").format(
                documents=", ".join(missing)
            )
        )
    return steps


def describe(session: Session, applications: list[Application]) -> list[Found]:
    """Load each application's active seat and payment and say what comes next."""
    found = []
    for application in applications:
        booking = active_booking(session, application.nik)
        if booking is not None and booking.application_id != application.id:
            booking = None
        billing = billing_for(session, booking.id) if booking is not None else None
        if booking is not None:
            _loaded = booking.slot.office.name
        missing = missing_labels(application)
        found.append(Found(application, booking, next_steps(application, booking, billing,
                                                            missing)))  # fmt: skip
    return found
