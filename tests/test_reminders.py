"""Scheduled messages on a fake clock, through worker rounds: once, on time, never at night
(but the payment reminder), never once moot (paid, cancelled, rescheduled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select

from bot import reminders
from bot.payments import sweep
from bot.service import Loket
from bot.worker import run_once
from storage.models import Booking, Document, ScheduledMessage
from storage.schedule import plan
from tests.conftest import FakeClock
from tests.test_booking import pay
from tests.transcript import Chat, billing_code, book, register

WIB = ZoneInfo("Asia/Jakarta")


def at(clock: FakeClock, day: int, hour: int, minute: int = 0) -> None:
    """Move the fake clock forward to a WIB moment in November 2026 (kept in UTC, as the
    database keeps times)."""
    target = datetime(2026, 11, day, hour, minute, tzinfo=WIB).astimezone(UTC)
    assert target >= clock.now, "the clock only moves forward"
    clock.now = target


def round_texts(loket: Loket, chat: Chat) -> list[str]:
    """Run one worker round and return what it left in the chat's outbox."""
    run_once(loket)
    return [message.text for message in loket.pending_messages(chat.channel, chat.user)]


def outcomes(loket: Loket) -> dict[str, str | None]:
    """Return each scheduled row's kind and outcome."""
    with loket.sessions() as session:
        rows = session.execute(select(ScheduledMessage)).scalars().all()
        return {row.kind: row.outcome for row in rows}


def test_payment_reminder_fires_once_thirty_minutes_before_expiry(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    register(chat)
    code = billing_code(book(chat))  # held at 10.00 WIB until 12.00
    assert round_texts(loket, chat) == []
    at(clock, 22, 11, 29)
    assert round_texts(loket, chat) == []
    at(clock, 22, 11, 30)
    [text] = round_texts(loket, chat)
    assert "belum dibayar" in text and code in text and "12.00 WIB" in text
    at(clock, 22, 11, 45)
    assert round_texts(loket, chat) == []
    assert outcomes(loket) == {"payment_reminder": "sent"}


def test_payment_reminder_is_moot_once_paid(chat: Chat, loket: Loket, clock: FakeClock) -> None:
    register(chat)
    code = billing_code(book(chat))
    run_once(loket)  # planned
    at(clock, 22, 11, 0)
    assert pay(loket, code) == "confirmed"
    loket.pending_messages(chat.channel, chat.user)  # the payment's own notice
    at(clock, 22, 11, 31)
    assert round_texts(loket, chat) == []
    assert outcomes(loket) == {"payment_reminder": "paid"}


def test_a_cancelled_hold_gets_neither_reminder_nor_expiry_notice(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    register(chat)
    book(chat)
    run_once(loket)
    chat.say("/batalkan")
    chat.say("1")
    chat.tap("Ya, batalkan permohonan")
    at(clock, 22, 11, 30)
    assert round_texts(loket, chat) == []
    at(clock, 22, 12, 30)
    assert round_texts(loket, chat) == []
    assert outcomes(loket) == {"payment_reminder": "not_held"}


def test_expiry_at_night_is_told_at_six_and_the_payment_reminder_is_not_held_back(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    at(clock, 22, 19, 45)
    register(chat)
    code = billing_code(book(chat))  # held until 21.45 WIB
    at(clock, 22, 21, 14)
    assert round_texts(loket, chat) == []
    at(clock, 22, 21, 15)  # night already, but a reminder at 06.00 would be too late
    [text] = round_texts(loket, chat)
    assert code in text and "21.45 WIB" in text
    at(clock, 22, 21, 46)
    assert round_texts(loket, chat) == []  # expired, told in the morning
    assert outcomes(loket)["expiry_notice"] is None
    at(clock, 23, 5, 59)
    assert round_texts(loket, chat) == []
    at(clock, 23, 6, 0)
    [text] = round_texts(loket, chat)
    assert "Batas waktu pembayaran" in text and "/jadwal" in text
    at(clock, 23, 7, 0)
    assert round_texts(loket, chat) == []


def test_an_expiry_notice_is_moot_when_the_applicant_booked_again_before_morning(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    at(clock, 22, 19, 15)
    register(chat)
    billing_code(book(chat))
    at(clock, 22, 21, 20)
    assert sweep(loket) == 1
    assert loket.pending_messages(chat.channel, chat.user) == []
    pay(loket, billing_code(book(chat)))  # a night owl books again at once, and pays
    at(clock, 23, 6, 0)
    texts = round_texts(loket, chat)
    assert not any("Batas waktu pembayaran" in text for text in texts)
    assert outcomes(loket)["expiry_notice"] == "booked_again"


def paid_for_tuesday(chat: Chat, loket: Loket) -> Booking:
    """Register, book Tuesday 24 November 08.00 WIB and pay; return the booking."""
    register(chat)
    pay(loket, billing_code(book(chat, day="2")))
    loket.pending_messages(chat.channel, chat.user)
    with loket.sessions() as session:
        booking = session.execute(select(Booking)).scalar_one()
        assert booking.slot.day.isoformat() == "2026-11-24"
        return booking


def test_day_before_reminder_fires_once_at_ten_with_address_map_and_qr(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    booking = paid_for_tuesday(chat, loket)
    at(clock, 23, 9, 59)
    assert round_texts(loket, chat) == []
    at(clock, 23, 10, 0)
    run_once(loket)
    [message] = loket.pending_messages(chat.channel, chat.user)
    assert message.qr == booking.code
    assert "besok jadwal Anda" in message.text and "Selasa, 24 November 2026" in message.text
    assert "Alamat: " in message.text and "https://www.google.com/maps/search/" in message.text
    assert "Bawa dokumen asli: e-KTP" in message.text
    at(clock, 23, 15, 0)
    assert round_texts(loket, chat) == []
    assert outcomes(loket) == {"day_before": "sent"}


def test_day_before_reminder_is_moot_after_cancellation(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    paid_for_tuesday(chat, loket)
    run_once(loket)  # planned for Monday 10.00
    chat.say("/batalkan")
    chat.say("1")
    chat.tap("Ya, batalkan permohonan")
    at(clock, 23, 10, 0)
    assert round_texts(loket, chat) == []
    assert outcomes(loket) == {"day_before": "cancelled"}


def test_a_rescheduled_appointment_is_reminded_of_its_new_day_only(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    paid_for_tuesday(chat, loket)
    run_once(loket)  # planned for Monday 10.00 (Tuesday's appointment)
    chat.say("/ubahjadwal")
    chat.say("1")
    chat.say("3")  # Wednesday 25 November
    assert "Jadwal berhasil diubah ke Rabu, 25 November 2026" in chat.say("13.00")
    loket.pending_messages(chat.channel, chat.user)
    at(clock, 23, 10, 0)
    assert round_texts(loket, chat) == []
    at(clock, 24, 10, 0)
    [text] = round_texts(loket, chat)
    assert "Rabu, 25 November 2026" in text and "13.00–15.00 WIB" in text
    at(clock, 24, 12, 0)
    assert round_texts(loket, chat) == []
    with loket.sessions() as session:
        rows = session.execute(select(ScheduledMessage.outcome)).scalars().all()
    assert sorted(rows) == ["rescheduled", "sent"]  # type: ignore[type-var]


def test_a_reminder_due_by_day_but_reached_at_night_waits_for_the_morning(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    paid_for_tuesday(chat, loket)
    run_once(loket)
    at(clock, 23, 22, 0)  # the worker was down from before 10.00 until 22.00
    assert round_texts(loket, chat) == []
    at(clock, 24, 6, 0)  # Tuesday 06.00, the appointment at 08.00: still worth saying
    [text] = round_texts(loket, chat)
    assert "besok jadwal Anda" in text


def test_documents_reminder_follows_the_missing_documents_hook(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    register(chat)
    pay(loket, billing_code(book(chat, day="4")))  # Thursday 26 November
    loket.pending_messages(chat.channel, chat.user)
    with loket.sessions() as session, session.begin():
        # What a "documents later" application looks like: the e-KTP photo still missing.
        session.execute(delete(Document).where(Document.kind == "ktp"))
    at(clock, 23, 9, 59)
    assert round_texts(loket, chat) == []
    at(clock, 23, 10, 0)  # H-3
    [text] = round_texts(loket, chat)
    assert "belum menerima foto dokumen berikut: e-KTP" in text
    assert "Kirim fotonya lewat tautan pribadi ini sebelum Kamis, 26 November 2026" in text
    assert "/unggah/" in text  # the same personal link an agent's caller gets
    at(clock, 23, 11, 0)
    assert round_texts(loket, chat) == []
    chat.say("/ubahjadwal")  # once per application, whatever moved since
    chat.say("1")
    chat.say("1 Desember")
    assert "Jadwal berhasil diubah ke Selasa, 01 Desember 2026" in chat.say("1")
    loket.pending_messages(chat.channel, chat.user)
    at(clock, 28, 10, 0)  # H-3 of the new date: the documents are still missing
    assert round_texts(loket, chat) == []


def test_a_row_of_the_retired_documents_kind_is_closed_unsent(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    booking = paid_for_tuesday(chat, loket)
    with loket.sessions() as session, session.begin():
        # Planned by an older release (the documents reminder is bot.uploads' now).
        plan(session, booking.id, "documents_missing", booking.slot_id, clock.now, clock.now)
    assert round_texts(loket, chat) == []
    assert outcomes(loket)["documents_missing"] == "retired"


def test_a_round_that_fails_after_claiming_sends_nothing_and_the_next_sends_once(
    chat: Chat, loket: Loket, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(chat)
    billing_code(book(chat))
    run_once(loket)
    at(clock, 22, 11, 30)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed between claim and outbox")

    with monkeypatch.context() as patch:
        patch.setattr(reminders, "notify", crash)
        with pytest.raises(RuntimeError):
            run_once(loket)
    assert loket.pending_messages(chat.channel, chat.user) == []
    assert outcomes(loket) == {"payment_reminder": None}
    # A new process (a restart) on the same database.
    restarted = Loket(loket.settings, db=loket.db, clock=clock, shared=loket.shared)
    run_once(restarted)
    run_once(restarted)
    texts = [m.text for m in loket.pending_messages(chat.channel, chat.user)]
    assert len(texts) == 1 and "belum dibayar" in texts[0]
    restarted.image_checks.shutdown(wait=True)


def test_out_of_night_moves_night_moments_to_six_local() -> None:
    jakarta = "Asia/Jakarta"
    evening = datetime(2026, 11, 22, 20, 59, tzinfo=WIB)
    assert reminders.out_of_night(evening, jakarta) == evening
    late = datetime(2026, 11, 22, 21, 0, tzinfo=WIB)
    assert reminders.out_of_night(late, jakarta) == datetime(2026, 11, 23, 6, 0, tzinfo=WIB)
    early = datetime(2026, 11, 23, 5, 59, tzinfo=WIB)
    assert reminders.out_of_night(early, jakarta) == datetime(2026, 11, 23, 6, 0, tzinfo=WIB)
    # 21.00 WIT (Jayapura) is 19.00 WIB: night in Papua, evening in Java.
    wit = datetime(2026, 11, 22, 12, 0, tzinfo=ZoneInfo("UTC"))
    assert reminders.quiet(wit, "Asia/Jayapura") and not reminders.quiet(wit, jakarta)
    assert reminders.out_of_night(wit, "Asia/Jayapura") - wit == timedelta(hours=9)
