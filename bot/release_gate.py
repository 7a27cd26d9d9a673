"""Decide at accept time what a release tap needs no turn for, and answer it in the webhook.

At quota release thousands tap within seconds while one applier runs turns at tens a second.
What can be decided cheaply and durably is decided when the tap is accepted (the webhook
request), and the tap is answered in the webhook's own response (answerCallbackQuery in the
body, no Bot API call, nothing against Telegram's 30-a-second budget):

- Waiting room: the office tap at a gated office's release gets a durable queue number, a
  ticket keyed by office, release and chat (`storage.waiting_room.issue_ticket`: the release's
  counter row, so numbers follow accept order; a repeated tap gets the same number), stored in
  one statement with the tap's update, the ticket's turn. The turn is applied later (lane 1,
  after ordinary turns): it gives the NIK's entry the ticket's number, or the ticket is voided
  and admissions skip it. While the entry waits, the applied
  turn sends nothing (the number was the answer); "Giliran Anda" comes as a notice.
- Ballot: "Ikut undian" during an open one-date entry window, from an account whose number is
  proved, is recorded as the NIK's entry at once (idempotent: the entry's unique key), with
  the tap's update in one statement (`storage.ballot.enter_at_accept`); the turn applied
  later checks again (an entry found ineligible is voided and the person told why) and
  edits the tapped message into the confirmation.
- First come: a window tap when the office has no seat left at all is answered "habis" (read
  from the database at that moment, so never while a seat remains) and not applied; a tap
  while seats remain is accepted as an ordinary turn (the overload answer still applies) and
  acknowledged at once; its result edits the tapped message.

Recognising such a tap takes the callback data, the chat's stored conversation state (one
indexed read, never the conversation's lock) and a view of the office cached for a second in
the process (`OfficeViews`). Anything else goes the ordinary way.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.telegram_updates import translate
from bot.delivery.layer import Delivery
from bot.delivery.transport import Incoming, Unreadable
from bot.i18n import _, format_count, use_locale
from bot.metrics import refused
from bot.timezones import format_moment
from bot.waiting_room import NOTE_KEY
from storage.ballot import aware, enter_at_accept, entrant
from storage.inbox import Pending
from storage.models import (
    Ballot,
    Conversation,
    Office,
    QueueEntry,
    ReleaseMode,
    Slot,
    SlotKind,
)
from storage.waiting_room import ADMISSIONS, issue_ticket

log = logging.getLogger(__name__)

DECIDED_LANE = 1  # inbox lane of taps decided and answered at accept time
VIEW_SECONDS = 1.0
ALERT_LIMIT = 200
ENTER_BALLOT = "ballot:enter"


@dataclass(frozen=True)
class OfficeView:
    """What the gate needs to know of an office, read at one moment."""

    id: int
    name: str
    mode: str
    walk_in_only: bool
    timezone: str
    admit_per_minute: int
    # (release_at, seats free on coming days, every kind: "habis" only when none is left)
    releases: tuple[tuple[datetime, int], ...]
    admitted: dict[datetime, int]  # admissions so far, per release
    ballot: tuple[int, datetime, datetime, bool, int] | None  # id, opens, closes, drawn, days

    def current_release(self, now: datetime) -> datetime | None:
        """The latest release that has passed at `now` (the waiting room's key)."""
        passed = [at for at, _free in self.releases if at <= now]
        return max(passed) if passed else None

    def seats_free(self, now: datetime) -> int:
        """Seats free on coming days among those released by `now`."""
        return sum(free for at, free in self.releases if at <= now)


def read_releases(
    session: Session, office_id: int, today: date
) -> tuple[tuple[datetime, int], ...]:
    """Read an office's releases with the seats each left free on coming days (one query)."""
    free = func.sum(
        case(
            (
                (Slot.closed.is_(False)) & (Slot.day >= today),
                Slot.capacity - Slot.taken,
            ),
            else_=0,
        )
    )
    rows = session.execute(
        select(Slot.release_at, free).where(Slot.office_id == office_id).group_by(Slot.release_at)
    ).all()
    return tuple((aware(at), int(seats or 0)) for at, seats in rows if at is not None)


def read_view(session: Session, office_id: int, today: date) -> OfficeView | None:
    """Read an office's release view from the database."""
    office = session.get(Office, office_id)
    if office is None:
        return None
    releases = read_releases(session, office_id, today)
    admitted: dict[datetime, int] = {}
    if office.release_mode == ReleaseMode.WAITING_ROOM:
        counted = session.execute(
            select(QueueEntry.release_at, func.count())
            .where(QueueEntry.status.in_(ADMISSIONS), QueueEntry.office_id == office_id)
            .group_by(QueueEntry.release_at)
        ).all()
        admitted = {aware(at): int(n) for at, n in counted}
    ballot = None
    if office.release_mode == ReleaseMode.BALLOT:
        row = session.execute(
            select(Ballot).where(Ballot.office_id == office_id).order_by(Ballot.id.desc()).limit(1)
        ).scalar_one_or_none()
        if row is not None:
            days = session.execute(
                select(func.count(func.distinct(Slot.day))).where(
                    Slot.office_id == office_id,
                    Slot.day >= row.first_day,
                    Slot.day <= row.last_day,
                    Slot.kind == SlotKind.REGULER,
                    Slot.closed.is_(False),
                )
            ).scalar_one()
            ballot = (row.id, aware(row.opens_at), aware(row.closes_at), row.drawn_at is not None,
                      int(days))  # fmt: skip
    return OfficeView(
        id=office.id, name=office.name, mode=office.release_mode,
        walk_in_only=office.walk_in_only, timezone=office.timezone,
        admit_per_minute=office.admit_per_minute, releases=releases, admitted=admitted,
        ballot=ballot,
    )  # fmt: skip


class OfficeViews:
    """Office views cached in the process for `VIEW_SECONDS` (one read a second per office
    and process, whatever the herd); the clock is an argument for tests."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self._lock = threading.Lock()
        self._views: dict[int, tuple[float, OfficeView | None]] = {}

    def get(self, office_id: int, today: date, fresh: bool = False) -> OfficeView | None:
        """Return the office's view, read again when older than a second (or `fresh`)."""
        now = self.clock()
        with self._lock:
            cached = self._views.get(office_id)
        if cached is not None and not fresh and now - cached[0] < VIEW_SECONDS:
            return cached[1]
        with self.sessions() as session:
            view = read_view(session, office_id, today) if not fresh or cached is None else (
                replace(cached[1], releases=read_releases(session, office_id, today))
                if cached[1] is not None else None)  # fmt: skip
        with self._lock:
            self._views[office_id] = (now, view)
        return view


@functools.cache
def _conversation_state() -> Any:
    """A chat's conversation state and locale: built once, as a Core statement (every release
    tap reads it; building it anew through the ORM cost twice what running it does)."""
    c = cast(Table, Conversation.__table__).c
    return select(c.state, c.locale).where(
        c.channel == bindparam("channel"), c.user_ref == bindparam("user_ref")
    )


@dataclass(frozen=True)
class Decision:
    """The gate's answer to a tap: the alert text; whether (and in which lane) the update is
    still accepted for its turn, with the note the turn reads back."""

    text: str
    alert: bool
    accept: bool
    lane: int
    note: dict[str, Any]
    decided: bool  # a definitive answer (number, entry, "habis"), not an acknowledgement
    stored: bool = False  # accepted by the gate with its decision (a new ticket or entry)


class ReleaseGate:
    """Recognise release taps and decide them at accept time (see the module's docstring)."""

    def __init__(self, loket: Any, views: OfficeViews | None = None) -> None:
        self.loket = loket
        # Views are read without BEGIN/ROLLBACK round trips (autocommit on PostgreSQL).
        self.views = views or OfficeViews(sessionmaker(loket.autocommit_db, expire_on_commit=False))

    def now(self) -> datetime:
        """The time of a decision: the service's clock (tests), else this machine's."""
        clock = self.loket.clock
        return clock() if clock is not None else datetime.now(UTC)

    def decide(self, update: Any, channel: Delivery) -> tuple[Incoming, Decision] | None:
        """Return the decision for a release tap, or None when the tap goes the ordinary way.
        `channel` is the channel whose inbox takes what the gate stores itself."""
        if not isinstance(update, dict) or "callback_query" not in update:
            return None
        try:
            incoming = translate(update)
        except Unreadable:
            return None
        if (
            incoming is None
            or incoming.tap is None
            or incoming.tap.id is None
            or incoming.event is None
        ):
            return None
        data = incoming.event.text
        # Reads in short sessions closed before any write: SQLite's writer must not wait on
        # this request's own open transaction.
        with self.loket.autocommit_db.connect() as connection:  # one round trip, no BEGIN
            row = connection.execute(
                _conversation_state(), {"channel": "telegram", "user_ref": incoming.chat_id}
            ).first()
        if row is None:
            return None
        state, locale = row
        if not isinstance(state, dict) or state.get("flow") != "booking":
            return None
        answers = state.get("answers") or {}
        if "outreach" in answers or not answers.get("application"):
            return None
        sender = (update["callback_query"].get("from") or {}).get("language_code")

        def turn(kind: str) -> Pending:
            """The tap's update, stored by the gate with what it decided (one transaction)."""
            return Pending(channel.inbox_key(incoming), channel.name, incoming.chat_id,
                           {**update, NOTE_KEY: {"kind": kind}}, DECIDED_LANE)  # fmt: skip

        with use_locale(locale or sender or "id"):
            decision = self._decide(incoming, state, answers, data, turn)
        return None if decision is None else (incoming, decision)

    def _decide(
        self,
        incoming: Incoming,
        state: dict[str, Any],
        answers: dict[str, Any],
        data: str,
        turn: Callable[[str], Pending],
    ) -> Decision | None:
        step = state.get("step")
        now = self.now()
        if step == "office" and data.isdigit():
            offered = {str(found.get("id")) for found in answers.get("office_query") or []
                       if isinstance(found, dict) and "outreach" not in found}  # fmt: skip
            if data in offered:
                return self._ticket(incoming, int(data), now, turn("ticket"))
            return None
        if step == "day" and data == ENTER_BALLOT and str(answers.get("office", "")).isdigit():
            return self._ballot(incoming, int(answers["office"]), answers, now, turn("ballot"))
        shown = state.get("shown") or []
        if step == "slot" and data.isdigit() and data in shown:
            office_id = str(answers.get("office", ""))
            if office_id.isdigit():
                return self._first_come(incoming, int(office_id), now)
        return None

    def _view(self, office_id: int, now: datetime, fresh: bool = False) -> OfficeView | None:
        return self.views.get(office_id, now.date(), fresh)

    # ---- waiting room ---------------------------------------------------------------------

    def _ticket(
        self, incoming: Incoming, office_id: int, now: datetime, turn: Pending
    ) -> Decision | None:
        view = self._view(office_id, now)
        if view is None or view.mode != ReleaseMode.WAITING_ROOM or view.walk_in_only:
            return None
        release_at = view.current_release(now)
        if release_at is None or view.seats_free(now) <= 0:
            return None  # not released, or sold out: the turn says so
        ticket = issue_ticket(self.loket.autocommit_db, office_id, release_at, now, turn)
        if ticket.status != "issued":
            return None  # used or voided: the turn (or /antrean) says where they stand
        given = view.admitted.get(release_at, 0)
        ahead = max(0, ticket.number - 1 - given)
        started = max(0.0, (now - release_at).total_seconds())
        pace = max(float(view.admit_per_minute), given / (int(started // 60) + 1), 1e-9)
        minutes = max(1, math.ceil((ahead + 1) / pace))
        text = _(
            "Nomor antrean Anda {number} di {office}; di depan Anda sekitar {ahead} orang; "
            "perkiraan {minutes} menit. Kami kabari di chat ini saat giliran Anda tiba."
        ).format(number=format_count(ticket.number), office=view.name, ahead=format_count(ahead),
                 minutes=minutes)  # fmt: skip
        return Decision(text[:ALERT_LIMIT], True, False, DECIDED_LANE, turn.payload[NOTE_KEY],
                        True, stored=ticket.new)  # fmt: skip

    # ---- ballot ---------------------------------------------------------------------------

    def _ballot(
        self,
        incoming: Incoming,
        office_id: int,
        answers: dict[str, Any],
        now: datetime,
        turn: Pending,
    ) -> Decision | None:
        view = self._view(office_id, now)
        if view is None or view.mode != ReleaseMode.BALLOT or view.walk_in_only:
            return None
        if view.ballot is None:
            return None
        ballot_id, opens, closes, drawn, days = view.ballot
        if drawn or not opens <= now < closes or days != 1:
            return None  # closed, or several dates to choose from: the turn asks
        try:
            application_id = int(answers["application"])
        except (TypeError, ValueError):
            return None
        person = entrant(self.loket.autocommit_db, application_id)
        if person is None or (person.channel, person.account_ref) != ("telegram", incoming.chat_id):
            return None
        if self.loket.settings.require_verified_phone and person.phone is None:
            return None  # the turn asks for the number first
        entry_id, new = enter_at_accept(self.loket.autocommit_db, ballot_id, application_id,
                                         person, now, turn)  # fmt: skip
        if entry_id is None:
            return None  # voided before: the turn decides again
        text = _(
            "Pendaftaran undian Anda di {office} tercatat (nomor pendaftaran {number}). Hasilnya "
            "kami kirim ke chat ini setelah undian ditutup {closes}."
        ).format(office=view.name, number=entry_id,
                 closes=format_moment(closes, view.timezone))  # fmt: skip
        return Decision(text[:ALERT_LIMIT], True, False, DECIDED_LANE, turn.payload[NOTE_KEY],
                        True, stored=new)  # fmt: skip

    # ---- first come -----------------------------------------------------------------------

    def _first_come(self, incoming: Incoming, office_id: int, now: datetime) -> Decision | None:
        view = self._view(office_id, now)
        if view is None or view.mode != ReleaseMode.FIRST_COME or view.walk_in_only:
            return None
        if view.current_release(now) is None:
            return None
        if view.seats_free(now) <= 0:
            view = self._view(office_id, now, fresh=True)  # "habis" only from a fresh count
            if view is not None and view.seats_free(now) <= 0:
                refused("sold_out")
                return Decision(self._sold_out_text(view, now), True, False, 0, {}, True)
        text = _("Permintaan Anda kami terima, hasilnya kami kirim sebentar lagi.")
        return Decision(text, False, True, 0, {"kind": "first_come"}, False)

    def _sold_out_text(self, view: OfficeView, now: datetime) -> str:
        coming = [at for at, _free in view.releases if at > now]
        if coming:
            opens = min(coming)
            text = _(
                "Maaf, kuota di {office} sudah habis. Kuota berikutnya dibuka {moment}."
            ).format(office=view.name, moment=format_moment(opens, view.timezone))
        else:
            text = _(
                "Maaf, kuota di {office} sudah habis untuk semua tanggal yang dibuka. Ketik "
                "/langganan agar kami kabari bila ada kuota baru."
            ).format(office=view.name)
        return text[:ALERT_LIMIT]


def answer_tap(gate: ReleaseGate, channel: Delivery, update: Any, busy: Callable[[], bool]) -> Any:
    """Decide a release tap in the webhook: accept it if it still needs its turn, and return
    the webhook response's body (answerCallbackQuery), or None for the ordinary path."""
    if isinstance(update, dict):
        update.pop(NOTE_KEY, None)  # only the gate writes this key
    try:
        found = gate.decide(update, channel)
    except Exception as error:  # the ordinary path decides (and answers 500 if it must)
        log.warning("release gate skipped: %s", type(error).__name__)
        return None
    if found is None:
        return None
    incoming, decision = found
    assert incoming.tap is not None  # `decide` takes taps only
    if decision.stored:
        channel.schedule(incoming.chat_id)
    elif decision.accept:
        if decision.lane == 0 and busy():
            return None  # an ordinary turn under overload: the busy answer
        chat_id, _new = channel.accept({**update, NOTE_KEY: decision.note}, lane=decision.lane)
        if chat_id is not None:
            channel.schedule(chat_id)
    return {"method": "answerCallbackQuery", "callback_query_id": incoming.tap.id,
            "text": decision.text, "show_alert": decision.alert}  # fmt: skip
