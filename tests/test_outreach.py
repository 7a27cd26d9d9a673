"""Paspor keliling and Eazy Passport through the real engine, on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import select

from bot.service import Loket
from storage.booking import HoldRefusal, hold_seat
from storage.models import (
    Application,
    Booking,
    Office,
    OutreachAccess,
    OutreachRequest,
    OutreachSession,
    RequestStatus,
    Slot,
)
from storage.outreach import Window, approve, create_session, progress
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
