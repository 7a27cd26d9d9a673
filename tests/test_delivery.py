"""Operating the service: where `serve` listens, demo logins, a database that is down, one
service for every part of `serve`, notices taken with the turn, one chat language."""

from __future__ import annotations

import io
import logging
import os
import stat
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bot import __main__ as cli
from bot import worker
from bot.channels.telegram import TelegramChannel
from bot.channels.terminal import TerminalChat
from bot.consoles.notify import status_changed
from bot.core.messages import Inbound, Outbound
from bot.service import Loket
from bot.settings import Settings
from storage.booking import queue_message
from storage.models import ApplicationStatus, OutboxMessage
from tests.fake_telegram import TOKEN, FakeTelegram

ROOT = Path(__file__).resolve().parent.parent


# ---- where `serve` listens, and the demo logins --------------------------------------------


def test_host_defaults_to_loopback_and_can_be_set() -> None:
    assert Settings.from_env({}).host == "127.0.0.1"
    assert Settings.from_env({"HOST": "0.0.0.0"}).host == "0.0.0.0"


class Terminal(io.StringIO):
    """Standard output that is a terminal."""

    def isatty(self) -> bool:
        """Say so."""
        return True


def serve_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: io.StringIO, **extra: Any
) -> dict[str, Any]:
    """Run `serve` on a fresh embedded database with the web server, worker and poller
    replaced by recorders; return what each was given."""
    seen: dict[str, Any] = {"lokets": []}
    started = {"worker": threading.Event(), "poll": threading.Event()}
    real_init = Loket.__init__

    def init(self: Loket, *args: Any, **kwargs: Any) -> None:
        seen["lokets"].append(self)
        real_init(self, *args, **kwargs)

    def run_app(app: Flask, host: str, port: int, threaded: bool) -> None:
        seen["app"], seen["host"] = app, host

    def run_worker(loket: Loket, interval: float, rounds: Any, channels: Any) -> int:
        seen["worker"] = (loket, channels)
        started["worker"].set()
        return 0

    def poll(channel: TelegramChannel) -> None:
        seen["poll"] = channel
        started["poll"].set()

    monkeypatch.setattr(Loket, "__init__", init)
    monkeypatch.setattr(Flask, "run", run_app)
    monkeypatch.setattr(worker, "run", run_worker)
    monkeypatch.setattr(cli, "poll_forever", poll)
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/x.db")
    assert cli.run_serve(replace(settings, **extra), out=out) == 0
    assert started["worker"].wait(60)
    if extra.get("telegram_token"):
        assert started["poll"].wait(60)
    return seen


def test_serve_listens_on_loopback_and_keeps_demo_passwords_out_of_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()  # not a terminal: a service manager would log it
    seen = serve_embedded(tmp_path, monkeypatch, out)
    assert seen["host"] == "127.0.0.1"
    saved = tmp_path / "data" / "demo-staff-logins.txt"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    passwords = [line.rsplit("password: ", 1)[1] for line in saved.read_text().splitlines()
                 if "password: " in line]  # fmt: skip
    assert len(passwords) == 3
    for password in passwords:
        assert password not in out.getvalue()
        assert password not in caplog.text
    assert str(saved) in out.getvalue()


def test_demo_passwords_are_printed_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    out = Terminal()
    serve_embedded(tmp_path, monkeypatch, out)
    assert out.getvalue().count("password: ") == 3
    assert "password: " not in caplog.text
    assert not (tmp_path / "data" / "demo-staff-logins.txt").exists()


def test_serve_builds_one_service_for_web_worker_and_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeTelegram().start()
    try:
        seen = serve_embedded(
            tmp_path, monkeypatch, Terminal(), telegram_token=TOKEN,
            telegram_base_url=fake.base_url, telegram_base_file_url=fake.base_file_url,
        )  # fmt: skip
        [loket] = seen["lokets"]
        channel = seen["poll"]
        assert seen["app"].config["LOKET"] is loket
        assert seen["worker"] == (loket, [channel]) and channel.loket is loket
        assert seen["app"].config["TELEGRAM"] is channel
        channel.runner.close()
    finally:
        fake.stop()


# ---- a database that is down ---------------------------------------------------------------

DOWN = "postgresql+psycopg://loket:s3cret-pw@127.0.0.1:1/loket"
COMMANDS = [
    ["migrate"],
    ["payment", "--code", "123456789012345", "--amount", "1", "--reference", "R1"],
    ["worker", "--rounds", "1", "--interval", "0"],
    ["sweep"],
    ["seed"],
    ["stats"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_commands_say_the_database_is_down_in_one_line(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": DOWN, "LOKET_DATA_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    env.pop("TELEGRAM_BOT_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot", *command], env=env, cwd=ROOT, timeout=120,
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("database not reachable: ")
    assert "Connection refused" in lines[0] or "connection" in lines[0].lower()
    assert "s3cret-pw" not in done.stderr + done.stdout


# ---- notices taken with the turn, in the chat's language -----------------------------------


def test_the_terminal_keeps_waiting_notices_when_the_turn_fails(
    loket: Loket, monkeypatch: pytest.MonkeyPatch
) -> None:
    with loket.sessions() as session, session.begin():
        now = loket.now(session)
        queue_message(session, "terminal", "ana", Outbound("Pembayaran diterima.").to_payload(),
                      now)  # fmt: skip
    out = io.StringIO()
    chat = TerminalChat(loket, "ana", jsonl=False, language=None, out=out)
    real_handle = loket.engine.handle

    def broken(*args: Any) -> Any:
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(loket.engine, "handle", broken)
    chat.send(Inbound.say("halo"))
    assert "Maaf, terjadi gangguan" in out.getvalue()
    assert "Pembayaran diterima." not in out.getvalue()  # not shown, so not taken
    monkeypatch.setattr(loket.engine, "handle", real_handle)
    chat.send(Inbound.say("/status"))
    shown = out.getvalue()
    assert "Pembayaran diterima." in shown
    assert shown.index("Pembayaran diterima.") < shown.index("Belum ada permohonan")
    with loket.sessions() as session:
        assert session.execute(select(OutboxMessage.sent_at)).scalar_one() is not None


def test_status_notices_follow_the_language_of_the_users_telegram_app(loket: Loket) -> None:
    # An English Telegram app, no language chosen: turns are in English, and so are notices.
    replies = loket.handle("telegram", "77", Inbound.open(language_code="en-GB"))
    assert replies[0].text.startswith("Welcome to Loket")
    application: Any = SimpleNamespace(
        channel="telegram", account_ref="77", status=ApplicationStatus.VERIFIED,
        reg_number="LK-TEST-0001",
    )  # fmt: skip
    with loket.sessions() as session, session.begin():
        status_changed(session, application, "Kantor Imigrasi Bandung", loket.now(session))
    with loket.sessions() as session:
        payload = session.execute(select(OutboxMessage.payload)).scalar_one()
    assert payload["locale"] == "en"
    assert "LK-TEST-0001" in payload["text"] and "berkas" not in payload["text"]
