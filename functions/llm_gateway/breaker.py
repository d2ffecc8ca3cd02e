"""Circuit breakers per target, shared by every container through the `llm_state` table.

One state row per target ({pk: "breaker#<target>", sk: "state"}: state, opened_at, probe_at, gen) and counters
per time bucket ({sk: "b#<gen>#<bucket start>"}: ok, fail) that `increment` adds to atomically. Transitions are
conditional writes (`update(..., expect=...)`), so when two containers race only one opens, claims the half-open
probe, or closes; the loser reads the winner's state next time. Closing starts a new generation of buckets, so
the failures that opened the breaker do not count against it once it recovers.

    closed --(failures >= failure_rate over >= min_calls in window_s)--> open
    open --(cool_down_s passed; one caller claims the probe)--> half_open
    half_open --(probe succeeds)--> closed      half_open --(probe fails)--> open
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agentplatform.ports import KeyValueTable
from functions.llm_gateway.policy import Breaker as BreakerSettings

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class Permit:
    """Whether a call to the target may go ahead; `probe` when it is the half-open breaker's one trial call."""

    allowed: bool
    gen: int = 0
    probe: bool = False
    retry_after_s: float = 0.0
    has_row: bool = False  # whether the target had a state row when the permit was given


_MS = 1000


class Breakers:
    def __init__(self, table: KeyValueTable, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    @staticmethod
    def _key(target: str, sk: str = "state") -> dict[str, str]:
        return {"pk": f"breaker#{target}", "sk": sk}

    def state(self, target: str) -> State:
        row = self._table.get(self._key(target)) or {}
        return row.get("state", "closed")

    def allow(self, target: str, settings: BreakerSettings) -> Permit:
        row = self._table.get(self._key(target))
        if row is None:
            return Permit(True)
        # Times are integer milliseconds: DynamoDB numbers come back as Decimal, and floats do not go in.
        state, gen, now = row.get("state", "closed"), int(row.get("gen", 0)), round(self._clock() * _MS)
        cool_ms = round(settings.cool_down_s * _MS)
        if state == "closed":
            return Permit(True, gen, has_row=True)
        if state == "open":
            reopen = int(row["opened_at"]) + cool_ms
            if now < reopen:
                return Permit(False, gen, retry_after_s=(reopen - now) / _MS, has_row=True)
            # The first caller past the cool-down claims the probe; everyone else keeps skipping the target.
            claim = {"state": "half_open", "probe_at": now}
            if self._table.update(self._key(target), claim, expect={"state": "open", "opened_at": row["opened_at"]}):
                return Permit(True, gen, probe=True, has_row=True)
            return Permit(False, gen, retry_after_s=settings.cool_down_s, has_row=True)
        # half_open: a probe is out. One that never reported (its container died) is stale after a cool-down.
        probe_at = int(row.get("probe_at") or 0)
        if now >= probe_at + cool_ms and self._table.update(
            self._key(target), {"probe_at": now}, expect={"state": "half_open", "probe_at": row.get("probe_at")}
        ):
            return Permit(True, gen, probe=True, has_row=True)
        return Permit(False, gen, retry_after_s=max(1.0, (probe_at + cool_ms - now) / _MS), has_row=True)

    def record(self, target: str, permit: Permit, ok: bool, settings: BreakerSettings) -> State:
        """Count the call's outcome and make the transition it causes; return the state after it."""
        now = self._clock()
        key = self._key(target)
        if permit.probe:
            if ok:
                self._table.update(key, {"state": "closed", "gen": permit.gen + 1}, expect={"state": "half_open"})
                return "closed"
            self._table.update(key, {"state": "open", "opened_at": round(now * _MS)}, expect={"state": "half_open"})
            return "open"
        bucket = int(now // settings.bucket_s) * settings.bucket_s
        counter = self._key(target, f"b#{permit.gen}#{bucket}")
        self._table.increment(counter, "ok" if ok else "fail", 1, {"expires_at": bucket + settings.window_s + 3600})
        if ok:
            return "closed"
        calls, failures = self._window(target, permit.gen, bucket, settings)
        if calls >= settings.min_calls and failures / calls >= settings.failure_rate:
            # Only a breaker still closed in this generation opens: a racing container may have opened it already.
            expect = {"state": "closed", "gen": permit.gen} if permit.has_row else {"state": None}
            self._table.update(key, {"state": "open", "opened_at": round(now * _MS), "gen": permit.gen}, expect=expect)
            return "open"
        return "closed"

    def _window(self, target: str, gen: int, bucket: int, settings: BreakerSettings) -> tuple[int, int]:
        count = max(1, math.ceil(settings.window_s / settings.bucket_s))
        keys = [self._key(target, f"b#{gen}#{bucket - i * settings.bucket_s}") for i in range(count)]
        rows = [r for r in self._table.get_many(keys) if r]
        ok = sum(int(r.get("ok", 0)) for r in rows)
        fail = sum(int(r.get("fail", 0)) for r in rows)
        return ok + fail, fail
