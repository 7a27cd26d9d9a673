"""One contract for shared state, run against the in-process store and real Redis.

Time is moved, never waited for: the in-process store takes a fake clock, and for Redis the
test's own keys have their remaining lifetime shortened on the server (`PEXPIRE`), so Redis
itself decides what has expired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from bot.core.ports import Paced, PaceKeys
from bot.shared import InProcessState, RedisState, SharedState
from tests.conftest import redis_test_state


@dataclass
class Clocked:
    """A shared state and a way to let `seconds` pass for it."""

    state: SharedState
    elapse: Callable[[float], None]


def _in_process() -> Clocked:
    now = [1000.0]

    def elapse(seconds: float) -> None:
        now[0] += seconds

    return Clocked(InProcessState(clock=lambda: now[0]), elapse)


def _redis(state: RedisState) -> Clocked:
    def elapse(seconds: float) -> None:
        for key in state.client.scan_iter(f"{state.prefix}:*"):
            remaining = state.client.pttl(key)
            if remaining >= 0:  # keys without a lifetime stay, as they would in real time
                # A lifetime at or below zero makes Redis delete the key at once.
                state.client.pexpire(key, remaining - int(seconds * 1000))

    return Clocked(state, elapse)


@pytest.fixture(params=["in-process", "redis"])
def clocked(request: pytest.FixtureRequest) -> Iterator[Clocked]:
    """Yield each implementation; Redis keys live under a prefix of the test's own."""
    if request.param == "in-process":
        yield _in_process()
        return
    with redis_test_state() as state:
        yield _redis(state)


@pytest.fixture
def shared(clocked: Clocked) -> SharedState:
    """The state alone, for tests where time does not matter."""
    return clocked.state


def test_set_get_delete(shared: SharedState) -> None:
    assert shared.get("soldout:1") is None
    shared.set("soldout:1", "1", 30)
    assert shared.get("soldout:1") == "1"
    shared.delete("soldout:1")
    assert shared.get("soldout:1") is None
    shared.delete("never-set")  # deleting a missing key is fine


def test_values_expire(clocked: Clocked) -> None:
    shared = clocked.state
    shared.set("short", "x", 20)
    shared.set("long", "y", 300)
    clocked.elapse(10)
    assert shared.get("short") == "x"
    clocked.elapse(15)
    assert shared.get("short") is None
    assert shared.get("long") == "y"


def test_keys_are_independent(shared: SharedState) -> None:
    shared.set("a", "1", 30)
    shared.set("b", "2", 30)
    shared.set("a", "3", 30)
    assert (shared.get("a"), shared.get("b")) == ("3", "2")


def test_counters_count_and_expire(clocked: Clocked) -> None:
    shared = clocked.state
    assert [shared.incr("pace", 30) for _ in range(2)] == [1, 2]
    clocked.elapse(20)
    # Counting again does not extend the window: it ends 30 s after the first count.
    assert shared.incr("pace", 30) == 3
    assert shared.incr("other", 30) == 1
    clocked.elapse(15)
    assert shared.incr("pace", 30) == 1  # a new window
    assert shared.incr("other", 30) == 2


def test_token_bucket_allows_the_burst_then_refills_at_the_rate(clocked: Clocked) -> None:
    shared = clocked.state
    for _turn in range(10):
        assert shared.take("rate:a", 1, 10) == (True, 0.0)
    allowed, retry_after = shared.take("rate:a", 1, 10)
    assert not allowed
    assert 0 < retry_after <= 1.0
    assert shared.take("rate:b", 1, 10)[0]  # another bucket is untouched
    clocked.elapse(1.0)
    assert shared.take("rate:a", 1, 10)[0]  # one token came back in one second
    assert not shared.take("rate:a", 1, 10)[0]
    clocked.elapse(60)  # a full bucket again, never more than the burst
    assert all(shared.take("rate:a", 1, 10)[0] for _turn in range(10))
    assert not shared.take("rate:a", 1, 10)[0]


def test_refused_takes_do_not_deepen_the_wait(clocked: Clocked) -> None:
    shared = clocked.state
    assert shared.take("rate:c", 2, 1)[0]
    waits = [shared.take("rate:c", 2, 1)[1] for _turn in range(5)]
    assert all(0 < wait <= 0.5 for wait in waits)
    clocked.elapse(0.5)
    assert shared.take("rate:c", 2, 1)[0]


def test_a_pacing_step_counts_the_chat_then_everyone(shared: SharedState) -> None:
    keys = PaceKeys("hold", "chat:a:100", "all:100")
    assert shared.pace(keys, 100.2, per_chat=1, count=True) == Paced(chat=1, overall=1)
    # Over the chat's own limit: the overall counter is not spent on a send that waits.
    assert shared.pace(keys, 100.3, per_chat=1, count=True) == Paced(chat=2, overall=0)
    other = PaceKeys("hold", "chat:b:100", "all:100")
    assert shared.pace(other, 100.4, per_chat=1, count=True) == Paced(chat=1, overall=2)
    # Late in the second nothing is counted.
    assert shared.pace(other, 100.95, per_chat=1, count=False) == Paced()
    assert shared.incr("chat:b:100", 2) == 2 and shared.incr("all:100", 2) == 3


def test_a_pacing_step_under_a_hold_counts_nothing(clocked: Clocked) -> None:
    shared = clocked.state
    shared.set("hold", "103.5", 5)
    keys = PaceKeys("hold", "chat:a:101", "all:101")
    assert shared.pace(keys, 101.0, per_chat=5, count=True) == Paced(held_until=103.5)
    assert shared.get("chat:a:101") is None and shared.get("all:101") is None
    # A hold already past lets the step count.
    assert shared.pace(keys, 104.0, per_chat=5, count=True) == Paced(chat=1, overall=1)
    clocked.elapse(3)  # the counters last two seconds
    assert shared.get("chat:a:101") is None and shared.get("all:101") is None
