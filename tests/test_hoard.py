"""Hoarding made pointless: a verified phone number before a hold, and 5 people per number."""

from __future__ import annotations

import io
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.images import NEAR_DISTANCE, CleanDocument, check_upload
from bot.phone_sender import RecordingSender
from bot.service import Loket
from storage.applications import (
    NEAR_WITHIN,
    DocumentRecord,
    PhotoReused,
    attach_document,
    create_application,
)
from storage.booking import HoldRefusal, hold_seat
from storage.db import make_engine, make_session_factory
from storage.models import (
    Application,
    AuditEntry,
    Booking,
    Document,
    PhoneCode,
    PhoneVerification,
    PhotoMark,
)
from storage.phones import record_verification
from storage.staff import add_staff
from tests.conftest import FakeClock
from tests.seats_helpers import NOW, make_applications, make_slot
from tests.test_delivery import serve_embedded
from tests.transcript import ADULT_NEW, Chat, book, fill_until, make_nik, photo_bytes, register

PHONE = "+6281234567890"


@pytest.fixture
def hoard(loket: Loket) -> Loket:
    """The real service, whose holds need a verified phone number (the default).

    Its one-time codes go to the `sender` fixture of tests/conftest.py, which records them.
    """
    assert loket.settings.require_verified_phone
    return loket


def registered(loket: Loket, user: str, channel: str, actor: int | None = None) -> Chat:
    """Register an adult through the real conversation, up to choosing an office."""
    chat = Chat(loket, user, channel=channel, actor=actor)
    register(chat)
    return chat


def test_web_chat_holds_only_after_the_one_time_code(hoard: Loket, sender: RecordingSender) -> None:
    chat = registered(hoard, "web-cookie-1", "web")
    reply = book(chat, verify=False)
    assert "Sebelum kursi ditahan" in reply and "kode 6 angka" in reply
    assert chat.step() == "verify_phone"
    reply = chat.say("0812 3456 7890")
    assert chat.step() == "phone_code" and "+62812****7890" in reply
    hoard.deliver_phone_messages()
    code = sender.last_code(PHONE)
    with hoard.sessions() as session:
        stored = session.execute(select(PhoneCode)).scalar_one()
        assert code not in stored.code_hash and len(stored.code_hash) == 64  # hashed at rest
    wrong = "000000" if code != "000000" else "111111"
    assert "Kode salah. Sisa percobaan: 4." in chat.say(wrong)
    reply = chat.say(code)
    assert "Kode billing" in reply
    with hoard.sessions() as session:
        proof = session.get(PhoneVerification, ("web", "web-cookie-1"))
        assert proof is not None and (proof.phone, proof.method) == (PHONE, "code")
        assert session.execute(select(Booking.phone)).scalar_one() == PHONE


def test_one_time_code_expires_after_ten_minutes_and_five_tries(
    hoard: Loket, sender: RecordingSender, clock: FakeClock
) -> None:
    chat = registered(hoard, "web-cookie-2", "web")
    book(chat, verify=False)
    chat.say("0812 3456 7890")
    hoard.deliver_phone_messages()
    code = sender.last_code(PHONE)
    clock.advance(minutes=10)
    assert "sudah tidak berlaku" in chat.say(code)
    chat.say("kembali")
    assert chat.step() == "verify_phone"
    chat.say("0812 3456 7890")
    hoard.deliver_phone_messages()
    code = sender.last_code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    for _try in range(4):
        assert "Kode salah" in chat.say(wrong)
    assert "sudah tidak berlaku" in chat.say(wrong)  # the fifth wrong try uses it up
    assert "sudah tidak berlaku" in chat.say(code)  # even the right code, afterwards
    assert chat.step() == "phone_code"


def test_telegram_holds_only_with_the_accounts_own_contact(hoard: Loket) -> None:
    chat = registered(hoard, "7001", "telegram")
    reply = book(chat, verify=False)
    assert "Bagikan nomor HP saya" in reply
    # A typed number (or someone else's card, which the adapter turns into text) is refused.
    assert "tidak bisa dipakai untuk verifikasi" in chat.say("0812 3456 7890")
    reply = chat.contact("+62 812-3456-7890")
    assert "Kode billing" in reply
    with hoard.sessions() as session:
        proof = session.get(PhoneVerification, ("telegram", "7001"))
        assert proof is not None and (proof.phone, proof.method) == (PHONE, "contact")


def test_chat_api_holds_with_the_number_the_gateway_vouches_for(hoard: Loket) -> None:
    chat = registered(hoard, "wa-1", "api")
    reply = book(chat, verify=False)
    assert "belum mengirim nomor terverifikasi" in reply
    assert "belum terverifikasi" in chat.say("halo")
    hoard.vouch_phone("api", "wa-1", PHONE, "gateway")  # what bot/api.py does per request
    assert "Kode billing" in chat.say("lanjut")


def test_agent_vouches_for_the_callers_number_and_it_is_audited(hoard: Loket) -> None:
    with hoard.sessions() as session, session.begin():
        agent_id = add_staff(session, "agen.hoard", "Agen", "agent", "kata-sandi-uji-1").id
    chat = registered(hoard, "+6281200000009", "agent", actor=agent_id)
    assert "penelepon yang sudah Anda pastikan" in book(chat, verify=False)
    assert "Kode billing" in chat.say("0812 3456 7890")
    with hoard.sessions() as session:
        proof = session.get(PhoneVerification, ("agent", "+6281200000009"))
        assert proof is not None and (proof.method, proof.verified_by) == ("agent", agent_id)
        vouch = session.execute(
            select(AuditEntry).where(AuditEntry.action == "phone.vouch")
        ).scalar_one()
        assert vouch.staff_id == agent_id and vouch.target == "+62812****7890"


def test_sixth_person_on_one_number_is_refused_in_the_chat(hoard: Loket) -> None:
    with hoard.sessions() as session, session.begin():
        slot_id = make_slot(session, capacity=10)
        for number, application_id in enumerate(make_applications(session, 5, "family")):
            application = session.get(Application, application_id)
            assert application is not None
            record_verification(session, "web", f"other-{number}", PHONE, "code", NOW)
            held = hold_seat(session, application, slot_id, NOW, timedelta(hours=2), PHONE)
            assert held.booking is not None
        record_verification(session, "telegram", "7002", PHONE, "contact", NOW)
    chat = registered(hoard, "7002", "telegram")
    reply = book(chat)
    assert "sudah memegang jadwal untuk 5 orang" in reply
    assert "Kode billing" not in reply


def test_eight_threads_racing_for_the_fifth_place_of_one_number_get_one(loket: Loket) -> None:
    with loket.sessions() as session, session.begin():
        slot_id = make_slot(session, capacity=20)
        ids = make_applications(session, 13, "race")
    url = loket.db.url.render_as_string(hide_password=False)
    engine = make_engine(url)
    sessions = make_session_factory(engine)

    def hold(application_id: int) -> HoldRefusal | None:
        with sessions() as session, session.begin():
            application = session.get(Application, application_id)
            assert application is not None
            result = hold_seat(session, application, slot_id, NOW, timedelta(hours=2), PHONE)
        return result.refusal

    try:
        for application_id in ids[:4]:  # four of a family hold first
            assert hold(application_id) is None
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def run(application_id: int) -> None:
            barrier.wait()
            refusal = hold(application_id)
            with lock:
                outcomes[refusal.value if refusal else "held"] += 1

        threads = [threading.Thread(target=run, args=(i,)) for i in ids[4:12]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert hold(ids[12]) is HoldRefusal.PHONE_LIMIT  # and a sixth person afterwards
    finally:
        engine.dispose()
    assert outcomes == Counter({"held": 1, "phone_limit": 7})
    with loket.sessions() as session:
        active = session.execute(select(Booking).where(Booking.phone == PHONE)).scalars().all()
    assert len(active) == 5


# ---- one photo on many NIKs' applications -------------------------------------------------


def edited(data: bytes, quality: int, trim: float, brighter: float) -> bytes:
    """The same photo re-encoded at `quality`, `trim` of each side cut off, brightened by the
    factor `brighter` (a broker's edits; bench/photo_reuse.py measures which are caught)."""
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    dx, dy = int(width * trim), int(height * trim)
    image = ImageEnhance.Brightness(image.crop((dx, dy, width - dx, height - dy))).enhance(brighter)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


OTHER_NIK = make_nik(date(1992, 3, 5), serial=2)


def test_a_ktp_photo_reused_for_another_nik_is_refused_and_asked_again(hoard: Loket) -> None:
    first = Chat(hoard, "first", channel="web")
    register(first)
    ktp = photo_bytes(f"doc_ktp:{ADULT_NEW['nik']}")  # the photo the first applicant sent
    second = Chat(hoard, "second", channel="web")
    fill_until(second, "doc_ktp", {"nik": OTHER_NIK, "birth_date": "05-03-1992"})
    # Re-encoded at another quality, 1% trimmed off each side, 10% brighter (caught for 94% of
    # photos, bench/photo_reuse.py; heavier trims escape, as README's defence table says).
    reply = second.photo(edited(ktp, quality=70, trim=0.01, brighter=1.1))
    assert "Foto e-KTP ini sudah dipakai dalam permohonan atas NIK lain" in reply
    assert second.step() == "doc_ktp"  # the application goes on: the photo is asked again
    assert "Dokumen 2 dari 3: Kartu Keluarga" in second.photo(tag="own-ktp")


def test_one_photo_uploaded_by_two_registrations_at_once_is_asked_again_at_submission(
    hoard: Loket,
) -> None:
    # Both upload before either submits, so the check at upload time (which reads submitted
    # applications) passes both; the second submission finds the first's photo and asks again.
    first = Chat(hoard, "first", channel="web")
    fill_until(first, "summary")
    ktp = photo_bytes(f"doc_ktp:{ADULT_NEW['nik']}")
    second = Chat(hoard, "second", channel="web")
    other = {"nik": OTHER_NIK, "birth_date": "05-03-1992"}
    fill_until(second, "doc_ktp", other)
    assert "Dokumen 2 dari 3" in second.photo(edited(ktp, quality=70, trim=0.01, brighter=1.1))
    fill_until(second, "summary", other)
    assert "Pendaftaran berhasil dikirim" in first.say("benar, kirim")
    reply = second.say("benar, kirim")
    assert "Foto e-KTP ini sudah dipakai dalam permohonan atas NIK lain" in reply
    assert "Pendaftaran berhasil dikirim" not in reply
    assert second.step() == "doc_ktp"  # nothing else is lost: only this photo is asked again
    second.photo(tag="own-ktp")
    assert second.step() == "summary"
    assert "Pendaftaran berhasil dikirim" in second.say("benar, kirim")
    with hoard.sessions() as session:
        niks = session.scalars(select(Application.nik).order_by(Application.id)).all()
    assert niks == [ADULT_NEW["nik"], OTHER_NIK]


def applicant(number: int, nik: str, born: date) -> Application:
    """A web-chat application for `nik`, not yet stored, without documents."""
    return Application(
        channel="web", account_ref=f"photo-{number}", service="reguler", application_type="baru",
        passport_kind="biasa", validity_years=5, category="adult", nik=nik,
        full_name=f"PEMOHON {number}", birth_place="Bandung", birth_date=born, sex="M",
        phone="+6281234567890", address="Jl. Merdeka 10 Bandung", travel_purpose="wisata",
        fee_amount=350_000, fee_schedule="PP 45/2024", answers={},
    )  # fmt: skip


def claimed_side_by_side(loket: Loket, claim: Callable[[Session, int, DocumentRecord], None],
                         claims: int = 8) -> Counter[str]:  # fmt: skip
    """Run `claim(session, number, record)` for `claims` numbers at once, each in its own
    transaction on its own connection, all with one photo's record; count the outcomes."""
    checked = check_upload(photo_bytes("doc_ktp:race"), loket.image_rules)
    assert isinstance(checked, CleanDocument) and checked.phash is not None
    phash = checked.phash
    url = loket.db.url.render_as_string(hide_password=False)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(claims)

    def run(number: int) -> None:
        record = DocumentRecord("ktp", f"{number:064x}", "image/jpeg", 1000, phash, True)
        barrier.wait()
        try:
            with sessions() as session, session.begin():
                claim(session, number, record)
            outcome = "stored"
        except PhotoReused:
            outcome = "photo_reused"
        with lock:
            outcomes[outcome] += 1

    try:
        threads = [threading.Thread(target=run, args=(n,)) for n in range(claims)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        engine.dispose()
    return outcomes


def test_near_copies_submitted_side_by_side_are_claimed_once(loket: Loket) -> None:
    # Eight submissions of one photo for eight NIKs, released together: one is stored, the
    # others are refused (on PostgreSQL they wait on the photo's band locks, on SQLite on
    # the one writer), whatever the timing.
    assert NEAR_WITHIN == NEAR_DISTANCE  # submission refuses what upload would have refused
    births = [date(1990, 1, 1 + n) for n in range(8)]
    people = [applicant(n, make_nik(born, serial=n + 1), born) for n, born in enumerate(births)]

    def submit(session: Session, number: int, record: DocumentRecord) -> None:
        create_application(session, people[number], [record])

    outcomes = claimed_side_by_side(loket, submit)
    assert outcomes == Counter({"stored": 1, "photo_reused": 7})
    with loket.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 1
        assert session.scalar(select(func.count()).select_from(PhotoMark)) == 8  # one per band


def test_near_copies_sent_late_through_upload_links_side_by_side_are_claimed_once(
    loket: Loket,
) -> None:
    # Callers registered by phone send their photos later through their upload links
    # (`attach_document`): one photo sent for eight NIKs at once is attached once.
    births = [date(1991, 2, 1 + n) for n in range(8)]
    with loket.sessions() as session, session.begin():
        ids = [create_application(session, applicant(n, make_nik(born, serial=n + 1), born),
                                  []).id for n, born in enumerate(births)]  # fmt: skip

    def attach(session: Session, number: int, record: DocumentRecord) -> None:
        stored = session.get(Application, ids[number])
        assert stored is not None
        assert attach_document(session, stored, record)

    outcomes = claimed_side_by_side(loket, attach)
    assert outcomes == Counter({"stored": 1, "photo_reused": 7})
    with loket.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 1
        assert session.scalar(select(func.count()).select_from(PhotoMark)) == 8


def test_family_documents_and_different_photos_are_accepted(hoard: Loket) -> None:
    first = Chat(hoard, "first", channel="web")
    register(first)
    kk = photo_bytes(f"doc_kk:{ADULT_NEW['nik']}")
    second = Chat(hoard, "second", channel="web")
    fill_until(second, "doc_ktp", {"nik": OTHER_NIK, "birth_date": "05-03-1992"})
    assert "Dokumen 2 dari 3: Kartu Keluarga" in second.photo(tag="own-ktp")
    # The same Kartu Keluarga (a spouse registering from their own phone) is welcome.
    assert "Dokumen 3 dari 3" in second.photo(edited(kk, quality=70, trim=0.01, brighter=1.1))
    second.photo(tag="own-diploma")
    assert "Pendaftaran berhasil dikirim" in second.say("benar, kirim")
    with hoard.sessions() as session:
        stored = session.scalars(select(Document).where(Document.kind == "ktp")).all()
        assert len(stored) == 2 and all(document.phash for document in stored)


# ---- the identity stand-in says what it is ------------------------------------------------


def test_the_identity_stand_in_says_at_start_up_that_it_checks_structure_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Said by the long-running commands as they start (here `serve`), not by every short
    # command, so a command that fails still prints one line (tests/test_delivery.py).
    with caplog.at_level(logging.INFO, logger="bot.service"):
        serve_embedded(tmp_path, monkeypatch, io.StringIO())
    lines = [record.getMessage() for record in caplog.records if record.name == "bot.service"]
    said = [line for line in lines if line.startswith("identity checks: ")]
    assert said == [
        "identity checks: local stand-in: NIK structure only (region, birth date, sex), "
        "not checked against the population registry"
    ]
    # Only what the registry verifies: no NIK, name or number in the line.
    assert not re.search(r"\d{6,}|\+62", said[0])
