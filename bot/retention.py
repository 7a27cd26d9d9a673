"""Retention of personal data (UU PDP): the daily job the worker runs and `python -m bot
retention` runs by hand. Counts only in its report and its log line, never personal data."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import timedelta

from bot.core.ports import BlobStore
from bot.service import Loket
from bot.settings import Settings
from storage.privacy import Retention, referenced_photo_keys, retention_round

log = logging.getLogger(__name__)

DONE_KEY = "retention:done"  # shared state: set for a day after a round ran
DAY_SECONDS = 24 * 3600


def retention_of(settings: Settings) -> Retention:
    """The retention periods these settings ask for."""
    return Retention(
        documents=timedelta(days=settings.retention_document_days),
        applications=timedelta(days=settings.retention_application_days),
        conversations=timedelta(days=settings.retention_conversation_days),
    )


def delete_photos(blobs: BlobStore, keys: Iterable[str]) -> int:
    """Delete photo files from the document store; return how many were there."""
    return sum(1 for key in sorted(keys) if blobs.delete(key))


def run_retention(loket: Loket, wall_clock: float | None = None) -> dict[str, int]:
    """Run one retention round and delete the photo files it freed, after its commit.

    Photo files that no application or registration in progress uses (an abandoned
    registration, a cancelled one) are deleted too once older than a day by their file time
    (`wall_clock`, the real time, for the files' own times are real).
    """
    keep = retention_of(loket.settings)
    with loket.sessions() as session, session.begin():
        done = retention_round(session, loket.now(session), keep)
    counts = {name: number for name, number in sorted(done.counts.items())}
    counts["photo_files_deleted"] = delete_photos(loket.blobs, done.blob_keys)
    with loket.sessions() as session:
        referenced = referenced_photo_keys(session)
    oldest = (
        time.time() if wall_clock is None else wall_clock
    ) - keep.orphan_photos.total_seconds()
    orphans = [
        key
        for key in loket.blobs.stored_keys()
        if key not in referenced and (loket.blobs.stored_at(key) or oldest) < oldest
    ]
    counts["orphan_photo_files_deleted"] = delete_photos(loket.blobs, orphans)
    log.info("retention %s", counts)
    return counts


def run_daily(loket: Loket) -> dict[str, int] | None:
    """Run retention when no process ran it in the last day (the worker calls this each
    round); None when it was not due."""
    if loket.shared.get(DONE_KEY) is not None:
        return None
    loket.shared.set(DONE_KEY, "1", DAY_SECONDS)
    return run_retention(loket)
