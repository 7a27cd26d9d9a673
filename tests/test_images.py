"""The document-photo pipeline and encryption at rest, on images drawn by the tests."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import stat
import struct
import threading
import zlib
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from statistics import NormalDist

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFile, ImageFilter

from bot.core.flow import Invalid
from bot.crypto_store import EncryptedBlobStore, generate_key, load_or_create_key
from bot.i18n import use_locale
from bot.images import (
    ImageRules,
    MemoryBudget,
    Refusal,
    blur_score,
    check_declared_size,
    check_upload,
    clean_document,
    header_size,
)

RULES = ImageRules()
GPS_IFD = 0x8825
ORIENTATION = 0x0112
TRAILER = b"LOKET-TRAILING-SECRET-0123456789"


# ---- drawing test images -------------------------------------------------------------------


def document_page(width: int = 1200, height: int = 800, *, seed: int = 7) -> Image.Image:
    """Draw a sharp, slightly noisy "document": a white page, a frame, lines of word blocks."""
    rng = random.Random(seed)
    page = Image.new("L", (width, height), 240)
    draw = ImageDraw.Draw(page)
    margin = max(width, height) // 30
    draw.rectangle((margin, margin, width - margin, height - margin), outline=20, width=3)
    line_height = max(height // 25, 10)
    y = margin * 2
    while y < height - margin * 2:
        x = margin * 2
        while x < width - margin * 3:
            word = rng.randint(line_height, line_height * 5)
            draw.rectangle((x, y, x + word, y + line_height // 2), fill=rng.randint(0, 60))
            x += word + line_height // 2
        y += line_height
    # Gaussian noise (sigma 6, centred on 128) drawn from `rng`, so one seed is one photo
    # whatever ran before: Pillow's own `effect_noise` draws from the C library's `rand()`,
    # which no seed here reaches, and a photo made again later came out slightly different.
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    return ImageChops.add(page, noise.point(_GAUSSIAN_6), scale=1.0, offset=-128).convert("RGB")


# A byte drawn uniformly, mapped to 128 + a Gaussian of sigma 6 (its inverse distribution
# function at the byte's middle), rounded and kept within 0-255.
_GAUSSIAN_6 = [min(255, max(0, round(128 + 6 * NormalDist().inv_cdf((n + 0.5) / 256))))
               for n in range(256)]  # fmt: skip


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    """Save an image to bytes in the given format."""
    buffer = BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bilevel_png(width: int, height: int) -> bytes:
    """Build a valid all-black 1-bit PNG of any size, compressing rows as they are made."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0, then packed bits
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def minimal_pdf() -> bytes:
    """Return a tiny but well-formed one-page PDF."""
    return (
        b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
        b"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n"
        b"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>> endobj\n"
        b"trailer <</Root 1 0 R>>\n%%EOF\n"
    )


def luminance(image: Image.Image, xy: tuple[int, int]) -> int:
    """Return the grey level of one pixel."""
    value = image.convert("L").getpixel(xy)
    assert isinstance(value, int)
    return value


def refusal(data: bytes, rules: ImageRules = RULES) -> str:
    """Run the pipeline in Indonesian and return the refusal it must give."""
    with use_locale("id"), pytest.raises(Invalid) as refused:
        clean_document(data, rules)
    return refused.value.reason


def gps_exif() -> Image.Exif:
    """Return EXIF with a camera make and a GPS position (Jakarta)."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[GPS_IFD] = {1: "S", 2: (6.0, 10.0, 30.0), 3: "E", 4: (106.0, 49.0, 0.0)}
    return exif


# ---- accepted photos -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_sharp_document_passes_without_metadata_or_trailing_bytes(fmt: str) -> None:
    page = document_page()
    options: dict[str, object] = {"exif": gps_exif()}
    if fmt == "JPEG":
        options["comment"] = b"HIDDEN-COMMENT"
    data = encode(page, fmt, **options) + TRAILER

    # The input really carries a GPS position and the appended bytes.
    with Image.open(BytesIO(data)) as original:
        original.load()
        assert original.getexif().get_ifd(GPS_IFD)[2] == (6.0, 10.0, 30.0)
    assert (b"Exif" if fmt == "JPEG" else b"eXIf") in data
    assert TRAILER in data

    with use_locale("id"):
        clean = clean_document(data, RULES)

    assert clean.content_type == "image/jpeg"
    assert clean.data.startswith(b"\xff\xd8\xff")
    assert (clean.width, clean.height) == page.size
    assert b"Exif" not in clean.data and b"eXIf" not in clean.data
    assert b"HIDDEN-COMMENT" not in clean.data
    assert TRAILER not in clean.data
    with Image.open(BytesIO(clean.data)) as result:
        assert result.format == "JPEG"
        assert result.mode == "RGB"
        assert result.size == page.size
        assert len(result.getexif()) == 0
        assert not {"exif", "comment", "icc_profile", "xmp"} & set(result.info)


def test_blur_threshold_separates_sharp_from_blurred() -> None:
    page = document_page()
    sharp = blur_score(page.convert("L"))
    blurred = blur_score(page.filter(ImageFilter.GaussianBlur(6)).convert("L"))
    assert blurred < RULES.blur_threshold < sharp


def test_exif_orientation_is_applied() -> None:
    portrait = document_page(800, 1200)
    # A dark block in the top-left corner of the page as the applicant sees it.
    ImageDraw.Draw(portrait).rectangle((0, 0, 199, 199), fill=(0, 0, 0))
    # Cameras store the sensor's landscape pixels and say "rotate 90° clockwise" (6).
    stored = portrait.rotate(90, expand=True)
    assert stored.size == (1200, 800)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    data = encode(stored, "JPEG", exif=exif, quality=95)

    with use_locale("id"):
        clean = clean_document(data, RULES)

    assert (clean.width, clean.height) == (800, 1200)
    with Image.open(BytesIO(clean.data)) as result:
        gray = result.convert("L")
        assert gray.size == (800, 1200)
        assert luminance(gray, (50, 50)) < 60  # the block is back in the top-left corner
        assert luminance(gray, (750, 1150)) > 150
        assert ORIENTATION not in result.getexif()


@pytest.mark.parametrize(
    ("size", "expected"), [((3000, 2000), (2400, 1600)), ((5000, 3000), (2400, 1440))]
)
def test_large_photo_is_downscaled(size: tuple[int, int], expected: tuple[int, int]) -> None:
    # 5000×3000 is decoded at half scale straight from the JPEG (draft mode), then resized.
    data = encode(document_page(*size).convert("L"), "JPEG", quality=90)
    with use_locale("id"):
        clean = clean_document(data, RULES)
    assert (clean.width, clean.height) == expected
    with Image.open(BytesIO(clean.data)) as result:
        assert result.size == expected


def test_transparent_png_gets_a_white_background() -> None:
    page = document_page().convert("L")
    # Ink where the page is dark, fully transparent (and black underneath) elsewhere.
    ink = page.point(lambda value: 255 if value < 128 else 0)
    transparent = Image.new("RGBA", page.size, (0, 0, 0, 0))
    transparent.putalpha(ink)
    with use_locale("id"):
        clean = clean_document(encode(transparent, "PNG"), RULES)
    with Image.open(BytesIO(clean.data)) as result:
        assert luminance(result, (5, 5)) > 240


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    page = document_page().convert("L")
    deep = Image.new("I;16", page.size)
    deep.putdata([value * 257 for value in page.get_flattened_data()])
    data = encode(deep, "PNG")
    with Image.open(BytesIO(data)) as original:
        assert original.mode.startswith("I;16")
    with use_locale("id"):
        clean = clean_document(data, RULES)
    with Image.open(BytesIO(clean.data)) as result:
        low, high = result.convert("L").getextrema()
        assert isinstance(low, int) and isinstance(high, int)
        assert low < 80 and high > 200


def test_pdf_is_refused_with_a_request_for_a_photo() -> None:
    # A PDF cannot be re-encoded here, and what is stored must have been re-encoded: a PDF's
    # scripts, forms and metadata (a NIK, a position) would be kept byte for byte.
    pdf = minimal_pdf().replace(b"trailer", b"<</JS (app.alert(1))>> /Author (3273011501900001)\n"
                                b"trailer")  # fmt: skip
    assert refusal(pdf) == (
        "File PDF tidak bisa kami terima. Foto dokumennya dengan kamera ponsel, lalu kirim "
        "fotonya (JPEG atau PNG)."
    )
    assert refusal(pdf[: len(pdf) - 10]).startswith("File PDF tidak bisa kami terima.")


# ---- refusals ------------------------------------------------------------------------------


def test_too_dark_photo_is_refused() -> None:
    dark = document_page().point(lambda value: value // 8)
    assert refusal(encode(dark)) == (
        "Foto terlalu gelap. Ambil ulang di tempat yang terang, tanpa bayangan."
    )


def test_blurry_photo_is_refused() -> None:
    blurred = document_page().filter(ImageFilter.GaussianBlur(6))
    assert refusal(encode(blurred)) == (
        "Foto buram. Pegang ponsel dengan stabil, pastikan dokumen terlihat seluruhnya dan "
        "tajam, lalu foto ulang."
    )


def test_empty_frame_is_refused_as_blurry() -> None:
    # A photo of a blank wall or a page too far away has no edges to be sharp with.
    blank = ImageChops.add(
        Image.new("L", (1200, 800), 235), Image.effect_noise((1200, 800), 4), offset=-128
    )
    with use_locale("id"), pytest.raises(Invalid) as refused:
        clean_document(encode(blank), RULES, "e-KTP")
    assert refused.value.reason == (
        "Foto buram. Pegang ponsel dengan stabil, pastikan e-KTP terlihat seluruhnya dan tajam, "
        "lalu foto ulang."
    )


@pytest.mark.parametrize(
    ("size", "refused"),
    [((500, 300), True), ((800, 390), True), ((590, 800), False), ((600, 400), False)],
)
def test_minimum_resolution(size: tuple[int, int], refused: bool) -> None:
    data = encode(document_page(*size))
    if refused:
        width, height = size
        assert f"Foto terlalu kecil ({width}×{height} piksel). Minimal 600×400." in refusal(data)
    else:
        with use_locale("id"):
            assert clean_document(data, RULES).width == size[0]


def test_bilevel_png_helper_makes_real_pngs() -> None:
    with Image.open(BytesIO(bilevel_png(37, 21))) as small:
        small.load()
        assert small.size == (37, 21)
        assert small.getextrema() == (0, 0)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if Pillow decodes any pixels."""

    def forbidden(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden)
    yield


def test_too_many_pixels_is_refused_from_the_header(
    no_decoding: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Our own header reading must refuse it before Pillow even parses the file.
    def forbidden_open(*args: object, **kwargs: object) -> Image.Image:
        raise AssertionError("Pillow opened the file")

    monkeypatch.setattr(Image, "open", forbidden_open)
    bomb = bilevel_png(20_000, 20_000)
    assert len(bomb) < 1_000_000  # a small file claiming 400 megapixels
    reason = refusal(bomb)
    assert "Gambar terlalu besar (20000×20000 piksel)." in reason


def test_pillow_bomb_guard_is_caught_too(no_decoding: None) -> None:
    # With our own limit set absurdly high, Pillow's DecompressionBombError must still end
    # in the same polite refusal rather than an exception escaping to the channel.
    lenient = ImageRules(max_pixels=10**12)
    assert "Gambar terlalu besar (20000×20000 piksel)." in refusal(
        bilevel_png(20_000, 20_000), lenient
    )


def test_jpeg_header_size_is_read_without_decoding(no_decoding: None) -> None:
    assert header_size(encode(document_page(900, 700)), "image/jpeg") == (900, 700)
    assert header_size(bilevel_png(1234, 567), "image/png") == (1234, 567)


@pytest.mark.parametrize(
    "data",
    [
        b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200),  # a Windows executable
        encode(Image.new("RGB", (800, 600), "white"), "GIF"),
        b"Hello, this is text named ktp.jpg",
        b"",
    ],
    ids=["exe", "gif", "text", "empty"],
)
def test_wrong_type_is_refused(data: bytes) -> None:
    assert refusal(data) == "File ini bukan foto JPEG/PNG. Kirim foto dokumen."


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_photo_is_refused(fmt: str) -> None:
    whole = encode(document_page(), fmt)
    assert "File foto rusak atau tidak lengkap." in refusal(whole[: len(whole) // 2])


def test_garbage_after_magic_bytes_is_refused() -> None:
    # Deterministic garbage with no 0xFF byte, so it holds no JPEG marker at all. (Random
    # bytes sometimes contain a frame header declaring a huge size: refused as too large.)
    garbage = bytes(random.Random(3).randrange(0, 255) for _ in range(4000))
    assert "File foto rusak atau tidak lengkap." in refusal(b"\xff\xd8\xff" + garbage)


def test_oversized_upload_is_refused() -> None:
    rules = ImageRules(max_bytes=2 * 1_048_576)
    data = encode(document_page(), "PNG", compress_level=0)
    assert len(data) > rules.max_bytes
    size = f"{len(data) / 1_048_576:.1f}".replace(".", ",")  # Indonesian decimal comma
    assert refusal(data, rules) == (
        f"Ukuran file {size} MB, melebihi batas 2 MB. Kirim foto yang lebih kecil."
    )


def test_declared_size_is_checked_before_download() -> None:
    with use_locale("id"):
        check_declared_size(None, RULES)  # the channel did not say
        check_declared_size(RULES.max_bytes, RULES)
        with pytest.raises(Invalid) as refused:
            check_declared_size(RULES.max_bytes + 600_000, RULES)
    assert "Ukuran file 10,6 MB, melebihi batas 10 MB." in refused.value.reason


# ---- memory ------------------------------------------------------------------------------


def test_png_too_costly_to_decode_is_refused_before_decoding(no_decoding: None) -> None:
    # The reported attack: 166 KB of all-white RGBA PNG, 6300×6300 (under the 40-megapixel
    # limit), which decoded to 160 MB and, with the pipeline's copies, took 600 MB.
    buffer = BytesIO()
    Image.new("RGBA", (6300, 6300), "white").save(buffer, format="PNG")
    data = buffer.getvalue()
    assert len(data) < 200_000
    assert refusal(data) == (
        "Gambar terlalu besar untuk diperiksa (6300×6300 piksel). Kirim sebagai foto biasa "
        "(JPEG) dari kamera ponsel, bukan file PNG atau hasil pindai beresolusi tinggi."
    )


def test_png_within_the_budget_is_accepted_and_the_budget_is_what_decides() -> None:
    data = encode(document_page(1600, 1200).convert("RGBA"), "PNG")
    with use_locale("id"):
        assert clean_document(data, RULES).width == 1600
    # The same photo under a budget smaller than its decoded pixels and copies.
    assert "terlalu besar untuk diperiksa (1600×1200 piksel)" in refusal(
        data, ImageRules(memory_budget=12 * 1_048_576)
    )


def test_large_jpeg_is_decoded_at_a_smaller_scale_when_the_budget_asks() -> None:
    data = encode(document_page(3200, 2400), "JPEG", quality=90)
    with use_locale("id"):
        full = clean_document(data, RULES)
        small = clean_document(data, ImageRules(memory_budget=48 * 1_048_576))
    assert (full.width, full.height) == (2400, 1800)
    # Decoded straight from the DCT data at half scale, never at full size.
    assert (small.width, small.height) == (1600, 1200)


def queued(budget: MemoryBudget, count: int) -> None:
    """Wait, without polling, until `count` checks wait for their share of `budget`."""
    with budget._changed:  # notified whenever a check joins or leaves the queue
        assert budget._changed.wait_for(lambda: budget.waiting >= count, timeout=10)


def test_checks_share_the_process_budget() -> None:
    budget = MemoryBudget(100)
    order: list[str] = []

    def second() -> None:
        with budget.hold(70):
            order.append("second runs")

    with budget.hold(70):
        waiter = threading.Thread(target=second)
        waiter.start()
        queued(budget, 1)  # the second check is queued behind the first
        assert budget.used == 70
        order.append("first done")
    waiter.join()
    assert order == ["first done", "second runs"]
    assert budget.used == 0
    with budget.hold(10**9):  # a cost above the whole budget takes all of it, no more
        assert budget.used == 100


def test_budget_admits_checks_in_arrival_order_so_a_large_photo_is_not_starved() -> None:
    budget = MemoryBudget(100)
    order: list[str] = []
    large_runs, large_may_finish = threading.Event(), threading.Event()

    def large() -> None:
        with budget.hold(100):
            order.append("large")
            large_runs.set()
            large_may_finish.wait(timeout=10)

    def small() -> None:
        with budget.hold(30):
            order.append("small")

    with budget.hold(60):
        first = threading.Thread(target=large)
        first.start()
        queued(budget, 1)
        second = threading.Thread(target=small)
        second.start()
        # 60 + 30 would fit, but the large photo came first: the small one waits behind it.
        queued(budget, 2)
        assert order == []
    assert large_runs.wait(timeout=10)
    assert order == ["large"]
    assert budget.waiting == 1  # still behind the large photo, which holds the whole budget
    large_may_finish.set()
    first.join()
    second.join()
    assert order == ["large", "small"]
    assert budget.used == 0


def test_refusal_is_worded_when_shown_in_the_applicants_language() -> None:
    blurred = encode(document_page().filter(ImageFilter.GaussianBlur(6)))
    checked = check_upload(blurred, RULES)  # no language chosen yet
    assert isinstance(checked, Refusal)
    with use_locale("en"):
        assert "e-KTP" in checked.reason("e-KTP")
        assert checked.reason("e-KTP").startswith("The photo is blurry")


# ---- encryption at rest --------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> EncryptedBlobStore:
    return EncryptedBlobStore(tmp_path / "documents", os.urandom(32))


def _stored_file(store: EncryptedBlobStore, key: str) -> Path:
    return store.folder / key[:2] / key


def test_encrypted_round_trip(store: EncryptedBlobStore) -> None:
    data = encode(document_page(640, 420))
    key = store.put(data)
    assert store.get(key) == data
    on_disk = _stored_file(store, key).read_bytes()
    assert data not in on_disk
    assert data[100:132] not in on_disk  # not even a fragment of the plaintext
    assert [p.name for p in _stored_file(store, key).parent.iterdir()] == [key]  # no temp left


def test_same_plaintext_gets_the_same_key(store: EncryptedBlobStore) -> None:
    data = b"the same KTP photo" * 50
    assert store.put(data) == store.put(data)
    assert store.put(data) != store.put(data + b"!")


def test_key_is_the_plaintext_sha256(store: EncryptedBlobStore) -> None:
    data = b"document bytes"
    assert store.put(data) == hashlib.sha256(data).hexdigest()


def test_tampering_is_detected(store: EncryptedBlobStore) -> None:
    key = store.put(b"x" * 1000)
    path = _stored_file(store, key)
    sealed = bytearray(path.read_bytes())
    sealed[len(sealed) // 2] ^= 0x01
    path.write_bytes(bytes(sealed))
    with pytest.raises(ValueError):
        store.get(key)


def test_file_moved_under_another_key_is_refused(store: EncryptedBlobStore) -> None:
    first, second = store.put(b"first document"), store.put(b"second document")
    _stored_file(store, second).write_bytes(_stored_file(store, first).read_bytes())
    with pytest.raises(ValueError):
        store.get(second)


def test_wrong_key_cannot_read(tmp_path: Path) -> None:
    key = EncryptedBlobStore(tmp_path, os.urandom(32)).put(b"secret")
    with pytest.raises(ValueError):
        EncryptedBlobStore(tmp_path, os.urandom(32)).get(key)


def test_keys_outside_the_folder_are_refused(store: EncryptedBlobStore) -> None:
    with pytest.raises(ValueError):
        store.get("../../etc/passwd")


def test_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path, None)
    path = tmp_path / "document.key"
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path, "") == first  # an empty variable counts as unset
    assert load_or_create_key(tmp_path, None) == first
    assert [p.name for p in tmp_path.iterdir()] == ["document.key"]


def test_environment_key_wins(tmp_path: Path) -> None:
    value = generate_key()
    assert load_or_create_key(tmp_path, value) == base64.urlsafe_b64decode(value)
    assert load_or_create_key(tmp_path, value.rstrip("=")) == base64.urlsafe_b64decode(value)
    assert not (tmp_path / "document.key").exists()


@pytest.mark.parametrize(
    "value",
    [
        base64.urlsafe_b64encode(os.urandom(16)).decode(),  # too short
        base64.urlsafe_b64encode(os.urandom(33)).decode(),  # too long
        "not base64 at all!!",
        "+" * 43 + "=",  # standard, not URL-safe, alphabet
    ],
    ids=["16-bytes", "33-bytes", "garbage", "not-urlsafe"],
)
def test_bad_environment_key_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="LOKET_DOCUMENT_KEY"):
        load_or_create_key(tmp_path, value)


def test_encrypted_store_refuses_short_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        EncryptedBlobStore(tmp_path, os.urandom(16))
