"""A broker's script against the web chat: how many seats (or ballot entries) does it get?

The service runs in this process behind a real HTTP server on 127.0.0.1 (werkzeug, threads),
on the configured backend: DATABASE_URL and REDIS_URL as for the product (a fresh database
per run, dropped afterwards; a Redis key prefix of the run's own, deleted), else the embedded
default (a fresh SQLite file, in-process state). Its one-time codes go to a recording sender
in this process: the broker owns its SIM cards, so it reads each code the moment it is sent.

The broker runs `--clients` sessions side by side for `--seconds`. Each invents a person
(a NIK of valid structure matching the invented birth date, a name, an address), takes fresh
cookies, registers through the whole conversation with generated document photos (distinct
ones, or with `--photos reuse` the same three for everyone), asks for a seat at the office
(or enters its ballot), and proves one of its `--phones` numbers with the code when asked,
waiting out every 429 as told. Everything goes over HTTP with the page's CSRF token.

Target: it holds no more seats than 5 people per phone number could (`bound`: 5 x phones);
in ballot mode its chance per entry is no better than a person's (the bench enters `--people`
people with a number each, then closes the window and draws). The last line is JSON:
{"mode", "seconds", "held", "entries", "refused_by_reason", "phones", "people", ...}.

    python bench/hoard.py --mode all --seconds 300
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, update  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from bench.herd import check, fresh_database  # noqa: E402
from bench.release import phone_of  # noqa: E402
from bot.phone_sender import RecordingSender  # noqa: E402
from bot.service import Loket  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.shared import RedisState  # noqa: E402
from bot.web import create_app  # noqa: E402
from bot.worker import run_once  # noqa: E402
from storage.ballot import new_ballot  # noqa: E402
from storage.booking import db_now  # noqa: E402
from storage.models import (  # noqa: E402
    Application,
    Ballot,
    BallotEntry,
    BallotStatus,
    Booking,
    Office,
    PhoneVerification,
    Slot,
)
from tests.local_server import QuietHandler  # noqa: E402
from tests.test_images import document_page  # noqa: E402

MODES = ("first_come", "waiting_room", "ballot")
PER_PHONE = 5  # LOKET_MAX_SEATS_PER_PHONE's default: the bound this bench compares against
CITY = "Borong"
OFFICE_CODE = "borong"
WINDOWS = 5


def broker_phone(number: int) -> str:
    """The broker's SIM card `number`, as typed in the chat (local form)."""
    return f"0857{number:08d}"


def e164(typed: str) -> str:
    """The number as the service records it."""
    return "+62" + typed[1:]


def invent_person(rng: random.Random, serial: int) -> dict[str, str]:
    """An invented adult: a NIK of valid structure (region 3273 01, the birth date encoded
    as DDMMYY, a serial) matching the invented birth date and sex, as bot/validators checks."""
    birth = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 15000))
    nik = f"327301{birth.day:02d}{birth.month:02d}{birth.year % 100:02d}{serial % 9999 + 1:04d}"
    first = rng.choice(("budi", "siti", "agus", "dewi", "eko", "rina", "joko", "wati"))
    family = "".join("aiueo"[serial // 5**k % 5] + "bdgkmnrst"[serial // 45**k % 9]
                     for k in range(3))  # letters only: a name has no digits  # fmt: skip
    name = f"{first} {family}"
    return {"nik": nik, "name": name, "birth": birth.strftime("%d-%m-%Y")}


def photo(seed: int) -> bytes:
    """A sharp document-like page with shapes of its own (distinct perceptual hashes)."""
    page = document_page(1000, 700, seed=seed).convert("RGB")
    rng = random.Random(seed)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(page)
    for _shape in range(6):
        x, y = rng.randrange(0, 900), rng.randrange(0, 600)
        shade = tuple(rng.randrange(0, 256) for _ in range(3))
        draw.rectangle((x, y, x + rng.randrange(40, 160), y + rng.randrange(30, 120)), fill=shade)
    buffer = io.BytesIO()
    page.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


# ---- the service ----------------------------------------------------------------------------


@contextmanager
def service(env: dict[str, str]) -> Iterator[tuple[Loket, RecordingSender, str]]:
    """The whole web app on 127.0.0.1 on a fresh database; yield it, its sender and base URL."""
    base = os.environ.get("DATABASE_URL") or "sqlite:///unused.db"
    redis_url = os.environ.get("REDIS_URL")
    prefix = f"bench-hoard-{uuid.uuid4().hex[:8]}"
    with fresh_database(base) as url, tempfile.TemporaryDirectory() as folder:
        settings = Settings.from_env({
            "DATABASE_URL": url, "LOKET_DATA_DIR": folder, "LOKET_AUTO_MIGRATE": "0",
            "LOKET_SECURE_COOKIES": "0", "LOKET_REDIS_PREFIX": prefix, "LOG_LEVEL": "WARNING",
            "LOKET_DOCUMENT_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            **({"REDIS_URL": redis_url} if redis_url else {}), **env,
        })  # fmt: skip
        sender = RecordingSender()
        loket = Loket(settings, phone_sender=sender)
        server = make_server("127.0.0.1", 0, create_app(settings, loket), threaded=True,
                             request_handler=QuietHandler)  # fmt: skip
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield loket, sender, f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            loket.image_checks.shutdown(wait=True)
            loket.db.dispose()
            if redis_url:
                state = RedisState(redis_url, prefix)
                for key in state.client.scan_iter(f"{prefix}:*"):
                    state.client.delete(key)
                state.close()


def prepare(loket: Loket, mode: str, seats: int, people: int) -> None:
    """The office the broker targets (its own city), `seats` seats on one day in 5 windows,
    already released; in ballot mode an open ballot over that day and `people` entrants."""
    with loket.sessions() as session, session.begin():
        now = db_now(session)
        office = Office(
            code=OFFICE_CODE, name="Kantor Imigrasi Borong", city=CITY, province="Bench",
            timezone="Asia/Jakarta", address="Jl. Benchmark 3", hours="08.00-15.00",
            latitude=-6.2, longitude=106.8, release_mode=mode, admit_per_minute=60,
            admit_minutes=5,
        )  # fmt: skip
        session.add(office)
        session.flush()
        day = (now + timedelta(days=7)).date()
        per_window, extra = divmod(seats, WINDOWS)
        for window in range(WINDOWS):
            session.add(Slot(
                office_id=office.id, day=day, start_time=clock_time(8 + window, 0),
                end_time=clock_time(9 + window, 0), kind="reguler",
                capacity=per_window + (1 if window < extra else 0), taken=0,
                release_at=now - timedelta(minutes=1), closed=False,
            ))  # fmt: skip
        if mode != "ballot":
            return
        ballot = new_ballot(session, office, now - timedelta(minutes=1), now + timedelta(days=1),
                            day, day, now)  # fmt: skip
        rows = [
            {
                "reg_number": f"LK-P{n:08d}", "channel": "bench", "account_ref": f"p{n}",
                "status": "registered", "service": "reguler", "application_type": "baru",
                "passport_kind": "biasa", "validity_years": 5, "category": "adult",
                "nik": f"327302{n:010d}",  # region 3273 02: never one of the broker's
                "full_name": f"ORANG {n}", "birth_place": "Bandung",
                "birth_date": date(1990, 1, 1), "sex": "M", "phone": phone_of(n),
                "address": "Jl. Merdeka 10", "travel_purpose": "wisata", "name_changed": False,
                "fee_amount": 350000, "fee_schedule": "PP 45/2024", "answers": {},
                "created_at": now,
            }
            for n in range(people)
        ]  # fmt: skip
        if rows:
            session.execute(insert(Application), rows)
            session.execute(insert(PhoneVerification), [
                {"channel": "bench", "user_ref": f"p{n}", "phone": phone_of(n),
                 "method": "contact", "verified_at": now} for n in range(people)])  # fmt: skip
            ids = session.execute(
                select(Application.id, Application.nik, Application.account_ref).where(
                    Application.channel == "bench"
                )
            ).all()
            session.execute(insert(BallotEntry), [
                {"ballot_id": ballot.id, "nik": nik, "application_id": app_id,
                 "channel": "bench", "account_ref": ref, "status": BallotStatus.ENTERED,
                 "entered_at": now} for app_id, nik, ref in ids])  # fmt: skip


# ---- the broker -----------------------------------------------------------------------------


class Refused(Exception):
    """The service refused this invented person; the reason is the message."""


class Broker:
    """The scripted client: invents people and pushes each through the chat."""

    def __init__(self, base_url: str, sender: RecordingSender, mode: str, phones: int,
                 reuse_photo: bool, deadline: float, seed: int,
                 max_people: int | None = None) -> None:  # fmt: skip
        self.base_url = base_url
        self.sender = sender
        self.mode = mode
        self.phones = [broker_phone(n) for n in range(1, phones + 1)]
        self.phone_locks = {phone: threading.Lock() for phone in self.phones}
        self.reuse_photo = reuse_photo
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.serials = itertools.count(1)
        self.lock = threading.Lock()
        self.refused: Counter[str] = Counter()
        self.niks: list[str] = []
        self.people = 0
        self.done = Counter[str]()
        self.samples: list[str] = []  # replies nothing expected (first few, for debugging)
        self.max_people = max_people

    def count(self, reason: str) -> None:
        """Count a refusal by its reason."""
        with self.lock:
            self.refused[reason] += 1

    def run(self, clients: int) -> None:
        """Run `clients` sessions side by side until the deadline."""
        threads = [threading.Thread(target=self.session) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def session(self) -> None:
        """One client: person after person, with fresh cookies each, until time is up."""
        while time.monotonic() < self.deadline:
            with self.lock:
                if self.max_people is not None and self.people >= self.max_people:
                    return
                serial = next(self.serials)
                person = invent_person(self.rng, serial)
                self.niks.append(person["nik"])
                self.people += 1
            phone = self.phones[serial % len(self.phones)]
            try:
                outcome = self.try_person(person, phone, serial)
            except Refused as why:
                self.count(str(why))
                continue
            except TimeoutError:
                return
            with self.lock:
                self.done[outcome] += 1

    def try_person(self, person: dict[str, str], phone: str, serial: int) -> str:
        """Register and book (or enter) one invented person; return what came of it."""
        with httpx.Client(base_url=self.base_url, timeout=60) as http:  # fresh cookies
            page = http.get("/").text
            match = re.search(r'name="csrf-token" content="([^"]+)"', page)
            assert match, "no CSRF token on the chat page"
            say = self.sayer(http, match.group(1))
            script = [
                ("/daftar", "UU PDP"), ("setuju", "Untuk siapa paspor"),
                ("dewasa", "jenis layanan"), ("reguler", "pernah memiliki paspor"),
                ("belum", "jenis paspor"), ("elektronik", "masa berlaku"),
                ("10", "nama lengkap"), (person["name"], "tempat lahir"),
                ("bandung", "tanggal lahir"), (person["birth"], "Jenis kelamin"),
                ("laki-laki", "NIK pemohon"), (person["nik"], "nomor HP"),
                (phone, "email"), ("lewati", "alamat tempat tinggal"),
                ("Jl. Melati 5, RT 01/RW 02, Braga, Sumur Bandung, Kota Bandung",
                 "tujuan perjalanan"),
                ("wisata", "dokumen pendukung"), ("akta kelahiran", "Dokumen 1 dari 3"),
            ]  # fmt: skip
            for text, expected in script:
                say({"text": text}, expected)
            for number, expected in enumerate(
                ("Dokumen 2 dari 3", "Dokumen 3 dari 3", "Ringkasan pendaftaran")
            ):
                seed = number if self.reuse_photo else serial * 10 + number
                say({"file": photo(seed)}, expected)
            say({"text": "benar, kirim"}, "Di kota mana")
            say({"text": CITY}, "Pilih kantor")
            reply = say({"text": "1"}, "")
            if self.mode == "ballot":
                if "Ikut undian" not in reply:
                    raise Refused("ballot_not_offered")
                reply = say({"choice": "ballot:enter"}, "")
                reply = self.prove(say, reply, phone)
                if "tercatat" in reply:
                    return "entered"
                raise Refused(self.reason(reply))
            while "Nomor antrean" in reply:  # the waiting room: look again until admitted
                self.count("queued")
                self.pause(2.0)
                reply = say({"choice": "queue:refresh"}, "")
            if "Pilih tanggal" not in reply:
                raise Refused(self.reason(reply))
            say({"text": "1"}, "Pilih jam")
            reply = self.prove(say, say({"text": "1"}, ""), phone)
            if "Kursi Anda ditahan" in reply:
                return "held"
            raise Refused(self.reason(reply))

    def prove(self, say: Any, reply: str, phone: str) -> str:
        """Prove the number with the code its SIM card received (when asked)."""
        if "Ketik nomor HP" not in reply:
            return reply
        with self.phone_locks[phone]:  # one code in flight per SIM card
            before = self.received(phone)
            asked = say({"text": phone}, "")
            if "kode" not in asked.lower():
                raise Refused(self.reason(asked))
            # The SMS may be delivered after the turn answers (off the turn): wait for it.
            while self.received(phone) == before:
                self.pause(0.05)
            return str(say({"text": self.sender.last_code(e164(phone))}, ""))

    def received(self, phone: str) -> int:
        """Count the messages this SIM card has received."""
        number = e164(phone)
        return sum(1 for to, _text in list(self.sender.sent) if to == number)

    def pause(self, seconds: float) -> None:
        """Wait, but never past the deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        time.sleep(min(seconds, left))

    def sayer(self, http: httpx.Client, csrf: str) -> Any:
        """Return a function that sends one turn and checks the reply says `expected`."""

        def say(body: dict[str, Any], expected: str) -> str:
            while True:
                if time.monotonic() >= self.deadline:
                    raise TimeoutError
                headers = {"X-CSRFToken": csrf}
                if "file" in body:
                    response = http.post(
                        "/chat/send",
                        headers=headers,
                        files={"file": ("foto.jpg", body["file"], "image/jpeg")},
                    )
                else:
                    response = http.post("/chat/send", json=body, headers=headers)
                if response.status_code == 429:  # rate limited: wait as told, then again
                    self.count("rate_limited")
                    self.pause(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status_code == 503:
                    self.count("overload")
                    self.pause(float(response.headers.get("Retry-After", "5")))
                    continue
                messages = response.json().get("messages", [])
                text = "\n".join(message["text"] for message in messages)
                if expected and expected.lower() not in text.lower():
                    raise Refused(self.reason(text))
                return text

        return say

    def reason(self, text: str) -> str:
        """Name a refusal from the reply's words."""
        known = [
            ("sudah dipakai dalam permohonan atas NIK lain", "photo_reused"),
            ("sudah memegang jadwal untuk", "phone_limit"),
            ("NIK", "nik_refused"),
            ("habis", "sold_out"),
            ("penuh", "sold_out"),
        ]
        for words, reason in known:
            if words in text:
                return reason
        with self.lock:
            if len(self.samples) < 3:
                self.samples.append(text[:300])
        return "other"


# ---- one run ------------------------------------------------------------------------------


def draw(loket: Loket) -> None:
    """Close the ballot's window now (database time) and run a worker round (the draw)."""
    with loket.sessions() as session, session.begin():
        session.execute(update(Ballot).values(closes_at=db_now(session)))
    run_once(loket)


def run(mode: str, seconds: float, phones: int, clients: int, seats: int, people: int,
        reuse_photo: bool, env: dict[str, str] | None = None,
        max_people: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the broker for `seconds` in one mode; return the figures."""
    with service(env or {}) as (loket, sender, base_url):
        prepare(loket, mode, seats, people if mode == "ballot" else 0)
        broker = Broker(base_url, sender, mode, phones, reuse_photo,
                        time.monotonic() + seconds, MODES.index(mode), max_people)  # fmt: skip
        broker.run(clients)
        result: dict[str, Any] = {"mode": mode, "seconds": seconds}
        with loket.sessions() as session:
            active = Booking.status.in_(("held", "confirmed"))
            if mode == "ballot":
                draw(loket)
                entries = dict(
                    session.execute(
                        select(BallotEntry.status, func.count())
                        .where(BallotEntry.nik.in_(broker.niks))
                        .group_by(BallotEntry.status)
                    ).all()
                )
                people_won = session.execute(
                    select(func.count()).where(
                        BallotEntry.channel == "bench", BallotEntry.status == BallotStatus.WON
                    )
                ).scalar_one()
            held = session.execute(
                select(func.count(Booking.id)).where(active, Booking.nik.in_(broker.niks))
            ).scalar_one()
        figures = check(loket.db.url.render_as_string(hide_password=False))
    broker_entries = sum(entries.values()) if mode == "ballot" else 0
    result.update(
        held=int(held),
        entries=broker_entries,
        refused_by_reason=dict(broker.refused),
        phones=phones,
        people=broker.people,
        bound=PER_PHONE * phones,
        within_bound=held <= PER_PHONE * phones,
        overbooked=figures["overbooked"],
        outcomes=dict(broker.done),
    )
    if mode == "ballot":
        total = broker_entries + people
        result.update(
            seats=seats,
            people_entries=people,
            chance_per_entry_broker=round(held / broker_entries, 4) if broker_entries else None,
            chance_per_entry_person=round(people_won / people, 4) if people else None,
            chance_if_fair=round(min(1.0, seats / total), 4) if total else None,
        )
    if broker.samples:
        result["unexpected_replies"] = broker.samples
    return result


KEYS = ["mode", "seconds", "held", "entries", "refused_by_reason", "phones", "people"]


def main(argv: list[str] | None = None) -> int:
    """Run the broker in one mode or all three; print one JSON line per mode, the last."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=(*MODES, "all"), default="all")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--phones", type=int, default=3, help="the broker's SIM cards")
    parser.add_argument("--clients", type=int, default=4, help="sessions side by side")
    parser.add_argument("--seats", type=int, default=100)
    parser.add_argument("--people", type=int, default=1000, help="ballot entrants (people)")
    parser.add_argument("--photos", choices=("fresh", "reuse"), default="fresh")
    parser.add_argument("--max-people", type=int, default=None, help="stop after inventing these")
    args = parser.parse_args(argv)
    lines = []
    for mode in MODES if args.mode == "all" else (args.mode,):
        result = run(mode, args.seconds, args.phones, args.clients, args.seats, args.people,
                     args.photos == "reuse", max_people=args.max_people)  # fmt: skip
        extra = {key: value for key, value in result.items() if key not in KEYS}
        print(f"[{mode}] details: {json.dumps(extra)}", flush=True)
        lines.append(json.dumps({key: result[key] for key in KEYS}))
    for line in lines:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
