"""At a release the queue's keyed statements stay cheap before the database's statistics
catch up.

Tickets and entries arrive by thousands a second, faster than PostgreSQL's autovacuum
gathers statistics, so the planner still believes the release holds about one row. It took,
for a chat's ticket, an index that starts with office and release but not with the chat:
every tap then read every ticket of the release (a release of 20,000 went from 1,200 tickets
a second to 220). The test takes a fresh database (statistics never gathered, as at a
deployment's first release) or one whose statistics describe an earlier release, fills a
release, runs the real functions, and replays each statement they sent under EXPLAIN: no
statement may read more than a hundred rows (PostgreSQL) or scan a queue table (SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, inspect, select, text
from sqlalchemy.orm import Session

from bench.herd import fresh_database
from storage.db import make_engine
from storage.inbox import Pending
from storage.models import (
    Application,
    Office,
    QueueEntry,
    QueueStatus,
    QueueTicket,
    ReleaseQueue,
    Slot,
)
from storage.waiting_room import (
    admissions_so_far,
    admit_due,
    admitted_now,
    claim_admission,
    issue_ticket,
    latest_entry,
    void_ticket,
)
from tests.conftest import START

PEOPLE = 3000  # tickets and entries in the release
ADMITTED = 40  # of the entries, the first ones admitted
ROW_LIMIT = 100  # rows one keyed statement may read (a scan of the release reads thousands)
QUEUE_TABLES = ("queue_tickets", "queue_entries")
REG_NUMBER = "LK-PLAN-0001"


@contextmanager
def fresh_office(database_url: str) -> Iterator[tuple[Engine, int, datetime]]:
    """Yield a fresh database (autovacuum kept off its queue tables, PostgreSQL) with one
    waiting-room office released an hour before START: engine, office id, release."""
    release_at = START - timedelta(hours=1)
    with fresh_database(database_url) as url:
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                if engine.dialect.name == "postgresql":
                    for table in QUEUE_TABLES:
                        connection.execute(
                            text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
                        )
            with Session(engine) as session, session.begin():
                office = Office(
                    code="plan", name="Kantor Imigrasi Uji", city="Bandung", province="Jawa Barat",
                    timezone="Asia/Jakarta", address="Jl. Uji 1", hours="08.00-16.00",
                    latitude=-6.9, longitude=107.6, release_mode="waiting_room",
                    admit_per_minute=15,  # 45 turns by START: 5 more to admit, by their query
                )  # fmt: skip
                session.add(office)
                session.flush()
                session.add(Slot(
                    office_id=office.id, day=START.date() + timedelta(days=7),
                    start_time=time(8, 0), end_time=time(9, 0), kind="reguler", capacity=10,
                    taken=0, release_at=release_at, closed=False))  # fmt: skip
                office_id = office.id
            yield engine, office_id, release_at
        finally:
            engine.dispose()


def fill_release(engine: Engine, office_id: int, release_at: datetime) -> None:
    """Give PEOPLE chats a ticket (used) and their NIKs an entry in this release, the first
    ADMITTED of them admitted."""
    now = release_at + timedelta(minutes=1)
    tickets = [
        {"office_id": office_id, "release_at": release_at, "number": n, "channel": "telegram",
         "account_ref": str(9_000_000 + n), "status": "used", "issued_at": now}
        for n in range(1, PEOPLE + 1)
    ]  # fmt: skip
    with engine.begin() as connection:
        application_id = connection.execute(
            select(Application.id).where(Application.reg_number == REG_NUMBER)
        ).scalar_one_or_none()
        if application_id is None:
            application_id = connection.execute(
                insert(Application).returning(Application.id), [_application()]
            ).scalar_one()
        entries = [
            {"office_id": office_id, "release_at": release_at, "number": n, "nik": f"{n:016d}",
             "attempt": 1, "application_id": application_id, "channel": "telegram",
             "account_ref": str(9_000_000 + n), "joined_at": now,
             "status": QueueStatus.ADMITTED if n <= ADMITTED else QueueStatus.WAITING,
             "admitted_at": now if n <= ADMITTED else None,
             "expires_at": now + timedelta(minutes=5) if n <= ADMITTED else None}
            for n in range(1, PEOPLE + 1)
        ]  # fmt: skip
        connection.execute(
            insert(ReleaseQueue).values(office_id=office_id, release_at=release_at, issued=PEOPLE)
        )
        connection.execute(insert(QueueTicket), tickets)
        connection.execute(insert(QueueEntry), entries)


def _application() -> dict[str, Any]:
    return {
        "reg_number": REG_NUMBER, "channel": "telegram", "account_ref": "9000001",
        "service": "reguler", "application_type": "baru", "passport_kind": "biasa",
        "validity_years": 5, "category": "adult", "nik": f"{1:016d}", "full_name": "PEMOHON",
        "birth_place": "Bandung", "birth_date": START.date().replace(year=1990), "sex": "M",
        "phone": "+6281234567890", "address": "Jl. Merdeka 10 Bandung",
        "travel_purpose": "wisata", "fee_amount": 350_000, "fee_schedule": "PP 45/2024",
        "answers": {},
    }  # fmt: skip


@contextmanager
def recorded(engines: list[Engine]) -> Iterator[list[tuple[str, Any]]]:
    """Record every statement (text and parameters) the engines send."""
    sent: list[tuple[str, Any]] = []
    engines = list({id(engine): engine for engine in engines}.values())

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        sent.append((statement, parameters))

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def rows_examined(plan: dict[str, Any]) -> int:
    """The rows a plan's scans read: those they returned and those their filters dropped."""
    own = 0
    if "Relation Name" in plan:
        read = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        read += plan.get("Rows Removed by Index Recheck", 0)
        own = int(read) * int(plan.get("Actual Loops", 1))
    return own + sum(rows_examined(child) for child in plan.get("Plans", []))


def cost_of(engine: Engine, statement: str, parameters: Any) -> tuple[int, str]:
    """Replay a statement under EXPLAIN in a transaction rolled back; return the rows its scans
    read (PostgreSQL, else 0) and the plan's text (of the first row of an executemany)."""
    if isinstance(parameters, list):
        parameters = parameters[0]
    with engine.connect() as connection, connection.begin() as transaction:
        if engine.dialect.name == "postgresql":
            row = connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters
            ).scalar_one()
            plan = (row if isinstance(row, list) else json.loads(row))[0]["Plan"]
            rows, shown = rows_examined(plan), json.dumps(plan)
        else:
            result = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            lines = result.all() if result.returns_rows else []  # a plain INSERT has no plan
            rows, shown = 0, "\n".join(str(found[-1]) for found in lines)
        transaction.rollback()
    return rows, shown


@pytest.mark.parametrize("statistics", ["never gathered", "of an earlier release"])
def test_a_releases_keyed_statements_read_a_few_rows_before_statistics_catch_up(
    database_url: str, statistics: str
) -> None:
    with fresh_office(database_url) as (engine, office_id, release_at):
        if statistics == "of an earlier release":
            fill_release(engine, office_id, release_at - timedelta(days=30))
            if engine.dialect.name == "postgresql":
                with engine.begin() as connection:
                    connection.execute(text(f"ANALYZE {', '.join(QUEUE_TABLES)}"))
        fill_release(engine, office_id, release_at)
        check_statements(engine, office_id, release_at)


def check_statements(engine: Engine, office_id: int, release_at: datetime) -> None:
    """Run each keyed function of the waiting room once and check what it sent."""
    postgres = engine.dialect.name == "postgresql"
    autocommit = make_engine(
        engine.url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    ) if postgres else engine  # fmt: skip
    now = release_at + timedelta(minutes=2)
    first = Application(channel="telegram", account_ref="9000001", nik=f"{1:016d}")
    calls: list[tuple[str, Callable[[], Any]]] = []

    def ticket(ref: str) -> Callable[[], Any]:
        turn = Pending(f"plan-{ref}", "telegram", ref, {"update_id": 1}, 1)
        return lambda: issue_ticket(autocommit, office_id, release_at, now, turn)

    def in_session(work: Callable[[Session, Office], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with Session(engine) as session, session.begin():
                office = session.get(Office, office_id)
                assert office is not None
                return work(session, office)

        return run

    calls = [
        ("a repeated tap's ticket", ticket("9000002")),
        ("a new chat's ticket", ticket("8000001")),
        ("the NIK's latest entry",
         in_session(lambda s, o: latest_entry(s, o.id, release_at, f"{PEOPLE:016d}"))),
        ("voiding the chat's ticket", in_session(lambda s, o: void_ticket(s, o, first, now))),
        ("the NIK's running admission",
         in_session(lambda s, o: admitted_now(s, o.id, first.nik, now))),
        ("claiming the admission",
         in_session(lambda s, o: claim_admission(s, o.id, first.nik, now))),
        ("admissions so far", in_session(lambda s, o: admissions_so_far(s, o.id, release_at))),
        ("admitting the next ones", in_session(lambda s, o: admit_due(s, o, release_at, now))),
    ]  # fmt: skip
    try:
        for name, call in calls:
            with recorded([engine, autocommit]) as sent:
                call()
            queue = [(sql, params) for sql, params in sent
                     if any(table in sql for table in QUEUE_TABLES)]  # fmt: skip
            assert queue, name
            for sql, params in queue:
                rows, plan = cost_of(engine, sql, params)
                where = f"{name}: {sql.strip()[:160]}\n{plan[:2000]}"
                if postgres:
                    assert rows <= ROW_LIMIT, f"{rows} rows read, {where}"
                else:
                    scans = [line for line in plan.splitlines() if line.startswith("SCAN")
                             and any(table in line for table in QUEUE_TABLES)]  # fmt: skip
                    assert not scans, where
    finally:
        if autocommit is not engine:
            autocommit.dispose()


@pytest.mark.parametrize("table", [*QUEUE_TABLES, "ballot_entries"])
def test_no_two_indexes_of_a_queue_table_start_with_the_same_column(
    clean_db: Engine, table: str
) -> None:
    """The schema rule the statements above rely on (storage/models.py): with two indexes
    starting alike, the planner may pick the wrong one for a keyed lookup again."""
    inspector = inspect(clean_db)
    found = [*inspector.get_indexes(table), *inspector.get_unique_constraints(table)]
    # A unique constraint is listed again as its index.
    firsts = [columns[0] for columns in {tuple(index["column_names"]) for index in found}]
    assert len(firsts) >= 2
    assert len(set(firsts)) == len(firsts), sorted(firsts)
