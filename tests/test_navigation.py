"""Back, change from the summary, cancel, help, restart, idle, interleaving, family, language."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.service import Loket
from bot.settings import Settings
from storage.models import Application
from tests.conftest import FakeClock
from tests.transcript import ADULT_NEW, Chat, fill_until, make_nik, register


def count_applications(loket: Loket) -> int:
    """Count stored applications."""
    with loket.sessions() as session:
        return int(session.execute(select(func.count(Application.id))).scalar_one())


# ---- back ----------------------------------------------------------------------------------


def test_back_goes_one_step_and_keeps_answers(chat: Chat) -> None:
    fill_until(chat, "birth_date")
    reply = chat.say("kembali")
    assert chat.step() == "birth_place"
    assert "tempat lahir" in reply.question.text
    assert chat.state()["answers"]["birth_place"] == "Bandung"
    chat.say("kembali")
    assert chat.step() == "full_name"
    chat.say("Budi Setiawan")
    chat.say("Bandung")
    assert chat.step() == "birth_date"
    assert chat.state()["answers"]["full_name"] == "BUDI SETIAWAN"


def test_back_skips_questions_that_do_not_apply(chat: Chat) -> None:
    # "Never had a passport" skips the replacement reason; back from the next step skips it too.
    fill_until(chat, "passport_kind")
    chat.say("back")
    assert chat.step() == "had_passport"


def test_back_at_the_first_question(chat: Chat) -> None:
    chat.say("/daftar")
    reply = chat.say("kembali")
    assert "Ini sudah pertanyaan pertama" in reply
    assert chat.step() == "consent"


def test_back_from_a_photo_step(chat: Chat) -> None:
    fill_until(chat, "doc_kk")
    chat.say("kembali")
    assert chat.step() == "doc_ktp"


# ---- change from the summary ---------------------------------------------------------------


def test_change_name_from_summary_returns_to_summary(chat: Chat) -> None:
    fill_until(chat, "summary")
    reply = chat.tap("Ubah data")
    assert "Bagian mana yang ingin diubah?" in reply
    assert "Nama lengkap" in reply.labels and "e-KTP" in reply.labels
    reply = chat.tap("Nama lengkap")
    assert "Jawaban saat ini: BUDI SANTOSO" in reply
    reply = chat.say("Budi Santoso Wibowo")
    assert chat.step() == "summary"
    assert "Nama lengkap: BUDI SANTOSO WIBOWO" in reply


def test_change_application_type_asks_only_what_is_new(chat: Chat) -> None:
    fill_until(chat, "summary")
    chat.say("ubah data")
    chat.say("pernah punya paspor")
    reply = chat.say("ya")
    assert "penggantian, bukan paspor baru" in reply
    assert chat.step() == "replace_reason"
    chat.say("habis")
    assert chat.step() == "old_passport_number"
    chat.say("X7654321")
    assert chat.step() == "name_same"
    chat.say("ya")
    assert chat.step() == "doc_old_passport"
    summary = chat.photo(tag="old-passport")
    assert chat.step() == "summary"
    assert "Jenis permohonan: Penggantian" in summary
    # First-passport documents no longer apply and are gone from the summary.
    assert "Dokumen pendukung" not in summary and "Kartu Keluarga" not in summary
    assert "Dokumen diterima: e-KTP, Paspor lama" in summary


def test_change_birth_date_rechecks_the_nik(chat: Chat) -> None:
    fill_until(chat, "summary")
    chat.say("ubah data")
    chat.say("tanggal lahir")
    reply = chat.say("18-08-1990")
    assert "NIK tidak cocok dengan tanggal lahir" in reply
    assert chat.step() == "nik"
    reply = chat.say(make_nik(date(1990, 8, 18)))
    assert chat.step() == "summary"
    assert "Tanggal lahir: 18 Agustus 1990" in reply


def test_change_a_document_photo(chat: Chat) -> None:
    fill_until(chat, "summary")
    before = chat.state()["answers"]["doc_ktp"]["sha256"]
    chat.say("ubah data")
    chat.say("e-KTP")
    assert chat.step() == "doc_ktp"
    chat.photo(tag="sharper-ktp")
    assert chat.step() == "summary"
    assert chat.state()["answers"]["doc_ktp"]["sha256"] != before


def test_back_from_edit_list_to_summary(chat: Chat) -> None:
    fill_until(chat, "summary")
    chat.say("ubah data")
    chat.say("Kembali ke ringkasan")
    assert chat.step() == "summary"


# ---- cancel --------------------------------------------------------------------------------


def test_cancel_needs_confirmation(chat: Chat) -> None:
    fill_until(chat, "address")
    reply = chat.say("batal")
    assert "Yakin ingin membatalkan" in reply
    assert reply.labels == ["Ya, batalkan", "Tidak, lanjutkan"]
    reply = chat.say("tidak")
    assert chat.step() == "address" and "alamat" in reply.question.text
    assert chat.state()["answers"]["nik"] == ADULT_NEW["nik"]

    chat.say("batal")
    reply = chat.say("ya")
    assert "Pendaftaran dibatalkan" in reply
    assert chat.state()["answers"] == {}
    assert reply.question.text == "Apa yang ingin Anda lakukan?"


def test_cancel_at_the_summary_and_at_a_photo_step(chat: Chat, loket: Loket) -> None:
    fill_until(chat, "doc_kk")
    chat.say("/batal")
    chat.tap("Ya, batalkan")
    fill_until(chat, "summary")
    chat.say("batal")
    chat.tap("Ya, batalkan")
    assert count_applications(loket) == 0


def test_cancel_with_nothing_in_progress(chat: Chat) -> None:
    chat.open()
    assert "Tidak ada permohonan aktif yang bisa dibatalkan" in chat.say("batal")


def test_unclear_answer_to_the_cancel_question_asks_again(chat: Chat) -> None:
    fill_until(chat, "address")
    chat.say("batal")
    reply = chat.say("mungkin")
    assert "Mohon pilih salah satu: Ya, batalkan, Tidak, lanjutkan" in reply
    assert "Yakin ingin membatalkan" in reply.question.text


# ---- help ----------------------------------------------------------------------------------


def test_help_explains_the_step_and_asks_again(chat: Chat) -> None:
    fill_until(chat, "nik")
    reply = chat.say("bantuan")
    assert "Nomor Induk Kependudukan" in reply
    assert "kembali: ke pertanyaan sebelumnya" in reply
    assert chat.step() == "nik" and "Ketik NIK" in reply.question.text


def test_help_at_the_passport_question_and_at_a_photo_step(chat: Chat) -> None:
    fill_until(chat, "had_passport")
    assert "walaupun sudah lama habis berlaku" in chat.say("/bantuan")
    fill_until(chat, "doc_ktp")
    reply = chat.say("help")
    assert "tanpa lampu kilat" in reply
    assert reply.question.expects.value == "photo"


# ---- restart, resume and idle --------------------------------------------------------------


def test_resume_after_a_restart_keeps_every_answer(
    settings: Settings, db_engine: Engine, clock: FakeClock, loket: Loket
) -> None:
    before = Chat(loket, "restart-user")
    fill_until(before, "address")
    answers = before.state()["answers"]

    restarted = Loket(settings, db=db_engine, clock=clock)  # a new process, same database
    after = Chat(restarted, "restart-user")
    reply = after.open()
    assert after.step() == "address" and "alamat" in reply.question.text
    assert after.state()["answers"] == answers
    confirmation = register(after)
    assert "Pendaftaran berhasil dikirim" in confirmation


def test_start_in_the_middle_asks_to_continue_or_restart(chat: Chat) -> None:
    fill_until(chat, "address")
    reply = chat.say("/start")
    assert reply.labels == ["Lanjutkan", "Mulai dari awal"]
    reply = chat.say("lanjutkan")
    assert chat.step() == "address"
    chat.say("/mulai")
    chat.say("mulai dari awal")
    assert chat.step() == "consent"
    assert chat.state()["answers"] == {}


def test_register_command_in_the_middle_does_not_discard(chat: Chat) -> None:
    fill_until(chat, "address")
    reply = chat.say("/daftar")
    assert "belum selesai" in reply
    chat.say("lanjutkan")
    assert chat.step() == "address"


def test_idle_conversation_asks_before_continuing(chat: Chat, clock: FakeClock) -> None:
    fill_until(chat, "address")
    clock.advance(hours=25)
    reply = chat.say("Jl. Asia Afrika 8, Bandung")
    assert "Selamat datang kembali. Terakhir Anda mengisi pada Minggu, 22 November 2026" in reply
    assert reply.labels == ["Lanjutkan", "Mulai dari awal"]
    assert "address" not in chat.state()["answers"]  # the late text was not taken as an answer
    reply = chat.tap("Lanjutkan")
    assert chat.step() == "address"
    clock.advance(hours=30)
    chat.open()
    chat.tap("Mulai dari awal")
    assert chat.step() == "consent" and chat.state()["answers"] == {}


def test_short_pause_does_not_interrupt(chat: Chat, clock: FakeClock) -> None:
    fill_until(chat, "address")
    clock.advance(hours=23)
    chat.say(ADULT_NEW["address"])
    assert chat.step() == "travel_purpose"


# ---- several users -------------------------------------------------------------------------


def test_two_users_interleaved(loket: Loket) -> None:
    budi = Chat(loket, "budi")
    siti = Chat(loket, "siti")
    siti_answers = {
        "full_name": "Siti Rahma",
        "birth_date": "02-01-1985",
        "sex": "perempuan",
        "nik": make_nik(date(1985, 1, 2), female=True, region="317101"),
        "passport_kind": "biasa",
        "validity": "5",
    }
    budi.say("/daftar")
    siti.say("/daftar")
    for step in ("category", "service", "had_passport", "passport_kind", "validity", "full_name"):
        fill_until(budi, step)
        fill_until(siti, step, siti_answers)
    fill_until(budi, "doc_ktp")
    fill_until(siti, "nik", siti_answers)
    assert budi.state()["answers"]["full_name"] == "BUDI SANTOSO"
    assert siti.state()["answers"]["full_name"] == "SITI RAHMA"
    register(siti, siti_answers)
    register(budi)
    with loket.sessions() as session:
        rows = session.execute(select(Application).order_by(Application.full_name)).scalars().all()
        assert [(a.account_ref, a.full_name, a.fee_amount) for a in rows] == [
            ("budi", "BUDI SANTOSO", 950_000),
            ("siti", "SITI RAHMA", 350_000),
        ]


def family_member(number: int) -> dict[str, str]:
    """Answers for the n-th member of one family (distinct NIKs and birth dates)."""
    birth = date(1970 + number, 5, 10 + number)
    return {
        "full_name": f"Anggota Keluarga {'ABCDEFG'[number]}",
        "birth_date": birth.strftime("%d-%m-%Y"),
        "nik": make_nik(birth, serial=number + 1),
    }


def test_one_account_registers_a_family_of_five_and_no_more(loket: Loket) -> None:
    parent = Chat(loket, "family-account")
    for number in range(5):
        confirmation = register(parent, family_member(number))
        assert "Pendaftaran berhasil dikirim" in confirmation, parent.transcript()
    assert count_applications(loket) == 5
    reply = parent.say("/daftar")
    assert "Satu akun hanya dapat mendaftarkan hingga 5 orang" in reply
    assert reply.question.text == "Apa yang ingin Anda lakukan?"
    status = parent.say("/status")
    assert status.text.count("LK-") == 5


def test_family_limit_is_configurable(
    settings: Settings, db_engine: Engine, clock: FakeClock, loket: Loket
) -> None:
    from dataclasses import replace

    strict = Loket(replace(settings, max_applicants_per_account=1), db=db_engine, clock=clock)
    chat = Chat(strict, "single")
    register(chat)
    assert "hingga 1 orang" in chat.say("/daftar")


# ---- language ------------------------------------------------------------------------------


def test_switch_to_english_and_back(chat: Chat) -> None:
    fill_until(chat, "birth_date")
    reply = chat.say("/bahasa")
    assert reply.labels == ["Bahasa Indonesia", "English"]
    reply = chat.tap("English")
    assert "OK, I will use English." in reply
    assert "date of birth" in reply.question.text.lower()
    reply = chat.say("31-02-1990")
    assert "There is no day 31 in that month in 1990" in reply
    chat.say("/language")
    reply = chat.say("indonesia")
    assert "Baik, saya akan memakai Bahasa Indonesia." in reply
    assert "tanggal lahir" in reply.question.text


def test_channel_language_code_picks_english(loket: Loket) -> None:
    chat = Chat(loket, "english-speaker", language="en-GB")
    reply = chat.open()
    assert "Welcome to Loket" in reply
    summary = fill_until(chat, "summary", {"consent": "agree", "category": "adult"})
    assert "Total: Rp950,000" in summary
    assert "Date of birth: August 17, 1990" in summary


def test_unknown_channel_language_falls_back_to_indonesian(loket: Loket) -> None:
    chat = Chat(loket, "visitor", language="fr")
    assert "Selamat datang" in chat.open()
