"""Every refusal: a specific reason in Indonesian, then the same question again."""

from __future__ import annotations

import io
import threading
from datetime import date
from typing import cast

import pytest
from PIL import Image, ImageFilter
from sqlalchemy.pool import QueuePool

from bot import images
from bot.service import Loket
from tests.test_images import minimal_pdf
from tests.transcript import ADULT_NEW, Chat, fill_until, make_nik, photo_bytes, register

# (step, answers that lead there, what the applicant types, what the bot must say)
TEXT_REFUSALS = [
    ("category", {}, "kakek", "Mohon pilih salah satu: Dewasa (17 tahun ke atas)"),
    ("full_name", {}, "B", "Nama terlalu pendek"),
    ("full_name", {}, "Budi 2", "tidak boleh berisi angka"),
    ("full_name", {}, "Budi @ Santoso", "hanya boleh berisi huruf"),
    ("birth_place", {}, "12345", "Tempat lahir tidak boleh berisi angka"),
    ("birth_date", {}, "31-02-1990", "Tanggal 31 tidak ada pada bulan tersebut di tahun 1990"),
    ("birth_date", {}, "17-08-90", "Tulis tahun dengan 4 angka"),
    ("birth_date", {}, "17 Agustusan 1990", 'Nama bulan "agustusan" tidak dikenal'),
    ("birth_date", {}, "kemarin", "Format tanggal tidak dikenali"),
    ("birth_date", {}, "17-08-2030", "tidak boleh di masa depan"),
    ("birth_date", {}, "17-08-1850", "terlalu jauh"),
    ("birth_date", {}, "17-13-1990", "Bulan harus 1 sampai 12"),
    ("birth_date", {}, "17-08-2015", "berumur 11 tahun. Pemohon di bawah 17 tahun"),
    ("birth_date", {"category": "anak"}, "17-08-1990", "berumur 36 tahun, jadi bukan pemohon anak"),
    ("nik", {}, "3273O11708900001", "NIK hanya berisi angka"),
    ("nik", {}, "327301170890001", "NIK harus 16 digit, yang Anda ketik 15 digit"),
    ("nik", {}, "9973011708900001", "Dua digit pertama NIK (99) bukan kode provinsi"),
    ("nik", {}, "3273011713900001", "Digit ke-9 dan ke-10 NIK (13)"),
    ("nik", {}, "3273013508900001", "Digit ke-7 dan ke-8 NIK (35)"),
    ("nik", {}, "3273011708900000", "Empat digit terakhir NIK tidak boleh 0000"),
    ("nik", {}, "3273011808900001", "tanggal lahir di NIK 18, sedangkan Anda menulis 17"),
    ("nik", {}, "3273011709900001", "bulan lahir di NIK 09, sedangkan Anda menulis 08"),
    ("nik", {}, "3273011708910001", "tahun lahir di NIK …91, sedangkan Anda menulis 1990"),
    (
        "nik",
        {},
        "3273015708900001",
        "NIK ini milik perempuan (tanggal lahir di NIK ditambah 40: 57)",
    ),
    ("nik", {"sex": "perempuan"}, "3273011708900001", "seharusnya 57"),
    ("phone", {}, "12345", "Nomor 12345 tidak valid"),
    ("phone", {}, "021 555 1234", "Itu nomor telepon rumah atau kantor"),
    ("phone", {}, "+65 9123 4567", "Gunakan nomor HP Indonesia (+62)"),
    ("phone", {}, "nomor saya", "Nomor HP tidak dikenali"),
    ("email", {}, "budi@", "Alamat email tidak valid"),
    ("address", {}, "Bandung", "Alamat terlalu singkat"),
    ("travel_purpose", {}, "jalan-jalan ke bulan", "Mohon pilih salah satu: Wisata"),
    ("old_passport_number", {"had_passport": "ya"}, "12345", "Nomor paspor terdiri dari 8"),
    ("doc_ktp", {}, "ini KTP saya", "kami perlu foto dokumen, bukan teks"),
]


@pytest.mark.parametrize(("step", "answers", "typed", "expected"), TEXT_REFUSALS)
def test_refusal_is_specific_and_asks_again(
    chat: Chat, step: str, answers: dict[str, str], typed: str, expected: str
) -> None:
    question = fill_until(chat, step, answers).question.text
    reply = chat.say(typed)
    assert expected in reply, chat.transcript()
    assert chat.step() == step
    assert reply.question.text == question
    # The refusal comes before the question, in its own message.
    assert len(reply.messages) >= 2


def test_skipping_a_required_old_passport_number_is_refused(chat: Chat) -> None:
    # "lewati" is only offered for a lost passport; typed anyway, it is refused with a reason.
    reply = fill_until(chat, "old_passport_number", {"had_passport": "ya"})
    assert "Lewati" not in reply.labels
    assert "Nomor paspor terdiri dari 8" in chat.say("lewati")


def test_nik_disagreeing_with_the_birth_date_offers_to_change_the_date(chat: Chat) -> None:
    fill_until(chat, "nik")
    reply = chat.say(make_nik(date(1990, 8, 18)))
    assert "Ubah Tanggal lahir" in reply.labels
    reply = chat.tap("Ubah Tanggal lahir")
    assert chat.step() == "birth_date"
    assert "Jawaban saat ini: 17 Agustus 1990" in reply
    # After the corrected date the NIK is asked again (it was never accepted), then onwards.
    reply = chat.say("18-08-1990")
    assert chat.step() == "nik"
    chat.say(make_nik(date(1990, 8, 18)))
    assert chat.step() == "phone"


def test_typed_fix_label_works_like_its_button(chat: Chat) -> None:
    fill_until(chat, "nik", {"sex": "perempuan"})
    reply = chat.say(ADULT_NEW["nik"])
    assert "Ubah Jenis kelamin" in reply.labels
    chat.say("ubah jenis kelamin")
    assert chat.step() == "sex"
    chat.say("laki-laki")
    assert chat.step() == "nik"


def test_stale_button_is_refused(chat: Chat) -> None:
    fill_until(chat, "service")
    reply = chat.press("goto:birth_date")
    assert "Tombol itu sudah tidak berlaku" in reply
    assert chat.step() == "service"
    reply = chat.press("elektronik")  # a value from another question
    assert "Tombol itu sudah tidak berlaku" in reply
    assert chat.step() == "service"


def test_upload_that_is_not_an_image_is_refused(chat: Chat) -> None:
    fill_until(chat, "doc_ktp")
    reply = chat.photo(b"MZ\x90\x00 this is an executable, not a photo")
    assert "bukan foto JPEG/PNG" in reply
    assert chat.step() == "doc_ktp"


def test_pdf_is_refused_with_a_request_for_a_photo_and_nothing_is_stored(
    chat: Chat, loket: Loket
) -> None:
    fill_until(chat, "doc_ktp")
    reply = chat.photo(minimal_pdf(), tag="ktp.pdf")
    assert "File PDF tidak bisa kami terima. Foto dokumennya dengan kamera ponsel" in reply
    assert chat.step() == "doc_ktp"
    stored = loket.settings.data_dir / "documents"
    assert not stored.exists() or not any(path.is_file() for path in stored.rglob("*"))


def test_photo_is_checked_before_the_turns_transaction(
    chat: Chat, loket: Loket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A decode inside the turn would hold the conversation's lock and, on SQLite, the one
    # write lock every other applicant's turn needs.
    fill_until(chat, "doc_ktp")
    measure = images.blur_score
    during_check: list[object] = []

    def spy(gray: Image.Image) -> float:
        during_check.append(cast(QueuePool, loket.db.pool).checkedout())
        # Another applicant's turn goes through while the photo is being checked.
        during_check.append(bool(Chat(loket, "someone-else").say("/mulai").messages))
        return measure(gray)

    monkeypatch.setattr(images, "blur_score", spy)
    chat.photo()
    assert during_check == [0, True]
    assert chat.step() == "doc_kk"


def test_photos_are_checked_on_the_services_image_thread(
    chat: Chat, loket: Loket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every channel's request thread hands its photo to the service's few image threads, so
    # the memory a check frees is reused by the next check instead of kept by each caller.
    fill_until(chat, "doc_ktp")
    measure = images.blur_score
    threads: list[threading.Thread] = []

    def spy(gray: Image.Image) -> float:
        threads.append(threading.current_thread())
        return measure(gray)

    monkeypatch.setattr(images, "blur_score", spy)
    chat.photo()
    other = Chat(loket, "someone-else")
    fill_until(other, "doc_ktp")
    caller = threading.Thread(target=other.photo)  # another request thread
    caller.start()
    caller.join()
    assert chat.step() == "doc_kk"
    assert other.step() == "doc_kk"
    assert len(threads) == 2
    assert threads[0] is threads[1]  # one image thread (the default) did both
    assert threads[0] not in (threading.current_thread(), caller)
    assert threads[0].name.startswith("loket-image")
    loket.image_checks.shutdown(wait=True)
    assert not threads[0].is_alive()


def test_upload_over_the_size_limit_is_refused(chat: Chat, loket: Loket) -> None:
    fill_until(chat, "doc_ktp")
    too_big = photo_bytes() + b"\0" * loket.settings.max_upload_bytes
    reply = chat.photo(too_big)
    assert "melebihi batas 10 MB" in reply
    assert chat.step() == "doc_ktp"


def test_blurry_photo_refusal_names_the_document_asked_for(chat: Chat) -> None:
    fill_until(chat, "doc_ktp")
    chat.photo()
    assert chat.step() == "doc_kk"
    sharp = Image.open(io.BytesIO(photo_bytes("kk")))
    blurred = io.BytesIO()
    sharp.filter(ImageFilter.GaussianBlur(8)).save(blurred, "JPEG")
    reply = chat.photo(blurred.getvalue())
    assert "Foto buram. Pegang ponsel dengan stabil, pastikan Kartu Keluarga terlihat" in reply
    assert "silau" not in reply.text  # blur is not glare
    assert chat.step() == "doc_kk"


def test_photo_at_a_text_step_is_refused(chat: Chat) -> None:
    fill_until(chat, "full_name")
    assert "Mohon jawab dengan mengetik teks" in chat.photo()
    assert chat.step() == "full_name"


def test_nik_with_an_open_application_elsewhere_is_refused(loket: Loket) -> None:
    first = Chat(loket, "first-account", channel="telegram")
    register(first)
    broker = Chat(loket, "broker-account", channel="web")
    fill_until(broker, "nik")
    reply = broker.say(ADULT_NEW["nik"])
    assert "NIK ini sudah memiliki permohonan paspor yang masih aktif" in reply
    assert broker.step() == "nik"
