"""Payment notices through the signed endpoint and the CLI: once per reference, never lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
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


def raw_notice(code: str, reference: str, amount: object, paid_at: str) -> bytes:
    """Encode a notice with any amount and time, as a faulty or hostile sender might."""
    return json.dumps(
        {"reference": reference, "billing_code": code, "amount": amount, "paid_at": paid_at}
    ).encode()


def test_amount_must_be_a_json_integer_within_bounds(
    client: FlaskClient, chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    code = held_code(chat)
    when = clock.now.isoformat()
    bodies = {
        "950000.9": raw_notice(code, "R-1", 950000.9, when),
        "950000.0": raw_notice(code, "R-2", 950000.0, when),
        "true": raw_notice(code, "R-3", True, when),
        '"950000"': raw_notice(code, "R-4", "950000", when),
        "10**30": raw_notice(code, "R-5", 10**30, when),
        "0": raw_notice(code, "R-6", 0, when),
        "-950000": raw_notice(code, "R-7", -950000, when),
        "null": raw_notice(code, "R-8", None, when),
    }
    for label, body in bodies.items():
        status, answer = post(client, body)
        assert status == 400, label
        assert "amount must be" in answer["error"], (label, answer)
    status, answer = post(client, raw_notice(code, "R-9", 950000, "yesterday"))
    assert status == 400 and "paid_at must be an ISO 8601 time" in answer["error"]
    status, answer = post(client, json.dumps({"reference": "R-10", "amount": 1}).encode())
    assert status == 400 and "missing field(s): billing_code, paid_at" in answer["error"]
    assert payments(loket) == 0
    assert "Menunggu pembayaran" in chat.say("/status")


def test_a_payment_time_before_the_code_or_in_the_future_is_flagged(
    client: FlaskClient, chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    code = held_code(chat)
    for reference, paid_at in (
        ("OLD-1", datetime(2000, 1, 1, tzinfo=UTC)),
        ("FUTURE-1", clock.now + timedelta(days=1)),
    ):
        status, answer = post(client, notice(code, reference, paid_at))
        assert status == 200, answer
        assert answer["outcome"] == "suspect_paid_at" and answer["needs_refund"], answer
    assert payments(loket) == 2  # recorded, never lost
    with loket.sessions() as session:
        assert session.execute(select(Booking.status)).scalar_one() == "held"
    told = loket.pending_messages(chat.channel, chat.user)
    assert "waktu pembayarannya tidak cocok" in told[0].text
    # A bank clock a minute behind or ahead is not suspect.
    status, answer = post(client, notice(code, "OK-1", clock.now + timedelta(minutes=1)))
    assert answer["outcome"] == "confirmed"


def test_a_reference_reused_with_a_different_body_is_a_conflict(
    client: FlaskClient, chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    code = held_code(chat)
    assert post(client, notice(code, "BNI-5", clock.now))[1]["outcome"] == "confirmed"
    # The same notice again, even with the time written in another zone: a repeat.
    local = clock.now.astimezone(timezone(timedelta(hours=7)))
    status, answer = post(client, notice(code, "BNI-5", local))
    assert status == 200 and answer["repeated"] is True
    for changed in (
        notice(code, "BNI-5", clock.now, amount=1),
        notice(code, "BNI-5", clock.now + timedelta(minutes=1)),
        notice("123456789012345", "BNI-5", clock.now),
    ):
        status, answer = post(client, changed)
        assert status == 409 and "different notice" in answer["error"]
    assert payments(loket) == 1


def test_payment_cli_reads_a_notice_as_the_endpoint_does(
    database_url: str, chat: Chat, loket: Loket, tmp_path: Path, clock: FakeClock
) -> None:
    code = held_code(chat)
    env = {**os.environ, "DATABASE_URL": database_url, "LOKET_DATA_DIR": str(tmp_path)}
    base = [sys.executable, "-m", "bot", "payment", "--code", code, "--reference", "CLI-9",
            "--paid-at", clock.now.isoformat()]  # fmt: skip
    for amount in ("950000.9", "1_000", "-5", str(10**30)):
        run = subprocess.run([*base, "--amount", amount], capture_output=True, text=True,
                             env=env, cwd=ROOT, check=False)  # fmt: skip
        assert run.returncode == 2, (amount, run.stderr)
        assert "amount must be" in json.loads(run.stderr)["error"], amount
    assert payments(loket) == 0
    paid = subprocess.run([*base, "--amount", "950000"], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=True)  # fmt: skip
    assert json.loads(paid.stdout)["outcome"] == "confirmed"
    changed = subprocess.run([*base, "--amount", "950001"], capture_output=True, text=True,
                             env=env, cwd=ROOT, check=False)  # fmt: skip
    assert changed.returncode == 3 and "different notice" in changed.stderr
