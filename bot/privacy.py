"""The person's own copy of their data (/datasaya) as a file, and the signed, short-lived
token that names it in a download link: the link carries a conversation's number and a
signature, never personal data, and works for `LOKET_EXPORT_LINK_MINUTES`."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crypto_store import load_or_create_key
from bot.settings import Settings
from storage.models import Conversation
from storage.privacy import export_data

SALT = "loket datasaya"
FILE_TYPE = "application/json"


class LinkExpired(Exception):
    """The download link is genuine but older than it may be."""


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    # A key of its own, derived from the document key unless LOKET_SECRET_KEY is set: rotating
    # either ends every download link at once (docs/breach-response.md).
    if settings.secret_key:
        secret = settings.secret_key
    else:
        document_key = load_or_create_key(settings.data_dir, settings.document_key)
        secret = hmac.new(document_key, b"loket data export links", hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(secret, salt=SALT)


def export_token(settings: Settings, conversation_id: int) -> str:
    """Sign a token naming one conversation's data export."""
    return str(_serializer(settings).dumps({"c": conversation_id}))


def read_export_token(settings: Settings, token: str) -> int | None:
    """Return the conversation a token names; None when forged; LinkExpired when too old."""
    try:
        data = _serializer(settings).loads(token, max_age=settings.export_link_minutes * 60)
    except SignatureExpired as error:
        raise LinkExpired from error
    except BadSignature:
        return None
    conversation = data.get("c") if isinstance(data, dict) else None
    return conversation if type(conversation) is int else None


def conversation_id(session: Session, channel: str, user_ref: str) -> int | None:
    """The id of one chat's conversation row."""
    found: int | None = session.execute(
        select(Conversation.id).where(
            Conversation.channel == channel, Conversation.user_ref == user_ref
        )
    ).scalar_one_or_none()
    return found


def export_file(session: Session, channel: str, user_ref: str, now: datetime) -> tuple[str, bytes]:
    """The file name and JSON bytes of one chat's data export."""
    data = export_data(session, channel, user_ref, now)
    name = f"loket-datasaya-{now:%Y%m%d}.json"
    return name, json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
