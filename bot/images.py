"""Checking and cleaning document photos: one pipeline for every channel.

An upload is judged by its bytes only (magic bytes, never the file name or the type the channel
declares). Photos are measured from their header before any pixel is decoded, so a small file
that claims enormous dimensions (a decompression bomb) is refused cheaply; then they are
decoded, downscaled, turned upright, checked for darkness and blur and re-encoded as a fresh
JPEG. Re-encoding from pixels is what strips EXIF (GPS position, camera serial), ICC profiles,
comments and anything appended after the end of the original file; what cannot be re-encoded
(a PDF, with its scripts, forms and metadata) is refused, never stored as sent.

Memory is bounded before anything is decoded: the pixels the decoder will produce, times the
bytes a pixel takes in Pillow's memory in that mode, plus every working copy the pipeline makes,
must fit `ImageRules.memory_budget`; a `MemoryBudget` makes the checks of one process share that
budget, admitted first come, first served. `Loket` runs the checks on a few threads of its own
(`LOKET_IMAGE_THREADS`), so the memory one check frees is reused by the next. Checks run
before the turn's database transaction (`Loket` calls `check_upload`), so a slow photo never
holds a lock another applicant waits on. Refusals are worded later, in the turn, in the
applicant's language (`Refusal.reason`).
"""

from __future__ import annotations

import itertools
import logging
import math
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from io import BytesIO
from typing import NoReturn

from babel.numbers import format_decimal
from PIL import Image, ImageFile, ImageFilter, ImageStat

from bot.core.flow import Invalid
from bot.i18n import _, current_locale

log = logging.getLogger(__name__)

JPEG = "image/jpeg"
PNG = "image/png"
PDF = "application/pdf"

# Kept here rather than imported from bot.documents so that module can import this one. PDFs
# are recognised only to tell the applicant what to send instead.
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
    # Memory one check may use (decoded pixels and every working copy, estimated before
    # decoding). A JPEG is decoded at 1/2, 1/4 or 1/8 scale when that is what fits; a photo
    # that does not fit at all (a huge PNG: PNGs cannot be decoded at a smaller scale) is
    # refused. 80 MB takes a 12-megapixel phone photo at full quality, a 40-megapixel one at
    # half scale, and PNGs up to about 15 megapixels (RGB) or 9 (with transparency).
    memory_budget: int = 80 * 1_048_576


@dataclass(frozen=True)
class CleanDocument:
    """An accepted upload, ready to store: re-encoded bytes and what they are."""

    data: bytes
    content_type: str
    width: int | None
    height: int | None
    # 64-bit difference hash of the cleaned photo (see `difference_hash`), for near-copies.
    phash: int | None = None
    # NIKs of other applications holding a personal document photo near this one; filled by
    # the service before the turn (a read, outside the turn's transaction).
    twins: tuple[str, ...] = ()


class Refusal(Exception):
    """An upload refused; the reason is worded when shown, in the applicant's language.

    Checks run before the turn knows the conversation's language or which document is asked
    for, so a refusal carries a function that words it, given the document's name.
    """

    def __init__(self, word: Callable[[str], str]) -> None:
        super().__init__("upload refused")
        self._word = word

    def reason(self, document: str | None = None) -> str:
        """Return the refusal in the current language, naming the document if it matters."""
        return self._word(document or _("dokumen"))


class MemoryBudget:
    """Bytes the image checks of one process may use at once; checks are admitted in order.

    A check asks for what its estimate says it needs (never more than the whole budget), so
    one huge photo runs alone while small ones run side by side. Admission is first come,
    first served: each check takes a ticket, and only the oldest waiting ticket may start, so
    a large photo waiting for the whole budget is not overtaken forever by smaller ones that
    would fit beside the checks running now.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._queue: deque[int] = deque()  # tickets of the waiting checks, oldest first
        self._tickets = itertools.count()
        self._changed = threading.Condition()

    @property
    def used(self) -> int:
        """Return the bytes held by the checks running now."""
        return self._used

    @property
    def waiting(self) -> int:
        """Return how many checks wait for their share."""
        return len(self._queue)

    @contextmanager
    def hold(self, cost: int) -> Iterator[None]:
        """Wait for every earlier check to start and for `cost` bytes to be free, hold them
        for the block, then give them back."""
        cost = min(cost, self.limit)
        with self._changed:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            self._changed.notify_all()  # whoever watches the queue sees it grow
            try:
                self._changed.wait_for(
                    lambda: self._queue[0] == ticket and self._used + cost <= self.limit
                )
            finally:
                self._queue.remove(ticket)
                # The next ticket may fit beside this one: let it look.
                self._changed.notify_all()
            self._used += cost
        try:
            yield
        finally:
            with self._changed:
                self._used -= cost
                self._changed.notify_all()


def _megabytes(size: int, pattern: str) -> str:
    return format_decimal(size / 1_048_576, format=pattern, locale=current_locale())


def check_declared_size(size: int | None, rules: ImageRules) -> None:
    """Refuse before downloading when the channel already tells the file is too large."""
    if size is not None and size > rules.max_bytes:
        raise Invalid(_size_refusal(size, rules).reason())


def _size_refusal(size: int, rules: ImageRules) -> Refusal:
    return Refusal(
        lambda _document: _(
            "Ukuran file {size} MB, melebihi batas {limit} MB. Kirim foto yang lebih kecil."
        ).format(size=_megabytes(size, "#,##0.0"), limit=_megabytes(rules.max_bytes, "#,##0.#"))
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


def check_upload(
    data: bytes,
    rules: ImageRules,
    declared_size: int | None = None,
    budget: MemoryBudget | None = None,
) -> CleanDocument | Refusal:
    """Check an upload and return it cleaned, or the refusal to show; decodes within `budget`.

    This is the slow part of accepting a document (decoding, measuring, re-encoding): callers
    run it before opening the turn's transaction.
    """
    try:
        if declared_size is not None and declared_size > rules.max_bytes:
            raise _size_refusal(declared_size, rules)
        if len(data) > rules.max_bytes:
            raise _size_refusal(len(data), rules)
        content_type = sniff_type(data)
        if content_type == PDF:
            # A PDF can carry scripts, forms, attachments and metadata (a NIK, a position);
            # only what we re-encode is stored, and we re-encode photos only.
            raise Refusal(
                lambda _document: _(
                    "File PDF tidak bisa kami terima. Foto dokumennya dengan kamera ponsel, "
                    "lalu kirim fotonya (JPEG atau PNG)."
                )
            )
        if content_type is None:
            raise Refusal(lambda _document: _("File ini bukan foto JPEG/PNG. Kirim foto dokumen."))
        return _clean_photo(data, content_type, rules, budget)
    except Refusal as refusal:
        return refusal


def clean_document(
    data: bytes, rules: ImageRules, document: str | None = None, budget: MemoryBudget | None = None
) -> CleanDocument:
    """Check an upload and return it cleaned, or raise Invalid with how to retake it."""
    checked = check_upload(data, rules, budget=budget)
    if isinstance(checked, Refusal):
        raise Invalid(checked.reason(document))
    return checked


def _refuse_pixels(width: int, height: int, rules: ImageRules) -> NoReturn:
    raise Refusal(
        lambda _document: _(
            "Gambar terlalu besar ({width}×{height} piksel). Batasnya {limit} megapiksel; "
            "kirim foto biasa dari kamera ponsel."
        ).format(width=width, height=height, limit=rules.max_pixels // 1_000_000)
    )


def _refuse_memory(width: int, height: int) -> NoReturn:
    raise Refusal(
        lambda _document: _(
            "Gambar terlalu besar untuk diperiksa ({width}×{height} piksel). Kirim sebagai "
            "foto biasa (JPEG) dari kamera ponsel, bukan file PNG atau hasil pindai beresolusi "
            "tinggi."
        ).format(width=width, height=height)
    )


def _refuse_damaged() -> NoReturn:
    raise Refusal(
        lambda _document: _(
            "File foto rusak atau tidak lengkap. Ambil ulang foto dokumen, lalu kirim lagi."
        )
    )


# ---- memory ------------------------------------------------------------------------------

# Bytes a pixel takes in Pillow's memory, which is not the file's depth: Pillow keeps RGB (and
# YCbCr, LAB, HSV) in 4 bytes (RGBX), LA and PA in 4, a 1-bit image in 1.
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_DEFAULT_PIXEL_BYTES = 4

# Decoder buffers (libjpeg, zlib), the blur measure's 1024-pixel copies and the JPEG writer's
# own buffers: a fixed allowance on top of the images themselves.
_OVERHEAD = 12 * 1_048_576

# Output rows resized at a time (`_fit`): the resize's intermediate image stays a thin band.
_BAND_ROWS = 128

_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _pixel_bytes(mode: str) -> int:
    return _PIXEL_BYTES.get(mode, _DEFAULT_PIXEL_BYTES)


def _route(mode: str, transparent: bool) -> tuple[str, ...]:
    """Return the conversions that turn a decoded image into L or RGB on a white page."""
    if mode in ("L", "RGB"):
        return ()
    if mode == "1":
        return ("L",)
    if mode == "P":
        return ("RGBA", "flatten") if transparent else ("RGB",)
    if mode == "RGBA":
        return ("flatten",)
    if mode in ("LA", "La", "PA", "RGBa"):
        return ("RGBA", "flatten")
    if mode.startswith("I;16"):
        return ("I", "scale16", "L")
    if mode in ("I", "F"):
        return ("scale16", "L")
    return ("RGB",)  # CMYK, YCbCr, LAB, HSV


_STEP_MODES = {"L": "L", "RGB": "RGB", "RGBA": "RGBA", "flatten": "RGB", "I": "I",
               "scale16": "I", }  # fmt: skip


def _convert(image: Image.Image, step: str) -> Image.Image:
    if step == "flatten":
        # Transparent areas become white paper, not whatever colour hides under the alpha;
        # the image is its own mask (its alpha band), so no extra copy of the alpha is made.
        flattened = Image.new("RGB", image.size, (255, 255, 255))
        flattened.paste(image, mask=image)
        return flattened
    if step == "scale16":
        # 16-bit grayscale: scale to 8 bits rather than clip every light pixel to white.
        return image.point(lambda value: value / 256)
    return image.convert(step)


def _reduction(size: tuple[int, int], max_side: int) -> int:
    """Return the integer factor `reduce` shrinks by before the final resize (1: none)."""
    return max(1, max(size) // max_side)


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _estimate(
    mode: str, size: tuple[int, int], transparent: bool, rules: ImageRules, coefficients: int = 0
) -> int:
    """Return the most memory the pipeline holds at once for an image decoded at `size`.

    Mirrors `_decode_and_fit` and the checks: each step holds its input and its output, and
    drops the input before the next step.
    """
    pixels = size[0] * size[1]
    held = peak = _pixel_bytes(mode)
    for step in _route(mode, transparent):
        following = _pixel_bytes(_STEP_MODES[step])
        peak = max(peak, held + following)
        held = following
    peak_bytes = peak * pixels + coefficients  # libjpeg's coefficients live while decoding
    base = held  # 1 (L) or 4 (RGB) bytes a pixel
    factor = _reduction(size, rules.max_side)
    reduced = (math.ceil(size[0] / factor), math.ceil(size[1] / factor))
    reduced_bytes = reduced[0] * reduced[1] * base
    if factor > 1:
        peak_bytes = max(peak_bytes, pixels * base + reduced_bytes)
    out = _fitted(reduced, rules.max_side)
    out_bytes = out[0] * out[1] * base
    if out != reduced:
        ratio = reduced[1] / out[1]
        band = out[0] * (math.ceil(_BAND_ROWS * ratio) + 8) * base
        peak_bytes = max(peak_bytes, reduced_bytes + out_bytes + band)
    # Turned upright (a copy), then the checks (a grayscale copy) and the encoder: the kept
    # image, its RGB copy for a grayscale photo, the fresh copy saved, and libjpeg's
    # coefficients for `optimize` (2 bytes a sample, 1.5 samples a pixel at 4:2:0).
    out_pixels = out[0] * out[1]
    peak_bytes = max(peak_bytes, 2 * out_bytes, out_bytes + out_pixels)
    encode = out_bytes + (4 * out_pixels if base == 1 else 0) + 4 * out_pixels + 3 * out_pixels
    return max(peak_bytes, encode) + _OVERHEAD


def _jpeg_coefficients(opened: Image.Image, data: bytes) -> int:
    """Return the bytes libjpeg buffers for a progressive or multi-scan JPEG (else 0).

    Such files are decoded in several passes over the whole image, so libjpeg keeps every DCT
    coefficient (2 bytes a sample, at full resolution whatever the draft scale).
    """
    progressive = "progressive" in opened.info
    if not progressive and data.count(b"\xff\xda") <= 1:  # one start-of-scan: sequential
        return 0
    layers: list[tuple[str, int, int, int]] = getattr(opened, "layer", None) or [
        ("", 1, 1, 0)
    ] * len(opened.getbands())
    h_max = max(layer[1] for layer in layers) or 1
    v_max = max(layer[2] for layer in layers) or 1
    width, height = opened.size
    samples = sum(
        math.ceil(width * layer[1] / h_max / 8) * 8 * math.ceil(height * layer[2] / v_max / 8) * 8
        for layer in layers
    )
    return int(2 * samples)


def _plan(opened: Image.Image, data: bytes, content_type: str, rules: ImageRules) -> int:
    """Choose how to decode (a JPEG's draft scale) and return the memory that will take."""
    transparent = "transparency" in opened.info
    if content_type != JPEG:
        return _estimate(opened.mode, opened.size, transparent, rules)
    coefficients = _jpeg_coefficients(opened, data)
    width, height = opened.size
    # The largest scale (1/1, 1/2, 1/4, 1/8) whose result still reaches max_side keeps every
    # pixel we store; a smaller one is taken only when that would not fit the budget.
    scale = 1
    while scale < 8 and max(width, height) // (scale * 2) >= rules.max_side:
        scale *= 2

    def at(scale: int) -> tuple[int, int]:
        return math.ceil(width / scale), math.ceil(height / scale)

    while scale < 8 and (
        _estimate(opened.mode, at(scale), transparent, rules, coefficients) > rules.memory_budget
    ):
        scale *= 2
    if scale > 1:
        opened.draft(None, (width // scale, height // scale))
    return _estimate(opened.mode, opened.size, transparent, rules, coefficients)


# ---- the pipeline ------------------------------------------------------------------------


def _clean_photo(
    data: bytes, content_type: str, rules: ImageRules, budget: MemoryBudget | None
) -> CleanDocument:
    # First guard: our own reading of the header, before Pillow parses anything.
    declared = header_size(data, content_type)
    if declared is not None and declared[0] * declared[1] > rules.max_pixels:
        _refuse_pixels(*declared, rules)
    try:
        # Image.open is lazy: it reads the header only. Pillow's own decompression-bomb check
        # (Image.MAX_IMAGE_PIXELS, left at its default on purpose: other modules open images
        # too) runs here as a second guard; its error is caught below. With the default rules
        # its warning cannot fire, our lower limit having refused such files above.
        opened = Image.open(BytesIO(data), formats=[_PILLOW_FORMATS[content_type]])
        width, height = opened.size
        # Third guard: the size Pillow would actually allocate, should it disagree with ours.
        if width * height > rules.max_pixels:
            _refuse_pixels(width, height, rules)
        # Checked before decoding, on the header size: the rule looks at the longer and
        # the shorter side, so the EXIF orientation cannot change its outcome.
        _check_resolution(width, height, rules)
        cost = _plan(opened, data, content_type, rules)
    except Refusal:
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
    # Fourth guard: what decoding and every copy after it would cost, before any pixel.
    if cost > rules.memory_budget:
        _refuse_memory(width, height)
    # Handed over in a list so that no name here keeps the full-size pixels alive once the
    # pipeline has moved on to a smaller copy.
    undecoded = [opened]
    del opened
    with budget.hold(cost) if budget is not None else nullcontext():
        image = _decode_and_fit(undecoded, content_type, rules)
        gray = image if image.mode == "L" else image.convert("L")
        if ImageStat.Stat(gray).mean[0] < rules.dark_threshold:
            raise Refusal(
                lambda _document: _(
                    "Foto terlalu gelap. Ambil ulang di tempat yang terang, tanpa bayangan."
                )
            )
        if blur_score(gray) < rules.blur_threshold:
            raise Refusal(
                lambda document: _(
                    "Foto buram. Pegang ponsel dengan stabil, pastikan {document} terlihat "
                    "seluruhnya dan tajam, lalu foto ulang."
                ).format(document=document)
            )
        phash = difference_hash(gray)
        del gray
        return replace(_encode(image, rules), phash=phash)


def _decode_and_fit(
    undecoded: list[ImageFile.ImageFile], content_type: str, rules: ImageRules
) -> Image.Image:
    """Decode, then make the photo small (at most max_side), white-backed and upright.

    Every step rebinds `image`, so each full-size copy is dropped as soon as the next exists.
    """
    image: Image.Image = undecoded.pop()
    try:
        # Truncated files raise here (ImageFile.LOAD_TRUNCATED_IMAGES stays False).
        image.load()
        # Read once decoded: a PNG's EXIF may follow its pixels, and Pillow would decode the
        # whole image to find it.
        orientation = int(image.getexif().get(_ORIENTATION, 1))
        transparent = "transparency" in image.info
        for step in _route(image.mode, transparent):
            image = _convert(image, step)
        image = _fit(image, rules.max_side)
        transpose = _TRANSPOSE.get(orientation)
        if transpose is not None:
            image = image.transpose(transpose)
    except Exception as error:
        log.info("refused a damaged %s upload: %r", content_type, error)
        _refuse_damaged()
    return image


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink so the longer side is at most max_side: a box `reduce` by a whole factor, then a
    Lanczos resize in bands of rows, so no full-height intermediate image is ever made."""
    factor = _reduction(image.size, max_side)
    if factor > 1:
        image = image.reduce(factor)
    size = _fitted(image.size, max_side)
    if size == image.size:
        return image
    out = Image.new(image.mode, size)
    ratio = image.height / size[1]
    for top in range(0, size[1], _BAND_ROWS):
        bottom = min(top + _BAND_ROWS, size[1])
        box = (0.0, top * ratio, float(image.width), bottom * ratio)
        out.paste(
            image.resize((size[0], bottom - top), Image.Resampling.LANCZOS, box=box), (0, top)
        )
    return out


def _check_resolution(width: int, height: int, rules: ImageRules) -> None:
    if max(width, height) < rules.min_width or min(width, height) < rules.min_height:
        raise Refusal(
            lambda _document: _(
                "Foto terlalu kecil ({width}×{height} piksel). Minimal {min_width}×{min_height}. "
                "Kirim foto asli dari kamera, bukan tangkapan layar atau gambar yang diperkecil."
            ).format(
                width=width,
                height=height,
                min_width=rules.min_width,
                min_height=rules.min_height,
            )
        )


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


# Photos whose hashes differ in at most this many bits are the same photo: then they share one
# of the hash's 8 bands of 8 bits exactly (pigeonhole), which storage looks up by index.
NEAR_DISTANCE = 7


def difference_hash(gray: Image.Image) -> int:
    """Return the 64-bit difference hash (dHash) of a grayscale image.

    The image is averaged down to 9x8 cells; each bit tells whether a cell is brighter than
    its right-hand neighbour. Re-encoding, brightening and trimming a few percent of the
    edges change few bits; a different page changes about half of them.
    """
    cells = gray.resize((9, 8), Image.Resampling.BOX).tobytes()
    bits = 0
    for row in range(8):
        for column in range(8):
            bits = bits << 1 | (cells[row * 9 + column] > cells[row * 9 + column + 1])
    return bits


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
    # A brand-new image carries pixels only: converted images keep `info` (comment, ICC
    # profile, XMP), which Pillow's JPEG writer would copy into the output.
    fresh = Image.new("RGB", image.size)
    fresh.paste(image)
    del image
    buffer = BytesIO()
    fresh.save(buffer, format="JPEG", quality=rules.jpeg_quality, optimize=True)
    return CleanDocument(
        data=buffer.getvalue(), content_type=JPEG, width=fresh.width, height=fresh.height
    )
