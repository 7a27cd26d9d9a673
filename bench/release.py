"""Quota release through the deployment's HTTP path: N applicants arrive within S seconds.

gunicorn serves `bot.web:create_app()` as the Procfile runs it (2 workers x 4 threads, each
accepting only as many connections as it has threads, keep-alive off; the web processes only
accept; one `nice -n 19 python -m bot apply` applies; `python -m bot worker` admits, draws
and sends leftovers every 2 s) on the configured database and shared state
(DATABASE_URL, REDIS_URL: a fresh database per run, dropped afterwards; a Redis key prefix of
the run's own, deleted). Telegram is the fake Bot API server of tests/fake_telegram.py in this
process; updates are posted to the webhook with its secret.

Users are made directly in storage (as bench/herd.py does): a submitted application, the
phone number proved (Telegram's own contact, one number each) and a conversation at the step
where the mode's release happens. Then an open-loop schedule: arrival i is posted at
t0 + seconds * i / users by a pool of client threads, whatever the server's pace.

- first_come: the conversation waits at the window question; the arrival is the window tap.
- waiting_room: the conversation waits at the office question; the arrival is the office tap,
  which asks for a date, so the applicant gets a queue number (or, admitted, the dates). When
  the fake Bot API receives "Giliran Anda" for a chat, that user taps on like a person: "Lihat
  giliran saya" when the turn came as a notice, then the first date, then a window (read from
  the inline keyboard the bot last sent or edited in that chat).
- ballot: the conversation waits at the date question of a ballot office whose entry window
  is open; the arrival is the "Ikut undian" tap. Once every arrival is answered the bench
  closes the window (`closes_at` set to the database's now), the worker's next round draws and
  tells everyone, and the bench recomputes the draw from `GET /ballot/<office>`'s revealed
  seed with its own HMAC-SHA256 code and compares the winners.

An arrival is "answered" at the first Bot API call the fake server receives for its chat after
it was posted (sendMessage, editMessageText or answerCallbackQuery), or when the webhook's own
response answers it ("sedang ramai" under overload). The last line printed is JSON.

    python bench/release.py --mode all --users 20000 --seconds 10 --seats 500
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import itertools
import json
import math
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.herd import check, fresh_database, nik_for, percentile  # noqa: E402
from bench.webhook import free_port, gunicorn_command  # noqa: E402
from bot.shared import RedisState  # noqa: E402
from storage.ballot import new_ballot  # noqa: E402
from storage.booking import db_now  # noqa: E402
from storage.db import make_engine, make_session_factory  # noqa: E402
from storage.models import (  # noqa: E402
    Application,
    Ballot,
    BallotEntry,
    Conversation,
    Office,
    PhoneVerification,
    QueueEntry,
    QueueTicket,
    Slot,
)
from tests.fake_telegram import TOKEN, FakeTelegram  # noqa: E402

SECRET = "bench-secret"
CHANNEL = "telegram"
WINDOWS = 5
FIRST_CHAT = 50_000_000  # chat ids of the simulated applicants
WARM_UP_CHAT = 40_000_000  # chats that warm the processes up before the release
MODES = ("first_come", "waiting_room", "ballot")
OFFICE_CODE = "rilis"
ANSWERING = ("sendMessage", "editMessageText", "answerCallbackQuery")
BUDGET = 30  # messages a second Telegram allows a bot


def phone_of(number: int) -> str:
    """Return applicant `number`'s own phone number (E.164, one per person)."""
    return f"+62813{number:08d}"


# ---- the fake Bot API, watched ------------------------------------------------------------


@dataclass
class Shown:
    """The message with buttons a chat last saw (what a person would tap on)."""

    message_id: int
    text: str
    markup: dict[str, Any] | None

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of its inline keyboard."""
        rows = (self.markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


@dataclass
class WatchedTelegram(FakeTelegram):
    """The tests' fake Bot API, timing every call per chat and remembering each chat's last
    keyboard; `react` (if set) is called with each message a chat is sent or edited to."""

    times: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    keyboards: dict[int, Shown] = field(default_factory=dict)
    react: Any = None
    counts: dict[str, int] = field(default_factory=dict)

    def handle(self, method: str, params: dict[str, Any]) -> tuple[bool, Any]:
        """Record the call's time and chat, then answer it (edits without a list scan)."""
        now = time.monotonic()
        chat: int | None = None
        if method == "answerCallbackQuery":
            chat = int(str(params["callback_query_id"]).split(":", 1)[0])
        elif "chat_id" in params:
            chat = int(params["chat_id"])
        with self.lock:
            self.counts[method] = self.counts.get(method, 0) + 1
            if chat is not None:
                self.times.setdefault(chat, []).append((now, method))
        if method == "editMessageText":
            assert chat is not None
            shown = Shown(int(params["message_id"]), str(params["text"]),
                          params.get("reply_markup"))  # fmt: skip
            self._saw(chat, shown)
            return True, self.message(str(chat), shown.message_id, shown.text)
        ok, result = super().handle(method, params)
        if ok and method == "sendMessage" and chat is not None:
            self._saw(chat, Shown(int(result["message_id"]), str(params.get("text", "")),
                                  params.get("reply_markup")))  # fmt: skip
        return ok, result

    def _saw(self, chat: int, shown: Shown) -> None:
        with self.lock:
            if shown.buttons:
                self.keyboards[chat] = shown
        if self.react is not None:
            self.react(chat, shown)


# ---- preparing the release ----------------------------------------------------------------


def prepare(url: str, mode: str, users: int, seats: int, admit_per_minute: int) -> dict[str, Any]:
    """One office with `seats` seats in windows of one day, and `users` applicants waiting at
    the mode's release step; the seats' release is set later, at t0."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        now = db_now(session)
        office = Office(
            code=OFFICE_CODE, name="Kantor Imigrasi Rilis", city="Rilis", province="Bench",
            timezone="Asia/Jakarta", address="Jl. Benchmark 2", hours="08.00-15.00",
            latitude=-6.9, longitude=107.6, release_mode=mode,
            admit_per_minute=admit_per_minute, admit_minutes=5,
        )  # fmt: skip
        session.add(office)
        session.flush()
        day = (now + timedelta(days=7)).date()
        per_window, extra = divmod(seats, WINDOWS)
        slot_ids = []
        for window in range(WINDOWS):
            slot = Slot(
                office_id=office.id, day=day, start_time=clock_time(8 + window, 0),
                end_time=clock_time(9 + window, 0), kind="reguler",
                capacity=per_window + (1 if window < extra else 0), taken=0,
                release_at=now + timedelta(days=1), closed=False,
            )  # fmt: skip
            session.add(slot)
            session.flush()
            slot_ids.append(slot.id)
        if mode == "ballot":
            new_ballot(session, office, now - timedelta(minutes=1), now + timedelta(days=1),
                       day, day, now)  # fmt: skip
        office_id = office.id
    found = [{"id": office_id, "km": None}]
    if mode == "first_come":
        step, history = "slot", ["office_query", "office", "day"]
        answers: dict[str, Any] = {"office_query": found, "office": str(office_id),
                                   "day": day.isoformat()}  # fmt: skip
        shown = [str(slot_id) for slot_id in slot_ids]
    elif mode == "waiting_room":
        step, history = "office", ["office_query"]
        answers = {"office_query": found}
        shown = [str(office_id)]
    else:
        step, history = "day", ["office_query", "office"]
        answers = {"office_query": found, "office": str(office_id)}
        shown = ["ballot:enter", "other_office", "menu"]
    batch = 2000
    for start in range(0, users, batch):
        numbers = range(start, min(start + batch, users))
        refs = [str(FIRST_CHAT + n) for n in numbers]
        with sessions() as session, session.begin():
            session.execute(
                insert(Application),
                [
                    {
                        "reg_number": f"LK-R{n:08d}", "channel": CHANNEL,
                        "account_ref": str(FIRST_CHAT + n), "status": "registered",
                        "service": "reguler", "application_type": "baru",
                        "passport_kind": "biasa", "validity_years": 5, "category": "adult",
                        "nik": nik_for(n), "full_name": f"PEMOHON {n}",
                        "birth_place": "Bandung", "birth_date": date(1990, 1, 1), "sex": "M",
                        "phone": phone_of(n), "address": "Jl. Merdeka 10 Bandung",
                        "travel_purpose": "wisata", "name_changed": False,
                        "fee_amount": 350000, "fee_schedule": "PP 45/2024", "answers": {},
                        "created_at": now,
                    }
                    for n in numbers
                ],
            )  # fmt: skip
            ids = dict(
                session.execute(
                    select(Application.account_ref, Application.id).where(
                        Application.channel == CHANNEL, Application.account_ref.in_(refs)
                    )
                ).all()
            )
            session.execute(
                insert(PhoneVerification),
                [{"channel": CHANNEL, "user_ref": str(FIRST_CHAT + n), "phone": phone_of(n),
                  "method": "contact", "verified_at": now} for n in numbers],
            )  # fmt: skip
            session.execute(
                insert(Conversation),
                [
                    {
                        "channel": CHANNEL, "user_ref": ref, "locale": None,
                        "created_at": now, "last_activity_at": now,
                        "state": {
                            "flow": "booking", "step": step,
                            "answers": {"application": str(ids[ref]), **answers},
                            "history": history, "shown": shown,
                        },
                    }
                    for ref in refs
                ],
            )  # fmt: skip
    engine.dispose()
    return {"office_id": office_id, "slot_ids": slot_ids, "day": day}


def release_now(url: str, office_id: int) -> None:
    """Release the office's seats at the database's present moment (the quota opens)."""
    engine = make_engine(url)
    with make_session_factory(engine)() as session, session.begin():
        now = db_now(session)
        session.execute(update(Slot).where(Slot.office_id == office_id).values(release_at=now))
    engine.dispose()


# ---- the applicants -----------------------------------------------------------------------


class Poster:
    """Posts signed updates to the webhook over kept-alive connections, one per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()
        self.update_ids = itertools.count(1)
        self.callback_ids = itertools.count(1)

    def tap(self, chat: int, data: str, message_id: int, text_shown: str,
            markup: dict[str, Any] | None) -> tuple[float, dict[str, Any] | None]:  # fmt: skip
        """Post a tap; return when it was sent and the webhook's body when it answers there."""
        sender = {"id": chat, "is_bot": False, "first_name": "Pemohon", "language_code": "id"}
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private"},
            "text": text_shown,
        }
        if markup:
            message["reply_markup"] = markup
        return self.post({"update_id": next(self.update_ids), "callback_query": {
            "id": f"{chat}:{next(self.callback_ids)}", "chat_instance": "1", "data": data,
            "from": sender, "message": message}})  # fmt: skip

    def post(self, update: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
        """Post one update; return when it was sent and the webhook's body if it answers."""
        body = json.dumps(update).encode()
        headers = {"Content-Type": "application/json",
                   "X-Telegram-Bot-Api-Secret-Token": SECRET}  # fmt: skip
        for attempt in range(3):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.local.connection = connection
            sent = time.monotonic()
            try:
                connection.request("POST", "/telegram/webhook", body, headers)
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
                continue
            if response.status != 200:
                raise RuntimeError(f"webhook answered {response.status}: {answer[:200]!r}")
            parsed = json.loads(answer)
            return sent, (parsed if "method" in parsed else None)
        raise AssertionError("unreachable")


@dataclass
class Arrivals:
    """What the client pool saw of each arrival."""

    sent: dict[int, float] = field(default_factory=dict)  # chat -> monotonic send time
    due: dict[int, float] = field(default_factory=dict)  # chat -> when the schedule said
    late: list[float] = field(default_factory=list)  # ms behind the schedule
    busy: dict[int, float] = field(default_factory=dict)  # answered in the webhook response
    # What the webhook's own answer was: "busy" ("sedang ramai"), "ack" (taken, the result
    # follows) or "decided" (a queue number, a ballot entry, "habis").
    kinds: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def answer_kind(answer: dict[str, Any]) -> str:
    """Classify the webhook's own answer to a tap by its (Indonesian) text."""
    text = str(answer.get("text", ""))
    if "sedang ramai" in text:
        return "busy"
    if text.startswith("Permintaan Anda kami terima"):
        return "ack"
    return "decided"


def arrive(poster: Poster, mode: str, users: int, seconds: float, clients: int,
           info: dict[str, Any]) -> Arrivals:  # fmt: skip
    """Post arrival i at t0 + seconds * i / users from `clients` threads (open loop)."""
    seen = Arrivals()
    lock = threading.Lock()
    counter = itertools.count()
    slot_ids = info["slot_ids"]
    t0 = time.monotonic() + 0.5

    def client() -> None:
        while True:
            i = next(counter)
            if i >= users:
                return
            chat = FIRST_CHAT + i
            if mode == "first_come":
                data, words = str(slot_ids[(i * 7919) % len(slot_ids)]), "Pilih jam kedatangan:"
            elif mode == "waiting_room":
                data, words = str(info["office_id"]), "Pilih kantor imigrasi:"
            else:
                data, words = "ballot:enter", "Kantor Imigrasi Rilis membagikan kuota lewat undian."
            due = t0 + seconds * i / users
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                sent, answer = poster.tap(chat, data, chat, words, None)
            except Exception as error:  # counted, not hidden
                with lock:
                    seen.errors.append(type(error).__name__)
                continue
            with lock:
                seen.sent[chat] = sent
                seen.due[chat] = due
                seen.late.append(max(0.0, (sent - due) * 1000))
                if answer is not None:
                    seen.busy[chat] = time.monotonic()
                    seen.kinds[chat] = answer_kind(answer)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


def warm_up(poster: Poster, fake: WatchedTelegram, chats: int) -> None:
    """Have every process answer a few chats first (imports, connections), as a deployment's
    processes are warm at release; their calls are not counted."""
    for chat in range(WARM_UP_CHAT, WARM_UP_CHAT + chats):
        poster.post(
            {
                "update_id": next(poster.update_ids),
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "text": "/status",
                    "chat": {"id": chat, "type": "private"},
                    "from": {"id": chat, "is_bot": False, "first_name": "P", "language_code": "id"},
                },
            }
        )
    wait_until(
        lambda: all(chat in fake.times for chat in range(WARM_UP_CHAT, WARM_UP_CHAT + chats)), 60
    )
    with fake.lock:
        fake.counts.clear()


class People:
    """Waiting-room applicants carrying on like people once their turn comes: "Lihat giliran
    saya" when it came as a notice, the first date offered, then a window."""

    MAX_TAPS = 8  # a person gives up after this many taps

    def __init__(self, poster: Poster, fake: WatchedTelegram, threads: int = 8) -> None:
        self.poster = poster
        self.fake = fake
        self.todo: queue.Queue[tuple[int, str, Shown] | None] = queue.Queue()
        self.taps: dict[int, int] = {}
        self.acted: set[tuple[int, int, str]] = set()
        self.lock = threading.Lock()
        self.pending = 0
        self.errors: list[str] = []
        self.workers = [threading.Thread(target=self.work, daemon=True) for _ in range(threads)]
        for worker in self.workers:
            worker.start()

    def react(self, chat: int, shown: Shown) -> None:
        """Decide what this person taps after reading `shown` (called by the fake server)."""
        values = [data for _label, data in shown.buttons]
        dates = [v for v in values if len(v) == 10 and v[4] == "-" and v[7] == "-"]
        windows = [v for v in values if v.isdigit()]
        tap: tuple[str, Shown] | None = None
        if "Pilih jam kedatangan" in shown.text and windows:
            tap = (windows[chat % len(windows)], shown)
        elif dates and "Pilih tanggal" in shown.text:
            tap = (dates[0], shown)
        elif shown.text.startswith("Giliran Anda:") and "queue:refresh" in values:
            tap = ("queue:refresh", shown)  # the notice's own button
        elif shown.text.startswith("Giliran Anda:") and not shown.buttons:
            with self.fake.lock:
                board = self.fake.keyboards.get(chat)
            if board is not None and "queue:refresh" in [d for _l, d in board.buttons]:
                tap = ("queue:refresh", board)
        if tap is None:
            return
        key = (chat, tap[1].message_id, tap[1].text[:60] + tap[0])
        with self.lock:
            if key in self.acted or self.taps.get(chat, 0) >= self.MAX_TAPS:
                return
            self.acted.add(key)
            self.taps[chat] = self.taps.get(chat, 0) + 1
            self.pending += 1
        self.todo.put((chat, tap[0], tap[1]))

    def work(self) -> None:
        """Post the taps people decided on."""
        while True:
            item = self.todo.get()
            if item is None:
                return
            chat, data, shown = item
            try:
                self.poster.tap(chat, data, shown.message_id, shown.text, shown.markup)
            except Exception as error:
                self.errors.append(type(error).__name__)
            with self.lock:
                self.pending -= 1

    def stop(self) -> None:
        """Let the tapping threads end."""
        for _worker in self.workers:
            self.todo.put(None)


# ---- checking -----------------------------------------------------------------------------


def count_inversions(values: list[Any]) -> int:
    """Count pairs i < j with values[i] > values[j] (merge sort, O(n log n))."""
    work = list(values)
    buffer = list(values)
    inversions = 0
    width = 1
    n = len(work)
    while width < n:
        for start in range(0, n, 2 * width):
            middle, end = min(start + width, n), min(start + 2 * width, n)
            i, j, k = start, middle, start
            while i < middle and j < end:
                if work[j] < work[i]:
                    buffer[k] = work[j]
                    inversions += middle - i
                    j += 1
                else:
                    buffer[k] = work[i]
                    i += 1
                k += 1
            buffer[k:end] = work[i:middle] + work[j:end]
        work, buffer = buffer, work
        width *= 2
    return inversions


def _tied_pairs(ordered: list[Any]) -> int:
    pairs = 0
    for _value, group in itertools.groupby(ordered):
        size = sum(1 for _ in group)
        pairs += size * (size - 1) // 2
    return pairs


def kendall_tau_b(x: list[Any], y: list[Any]) -> float | None:
    """Kendall's tau-b of two paired sequences (Knight's O(n log n) algorithm); None when
    undefined (fewer than two pairs, or one side all tied)."""
    n = len(x)
    if n < 2:
        return None
    pairs = sorted(zip(x, y, strict=True))
    total = n * (n - 1) // 2
    tied_x = _tied_pairs([a for a, _b in pairs])
    tied_both = _tied_pairs(pairs)
    ys = [b for _a, b in pairs]
    swaps = count_inversions(ys)
    tied_y = _tied_pairs(sorted(ys))
    denominator = math.sqrt((total - tied_x) * (total - tied_y))
    if denominator == 0:
        return None
    return (total - tied_x - tied_y + tied_both - 2 * swaps) / denominator


def recompute_draw(seed_hex: str, entry_ids: list[int]) -> list[int]:
    """The draw order from the revealed seed, written here from README's description alone:
    ids sorted by HMAC-SHA256(key=seed bytes, msg=decimal id) in hex, then by id."""
    key = bytes.fromhex(seed_hex)

    def rank(entry_id: int) -> tuple[str, int]:
        digest = hmac.new(key, str(entry_id).encode("ascii"), hashlib.sha256).hexdigest()
        return digest, entry_id

    return sorted(entry_ids, key=rank)


def check_ballot(port: int, seats: int) -> dict[str, Any]:
    """Fetch the public ballot and recompute its draw; compare order and winners."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", f"/ballot/{OFFICE_CODE}")
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    if response.status != 200 or body.get("seed") is None:
        return {"recomputed_matches": False, "why": f"HTTP {response.status}, not drawn"}
    seed = body["seed"]
    published = [int(entry) for entry in body["order"]]
    order = recompute_draw(seed, sorted(published))
    winners = {o["entry"] for o in body["outcomes"] if o["drawn_seat"]}
    # Every entrant has their own NIK and number, so the first `seats` drawn hold the seats.
    expected = set(order[: min(seats, len(order))])
    commitment_ok = hashlib.sha256(bytes.fromhex(seed)).hexdigest() == body["commitment"]
    return {
        "recomputed_matches": order == published and winners == expected and commitment_ok,
        "entries": len(published),
        "winners": len(winners),
        "commitment_matches": commitment_ok,
    }


# ---- one run ------------------------------------------------------------------------------


def wait_until(condition: Any, limit: float, step: float = 0.1) -> bool:
    """Poll `condition` until it holds or `limit` seconds pass; return whether it held."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def run(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """Run one release in one mode; return the figures."""
    base = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL")
    fake = WatchedTelegram()
    fake.start()
    prefix = f"bench-release-{uuid.uuid4().hex[:8]}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with fresh_database(base) as url, tempfile.TemporaryDirectory() as folder:
            backend = make_url(url).get_backend_name()
            began = time.monotonic()
            info = prepare(url, mode, args.users, args.seats, args.admit)
            print(f"[{mode}] {args.users} applicants prepared in {time.monotonic() - began:.1f} s "
                  f"({backend}{' + Redis' if redis_url else ''})", flush=True)  # fmt: skip
            port = free_port()
            env = {
                **os.environ, "DATABASE_URL": url, "LOKET_AUTO_MIGRATE": "0",
                "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url,
                "TELEGRAM_BASE_FILE_URL": fake.base_file_url, "TELEGRAM_WEBHOOK_SECRET": SECRET,
                "LOG_LEVEL": "WARNING", "LOKET_REDIS_PREFIX": prefix,
                "TELEGRAM_RATE_PER_SECOND": str(args.telegram_rate),
                "TELEGRAM_CHAT_RATE_PER_SECOND": str(args.telegram_rate),
                "LOKET_APPLY_IN_WEB": "1" if args.apply_in_web else "0",
                "LOKET_DATA_DIR": folder,
                "LOKET_DOCUMENT_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            }  # fmt: skip
            if redis_url:
                env["REDIS_URL"] = redis_url
            command = gunicorn_command(
                args.workers, args.threads, args.keep_alive, args.worker_connections, port
            )
            processes.append(subprocess.Popen(command, env=env, cwd=ROOT))
            if not args.apply_in_web:
                for _n in range(args.appliers):
                    processes.append(subprocess.Popen(
                        ["nice", "-n", str(args.nice), sys.executable, "-m", "bot", "apply"],
                        env=env, cwd=ROOT))  # fmt: skip
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "bot", "worker", "--interval", str(args.worker_interval)],
                env=env, cwd=ROOT))  # fmt: skip
            try:
                outcome = release(args, mode, url, port, fake, info)
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=60)
    finally:
        fake.stop()
        if redis_url:
            state = RedisState(redis_url, prefix)
            for key in state.client.scan_iter(f"{prefix}:*"):
                state.client.delete(key)
            state.close()
    return outcome


def release(args: argparse.Namespace, mode: str, url: str, port: int, fake: WatchedTelegram,
            info: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Open the quota, post the arrivals, let people carry on, and measure."""
    if not wait_until(lambda: _answers(port, "/ping"), 240, 0.2):
        raise RuntimeError("gunicorn did not start")
    expected = args.workers + (0 if args.apply_in_web else args.appliers) + 1
    wait_until(lambda: fake.counts.get("getMe", 0) >= expected, 60, 0.2)
    poster = Poster(port)
    warm_up(poster, fake, args.workers * args.threads * 2)
    people = People(poster, fake) if mode == "waiting_room" else None
    fake.react = people.react if people is not None else None
    try:
        release_now(url, info["office_id"])
        started = time.monotonic()
        seen = arrive(poster, mode, args.users, args.seconds, args.clients, info)
        posted = time.monotonic() - started
        print(f"[{mode}] {len(seen.sent)} arrivals posted in {posted:.1f} s "
              f"(schedule {args.seconds:.0f} s)", flush=True)  # fmt: skip

        def all_answered() -> bool:
            with fake.lock:
                return all(chat in seen.busy or chat in fake.times for chat in seen.sent)

        answered_in_time = wait_until(all_answered, args.drain_limit, 0.25)

        def all_decided() -> bool:
            """Every acknowledged tap ("kami terima") has its result too (a seat or not)."""
            with fake.lock:
                return all(
                    any(at >= seen.sent[chat] and method in ANSWERING[:2]
                        for at, method in fake.times.get(chat, ()))
                    for chat, kind in seen.kinds.items() if kind == "ack"
                )  # fmt: skip

        decided_in_time = wait_until(all_decided, args.drain_limit, 0.5)
        settled = True
        ballot: dict[str, Any] = {}
        if people is not None:
            waiting = people

            def booked_out() -> bool:
                return check(url)["bookings"] >= args.seats and waiting.pending == 0

            settled = wait_until(booked_out, args.drain_limit, 1.0)
            time.sleep(2)  # taps already posted are applied and answered
            wait_until(lambda: waiting.pending == 0, 30, 0.2)
        if mode == "ballot":
            ballot = close_and_draw(args, url, port, fake)
            settled = ballot.pop("settled")
        finished = time.monotonic() - started
        figures = check(url)
        numbers = _queue_numbers(url) if mode == "waiting_room" else {}
    finally:
        if people is not None:
            people.stop()

    latencies = []
    from_due = []  # the same, counted from when the schedule meant to send it
    decided = []  # until the definitive answer: a seat held, "habis", a number, an entry
    for chat, sent in seen.sent.items():
        calls = fake.times.get(chat, ())
        kind = seen.kinds.get(chat)
        if chat in seen.busy:
            answered_at = seen.busy[chat]
        else:
            after = [at for at, method in calls if at >= sent and method in ANSWERING]
            if not after:
                continue
            answered_at = min(after)
        latencies.append((answered_at - sent) * 1000)
        from_due.append((answered_at - seen.due[chat]) * 1000)
        if kind == "decided" or kind is None:
            decided.append((answered_at - sent) * 1000)
        elif kind == "ack":  # the result edits the tapped message (or comes as a message)
            results = [at for at, method in calls if at >= sent and method in ANSWERING[:2]]
            if results:
                decided.append((min(results) - sent) * 1000)
    tau = None
    if numbers:
        ordered = [
            (seen.sent[chat], number) for chat, number in numbers.items() if chat in seen.sent
        ]
        tau = kendall_tau_b([a for a, _n in ordered], [n for _a, n in ordered])
    counts = dict(fake.counts)
    messages = counts.get("sendMessage", 0) + counts.get("editMessageText", 0)
    result: dict[str, Any] = {
        "mode": mode,
        "users": args.users,
        "seats": args.seats,
        "bookings": figures["bookings"],
        "answered": len(latencies),
        "answered_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "unanswered": args.users - len(latencies),
        "kendall_tau": None if tau is None else round(tau, 4),
        "overbooked": figures["overbooked"],
        "messages_per_arrival": round(messages / args.users, 3),
        "answer_callback_per_arrival": round(counts.get("answerCallbackQuery", 0) / args.users, 3),
        "decided_p99_ms": round(percentile(decided, 0.99), 1) if decided else None,
        "decided": len(decided),
        "acknowledged": sum(1 for kind in seen.kinds.values() if kind == "ack"),
        "decided_in_webhook": sum(1 for kind in seen.kinds.values() if kind == "decided"),
        "answered_p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "answered_max_ms": round(max(latencies), 1) if latencies else None,
        "answered_from_schedule_p99_ms": (
            round(percentile(from_due, 0.99), 1) if from_due else None
        ),
        "busy_answers": sum(1 for kind in seen.kinds.values() if kind == "busy"),
        "posted_seconds": round(posted, 1),
        "schedule_late_p99_ms": round(percentile(seen.late, 0.99), 1),
        "post_errors": len(seen.errors) + (len(people.errors) if people else 0),
        "all_answered_in_limit": answered_in_time,
        "all_decided_in_limit": decided_in_time,
        "settled": settled,
        "seconds": round(finished, 1),
        "calls": counts,
        "budget_seconds": round(messages / BUDGET, 1),
        "duplicate_billing_codes": figures["duplicate_billing_codes"],
        "duplicate_nik_bookings": figures["duplicate_nik_bookings"],
        "admit_per_minute": args.admit if mode == "waiting_room" else None,
        "queue_numbers": len(numbers) if mode == "waiting_room" else None,
    }
    result.update(ballot)
    return result


def close_and_draw(
    args: argparse.Namespace, url: str, port: int, fake: WatchedTelegram
) -> dict[str, Any]:
    """Close the ballot's window now (database time), let the worker draw and tell everyone,
    then recompute the draw from what `GET /ballot/<office>` reveals."""
    closed_at = time.monotonic()
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session, session.begin():
            session.execute(update(Ballot).values(closes_at=db_now(session)))
        drawn = wait_until(lambda: _drawn(engine), args.drain_limit, 0.5)
        entrants = _entrants(engine)
    finally:
        engine.dispose()

    def told() -> int:
        with fake.lock:
            return sum(1 for chat in entrants if any(
                at > closed_at and method == "sendMessage"
                for at, method in fake.times.get(chat, ())))  # fmt: skip

    if drawn:
        wait_until(lambda: told() >= len(entrants), args.drain_limit, 1.0)
    figures = check_ballot(port, args.seats) if drawn else {"recomputed_matches": False}
    figures["told"] = told()
    figures["settled"] = drawn
    return figures


def _answers(port: int, path: str) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", path)
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def _drawn(engine: Any) -> bool:
    with make_session_factory(engine)() as session:
        return session.execute(select(Ballot.drawn_at)).scalar_one() is not None


def _entrants(engine: Any) -> list[int]:
    with make_session_factory(engine)() as session:
        refs = (
            session.execute(select(BallotEntry.account_ref).where(BallotEntry.status != "void"))
            .scalars()
            .all()
        )
    return [int(ref) for ref in refs]


def _queue_numbers(url: str) -> dict[int, int]:
    """Each chat's first queue number (its arrival's): the ticket given when the webhook
    accepted the tap, else the entry's number given when its turn was applied."""
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        rows = session.execute(
            select(QueueEntry.account_ref, QueueEntry.number).where(QueueEntry.attempt == 1)
        ).all()
        tickets = session.execute(select(QueueTicket.account_ref, QueueTicket.number)).all()
    engine.dispose()
    numbers = {int(ref): number for ref, number in rows}
    numbers.update({int(ref): number for ref, number in tickets})
    return numbers


KEYS = ["mode", "users", "seats", "bookings", "answered", "answered_p99_ms", "unanswered",
        "kendall_tau", "overbooked", "messages_per_arrival"]  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=(*MODES, "all"), default="all")
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--seats", type=int, default=500)
    parser.add_argument("--clients", type=int, default=256, help="threads posting arrivals")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--keep-alive", type=int, default=0,
                        help="gunicorn's keep-alive seconds (the Procfile's 0)")  # fmt: skip
    parser.add_argument("--worker-connections", type=int, default=None,
                        help="connections a gunicorn worker accepts (the Procfile's: its "
                        "threads, so waiting requests wait in one queue; gunicorn's: 1,000)",
                        )  # fmt: skip
    parser.add_argument(
        "--apply-in-web",
        action="store_true",
        help="apply in the web processes instead of `python -m bot apply`",
    )
    parser.add_argument("--appliers", type=int, default=1, help="`bot apply` processes")
    parser.add_argument("--nice", type=int, default=19, help="the appliers' niceness (Procfile)")
    parser.add_argument("--worker-interval", type=float, default=2.0)
    parser.add_argument(
        "--admit-per-minute",
        type=int,
        default=0,
        help="waiting room's rate (default: half the seats)",
    )
    parser.add_argument(
        "--telegram-rate",
        type=int,
        default=100_000,
        help="pacing of Telegram sends (Telegram itself allows 30/s)",
    )
    parser.add_argument("--drain-limit", type=float, default=900, help="seconds to wait")
    args = parser.parse_args(argv)
    args.admit = args.admit_per_minute or max(1, args.seats // 2)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the release in one mode or all three; print one JSON line per mode, the last."""
    args = parse(argv)
    lines = []
    for mode in MODES if args.mode == "all" else (args.mode,):
        result = run(args, mode)
        extra = {key: value for key, value in result.items() if key not in KEYS}
        print(f"[{mode}] details: {json.dumps(extra)}", flush=True)
        lines.append(json.dumps({key: result[key] for key in KEYS} | {
            key: result[key] for key in ("recomputed_matches", "answer_callback_per_arrival",
                                         "decided_p99_ms") if key in result}))  # fmt: skip
        print(f"[{mode}] {lines[-1]}", flush=True)  # said at once: a later mode may not end
    for line in lines:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
