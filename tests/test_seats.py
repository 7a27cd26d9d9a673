"""Seat accounting under concurrency (threads and processes) and as a property."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update
from stdnum import damm

from bot.billing import LocalBilling, is_valid_code
from bot.service import Loket
from storage.booking import (
    cancel_booking,
    hold_seat,
    issue_billing,
    release_expired,
)
from storage.models import Application, BillingCode, Booking, Slot
from tests.seats_helpers import NOW, make_applications, make_slot, race


def seats(loket: Loket, slot_id: int) -> tuple[int, int, int]:
    """Return (capacity, taken, active bookings) of a slot."""
    with loket.sessions() as session:
        slot = session.get(Slot, slot_id)
        assert slot is not None
        active = session.execute(
            select(func.count(Booking.id)).where(
                Booking.slot_id == slot_id, Booking.status.in_(("held", "confirmed"))
            )
        ).scalar_one()
        return slot.capacity, slot.taken, int(active)


def setup_race(loket: Loket, capacity: int, applicants: int) -> tuple[int, list[int]]:
    """Make a slot and applications for a race."""
    with loket.sessions() as session, session.begin():
        slot_id = make_slot(session, capacity)
        ids = make_applications(session, applicants)
    return slot_id, ids


def test_threads_never_overbook(loket: Loket) -> None:
    slot_id, ids = setup_race(loket, capacity=25, applicants=96)
    chunks = [ids[n::12] for n in range(12)]
    results: list[dict[str, int]] = []
    barrier = threading.Barrier(len(chunks))

    def run(chunk: list[int]) -> None:
        barrier.wait()
        results.append(race(str(loket.db.url.render_as_string(hide_password=False)),
                            slot_id, chunk))  # fmt: skip

    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    total = Counter[str]()
    for result in results:
        total.update(result)
    assert total["held"] == 25 and total["sold_out"] == 71 and total["other"] == 0
    assert seats(loket, slot_id) == (25, 25, 25)


def test_processes_never_overbook(loket: Loket) -> None:
    slot_id, ids = setup_race(loket, capacity=30, applicants=120)
    url = loket.db.url.render_as_string(hide_password=False)
    chunks = [ids[n::4] for n in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(race, [(url, slot_id, chunk) for chunk in chunks])
    assert sum(r["held"] for r in results) == 30
    assert sum(r["other"] for r in results) == 0
    assert seats(loket, slot_id) == (30, 30, 30)


def test_one_booking_per_nik_when_one_application_races_itself(loket: Loket) -> None:
    slot_id, ids = setup_race(loket, capacity=10, applicants=1)
    url = loket.db.url.render_as_string(hide_password=False)
    results: list[dict[str, int]] = []
    threads = [
        threading.Thread(target=lambda: results.append(race(url, slot_id, ids))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(r["held"] for r in results) == 1
    assert seats(loket, slot_id) == (10, 1, 1)


def test_one_billing_code_per_booking_under_concurrency(loket: Loket) -> None:
    slot_id, ids = setup_race(loket, capacity=5, applicants=1)
    with loket.sessions() as session, session.begin():
        application = session.get(Application, ids[0])
        assert application is not None
        booking = hold_seat(session, application, slot_id, NOW, timedelta(hours=2)).booking
        assert booking is not None
        booking_id = booking.id
    codes: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def ask_for_code() -> None:
        # No retry: at READ COMMITTED the loser of the insert race waits for the winner's
        # commit, gets the unique violation and then reads the winner's code.
        barrier.wait()
        try:
            with loket.sessions() as session, session.begin():
                held = session.get(Booking, booking_id)
                assert held is not None
                code = issue_billing(session, held, 350_000, LocalBilling().new_code, NOW).code
        except BaseException as error:  # reported below, so the test fails with the cause
            with lock:
                errors.append(error)
            return
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=ask_for_code) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(codes) == 8 and len(set(codes)) == 1
    with loket.sessions() as session:
        assert session.execute(select(func.count(BillingCode.id))).scalar_one() == 1


def test_expired_holds_return_once_with_concurrent_sweepers(loket: Loket) -> None:
    slot_id, ids = setup_race(loket, capacity=40, applicants=30)
    url = loket.db.url.render_as_string(hide_password=False)
    assert race(url, slot_id, ids)["held"] == 30
    released: list[int] = []
    barrier = threading.Barrier(4)

    def sweeper() -> None:
        barrier.wait()
        with loket.sessions() as session, session.begin():
            released.append(release_expired(session, NOW + timedelta(hours=3)))

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(released) == 30
    assert seats(loket, slot_id) == (40, 0, 0)


def test_holds_not_yet_expired_stay(loket: Loket) -> None:
    slot_id, ids = setup_race(loket, capacity=5, applicants=3)
    url = loket.db.url.render_as_string(hide_password=False)
    race(url, slot_id, ids)
    with loket.sessions() as session, session.begin():
        assert release_expired(session, NOW + timedelta(minutes=119)) == 0
    assert seats(loket, slot_id) == (5, 3, 3)


# ---- properties ----------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=200))
def test_generated_billing_codes_are_valid(_seed: int) -> None:
    code = LocalBilling().new_code()
    assert len(code) == 15 and code[0] != "0" and is_valid_code(code)


@given(st.text(alphabet="0123456789", min_size=14, max_size=14), st.data())
def test_check_digit_catches_one_wrong_digit_and_neighbour_swaps(
    body: str, data: st.DataObject
) -> None:
    code = body + damm.calc_check_digit(body)
    position = data.draw(st.integers(min_value=0, max_value=14))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != code[position]]))
    assert not is_valid_code(code[:position] + wrong + code[position + 1 :])
    swap = data.draw(st.integers(min_value=0, max_value=13))
    if code[swap] != code[swap + 1]:
        swapped = code[:swap] + code[swap + 1] + code[swap] + code[swap + 2 :]
        assert not is_valid_code(swapped)
    assert is_valid_code(f"{code[:4]} {code[4:8]}-{code[8:]}")


OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["hold", "cancel", "expire", "close", "open"]),
              st.integers(min_value=0, max_value=7)),
    min_size=1, max_size=25,
)  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(OPERATIONS)
def test_seat_accounting_matches_bookings(loket: Loket, operations: list[tuple[str, int]]) -> None:
    """Whatever happens, taken equals the active bookings and never exceeds capacity."""
    with loket.sessions() as session, session.begin():
        slot_id = make_slot(session, capacity=3)
        ids = make_applications(session, 8)
    clock = NOW
    try:
        for operation, who in operations:
            with loket.sessions() as session, session.begin():
                application = session.get(Application, ids[who])
                assert application is not None
                if operation == "hold":
                    hold_seat(session, application, slot_id, clock, timedelta(hours=2))
                elif operation == "cancel":
                    booking = session.execute(
                        select(Booking).where(Booking.application_id == application.id,
                                              Booking.status.in_(("held", "confirmed")))
                    ).scalar_one_or_none()  # fmt: skip
                    if booking is not None:
                        cancel_booking(session, booking, "property test")
                        application.status = "registered"
                elif operation == "expire":
                    clock += timedelta(hours=1)
                    release_expired(session, clock)
                else:
                    session.execute(
                        update(Slot).where(Slot.id == slot_id).values(closed=operation == "close")
                    )
            capacity, taken, active = seats(loket, slot_id)
            assert taken == active <= capacity
    finally:
        # Hypothesis runs many examples on one fixture: leave nothing behind.
        with loket.sessions() as session, session.begin():
            session.execute(delete(Booking).where(Booking.slot_id == slot_id))
            session.execute(delete(Application).where(Application.id.in_(ids)))
            session.execute(delete(Slot).where(Slot.id == slot_id))
