"""Latency, tokens and cost of the turn, and the tools it ran.

Definition: `latency_ms` is the turn's wall time from the message's arrival to its answer (the agent loop's
`total_ms`), with the model's share in the detail; `tokens` is the prompt plus completion tokens of every
gateway call of the turn; `cost_usd` what the gateway priced them at (0 for local models). The tools run
(name, status, duration) are in the detail of `latency_ms` and on the record. Range: >= 0, lower is better.
Cost: none (read from the event).
"""

from __future__ import annotations

from agentplatform.evaluation import Score, TurnSample
from functions.evaluation.scorers import ScorerTools

NAME = "turn_cost"
NAMES = ("latency_ms", "tokens", "cost_usd")


def score(sample: TurnSample, tools: ScorerTools) -> dict[str, Score]:
    return {
        "latency_ms": _measured(
            sample.total_ms,
            "total_ms",
            {"model_ms": sample.model_ms, "tools": [t.model_dump() for t in sample.tools or []]},
        ),
        "tokens": _measured(
            None if sample.tokens_in is None else sample.tokens_in + (sample.tokens_out or 0),
            "tokens_in",
            {"in": sample.tokens_in, "out": sample.tokens_out},
        ),
        "cost_usd": _measured(sample.cost_usd, "cost_usd", {}),
    }


def _measured(value: float | None, field: str, detail: dict) -> Score:
    if value is None:
        return Score(status="failed", reason=f"the event carries no {field}", detail=detail)
    return Score(status="ok", value=float(value), method="event", detail=detail)
