"""Staff consoles through the real Flask app: accounts, security, attribution, audit, isolation."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

import storage.staff
from bot.service import Loket
from bot.web import create_app
from storage.booking import queue_message
from storage.models import (
    Application,
    AuditEntry,
    BillingCode,
    Booking,
    Conversation,
    Office,
    OutboxMessage,
    Slot,
    Staff,
    WalkIn,
)
from storage.staff import StaffError, add_staff, deactivate
from storage.subscriptions import subscribe
from tests.conftest import FakeClock
from tests.test_booking import pay
from tests.test_images import minimal_pdf
from tests.transcript import Chat, billing_code, book, fill_until, make_nik, register

PASSWORD = "kata-sandi-uji-1"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(loket: Loket) -> FlaskClient:
    """A client of the real app, with demo offices and one staff member of each kind."""
    loket.prepare_demo()
    with loket.sessions() as session, session.begin():
        add_staff(session, "ani.cs", "Ani", "agent", PASSWORD)
        add_staff(session, "budi.jaksel", "Budi", "office_admin", PASSWORD, "jakarta-selatan")
    return create_app(loket.settings, loket).test_client()


def token(client: FlaskClient, path: str = "/staff/login") -> str:
    """Read the CSRF token a page carries."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:300]
    return match.group(1)


def log_in(
    client: FlaskClient,
    username: str,
    password: str = PASSWORD,
    address: str = "127.0.0.1",
    forwarded: str | None = None,
) -> int:
    """Post the log-in form (from `address`, through a proxy naming `forwarded`); return the
    status code."""
    return attempt(client, username, password, address, forwarded).status_code


def attempt(
    client: FlaskClient,
    username: str,
    password: str = PASSWORD,
    address: str = "127.0.0.1",
    forwarded: str | None = None,
) -> TestResponse:
    """Post the log-in form; return the answer."""
    form = {"username": username, "password": password, "csrf_token": token(client)}
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post(
        "/staff/login", data=form, headers=headers, environ_base={"REMOTE_ADDR": address}
    )


def refusal(answer: TestResponse) -> tuple[int, str]:
    """The status and the error a refused log-in shows."""
    match = re.search(r'class="flash error"[^>]*>([^<]+)<', answer.get_data(as_text=True))
    return answer.status_code, match.group(1) if match else ""


def test_session_cookie_is_secure_httponly_and_samesite(client: FlaskClient) -> None:
    assert log_in(client, "ani.cs") == 302
    client.get("/agent")
    cookie = client.get_cookie("loket_session")
    assert cookie is not None
    assert cookie.secure and cookie.http_only and cookie.same_site == "Lax"


def test_forms_without_a_csrf_token_are_refused(client: FlaskClient, loket: Loket) -> None:
    refused = client.post("/staff/login", data={"username": "ani.cs", "password": PASSWORD})
    assert refused.status_code == 400
    assert log_in(client, "budi.jaksel") == 302
    before = client.get("/office").status_code
    assert before == 200
    sent = client.post("/office/walk-in", data={"category": "lansia"})
    assert sent.status_code == 400
    with loket.sessions() as session:
        assert session.execute(select(AuditEntry.action)).scalars().all() == ["login"]


def test_five_wrong_passwords_hold_that_name_back_from_that_address_only(
    client: FlaskClient,
) -> None:
    for _attempt in range(5):
        assert log_in(client, "ani.cs", "salah-sekali-123", address="10.1.1.1") == 401
    # Held back: even the right password waits, from that address...
    assert log_in(client, "ani.cs", address="10.1.1.1") == 401
    assert client.get("/agent").status_code == 302  # not logged in
    # ...while a colleague on the same address, and Ani elsewhere, get in.
    assert log_in(client.application.test_client(), "budi.jaksel", address="10.1.1.1") == 302
    assert log_in(client.application.test_client(), "ani.cs", address="10.2.2.2") == 302


def test_unknown_user_and_wrong_password_look_the_same(client: FlaskClient) -> None:
    unknown = client.post(
        "/staff/login",
        data={"username": "nobody", "password": "x" * 12, "csrf_token": token(client)},
    )
    wrong = client.post(
        "/staff/login",
        data={"username": "ani.cs", "password": "x" * 12, "csrf_token": token(client)},
    )
    assert unknown.status_code == wrong.status_code == 401
    assert "Nama pengguna atau kata sandi salah" in unknown.get_data(as_text=True)


def test_unknown_wrong_locked_and_closed_answer_alike_at_one_hash_each(
    client: FlaskClient, loket: Loket, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with loket.sessions() as session, session.begin():
        add_staff(session, "locked.cs", "L", "agent", PASSWORD)
        add_staff(session, "closed.cs", "C", "agent", PASSWORD)
        deactivate(session, "closed.cs", clock.now)
        locked = session.execute(select(Staff).where(Staff.username == "locked.cs")).scalar_one()
        locked.locked_until = clock.now + timedelta(hours=1)
    for _attempt in range(5):
        log_in(client, "budi.jaksel", "salah-sekali-123", address="10.9.9.9")
    hashes: list[str] = []
    real_check = storage.staff.check_password_hash

    def counted(hashed: str, password: str) -> bool:
        hashes.append(hashed)
        return real_check(hashed, password)

    monkeypatch.setattr(storage.staff, "check_password_hash", counted)
    answers = {}
    for case, username, password, address in (
        ("unknown name", "tidak.ada", PASSWORD, "10.0.0.1"),
        ("wrong password", "ani.cs", "salah-sekali-123", "10.0.0.1"),
        ("account locked", "locked.cs", PASSWORD, "10.0.0.1"),
        ("account closed", "closed.cs", PASSWORD, "10.0.0.1"),
        ("held back here", "budi.jaksel", PASSWORD, "10.9.9.9"),
    ):
        before = len(hashes)
        answers[case] = refusal(attempt(client, username, password, address))
        assert len(hashes) == before + 1, case  # the same work for every refusal
    assert set(answers.values()) == {
        (401, "Nama pengguna atau kata sandi salah, atau terlalu banyak percobaan; coba lagi "
              "dalam 15 menit.")
    }, answers  # fmt: skip


def test_successes_never_count_and_an_address_is_held_back_only_after_many_failures(
    client: FlaskClient,
) -> None:
    for _round in range(25):  # more than the old limit of 20 attempts, all successful
        assert log_in(client, "ani.cs") == 302
        client.post("/staff/logout", data={"csrf_token": token(client, "/agent")})
    codes = [log_in(client, f"user{n}", "x" * 12) for n in range(50)]
    assert codes == [401] * 50
    # 50 failures from one address (spraying names): the address waits, right password or not.
    assert log_in(client.application.test_client(), "budi.jaksel") == 401
    assert log_in(client.application.test_client(), "budi.jaksel", address="10.3.3.3") == 302


def test_nobody_can_keep_a_colleague_locked_out(client: FlaskClient, loket: Loket) -> None:
    ani = client.application.test_client()
    assert log_in(ani, "ani.cs", address="10.0.0.7") == 302  # her own browser, once
    ani.post("/staff/logout", data={"csrf_token": token(ani, "/agent")})
    prankster = client.application.test_client()
    # Same office address, then four more: 25 wrong passwords in Ani's name.
    for address in ("10.0.0.7", "10.0.0.8", "10.0.0.9", "10.0.0.10", "10.0.0.11"):
        for _attempt in range(5):
            assert log_in(prankster, "ani.cs", "tebak-tebakan-1", address=address) == 401
    with loket.sessions() as session:
        staff = session.execute(select(Staff).where(Staff.username == "ani.cs")).scalar_one()
        assert staff.locked_until is not None  # the account is locked against strangers...
    assert log_in(client.application.test_client(), "ani.cs", address="10.0.0.12") == 401
    assert log_in(ani, "ani.cs", address="10.0.0.7") == 302  # ...not against Ani's browser
    assert ani.get("/agent").status_code == 200
    # Her browser has a guessing budget of its own: it is no skeleton key.
    thief = client.application.test_client()
    thief.set_cookie("loket_device", ani.get_cookie("loket_device", path="/staff/login").value,
                     path="/staff/login")  # fmt: skip
    for _attempt in range(5):
        assert log_in(thief, "ani.cs", "tebak-tebakan-2", address="10.0.0.13") == 401
    assert log_in(thief, "ani.cs", address="10.0.0.13") == 401


def test_forwarded_addresses_are_believed_only_from_configured_proxies(
    client: FlaskClient, loket: Loket
) -> None:
    # Without trusted proxies, a forged X-Forwarded-For changes nothing: the same address.
    for n in range(5):
        log_in(client, "ani.cs", "salah-sekali-123", forwarded=f"198.51.100.{n}")
    assert log_in(client.application.test_client(), "ani.cs", forwarded="198.51.100.99") == 401
    # Behind one router (Procfile): each client is its own forwarded address.
    routed = create_app(replace(loket.settings, trusted_proxies=1), loket)
    for _attempt in range(5):
        browser = routed.test_client()
        assert log_in(browser, "budi.jaksel", "salah-sekali-123", address="10.0.0.1",
                      forwarded="203.0.113.5") == 401  # fmt: skip
    assert log_in(routed.test_client(), "budi.jaksel", address="10.0.0.1",
                  forwarded="203.0.113.5") == 401  # fmt: skip
    assert log_in(routed.test_client(), "budi.jaksel", address="10.0.0.1",
                  forwarded="203.0.113.9") == 302  # fmt: skip


def test_roles_and_offices_are_kept_apart(client: FlaskClient, loket: Loket) -> None:
    jakarta = Chat(loket, "jkt")
    register(jakarta)
    book(jakarta, city="Jakarta Selatan")
    with loket.sessions() as session:
        reg_number = session.execute(select(Application.reg_number)).scalar_one()
    with loket.sessions() as session, session.begin():
        add_staff(session, "citra.bdg", "Citra", "office_admin", PASSWORD, "bandung")
    assert log_in(client, "citra.bdg") == 302
    assert client.get("/agent").status_code == 403
    form = {"to": "verified", "csrf_token": token(client, "/office")}
    assert client.post(f"/office/application/{reg_number}/status", data=form).status_code == 404
    assert reg_number not in client.get("/office").get_data(as_text=True)
    # Logged out: the consoles send you to log in.
    client.post("/staff/logout", data={"csrf_token": token(client, "/office")})
    assert client.get("/office").status_code == 302


def test_agent_registration_equals_self_service_but_for_attribution(loket: Loket) -> None:
    loket.prepare_demo()
    with loket.sessions() as session, session.begin():
        agent_id = add_staff(session, "ani.cs", "Ani", "agent", PASSWORD).id
    self_service = Chat(loket, "self")
    register(self_service, {"nik": make_nik(date(1990, 8, 17), serial=11)})
    book(self_service)
    by_agent = Chat(loket, "+6281255550101", channel="agent", actor=agent_id)
    register(by_agent, {"nik": make_nik(date(1990, 8, 17), serial=12)})
    book(by_agent)
    with loket.sessions() as session:
        mine, theirs = session.execute(select(Application).order_by(Application.id)).scalars()
        columns = [c.key for c in Application.__table__.columns]
        differ = {c for c in columns if getattr(mine, c) != getattr(theirs, c)}
        # Identity and attribution differ, and the NIK (two people); nothing else.
        assert differ <= {"id", "reg_number", "channel", "account_ref", "registered_by", "nik",
                          "answers", "created_at"}  # fmt: skip
        assert {k: v for k, v in mine.answers.items() if k != "nik"} == {
            k: v for k, v in theirs.answers.items() if k != "nik"
        }
        assert (mine.registered_by, theirs.registered_by) == (None, agent_id)
        bookings = session.execute(select(Booking).order_by(Booking.id)).scalars().all()
        assert [b.booked_by for b in bookings] == [None, agent_id]
        actions = session.execute(select(AuditEntry.action, AuditEntry.staff_id)).all()
        # Every turn, and the agent's word for the caller's number before the hold.
        assert ("phone.vouch", agent_id) in actions
        assert actions and all(row in {("agent.turn", agent_id), ("phone.vouch", agent_id)}
                               for row in actions)  # fmt: skip


def test_agent_cancel_needs_a_reason_and_is_audited(client: FlaskClient, loket: Loket) -> None:
    caller = Chat(loket, "caller")
    register(caller)
    book(caller)
    with loket.sessions() as session:
        reg_number = session.execute(select(Application.reg_number)).scalar_one()
    assert log_in(client, "ani.cs") == 302
    path = f"/agent/application/{reg_number}"
    form = {"reason": "", "csrf_token": token(client, path)}
    client.post(f"{path}/cancel", data=form)
    with loket.sessions() as session:
        assert session.execute(select(Booking.status)).scalar_one() == "held"
    form["reason"] = "penelepon minta batal"
    client.post(f"{path}/cancel", data=form)
    with loket.sessions() as session:
        assert session.execute(select(Booking.status)).scalar_one() == "cancelled"
        assert session.execute(select(Application.status)).scalar_one() == "cancelled"
        entry = session.execute(
            select(AuditEntry).where(AuditEntry.action == "agent.cancel")
        ).scalar_one()
        assert entry.target == reg_number and entry.detail == {"reason": "penelepon minta batal"}
    told = loket.pending_messages(caller.channel, caller.user)
    assert [m.text for m in told] == [
        f"Permohonan {reg_number} dibatalkan oleh petugas. Alasan: penelepon minta batal."
    ]


def test_search_finds_by_each_key_and_keeps_no_nik_in_the_audit(
    client: FlaskClient, loket: Loket
) -> None:
    caller = Chat(loket, "caller")
    register(caller)
    book(caller)
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        booking = session.execute(select(Booking)).scalar_one()
        billing = session.execute(select(BillingCode.code)).scalar_one()
    assert log_in(client, "ani.cs") == 302
    for query in (application.nik, application.reg_number, booking.code, billing):
        form = {"q": query, "csrf_token": token(client, "/agent")}
        page = client.post("/agent", data=form).get_data(as_text=True)
        assert application.reg_number in page, query
        assert "menunggu pembayaran" in page  # statuses in words, not codes
    nothing = client.post(
        "/agent", data={"q": "LK-0000-0000", "csrf_token": token(client, "/agent")}
    )
    assert "Tidak ada permohonan yang cocok" in nothing.get_data(as_text=True)
    with loket.sessions() as session:
        details = (
            session.execute(select(AuditEntry.detail).where(AuditEntry.action == "agent.search"))
            .scalars()
            .all()
        )
        # Every search is audited (5), by the kind of key only.
        assert len(details) == 5
        assert all(application.nik not in str(detail) for detail in details)


def test_staff_add_command_and_its_refusals(loket: Loket, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": loket.settings.database_url,
        "LOKET_DATA_DIR": str(tmp_path),
        "LOKET_NEW_STAFF_PASSWORD": PASSWORD,
        "LOKET_AUTO_MIGRATE": "0",
    }
    loket.prepare_demo()
    command = [sys.executable, "-m", "bot", "staff", "add"]
    made = subprocess.run(
        [*command, "dewi", "--role", "office_admin", "--office", "bandung"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    refused = subprocess.run(
        [*command, "eka", "--role", "office_admin"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "needs --office" in refused.stderr
    with loket.sessions() as session:
        staff = session.execute(select(Staff)).scalar_one()
        assert staff.username == "dewi" and staff.office is not None
        assert staff.office.code == "bandung"
        assert PASSWORD not in staff.password_hash
    with loket.sessions() as session, session.begin(), pytest.raises(StaffError):
        add_staff(session, "short", "S", "agent", "pendek")


def test_simpatik_refusals_are_specific(client: FlaskClient) -> None:
    assert log_in(client, "budi.jaksel") == 302
    form = {"day": "2026-11-25", "start": "08:00", "end": "12:00", "quota": "20", "note": "",
            "announce": "", "csrf_token": token(client, "/office/simpatik")}  # fmt: skip
    weekday = client.post("/office/simpatik", data=form)
    assert weekday.status_code == 400
    assert "hanya pada hari Sabtu atau Minggu" in weekday.get_data(as_text=True)
    late = client.post("/office/simpatik", data={**form, "day": "2026-11-28", "end": "07:00"})
    assert "Jam selesai harus setelah jam mulai" in late.get_data(as_text=True)
    many = client.post("/office/simpatik", data={**form, "day": "2026-11-28", "quota": "9000"})
    assert "Kuota harus antara 1 dan 500" in many.get_data(as_text=True)
    ok = client.post("/office/simpatik", data={**form, "day": "2026-11-28"})
    assert ok.status_code == 302


def test_pages_switch_to_english(client: FlaskClient) -> None:
    page = client.get("/?lang=en").get_data(as_text=True)
    assert "Register for a passport by chat" in page or "passport" in page.lower()
    again = client.get("/").get_data(as_text=True)  # the cookie keeps the choice
    assert 'lang="en"' in again


def test_web_chat_refuses_unreadable_input_with_a_message(client: FlaskClient) -> None:
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True))
    assert csrf
    sent = client.post("/chat/send", json={"nonsense": 1}, headers={"X-CSRFToken": csrf.group(1)})
    assert sent.status_code == 400
    assert "tidak terbaca" in sent.get_json()["messages"][0]["text"]


def test_secure_cookie_setting_can_be_off_for_plain_http(loket: Loket) -> None:
    loket.settings = replace(loket.settings, secure_cookies=False)
    app = create_app(loket.settings, loket)
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_walk_in_numbers_follow_on_and_stop_at_the_daily_quota(
    client: FlaskClient, loket: Loket
) -> None:
    loket.settings = replace(loket.settings, walk_in_daily_quota=2)
    client = create_app(loket.settings, loket).test_client()
    assert log_in(client, "budi.jaksel") == 302
    messages = []
    for category in ("lansia", "ibu_hamil", "balita"):
        form = {"category": category, "csrf_token": token(client, "/office")}
        page = client.post("/office/walk-in", data=form, follow_redirects=True)
        messages.append(re.findall(r'class="flash (?:success|error)"[^>]*>([^<]+)<', page.text))
    assert messages[0] == ["Nomor antrean prioritas: P-001 (Lansia (60+))."]
    assert messages[1] == ["Nomor antrean prioritas: P-002 (Ibu hamil)."]
    assert messages[2] == ["Kuota walk-in prioritas hari ini (2) sudah habis."]
    called = client.post(
        "/office/walk-in/next", data={"csrf_token": token(client, "/office")},
        follow_redirects=True,
    )  # fmt: skip
    assert "Dipanggil: P-001." in called.text
    with loket.sessions() as session:
        rows = session.execute(select(WalkIn.number, WalkIn.called_at)).all()
        assert [(n, at is not None) for n, at in sorted(rows)] == [(1, True), (2, False)]


def test_closing_a_day_tells_the_booked_and_lets_them_move_again(
    client: FlaskClient, loket: Loket, clock: FakeClock
) -> None:
    applicant = Chat(loket, "booked")
    register(applicant)
    pay(loket, billing_code(book(applicant, city="Jakarta Selatan")))  # Monday 23 November
    loket.pending_messages(applicant.channel, applicant.user)  # the payment notice, read
    applicant.say("/ubahjadwal")
    applicant.say("1")
    applicant.say("2")  # Tuesday 24 November
    assert "Jadwal berhasil diubah" in applicant.say("1")
    assert log_in(client, "budi.jaksel") == 302
    form = {"day": "2026-11-24", "reason": "listrik padam", "csrf_token": token(client, "/office")}
    page = client.post("/office/close-day", data=form, follow_redirects=True)
    assert "1 pemohon yang sudah memesan diberi tahu" in page.text
    told = loket.pending_messages(applicant.channel, applicant.user)
    assert len(told) == 1, told
    assert "tutup pada Selasa, 24 November 2026 (listrik padam)" in told[0].text
    # Moved once already, but the office closed the day: the applicant may move again. (Date
    # lists are shared for 2 s under a per-minute key: step past the one cached above.)
    clock.advance(minutes=1)
    applicant.say("/ubahjadwal")
    reply = applicant.say("1")
    assert "hanya boleh satu kali" not in reply.text
    assert applicant.step() == "day"
    labels = applicant.log[-1][1].labels
    assert not any("24 November" in label for label in labels)  # the closed day is not offered


def test_serve_starts_the_whole_product_and_prints_demo_logins(tmp_path: Path) -> None:
    """`python -m bot serve` on the embedded default: web chat, consoles, demo staff."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "TELEGRAM_BOT_TOKEN", "PUBLIC_URL")
    }
    env.update(LOKET_DATA_DIR=str(tmp_path / "data"), PORT=str(port), LOKET_SECURE_COOKIES="0",
               LOG_LEVEL="WARNING")  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("Loket: http") for line in lines) and len(lines) < 20:
            lines.append(server.stdout.readline())
        printed = "".join(lines)
        assert "password" not in printed  # standard output is not a terminal: it may be logged
        saved = (tmp_path / "data" / "demo-staff-logins.txt").read_text()
        match = re.search(r"office_admin\s+(\S+)\s+password: (\S+)", saved)
        assert match, printed
        username, password = match.groups()
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            for _attempt in range(50):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert "Daftar paspor lewat chat" in http.get("/").text
            form_page = http.get("/staff/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form_page)
            assert csrf
            logged = http.post(
                "/staff/login",
                data={"username": username, "password": password, "csrf_token": csrf.group(1)},
            )
            assert logged.status_code == 302 and logged.headers["location"] == "/office"
            assert "Jakarta Selatan" in http.get("/office").text
    finally:
        server.kill()
        server.wait(timeout=10)


def test_web_chat_speaks_the_page_language(client: FlaskClient) -> None:
    for lang, welcome in (("id", "Selamat datang di Loket"), ("en", "Welcome to Loket")):
        page = client.get(f"/?lang={lang}").get_data(as_text=True)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert csrf
        sent = client.post(
            "/chat/send", json={"text": "/mulai"},
            headers={"X-CSRFToken": csrf.group(1), "Accept-Language": "en-US"},
        )  # fmt: skip
        assert welcome in sent.get_json()["messages"][0]["text"], lang


def test_the_audit_log_is_for_superadmins(client: FlaskClient, loket: Loket) -> None:
    with loket.sessions() as session, session.begin():
        add_staff(session, "root.admin", "Root", "superadmin", PASSWORD)
    assert log_in(client, "ani.cs") == 302
    assert client.get("/agent/audit").status_code == 403
    client.post("/staff/logout", data={"csrf_token": token(client, "/agent")})
    assert log_in(client, "root.admin") == 302
    page = client.get("/agent/audit").get_data(as_text=True)
    assert "ani.cs" in page and "login" in page and "root.admin" in page


def test_an_office_announces_in_writing_to_its_own_subscribers(
    client: FlaskClient, loket: Loket
) -> None:
    with loket.sessions() as session, session.begin():
        offices = dict(session.execute(select(Office.code, Office.id)).all())
        now = loket.now(session)
        subscribe(session, "telegram", "8001", offices["jakarta-selatan"], "id", now)
        subscribe(session, "telegram", "8002", offices["bandung"], "id", now)
    assert log_in(client, "budi.jaksel") == 302
    assert "1 chat berlangganan" in client.get("/office").get_data(as_text=True)
    short = {"text": "kuota", "csrf_token": token(client, "/office")}
    refused = client.post("/office/announce", data=short, follow_redirects=True)
    assert "Tulis pengumuman 10 sampai 800 huruf." in refused.get_data(as_text=True)
    text = "Kuota Desember dibuka Senin, 1 Desember pukul 08.00 WIB."
    form = {"text": text, "csrf_token": token(client, "/office")}
    sent = client.post("/office/announce", data=form, follow_redirects=True)
    assert "Pengumuman diantrekan untuk 1 pelanggan." in sent.get_data(as_text=True)
    with loket.sessions() as session:
        rows = session.execute(select(OutboxMessage.user_ref, OutboxMessage.payload)).all()
    assert [user for user, _payload in rows] == ["8001"]
    assert text in rows[0][1]["text"]


def test_a_staff_log_in_lasts_one_working_day(client: FlaskClient, clock: FakeClock) -> None:
    assert log_in(client, "ani.cs") == 302
    assert client.get("/agent").status_code == 200
    cookie = client.get_cookie("loket_session")
    assert cookie is not None and cookie.expires is not None
    # The cookie lives no longer than the session behind it.
    assert cookie.expires.timestamp() <= time.time() + 12 * 3600 + 5
    clock.advance(hours=13)
    assert client.get("/agent").status_code == 302  # log in again


def test_log_out_ends_the_session_on_the_server(client: FlaskClient) -> None:
    assert log_in(client, "ani.cs") == 302
    copied = client.get_cookie("loket_session")
    assert copied is not None
    client.post("/staff/logout", data={"csrf_token": token(client, "/agent")})
    thief = client.application.test_client()
    thief.set_cookie("loket_session", copied.value)
    assert thief.get("/agent").status_code == 302


def test_a_new_password_deactivation_and_lockout_end_sessions_at_once(
    client: FlaskClient, loket: Loket, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": loket.settings.database_url,
           "LOKET_DATA_DIR": str(tmp_path), "LOKET_AUTO_MIGRATE": "0",
           "LOKET_NEW_STAFF_PASSWORD": "kata-sandi-baru-2"}  # fmt: skip
    command = [sys.executable, "-m", "bot", "staff"]
    other = client.application.test_client()
    assert log_in(client, "ani.cs") == 302 and log_in(other, "ani.cs") == 302
    changed = subprocess.run([*command, "passwd", "ani.cs"], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert client.get("/agent").status_code == 302 and other.get("/agent").status_code == 302
    assert log_in(client, "ani.cs") == 401
    assert log_in(client, "ani.cs", "kata-sandi-baru-2") == 302
    closed = subprocess.run([*command, "deactivate", "ani.cs"], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert closed.returncode == 0, closed.stderr
    assert client.get("/agent").status_code == 302
    assert log_in(client, "ani.cs", "kata-sandi-baru-2") == 401
    missing = subprocess.run([*command, "deactivate", "nobody"], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert missing.returncode == 2 and "no staff account" in missing.stderr
    # An account locked by guessing from many addresses is logged out everywhere too.
    assert log_in(client, "budi.jaksel") == 302
    for n in range(20):
        log_in(other, "budi.jaksel", "tebak-tebakan-1", address=f"10.4.{n // 5}.1")
    assert client.get("/office").status_code == 302
    with loket.sessions() as session:
        actions = session.execute(select(AuditEntry.action)).scalars().all()
        assert {"staff.passwd", "staff.deactivate", "login.locked"} <= set(actions)


def test_log_in_never_redirects_to_another_site(client: FlaskClient) -> None:
    for target in ("/%09/evil.example", "//evil.example", "https://evil.example/", "/%0A/x"):
        form = {"username": "ani.cs", "password": PASSWORD, "csrf_token": token(client)}
        answer = client.post(f"/staff/login?next={target}", data=form)
        assert answer.status_code == 302, target
        assert answer.headers["Location"] == "/agent", target
        client.post("/staff/logout", data={"csrf_token": token(client, "/agent")})


def test_agent_moves_a_paid_booking_only_to_an_allowed_window(
    client: FlaskClient, loket: Loket
) -> None:
    caller = Chat(loket, "paid-caller")
    register(caller)
    assert pay(loket, billing_code(book(caller))) == "confirmed"  # reguler, Bandung
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        booking = session.execute(select(Booking)).scalar_one()
        express = session.execute(
            select(Slot.id).where(Slot.office_id == booking.slot.office_id,
                                  Slot.kind == "percepatan", Slot.day > booking.slot.day)
            .limit(1)
        ).scalar_one()  # fmt: skip
        reguler = session.execute(
            select(Slot.id).where(Slot.office_id == booking.slot.office_id,
                                  Slot.kind == "reguler", Slot.day > booking.slot.day)
            .order_by(Slot.day).limit(1)
        ).scalar_one()  # fmt: skip
    assert log_in(client, "ani.cs") == 302
    path = f"/agent/application/{application.reg_number}"
    page = client.get(path)
    assert page.status_code == 200 and "Ubah jadwal" in page.get_data(as_text=True)
    for bad in (str(express), "9" * 20, "abc"):
        form = {"slot": bad, "reason": "penelepon minta", "csrf_token": token(client, path)}
        refused = client.post(f"{path}/reschedule", data=form, follow_redirects=True)
        assert refused.status_code == 200, bad
    with loket.sessions() as session:
        assert session.execute(select(Booking.slot_id)).scalar_one() == booking.slot_id
    form = {"slot": str(reguler), "reason": "penelepon minta", "csrf_token": token(client, path)}
    moved = client.post(f"{path}/reschedule", data=form, follow_redirects=True)
    assert "sudah diubah" in moved.get_data(as_text=True)
    with loket.sessions() as session:
        assert session.execute(select(Booking.slot_id)).scalar_one() == reguler


def test_bad_office_forms_get_messages_not_errors(client: FlaskClient) -> None:
    assert log_in(client, "budi.jaksel") == 302
    for template in ("abc", "9" * 20, ""):
        form = {"template": template, "capacity": "5", "csrf_token": token(client, "/office")}
        assert client.post("/office/templates", data=form).status_code == 404, template
    form = {"day": "2026-11-28", "start": "08:00", "end": "12:00", "quota": "20", "note": "",
            "announce": "", "csrf_token": token(client, "/office/simpatik")}  # fmt: skip
    assert client.post("/office/simpatik", data=form).status_code == 302
    twin = client.post("/office/simpatik", data=form)
    assert twin.status_code == 400 and "sudah ada" in twin.get_data(as_text=True)
    zoned = client.post("/office/simpatik", data={**form, "start": "08:00+07:00"})
    assert zoned.status_code == 400 and "Isi jam mulai" in zoned.get_data(as_text=True)


def test_web_chat_refuses_a_pdf_and_asks_for_a_photo(client: FlaskClient, loket: Loket) -> None:
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf and 'accept="image/jpeg,image/png"' in page
    with client.session_transaction() as cookie:
        user = cookie["web_user"]
    asked = fill_until(Chat(loket, user, channel="web"), "doc_ktp")
    # The question says what is accepted: it does not invite the PDF it then refuses.
    assert 'Unggah fotonya (JPEG/PNG) dengan tombol "Kirim foto / file".' in asked
    assert "PDF" not in asked
    sent = client.post(
        "/chat/send", data={"file": (io.BytesIO(minimal_pdf()), "ktp.pdf")},
        headers={"X-CSRFToken": csrf.group(1)}, content_type="multipart/form-data",
    )  # fmt: skip
    assert "File PDF tidak bisa kami terima" in sent.get_json()["messages"][0]["text"]


def test_chat_panel_errors_come_back_as_messages(client: FlaskClient, loket: Loket) -> None:
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True))
    assert csrf
    stale = client.post("/chat/send", json={"text": "halo"}, headers={"X-CSRFToken": "old"})
    assert stale.status_code == 400
    assert "Muat ulang halaman" in stale.get_json()["messages"][0]["text"]
    huge = b"\xff\xd8\xff" + b"0" * (loket.settings.max_upload_bytes * 2)
    too_big = client.post(
        "/chat/send", data={"file": (io.BytesIO(huge), "ktp.jpg")},
        headers={"X-CSRFToken": csrf.group(1)}, content_type="multipart/form-data",
    )  # fmt: skip
    assert too_big.status_code == 413
    assert "File terlalu besar" in too_big.get_json()["messages"][0]["text"]
    assert client.get("/chat/poll").status_code == 405  # notices are taken by POST only


def test_a_failed_turn_loses_no_waiting_notice(
    client: FlaskClient, loket: Loket, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf
    headers = {"X-CSRFToken": csrf.group(1)}
    client.post("/chat/send", json={"open": True}, headers=headers)
    with loket.sessions() as session:
        user = session.execute(
            select(Conversation.user_ref).where(Conversation.channel == "web")
        ).scalar_one()
    with loket.sessions() as session, session.begin():
        queue_message(session, "web", user, {"text": "Pembayaran diterima.", "choices": []},
                      loket.now(session))  # fmt: skip

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(loket.engine, "handle", broken)  # inside the turn
    failed = client.post("/chat/send", json={"text": "halo"}, headers=headers)
    assert failed.status_code == 500 and "gangguan" in failed.get_json()["messages"][0]["text"]
    monkeypatch.undo()
    later = client.post("/chat/send", json={"text": "/status"}, headers=headers).get_json()
    assert later["messages"][0]["text"] == "Pembayaran diterima."


def test_the_audit_log_keeps_no_full_caller_number(loket: Loket) -> None:
    loket.prepare_demo()
    with loket.sessions() as session, session.begin():
        agent_id = add_staff(session, "ani.cs", "Ani", "agent", PASSWORD).id
    Chat(loket, "+6281255550101", channel="agent", actor=agent_id).say("/daftar")
    with loket.sessions() as session:
        targets = session.execute(select(AuditEntry.target)).scalars().all()
    assert targets == ["+6281******101"]


def flashes(page: str) -> list[str]:
    """The flash messages a page shows."""
    return re.findall(r'class="flash (?:success|error)"[^>]*>([^<]+)<', page)


def test_a_booking_code_is_read_the_same_way_at_check_in_and_in_search(
    client: FlaskClient, loket: Loket, clock: FakeClock
) -> None:
    payer = Chat(loket, "payer")
    register(payer)
    assert pay(loket, billing_code(book(payer, city="Jakarta Selatan"))) == "confirmed"
    with loket.sessions() as session:
        booking = session.execute(select(Booking)).scalar_one()
        code, day, reg_number = booking.code, booking.slot.day, booking.application.reg_number
        billing = session.execute(select(BillingCode.code)).scalar_one()
    typed = code.replace("-", "").lower()  # "bk4f7q9xzd", as people type it
    dotted = f"{billing[:4]}.{billing[4:8]}-{billing[8:]}"
    assert log_in(client, "ani.cs") == 302
    for query in (typed, f" {code[:5]} {code[5:]} ".lower(), dotted):
        form = {"q": query, "csrf_token": token(client, "/agent")}
        assert reg_number in client.post("/agent", data=form).get_data(as_text=True), query
    client.post("/staff/logout", data={"csrf_token": token(client, "/agent")})
    clock.advance(days=(day - clock().date()).days)
    assert log_in(client, "budi.jaksel") == 302
    form = {"code": typed, "csrf_token": token(client, "/office")}
    page = client.post("/office/checkin", data=form, follow_redirects=True).get_data(as_text=True)
    assert flashes(page) == [f"{code} ({reg_number}) tercatat hadir."]
    with loket.sessions() as session:
        assert session.execute(select(Booking.status)).scalar_one() == "checked_in"


def test_another_offices_booking_code_answers_as_an_unknown_one(
    client: FlaskClient, loket: Loket
) -> None:
    jakarta = Chat(loket, "jkt")
    register(jakarta)
    assert pay(loket, billing_code(book(jakarta, city="Jakarta Selatan"))) == "confirmed"
    with loket.sessions() as session:
        code = session.execute(select(Booking.code)).scalar_one()
        add_staff(session, "citra.bdg", "Citra", "office_admin", PASSWORD, "bandung")
        session.commit()
    assert log_in(client, "citra.bdg") == 302
    answers = []
    for typed in (code, "BK-2222-3333"):
        form = {"code": typed, "csrf_token": token(client, "/office")}
        page = client.post("/office/checkin", data=form, follow_redirects=True)
        answers.append(flashes(page.get_data(as_text=True))[0].replace(typed, "CODE"))
    assert answers == ["Kode booking CODE tidak ditemukan. Periksa lagi kodenya."] * 2
    with loket.sessions() as session:
        assert session.execute(select(Booking.status)).scalar_one() == "confirmed"


INLINE_CODE = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|javascript:", re.I)


def test_every_response_carries_the_security_headers(client: FlaskClient, loket: Loket) -> None:
    caller = Chat(loket, "caller")
    register(caller)
    book(caller, city="Jakarta Selatan")
    with loket.sessions() as session, session.begin():
        reg_number = session.execute(select(Application.reg_number)).scalar_one()
        add_staff(session, "root.admin", "Root", "superadmin", PASSWORD)
    assert log_in(client, "root.admin") == 302
    login_page = client.application.test_client().get("/staff/login")
    pages = ["/", "/agent", f"/agent/application/{reg_number}", "/agent/audit",
             "/office", "/office/simpatik", "/office/templates"]  # fmt: skip
    answers = {path: client.get(path) for path in pages} | {"/staff/login": login_page}
    for path, answer in answers.items():
        assert answer.status_code == 200, path
        assert not INLINE_CODE.search(answer.get_data(as_text=True)), path  # the CSP allows none
    answers["404 page"] = client.get("/agent/application/LK-0000-0000")
    answers["json"] = client.get("/healthz")
    answers["machine 503"] = client.post("/payments/notify", data=b"{}")
    answers["chat error"] = client.post("/chat/send", json={"nonsense": 1})
    for name, answer in answers.items():
        policy = answer.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in policy and "script-src 'self';" in policy, name
        assert "frame-ancestors 'none'" in policy, name
        assert answer.headers.get("Referrer-Policy") == "same-origin", name
        assert answer.headers.get("Strict-Transport-Security") == "max-age=31536000", name
    plain = create_app(replace(loket.settings, secure_cookies=False), loket).test_client()
    assert "Strict-Transport-Security" not in plain.get("/").headers  # HSTS only with HTTPS
