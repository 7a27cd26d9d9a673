"""Render the engine's messages as WhatsApp Cloud API message objects, within its limits.

Choices become reply buttons (at most 3, titles at most 20 characters) or a list message (at
most 10 rows in all, row titles at most 24 characters, descriptions at most 72); a longer list
is paged, its last row "Lainnya" asking for the next page (`paged`). Typed answers work as on
every channel.
Outside the 24-hour customer-service window only an approved template can be sent: the
notice's text becomes the template's one body parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bot.channels.whatsapp_updates import MORE
from bot.core.messages import Choice, Expect, Outbound
from bot.i18n import _

TEXT_LIMIT = 4096  # characters of a text message
BODY_LIMIT = 1024  # characters of an interactive message's body
BUTTONS = 3
BUTTON_TITLE = 20
ROWS = 10  # rows of a list message, every section together
ROW_TITLE = 24
ROW_DESCRIPTION = 72
ROW_ID = 200
SECTION_TITLE = 24
PARAMETER_LIMIT = 1000  # characters of one template parameter we send (Meta allows 1024)
NOTICE_KINDS = ("payment", "status", "reminder", "announcement")


@dataclass(frozen=True)
class Template:
    """An approved template message: its name and its language's code at Meta."""

    name: str
    language: str


def chunks(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split text into parts of at most `limit` characters, at line breaks where possible."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        while len(candidate) > limit:
            if current:
                parts.append(current)
                candidate, current = line, ""
                continue
            parts.append(candidate[:limit])
            candidate = line = candidate[limit:]
        current = candidate
    parts.append(current or " ")
    return parts


def cut(text: str, limit: int) -> str:
    """Shorten text to `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def paged(message: Outbound, page: int, original: str | None = None) -> Outbound:
    """Return one page of a question with more choices than a list holds: nine of them and
    a "Lainnya" choice leading to the next page (the last page holds up to ten). `original`
    names the WhatsApp message of the whole question (later pages point back to it)."""
    choices = message.choices
    start = (ROWS - 1) * page
    if start >= len(choices):
        start, page = 0, 0  # an old "lainnya" on a shorter list: from the start
    rest = choices[start:]
    text = message.text if page == 0 else message.text.rsplit("\n\n", 1)[-1]
    if len(rest) <= ROWS:
        return replace(message, text=text, choices=rest)
    shown = rest[: ROWS - 1]
    last = min(len(choices), start + 2 * (ROWS - 1))
    value = f"{MORE}{page + 1}" + (f":{original}" if original else "")
    label = _("Lainnya ({a}–{b} dari {n})").format(a=start + ROWS, b=last, n=len(choices))
    return replace(message, text=text, choices=(*shown, Choice(value, label)))


def buttons_fit(choices: tuple[Choice, ...]) -> bool:
    """Tell whether the choices fit reply buttons (few, with short labels)."""
    return len(choices) <= BUTTONS and all(len(c.label) <= BUTTON_TITLE for c in choices)


def render(message: Outbound) -> list[dict[str, Any]]:
    """Return the message objects (without `to`) that carry one message, in order; the QR
    code and the export, which need an upload first, are left to the sender."""
    if len(message.choices) > ROWS:
        message = paged(message, 0)
    choices = tuple(c for c in message.choices if 0 < len(c.value) <= ROW_ID)
    location = message.offers_location and not choices and message.expects is not Expect.CHOICE
    if not choices and not location:
        return [_text(part) for part in chunks(message.text)]
    parts = chunks(message.text or " ", BODY_LIMIT)
    head = "\n".join(parts[:-1])
    objects = [_text(part) for part in chunks(head)] if head else []
    body = {"text": parts[-1]}
    if location:
        interactive: dict[str, Any] = {
            "type": "location_request_message",
            "body": body,
            "action": {"name": "send_location"},
        }
    elif buttons_fit(choices):
        interactive = {
            "type": "button",
            "body": body,
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": c.value, "title": c.label}} for c in choices
                ]
            },
        }
    else:
        interactive = {"type": "list", "body": body, "action": _list_action(choices)}
    objects.append({"type": "interactive", "interactive": interactive})
    return objects


def _list_action(choices: tuple[Choice, ...]) -> dict[str, Any]:
    """The list's button and sections: the choices, then the way to the next page."""
    answers = [c for c in choices if not c.value.startswith(MORE)]
    onward = [c for c in choices if c.value.startswith(MORE)]
    sections = [{"title": cut(_("Pilihan"), SECTION_TITLE), "rows": [_row(c) for c in answers]}]
    if onward:
        rows = [_row(c) for c in onward]
        sections.append({"title": cut(_("Halaman berikutnya"), SECTION_TITLE), "rows": rows})
    return {"button": cut(_("Pilih"), BUTTON_TITLE), "sections": sections}


def _row(choice: Choice) -> dict[str, Any]:
    """One list row: the label as its title, or cut there and whole in the description."""
    if len(choice.label) <= ROW_TITLE:
        return {"id": choice.value, "title": choice.label}
    return {
        "id": choice.value,
        "title": cut(choice.label, ROW_TITLE),
        "description": cut(choice.label, ROW_DESCRIPTION),
    }


def _text(part: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": part, "preview_url": False}}


def flatten(text: str) -> str:
    """A template parameter: one line (Meta refuses line breaks, tabs and runs of spaces),
    at most PARAMETER_LIMIT characters."""
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return cut(" · ".join(line for line in lines if line) or "-", PARAMETER_LIMIT)


def template_message(template: Template, text: str) -> dict[str, Any]:
    """The template message that carries a notice's text outside the 24-hour window."""
    return {
        "type": "template",
        "template": {
            "name": template.name,
            "language": {"code": template.language},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": flatten(text)}]}
            ],
        },
    }


def parse_mapping(text: str) -> dict[str, str]:
    """Read `key=value,key=value` (the template settings)."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs if key.strip() and value.strip()}
