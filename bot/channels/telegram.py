"""The Telegram channel: translate Bot API updates, shape keyboards and chunks, call the Bot
API through python-telegram-bot; everything else is the delivery layer's (bot/delivery/).

Flask under gunicorn has no long-lived event loop and python-telegram-bot's `Bot` is async, so
each process keeps one `Bot` on one event loop in a background thread (`BotRunner`); request
threads and the poller stay synchronous and hand it only HTTP calls, so no database work ever
runs on the loop. `TelegramTransport` is the delivery layer's `Transport` for the Bot API;
`TelegramChannel` is the layer with Telegram's own set-up (commands, webhook, polling).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import select
import ssl
import threading
import time
from collections.abc import Coroutine
from datetime import timedelta
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import certifi
import httpx
from telegram import (
    Bot,
    BotCommand,
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot.channels.telegram_updates import loads, translate
from bot.core.messages import Expect, Outbound
from bot.delivery.layer import MAX_APPLY_ATTEMPTS, MAX_SEND_ATTEMPTS, Delivery, send_backoff
from bot.delivery.pacing import Pacer
from bot.delivery.transport import (
    ChatBlocked,
    FileRef,
    Incoming,
    Limits,
    Recipient,
    Refused,
    Rendered,
    RetryLater,
    TooLarge,
    TransportError,
    Unreadable,
)
from bot.i18n import N_, _, use_locale
from bot.logsafe import log_failure
from bot.qr import qr_png
from bot.service import Loket
from bot.settings import Settings

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO, and Bot API URLs carry the bot token; the library's
# DEBUG lines print message texts, which may hold a NIK. Neither belongs in our logs.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("telegram").setLevel(logging.INFO)

CHANNEL = "telegram"
CALLBACK_LIMIT = 64  # bytes Telegram allows in callback_data
TEXT_LIMIT = 4096
ALERT_LIMIT = 200  # characters an answerCallbackQuery alert shows
T = TypeVar("T")

# Re-exported: the delivery layer's bounds and pacer, as Telegram uses them.
__all__ = [
    "MAX_APPLY_ATTEMPTS",
    "MAX_SEND_ATTEMPTS",
    "BotRunner",
    "Pacer",
    "TelegramChannel",
    "TelegramTransport",
    "Unreadable",
    "keyboard",
    "send_backoff",
    "translate",
]


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
        self.closed = False

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the bot's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Shut the bot down and stop the loop (once; later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.call(self.bot.shutdown(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


class BotApi:
    """The Bot API methods every turn calls (sendMessage, editMessageText,
    answerCallbackQuery) in the calling thread, on a small pool of kept-alive connections.

    Through `BotRunner` each call also hopped to the bot's loop thread and went through the
    async HTTP stack and python-telegram-bot's objects: about 2.8 ms of CPU a call, against
    1.3-1.8 ms for a synchronous httpx client and 0.5 ms for the standard library's
    `http.client` (bench/channel_cpu.py). So `http.client` it is, with certifi's CA bundle
    (what httpx verifies against); a connection idle for KEEPALIVE seconds, or closed by the
    server, is not reused (as httpx does). Where the environment names a proxy for the Bot
    API, httpx goes through it as python-telegram-bot's client would. The request is what
    python-telegram-bot sends (form fields, non-text values as JSON) and a failure is the
    exception it raises for the same answer, so the delivery layer reads it the same way.
    Everything else (photos, documents, files, set-up, polling) still goes through the `Bot`.
    """

    def __init__(self, settings: Settings) -> None:
        url = urlsplit(f"{settings.telegram_base_url}{settings.telegram_token}/")
        self.url = url.geturl()
        self.path = url.path
        self.https = url.scheme == "https"
        self.host = url.hostname or ""
        self.port = url.port
        self.context = ssl.create_default_context(cafile=certifi.where()) if self.https else None
        proxies = getproxies()
        proxied = (url.scheme in proxies or "all" in proxies) and not proxy_bypass(self.host)
        # python-telegram-bot's defaults: 5 s to connect, read and write, 1 s for the pool.
        self.client = (
            httpx.Client(
                timeout=httpx.Timeout(5.0, pool=1.0),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
            )
            if proxied
            else None
        )
        self.idle: list[tuple[http.client.HTTPConnection, float]] = []
        self.lock = threading.Lock()
        self.closed = False

    def post(self, method: str, params: dict[str, Any]) -> Any:
        """Call a Bot API method and return its result; raise as python-telegram-bot would."""
        data = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in params.items()
            if value is not None
        }
        if self.client is not None:
            status, payload = self._through_proxy(method, data)
        else:
            status, payload = self._direct(method, urlencode(data).encode())
        try:
            body = json.loads(payload)
        except ValueError as error:
            if HTTPStatus.OK <= status <= 299:
                raise TelegramError("Invalid server response") from error
            body = {}
        if HTTPStatus.OK <= status <= 299:
            return body.get("result")
        raise api_error(status, body if isinstance(body, dict) else {})

    def _direct(self, method: str, body: bytes) -> tuple[int, bytes]:
        connection = self._take()
        try:
            connection.request("POST", self.path + method, body, FORM)
            response = connection.getresponse()
            payload = response.read()
        except TimeoutError as error:
            connection.close()
            raise TimedOut from error
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise NetworkError(f"http.client.{type(error).__name__}") from error
        if response.will_close:
            connection.close()
        else:
            self._give(connection)
        return response.status, payload

    def _through_proxy(self, method: str, data: dict[str, str]) -> tuple[int, bytes]:
        assert self.client is not None
        try:
            response = self.client.post(self.url + method, data=data)
        except httpx.TimeoutException as error:
            raise TimedOut from error
        except httpx.HTTPError as error:
            raise NetworkError(f"httpx.{type(error).__name__}") from error
        return response.status_code, response.content

    def _take(self) -> http.client.HTTPConnection:
        """A kept-alive connection still open at both ends, else a new one."""
        with self.lock:
            while self.idle:
                connection, since = self.idle.pop()
                if time.monotonic() - since <= KEEPALIVE and not _closed_by_server(connection):
                    return connection
                connection.close()
        if self.context is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=5.0, context=self.context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=5.0)

    def _give(self, connection: http.client.HTTPConnection) -> None:
        with self.lock:
            if not self.closed and len(self.idle) < 32:
                self.idle.append((connection, time.monotonic()))
                return
        connection.close()

    def close(self) -> None:
        """Close the connections."""
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, []
        for connection, _since in idle:
            connection.close()
        if self.client is not None:
            self.client.close()


KEEPALIVE = 5.0  # seconds an idle connection is kept (httpx's default)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _closed_by_server(connection: http.client.HTTPConnection) -> bool:
    """Whether the server closed a kept-alive connection (its socket reads as ready)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        ready, _w, _x = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


def api_error(code: int, body: dict[str, Any]) -> TelegramError:
    """The python-telegram-bot exception for a failed Bot API answer (its own mapping)."""
    try:
        message = f"{HTTPStatus(code).phrase} ({code})"
    except ValueError:
        message = f"Unknown HTTPError ({code})"
    message = str(body.get("description") or message)
    parameters = body.get("parameters")
    if isinstance(parameters, dict) and parameters:
        if parameters.get("migrate_to_chat_id"):
            return ChatMigrated(parameters["migrate_to_chat_id"])
        if parameters.get("retry_after"):
            return RetryAfter(parameters["retry_after"])
        message += f". The server response contained unknown parameters: {parameters}"
    if code == HTTPStatus.FORBIDDEN:
        return Forbidden(message)
    if code in (HTTPStatus.NOT_FOUND, HTTPStatus.UNAUTHORIZED):
        return InvalidToken(message)
    if code == HTTPStatus.BAD_REQUEST:
        return BadRequest(message)
    if code == HTTPStatus.CONFLICT:
        return Conflict(message)
    return NetworkError(message)


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


def transport_error(error: TelegramError, *, chat_gone: bool = True) -> TransportError:
    """The delivery layer's reading of a Bot API failure: flood control (429) is a wait for
    every sender, 403 (blocked, deactivated) and "chat not found" a chat that takes nothing
    (unless `chat_gone` is off: a tap answer or an edit falls back to a message), another 400
    a refusal for good, anything else (network, 5xx) a retry later."""
    kind = type(error).__name__
    if isinstance(error, RetryAfter):
        wait = error.retry_after
        seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
        return RetryLater(kind, seconds)
    if isinstance(error, Forbidden):
        return ChatBlocked(kind)
    if isinstance(error, BadRequest):
        if chat_gone and "chat not found" in error.message.lower():
            return ChatBlocked(kind)
        return Refused(kind)
    return RetryLater(kind)


class TelegramTransport:
    """The Bot API as the delivery layer's `Transport`."""

    name = CHANNEL

    def __init__(self, runner: BotRunner, settings: Settings) -> None:
        self.runner = runner
        self.api = BotApi(settings)
        self.limits = Limits(
            per_second=settings.telegram_rate,
            per_chat=settings.telegram_chat_rate,
            text=TEXT_LIMIT,
            alert=ALERT_LIMIT,
            edits=True,
        )

    def _call(self, coroutine: Coroutine[Any, Any, T], *, chat_gone: bool = True) -> T:
        """Run one Bot API call; its failure as the delivery layer's error."""
        try:
            return self.runner.call(coroutine)
        except TelegramError as error:
            raise transport_error(error, chat_gone=chat_gone) from error

    def _post(self, method: str, params: dict[str, Any], *, chat_gone: bool = True) -> Any:
        """Run one Bot API call on the synchronous client; its failure as the delivery
        layer's error."""
        try:
            return self.api.post(method, params)
        except TelegramError as error:
            raise transport_error(error, chat_gone=chat_gone) from error

    def read(self, payload: Any) -> Incoming | None:
        """Read a Bot API update (see `telegram_updates.translate`)."""
        return translate(payload)

    def render(self, message: Outbound, to: Recipient) -> Rendered:
        """Text chunks within 4096 characters, the keyboard on the last one, then the QR code
        as a photo and the data export as a document; an edit when the keyboard allows it."""
        markup = keyboard(message)
        parts: list[dict[str, Any]] = [{"text": part} for part in chunks(message.text)]
        parts[-1]["markup"] = markup
        buttons_at = len(parts) - 1 if markup is not None else None
        if message.qr:
            parts.append({"photo": qr_png(message.qr)})
        if message.export:
            name, data = to.export()
            parts.append({"document": data, "filename": name})
        editable = markup is None or isinstance(markup, InlineKeyboardMarkup)
        edit = {"text": message.text, "markup": markup} if editable else None
        return Rendered(parts, buttons_at, edit)

    def send(self, chat_id: str, payload: dict[str, Any]) -> str:
        """Send a text, a photo or a document; return its message id."""
        bot = self.runner.bot
        if "photo" in payload:
            sent = self._call(bot.send_photo(chat_id, payload["photo"]))
            return str(sent.message_id)
        if "document" in payload:
            sent = self._call(bot.send_document(
                chat_id, payload["document"], filename=payload["filename"],
                disable_content_type_detection=True))  # fmt: skip
            return str(sent.message_id)
        markup = payload.get("markup")
        params = {"chat_id": chat_id, "text": payload["text"],
                  "reply_markup": None if markup is None else markup.to_dict()}  # fmt: skip
        return str(self._post("sendMessage", params)["message_id"])

    def edit(self, chat_id: str, message_id: str, payload: dict[str, Any]) -> str:
        """Replace a message's text and inline keyboard."""
        markup = payload.get("markup")
        params = {"chat_id": chat_id, "message_id": int(message_id), "text": payload["text"],
                  "reply_markup": None if markup is None else markup.to_dict()}  # fmt: skip
        self._post("editMessageText", params, chat_gone=False)
        return message_id

    def answer_tap(self, tap_id: str, text: str | None = None, alert: bool = False) -> None:
        """Answer a callback query (stops the button's spinner), with a notice or alert."""
        params = {"callback_query_id": tap_id, "text": text, "show_alert": alert}
        self._post("answerCallbackQuery", params, chat_gone=False)

    def fetch(self, file: FileRef, limit: int) -> bytes:
        """getFile, then the bytes (bots may download up to 20 MB)."""
        telegram_file = self._call(self.runner.bot.get_file(file.id), chat_gone=False)
        size = telegram_file.file_size
        if size is not None and size > limit:
            raise TooLarge(size)
        return bytes(self._call(telegram_file.download_as_bytearray(), chat_gone=False))

    def close(self) -> None:
        """Shut the bot down and stop its loop."""
        self.api.close()
        self.runner.close()


class TelegramChannel(Delivery):
    """The delivery layer on the Bot API, with Telegram's own set-up and polling."""

    def __init__(self, loket: Loket, runner: BotRunner, *, background: bool = False) -> None:
        super().__init__(
            loket,
            TelegramTransport(runner, loket.settings),
            background=background,
            send_threads=loket.settings.telegram_send_threads,
        )
        self.runner = runner

    def handle_update(self, update: dict[str, Any]) -> bool:
        """Accept one update and apply what its chat has waiting now; False if a repeat."""
        return self.handle(update)

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
