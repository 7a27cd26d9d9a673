"""Billing codes: 15 digits with a Damm check digit, behind an interface.

The real code comes from the state revenue system (SIMPONI / MPN G2), which we cannot reach;
`LocalBilling` makes codes of the same shape here. The Damm check digit (python-stdnum) catches
every single mistyped digit and every swap of two neighbouring digits, so a code read over the
phone wrongly is recognised as wrong instead of paying someone else's bill.
"""

from __future__ import annotations

import re
import secrets

from stdnum import damm

from bot.core.ports import BillingProvider as BillingProvider  # the port this module implements

CODE_LENGTH = 15


class LocalBilling:
    """Random 14-digit bodies with a Damm check digit."""

    def new_code(self) -> str:
        """Return a fresh code; the first digit is never 0 so it survives spreadsheets."""
        body = str(secrets.randbelow(9) + 1) + "".join(
            str(secrets.randbelow(10)) for _ in range(CODE_LENGTH - 2)
        )
        return body + damm.calc_check_digit(body)


def clean_code(text: str) -> str:
    """Strip spaces, dots and dashes people type into a code."""
    return re.sub(r"[\s.\-]", "", text)


def is_valid_code(text: str) -> bool:
    """Tell whether a typed code has the right length and check digit."""
    code = clean_code(text)
    return len(code) == CODE_LENGTH and code.isdigit() and damm.is_valid(code)


def group_code(code: str) -> str:
    """Show a code in groups that are easy to read aloud: 8201 1234 5678 901.

    The one grouping everywhere (chat, web chat, agent and office consoles), so what an agent
    reads out looks like what the applicant sees.
    """
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))
