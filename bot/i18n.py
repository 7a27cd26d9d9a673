"""Translation and locale-aware formatting.

Message ids are Indonesian literals (`_("Halo, {name}").format(name=...)`). The `.po` files in
`bot/locales/` are the source of truth; they are compiled in memory when first used, so there is
no stale `.mo` to forget. The locale of the current turn lives in a context variable set by the
engine with `use_locale`.
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import date, datetime
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.dates import format_date as _babel_format_date
from babel.dates import format_time as _babel_format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import get_group_symbol

LOCALES_DIR = Path(__file__).parent / "locales"
SUPPORTED_LOCALES = ("id", "en")
DEFAULT_LOCALE = "id"
DOMAIN = "messages"

_current_locale: ContextVar[str] = ContextVar("loket_locale", default=DEFAULT_LOCALE)


@cache
def translations(locale: str) -> _gettext.NullTranslations:
    """Load and compile the catalog of one locale (cached for the process)."""
    po_path = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_path.exists():
        return _gettext.NullTranslations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=locale)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


def current_locale() -> str:
    """Return the locale of the turn being handled."""
    return _current_locale.get()


@contextmanager
def use_locale(locale: str) -> Iterator[None]:
    """Translate everything inside the block into `locale`."""
    token = _current_locale.set(locale if locale in SUPPORTED_LOCALES else DEFAULT_LOCALE)
    try:
        yield
    finally:
        _current_locale.reset(token)


def set_locale(locale: str) -> Token[str]:
    """Translate into `locale` until `reset_locale` (for a web request's lifetime)."""
    return _current_locale.set(locale if locale in SUPPORTED_LOCALES else DEFAULT_LOCALE)


def reset_locale(token: Token[str]) -> None:
    """Undo `set_locale`."""
    _current_locale.reset(token)


def gettext(message: str) -> str:
    """Translate one message id into the current locale."""
    return translations(current_locale()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """Translate a message with a plural form into the current locale."""
    return translations(current_locale()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Mark a module-level message id for extraction; translate it later with `_`."""
    return message


def resolve_locale(chosen: str | None, channel_language: str | None) -> str:
    """Pick the user's own choice, else the channel's language code, else Indonesian."""
    if chosen in SUPPORTED_LOCALES:
        return chosen
    if channel_language:
        base = channel_language.replace("_", "-").split("-")[0].lower()
        if base in SUPPORTED_LOCALES:
            return base
    return DEFAULT_LOCALE


def format_date(value: date, *, full: bool = True) -> str:
    """Format a date as people write it in the current locale ("Sabtu, 28 November 2026")."""
    return _babel_format_date(value, format="full" if full else "long", locale=current_locale())


def format_time(value: datetime) -> str:
    """Format a wall-clock time in the current locale (24-hour in Indonesian)."""
    return _babel_format_time(value, format="HH:mm", locale=current_locale())


@cache
def _group_symbol(locale: str) -> str:
    return get_group_symbol(locale)


def format_count(value: int) -> str:
    """Write a whole number with the locale's digit groups ("1.234"; "1,234" in English): what
    babel's "#,##0" pattern gives, without parsing the pattern on every call (queue numbers
    are written at release, thousands a second)."""
    grouped = f"{abs(value):,}".replace(",", _group_symbol(current_locale()))
    return "-" + grouped if value < 0 else grouped


def format_money(amount: int) -> str:
    """Format rupiah as Indonesians write it ("Rp350.000"; "Rp350,000" in English)."""
    return "Rp" + format_count(amount)
