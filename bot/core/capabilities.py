"""What each channel lets a person do, so the wording only offers what they can.

The web chat has no "share contact"; an agent typing for a caller has no location worth
sharing; Telegram tells photos from files. Flows ask `can(ctx.channel, ...)` and word their
questions accordingly; the transports stay out of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Upload(StrEnum):
    """How a document photo gets sent on a channel."""

    TELEGRAM = "telegram"  # as a photo (or a file) in the chat
    BUTTON = "button"  # the web page's "Kirim foto / file" button
    COMMAND = "command"  # the terminal's /foto PATH
    ATTACHMENT = "attachment"  # a gateway's attachment (WhatsApp, Instagram, ...)


@dataclass(frozen=True)
class Capabilities:
    """What a channel offers its user."""

    share_contact: bool
    share_location: bool
    upload: Upload


CAPABILITIES = {
    "telegram": Capabilities(share_contact=True, share_location=True, upload=Upload.TELEGRAM),
    "web": Capabilities(share_contact=False, share_location=True, upload=Upload.BUTTON),
    # An agent types for a caller on the phone: the agent's own location means nothing.
    "agent": Capabilities(share_contact=False, share_location=False, upload=Upload.BUTTON),
    "terminal": Capabilities(share_contact=False, share_location=True, upload=Upload.COMMAND),
    "api": Capabilities(share_contact=True, share_location=True, upload=Upload.ATTACHMENT),
    "whatsapp": Capabilities(share_contact=True, share_location=True, upload=Upload.ATTACHMENT),
}
# Channels not listed (tests, a new gateway) get everything a chat app usually has.
DEFAULT = Capabilities(share_contact=True, share_location=True, upload=Upload.ATTACHMENT)


def capabilities(channel: str) -> Capabilities:
    """Return what a channel lets its user do."""
    return CAPABILITIES.get(channel, DEFAULT)
