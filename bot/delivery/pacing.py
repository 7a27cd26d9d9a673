"""Pacing of sends within an API's limits, across every process (shared state counts)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.core.ports import PaceKeys, SharedState

log = logging.getLogger(__name__)

EDGE = 0.1  # seconds at the end of each second in which no send starts
HEADROOM = 0.05  # share of the overall budget left unused (30 a second: 28 are sent)


class Pacer:
    """Keep one channel's sends under its API's limits, across every process.

    Telegram allows about 30 messages a second overall and about one a second to one chat;
    a sender waits for the next second rather than collect 429s, starts none in a second's
    last tenth, and after a 429 every sender waits out its retry_after. Counters live in shared
    state (Redis at scale), one per second, under `prefix` (one per channel).
    """

    def __init__(
        self,
        shared: SharedState,
        per_second: int,
        per_chat: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        prefix: str = "pace",
    ) -> None:
        self.shared = shared
        # Keep 5% of the overall budget for sends decided in one second that reach the API in
        # the next (a busy machine delays a request by tens of milliseconds or more).
        self.per_second = max(1, per_second - int(per_second * HEADROOM + 0.5))
        self.per_chat = per_chat
        self.clock = clock
        self.sleep = sleep
        self.prefix = prefix
        self.hold_key = f"{prefix}:hold"  # every sender waits until this time after a 429

    def hold_all(self, seconds: float) -> None:
        """Stop every sender for `seconds` (the API answered 429 with this retry_after)."""
        self.shared.set(self.hold_key, str(self.clock() + seconds), seconds + 1)

    def wait(self, chat_id: str) -> None:
        """Return when one more message to `chat_id` fits in the current second."""
        for _attempt in range(600):  # ten minutes at most, then send anyway
            now = self.clock()
            second = int(now)
            # A send decided in a second's last moment reaches the API in the next one.
            late = now - second > 1 - EDGE
            keys = PaceKeys(self.hold_key, f"{self.prefix}:chat:{chat_id}:{second}",
                            f"{self.prefix}:all:{second}")  # fmt: skip
            # One round trip: the hold, then (unless late) both counters.
            paced = self.shared.pace(keys, now, self.per_chat, count=not late)
            if paced.held_until is not None:
                self.sleep(paced.held_until - now)
                continue
            if late:
                self.sleep(second + 1 - now)
                continue
            if paced.chat <= self.per_chat and 0 < paced.overall <= self.per_second:
                return
            self.sleep(second + 1 - now)
        log.warning("pacing gave up waiting")
