"""Citation validity: no citation outside the retrieved passages.

Definition: of the distinct `[n]` markers in the answer, the share whose ref is one of the turn's retrieved
passages (and, where the turn lists its citations, each listed citation's document is a retrieved passage's).
An answer that cites nothing has nothing invalid: 1. Range 0..1 (1: every citation valid). Cost: pure Python.
"""

from __future__ import annotations

from agentplatform import grounding
from agentplatform.evaluation import Score, TurnSample
from functions.evaluation.scorers import ScorerTools, skipped

NAME = "citation_validity"


def score(sample: TurnSample, tools: ScorerTools) -> dict[str, Score]:
    if sample.status != "answered":
        return skipped(NAME, f"the turn {sample.status}: no answer")
    if sample.passages is None:
        raise ValueError("the event carries no passages to check the citations against")
    retrieved = {p.ref: p.doc_id for p in sample.passages}
    cited = grounding.citation_refs(sample.answer)
    listed = [(int(c.get("ref", 0)), str(c.get("doc_id", ""))) for c in sample.citations]
    invalid = sorted({r for r in cited if r not in retrieved} | {r for r, d in listed if retrieved.get(r) != d})
    checked = len(set(cited) | {r for r, _ in listed})
    value = 1.0 if not checked else 1.0 - len(invalid) / checked
    return {
        NAME: Score(status="ok", value=round(value, 4), method="refs", detail={"cited": checked, "invalid": invalid})
    }
