"""CPU of one registration and booking: the terminal channel against Telegram as deployed.

The same applicants (distinct NIKs, names and photos) register and book, turn by turn, the
same answers chosen by step: (a) through the terminal channel in process (`Loket.converse`,
the one-time code typed back from a recording SMS sender), (b) through Telegram as deployed:
signed updates posted to the webhook of `bot.web.create_app` (Flask test client), accepted,
applied on the web app's sender threads and delivered through the real python-telegram-bot
stack to the fake Bot API server, which runs in a child process so its CPU is not counted
(it is reported apart). Applicants alternate between the two paths, so both see the same
machine and a database of the same size. Only the turns are measured (`time.process_time`
of this process, every thread: request, sender threads, the bot's event loop); reading the
step and the buttons between turns is not. Pacing limits are raised so nothing sleeps.

Backend: SQLite and in-process state by default; `DATABASE_URL` (a fresh database is made on
that server and dropped after) and `REDIS_URL` for PostgreSQL + Redis. The last line is JSON:
{"backend", "registrations", "terminal_cpu_s_per_registration",
 "push_cpu_s_per_registration", "ratio", "turns_per_registration",
 "bot_api_calls_per_registration", ...}.

    python bench/channel_cpu.py --registrations 20
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/0 python bench/channel_cpu.py --registrations 20
    # the push path's turns profiled on every thread (needs `pip install yappi`, CPU clock):
    python bench/channel_cpu.py --registrations 5 --profile /tmp/push.prof
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench.outbox import drop_database, fresh_database  # noqa: E402
from bot.channels.telegram import BotRunner, TelegramChannel  # noqa: E402
from bot.core.messages import Inbound, Outbound  # noqa: E402
from bot.phone_sender import RecordingSender  # noqa: E402
from bot.service import Loket  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.web import TELEGRAM_SECRET_HEADER, create_app  # noqa: E402
from storage.models import Conversation  # noqa: E402
from tests.fake_telegram import TOKEN, FakeTelegram  # noqa: E402
from tests.transcript import photo_bytes  # noqa: E402

SECRET = "bench-secret"
TERMINAL = "terminal"
TELEGRAM = "telegram"
SEATS = re.compile(r"\((\d+) kursi\)")


def birth_of(number: int) -> date:
    """Applicant `number`'s birth date (adults, spread over the years)."""
    return date(1960, 1, 1) + timedelta(days=number * 37 % 14000)


def plan_for(number: int) -> dict[str, str]:
    """What applicant `number` answers at each step (labels where a button offers it)."""
    birth = birth_of(number)
    nik = f"327301{birth.day:02d}{birth.month:02d}{birth.year % 100:02d}{number % 9999 + 1:04d}"
    return {
        "consent": "Saya setuju",
        "category": "Dewasa (17 tahun ke atas)",
        "service": "Reguler",
        "had_passport": "Belum pernah",
        "passport_kind": "Paspor elektronik",
        "validity": "10 tahun",
        "full_name": f"pemohon uji {number_words(number)}",
        "birth_place": "bandung",
        "birth_date": birth.strftime("%d-%m-%Y"),
        "sex": "Laki-laki",
        "nik": nik,
        "phone": f"+62812{7000_0000 + number:08d}",
        "email": f"pemohon{number}@example.com",
        "address": "Jl. Merdeka No. 10, RT 01/RW 02, Braga, Sumur Bandung, Kota Bandung",
        "travel_purpose": "Wisata",
        "supporting_kind": "Akta kelahiran",
        "summary": "Benar, kirim",
        "office_query": "Bandung",
    }


def number_words(number: int) -> str:
    """A name part without digits (names are letters): 12 -> 'bc'."""
    letters = "abcdefghij"
    return "".join(letters[int(digit)] for digit in str(number))


def photos_for(number: int) -> dict[str, bytes]:
    """Each applicant's own document photos (one photo on several NIKs is refused)."""
    return {step: photo_bytes(f"{step}:{number}") for step in ("doc_ktp", "doc_kk",
                                                               "doc_supporting")}  # fmt: skip


class Meter:
    """Process CPU spent inside `measure()` blocks, and how many turns were measured."""

    def __init__(self, profile: bool = False) -> None:
        self.cpu = 0.0
        self.turns = 0
        self.profile = profile  # profile the blocks on every thread (yappi, CPU clock)

    def reset(self) -> None:
        """Forget what was measured (after the warm-up)."""
        self.cpu = 0.0
        self.turns = 0
        if self.profile:
            import yappi

            yappi.clear_stats()

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Count the process's CPU time (all threads) spent in the block as one turn."""
        if self.profile:
            import yappi

            yappi.start()
        began = time.process_time()
        try:
            yield
        finally:
            self.cpu += time.process_time() - began
            self.turns += 1
            if self.profile:
                yappi.stop()


class Driver:
    """One applicant's chat on one path: what the bot asks, and answering it."""

    channel: str
    meter: Meter

    def __init__(self, loket: Loket, user: str) -> None:
        self.loket = loket
        self.user = user

    def step(self) -> str | None:
        """The step the conversation waits on (not measured)."""
        with self.loket.sessions() as session:
            state = session.execute(
                select(Conversation.state).where(
                    Conversation.channel == self.channel, Conversation.user_ref == self.user
                )
            ).scalar_one_or_none()
        return None if state is None else state.get("step")

    def buttons(self) -> list[tuple[str, str]]:
        """(label, value) of the buttons under the last question."""
        raise NotImplementedError

    def say(self, text: str) -> None:
        """Type a text."""
        raise NotImplementedError

    def press(self, label: str) -> None:
        """Press the button with this label."""
        raise NotImplementedError

    def photo(self, data: bytes) -> None:
        """Send a photo."""
        raise NotImplementedError

    def contact(self, phone: str) -> None:
        """Share the account's own phone number."""
        raise NotImplementedError

    def verify(self, phone: str) -> None:
        """Prove the phone number before the seat is held, this channel's way."""
        raise NotImplementedError

    def answer(self, text: str) -> None:
        """Press the button with this label if the question has one, else type it."""
        labels = [label for label, _value in self.buttons()]
        match = next((label for label in labels if label.casefold() == text.casefold()), None)
        if match is None:
            self.say(text)
        else:
            self.press(match)

    def pick(self, index: int) -> None:
        """Press one of the offered buttons that still has seats, by position (wrapping)."""
        open_ = [
            label
            for label, _value in self.buttons()
            if (found := SEATS.search(label))
            and int(found.group(1)) > 0
            # Priority seats are for the 60+, the disabled, ...: not these applicants.
            and "prioritas" not in label
        ]
        assert open_, f"no open choice at {self.step()}"
        self.press(open_[index % len(open_)])


class TerminalDriver(Driver):
    """The terminal channel in process: `Loket.converse`, the turn `bot/channels/terminal.py`
    runs (through `bot/channels/pull.py`'s `take_turn` since the delivery refactor)."""

    channel = TERMINAL

    def __init__(self, loket: Loket, user: str, meter: Meter, sender: RecordingSender) -> None:
        super().__init__(loket, user)
        self.meter = meter
        self.sender = sender
        self.last: list[Outbound] = []

    def turn(self, event: Inbound) -> None:
        """Run one turn (measured)."""
        with self.meter.measure():
            replies = self.loket.converse(TERMINAL, self.user, event)
        assert replies, "no reply"
        self.last = replies

    def buttons(self) -> list[tuple[str, str]]:
        """(label, value) of the buttons under the last question."""
        return [(choice.label, choice.value) for choice in self.last[-1].choices]

    def say(self, text: str) -> None:
        """Type a text."""
        self.turn(Inbound.say(text))

    def press(self, label: str) -> None:
        """Press the button with this label."""
        value = dict(self.buttons())[label]
        self.turn(Inbound.press(value))

    def photo(self, data: bytes) -> None:
        """Send a photo (`/foto PATH` on the terminal)."""
        self.turn(Inbound.file(data, "photo.jpg"))

    def contact(self, phone: str) -> None:
        """Share a number (`/kontak NUMBER`)."""
        self.turn(Inbound.contact(phone))

    def verify(self, phone: str) -> None:
        """Type the number, then the one-time code the SMS sender delivered."""
        self.say(phone)
        with self.meter.measure():  # the SMS's delivery is this path's work
            self.meter.turns -= 1
            self.loket.deliver_phone_messages()
        self.say(self.sender.last_code(phone))


class Tracking(ThreadPoolExecutor):
    """The web app's sender threads, remembering what was handed to them, so the driver can
    wait for a turn's application and delivery without polling."""

    def __init__(self, workers: int, prefix: str) -> None:
        super().__init__(workers, prefix)
        self.pending: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Hand work to a thread and remember it."""
        future = super().submit(fn, *args, **kwargs)
        self.pending.append(future)
        return future

    def settle(self) -> None:
        """Wait for everything handed over so far; raise what failed."""
        done, _left = wait(self.pending)
        self.pending.clear()
        for future in done:
            future.result()


@dataclass
class Push:
    """Telegram as deployed: the web app, its sender threads, the fake Bot API (a child)."""

    app: Any
    senders: Tracking
    fake: httpx.Client
    updates: Any = field(default_factory=lambda: iter(range(1, 10**9)))
    files: Any = field(default_factory=lambda: iter(range(1, 10**9)))


class TelegramDriver(Driver):
    """Signed updates into the webhook; replies read back from the fake Bot API."""

    channel = TELEGRAM

    def __init__(self, loket: Loket, chat: int, meter: Meter, push: Push) -> None:
        super().__init__(loket, str(chat))
        self.chat = chat
        self.meter = meter
        self.push = push
        self.client = push.app.test_client()

    def post(self, body: dict[str, Any]) -> None:
        """Post one signed update and wait until it is applied and its replies delivered."""
        update_id = next(self.push.updates)
        sender = {"id": self.chat, "is_bot": False, "first_name": "Pemohon",
                  "language_code": "id"}  # fmt: skip
        if "callback_query" in body:
            body["callback_query"]["from"] = sender
        else:
            body["message"].update({"message_id": 10**6 + update_id, "date": int(time.time()),
                                    "from": sender, "chat": {"id": self.chat,
                                                             "type": "private"}})  # fmt: skip
        update = {"update_id": update_id, **body}
        with self.meter.measure():
            response = self.client.post(
                "/telegram/webhook", json=update, headers={TELEGRAM_SECRET_HEADER: SECRET}
            )
            self.push.senders.settle()
        assert response.status_code == 200, response.get_data(as_text=True)

    def last(self) -> dict[str, Any] | None:
        """The last message the bot sent to this chat, as the fake server holds it."""
        result: dict[str, Any] | None = self.push.fake.get(f"/_bench/last/{self.chat}").json()
        return result

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of the inline keyboard of the chat's last message."""
        last = self.last() or {}
        rows = (last.get("reply_markup") or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]

    def say(self, text: str) -> None:
        """Type a text."""
        self.post({"message": {"text": text}})

    def press(self, label: str) -> None:
        """Tap the button with this label on the chat's last message."""
        last = self.last()
        assert last is not None
        data = dict(self.buttons())[label]
        message = {"message_id": last["message_id"], "date": int(time.time()),
                   "chat": {"id": self.chat, "type": "private"}, "text": last["text"],
                   "reply_markup": last["reply_markup"]}  # fmt: skip
        query_id = f"q{next(self.push.updates)}"
        self.post({"callback_query": {"id": query_id, "chat_instance": "1", "data": data,
                                      "message": message}})  # fmt: skip

    def photo(self, data: bytes) -> None:
        """Send a photo (the fake serves its bytes through getFile)."""
        file_id = f"bench{next(self.push.files)}"
        self.push.fake.post(f"/_bench/file/{file_id}", content=data).raise_for_status()
        sizes = [{"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 600,
                  "file_size": len(data)}]  # fmt: skip
        self.post({"message": {"photo": sizes}})

    def contact(self, phone: str) -> None:
        """Share the account's own contact."""
        self.post({"message": {"contact": {"phone_number": phone, "first_name": "Pemohon",
                                           "user_id": self.chat}}})  # fmt: skip

    def verify(self, phone: str) -> None:
        """Share the account's own contact with the button."""
        self.contact(phone)


def register_and_book(driver: Driver, number: int) -> None:
    """Open the chat, register (three photos), book a seat, proving the phone number."""
    plan = plan_for(number)
    photos = photos_for(number)
    driver.say("/start")
    driver.answer("Daftar paspor")
    for _turn in range(60):
        step = driver.step()
        assert step is not None
        if step in photos:
            driver.photo(photos[step])
        elif step == "phone":
            driver.contact(plan["phone"])
        elif step == "day":
            driver.pick(number)
        elif step == "slot":
            driver.pick(number // 3)
        elif step == "office":
            driver.answer(driver.buttons()[0][0])
        elif step == "verify_phone":
            driver.verify(plan["phone"])
            after = driver.step()
            assert after not in ("verify_phone", "phone_code"), f"not verified: {after}"
            return
        else:
            assert step in plan, f"no planned answer for {step}"
            driver.answer(plan[step])
        assert driver.step() != step, f"stuck at {step}"
    raise AssertionError("never reached the phone check before the hold")


def fake_main() -> int:
    """Serve the fake Bot API in this (child) process until stdin closes."""

    class BenchFake(FakeTelegram):
        def app(self, environ: dict[str, Any], start_response: Any) -> Any:
            """The Bot API, plus `/_bench/` calls for the benchmark's driver."""
            from werkzeug.wrappers import Request, Response

            path = environ.get("PATH_INFO", "")
            if not path.startswith("/_bench/"):
                return super().app(environ, start_response)
            parts = path.strip("/").split("/")
            body: Any = None
            if parts[1] == "file":
                self.files[parts[2]] = Request(environ).get_data()
            elif parts[1] == "last":
                mine = [s for s in self.sent if s.chat_id == parts[2]]
                if mine:
                    body = {"message_id": mine[-1].message_id, "text": mine[-1].text,
                            "reply_markup": mine[-1].reply_markup}  # fmt: skip
            elif parts[1] == "stats":
                with self.lock:
                    methods = Counter(method for method, _params in self.calls)
                body = {"calls": dict(methods), "cpu_s": time.process_time()}
            return Response(json.dumps(body), 200, content_type="application/json")(
                environ, start_response
            )

    fake = BenchFake().start()
    assert fake.server is not None
    print(fake.server.server_port, flush=True)
    sys.stdin.read()  # the parent closes our stdin when it is done
    fake.stop()
    return 0


@contextmanager
def fake_server() -> Iterator[tuple[str, httpx.Client]]:
    """Start the fake Bot API in a child process; yield its base address and a client."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            yield base, client
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)


def run(
    registrations: int,
    database_url: str | None,
    redis_url: str | None = None,
    warmup: int = 1,
    profile: str | None = None,
) -> dict[str, Any]:
    """Register and book `registrations` applicants on each path; return the figures."""
    if profile:
        import yappi  # a profiler that sees every thread: the sender threads do the work

        yappi.set_clock_type("cpu")
    terminal, push = Meter(), Meter(profile=bool(profile))
    for number in range(2 * (registrations + warmup)):
        photos_for(number)  # made before anything is measured
    with tempfile.TemporaryDirectory() as folder, fake_server() as (base, fake):
        url, created = fresh_database(database_url, folder)
        try:
            settings = replace(
                Settings.from_env({"LOKET_DATA_DIR": folder}),
                database_url=url,
                auto_migrate=True,
                redis_url=redis_url,
                redis_prefix=f"bench-cpu-{uuid.uuid4().hex[:8]}",
                telegram_token=TOKEN,
                telegram_base_url=f"{base}/bot",
                telegram_base_file_url=f"{base}/file/bot",
                telegram_webhook_secret=SECRET,
                telegram_rate=100_000,
                telegram_chat_rate=100_000,
            )
            sender = RecordingSender()
            loket = Loket(settings, phone_sender=sender)
            loket.prepare_demo()
            runner = BotRunner(settings)
            channel = TelegramChannel(loket, runner, background=True)
            assert channel.senders is not None
            channel.senders.shutdown()
            senders = Tracking(4, "telegram-send")
            channel.senders = senders
            app = create_app(settings, loket=loket, telegram=channel)
            path = Push(app, senders, fake)
            before = fake.get("/_bench/stats").json()
            calls_before: Counter[str] = Counter()
            for number in range(registrations + warmup):
                if number == warmup:
                    terminal.reset()
                    push.reset()
                    before = fake.get("/_bench/stats").json()
                    calls_before = Counter(before["calls"])
                own = TerminalDriver(loket, f"t{number}", terminal, sender)
                register_and_book(own, 2 * number)
                chat = TelegramDriver(loket, 700_000 + number, push, path)
                register_and_book(chat, 2 * number + 1)
            after = fake.get("/_bench/stats").json()
            senders.shutdown()
            runner.close()
            loket.close()
        finally:
            if created and database_url:
                drop_database(database_url, created)
    if profile:
        import yappi

        yappi.get_func_stats().save(profile, type="pstat")  # read with pstats
    calls = Counter(after["calls"]) - calls_before
    total_calls = sum(calls.values())
    backend = "sqlite" if not database_url or database_url.startswith("sqlite") else "postgresql"
    terminal_cpu = terminal.cpu / registrations
    push_cpu = push.cpu / registrations
    return {
        "backend": backend + ("+redis" if redis_url else ""),
        "registrations": registrations,
        "terminal_cpu_s_per_registration": round(terminal_cpu, 4),
        "push_cpu_s_per_registration": round(push_cpu, 4),
        "ratio": round(push_cpu / terminal_cpu, 2),
        "turns_per_registration": round(push.turns / registrations, 1),
        "terminal_turns_per_registration": round(terminal.turns / registrations, 1),
        "bot_api_calls_per_registration": round(total_calls / registrations, 1),
        "bot_api_calls_by_method": {
            method: round(count / registrations, 1) for method, count in sorted(calls.items())
        },
        "push_cpu_ms_per_turn": round(push.cpu / max(push.turns, 1) * 1000, 2),
        "terminal_cpu_ms_per_turn": round(terminal.cpu / max(terminal.turns, 1) * 1000, 2),
        "fake_bot_api_cpu_s_per_registration": round(
            (after["cpu_s"] - before["cpu_s"]) / registrations, 4
        ),
    }


def main() -> int:
    """Run once and print the figures; the last line is JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registrations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured applicants first")
    parser.add_argument("--profile", help="write the push path's profile (pstats) here (yappi)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        return fake_main()
    figures = run(
        args.registrations,
        os.environ.get("DATABASE_URL"),
        os.environ.get("REDIS_URL"),
        warmup=args.warmup,
        profile=args.profile,
    )
    print(f"{figures['backend']}: terminal {figures['terminal_cpu_s_per_registration']} s, "
          f"push {figures['push_cpu_s_per_registration']} s CPU per registration "
          f"(x{figures['ratio']}); load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
