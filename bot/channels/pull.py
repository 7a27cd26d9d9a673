"""The pull channels' one path (terminal, web chat, agent console, chat API): a turn hands
back the notices that were waiting for the chat (payment confirmed, hold expired), then the
turn's replies; between turns the door may take what is waiting.

The notices are taken in the turn's own transaction (`Loket.converse`), so a turn that fails
loses none of them. A door whose caller names each event (the chat API's `event_id`) runs the
turn exactly once instead: the key, the turn and its replies (in the outbox) commit together,
and the replies are taken with the notices right after; a repeat answers nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.messages import Inbound, Outbound
from bot.service import Loket


@dataclass(frozen=True)
class Turn:
    """What a pull door shows after one inbound event."""

    messages: list[Outbound] = field(default_factory=list)
    repeated: bool = False  # the event's key was seen: nothing was done again


def take_turn(
    loket: Loket,
    channel: str,
    user_ref: str,
    event: Inbound,
    *,
    actor: int | None = None,
    event_key: str | None = None,
) -> Turn:
    """Run one event for a pull door; return the waiting notices, then the replies."""
    if event_key is None:
        return Turn(loket.converse(channel, user_ref, event, actor=actor))
    if not loket.process(channel, user_ref, event, event_key):
        return Turn(repeated=True)
    return Turn(loket.pending_messages(channel, user_ref))


def take_waiting(loket: Loket, channel: str, user_ref: str) -> list[Outbound]:
    """Take the notices waiting for a chat between turns (a page's poll)."""
    return loket.pending_messages(channel, user_ref)
