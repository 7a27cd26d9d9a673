"""One contract for shared state, run against the in-process store and real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bot.shared import InProcessState, SharedState
from tests.conftest import redis_test_state


@pytest.fixture(params=["in-process", "redis"])
def shared(request: pytest.FixtureRequest) -> Iterator[SharedState]:
    """Yield each implementation; Redis keys live under a prefix of the test's own."""
    if request.param == "in-process":
        yield InProcessState()
        return
    with redis_test_state() as state:
        yield state


def test_set_get_delete(shared: SharedState) -> None:
    assert shared.get("soldout:1") is None
    shared.set("soldout:1", "1", 30)
    assert shared.get("soldout:1") == "1"
    shared.delete("soldout:1")
    assert shared.get("soldout:1") is None
    shared.delete("never-set")  # deleting a missing key is fine


def test_values_expire(shared: SharedState) -> None:
    shared.set("short", "x", 0.2)
    shared.set("long", "y", 30)
    time.sleep(0.35)
    assert shared.get("short") is None
    assert shared.get("long") == "y"


def test_keys_are_independent(shared: SharedState) -> None:
    shared.set("a", "1", 30)
    shared.set("b", "2", 30)
    shared.set("a", "3", 30)
    assert (shared.get("a"), shared.get("b")) == ("3", "2")


def test_counters_count_and_expire(shared: SharedState) -> None:
    assert [shared.incr("pace", 0.3) for _ in range(3)] == [1, 2, 3]
    assert shared.incr("other", 0.3) == 1
    time.sleep(0.45)
    assert shared.incr("pace", 0.3) == 1  # a new window
