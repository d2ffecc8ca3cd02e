"""Per-tenant load shaping shared by every Lambda container: a request-rate token bucket and a model-token quota,
both kept in the `limits` table (DynamoDB conditional writes and atomic counters), never in a process.

The rate limit is the token bucket in its GCRA form (one timestamp per tenant, the "theoretical arrival time"):
a request is admitted when the bucket, refilled at `rate_per_s` up to `burst`, still holds a token. One consistent
read and one conditional write per request; a lost race re-reads, so two containers never spend the same token.

The token quota counts model tokens per tenant and period (a UTC day or month). Whatever spends model tokens
calls `TokenMeter.spend` (search's query embeddings today; the LLM gateway later); the API calls `check` before
work that spends them. Spending is counted after the fact, so a tenant can overshoot by one request's tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from agentplatform.errors import QuotaExceeded, Throttled
from agentplatform.ports import KeyValueTable

Clock = Callable[[], float]  # seconds since the epoch
_US = 1_000_000
_RACE_ATTEMPTS = 5


class RateLimiter:
    def __init__(self, table: KeyValueTable, rate_per_s: float, burst: int, clock: Clock = time.time) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate_per_s > 0 and burst >= 1")
        self._table = table
        self._interval_us = round(_US / rate_per_s)  # one token's refill time
        self._window_us = burst * self._interval_us  # how far ahead of now the bucket may be spent
        self._clock = clock

    def acquire(self, tenant: str) -> None:
        """Take one token from the tenant's bucket, or raise Throttled with the seconds until one is back."""
        key = {"pk": f"rate#{tenant}", "sk": "bucket"}
        for _ in range(_RACE_ATTEMPTS):
            now = round(self._clock() * _US)
            item = self._table.get(key)
            tat = int(item["tat"]) if item and "tat" in item else None
            new_tat = max(tat or now, now) + self._interval_us
            if new_tat - now > self._window_us:
                wait_s = (new_tat - now - self._window_us) / _US
                raise Throttled(f"tenant {tenant!r} is over its request rate", retry_after_s=max(1, math.ceil(wait_s)))
            expires_at = (new_tat + _US - 1) // _US + 60  # the row is worthless once the bucket is full again
            if self._table.update(key, {"tat": new_tat, "expires_at": expires_at}, expect={"tat": tat}):
                return
        # Every attempt lost a race: that many requests at once are over any sane rate.
        raise Throttled(f"tenant {tenant!r} is over its request rate", retry_after_s=1)


class TokenMeter:
    """The one interface for model-token spend: `check` before work, `spend` after it."""

    def __init__(
        self,
        table: KeyValueTable,
        quota: int,
        period: Literal["day", "month"] = "month",
        clock: Clock = time.time,
    ) -> None:
        self._table = table
        self._quota = quota
        self._period = period
        self._clock = clock

    def used(self, tenant: str) -> int:
        item = self._table.get(self._key(tenant, self._now()))
        return int(item.get("used", 0)) if item else 0

    def check(self, tenant: str) -> None:
        """Raise QuotaExceeded (Retry-After: the period's end) when the tenant has no tokens left."""
        now = self._now()
        used = self.used(tenant)
        if used >= self._quota:
            retry = math.ceil((self._period_end(now) - now).total_seconds())
            raise QuotaExceeded(
                f"tenant {tenant!r} has used {used} of its {self._quota} model tokens this {self._period}",
                retry_after_s=max(1, retry),
            )

    def spend(self, tenant: str, tokens: int) -> int:
        """Count `tokens` against the tenant's quota; return the period's total."""
        now = self._now()
        expires_at = int((self._period_end(now) + timedelta(days=35)).timestamp())  # kept a while for reports
        return self._table.increment(self._key(tenant, now), "used", max(0, tokens), {"expires_at": expires_at})

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _key(self, tenant: str, now: datetime) -> dict[str, str]:
        period = now.strftime("%Y-%m-%d" if self._period == "day" else "%Y-%m")
        return {"pk": f"tokens#{tenant}", "sk": period}

    def _period_end(self, now: datetime) -> datetime:
        if self._period == "day":
            return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        return datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
