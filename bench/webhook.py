"""Sustained signed Telegram updates through the webhook, against the same server's ceiling.

gunicorn serves `bot.web:create_app()` on PostgreSQL + Redis (DATABASE_URL, REDIS_URL); a fake
Bot API server in this process takes the replies. Client threads post signed updates of many
chats for a fixed time, then post to `/ping` (a bare 200 from the same server) for the same
time. The last line printed is JSON with both rates and their ratio.

    python bench/webhook.py --seconds 20 --clients 16 --workers 2 --threads 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.herd import fresh_database  # noqa: E402
from bot.seed import extend_calendars, seed_offices  # noqa: E402
from storage.booking import db_now  # noqa: E402
from storage.db import make_engine, make_session_factory  # noqa: E402
from tests.fake_telegram import TOKEN, FakeTelegram  # noqa: E402

SECRET = "bench-secret"


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Request = Callable[[int], tuple[bytes, dict[str, str]]]


def load(
    url: str,
    seconds: float,
    clients: int,
    request: Request,
    answered_in_response: list[float] | None = None,
) -> list[float]:
    """Post as fast as `clients` threads can for `seconds` (`request(n)` gives the n-th body
    and headers); return each accepted request's latency. A response that answers the update
    itself (a Bot API method in its body: the "sedang ramai" answer under overload) was not
    accepted: its latency goes to `answered_in_response` when given. (WhatsApp's busy answer
    goes out as a message, not in the response: it counts as accepted and as a reply.) A
    status other than 200 stops its client and, once all have stopped, fails the run."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    counter = itertools.count(1)

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop_at:
                body, headers = request(next(counter))
                began = time.perf_counter()
                response = http.post(url, content=body, headers=headers)
                elapsed = (time.perf_counter() - began) * 1000
                if response.status_code != 200:
                    with lock:  # the run fails, once every client has stopped
                        failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    return
                answered = (
                    response.headers.get("content-type", "").startswith("application/json")
                    and "method" in response.json()
                )
                with lock:
                    if answered and answered_in_response is not None:
                        answered_in_response.append(elapsed)
                    else:
                        latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} clients stopped; the first: {failures[0]}")
    return latencies


def as_json(payload: Any, headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    """A JSON request body with its headers."""
    return json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}


def gunicorn_command(
    workers: int, threads: int, keep_alive: int, connections: int | None, port: int
) -> list[str]:
    """gunicorn serving the web app on 127.0.0.1:`port`. `connections` per worker: None takes
    the threads' number, as the Procfile does (a worker accepts no more than it can serve at
    once, so requests waiting for a worker wait in the listening socket's one queue); gunicorn's
    own default is 1,000, queued per worker."""
    return [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads",
            str(threads), "--keep-alive", str(keep_alive), "--worker-connections",
            str(threads if connections is None else connections), "--bind", f"127.0.0.1:{port}",
            "--log-level", "warning", "bot.web:create_app()"]  # fmt: skip


def add_server_options(parser: argparse.ArgumentParser, seconds: float) -> None:
    """The options both webhook benchmarks share."""
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--keep-alive", type=int, default=2,
                        help="gunicorn's keep-alive seconds (the Procfile's: 0)")  # fmt: skip
    parser.add_argument("--worker-connections", type=int, default=1000,
                        help="connections a worker accepts (Procfile: its threads)")  # fmt: skip
    parser.add_argument("--applier", action="store_true", help="apply in a niced process")
    parser.add_argument("--nice", type=int, default=19, help="the applier's niceness")
    parser.add_argument("--drain-limit", type=float, default=300, help="seconds to wait")


@contextmanager
def serving(args: argparse.Namespace, environment: Callable[[str, int], dict[str, str]],
            ) -> Iterator[int]:  # fmt: skip
    """Serve a fresh database (on DATABASE_URL's server, seeded with the demo offices) with
    gunicorn as `args` say, and a niced `bot apply` with `--applier`; yield the port.
    `environment(url, port)` gives the processes' environment."""
    base = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    with fresh_database(base) as url:
        engine = make_engine(url)
        with make_session_factory(engine)() as session, session.begin():
            seed_offices(session)
            extend_calendars(session, db_now(session), 14)
        engine.dispose()
        port = free_port()
        env = environment(url, port)
        if args.applier:
            env["LOKET_APPLY_IN_WEB"] = "0"
        command = gunicorn_command(
            args.workers, args.threads, args.keep_alive, args.worker_connections, port
        )
        processes = [subprocess.Popen(command, env=env, cwd=ROOT)]
        if args.applier:
            command = ["nice", "-n", str(args.nice), sys.executable, "-m", "bot", "apply"]
            processes.append(subprocess.Popen(command, env=env, cwd=ROOT))
        try:
            for _ in range(100):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            print(f"gunicorn {args.workers}x{args.threads}, {args.clients} clients, "
                  f"{args.seconds:.0f} s per phase", flush=True)  # fmt: skip
            yield port
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)


def phases(args: argparse.Namespace, port: int, path: str, request: Request,
           replies: Callable[[], int], busy: list[float] | None = None,
           ) -> dict[str, Any]:  # fmt: skip
    """Post to `path` for `args.seconds`, wait (bounded) until every accepted request got
    its one reply (`replies()` counts them), then post to `/ping` for as long: return both
    phases' figures (`latencies`: each accepted request's)."""
    began = time.monotonic()
    accepted = load(f"http://127.0.0.1:{port}{path}", args.seconds, args.clients, request, busy)
    drain_deadline = time.monotonic() + args.drain_limit
    while replies() < len(accepted) and time.monotonic() < drain_deadline:
        time.sleep(0.05)
    answered_after = time.monotonic() - began
    bare = load(f"http://127.0.0.1:{port}/ping", args.seconds, args.clients,
                lambda number: as_json({"n": number}))  # fmt: skip
    rate = len(accepted) / args.seconds
    answered = replies()
    answered_rate = answered / answered_after
    ceiling = len(bare) / args.seconds
    return {
        "latencies": accepted, "bare": bare, "answered_after": answered_after,
        "per_s": round(rate, 1),
        "p50_ms": round(percentile(accepted, 0.5), 1),
        "p99_ms": round(percentile(accepted, 0.99), 1),
        "bare_per_s": round(ceiling, 1),
        "bare_p50_ms": round(percentile(bare, 0.5), 1),
        "bare_p99_ms": round(percentile(bare, 0.99), 1),
        "ratio": round(rate / ceiling, 3),
        "accepted": len(accepted),
        "answered": answered,
        "answered_per_s": round(answered_rate, 1),
        "answered_ratio": round(answered_rate / ceiling, 3),
    }  # fmt: skip


def percentile(values: list[float], share: float) -> float:
    """Return a percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> int:
    """Run both phases once and print the figures; the last line is JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_options(parser, seconds=20)
    parser.add_argument("--chats", type=int, default=5000)
    args = parser.parse_args()

    fake = FakeTelegram().start()

    def environment(url: str, port: int) -> dict[str, str]:
        return {
            **os.environ, "DATABASE_URL": url, "LOKET_AUTO_MIGRATE": "0",
            "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.base_url,
            "TELEGRAM_BASE_FILE_URL": fake.base_file_url, "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "LOG_LEVEL": "WARNING", "TELEGRAM_RATE_PER_SECOND": "100000",
            "TELEGRAM_CHAT_RATE_PER_SECOND": "100000",
            "LOKET_REDIS_PREFIX": f"bench-webhook-{port}",
        }  # fmt: skip

    def update(number: int) -> tuple[bytes, dict[str, str]]:
        chat = 10_000 + number % args.chats
        return as_json({"update_id": number, "message": {
            "message_id": number, "date": int(time.time()), "text": "/status",
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "first_name": "P"}}},
            {"X-Telegram-Bot-Api-Secret-Token": SECRET})  # fmt: skip

    busy: list[float] = []
    try:
        with serving(args, environment) as port:
            # Every accepted update is answered with one message.
            figures = phases(args, port, "/telegram/webhook", update, lambda: len(fake.sent),
                             busy)  # fmt: skip
    finally:
        fake.stop()
    webhook, bare = figures.pop("latencies"), figures.pop("bare")
    print(f"webhook: {len(webhook)} updates accepted in {args.seconds:.0f} s (median "
          f"{statistics.median(webhook):.1f} ms), {len(busy)} answered busy in the response; "
          f"{figures['answered']} replies, the last {figures.pop('answered_after'):.1f} s "
          f"after the first update")  # fmt: skip
    print(f"bare: {len(bare)} requests", flush=True)
    print(json.dumps({"updates_per_s": figures.pop("per_s"), **figures, "busy": len(busy)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
