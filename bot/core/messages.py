"""What goes in and out of the engine: plain data, no transport in sight."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Expect(StrEnum):
    """What kind of answer a message waits for; channels pick widgets from it."""

    TEXT = "text"
    CHOICE = "choice"
    PHOTO = "photo"
    CONTACT = "contact"
    NONE = "none"


@dataclass(frozen=True)
class Choice:
    """One button: `value` comes back to the engine, `label` is shown (already translated)."""

    value: str
    label: str


@dataclass(frozen=True)
class Outbound:
    """One message for the user."""

    text: str
    choices: tuple[Choice, ...] = ()
    expects: Expect = Expect.NONE
    qr: str | None = None  # content for a QR image the channel renders under the text
    offers_location: bool = False  # a shared location is a welcome answer (nearest office)
    copy: str | None = None  # a code in the text worth copying in one tap (the billing code)
    # A short notice about the answer just given ("jam itu baru saja penuh"): a channel that
    # can shows it where the tap was (Telegram: the tap's alert) instead of a new message.
    notice: bool = False
    # A copy of the person's own data to hand over as a file (/datasaya): a signed,
    # short-lived token naming the conversation (bot/privacy.py), never the data itself. Each
    # channel renders it its own way (Telegram: a document; web chat: a download link).
    export: str | None = None
    # The person's data was just erased: a channel that keeps a copy of the conversation on
    # the person's device (the web chat's tab) forgets it before showing this message.
    forget: bool = False
    # What a pushed notice is about ("payment", "status", "reminder", "announcement"): a
    # channel that may only send approved templates at times (WhatsApp, outside its 24-hour
    # window) picks the template by it. None: a reply, or a notice of no particular kind.
    kind: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Render in the shape shared by the terminal's --jsonl mode and the chat API."""
        return {
            "text": self.text,
            "choices": [choice.label for choice in self.choices],
            "expects": self.expects.value,
        }

    def to_payload(self) -> dict[str, Any]:
        """Serialise everything a channel needs to render this message later (the outbox)."""
        return {
            "text": self.text,
            "choices": [[choice.value, choice.label] for choice in self.choices],
            "expects": self.expects.value,
            "qr": self.qr,
            "offers_location": self.offers_location,
            "copy": self.copy,
            "notice": self.notice,
            "export": self.export,
            "forget": self.forget,
            **({"kind": self.kind} if self.kind else {}),
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Outbound:
        """Rebuild a message stored in the outbox."""
        return cls(
            text=str(data["text"]),
            choices=tuple(Choice(str(v), str(label)) for v, label in data.get("choices", [])),
            expects=Expect(data.get("expects", Expect.NONE.value)),
            qr=data.get("qr"),
            offers_location=bool(data.get("offers_location", False)),
            copy=data.get("copy"),
            notice=bool(data.get("notice", False)),
            export=data.get("export"),
            forget=bool(data.get("forget", False)),
            kind=str(data["kind"]) if data.get("kind") else None,
        )


class EventKind(StrEnum):
    """The kinds of inbound event a channel can deliver."""

    TEXT = "text"  # typed text, including /commands
    CHOICE = "choice"  # a button press carrying a Choice.value
    FILE = "file"  # a photo or document upload
    CONTACT = "contact"  # a shared phone number
    LOCATION = "location"  # a shared location
    OPEN = "open"  # the channel opened: show where the conversation stands


@dataclass(frozen=True)
class Upload:
    """The bytes of an uploaded photo or file as the channel received them."""

    data: bytes
    filename: str | None = None
    declared_type: str | None = None
    declared_size: int | None = None  # what the channel says before download (may be absent)
    # The photo pipeline's verdict (`bot.images.CleanDocument` or `Refusal`), set by the
    # service before the turn's transaction opens, so no lock is held while a photo decodes.
    checked: object | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Inbound:
    """One event from the user."""

    kind: EventKind
    text: str = ""
    upload: Upload | None = field(default=None, repr=False)
    language_code: str | None = None
    location: tuple[float, float] | None = None  # latitude, longitude

    @classmethod
    def say(cls, text: str, language_code: str | None = None) -> Inbound:
        """Build a typed-text event."""
        return cls(EventKind.TEXT, text=text, language_code=language_code)

    @classmethod
    def press(cls, value: str, language_code: str | None = None) -> Inbound:
        """Build a button-press event."""
        return cls(EventKind.CHOICE, text=value, language_code=language_code)

    @classmethod
    def file(
        cls,
        data: bytes,
        filename: str | None = None,
        declared_type: str | None = None,
        language_code: str | None = None,
        declared_size: int | None = None,
    ) -> Inbound:
        """Build an upload event."""
        return cls(
            EventKind.FILE,
            upload=Upload(data, filename, declared_type, declared_size),
            language_code=language_code,
        )

    @classmethod
    def contact(cls, phone: str, language_code: str | None = None) -> Inbound:
        """Build a shared-contact event."""
        return cls(EventKind.CONTACT, text=phone, language_code=language_code)

    @classmethod
    def at(cls, latitude: float, longitude: float, language_code: str | None = None) -> Inbound:
        """Build a shared-location event."""
        return cls(EventKind.LOCATION, location=(latitude, longitude), language_code=language_code)

    @classmethod
    def open(cls, language_code: str | None = None) -> Inbound:
        """Build the event a channel sends when a user (re)opens the chat."""
        return cls(EventKind.OPEN, language_code=language_code)


EXCERPT_CHARS = 40


def excerpt(typed: str, limit: int = EXCERPT_CHARS) -> str:
    """Quote what a user typed back to them, at most `limit` characters and on one line.

    A refusal may show what it refused ("kota 'Bandnug'"), but never the whole input: a
    pasted page (or 5 MB from a script) must not come back as a 5 MB reply.
    """
    flat = " ".join(typed[: limit * 4].split())
    if len(flat) <= limit and len(typed) <= limit * 4:
        return flat
    return flat[:limit].rstrip() + "…"


def merge(messages: list[Outbound]) -> list[Outbound]:
    """Join one turn's replies into one message for push channels (notes, then the question).

    The question's buttons and expectation stay; a QR code and a code to copy ride on the
    merged message (the channel sends the QR as a photo after the text). Two QR codes, or two
    codes to copy, in one turn stay separate.
    """
    if len(messages) < 2 or sum(1 for m in messages if m.qr) > 1:
        return messages
    if sum(1 for m in messages if m.copy) > 1 or sum(1 for m in messages if m.export) > 1:
        return messages
    last = messages[-1]
    return [
        Outbound(
            "\n\n".join(m.text for m in messages if m.text),
            last.choices,
            last.expects,
            qr=next((m.qr for m in messages if m.qr), None),
            offers_location=last.offers_location,
            copy=next((m.copy for m in messages if m.copy), None),
            export=next((m.export for m in messages if m.export), None),
            forget=any(m.forget for m in messages),
            kind=next((m.kind for m in messages if m.kind), None),
        )
    ]
