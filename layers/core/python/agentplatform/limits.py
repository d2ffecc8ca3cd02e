"""Per-tenant load shaping shared by every Lambda container: a request-rate token bucket and a model-token quota,
both kept in the `limits` table (DynamoDB conditional writes and atomic counters), never in a process.

The rate limit is the token bucket in its GCRA form (one timestamp per tenant, the "theoretical arrival time"):
a request is admitted when the bucket, refilled at `rate_per_s` up to `burst`, still holds a token. One consistent
read and one conditional write per request; a lost race re-reads, so two containers never spend the same token.

The token quota is the tenant's model budget (agentplatform.budget): the LLM gateway reserves against it before
each call; `TokenMeter` is that budget for the tokens spent outside the gateway (query and ingestion embeddings),
counted after the fact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

from agentplatform.budget import Budget, Limit
from agentplatform.errors import BudgetExceeded, QuotaExceeded, Throttled
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
    """Model-token spend outside the LLM gateway (search's and ingestion's embeddings): `check` before work,
    `spend` after it. A thin use of the one per-tenant budget (agentplatform.budget), so these tokens and the
    gateway's count against the same row and the same limit; spending here is counted after the fact, so such a
    call can overshoot by its own tokens (the gateway reserves before its calls instead)."""

    def __init__(
        self,
        table: KeyValueTable,
        quota: int,
        period: Literal["day", "month"] = "month",
        clock: Clock = time.time,
    ) -> None:
        self._budget = Budget(table, period, clock)
        self._limit = Limit(tokens=quota, usd_micro=None)

    def used(self, tenant: str) -> int:
        return self._budget.spent(tenant).tokens

    def check(self, tenant: str) -> None:
        """Raise QuotaExceeded (Retry-After: the period's end) when the tenant's budget has no tokens left."""
        try:
            self._budget.check(tenant, self._limit)
        except BudgetExceeded as exc:
            # The API's token quota keeps its own problem code; the gateway's refusals say budget_exceeded.
            raise QuotaExceeded(exc.detail, retry_after_s=exc.retry_after_s) from exc

    def spend(self, tenant: str, tokens: int) -> int:
        """Count `tokens` against the tenant's budget; return the period's total."""
        return self._budget.spend(tenant, tokens)
