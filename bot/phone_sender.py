"""Sending one-time codes by SMS or WhatsApp, behind one small interface.

A deployment plugs in its SMS or WhatsApp provider; the embedded default prints the code on
the terminal (stdout, never the log), and tests record what was sent.
"""

from __future__ import annotations

import sys
import threading
from typing import Protocol, TextIO


class PhoneSender(Protocol):
    """Sends a short text to a phone number (E.164)."""

    def send(self, phone: str, text: str) -> None:
        """Deliver `text` to `phone`, or raise."""


class TerminalSender:
    """The embedded default: prints the message for the person at the terminal.

    Written to stdout, not to the log: a code is a secret, and logs are kept and shipped.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out

    def send(self, phone: str, text: str) -> None:
        """Print the message as an SMS would show it."""
        out = self.out or sys.stdout
        print(f"[SMS ke {phone}] {text}", file=out, flush=True)


class RecordingSender:
    """Keeps every message sent, for tests."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def send(self, phone: str, text: str) -> None:
        """Record the message."""
        with self._lock:
            self.sent.append((phone, text))

    def last_code(self, phone: str) -> str:
        """Return the digits of the last message sent to `phone`."""
        for to, text in reversed(self.sent):
            if to == phone:
                return "".join(ch for ch in text.split(":", 1)[1].split(".")[0] if ch.isdigit())
        raise LookupError("nothing was sent to that number")
