"""The inbox: push-channel updates accepted at once and applied afterwards, in order per chat.

A webhook answers as soon as its update is durably accepted (one INSERT keyed by the update's
id); the turn itself runs right after, off the request, in whichever process gets to the chat
first. Applying marks the row in the turn's own transaction, under the conversation lock, so
an update is applied once however many processes try.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Integer, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import InboxUpdate, ProcessedEvent


@dataclass(frozen=True)
class Accepted:
    """An inbox row waiting to be applied."""

    id: int
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Pending:
    """An update to accept in the same transaction as the write that decided it (the release
    gate's queue ticket or ballot entry), so that neither is stored without the other."""

    key: str
    channel: str
    user_ref: str
    payload: dict[str, Any]
    lane: int = 0

    def values(self) -> dict[str, Any]:
        """The accept statement's parameters."""
        return {"key": self.key, "channel": self.channel, "user_ref": self.user_ref,
                "payload": self.payload, "lane": self.lane}  # fmt: skip

    def turn_values(self) -> dict[str, Any]:
        """The parameters of `ACCEPT_MADE` in a statement that writes what decided it."""
        return {"turn_key": self.key, "turn_channel": self.channel, "turn_ref": self.user_ref,
                "turn_payload": self.payload, "turn_lane": self.lane}  # fmt: skip


# A CTE that accepts the update of a write in the write's own statement (PostgreSQL), once if
# the CTE `made` returned a row: the release gate's ticket or ballot entry and its turn are
# stored together or not at all. Bind `turn_payload` as JSON; `Pending.turn_values` gives the
# parameters.
ACCEPT_MADE = """queued AS (
        INSERT INTO inbox (key, channel, user_ref, payload, lane)
        SELECT :turn_key, :turn_channel, :turn_ref, CAST(:turn_payload AS JSON), :turn_lane
        FROM made LIMIT 1
        ON CONFLICT (key) DO NOTHING
    )"""


def store(connection: Connection, pending: Pending) -> bool:
    """Accept `pending` in the connection's transaction; False when its key was seen."""
    created = connection.execute(_insert_once(connection.dialect.name), pending.values()).first()
    return created is not None


def accept_now(
    engine: Engine, channel: str, key: str, user_ref: str, payload: dict[str, Any], lane: int = 0
) -> bool:
    """Store an update durably, in the fewest round trips the database allows.

    Give it an engine made with `isolation_level="AUTOCOMMIT"` on PostgreSQL: one statement is
    atomic and, once it returns, committed, so the BEGIN and COMMIT round trips are saved.
    SQLite (one writer, a local file) keeps an ordinary transaction.
    """
    pending = Pending(key, channel, user_ref, payload, lane)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            return store(connection, pending)
    with engine.begin() as connection:
        return store(connection, pending)


@functools.cache
def _insert_once(dialect: str) -> Any:
    """The accept statement, built once per dialect (building it costs more than running it)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(InboxUpdate)
        .values(
            key=bindparam("key"),
            channel=bindparam("channel"),
            user_ref=bindparam("user_ref"),
            payload=bindparam("payload", type_=InboxUpdate.__table__.c.payload.type),
            lane=bindparam("lane"),
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(InboxUpdate.id)
    )


def waiting(session: Session, channel: str, user_ref: str, limit: int) -> list[Accepted]:
    """Return one chat's oldest `limit` updates not yet applied, in arrival order."""
    rows = session.execute(
        _waiting(), {"channel": channel, "user_ref": user_ref, "limit": limit}
    ).all()
    return [Accepted(row_id, key, payload) for row_id, key, payload in rows]


_INBOX = cast(Table, InboxUpdate.__table__)


@functools.cache
def _waiting() -> Any:
    """One chat's waiting updates, built once (it runs at least once every turn)."""
    c = _INBOX.c
    return (
        select(c.id, c.key, c.payload)
        .where(
            c.channel == bindparam("channel"),
            c.user_ref == bindparam("user_ref"),
            c.applied_at.is_(None),
        )
        .order_by(c.id)
        .limit(bindparam("limit", type_=Integer))
    )


@functools.cache
def _mark_applied() -> Any:
    c = _INBOX.c
    return (
        update(_INBOX)
        .where(c.id == bindparam("row_id"), c.applied_at.is_(None))
        .values(applied_at=bindparam("now", type_=c.applied_at.type), payload={})
    )


def mark_folded(session: Session, row_ids: Sequence[int], now: datetime) -> None:
    """Mark repeats of a turn applied without a turn of their own (a flood answered once), in
    the caller's transaction, under the chat's conversation lock."""
    if row_ids:
        session.execute(
            update(InboxUpdate)
            .where(InboxUpdate.id.in_(row_ids), InboxUpdate.applied_at.is_(None))
            .values(applied_at=now, payload={})
            .execution_options(synchronize_session=False)
        )


def count_waiting(session: Session) -> int:
    """Count the ordinary updates accepted and not yet applied, every chat together (the
    backlog the overload gauge reads; taps decided at accept time wait in their own lane)."""
    return int(
        session.execute(
            select(func.count(InboxUpdate.id)).where(
                InboxUpdate.applied_at.is_(None), InboxUpdate.lane == 0
            )
        ).scalar_one()
    )


def mark_applied(session: Session, row_id: int, now: datetime) -> bool:
    """Mark a row applied in the caller's transaction; False if another process already did.

    Callers hold the chat's conversation lock, so of two processes racing for the same row the
    second sees the first's commit and backs off.
    """
    # The payload is emptied: the text has served; keep no copy of it.
    result = session.execute(_mark_applied(), {"row_id": row_id, "now": now})
    return bool(getattr(result, "rowcount", 0) == 1)


def waiting_chats(
    session: Session, channel: str, received_before: datetime, limit: int | None = None
) -> list[str]:
    """Return the chats with updates accepted before a time and still not applied: chats
    with an ordinary update waiting first (a person admitted from the waiting room tapping on
    does not wait behind thousands of taps already answered at accept time), each group in
    the order its oldest waiting update arrived (first come, first applied)."""
    return list(
        session.execute(
            select(InboxUpdate.user_ref)
            .where(
                InboxUpdate.channel == channel,
                InboxUpdate.applied_at.is_(None),
                InboxUpdate.received_at < received_before,
            )
            .group_by(InboxUpdate.user_ref)
            .order_by(func.min(InboxUpdate.lane), func.min(InboxUpdate.id))
            .limit(limit)
        ).scalars()
    )


def record_failure(session: Session, row_id: int, now: datetime, give_up_after: int) -> bool:
    """Count a failed attempt to apply a row; after `give_up_after` set it aside (applied, with
    `failed_at`, its text dropped) and return True, so the chat's next updates can go on."""
    attempts = session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.id == row_id, InboxUpdate.applied_at.is_(None))
        .values(attempts=InboxUpdate.attempts + 1)
        .returning(InboxUpdate.attempts)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if attempts is None or attempts < give_up_after:
        return False
    session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.id == row_id)
        .values(applied_at=now, failed_at=now, payload={})
        .execution_options(synchronize_session=False)
    )
    return True


def purge_applied(session: Session, before: datetime) -> int:
    """Delete inbox rows applied before a time, and the keys of events processed before it.

    Telegram gives up redelivering an update within a day, so after a week neither the row
    nor the key can stop a double: both only grow the tables. Rows still waiting are kept.
    """
    rows = session.execute(
        delete(InboxUpdate).where(InboxUpdate.applied_at.is_not(None),
                                  InboxUpdate.applied_at < before)
    )  # fmt: skip
    keys = session.execute(delete(ProcessedEvent).where(ProcessedEvent.processed_at < before))
    return int(getattr(rows, "rowcount", 0) or 0) + int(getattr(keys, "rowcount", 0) or 0)
