"""search.rank_by_document: a document's score blended into its chunks' and a cap on chunks per document; and
search.reward_identifier_matches and search.reward_keyword_matches, the other re-rankings after fusion."""

from __future__ import annotations

import pytest

from agentplatform.search import (
    Chunk,
    DocumentRanking,
    DocumentSignal,
    SearchHit,
    identifier_terms,
    keyword_terms,
    rank_by_document,
    reward_identifier_matches,
    reward_keyword_matches,
)


def hit(doc_id: str, n: int, score: float) -> SearchHit:
    return SearchHit(Chunk(f"{doc_id}-{n}", "t", doc_id, "v1", f"text {n}"), score)


# A long manual's many middling chunks ahead of a short sheet's one exact chunk, and one strong manual chunk.
HITS = [hit("manual", 0, 0.9), hit("manual", 1, 0.62), hit("manual", 2, 0.61), hit("sheet", 0, 0.6)]
HITS += [hit("manual", n, 0.3) for n in range(3, 8)]


def order(hits: list[SearchHit]) -> list[str]:
    return [h.chunk.chunk_id for h in hits]


def test_off_by_default_keeps_the_engines_order() -> None:
    assert rank_by_document(HITS, DocumentRanking()) == HITS


def test_the_mean_signal_lifts_a_short_exact_document_over_a_long_ones_weak_chunks() -> None:
    ranked = rank_by_document(HITS, DocumentRanking(weight=0.3))
    assert order(ranked)[:2] == ["manual-0", "sheet-0"]  # the manual's mean (0.45) pulls its weak chunks down
    assert ranked[1].score == pytest.approx(0.6)  # a one-chunk document's mean is its own score
    assert ranked[0].score == pytest.approx(0.7 * 0.9 + 0.3 * (0.9 + 0.62 + 0.61 + 5 * 0.3) / 8)


def test_the_max_signal_lifts_the_best_documents_other_chunks() -> None:
    ranked = rank_by_document(HITS, DocumentRanking(weight=0.3, signal=DocumentSignal.MAX))
    assert order(ranked)[:4] == ["manual-0", "manual-1", "manual-2", "sheet-0"]


def test_a_cap_keeps_one_document_from_filling_the_first_places() -> None:
    ranked = rank_by_document(HITS, DocumentRanking(per_document=2))
    assert order(ranked)[:3] == ["manual-0", "manual-1", "sheet-0"]
    assert len(ranked) == len(HITS) and order(ranked)[3:] == order(HITS)[2:3] + order(HITS)[4:]  # none dropped


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        DocumentRanking(weight=1.5)
    with pytest.raises(ValueError):
        DocumentRanking(per_document=-1)


def test_the_identifier_reward_lifts_the_chunks_holding_the_querys_identifiers_by_their_share() -> None:
    def named(n: int, text: str, score: float) -> SearchHit:
        return SearchHit(Chunk(f"c{n}", "t", f"d{n}", "v1", text), score)

    hits = [named(0, "Error E-4013 on the dock", 0.9), named(1, "E-4012 and BRK-220-S", 0.8)]
    hits += [named(2, "Only e4012 here", 0.75), named(3, "nothing named", 0.7)]
    terms = identifier_terms("E-4012 with BRK-220-S")  # e-4012 e4012 brk-220-s brk220s
    ranked = reward_identifier_matches(hits, terms, 0.2)
    assert order(ranked) == ["c1", "c0", "c2", "c3"]
    assert [round(h.score, 6) for h in ranked] == [1.0, 0.9, 0.8, 0.7]  # all four terms; none; one of four
    assert reward_identifier_matches(hits, [], 0.2) == hits
    assert reward_identifier_matches(hits, terms, 0.0) == hits


def test_the_keyword_reward_lifts_the_chunks_holding_every_word_of_the_query() -> None:
    def titled(n: int, title: str, text: str, score: float) -> SearchHit:
        return SearchHit(Chunk(f"c{n}", "t", f"d{n}", "v1", text, title=title), score)

    hits = [titled(0, "Trek T600", "Corvane Robotics builds it.", 0.9)]
    hits += [titled(1, "EU travel", "Corvane Robotics SAS books trains.", 0.8)]
    hits += [titled(2, "Corvane Robotics SAS", "The French entity.", 0.7)]  # the words in the title count
    hits += [titled(3, "Sasquatch", "Corvane Robotics mascots.", 0.6)]  # "sas" inside a word does not
    words = keyword_terms("Corvane Robotics SAS")
    ranked = reward_keyword_matches(hits, words, 0.3)
    assert order(ranked) == ["c1", "c2", "c0", "c3"]
    assert [round(h.score, 6) for h in ranked] == [1.1, 1.0, 0.9, 0.6]
    assert reward_keyword_matches(hits, [], 0.3) == hits
    assert reward_keyword_matches(hits, words, 0.0) == hits
