"""The web pages in a real browser: Debian's Chromium driven by Playwright, against the real app.

The app runs on a werkzeug server on 127.0.0.1 in this process, on the same service (and fake
clock) as the rest of the suite; each test checks the database afterwards.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from bot.flows.booking import mask_phone
from bot.phone_sender import RecordingSender
from bot.service import Loket
from bot.validators import parse_phone
from bot.web import create_app
from storage.booking import mark_sent
from storage.models import (
    Application,
    BillingCode,
    Booking,
    BookingStatus,
    Conversation,
    Office,
    OutboxMessage,
    Slot,
    SlotKind,
    Staff,
)
from storage.staff import add_staff
from storage.subscriptions import subscribe
from tests.conftest import FakeClock
from tests.test_booking import pay
from tests.transcript import ADULT_NEW, Chat, billing_code, book, make_nik, photo_bytes, register

CHROMIUM = os.environ.get("LOKET_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
PASSWORD = "kata-sandi-uji-1"

playwright_api = pytest.importorskip("playwright.sync_api")
if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
    if os.environ.get("LOKET_REQUIRE_SERVICES") == "1":
        raise RuntimeError(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.skip("Chromium is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (never a downloaded browser)."""
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def site(loket: Loket) -> Iterator[str]:
    """The real app served on 127.0.0.1 (cookies without Secure: the test server is plain HTTP)."""
    loket.settings = replace(loket.settings, secure_cookies=False)
    loket.prepare_demo()
    app = create_app(loket.settings, loket)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own cookies) and page."""
    context = browser.new_context(locale="id-ID", viewport={"width": 412, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    # Every page runs under the app's Content-Security-Policy: nothing on it may be blocked.
    blocked: list[str] = []
    opened.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield opened
    context.close()
    assert blocked == []


def staff(loket: Loket, username: str, role: str, office: str | None = None) -> int:
    """Create a staff account and return its id."""
    with loket.sessions() as session, session.begin():
        return add_staff(session, username, username.title(), role, PASSWORD, office).id


def log_in(page: Any, site: str, username: str) -> None:
    """Log in through the form."""
    page.goto(f"{site}/staff/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def bot_count(page: Any) -> int:
    """How many bot messages the chat shows."""
    return int(page.eval_on_selector_all(".log li.bot", "items => items.length"))


def wait_for_reply(page: Any, before: int) -> None:
    """Wait until the bot answered (a new bot message appeared)."""
    page.wait_for_function("n => document.querySelectorAll('.log li.bot').length > n", arg=before)


def step_of(loket: Loket, channel: str) -> str | None:
    """The step the (only) conversation of a channel waits on."""
    with loket.sessions() as session:
        state = session.execute(
            select(Conversation.state).where(Conversation.channel == channel)
        ).scalar_one()
    return state.get("step")


def type_answer(page: Any, text: str) -> None:
    """Type an answer and send it with Enter, as a person would."""
    before = bot_count(page)
    page.fill(".composer .text", text)
    page.press(".composer .text", "Enter")
    wait_for_reply(page, before)


def chat_registration(page: Any, loket: Loket, channel: str, tmp_path: Path, nik: str) -> None:
    """Answer the registration in the page until the summary, and send it."""
    if bot_count(page) == 0:
        wait_for_reply(page, 0)
    plan = {**ADULT_NEW, "nik": nik}
    type_answer(page, "/daftar")
    # The first answer by pressing the button the bot showed.
    before = bot_count(page)
    page.get_by_role("button", name="Saya setuju").click()
    wait_for_reply(page, before)
    for _turn in range(60):
        step = step_of(loket, channel)
        if step == "summary":
            break
        assert step is not None
        if step.startswith("doc_"):
            photo = tmp_path / f"{step}.jpg"
            photo.write_bytes(photo_bytes(step))
            before = bot_count(page)
            page.set_input_files(".composer .file", str(photo))
            wait_for_reply(page, before)
        else:
            type_answer(page, plan[step])
        assert step_of(loket, channel) != step, page.inner_text(".log")
    type_answer(page, "benar, kirim")


def book_in_page(page: Any, loket: Loket, channel: str, phone: str = "0812 3456 7890") -> str:
    """Choose Bandung, first office, date and window, proving the phone number as the page asks.

    The web chat types the number and then the one-time code the service sent (read from the
    test's recording sender, as the applicant would read their SMS); the agent console types
    the caller's number, vouching for it. Return the page's last bot message.
    """
    for answer in ("Bandung", "1", "1", "1"):
        type_answer(page, answer)
    # The first hold of this chat: the page asks for the proof first.
    assert step_of(loket, channel) == "verify_phone", page.inner_text(".log")
    assert "Sebelum kursi ditahan" in page.inner_text(".log li.bot:last-child")
    type_answer(page, phone)
    if channel == "web":
        assert step_of(loket, channel) == "phone_code", page.inner_text(".log")
        number = parse_phone(phone)
        assert mask_phone(number) in page.inner_text(".log li.bot:last-child")
        sender = loket.phone_sender
        assert isinstance(sender, RecordingSender)
        loket.deliver_phone_messages()  # sent off the turn: wait for the delivery
        type_answer(page, sender.last_code(number))
    return str(page.inner_text(".log li.bot:last-child"))


def test_web_chat_registers_books_and_survives_a_reload(
    page: Any, site: str, loket: Loket, tmp_path: Path
) -> None:
    page.goto(site)
    wait_for_reply(page, 0)
    assert "Selamat datang di Loket" in page.inner_text(".log")
    nik = make_nik(date(1990, 8, 17), serial=71)
    chat_registration(page, loket, "web", tmp_path, nik)
    assert "LK-" in page.inner_text(".log")
    last = book_in_page(page, loket, "web")
    assert "Kode billing" in page.inner_text(".log"), last
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        booking = session.execute(select(Booking)).scalar_one()
        assert application.channel == "web" and application.nik == nik
        assert application.registered_by is None
        assert booking.status == BookingStatus.HELD and booking.booked_by is None
    shown = page.inner_text(".log")
    # A reload keeps the conversation on screen and on the server.
    page.reload()
    page.wait_for_selector(".log li.bot")
    assert page.inner_text(".log") == shown
    type_answer(page, "/status")
    after = page.inner_text(".log")
    assert after.count(application.reg_number) > shown.count(application.reg_number)


def test_agent_registers_a_caller_with_attribution(
    page: Any, site: str, loket: Loket, tmp_path: Path
) -> None:
    agent_id = staff(loket, "ani.cs", "agent")
    log_in(page, site, "ani.cs")
    assert page.url.endswith("/agent")
    page.fill("input[name=phone]", "0812 5555 0101")
    page.click("form[action$='/agent/call'] button[type=submit]")
    page.wait_for_selector(".chat")
    assert "+6281255550101" in page.inner_text("h1")
    assert "6281255550101" not in page.url  # the number stays out of URLs and access logs
    page.wait_for_selector(".log li.bot")
    nik = make_nik(date(1990, 8, 17), serial=72)
    chat_registration(page, loket, "agent", tmp_path, nik)
    book_in_page(page, loket, "agent", "0812 5555 0101")  # the agent vouches for the caller
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        booking = session.execute(select(Booking)).scalar_one()
        assert application.channel == "agent" and application.account_ref == "+6281255550101"
        assert application.registered_by == agent_id and booking.booked_by == agent_id
        reg_number = application.reg_number
    # The page an agent reads the billing code from, to the caller.
    page.goto(f"{site}/agent")
    page.fill("input[name=q]", nik)
    page.click("form[role=search] button")
    page.wait_for_load_state()
    assert nik not in page.url  # searched by POST: the NIK stays out of URLs and access logs
    page.click(f"text={reg_number}")
    code = page.inner_text("[data-testid=billing-code]").replace(" ", "")
    with loket.sessions() as session:
        assert session.execute(select(BillingCode.code)).scalar_one() == code


def test_office_admin_opens_announces_a_simpatik_session_and_checks_in(
    page: Any, site: str, loket: Loket, clock: FakeClock
) -> None:
    staff(loket, "budi.kantor", "office_admin", "jakarta-selatan")
    with loket.sessions() as session, session.begin():
        office_id = session.execute(
            select(Office.id).where(Office.code == "jakarta-selatan")
        ).scalar_one()
        other_id = session.execute(select(Office.id).where(Office.code == "bandung")).scalar_one()
        now = loket.now(session)
        subscribe(session, "telegram", "5001", office_id, "id", now)
        subscribe(session, "web", "w-2", office_id, "en", now)
        subscribe(session, "telegram", "5003", other_id, "id", now)
    log_in(page, site, "budi.kantor")
    assert page.url.endswith("/office")
    page.click("text=Buat sesi paspor simpatik")
    page.fill("input[name=day]", "2026-11-28")  # Saturday
    page.fill("input[name=quota]", "20")
    page.fill("textarea[name=note]", "Bawa dokumen asli.")
    page.click("button[type=submit].primary")
    page.wait_for_selector(".flash.success")
    assert "Pengumuman diantrekan untuk 2 pelanggan" in page.inner_text(".flash.success")
    with loket.sessions() as session:
        simpatik = session.execute(select(Slot).where(Slot.kind == SlotKind.SIMPATIK)).scalar_one()
        assert (simpatik.office_id, simpatik.capacity) == (office_id, 20)
        queued = session.execute(select(OutboxMessage.user_ref)).scalars().all()
        assert sorted(queued) == ["5001", "w-2"]
    # Bookable by chat at once.
    applicant = Chat(loket, "simpatik-fan")
    register(applicant, {"nik": make_nik(date(1990, 8, 17), serial=5)})
    applicant.say("Jakarta Selatan")
    reply = applicant.say("1")
    assert any("28 November 2026" in label for label in reply.labels), reply.text

    # Check-in: an applicant paid for a weekday seat; on that day the admin types the code.
    payer = Chat(loket, "payer")
    register(payer, {"nik": make_nik(date(1990, 8, 17), serial=9)})
    held = book(payer, city="Jakarta Selatan")
    assert pay(loket, billing_code(held)) == "confirmed"
    with loket.sessions() as session:
        booking = session.execute(
            select(Booking).where(Booking.status == BookingStatus.CONFIRMED)
        ).scalar_one()
        code, day = booking.code, booking.slot.day
    clock.advance(days=(day - clock().date()).days)
    log_in(page, site, "budi.kantor")  # a day later: yesterday's log-in has ended
    page.goto(f"{site}/office?day={day.isoformat()}")
    page.fill("input[name=code]", code.lower())
    page.click("form[action*='/office/checkin'] button")
    page.wait_for_selector(".flash.success")
    assert "tercatat hadir" in page.inner_text(".flash.success")
    page.get_by_role("button", name="berkas diverifikasi").click()
    page.wait_for_selector(".flash.success")
    with loket.sessions() as session:
        booking = session.execute(select(Booking).where(Booking.code == code)).scalar_one()
        assert booking.status == BookingStatus.CHECKED_IN
        assert booking.application.status == "verified"
    notices = payer.say("/status")
    assert "diverifikasi" in notices.text or "verified" in notices.text


def test_staff_of_another_office_is_refused(page: Any, site: str, loket: Loket) -> None:
    staff(loket, "citra.bandung", "office_admin", "bandung")
    payer = Chat(loket, "jakarta-applicant")
    register(payer, {"nik": make_nik(date(1990, 8, 17), serial=3)})
    book(payer, city="Jakarta Selatan")
    with loket.sessions() as session:
        booking = session.execute(select(Booking)).scalar_one()
        reg_number, code = booking.application.reg_number, booking.code
        assert session.execute(select(Staff)).scalar_one().username == "citra.bandung"
    log_in(page, site, "citra.bandung")
    assert "Bandung" in page.inner_text("h1")
    # Another office's booking cannot be checked in, nor its application moved or even seen.
    page.fill("input[name=code]", code)
    page.click("form[action*='/office/checkin'] button")
    page.wait_for_selector(".flash.error")
    assert "tidak ditemukan" in page.inner_text(".flash.error")  # as for an unknown code
    token = page.get_attribute("meta[name=csrf-token]", "content")
    response = page.request.post(
        f"{site}/office/application/{reg_number}/status",
        form={"to": "verified", "csrf_token": token},
    )
    assert response.status == 404
    assert page.goto(f"{site}/agent").status == 403
    assert "Jakarta Selatan" not in page.inner_text("body")


def test_a_superadmin_switches_office_with_the_csp_in_force(
    page: Any, site: str, loket: Loket
) -> None:
    staff(loket, "root.admin", "superadmin")
    log_in(page, site, "root.admin")
    response = page.goto(f"{site}/office")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.select_option("select[name=office]", "bandung")  # the page script submits the form
    page.wait_for_url("**/office?office=bandung")
    assert "Bandung" in page.inner_text("h1")


def test_an_announcements_progress_updates_without_reload(
    page: Any, site: str, loket: Loket
) -> None:
    staff(loket, "dewi.kantor", "office_admin", "jakarta-selatan")
    with loket.sessions() as session, session.begin():
        office_id = session.execute(
            select(Office.id).where(Office.code == "jakarta-selatan")
        ).scalar_one()
        for chat in ("6001", "6002", "6003"):
            subscribe(session, "telegram", chat, office_id, "id", loket.now(session))
    log_in(page, site, "dewi.kantor")
    page.fill("textarea[name=text]", "Kuota Desember dibuka Senin pukul 08.00 WIB.")
    page.click("form[action*='/office/announce'] button")
    page.wait_for_selector("#announcement-progress")
    assert page.inner_text("#announcement-progress [data-field=remaining]") == "3"
    with loket.sessions() as session, session.begin():
        for row_id in session.execute(select(OutboxMessage.id)).scalars().all():
            mark_sent(session, row_id, "1", loket.now(session))
    # The page asks again by itself every 2 seconds: no reload.
    remaining = page.locator("#announcement-progress [data-field=remaining]")
    playwright_api.expect(remaining).to_have_text("0", timeout=30_000)
    assert page.inner_text("#announcement-progress [data-field=sent]") == "3"
    assert page.inner_text("#announcement-progress [data-field=finish]") == "selesai"
