"""Per-tenant load shaping over the KeyValueTable port: the token bucket and the token quota."""

from __future__ import annotations

import pytest

from agentplatform.errors import QuotaExceeded, Throttled
from agentplatform.limits import RateLimiter, TokenMeter
from tests.fakes import MemoryTable


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_the_bucket_refills_at_the_rate():
    clock = Clock(1_000.0)
    limiter = RateLimiter(MemoryTable(), rate_per_s=2, burst=4, clock=clock)
    for _ in range(4):
        limiter.acquire("acme")
    with pytest.raises(Throttled) as caught:
        limiter.acquire("acme")
    assert caught.value.retry_after_s == 1 and caught.value.status == 429
    clock.now += 0.5  # one token back at 2/s
    limiter.acquire("acme")
    with pytest.raises(Throttled):
        limiter.acquire("acme")


def test_tenants_have_their_own_buckets():
    limiter = RateLimiter(MemoryTable(), rate_per_s=1, burst=1, clock=Clock(5.0))
    limiter.acquire("acme")
    with pytest.raises(Throttled):
        limiter.acquire("acme")
    limiter.acquire("globex")


def test_containers_share_one_bucket_through_the_table():
    table, clock = MemoryTable(), Clock(50.0)
    first, second = RateLimiter(table, 1, 2, clock), RateLimiter(table, 1, 2, clock)
    first.acquire("acme")
    second.acquire("acme")
    with pytest.raises(Throttled):
        first.acquire("acme")


def test_retry_after_says_when_a_token_is_back():
    limiter = RateLimiter(MemoryTable(), rate_per_s=0.1, burst=1, clock=Clock(0.0))  # one request per 10 s
    limiter.acquire("acme")
    with pytest.raises(Throttled) as caught:
        limiter.acquire("acme")
    assert caught.value.retry_after_s == 10


def test_a_lost_race_re_reads_instead_of_spending_the_same_token():
    class Racing(MemoryTable):
        """Another container writes between this one's read and its conditional write, once."""

        raced = False

        def update(self, key, values, *, expect=None):
            if not self.raced and expect is not None:
                self.raced = True
                super().update(key, {"tat": 2_000_000}, expect=None)
            return super().update(key, values, expect=expect)

    table = Racing()
    limiter = RateLimiter(table, rate_per_s=1, burst=5, clock=Clock(0.0))
    limiter.acquire("acme")
    assert table.get({"pk": "rate#acme", "sk": "bucket"})["tat"] == 3_000_000  # built on the other's write


def test_token_quota_counts_spend_and_refuses_until_the_period_ends():
    clock = Clock(1_796_083_200.0)  # 2026-12-01T00:00:00Z
    clock.now += 3600 * 24 * 30 + 3600 * 23  # 2026-12-31T23:00Z
    meter = TokenMeter(MemoryTable(), quota=100, period="month", clock=clock)
    meter.check("acme")
    assert meter.spend("acme", 60) == 60
    meter.check("acme")
    meter.spend("acme", 50)  # counted after the fact: one request may overshoot
    with pytest.raises(QuotaExceeded) as caught:
        meter.check("acme")
    assert caught.value.status == 429 and caught.value.retry_after_s == 3600  # January starts in an hour
    meter.check("globex")
    clock.now += 3600
    meter.check("acme")  # a new month
    assert meter.used("acme") == 0


def test_daily_quota_period():
    clock = Clock(1_796_083_200.0 + 7200)  # 02:00Z
    meter = TokenMeter(MemoryTable(), quota=10, period="day", clock=clock)
    meter.spend("acme", 10)
    with pytest.raises(QuotaExceeded) as caught:
        meter.check("acme")
    assert caught.value.retry_after_s == 22 * 3600
