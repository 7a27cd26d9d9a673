"""Failpoints for crash tests: a real SIGKILL at a named point, armed from the environment.

`LOKET_FAILPOINT=<name>` arms one point and `LOKET_FAILPOINT_ONCE=<path>` makes it fire once
(the file is created as it fires, so the restarted process runs on). Unset, this does nothing.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL here when the failpoint `name` is armed."""
    if os.environ.get("LOKET_FAILPOINT") != name:
        return
    once = os.environ.get("LOKET_FAILPOINT_ONCE")
    if once:
        marker = Path(once)
        if marker.exists():
            return
        marker.write_text(name)
    os.kill(os.getpid(), signal.SIGKILL)
