"""Paspor keliling and Eazy Passport in a real browser (Debian's Chromium through Playwright)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.phone_sender import RecordingSender
from bot.service import Loket
from storage.models import (
    BillingCode,
    Booking,
    BookingStatus,
    OutreachRequest,
    OutreachSession,
    Slot,
)
from tests.conftest import FakeClock
from tests.test_booking import pay
from tests.test_browser import (  # noqa: F401 (fixtures)
    browser,
    chat_registration,
    log_in,
    page,
    site,
    staff,
    step_of,
    type_answer,
    wait_for_reply,
)
from tests.transcript import make_nik

CONTACT = "+6281377778888"


def test_office_admin_opens_a_session_and_answers_a_request_the_contact_sees_progress(
    browser: Any,  # noqa: F811
    page: Any,  # noqa: F811
    site: str,  # noqa: F811
    loket: Loket,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    staff(loket, "budi.kantor", "office_admin", "jakarta-selatan")
    blocked: list[str] = []  # CSP violations on the admin's and the member's pages

    # The contact person asks for a visit from a phone.
    page.goto(f"{site}/eazy")
    page.select_option("select[name=office]", "jakarta-selatan")
    page.fill("input[name=organisation]", "PT Sinar Jaya Abadi")
    page.select_option("select[name=kind]", "company")
    page.fill("input[name=contact_name]", "Bapak Hendra")
    page.fill("input[name=contact_phone]", "0813 7777 8888")
    page.fill("input[name=expected]", "20")
    page.fill("input[name=preferred_dates]", "9 atau 10 Desember")
    page.fill("input[name=venue]", "Kantor PT Sinar Jaya Abadi, Lantai 5")
    page.fill("input[name=address]", "Jl. TB Simatupang Kav. 18")
    page.fill("input[name=city]", "Jakarta Selatan")
    page.click("button[type=submit].primary")
    page.wait_for_selector(".flash.error")
    assert "rombongan 30 sampai 2000 pemohon" in page.inner_text("main")
    page.fill("input[name=expected]", "35")
    page.click("button[type=submit].primary")
    page.wait_for_selector(".request-status")
    assert page.inner_text(".request-status") == "Menunggu jawaban kantor"
    status_url = page.url
    sender = loket.phone_sender
    assert isinstance(sender, RecordingSender)
    loket.deliver_phone_messages()  # queued in the outbox, sent right after the commit: wait
    assert any(to == CONTACT and "sudah diterima" in text for to, text in sender.sent)

    # The office admin opens a session at a mall and approves the request with a date.
    office, admin = watched_page(browser, blocked, 1200)
    log_in(admin, site, "budi.kantor")
    admin.click("text=Paspor keliling dan Eazy Passport")
    admin.click("text=Buat sesi paspor keliling")
    admin.fill("input[name=venue]", "Mal Gandaria City")
    admin.fill("input[name=address]", "Jl. Sultan Iskandar Muda")
    admin.fill("input[name=latitude]", "-6.2443")
    admin.fill("input[name=longitude]", "106.7834")
    admin.fill("input[name=day]", "2026-12-05")
    admin.fill("input[name=quota]", "60")
    admin.fill("textarea[name=documents]", "e-KTP dan KK asli")
    admin.click("button[type=submit].primary")
    admin.wait_for_selector(".flash.success")
    assert "Mal Gandaria City" in admin.inner_text(".flash.success")
    assert "0/60" in admin.inner_text("table.sessions")
    admin.click("text=PT Sinar Jaya Abadi")
    assert "Bapak Hendra" in admin.inner_text("main")  # the office sees the contact person
    admin.fill("#approve input[name=day]", "2026-12-09")
    admin.fill("#approve input[name=quota]", "35")
    admin.fill("#approve input[name=latitude]", "-6.2920")
    admin.fill("#approve input[name=longitude]", "106.8200")
    admin.click("#approve button[type=submit]")
    admin.wait_for_selector(".flash.success")
    assert admin.inner_text(".request-status") == "Disetujui"
    with loket.sessions() as session:
        request = session.execute(select(OutreachRequest)).scalar_one()
        code = request.group_code
        assert code is not None and request.session_id is not None
        assert session.execute(select(OutreachSession)).scalars().all()[-1].access == "group"
    loket.deliver_phone_messages()
    assert any(to == CONTACT and code in text for to, text in sender.sent)

    # The contact person's page shows the code, the links and a QR code; no one joined yet.
    page.goto(status_url)
    assert page.inner_text(".group-code") == code
    assert page.inner_text("[data-count=registered]") == "0"
    assert page.is_visible("img.qr-code")

    # A member opens the group's web chat link, registers and books in the group's session.
    member, chat = watched_page(browser, blocked, 412)
    chat.goto(f"{site}/?start={code}")
    wait_for_reply(chat, 0)
    assert "Anda bergabung dengan grup Eazy Passport PT Sinar Jaya Abadi" in chat.inner_text(".log")
    assert "start=" not in chat.url  # a reload does not join again
    chat_registration(chat, loket, "web", tmp_path, make_nik(date(1990, 8, 17), serial=7))
    assert step_of(loket, "web") == "day", chat.inner_text(".log")
    assert "Kantor PT Sinar Jaya Abadi, Lantai 5" in chat.inner_text(".log li.bot:last-child")
    type_answer(chat, "1")
    type_answer(chat, "1")
    type_answer(chat, "0813 1234 5678")
    type_answer(chat, sender.last_code("+6281312345678"))
    held = chat.inner_text(".log")
    assert "Kursi Anda ditahan" in held and "Kantor PT Sinar Jaya Abadi, Lantai 5" in held
    member.close()
    assert pay(loket, billing_code_of(loket)) == "confirmed"

    page.reload()
    assert page.inner_text("[data-count=registered]") == "1"
    assert page.inner_text("[data-count=paid]") == "1"
    shown = page.inner_text("main").upper()
    assert "SANTOSO" not in shown and "3273011708900007" not in shown  # counts only

    # On the day the office checks the member in, as on any office day.
    with loket.sessions() as session:
        booking = session.execute(select(Booking)).scalar_one()
        booking_code, day = booking.code, session.get(Slot, booking.slot_id).day  # type: ignore[union-attr]
    clock.advance(days=(day - clock().date()).days)
    log_in(admin, site, "budi.kantor")
    admin.goto(f"{site}/office?day={day.isoformat()}")
    admin.fill("input[name=code]", booking_code)
    admin.click("form[action*='/office/checkin'] button")
    admin.wait_for_selector(".flash.success")
    assert "tercatat hadir" in admin.inner_text(".flash.success")
    office.close()
    with loket.sessions() as session:
        assert session.execute(select(Booking.status)).scalar_one() == BookingStatus.CHECKED_IN
    page.reload()
    assert page.inner_text("[data-count=checked_in]") == "1"
    assert blocked == []


def watched_page(browser: Any, blocked: list[str], width: int) -> tuple[Any, Any]:  # noqa: F811
    """A new browser context and page whose CSP violations are collected in `blocked`."""
    context = browser.new_context(locale="id-ID", viewport={"width": width, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    opened.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return context, opened


def billing_code_of(loket: Loket) -> str:
    """The only billing code issued."""
    with loket.sessions() as session:
        return session.execute(select(BillingCode.code)).scalar_one()
