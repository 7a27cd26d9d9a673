"""The agent's caller form: the chat's own steps check each field, the chat's submission and
hold create the records, consent and the vouched number are recorded and audited."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.phone_sender import RecordingSender
from bot.service import Loket
from bot.web import create_app
from storage.models import (
    Application,
    AuditEntry,
    BillingCode,
    Booking,
    Office,
    PhoneVerification,
    Slot,
)
from storage.staff import add_staff
from tests.conftest import START
from tests.transcript import Chat, fill_until, make_nik

PASSWORD = "kata-sandi-uji-1"
NIK = make_nik(date(1990, 8, 17), serial=31)
CALLER: dict[str, str] = {
    "phone": "0812 5555 0101",
    "full_name": "siti  aminah",
    "nik": NIK,
    "birth_date": "17-08-1990",
    "sex": "M",
    "birth_place": "bandung",
    "had_passport": "no",
    "service": "reguler",
    "passport_kind": "elektronik",
    "validity": "10",
    "supporting_kind": "birth_cert",
    "travel_purpose": "wisata",
    "address": "Jl. Merdeka No. 10, RT 01/RW 02, Braga, Kota Bandung",
}


@pytest.fixture
def agent(loket: Loket) -> FlaskClient:
    """A logged-in agent's client of the real app, with the demo offices."""
    loket.prepare_demo()
    with loket.sessions() as session, session.begin():
        add_staff(session, "ani.cs", "Ani", "agent", PASSWORD)
    client = create_app(loket.settings, loket).test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    form = {"username": "ani.cs", "password": PASSWORD, "csrf_token": csrf.group(1)}
    assert client.post("/staff/login", data=form).status_code == 302
    return client


def send(client: FlaskClient, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Post JSON as the page's script does, with the page's CSRF token."""
    page = client.get("/agent").get_data(as_text=True)
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert csrf
    answer = client.post(path, json=body, headers={"X-CSRFToken": csrf.group(1)})
    return answer.status_code, answer.get_json()


def chat_refusal(loket: Loket, step: str, typed: str, before: dict[str, str]) -> str:
    """What the chat answers when `typed` is given at `step` (the last bot message)."""
    chat = Chat(loket, f"compare-{step}")
    fill_until(chat, step, before)
    reply = chat.say(typed)
    return reply.messages[0].text


@pytest.mark.parametrize(
    ("step", "typed", "chat_before"),
    [
        ("nik", make_nik(date(1990, 8, 18), serial=3), {}),  # the day disagrees
        ("nik", make_nik(date(1990, 8, 17), female=True, serial=3), {}),  # the sex disagrees
        ("nik", "3273011708", {}),
        ("birth_date", "31-02-1990", {}),
        ("full_name", "Budi 2", {}),
        ("phone", "021 555 0101", {}),
        ("address", "Jl. A", {}),
    ],
)
def test_the_form_refuses_what_the_chat_refuses_with_the_same_words(
    agent: FlaskClient, loket: Loket, step: str, typed: str, chat_before: dict[str, str]
) -> None:
    status, answer = send(agent, "/agent/form/check", {"fields": {**CALLER, step: typed}})
    assert status == 200
    said = chat_refusal(loket, step, typed, chat_before)
    assert answer["errors"][step] == said
    assert answer["errors"].keys() == {step}


def test_the_nik_names_the_part_that_disagrees(agent: FlaskClient) -> None:
    fields = {**CALLER, "nik": make_nik(date(1990, 8, 18), serial=3)}
    _status, answer = send(agent, "/agent/form/check", {"fields": fields})
    assert "tanggal lahir di NIK 18, sedangkan Anda menulis 17" in answer["errors"]["nik"]
    fields = {**CALLER, "sex": "F"}
    _status, answer = send(agent, "/agent/form/check", {"fields": fields})
    assert "jenis kelamin" in answer["errors"]["nik"]


def test_the_fee_and_checklist_follow_the_answers(agent: FlaskClient) -> None:
    _status, early = send(agent, "/agent/form/check", {"fields": {"phone": CALLER["phone"]}})
    assert early["fee"] == [] and early["errors"] == {}  # nothing typed is nothing refused
    _status, answer = send(agent, "/agent/form/check", {"fields": CALLER})
    assert answer["errors"] == {}
    assert answer["fee"][-1] == "Total: Rp950.000"
    assert answer["checklist"] == ["e-KTP", "Kartu Keluarga", "Akta kelahiran"]
    assert answer["applies"]["replace_reason"] is False
    # A child (by birth date) needs the parents' documents and no validity choice.
    child = {**CALLER, "birth_date": "01-02-2015", "nik": make_nik(date(2015, 2, 1), serial=9)}
    _status, answer = send(agent, "/agent/form/check", {"fields": child})
    assert answer["category"] == "child" and answer["applies"]["validity"] is False
    assert "KTP ayah" in answer["checklist"]


def test_submit_without_photos_records_consent_vouches_and_books(
    agent: FlaskClient, loket: Loket, sender: RecordingSender
) -> None:
    status, refused = send(agent, "/agent/form/submit", {"fields": CALLER, "consent": False})
    assert status == 422 and "persetujuan" in refused["errors"]["consent"]
    status, done = send(agent, "/agent/form/submit", {"fields": CALLER, "consent": True})
    assert status == 200, done
    reg_number = done["reg_number"]
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        assert (application.channel, application.account_ref) == ("agent", "+6281255550101")
        assert application.registered_by is not None and application.documents == []
        assert application.answers["consent_by"] == application.registered_by
        assert application.answers["consent_at"].startswith("2026-11-22T03:00")
        verified = session.get(PhoneVerification, ("agent", "+6281255550101"))
        assert verified is not None and verified.verified_by == application.registered_by
        actions = {row.action: row for row in session.execute(select(AuditEntry)).scalars()}
        assert actions["agent.consent"].target == reg_number
        assert actions["agent.consent"].staff_id == application.registered_by
        assert "phone.vouch" in actions
        office_id = session.execute(
            select(Office.id).where(Office.code == "jakarta-selatan")
        ).scalar_one()
    _status, days = send(
        agent, "/agent/form/days", {"application": reg_number, "office": office_id}
    )
    assert days["message"] is None and days["days"]
    day = days["days"][0]["value"]
    _status, windows = send(
        agent,
        "/agent/form/windows",
        {"application": reg_number, "office": office_id, "day": day},
    )
    slot = windows["windows"][0]["value"]
    status, read_out = send(agent, "/agent/form/hold", {"application": reg_number, "slot": slot})
    assert status == 200, read_out
    with loket.sessions() as session:
        code = session.execute(select(BillingCode.code)).scalar_one()
        booking = session.execute(select(Booking)).scalar_one()
        assert booking.booked_by is not None and booking.phone == "+6281255550101"
    assert read_out["code"].replace(" ", "") == code
    assert " ".join(code[:4]) in read_out["script"]
    status, again = send(agent, "/agent/form/hold", {"application": reg_number, "slot": slot})
    assert status == 409 and "NIK ini sudah memegang satu jadwal" in again["message"]
    status, told = send(agent, "/agent/form/send", {"application": reg_number})
    assert status == 200 and told["message"].startswith("Terkirim")
    loket.deliver_phone_messages()  # sent right after the commit; wait for that delivery
    assert sender.sent[-1][0] == "+6281255550101"
    assert code[:4] in sender.sent[-1][1]


def test_the_form_keeps_one_open_application_per_nik_and_five_per_number(
    agent: FlaskClient, loket: Loket
) -> None:
    status, _done = send(agent, "/agent/form/submit", {"fields": CALLER, "consent": True})
    assert status == 200
    status, again = send(agent, "/agent/form/submit", {"fields": CALLER, "consent": True})
    assert (
        status == 422
        and "sudah memiliki permohonan paspor yang masih aktif" in (again["errors"]["nik"])
    )
    for serial in range(40, 44):
        family = {**CALLER, "nik": make_nik(date(1990, 8, 17), serial=serial)}
        status, _done = send(agent, "/agent/form/submit", {"fields": family, "consent": True})
        assert status == 200
    sixth = {**CALLER, "nik": make_nik(date(1990, 8, 17), serial=50)}
    status, refused = send(agent, "/agent/form/submit", {"fields": sixth, "consent": True})
    assert status == 422 and "hingga 5 orang" in refused["errors"]["phone"]
    with loket.sessions() as session:
        assert len(session.execute(select(Application.id)).all()) == 5


def registered(loket: Loket, channel: str, user: str, serial: int, phone: str, name: str) -> None:
    """Register someone through a chat channel (submitted, no seat)."""
    chat = Chat(loket, user, channel=channel)
    nik = make_nik(date(1990, 8, 17), serial=serial)
    fill_until(chat, "summary", {"nik": nik, "phone": phone, "full_name": name})
    chat.say("benar, kirim")


def find(client: FlaskClient, **keys: str) -> str:
    """Post the find-the-caller form; return the page."""
    page = client.get("/agent").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    form = {"find": "1", "csrf_token": csrf.group(1), **{f"caller_{k}": v for k, v in keys.items()}}
    return client.post("/agent", data=form).get_data(as_text=True)


def test_a_caller_is_found_by_phone_across_channels_by_nik_and_by_name_and_birth_date(
    agent: FlaskClient, loket: Loket
) -> None:
    # The same number: a web chat registration (typed), a Telegram account that shared it as
    # its contact (a different number typed in the form), a chat API account the gateway
    # vouched for, and an earlier call.
    registered(loket, "web", "web-browser-1", 61, "0812 5555 0101", "ani web")
    registered(loket, "telegram", "777001", 62, "0813 9999 0000", "tono telegram")
    loket.vouch_phone("telegram", "777001", "+6281255550101", "contact")
    registered(loket, "api", "wa-555", 63, "0813 8888 0000", "wati api")
    loket.vouch_phone("api", "wa-555", "+6281255550101", "gateway")
    status, _done = send(agent, "/agent/form/submit", {"fields": CALLER, "consent": True})
    assert status == 200
    registered(loket, "web", "web-browser-2", 64, "0813 7777 0000", "orang lain")
    page = find(agent, phone="+62 812-5555-0101")
    for name in ("ANI WEB", "TONO TELEGRAM", "WATI API", "SITI AMINAH"):
        assert name in page, name
    assert "ORANG LAIN" not in page
    assert "Belum punya jadwal" in page and "Dokumen belum lengkap" in page
    page = find(agent, nik=make_nik(date(1990, 8, 17), serial=62))
    assert "TONO TELEGRAM" in page and "ANI WEB" not in page
    page = find(agent, name="siti aminah", birth="17 Agustus 1990")
    assert "SITI AMINAH" in page and "TONO TELEGRAM" not in page
    page = find(agent, phone="021 555 0101")
    assert "Itu nomor telepon rumah atau kantor" in page  # the chat's words
    page = find(agent, phone="0812 1111 2222")
    assert "Belum ada permohonan atas nomor" in page
    with loket.sessions() as session:
        details = [
            str(entry.detail)
            for entry in session.execute(
                select(AuditEntry).where(AuditEntry.action == "agent.find")
            ).scalars()
        ]
    assert details and all("5555" not in detail and "SITI" not in detail for detail in details)


def test_the_form_holds_only_a_window_the_chat_would_offer(
    agent: FlaskClient, loket: Loket
) -> None:
    status, done = send(agent, "/agent/form/submit", {"fields": CALLER, "consent": True})
    assert status == 200
    with loket.sessions() as session:
        office = session.execute(
            select(Office).where(Office.code == "jakarta-selatan")
        ).scalar_one()
        express = session.execute(
            select(Slot.id).where(Slot.office_id == office.id, Slot.kind == "percepatan",
                                  Slot.release_at <= START).limit(1)
        ).scalar_one()  # fmt: skip
    body = {"application": done["reg_number"], "slot": express}
    status, refused = send(agent, "/agent/form/hold", body)
    assert status == 409 and "Jam itu belum dibuka atau sedang ditutup" in refused["message"]
    with loket.sessions() as session:
        assert session.execute(select(Booking.id)).first() is None
    # An application made in a chat is booked by its own account.
    web = Chat(loket, "web-1", channel="web")
    fill_until(web, "summary", {"nik": make_nik(date(1990, 8, 17), serial=90)})
    web.say("benar, kirim")
    with loket.sessions() as session:
        reg_web = session.execute(
            select(Application.reg_number).where(Application.channel == "web")
        ).scalar_one()
    body = {"application": reg_web, "office": office.id}
    status, refused = send(agent, "/agent/form/days", body)
    assert status == 409 and "web chat" in refused["message"]
