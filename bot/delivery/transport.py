"""What a push channel must do for the delivery layer: the `Transport` interface.

The delivery layer (`bot.delivery.layer.Delivery`) owns everything that is the same on every
push channel: the inbox drain (in order per chat, repeats folded, stale taps, retries and
set-aside), the outbox claim and flush (failure counting, backoff, set-aside, inactive chats)
and pacing. A transport only translates: a raw accepted payload into an `Incoming`, an engine
message into its own payloads, and calls its API. It raises the errors below so the layer can
decide what to do without knowing the API.

Outbox rows keep the engine's neutral payloads (`Outbound.to_payload()` plus `locale`, and
`answer_tap` / `edit` when a tap's turn was shaped); a transport renders them at send time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from bot.core.messages import Inbound, Outbound


class Unreadable(ValueError):
    """A payload we cannot read: set aside at once, never retried. The reason names the
    shape, never the content; `ref` is what may be logged to find it (an update id)."""

    def __init__(self, reason: str, ref: str | int | None = None) -> None:
        super().__init__(reason)
        self.ref = ref


MAX_DEPTH = 24  # real payloads nest about 8-9 deep (Telegram's callbacks, WhatsApp's entries)


def checked_tree(value: Any, depth: int = 0) -> None:
    """Check a parsed payload is plain, shallow JSON whose texts are valid Unicode; raise
    `Unreadable` otherwise (a channel's reader calls this before reading any field)."""
    if depth > MAX_DEPTH:
        raise Unreadable("nested too deeply")
    if isinstance(value, dict):
        for item in value.values():
            checked_tree(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            checked_tree(item, depth + 1)
    elif isinstance(value, str) and ("\x00" in value or _lone_surrogate(value)):
        raise Unreadable("text that is not valid Unicode")


def _lone_surrogate(text: str) -> bool:
    """True for a lone surrogate (JSON allows `\\ud800`, UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def expect_object(value: Any, what: str) -> dict[str, Any]:
    """Return a payload's field if it is a JSON object; raise `Unreadable` naming it if not."""
    if not isinstance(value, dict):
        raise Unreadable(f"{what} is not an object")
    return value


def expect_text(value: Any, what: str) -> str:
    """Return a payload's field if it is a string; raise `Unreadable` naming it if not."""
    if not isinstance(value, str):
        raise Unreadable(f"{what} is not a string")
    return value


class TransportError(Exception):
    """A call to the transport's API failed; the subclass says what the layer should do."""


class RetryLater(TransportError):
    """Try again later (network, 5xx, flood control). With `retry_after` (seconds), the API
    asked every sender to wait that long (a 429): the layer holds all sends of the channel;
    without, the row is retried with backoff, at most a bounded number of times."""

    def __init__(self, reason: str = "", retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Refused(TransportError):
    """Refused for good (a 400): this payload will never go. The row is set aside and the
    chat's next rows go on; a tap answer or an edit that is refused falls back to a message;
    a file that is refused becomes an empty upload (the step asks for it again)."""


class ChatBlocked(TransportError):
    """The chat takes no messages (blocked the bot, deleted, unknown): it is marked inactive
    and its rows set aside until the person writes again."""


class TooLarge(TransportError):
    """A file is larger than the limit; raised before its bytes are downloaded."""

    def __init__(self, size: int) -> None:
        super().__init__(f"file of {size} bytes")
        self.size = size


@dataclass(frozen=True)
class FileRef:
    """A photo or document the person sent, to be fetched before the turn."""

    id: str  # the transport's file / media id
    size: int | None = None  # the declared size, when known before fetching
    name: str | None = None
    mime: str | None = None


@dataclass(frozen=True)
class Tap:
    """A button press: what to answer, and which message was tapped."""

    id: str | None = None  # what `answer_tap` takes; None when taps need no answer (WhatsApp)
    message_id: str | None = None  # the tapped message (stale taps, edits); None if unknown
    label: str | None = None  # the pressed button's label (shown when the question is folded)
    text: str | None = None  # the tapped message's text (kept when the question is folded)


@dataclass(frozen=True)
class Incoming:
    """What an accepted payload means: whose chat, which event, and what to acknowledge."""

    key: str  # unique within the channel (Telegram: the update_id; WhatsApp: the message id)
    chat_id: str
    event: Inbound | None  # None: a file to fetch first (`file` is set)
    file: FileRef | None = None
    tap: Tap | None = None


@dataclass(frozen=True)
class Limits:
    """What the API allows; the layer paces, chunks and shapes within it."""

    per_second: int  # messages a second to all chats together
    per_chat: int  # messages a second to one chat
    text: int  # characters in one message (render chunks longer texts)
    buttons: int | None = None  # buttons one message carries (None: no limit that matters)
    alert: int = 0  # characters a tap's answer shows (0: taps cannot carry a notice)
    edits: bool = False  # a sent message can be replaced (else the layer sends a new one)
    window: timedelta | None = None  # a customer-service window: render gets `last_inbound`


@dataclass(frozen=True)
class Recipient:
    """The chat a message is rendered for, at sending time."""

    chat_id: str
    locale: str
    now: datetime
    # The person's last message (the conversation's last turn; aware, UTC), read only for
    # transports with `Limits.window`: outside it, a transport sends a template instead.
    # `now` is the sending round's time (aware; the service's clock, so tests can move it).
    last_inbound: datetime | None = None
    # Reads the person's data export (/datasaya) as (file name, bytes), at sending time.
    export: Callable[[], tuple[str, bytes]] = field(default=lambda: ("", b""), repr=False)


@dataclass(frozen=True)
class Rendered:
    """One outbox message as the transport's own payloads, in sending order."""

    parts: list[Any]  # each goes to `send`, paced, in order (text chunks, a QR photo, a file)
    # The part carrying the buttons: its id is recorded as the row's message id (stale taps
    # compare it); None means the last part's id.
    buttons_at: int | None = None
    # The payload that may replace a tapped message (`edit`); None when this message cannot
    # be an edit (too long, a keyboard an edit cannot carry, or no edits at all).
    edit: Any | None = None


@runtime_checkable
class Transport(Protocol):
    """A push channel's API, as the delivery layer uses it. Every method is synchronous and
    may be called from several threads at once; none touches the database."""

    name: str  # the channel's name in storage ("telegram", "whatsapp")
    limits: Limits

    def read(self, payload: Any) -> Incoming | None:
        """Translate a raw accepted payload; None for what we do not handle. Raise
        `Unreadable` for what we would handle but cannot read."""
        ...

    def render(self, message: Outbound, to: Recipient) -> Rendered:
        """Render one message into payloads: keyboards, chunks within `limits.text`, a QR
        image, the export file; a template when `to.last_inbound` is outside the window."""
        ...

    def send(self, chat_id: str, payload: Any) -> str:
        """Send one payload; return the message id. Raise RetryLater, Refused, ChatBlocked."""
        ...

    def edit(self, chat_id: str, message_id: str, payload: Any) -> str:
        """Replace a sent message (only called when `limits.edits`); return its id."""
        ...

    def answer_tap(self, tap_id: str, text: str | None = None, alert: bool = False) -> None:
        """Answer a button press (stop its spinner), with a notice or alert when given. Raise
        Refused when the tap can no longer be answered. A transport without it: no-op."""
        ...

    def fetch(self, file: FileRef, limit: int) -> bytes:
        """Download a file; raise TooLarge (checked before the bytes come), Refused (not
        available: the person is asked again), RetryLater (the update waits)."""
        ...

    def close(self) -> None:
        """Release the API client (connections, threads); no-op if there is none."""
        ...
