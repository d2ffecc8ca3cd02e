"""The evaluation contract: what a sampled turn carries, what one evaluation record holds, how sampling decides.

Production turns arrive as `turn.completed` events (the agent loop's Finalize/MarkFailed); offline runs
(bench/answers_eval.py) build the same `TurnSample` from the golden set. Both end as an `EvaluationRecord` in
the `evaluations` table, so a release compares with the last one and with production, score by score.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, Field

# The scores every record has, each `ok`, `failed` (with a reason) or `skipped` (not applicable, with why).
SCORES = ("faithfulness", "answer_relevance", "citation_validity", "abstention", "latency_ms", "tokens", "cost_usd")
# The scores a degradation rule may watch (higher is better, 0..1).
QUALITY_SCORES = ("faithfulness", "answer_relevance", "citation_validity", "abstention")
PASSAGE_CHARS = 1_500  # a passage's text in the event and in the record (EventBridge caps an event at 256 KB)

ScoreStatus = Literal["ok", "failed", "skipped"]


class SampledPassage(BaseModel):
    ref: int = Field(ge=1, description="The `[n]` marker that cites it in the answer.")
    doc_id: str = ""
    title: str = ""
    text: str = Field(default="", max_length=PASSAGE_CHARS * 2)


class ToolUse(BaseModel):
    name: str
    status: str
    duration_ms: float = 0.0


class TurnSample(BaseModel):
    """A finished turn as evaluation reads it: the `turn.completed` detail (unknown keys ignored)."""

    tenant: str = Field(min_length=1)
    conversation_id: str = Field(min_length=1)
    turn: int = Field(ge=0)
    status: str = "answered"
    answer_kind: str | None = None
    question: str = ""
    answer: str = ""
    passages: list[SampledPassage] | None = None  # None: the event did not say (an older producer)
    citations: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[ToolUse] | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    answered_by: str | None = None
    model_ms: float | None = None
    total_ms: float | None = None
    completed_ms: int | None = None
    correlation_id: str | None = None
    release: str | None = None  # offline runs: the release (or run id) the answers come from
    expect_abstain: bool | None = None  # offline runs: the golden label (the answer is not in the documents)

    @property
    def turn_id(self) -> str:
        return turn_id(self.conversation_id, self.turn)

    @property
    def route(self) -> str:
        """The answering route: the gateway target that wrote the answer, or what answered without one."""
        return self.answered_by or self.answer_kind or "none"


class Score(BaseModel):
    status: ScoreStatus
    value: float | None = None
    method: str | None = Field(default=None, description="How it was measured (judge, embedding, lexical, ...).")
    reason: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class EvaluationRecord(BaseModel):
    tenant: str
    turn_id: str
    conversation_id: str
    turn: int
    route: str
    source: Literal["production", "offline"] = "production"
    release: str | None = None
    at_ms: int
    status: str
    answer_kind: str | None = None
    question: str = ""
    answer: str = ""
    passages: list[SampledPassage] = Field(default_factory=list)
    tools: list[ToolUse] = Field(default_factory=list)
    scores: dict[str, Score]
    correlation_id: str | None = None

    def value(self, name: str) -> float | None:
        score = self.scores.get(name)
        return score.value if score is not None and score.status == "ok" else None


class Alert(BaseModel):
    id: str
    tenant: str
    score: str
    state: Literal["open", "cleared"]
    rule: Literal["below_threshold", "dropped"]
    mean: float
    previous_mean: float | None = None
    threshold: float
    samples: int
    opened_ms: int
    cleared_ms: int | None = None
    cleared_mean: float | None = None


class WindowSummary(BaseModel):
    score: str
    samples: int
    mean: float | None
    failed: int


class Summary(BaseModel):
    tenant: str
    window_s: int
    since_ms: int
    records: int
    by_route: dict[str, int]
    scores: list[WindowSummary]


def turn_id(conversation_id: str, turn: int) -> str:
    return f"{conversation_id}#{turn}"


def sampled(turn: str, rate: float) -> bool:
    """Whether a turn is evaluated at `rate` (0..1): a hash of the turn id, so a redelivered event decides the
    same way and a rate of 0.1 takes the same tenth of turns on every evaluator."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    bucket = int.from_bytes(hashlib.sha256(turn.encode()).digest()[:8], "big") / 2**64
    return bucket < rate


def summarize(tenant: str, window_s: int, since_ms: int, records: list[EvaluationRecord]) -> Summary:
    """Each score's mean, samples and failures over a window's records, and the records per answering route."""
    by_route: dict[str, int] = {}
    for r in records:
        by_route[r.route] = by_route.get(r.route, 0) + 1
    scores = []
    for name in SCORES:
        values = [v for v in (r.value(name) for r in records) if v is not None]
        failed = sum(1 for r in records if name in r.scores and r.scores[name].status == "failed")
        mean = round(sum(values) / len(values), 4) if values else None
        scores.append(WindowSummary(score=name, samples=len(values), mean=mean, failed=failed))
    return Summary(
        tenant=tenant, window_s=window_s, since_ms=since_ms, records=len(records), by_route=by_route, scores=scores
    )
