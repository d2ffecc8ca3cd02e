"""The per-tenant budget: atomic reservations that parallel callers cannot overshoot, settlement, periods."""

from __future__ import annotations

import threading

import pytest

from agentplatform.budget import Budget, Limit
from agentplatform.errors import BudgetExceeded, QuotaExceeded
from agentplatform.limits import TokenMeter
from tests.fakes import MemoryTable


class Clock:
    def __init__(self, now: float = 1_796_083_200.0 + 3600) -> None:  # 2026-12-01T01:00Z
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_twenty_parallel_reservations_never_pass_the_limit():
    budget = Budget(MemoryTable(), "month", Clock())
    limit = Limit(tokens=1000, usd_micro=None)
    granted, refused = [], []
    start = threading.Barrier(20)

    def worker() -> None:
        start.wait()
        try:
            granted.append(budget.reserve("acme", 130, 0, limit))
        except BudgetExceeded:
            refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 7 and len(refused) == 13  # 7 * 130 = 910 <= 1000 < 8 * 130
    for r in granted:
        budget.settle(r, 140, 0)  # each really spent a bit more than reserved (an estimate)
    assert budget.spent("acme").tokens == 980 <= 1000 + 130  # over by at most one reservation


def test_money_is_a_limit_too_and_settlement_releases_the_reservation():
    budget = Budget(MemoryTable(), "month", Clock())
    limit = Limit.of(None, 0.01)  # 10,000 micro-USD
    held = budget.reserve("acme", 100, 8_000, limit)
    with pytest.raises(BudgetExceeded):
        budget.reserve("acme", 100, 3_000, limit)
    budget.settle(held, 50, 1_000)
    assert budget.spent("acme").usd_micro == 1_000
    budget.reserve("acme", 100, 9_000, limit)  # what the first call did not spend is free again


def test_over_budget_says_when_the_period_resets():
    clock = Clock()
    budget = Budget(MemoryTable(), "day", clock)
    with pytest.raises(BudgetExceeded) as caught:
        budget.reserve("acme", 11, 0, Limit(10, None))
    assert caught.value.retry_after_s == 23 * 3600 and caught.value.headers == {"Retry-After": str(23 * 3600)}
    budget.reserve("globex", 10, 0, Limit(10, None))  # another tenant is unaffected
    clock.now += 23 * 3600
    budget.reserve("acme", 10, 0, Limit(10, None))  # a new day


def test_the_token_meter_and_the_gateway_spend_one_budget():
    table, clock = MemoryTable(), Clock()
    meter = TokenMeter(table, quota=100, period="month", clock=clock)
    budget = Budget(table, "month", clock)
    meter.spend("acme", 60)
    with pytest.raises(BudgetExceeded):
        budget.reserve("acme", 41, 0, Limit(100, None))  # the embeddings' 60 count against the gateway
    budget.settle(budget.reserve("acme", 40, 0, Limit(100, None)), 40, 0)
    with pytest.raises(QuotaExceeded):
        meter.check("acme")
