"""Abstention correctness: the turn abstained exactly when retrieval found nothing relevant.

Definition: retrieval found something relevant when a retrieved passage contains at least half of the
question's content words (stemmed, stopwords out), or, with embeddings, when a passage's best sentence is at
cosine >= 0.5 from the question. An offline sample that carries its label (`expect_abstain`) uses the label
instead. The turn abstained when its answer kind is `abstained`. Value 1 when the two agree, else 0; averaged
over turns it is the abstention accuracy. Range {0, 1}. Cost: pure Python, or one embed call (~10-30 ms).
A cosine alone decides abstention badly on this model (DESIGN.md), so the lexical signal counts first.
"""

from __future__ import annotations

from agentplatform import grounding
from agentplatform.evaluation import Score, TurnSample
from functions.evaluation.scorers import ScorerTools, skipped

NAME = "abstention"
LEXICAL_RELEVANT = 0.5
SEMANTIC_RELEVANT = 0.5


def score(sample: TurnSample, tools: ScorerTools) -> dict[str, Score]:
    if sample.status != "answered":
        return skipped(NAME, f"the turn {sample.status}")
    if sample.passages is None:
        raise ValueError("the event carries no passages to judge retrieval by")
    abstained = sample.answer_kind == "abstained"
    expected, method, best = _should_abstain(sample, tools)
    detail = {"abstained": abstained, "should_abstain": expected, "best_match": best}
    return {NAME: Score(status="ok", value=1.0 if abstained == expected else 0.0, method=method, detail=detail)}


def _should_abstain(sample: TurnSample, tools: ScorerTools) -> tuple[bool, str, float | None]:
    if sample.expect_abstain is not None:
        return sample.expect_abstain, "label", None
    texts = [grounding.passage_body(p.text) for p in sample.passages or [] if p.text.strip()]
    if not texts:
        return True, "no_passages", 0.0
    asked = grounding.term_set(sample.question)
    lexical = max((len(asked & grounding.findable_terms(t)) / len(asked) for t in texts), default=0.0) if asked else 0.0
    if lexical >= LEXICAL_RELEVANT or tools.embed is None:
        return lexical < LEXICAL_RELEVANT, "lexical", round(lexical, 4)
    sentences = [s for t in texts for s in grounding.split_sentences(t)][:64]
    vectors = tools.embed([sample.question, *sentences])
    semantic = max(grounding.cosine(vectors[0], v) for v in vectors[1:]) if sentences else 0.0
    return semantic < SEMANTIC_RELEVANT, "embedding", round(semantic, 4)
