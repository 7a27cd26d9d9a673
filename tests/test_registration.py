"""Happy paths through the real engine and storage, one per application type."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from bot.service import Loket
from storage.models import Application
from tests.transcript import Chat, fill_until, make_nik, register


def only_application(loket: Loket) -> Application:
    """Return the single stored application with its documents loaded."""
    with loket.sessions() as session:
        application = session.execute(select(Application)).scalar_one()
        _ = application.documents
        return application


def test_first_passport_for_an_adult_full_transcript(chat: Chat, loket: Loket) -> None:
    reply = chat.open()
    assert "Selamat datang di Loket" in reply
    assert reply.labels[0] == "Daftar paspor"

    reply = chat.say("1")
    assert "UU PDP" in reply and "Tujuan" in reply and "Hak Anda" in reply
    assert reply.labels == ["Saya setuju", "Tidak setuju"]
    assert "Untuk siapa paspor ini?" in chat.tap("Saya setuju")
    assert "Reguler" in chat.say("dewasa") and "Rp1.000.000" in chat.log[-1][1]
    assert "pernah memiliki paspor" in chat.say("reguler")
    reply = chat.say("belum pernah")
    assert "Rp350.000" in reply and "Rp950.000" in reply
    assert "masa berlaku" in chat.say("elektronik")
    assert "nama lengkap" in chat.say("10 tahun")
    assert "tempat lahir" in chat.say("  budi   santoso ")
    assert "tanggal lahir" in chat.say("bandung")
    assert "Jenis kelamin" in chat.say("17 agt 1990")
    assert "NIK" in chat.say("L")
    reply = chat.say("3273 0117 0890 0001")
    assert "nomor HP" in reply and reply.question.expects.value == "contact"
    assert "email" in chat.contact("+62 812-3456-7890")
    assert "alamat" in chat.say("budi@example.com")
    assert "tujuan perjalanan" in chat.say(
        "Jl. Merdeka No. 10, RT 01/RW 02, Braga, Sumur Bandung, Kota Bandung"
    )
    assert "dokumen pendukung" in chat.say("umroh")
    reply = chat.say("ijazah")
    assert "Dokumen 1 dari 3: e-KTP" in reply and reply.question.expects.value == "photo"
    assert "Dokumen 2 dari 3: Kartu Keluarga" in chat.photo(tag="ktp")
    assert "Dokumen 3 dari 3: Ijazah" in chat.photo(tag="kk")
    summary = chat.photo(tag="ijazah")
    for fragment in (
        "Ringkasan pendaftaran",
        "Jenis permohonan: Paspor baru",
        "Nama lengkap: BUDI SANTOSO",
        "Tempat lahir: Bandung",
        "Tanggal lahir: 17 Agustus 1990",
        "NIK: 3273011708900001",
        "Nomor HP: +6281234567890",
        "Tujuan perjalanan: Umrah/haji",
        "Dokumen diterima: e-KTP, Kartu Keluarga, Dokumen pendukung",
        "Biaya (PP 45/2024):",
        "Paspor elektronik 10 tahun: Rp950.000",
        "Total: Rp950.000",
    ):
        assert fragment in summary, f"{fragment!r} missing from\n{summary.text}"
    assert summary.labels == ["Benar, kirim", "Ubah data"]

    confirmation = chat.tap("Benar, kirim")
    application = only_application(loket)
    assert f"Nomor pendaftaran: {application.reg_number}" in confirmation
    # Straight on to choosing an office and a date for the new application.
    assert "Di kota mana" in confirmation.question.text
    assert application.application_type == "baru"
    assert application.full_name == "BUDI SANTOSO"
    assert application.birth_date == date(1990, 8, 17)
    assert application.phone == "+6281234567890"
    assert application.email == "budi@example.com"
    assert application.travel_purpose == "umrah_haji"
    assert application.fee_amount == 950_000 and application.fee_schedule == "PP 45/2024"
    assert [d.kind for d in application.documents] == ["ktp", "kk", "supporting"]
    assert all(len(d.sha256) == 64 for d in application.documents)
    assert application.answers["supporting_kind"] == "diploma"
    assert "consent_at" in application.answers
    # The photos are kept, content-addressed by their hash.
    assert loket.blobs.get(application.documents[0].sha256).startswith(b"\xff\xd8\xff")
    # The conversation keeps only a reference to the application, nothing personal.
    assert chat.state()["answers"] == {"application": str(application.id)}


def test_replacement_of_an_expired_passport(chat: Chat, loket: Loket) -> None:
    reply = fill_until(chat, "replace_reason", {"had_passport": "ya"})
    assert "penggantian, bukan paspor baru" in reply
    summary = fill_until(
        chat, "summary", {"replace_reason": "1", "passport_kind": "biasa", "validity": "5"}
    )
    assert "Jenis permohonan: Penggantian" in summary
    assert "Nomor paspor lama: X1234567" in summary
    assert "Paspor lama" in summary and "Kartu Keluarga" not in summary
    assert "Total: Rp350.000" in summary
    chat.say("kirim")
    application = only_application(loket)
    assert application.application_type == "penggantian"
    assert application.replacement_reason == "expired"
    assert application.old_passport_number == "X1234567"
    assert [d.kind for d in application.documents] == ["ktp", "old_passport"]


def test_replacement_of_a_lost_passport_may_skip_the_number(chat: Chat, loket: Loket) -> None:
    reply = fill_until(
        chat, "old_passport_number", {"had_passport": "ya", "replace_reason": "hilang"}
    )
    assert "Lewati" in reply.labels
    summary = fill_until(chat, "summary", {"old_passport_number": "lewati"})
    assert "Denda paspor hilang: Rp1.000.000" in summary
    assert "Total: Rp1.950.000" in summary
    chat.say("kirim")
    application = only_application(loket)
    assert application.replacement_reason == "lost"
    assert application.old_passport_number is None
    assert [d.kind for d in application.documents] == ["ktp", "kk", "police_report"]


def test_replacement_of_a_damaged_passport_with_a_changed_name(chat: Chat, loket: Loket) -> None:
    summary = fill_until(
        chat,
        "summary",
        {"had_passport": "ya", "replace_reason": "rusak", "name_same": "tidak", "service": "2"},
    )
    assert "Layanan percepatan: Rp1.000.000" in summary
    assert "Denda paspor rusak: Rp500.000" in summary
    assert "Total: Rp2.450.000" in summary
    chat.say("kirim")
    application = only_application(loket)
    assert application.name_changed is True
    assert [d.kind for d in application.documents] == [
        "ktp",
        "kk",
        "damaged_passport",
        "court_order",
    ]


def test_child_applicant(chat: Chat, loket: Loket) -> None:
    child_birth = date(2015, 3, 9)
    answers = {
        "category": "anak",
        "full_name": "Siti Aminah",
        "birth_date": "9 Maret 2015",
        "sex": "perempuan",
        "nik": make_nik(child_birth, female=True, serial=12),
        "passport_kind": "biasa",
    }
    reply = fill_until(chat, "doc_child_birth_cert", answers)
    assert "Dokumen 2 dari 7: Akta kelahiran anak" in reply
    reply = fill_until(chat, "doc_parents_passport", answers)
    assert "Lewati" in reply.labels
    summary = fill_until(chat, "summary", {**answers, "doc_parents_passport": "lewati"})
    assert "Masa berlaku: 5 tahun (pemohon anak)" in summary
    assert "Paspor biasa 5 tahun: Rp350.000" in summary
    chat.say("kirim")
    application = only_application(loket)
    assert application.category == "child" and application.validity_years == 5
    assert application.sex == "F"
    assert [d.kind for d in application.documents] == [
        "kk",
        "child_birth_cert",
        "father_ktp",
        "mother_ktp",
        "parents_marriage",
        "parents_statement",
    ]


def test_declining_consent_stores_nothing(chat: Chat, loket: Loket) -> None:
    chat.say("/daftar")
    reply = chat.say("tidak setuju")
    assert "tanpa persetujuan" in reply.text.lower()
    assert reply.question.text == "Apa yang ingin Anda lakukan?"
    assert chat.state()["answers"] == {}


def test_registration_number_is_shown_in_status(chat: Chat, loket: Loket) -> None:
    assert "Belum ada permohonan" in chat.say("/status")
    register(chat)
    reg_number = only_application(loket).reg_number
    reply = chat.say("/status")
    assert reg_number in reply and "BUDI SANTOSO" in reply
    assert "belum memilih jadwal" in reply
