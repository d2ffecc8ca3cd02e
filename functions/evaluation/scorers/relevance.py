"""Answer relevance: how closely the answer addresses the question.

Definition: the cosine similarity of the question's and the answer's embeddings (all-MiniLM-L6-v2 through the
gateway's `embed` task; markers and the extractive answer's lead-in removed), clipped to 0..1. Without
embeddings (`lexical`): the share of the question's content words (stemmed, stopwords out) that the answer
uses. Range 0..1. On-topic answers score ~0.4-0.8 with MiniLM, unrelated text under ~0.15 (docs/evaluation.md).
Skipped for an abstention or a failed turn (it answers nothing). Cost: one embed call of two texts (~10 ms
locally), or pure Python.
"""

from __future__ import annotations

from agentplatform import grounding
from agentplatform.evaluation import Score, TurnSample
from functions.evaluation.scorers import ScorerTools, skipped

NAME = "answer_relevance"
_LEAD_IN = "I could not verify a written answer, so here is what your documents say:"


def score(sample: TurnSample, tools: ScorerTools) -> dict[str, Score]:
    if sample.status != "answered" or sample.answer_kind == "abstained":
        return skipped(NAME, f"the turn {sample.answer_kind or sample.status}: no answer to weigh")
    answer = grounding.strip_markers(sample.answer.replace(_LEAD_IN, ""))
    if not sample.question.strip() or not answer:
        raise ValueError("the turn has no question or no answer text")
    if tools.embed is not None:
        question_vector, answer_vector = tools.embed([sample.question, answer])
        value = max(0.0, min(1.0, grounding.cosine(question_vector, answer_vector)))
        return {NAME: Score(status="ok", value=round(value, 4), method="embedding")}
    asked = grounding.term_set(sample.question)
    if not asked:
        raise ValueError("the question has no content words")
    value = len(asked & grounding.findable_terms(answer)) / len(asked)
    return {NAME: Score(status="ok", value=round(value, 4), method="lexical")}
