"""The delivery layer every push channel shares: apply accepted updates once, send the outbox.

An update is first accepted into the inbox (one INSERT keyed by its id: all a webhook waits
for), then applied exactly once, in order per chat (`Loket.process` marks the inbox row and
records the key with the turn's effects); every reply goes through the outbox: sent right
after commit, and by the worker if a crash left it unsent. What cannot be read (`Unreadable`)
or delivered (a bounded number of retries with backoff, a refusal, a chat that blocked us) is
set aside, so it never holds up the chat behind it. The API itself is the `Transport`'s.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.core.messages import EventKind, Expect, Inbound, Outbound, merge
from bot.delivery.pacing import Pacer
from bot.delivery.transport import (
    ChatBlocked,
    Incoming,
    Recipient,
    Refused,
    RetryLater,
    TooLarge,
    Transport,
    TransportError,
    Unreadable,
)
from bot.faults import failpoint
from bot.i18n import _, use_locale
from bot.logsafe import log_failure
from bot.metrics import refused
from bot.notices import chat_locale
from bot.service import Loket
from bot.waiting_room import TURN_ENTRY, GateShaper, gate_note, turn_delivered
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
from storage.models import Conversation
from storage.outbox import (
    count_failure,
    is_inactive,
    latest_question,
    mark_inactive,
    set_aside,
    set_aside_chat,
)

log = logging.getLogger(__name__)

CLAIM_FOR = timedelta(seconds=30)
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


def log_unreadable(error: Unreadable) -> None:
    """Log an update we cannot read by its id and what was wrong, never its content."""
    shown = error.ref if error.ref is not None else "without id"
    log.warning("unreadable update %s set aside: %s", shown, error)


def same_turn(first: Incoming, second: Incoming) -> bool:
    """Tell whether `second` asks nothing `first` has not: a tap on the same message, or the
    same command typed again (answers, files, contacts and locations always count)."""
    if first.event is None or second.event is None:
        return False  # a file: each one is an answer of its own
    if first.tap is not None or second.tap is not None:
        if first.tap is None or second.tap is None:
            return False
        tapped = first.tap.message_id
        return tapped is not None and tapped == second.tap.message_id
    # Only a repeated command (/start, /jadwal): a typed answer repeated ("1", then "1") can
    # answer two questions in a row, typed ahead before the first reply came.
    return (
        first.event.kind is EventKind.TEXT
        and second.event.kind is EventKind.TEXT
        and first.event.text.startswith("/")
        and first.event.text == second.event.text
    )


class TapShaper:
    """Shape a tap's turn for a transport that can: when the turn begins with short notices
    (the seat just went, a queue position), they answer the tap as its alert and the question
    after them replaces the tapped message, so the answer sends no new message and does not
    wait behind the overall limit. Anything else is merged into one message as usual."""

    def __init__(self, incoming: Incoming, transport: Transport) -> None:
        self.incoming = incoming
        self.limits = transport.limits
        self.answers_tap = False

    def __call__(self, replies: list[Outbound]) -> list[Outbound | dict[str, Any]]:
        """Return the outbox payloads of one turn's replies."""
        tap = self.incoming.tap
        notices = [reply for reply in replies if reply.notice]
        if tap is None or tap.id is None or not self.limits.alert:
            return list(merge(replies))
        if not notices or replies[: len(notices)] != notices:
            return list(merge(replies))
        notice = "\n\n".join(reply.text for reply in notices)
        if len(notice) > self.limits.alert:
            return list(merge(replies))
        self.answers_tap = True
        shaped: list[Outbound | dict[str, Any]] = [
            {**Outbound(notice).to_payload(), "answer_tap": tap.id}
        ]
        tapped = tap.message_id if self.limits.edits else None
        for number, reply in enumerate(merge(replies[len(notices) :])):
            editable = (
                number == 0
                and tapped is not None
                and not (reply.qr or reply.copy or reply.export)
                and reply.expects is not Expect.CONTACT
                and len(reply.text) <= self.limits.text
            )
            if editable and tapped is not None:
                edit: int | str = int(tapped) if tapped.isdigit() else tapped
                shaped.append({**reply.to_payload(), "edit": edit})
            else:
                shaped.append(reply)
        return shaped


class Delivery:
    """Applies one push channel's updates through the core and delivers its outbox."""

    def __init__(
        self,
        loket: Loket,
        transport: Transport,
        *,
        background: bool = False,
        send_threads: int = 4,
    ) -> None:
        self.loket = loket
        self.transport = transport
        self.name = transport.name
        limits = transport.limits
        self.pacer = Pacer(loket.shared, limits.per_second, limits.per_chat, prefix=self.pace_key)
        # In a web worker, updates are applied and replies sent after the 200, on a few threads:
        # the update is durably in the inbox, so answering the API need not wait for the turn.
        self.senders = ThreadPoolExecutor(4, f"{self.name}-send") if background else None
        self.send_threads = max(1, send_threads)

    @property
    def pace_key(self) -> str:
        """The shared-state prefix of this channel's pacing counters."""
        return f"pace:{self.name}"

    def close(self) -> None:
        """Stop the background threads (what they hold is in the inbox or outbox) and close
        the transport's client."""
        if self.senders is not None:
            self.senders.shutdown(wait=False, cancel_futures=True)
        self.transport.close()

    # ---- inbound -----------------------------------------------------------------------

    def handle(self, payload: Any) -> bool:
        """Accept one payload and apply what its chat has waiting now; False if a repeat."""
        chat_id, new = self.accept(payload)
        if chat_id is not None:
            self.drain(chat_id)
        return new

    def accept(self, payload: Any, lane: int = 0) -> tuple[str | None, bool]:
        """Store a payload in the inbox, unless it was seen; return its chat and whether new.

        This is all a webhook waits for: one INSERT keyed by the payload's key. What we do not
        handle (groups, edits, stickers...) is not stored and has no chat. `lane` 1 holds
        taps already decided and answered at accept time (`bot.release_gate`).
        """
        try:
            incoming = self.transport.read(payload)
        except Unreadable as error:
            log_unreadable(error)
            return None, False
        if incoming is None:
            return None, False
        new = inbox.accept_now(self.loket.autocommit_db, self.name, self.inbox_key(incoming),
                               incoming.chat_id, payload, lane)  # fmt: skip
        failpoint("after-accept")
        return incoming.chat_id, new

    def inbox_key(self, incoming: Incoming) -> str:
        """The inbox key of an incoming payload: the channel and the payload's own key, so a
        retried or doubled delivery is stored once."""
        return f"{self.name}:{incoming.key}"

    def schedule(self, chat_id: str) -> None:
        """Apply and deliver a chat's waiting updates: on a sender thread if this process has
        them (a web worker answers the API first), else right here."""
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

    def _read(self, row: Accepted) -> Incoming:
        incoming = self.transport.read(row.payload)
        if incoming is None:  # accepted by an older version that read it differently
            raise Unreadable("not an update we handle")
        return incoming

    def repeats_of(self, head: Incoming, backlog: list[Accepted]) -> list[tuple[int, Incoming]]:
        """Return the waiting updates right after `head` that repeat it: taps on the same
        message (its question is answered by the first tap; later taps there are on an answered
        question), or the same command typed again. The run stops at the first other update."""
        repeats: list[tuple[int, Incoming]] = []
        for row in backlog:
            try:
                other = self.transport.read(row.payload)
            except Unreadable:
                break
            if other is None or not same_turn(head, other):
                break
            repeats.append((row.id, other))
        return repeats

    def drain(self, chat_id: str) -> int:
        """Apply one chat's waiting updates in arrival order, then send its replies.

        A flood is answered once: the waiting repeats of the oldest update (taps on the same
        question, the same text typed again) are folded into its turn, marked applied in the
        same transaction without a turn or a reply of their own; every tap is still answered,
        so no button keeps spinning. Files are fetched before the turn's transaction, so no
        lock waits on the network. If another process applies the same row first,
        `Loket.process` says so and we go on.
        """
        applied = 0
        while True:
            with self.loket.sessions() as session:
                backlog = inbox.waiting(session, self.name, chat_id, FOLD_LIMIT)
            if not backlog:
                break
            waiting = backlog[0]
            incoming: Incoming | None = None
            try:
                incoming = self._read(waiting)
                repeats = self.repeats_of(incoming, backlog[1:])
                note = gate_note(waiting.payload)  # answered at accept time (release_gate)
                if note is None and self._stale_tap(chat_id, incoming):
                    self._answer_stale(chat_id, incoming, waiting.id, repeats)
                    continue
                event = incoming.event or self._download(incoming)
                shaper: TapShaper | GateShaper = (
                    TapShaper(incoming, self.transport)
                    if note is None
                    else GateShaper(incoming, note)
                )
                done = self.loket.process(
                    self.name, chat_id, event, waiting.key, inbox_row=waiting.id,
                    folded=[row_id for row_id, _repeat in repeats], shape=shaper,
                )  # fmt: skip
            except TransportError:
                raise  # the network or the API: the update waits and is tried again
            except Exception as error:
                give_up_now = isinstance(error, Unreadable)  # trying again would not help
                if not self._set_aside(waiting.id, chat_id, give_up_now):
                    raise
                log_failure(log, f"inbox row {waiting.id} set aside after repeated failures", error)
                if incoming is not None and incoming.tap is not None:
                    self._answer_tap(incoming.tap.id)  # the apology comes as a message
                continue
            if done:
                applied += 1
                failpoint("after-commit")
                if incoming.tap is not None and not shaper.answers_tap:
                    self._acknowledge(chat_id, incoming)
                answered = {row.id for row in backlog if gate_note(row.payload) is not None}
                for row_id, repeat in repeats:
                    if repeat.tap is not None and row_id not in answered:
                        self._answer_tap(repeat.tap.id)
                if 1 + len(repeats) == len(backlog) < FOLD_LIMIT:
                    # All that waited is applied. What came meanwhile was accepted after
                    # this read and has a drain of its own (webhook, poller, `apply`), so
                    # reading the inbox once more would find it or nothing: send now.
                    break
        # A turn applied here reactivated the chat (they wrote): no need to ask again.
        self.flush(chat_id, active=applied > 0)
        return applied

    def _stale_tap(self, chat_id: str, incoming: Incoming) -> bool:
        """Tell whether a tap is on a button of an older message than the chat's current
        question, with a value that question does not offer (its question is no longer
        current). A tap on the current question, or on an older copy of the same buttons,
        is a turn as always. Needs message ids that grow (Telegram's); others never are."""
        tap = incoming.tap
        if tap is None or incoming.event is None or not (tap.message_id or "").isdigit():
            return False
        with self.loket.sessions() as session:
            latest = latest_question(session, self.name, chat_id)
        if latest is None:
            return False
        question_id, values = latest
        return int(tap.message_id or 0) < question_id and incoming.event.text not in values

    def _answer_stale(
        self, chat_id: str, incoming: Incoming, row_id: int, repeats: list[tuple[int, Incoming]]
    ) -> None:
        """Answer a stale tap with an alert on the tap itself (no message: the current
        question is already the latest one in the chat), and mark it applied without a turn."""
        with self.loket.sessions() as session, session.begin():
            now = self.loket.now(session)
            lock_conversation(session, self.name, chat_id)
            if not inbox.mark_applied(session, row_id, now):
                return  # another process took it up
            inbox.mark_folded(session, [other for other, _repeat in repeats], now)
            with use_locale(chat_locale(session, self.name, chat_id)):
                text = _("Tombol ini sudah tidak berlaku, silakan pilih dari pesan terbaru.")
        refused("stale_button")
        self._answer_tap(incoming.tap.id if incoming.tap else None, text, alert=True)
        for _other, repeat in repeats:
            if repeat.tap is not None:
                self._answer_tap(repeat.tap.id)

    def _set_aside(self, row_id: int, chat_id: str, at_once: bool = False) -> bool:
        """Count a failed attempt; after MAX_APPLY_ATTEMPTS (or at once) set the
        update aside and apologise to the applicant, so one update that cannot be applied does
        not hold up their chat."""
        with self.loket.sessions() as session, session.begin():
            now = self.loket.now(session)
            give_up_after = 1 if at_once else MAX_APPLY_ATTEMPTS
            if not inbox.record_failure(session, row_id, now, give_up_after):
                return False
            locale = chat_locale(session, self.name, chat_id)
            with use_locale(locale):
                text = _(
                    "Maaf, pesan Anda tadi tidak bisa kami proses. Silakan kirim lagi, atau "
                    "ketik /mulai untuk kembali ke menu."
                )
            payload = {**Outbound(text).to_payload(), "locale": locale}
            queue_message(session, self.name, chat_id, payload, now)
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
            chats = inbox.waiting_chats(session, self.name, before, limit)

        def one(chat_id: str) -> int:
            try:
                return self.drain(chat_id)
            except Exception as error:  # one stuck chat must not hold up the others
                log_failure(log, "applying a waiting update failed", error)
                return 0

        return sum(pool.map(one, chats) if pool is not None else map(one, chats))

    def _download(self, incoming: Incoming) -> Inbound:
        """Fetch a photo or file, unless it is already known to be too large.

        A file the API refuses to serve (expired, unknown) becomes an empty upload, which the
        document step refuses with a request to send it again; a network failure is raised, so
        the update waits and is tried again.
        """
        file = incoming.file
        assert file is not None
        limit = self.loket.settings.max_upload_bytes
        if file.size is not None and file.size > limit:
            return Inbound.file(b"", file.name, declared_size=file.size)
        try:
            data = self.transport.fetch(file, limit)
        except TooLarge as error:
            return Inbound.file(b"", file.name, declared_size=error.size)
        except Refused as error:
            log.warning("file not available: %s", error)
            data = b""
        return Inbound.file(data, file.name, declared_size=file.size)

    def _answer_tap(self, tap_id: str | None, text: str | None = None, alert: bool = False) -> None:
        """Answer a button press (stops its spinner); with a text, as a notice or an alert."""
        if tap_id is None:
            return
        try:
            self.transport.answer_tap(tap_id, text, alert)
        except TransportError as error:  # too old, or answered already: nothing to stop
            log.info("tap answer skipped: %s", error)

    def _acknowledge(self, chat_id: str, incoming: Incoming) -> None:
        """Answer the button press and fold the question, keeping the chosen answer visible."""
        tap = incoming.tap
        assert tap is not None
        limits = self.transport.limits
        try:
            if tap.id is not None:
                self.transport.answer_tap(tap.id)
            if not (limits.edits and tap.message_id and tap.label):
                return
            folded = Outbound(f"{tap.text or ''}\n\n✓ {tap.label}"[: limits.text])
            recipient = Recipient(chat_id, "id", datetime.now(UTC))
            edit = self.transport.render(folded, recipient).edit
            if edit is not None:
                self.transport.edit(chat_id, tap.message_id, edit)
        except TransportError as error:  # an old or already edited message: harmless
            log.info("acknowledge skipped: %s", error)

    # ---- outbound ----------------------------------------------------------------------

    def flush(self, chat_id: str, limit: int | None = None, *, active: bool = False) -> int:
        """Send one chat's pending outbox rows in order, until none is left (or `limit` were
        sent: the rest are given back); return the count.

        Each delivered row is recorded before the next is sent; the last one's record and the
        next claim share a transaction (one clock reading per round). A row that cannot be
        delivered is retried with backoff a bounded number of times, then set aside, and the
        chat's later rows go on; a chat that blocked us gets nothing until it writes again.
        `active`: the chat is known to take messages (it wrote this moment).
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
            last_inbound: datetime | None = None
            with self.loket.sessions() as session, session.begin():
                now = self.loket.now(session)
                if done is not None:
                    mark_sent(session, done[0], done[1], now)
                # A chat that just took a message (or just wrote) is not asked again.
                if not (done is not None or active) and is_inactive(session, self.name, chat_id):
                    set_aside_chat(session, self.name, chat_id, "inactive", now)
                    return sent
                rows = claim_outbox(session, self.name, chat_id, now, CLAIM_FOR)
                if rows and self.transport.limits.window is not None:
                    last_inbound = self._last_inbound(session, chat_id)
            done = None
            if not rows:
                return sent
            for position, (row_id, payload) in enumerate(rows):
                if limit is not None and sent >= limit:
                    left = [r for r, _p in rows[position:]]
                    break
                try:
                    message_id = self._send(chat_id, payload, now, last_inbound)
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

    def _last_inbound(self, session: Any, chat_id: str) -> datetime | None:
        """When the person last wrote (their conversation's last turn), in UTC."""
        found: datetime | None = session.execute(
            select(Conversation.last_activity_at).where(
                Conversation.channel == self.name, Conversation.user_ref == chat_id
            )
        ).scalar_one_or_none()
        if found is not None and found.tzinfo is None:
            found = found.replace(tzinfo=UTC)  # SQLite hands back naive times; all are UTC
        return found

    def _failed(self, chat_id: str, row_ids: list[int], error: Exception) -> bool:
        """Deal with a failed send of `row_ids[0]` (the rest are the chat's claimed rows after
        it); return True when the sender may go on with the rest.

        Flood control (a retry_after) holds the chat until then, and every sender of the
        channel, so none retries early and deepens the throttling; a blocked chat is marked
        inactive and its rows set aside; a refusal is permanent for this row; anything else
        (network, 5xx) is retried with backoff, at most MAX_SEND_ATTEMPTS times.
        """
        row_id = row_ids[0]
        kind = str(error) or type(error).__name__
        with self.loket.sessions() as session, session.begin():
            now = self.loket.now(session)
            if isinstance(error, RetryLater) and error.retry_after is not None:
                seconds = error.retry_after
                release_claim(session, row_ids, now + timedelta(seconds=seconds))
                self.pacer.hold_all(seconds)  # the API's wait holds for every chat
                log.warning("send held by flood control row=%s", row_id)
                return False
            if isinstance(error, ChatBlocked):
                mark_inactive(session, self.name, chat_id, "blocked", now)
                set_aside_chat(session, self.name, chat_id, "blocked", now)
                log.warning("chat inactive (%s); its messages set aside row=%s", kind, row_id)
                return False
            if isinstance(error, Refused):
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
        if isinstance(error, TransportError):
            log.warning("send failed row=%s attempt=%s: %s", row_id, attempts, kind)
        else:  # not the network: a bug; the traceback helps, the text might hold data
            log_failure(log, f"send failed row={row_id} attempt={attempts}", error)
        return False

    def _send(
        self, chat_id: str, payload: dict[str, Any], now: datetime, last_inbound: datetime | None
    ) -> str:
        """Deliver one outbox row; return the id recorded for it."""
        transport = self.transport
        message = Outbound.from_payload(payload)
        if payload.get("answer_tap"):
            try:  # a notice on the tap: no message, no pacing
                transport.answer_tap(str(payload["answer_tap"]), message.text, True)
                return "0"
            except Refused:  # the tap is too old to answer: say it in a message instead
                log.info("tap too old for its notice; sent as a message")
        locale = str(payload.get("locale") or "id")

        def export() -> tuple[str, bytes]:
            return self.loket.export_now(self.name, chat_id)  # read at sending time

        recipient = Recipient(chat_id, locale, now, last_inbound, export)
        with use_locale(locale):
            rendered = transport.render(message, recipient)
        if payload.get("edit") and not payload.get("answer_tap") and rendered.edit is not None:
            self.pacer.wait(chat_id)
            try:
                return transport.edit(chat_id, str(payload["edit"]), rendered.edit)
            except Refused:  # the message is gone or too old to edit: send a new one
                log.info("tapped message not editable; sent as a new message")
        ids: list[str] = []
        for part in rendered.parts:
            self.pacer.wait(chat_id)
            ids.append(transport.send(chat_id, part))
        if not ids:
            return "0"
        return ids[rendered.buttons_at] if rendered.buttons_at is not None else ids[-1]

    def apply_forever(
        self, seconds: float | None = None, threads: int = 4, idle_sleep: float = 0.05
    ) -> int:
        """Apply accepted updates as they come (`python -m bot apply`), `threads` chats at a
        time, for `seconds` or until stopped; return how many were applied."""
        stop_at = None if seconds is None else time.monotonic() + seconds
        applied = 0
        with ThreadPoolExecutor(threads, f"{self.name}-apply") as pool:
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
        with ThreadPoolExecutor(self.send_threads, f"{self.name}-flush") as pool:
            while True:
                with self.loket.sessions() as session:
                    chats = pending_chats(session, self.name)
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
