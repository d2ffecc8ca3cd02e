"""The retrieval service over the fakes: search, rerank, dedupe, and context assembly with citations."""

from __future__ import annotations

from typing import Any

import pytest

from agentplatform.errors import ModelOutputInvalid, ValidationFailed
from agentplatform.inference import estimate_tokens
from agentplatform.model_clients import EndpointReranker
from agentplatform.retrieval import RetrievalRequest
from agentplatform.search import Chunk, DocumentRanking, SearchHit
from functions.retrieval.context import NEAR_DUPLICATE, _jaccard, _shingles, assemble, dedupe
from functions.retrieval.handler import handler
from functions.retrieval.service import (
    EXACT_MATCH_CANDIDATES,
    FUSION,
    IDENTIFIER_DEFINITION_BONUS,
    IDENTIFIER_MATCH_BONUS,
    KEYWORD_MATCH_BONUS,
    RetrievalService,
)
from tests.fakes import MemoryEmbeddings, MemorySearchIndex, ScriptedModelEndpoint

EMBED = MemoryEmbeddings()


def chunk(doc: str, n: int, text: str, *, tenant: str = "acme", **fields: Any) -> Chunk:
    values: dict[str, Any] = {
        "chunk_id": f"{doc}:v1:{n}",
        "tenant": tenant,
        "doc_id": doc,
        "doc_version": "v1",
        "text": text,
        "vector": EMBED.embed([text])[0],
        "title": f"Title of {doc}",
        "path": f"manuals/{doc}.pdf",
        "ordinal": n,
    }
    values.update(fields)
    return Chunk(**values)


def hit(c: Chunk, score: float) -> SearchHit:
    return SearchHit(c.without_vector(), score)


# -- context assembly


def test_neighbouring_chunks_merge_and_their_overlap_is_written_once() -> None:
    first = chunk("a", 0, "The wing stalls at high angles of attack.", start=0, end=41)
    second = chunk("a", 1, "of attack. Flaps delay the stall.", start=31, end=64)
    context = assemble([hit(second, 0.9), hit(first, 0.8)], budget=500)
    assert len(context.pieces) == 1
    piece = context.pieces[0]
    assert piece.chunk_ids == ["a:v1:0", "a:v1:1"]
    assert piece.text.endswith("The wing stalls at high angles of attack. Flaps delay the stall.")
    assert piece.citation.doc_id == "a" and piece.citation.path == "manuals/a.pdf"


def test_most_relevant_first_within_the_budget() -> None:
    long = chunk("big", 0, "word " * 400)  # ~500 tokens
    small = [chunk(f"s{n}", 0, f"Short fact number {n}.") for n in range(3)]
    hits = [hit(small[0], 0.9), hit(long, 0.8), hit(small[1], 0.7), hit(small[2], 0.6)]
    context = assemble(hits, budget=100)
    assert [p.citation.doc_id for p in context.pieces] == ["s0", "s1", "s2"]  # the long one did not fit
    assert [p.ref for p in context.pieces] == [1, 2, 3]
    assert context.text.startswith("[1] Title of s0 | manuals/s0.pdf\nShort fact number 0.")
    assert context.tokens <= 100 and context.tokens == sum(p.tokens for p in context.pieces)


def test_a_first_piece_larger_than_the_budget_is_cut_to_fit() -> None:
    context = assemble([hit(chunk("big", 0, "word " * 400), 1.0)], budget=50)
    assert len(context.pieces) == 1 and context.tokens <= 50
    assert assemble([hit(chunk("big", 0, "text"), 1.0)], budget=0).pieces == []


def test_citations_carry_pages_and_sections() -> None:
    pieces = assemble(
        [
            hit(chunk("a", 3, "Page three.", page=3, section="Loads"), 0.9),
            hit(chunk("a", 4, "Page four.", page=4, section="Loads"), 0.8),
        ],
        budget=200,
    ).pieces
    assert pieces[0].text.startswith("[1] Title of a | manuals/a.pdf | pp. 3-4 | section: Loads\n")
    assert pieces[0].citation.page == 3 and pieces[0].citation.section == "Loads"


def test_dedupe_drops_repeats_by_hash_and_by_wording() -> None:
    text = "Inspect the fan blades for nicks and cracks before every flight of the day."
    original = chunk("a", 0, text, content_hash="h1")
    same_hash = chunk("b", 0, "different words entirely", content_hash="h1")
    reworded = chunk("c", 0, text + " Always.", content_hash="h2")  # near-identical: a copied paragraph
    distinct = chunk("d", 0, "Check the tyre pressure when the tyres are cold.", content_hash="h3")
    kept = dedupe([hit(original, 4), hit(same_hash, 3), hit(reworded, 2), hit(distinct, 1)])
    assert [h.chunk.doc_id for h in kept] == ["a", "d"]


def test_dedupe_keeps_a_near_identical_version_that_states_other_figures() -> None:
    words = (  # a real chunk's length: one changed figure leaves its word trigrams over 0.9 alike
        "Missions that fail are retried by the fleet manager before the operator is paged. Each site sets its "
        "own policy in the site settings, under missions, and a change applies to the next mission queued. "
        "Robots that lose the network finish the mission they hold and wait at the nearest charger until the "
        "fleet manager can reach them again, so operators should check the charger map after an outage."
    )
    v2 = chunk("guide-v2", 0, f"{words} The default retry count is 3 and the timeout is 30 s.")
    v3 = chunk("guide-v3", 0, f"{words} The default retry count is 5 and the timeout is 30 s.")
    copy = chunk("guide-v2-copy", 0, f"{words} The default retry count is 3 and the timeout is 30 s, always.")
    assert _jaccard(_shingles(v2.text), _shingles(v3.text)) >= NEAR_DUPLICATE
    kept = dedupe([hit(v2, 3), hit(copy, 2), hit(v3, 1)])
    assert [h.chunk.doc_id for h in kept] == ["guide-v2", "guide-v3"]  # the copy goes, the other version stays


def test_token_estimate() -> None:
    assert estimate_tokens("") == 0 and estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2


# -- the service


@pytest.fixture
def index() -> MemorySearchIndex:
    index = MemorySearchIndex()
    index.upsert(
        [
            chunk("engine", 0, "Inspect the fan blades for nicks before flight.", tags=("maintenance",)),
            chunk("engine", 1, "Oil pressure must stay in the green arc.", tags=("maintenance",)),
            chunk("salary", 0, "Salary bands for engineers are confidential.", acl_groups=("hr",)),
            chunk("secret", 0, "Fan blades of the prototype are made of carbon.", tenant="globex"),
        ]
    )
    return index


def request(**fields: Any) -> RetrievalRequest:
    return RetrievalRequest(**{"tenant": "acme", "query": "fan blades", **fields})


def test_search_answers_hits_with_citations_and_context(index: MemorySearchIndex) -> None:
    result = RetrievalService(index, EMBED).search(request(top_k=3))
    assert result.hits[0].chunk_id == "engine:v1:0"
    assert all(h.citation.doc_id != "secret" for h in result.hits)  # another tenant's chunk
    assert all(h.citation.doc_id != "salary" for h in result.hits)  # an ACL group the caller lacks
    assert result.context.pieces[0].chunk_ids == ["engine:v1:0", "engine:v1:1"]  # neighbours merged
    assert result.context.pieces[0].citation.path == "manuals/engine.pdf"


def test_groups_open_acl_documents(index: MemorySearchIndex) -> None:
    found = RetrievalService(index, EMBED).search(request(query="salary bands", acl_groups=["hr"]))
    assert found.hits[0].citation.doc_id == "salary"


def test_bm25_mode_does_not_embed(index: MemorySearchIndex) -> None:
    embeddings = MemoryEmbeddings()
    result = RetrievalService(index, embeddings).search(request(mode="bm25"))
    assert embeddings.calls == [] and result.hits[0].bm25 is not None


def test_filters_reach_the_index(index: MemorySearchIndex) -> None:
    result = RetrievalService(index, EMBED).search(request(query="oil pressure", filters={"tags": ["none"]}))
    assert result.hits == [] and result.context.pieces == []


def test_a_reranker_reorders_the_hits(index: MemorySearchIndex) -> None:
    def scores(req: dict[str, Any]) -> list[dict[str, Any]]:
        # Prefers the text about oil whatever the query.
        return [{"index": i, "score": 1.0 if "Oil" in t else 0.1} for i, t in enumerate(req["texts"])]

    reranker = EndpointReranker(ScriptedModelEndpoint("rerank", [scores]))
    result = RetrievalService(index, EMBED, reranker).search(request(top_k=2))
    assert result.hits[0].chunk_id == "engine:v1:1" and result.hits[0].score == 1.0


def test_a_reranker_answer_of_the_wrong_shape_is_a_model_error(index: MemorySearchIndex) -> None:
    reranker = EndpointReranker(ScriptedModelEndpoint("rerank", [[{"index": 0, "score": 1.0}]]))
    with pytest.raises(ModelOutputInvalid):
        RetrievalService(index, EMBED, reranker).search(request())


def test_the_handler_refuses_a_request_without_a_tenant(lambda_context: Any) -> None:
    with pytest.raises(ValidationFailed) as raised:
        handler({"query": "fan blades", "correlation_id": "c-1"}, lambda_context)
    assert [e.loc for e in raised.value.errors] == [("tenant",)]


def test_document_ranking_keeps_a_long_document_from_filling_the_hits() -> None:
    index = MemorySearchIndex()
    manual = [chunk("manual", n, f"Brake pads wear; check the brake pads, part {n}.") for n in range(6)]
    index.upsert([*manual, chunk("sheet", 0, "Brake pads: replace at 3 mm.", tenant="acme")])
    query = request(query="brake pads", top_k=3, mode="bm25")
    assert [h.citation.doc_id for h in RetrievalService(index, EMBED).search(query).hits] == ["manual"] * 3
    capped = RetrievalService(index, EMBED, ranking=DocumentRanking(per_document=2)).search(query)
    assert sorted(h.citation.doc_id for h in capped.hits) == ["manual", "manual", "sheet"]


def test_a_hybrid_search_naming_an_identifier_ranks_the_chunks_holding_it_first() -> None:
    look_alike = chunk("faq", 0, "What does the error E-4013 mean when the robot stops on the dock?")
    exact = chunk("codes", 0, "A drive motor overcurrent raises E-4012. Power-cycle the drive.")

    class Fused(MemorySearchIndex):  # the fused scores an engine might give: the look-alike slightly ahead
        def search(self, request: Any) -> list[SearchHit]:
            return [hit(look_alike, 0.60), hit(exact, 0.55)]

    service = RetrievalService(Fused(), EMBED)
    hits = service.search(request(query="what does error E-4012 mean when the robot stops")).hits
    assert [(h.citation.doc_id, round(h.score, 6)) for h in hits] == [
        ("codes", 0.55 + IDENTIFIER_MATCH_BONUS),
        ("faq", 0.6),
    ]
    unnamed = service.search(request(query="what does the error mean when the robot stops")).hits
    assert [h.citation.doc_id for h in unnamed] == ["faq", "codes"]  # no identifier asked: fusion's order


def test_the_exact_match_rewards_are_hybrid_only_and_ask_for_more_candidates() -> None:
    sent: list[Any] = []

    class Recording(MemorySearchIndex):
        def search(self, request: Any) -> Any:
            sent.append(request)
            return super().search(request)

    service = RetrievalService(Recording(), EMBED)
    service.search(request(query="what does E-4012 mean", top_k=5))
    service.search(request(query="fan blades", top_k=5))  # a keyword query
    service.search(request(query="fan blades", top_k=40))  # more than the candidates: top_k's depth
    service.search(request(query="how are fan blades cleaned", top_k=5))
    service.search(request(query="what does E-4012 mean", top_k=5, mode="bm25"))
    assert [r.top_k for r in sent] == [EXACT_MATCH_CANDIDATES, EXACT_MATCH_CANDIDATES, 80, 10, 10]
    assert {r.fusion for r in sent} == {FUSION}


class FusedIndex(MemorySearchIndex):
    """The fused scores an engine might give, in any mode: these hits, in this order."""

    def __init__(self, hits: list[SearchHit]) -> None:
        super().__init__()
        self.hits = hits

    def search(self, request: Any) -> list[SearchHit]:
        return list(self.hits)


def test_a_hybrid_keyword_query_ranks_the_chunks_holding_all_its_terms_first() -> None:
    look_alike = chunk("sheet", 0, "Corvane Robotics builds the Trek T600 for busy warehouses.")
    exact = chunk("policy", 0, "Travel for Corvane Robotics SAS, the French entity, is booked through Lyon.")
    service = RetrievalService(FusedIndex([hit(look_alike, 0.75), hit(exact, 0.625)]), EMBED)
    hits = service.search(request(query="Corvane Robotics SAS")).hits
    assert [(h.citation.doc_id, h.score) for h in hits] == [("policy", 0.625 + KEYWORD_MATCH_BONUS), ("sheet", 0.75)]
    asked = service.search(request(query="which Corvane Robotics entity is SAS")).hits
    assert [h.citation.doc_id for h in asked] == ["sheet", "policy"]  # a question: fusion's order
    for mode in ("bm25", "vector"):  # the engine's own order: no reward
        assert [h.score for h in service.search(request(query="Corvane Robotics SAS", mode=mode)).hits] == [0.75, 0.625]


def test_an_identifier_keyword_query_gets_both_rewards_and_only_the_candidates_do() -> None:
    named = chunk("codes", 0, "E-4012: drive motor overcurrent.")
    look_alike = chunk("faq", 0, "What does the error E-4013 mean?")
    below = [hit(chunk("filler", n, f"Filler {n}."), 0.5) for n in range(EXACT_MATCH_CANDIDATES)]
    late = chunk("late", 0, "E-4012 again, past the candidates.")
    fused = [hit(look_alike, 0.75), hit(named, 0.625), *below, hit(late, 0.25)]
    service = RetrievalService(FusedIndex(fused), EMBED)
    hits = service.search(request(query="E-4012", top_k=60)).hits
    rewards = IDENTIFIER_MATCH_BONUS + IDENTIFIER_DEFINITION_BONUS  # it holds E-4012 and says what it is
    assert (hits[0].citation.doc_id, hits[0].score) == ("codes", 0.625 + rewards + KEYWORD_MATCH_BONUS)
    assert hits[1].citation.doc_id == "faq"
    assert (hits[-1].citation.doc_id, hits[-1].score) == ("late", 0.25)  # past the candidates: as fused
    assert len(hits) == len(fused)


def test_a_chunk_defining_the_asked_identifier_ranks_above_one_mentioning_it() -> None:
    mention = chunk("runbook", 0, "When E-3301 alarms fire for many robots, check the network first.")
    definition = chunk("codes", 0, "E-3301: a robot missed its heartbeats and is shown offline.")
    service = RetrievalService(FusedIndex([hit(mention, 0.75), hit(definition, 0.625)]), EMBED)
    hits = service.search(request(query="what does E-3301 mean")).hits  # a question: no keyword reward
    assert [(h.citation.doc_id, h.score) for h in hits] == [
        ("codes", 0.625 + IDENTIFIER_MATCH_BONUS + IDENTIFIER_DEFINITION_BONUS),
        ("runbook", 0.75 + IDENTIFIER_MATCH_BONUS),
    ]
