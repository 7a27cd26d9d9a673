"""Smoke test of bench/photo_reuse.py at four photos: it runs as its command does and reports
what the near-copy check promises without question (a photo only re-encoded or brightened
is caught; different pages are not matched), never the rates of the harder edits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_photo_reuse_bench_catches_re_encoded_copies_and_matches_no_different_pages() -> None:
    done = subprocess.run(
        [sys.executable, "bench/photo_reuse.py", "--photos", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["photos"] == 4 and figures["pairs"] == 6
    for edit in ("re-encoded q70", "re-encoded q60", "10% brighter"):
        assert figures["caught"][edit] == 1.0, edit
    assert figures["false_matches"] == 0
