"""Shared fixtures: every storage-backed test runs on SQLite and on PostgreSQL.

PostgreSQL tests create their own database (`loket_test_<random>`) on the server named by
`LOKET_TEST_POSTGRES_URL` and drop it afterwards. Where no server answers they are skipped,
except under CI (`CI=true`) or `LOKET_REQUIRE_SERVICES=1`, where a missing server fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from bot.phone_sender import RecordingSender
from bot.seed import extend_calendars, seed_offices
from bot.service import Loket
from bot.settings import Settings
from bot.shared import InProcessState, RedisState, SharedState
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import Base
from tests.transcript import Chat

POSTGRES_ADMIN_URL = os.environ.get(
    "LOKET_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_SERVICES = os.environ.get("CI") == "true" or os.environ.get("LOKET_REQUIRE_SERVICES") == "1"


def _postgres_admin() -> Engine | None:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            return engine
    except Exception as error:
        engine.dispose()
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL is required but not reachable: {error}")
        return None


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is not reachable (fail where services are
    required), for tests that hand POSTGRES_ADMIN_URL to a process of their own."""
    admin = _postgres_admin()
    if admin is None:
        pytest.skip("PostgreSQL not reachable")
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Yield the URL of a freshly migrated database for one backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "loket.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return

    admin = _postgres_admin()
    if admin is None:
        pytest.skip("PostgreSQL not reachable")
    name = f"loket_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    """Yield one engine per backend, with the demo offices and their slots made once."""
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session, session.begin():
        seed_offices(session)
        extend_calendars(session, START, SEEDED_DAYS)
    yield engine
    engine.dispose()


@pytest.fixture
def backend(db_engine: Engine) -> str:
    """Name the backend of the current test."""
    return db_engine.dialect.name


# Offices and their calendars are made once per backend; everything else starts empty.
REFERENCE_TABLES = {"offices", "slot_templates", "slots"}
START = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)  # Sunday 22 November 2026, 10:00 WIB
SEEDED_DAYS = 62  # the calendars made once per backend: START's day and 61 more
SEEDED_LAST_DAY = START.date() + timedelta(days=SEEDED_DAYS - 1)


def _empty_tables(engine: Engine) -> None:
    tables = [
        table.name
        for table in reversed(Base.metadata.sorted_tables)
        if table.name not in REFERENCE_TABLES
    ]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))
        # Seats taken or closed by a test come back; slots a test added (simpatik, keliling,
        # and days a worker round at a later fake time added past the seeded horizon) go.
        connection.execute(
            text(
                "DELETE FROM slots WHERE kind IN ('simpatik', 'keliling') OR note = 'test slot' "
                "OR day > :last"
            ),
            {"last": SEEDED_LAST_DAY},
        )
        connection.execute(
            text("UPDATE slots SET taken = 0, closed = false WHERE taken > 0 OR closed")
        )
        # Release modes and walk-in days a test chose go back to the seeded first come.
        connection.execute(
            text(
                "UPDATE offices SET release_mode = 'first_come', walk_in_only = false, "
                "walk_in_quota = NULL, admit_per_minute = 60, admit_minutes = 5"
            )
        )


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move time forward."""
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    """Start every test at the same moment (Sunday 22 November 2026, 10:00 WIB)."""
    return FakeClock(START)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the backend under test and a private data folder."""
    # Holds need a verified phone number, as in production (tests/transcript.py `Chat.verify`
    # proves it per channel). Tests answer faster than a person types, on the real clock of
    # the rate limits: those tests set their own limits.
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        auto_migrate=False,
        rate_account_per_second=1000,
        rate_account_burst=100_000,
        rate_phone_per_second=1000,
        rate_phone_burst=100_000,
        rate_address_per_second=1000,
        rate_address_burst=100_000,
    )


@pytest.fixture
def clean_db(db_engine: Engine) -> Engine:
    """Empty every table of the backend under test."""
    _empty_tables(db_engine)
    return db_engine


@contextmanager
def redis_test_state() -> Iterator[RedisState]:
    """Yield Redis-backed state under a prefix of its own, deleting its keys afterwards."""
    prefix = f"loket-test-{uuid.uuid4().hex[:10]}"
    state = RedisState(os.environ.get("LOKET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"), prefix)
    try:
        state.client.ping()
    except Exception as error:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required but not reachable: {error}")
        pytest.skip("Redis not reachable")
    try:
        yield state
    finally:
        for key in state.client.scan_iter(f"{prefix}:*"):
            state.client.delete(key)
        state.close()


@pytest.fixture
def shared_state(db_engine: Engine) -> Iterator[SharedState]:
    """In-process state beside SQLite; Redis under a test's own prefix beside PostgreSQL."""
    if db_engine.dialect.name != "postgresql":
        yield InProcessState()
        return
    with redis_test_state() as state:
        yield state


@pytest.fixture
def sender() -> RecordingSender:
    """Record the one-time codes the service sends (web chat, terminal and test channels)."""
    return RecordingSender()


@pytest.fixture
def loket(
    settings: Settings,
    clean_db: Engine,
    clock: FakeClock,
    shared_state: SharedState,
    sender: RecordingSender,
) -> Iterator[Loket]:
    """The real service on empty tables (SQLite + in-process, or PostgreSQL + Redis)."""
    service = Loket(settings, db=clean_db, clock=clock, shared=shared_state, phone_sender=sender)
    yield service
    # The database and shared state belong to their own fixtures; only the photo threads
    # are the service's own.
    service.image_checks.shutdown(wait=True)
    service.phone_delivery.thread.shutdown(wait=True)


@pytest.fixture
def chat(loket: Loket) -> Chat:
    """A fresh chat identity talking to the service."""
    return Chat(loket, f"user-{uuid.uuid4().hex[:8]}")
