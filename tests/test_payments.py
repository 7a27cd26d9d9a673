"""Payment notices through the signed endpoint and the CLI: once per reference, never lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bot.payments import SIGNATURE_HEADER, sign, sweep
from bot.service import Loket
from bot.web import create_app
from storage.models import Booking, Payment, Slot
from tests.conftest import FakeClock
from tests.transcript import Chat, billing_code, book, register

SECRET = "test-secret-not-for-production"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(loket: Loket) -> FlaskClient:
    """A test client of the real Flask app around the service under test."""
    loket.settings = replace(loket.settings, payment_secret=SECRET)
    app = create_app(loket.settings, loket)
    return app.test_client()


def notice(code: str, reference: str, paid_at: datetime, amount: int = 950_000) -> bytes:
    """Encode a payment notice as a bank would send it."""
    return json.dumps(
        {"reference": reference, "billing_code": code, "amount": amount,
         "paid_at": paid_at.isoformat()}
    ).encode()  # fmt: skip


def post(client: FlaskClient, body: bytes, signature: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    """POST a notice with its signature."""
    headers = {"Content-Type": "application/json"}
    headers[SIGNATURE_HEADER] = signature if signature is not None else sign(SECRET, body)
    response = client.post("/payments/notify", data=body, headers=headers)
    return response.status_code, response.get_json()


def payments(loket: Loket) -> int:
    """Count recorded payments."""
    with loket.sessions() as session:
        return int(session.execute(select(func.count(Payment.id))).scalar_one())


def held_code(chat: Chat) -> str:
    """Register, book and return the billing code."""
    register(chat)
    return billing_code(book(chat))


def test_valid_notice_confirms(
    client: FlaskClient, chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    code = held_code(chat)
    status, answer = post(client, notice(code, "BNI-001", clock.now))
    assert status == 200
    assert answer == {"reference": "BNI-001", "outcome": "confirmed", "repeated": False,
                      "needs_refund": False}  # fmt: skip
    [message] = loket.pending_messages(chat.channel, chat.user)
    assert "Pembayaran diterima" in message.text and message.qr


def test_bad_or_missing_signature_has_no_effect(client: FlaskClient, chat: Chat, loket: Loket,
                                                 clock: FakeClock) -> None:  # fmt: skip
    code = held_code(chat)
    body = notice(code, "BNI-002", clock.now)
    assert post(client, body, signature="sha256=" + "0" * 64)[0] == 401
    assert post(client, body, signature="")[0] == 401
    tampered = body.replace(b"950000", b"1")
    assert post(client, tampered, signature=sign(SECRET, body))[0] == 401
    assert payments(loket) == 0
    assert "Menunggu pembayaran" in chat.say("/status")


def test_unconfigured_secret_refuses(loket: Loket) -> None:
    app = create_app(replace(loket.settings, payment_secret=None), loket)
    response = app.test_client().post("/payments/notify", data=b"{}")
    assert response.status_code == 503


def test_malformed_notice_is_a_400(client: FlaskClient, loket: Loket) -> None:
    for body in (b"not json", b"[]", json.dumps({"reference": "x"}).encode(),
                 json.dumps({"reference": "x", "billing_code": "1", "amount": 5,
                             "paid_at": "2026-11-22T10:00:00"}).encode()):  # fmt: skip
        status, answer = post(client, body)
        assert status == 400, body
        assert answer["error"].startswith("bad notice")
    assert payments(loket) == 0


def test_same_notice_five_times_in_sequence_and_concurrently(
    client: FlaskClient, chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    code = held_code(chat)
    body = notice(code, "BRI-777", clock.now)
    answers = [post(client, body)[1] for _ in range(5)]
    assert [a["repeated"] for a in answers] == [False, True, True, True, True]
    second = notice(code, "BRI-778", clock.now)
    results: list[dict] = []  # type: ignore[type-arg]
    threads = [threading.Thread(target=lambda: results.append(post(client, second)[1]))
               for _ in range(5)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r["repeated"] for r in results) == [False, True, True, True, True]
    assert {r["outcome"] for r in results} == {"already_paid"}
    assert payments(loket) == 2
    with loket.sessions() as session:
        assert session.execute(select(Booking.status)).scalar_one() == "confirmed"


def test_late_payment_is_recorded_and_flagged(client: FlaskClient, chat: Chat, loket: Loket,
                                               clock: FakeClock) -> None:  # fmt: skip
    code = held_code(chat)
    clock.advance(hours=3)
    sweep(loket)
    status, answer = post(client, notice(code, "MANDIRI-9", clock.now))
    assert status == 200 and answer["outcome"] == "late_refund" and answer["needs_refund"]
    reply = chat.say("/status")
    assert "ditandai untuk dikembalikan" in reply


def test_paid_in_time_but_noticed_after_the_sweep_still_confirms(
    client: FlaskClient, chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    code = held_code(chat)
    paid_at = clock.now + timedelta(minutes=100)
    clock.advance(hours=2, minutes=5)
    assert sweep(loket) == 1
    status, answer = post(client, notice(code, "BCA-1", paid_at))
    assert status == 200 and answer["outcome"] == "confirmed"
    with loket.sessions() as session:
        assert session.execute(select(func.sum(Slot.taken))).scalar_one() == 1


def test_wrong_amount_is_recorded_for_review(client: FlaskClient, chat: Chat, loket: Loket,
                                              clock: FakeClock) -> None:  # fmt: skip
    code = held_code(chat)
    assert post(client, notice(code, "X-1", clock.now, amount=900_000))[1]["outcome"] == (
        "amount_mismatch"
    )
    assert "Menunggu pembayaran" in chat.say("/status")


def test_unknown_code_is_recorded_not_dropped(client: FlaskClient, loket: Loket,
                                               clock: FakeClock) -> None:  # fmt: skip
    status, answer = post(client, notice("123456789012345", "X-2", clock.now))
    assert status == 200 and answer["outcome"] == "unknown_code"
    assert payments(loket) == 1


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_payment_cli_is_idempotent(
    database_url: str, chat: Chat, loket: Loket, tmp_path: Path, clock: FakeClock
) -> None:
    code = held_code(chat)
    env = {**os.environ, "DATABASE_URL": database_url, "LOKET_DATA_DIR": str(tmp_path)}
    # Paid at the test's time (the hold's deadline follows the fake clock, not the wall clock).
    command = [sys.executable, "-m", "bot", "payment", "--code", code, "--amount", "950000",
               "--reference", "CLI-1", "--paid-at", clock.now.isoformat()]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert json.loads(first.stdout)["outcome"] == "confirmed"
    assert json.loads(again.stdout)["repeated"] is True
    assert payments(loket) == 1
