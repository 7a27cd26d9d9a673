"""Storage: migrations match the models, and the database enforces one open NIK."""

from __future__ import annotations

import logging
import threading
from datetime import date, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.logsafe import log_failure
from bot.service import Loket
from storage.applications import (
    NikAlreadyOpen,
    count_open_for_account,
    create_application,
    open_application_for_nik,
)
from storage.booking import db_now, record_event
from storage.inbox import accept_now, mark_applied, purge_applied, waiting_chats
from storage.models import Application, ApplicationStatus, Base, InboxUpdate, ProcessedEvent


def make_application(nik: str, account: str = "acct") -> Application:
    """Build an application row with plausible data."""
    return Application(
        channel="test", account_ref=account, service="reguler", application_type="baru",
        passport_kind="biasa", validity_years=5, category="adult", nik=nik,
        full_name="TEST", birth_place="Bandung", birth_date=date(1990, 8, 17), sex="M",
        phone="+6281234567890", address="Jl. Merdeka 10 Bandung", travel_purpose="wisata",
        fee_amount=350_000, fee_schedule="PP 45/2024", answers={},
    )  # fmt: skip


def test_migrations_match_the_models(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_tables_exist(db_engine: Engine) -> None:
    names = set(inspect(db_engine).get_table_names())
    assert {"conversations", "applications", "documents", "alembic_version"} <= names


def test_one_open_application_per_nik(loket: Loket) -> None:
    nik = "3273011708900001"
    with loket.sessions() as session, session.begin():
        create_application(session, make_application(nik), [])
    with loket.sessions() as session, session.begin():
        try:
            create_application(session, make_application(nik, account="other"), [])
            raise AssertionError("second open application for one NIK was accepted")
        except NikAlreadyOpen:
            pass
    # Once cancelled, the NIK may apply again.
    with loket.sessions() as session, session.begin():
        application = open_application_for_nik(session, nik)
        assert application is not None
        application.status = ApplicationStatus.CANCELLED
    with loket.sessions() as session, session.begin():
        create_application(session, make_application(nik, account="other"), [])
        assert count_open_for_account(session, "test", "other") == 1


def test_concurrent_submissions_of_one_nik_make_one_application(loket: Loket) -> None:
    nik = "3171015708900002"
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit(account: str) -> None:
        barrier.wait()
        try:
            with loket.sessions() as session, session.begin():
                create_application(session, make_application(nik, account=account), [])
            result = "created"
        except NikAlreadyOpen:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=submit, args=(f"acct-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["created"] + ["refused"] * 7
    with loket.sessions() as session:
        count = session.execute(
            select(func.count(Application.id)).where(Application.nik == nik)
        ).scalar_one()
    assert count == 1


def test_failures_are_logged_without_personal_data(
    loket: Loket, caplog: pytest.LogCaptureFixture
) -> None:
    nik = "3273011708900009"
    with loket.sessions() as session, session.begin():
        create_application(session, make_application(nik), [])
    try:
        with loket.sessions() as session, session.begin():
            twin = make_application(nik, account="other")
            twin.reg_number = "LK-SAME-0001"
            session.add(twin)
    except IntegrityError as error:  # the open-NIK index refuses it, quoting the row or key
        caught = error
    else:
        raise AssertionError("a second open application for one NIK was accepted")
    log_failure(logging.getLogger("test"), "turn failed", caught)
    assert "IntegrityError" in caplog.text and "turn failed" in caplog.text
    assert nik not in caplog.text and "TEST" not in caplog.text


def test_purge_drops_old_applied_rows_and_keys_but_never_waiting_ones(loket: Loket) -> None:
    for number in (1, 2):
        accept_now(
            loket.autocommit_db, "telegram", f"telegram:{number}", "42", {"update_id": number}
        )
    with loket.sessions() as session, session.begin():
        now = db_now(session)
        first = session.execute(select(InboxUpdate.id).order_by(InboxUpdate.id)).scalars().first()
        assert first is not None and mark_applied(session, first, now)
        assert record_event(session, "telegram:1")
    with loket.sessions() as session, session.begin():
        assert purge_applied(session, now - timedelta(days=7)) == 0  # nothing old enough
    with loket.sessions() as session, session.begin():
        assert purge_applied(session, now + timedelta(minutes=1)) == 2  # the row and the key
    with loket.sessions() as session:
        assert session.execute(select(InboxUpdate.key)).scalars().all() == ["telegram:2"]
        assert session.execute(select(func.count()).select_from(ProcessedEvent)).scalar_one() == 0


def test_waiting_chats_come_in_the_order_their_oldest_update_arrived(loket: Loket) -> None:
    # A waiting room numbers people as their turns are applied: the applier must take chats
    # first come, first applied, whatever order the database would list them in.
    chats = ["905", "17", "433", "17", "2", "905", "61"]
    for number, chat in enumerate(chats, start=1):
        accept_now(loket.autocommit_db, "telegram", f"telegram:{number}", chat,
                   {"update_id": number})  # fmt: skip
    with loket.sessions() as session, session.begin():
        now = db_now(session)
        oldest = session.execute(select(InboxUpdate.id).order_by(InboxUpdate.id)).scalars().first()
        assert oldest is not None and mark_applied(session, oldest, now)  # 905's first is done
    with loket.sessions() as session:
        waiting = waiting_chats(session, "telegram", now + timedelta(minutes=1))
    assert waiting == ["17", "433", "2", "905", "61"]
