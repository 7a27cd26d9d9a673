"""Memory and latency of document photos: the worst accepted photo, alone and 8 at once.

Each measurement runs in a fresh child process: it makes a Loket on a fresh database (SQLite
file, or a new PostgreSQL database), brings N applicants to the e-KTP photo step, reads its
idle RSS, then sends the N photos at once through `Loket.handle` (the call every channel
makes: check, store, save the turn) while another applicant chats (plain turns, one after
another) until the photos are done. It prints the peak RSS above idle (VmHWM, reset after the
set-up through /proc/self/clear_refs) and the chat turns' latencies. The parent repeats each
measurement and prints the medians; the last line is JSON.

    python bench/images.py --runs 3                     # SQLite
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres python bench/images.py

Photos: `jpeg` is the worst photo accepted at full quality (a 12-megapixel 4000×3000 RGB
JPEG of a document page, decoded at full scale: the largest estimate that fits the default
budget); `png` a 3300×2500 RGBA PNG (PNGs cannot be decoded at a smaller scale; with
transparency they cost 8 bytes a pixel); `attack` the 166 KB all-white 6300×6300 RGBA PNG of
issue 10 (refused before decoding now).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.herd import fresh_database, percentile
from bot.core.messages import Inbound
from bot.service import Loket
from bot.settings import Settings
from tests.test_images import document_page
from tests.transcript import Chat, fill_until

CHANNEL = "bench"
MEDIANS = ("peak_above_idle_mib", "seconds", "chat_p50_ms", "chat_p99_ms", "chat_max_ms")


def make_photo(kind: str, path: Path) -> None:
    """Write the photo a measurement sends."""
    buffer = BytesIO()
    if kind == "jpeg":
        document_page(4000, 3000).save(buffer, format="JPEG", quality=70)
    elif kind == "png":
        page = document_page(3300, 2500).convert("L").convert("RGBA")
        page.save(buffer, format="PNG", compress_level=9)
    else:
        from PIL import Image

        Image.new("RGBA", (6300, 6300), "white").save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def _status(key: str) -> int:
    """Return a /proc/self/status figure in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(key)


def child(url: str, photo: Path, count: int, data_dir: Path, threads: int) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    settings = Settings(
        data_dir=data_dir, database_url=url, auto_migrate=False, image_check_threads=threads
    )
    fixed = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    loket = Loket(settings, clock=lambda: fixed)
    loket.prepare_demo()
    senders = [Chat(loket, f"photo-{n}", channel=CHANNEL) for n in range(count)]
    for chat in senders:
        fill_until(chat, "doc_ktp")
    talker = Chat(loket, "talker", channel=CHANNEL)
    fill_until(talker, "nik")
    data = photo.read_bytes()
    # A few turns first, so the talker's code paths are warm before the clock starts.
    for _turn in range(20):
        loket.handle(CHANNEL, "talker", Inbound.say("bantuan"))
    gc.collect()
    idle = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from VmRSS

    start = threading.Barrier(count + 1)
    outcomes: list[str] = []

    def send(user: str) -> None:
        start.wait()
        began = time.perf_counter()
        replies = loket.handle(CHANNEL, user, Inbound.file(data, "ktp"))
        seconds = time.perf_counter() - began
        accepted = "Dokumen 2 dari" in "\n".join(reply.text for reply in replies)
        outcomes.append(f"{'accepted' if accepted else 'refused'} {seconds:.2f}")

    threads = [threading.Thread(target=send, args=(c.user,)) for c in senders]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    latencies: list[float] = []
    while any(thread.is_alive() for thread in threads):
        turn = time.perf_counter()
        loket.handle(CHANNEL, "talker", Inbound.say("bantuan"))
        latencies.append((time.perf_counter() - turn) * 1000)
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    peak = _status("VmHWM")
    loket.close()
    return {
        "idle_mib": idle,
        "peak_above_idle_mib": peak - idle,
        "seconds": round(seconds, 2),
        "chat_turns": len(latencies),
        "chat_p50_ms": round(percentile(latencies, 0.50), 1),
        "chat_p99_ms": round(percentile(latencies, 0.99), 1),
        "chat_max_ms": round(max(latencies, default=0.0), 1),
        "photos": sorted(outcomes),
    }


def measure(url: str, photo: Path, count: int, threads: int) -> dict[str, Any]:
    """Run one measurement in a fresh process on a fresh database."""
    with fresh_database(url) as fresh, tempfile.TemporaryDirectory() as data_dir:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                fresh,
                str(photo),
                str(count),
                data_dir,
                str(threads),
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "LOG_LEVEL": "WARNING"},
        )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    """Measure each photo kind alone and 8 at once, several times; print medians."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, photo, count, data_dir, threads = sys.argv[2:7]
        print(json.dumps(child(url, Path(photo), int(count), Path(data_dir), int(threads))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--photos", default="jpeg,png,attack")
    parser.add_argument("--counts", default="1,8")
    parser.add_argument(
        "--threads",
        type=int,
        default=Settings.image_check_threads,
        help="image-check threads of the process (LOKET_IMAGE_THREADS)",
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or "sqlite:///unused.db"
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.photos.split(","):
            photo = Path(folder) / kind
            make_photo(kind, photo)
            for count in (int(c) for c in args.counts.split(",")):
                runs = [measure(url, photo, count, args.threads) for _run in range(args.runs)]
                summary = {
                    "backend": backend,
                    "photo": kind,
                    "photo_kb": photo.stat().st_size // 1024,
                    "at_once": count,
                    "threads": args.threads,
                    "runs": args.runs,
                    **{key: statistics.median(run[key] for run in runs) for key in MEDIANS},
                    "idle_mib": statistics.median(run["idle_mib"] for run in runs),
                    "photos_first_run": runs[0]["photos"],
                }
                print(json.dumps(summary), flush=True)
                results.append(summary)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
