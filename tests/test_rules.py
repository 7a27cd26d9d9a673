"""The rules the chat and the consoles share (bot/rules.py), through both doors: the same
decision refuses an applicant in a transcript and a staff member on a console."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select

from bot.consoles.agent import reschedule_options
from bot.rules import CLOSED, RESCHEDULE_WORDING, Audience, seat_kind_label
from bot.service import Loket
from storage.booking import RescheduleRefusal
from storage.models import Application, Booking, Slot
from tests.conftest import FakeClock
from tests.test_booking import pay
from tests.test_consoles import client, flashes, log_in, token  # noqa: F401
from tests.transcript import Chat, billing_code, book, register


def agent_post(client: FlaskClient, reg_number: str, action: str, **form: str) -> list[str]:  # noqa: F811
    """Post an agent's action on an application's page; return the flashes shown after it."""
    path = f"/agent/application/{reg_number}"
    data = {"reason": "penelepon minta", "csrf_token": token(client, path), **form}
    page = client.post(f"{path}/{action}", data=data, follow_redirects=True)
    assert page.status_code == 200
    return flashes(page.get_data(as_text=True))


def offered_window(loket: Loket) -> int:
    """A window the agent's list offers the booking (the last of the list)."""
    with loket.sessions() as session:
        booking = session.execute(select(Booking)).scalar_one()
        offered = reschedule_options(session, booking.application, booking, loket.now(session))
        session.rollback()
        return offered[-1].id


def test_a_booking_moved_once_is_refused_a_second_move_in_the_chat_and_on_the_console(
    client: FlaskClient,  # noqa: F811
    loket: Loket,
) -> None:
    caller = Chat(loket, "moved-once")
    register(caller)
    assert pay(loket, billing_code(book(caller))) == "confirmed"
    caller.say("/ubahjadwal")
    caller.say("1")
    caller.say("2")
    assert "Jadwal berhasil diubah" in caller.say("1")
    with loket.sessions() as session:
        reg_number = session.execute(select(Application.reg_number)).scalar_one()
        moved_to = session.execute(select(Booking.slot_id)).scalar_one()
    wording = RESCHEDULE_WORDING[RescheduleRefusal.ALREADY_RESCHEDULED]

    caller.say("/ubahjadwal")
    assert wording.text(Audience.APPLICANT) in caller.say("1")

    assert log_in(client, "ani.cs") == 302
    # What the agent reads to the caller says the change is used up, as the chat does.
    found = client.post("/agent", data={"find": "1", "caller_phone": caller.phone(),
                                        "csrf_token": token(client, "/agent")})  # fmt: skip
    assert "Sudah pernah diubah sekali, jadi tidak bisa diubah lagi" in found.get_data(as_text=True)
    page = client.get(f"/agent/application/{reg_number}").get_data(as_text=True)
    assert wording.text(Audience.STAFF) in page  # said up front, no list of windows
    assert 'name="slot"' not in page
    target = offered_window(loket)  # a forged post is refused all the same
    told = agent_post(client, reg_number, "reschedule", slot=str(target))
    assert told == [wording.text(Audience.STAFF)]
    with loket.sessions() as session:
        assert session.execute(select(Booking.slot_id)).scalar_one() == moved_to


def test_a_booking_past_h_minus_1_is_refused_in_the_chat_and_on_the_console(
    client: FlaskClient,  # noqa: F811
    loket: Loket,
    clock: FakeClock,
) -> None:
    caller = Chat(loket, "too-late")
    register(caller)
    assert pay(loket, billing_code(book(caller))) == "confirmed"  # Monday 23 November
    target = offered_window(loket)
    with loket.sessions() as session:
        reg_number = session.execute(select(Application.reg_number)).scalar_one()
        booked = session.execute(select(Booking.slot_id)).scalar_one()
    clock.advance(hours=18)  # Monday 23 November, 04:00 WIB: the appointment's own day
    wording = RESCHEDULE_WORDING[RescheduleRefusal.TOO_LATE]

    caller.say("/ubahjadwal")
    assert wording.text(Audience.APPLICANT) in caller.say("1")

    assert log_in(client, "ani.cs") == 302
    page = client.get(f"/agent/application/{reg_number}").get_data(as_text=True)
    assert wording.text(Audience.STAFF) in page and 'name="slot"' not in page
    assert agent_post(client, reg_number, "reschedule", slot=str(target)) == [
        wording.text(Audience.STAFF)
    ]
    with loket.sessions() as session:
        assert session.execute(select(Booking.slot_id)).scalar_one() == booked


def test_an_application_closed_by_one_door_is_refused_by_the_other(
    client: FlaskClient,  # noqa: F811
    loket: Loket,
) -> None:
    caller = Chat(loket, "two-doors")
    register(caller)
    book(caller)
    with loket.sessions() as session:
        reg_number = session.execute(select(Application.reg_number)).scalar_one()
    caller.say("/batalkan")
    assert "Batalkan permohonan" in caller.say("1").question.text
    # Meanwhile the caller phones customer care, and the agent cancels it first.
    assert log_in(client, "ani.cs") == 302
    assert agent_post(client, reg_number, "cancel") == [f"Permohonan {reg_number} dibatalkan."]

    reply = caller.tap("Ya, batalkan permohonan")
    assert CLOSED.text(Audience.APPLICANT) in reply
    assert "Kursinya sudah dilepas" not in reply
    assert agent_post(client, reg_number, "cancel") == [CLOSED.text(Audience.STAFF)]
    with loket.sessions() as session:
        assert session.execute(select(Application.status)).scalar_one() == "cancelled"
        assert session.execute(select(Booking.status)).scalar_one() == "cancelled"
        assert session.execute(select(Slot.taken).where(Slot.taken > 0)).first() is None


def test_seat_kinds_are_named_in_the_page_language_on_the_office_chart(
    client: FlaskClient,  # noqa: F811
) -> None:
    assert log_in(client, "budi.jaksel") == 302
    chart = re.compile(r'<table class="windows">(.*?)</table>', re.S)

    def kinds(page: str) -> set[str]:
        cells = re.findall(r"</td><td>([a-z]+)</td><td>", "".join(chart.findall(page)))
        return set(cells)

    indonesian = client.get("/office?lang=id").get_data(as_text=True)
    assert kinds(indonesian) == {"reguler", "percepatan", "prioritas"}
    english = client.get("/office?lang=en").get_data(as_text=True)
    assert kinds(english) == {"regular", "express", "priority"}
    assert seat_kind_label("keliling") == "keliling" and seat_kind_label("odd") == "odd"
