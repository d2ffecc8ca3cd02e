"""search.rank_by_document: a document's score blended into its chunks' and a cap on chunks per document; and
search.reward_identifier_matches (with search.defined_identifiers) and search.reward_keyword_matches, the other
re-rankings after fusion."""

from __future__ import annotations

import pytest

from agentplatform.search import (
    Chunk,
    DocumentRanking,
    DocumentSignal,
    SearchHit,
    defined_identifiers,
    identifier_terms,
    keyword_query,
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


def test_the_keyword_reward_lifts_the_chunks_holding_every_term_of_the_query() -> None:
    def placed(n: int, title: str, section: str, text: str, score: float) -> SearchHit:
        return SearchHit(Chunk(f"c{n}", "t", f"d{n}", "v1", text, title=title, section=section), score)

    hits = [placed(0, "Trek T600", "", "Corvane Robotics builds it.", 0.9)]
    hits += [placed(1, "EU travel", "", "Corvane Robotics SAS books trains.", 0.8)]
    hits += [placed(2, "Corvane Robotics", "SAS", "The French entity.", 0.7)]  # title and heading count
    hits += [placed(3, "Sasquatch", "", "Corvane Robotics mascots.", 0.6)]  # "sas" inside a word does not
    query = keyword_query("Corvane Robotics SAS")
    ranked = reward_keyword_matches(hits, query, 0.25)
    assert order(ranked) == ["c1", "c2", "c0", "c3"]
    assert [round(h.score, 6) for h in ranked] == [1.05, 0.95, 0.9, 0.6]
    assert reward_keyword_matches(hits, None, 0.25) == hits
    assert reward_keyword_matches(hits, query, 0.0) == hits


def test_a_keyword_querys_identifier_is_held_in_any_spelling_and_only_whole() -> None:
    hits = [SearchHit(Chunk("c0", "t", "d0", "v1", "Acme Inc. paid 2291 euros"), 0.9)]
    hits += [SearchHit(Chunk("c1", "t", "d1", "v1", "Postmortem of INC-2291"), 0.8)]
    hits += [SearchHit(Chunk("c2", "t", "d2", "v1", "Same as inc2291"), 0.7)]
    for asked in ("INC-2291", "inc2291", "Inc2291"):
        ranked = reward_keyword_matches(hits, keyword_query(asked), 0.25)
        assert [(h.chunk.chunk_id, round(h.score, 6)) for h in ranked] == [("c1", 1.05), ("c2", 0.95), ("c0", 0.9)]


@pytest.mark.parametrize(
    ("title", "section", "text", "defined"),
    [
        ("Postmortem INC-2291: dispatch stalled", "Summary", "The queue filled.", {"inc2291"}),
        ("Error codes", "E-4012", "Drive motor overcurrent.", {"e4012"}),
        ("Error codes", "Drive", "E-3301: offline. E-3307 \u2013 certificate rejected.", {"e3301", "e3307"}),
        ("Parts", "", "BRK-220-S - brake pad set, see also WHL-250-PU.", {"brk220s"}),
        ("Runbook", "Playbook", "E-3301 alarms fire; see INC-2318 for the outage: ten minutes.", set()),
    ],
)
def test_a_chunk_defines_the_identifiers_of_its_title_heading_and_those_its_text_explains(
    title: str, section: str, text: str, defined: set[str]
) -> None:
    assert defined_identifiers(Chunk("c", "t", "d", "v1", text, title=title, section=section)) == defined


def test_the_identifier_reward_adds_the_definition_bonus_for_the_share_defined() -> None:
    def named(n: int, text: str, score: float) -> SearchHit:
        return SearchHit(Chunk(f"c{n}", "t", f"d{n}", "v1", text), score)

    hits = [named(0, "E-4012 and BRK-220-S are both in this alarm.", 0.9)]
    hits += [named(1, "E-4012: drive overcurrent. BRK-220-S fits it.", 0.8)]
    hits += [named(2, "Not named here: nothing.", 0.85)]
    terms = identifier_terms("E-4012 with BRK-220-S")
    ranked = reward_identifier_matches(hits, terms, 0.2, definition_bonus=0.4)
    assert [(h.chunk.chunk_id, round(h.score, 6)) for h in ranked] == [("c1", 1.2), ("c0", 1.1), ("c2", 0.85)]
    assert reward_identifier_matches(hits, terms, 0.2) == reward_identifier_matches(hits, terms, 0.2, 0.0)
