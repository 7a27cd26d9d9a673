"""Identity checks behind an interface: structural now, the population registry later.

Real verification against Dukcapil needs a formal agreement; until then `StructuralIdentity`
checks what the NIK itself encodes (region, birth date, sex) against what the applicant says.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from bot.validators import check_nik_matches, parse_nik


class IdentityRegistry(Protocol):
    """Checks a NIK and the person's details; raises `Invalid` with a specific reason."""

    def read_nik(self, text: str) -> str:
        """Return the 16-digit NIK typed, or refuse it."""

    def check_person(self, nik: str, birth_date: date, sex: str) -> None:
        """Refuse when the NIK and the person's details disagree."""


class StructuralIdentity:
    """The NIK's own structure (python-stdnum) cross-checked with birth date and sex."""

    def read_nik(self, text: str) -> str:
        """Return the 16-digit NIK typed, or refuse it."""
        return parse_nik(text)

    def check_person(self, nik: str, birth_date: date, sex: str) -> None:
        """Refuse when the NIK's encoded birth date or sex disagrees."""
        check_nik_matches(nik, birth_date, sex)
