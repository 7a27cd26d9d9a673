"""Personal data under UU PDP: /datasaya, /hapusdata, retention, masked NIKs and audited
full views. Erasure and retention are proven by reading every table and the document store's
folder, on both backends."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner
from sqlalchemy import select, text, update

from bot.channels.telegram import TelegramChannel
from bot.privacy import conversation_id, export_file, export_token
from bot.retention import run_daily, run_retention
from bot.service import Loket
from bot.web import create_app
from storage.models import (
    Application,
    AuditEntry,
    Base,
    BillingCode,
    Booking,
    Conversation,
    Document,
    OutboxMessage,
    PhoneCode,
    PhoneVerification,
    PhotoMark,
    Slot,
    Staff,
)
from storage.staff import add_staff, audit
from tests.conftest import FakeClock
from tests.fake_telegram import FakeTelegram
from tests.test_booking import pay
from tests.test_telegram import CHAT, poll
from tests.test_telegram import fake as fake
from tests.test_telegram import telegram as telegram
from tests.transcript import ADULT_NEW, Chat, billing_code, book, make_nik, register

PASSWORD = "kata-sandi-uji-1"
NIK = ADULT_NEW["nik"]
NAME = "BUDI SANTOSO"  # as stored: the name exactly as on the KTP, in capitals


def stored_files(loket: Loket) -> set[str]:
    """The names of the files in the document store's folder, read from disk."""
    folder = loket.settings.data_dir / "documents"
    return {path.name for path in folder.glob("??/*")} if folder.exists() else set()


def everything(loket: Loket) -> str:
    """Every row of every table as text, to look for personal data anywhere."""
    rows = []
    with loket.sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                rows.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(rows)


def backdate(loket: Loket, clock: FakeClock) -> None:
    """Give rows the database stamped with its own clock the test's time instead."""
    with loket.sessions() as session, session.begin():
        session.execute(update(Application).values(created_at=clock.now))
        session.execute(update(Document).values(created_at=clock.now))


def registered_and_held(loket: Loket, chat: Chat) -> str:
    """Register the default applicant with photos, hold a seat; return the billing code."""
    register(chat)
    return billing_code(book(chat))


# ---- /hapusdata ---------------------------------------------------------------------------


def test_erasure_needs_both_confirmations_and_deletes_photos_from_disk(
    loket: Loket, chat: Chat
) -> None:
    code = registered_and_held(loket, chat)
    keys = stored_files(loket)
    assert len(keys) == 3  # e-KTP, KK, birth certificate: files on disk, encrypted
    with loket.sessions() as session:
        held_slot = session.execute(select(Booking.slot_id)).scalar_one()
        taken = session.get(Slot, held_slot)
        assert taken is not None and taken.taken == 1

    reply = chat.say("/hapusdata")
    # What goes, what stays (and without what), and the unpaid hold, before any confirmation.
    assert "Yang dihapus: NIK, nama" in reply
    assert "Yang tetap disimpan, tanpa NIK dan tanpa nama" in reply
    assert "kode billing dan catatan pembayaran" in reply
    assert "akan dibatalkan dan kursinya dilepas" in reply
    assert reply.labels == ["Ya, hapus data saya", "Tidak, jangan hapus"]
    reply = chat.tap("Ya, hapus data saya")
    assert "ketik kata HAPUS" in reply.question.text
    # A wrong word is refused with what to type, and asked again; nothing is erased yet.
    reply = chat.say("hapsu")
    assert "Untuk menghapus, ketik kata HAPUS" in reply
    assert chat.step() == "word"
    assert NIK in everything(loket) and stored_files(loket) == keys
    # A button cannot confirm the typed step.
    reply = chat.press("yes")
    assert chat.step() == "word" and NIK in everything(loket)

    reply = chat.say("HAPUS")
    assert "Data pribadi Anda sudah dihapus." in reply
    assert "Jadwal yang belum dibayar sudah dibatalkan." in reply
    assert chat.state()["flow"] == "menu"

    # Nowhere in the database: not the NIK, the name, the typed phone number or the email.
    dump = everything(loket)
    verified = chat.phone()
    for personal in (NIK, NAME, "+6281234567890", "budi@example.com", "Merdeka No. 10", verified):
        assert personal.casefold() not in dump.casefold(), personal
    # The photo files are gone from disk, not only unlinked.
    assert stored_files(loket) == set()
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        assert application.status == "cancelled" and application.anonymised_at is not None
        assert application.reg_number.startswith("LK-")  # kept, without the person
        assert session.execute(select(Document)).first() is None
        assert session.execute(select(PhotoMark)).first() is None
        booking = session.execute(select(Booking)).scalar_one()
        assert booking.status == "cancelled" and booking.nik == "" and booking.phone is None
        billing = session.execute(select(BillingCode)).scalar_one()
        assert billing.code == code  # the state revenue record stays
        assert session.execute(select(PhoneVerification)).first() is None
        slot = session.get(Slot, held_slot)
        assert slot is not None and slot.taken == 0  # the seat went back
    # The chat has nothing left to show.
    assert "Belum ada permohonan dari akun ini" in chat.say("/datasaya")


def test_saying_no_or_batal_erases_nothing(loket: Loket, chat: Chat) -> None:
    register(chat)
    chat.say("/mulai")
    before = everything(loket)
    files = stored_files(loket)
    reply = chat.say("/hapusdata")
    reply = chat.tap("Tidak, jangan hapus")
    assert "Baik, data Anda tidak dihapus." in reply
    chat.say("/hapusdata")
    chat.tap("Ya, hapus data saya")
    reply = chat.say("batal")
    reply = chat.tap("Ya, batalkan")
    assert "data Anda tidak dihapus" in reply
    assert NIK in everything(loket) and stored_files(loket) == files
    assert before.count(NIK) == everything(loket).count(NIK)


def test_a_paid_appointment_stops_erasure_with_the_reason(loket: Loket, chat: Chat) -> None:
    assert pay(loket, registered_and_held(loket, chat)) == "confirmed"
    files = stored_files(loket)
    reply = chat.say("/hapusdata")
    assert "sudah dibayar dan jadwalnya masih berlaku" in reply
    assert "/batalkan" in reply and "tidak dapat dikembalikan" in reply
    assert chat.state()["flow"] == "menu"
    assert NIK in everything(loket) and stored_files(loket) == files
    # Cancelled first (the fee is not refunded), the erasure goes through.
    chat.say("/batalkan")
    chat.say("1")
    chat.say("ya")
    chat.say("/hapusdata")
    chat.tap("Ya, hapus data saya")
    assert "sudah dihapus" in chat.say("hapus")
    assert NIK not in everything(loket) and stored_files(loket) == set()
    with loket.sessions() as session:
        billing = session.execute(select(BillingCode)).scalar_one()
        assert billing.status == "paid"  # the payment record stays


def test_a_payment_between_the_confirmations_stops_the_erasure(loket: Loket, chat: Chat) -> None:
    code = registered_and_held(loket, chat)
    chat.say("/hapusdata")
    chat.tap("Ya, hapus data saya")
    assert pay(loket, code) == "confirmed"
    reply = chat.say("HAPUS")
    assert "sudah dibayar dan jadwalnya masih berlaku" in reply
    assert NIK in everything(loket)


def test_the_agent_console_cannot_ask_for_a_callers_data(loket: Loket) -> None:
    caller = Chat(loket, "+6281311112222", channel="agent")
    register(caller)
    for command in ("/datasaya", "/hapusdata"):
        reply = caller.say(command)
        assert "hanya dilayani dari chat pemohon sendiri" in reply
        assert not any(message.export for message in reply.messages)
    assert "+6281311112222" in everything(loket)


def test_erasing_one_chat_leaves_another_chats_family_photo(loket: Loket, chat: Chat) -> None:
    # The same KK photo on two applications (a family): one file in the store.
    register(chat)
    spouse = Chat(loket, "spouse")
    spouse_answers = {"nik": make_nik(date(1992, 3, 4), female=True), "sex": "perempuan",
                      "birth_date": "04-03-1992", "full_name": "siti aminah"}  # fmt: skip
    from tests.transcript import fill_until

    fill_until(spouse, "doc_kk", spouse_answers)
    spouse.photo(tag=f"doc_kk:{NIK}")  # the family's one Kartu Keluarga
    fill_until(spouse, "summary", spouse_answers)
    spouse.say("benar, kirim")
    with loket.sessions() as session:
        shared = {d.sha256 for d in session.execute(select(Document)).scalars() if d.kind == "kk"}
    assert len(shared) == 1
    chat.say("/hapusdata")
    chat.tap("Ya, hapus data saya")
    chat.say("hapus")
    assert shared <= stored_files(loket)  # still the spouse's
    assert len(stored_files(loket)) == 3  # the spouse's KTP, KK, birth certificate


# ---- /datasaya -------------------------------------------------------------------------------


def test_datasaya_shows_the_chats_own_data_and_who_on_staff_opened_it(
    loket: Loket, chat: Chat
) -> None:
    registered_and_held(loket, chat)
    with loket.sessions() as session, session.begin():
        agent = add_staff(session, "ani.cs", "Ani Wulandari", "agent", PASSWORD)
        reg = session.execute(select(Application.reg_number)).scalar_one()
        audit(session, agent.id, "agent.view", reg, {}, loket.now(session))
    stranger = Chat(loket, "stranger")
    register(stranger, {"nik": make_nik(date(1985, 1, 2), serial=7), "birth_date": "02-01-1985",
                        "full_name": "joko widodo"})  # fmt: skip

    reply = chat.say("/datasaya")
    assert reg in reply and NAME in reply
    assert "3273••••••••0001" in reply and NIK not in reply  # masked on the screen
    assert "e-KTP" in reply and "Kartu Keluarga" in reply
    assert "Ani Wulandari (membuka data lengkap, layanan pelanggan)" in reply
    assert "Joko" not in reply  # only this chat's own
    exports = [message for message in reply.messages if message.export]
    assert len(exports) == 1 and "file JSON terlampir" in exports[0].text
    assert NIK not in (exports[0].export or "")

    with loket.sessions() as session:
        name, data = export_file(session, chat.channel, chat.user, loket.now(session))
    assert name.endswith(".json")
    body = json.loads(data)
    (application,) = body["applications"]
    assert application["nik"] == NIK and application["full_name"] == NAME
    assert {d["kind"] for d in application["documents"]} == {"ktp", "kk", "supporting"}
    assert application["bookings"][0]["billing"]["status"] == "unpaid"
    assert application["staff_actions"] == [
        {"at": application["staff_actions"][0]["at"], "action": "agent.view", "record": reg,
         "staff": "Ani Wulandari", "staff_role": "agent"}
    ]  # fmt: skip
    assert body["verified_phone"]["phone"] == chat.phone()
    assert "Joko" not in data.decode()


def test_web_chat_gives_a_signed_short_lived_link_for_its_own_browser_only(
    loket: Loket, monkeypatch: pytest.MonkeyPatch
) -> None:
    loket.prepare_demo()
    app = create_app(loket.settings, loket)
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf
    with client.session_transaction() as cookie:
        user = cookie["web_user"]
    register(Chat(loket, user, channel="web"))
    sent = client.post("/chat/send", json={"text": "/datasaya"},
                       headers={"X-CSRFToken": csrf.group(1)})  # fmt: skip
    shown = [m for m in sent.get_json()["messages"] if m.get("download")]
    assert len(shown) == 1 and "berlaku 10 menit dan hanya untuk Anda" in shown[0]["text"]
    links = [m["download"] for m in shown]
    link = links[0]
    assert link.startswith("/datasaya/") and NIK not in link and user not in link
    answer = client.get(link)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert "attachment" in answer.headers["Content-Disposition"]
    assert json.loads(answer.data)["applications"][0]["nik"] == NIK
    # Another browser, a forged link: nothing.
    assert app.test_client().get(link).status_code == 404
    assert client.get(link[:-3] + "abc").status_code == 404
    # A link older than LOKET_EXPORT_LINK_MINUTES: gone, with how to get a new one.
    with loket.sessions() as session:
        found = conversation_id(session, "web", user)
    assert found is not None
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 11 * 60)
    old = "/datasaya/" + export_token(loket.settings, found)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    expired = client.get(old)
    assert expired.status_code == 410 and "/datasaya" in expired.get_data(as_text=True)


# ---- retention --------------------------------------------------------------------------------


def test_retention_deletes_photos_after_the_appointment_then_anonymises(
    loket: Loket, chat: Chat, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    assert pay(loket, registered_and_held(loket, chat)) == "confirmed"  # Monday 23 November
    # A second person whose paid appointment is never marked (no worker ran): two blank NIKs
    # must not collide in the unique indexes of open applications and active seats.
    other = Chat(loket, "other")
    register(other, {"nik": make_nik(date(1985, 1, 2), serial=7), "birth_date": "02-01-1985",
                     "full_name": "joko widodo"})  # fmt: skip
    assert pay(loket, billing_code(book(other)), reference="REF-2") == "confirmed"
    backdate(loket, clock)
    files = stored_files(loket)
    assert len(files) == 6
    caplog.set_level(logging.DEBUG)
    clock.advance(days=20)
    assert run_retention(loket)["photo_files_deleted"] == 0  # 30 days after the appointment
    assert stored_files(loket) == files
    clock.advance(days=12)  # 24 December: more than 30 days after 23 November
    counts = run_retention(loket)
    assert counts["documents_deleted"] == 2 and counts["photo_files_deleted"] == 6
    assert stored_files(loket) == set()
    with loket.sessions() as session:
        mine = select(Application).where(Application.nik == NIK)
        application = session.execute(mine).scalar_one()
        assert application.documents_deleted_at is not None
        assert session.execute(select(Document)).first() is None
    assert "Foto dokumen sudah dihapus sesuai masa simpan." in chat.say("/datasaya")
    clock.advance(days=365)
    counts = run_retention(loket)
    assert counts["applications_anonymised"] == 2
    assert NIK not in everything(loket) and NAME not in everything(loket)
    assert "JOKO" not in everything(loket)
    with loket.sessions() as session:
        assert set(session.execute(select(BillingCode.status)).scalars()) == {"paid"}
        statuses = set(session.execute(select(Application.status, Booking.status).join(
            Booking, Booking.application_id == Application.id)).all())  # fmt: skip
        assert statuses == {("cancelled", "no_show")}  # missed, closed
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert NIK not in logged and "Budi" not in logged and "retention {" in logged


def test_retention_counts_from_a_cancellation_and_prunes_old_chat_rows(
    loket: Loket, chat: Chat, clock: FakeClock
) -> None:
    registered_and_held(loket, chat)
    chat.say("/batalkan")
    chat.say("1")
    chat.say("ya")
    backdate(loket, clock)
    idle = Chat(loket, "idle")
    idle.say("/mulai")
    with loket.sessions() as session, session.begin():
        expires = clock.now + timedelta(minutes=10)
        session.add(PhoneCode(channel="web", user_ref="w1", phone="+6281200000000",
                              code_hash="x" * 64, expires_at=expires))  # fmt: skip
    clock.advance(days=29)
    counts = run_retention(loket)
    assert counts["documents_deleted"] == 0 and len(stored_files(loket)) == 3
    assert counts["phone_codes"] == 1  # expired codes go at once
    clock.advance(days=2)
    assert run_retention(loket)["documents_deleted"] == 1
    assert stored_files(loket) == set()
    clock.advance(days=60)  # the idle chat: 91 days without a message
    chat.say("/mulai")  # this one spoke just now
    assert run_retention(loket)["conversations"] == 1
    with loket.sessions() as session:
        users = set(session.execute(select(Conversation.user_ref)).scalars())
    assert users == {chat.user}


def test_photos_no_application_uses_are_deleted_after_a_day(loket: Loket, chat: Chat) -> None:
    from tests.transcript import fill_until

    fill_until(chat, "doc_kk")  # the KTP photo is stored, the registration not finished
    in_progress = stored_files(loket)
    assert len(in_progress) == 1
    orphan = loket.blobs.put(b"left behind by a registration abandoned long ago")
    day_ago = time.time() - 2 * 24 * 3600
    for key in (orphan, *in_progress):
        path = loket.settings.data_dir / "documents" / key[:2] / key
        os.utime(path, (day_ago, day_ago))
    counts = run_retention(loket)
    assert counts["orphan_photo_files_deleted"] == 1
    assert stored_files(loket) == in_progress  # a registration in progress keeps its photo


def test_the_worker_runs_retention_once_a_day(loket: Loket) -> None:
    assert run_daily(loket) is not None
    assert run_daily(loket) is None


def test_retention_cli_prints_counts(loket: Loket, tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DATABASE_URL": loket.settings.database_url,
           "LOKET_DATA_DIR": str(loket.settings.data_dir), "LOKET_AUTO_MIGRATE": "0"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "bot", "retention"], env=env, cwd=root, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["photo_files_deleted"] == 0 and "applications_anonymised" in counts


# ---- staff consoles ---------------------------------------------------------------------------


@pytest.fixture
def client(loket: Loket) -> FlaskClient:
    """The real app with an agent and an office admin of Jakarta Selatan."""
    loket.prepare_demo()
    with loket.sessions() as session, session.begin():
        add_staff(session, "ani.cs", "Ani", "agent", PASSWORD)
        add_staff(session, "budi.jaksel", "Budi", "office_admin", PASSWORD, "jakarta-selatan")
    return create_app(loket.settings, loket).test_client()


def log_in(client: FlaskClient, username: str) -> str:
    """Log in and return a CSRF token for later forms."""
    page = client.get("/staff/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"username": username, "password": PASSWORD, "csrf_token": token.group(1)}
    assert client.post("/staff/login", data=form).status_code == 302
    page = client.get("/agent" if username == "ani.cs" else "/office").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return token.group(1)


def views(loket: Loket, action: str) -> list[tuple[str | None, str | None]]:
    """The audited views of one kind: (staff username, record)."""
    with loket.sessions() as session:
        return [
            (username, target)
            for username, target in session.execute(
                select(Staff.username, AuditEntry.target)
                .join(Staff, Staff.id == AuditEntry.staff_id)
                .where(AuditEntry.action == action)
            ).all()
        ]


def test_staff_lists_mask_the_nik_and_full_views_are_audited(
    client: FlaskClient, loket: Loket
) -> None:
    applicant = Chat(loket, "jkt")
    register(applicant)
    pay(loket, billing_code(book(applicant, city="Jakarta Selatan")))  # Monday 23 November
    with loket.sessions() as session:
        reg = session.execute(select(Application.reg_number)).scalar_one()
    masked = "3273••••••••0001"

    csrf = log_in(client, "ani.cs")
    page = client.post("/agent", data={"q": NIK, "csrf_token": csrf}).get_data(as_text=True)
    found = page[page.index("<table") : page.index("</table>")]  # the search box echoes it
    assert reg in found and masked in found and NIK not in found  # a list: masked
    assert views(loket, "agent.search") == [("ani.cs", None)]  # the search itself is audited
    assert views(loket, "agent.view") == []
    full = client.get(f"/agent/application/{reg}").get_data(as_text=True)
    assert NIK in full and "Jl. Merdeka" in full  # the whole record, for verifying a caller
    assert views(loket, "agent.view") == [("ani.cs", reg)]
    client.post("/staff/logout", data={"csrf_token": csrf})

    log_in(client, "budi.jaksel")
    day = client.get("/office?day=2026-11-23").get_data(as_text=True)
    assert reg in day and masked in day and NIK not in day
    assert views(loket, "office.view") == []
    opened = client.get(f"/office/application/{reg}")
    assert opened.status_code == 200 and NIK in opened.get_data(as_text=True)
    assert views(loket, "office.view") == [("budi.jaksel", reg)]
    # The applicant sees who opened their record.
    reply = applicant.say("/datasaya")
    assert "Ani (membuka data lengkap, layanan pelanggan)" in reply
    assert "Budi (membuka data lengkap, kantor imigrasi)" in reply


def test_another_offices_admin_cannot_open_the_full_view(client: FlaskClient, loket: Loket) -> None:
    applicant = Chat(loket, "bdg")
    register(applicant)
    book(applicant, city="Bandung")
    with loket.sessions() as session:
        reg = session.execute(select(Application.reg_number)).scalar_one()
    log_in(client, "budi.jaksel")
    assert client.get(f"/office/application/{reg}").status_code == 404
    assert views(loket, "office.view") == []


def test_secure_delete_is_on_for_sqlite(loket: Loket, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("a SQLite pragma (PostgreSQL: see docs/breach-response.md on VACUUM)")
    with loket.sessions() as session:
        assert session.execute(text("PRAGMA secure_delete")).scalar_one() == 1


# ---- Telegram -------------------------------------------------------------------------------


def test_telegram_sends_the_data_as_a_document_read_at_sending_time(
    fake: FakeTelegram, telegram: TelegramChannel
) -> None:
    applicant = Chat(telegram.loket, str(CHAT), channel="telegram")
    register(applicant)
    fake.text(CHAT, "/datasaya")
    poll(telegram)
    (document,) = fake.methods("sendDocument")
    assert str(document["chat_id"]) == str(CHAT)
    body = json.loads(document["document"])
    assert body["applications"][0]["nik"] == NIK
    assert "3273••••••••0001" in "\n".join(fake.texts(CHAT))
    with telegram.loket.sessions() as session:
        payloads = [json.dumps(p) for p in session.execute(select(OutboxMessage.payload)).scalars()]
    sent = [p for p in payloads if '"export": "' in p]
    assert len(sent) == 1 and NIK not in sent[0]  # the outbox holds a token, not the data


def test_the_chat_api_carries_the_export_as_a_file(loket: Loket) -> None:
    import base64
    from dataclasses import replace

    loket.prepare_demo()
    loket.settings = replace(loket.settings, api_key="api-key-for-tests")
    client = create_app(loket.settings, loket).test_client()
    register(Chat(loket, "wa-6281", channel="api"))
    answer = client.post(
        "/api/v1/chat", json={"user": "wa-6281", "text": "/datasaya"},
        headers={"Authorization": "Bearer api-key-for-tests"},
    )  # fmt: skip
    files = [m["file"] for m in answer.get_json()["messages"] if "file" in m]
    assert len(files) == 1 and files[0]["content_type"] == "application/json"
    assert json.loads(base64.b64decode(files[0]["base64"]))["applications"][0]["nik"] == NIK


def test_the_terminal_writes_the_export_as_a_private_file(loket: Loket) -> None:
    import io
    import stat

    from bot.channels.terminal import TerminalChat

    register(Chat(loket, "console-user", channel="terminal"))
    out = io.StringIO()
    terminal = TerminalChat(loket, "console-user", jsonl=False, language=None, out=out)
    terminal.run(io.StringIO("/datasaya\n"))
    match = re.search(r"\(File: (.+\.json)\)", out.getvalue())
    assert match, out.getvalue()
    path = Path(match.group(1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_bytes())["applications"][0]["nik"] == NIK


def test_the_web_chat_tab_forgets_the_conversation_after_an_erasure(loket: Loket) -> None:
    loket.prepare_demo()
    client = create_app(loket.settings, loket).test_client()
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf
    headers = {"X-CSRFToken": csrf.group(1)}
    with client.session_transaction() as cookie:
        user = cookie["web_user"]
    register(Chat(loket, user, channel="web"))

    def send(body: dict[str, str]) -> list[dict[str, object]]:
        answer = client.post("/chat/send", json=body, headers=headers)
        messages: list[dict[str, object]] = answer.get_json()["messages"]
        return messages

    assert not any(m["forget"] for m in send({"text": "/hapusdata"}))
    assert not any(m["forget"] for m in send({"choice": "yes"}))
    erased = send({"text": "HAPUS"})
    assert erased[0]["forget"] is True  # before the menu question
    assert "sudah dihapus" in str(erased[0]["text"])
    assert NIK not in everything(loket)
