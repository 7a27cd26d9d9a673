"""Paspor keliling and Eazy Passport through the real engine, on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from bot.channels.telegram import TelegramChannel
from bot.phone_sender import RecordingSender
from bot.service import Loket
from bot.web import create_app
from storage.booking import HoldRefusal, hold_seat
from storage.models import (
    Application,
    Booking,
    Office,
    OutboxMessage,
    OutreachAccess,
    OutreachRequest,
    OutreachSession,
    RequestStatus,
    Slot,
)
from storage.outreach import Window, approve, create_session, is_member, progress
from storage.staff import add_staff
from tests.conftest import FakeClock
from tests.fake_telegram import FakeTelegram
from tests.test_consoles import PASSWORD, log_in, token
from tests.test_telegram import fake, telegram  # noqa: F401 (fixtures)
from tests.transcript import Chat, billing_code, make_nik, register

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)  # the fake clock's start, 10:00 WIB
TODAY = date(2026, 11, 22)
CIMAHI = (-6.8722, 107.5425)  # a village hall in Cimahi, about 10 km from the Bandung office


def office_id(loket: Loket, code: str = "bandung") -> int:
    """Return a demo office's id."""
    with loket.sessions() as session:
        return session.execute(select(Office.id).where(Office.code == code)).scalar_one()


def open_session(loket: Loket, access: str = OutreachAccess.EVERYONE, capacity: int = 30) -> int:
    """Open a paspor keliling session at Cimahi's town hall on 2 December; return its id."""
    with loket.sessions() as session, session.begin():
        outreach = create_session(
            session,
            office_id=office_id(loket),
            venue="Aula Kantor Kecamatan Cimahi Tengah",
            address="Jl. Raden Demang Hardjakusumah No. 1",
            city="Cimahi",
            latitude=CIMAHI[0],
            longitude=CIMAHI[1],
            access=access,
            documents="e-KTP, KK, akta kelahiran (asli)",
            windows=[Window(date(2026, 12, 2), time(8, 0), time(12, 0), capacity)],
            today=TODAY,
            now=NOW,
            staff_id=None,
        )
        return outreach.id


def approved_group(loket: Loket) -> OutreachRequest:
    """An Eazy Passport request from a school, approved for 3 December."""
    with loket.sessions() as session, session.begin():
        request = OutreachRequest(
            office_id=office_id(loket),
            organisation="SMA Negeri 3 Bandung",
            kind="school",
            contact_name="Ibu Rina",
            contact_phone="+6281311112222",
            expected=40,
            preferred_dates="awal Desember",
            venue="Aula SMA Negeri 3 Bandung",
            address="Jl. Belitung No. 8",
            city="Bandung",
            status=RequestStatus.NEW,
            channel="web",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(request)
        session.flush()
        window = Window(date(2026, 12, 3), time(9, 0), time(13, 0), 40)
        approve(session, request, window, -6.9106, 107.6170, "e-KTP, KK", TODAY, NOW, None)
        session.flush()
        session.expunge(request)
        return request


def test_an_applicant_near_the_venue_books_an_outreach_session(loket: Loket) -> None:
    session_id = open_session(loket)
    chat = Chat(loket, "near-venue")
    register(chat)
    reply = chat.location(-6.88, 107.55)  # a kilometre from the hall
    outreach = (
        "Paspor keliling, di luar kantor: Aula Kantor Kecamatan Cimahi Tengah, 1 km "
        "(terbuka untuk umum)"
    )
    assert outreach in reply.labels
    assert any("Kantor Imigrasi Kelas I TPI Bandung" in label for label in reply.labels)
    reply = chat.tap(outreach)
    assert "Paspor keliling (di luar kantor imigrasi): Aula Kantor Kecamatan Cimahi Tengah" in reply
    assert "Alamat: Jl. Raden Demang Hardjakusumah No. 1, Cimahi" in reply
    assert "https://www.google.com/maps/search/?api=1&query=-6.872200,107.542500" in reply
    assert "Dokumen yang dibawa: e-KTP, KK, akta kelahiran (asli)" in reply
    assert reply.labels[0] == "Rabu, 02 Desember 2026 (30 kursi)", reply.labels
    reply = chat.say("1")
    assert reply.labels[0] == "08.00–12.00 WIB (30 kursi)", reply.labels
    reply = chat.verified(chat.say("1"))
    assert "Kursi Anda ditahan" in reply, chat.transcript()
    assert "Paspor keliling (di luar kantor imigrasi)" in reply
    assert billing_code(reply)
    with loket.sessions() as session:
        booking = session.execute(select(Booking)).scalar_one()
        slot = session.get(Slot, booking.slot_id)
        assert slot is not None and slot.outreach_id == session_id and slot.taken == 1

    # Typed, the venue's city finds the session too, though no office is in Cimahi.
    other = Chat(loket, "typed-city")
    register(other, {"nik": make_nik(date(1991, 2, 3)), "birth_date": "03-02-1991"})
    reply = other.say("Cimahi")
    assert reply.labels == [
        "Paspor keliling, di luar kantor: Aula Kantor Kecamatan Cimahi Tengah, Cimahi "
        "(terbuka untuk umum)"
    ], reply.labels


def test_a_replacement_is_refused_a_new_passports_only_session(loket: Loket) -> None:
    open_session(loket, OutreachAccess.NEW_ONLY)
    chat = Chat(loket, "renewal")
    register(chat, {"had_passport": "ya", "nik": make_nik(date(1988, 1, 2)),
                    "birth_date": "02-01-1988"})  # fmt: skip
    chat.say("Cimahi")
    reply = chat.say("1")
    assert "khusus permohonan paspor baru" in reply
    assert chat.step() == "office"


def test_a_member_books_with_the_group_code(loket: Loket) -> None:
    group = approved_group(loket)
    assert group.group_code is not None and group.group_code.startswith("GRP-")
    member = Chat(loket, "member")
    reply = member.say(f"/start {group.group_code}")
    assert "Anda bergabung dengan grup Eazy Passport SMA Negeri 3 Bandung." in reply
    assert "Sesi grup: Aula SMA Negeri 3 Bandung, Kamis, 03 Desember 2026." in reply
    assert member.state()["flow"] == "registration"
    reply = register(member, {"consent": "setuju"})
    # Registered: the date question of the group's session comes at once.
    assert member.step() == "day", member.transcript()
    assert "Aula SMA Negeri 3 Bandung" in reply
    assert reply.labels[0] == "Kamis, 03 Desember 2026 (40 kursi)"
    member.say("1")
    reply = member.verified(member.say("1"))
    assert "Kursi Anda ditahan" in reply, member.transcript()
    with loket.sessions() as session:
        stored = session.get(OutreachRequest, group.id)
        assert stored is not None
        counts = progress(session, stored)
    assert (counts.members, counts.registered, counts.held, counts.paid) == (1, 1, 1, 0)

    # Typed with /grup, a wrong code is refused with the reason and asked again.
    other = Chat(loket, "typo")
    other.say("/grup")
    reply = other.say("GRP-1234")
    assert "Kode grup terdiri dari GRP- dan 6 huruf/angka" in reply
    assert other.step() == "code"


def test_a_non_member_is_refused_a_members_only_session(loket: Loket) -> None:
    group = approved_group(loket)
    outsider = Chat(loket, "outsider")
    register(outsider)
    reply = outsider.say("Bandung")
    members_only = (
        "Paspor keliling, di luar kantor: Aula SMA Negeri 3 Bandung, Bandung (khusus anggota grup)"
    )
    assert members_only in reply.labels
    reply = outsider.tap(members_only)
    assert "khusus anggota grup SMA Negeri 3 Bandung yang mendaftar dengan kode grup" in reply
    assert "kode grup" in reply
    assert outsider.step() == "office"
    # The seat itself is refused in storage too (a forged button, another door).
    with loket.sessions() as session, session.begin():
        application = session.execute(select(Application)).scalar_one()
        slot_id = session.execute(
            select(Slot.id).where(Slot.outreach_id == group.session_id)
        ).scalar_one()
        result = hold_seat(session, application, slot_id, NOW, loket.settings.payment_window)
        assert result.refusal is HoldRefusal.NOT_MEMBER
        assert session.get(OutreachSession, group.session_id) is not None


# ---- the pages: request form, office answers, status page ----------------------------------

CONTACT = "+6281377778888"


@pytest.fixture
def client(loket: Loket) -> FlaskClient:
    """The real app, with the demo offices, an agent and the Jakarta Selatan office admin."""
    loket.prepare_demo()
    with loket.sessions() as session, session.begin():
        add_staff(session, "ani.cs", "Ani", "agent", PASSWORD)
        add_staff(session, "budi.jaksel", "Budi", "office_admin", PASSWORD, "jakarta-selatan")
    return create_app(loket.settings, loket).test_client()


def request_form(**changes: str) -> dict[str, str]:
    """A school's request to the Jakarta Selatan office."""
    return {
        "office": "jakarta-selatan", "organisation": "SMA Negeri 70 Jakarta", "kind": "school",
        "contact_name": "Ibu Sari Wulandari", "contact_phone": "0813 7777 8888",
        "contact_email": "sari@example.com", "expected": "45",
        "preferred_dates": "7 atau 8 Desember", "venue": "Aula SMA Negeri 70",
        "address": "Jl. Bulungan No. 1, Kebayoran Baru", "city": "Jakarta Selatan", **changes,
    }  # fmt: skip


def sent_to(loket: Loket, sender: RecordingSender, phone: str) -> list[str]:
    """The texts the phone sender delivered to a number (queued in the outbox and sent right
    after the commit: wait for that delivery first)."""
    loket.deliver_phone_messages()
    return [text for to, text in sender.sent if to == phone]


def submit(client: FlaskClient, **changes: str) -> TestResponse:
    """Post the public request form with the page's CSRF token."""
    return client.post(
        "/eazy", data={**request_form(**changes), "csrf_token": token(client, "/eazy")}
    )


def test_a_request_is_proposed_another_date_approved_and_its_progress_counted(
    client: FlaskClient, loket: Loket, sender: RecordingSender
) -> None:
    small = submit(client, expected="12")
    assert small.status_code == 400
    assert "Eazy Passport melayani rombongan 30 sampai 2000 pemohon" in small.get_data(as_text=True)
    answer = submit(client)
    assert answer.status_code == 302
    status_path = answer.headers["Location"]
    assert status_path.startswith("/eazy/status/")
    assert "Sari" not in status_path and "8888" not in status_path  # no personal data in links
    assert "sudah diterima Kantor Imigrasi" in sent_to(loket, sender, CONTACT)[-1]
    page = client.get(status_path).get_data(as_text=True)
    assert "Menunggu jawaban kantor" in page
    assert client.get(status_path[:-2] + "xx").status_code == 404  # a forged link finds nothing

    assert log_in(client, "budi.jaksel") == 302
    listing = client.get("/office/keliling").get_data(as_text=True)
    assert "SMA Negeri 70 Jakarta" in listing
    with loket.sessions() as session:
        request_id = session.execute(select(OutreachRequest.id)).scalar_one()
    path = f"/office/eazy/{request_id}"
    proposed = client.post(path, data={"action": "propose", "day": "2026-12-09",
                                       "reason": "Tanggal 7-8 sudah penuh.",
                                       "csrf_token": token(client, path)})  # fmt: skip
    assert proposed.status_code == 302
    told = sent_to(loket, sender, CONTACT)[-1]
    assert "mengusulkan tanggal lain" in told and "Rabu, 09 Desember 2026" in told
    assert "Kantor mengusulkan tanggal lain" in client.get(status_path).get_data(as_text=True)
    # The contact person agrees on the page (a POST with the page's token); the office approves.
    accepted = client.post(status_path + "/setuju", data={"csrf_token": token(client, status_path)})
    assert accepted.status_code == 302
    page = client.get(status_path).get_data(as_text=True)
    assert "Terima kasih. Kantor imigrasi akan menyetujui tanggal itu." in page
    assert "Menunggu jawaban kantor" in page
    with loket.sessions() as session:
        agreed = session.get(OutreachRequest, request_id)
        assert agreed is not None and agreed.preferred_dates.endswith("2026-12-09")

    form = {"action": "approve", "day": "2026-12-09", "start": "08:00", "end": "13:00",
            "quota": "45", "latitude": "-6.2350", "longitude": "106.7990",
            "documents": "e-KTP, KK", "csrf_token": token(client, path)}  # fmt: skip
    no_place = client.post(path, data={**form, "latitude": ""})
    assert no_place.status_code == 400
    assert "Isi koordinat tempat" in no_place.get_data(as_text=True)
    assert client.post(path, data=form).status_code == 302
    with loket.sessions() as session:
        approved = session.get(OutreachRequest, request_id)
        assert approved is not None and approved.status == RequestStatus.APPROVED
        code = approved.group_code
        assert code is not None
    told = sent_to(loket, sender, CONTACT)[-1]
    assert "disetujui" in told and code in told and f"/?start={code}" in told

    # A member joins through the group's link and books; the page counts, names nobody.
    member = Chat(loket, "siswa-1")
    member.say(f"/start {code}")
    register(member, {"full_name": "rizky ramadhan"})
    member.say("1")
    assert "Kursi Anda ditahan" in member.verified(member.say("1")), member.transcript()
    client.post("/staff/logout", data={"csrf_token": token(client, "/office")})
    page = client.get(status_path).get_data(as_text=True)
    assert code in page
    assert 'data-count="registered">1<' in page and 'data-count="held">1<' in page
    assert 'data-count="paid">0<' in page
    assert "Rizky" not in page and "RIZKY" not in page
    # The office sees who registered.
    assert log_in(client, "budi.jaksel") == 302
    assert "RIZKY RAMADHAN" in client.get(path).get_data(as_text=True).upper()


def test_a_request_is_declined_with_a_reason_and_isolated_by_office(
    client: FlaskClient, loket: Loket, sender: RecordingSender
) -> None:
    assert submit(client, office="bandung").status_code == 302
    assert submit(client).status_code == 302
    with loket.sessions() as session:
        bandung_id, jaksel_id = session.execute(
            select(OutreachRequest.id).order_by(OutreachRequest.id)
        ).scalars()
    assert log_in(client, "budi.jaksel") == 302
    assert client.get(f"/office/eazy/{bandung_id}").status_code == 404
    path = f"/office/eazy/{jaksel_id}"
    short = client.post(path, data={"action": "decline", "reason": "no",
                                    "csrf_token": token(client, path)})  # fmt: skip
    assert short.status_code == 400
    assert "Tulis alasan" in short.get_data(as_text=True)
    reason = "Petugas sedang melayani haji sampai Januari."
    answer = client.post(path, data={"action": "decline", "reason": reason,
                                     "csrf_token": token(client, path)})  # fmt: skip
    assert answer.status_code == 302
    told = sent_to(loket, sender, CONTACT)[-1]
    assert "tidak dapat dipenuhi" in told and reason in told
    again = client.post(path, data={"action": "decline", "reason": reason,
                                    "csrf_token": token(client, path)})  # fmt: skip
    assert again.status_code == 400
    assert "sudah diputuskan" in again.get_data(as_text=True)


class BrokenSender:
    """A phone sender whose provider is down."""

    def send(self, phone: str, text: str) -> None:
        """Fail as an SMS gateway outage would."""
        raise ConnectionError("gateway down")


def test_an_answer_stands_when_the_message_to_the_contact_fails(
    client: FlaskClient, loket: Loket, sender: RecordingSender, clock: FakeClock
) -> None:
    assert submit(client).status_code == 302
    loket.deliver_phone_messages()
    loket.phone_delivery.sender = BrokenSender()
    assert log_in(client, "budi.jaksel") == 302
    with loket.sessions() as session:
        request_id = session.execute(select(OutreachRequest.id)).scalar_one()
    path = f"/office/eazy/{request_id}"
    answer = client.post(path, data={"action": "decline", "reason": "Petugas sedang penuh.",
                                     "csrf_token": token(client, path)})  # fmt: skip
    assert answer.status_code == 302
    # Staff are told the message is queued, not that it arrived.
    assert "1 pesan ke penanggung jawab diantrekan" in client.get(path).get_data(as_text=True)
    assert loket.deliver_phone_messages() == 0  # the gateway is down: the message waits
    with loket.sessions() as session:
        declined = session.get(OutreachRequest, request_id)
        assert declined is not None and declined.status == RequestStatus.DECLINED
        waiting = session.execute(
            select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
        ).scalar_one()
        assert (waiting.channel, waiting.user_ref, waiting.attempts) == ("sms", CONTACT, 1)
    loket.phone_delivery.sender = sender  # the gateway is back
    clock.advance(seconds=10)  # past the first retry's wait (5 s)
    told = sent_to(loket, sender, CONTACT)
    assert len(told) == 2 and "tidak dapat dipenuhi" in told[-1]
    assert sent_to(loket, sender, CONTACT) == told  # delivered once


def test_customer_care_records_a_request_for_a_caller(
    client: FlaskClient, loket: Loket, sender: RecordingSender
) -> None:
    assert log_in(client, "ani.cs") == 302
    form = {**request_form(organisation="Masjid Al-Ikhlas", kind="mosque"),
            "csrf_token": token(client, "/agent/eazy")}  # fmt: skip
    assert client.post("/agent/eazy", data=form).status_code == 302
    with loket.sessions() as session:
        stored = session.execute(select(OutreachRequest)).scalar_one()
        assert (stored.channel, stored.kind, stored.contact_phone) == ("agent", "mosque", CONTACT)
        assert stored.created_by is not None
    assert "Masjid Al-Ikhlas" in sent_to(loket, sender, CONTACT)[-1]


def test_the_public_form_is_rate_limited_per_address(client: FlaskClient) -> None:
    csrf = token(client, "/eazy")
    answers = [
        client.post("/eazy", data={"csrf_token": csrf, "office": "x"}).status_code
        for _ in range(11)
    ]
    assert answers[:10] == [400] * 10
    assert answers[10] == 429


def test_an_office_admin_opens_and_announces_an_outreach_session(
    client: FlaskClient, loket: Loket
) -> None:
    watcher = Chat(loket, "watcher")
    watcher.say("/langganan")
    watcher.say("Jakarta Selatan")
    assert log_in(client, "budi.jaksel") == 302
    form = {"venue": "Mal Gandaria City", "address": "Jl. Sultan Iskandar Muda",
            "city": "Jakarta Selatan", "latitude": "-6.2443", "longitude": "106.7834",
            "day": "2026-12-05", "last_day": "2026-12-06", "start": "10:00", "end": "16:00",
            "quota": "60", "access": "everyone", "documents": "e-KTP dan KK asli",
            "announce": "1", "csrf_token": token(client, "/office/keliling/baru")}  # fmt: skip
    past = client.post("/office/keliling/baru", data={**form, "day": "2026-11-20", "last_day": ""})
    assert past.status_code == 400 and "setelah hari ini" in past.get_data(as_text=True)
    assert client.post("/office/keliling/baru", data=form).status_code == 302
    listing = client.get("/office/keliling").get_data(as_text=True)
    assert "Mal Gandaria City" in listing and "0/60" in listing
    with loket.sessions() as session:
        windows = session.execute(select(Slot).where(Slot.outreach_id.is_not(None))).scalars()
        assert sorted(w.day.isoformat() for w in windows) == ["2026-12-05", "2026-12-06"]
    assert any("Paspor keliling" in m.text and "Mal Gandaria City" in m.text
               for m in loket.pending_messages("test", "watcher"))  # fmt: skip


def test_the_telegram_deep_link_joins_the_group(
    fake: FakeTelegram,  # noqa: F811
    telegram: TelegramChannel,  # noqa: F811
    loket: Loket,
) -> None:
    group = approved_group(loket)
    fake.text(7301, f"/start {group.group_code}")  # what Telegram sends for t.me/<bot>?start=
    telegram.poll(rounds=1, timeout=0)
    said = "\n".join(fake.texts(7301))
    assert "Anda bergabung dengan grup Eazy Passport SMA Negeri 3 Bandung." in said
    with loket.sessions() as session:
        assert is_member(session, group.id, "telegram", "7301")
