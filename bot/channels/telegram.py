"""The Telegram channel on python-telegram-bot: translate updates, apply them once, send replies.

Flask under gunicorn has no long-lived event loop and python-telegram-bot's `Bot` is async, so
each process keeps one `Bot` on one event loop in a background thread (`BotRunner`); request
threads and the poller stay synchronous and hand it only HTTP calls, so no database work ever
runs on the loop. An update is first accepted into the inbox (one INSERT keyed by its update_id:
all the webhook waits for), then applied exactly once, in order per chat (`Loket.process` marks
the inbox row and records the update_id with the turn's effects); every reply goes through the
outbox: sent right after commit, and by the worker if a crash left it unsent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from telegram import (
    Bot,
    BotCommand,
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from bot.core.messages import Expect, Inbound, Outbound
from bot.faults import failpoint
from bot.i18n import N_, _, use_locale
from bot.logsafe import log_failure
from bot.qr import qr_png
from bot.service import Loket
from bot.settings import Settings
from bot.shared import SharedState
from storage import inbox
from storage.booking import (
    claim_outbox,
    db_now,
    mark_sent,
    pending_chats,
    queue_message,
    release_claim,
)
from storage.conversations import chat_locale

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO, and Bot API URLs carry the bot token; the library's
# DEBUG lines print message texts, which may hold a NIK. Neither belongs in our logs.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("telegram").setLevel(logging.INFO)

CHANNEL = "telegram"
CALLBACK_LIMIT = 64  # bytes Telegram allows in callback_data
TEXT_LIMIT = 4096
CLAIM_FOR = timedelta(seconds=30)
T = TypeVar("T")

MAX_APPLY_ATTEMPTS = 5  # failures (not network) before an update is set aside

COMMANDS = (
    ("start", N_("Mulai dan menu utama")),
    ("daftar", N_("Daftar paspor")),
    ("status", N_("Status permohonan dan pembayaran")),
    ("jadwal", N_("Pilih jadwal dan kode billing")),
    ("langganan", N_("Kabar kuota dan paspor simpatik")),
    ("berhenti", N_("Berhenti berlangganan kabar kuota")),
    ("batal", N_("Batalkan")),
    ("bahasa", N_("Ganti bahasa")),
    ("bantuan", N_("Bantuan")),
)


class BotRunner:
    """One `Bot` and its event loop in a background thread, for synchronous callers."""

    def __init__(self, settings: Settings) -> None:
        assert settings.telegram_token, "TELEGRAM_BOT_TOKEN is not set"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="telegram-bot", daemon=True
        )
        self.thread.start()
        self.bot = Bot(
            settings.telegram_token,
            base_url=settings.telegram_base_url,
            base_file_url=settings.telegram_base_file_url,
            request=HTTPXRequest(connection_pool_size=32),
            get_updates_request=HTTPXRequest(connection_pool_size=2, read_timeout=40),
        )
        self.call(self.bot.initialize())

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the bot's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Shut the bot down and stop the loop."""
        try:
            self.call(self.bot.shutdown(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


class Pacer:
    """Keep sends under the Bot API's limits, across every process (shared state counts).

    Telegram allows about 30 messages a second overall and about one a second to one chat;
    a sender waits for the next second rather than collect 429s. Counters live in shared
    state (Redis at scale), one per second.
    """

    def __init__(
        self,
        shared: SharedState,
        per_second: int,
        per_chat: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.shared = shared
        self.per_second = per_second
        self.per_chat = per_chat
        self.clock = clock
        self.sleep = sleep

    def wait(self, chat_id: str) -> None:
        """Return when one more message to `chat_id` fits in the current second."""
        for _attempt in range(600):  # ten minutes at most, then send anyway
            now = self.clock()
            second = int(now)
            if self.shared.incr(f"pace:chat:{chat_id}:{second}", 2) <= self.per_chat and (
                self.shared.incr(f"pace:all:{second}", 2) <= self.per_second
            ):
                return
            self.sleep(second + 1 - now)
        log.warning("pacing gave up waiting")


@dataclass(frozen=True)
class Incoming:
    """What an update means for us: whose chat, which event, and what to acknowledge."""

    update_id: int
    chat_id: str
    event: Inbound | None
    file_id: str | None = None
    file_size: int | None = None
    filename: str | None = None
    callback_id: str | None = None
    callback_message: dict[str, Any] | None = None


def translate(update: dict[str, Any]) -> Incoming | None:
    """Read a Bot API update; None for what we do not handle (groups, edits, stickers...)."""
    update_id = int(update["update_id"])
    if "callback_query" in update:
        query = update["callback_query"]
        message = query.get("message") or {}
        chat = message.get("chat") or {}
        if chat.get("type", "private") != "private" or "data" not in query:
            return None
        language = (query.get("from") or {}).get("language_code")
        return Incoming(
            update_id,
            str(chat["id"]),
            Inbound.press(str(query["data"]), language),
            callback_id=str(query["id"]),
            callback_message=message,
        )
    message = update.get("message")
    if not message or (message.get("chat") or {}).get("type") != "private":
        return None
    chat_id = str(message["chat"]["id"])
    language = (message.get("from") or {}).get("language_code")
    if "text" in message:
        return Incoming(update_id, chat_id, Inbound.say(message["text"], language))
    if "contact" in message:
        contact = message["contact"]
        if contact.get("user_id") not in (None, (message.get("from") or {}).get("id")):
            # Someone else's contact card: treat the number as typed, so it is checked as such.
            return Incoming(update_id, chat_id, Inbound.say(contact["phone_number"], language))
        return Incoming(update_id, chat_id, Inbound.contact(contact["phone_number"], language))
    if "location" in message:
        where = message["location"]
        return Incoming(
            update_id, chat_id, Inbound.at(where["latitude"], where["longitude"], language)
        )
    if message.get("photo"):
        largest = max(message["photo"], key=lambda p: p.get("width", 0) * p.get("height", 0))
        return Incoming(update_id, chat_id, None, largest["file_id"], largest.get("file_size"))
    if "document" in message:
        document = message["document"]
        return Incoming(
            update_id,
            chat_id,
            None,
            document["file_id"],
            document.get("file_size"),
            document.get("file_name"),
        )
    return Incoming(update_id, chat_id, Inbound.say("", language))


def keyboard(message: Outbound) -> Any:
    """Choose the keyboard for a message: inline buttons, or a share-contact/location button."""
    rows = []
    if message.copy:
        # One tap copies the billing code's digits (Bot API copy_text), whatever the grouping.
        copy = CopyTextButton(message.copy)
        rows.append([InlineKeyboardButton(_("Salin kode billing"), copy_text=copy)])
    if message.choices or rows:
        rows.extend(
            [InlineKeyboardButton(choice.label, callback_data=choice.value)]
            for choice in message.choices
            if len(choice.value.encode()) <= CALLBACK_LIMIT
        )
        return InlineKeyboardMarkup(rows)
    if message.expects is Expect.CONTACT:
        button = KeyboardButton(_("Bagikan nomor HP saya"), request_contact=True)
        return ReplyKeyboardMarkup([[button]], one_time_keyboard=True, resize_keyboard=True)
    if message.offers_location:
        button = KeyboardButton(_("Bagikan lokasi saya"), request_location=True)
        return ReplyKeyboardMarkup([[button]], one_time_keyboard=True, resize_keyboard=True)
    return None


def chunks(text: str) -> list[str]:
    """Split text into Telegram-sized messages at line breaks."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > TEXT_LIMIT and current:
            parts.append(current)
            candidate = line
        current = candidate[:TEXT_LIMIT]
    parts.append(current or " ")
    return parts


class TelegramChannel:
    """Applies updates through the core and delivers the outbox to Telegram."""

    def __init__(self, loket: Loket, runner: BotRunner, *, background: bool = False) -> None:
        self.loket = loket
        self.runner = runner
        settings = loket.settings
        self.pacer = Pacer(loket.shared, settings.telegram_rate, settings.telegram_chat_rate)
        # In a web worker, updates are applied and replies sent after the 200, on a few threads:
        # the update is durably in the inbox, so answering Telegram need not wait for the turn.
        self.senders = ThreadPoolExecutor(4, "telegram-send") if background else None

    # ---- inbound -----------------------------------------------------------------------

    def handle_update(self, update: dict[str, Any]) -> bool:
        """Accept one update and apply what its chat has waiting now; False if a repeat."""
        chat_id, new = self.accept(update)
        if chat_id is not None:
            self.drain(chat_id)
        return new

    def accept(self, update: dict[str, Any]) -> tuple[str | None, bool]:
        """Store an update in the inbox, unless it was seen; return its chat and whether new.

        This is all the webhook waits for: one INSERT keyed by the update_id. Updates we do not
        handle (groups, edits, stickers...) are not stored and have no chat.
        """
        incoming = translate(update)
        if incoming is None:
            return None, False
        key = f"{CHANNEL}:{incoming.update_id}"
        new = inbox.accept_now(self.loket.autocommit_db, CHANNEL, key, incoming.chat_id, update)
        failpoint("after-accept")
        return incoming.chat_id, new

    def schedule(self, chat_id: str) -> None:
        """Apply and deliver a chat's waiting updates: on a sender thread if this process has
        them (a web worker answers Telegram first), else right here."""
        if not self.loket.settings.apply_in_web:
            return  # a separate `python -m bot apply` process takes it up
        if self.senders is not None:
            self.senders.submit(self.drain_safely, chat_id)
        else:
            self.drain(chat_id)

    def drain_safely(self, chat_id: str) -> None:
        """`drain` for background threads: a failure is logged; the worker tries again."""
        try:
            self.drain(chat_id)
        except Exception as error:
            log_failure(log, "applying an update failed; the worker will retry", error)

    def drain(self, chat_id: str) -> int:
        """Apply one chat's waiting updates in arrival order, then send its replies.

        Files are fetched before the turn's transaction, so no lock waits on the network. If
        another process applies the same row first, `Loket.process` says so and we go on.
        """
        applied = 0
        while True:
            with self.loket.sessions() as session:
                waiting = inbox.next_waiting(session, CHANNEL, chat_id)
            if waiting is None:
                break
            incoming = translate(waiting.payload)
            assert incoming is not None  # only translatable updates are accepted
            try:
                event = incoming.event or self._download(incoming)
                done = self.loket.process(
                    CHANNEL, chat_id, event, waiting.key, inbox_row=waiting.id
                )
            except TelegramError:
                raise  # the network or Telegram: the update waits and is tried again
            except Exception as error:
                if not self._set_aside(waiting.id, chat_id):
                    raise
                log_failure(log, f"inbox row {waiting.id} set aside after repeated failures", error)
                continue
            if done:
                applied += 1
                failpoint("after-commit")
                if incoming.callback_id is not None:
                    self._acknowledge(incoming)
        self.flush(chat_id)
        return applied

    def _set_aside(self, row_id: int, chat_id: str) -> bool:
        """Count a failed attempt; after MAX_APPLY_ATTEMPTS set the update aside and apologise
        to the applicant, so one update that cannot be applied does not hold up their chat."""
        with self.loket.sessions() as session, session.begin():
            now = self.loket.now(session)
            if not inbox.record_failure(session, row_id, now, MAX_APPLY_ATTEMPTS):
                return False
            locale = chat_locale(session, CHANNEL, chat_id) or "id"
            with use_locale(locale):
                text = _(
                    "Maaf, pesan Anda tadi tidak bisa kami proses. Silakan kirim lagi, atau "
                    "ketik /mulai untuk kembali ke menu."
                )
            queue_message(
                session, CHANNEL, chat_id, {**Outbound(text).to_payload(), "locale": locale}, now
            )
        return True

    def drain_waiting(
        self, received_before: datetime | None = None, pool: ThreadPoolExecutor | None = None
    ) -> int:
        """Apply every chat's updates accepted before a time and left waiting (a process died
        between the 200 and the turn, or web processes only accept); return how many were
        applied. With a pool, chats are drained side by side (each chat still in order)."""
        with self.loket.sessions() as session:
            before = received_before or db_now(session)
            chats = inbox.waiting_chats(session, CHANNEL, before)

        def one(chat_id: str) -> int:
            try:
                return self.drain(chat_id)
            except Exception as error:  # one stuck chat must not hold up the others
                log_failure(log, "applying a waiting update failed", error)
                return 0

        return sum(pool.map(one, chats) if pool is not None else map(one, chats))

    def _download(self, incoming: Incoming) -> Inbound:
        """Fetch a photo or file, unless Telegram already says it is too large.

        A file Telegram refuses to serve (expired, unknown) becomes an empty upload, which the
        document step refuses with a request to send it again; a network failure is raised, so
        the update waits and is tried again.
        """
        assert incoming.file_id is not None
        limit = self.loket.settings.max_upload_bytes
        if incoming.file_size is not None and incoming.file_size > limit:
            return Inbound.file(b"", incoming.filename, declared_size=incoming.file_size)

        async def fetch() -> bytes:
            telegram_file = await self.runner.bot.get_file(incoming.file_id or "")
            return bytes(await telegram_file.download_as_bytearray())

        try:
            data = self.runner.call(fetch())
        except BadRequest as error:
            log.warning("file not available: %s", type(error).__name__)
            data = b""
        return Inbound.file(data, incoming.filename, declared_size=incoming.file_size)

    def _acknowledge(self, incoming: Incoming) -> None:
        """Answer the button press and fold the question, keeping the chosen answer visible."""
        bot = self.runner.bot
        try:
            self.runner.call(bot.answer_callback_query(incoming.callback_id or ""))
            message = incoming.callback_message or {}
            label = None
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if (
                        incoming.event is not None
                        and button.get("callback_data") == incoming.event.text
                    ):
                        label = button.get("text")
            if message.get("message_id") and label:
                self.runner.call(
                    bot.edit_message_text(
                        f"{message.get('text', '')}\n\n✓ {label}"[:TEXT_LIMIT],
                        chat_id=incoming.chat_id,
                        message_id=message["message_id"],
                    )
                )
        except TelegramError as error:  # an old or already edited message: harmless
            log.info("acknowledge skipped: %s", type(error).__name__)

    # ---- outbound ----------------------------------------------------------------------

    def flush(self, chat_id: str) -> int:
        """Send one chat's pending outbox rows in order, until none is left; return the count.

        Each delivered row is recorded before the next is sent; the last one's record and the
        next claim share a transaction (one clock reading per round).
        """
        sent = 0
        done: tuple[int, str] | None = None
        while True:
            with self.loket.sessions() as session, session.begin():
                now = self.loket.now(session)
                if done is not None:
                    mark_sent(session, done[0], done[1], now)
                rows = claim_outbox(session, CHANNEL, chat_id, now, CLAIM_FOR)
            done = None
            if not rows:
                return sent
            for position, (row_id, payload) in enumerate(rows):
                try:
                    message_id = str(self._send(chat_id, payload))
                except TelegramError as error:
                    log.warning("send failed row=%s: %s", row_id, type(error).__name__)
                    # Flood control: keep the chat's rows until Telegram's retry_after, so no
                    # sender (this one or the worker) retries early and deepens the throttling.
                    wait = error.retry_after if isinstance(error, RetryAfter) else None
                    with self.loket.sessions() as session, session.begin():
                        later = None
                        if wait is not None:
                            seconds = wait.total_seconds() if isinstance(wait, timedelta) else wait
                            later = self.loket.now(session) + timedelta(seconds=seconds)
                        release_claim(session, [r for r, _p in rows[position:]], later)
                    return sent
                sent += 1
                if position < len(rows) - 1:
                    with self.loket.sessions() as session, session.begin():
                        mark_sent(session, row_id, message_id, now)
                else:
                    done = (row_id, message_id)

    def _send(self, chat_id: str, payload: dict[str, Any]) -> int:
        message = Outbound.from_payload(payload)
        bot = self.runner.bot
        with use_locale(str(payload.get("locale") or "id")):
            markup = keyboard(message)
        parts = chunks(message.text)
        last_id = 0
        for number, part in enumerate(parts):
            final = number == len(parts) - 1
            self.pacer.wait(chat_id)
            sent = self.runner.call(
                bot.send_message(chat_id, part, reply_markup=markup if final else None)
            )
            last_id = sent.message_id
        if message.qr:
            self.pacer.wait(chat_id)
            photo = self.runner.call(bot.send_photo(chat_id, qr_png(message.qr)))
            last_id = photo.message_id
        return last_id

    def apply_forever(
        self, seconds: float | None = None, threads: int = 4, idle_sleep: float = 0.05
    ) -> int:
        """Apply accepted updates as they come (`python -m bot apply`), `threads` chats at a
        time, for `seconds` or until stopped; return how many were applied."""
        stop_at = None if seconds is None else time.monotonic() + seconds
        applied = 0
        with ThreadPoolExecutor(threads, "telegram-apply") as pool:
            while stop_at is None or time.monotonic() < stop_at:
                done = self.drain_waiting(pool=pool)
                applied += done
                if done == 0:
                    time.sleep(idle_sleep)
        return applied

    def flush_pending(self, grace: timedelta = timedelta(seconds=30)) -> int:
        """Apply updates left waiting longer than `grace` and deliver every chat's leftovers
        (the worker calls this); return the number of messages sent."""
        with self.loket.sessions() as session:
            before = db_now(session) - grace  # the clock `received_at` was written with
        self.drain_waiting(before)
        with self.loket.sessions() as session:
            chats = pending_chats(session, CHANNEL)
        return sum(self.flush(chat) for chat in chats)

    # ---- set-up ------------------------------------------------------------------------

    def set_commands(self) -> None:
        """Publish the command menu in Indonesian (the default) and English."""
        for language in ("id", "en"):
            with use_locale(language):
                commands = [BotCommand(name, _(description)) for name, description in COMMANDS]
            self.runner.call(
                self.runner.bot.set_my_commands(
                    commands, language_code=None if language == "id" else language
                )
            )

    def set_webhook(self, public_url: str, secret: str) -> None:
        """Ask Telegram to deliver updates to our endpoint with the secret header."""
        self.runner.call(
            self.runner.bot.set_webhook(
                public_url.rstrip("/") + "/telegram/webhook",
                secret_token=secret,
                allowed_updates=["message", "callback_query"],
            )
        )

    def poll(self, rounds: int | None = None, timeout: int = 25) -> int:
        """Long-poll for updates; the offset moves only past updates already applied."""
        self.runner.call(self.runner.bot.delete_webhook())
        offset: int | None = None
        handled = 0
        done = 0
        while rounds is None or done < rounds:
            done += 1
            updates = self.runner.call(
                self.runner.bot.get_updates(
                    offset=offset, timeout=timeout, allowed_updates=["message", "callback_query"]
                ),
                timeout=timeout + 30,
            )
            for update in updates:
                try:
                    self.handle_update(update.to_dict())
                except Exception as error:
                    # Not acknowledged: the same update comes again in the next round.
                    log_failure(log, "update failed; will retry", error)
                    break
                offset = update.update_id + 1
                handled += 1
        return handled
