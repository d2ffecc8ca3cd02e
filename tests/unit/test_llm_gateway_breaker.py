"""Every breaker transition, with a fake clock, over one shared table (two Breakers objects: two containers)."""

from __future__ import annotations

from functions.llm_gateway.breaker import Breakers
from functions.llm_gateway.policy import Breaker
from tests.fakes import MemoryTable

SETTINGS = Breaker(window_s=60, bucket_s=10, min_calls=4, failure_rate=0.5, cool_down_s=30)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def fail(b: Breakers, target: str = "t", n: int = 1) -> str:
    state = "closed"
    for _ in range(n):
        state = b.record(target, b.allow(target, SETTINGS), False, SETTINGS)
    return state


def test_closed_until_min_calls_then_opens_at_the_failure_rate():
    b = Breakers(MemoryTable(), Clock())
    assert fail(b, n=3) == "closed"  # 3 calls < min_calls 4
    assert b.state("t") == "closed" and b.allow("t", SETTINGS).allowed
    assert fail(b) == "open"
    permit = b.allow("t", SETTINGS)
    assert not permit.allowed and permit.retry_after_s == 30


def test_successes_keep_the_rate_under_the_threshold():
    b = Breakers(MemoryTable(), Clock())
    for _ in range(5):
        b.record("t", b.allow("t", SETTINGS), True, SETTINGS)
    assert fail(b, n=4) == "closed"  # 4 of 9 < 0.5
    assert fail(b) == "open"  # 5 of 10


def test_failures_older_than_the_window_do_not_count():
    clock = Clock()
    b = Breakers(MemoryTable(), clock)
    fail(b, n=3)
    clock.now += 61
    assert fail(b) == "closed" and b.state("t") == "closed"


def test_open_half_opens_after_the_cool_down_admitting_one_probe_and_success_closes():
    clock, table = Clock(), MemoryTable()
    one, two = Breakers(table, clock), Breakers(table, clock)  # two containers, one table
    fail(one, n=4)
    assert not two.allow("t", SETTINGS).allowed  # the other container sees the open breaker
    clock.now += 29.9
    assert not one.allow("t", SETTINGS).allowed
    clock.now += 0.1
    probe = one.allow("t", SETTINGS)
    assert probe.allowed and probe.probe and one.state("t") == "half_open"
    assert not two.allow("t", SETTINGS).allowed  # only one probe at a time
    assert one.record("t", probe, True, SETTINGS) == "closed"
    assert two.allow("t", SETTINGS).allowed
    # The failures that opened it belong to the old generation: one new failure does not reopen it.
    assert fail(two) == "closed"


def test_a_failed_probe_reopens_for_another_cool_down():
    clock = Clock()
    b = Breakers(MemoryTable(), clock)
    fail(b, n=4)
    clock.now += 30
    probe = b.allow("t", SETTINGS)
    assert b.record("t", probe, False, SETTINGS) == "open"
    clock.now += 29
    assert not b.allow("t", SETTINGS).allowed
    clock.now += 1
    assert b.allow("t", SETTINGS).probe


def test_a_probe_that_never_reports_is_reclaimed_after_a_cool_down():
    clock = Clock()
    b = Breakers(MemoryTable(), clock)
    fail(b, n=4)
    clock.now += 30
    assert b.allow("t", SETTINGS).probe  # its container dies before recording
    clock.now += 10
    assert not b.allow("t", SETTINGS).allowed
    clock.now += 20
    assert b.allow("t", SETTINGS).probe


def test_two_containers_racing_to_open_agree():
    clock, table = Clock(), MemoryTable()
    one, two = Breakers(table, clock), Breakers(table, clock)
    permits = [one.allow("t", SETTINGS), two.allow("t", SETTINGS)] * 2
    for i, permit in enumerate(permits):
        (one if i % 2 == 0 else two).record("t", permit, False, SETTINGS)
    assert one.state("t") == two.state("t") == "open"
    opened_at = table.get({"pk": "breaker#t", "sk": "state"})["opened_at"]
    fail(two)  # a late failure report does not move the opening time
    assert table.get({"pk": "breaker#t", "sk": "state"})["opened_at"] == opened_at


def test_targets_have_their_own_breakers():
    b = Breakers(MemoryTable(), Clock())
    fail(b, "a", 4)
    assert b.state("a") == "open" and b.allow("b", SETTINGS).allowed
