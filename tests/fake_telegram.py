"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests.

python-telegram-bot talks to it through its real HTTP stack (`TELEGRAM_BASE_URL`). It keeps
what the bot sent, serves queued updates to getUpdates, and serves files for getFile.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Request, Response

from tests.local_server import LocalServer

TOKEN = "123456:TEST-TOKEN"
JSON_FIELDS = {"reply_markup", "commands", "allowed_updates", "chat_id", "message_id", "offset",
               "timeout", "limit"}  # fmt: skip


@dataclass(frozen=True)
class Raw:
    """An update queued as raw JSON text, malformed as a test wants it."""

    position: int  # where it stands for getUpdates' offset
    text: str


@dataclass
class Sent:
    """One message the bot sent."""

    chat_id: str
    message_id: int
    method: str
    text: str
    reply_markup: dict[str, Any] | None

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """Return (label, callback data) of the inline keyboard, if any."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


@dataclass
class FakeTelegram(LocalServer):
    """The server's state, shared with the test."""

    updates: list[Any] = field(default_factory=list)  # dicts, or Raw texts
    sent: list[Sent] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)  # callback query ids answered, in order
    fail_next_sends: int = 0
    flood_next_sends: int = 0  # answer 429 with retry_after
    blocked: set[str] = field(default_factory=set)  # chats that blocked the bot (403)
    refused: dict[str, str] = field(default_factory=dict)  # chat -> a permanent 400's text
    refuse_next_sends: int = 0  # answer 400 "message is too long" (whatever the chat)
    # Opt-in limits as Telegram enforces them (bench/outbox.py): at most `limit_per_second`
    # messages in one second overall and `limit_per_chat` to one chat, counted per clock second;
    # beyond them the answer is 429 with `retry_after`, and a send to a chat before its
    # retry_after ran out is counted as a violation (Telegram would extend the wait).
    limit_per_second: int | None = None
    limit_per_chat: int | None = None
    retry_after: int = 1
    accepted: list[tuple[str, float, str]] = field(default_factory=list)  # chat, time, text
    throttled: int = 0
    retry_after_violations: int = 0
    _counts: dict[Any, int] = field(default_factory=dict)
    _banned_until: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _update_ids: Any = field(default_factory=lambda: itertools.count(1000))
    server: BaseWSGIServer | None = None

    # ---- server ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The Bot API base URL (the token is appended by the library)."""
        return f"{self.root}/bot"

    @property
    def base_file_url(self) -> str:
        """The file base URL."""
        return f"{self.root}/file/bot"

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Answer Bot API calls."""
        request = Request(environ)
        parts = request.path.strip("/").split("/")
        if parts[0] == "file":
            data = self.files.get(parts[-1].rsplit(".", 1)[0])
            response = Response(data or b"", status=200 if data else 404)
            return response(environ, start_response)
        if parts[0] != f"bot{TOKEN}":
            return Response(json.dumps({"ok": False, "error_code": 401,
                                        "description": "Unauthorized"}), 401,
                            content_type="application/json")(environ, start_response)  # fmt: skip
        method = parts[1]
        params: dict[str, Any] = {}
        for key, value in request.values.items():
            params[key] = json.loads(value) if key in JSON_FIELDS else value
        for key, upload in request.files.items():
            params[key] = upload.read()
        with self.lock:
            self.calls.append((method, params))
        if method in ("sendMessage", "sendPhoto") and self.flood_next_sends > 0:
            with self.lock:
                self.flood_next_sends -= 1
            flood = {"ok": False, "error_code": 429, "description": "Too Many Requests",
                     "parameters": {"retry_after": 3}}  # fmt: skip
            return Response(json.dumps(flood), 429,
                            content_type="application/json")(environ, start_response)  # fmt: skip
        if method in ("sendMessage", "sendPhoto") and self.limit_per_second is not None:
            limited = self.limit(str(params.get("chat_id")), str(params.get("text", "")))
            if limited is not None:
                return limited(environ, start_response)
        if method == "getFile" and params.get("file_id") not in self.files:
            missing = {"ok": False, "error_code": 400,
                       "description": "Bad Request: wrong file_id"}  # fmt: skip
            return Response(json.dumps(missing), 400,
                            content_type="application/json")(environ, start_response)  # fmt: skip
        if method in ("sendMessage", "sendPhoto", "sendDocument"):
            refusal = self.refusal_for(str(params.get("chat_id")))
            if refusal is not None:
                code, description = refusal
                body = {"ok": False, "error_code": code, "description": description}
                answer = Response(json.dumps(body), code, content_type="application/json")
                return answer(environ, start_response)
        ok, result = self.handle(method, params)
        if ok and method == "getUpdates":
            # Raw updates are sent as written (10,000 nested arrays do not go through json).
            items = [u.text if isinstance(u, Raw) else json.dumps(u) for u in result]
            text = '{"ok": true, "result": [' + ", ".join(items) + "]}"
            return Response(text, 200, content_type="application/json")(environ, start_response)
        body = {"ok": True, "result": result} if ok else {
            "ok": False, "error_code": 500, "description": str(result)}  # fmt: skip
        return Response(json.dumps(body), 200 if ok else 500,
                        content_type="application/json")(environ, start_response)  # fmt: skip

    def limit(self, chat_id: str, text: str) -> Response | None:
        """Count one send against the opt-in limits: None when it fits, else a 429."""
        now = time.time()
        second = int(now)
        with self.lock:
            if now < self._banned_until.get(chat_id, 0.0) or now < self._banned_until.get("*", 0.0):
                self.retry_after_violations += 1
            overall = self._counts.get(second, 0)
            mine = self._counts.get((chat_id, second), 0)
            over_all = self.limit_per_second is not None and overall >= self.limit_per_second
            over_chat = self.limit_per_chat is not None and mine >= self.limit_per_chat
            if over_all or over_chat:
                self.throttled += 1
                self._banned_until["*" if over_all else chat_id] = now + self.retry_after
                flood = {"ok": False, "error_code": 429,
                         "description": f"Too Many Requests: retry after {self.retry_after}",
                         "parameters": {"retry_after": self.retry_after}}  # fmt: skip
                return Response(json.dumps(flood), 429, content_type="application/json")
            self._counts[second] = overall + 1
            self._counts[(chat_id, second)] = mine + 1
            self.accepted.append((chat_id, now, text))
        return None

    def refusal_for(self, chat_id: str) -> tuple[int, str] | None:
        """A permanent refusal for this chat, if the test set one (blocked, not found...)."""
        with self.lock:
            if chat_id in self.blocked:
                return 403, "Forbidden: bot was blocked by the user"
            if chat_id in self.refused:
                return 400, self.refused[chat_id]
            if self.refuse_next_sends > 0:
                self.refuse_next_sends -= 1
                return 400, "Bad Request: message is too long"
        return None

    def _position(self, update: Any) -> int:
        """Where an update stands for getUpdates' offset (its id, or its queue order)."""
        if isinstance(update, Raw):
            return update.position
        update_id = update.get("update_id")
        return update_id if type(update_id) is int else self.updates.index(update) + 1000

    def handle(self, method: str, params: dict[str, Any]) -> tuple[bool, Any]:
        """Implement the methods the bot uses."""
        if method == "getMe":
            return True, {"id": 1, "is_bot": True, "first_name": "Loket",
                          "username": "loket_test_bot"}  # fmt: skip
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            deadline = time.monotonic() + min(float(params.get("timeout") or 0), 1.0)
            while True:
                with self.lock:
                    ready = [u for u in self.updates if self._position(u) >= offset]
                if ready or time.monotonic() >= deadline:
                    return True, ready
                time.sleep(0.02)
        if method in ("sendMessage", "sendPhoto", "sendDocument"):
            with self.lock:
                if self.fail_next_sends > 0:
                    self.fail_next_sends -= 1
                    return False, "temporary failure"
                shown = "<document>" if method == "sendDocument" else "<photo>"
                sent = Sent(str(params["chat_id"]), next(self._ids), method,
                            params.get("text", shown), params.get("reply_markup"))  # fmt: skip
                self.sent.append(sent)
            return True, self.message(sent.chat_id, sent.message_id, sent.text)
        if method == "editMessageText":
            with self.lock:  # the tapped message now reads (and offers) what the edit says
                for sent in self.sent:
                    if sent.message_id == int(params["message_id"]):
                        sent.text = params["text"]
                        sent.reply_markup = params.get("reply_markup")
            return True, self.message(str(params["chat_id"]), int(params["message_id"]),
                                      params["text"])  # fmt: skip
        if method == "answerCallbackQuery":
            with self.lock:  # every tap must be answered once: the test reads who was
                self.answered.append(str(params["callback_query_id"]))
            return True, True
        if method == "getFile":
            file_id = params["file_id"]
            return True, {"file_id": file_id, "file_unique_id": file_id,
                          "file_size": len(self.files.get(file_id, b"")),
                          "file_path": f"photos/{file_id}.jpg"}  # fmt: skip
        if method in ("setWebhook", "deleteWebhook", "setMyCommands"):
            return True, True
        return False, f"method {method} not faked"

    @staticmethod
    def message(chat_id: str, message_id: int, text: str) -> dict[str, Any]:
        """Build a Message object as the Bot API returns it."""
        return {"message_id": message_id, "date": int(time.time()),
                "chat": {"id": int(chat_id), "type": "private"}, "text": text}  # fmt: skip

    # ---- what users do -----------------------------------------------------------------

    def _update(self, chat_id: int, body: dict[str, Any], language: str = "id") -> dict[str, Any]:
        update_id = next(self._update_ids)
        sender = {"id": chat_id, "is_bot": False, "first_name": "Pemohon",
                  "language_code": language}  # fmt: skip
        if "callback_query" in body:
            body["callback_query"]["from"] = sender
        else:
            body["message"].update(
                {"message_id": update_id, "date": int(time.time()), "from": sender,
                 "chat": {"id": chat_id, "type": "private"}})  # fmt: skip
        update = {"update_id": update_id, **body}
        with self.lock:
            self.updates.append(update)
        return update

    def text(self, chat_id: int, text: str, language: str = "id") -> dict[str, Any]:
        """Queue a typed message."""
        return self._update(chat_id, {"message": {"text": text}}, language)

    def press(self, chat_id: int, label: str) -> dict[str, Any]:
        """Queue a press of the button with this label on the last message that had it."""
        for sent in reversed(self.sent):
            if sent.chat_id == str(chat_id):
                for button_label, data in sent.buttons:
                    if button_label.casefold() == label.casefold():
                        message = {**self.message(sent.chat_id, sent.message_id, sent.text),
                                   "reply_markup": sent.reply_markup}  # fmt: skip
                        return self._update(chat_id, {"callback_query": {
                            "id": str(next(self._ids)), "chat_instance": "1", "data": data,
                            "message": message}})  # fmt: skip
        raise AssertionError(f"no button {label!r} for chat {chat_id}")

    def photo(self, chat_id: int, data: bytes) -> dict[str, Any]:
        """Queue a photo (kept here for getFile)."""
        file_id = f"f{next(self._ids)}"
        self.files[file_id] = data
        sizes = [{"file_id": file_id, "file_unique_id": file_id, "width": 1200, "height": 800,
                  "file_size": len(data)}]  # fmt: skip
        return self._update(chat_id, {"message": {"photo": sizes}})

    def document(self, chat_id: int, data: bytes, name: str, mime_type: str) -> dict[str, Any]:
        """Queue a file sent as a document (kept here for getFile)."""
        file_id = f"f{next(self._ids)}"
        self.files[file_id] = data
        document = {"file_id": file_id, "file_unique_id": file_id, "file_name": name,
                    "mime_type": mime_type, "file_size": len(data)}  # fmt: skip
        return self._update(chat_id, {"message": {"document": document}})

    def big_photo(self, chat_id: int, size: int) -> dict[str, Any]:
        """Queue a photo whose declared size is over any limit (its bytes are never served)."""
        file_id = f"f{next(self._ids)}"
        sizes = [{"file_id": file_id, "file_unique_id": file_id, "width": 9000, "height": 9000,
                  "file_size": size}]  # fmt: skip
        return self._update(chat_id, {"message": {"photo": sizes}})

    def contact(self, chat_id: int, phone: str) -> dict[str, Any]:
        """Queue a shared contact (the user's own)."""
        return self._update(chat_id, {"message": {"contact": {
            "phone_number": phone, "first_name": "Pemohon", "user_id": chat_id}}})  # fmt: skip

    def location(self, chat_id: int, latitude: float, longitude: float) -> dict[str, Any]:
        """Queue a shared location."""
        return self._update(chat_id, {"message": {"location": {
            "latitude": latitude, "longitude": longitude}}})  # fmt: skip

    def raw(self, text: str) -> Raw:
        """Queue an update as raw JSON text; `{id}` in it becomes the next update_id."""
        update_id = next(self._update_ids)
        raw = Raw(update_id, text.replace("{id}", str(update_id)))
        with self.lock:
            self.updates.append(raw)
        return raw

    def texts(self, chat_id: int) -> list[str]:
        """Return the texts sent to a chat, in order."""
        return [s.text for s in self.sent if s.chat_id == str(chat_id)]

    def last(self, chat_id: int) -> Sent:
        """Return the last message sent to a chat."""
        return [s for s in self.sent if s.chat_id == str(chat_id)][-1]

    def methods(self, name: str) -> list[dict[str, Any]]:
        """Return the parameters of every call of one method."""
        return [params for method, params in self.calls if method == name]
