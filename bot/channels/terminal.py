"""The terminal channel: the real engine on stdin/stdout, for people and for scripts.

Human mode prints choices as `[n] label` (answer with n or the label). `--jsonl` prints each bot
message as one JSON object and `{"turn_end": true}` after each input line. `/foto PATH` sends a
file as a photo; `/kontak NUMBER` shares a contact; `/lokasi LAT,LON` shares a location.
QR codes are written as PNG files under the data folder and their path is printed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TextIO

from bot.channels.pull import take_turn
from bot.core.messages import Expect, Inbound, Outbound, excerpt
from bot.i18n import _, use_locale
from bot.logsafe import log_failure
from bot.qr import qr_png
from bot.service import Loket

CHANNEL = "terminal"
log = logging.getLogger(__name__)


class TerminalChat:
    """Reads lines, sends them through the service, prints the replies."""

    def __init__(
        self, loket: Loket, user: str, *, jsonl: bool, language: str | None, out: TextIO
    ) -> None:
        self.loket = loket
        self.user = user
        self.jsonl = jsonl
        self.language = language
        self.out = out

    def event_for(self, line: str) -> Inbound | None:
        """Translate one input line into an engine event (None when it cannot be read)."""
        text = line.strip()
        if text.startswith("/foto ") or text.startswith("/photo "):
            path = Path(text.split(" ", 1)[1].strip()).expanduser()
            try:
                data = path.read_bytes()
            except OSError:
                with use_locale(self.language or "id"):
                    self.print_messages(
                        [
                            Outbound(
                                _("File tidak dapat dibaca: {path}").format(path=excerpt(str(path)))
                            )
                        ]
                    )
                return None
            return Inbound.file(data, filename=path.name, language_code=self.language)
        if text.startswith("/kontak ") or text.startswith("/contact "):
            return Inbound.contact(text.split(" ", 1)[1], language_code=self.language)
        if text.startswith("/lokasi ") or text.startswith("/location "):
            try:
                latitude, longitude = (float(part) for part in text.split(" ", 1)[1].split(","))
            except ValueError:
                with use_locale(self.language or "id"):
                    self.print_messages(
                        [Outbound(_("Tulis lokasi sebagai lintang,bujur, contoh: -6.9,107.6"))]
                    )
                return None
            return Inbound.at(latitude, longitude, language_code=self.language)
        return Inbound.say(text, language_code=self.language)

    def send(self, event: Inbound) -> None:
        """Run one event through the service and print the replies (or an apology)."""
        try:
            # Notices that arrived meanwhile (payment confirmed, hold expired) come first; they
            # are taken with the turn, so a failed turn leaves them waiting.
            replies = take_turn(self.loket, CHANNEL, self.user, event).messages
        except Exception as error:
            # The transaction was rolled back, so the conversation is where it was.
            log_failure(log, f"turn failed channel={CHANNEL} kind={event.kind.value}", error)
            with use_locale(self.language or "id"):
                replies = [
                    Outbound(
                        _(
                            "Maaf, terjadi gangguan di sistem kami. Jawaban Anda belum "
                            "tersimpan; silakan kirim sekali lagi."
                        )
                    )
                ]
        self.print_messages(replies)

    def print_messages(self, messages: list[Outbound]) -> None:
        """Print bot messages in the chosen mode and end the turn."""
        for message in messages:
            if self.jsonl:
                self.out.write(json.dumps(message.to_json(), ensure_ascii=False) + "\n")
                continue
            self.out.write(message.text + "\n")
            if message.qr is not None:
                self.out.write(f"  (QR: {self.save_qr(message.qr)})\n")
            if message.export is not None:
                self.out.write(f"  (File: {self.save_export()})\n")
            for number, choice in enumerate(message.choices, start=1):
                self.out.write(f"  [{number}] {choice.label}\n")
            if message.expects is Expect.PHOTO:
                self.out.write("  (/foto PATH)\n")
            self.out.write("\n")
        if self.jsonl:
            self.out.write(json.dumps({"turn_end": True}) + "\n")
        else:
            self.out.write("> ")
        self.out.flush()

    def save_qr(self, content: str) -> Path:
        """Write a QR code image under the data folder and return its path."""
        folder = self.loket.settings.data_dir / "qr"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{content}.png"
        path.write_bytes(qr_png(content))
        return path

    def save_export(self) -> Path:
        """Write this chat's data export (/datasaya) under the data folder, readable only by
        its owner, and return its path."""
        folder = self.loket.settings.data_dir / "exports"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name, data = self.loket.export_now(CHANNEL, self.user)
        path = folder / name
        path.touch(mode=0o600)
        path.write_bytes(data)
        return path

    def run(self, lines: TextIO) -> None:
        """Open the chat, then handle input lines until end of input."""
        self.send(Inbound.open(language_code=self.language))
        for line in lines:
            if not line.strip():
                continue
            event = self.event_for(line)
            if event is not None:
                self.send(event)
