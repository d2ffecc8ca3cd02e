"""The scorers, one module each; every module's docstring gives its definition, range and cost.

A scorer is `score(sample, tools) -> {name: Score}`. It raises on a failure of its own (the evaluator records
`failed` with the reason for that score and keeps the others); it returns `skipped` with why when the score
does not apply to the turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

from agentplatform.evaluation import SampledPassage, Score, TurnSample

Embed = Callable[[Sequence[str]], list[list[float]]]
# (question, answer's claims, passages) -> one verdict per claim: supported or not.
Judge = Callable[[str, Sequence[str], Sequence[SampledPassage]], list[bool]]


@dataclass(frozen=True)
class ScorerTools:
    """What scorers may call: the gateway's embeddings and judge, either None where not configured."""

    embed: Embed | None = None
    judge: Judge | None = None


def passages_by_ref(sample: TurnSample) -> dict[int, str]:
    return {p.ref: p.text for p in sample.passages or []}


def skipped(name: str, reason: str) -> dict[str, Score]:
    return {name: Score(status="skipped", reason=reason)}


def modules() -> list[ModuleType]:
    from functions.evaluation.scorers import abstention, citations, faithfulness, relevance, turn_cost

    return [faithfulness, relevance, citations, abstention, turn_cost]
