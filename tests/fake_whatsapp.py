"""A fake WhatsApp Cloud API (Graph API) server on 127.0.0.1, and signed webhooks to drive it.

The real client (`bot/channels/whatsapp_api.py`) talks to it through `WHATSAPP_API_BASE`. It
records the messages sent per recipient, answers with message ids, takes uploads, serves
received media (the lookup with URL and size, then the bytes, both with the bearer token), and
can fail sends (5xx, 429 throttling, 400 refusals, an undeliverable recipient). `Webhooks`
builds signed POST bodies of each kind Meta sends: text, button and list replies, images,
documents, contacts, locations and statuses.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Request, Response

from bot.channels.whatsapp_api import sign
from tests.local_server import LocalServer

TOKEN = "EAAG-test-token"
PHONE_ID = "109876543210"
APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "verify-token-for-tests"
VERSION = "v21.0"


@dataclass
class Sent:
    """One message the business number sent."""

    to: str
    id: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        """text, interactive, template, image or document."""
        return str(self.body.get("type"))

    @property
    def interactive(self) -> dict[str, Any]:
        """The interactive part (empty for other kinds)."""
        return dict(self.body.get("interactive") or {})

    @property
    def text(self) -> str:
        """What the person reads: the text, the interactive body or the template parameter."""
        if self.kind == "text":
            return str(self.body["text"]["body"])
        if self.kind == "interactive":
            return str(self.interactive["body"]["text"])
        if self.kind == "template":
            components = self.body["template"].get("components") or [{}]
            return " ".join(p["text"] for p in components[0].get("parameters", []))
        return ""

    @property
    def options(self) -> list[tuple[str, str]]:
        """(title, id) of the reply buttons or of every list row, in order."""
        action = self.interactive.get("action") or {}
        if self.interactive.get("type") == "button":
            return [(b["reply"]["title"], b["reply"]["id"]) for b in action["buttons"]]
        if self.interactive.get("type") == "list":
            return [(r["title"], r["id"]) for s in action["sections"] for r in s["rows"]]
        return []


@dataclass
class FakeWhatsApp(LocalServer):
    """The server's state, shared with the test."""

    sent: list[Sent] = field(default_factory=list)
    uploads: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # id -> (mime, bytes)
    media: dict[str, tuple[str, bytes, int]] = field(default_factory=dict)  # id -> mime, data, size
    lookups: list[str] = field(default_factory=list)  # media ids looked up
    downloads: list[str] = field(default_factory=list)  # media ids whose bytes were fetched
    fail_next_sends: int = 0  # 500
    throttle_next_sends: int = 0  # 429, code 130429 (throughput), Retry-After: 1
    refuse_next_sends: int = 0  # 400, code 131009 (a parameter is not valid)
    undeliverable: set[str] = field(default_factory=set)  # 400, code 131026
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    server: BaseWSGIServer | None = None

    @property
    def base_url(self) -> str:
        """The Graph API base URL with its version (WHATSAPP_API_BASE)."""
        return f"{self.root}/{VERSION}"

    # ---- test helpers ------------------------------------------------------------------

    def add_media(self, data: bytes, mime: str = "image/jpeg", size: int | None = None) -> str:
        """Make a received medium available; `size` is what the lookup declares."""
        media_id = f"media-in-{next(self._ids)}"
        self.media[media_id] = (mime, data, len(data) if size is None else size)
        return media_id

    def to(self, wa_id: str) -> list[Sent]:
        """Every message sent to one person, in order."""
        return [sent for sent in self.sent if sent.to == wa_id]

    def last(self, wa_id: str) -> Sent:
        """The last message sent to one person."""
        return self.to(wa_id)[-1]

    def texts(self, wa_id: str) -> list[str]:
        """What one person read, message by message."""
        return [sent.text for sent in self.to(wa_id)]

    # ---- the API -----------------------------------------------------------------------

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Answer Graph API calls."""
        request = Request(environ)
        return self.answer(request)(environ, start_response)

    def answer(self, request: Request) -> Response:
        """Route one call."""
        with self.lock:
            self.calls += 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return error(401, 190, "Invalid OAuth access token")
        parts = request.path.strip("/").split("/")
        if parts[0] == "media-bytes":
            found = self.media.get(parts[-1])
            if found is None:
                return error(404, 100, "not found")
            with self.lock:
                self.downloads.append(parts[-1])
            return Response(found[1], 200, content_type=found[0])
        if parts[0] != VERSION:
            return error(404, 100, "unknown version")
        if parts[1:] == [PHONE_ID, "messages"] and request.method == "POST":
            return self.send(json.loads(request.get_data()))
        if parts[1:] == [PHONE_ID, "media"] and request.method == "POST":
            upload = request.files["file"]
            media_id = f"media-out-{next(self._ids)}"
            self.uploads[media_id] = (upload.mimetype, upload.read())
            return reply({"id": media_id})
        if len(parts) == 2 and request.method == "GET":
            found = self.media.get(parts[1])
            with self.lock:
                self.lookups.append(parts[1])
            if found is None:
                return error(400, 100, "Unsupported get request")
            mime, _data, size = found
            return reply({"messaging_product": "whatsapp", "id": parts[1], "mime_type": mime,
                          "sha256": "0" * 64, "file_size": size,
                          "url": f"{self.root}/media-bytes/{parts[1]}"})  # fmt: skip
        return error(404, 100, "unknown call")

    def send(self, body: dict[str, Any]) -> Response:
        """Take one message: fail it as the test asked, or record it and answer its id."""
        to = str(body.get("to"))
        with self.lock:
            if self.fail_next_sends > 0:
                self.fail_next_sends -= 1
                return error(500, 1, "An unknown error occurred")
            if self.throttle_next_sends > 0:
                self.throttle_next_sends -= 1
                answer = error(429, 130429, "Rate limit hit")
                answer.headers["Retry-After"] = "1"
                return answer
            if self.refuse_next_sends > 0:
                self.refuse_next_sends -= 1
                return error(400, 131009, "Parameter value is not valid")
            if to in self.undeliverable:
                return error(400, 131026, "Message Undeliverable")
            message_id = f"wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEj{next(self._ids):08d}"
            self.sent.append(Sent(to, message_id, body))
        return reply({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                      "messages": [{"id": message_id}]})  # fmt: skip


def reply(body: dict[str, Any]) -> Response:
    """A JSON answer."""
    return Response(json.dumps(body), 200, content_type="application/json")


def error(status: int, code: int, message: str) -> Response:
    """A Graph API error object."""
    body = {"error": {"message": message, "type": "OAuthException", "code": code,
                      "fbtrace_id": "AbCdEf"}}  # fmt: skip
    return Response(json.dumps(body), status, content_type="application/json")


class Webhooks:
    """Build webhook POSTs as Meta sends them, signed with the app secret."""

    def __init__(self, clock: Any, secret: str = APP_SECRET) -> None:
        self.clock = clock  # returns the current datetime (the tests' fake clock)
        self.secret = secret
        self._ids = itertools.count(1)

    def stamp(self, at: datetime | None = None) -> str:
        """Unix seconds as Meta writes them."""
        return str(int((at or self.clock()).timestamp()))

    def message(self, wa_id: str, kind: str, part: Any, context: str | None = None,
                message_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        """One message object of a kind with its part."""
        found = {"from": wa_id, "id": message_id or f"wamid.IN{next(self._ids):010d}",
                 "timestamp": self.stamp(), "type": kind, kind: part}  # fmt: skip
        if context is not None:
            found["context"] = {"from": PHONE_ID, "id": context}
        return found

    def text(self, wa_id: str, body: str) -> dict[str, Any]:
        """A typed text."""
        return self.message(wa_id, "text", {"body": body})

    def button_reply(self, wa_id: str, reply_id: str, title: str, context: str) -> dict[str, Any]:
        """A reply button pressed under our message `context`."""
        part = {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}}
        return self.message(wa_id, "interactive", part, context)

    def list_reply(self, wa_id: str, row_id: str, title: str, context: str) -> dict[str, Any]:
        """A list row chosen under our message `context`."""
        part = {"type": "list_reply", "list_reply": {"id": row_id, "title": title}}
        return self.message(wa_id, "interactive", part, context)

    def choose(self, wa_id: str, sent: Sent, title: str) -> dict[str, Any]:
        """Press the button or choose the row titled `title` of a message we received."""
        options = dict(sent.options)
        if sent.interactive.get("type") == "button":
            return self.button_reply(wa_id, options[title], title, sent.id)
        return self.list_reply(wa_id, options[title], title, sent.id)

    def image(self, wa_id: str, media_id: str, mime: str = "image/jpeg") -> dict[str, Any]:
        """A photo."""
        return self.message(wa_id, "image", {"id": media_id, "mime_type": mime, "sha256": "0"})

    def document(self, wa_id: str, media_id: str, filename: str,
                 mime: str = "application/pdf") -> dict[str, Any]:  # fmt: skip
        """A file sent as a document."""
        part = {"id": media_id, "filename": filename, "mime_type": mime, "sha256": "0"}
        return self.message(wa_id, "document", part)

    def contact(self, wa_id: str, phone: str, card_wa_id: str | None) -> dict[str, Any]:
        """A shared contact card (`card_wa_id`: the card's own WhatsApp number, if any)."""
        number: dict[str, Any] = {"phone": phone, "type": "CELL"}
        if card_wa_id is not None:
            number["wa_id"] = card_wa_id
        card = {"name": {"formatted_name": "Kontak", "first_name": "Kontak"}, "phones": [number]}
        return self.message(wa_id, "contacts", [card])

    def location(self, wa_id: str, latitude: float, longitude: float) -> dict[str, Any]:
        """A shared location."""
        return self.message(wa_id, "location", {"latitude": latitude, "longitude": longitude})

    def status(self, message_id: str, wa_id: str, status: str,
               error_code: int | None = None) -> dict[str, Any]:  # fmt: skip
        """A status of a message we sent."""
        found: dict[str, Any] = {"id": message_id, "recipient_id": wa_id, "status": status,
                                 "timestamp": self.stamp()}  # fmt: skip
        if error_code is not None:
            found["errors"] = [{"code": error_code, "title": "error"}]
        return found

    def body(self, messages: list[dict[str, Any]] = (), statuses: list[dict[str, Any]] = (),  # type: ignore[assignment]
             ) -> bytes:  # fmt: skip
        """A webhook POST body carrying messages and statuses."""
        value: dict[str, Any] = {"messaging_product": "whatsapp",
                                 "metadata": {"display_phone_number": "6281100000000",
                                              "phone_number_id": PHONE_ID}}  # fmt: skip
        if messages:
            value["contacts"] = [{"profile": {"name": "Pemohon"}, "wa_id": m["from"]}
                                 for m in messages]  # fmt: skip
            value["messages"] = list(messages)
        if statuses:
            value["statuses"] = list(statuses)
        envelope = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}],
        }
        return json.dumps(envelope).encode()  # fmt: skip

    def headers(self, body: bytes, secret: str | None = None) -> dict[str, str]:
        """The signed request's headers."""
        return {"Content-Type": "application/json",
                "X-Hub-Signature-256": sign(secret or self.secret, body)}  # fmt: skip
