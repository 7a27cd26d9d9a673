"""Checking and cleaning document photos: one pipeline for every channel.

An upload is judged by its bytes only (magic bytes, never the file name or the type the channel
declares). Photos are measured from their header before any pixel is decoded, so a small file
that claims enormous dimensions (a decompression bomb) is refused cheaply; then they are
decoded, turned upright, checked for size, darkness and blur, downscaled and re-encoded as a
fresh JPEG. Re-encoding from pixels is what strips EXIF (GPS position, camera serial), ICC
profiles, comments and anything appended after the end of the original file.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from io import BytesIO
from typing import NoReturn

from babel.numbers import format_decimal
from PIL import Image, ImageFilter, ImageOps, ImageStat

from bot.core.flow import Invalid
from bot.i18n import _, current_locale

log = logging.getLogger(__name__)

JPEG = "image/jpeg"
PNG = "image/png"
PDF = "application/pdf"

# Kept here rather than imported from bot.documents so that module can import this one.
_MAGIC = (
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"%PDF-", PDF),
)

# Pillow decodes exactly the format the magic bytes named, no other plugin sees the bytes.
_PILLOW_FORMATS = {JPEG: "JPEG", PNG: "PNG"}

# Blur is measured on a copy whose longer side is at most this many pixels, so the score does
# not depend on the camera's resolution (a sharp 12-megapixel photo and a sharp 1-megapixel
# photo of the same page score alike).
_MEASURE_SIDE = 1024

# A 3×3 Laplacian (the classic "variance of the Laplacian" focus measure). The offset keeps
# negative responses representable in an 8-bit image; only very strong edges clip at ±127.
_LAPLACIAN = ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), scale=1, offset=128)

# Blur is judged after stretching the contrast (see `blur_score`); the stretch is capped so a
# blank wall or a dim, empty frame does not have its sensor noise amplified into "detail".
_MAX_CONTRAST_GAIN = 2.5


@dataclass(frozen=True)
class ImageRules:
    """Limits and thresholds applied to every uploaded document photo."""

    max_bytes: int = 10 * 1024 * 1024
    # 40 megapixels covers the 12-16 MP photos phones save by default (not their optional
    # 50-200 MP full-sensor modes) and stays below Pillow's own bomb limit (about 89 MP), so
    # this check speaks first, with a clear message.
    max_pixels: int = 40_000_000
    # Applied orientation-free: the longer side must reach min_width, the shorter min_height.
    min_width: int = 600
    min_height: int = 400
    # Mean luminance (0-255) of the grayscale photo. A light page fills most of a usable
    # photo, so even a dim one averages far above this; below 40 the text is lost in the dark.
    dark_threshold: float = 40.0
    # Minimum `blur_score`. Calibrated on synthetic documents (light pages with dark
    # text-like blocks and frame lines at 640×420, 1200×800, 3000×2000, and a page inside a
    # grey 4000×3000 frame; full, medium (60-200) and low (110-190) contrast; Gaussian noise
    # σ 0, 4 and 8 added after the blur; saved as JPEG quality 70). Sharp pages scored 530 to
    # 9000 (the lowest: the small, low-contrast page in the big frame). Gaussian blur of
    # radius 6 scored 15-300 (up to 335 only with σ 8 noise on a 1200×800 page); radius 3
    # at 1200×800 scored 40-330; a blank, noisy frame at most 230. 300 sits well below
    # every sharp page: a refused legible photo costs the applicant more than a slightly
    # soft one that the officer can still read.
    blur_threshold: float = 300.0
    jpeg_quality: int = 85
    # Longer side of the stored photo; 2400 pixels keeps a KTP's small print readable.
    max_side: int = 2400


@dataclass(frozen=True)
class CleanDocument:
    """An accepted upload, ready to store: re-encoded bytes and what they are."""

    data: bytes
    content_type: str
    width: int | None
    height: int | None


def _megabytes(size: int, pattern: str) -> str:
    return format_decimal(size / 1_048_576, format=pattern, locale=current_locale())


def check_declared_size(size: int | None, rules: ImageRules) -> None:
    """Refuse before downloading when the channel already tells the file is too large."""
    if size is not None and size > rules.max_bytes:
        _refuse_size(size, rules)


def _refuse_size(size: int, rules: ImageRules) -> NoReturn:
    # Same message id as bot.documents.accept_upload, so the catalogs already translate it.
    raise Invalid(
        _("Ukuran file {size} MB, melebihi batas {limit} MB. Kirim foto yang lebih kecil.").format(
            size=_megabytes(size, "#,##0.0"), limit=_megabytes(rules.max_bytes, "#,##0.#")
        )
    )


def sniff_type(data: bytes) -> str | None:
    """Return the content type by magic bytes, never by name or declared type."""
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    return None


def header_size(data: bytes, content_type: str) -> tuple[int, int] | None:
    """Return (width, height) as the PNG or JPEG header states it, decoding nothing."""
    if content_type == PNG:
        # The IHDR chunk must come first: 8-byte signature, 4-byte length, b"IHDR", then
        # width and height as big-endian 32-bit integers.
        if len(data) >= 24 and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        return None
    if content_type == JPEG:
        return _jpeg_header_size(data)
    return None


# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7 and SOI.
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8), 0xD8})


def _jpeg_header_size(data: bytes) -> tuple[int, int] | None:
    position = 2  # after SOI
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        while position < len(data) and data[position] == 0xFF:  # fill bytes before a marker
            position += 1
        if position >= len(data):
            return None
        marker = data[position]
        position += 1
        if marker in _STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        if position + 2 > len(data):
            return None
        (length,) = struct.unpack(">H", data[position : position + 2])
        if marker in _SOF_MARKERS:
            if position + 7 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 3 : position + 7])
            return int(width), int(height)
        position += length
    return None


def clean_document(data: bytes, rules: ImageRules, document: str | None = None) -> CleanDocument:
    """Check an upload and return it cleaned, or raise Invalid with how to retake it."""
    if len(data) > rules.max_bytes:
        _refuse_size(len(data), rules)
    content_type = sniff_type(data)
    if content_type is None:
        raise Invalid(_("File ini bukan foto JPEG/PNG atau PDF. Kirim foto dokumen."))
    if content_type == PDF:
        return _check_pdf(data)
    return _clean_photo(data, content_type, rules, document or _("dokumen"))


def _check_pdf(data: bytes) -> CleanDocument:
    # PDFs are kept as sent (rewriting one safely needs a full PDF library); the structural
    # check only catches files cut short in transit. The spec puts %%EOF in the last 1024 bytes.
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
        raise Invalid(_("File PDF rusak atau tidak lengkap. Kirim ulang PDF atau foto dokumen."))
    return CleanDocument(data=data, content_type=PDF, width=None, height=None)


def _refuse_pixels(width: int, height: int, rules: ImageRules) -> NoReturn:
    raise Invalid(
        _(
            "Gambar terlalu besar ({width}×{height} piksel). Batasnya {limit} megapiksel; "
            "kirim foto biasa dari kamera ponsel."
        ).format(width=width, height=height, limit=rules.max_pixels // 1_000_000)
    )


def _refuse_damaged() -> NoReturn:
    raise Invalid(
        _("File foto rusak atau tidak lengkap. Ambil ulang foto dokumen, lalu kirim lagi.")
    )


def _clean_photo(data: bytes, content_type: str, rules: ImageRules, document: str) -> CleanDocument:
    # First guard: our own reading of the header, before Pillow parses anything.
    declared = header_size(data, content_type)
    if declared is not None and declared[0] * declared[1] > rules.max_pixels:
        _refuse_pixels(*declared, rules)
    try:
        # Image.open is lazy: it reads the header only. Pillow's own decompression-bomb check
        # (Image.MAX_IMAGE_PIXELS, left at its default on purpose: other modules open images
        # too) runs here as a second guard; its error is caught below. With the default rules
        # its warning cannot fire, our lower limit having refused such files above.
        with Image.open(BytesIO(data), formats=[_PILLOW_FORMATS[content_type]]) as opened:
            width, height = opened.size
            # Third guard: the size Pillow would actually allocate, should it disagree with ours.
            if width * height > rules.max_pixels:
                _refuse_pixels(width, height, rules)
            # Checked before decoding, on the header size: the rule looks at the longer and
            # the shorter side, so the EXIF orientation cannot change its outcome.
            _check_resolution(width, height, rules)
            # A JPEG much larger than we keep can be decoded at 1/2, 1/4 or 1/8 scale straight
            # from the DCT data, which saves most of the memory and time. The requested size
            # keeps the longer side at least max_side, so nothing we store is lost.
            scale = rules.max_side / max(width, height)
            if scale < 1:
                opened.draft(None, (int(width * scale) + 1, int(height * scale) + 1))
            # Truncated files raise here (ImageFile.LOAD_TRUNCATED_IMAGES stays False).
            opened.load()
            image = _to_rgb(ImageOps.exif_transpose(opened))
    except Invalid:
        raise
    except Image.DecompressionBombError:
        # Only reachable when rules.max_pixels is set above Pillow's limit, or when Pillow
        # reads other dimensions than our header reading did (then the file is inconsistent).
        limit = Image.MAX_IMAGE_PIXELS
        if declared is not None and limit is not None and declared[0] * declared[1] > limit:
            _refuse_pixels(*declared, rules)
        _refuse_damaged()
    except Exception as error:
        # Hostile or broken files make Pillow raise many kinds of error (OSError, SyntaxError,
        # ValueError, struct.error, ...); each means the same to the applicant.
        log.info("refused a damaged %s upload: %r", content_type, error)
        _refuse_damaged()

    gray = image.convert("L")
    if ImageStat.Stat(gray).mean[0] < rules.dark_threshold:
        raise Invalid(_("Foto terlalu gelap. Ambil ulang di tempat yang terang, tanpa bayangan."))
    if blur_score(gray) < rules.blur_threshold:
        raise Invalid(
            _(
                "Foto buram. Pegang ponsel dengan stabil, pastikan {document} terlihat "
                "seluruhnya dan tajam, lalu foto ulang."
            ).format(document=document)
        )
    return _encode(image, rules)


def _check_resolution(width: int, height: int, rules: ImageRules) -> None:
    if max(width, height) < rules.min_width or min(width, height) < rules.min_height:
        raise Invalid(
            _(
                "Foto terlalu kecil ({width}×{height} piksel). Minimal {min_width}×{min_height}. "
                "Kirim foto asli dari kamera, bukan tangkapan layar atau gambar yang diperkecil."
            ).format(
                width=width,
                height=height,
                min_width=rules.min_width,
                min_height=rules.min_height,
            )
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    ):
        # Transparent areas become white paper, not whatever colour hides under the alpha.
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, (255, 255, 255))
        flattened.paste(rgba, mask=rgba.getchannel("A"))
        return flattened
    if image.mode.startswith("I") or image.mode == "F":
        # 16-bit grayscale PNGs: scale to 8 bits rather than clip every light pixel to white.
        return image.convert("I").point(lambda value: value / 256).convert("RGB")
    return image.convert("RGB")


def blur_score(gray: Image.Image) -> float:
    """Return how sharp a grayscale photo is (variance of its Laplacian after normalising)."""
    work = gray.copy()
    # BOX averaging when shrinking also averages away part of the sensor noise.
    work.thumbnail((_MEASURE_SIDE, _MEASURE_SIDE), Image.Resampling.BOX)
    # A 3×3 median removes isolated noisy pixels (which the Laplacian would count as detail)
    # while keeping the edges of letters and lines.
    work = work.filter(ImageFilter.MedianFilter(3))
    edges = work.filter(_LAPLACIAN)
    # Pillow copies the outermost rows and columns unfiltered; left in, those raw grey levels
    # would dominate the variance of a blurry photo.
    edges = edges.crop((1, 1, edges.width - 1, edges.height - 1))
    variance = ImageStat.Stat(edges).var[0]
    # The Laplacian grows with contrast, so a sharp but faded photocopy would look blurry.
    # Scale the score as if the 1st-99th percentile range were stretched to 0-255.
    low, high = _percentiles(work.histogram(), 0.01, 0.99)
    gain = min(255 / max(high - low, 1), _MAX_CONTRAST_GAIN)
    return float(variance * gain * gain)


def _percentiles(histogram: list[int], low: float, high: float) -> tuple[int, int]:
    total = sum(histogram)
    cumulative = 0
    low_value = 0
    for value, count in enumerate(histogram):
        if cumulative <= total * low:
            low_value = value
        cumulative += count
        if cumulative >= total * high:
            return low_value, value
    return low_value, len(histogram) - 1


def _encode(image: Image.Image, rules: ImageRules) -> CleanDocument:
    image.thumbnail((rules.max_side, rules.max_side), Image.Resampling.LANCZOS)
    # A brand-new image carries pixels only: converted images keep `info` (comment, ICC
    # profile, XMP), which Pillow's JPEG writer would copy into the output.
    fresh = Image.new("RGB", image.size)
    fresh.paste(image)
    buffer = BytesIO()
    fresh.save(buffer, format="JPEG", quality=rules.jpeg_quality, optimize=True)
    return CleanDocument(
        data=buffer.getvalue(), content_type=JPEG, width=fresh.width, height=fresh.height
    )
