"""Log failures without their messages: database errors quote rows (a NIK, a name).

PostgreSQL puts the failing row or key into its error text ("Key (nik)=(...) already exists"),
whatever the driver hides. Error boundaries log the exception's type and where it happened,
never its message.
"""

from __future__ import annotations

import logging
import traceback


def log_failure(logger: logging.Logger, what: str, error: BaseException) -> None:
    """Log that `what` failed, with the exception type and stack frames but not its text."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    cause = error.__cause__ or error.__context__
    chain = f" (from {type(cause).__name__})" if cause is not None else ""
    logger.error("%s: %s%s\n%s", what, type(error).__name__, chain, frames.rstrip())
