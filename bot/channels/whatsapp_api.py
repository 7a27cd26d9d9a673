"""A thin synchronous client of the WhatsApp Cloud API (Meta's Graph API), on httpx.

Why not `pywa`: its Flask integration runs handlers inside the webhook request (we accept
into the inbox first and apply later, exactly once, in order per sender), its `GraphAPI`
fixes the host to graph.facebook.com (tests need a fake on 127.0.0.1), and it drops payloads
without `contacts[0].user_id`. What we need of the API is five calls, so they live here:
send a message, upload a medium, read a medium's URL and size, download it, and check a
webhook's signature.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Hub-Signature-256"


def signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    """Check `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw body, in
    constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.removeprefix("sha256=").encode())


def sign(app_secret: str, body: bytes) -> str:
    """Return the signature header's value for a body (tests and the benchmark sign with it)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class GraphError(Exception):
    """The Graph API refused a call, or could not be reached (`status` 0).

    Carries only the HTTP status, Meta's error code and how long to wait: never the text
    sent, which may hold personal data.
    """

    def __init__(self, status: int, code: int | None = None, retry_after: float | None = None):
        super().__init__(f"graph api status={status} code={code}")
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def throttled(self) -> bool:
        """Too many messages: to this number (131056), overall (130429, 80007) or a 429."""
        return self.status == 429 or self.code in (4, 80007, 130429, 131048, 131056)

    @property
    def recipient_gone(self) -> bool:
        """The recipient cannot receive messages (not on WhatsApp, or blocked us): 131026."""
        return self.code in (131026, 131051)

    @property
    def permanent(self) -> bool:
        """A refusal that a retry will not change (a 4xx other than throttling)."""
        return 400 <= self.status < 500 and not self.throttled


@dataclass(frozen=True)
class Media:
    """Where a medium can be downloaded and how large Meta says it is."""

    url: str
    size: int | None
    mime_type: str | None


class GraphClient:
    """Calls of one business phone number; one instance per process (a pooled httpx client)."""

    def __init__(self, base_url: str, token: str, phone_id: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.phone_id = phone_id
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise GraphError(0) from error  # the network: retried with backoff
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    def send(self, message: dict[str, Any]) -> str:
        """Send one message object (`to`, `type` and its part); return its WhatsApp id."""
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", **message}
        response = self._call("POST", f"{self.base_url}/{self.phone_id}/messages", json=body)
        messages = response.json().get("messages") or [{}]
        return str(messages[0].get("id") or "")

    def upload(self, data: bytes, mime_type: str, filename: str) -> str:
        """Upload a medium (a QR code, an export) for sending; return its media id."""
        response = self._call(
            "POST",
            f"{self.base_url}/{self.phone_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, data, mime_type)},
        )
        return str(response.json().get("id") or "")

    def media(self, media_id: str) -> Media:
        """Look a received medium up: its short-lived download URL and declared size."""
        response = self._call("GET", f"{self.base_url}/{media_id}")
        body = response.json()
        size = body.get("file_size")
        return Media(
            url=str(body.get("url") or ""),
            size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
            mime_type=body.get("mime_type") if isinstance(body.get("mime_type"), str) else None,
        )

    def download(self, url: str, limit: int) -> bytes:
        """Download a medium's bytes (with the bearer token), refusing more than `limit`."""
        try:
            with self.http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_of(response)
                data = bytearray()
                for chunk in response.iter_bytes():
                    data.extend(chunk)
                    if len(data) > limit:
                        raise GraphError(413)  # more than Meta declared: never read it all
                return bytes(data)
        except httpx.HTTPError as error:
            raise GraphError(0) from error


def _error_of(response: httpx.Response) -> GraphError:
    """Read Meta's error object (`error.code`) and a Retry-After, if any."""
    code: int | None = None
    try:
        body = response.json()
        raw = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
        code = raw if type(raw) is int else None
    except ValueError:
        pass
    retry = response.headers.get("Retry-After")
    retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
    return GraphError(response.status_code, code, retry_after)
