"""Transcript helpers: a chat identity that talks to the real service, and test data."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from io import BytesIO
from typing import Any

from sqlalchemy import select

from bot.core.messages import Inbound, Outbound
from bot.phone_sender import RecordingSender
from bot.service import Loket
from storage.models import Conversation
from tests.test_images import document_page


def make_nik(birth: date, *, female: bool = False, region: str = "327301", serial: int = 1) -> str:
    """Build a structurally valid NIK (region 3273 01 = Kota Bandung, Sukasari)."""
    day = birth.day + (40 if female else 0)
    return f"{region}{day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}"


@lru_cache(maxsize=512)
def photo_bytes(tag: str = "ktp") -> bytes:
    """Return a sharp photo of a document-like page as JPEG, different for each tag."""
    seed = int.from_bytes(hashlib.sha256(tag.encode()).digest()[:4], "big")
    buffer = BytesIO()
    document_page(800, 600, seed=seed).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@dataclass
class Reply:
    """The messages of one turn."""

    messages: list[Outbound]

    @property
    def text(self) -> str:
        """Return every message's text, joined."""
        return "\n".join(message.text for message in self.messages)

    @property
    def question(self) -> Outbound:
        """Return the last message (the question the bot waits on)."""
        return self.messages[-1]

    @property
    def labels(self) -> list[str]:
        """Return the button labels under the question."""
        return [choice.label for choice in self.question.choices]

    def __contains__(self, fragment: str) -> bool:
        return fragment in self.text


class Chat:
    """One chat identity talking to the real service, turn by turn."""

    def __init__(
        self,
        loket: Loket,
        user: str,
        channel: str = "test",
        language: str | None = None,
        actor: int | None = None,
    ) -> None:
        self.loket = loket
        self.user = user
        self.channel = channel
        self.language = language
        self.actor = actor  # a staff member typing for the user (the agent console)
        self.log: list[tuple[str, Reply]] = []

    def _send(self, label: str, event: Inbound) -> Reply:
        reply = Reply(self.loket.handle(self.channel, self.user, event, actor=self.actor))
        assert reply.messages, f"no reply to {label!r}"
        self.log.append((label, reply))
        return reply

    def open(self) -> Reply:
        """Open the chat (as a channel does on start)."""
        return self._send("<open>", Inbound.open(self.language))

    def say(self, text: str) -> Reply:
        """Type text."""
        return self._send(text, Inbound.say(text, self.language))

    def press(self, value: str) -> Reply:
        """Press a button by its value."""
        return self._send(f"<press {value}>", Inbound.press(value, self.language))

    def tap(self, label: str) -> Reply:
        """Press the button with this label under the last question."""
        question = self.log[-1][1].question
        for choice in question.choices:
            if choice.label == label:
                return self.press(choice.value)
        raise AssertionError(f"no button {label!r} in {[c.label for c in question.choices]}")

    def photo(self, data: bytes | None = None, tag: str = "doc") -> Reply:
        """Send a photo."""
        return self._send("<photo>", Inbound.file(data or photo_bytes(tag), "photo.jpg"))

    def location(self, latitude: float, longitude: float) -> Reply:
        """Share a location."""
        return self._send("<location>", Inbound.at(latitude, longitude, self.language))

    def contact(self, phone: str) -> Reply:
        """Share a contact."""
        return self._send("<contact>", Inbound.contact(phone))

    def phone(self) -> str:
        """Return this identity's own phone number (E.164), the one it proves before a hold.

        An agent's chat is named by the caller's number; every other identity gets a number of
        its own, so different people in one test never share a number by accident.
        """
        if self.channel == "agent" and re.fullmatch(r"\+628\d{8,11}", self.user):
            return self.user
        digits = int(hashlib.sha256(f"{self.channel}:{self.user}".encode()).hexdigest(), 16)
        return f"+62812{digits % 10**8:08d}"

    def verify(self, phone: str | None = None) -> Reply:
        """Prove the phone number the way this channel does, when the bot asks before a hold.

        Telegram shares the account's own contact; the chat API's gateway vouches for the
        number (what bot/api.py does with "verified_phone"); the agent types the caller's
        number; the web chat, terminal and test channels type it and then the one-time code
        the service's phone sender delivered (a RecordingSender in tests).
        """
        assert self.step() == "verify_phone", f"not asked to verify\n{self.transcript()}"
        number = phone or self.phone()  # E.164, as the sender records it
        if self.channel == "telegram":
            return self.contact(number)
        if self.channel == "api":
            self.loket.vouch_phone(self.channel, self.user, number, "gateway")
            return self.say("lanjut")
        if self.channel == "agent":
            return self.say(number)
        sender = self.loket.phone_sender
        assert isinstance(sender, RecordingSender), "the loket fixture records one-time codes"
        asked = self.say(number)
        assert self.step() == "phone_code", f"no code asked\n{self.transcript()}"
        assert asked.messages
        self.loket.deliver_phone_messages()  # sent off the turn: wait for the delivery
        return self.say(sender.last_code(number))

    def verified(self, reply: Reply) -> Reply:
        """Return `reply`, or, where it asks to verify the phone number first, the reply after."""
        if self.step() == "verify_phone":
            return self.verify()
        return reply

    def state(self) -> dict[str, Any]:
        """Read the stored conversation state (for drivers and assertions)."""
        with self.loket.sessions() as session:
            conversation = session.execute(
                select(Conversation).where(
                    Conversation.channel == self.channel, Conversation.user_ref == self.user
                )
            ).scalar_one()
            return dict(conversation.state)

    def step(self) -> str | None:
        """Return the step the conversation waits on."""
        return self.state().get("step")

    def transcript(self) -> str:
        """Render the conversation so far, for assertion messages."""
        return "\n".join(f">>> {said}\n{reply.text}" for said, reply in self.log)


ADULT_NEW: dict[str, str] = {
    "consent": "setuju",
    "category": "dewasa",
    "service": "reguler",
    "had_passport": "belum",
    "replace_reason": "habis berlaku atau halaman penuh",
    "passport_kind": "elektronik",
    "validity": "10",
    "full_name": "budi  santoso",
    "birth_place": "bandung",
    "birth_date": "17-08-1990",
    "sex": "laki-laki",
    "nik": make_nik(date(1990, 8, 17)),
    "phone": "0812-3456-7890",
    "email": "Budi@Example.com",
    "address": "Jl. Merdeka No. 10, RT 01/RW 02, Braga, Sumur Bandung, Kota Bandung",
    "travel_purpose": "wisata",
    "old_passport_number": "x 1234567",
    "name_same": "ya",
    "supporting_kind": "akta kelahiran",
}


def fill_until(chat: Chat, stop: str, answers: dict[str, str] | None = None) -> Reply:
    """Answer every question with `answers` (over ADULT_NEW) until the step `stop` is asked."""
    plan = {**ADULT_NEW, **(answers or {})}
    if chat.log and chat.state().get("flow") == "registration":
        reply = chat.log[-1][1]
    else:
        reply = chat.say("/daftar")
    for _turn in range(60):
        step = chat.step()
        if step == stop:
            return reply
        assert step is not None
        if step.startswith("doc_"):
            skip = plan.get(step) == "lewati"
            # Each person's own photos: one photo on several NIKs' applications is refused.
            tag = f"{step}:{plan['nik']}"
            reply = chat.say("lewati") if skip else chat.photo(tag=tag)
        else:
            assert step in plan, f"no planned answer for {step}\n{chat.transcript()}"
            reply = chat.say(plan[step])
        assert chat.step() != step, f"stuck at {step}\n{chat.transcript()}"
    raise AssertionError(f"never reached {stop}\n{chat.transcript()}")


def register(chat: Chat, answers: dict[str, str] | None = None) -> Reply:
    """Complete a registration and return the confirmation reply."""
    fill_until(chat, "summary", answers)
    return chat.say("benar, kirim")


BILLING_CODE = re.compile(r"Kode billing:? (\d{4} \d{4} \d{4} \d{3})")


def billing_code(reply: Reply) -> str:
    """Read the billing code the bot showed (digits only)."""
    match = BILLING_CODE.search(reply.text)
    assert match, f"no billing code in:\n{reply.text}"
    return match.group(1).replace(" ", "")


def book(
    chat: Chat, city: str = "Bandung", day: str = "1", window: str = "1", *, verify: bool = True
) -> Reply:
    """From the office question (right after registering), choose city, office, day, window.

    Where the bot asks to verify the phone number before holding (the first hold of an
    identity), prove it the channel's way unless `verify` is False (then the question is
    returned).
    """
    if chat.step() != "office_query":
        chat.say("/jadwal")
    chat.say(city)
    chat.say("1")
    chat.say(day)
    return choose_window(chat, window, verify=verify)


def choose_window(chat: Chat, window: str, *, verify: bool = True) -> Reply:
    """Choose a window (typed, or a button's value), proving the phone number if asked."""
    reply = chat.say(window)
    return chat.verified(reply) if verify else reply
