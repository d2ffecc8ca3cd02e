"""Per-tenant model budgets, in tokens and in money, per period (a UTC day or month), kept in the `limits` table.

One row per tenant and period ({pk: "budget#<tenant>", sk: "2026-12"}) with two counters, `tokens` and
`usd_micro` (money in millionths of a dollar: DynamoDB numbers are exact integers, floats do not go in), each the
period's spend plus what calls in flight have reserved. Before a model call the gateway reserves the call's
maximum cost with one conditional ADD that refuses when it would pass the limit (`KeyValueTable.add_within`), so
parallel requests cannot overshoot a spent budget together; after it, `settle` adds the real usage minus the
reservation. A reservation that is never settled (a container killed mid-call) stays counted until the period
ends: the safe side of the error.

Everything else that spends model tokens (search's query embeddings, ingestion's embeddings) counts them here too,
after the fact (`spend`), through the TokenMeter facade in agentplatform.limits: one mechanism, one row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from agentplatform.errors import BudgetExceeded
from agentplatform.ports import KeyValueTable

Clock = Callable[[], float]
Period = Literal["day", "month"]
MICRO = 1_000_000
_KEEP_AFTER_PERIOD = timedelta(days=35)  # rows outlive their period a while, for reports


@dataclass(frozen=True)
class Limit:
    """A period's allowance; None: that dimension is not limited."""

    tokens: int | None
    usd_micro: int | None

    @classmethod
    def of(cls, tokens: int | None, usd: float | None) -> Limit:
        return cls(tokens, None if usd is None else round(usd * MICRO))


@dataclass(frozen=True)
class Reservation:
    tenant: str
    period: str
    tokens: int
    usd_micro: int


@dataclass(frozen=True)
class Spent:
    period: str
    resets_at: datetime
    tokens: int
    usd_micro: int


class Budget:
    def __init__(self, table: KeyValueTable, period: Period = "month", clock: Clock = time.time) -> None:
        self._table = table
        self._period = period
        self._clock = clock

    def reserve(self, tenant: str, tokens: int, usd_micro: int, limit: Limit) -> Reservation:
        """Hold the call's maximum cost against the tenant's limit, or raise BudgetExceeded (Retry-After: the
        period's end) when the spend so far plus what is held plus this would pass it."""
        now = self._now()
        period = self._period_name(now)
        ceilings = {}
        if limit.tokens is not None:
            ceilings["tokens"] = limit.tokens
        if limit.usd_micro is not None:
            ceilings["usd_micro"] = limit.usd_micro
        deltas = {"tokens": max(0, tokens), "usd_micro": max(0, usd_micro)}
        if not self._table.add_within(self._key(tenant, period), deltas, ceilings, self._expiry(now)):
            raise BudgetExceeded(
                f"tenant {tenant!r} has not enough model budget left this {self._period} for this request",
                retry_after_s=self._retry_after(now),
                tenant=tenant,
            )
        return Reservation(tenant, period, deltas["tokens"], deltas["usd_micro"])

    def settle(self, reservation: Reservation, tokens: int, usd_micro: int) -> None:
        """Replace the reservation with what the call really spent (0 and 0 when it failed)."""
        deltas = {"tokens": max(0, tokens) - reservation.tokens, "usd_micro": max(0, usd_micro) - reservation.usd_micro}
        # Settled into the period the reservation was made in, even when the call ran across the period's end.
        self._table.add_within({"pk": f"budget#{reservation.tenant}", "sk": reservation.period}, deltas)

    def spend(self, tenant: str, tokens: int, usd_micro: int = 0) -> int:
        """Count spend after the fact (no reservation); return the period's tokens so far."""
        now = self._now()
        key = self._key(tenant, self._period_name(now))
        self._table.add_within(key, {"tokens": max(0, tokens), "usd_micro": max(0, usd_micro)}, None, self._expiry(now))
        item = self._table.get(key) or {}
        return int(item.get("tokens", 0))

    def spent(self, tenant: str) -> Spent:
        now = self._now()
        period = self._period_name(now)
        item = self._table.get(self._key(tenant, period)) or {}
        return Spent(period, self._period_end(now), int(item.get("tokens", 0)), int(item.get("usd_micro", 0)))

    def used_percent(self, tenant: str, limit: Limit) -> float | None:
        """How much of the period's allowance the tenant has spent, in % of the tighter dimension; None when
        neither dimension is limited."""
        spent = self.spent(tenant)
        shares = [
            100.0 * used / allowed
            for used, allowed in ((spent.tokens, limit.tokens), (spent.usd_micro, limit.usd_micro))
            if allowed
        ]
        return round(max(shares), 2) if shares else None

    def check(self, tenant: str, limit: Limit) -> None:
        """Raise BudgetExceeded when the tenant has nothing left (for work whose cost is only known after it)."""
        now = self._now()
        spent = self.spent(tenant)
        over_tokens = limit.tokens is not None and spent.tokens >= limit.tokens
        over_usd = limit.usd_micro is not None and spent.usd_micro >= limit.usd_micro
        if over_tokens or over_usd:
            raise BudgetExceeded(
                f"tenant {tenant!r} has used {spent.tokens} of its {limit.tokens} model tokens this {self._period}",
                retry_after_s=self._retry_after(now),
                tenant=tenant,
            )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _period_name(self, now: datetime) -> str:
        return now.strftime("%Y-%m-%d" if self._period == "day" else "%Y-%m")

    @staticmethod
    def _key(tenant: str, period: str) -> dict[str, str]:
        return {"pk": f"budget#{tenant}", "sk": period}

    def _expiry(self, now: datetime) -> dict[str, int]:
        return {"expires_at": int((self._period_end(now) + _KEEP_AFTER_PERIOD).timestamp())}

    def _retry_after(self, now: datetime) -> int:
        return max(1, math.ceil((self._period_end(now) - now).total_seconds()))

    def _period_end(self, now: datetime) -> datetime:
        if self._period == "day":
            return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        return datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)

    def period_end(self) -> datetime:
        return self._period_end(self._now())

    def spent_period(self) -> str:
        """The current period's name (`2026-12`, or `2026-12-03` for a daily budget)."""
        return self._period_name(self._now())
