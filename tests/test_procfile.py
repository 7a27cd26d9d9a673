"""The Procfile's web process keeps one accept queue for all its workers.

A gthread worker accepts up to `--worker-connections` and queues what its threads cannot
take yet; with as many connections as threads (and no keep-alive holding a connection to a
worker), waiting requests wait in the listening socket's one queue instead, and the free
worker takes the oldest: at quota release, queue numbers follow arrival order
(bench/README.md, "one accept queue").
"""

from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def web_options() -> dict[str, str]:
    """The gunicorn options of the Procfile's `web` line."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    web = next(line for line in lines if line.startswith("web:"))
    words = shlex.split(web.removeprefix("web:"))
    options = words[words.index("gunicorn") + 1 :]
    return {word: options[n + 1] for n, word in enumerate(options) if word.startswith("--")}


def test_each_web_worker_accepts_only_what_its_threads_can_serve() -> None:
    options = web_options()
    assert options["--worker-connections"] == options["--threads"]
    assert options["--keep-alive"] == "0"
