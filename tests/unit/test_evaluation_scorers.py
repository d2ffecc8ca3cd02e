"""The scorers on hand-made turns: what each one calls supported, invalid, relevant or wrong, and when it skips."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

from agentplatform import grounding
from agentplatform.evaluation import TurnSample
from functions.evaluation.scorers import ScorerTools, abstention, citations, faithfulness, relevance, turn_cost
from tests.conftest import sample_event


def turn(**changes: Any) -> TurnSample:
    detail = {**sample_event("evaluation/turn_completed.json")["detail"], **changes}
    return TurnSample.model_validate(detail)


def bag_of_words(texts: list[str]) -> list[list[float]]:
    """A deterministic stand-in for the embedding model: hashed stemmed content words, normalized."""
    out = []
    for text in texts:
        vector = [0.0] * 64
        for term in grounding.content_terms(text):
            vector[int(hashlib.sha256(term.encode()).hexdigest(), 16) % 64] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        out.append([v / norm for v in vector])
    return out


LEXICAL = ScorerTools()
EMBEDDING = ScorerTools(embed=bag_of_words)


def test_faithfulness_is_the_share_of_supported_claims() -> None:
    good = faithfulness.score(turn(), LEXICAL, method="lexical")["faithfulness"]
    assert (good.status, good.value, good.method) == ("ok", 1.0, "lexical")
    half = turn(answer="Blades are inspected after every hundred hours [1]. The cabin is painted blue weekly [2].")
    score = faithfulness.score(half, LEXICAL, method="lexical")["faithfulness"]
    assert score.value == 0.5 and score.detail["claims"] == 2
    assert "painted blue" in score.detail["unsupported"][0]


def test_faithfulness_catches_a_changed_number_and_an_uncited_answer() -> None:
    wrong = turn(answer="The turbine blades are inspected for cracks after every 300 hours of flight [1].")
    assert faithfulness.score(wrong, EMBEDDING)["faithfulness"].value == 0.0
    uncited = turn(answer="The turbine blades are inspected for cracks after every hundred hours of flight.")
    assert faithfulness.score(uncited, EMBEDDING)["faithfulness"].value == 0.0


def test_faithfulness_uses_embeddings_when_given_and_the_judge_when_asked() -> None:
    assert faithfulness.score(turn(), EMBEDDING)["faithfulness"].method == "embedding"
    asked: list[Any] = []

    def judge(question: str, claims: Any, passages: Any) -> list[bool]:
        asked.append((question, list(claims), [p.ref for p in passages]))
        return [True, True]

    two = turn(answer="Blades are inspected after every hundred hours [1]. Pressure is held near eight thousand feet.")
    score = faithfulness.score(two, ScorerTools(judge=judge), method="judge")["faithfulness"]
    # The judge agreed with both, but the second claim cites nothing: unsupported by any cited passage.
    assert (score.method, score.value) == ("judge", 0.5)
    assert asked[0][2] == [1]


def test_faithfulness_skips_abstentions_and_refuses_a_turn_without_passages() -> None:
    assert faithfulness.score(turn(answer_kind="abstained"), LEXICAL)["faithfulness"].status == "skipped"
    with pytest.raises(ValueError, match="no passages"):
        faithfulness.score(turn(passages=None), LEXICAL)


def test_answer_relevance_embedding_and_lexical() -> None:
    on_topic = relevance.score(turn(), EMBEDDING)["answer_relevance"]
    off_topic = relevance.score(turn(answer="Cabin pressure is held near eight thousand feet [2]."), EMBEDDING)
    assert on_topic.value > 0.5 > off_topic["answer_relevance"].value
    lexical = relevance.score(turn(), LEXICAL)["answer_relevance"]
    assert lexical.method == "lexical" and lexical.value == 0.75  # "often" is not in the answer


def test_citation_validity_counts_refs_outside_the_passages() -> None:
    assert citations.score(turn(), LEXICAL)["citation_validity"].value == 1.0
    bad = turn(answer="Blades are inspected every hundred hours [1] [7].")
    score = citations.score(bad, LEXICAL)["citation_validity"]
    assert score.value == 0.5 and score.detail["invalid"] == [7]
    swapped = turn(citations=[{"ref": 1, "doc_id": "cabin"}])  # the listed citation names another document
    assert citations.score(swapped, LEXICAL)["citation_validity"].value < 1.0


def test_abstention_is_right_when_it_matches_what_retrieval_found() -> None:
    answered = abstention.score(turn(), LEXICAL)["abstention"]
    assert answered.value == 1.0 and answered.detail["should_abstain"] is False
    wrongly = abstention.score(turn(answer_kind="abstained", answer="I don't know."), LEXICAL)["abstention"]
    assert wrongly.value == 0.0
    nothing = turn(answer_kind="abstained", answer="I don't know.", passages=[])
    assert abstention.score(nothing, LEXICAL)["abstention"].value == 1.0
    unrelated = turn(question="What is the refund policy for damaged parcels?")
    assert abstention.score(unrelated, EMBEDDING)["abstention"].value == 0.0  # answered, but nothing relevant
    labelled = turn(expect_abstain=True)
    assert abstention.score(labelled, LEXICAL)["abstention"].method == "label"


def test_turn_cost_reads_the_event_and_fails_what_it_lacks() -> None:
    scores = turn_cost.score(turn(), LEXICAL)
    assert scores["latency_ms"].value == 1480 and scores["tokens"].value == 439
    assert scores["latency_ms"].detail["tools"][0]["name"] == "knowledge_search"
    missing = turn_cost.score(turn(tokens_in=None, cost_usd=None), LEXICAL)
    assert missing["tokens"].status == "failed" and "tokens_in" in missing["tokens"].reason
    assert missing["cost_usd"].status == "failed"
