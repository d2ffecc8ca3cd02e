"""The LLM gateway's per-call ledger: one record per call in the `llm_usage` table, and the usage report that
sums them (so `GET /v1/usage` equals the sum of the records by construction).

Records live in {pk: "<tenant>#<period>", sk: "<iso time>#<id>"}: a tenant's period is one partition, read in
one paged query. Money is stored in micro-USD (integers: DynamoDB refuses floats) and reported in USD.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agentplatform.budget import MICRO, Budget, Limit
from agentplatform.llm import UsageLine, UsageReport
from agentplatform.ports import KeyValueTable

_KEEP = timedelta(days=400)  # a year of records, and a month's margin


@dataclass(frozen=True)
class UsageRecord:
    tenant: str
    task: str
    target: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd_micro: int
    latency_ms: int
    cache: str
    outcome: str  # "ok" or the error's code
    correlation_id: str | None
    at: str  # ISO 8601, UTC


class UsageLedger:
    def __init__(self, table: KeyValueTable) -> None:
        self._table = table

    def record(self, record: UsageRecord, period: str) -> None:
        at = datetime.fromisoformat(record.at)
        item: dict[str, Any] = {
            "pk": f"{record.tenant}#{period}",
            "sk": f"{record.at}#{uuid.uuid4().hex[:12]}",
            **{k: v for k, v in asdict(record).items() if v is not None},
            "expires_at": int((at + _KEEP).timestamp()),
        }
        self._table.put(item)

    def records(self, tenant: str, period: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = None
        while True:
            page, after = self._table.query({"pk": f"{tenant}#{period}"}, limit=500, after=after)
            out.extend(page)
            if not after:
                return out

    def report(self, tenant: str, budget: Budget, limit: Limit) -> UsageReport:
        """The tenant's usage this period by task and target, and what its budget has left."""
        spent = budget.spent(tenant)
        records = self.records(tenant, spent.period)
        lines: dict[tuple[str, str], dict[str, int]] = {}
        for r in records:
            line = lines.setdefault((str(r["task"]), str(r["target"])), {"calls": 0, "p": 0, "c": 0, "usd": 0})
            line["calls"] += 1
            line["p"] += int(r.get("prompt_tokens", 0))
            line["c"] += int(r.get("completion_tokens", 0))
            line["usd"] += int(r.get("cost_usd_micro", 0))
        tokens_used = sum(v["p"] + v["c"] for v in lines.values())
        usd_used = sum(v["usd"] for v in lines.values())
        # What is left is the budget row's view: it also counts embeddings spent outside the gateway and calls
        # in flight, so it can be lower than the limit minus these records.
        tokens_limit = limit.tokens if limit.tokens is not None else 0
        usd_limit = limit.usd_micro if limit.usd_micro is not None else 0
        return UsageReport(
            tenant=tenant,
            period=spent.period,
            resets_at=spent.resets_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            lines=[
                UsageLine(
                    task=task,
                    target=target,
                    calls=v["calls"],
                    prompt_tokens=v["p"],
                    completion_tokens=v["c"],
                    cost_usd=v["usd"] / MICRO,
                )
                for (task, target), v in sorted(lines.items())
            ],
            tokens_used=tokens_used,
            tokens_limit=tokens_limit,
            tokens_left=max(0, tokens_limit - spent.tokens),
            cost_used_usd=usd_used / MICRO,
            cost_limit_usd=usd_limit / MICRO,
            cost_left_usd=max(0, usd_limit - spent.usd_micro) / MICRO,
            records=len(records),
        )
