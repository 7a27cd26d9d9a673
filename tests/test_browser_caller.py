"""The agent's caller form in a real browser (Debian's Chromium, as tests/test_browser.py):
a caller registered and booked from a cold start with no document photos, in few actions,
and the documents completed later through the caller's link on a phone."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.phone_sender import RecordingSender
from bot.service import Loket
from bot.web import create_app
from bot.worker import run_once
from storage.models import Application, AuditEntry, BillingCode, Booking
from tests.test_browser import PASSWORD, browser, log_in, page, site, staff  # noqa: F401
from tests.test_caller_form import send
from tests.test_documents_later import LINK, register_and_book
from tests.transcript import make_nik, photo_bytes

MAX_ACTIONS = 20


class Agent:
    """Drives the page and counts what an agent does: typed fields, selections, clicks."""

    def __init__(self, tab: Any) -> None:
        self.page = tab
        self.actions = 0
        self.file_dialogs = 0
        tab.on("filechooser", lambda _chooser: self._file_dialog())

    def _file_dialog(self) -> None:
        self.file_dialogs += 1

    def type(self, name: str, text: str) -> None:
        """Type one field and leave it with Tab, as an agent on the keyboard does."""
        self.page.fill(f"#f-{name}", text)
        self.page.press(f"#f-{name}", "Tab")
        self.actions += 1

    def choose(self, selector: str, value: str) -> None:
        """Pick one option of a list."""
        self.page.select_option(selector, value)
        self.actions += 1

    def click(self, selector: str) -> None:
        """Click one control."""
        self.page.click(selector)
        self.actions += 1

    def press(self, key: str) -> None:
        """Press one key where the focus is (Enter submits, Space ticks)."""
        self.page.keyboard.press(key)
        self.actions += 1


def test_an_agent_registers_and_books_a_caller_without_photos_in_at_most_20_actions(
    page: Any,  # noqa: F811
    site: str,  # noqa: F811
    loket: Loket,
) -> None:
    agent_id = staff(loket, "ani.cs", "agent")
    log_in(page, site, "ani.cs")
    assert page.url.endswith("/agent")  # the form is the agent's home
    agent = Agent(page)
    nik = make_nik(date(1990, 8, 17), serial=77)
    agent.click("input[name=consent]")  # once the caller agreed to the statement read out
    agent.type("phone", "0812 5555 0101")
    agent.type("full_name", "siti aminah")
    agent.type("nik", make_nik(date(1990, 8, 18), serial=77))  # misheard: the day is wrong
    agent.type("birth_date", "17-08-1990")
    agent.choose("#f-sex", "F")
    # The NIK is checked against the birth date and sex as the agent types, naming the part.
    page.wait_for_selector("[data-error-for=nik]:has-text('tanggal lahir di NIK 18')")
    agent.type("nik", make_nik(date(1990, 8, 17), female=True, serial=77))
    page.wait_for_selector("[data-error-for=nik]:empty", state="attached")
    nik = make_nik(date(1990, 8, 17), female=True, serial=77)
    agent.type("birth_place", "bandung")
    agent.choose("#f-had_passport", "no")
    agent.choose("#f-passport_kind", "elektronik")
    agent.choose("#f-validity", "10")
    page.wait_for_selector("[data-testid=fee]:has-text('Total: Rp950.000')")  # known already
    agent.choose("#f-supporting_kind", "birth_cert")
    page.wait_for_selector("[data-testid=checklist] li:has-text('Akta kelahiran')")
    agent.choose("#f-travel_purpose", "wisata")
    agent.type("address", "Jl. Merdeka No. 10, RT 01/RW 02, Braga, Kota Bandung")
    agent.press("Enter")  # from the field after the address: keyboard only
    page.wait_for_selector("#caller-booking:not([hidden])")
    registered = page.inner_text("[data-testid=registered]")
    agent.choose("#b-office", office_value(page, "Jakarta Selatan"))
    page.wait_for_selector("#b-day:not([disabled])")
    agent.choose("#b-day", first_value(page, "#b-day"))
    page.wait_for_selector("#b-window:not([disabled])")
    agent.choose("#b-window", first_value(page, "#b-window"))
    assert page.evaluate("document.activeElement.id") == "b-hold"  # the focus went there
    agent.press("Enter")
    page.wait_for_selector("#read-out:not([hidden])")  # no reload: the read-out box appears
    shown = page.inner_text("[data-testid=readout-code]").replace(" ", "")
    # Nothing the form said before submitting lingers as an error (its NIK is now taken).
    assert (
        page.eval_on_selector_all(
            "[data-error-for]", "lines => lines.map(l => l.textContent).join('')"
        )
        == ""
    )
    assert agent.actions <= MAX_ACTIONS, agent.actions
    assert agent.file_dialogs == 0
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        booking = session.execute(select(Booking)).scalar_one()
        code = session.execute(select(BillingCode.code)).scalar_one()
        assert application.nik == nik and application.reg_number in registered
        assert application.registered_by == agent_id and booking.booked_by == agent_id
        assert application.documents == [] and booking.status == "held"
        consent = session.execute(
            select(AuditEntry).where(AuditEntry.action == "agent.consent")
        ).scalar_one()
        assert consent.staff_id == agent_id and consent.target == application.reg_number
    assert shown == code
    assert page.inner_text("[data-testid=readout-amount]") == "Rp950.000"
    assert nik not in page.url and "6281255550101" not in page.url


def office_value(tab: Any, name: str) -> str:
    """The value of the office whose label names `name`."""
    value = tab.eval_on_selector(
        "#b-office",
        "(s, name) => [...s.options].find(o => o.textContent.includes(name)).value",
        name,
    )
    return str(value)


def first_value(tab: Any, selector: str) -> str:
    """The first real option of a list."""
    return str(tab.eval_on_selector(selector, "s => s.options[1].value"))


def test_a_caller_completes_the_documents_by_link_on_a_phone_and_the_office_sees_it(
    page: Any,  # noqa: F811
    browser: Any,  # noqa: F811
    site: str,  # noqa: F811
    loket: Loket,
    sender: RecordingSender,
    tmp_path: Path,
) -> None:
    staff(loket, "ani.cs", "agent")
    staff(loket, "budi.jaksel", "office_admin", "jakarta-selatan")
    client = create_app(loket.settings, loket).test_client()
    login = client.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert csrf
    client.post("/staff/login", data={"username": "ani.cs", "password": PASSWORD,
                                      "csrf_token": csrf.group(1)})  # fmt: skip
    reg = register_and_book(client, loket)
    send(client, "/agent/form/documents", {"application": reg, "channel": "sms"})
    run_once(loket)
    match = LINK.search(sender.sent[-1][1])
    assert match
    # The caller opens the link on a phone-sized screen (the page fixture's 412 x 900).
    assert page.viewport_size["width"] <= 420
    page.goto(f"{site}/unggah/{match.group(2)}")
    for kind, tag in (("ktp", "ktp:hp"), ("kk", "kk:hp"), ("supporting", "akta:hp")):
        photo = tmp_path / f"{kind}.jpg"
        photo.write_bytes(photo_bytes(tag))
        page.set_input_files(f"form[data-document={kind}] input[type=file]", str(photo))
        page.click(f"form[data-document={kind}] button[type=submit]")
        page.wait_for_load_state()
        assert page.locator(".flash.success").count() == 1
    page.wait_for_selector("[data-testid=complete]")
    with loket.sessions() as session:
        booking = session.execute(select(Booking)).scalar_one()
        day, code = booking.slot.day, booking.code
    office = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(office, site, "budi.jaksel")
    office.goto(f"{site}/office?day={day.isoformat()}")
    assert office.inner_text(f"[data-documents='{code}']").strip() == "lengkap"
    office.context.close()
