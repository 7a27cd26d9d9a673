"""Release modes per office: first come, the waiting room, and walk-in days, on both backends."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update

from bot.service import Loket
from bot.worker import run_once
from storage.booking import HoldRefusal, RescheduleRefusal, hold_seat, reschedule
from storage.models import (
    Application,
    AuditEntry,
    Booking,
    BookingStatus,
    Office,
    OutboxMessage,
    QueueEntry,
    QueueStatus,
    Slot,
)
from storage.waiting_room import current_release, join_queue
from tests.conftest import FakeClock
from tests.seats_helpers import make_applications
from tests.test_booking import pay
from tests.test_consoles import client, log_in, token
from tests.transcript import Chat, billing_code, book, make_nik, register

__all__ = ["client"]  # the console's client fixture, shared with tests/test_consoles.py
RELEASE = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # Tuesday 1 December 2026, 08:00 WIB


def set_office(loket: Loket, code: str = "bandung", **values: Any) -> int:
    """Change an office's release settings as the console would; return its id."""
    with loket.sessions() as session, session.begin():
        office = session.execute(select(Office).where(Office.code == code)).scalar_one()
        for name, value in values.items():
            setattr(office, name, value)
        return office.id


def only_january(loket: Loket) -> None:
    """Leave Bandung with the seats released on 1 December 08:00 WIB only."""
    with loket.sessions() as session, session.begin():
        office_id = session.execute(select(Office.id).where(Office.code == "bandung")).scalar_one()
        session.execute(
            update(Slot)
            .where(Slot.office_id == office_id, Slot.day < date(2027, 1, 1))
            .values(closed=True)
        )


def applicants(loket: Loket, count: int, prefix: str) -> list[Chat]:
    """Registered applicants (made directly), one chat account each."""
    with loket.sessions() as session, session.begin():
        make_applications(session, count, prefix)
    return [Chat(loket, f"{prefix}-{number}") for number in range(count)]


def ask_dates(chat: Chat) -> Any:
    """/jadwal, Bandung, its office: the date question."""
    chat.say("/jadwal")
    chat.say("Bandung")
    return chat.say("1")


def outbox_texts(loket: Loket, user: str) -> list[str]:
    """The notices queued for one chat, oldest first."""
    with loket.sessions() as session:
        rows = session.execute(
            select(OutboxMessage.payload)
            .where(OutboxMessage.user_ref == user)
            .order_by(OutboxMessage.id)
        ).scalars()
        return [str(payload["text"]) for payload in rows]


def statuses(loket: Loket) -> list[tuple[int, str]]:
    """Every queue entry's number and status, in number order."""
    with loket.sessions() as session:
        rows = session.execute(
            select(QueueEntry.number, QueueEntry.status).order_by(QueueEntry.number)
        ).all()
        return [(number, status) for number, status in rows]


def test_the_release_mode_is_named_before_release(loket: Loket) -> None:
    only_january(loket)
    first, queued = applicants(loket, 2, "before")
    reply = ask_dates(first)
    assert "dibuka Selasa, 01 Desember 2026 pukul 08.00 WIB, siapa cepat dia dapat" in reply
    set_office(loket, release_mode="waiting_room")
    reply = ask_dates(queued)
    assert "Kuota berikutnya dibuka Selasa, 01 Desember 2026 pukul 08.00 WIB lewat antrean" in reply
    assert "Kuota Rabu, 06 Januari 2027 belum dibuka. Kuota dibuka Selasa, 01 Desember 2026 " \
        "pukul 08.00 WIB lewat antrean." in queued.say("6 Januari")  # fmt: skip
    assert statuses(loket) == []  # nobody queues before the release


def test_waiting_room_numbers_once_and_admits_in_arrival_order(
    loket: Loket, clock: FakeClock
) -> None:
    set_office(loket, release_mode="waiting_room", admit_per_minute=2, admit_minutes=5)
    only_january(loket)
    clock.now = RELEASE
    chats = applicants(loket, 5, "herd")
    replies = [ask_dates(chat) for chat in chats]
    for admitted in replies[:2]:
        assert "Giliran Anda: pilih tanggal dan jam di Kantor Imigrasi Kelas I TPI Bandung " \
            "dalam 5 menit (sampai pukul 08.05 WIB)" in admitted  # fmt: skip
        assert "Pilih tanggal di" in admitted
    assert "Nomor antrean Anda 3; di depan Anda 0 orang; perkiraan 1 menit." in replies[2]
    assert "Nomor antrean Anda 5; di depan Anda 2 orang; perkiraan 2 menit." in replies[4]
    assert replies[4].labels == ["Lihat giliran saya", "Pilih kantor lain", "Kembali ke menu"]

    # Tapping again, typing a date or starting over gives the same number: no advantage.
    fourth = chats[3]
    for _tap in range(3):
        assert "Nomor antrean Anda 4; di depan Anda 1 orang" in fourth.tap("Lihat giliran saya")
    typed = fourth.say("13 Januari")
    assert "Nomor antrean Anda 4" in typed and fourth.step() == "day"
    assert "Nomor antrean Anda 4" in ask_dates(fourth)
    assert "Nomor antrean Anda 4; di depan Anda 1 orang" in fourth.say("/antrean")
    assert statuses(loket) == [(1, "admitted"), (2, "admitted"), (3, "waiting"),
                               (4, "waiting"), (5, "waiting")]  # fmt: skip

    # A minute on, the worker admits the next two in arrival order and tells them.
    clock.advance(minutes=1)
    run_once(loket)
    assert [s for _n, s in statuses(loket)] == ["admitted"] * 4 + ["waiting"]
    # /metrics shows the office's admission rate, in people a second.
    rate = REGISTRY.get_sample_value("loket_waiting_room_admission_rate", {"office": "bandung"})
    assert rate == 2 / 60
    for chat in chats[2:4]:
        assert any(
            text.startswith("Giliran Anda: pilih tanggal dan jam di Kantor Imigrasi Kelas I TPI "
                            "Bandung dalam 5 menit (sampai pukul 08.06 WIB)")
            for text in outbox_texts(loket, chat.user)
        )  # fmt: skip
    assert outbox_texts(loket, chats[4].user) == []
    assert "di depan Anda 0 orang" in chats[4].tap("Lihat giliran saya")

    # The admitted choose a seat; the hold uses their turn.
    assert "Pilih tanggal di" in chats[2].tap("Lihat giliran saya")
    chats[2].say("1")
    assert "Kode billing" in chats[2].verified(chats[2].say("1"))
    assert statuses(loket)[2] == (3, "booked")


def test_a_turn_not_used_in_time_passes_to_the_next(loket: Loket, clock: FakeClock) -> None:
    set_office(loket, release_mode="waiting_room", admit_per_minute=1, admit_minutes=1)
    only_january(loket)
    clock.now = RELEASE
    slow, second, third = applicants(loket, 3, "turn")
    assert "Pilih tanggal di" in ask_dates(slow)
    assert "Nomor antrean Anda 2" in ask_dates(second)
    assert "Nomor antrean Anda 3" in ask_dates(third)
    slow.say("1")  # a date: the windows are shown, but no seat is chosen in time

    clock.advance(minutes=1)
    run_once(loket)
    # One grant a minute would admit only the second; the passed turn admits the third too.
    assert statuses(loket) == [(1, "expired"), (2, "admitted"), (3, "admitted")]
    passed = "Waktu giliran Anda di Kantor Imigrasi Kelas I TPI Bandung sudah habis"
    told = outbox_texts(loket, slow.user)
    assert any(passed in text and "nomor antrean baru" in text for text in told)

    # The late choice is refused; the applicant re-joins at the back, as told.
    late = slow.verified(slow.say("1"))
    assert "waktu giliran Anda sudah habis" in late
    assert "Anda mendapat nomor baru di belakang" in late
    assert "Nomor antrean Anda 4; di depan Anda 0 orang" in late
    with loket.sessions() as session:
        assert session.execute(select(func.count(Booking.id))).scalar_one() == 0


def test_holds_without_a_running_turn_are_refused_by_storage(
    loket: Loket, clock: FakeClock
) -> None:
    office_id = set_office(loket, release_mode="waiting_room", admit_per_minute=1, admit_minutes=5)
    only_january(loket)
    clock.now = RELEASE
    with loket.sessions() as session, session.begin():
        first, second, never = (
            session.get(Application, i) for i in make_applications(session, 3, "storage")
        )
        assert first is not None and second is not None and never is not None
        office = session.get(Office, office_id)
        assert office is not None
        slot_id = session.execute(
            select(Slot.id).where(Slot.office_id == office_id, Slot.day == date(2027, 1, 4))
            .order_by(Slot.start_time).limit(1)
        ).scalar_one()  # fmt: skip
        release_at = current_release(session, office_id, RELEASE)
        assert release_at == RELEASE
        join_queue(session, office, first, release_at, RELEASE)
        join_queue(session, office, second, release_at, RELEASE)
    refusals = []
    with loket.sessions() as session, session.begin():
        from bot.waiting_room import admit_and_tell

        office = session.get(Office, office_id)
        assert office is not None
        admit_and_tell(session, office, RELEASE, RELEASE)
        for application_id in (never.id, second.id):
            application = session.get(Application, application_id)
            assert application is not None
            result = hold_seat(session, application, slot_id, RELEASE, timedelta(hours=2))
            refusals.append(result.refusal)
    assert refusals == [HoldRefusal.NOT_ADMITTED, HoldRefusal.NOT_ADMITTED]
    late = RELEASE + timedelta(minutes=5)  # the first's turn ran out, never claimed
    with loket.sessions() as session, session.begin():
        application = session.get(Application, first.id)
        assert application is not None
        assert hold_seat(session, application, slot_id, late, timedelta(hours=2)).refusal is (
            HoldRefusal.NOT_ADMITTED
        )
        assert session.get(Slot, slot_id).taken == 0  # type: ignore[union-attr]
    with loket.sessions() as session, session.begin():
        application = session.get(Application, first.id)
        assert application is not None
        held = hold_seat(session, application, slot_id, RELEASE, timedelta(hours=2))
        assert held.booking is not None
    assert statuses(loket)[0] == (1, QueueStatus.BOOKED)


def test_eight_threads_joining_get_eight_consecutive_numbers(
    loket: Loket, clock: FakeClock
) -> None:
    office_id = set_office(loket, release_mode="waiting_room")
    clock.now = RELEASE
    with loket.sessions() as session, session.begin():
        ids = make_applications(session, 8, "race")
    # Each applicant taps twice at once: 16 joins, 8 people.
    barrier = threading.Barrier(16)
    numbers: dict[int, list[int]] = {i: [] for i in ids}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def join(application_id: int) -> None:
        barrier.wait()
        try:
            with loket.sessions() as session, session.begin():
                office = session.get(Office, office_id)
                application = session.get(Application, application_id)
                assert office is not None and application is not None
                entry = join_queue(session, office, application, RELEASE, RELEASE)
                number = entry.number
        except BaseException as error:  # reported below, so the test fails with the cause
            with lock:
                errors.append(error)
            return
        with lock:
            numbers[application_id].append(number)

    threads = [threading.Thread(target=join, args=(i,)) for i in ids + ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert all(len(set(mine)) == 1 and len(mine) == 2 for mine in numbers.values())
    assert sorted(mine[0] for mine in numbers.values()) == list(range(1, 9))
    assert [n for n, _s in statuses(loket)] == list(range(1, 9))


def test_walk_in_mode_tells_what_to_bring_and_switches_back(chat: Chat, loket: Loket) -> None:
    register(chat)
    booked = billing_code(book(chat))
    other = Chat(loket, "walk-in-2")
    register(other, {"nik": make_nik(date(1991, 1, 2)), "birth_date": "02-01-1991"})
    office_id = set_office(loket, walk_in_only=True, walk_in_quota=40)

    reply = ask_dates(other)
    assert "Kantor Imigrasi Kelas I TPI Bandung sedang melayani tanpa jadwal (walk-in)" in reply
    assert "Jadwal yang sudah dipesan tetap berlaku." in reply
    assert "Alamat: Jl. Surapati No. 82, Bandung" in reply
    assert "Kuota walk-in hari ini: 40 orang (tersisa 40)" in reply
    assert "Datang langsung pada jam layanan: Senin-Jumat 08.00-15.00" in reply
    assert "Bawa dokumen asli: e-KTP, Kartu Keluarga, Akta kelahiran" in reply
    assert reply.labels == ["Pilih kantor lain", "Kembali ke menu"]
    assert "sedang melayani tanpa jadwal" in other.say("13 Desember")
    assert other.step() == "day"

    # The storage refuses seats there too; the booking made before stays as it was.
    with loket.sessions() as session, session.begin():
        application = session.execute(
            select(Application).where(Application.account_ref == "walk-in-2")
        ).scalar_one()
        slot_id = session.execute(
            select(Slot.id).where(Slot.office_id == office_id, Slot.day == date(2026, 11, 30))
            .limit(1)
        ).scalar_one()  # fmt: skip
        refusal = hold_seat(session, application, slot_id, loket.clock(), timedelta(hours=2))  # type: ignore[misc]
        assert refusal.refusal is HoldRefusal.WALK_IN
        status = session.execute(select(Booking.status)).scalar_one()
        assert status == BookingStatus.HELD
    assert booked in chat.say("/status").text.replace(" ", "")

    # Switched back, seat choice is offered again at once.
    set_office(loket, walk_in_only=False)
    reply = other.say("/jadwal")
    other.say("Bandung")
    reply = other.say("1")
    assert "Pilih tanggal di Kantor Imigrasi Kelas I TPI Bandung:" in reply
    other.say("1")
    assert "Kode billing" in other.verified(other.say("1"))


def test_the_office_console_sets_the_release_mode_audited(
    client: FlaskClient, loket: Loket
) -> None:
    assert log_in(client, "budi.jaksel") == 302
    page = client.get("/office/release").get_data(as_text=True)
    assert "Antrean (ruang tunggu)" in page and "Siapa cepat dia dapat" in page
    form = {"release_mode": "waiting_room", "admit_per_minute": "0", "admit_minutes": "5",
            "walk_in_quota": "", "csrf_token": token(client, "/office/release")}  # fmt: skip
    refused = client.post("/office/release", data=form)
    assert refused.status_code == 400
    assert "Isi jumlah orang per menit dengan angka 1 sampai 10000." in refused.text
    form["admit_per_minute"] = "30"
    saved = client.post("/office/release", data=form, follow_redirects=True)
    assert "Kuota dibagikan dengan cara: Antrean (ruang tunggu)." in saved.text
    form.update(walk_in_only="1", walk_in_quota="25", csrf_token=token(client, "/office/release"))
    saved = client.post("/office/release", data=form, follow_redirects=True)
    assert "Kantor melayani walk-in saja" in saved.text
    with loket.sessions() as session:
        office = session.execute(
            select(Office).where(Office.code == "jakarta-selatan")
        ).scalar_one()
        assert (office.release_mode, office.admit_per_minute, office.admit_minutes) == (
            "waiting_room",
            30,
            5,
        )
        assert office.walk_in_only and office.walk_in_quota == 25
        changes = session.execute(
            select(AuditEntry.target, AuditEntry.detail)
            .where(AuditEntry.action == "office.release_mode")
            .order_by(AuditEntry.id)
        ).all()
    assert [target for target, _details in changes] == ["waiting_room", "waiting_room"]
    assert changes[1][1]["walk_in_only"] is True
    assert "Kantor ini sedang melayani walk-in saja." in client.get("/office").text


def book_in_turn(chat: Chat) -> None:
    """An admitted applicant asks for the dates again, picks the first date and window."""
    assert "Pilih tanggal di" in chat.tap("Lihat giliran saya")
    chat.say("1")
    assert "Kode billing" in chat.verified(chat.say("1"))


def test_the_estimated_wait_counts_turns_that_passed_unused(loket: Loket, clock: FakeClock) -> None:
    set_office(loket, release_mode="waiting_room", admit_per_minute=1, admit_minutes=1)
    only_january(loket)
    clock.now = RELEASE
    chats = applicants(loket, 8, "pace")
    replies = [ask_dates(chat) for chat in chats]
    # At the release nothing has passed yet: the office's rate is the pace.
    assert "Nomor antrean Anda 8; di depan Anda 6 orang; perkiraan 7 menit." in replies[7]

    clock.advance(minutes=1)
    run_once(loket)  # the first turn passed unused: two are admitted (a grant given back)
    book_in_turn(chats[1])
    clock.advance(minutes=1)
    run_once(loket)  # the third passed unused too: the fourth and fifth are admitted
    assert [s for _n, s in statuses(loket)] == [
        "expired", "booked", "expired", "admitted", "admitted", "waiting", "waiting", "waiting"
    ]  # fmt: skip
    # Five turns in three minutes: at one a minute the last would be told 3 minutes; the
    # turns given so far say 2, and that is when it comes.
    last = chats[7].tap("Lihat giliran saya")
    assert "Nomor antrean Anda 8; di depan Anda 2 orang; perkiraan 2 menit." in last
    assert "Nomor antrean Anda 8; di depan Anda 2 orang; perkiraan 2 menit." in chats[7].say(
        "/antrean"
    )
    book_in_turn(chats[3])
    clock.advance(minutes=1)
    run_once(loket)
    assert statuses(loket)[7] == (8, "waiting")
    clock.advance(minutes=1)
    run_once(loket)
    assert statuses(loket)[7] == (8, "admitted")


def test_a_reschedule_at_a_waiting_room_office_needs_a_turn(loket: Loket, clock: FakeClock) -> None:
    set_office(loket, release_mode="waiting_room", admit_per_minute=1, admit_minutes=5)
    only_january(loket)
    clock.now = RELEASE
    mover, other = applicants(loket, 2, "move")
    assert "Pilih tanggal di" in ask_dates(mover)
    mover.say("1")  # Monday 4 January
    code = billing_code(mover.verified(mover.say("1")))
    assert pay(loket, code, amount=350_000) == "confirmed"
    assert "Nomor antrean Anda 2; di depan Anda 0 orang" in ask_dates(other)

    # A new date is a seat like a new booking's: the mover queues behind the other.
    mover.say("/ubahjadwal")
    reply = mover.say("1")
    assert "Nomor antrean Anda 3; di depan Anda 1 orang" in reply
    assert reply.labels == ["Lihat giliran saya", "Kembali ke menu"]
    assert "Nomor antrean Anda 3" in mover.say("13 Januari")  # typed: no seat offered
    assert "Nomor antrean Anda 3" in mover.press("2027-01-06")  # a forged date button
    assert mover.step() == "day"
    # Storage refuses the move itself without a running turn, whoever calls it.
    with loket.sessions() as session, session.begin():
        booking = session.execute(select(Booking)).scalar_one()
        slot_id = session.execute(
            select(Slot.id).where(Slot.office_id == booking.slot.office_id,
                                  Slot.day == date(2027, 1, 6)).limit(1)
        ).scalar_one()  # fmt: skip
        refusal = reschedule(session, booking, slot_id, date(2026, 12, 1), RELEASE)
        assert refusal is RescheduleRefusal.NOT_ADMITTED
        assert (booking.slot.day, booking.reschedules) == (date(2027, 1, 4), 0)

    clock.advance(minutes=1)
    run_once(loket)
    assert [s for _n, s in statuses(loket)] == ["booked", "admitted", "waiting"]
    clock.advance(minutes=1)
    run_once(loket)
    assert any(text.startswith("Giliran Anda") for text in outbox_texts(loket, mover.user))
    assert "Pilih tanggal di" in mover.tap("Lihat giliran saya")
    mover.say("2")  # Wednesday 6 January
    moved = mover.say("1")
    assert "Jadwal berhasil diubah ke Rabu, 06 Januari 2027" in moved
    assert [s for _n, s in statuses(loket)] == ["booked", "admitted", "booked"]


def test_an_agent_cannot_move_a_booking_past_the_waiting_room(
    client: FlaskClient, loket: Loket, clock: FakeClock
) -> None:
    set_office(loket, release_mode="waiting_room", admit_per_minute=1, admit_minutes=5)
    only_january(loket)
    clock.now = RELEASE
    (caller,) = applicants(loket, 1, "agent-move")
    ask_dates(caller)
    caller.say("1")
    assert pay(loket, billing_code(caller.verified(caller.say("1"))), amount=350_000) == "confirmed"
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        booking = session.execute(select(Booking)).scalar_one()
        later = session.execute(
            select(Slot.id).where(Slot.office_id == booking.slot.office_id,
                                  Slot.kind == "reguler", Slot.day > booking.slot.day,
                                  Slot.closed.is_(False))
            .order_by(Slot.day).limit(1)
        ).scalar_one()  # fmt: skip
    assert log_in(client, "ani.cs") == 302
    path = f"/agent/application/{application.reg_number}"
    form = {"slot": str(later), "reason": "penelepon minta", "csrf_token": token(client, path)}
    refused = client.post(f"{path}/reschedule", data=form, follow_redirects=True)
    assert refused.status_code == 200
    assert "Kantor ini membagikan kursi lewat antrean" in refused.get_data(as_text=True)
    with loket.sessions() as session:
        assert session.execute(select(Booking.slot_id)).scalar_one() == booking.slot_id
