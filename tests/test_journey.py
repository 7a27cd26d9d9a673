"""A first-time user's journey (issue 10): bounded echoes, every date reachable, office dates,
wording that fits the channel and the booking, typo'd email domains, the "ubah data" list."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import select, update

from bot.channels.telegram import keyboard
from bot.core.messages import Choice, Outbound, excerpt, merge
from bot.service import Loket
from storage.booking import open_days
from storage.models import Office, Slot, SlotKind
from tests.conftest import FakeClock
from tests.test_booking import pay
from tests.transcript import Chat, billing_code, book, fill_until, make_nik, register

HUGE = "x" * (5 * 1024 * 1024)  # 5 MB typed (a script, or a paste gone wrong)


def test_excerpt_is_short_and_on_one_line() -> None:
    assert excerpt("Bandnug") == "Bandnug"
    assert excerpt("  two\nlines ") == "two lines"
    quoted = excerpt(HUGE)
    assert len(quoted) == 41 and quoted.endswith("…")


def test_city_question_quotes_a_huge_input_in_a_few_characters(chat: Chat) -> None:
    register(chat)
    assert chat.step() == "office_query"
    reply = chat.say(HUGE)
    assert "Belum ada kantor imigrasi Loket di" in reply
    assert "x" * 40 + "…" in reply.text
    assert sum(len(message.text) for message in reply.messages) < 2_000
    assert chat.step() == "office_query"


@pytest.mark.parametrize(
    ("step", "typed", "expected"),
    [
        ("birth_date", "17 " + "a" * 100_000 + " 1990", 'Nama bulan "' + "a" * 40 + '…"'),
        (
            "phone",
            "0812 " + "- " * 100 + "345",
            "Nomor 0812 - - - - - - - - - - - - - - - - - -… tidak valid",
        ),
    ],
)
def test_refusals_quote_at_most_an_excerpt(
    chat: Chat, step: str, typed: str, expected: str
) -> None:
    fill_until(chat, step)
    reply = chat.say(typed)
    assert expected in reply.text
    assert len(reply.text) < 1_000


# ---- every bookable date reachable (item 14) -----------------------------------------------


def add_simpatik(loket: Loket, office_code: str, day: date, capacity: int = 20) -> None:
    """Open a weekend simpatik session as the office console does."""
    with loket.sessions() as session, session.begin():
        office_id = session.execute(
            select(Office.id).where(Office.code == office_code)
        ).scalar_one()
        session.add(
            Slot(office_id=office_id, day=day, start_time=time(8, 0), end_time=time(12, 0),
                 kind=SlotKind.SIMPATIK, capacity=capacity, taken=0,
                 release_at=datetime(2026, 11, 1, tzinfo=UTC), closed=False,
                 note="Paspor simpatik")
        )  # fmt: skip


def bookable_days(loket: Loket, office_code: str) -> list[date]:
    """Every date the database would sell a reguler seat on (or a simpatik one), from now."""
    with loket.sessions() as session:
        office_id = session.execute(
            select(Office.id).where(Office.code == office_code)
        ).scalar_one()
        now = loket.now(session)
        days = open_days(
            session, office_id, [SlotKind.REGULER, SlotKind.SIMPATIK], now, date(2026, 11, 22)
        )
    return [free.day for free in days]


def test_every_bookable_date_is_reachable_page_by_page(loket: Loket) -> None:
    add_simpatik(loket, "bandung", date(2026, 12, 12))
    chat = Chat(loket, "weekend")
    register(chat)
    chat.say("Bandung")
    reply = chat.say("1")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        dates = [c.value for c in reply.question.choices if c.value[:1].isdigit()]
        assert len(dates) <= 7
        seen.extend(dates)
        if "Tanggal lain" not in reply.labels:
            break
        reply = chat.tap("Tanggal lain")
        assert "Tanggal sebelumnya" in reply.labels
        assert chat.step() == "day"
    expected = bookable_days(loket, "bandung")
    assert [date.fromisoformat(d) for d in seen] == expected
    assert date(2026, 12, 12) in expected and date(2026, 12, 31) in expected and pages > 2
    # The weekend session is marked, and can be booked from its page.
    while "Sabtu, 12 Desember 2026: Paspor Simpatik (20 kursi)" not in reply.labels:
        reply = chat.tap("Tanggal sebelumnya")
    reply = chat.tap("Sabtu, 12 Desember 2026: Paspor Simpatik (20 kursi)")
    assert reply.labels == ["08.00–12.00 WIB, simpatik (20 kursi)"]
    assert "Kursi Anda ditahan" in chat.verified(chat.say("1"))
    assert all(len(c.value.encode()) <= 64 for _, r in chat.log for c in r.question.choices)


@pytest.mark.parametrize("typed", ["12 Desember", "Sabtu, 12 Des", "12/12", "12-12-2026"])
def test_a_typed_date_is_accepted_when_bookable(loket: Loket, typed: str) -> None:
    add_simpatik(loket, "bandung", date(2026, 12, 12))
    chat = Chat(loket, "typist")
    register(chat)
    chat.say("Bandung")
    chat.say("1")
    reply = chat.say(typed)
    assert chat.step() == "slot", reply.text
    assert reply.labels == ["08.00–12.00 WIB, simpatik (20 kursi)"]


TYPED_REFUSALS = [
    ("13 Desember", "tidak melayani pada akhir pekan Minggu, 13 Desember 2026"),
    ("25/12", "Jumat, 25 Desember 2026 adalah hari libur nasional"),
    ("6 Januari", "Kuota Rabu, 06 Januari 2027 belum dibuka. Kuota dibuka Selasa, 01 Desember"),
    ("20 Februari 2027", "Jadwal hanya dapat dipesan sampai"),
    ("20 November", "Tanggal Jumat, 20 November 2026 sudah lewat"),
    ("14/12", "Kuota Senin, 14 Desember 2026 sudah penuh"),
    (
        "15/12",
        "Layanan di Kantor Imigrasi Kelas I TPI Bandung pada Selasa, 15 Desember 2026 ditutup",
    ),
    ("31/11", "Tanggal 31 tidak ada pada bulan itu"),
    ("kapan saja", "atau ketik tanggalnya"),
]


@pytest.mark.parametrize(("typed", "expected"), TYPED_REFUSALS)
def test_a_typed_date_that_cannot_be_booked_says_why(
    loket: Loket, typed: str, expected: str
) -> None:
    with loket.sessions() as session, session.begin():
        bandung = session.execute(select(Office.id).where(Office.code == "bandung")).scalar_one()
        session.execute(
            update(Slot)
            .where(Slot.office_id == bandung, Slot.day == date(2026, 12, 14))
            .values(taken=Slot.capacity)
        )
        session.execute(
            update(Slot)
            .where(Slot.office_id == bandung, Slot.day == date(2026, 12, 15))
            .values(closed=True)
        )
    chat = Chat(loket, "typist")
    register(chat)
    chat.say("Bandung")
    chat.say("1")
    reply = chat.say(typed)
    assert expected in reply.text
    assert chat.step() == "day"


# ---- the office's date, not the UTC date (item 15) -----------------------------------------


def test_reschedule_before_7_wib_does_not_offer_today(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    register(chat)
    pay(loket, billing_code(book(chat, day="3")))  # Wednesday 25 November
    clock.advance(hours=44)  # Tuesday 24 November, 06:00 WIB (still Monday in UTC)
    chat.say("/ubahjadwal")
    reply = chat.say("1")
    assert chat.step() == "day"
    assert not any("24 November" in label for label in reply.labels), reply.labels
    assert reply.labels[0].startswith("Rabu, 25 November 2026")
    reply = chat.say("24 November")
    assert "Jadwal baru paling cepat besok" in reply.text
    assert chat.step() == "day"


def test_reschedule_says_so_when_only_today_has_seats(
    chat: Chat, loket: Loket, clock: FakeClock
) -> None:
    register(chat)
    pay(loket, billing_code(book(chat, day="3")))  # Wednesday 25 November, Bandung
    clock.advance(hours=44)  # Tuesday 24 November, 06:00 WIB
    today = date(2026, 11, 24)
    with loket.sessions() as session, session.begin():
        bandung = session.execute(select(Office.id).where(Office.code == "bandung")).scalar_one()
        session.execute(
            update(Slot)
            .where(Slot.office_id == bandung, Slot.day > today)
            .values(taken=Slot.capacity)
        )
    chat.say("/ubahjadwal")
    reply = chat.say("1")
    assert "Belum ada tanggal lain dengan kursi kosong" in reply.text
    assert "Pilih tanggal" not in reply.text
    assert reply.labels == ["Kembali ke menu"]


def test_age_uses_the_date_in_indonesia(chat: Chat, clock: FakeClock) -> None:
    clock.now = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # Monday 23 November, 06:30 WIB
    born = date(2009, 11, 23)  # 17 today in Indonesia, still 16 by the UTC date
    fill_until(chat, "birth_date")
    reply = chat.say("23-11-2009")
    assert chat.step() == "sex", reply.text
    chat.say("laki-laki")
    reply = chat.say(make_nik(born))
    assert chat.step() == "phone", reply.text


# ---- the confirmation after the one allowed change (item 20) -------------------------------


def test_confirmation_after_the_reschedule_says_no_change_is_left(chat: Chat, loket: Loket) -> None:
    register(chat)
    reply = book(chat)
    assert pay(loket, billing_code(reply)) == "confirmed"
    (notice,) = loket.pending_messages(chat.channel, chat.user)
    assert "Jadwal dapat diubah satu kali" in notice.text
    chat.say("/ubahjadwal")
    chat.say("1")
    chat.say("2")
    reply = chat.say("1")
    assert "Jadwal berhasil diubah" in reply.text
    assert "Jadwal dapat diubah satu kali" not in reply.text
    assert "sudah pernah diubah satu kali, jadi tidak dapat diubah lagi" in reply.text


# ---- "ubah data" and email typos (item 22) --------------------------------------------------


def test_edit_list_has_no_duplicate_labels(chat: Chat) -> None:
    fill_until(chat, "summary")
    reply = chat.say("ubah data")
    assert chat.step() == "edit_field"
    assert len(reply.labels) == len(set(reply.labels)), reply.labels
    assert "Jenis dokumen pendukung" in reply.labels
    assert "Akta kelahiran" in reply.labels
    reply = chat.tap("Akta kelahiran")
    assert chat.step() == "doc_supporting"


@pytest.mark.parametrize(
    ("typed", "answer", "stored"),
    [
        ("budi@gmail.con", "Ya, budi@gmail.com", "budi@gmail.com"),
        ("budi@gmial.com", "ya", "budi@gmail.com"),
        ("budi@yahoo.co.od", "Ya, budi@yahoo.co.id", "budi@yahoo.co.id"),
        ("budi@gmail.co", "Tidak, tetap budi@gmail.co", "budi@gmail.co"),
    ],
)
def test_mistyped_email_domain_is_questioned(
    chat: Chat, typed: str, answer: str, stored: str
) -> None:
    fill_until(chat, "email")
    reply = chat.say(typed)
    assert chat.step() == "email_check"
    assert f"Maksud Anda {typed.split('@')[0]}@" in reply.question.text
    reply = chat.tap(answer) if answer[0].isupper() else chat.say(answer)
    assert chat.step() == "address"
    assert chat.state()["answers"]["email"] == stored
    assert "email_suggestion" not in chat.state()["answers"]


def test_a_correct_email_is_not_questioned(chat: Chat) -> None:
    fill_until(chat, "email")
    chat.say("budi@kemlu.go.id")
    assert chat.step() == "address"


def test_email_corrected_from_the_summary_returns_to_the_summary(chat: Chat) -> None:
    fill_until(chat, "summary")
    chat.say("ubah data")
    chat.tap("Email")
    chat.say("budi@gmail.con")
    assert chat.step() == "email_check"
    reply = chat.tap("Ya, budi@gmail.com")
    assert chat.step() == "summary"
    assert "budi@gmail.com" in reply.text


# ---- wording follows what the channel can do (item 21) -------------------------------------

TELEGRAM_ONLY = ("bagikan kontak", "sebagai foto")


def everything_said(chat: Chat) -> str:
    """Every message of the conversation so far, in lower case."""
    return "\n".join(reply.text for _said, reply in chat.log).casefold()


def test_web_chat_never_offers_what_only_telegram_has(loket: Loket) -> None:
    web = Chat(loket, "browser", channel="web")
    fill_until(web, "summary")
    web.say("/jadwal")  # not registered yet: no office question, but the words still count
    said = everything_said(web)
    for words in TELEGRAM_ONLY:
        assert words not in said
    assert "ketik nomor hp yang aktif, contoh: 0812 3456 7890." in said
    assert 'dengan tombol "kirim foto / file"' in said


def test_telegram_still_offers_its_own_buttons(loket: Loket) -> None:
    telegram = Chat(loket, "42", channel="telegram")
    fill_until(telegram, "summary")
    said = everything_said(telegram)
    for words in TELEGRAM_ONLY:
        assert words in said


def test_agent_is_not_offered_to_share_a_location(loket: Loket) -> None:
    caller = Chat(loket, "+6281255550101", channel="agent")
    register(caller)
    reply = caller.log[-1][1]
    assert caller.step() == "office_query"
    assert "bagikan lokasi" not in reply.question.text.casefold()
    assert reply.question.offers_location is False
    web = Chat(loket, "browser", channel="web")
    register(web, {"nik": make_nik(date(1990, 8, 17), serial=2)})
    assert web.log[-1][1].question.offers_location is True


# ---- the billing code copies in one tap (item 19) ------------------------------------------


def test_billing_message_carries_its_code_to_copy(chat: Chat) -> None:
    register(chat)
    reply = book(chat)
    code = billing_code(reply)
    (held,) = [message for message in reply.messages if "Kode billing" in message.text]
    assert held.copy == code
    merged = merge(reply.messages)
    assert len(merged) == 1 and merged[0].copy == code and merged[0].choices
    assert Outbound.from_payload(merged[0].to_payload()).copy == code


def test_telegram_offers_a_copy_button_above_the_menu() -> None:
    message = Outbound(
        "Kode billing: 8201 1234 5678 901", (Choice("/status", "Status permohonan"),),
        copy="820112345678901",
    )  # fmt: skip
    rows = keyboard(message).to_dict()["inline_keyboard"]
    assert rows[0] == [{"text": "Salin kode billing", "copy_text": {"text": "820112345678901"}}]
    assert rows[1] == [{"text": "Status permohonan", "callback_data": "/status"}]
