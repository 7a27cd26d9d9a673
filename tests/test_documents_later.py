"""Documents later: a caller registered by phone without photos completes them through a
personal link (signed, expiring, only the missing documents), reminded once before the
deadline; the office console shows what is missing."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.consoles import session_secret
from bot.core.messages import Inbound
from bot.images import CleanDocument, check_upload
from bot.phone_sender import RecordingSender
from bot.service import Loket
from bot.uploads import documents_deadline, make_token
from bot.web import create_app
from bot.worker import run_once
from storage.applications import DocumentRecord, create_application
from storage.models import (
    Application,
    AuditEntry,
    BillingCode,
    Booking,
    Document,
    Office,
    OutboxMessage,
    PhoneVerification,
)
from storage.phones import record_verification
from storage.staff import add_staff
from tests.conftest import FakeClock
from tests.test_booking import pay
from tests.test_caller_form import CALLER, PASSWORD, agent, send  # noqa: F401 (fixture)
from tests.test_hoard import applicant
from tests.test_images import minimal_pdf
from tests.transcript import Chat, fill_until, make_nik, photo_bytes

LINK = re.compile(r"(https?://\S+/unggah/(\S+))")


def register_and_book(client: FlaskClient, loket: Loket, fields: dict[str, str] = CALLER) -> str:
    """Register the caller through the form without photos and hold the first window."""
    status, done = send(client, "/agent/form/submit", {"fields": fields, "consent": True})
    assert status == 200, done
    with loket.sessions() as session:
        office = session.execute(
            select(Office.id).where(Office.code == "jakarta-selatan")
        ).scalar_one()
    reg = done["reg_number"]
    _status, days = send(client, "/agent/form/days", {"application": reg, "office": office})
    # A date a few days ahead, so the documents deadline is days away.
    body = {"application": reg, "office": office, "day": days["days"][3]["value"]}
    _status, windows = send(client, "/agent/form/windows", body)
    body = {"application": reg, "slot": windows["windows"][0]["value"]}
    status, _read_out = send(client, "/agent/form/hold", body)
    assert status == 200
    return str(reg)


def booked_with_upload_link(client: FlaskClient, loket: Loket) -> tuple[Application, str]:
    """Register and book the caller through the agent's form; return the application and
    the path of its upload page (a link signed as the agent's one is)."""
    register_and_book(client, loket)
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        deadline = documents_deadline(session.execute(select(Booking)).scalar_one())
    token = make_token(session_secret(loket.settings), application.id, deadline)
    return application, f"/unggah/{token}"


def upload(client: FlaskClient, path: str, kind: str, tag: str, data: bytes | None = None) -> str:
    """Post one photo through the caller's page; return the page shown afterwards."""
    page = client.get(path).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    data: dict[str, Any] = {
        "csrf_token": csrf.group(1),
        "kind": kind,
        "file": (io.BytesIO(data or photo_bytes(tag)), "foto.jpg", "image/jpeg"),
    }
    answer = client.post(path, data=data, content_type="multipart/form-data")
    assert answer.status_code == 302
    return client.get(path).get_data(as_text=True)


def test_a_link_by_sms_takes_only_the_missing_documents_and_the_office_sees_them(
    agent: FlaskClient,  # noqa: F811
    loket: Loket,
    sender: RecordingSender,
) -> None:
    reg = register_and_book(agent, loket)
    shown = agent.get(f"/agent/application/{reg}").get_data(as_text=True)
    assert "Belum ada: e-KTP, Kartu Keluarga, Akta kelahiran" in shown
    status, told = send(agent, "/agent/form/documents", {"application": reg, "channel": "sms"})
    assert status == 200 and "SMS/WhatsApp" in told["message"]
    with loket.sessions() as session:
        row = session.execute(select(OutboxMessage).where(OutboxMessage.channel == "sms")).one()
        assert row[0].user_ref == "+6281255550101"
    loket.deliver_phone_messages()  # sent right after the commit; wait for that delivery
    assert sum("/unggah/" in text for _phone, text in sender.sent) == 1
    phone, text = sender.sent[-1]
    assert phone == "+6281255550101"
    assert "e-KTP, Kartu Keluarga, Akta kelahiran" in text
    match = LINK.search(text)
    assert match, text
    path = match.group(1).split("://", 1)[1].split("/", 1)[1]
    caller = create_app(loket.settings, loket).test_client()  # the caller's own phone
    page = caller.get(f"/{path}").get_data(as_text=True)
    assert page.count('type="file"') == 3 and reg in page
    # A document that is not asked for is refused; a PDF gets the pipeline's words.
    page = upload(caller, f"/{path}", "old_passport", "x")
    assert "Dokumen itu tidak diminta lagi" in page
    page = upload(caller, f"/{path}", "ktp", "ktp:siti")
    assert "e-KTP diterima" in page and page.count('type="file"') == 2
    upload(caller, f"/{path}", "kk", "kk:siti")
    office = create_app(loket.settings, loket).test_client()
    with loket.sessions() as session, session.begin():
        add_staff(session, "budi.jaksel", "Budi", "office_admin", PASSWORD, "jakarta-selatan")
        booking = session.execute(select(Booking)).scalar_one()
        day = booking.slot.day
    login = office.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert csrf
    office.post("/staff/login", data={"username": "budi.jaksel", "password": PASSWORD,
                                      "csrf_token": csrf.group(1)})  # fmt: skip
    console = office.get(f"/office?day={day.isoformat()}").get_data(as_text=True)
    assert "dokumen belum lengkap" in console and "Akta kelahiran" in console
    page = upload(caller, f"/{path}", "supporting", "akta:siti")
    assert 'data-testid="complete"' in page
    console = office.get(f"/office?day={day.isoformat()}").get_data(as_text=True)
    assert "dokumen belum lengkap" not in console
    with loket.sessions() as session:
        kinds = set(session.execute(select(Document.kind)).scalars())
        assert kinds == {"ktp", "kk", "supporting"}


def test_links_are_signed_and_expire_and_codes_are_read_out(
    agent: FlaskClient,  # noqa: F811
    loket: Loket,
    clock: FakeClock,
) -> None:
    reg = register_and_book(agent, loket)
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        deadline = documents_deadline(session.execute(select(Booking)).scalar_one())
    secret = session_secret(loket.settings)
    caller = create_app(loket.settings, loket).test_client()
    good = make_token(secret, application.id, deadline)
    assert caller.get(f"/unggah/{good}").status_code == 200
    assert caller.get(f"/unggah/{good[:-2]}xx").status_code == 404  # forged
    assert caller.get(f"/unggah/{make_token('other', application.id, deadline)}").status_code == 404
    status, told = send(agent, "/agent/form/documents", {"application": reg, "channel": "code"})
    assert status == 200 and told["code"] in told["message"]
    page = caller.get("/unggah").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    typed = told["code"].lower().replace("-", " ")
    answer = caller.post("/unggah", data={"code": typed, "csrf_token": csrf.group(1)})
    assert answer.status_code == 302 and "/unggah/" in answer.headers["Location"]
    wrong = caller.post("/unggah", data={"code": "ZZZZ-ZZZZ", "csrf_token": csrf.group(1)})
    assert "Kode tidak dikenali" in wrong.get_data(as_text=True)
    with loket.sessions() as session:
        code = session.execute(select(BillingCode.code)).scalar_one()
    pay(loket, code)
    clock.now = deadline + timedelta(minutes=1)
    assert caller.get(f"/unggah/{good}").status_code == 404  # past the deadline


def test_a_caller_with_telegram_gets_the_link_there(
    agent: FlaskClient,  # noqa: F811
    loket: Loket,
) -> None:
    with loket.sessions() as session, session.begin():
        record_verification(session, "telegram", "5550101", "+6281255550101", "contact",
                            loket.now(session))  # fmt: skip
    reg = register_and_book(agent, loket)
    status, told = send(agent, "/agent/form/documents", {"application": reg, "channel": "telegram"})
    assert status == 200 and "Telegram" in told["message"]
    with loket.sessions() as session:
        row = session.execute(select(OutboxMessage)).scalar_one()
        assert (row.channel, row.user_ref) == ("telegram", "5550101")
        assert "/unggah/" in row.payload["text"]
        assert session.get(PhoneVerification, ("telegram", "5550101")) is not None
        code = session.execute(select(BillingCode.code)).scalar_one()
    # "Kirim ke penelepon" goes to the caller's Telegram chat too, with the code to copy.
    status, told = send(agent, "/agent/form/send", {"application": reg})
    assert status == 200 and "Telegram" in told["message"]
    with loket.sessions() as session:
        rows = session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
        assert rows[-1].user_ref == "5550101" and rows[-1].payload["copy"] == code


def test_the_documents_reminder_goes_once_from_h_minus_3_by_day(
    agent: FlaskClient,  # noqa: F811
    loket: Loket,
    clock: FakeClock,
    sender: RecordingSender,
) -> None:
    reg = register_and_book(agent, loket)
    send(agent, "/agent/form/documents", {"application": reg, "channel": "sms"})
    with loket.sessions() as session:
        code = session.execute(select(BillingCode.code)).scalar_one()
        deadline = documents_deadline(session.execute(select(Booking)).scalar_one())
    pay(loket, code)
    assert run_once(loket)["documents_reminded"] == 0  # too early
    clock.now = deadline - timedelta(hours=63)  # 09.00 three days before the appointment
    assert run_once(loket)["documents_reminded"] == 0
    clock.now = deadline - timedelta(hours=50)  # 22.00 that day (H-3): the office's night
    assert run_once(loket)["documents_reminded"] == 0
    clock.now = deadline - timedelta(hours=47)  # 01.00: still night
    assert run_once(loket)["documents_reminded"] == 0
    clock.now = deadline - timedelta(hours=42)  # 06.00 on H-2
    figures = run_once(loket)
    assert figures["documents_reminded"] == 1 and figures["sms_sent"] == 1
    assert sender.sent[-1][1].startswith("Pengingat: batas akhir pengiriman dokumen sudah dekat.")
    assert "/unggah/" in sender.sent[-1][1]
    clock.advance(hours=1)
    assert run_once(loket)["documents_reminded"] == 0  # once only


def test_no_reminder_once_the_documents_are_complete(
    agent: FlaskClient,  # noqa: F811
    loket: Loket,
    clock: FakeClock,
    sender: RecordingSender,
) -> None:
    reg = register_and_book(agent, loket)
    send(agent, "/agent/form/documents", {"application": reg, "channel": "sms"})
    run_once(loket)
    match = LINK.search(sender.sent[-1][1])
    assert match
    path = "/unggah/" + match.group(2)
    caller = create_app(loket.settings, loket).test_client()
    for kind, tag in (("ktp", "ktp:a"), ("kk", "kk:a"), ("supporting", "akta:a")):
        upload(caller, path, kind, tag)
    with loket.sessions() as session:
        code = session.execute(select(BillingCode.code)).scalar_one()
        deadline = documents_deadline(session.execute(select(Booking)).scalar_one())
    status, told = send(agent, "/agent/form/documents", {"application": reg, "channel": "sms"})
    assert status == 409 and "sudah lengkap" in told["message"]
    pay(loket, code)
    clock.now = deadline - timedelta(hours=2)
    assert run_once(loket)["documents_reminded"] == 0


def test_the_upload_page_refuses_what_the_chat_refuses(
    agent: FlaskClient,  # noqa: F811
    loket: Loket,
) -> None:
    application, path = booked_with_upload_link(agent, loket)
    caller = create_app(loket.settings, loket).test_client()
    page = upload(caller, path, "ktp", "x", data=minimal_pdf())
    assert "File PDF tidak bisa kami terima" in page
    # Someone else's e-KTP photo (already on another NIK's application) is refused by name.
    other = Chat(loket, "web-other", channel="web")
    other_nik = make_nik(date(1990, 8, 17), serial=5)
    fill_until(other, "summary", {"nik": other_nik})  # with its own photos
    other.say("benar, kirim")
    page = upload(caller, path, "ktp", f"doc_ktp:{other_nik}")
    assert "sudah dipakai dalam permohonan atas NIK lain" in page
    with loket.sessions() as session:
        kinds = session.execute(
            select(Document.kind).where(Document.application_id == application.id)
        ).all()
        assert kinds == []


def test_a_photo_claimed_for_another_nik_after_the_page_checked_it_is_refused_by_name(
    agent: FlaskClient,  # noqa: F811
    loket: Loket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The check at upload reads what was submitted before it; a registration submitted with
    # the same photo between that check and the save is found when the photo is claimed.
    application, path = booked_with_upload_link(agent, loket)
    shared = photo_bytes("doc_ktp:shared")
    checked = check_upload(shared, loket.image_rules)
    assert isinstance(checked, CleanDocument) and checked.phash is not None
    phash = checked.phash
    page_check = loket.check_upload

    def overtaken(event: Inbound) -> Inbound:
        result = page_check(event)
        born = date(1988, 4, 2)
        with loket.sessions() as session, session.begin():
            create_application(session, applicant(1, make_nik(born, serial=9), born),
                               [DocumentRecord("ktp", "ab" * 32, "image/jpeg", 1000, phash,
                                               True)])  # fmt: skip
        return result

    monkeypatch.setattr(loket, "check_upload", overtaken)
    caller = create_app(loket.settings, loket).test_client()
    page = upload(caller, path, "ktp", "x", data=shared)
    assert "Foto e-KTP ini sudah dipakai dalam permohonan atas NIK lain" in page
    assert "e-KTP diterima" not in page and page.count('type="file"') == 3  # asked again
    with loket.sessions() as session:
        kinds = session.execute(
            select(Document.kind).where(Document.application_id == application.id)
        ).all()
        assert kinds == []


def test_an_agent_sends_the_link_again_from_the_application_page(
    agent: FlaskClient,  # noqa: F811
    loket: Loket,
    sender: RecordingSender,
) -> None:
    reg = register_and_book(agent, loket)
    path = f"/agent/application/{reg}"
    page = agent.get(path).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf and "Kirim tautan unggah" in page
    answer = agent.post(f"{path}/documents", data={"channel": "sms", "csrf_token": csrf.group(1)})
    assert answer.status_code == 302
    shown = agent.get(path).get_data(as_text=True)
    assert "Tautan unggah dokumen dikirim lewat SMS/WhatsApp ke +62812****0101" in shown
    loket.deliver_phone_messages()  # sent right after the commit; wait for that delivery
    assert sum("/unggah/" in text for _phone, text in sender.sent) == 1
    with loket.sessions() as session:
        entry = session.execute(
            select(AuditEntry).where(AuditEntry.action == "agent.documents_link")
        ).scalar_one()
        assert entry.target == reg and entry.detail == {"channel": "sms"}
