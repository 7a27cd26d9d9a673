"""Read what applicants type; refuse with a specific, translated reason.

Each `parse_*` returns a clean value or raises `Invalid`. They run inside a turn, so the
reason comes out in the user's language.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

import phonenumbers
from babel.dates import get_month_names
from email_validator import EmailNotValidError, validate_email
from stdnum import numdb
from stdnum.id import nik as stdnum_nik

from bot.core.flow import Invalid
from bot.core.messages import excerpt
from bot.i18n import _, format_date

# ---- NIK ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NikParts:
    """The fields encoded in a NIK: PPRRSS DDMMYY XXXX (women add 40 to the day)."""

    province: str
    regency: str
    district: str
    day: int
    month: int
    year2: int
    serial: str

    @property
    def female(self) -> bool:
        """Tell whether the NIK encodes a woman (day + 40)."""
        return self.day > 40

    @property
    def birth_day(self) -> int:
        """Return the day of birth without the +40."""
        return self.day - 40 if self.female else self.day


def split_nik(number: str) -> NikParts:
    """Split a 16-digit NIK into its parts (no validation)."""
    return NikParts(
        province=number[0:2],
        regency=number[2:4],
        district=number[4:6],
        day=int(number[6:8]),
        month=int(number[8:10]),
        year2=int(number[10:12]),
        serial=number[12:16],
    )


def province_name(code: str) -> str | None:
    """Return the province's name for a two-digit code, None when unknown."""
    info = numdb.get("id/loc").info(code)[0][1]
    name = info.get("name_id")
    return str(name) if name else None


def parse_nik(text: str) -> str:
    """Validate a NIK's structure and return its 16 digits."""
    number = stdnum_nik.compact(text)
    if not number.isdigit():
        raise Invalid(_("NIK hanya berisi angka (16 digit), tanpa huruf atau tanda baca."))
    if len(number) != 16:
        raise Invalid(
            _("NIK harus 16 digit, yang Anda ketik {count} digit. Lihat lagi KTP atau KK.").format(
                count=len(number)
            )
        )
    parts = split_nik(number)
    if province_name(parts.province) is None:
        raise Invalid(
            _(
                "Dua digit pertama NIK ({code}) bukan kode provinsi yang dikenal. "
                "Periksa kembali NIK Anda."
            ).format(code=parts.province)
        )
    if not 1 <= parts.month <= 12:
        raise Invalid(
            _("Digit ke-9 dan ke-10 NIK ({month}) seharusnya bulan lahir (01–12).").format(
                month=number[8:10]
            )
        )
    if not (1 <= parts.day <= 31 or 41 <= parts.day <= 71):
        raise Invalid(
            _(
                "Digit ke-7 dan ke-8 NIK ({day}) seharusnya tanggal lahir "
                "(01–31, atau 41–71 untuk perempuan)."
            ).format(day=number[6:8])
        )
    if parts.serial == "0000":
        raise Invalid(_("Empat digit terakhir NIK tidak boleh 0000."))
    try:
        stdnum_nik.validate(number)
    except Exception as error:  # stdnum raises its own ValidationError family
        raise Invalid(_("Tanggal lahir yang tersimpan di NIK tidak ada di kalender.")) from error
    return number


def check_nik_matches(number: str, birth_date: date, sex: str) -> None:
    """Cross-check a NIK with the birth date and sex given; say exactly which part disagrees."""
    parts = split_nik(number)
    problems = []
    if parts.birth_day != birth_date.day:
        problems.append(
            _("tanggal lahir di NIK {nik_day}, sedangkan Anda menulis {day}").format(
                nik_day=f"{parts.birth_day:02d}", day=f"{birth_date.day:02d}"
            )
        )
    if parts.month != birth_date.month:
        problems.append(
            _("bulan lahir di NIK {nik_month}, sedangkan Anda menulis {month}").format(
                nik_month=f"{parts.month:02d}", month=f"{birth_date.month:02d}"
            )
        )
    if parts.year2 != birth_date.year % 100:
        problems.append(
            _("tahun lahir di NIK …{nik_year}, sedangkan Anda menulis {year}").format(
                nik_year=f"{parts.year2:02d}", year=birth_date.year
            )
        )
    if problems:
        raise Invalid(
            _("NIK tidak cocok dengan tanggal lahir {date}: {problems}.").format(
                date=format_date(birth_date, full=False), problems="; ".join(problems)
            )
            + "\n"
            + _("Ketik ulang NIK, atau ubah tanggal lahir bila itu yang keliru."),
            fixes=("birth_date",),
        )
    if parts.female and sex != "F":
        raise Invalid(
            _(
                "NIK ini milik perempuan (tanggal lahir di NIK ditambah 40: {day}), "
                "tetapi jenis kelamin yang dipilih laki-laki."
            ).format(day=f"{parts.day:02d}")
            + "\n"
            + _("Ketik ulang NIK, atau ubah jenis kelamin bila itu yang keliru."),
            fixes=("sex",),
        )
    if not parts.female and sex == "F":
        raise Invalid(
            _(
                "Untuk perempuan, tanggal lahir di NIK ditambah 40 (seharusnya {expected}), "
                "tetapi NIK ini memuat {day}, artinya laki-laki."
            ).format(expected=f"{parts.day + 40:02d}", day=f"{parts.day:02d}")
            + "\n"
            + _("Ketik ulang NIK, atau ubah jenis kelamin bila itu yang keliru."),
            fixes=("sex",),
        )


# ---- names and free text -------------------------------------------------------------------

_NAME_ALLOWED = re.compile(r"^[A-Z][A-Z .,'\-]*$")


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def parse_full_name(text: str) -> str:
    """Return the name in KTP style (upper case, single spaces)."""
    name = _squash(text).upper()
    if len(name) < 2:
        raise Invalid(_("Nama terlalu pendek. Tulis nama lengkap persis seperti di KTP."))
    if len(name) > 100:
        raise Invalid(_("Nama terlalu panjang (maksimal 100 huruf)."))
    if any(ch.isdigit() for ch in name):
        raise Invalid(_("Nama tidak boleh berisi angka. Tulis nama lengkap seperti di KTP."))
    if not _NAME_ALLOWED.match(name):
        raise Invalid(
            _(
                "Nama hanya boleh berisi huruf, spasi, titik, koma, tanda petik (') dan tanda "
                "hubung (-), persis seperti di KTP."
            )
        )
    return name


def parse_place(text: str) -> str:
    """Return a place of birth (a city or regency name)."""
    place = _squash(text)
    if len(place) < 2:
        raise Invalid(_("Tulis nama kota atau kabupaten tempat lahir, misalnya: Bandung."))
    if len(place) > 60:
        raise Invalid(_("Nama tempat lahir terlalu panjang (maksimal 60 huruf)."))
    if any(ch.isdigit() for ch in place):
        raise Invalid(_("Tempat lahir tidak boleh berisi angka. Contoh: Bandung."))
    return place.title()


def parse_address(text: str) -> str:
    """Return a postal address that is long enough to be real."""
    address = _squash(text)
    if len(address) < 10:
        raise Invalid(
            _(
                "Alamat terlalu singkat. Tulis alamat lengkap: jalan dan nomor, RT/RW, "
                "kelurahan, kecamatan, kota."
            )
        )
    if len(address) > 300:
        raise Invalid(_("Alamat terlalu panjang (maksimal 300 karakter)."))
    return address


# ---- dates ---------------------------------------------------------------------------------

_EXTRA_MONTHS = {
    "agt": 8, "ags": 8, "agus": 8, "peb": 2, "nop": 11, "sept": 9, "mart": 3,
}  # fmt: skip


def _month_table() -> dict[str, int]:
    table: dict[str, int] = dict(_EXTRA_MONTHS)
    for locale in ("id", "en"):
        for width in ("wide", "abbreviated"):
            for number, name in get_month_names(width, locale=locale).items():
                table[str(name).casefold().rstrip(".")] = int(number)
    return table


MONTHS = _month_table()
_NUMERIC_DATE = re.compile(r"^(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{2,4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_WORD_DATE = re.compile(r"^(\d{1,2})\s*[- ]\s*([a-z]+)\.?\s*[- ]\s*(\d{2,4})$")


def parse_date(text: str, today: date) -> date:
    """Read a birth date as people type it: 17-08-1990, 17/8/1990, 17 Agustus 1990, 17 agt 1990."""
    typed = _squash(text).casefold().replace(",", " ")
    typed = re.sub(r"\s+", " ", typed).strip()
    example = _("Contoh: 17-08-1990 atau 17 Agustus 1990.")
    if match := _ISO_DATE.match(typed):
        year, month, day = (int(part) for part in match.groups())
    elif match := _NUMERIC_DATE.match(typed):
        day, month, year = (int(part) for part in match.groups())
        if len(match.group(3)) != 4:
            raise Invalid(_("Tulis tahun dengan 4 angka.") + " " + example)
    elif match := _WORD_DATE.match(typed):
        day, year = int(match.group(1)), int(match.group(3))
        month_name = match.group(2)
        if month_name not in MONTHS:
            raise Invalid(
                _('Nama bulan "{month}" tidak dikenal.').format(month=excerpt(match.group(2)))
                + " "
                + example
            )
        month = MONTHS[month_name]
        if len(match.group(3)) != 4:
            raise Invalid(_("Tulis tahun dengan 4 angka.") + " " + example)
    else:
        raise Invalid(_("Format tanggal tidak dikenali.") + " " + example)

    if not 1 <= month <= 12:
        raise Invalid(_("Bulan harus 1 sampai 12.") + " " + example)
    try:
        value = date(year, month, day)
    except ValueError:
        raise Invalid(
            _("Tanggal {day} tidak ada pada bulan tersebut di tahun {year}.").format(
                day=day, year=year
            )
        ) from None
    if value > today:
        raise Invalid(_("Tanggal lahir tidak boleh di masa depan."))
    if today.year - value.year > 120:
        raise Invalid(_("Tahun lahir {year} terlalu jauh. Periksa kembali.").format(year=year))
    return value


_WEEKDAYS = (
    "senin", "selasa", "rabu", "kamis", "jumat", "jum'at", "sabtu", "minggu", "ahad",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "sen", "sel", "rab", "kam", "jum", "sab", "min", "mon", "tue", "wed", "thu", "fri", "sat",
    "sun",
)  # fmt: skip
_DAY_MONTH = re.compile(r"^(\d{1,2})\s*[-/.]\s*(\d{1,2})(?:\s*[-/.]\s*(\d{4}))?$")
_DAY_MONTH_WORD = re.compile(r"^(\d{1,2})\s*[- ]?\s*([a-z]+)\.?(?:\s*[- ]\s*(\d{4}))?$")
RECENT_DAYS = 31  # a typed "20 November" shortly after the 20th means this year's, not next


def parse_coming_date(text: str, today: date) -> date | None:
    """Read a date someone wants to come on: "13 Desember", "Sabtu, 13 Des", "13/12",
    "13-12-2026", "2026-12-13". Without a year it is the next such date (or one that
    just passed); None when the text does not look like a date at all."""
    typed = _squash(text[:80]).casefold().replace(",", " ")
    words = typed.split()
    if words and words[0].rstrip(".") in _WEEKDAYS:
        words = words[1:]
    typed = " ".join(words)
    year: int | None
    if match := _ISO_DATE.match(typed):
        year, month, day = (int(part) for part in match.groups())
    elif match := _DAY_MONTH.match(typed):
        day, month = int(match.group(1)), int(match.group(2))
        year = int(match.group(3)) if match.group(3) else None
    elif match := _DAY_MONTH_WORD.match(typed):
        if match.group(2) not in MONTHS:
            return None
        day, month = int(match.group(1)), MONTHS[match.group(2)]
        year = int(match.group(3)) if match.group(3) else None
    else:
        return None
    if not 1 <= month <= 12:
        raise Invalid(_("Bulan harus 1 sampai 12. Contoh: 13 Desember atau 13/12."))
    candidates = [year] if year is not None else [today.year, today.year + 1]
    for candidate in candidates:
        try:
            value = date(candidate, month, day)
        except ValueError:
            continue
        if year is not None or (today - value).days <= RECENT_DAYS:
            return value
    raise Invalid(
        _("Tanggal {day} tidak ada pada bulan itu. Contoh: 13 Desember atau 13/12.").format(day=day)
    )


def age_on(birth_date: date, today: date) -> int:
    """Return the age in whole years on a given day."""
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - int(before_birthday)


# ---- contact -------------------------------------------------------------------------------


def parse_phone(text: str) -> str:
    """Normalise an Indonesian mobile number (08…, 628…, +628…) to E.164."""
    typed = _squash(text)
    digits = re.sub(r"[\s\-().]", "", typed)
    if digits.startswith("62") and not digits.startswith("+"):
        digits = "+" + digits
    try:
        number = phonenumbers.parse(digits, "ID")
    except phonenumbers.NumberParseException:
        raise Invalid(_("Nomor HP tidak dikenali. Contoh: 0812 3456 7890.")) from None
    if number.country_code != 62:
        raise Invalid(_("Gunakan nomor HP Indonesia (+62). Contoh: 0812 3456 7890."))
    if not phonenumbers.is_valid_number(number):
        raise Invalid(
            _(
                "Nomor {number} tidak valid: periksa jumlah digitnya. Contoh: 0812 3456 7890."
            ).format(number=excerpt(typed))
        )
    kind = phonenumbers.number_type(number)
    if kind not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise Invalid(
            _(
                "Itu nomor telepon rumah atau kantor. Kami perlu nomor HP (diawali 08) untuk "
                "mengirim kabar tentang permohonan Anda."
            )
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_email(text: str) -> str:
    """Return a syntactically valid email address (deliverability is not checked)."""
    try:
        result = validate_email(_squash(text), check_deliverability=False)
    except EmailNotValidError:
        raise Invalid(
            _('Alamat email tidak valid. Contoh: nama@gmail.com. Ketik "lewati" bila tidak ada.')
        ) from None
    return str(result.normalized)


# Providers most applicants use; a domain one or two keystrokes away from one of them is
# probably a typo ("gmail.con", "gmial.com", "yahoo.co.od"). Real domains close to them are
# listed too, so they are never "corrected".
EMAIL_DOMAINS = (
    "gmail.com", "yahoo.com", "yahoo.co.id", "ymail.com", "hotmail.com", "outlook.com",
    "outlook.co.id", "live.com", "icloud.com", "rocketmail.com", "mail.com", "email.com",
    "gmx.com", "aol.com", "googlemail.com", "me.com", "msn.com",
)  # fmt: skip


def suggest_email(address: str) -> str | None:
    """Return the address with a common provider's domain when its domain looks mistyped."""
    local, _at, domain = address.rpartition("@")
    domain = domain.casefold()
    if not local or domain in EMAIL_DOMAINS:
        return None
    close = difflib.get_close_matches(domain, EMAIL_DOMAINS, n=1, cutoff=0.8)
    return f"{local}@{close[0]}" if close else None


# ---- passport ------------------------------------------------------------------------------

_PASSPORT = re.compile(r"^(?:[A-Z]\d{7}|[A-Z]{2}\d{6})$")


def parse_passport_number(text: str) -> str:
    """Return an Indonesian passport number (a letter and 7 digits, or 2 letters and 6)."""
    number = re.sub(r"[\s\-]", "", text).upper()
    if not _PASSPORT.match(number):
        raise Invalid(
            _(
                "Nomor paspor terdiri dari 8 karakter: 1 huruf dan 7 angka (contoh: X1234567) "
                "atau 2 huruf dan 6 angka (contoh: AB123456). Lihat halaman data paspor lama."
            )
        )
    return number


def mask_nik(nik: str) -> str:
    """Show a NIK as staff lists do: its region (4 digits) and serial (4), the birth date and
    the rest hidden, enough to tell two people apart, not to use the number."""
    if len(nik) != 16:
        return "•" * len(nik)
    return nik[:4] + "•" * 8 + nik[-4:]
