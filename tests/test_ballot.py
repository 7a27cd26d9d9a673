"""The ballot (undian): commit then reveal, one entry per NIK, one draw, the waitlist."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, func, insert, select, update

from bot.consoles.agent import reschedule_options
from bot.service import Loket
from bot.web import create_app
from bot.worker import run_once
from storage.ballot import enter, enter_at_accept, entrant, new_ballot
from storage.booking import HoldRefusal, RescheduleRefusal, hold_seat, reschedule
from storage.inbox import Pending, store
from storage.models import (
    Application,
    ApplicationStatus,
    AuditEntry,
    Ballot,
    BallotEntry,
    Booking,
    BookingStatus,
    InboxUpdate,
    Office,
    Slot,
)
from tests.conftest import FakeClock
from tests.seats_helpers import make_applications
from tests.test_booking import pay
from tests.test_consoles import client, log_in, token
from tests.test_release_modes import RELEASE, applicants, ask_dates, outbox_texts, set_office
from tests.transcript import billing_code

__all__ = ["client"]
OPENS = RELEASE - timedelta(days=1)  # Monday 30 November 2026, 08:00 WIB
DAY = date(2027, 1, 6)  # the ballot's one date


@pytest.fixture(autouse=True)
def calendars_kept(loket: Loket) -> Iterator[None]:
    """Leave the shared calendars as found: the worker rounds here run weeks after the seeded
    start, so they make slots later tests expect to make, and the seats were resized."""
    with loket.sessions() as session:
        last_id = session.execute(select(func.max(Slot.id))).scalar_one()
        capacities = {
            slot_id: capacity
            for slot_id, capacity in session.execute(
                select(Slot.id, Slot.capacity).where(Slot.day == DAY)
            ).all()
        }
    yield
    with loket.sessions() as session, session.begin():
        made = select(Slot.id).where(Slot.id > last_id).scalar_subquery()
        session.execute(delete(BallotEntry))
        session.execute(delete(Booking).where(Booking.slot_id.in_(made)))
        session.execute(delete(Slot).where(Slot.id > last_id))
        for slot_id, capacity in capacities.items():
            session.execute(update(Slot).where(Slot.id == slot_id).values(capacity=capacity))


def ballot_office(loket: Loket, seats: int) -> int:
    """Bandung in ballot mode with `seats` seats on 6 January 2027 only; a ballot set now
    (open 30 November 08:00 to 1 December 08:00 WIB). Return the ballot's id."""
    office_id = set_office(loket, release_mode="ballot")
    with loket.sessions() as session, session.begin():
        session.execute(
            update(Slot).where(Slot.office_id == office_id, Slot.day != DAY).values(closed=True)
        )
        slots = session.execute(
            select(Slot).where(Slot.office_id == office_id, Slot.day == DAY).order_by(Slot.id)
        ).scalars()
        kept = None
        for slot in slots:
            if kept is None and slot.kind == "reguler":
                kept, slot.capacity = slot, seats
            else:
                slot.closed = True
        office = session.get(Office, office_id)
        assert office is not None
        ballot = new_ballot(session, office, OPENS, RELEASE, DAY, DAY, OPENS - timedelta(days=1))
        return ballot.id


def public(loket: Loket) -> dict[str, Any]:
    """GET /ballot/bandung, as anyone would."""
    answer = create_app(loket.settings, loket).test_client().get("/ballot/bandung")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.get_json()
    return body


def enter_by_chat(chats: list[Any]) -> None:
    for chat in chats:
        reply = ask_dates(chat)
        assert "Ikut undian" in reply.labels
        asked = chat.tap("Ikut undian")
        # The number is proved before entering (the draw holds a winner's seat).
        assert chat.step() == "verify_phone", asked.text
        entered = chat.verify()
        assert "Pendaftaran undian Anda di Kantor Imigrasi Kelas I TPI Bandung tercatat" in entered
        assert "Undian diundi Selasa, 01 Desember 2026 pukul 08.00 WIB" in entered


def recompute(seed: str, entry_ids: list[int]) -> list[int]:
    """The draw order from the published algorithm, written from scratch."""
    key = bytes.fromhex(seed)
    return sorted(
        entry_ids,
        key=lambda i: (hmac.new(key, str(i).encode("ascii"), hashlib.sha256).hexdigest(), i),
    )


def test_commit_then_reveal_and_one_entry_per_nik(loket: Loket, clock: FakeClock) -> None:
    ballot_office(loket, seats=1)
    clock.now = OPENS - timedelta(hours=1)
    early, chat, other = applicants(loket, 3, "reveal")
    before = ask_dates(early)
    assert "Undian: pendaftaran dibuka Senin, 30 November 2026 pukul 08.00 WIB, ditutup " \
        "Selasa, 01 Desember 2026 pukul 08.00 WIB" in before  # fmt: skip
    assert "Pendaftaran undian belum dibuka." in before and "Ikut undian" not in before.labels
    body = public(loket)
    assert body["seed"] is None and body["order"] is None
    commitment = body["commitment"]
    assert f"komitmen benih: {commitment}" in before
    assert len(commitment) == 64

    clock.now = OPENS + timedelta(hours=2)
    enter_by_chat([chat])
    # A second tap on the old button, the menu again, or another way in: still one entry.
    again = chat.press("ballot:enter")
    assert "tercatat" in again
    assert "tercatat" in ask_dates(chat) and "Ikut undian" not in ask_dates(chat).labels
    with loket.sessions() as session, session.begin():
        application = session.execute(
            select(Application).where(Application.account_ref == "reveal-1")
        ).scalar_one()
        ballot = session.execute(select(Ballot)).scalar_one()
        same = enter(session, ballot, application, clock.now)
        assert same.id == session.execute(select(BallotEntry.id)).scalar_one()
    enter_by_chat([other])
    with loket.sessions() as session:
        assert session.execute(select(func.count()).select_from(BallotEntry)).scalar_one() == 2
    assert public(loket)["seed"] is None  # not before the close

    clock.now = RELEASE
    run_once(loket)
    body = public(loket)
    assert body["seed"] is not None and body["commitment"] == commitment
    assert hashlib.sha256(bytes.fromhex(body["seed"])).hexdigest() == commitment
    assert f"Benih undian (dibuka setelah ditutup): {body['seed']}" in ask_dates(early)
    assert "Ikut undian" not in ask_dates(early).labels


def test_the_draw_is_reproducible_from_its_seed(loket: Loket, clock: FakeClock) -> None:
    ballot_office(loket, seats=2)
    clock.now = OPENS + timedelta(hours=1)
    chats = applicants(loket, 6, "draw")
    enter_by_chat(chats)
    clock.now = RELEASE + timedelta(minutes=1)
    figures = run_once(loket)
    assert figures["ballots_drawn"] == 1
    body = public(loket)
    with loket.sessions() as session:
        ids = sorted(session.execute(select(BallotEntry.id)).scalars())
        held = {
            entry_id: account
            for entry_id, account in session.execute(
                select(BallotEntry.id, BallotEntry.account_ref)
                .join(Booking, Booking.id == BallotEntry.booking_id)
                .where(Booking.status == BookingStatus.HELD)
            ).all()
        }
    order = recompute(body["seed"], ids)
    assert body["order"] == order
    assert [o["entry"] for o in body["outcomes"] if o["drawn_seat"]] == order[:2]
    assert sorted(held) == sorted(order[:2])
    assert [o["waitlist_position"] for o in body["outcomes"]] == [None, None, 1, 2, 3, 4]
    assert "nik" not in str(body).lower() and "draw-" not in str(body)
    # Every entrant is told: the winners their seat and billing code, the rest their place.
    accounts = {entry_id: f"draw-{n}" for n, entry_id in enumerate(ids)}
    for place, entry_id in enumerate(order):
        texts = outbox_texts(loket, accounts[entry_id])
        assert len(texts) == 1
        if place < 2:
            assert "Selamat, Anda terpilih dalam undian" in texts[0] and "Kode billing" in texts[0]
            assert "Cara bayar: teller bank" in texts[0]  # winners are told how to pay too
            assert "Rabu, 06 Januari 2027" in texts[0]
        else:
            assert f"Anda di daftar tunggu nomor {place - 1};" in texts[0]
    assert run_once(loket)["ballots_drawn"] == 0  # drawn once


def test_the_draw_runs_once_with_two_concurrent_workers(loket: Loket, clock: FakeClock) -> None:
    ballot_office(loket, seats=2)
    clock.now = OPENS + timedelta(hours=1)
    enter_by_chat(applicants(loket, 4, "twice"))
    clock.now = RELEASE
    barrier = threading.Barrier(2)
    drawn: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            drawn.append(run_once(loket)["ballots_drawn"])
        except BaseException as error:  # reported below, so the test fails with the cause
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(drawn) == [0, 1]
    with loket.sessions() as session:
        assert session.execute(select(func.count()).select_from(Booking)).scalar_one() == 2
        assert session.execute(select(func.sum(Slot.taken)).where(Slot.day == DAY)).scalar() == 2
    for n in range(4):
        assert len(outbox_texts(loket, f"twice-{n}")) == 1


def test_the_waitlist_gets_freed_seats_in_order(loket: Loket, clock: FakeClock) -> None:
    ballot_office(loket, seats=1)
    clock.now = OPENS + timedelta(hours=1)
    enter_by_chat(applicants(loket, 3, "wait"))
    clock.now = RELEASE
    run_once(loket)
    order = public(loket)["order"]
    with loket.sessions() as session:
        account = dict(session.execute(select(BallotEntry.id, BallotEntry.account_ref)).all())
    winner, first, second = (account[i] for i in order)
    # The winner does not pay: the hold expires and the seat goes to the first in line.
    clock.now = RELEASE + loket.settings.payment_window + timedelta(minutes=1)
    figures = run_once(loket)
    assert figures["expired"] == 1 and figures["waitlist_offered"] == 1
    offered = outbox_texts(loket, first)
    assert len(offered) == 2 and "Anda di daftar tunggu nomor 1;" in offered[0]
    assert "Selamat, Anda terpilih dalam undian" in offered[1] and "Kode billing" in offered[1]
    assert len(outbox_texts(loket, second)) == 1  # still waiting, number 2
    assert len(outbox_texts(loket, winner)) == 2  # the draw's notice, then the expiry's
    # Expired again: the seat goes on to the second.
    clock.now += loket.settings.payment_window + timedelta(minutes=1)
    assert run_once(loket)["waitlist_offered"] == 1
    assert "Selamat, Anda terpilih dalam undian" in outbox_texts(loket, second)[-1]
    assert run_once(loket)["waitlist_offered"] == 0


def test_at_a_ballot_office_only_the_draw_holds_seats(loket: Loket, clock: FakeClock) -> None:
    ballot_office(loket, seats=1)
    clock.now = RELEASE
    (chat,) = applicants(loket, 1, "direct")
    with loket.sessions() as session, session.begin():
        application = session.execute(select(Application)).scalar_one()
        slot_id = session.execute(
            select(Slot.id)
            .join(Office, Office.id == Slot.office_id)
            .where(Office.code == "bandung", Slot.day == DAY, Slot.closed.is_(False))
        ).scalar_one()
        refused = hold_seat(session, application, slot_id, RELEASE, timedelta(hours=2))
        assert refused.refusal is HoldRefusal.BALLOT
    reply = ask_dates(chat)
    assert "Pendaftaran undian sudah ditutup" in reply
    assert "tidak dipesan" not in reply
    assert "Pendaftaran undian sudah ditutup" in chat.say("6 Januari")  # typed: no seat offer


def test_the_office_console_sets_a_ballot_and_publishes_its_commitment(
    client: FlaskClient, loket: Loket, clock: FakeClock
) -> None:
    assert log_in(client, "budi.jaksel") == 302
    form = {"release_mode": "ballot", "admit_per_minute": "60", "admit_minutes": "5",
            "walk_in_quota": "", "ballot_opens": "2026-11-23T08:00",
            "ballot_closes": "2026-11-22T08:00", "ballot_first_day": "2027-01-04",
            "ballot_last_day": "2027-01-08",
            "csrf_token": token(client, "/office/release")}  # fmt: skip
    refused = client.post("/office/release", data=form)
    assert refused.status_code == 400
    assert "Waktu ditutup harus sesudah waktu dibuka dan belum lewat." in refused.text
    form["ballot_closes"] = "2026-11-25T08:00"
    saved = client.post("/office/release", data=form, follow_redirects=True)
    assert "Kuota dibagikan dengan cara: Undian." in saved.text
    body = client.get("/ballot/jakarta-selatan").get_json()
    assert body["seed"] is None
    assert body["opens_at"] == datetime(2026, 11, 23, 1, 0, tzinfo=UTC).isoformat()
    assert f"komitmen benih: {body['commitment']}" in saved.text
    # Saving the same window again keeps the ballot and its commitment.
    form["csrf_token"] = token(client, "/office/release")
    client.post("/office/release", data=form)
    with loket.sessions() as session:
        assert session.execute(select(func.count()).select_from(Ballot)).scalar_one() == 1
        ballot = session.execute(select(Ballot)).scalar_one()
        assert hashlib.sha256(bytes.fromhex(ballot.seed)).hexdigest() == body["commitment"]
        audited = session.execute(
            select(AuditEntry.detail).where(AuditEntry.action == "office.ballot")
        ).scalar_one()
        assert audited["commitment"] == body["commitment"] and "seed" not in audited
    assert client.get("/ballot/nowhere").status_code == 404


def test_a_reschedule_never_takes_the_draws_dates(loket: Loket, clock: FakeClock) -> None:
    clock.now = RELEASE
    (chat,) = applicants(loket, 1, "resched")
    ask_dates(chat)  # first come, before the office chooses a ballot
    chat.say("4 Januari")
    code = billing_code(chat.verified(chat.say("1")))
    assert pay(loket, code, amount=350_000) == "confirmed"
    ballot_office(loket, seats=2)  # 6 January is the ballot's; the rest closed
    office_id = set_office(loket)
    with loket.sessions() as session, session.begin():
        session.execute(
            update(Slot)
            .where(Slot.office_id == office_id, Slot.day == date(2027, 1, 7))
            .values(closed=False)
        )
    clock.advance(minutes=1)  # past the shared date list of the booking's minute
    chat.say("/ubahjadwal")
    reply = chat.say("1")
    assert "Kursi tanggal Rabu, 06 Januari 2027 dibagikan lewat undian" in reply
    assert [label for label in reply.labels if "Januari" in label] == [
        "Kamis, 07 Januari 2027 (135 kursi)"
    ]
    refused = chat.say("6 Januari")
    assert "kursi pada tanggal itu dibagikan lewat undian" in refused
    assert "pilih tanggal lain di luar tanggal undian" in refused and chat.step() == "day"
    assert "Tombol itu sudah tidak berlaku" in chat.press(DAY.isoformat())  # a forged button
    with loket.sessions() as session, session.begin():
        booking = session.execute(select(Booking)).scalar_one()
        drawn_seat = session.execute(
            select(Slot.id).where(Slot.office_id == office_id, Slot.day == DAY,
                                  Slot.closed.is_(False))
        ).scalar_one()  # fmt: skip
        refusal = reschedule(session, booking, drawn_seat, date(2026, 12, 1), RELEASE)
        assert refusal is RescheduleRefusal.BALLOT
        # The agent console offers the same dates: none of the draw's.
        offered = reschedule_options(session, booking.application, booking, clock.now)
        assert offered and {slot.day for slot in offered} == {date(2027, 1, 7)}
    chat.say("7 Januari")
    assert "Jadwal berhasil diubah ke Kamis, 07 Januari 2027" in chat.say("1")
    with loket.sessions() as session:
        assert session.execute(select(func.sum(Slot.taken)).where(Slot.day == DAY)).scalar() == 0


DAYS = [date(2027, 1, 6), date(2027, 1, 7), date(2027, 1, 8)]


def ballot_over_three_days(loket: Loket) -> int:
    """Bandung in ballot mode for 6, 7 and 8 January with one free seat each (one window a
    day, all its other seats taken); a ballot open 30 November to 1 December 08:00 WIB."""
    office_id = set_office(loket, release_mode="ballot")
    with loket.sessions() as session, session.begin():
        session.execute(
            update(Slot)
            .where(Slot.office_id == office_id, Slot.day.not_in(DAYS))
            .values(closed=True)
        )
        kept: set[date] = set()
        for slot in session.execute(
            select(Slot).where(Slot.office_id == office_id, Slot.day.in_(DAYS)).order_by(Slot.id)
        ).scalars():
            if slot.day not in kept and slot.kind == "reguler":
                kept.add(slot.day)
                slot.taken = slot.capacity - 1
            else:
                slot.closed = True
        office = session.get(Office, office_id)
        assert office is not None
        ballot = new_ballot(
            session, office, OPENS, RELEASE, DAYS[0], DAYS[-1], OPENS - timedelta(days=1)
        )
        return ballot.id


def test_entrants_choose_their_dates_and_the_draw_keeps_to_them(
    loket: Loket, clock: FakeClock
) -> None:
    ballot_over_three_days(loket)
    clock.now = OPENS + timedelta(hours=1)
    everyone, thursday, first_and_last, friday, late = applicants(loket, 5, "days")
    for chat in (everyone, thursday, first_and_last, friday, late):
        ask_dates(chat)
        asked = chat.tap("Ikut undian")
        assert "Tanggal mana yang cocok untuk Anda?" in asked
        assert "1. Rabu, 06 Januari 2027\n2. Kamis, 07 Januari 2027\n3. Jumat, 08 Januari 2027" \
            in asked  # fmt: skip
        assert asked.labels == ["Semua tanggal", "Rabu, 06 Januari 2027",
                                "Kamis, 07 Januari 2027", "Jumat, 08 Januari 2027"]  # fmt: skip
    everyone.tap("Semua tanggal")
    thursday.tap("Kamis, 07 Januari 2027")
    refused = first_and_last.say("1, 4")
    assert '"4" bukan salah satu tanggal undian' in refused
    assert first_and_last.step() == "ballot_days"
    first_and_last.say("1, 3")
    friday.say("8 Januari")
    entered = {}
    for chat in (everyone, thursday, first_and_last, friday):
        told = chat.verify()
        assert "tercatat" in told, chat.transcript()
        entered[chat.user] = told.text
    assert "untuk tanggal: semua tanggal undian." in entered["days-0"]
    assert "untuk tanggal: Kamis, 07 Januari 2027." in entered["days-1"]
    assert "untuk tanggal: Rabu, 06 Januari 2027, Jumat, 08 Januari 2027." in entered["days-2"]
    assert "untuk tanggal: Jumat, 08 Januari 2027." in entered["days-3"]
    with loket.sessions() as session:
        chosen = dict(session.execute(select(BallotEntry.account_ref, BallotEntry.days)).all())
    assert chosen == {"days-0": None, "days-1": ["2027-01-07"],
                      "days-2": ["2027-01-06", "2027-01-08"], "days-3": ["2027-01-08"]}  # fmt: skip

    clock.now = RELEASE
    # The window closed while the last one was choosing: no entry, the date question says so.
    closed = late.tap("Semua tanggal")
    assert "Pendaftaran undian sudah ditutup; hasilnya segera diundi." in closed
    assert late.step() == "day" and "Ikut undian" not in closed.labels
    run_once(loket)
    body = public(loket)
    assert body["days"] == [day.isoformat() for day in DAYS]
    # Recomputed from the public page alone: the order from the seed, then each entrant in
    # turn takes the earliest of its own dates with a seat left (the seats per date are the
    # seats the draw gave); nobody on the waitlist had a seat left on a date they chose.
    with loket.sessions() as session:
        ids = list(session.execute(select(BallotEntry.id)).scalars())
    assert body["order"] == recompute(body["seed"], ids)
    outcomes = body["outcomes"]
    seats: dict[str, int] = {}
    for outcome in outcomes:
        if outcome["drawn_seat"]:
            seats[outcome["seat_day"]] = seats.get(outcome["seat_day"], 0) + 1
    for outcome in outcomes:
        free = [day for day in outcome["days"] if seats.get(day, 0) > 0]
        if outcome["drawn_seat"]:
            assert outcome["seat_day"] == free[0]
            seats[free[0]] -= 1
        else:
            assert free == [] and outcome["waitlist_position"] is not None
    assert sum(o["drawn_seat"] for o in outcomes) == 3  # one seat a date, all three given
    with loket.sessions() as session:
        held = session.execute(
            select(BallotEntry.account_ref, Slot.day)
            .join(Booking, Booking.id == BallotEntry.booking_id)
            .join(Slot, Slot.id == Booking.slot_id)
        ).all()
    for account, day in held:
        assert chosen[account] is None or day.isoformat() in chosen[account]
    assert "nik" not in str(body).lower() and "days-" not in str(body)


def test_a_waitlisted_entrant_who_may_not_hold_the_seat_is_told_why(
    loket: Loket, clock: FakeClock
) -> None:
    ballot_office(loket, seats=1)
    clock.now = OPENS + timedelta(hours=1)
    enter_by_chat(applicants(loket, 4, "why"))
    clock.now = RELEASE
    run_once(loket)
    with loket.sessions() as session:
        account = dict(session.execute(select(BallotEntry.id, BallotEntry.account_ref)).all())
    _winner, booked_elsewhere, cancelled, next_one = (account[i] for i in public(loket)["order"])
    with loket.sessions() as session, session.begin():
        # The second found a seat at another office meanwhile; the third cancelled.
        application = session.execute(
            select(Application).where(Application.account_ref == booked_elsewhere)
        ).scalar_one()
        elsewhere = session.execute(
            select(Slot.id)
            .join(Office, Office.id == Slot.office_id)
            .where(Office.code == "jakarta-selatan", Slot.day == DAY, Slot.kind == "reguler")
            .limit(1)
        ).scalar_one()
        assert hold_seat(session, application, elsewhere, RELEASE, timedelta(days=30)).booking
        session.execute(
            update(Application)
            .where(Application.account_ref == cancelled)
            .values(status=ApplicationStatus.CANCELLED)
        )
    # The winner does not pay: the freed seat goes down the waitlist in order.
    clock.now = RELEASE + loket.settings.payment_window + timedelta(minutes=1)
    figures = run_once(loket)
    assert figures["waitlist_offered"] == 1
    told = outbox_texts(loket, booked_elsewhere)[-1]
    assert "giliran Anda tiba, tetapi kursi tidak dapat ditahan untuk Anda karena NIK Anda " \
        "sudah memegang satu jadwal" in told  # fmt: skip
    assert "Kursi itu kami tawarkan ke urutan berikutnya" in told and "/status" in told
    told = outbox_texts(loket, cancelled)[-1]
    assert "karena permohonan Anda sudah dibatalkan atau selesai." in told
    assert "Selamat, Anda terpilih dalam undian" in outbox_texts(loket, next_one)[-1]
    with loket.sessions() as session:
        states = dict(session.execute(
            select(BallotEntry.account_ref, BallotEntry.status)).all())  # fmt: skip
        reasons = dict(
            session.execute(select(BallotEntry.account_ref, BallotEntry.passed_reason)).all()
        )
    assert (states[booked_elsewhere], reasons[booked_elsewhere]) == ("passed", "active_booking")
    assert (states[cancelled], reasons[cancelled]) == ("passed", "not_open")
    assert states[next_one] == "offered"
    assert run_once(loket)["waitlist_offered"] == 0  # nobody is told twice
    assert len(outbox_texts(loket, booked_elsewhere)) == 2


def test_an_entry_made_by_a_concurrent_tap_is_returned_not_made_twice(
    loket: Loket, clock: FakeClock, backend: str
) -> None:
    """The accept-time entry (`enter_at_accept`), when another tap of the same NIK is making
    the entry at that moment: the statement waits for it, and the entry it made is returned
    as not new, with no second turn. (PostgreSQL: SQLite runs one writer at a time.)"""
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers: no tap can be making the entry meanwhile")
    ballot_id = ballot_office(loket, seats=1)
    with loket.sessions() as session, session.begin():
        (application_id,) = make_applications(session, 1, "race")
    person = entrant(loket.autocommit_db, application_id)
    assert person is not None and person.phone is None  # no number proved: read as such
    turns = [Pending(f"race-{n}", "telegram", person.account_ref, {"n": n}, 1) for n in (1, 2)]
    results: list[tuple[int | None, bool]] = []
    with loket.db.connect() as other:  # the other tap: its entry made, not yet committed
        with other.begin():
            made = other.execute(
                insert(BallotEntry).values(
                    ballot_id=ballot_id, nik=person.nik, application_id=application_id,
                    channel=person.channel, account_ref=person.account_ref,
                    status="entered", entered_at=clock())
                .returning(BallotEntry.id)
            ).scalar_one()  # fmt: skip
            store(other, turns[0])
            now, engine = clock(), loket.autocommit_db

            def tap_again() -> None:
                results.append(enter_at_accept(engine, ballot_id, application_id, person, now,
                                               turns[1]))  # fmt: skip

            waiting = threading.Thread(target=tap_again)
            waiting.start()
            waiting.join(timeout=1)
            assert waiting.is_alive()  # waits for the other tap's entry
        waiting.join(timeout=30)
    assert results == [(made, False)]
    with loket.sessions() as session:
        keys = session.execute(select(InboxUpdate.key)).scalars().all()
    assert keys == ["race-1"]
