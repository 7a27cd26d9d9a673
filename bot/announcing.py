"""`python -m bot announce`: queue an office's announcement and show its delivery's progress."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

from sqlalchemy import select

from bot.flows.subscription import announcement_payload
from bot.service import Loket
from storage.models import Office
from storage.subscriptions import announce, announcement_progress

ANNOUNCEMENT_MIN, ANNOUNCEMENT_MAX = 10, 800
BAR = 30


def progress_line(progress: dict[str, Any]) -> str:
    """Render one progress line: a bar, the counts, the rate and the estimated finish."""
    total = progress["recipients"] or 1
    done = progress["sent"] + progress["failed"]
    filled = BAR * done // total
    finish = progress["finish_at"][11:19] + " UTC" if progress["finish_at"] else "-"
    return (f"[{'#' * filled}{'.' * (BAR - filled)}] {done}/{progress['recipients']} "
            f"sent {progress['sent']} failed {progress['failed']} left {progress['remaining']} "
            f"{progress['per_second']}/s finish {finish}")  # fmt: skip


def watch(loket: Loket, announcement_id: int, out: TextIO, stop: threading.Event) -> dict[str, Any]:
    """Redraw the progress line until the delivery is done (or `stop` is set)."""
    while True:
        with loket.sessions() as session:
            progress = announcement_progress(session, announcement_id, loket.now(session))
        out.write("\r" + progress_line(progress))
        out.flush()
        if progress["done"] or stop.is_set():
            out.write("\n")
            return progress
        time.sleep(0.5)


def announce_from_cli(loket: Loket, office_code: str, text: str, watch_only: bool) -> int:
    """Queue the announcement, send it here when Telegram is configured (else the worker
    does), show progress on stderr, and print the final counts as JSON on stdout."""
    text = text.strip()
    if not ANNOUNCEMENT_MIN <= len(text) <= ANNOUNCEMENT_MAX:
        print(f"announce: the text must be {ANNOUNCEMENT_MIN} to {ANNOUNCEMENT_MAX} characters",
              file=sys.stderr)  # fmt: skip
        return 2
    with loket.sessions() as session, session.begin():
        office = session.execute(
            select(Office).where(Office.code == office_code)
        ).scalar_one_or_none()
        if office is None:
            print(f"announce: no office {office_code!r}", file=sys.stderr)
            return 2
        entry = announce(session, office.id, None, text, loket.now(session), announcement_payload)
        announcement_id = entry.id
    stop = threading.Event()
    from bot.runtime import build_channels

    sender = None
    channels = [] if watch_only else build_channels(loket)
    if channels:

        def send() -> None:
            try:
                while not stop.is_set() and sum(c.deliver_pending() for c in channels) > 0:
                    pass
            finally:
                stop.set()  # what is left (flood control, retries) is the worker's
                for channel in channels:
                    channel.close()

        sender = threading.Thread(target=send, name="announce-send", daemon=True)
        sender.start()
    progress = watch(loket, announcement_id, sys.stderr, stop)
    if sender is not None:
        stop.set()
        sender.join(timeout=60)
    print(json.dumps(progress))
    return 0
