"""Maintain the message catalogs: `python -m bot i18n` extracts, updates and checks them.

Message ids are Indonesian, so the `id` catalog's translations start as copies of the ids
(edit them freely to polish wording); `en` translations are written by hand in its `.po`.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po, write_po

from bot.i18n import DOMAIN, LOCALES_DIR, SUPPORTED_LOCALES

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = LOCALES_DIR / f"{DOMAIN}.pot"
KEYWORDS = ["-k", "N_", "-k", "_", "-k", "gettext", "-k", "ngettext:1,2"]


def po_path(locale: str) -> Path:
    """Return the path of one locale's catalog."""
    return LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def load(locale: str) -> Catalog:
    """Read one locale's catalog."""
    with po_path(locale).open("rb") as po_file:
        return read_po(po_file, locale=locale)


def pybabel(args: list[str]) -> None:
    """Run one pybabel command in this process."""
    CommandLineInterface().run(args)  # type: ignore[no-untyped-call]


def extract() -> None:
    """Extract message ids from the source into the template."""
    pybabel(
        ["pybabel", "-q", "extract", "--no-location", "--sort-output",
         "-F", str(ROOT / "babel.cfg"), *KEYWORDS, "-o", str(TEMPLATE), str(ROOT / "bot")]
    )  # fmt: skip


def update() -> None:
    """Merge the template into each catalog, creating missing ones."""
    for locale in SUPPORTED_LOCALES:
        action = "update" if po_path(locale).exists() else "init"
        args = ["pybabel", "-q", action, "-i", str(TEMPLATE), "-d", str(LOCALES_DIR),
                "-l", locale, "-D", DOMAIN]  # fmt: skip
        if action == "update":
            args += ["--no-fuzzy-matching", "--ignore-obsolete"]
        pybabel(args)


def fill_source_locale() -> None:
    """Copy Indonesian message ids into empty `id` translations."""
    catalog = load("id")
    for message in catalog:
        if message.id and not message.string:
            message.string = message.id
    with po_path("id").open("wb") as po_file:
        write_po(po_file, catalog, width=0, omit_header=False)


def missing(locale: str) -> list[str]:
    """Return the message ids without a translation in one locale."""
    catalog = load(locale)
    return [
        str(message.id)
        for message in catalog
        if message.id and (not message.string or message.fuzzy)
    ]


def main() -> int:
    """Extract, update, fill `id`, and report what `en` still lacks."""
    extract()
    update()
    fill_source_locale()
    untranslated = missing("en")
    for message_id in untranslated:
        print(f"en: untranslated: {message_id!r}")
    return 1 if untranslated else 0
