"""Booking through the real engine: offices, dates, windows, holds, billing, every refusal."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

from sqlalchemy import func, select, update
from stdnum import damm

from bot.payments import apply_notice, sweep
from bot.service import Loket
from storage.models import (
    Application,
    BillingCode,
    Booking,
    Office,
    Slot,
    SlotKind,
)
from tests.conftest import FakeClock
from tests.transcript import Chat, billing_code, book, make_nik, register


def office(loket: Loket, code: str) -> Office:
    """Return a demo office by its code."""
    with loket.sessions() as session:
        return session.execute(select(Office).where(Office.code == code)).scalar_one()


def slot_of(loket: Loket, booking_code: str | None = None) -> Slot:
    """Return the slot of the only (or the named) booking."""
    with loket.sessions() as session:
        statement = select(Booking)
        if booking_code:
            statement = statement.where(Booking.code == booking_code)
        booking = session.execute(statement.order_by(Booking.id.desc()).limit(1)).scalar_one()
        slot = session.get(Slot, booking.slot_id)
        assert slot is not None
        return slot


def pay(loket: Loket, code: str, amount: int = 950_000, reference: str = "REF-1") -> str:
    """Pay a billing code in full now and return the outcome."""
    with loket.sessions() as session:
        now = loket.now(session)
    return apply_notice(loket, reference=reference, code=code, amount=amount, paid_at=now).outcome


def test_booking_right_after_registration(chat: Chat, loket: Loket) -> None:
    reply = register(chat)
    assert "Di kota mana" in reply.question.text
    reply = chat.say("bandng")  # a typo is forgiven
    assert reply.labels == ["Kantor Imigrasi Kelas I TPI Bandung (Bandung)"]
    reply = chat.say("1")
    assert "Pilih tanggal di Kantor Imigrasi Kelas I TPI Bandung" in reply
    # Sunday 22 November: the next weekdays, each with 110 free seats, then ways out.
    assert reply.labels[0] == "Senin, 23 November 2026 (110 kursi)"
    assert reply.labels[-2:] == ["Pilih kantor lain", "Kembali ke menu"]
    reply = chat.say("1")
    assert reply.labels == [
        "08.00–10.00 WIB (40 kursi)",
        "10.00–12.00 WIB (40 kursi)",
        "13.00–15.00 WIB (30 kursi)",
    ]
    reply = chat.verified(chat.say("10.00"))  # the first hold proves the phone number first
    code = billing_code(reply)
    assert len(code) == 15 and damm.is_valid(code)
    for fragment in (
        "Kursi Anda ditahan",
        "Jadwal: Senin, 23 November 2026, 10.00–12.00 WIB",
        "Jumlah: Rp950.000",
        "Bayar sebelum: Minggu, 22 November 2026 pukul 12.00 WIB",
        "MPN G2",
    ):
        assert fragment in reply, reply.text
    slot = slot_of(loket)
    assert (slot.start_time, slot.taken) == (time(10, 0), 1)
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        assert application.status == "held"
        billing = session.execute(select(BillingCode)).scalar_one()
        assert (billing.code, billing.amount, billing.status) == (code, 950_000, "unpaid")


def test_nearest_offices_by_location(chat: Chat) -> None:
    register(chat)
    reply = chat.location(-6.92, 107.60)
    assert reply.labels[0].startswith("Kantor Imigrasi Kelas I TPI Bandung (")
    assert reply.labels[0].endswith(" km)")
    assert "Jakarta Selatan" in reply.labels[1]
    assert len(reply.labels) == 3


def test_unknown_city_lists_the_offices(chat: Chat) -> None:
    register(chat)
    reply = chat.say("Pontianak")
    assert 'Belum ada kantor imigrasi Loket di "Pontianak"' in reply
    assert "Bandung" in reply and "Jayapura" in reply
    assert chat.step() == "office_query"


def test_times_are_in_the_office_zone_with_its_label(chat: Chat, loket: Loket) -> None:
    register(chat)
    reply = book(chat, "Jayapura")
    # 10:00 WIB is 12:00 WIT; the 2-hour deadline is 14:00 WIT.
    assert "08.00–10.00 WIT" in reply
    assert "Bayar sebelum: Minggu, 22 November 2026 pukul 14.00 WIT" in reply
    denpasar = Chat(loket, "bali")
    register(denpasar, {"nik": make_nik(date(1991, 1, 2)), "birth_date": "02-01-1991"})
    assert "pukul 13.00 WITA" in book(denpasar, "Denpasar")


def test_before_release_says_exactly_when_quota_opens(chat: Chat, loket: Loket) -> None:
    bandung = office(loket, "bandung")
    with loket.sessions() as session, session.begin():
        session.execute(
            update(Slot)
            .where(Slot.office_id == bandung.id, Slot.day < date(2027, 1, 1))
            .values(closed=True)
        )
    register(chat)
    chat.say("Bandung")
    reply = chat.say("1")
    assert "Kuota di Kantor Imigrasi Kelas I TPI Bandung belum dibuka" in reply
    assert "dibuka Selasa, 01 Desember 2026 pukul 08.00 WIB" in reply
    assert reply.labels == ["Pilih kantor lain", "Kembali ke menu"]
    reply = chat.tap("Pilih kantor lain")
    assert chat.step() == "office_query"


def test_sold_out_between_listing_and_choosing(loket: Loket) -> None:
    bandung = office(loket, "bandung")
    with loket.sessions() as session, session.begin():
        slots = (
            session.execute(
                select(Slot).where(Slot.office_id == bandung.id, Slot.day == date(2026, 11, 23))
            )
            .scalars()
            .all()
        )
        for slot in slots:
            slot.taken = slot.capacity - (
                1 if slot.start_time == time(8, 0) and slot.kind == "reguler" else 0
            )
    first, second = Chat(loket, "first"), Chat(loket, "second")
    register(first)
    register(second, {"nik": make_nik(date(1992, 3, 4)), "birth_date": "04-03-1992"})
    for chat in (first, second):
        chat.say("Bandung")
        chat.say("1")
        assert chat.say("1").labels == ["08.00–10.00 WIB (1 kursi)"]
    assert "Kursi Anda ditahan" in first.verified(first.say("1"))
    reply = second.verified(second.say("1"))
    assert "Maaf, kursi di tanggal itu baru saja habis" in reply
    assert second.step() == "day"
    assert "Senin, 23 November 2026" not in " ".join(reply.labels)
    assert slot_of(loket).taken == slot_of(loket).capacity


def test_held_application_cannot_book_a_second_seat(chat: Chat) -> None:
    register(chat)
    book(chat)
    reply = chat.say("/jadwal")
    assert "Belum ada permohonan yang menunggu jadwal" in reply


def test_cancelling_returns_the_seat(chat: Chat, loket: Loket) -> None:
    register(chat)
    book(chat)
    assert slot_of(loket).taken == 1
    reply = chat.say("/batalkan")
    reply = chat.say("1")
    assert "Batalkan permohonan" in reply.question.text
    reply = chat.tap("Ya, batalkan permohonan")
    assert "dibatalkan" in reply and "Kursinya sudah dilepas" in reply
    assert slot_of(loket).taken == 0
    with loket.sessions() as session:
        assert session.execute(select(BillingCode.status)).scalar_one() == "cancelled"
    assert "Dibatalkan" in chat.say("/status")


def test_payment_confirms_with_a_qr_code(chat: Chat, loket: Loket) -> None:
    register(chat)
    code = billing_code(book(chat))
    assert pay(loket, code) == "confirmed"
    notices = loket.pending_messages(chat.channel, chat.user)
    assert len(notices) == 1
    notice = notices[0]
    booking_code = re.search(r"Kode booking: (BK-\w{4}-\w{4})", notice.text)
    assert booking_code and notice.qr == booking_code.group(1)
    assert "Pembayaran diterima. Jadwal Anda sudah pasti." in notice.text
    assert "Bawa dokumen asli: e-KTP, Kartu Keluarga, Akta kelahiran" in notice.text
    assert loket.pending_messages(chat.channel, chat.user) == []  # delivered once
    assert "Sudah dibayar. Jadwal pasti" in chat.say("/status")


def test_asking_about_a_payment_gets_the_true_status(chat: Chat, loket: Loket) -> None:
    register(chat)
    code = billing_code(book(chat))
    reply = chat.say("sudah bayar tapi belum berubah")
    assert "Menunggu pembayaran" in reply and "notifikasi dari bank belum kami terima" in reply
    assert code[:4] in reply
    pay(loket, code)
    assert "Sudah dibayar" in chat.say("saya sudah bayar")


def test_unpaid_hold_expires_and_the_seat_returns(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    register(chat)
    first_code = billing_code(book(chat))
    clock.advance(hours=2, minutes=1)
    assert sweep(loket) == 1
    assert slot_of(loket).taken == 0
    notices = loket.pending_messages(chat.channel, chat.user)
    assert "Batas waktu pembayaran" in notices[0].text and "/jadwal" in notices[0].text
    reply = chat.say("/status")
    assert "belum memilih jadwal" in reply and "sudah kedaluwarsa" in reply
    second_code = billing_code(book(chat))
    assert second_code != first_code
    assert pay(loket, first_code, reference="LATE") == "late_refund"


def test_reschedule_rules(chat: Chat, loket: Loket, clock: FakeClock) -> None:
    register(chat)
    code = billing_code(book(chat))
    reply = chat.say("/ubahjadwal")
    assert "Belum ada jadwal yang sudah dibayar" in reply
    pay(loket, code)
    reply = chat.say("/ubahjadwal")
    assert "Perubahan hanya boleh satu kali" in reply.question.text
    chat.say("1")
    assert chat.step() == "day"
    chat.say("2")  # Tuesday 24 November
    reply = chat.say("13.00")
    assert "Jadwal berhasil diubah ke Selasa, 24 November 2026, 13.00–15.00 WIB" in reply
    assert any(message.qr for message in reply.messages)
    with loket.sessions() as session:
        taken = dict(
            session.execute(
                select(Slot.day, func.sum(Slot.taken)).where(Slot.taken > 0).group_by(Slot.day)
            ).all()
        )
    assert taken == {date(2026, 11, 24): 1}
    chat.say("/ubahjadwal")
    assert "Perubahan jadwal hanya boleh satu kali" in chat.say("1")


def test_reschedule_is_refused_later_than_h_minus_1(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    register(chat)
    pay(loket, billing_code(book(chat)))  # Monday 23 November
    clock.advance(hours=18)  # Monday 23 November, 04:00 WIB
    chat.say("/ubahjadwal")
    reply = chat.say("1")
    assert "paling lambat sehari sebelum tanggal kedatangan (H-1)" in reply


def test_simpatik_sessions_take_new_and_expired_only(loket: Loket) -> None:
    bandung = office(loket, "bandung")
    saturday = date(2026, 11, 28)
    with loket.sessions() as session, session.begin():
        session.add(
            Slot(office_id=bandung.id, day=saturday, start_time=time(8, 0), end_time=time(12, 0),
                 kind=SlotKind.SIMPATIK, capacity=20, taken=0,
                 release_at=datetime(2026, 11, 1, tzinfo=UTC), closed=False,
                 note="Paspor simpatik")
        )  # fmt: skip
    new = Chat(loket, "new-applicant")
    register(new)
    new.say("Bandung")
    reply = new.say("1")
    assert "Sabtu, 28 November 2026: Paspor Simpatik (20 kursi)" in reply.labels
    new.tap("Sabtu, 28 November 2026: Paspor Simpatik (20 kursi)")
    assert "Kursi Anda ditahan" in new.verified(new.say("1"))

    lost = Chat(loket, "lost-passport")
    register(lost, {"had_passport": "ya", "replace_reason": "hilang",
                    "old_passport_number": "lewati",
                    "nik": make_nik(date(1993, 5, 6)), "birth_date": "06-05-1993"})  # fmt: skip
    lost.say("Bandung")
    reply = lost.say("1")
    assert not any("Simpatik" in label for label in reply.labels)


def test_priority_seats_for_an_older_applicant(loket: Loket) -> None:
    older = Chat(loket, "older")
    register(older, {"nik": make_nik(date(1955, 2, 3)), "birth_date": "03-02-1955"})
    older.say("Bandung")
    older.say("1")
    reply = older.say("1")
    assert "08.00–10.00 WIB, prioritas (10 kursi)" in reply.labels
    younger = Chat(loket, "younger")
    register(younger)
    younger.say("Bandung")
    younger.say("1")
    assert not any("prioritas" in label for label in younger.say("1").labels)


def test_percepatan_uses_its_own_seats(loket: Loket) -> None:
    fast = Chat(loket, "fast")
    register(fast, {"service": "percepatan"})
    fast.say("Bandung")
    fast.say("1")
    reply = fast.say("1")
    assert reply.labels == ["08.00–10.00 WIB, percepatan (10 kursi)",
                            "10.00–12.00 WIB, percepatan (5 kursi)"]  # fmt: skip
    assert "Jumlah: Rp1.950.000" in fast.verified(fast.say("1"))


def test_no_seats_on_national_holidays(loket: Loket) -> None:
    with loket.sessions() as session:
        christmas = (
            session.execute(select(Slot).where(Slot.day == date(2026, 12, 25))).scalars().all()
        )
        friday_before = (
            session.execute(select(Slot).where(Slot.day == date(2026, 12, 18))).scalars().all()
        )
    assert christmas == [] and len(friday_before) > 0


def test_stopping_the_booking_keeps_the_application(chat: Chat, loket: Loket) -> None:
    register(chat)
    chat.say("Bandung")
    reply = chat.say("batal")
    assert "Permohonan Anda tetap tersimpan" in reply.question.text
    reply = chat.say("ya")
    assert "pemilihan jadwal dihentikan" in reply
    assert "belum memilih jadwal" in chat.say("/status")
    assert "Di kota mana" in chat.say("/jadwal").question.text


def test_forged_application_button_is_refused(chat: Chat, loket: Loket) -> None:
    victim = Chat(loket, "victim")
    register(victim)
    with loket.sessions() as session:
        victim_id = session.execute(select(Application.id)).scalar_one()
    register(chat, {"nik": make_nik(date(1994, 7, 8)), "birth_date": "08-07-1994"})
    register(chat, {"nik": make_nik(date(1995, 7, 8)), "birth_date": "08-07-1995"})
    reply = chat.say("/jadwal")
    assert len(reply.labels) == 2  # this account's two waiting applications only
    reply = chat.press(str(victim_id))
    assert "Tombol itu sudah tidak berlaku" in reply
    assert chat.step() == "application"


def test_worker_round_expires_holds_and_records_no_shows(loket: Loket, clock: FakeClock) -> None:
    from bot.worker import run_once

    paid, unpaid = Chat(loket, "paid"), Chat(loket, "unpaid")
    register(paid)
    pay(loket, billing_code(book(paid)))  # Monday 23 November, confirmed
    register(unpaid, {"nik": make_nik(date(1996, 1, 2)), "birth_date": "02-01-1996"})
    book(unpaid)
    clock.advance(hours=3)
    figures = run_once(loket)
    assert figures["expired"] == 1 and figures["no_shows"] == 0 and figures["slots_made"] == 0
    clock.advance(days=3)  # Wednesday: Monday's appointment never checked in
    figures = run_once(loket)
    assert figures["no_shows"] == 1 and figures["slots_made"] > 0
    with loket.sessions() as session:
        statuses = sorted(session.execute(select(Booking.status)).scalars())
    assert statuses == ["expired", "no_show"]


def test_double_tap_on_a_window_gives_one_seat_and_one_code(chat: Chat, loket: Loket) -> None:
    register(chat)
    # Proved before (as after an earlier hold): both taps reach the hold itself.
    loket.vouch_phone(chat.channel, chat.user, chat.phone(), "code")
    chat.say("Bandung")
    chat.say("1")
    reply = chat.say("1")
    window = reply.question.choices[0].value
    first = chat.press(window)
    again = chat.press(window)  # the same button pressed again a moment later
    assert "Kursi Anda ditahan" in first and "Kursi Anda ditahan" not in again
    with loket.sessions() as session:
        assert session.execute(select(func.count(Booking.id))).scalar_one() == 1
        assert session.execute(select(func.count(BillingCode.id))).scalar_one() == 1
    assert billing_code(first)[:4] in chat.say("/status")


def test_reschedule_into_a_full_window_is_refused(chat: Chat, loket: Loket) -> None:
    register(chat)
    pay(loket, billing_code(book(chat)))
    chat.say("/ubahjadwal")
    chat.say("1")
    reply = chat.say("2")  # Tuesday 24 November
    morning = reply.question.choices[0].value
    with loket.sessions() as session, session.begin():
        session.execute(update(Slot).where(Slot.id == int(morning)).values(taken=Slot.capacity))
    reply = chat.press(morning)
    assert "Maaf, jam itu baru saja penuh" in reply
    assert chat.step() == "slot"
    assert slot_of(loket).day == date(2026, 11, 23)  # the booking did not move
