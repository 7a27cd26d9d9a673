"""Identity checks behind an interface: structural now, the population registry later.

Real verification against Dukcapil (the population registry) needs a formal agreement; until
then `StructuralIdentity` checks only what the NIK itself encodes (region code, birth date,
sex) against what the applicant says. It cannot tell an invented NIK of valid structure from a
real one: the defences against invented identities are the verified phone number, the limit of
seats per number, and refusing one photo on several NIKs (README, "What each defence stops").
A deployment with registry access passes its own `IdentityRegistry` to `Loket`.
"""

from __future__ import annotations

from datetime import date

from bot.core.ports import IdentityRegistry as IdentityRegistry  # the port this module implements
from bot.validators import check_nik_matches, parse_nik


class StructuralIdentity:
    """The NIK's own structure (python-stdnum) cross-checked with birth date and sex.

    A local stand-in: it does NOT ask the population registry whether the NIK exists or
    belongs to this person, and says so at start-up.
    """

    def read_nik(self, text: str) -> str:
        """Return the 16-digit NIK typed, or refuse it."""
        return parse_nik(text)

    def check_person(self, nik: str, birth_date: date, sex: str) -> None:
        """Refuse when the NIK's encoded birth date or sex disagrees."""
        check_nik_matches(nik, birth_date, sex)

    def describe(self) -> str:
        """Say that only the NIK's structure is checked."""
        return (
            "local stand-in: NIK structure only (region, birth date, sex), "
            "not checked against the population registry"
        )
