"""Announcement progress: the office console's JSON counts, the CLI, and a worker killed
mid-announcement that completes it on restart with no loss and no duplicate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select

from bot.flows.subscription import announcement_payload
from bot.service import Loket
from storage.booking import mark_sent
from storage.models import Office, OutboxMessage
from storage.outbox import set_aside
from storage.subscriptions import announce, announcement_progress, subscribe
from tests.conftest import FakeClock
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.test_consoles import client, log_in, token  # noqa: F401 (the client fixture)

ROOT = Path(__file__).resolve().parent.parent


def follow(loket: Loket, office: str, chats: list[str]) -> None:
    """Subscribe telegram chats to an office's announcements."""
    with loket.sessions() as session, session.begin():
        office_id = session.execute(select(Office.id).where(Office.code == office)).scalar_one()
        for chat in chats:
            subscribe(session, "telegram", chat, office_id, "id", loket.now(session))


def test_the_console_shows_sent_failed_remaining_and_a_finish(
    client: FlaskClient,  # noqa: F811
    loket: Loket,
    clock: FakeClock,
) -> None:
    follow(loket, "jakarta-selatan", ["9001", "9002", "9003", "9004"])
    assert log_in(client, "budi.jaksel") == 302
    form = {"text": "Kuota Desember dibuka Senin pukul 08.00 WIB.",
            "csrf_token": token(client, "/office")}  # fmt: skip
    client.post("/office/announce", data=form)
    page = client.get("/office").get_data(as_text=True)
    assert "data-progress-url=" in page and "Pengiriman pengumuman terakhir" in page
    with loket.sessions() as session:
        rows = session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
    url = f"/office/announcements/{rows[0].announcement_id}/progress"
    first = client.get(url).get_json()
    assert (first["sent"], first["failed"], first["remaining"]) == (0, 0, 4)
    assert first["finish_at"] is None and not first["done"]
    with loket.sessions() as session, session.begin():
        now = loket.now(session)
        mark_sent(session, rows[0].id, "1", now)
        mark_sent(session, rows[1].id, "2", now)
        set_aside(session, [rows[2].id], "blocked", now)
    clock.advance(seconds=10)
    middle = client.get(url).get_json()
    assert (middle["sent"], middle["failed"], middle["remaining"]) == (2, 1, 1)
    # Two sent in the last minute: 2/60 a second, so the last one in about 30 s.
    assert middle["per_second"] == 0.03 and middle["finish_at"].startswith("2026-11-22T03:00:4")
    with loket.sessions() as session, session.begin():
        mark_sent(session, rows[3].id, "4", loket.now(session))
    assert client.get(url).get_json()["done"]


def test_another_office_cannot_read_the_progress(
    client: FlaskClient,  # noqa: F811
    loket: Loket,
) -> None:
    follow(loket, "bandung", ["9101"])
    from bot.flows.subscription import announcement_payload
    from storage.subscriptions import announce

    with loket.sessions() as session, session.begin():
        office_id = session.execute(select(Office.id).where(Office.code == "bandung")).scalar_one()
        entry = announce(session, office_id, None, "Kuota baru di Bandung.", loket.now(session),
                         announcement_payload)  # fmt: skip
    assert log_in(client, "budi.jaksel") == 302  # Jakarta Selatan's admin
    assert client.get(f"/office/announcements/{entry.id}/progress").status_code == 404


def service_env(fake: FakeTelegram, database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a `python -m bot` subprocess on this test's database."""
    env = {**os.environ, "DATABASE_URL": database_url, "LOKET_DATA_DIR": str(tmp_path),
           "LOKET_AUTO_MIGRATE": "0", "TELEGRAM_BOT_TOKEN": TOKEN,
           "TELEGRAM_BASE_URL": fake.base_url, "TELEGRAM_BASE_FILE_URL": fake.base_file_url,
           "TELEGRAM_CHAT_RATE_PER_SECOND": "1000", "TELEGRAM_RATE_PER_SECOND": "1000"}  # fmt: skip
    for name in ("PUBLIC_URL", "LOKET_FAILPOINT", "LOKET_FAILPOINT_ONCE"):
        env.pop(name, None)
    return env


def test_the_cli_announces_and_shows_a_progress_bar(
    loket: Loket, database_url: str, tmp_path: Path
) -> None:
    loket.prepare_demo()
    chats = [str(9200 + number) for number in range(5)]
    follow(loket, "bandung", chats)
    fake = FakeTelegram().start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "announce", "--office", "bandung",
             "--text", "Kuota Januari dibuka Senin pukul 08.00 WIB."],
            env=service_env(fake, database_url, tmp_path), cwd=ROOT, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
    finally:
        fake.stop()
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["sent"], figures["failed"], figures["remaining"]) == (5, 0, 0)
    assert "[" + "#" * 30 + "] 5/5 sent 5 failed 0 left 0" in done.stderr
    assert sorted(sent.chat_id for sent in fake.sent) == chats


def test_a_worker_killed_mid_announcement_completes_it_on_restart_once_each(
    loket: Loket, database_url: str, tmp_path: Path
) -> None:
    loket.prepare_demo()
    chats = [str(9300 + number) for number in range(8)]
    follow(loket, "bandung", chats)
    with loket.sessions() as session, session.begin():
        office_id = session.execute(select(Office.id).where(Office.code == "bandung")).scalar_one()
        entry = announce(session, office_id, None, "Kuota baru di Bandung.", loket.now(session),
                         announcement_payload)  # fmt: skip
    fake = FakeTelegram().start()
    env = {**service_env(fake, database_url, tmp_path), "LOKET_FAILPOINT": "after-record",
           "LOKET_FAILPOINT_ONCE": str(tmp_path / "fired"),
           "TELEGRAM_SEND_THREADS": "1"}  # fmt: skip
    worker = [sys.executable, "-m", "bot", "worker", "--rounds", "1", "--interval", "0"]
    try:
        killed = subprocess.run(worker, env=env, cwd=ROOT, capture_output=True, timeout=120)
        assert killed.returncode == -9 and (tmp_path / "fired").exists()
        with loket.sessions() as session:
            middle = announcement_progress(session, entry.id, loket.now(session))
        assert 0 < middle["sent"] < len(chats)  # killed with the announcement half done
        restarted = subprocess.run(worker, env=env, cwd=ROOT, capture_output=True, timeout=120)
        assert restarted.returncode == 0, restarted.stderr
    finally:
        fake.stop()
    with loket.sessions() as session:
        final = announcement_progress(session, entry.id, loket.now(session))
    assert (final["sent"], final["failed"], final["remaining"]) == (len(chats), 0, 0)
    received = Counter(sent.chat_id for sent in fake.sent)
    assert received == Counter(chats)  # each follower once: no loss, no duplicate
