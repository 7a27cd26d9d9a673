"""The Telegram channel on python-telegram-bot: translate updates, apply them once, send replies.

Flask under gunicorn has no long-lived event loop and python-telegram-bot's `Bot` is async, so
each process keeps one `Bot` on one event loop in a background thread (`BotRunner`); request
threads and the poller stay synchronous and hand it only HTTP calls, so no database work ever
runs on the loop. An update is first accepted into the inbox (one INSERT keyed by its update_id:
all the webhook waits for), then applied exactly once, in order per chat (`Loket.process` marks
the inbox row and records the update_id with the turn's effects); every reply goes through the
outbox: sent right after commit, and by the worker if a crash left it unsent. What cannot be
read (`telegram_updates.Unreadable`) or delivered (a bounded number of retries with backoff, a
400, a chat that blocked the bot) is set aside, so it never holds up the chat behind it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
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
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from bot.channels.telegram_updates import Incoming, Unreadable, loads, translate
from bot.core.messages import EventKind, Expect, Inbound, Outbound, merge
from bot.faults import failpoint
from bot.i18n import N_, _, use_locale
from bot.logsafe import log_failure
from bot.metrics import refused
from bot.notices import chat_locale
from bot.privacy import export_file
from bot.qr import qr_png
from bot.release_gate import GateShaper, gate_note
from bot.service import Loket
from bot.settings import Settings
from bot.shared import SharedState
from bot.waiting_room import TURN_ENTRY, turn_delivered
from storage import inbox
from storage.booking import (
    claim_outbox,
    db_now,
    mark_sent,
    pending_chats,
    queue_message,
    release_claim,
)
from storage.conversations import lock_conversation
from storage.inbox import Accepted
from storage.outbox import (
    count_failure,
    is_inactive,
    latest_question,
    mark_inactive,
    set_aside,
    set_aside_chat,
)

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO, and Bot API URLs carry the bot token; the library's
# DEBUG lines print message texts, which may hold a NIK. Neither belongs in our logs.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("telegram").setLevel(logging.INFO)

CHANNEL = "telegram"
CALLBACK_LIMIT = 64  # bytes Telegram allows in callback_data
TEXT_LIMIT = 4096
ALERT_LIMIT = 200  # characters an answerCallbackQuery alert shows
CLAIM_FOR = timedelta(seconds=30)
T = TypeVar("T")

MAX_APPLY_ATTEMPTS = 5  # failures (not network) before an update is set aside
MAX_SEND_ATTEMPTS = 10  # failed sends of one outbox row before it is set aside (about 2 hours)
FIRST_RETRY = timedelta(seconds=15)
LAST_RETRY = timedelta(hours=1)
FOLD_LIMIT = 200  # waiting updates of one chat read at once to fold repeats of the oldest
WORKER_DRAIN_CHATS = 64  # chats with stale waiting updates a worker round applies


def send_backoff(attempts: int) -> timedelta:
    """How long to wait after the n-th failed send of a row: 15 s, doubling, at most 1 hour."""
    doublings = min(max(attempts - 1, 0), 20)
    return min(FIRST_RETRY * (1 << doublings), LAST_RETRY)


COMMANDS = (
    ("start", N_("Mulai dan menu utama")),
    ("daftar", N_("Daftar paspor")),
    ("status", N_("Status permohonan dan pembayaran")),
    ("jadwal", N_("Pilih jadwal dan kode billing")),
    ("antrean", N_("Nomor antrean dan giliran")),
    ("langganan", N_("Kabar kuota dan paspor simpatik")),
    ("berhenti", N_("Berhenti berlangganan kabar kuota")),
    ("grup", N_("Kode grup Eazy Passport")),
    ("datasaya", N_("Data pribadi saya dan salinannya")),
    ("hapusdata", N_("Hapus data pribadi saya")),
    ("batal", N_("Batalkan")),
    ("bahasa", N_("Ganti bahasa")),
    ("bantuan", N_("Bantuan")),
)


def repeats_of(head: Incoming, backlog: list[Accepted]) -> list[tuple[int, Incoming]]:
    """Return the waiting updates right after `head` that repeat it: taps on the same message
    (its question is answered by the first tap; later taps there are on an answered question),
    or the same command typed again. The run stops at the first update that is something else.
    """
    repeats: list[tuple[int, Incoming]] = []
    for row in backlog:
        try:
            other = translate(row.payload)
        except Unreadable:
            break
        if other is None or not same_turn(head, other):
            break
        repeats.append((row.id, other))
    return repeats


def same_turn(first: Incoming, second: Incoming) -> bool:
    """Tell whether `second` asks nothing `first` has not: a tap on the same message, or the
    same command typed again (answers, files, contacts and locations always count)."""
    if first.event is None or second.event is None:
        return False  # a file: each one is an answer of its own
    if first.callback_id is not None or second.callback_id is not None:
        if first.callback_id is None or second.callback_id is None:
            return False
        tapped = (first.callback_message or {}).get("message_id")
        return tapped is not None and tapped == (second.callback_message or {}).get("message_id")
    # Only a repeated command (/start, /jadwal): a typed answer repeated ("1", then "1") can
    # answer two questions in a row, typed ahead before the first reply came.
    return (
        first.event.kind is EventKind.TEXT
        and second.event.kind is EventKind.TEXT
        and first.event.text.startswith("/")
        and first.event.text == second.event.text
    )


class TapShaper:
    """Shape a turn's replies for Telegram: when a tap's turn begins with short notices (the
    seat just went, a queue position), they answer the tap as its alert and the question after
    them replaces the tapped message, so the answer sends no new message and does not wait
    behind the 30-a-second limit. Anything else is merged into one message as usual."""

    def __init__(self, incoming: Incoming) -> None:
        self.incoming = incoming
        self.answers_tap = False

    def __call__(self, replies: list[Outbound]) -> list[Outbound | dict[str, Any]]:
        """Return the outbox payloads of one turn's replies."""
        callback_id = self.incoming.callback_id
        tapped = (self.incoming.callback_message or {}).get("message_id")
        notices = [reply for reply in replies if reply.notice]
        if callback_id is None or not notices or replies[: len(notices)] != notices:
            return list(merge(replies))
        notice = "\n\n".join(reply.text for reply in notices)
        if len(notice) > ALERT_LIMIT:
            return list(merge(replies))
        self.answers_tap = True
        shaped: list[Outbound | dict[str, Any]] = [
            {**Outbound(notice).to_payload(), "answer_tap": callback_id}
        ]
        rest = merge(replies[len(notices) :])
        for number, reply in enumerate(rest):
            editable = (
                number == 0 and type(tapped) is int and not (reply.qr or reply.copy or reply.export)
            )
            editable = (
                editable and reply.expects is not Expect.CONTACT and len(reply.text) <= TEXT_LIMIT
            )
            shaped.append({**reply.to_payload(), "edit": tapped} if editable else reply)
        return shaped


def set_aside_unreadable(update: Any, error: Unreadable) -> None:
    """Log an update we cannot read by its id and what was wrong, never its content."""
    update_id = update.get("update_id") if isinstance(update, dict) else None
    shown = update_id if type(update_id) is int else "without id"
    log.warning("unreadable update %s set aside: %s", shown, error)


class TolerantRequest(HTTPXRequest):
    """The poller's HTTP client: a response nested too deeply still parses (see `loads`)."""

    @staticmethod
    def parse_json_payload(payload: bytes) -> Any:
        """Parse like python-telegram-bot, without its RecursionError or its logging of data."""
        try:
            return loads(payload)
        except ValueError as error:
            raise TelegramError("Invalid server response") from error


class RawBot(Bot):
    """A `Bot` that also hands updates over as plain JSON, so a malformed one is read (and
    set aside) by us instead of failing the whole batch in the library's parser."""

    async def get_raw_updates(
        self, offset: int | None, timeout: int, allowed_updates: list[str]
    ) -> list[Any]:
        """Call getUpdates and return its result unparsed."""
        data = {"offset": offset, "timeout": timeout, "allowed_updates": allowed_updates}
        result = await self._post("getUpdates", data, read_timeout=timeout + 40)
        return result if isinstance(result, list) else []


class BotRunner:
    """One `Bot` and its event loop in a background thread, for synchronous callers."""

    def __init__(self, settings: Settings) -> None:
        assert settings.telegram_token, "TELEGRAM_BOT_TOKEN is not set"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="telegram-bot", daemon=True
        )
        self.thread.start()
        self.bot = RawBot(
            settings.telegram_token,
            base_url=settings.telegram_base_url,
            base_file_url=settings.telegram_base_file_url,
            request=HTTPXRequest(connection_pool_size=32),
            get_updates_request=TolerantRequest(connection_pool_size=2, read_timeout=40),
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


HOLD_KEY = "pace:hold"  # every sender waits until this time after a 429
EDGE = 0.1  # seconds at the end of each second in which no send starts
HEADROOM = 0.05  # share of the overall budget left unused (30 a second: 28 are sent)


class Pacer:
    """Keep sends under the Bot API's limits, across every process (shared state counts).

    Telegram allows about 30 messages a second overall and about one a second to one chat;
    a sender waits for the next second rather than collect 429s, starts none in a second's
    last tenth, and after a 429 every sender waits out its retry_after. Counters live in shared
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
        # Keep 5% of the overall budget for sends decided in one second that reach Telegram in
        # the next (a busy machine delays a request by tens of milliseconds or more).
        self.per_second = max(1, per_second - int(per_second * HEADROOM + 0.5))
        self.per_chat = per_chat
        self.clock = clock
        self.sleep = sleep

    def hold_all(self, seconds: float) -> None:
        """Stop every sender for `seconds` (Telegram answered 429 with this retry_after)."""
        self.shared.set(HOLD_KEY, str(self.clock() + seconds), seconds + 1)

    def wait(self, chat_id: str) -> None:
        """Return when one more message to `chat_id` fits in the current second."""
        for _attempt in range(600):  # ten minutes at most, then send anyway
            now = self.clock()
            held = self.shared.get(HOLD_KEY)
            if held is not None and float(held) > now:
                self.sleep(float(held) - now)
                continue
            second = int(now)
            if now - second > 1 - EDGE:
                # A send decided in a second's last moment reaches Telegram in the next one.
                self.sleep(second + 1 - now)
                continue
            if self.shared.incr(f"pace:chat:{chat_id}:{second}", 2) <= self.per_chat and (
                self.shared.incr(f"pace:all:{second}", 2) <= self.per_second
            ):
                return
            self.sleep(second + 1 - now)
        log.warning("pacing gave up waiting")


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
        self.send_threads = max(1, settings.telegram_send_threads)

    # ---- inbound -----------------------------------------------------------------------

    def handle_update(self, update: dict[str, Any]) -> bool:
        """Accept one update and apply what its chat has waiting now; False if a repeat."""
        chat_id, new = self.accept(update)
        if chat_id is not None:
            self.drain(chat_id)
        return new

    def accept(self, update: dict[str, Any], lane: int = 0) -> tuple[str | None, bool]:
        """Store an update in the inbox, unless it was seen; return its chat and whether new.

        This is all the webhook waits for: one INSERT keyed by the update_id. Updates we do not
        handle (groups, edits, stickers...) are not stored and have no chat. `lane` 1 holds
        taps already decided and answered at accept time (`bot.release_gate`).
        """
        try:
            incoming = translate(update)
        except Unreadable as error:
            set_aside_unreadable(update, error)
            return None, False
        if incoming is None:
            return None, False
        key = f"{CHANNEL}:{incoming.update_id}"
        new = inbox.accept_now(
            self.loket.autocommit_db, CHANNEL, key, incoming.chat_id, update, lane
        )
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

        A flood is answered once: the waiting repeats of the oldest update (taps on the same
        question, the same text typed again) are folded into its turn, marked applied in the
        same transaction without a turn or a reply of their own; every tap is still answered
        (`answerCallbackQuery`), so no button keeps spinning. Files are fetched before the
        turn's transaction, so no lock waits on the network. If another process applies the
        same row first, `Loket.process` says so and we go on.
        """
        applied = 0
        while True:
            with self.loket.sessions() as session:
                backlog = inbox.waiting(session, CHANNEL, chat_id, FOLD_LIMIT)
            if not backlog:
                break
            waiting = backlog[0]
            incoming: Incoming | None = None
            try:
                incoming = translate(waiting.payload)
                if incoming is None:  # accepted by an older version that read it differently
                    raise Unreadable("not an update we handle")
                repeats = repeats_of(incoming, backlog[1:])
                note = gate_note(waiting.payload)  # answered at accept time (release_gate)
                if note is None and self._stale_tap(chat_id, incoming):
                    self._answer_stale(chat_id, incoming, waiting.id, repeats)
                    continue
                event = incoming.event or self._download(incoming)
                shaper: TapShaper | GateShaper = (
                    TapShaper(incoming) if note is None else GateShaper(incoming, note)
                )
                done = self.loket.process(
                    CHANNEL, chat_id, event, waiting.key, inbox_row=waiting.id,
                    folded=[row_id for row_id, _repeat in repeats], shape=shaper,
                )  # fmt: skip
            except TelegramError:
                raise  # the network or Telegram: the update waits and is tried again
            except Exception as error:
                give_up_now = isinstance(error, Unreadable)  # trying again would not help
                if not self._set_aside(waiting.id, chat_id, give_up_now):
                    raise
                log_failure(log, f"inbox row {waiting.id} set aside after repeated failures", error)
                if incoming is not None and incoming.callback_id is not None:
                    self._answer_tap(incoming.callback_id)  # the apology comes as a message
                continue
            if done:
                applied += 1
                failpoint("after-commit")
                if incoming.callback_id is not None and not shaper.answers_tap:
                    self._acknowledge(incoming)
                answered = {row.id for row in backlog if gate_note(row.payload) is not None}
                for row_id, repeat in repeats:
                    if repeat.callback_id is not None and row_id not in answered:
                        self._answer_tap(repeat.callback_id)
        self.flush(chat_id)
        return applied

    def _stale_tap(self, chat_id: str, incoming: Incoming) -> bool:
        """Tell whether a tap is on a button of an older message than the chat's current
        question, with a value that question does not offer (its question is no longer
        current). A tap on the current question, or on an older copy of the same buttons,
        is a turn as always."""
        tapped = (incoming.callback_message or {}).get("message_id")
        if incoming.callback_id is None or incoming.event is None or type(tapped) is not int:
            return False
        with self.loket.sessions() as session:
            latest = latest_question(session, CHANNEL, chat_id)
        if latest is None:
            return False
        question_id, values = latest
        return tapped < question_id and incoming.event.text not in values

    def _answer_stale(
        self, chat_id: str, incoming: Incoming, row_id: int, repeats: list[tuple[int, Incoming]]
    ) -> None:
        """Answer a stale tap with an alert on the tap itself (no message: the current
        question is already the latest one in the chat), and mark it applied without a turn."""
        with self.loket.sessions() as session, session.begin():
            now = self.loket.now(session)
            lock_conversation(session, CHANNEL, chat_id)
            if not inbox.mark_applied(session, row_id, now):
                return  # another process took it up
            inbox.mark_folded(session, [other for other, _repeat in repeats], now)
            with use_locale(chat_locale(session, CHANNEL, chat_id)):
                text = _("Tombol ini sudah tidak berlaku, silakan pilih dari pesan terbaru.")
        refused("stale_button")
        self._answer_tap(incoming.callback_id or "", text, alert=True)
        for _other, repeat in repeats:
            if repeat.callback_id is not None:
                self._answer_tap(repeat.callback_id)

    def _set_aside(self, row_id: int, chat_id: str, at_once: bool = False) -> bool:
        """Count a failed attempt; after MAX_APPLY_ATTEMPTS (or at once) set the
        update aside and apologise to the applicant, so one update that cannot be applied does
        not hold up their chat."""
        with self.loket.sessions() as session, session.begin():
            now = self.loket.now(session)
            give_up_after = 1 if at_once else MAX_APPLY_ATTEMPTS
            if not inbox.record_failure(session, row_id, now, give_up_after):
                return False
            locale = chat_locale(session, CHANNEL, chat_id)
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
        self,
        received_before: datetime | None = None,
        pool: ThreadPoolExecutor | None = None,
        limit: int | None = None,
    ) -> int:
        """Apply every chat's updates accepted before a time and left waiting (a process died
        between the 200 and the turn, or web processes only accept); return how many were
        applied. With a pool, chats are drained side by side (each chat still in order);
        with a limit, only the first `limit` chats (ordinary turns first), so a caller that
        loops sees new ordinary turns before the rest of a long backlog of decided taps."""
        with self.loket.sessions() as session:
            before = received_before or db_now(session)
            chats = inbox.waiting_chats(session, CHANNEL, before, limit)

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

    def _answer_tap(self, callback_id: str, text: str | None = None, alert: bool = False) -> None:
        """Answer a button press (stops its spinner); with a text, as a notice or an alert."""
        try:
            self.runner.call(
                self.runner.bot.answer_callback_query(callback_id, text=text, show_alert=alert)
            )
        except TelegramError as error:  # too old, or answered already: nothing to stop
            log.info("tap answer skipped: %s", type(error).__name__)

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

    def flush(self, chat_id: str, limit: int | None = None) -> int:
        """Send one chat's pending outbox rows in order, until none is left (or `limit` were
        sent: the rest are given back); return the count.

        Each delivered row is recorded before the next is sent; the last one's record and the
        next claim share a transaction (one clock reading per round). A row that cannot be
        delivered is retried with backoff a bounded number of times, then set aside, and the
        chat's later rows go on; a chat that blocked the bot gets nothing until it writes again.
        """
        sent = 0
        done: tuple[int, str] | None = None
        left: list[int] = []  # claimed rows given back unsent once `limit` is reached
        while True:
            if limit is not None and sent >= limit:
                with self.loket.sessions() as session, session.begin():
                    if done is not None:
                        mark_sent(session, done[0], done[1], self.loket.now(session))
                    release_claim(session, left)
                failpoint("after-record")
                return sent
            with self.loket.sessions() as session, session.begin():
                now = self.loket.now(session)
                if done is not None:
                    mark_sent(session, done[0], done[1], now)
                if is_inactive(session, CHANNEL, chat_id):
                    set_aside_chat(session, CHANNEL, chat_id, "inactive", now)
                    return sent
                rows = claim_outbox(session, CHANNEL, chat_id, now, CLAIM_FOR)
            done = None
            if not rows:
                return sent
            for position, (row_id, payload) in enumerate(rows):
                if limit is not None and sent >= limit:
                    left = [r for r, _p in rows[position:]]
                    break
                try:
                    message_id = str(self._send(chat_id, payload))
                    if TURN_ENTRY in payload:  # "Giliran Anda": the turn starts now
                        turn_delivered(self.loket.sessions, payload, now)
                except Exception as error:
                    if not self._failed(chat_id, [r for r, _p in rows[position:]], error):
                        return sent
                    continue  # this row is set aside; the next ones still go out
                sent += 1
                if position < len(rows) - 1 and (limit is None or sent < limit):
                    with self.loket.sessions() as session, session.begin():
                        mark_sent(session, row_id, message_id, now)
                    failpoint("after-record")
                else:
                    done = (row_id, message_id)

    def _failed(self, chat_id: str, row_ids: list[int], error: Exception) -> bool:
        """Deal with a failed send of `row_ids[0]` (the rest are the chat's claimed rows after
        it); return True when the sender may go on with the rest.

        Flood control (429) holds the chat until Telegram's `retry_after`, so no sender retries
        early and deepens the throttling; 403 (blocked, deactivated) marks the chat inactive and
        sets its rows aside; another 400 is permanent for this row; anything else (network,
        5xx) is retried with backoff, at most MAX_SEND_ATTEMPTS times.
        """
        row_id = row_ids[0]
        kind = type(error).__name__
        with self.loket.sessions() as session, session.begin():
            now = self.loket.now(session)
            if isinstance(error, RetryAfter):
                wait = error.retry_after
                seconds = wait.total_seconds() if isinstance(wait, timedelta) else wait
                release_claim(session, row_ids, now + timedelta(seconds=seconds))
                self.pacer.hold_all(seconds)  # Telegram's wait holds for every chat
                log.warning("send held by flood control row=%s", row_id)
                return False
            if isinstance(error, Forbidden) or (
                isinstance(error, BadRequest) and "chat not found" in error.message.lower()
            ):
                mark_inactive(session, CHANNEL, chat_id, "blocked", now)
                set_aside_chat(session, CHANNEL, chat_id, "blocked", now)
                log.warning("chat inactive (%s); its messages set aside row=%s", kind, row_id)
                return False
            if isinstance(error, BadRequest):
                set_aside(session, [row_id], "rejected", now)
                log.warning("send rejected (%s), row set aside row=%s", kind, row_id)
                return True
            attempts = count_failure(session, row_id)
            if attempts >= MAX_SEND_ATTEMPTS:
                set_aside(session, [row_id], "gave_up", now)
                log.warning("send failed %s times (%s), row set aside row=%s",
                            attempts, kind, row_id)  # fmt: skip
                return True
            release_claim(session, row_ids, now + send_backoff(attempts))
        if isinstance(error, TelegramError):
            log.warning("send failed row=%s attempt=%s: %s", row_id, attempts, kind)
        else:  # not the network: a bug; the traceback helps, the text might hold data
            log_failure(log, f"send failed row={row_id} attempt={attempts}", error)
        return False

    def _send(self, chat_id: str, payload: dict[str, Any]) -> int:
        message = Outbound.from_payload(payload)
        bot = self.runner.bot
        with use_locale(str(payload.get("locale") or "id")):
            markup = keyboard(message)
        if payload.get("answer_tap"):
            try:  # a notice on the tap: no message, no pacing
                self.runner.call(bot.answer_callback_query(
                    str(payload["answer_tap"]), text=message.text, show_alert=True))  # fmt: skip
                return 0
            except BadRequest:  # the tap is too old to answer: say it in a message instead
                log.info("tap too old for its notice; sent as a message")
        elif payload.get("edit") and (markup is None or isinstance(markup, InlineKeyboardMarkup)):
            self.pacer.wait(chat_id)
            try:
                self.runner.call(bot.edit_message_text(
                    message.text, chat_id=chat_id, message_id=int(payload["edit"]),
                    reply_markup=markup))  # fmt: skip
                return int(payload["edit"])
            except BadRequest:  # the message is gone or too old to edit: send a new one
                log.info("tapped message not editable; sent as a new message")
        parts = chunks(message.text)
        last_id = 0
        for number, part in enumerate(parts):
            final = number == len(parts) - 1
            self.pacer.wait(chat_id)
            sent = self.runner.call(
                bot.send_message(chat_id, part, reply_markup=markup if final else None)
            )
            last_id = sent.message_id
        keyboard_id = last_id  # the message that carries the buttons (recorded: stale taps)
        if message.qr:
            self.pacer.wait(chat_id)
            photo = self.runner.call(bot.send_photo(chat_id, qr_png(message.qr)))
            last_id = photo.message_id
        if message.export:
            # The person's data as a document, read now (never stored in the outbox): what
            # is held at sending time, nothing if it was erased meanwhile.
            with self.loket.sessions() as session:
                name, data = export_file(session, CHANNEL, chat_id, self.loket.now(session))
            self.pacer.wait(chat_id)
            document = self.runner.call(
                bot.send_document(chat_id, data, filename=name, disable_content_type_detection=True)
            )
            last_id = document.message_id
        return keyboard_id if markup is not None else last_id

    def apply_forever(
        self, seconds: float | None = None, threads: int = 4, idle_sleep: float = 0.05
    ) -> int:
        """Apply accepted updates as they come (`python -m bot apply`), `threads` chats at a
        time, for `seconds` or until stopped; return how many were applied."""
        stop_at = None if seconds is None else time.monotonic() + seconds
        applied = 0
        with ThreadPoolExecutor(threads, "telegram-apply") as pool:
            while stop_at is None or time.monotonic() < stop_at:
                done = self.drain_waiting(pool=pool, limit=threads * 4)
                applied += done
                if done == 0:
                    time.sleep(idle_sleep)
        return applied

    def flush_pending(self, grace: timedelta = timedelta(seconds=30)) -> int:
        """Apply updates left waiting longer than `grace` and deliver every chat's leftovers
        (the worker calls this); return the number of messages sent."""
        with self.loket.sessions() as session:
            before = db_now(session) - grace  # the clock `received_at` was written with
        # A bounded number of chats a round (ordinary turns first): behind thousands of taps
        # decided at accept time, the worker's round (admissions, draws) must come round again.
        self.drain_waiting(before, limit=WORKER_DRAIN_CHATS)
        return self.deliver_pending()

    def deliver_pending(self) -> int:
        """Deliver every chat's waiting rows, one row per chat per pass, chats side by side
        on the send threads, until a pass sends nothing; return the number sent.

        One row per chat per pass keeps a thread from idling on one chat's one-a-second pace
        while thousands of other chats wait (an announcement); the global pace still holds.
        """
        sent = 0
        with ThreadPoolExecutor(self.send_threads, "telegram-flush") as pool:
            while True:
                with self.loket.sessions() as session:
                    chats = pending_chats(session, CHANNEL)
                if not chats:
                    return sent
                done = sum(pool.map(lambda chat: self.flush_safely(chat, 1), chats))
                sent += done
                if done == 0:  # what is left waits for a retry time (backoff, flood control)
                    return sent

    def flush_safely(self, chat_id: str, limit: int | None = None) -> int:
        """Flush one chat, logging (not raising) an unexpected failure: the rest go on."""
        try:
            return self.flush(chat_id, limit)
        except Exception as error:
            log_failure(log, "flush failed", error)
            return 0

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
                self.runner.bot.get_raw_updates(offset, timeout, ["message", "callback_query"]),
                timeout=timeout + 30,
            )
            for update in updates:
                update_id = update.get("update_id") if isinstance(update, dict) else None
                if type(update_id) is not int:
                    # Without a readable id it cannot be acknowledged (Telegram never sends one).
                    set_aside_unreadable(update, Unreadable("update_id is not an integer"))
                    continue
                try:
                    self.handle_update(update)  # what cannot be read is set aside there
                except Exception as error:
                    # Not acknowledged: the same update comes again in the next round.
                    log_failure(log, "update failed; will retry", error)
                    break
                offset = update_id + 1
                handled += 1
        return handled
