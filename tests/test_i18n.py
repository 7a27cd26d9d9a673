"""Every message the code can show has an Indonesian and an English translation."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from bot.i18n import (
    LOCALES_DIR,
    format_count,
    format_date,
    format_money,
    resolve_locale,
    use_locale,
)

BOT_DIR = Path(__file__).resolve().parent.parent / "bot"
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def source_message_ids() -> set[str]:
    """Extract message ids from the code exactly as `python -m bot i18n` does."""
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(BOT_DIR), method_map=[("**.py", "python")], keywords=KEYWORDS
    ):
        found.update([message] if isinstance(message, str) else [m for m in message if m])
    return found


def catalog(locale: str) -> dict[str, str]:
    """Read one catalog as {msgid: msgstr}, leaving out fuzzy entries."""
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as po_file:
        parsed = read_po(po_file, locale=locale)
    return {
        str(message.id): str(message.string)
        for message in parsed
        if message.id and message.string and not message.fuzzy
    }


def test_source_has_messages() -> None:
    assert len(source_message_ids()) > 150


@pytest.mark.parametrize("locale", ["id", "en"])
def test_every_message_is_translated(locale: str) -> None:
    translated = catalog(locale)
    missing = sorted(source_message_ids() - translated.keys())
    assert not missing, f"{locale}: {len(missing)} untranslated, e.g. {missing[:5]}"


@pytest.mark.parametrize("locale", ["id", "en"])
def test_translations_keep_placeholders(locale: str) -> None:
    for message_id, translation in catalog(locale).items():
        assert sorted(PLACEHOLDER.findall(message_id)) == sorted(
            PLACEHOLDER.findall(translation)
        ), f"{locale}: placeholders differ in {message_id!r}"


def test_english_differs_from_indonesian() -> None:
    english = catalog("en")
    same = [m for m, t in english.items() if m == t and len(m) > 20]
    assert not same, f"untranslated copies in en: {same[:5]}"


def test_money_and_dates_follow_the_locale() -> None:
    with use_locale("id"):
        assert format_money(350_000) == "Rp350.000"
        assert format_date(date(2026, 11, 28)) == "Sabtu, 28 November 2026"
    with use_locale("en"):
        assert format_money(1_950_000) == "Rp1,950,000"
        assert format_date(date(2026, 11, 28)) == "Saturday, November 28, 2026"


@pytest.mark.parametrize("locale", ["id", "en"])
@pytest.mark.parametrize("value", [0, 7, 999, 1_000, 20_000, 1_234_567, -4_321])
def test_counts_are_grouped_as_babel_groups_them(locale: str, value: int) -> None:
    with use_locale(locale):
        assert format_count(value) == format_decimal(value, format="#,##0", locale=locale)


@pytest.mark.parametrize(
    ("chosen", "channel", "expected"),
    [("en", "id", "en"), (None, "en-US", "en"), (None, "id", "id"), (None, "ru", "id"),
     (None, None, "id"), ("id", "en", "id")],
)  # fmt: skip
def test_locale_resolution(chosen: str | None, channel: str | None, expected: str) -> None:
    assert resolve_locale(chosen, channel) == expected
