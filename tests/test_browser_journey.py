"""The web chat of a first-time user in a real browser (issue 10): the billing code stays in
view and copies in one tap, a pushed notice leaves the question's buttons, and the page and
the chat speak one language."""

# ruff: noqa: F811

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.billing import group_code
from bot.core.messages import Outbound
from bot.service import Loket
from storage.booking import queue_message
from storage.models import BillingCode, Conversation

# The browser, page and site fixtures of test_browser.py (tests name them as parameters).
from tests.test_browser import (  # noqa: F401
    book_in_page,
    browser,
    chat_registration,
    log_in,
    page,
    site,
    staff,
    type_answer,
    wait_for_reply,
)
from tests.transcript import make_nik


def web_user(loket: Loket) -> str:
    """The chat identity of the (only) browser."""
    with loket.sessions() as session:
        return str(
            session.execute(
                select(Conversation.user_ref).where(Conversation.channel == "web")
            ).scalar_one()
        )


def conversation_locale(loket: Loket) -> str | None:
    """The language the browser's conversation is set to."""
    with loket.sessions() as session:
        state = session.execute(
            select(Conversation.state).where(Conversation.channel == "web")
        ).scalar_one()
    return state.get("locale")


IN_VIEW = """item => {
  const log = item.closest('.log').getBoundingClientRect();
  const box = item.getBoundingClientRect();
  return box.top >= log.top - 1 && box.top < log.bottom && box.top >= 0
    && box.top < window.innerHeight;
}"""


def test_billing_code_stays_in_view_copies_in_one_tap_and_reads_the_same_everywhere(
    page: Any, site: str, loket: Loket, tmp_path: Path
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
    page.goto(site)
    wait_for_reply(page, 0)
    chat_registration(page, loket, "web", tmp_path, make_nik(date(1990, 8, 17), serial=81))
    book_in_page(page, loket, "web")
    with loket.sessions() as session:
        code = session.execute(select(BillingCode.code)).scalar_one()
    billing = page.locator(".log li.bot", has_text="Kode billing").last
    # The menu came after it, but the billing message is what the page shows.
    assert billing.evaluate(IN_VIEW)
    assert f"Kode billing: {group_code(code)}" in billing.inner_text()
    copy = billing.get_by_role("button", name="Salin kode billing")
    copy.click()
    page.wait_for_function("() => document.querySelector('.log .copy').textContent !== ''")
    assert page.evaluate("() => navigator.clipboard.readText()") == code
    # The menu's buttons are still there below it.
    assert page.get_by_role("button", name="Status permohonan").is_visible()
    # The agent reads the code out in the same groups.
    staff(loket, "ani.cs", "agent")
    agent = page.context.browser.new_page()
    try:
        log_in(agent, site, "ani.cs")
        agent.fill("input[name=q]", code)
        agent.click("form[role=search] button")
        agent.wait_for_load_state()
        link = agent.locator("a", has_text="LK-").first
        link.click()
        agent.wait_for_load_state()
        assert agent.inner_text("[data-testid=billing-code]") == group_code(code)
    finally:
        agent.context.close()


def test_a_pushed_notice_leaves_the_question_its_buttons(
    page: Any, site: str, loket: Loket
) -> None:
    page.clock.install()
    page.goto(site)
    wait_for_reply(page, 0)
    assert page.get_by_role("button", name="Daftar paspor").is_visible()
    with loket.sessions() as session, session.begin():
        queue_message(
            session,
            "web",
            web_user(loket),
            Outbound("Pengumuman dari Kantor Imigrasi: sesi paspor simpatik dibuka.").to_payload(),
            loket.now(session),
        )
    before = int(page.eval_on_selector_all(".log li.bot", "items => items.length"))
    page.clock.run_for(21_000)  # the page looks for notices every 20 seconds
    wait_for_reply(page, before)
    assert "Pengumuman dari Kantor Imigrasi" in page.inner_text(".log li.bot:last-child")
    menu = page.get_by_role("button", name="Daftar paspor")
    assert menu.is_visible()
    before = int(page.eval_on_selector_all(".log li.bot", "items => items.length"))
    menu.click()
    wait_for_reply(page, before)
    assert page.get_by_role("button", name="Saya setuju").is_visible()


def test_one_language_per_person(page: Any, site: str, loket: Loket) -> None:
    page.goto(site)
    wait_for_reply(page, 0)
    assert page.get_attribute("html", "lang") == "id"
    # /bahasa in the chat switches the page too.
    type_answer(page, "/bahasa")
    page.get_by_role("button", name="English").click()
    page.wait_for_url("**/?lang=en")
    page.wait_for_selector(".log li.bot")
    assert page.get_attribute("html", "lang") == "en"
    assert conversation_locale(loket) == "en"
    assert "Selamat datang di Loket" in page.inner_text(".log")  # the transcript survived
    # The page's switch sets the conversation's language.
    page.click("a[href='?lang=id']")
    page.wait_for_url("**/?lang=id")
    assert page.get_attribute("html", "lang") == "id"
    assert conversation_locale(loket) == "id"
    type_answer(page, "bantuan")
    assert "Perintah yang bisa dipakai kapan saja" in page.inner_text(".log")
    # A language chosen in the chat is the page's on the next visit, whatever the cookie said.
    with loket.sessions() as session, session.begin():
        conversation = session.execute(
            select(Conversation).where(Conversation.channel == "web")
        ).scalar_one()
        conversation.state = {**conversation.state, "locale": "en"}
        conversation.locale = "en"
    page.goto(site)
    assert page.get_attribute("html", "lang") == "en"
