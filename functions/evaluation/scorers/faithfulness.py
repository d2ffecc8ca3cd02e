"""Faithfulness: the share of the answer's claims that the passages it cites support.

Definition: the answer's sentences that state something (the grounding check's tested sentences) are its
claims; a claim is supported when the passages its `[n]` markers cite support it. A claim with no marker, or
with only markers outside the turn's passages, is unsupported. Methods, named in the score's `method`:
- `judge`: the gateway's `judge` task reads each claim against its cited passages (policy
  `faithfulness_method: judge`, where the judge route is a capable model);
- `embedding`: the grounding check (agentplatform.grounding) with the gateway's embeddings: numbers and ids
  must appear in a cited passage, and the content words must be contained or the sentence close in meaning;
- `lexical`: the same check without embeddings.
Range 0..1 (1: every claim supported). Skipped for a turn that abstained or failed (it claims nothing).
An answer that cites nothing although it is not an abstention scores 0.
Cost: judge, one gateway call (~prompt of the cited passages); embedding, one embed call of the claims and
the cited passages' sentences (~10-40 ms locally); lexical, pure Python (<1 ms).
"""

from __future__ import annotations

from agentplatform import grounding
from agentplatform.evaluation import Score, TurnSample
from functions.evaluation.scorers import ScorerTools, passages_by_ref, skipped

NAME = "faithfulness"


def score(sample: TurnSample, tools: ScorerTools, method: str = "embedding") -> dict[str, Score]:
    if sample.status != "answered" or sample.answer_kind == "abstained":
        return skipped(NAME, f"the turn {sample.answer_kind or sample.status}: it states no claim to check")
    if sample.passages is None:
        raise ValueError("the event carries no passages to check the answer against")
    texts = passages_by_ref(sample)
    if grounding.is_abstention(sample.answer):
        return {NAME: Score(status="ok", value=0.0, method="citations", detail={"claims": 1, "reason": "no [n]"})}
    if method == "judge" and tools.judge is not None:
        return {NAME: _judged(sample, tools)}
    embed = tools.embed if method == "embedding" else None
    report = grounding.check(sample.answer, texts, embed=embed)
    tested = [s for s in report.sentences if s.tested]
    detail = {
        "claims": len(tested),
        "supported": sum(s.supported for s in tested),
        "unsupported": [s.text[:200] for s in tested if not s.supported][:5],
    }
    value = report.share_supported if tested else 1.0
    return {NAME: Score(status="ok", value=round(value, 4), method="embedding" if embed else "lexical", detail=detail)}


def _judged(sample: TurnSample, tools: ScorerTools) -> Score:
    assert tools.judge is not None
    claims = [s for s in grounding.split_sentences(sample.answer) if grounding.content_terms(s)]
    if not claims:
        return Score(status="ok", value=1.0, method="judge", detail={"claims": 0})
    cited = {r for c in claims for r in grounding.citation_refs(c)}
    verdicts = tools.judge(sample.question, claims, [p for p in sample.passages or [] if p.ref in cited])
    if len(verdicts) != len(claims):
        raise ValueError(f"the judge returned {len(verdicts)} verdicts for {len(claims)} claims")
    # A claim the judge supports still needs a citation: the score is about the cited passages.
    supported = [ok and bool(grounding.citation_refs(c)) for ok, c in zip(verdicts, claims, strict=True)]
    return Score(
        status="ok",
        value=round(sum(supported) / len(claims), 4),
        method="judge",
        detail={"claims": len(claims), "supported": sum(supported)},
    )
