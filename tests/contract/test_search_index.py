"""The SearchIndex contract, run against every adapter that runs here: the in-memory fake (the reference),
the embedded engine (tantivy + numpy/hnswlib, on disk), and OpenSearch over the wire (osmem-server: BM25,
filters and writes only; it has no knn or search pipelines)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentplatform.adapters.local.search import EmbeddedSearchIndex
from agentplatform.adapters.opensearch import OpenSearchIndex, connect
from agentplatform.errors import ValidationFailed
from agentplatform.search import (
    Boosts,
    Chunk,
    Fusion,
    FusionTechnique,
    SearchFilters,
    SearchMode,
    SearchRequest,
    fuse,
    vector_score,
)
from tests.fakes import MemorySearchIndex

DIM = 384
TEXTS = [
    ("Boundary layer flow", "The boundary layer thickens along a flat plate in laminar flow."),
    ("Shock waves", "Shock waves form ahead of a blunt body in supersonic flow."),
    ("Heat transfer", "Heat transfer to the wall rises sharply in hypersonic flight."),
    ("Wing flutter", "Flutter of a swept wing couples bending and torsion modes."),
    ("Jet noise", "Jet noise grows with the eighth power of the exhaust velocity."),
    ("Laminar flow control", "Suction through a porous wall delays transition of the boundary layer."),
    ("Buckling", "Thin cylindrical shells buckle under axial compression at low loads."),
    ("Skin friction", "Skin friction in turbulent flow depends on the Reynolds number of the plate."),
]


def unit(seed: int) -> list[float]:
    rng = random.Random(seed)
    values = [rng.gauss(0, 1) for _ in range(DIM)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def blend(a: list[float], b: list[float], weight: float) -> list[float]:
    mixed = [weight * x + (1 - weight) * y for x, y in zip(a, b, strict=True)]
    norm = sum(v * v for v in mixed) ** 0.5
    return [v / norm for v in mixed]


def chunk(tenant: str, doc: str, n: int, *, version: str = "v1", **fields: Any) -> Chunk:
    title, text = TEXTS[n % len(TEXTS)]
    values: dict[str, Any] = {
        "chunk_id": f"{doc}:{version}:{n}",
        "tenant": tenant,
        "doc_id": doc,
        "doc_version": version,
        "text": text,
        "title": title,
        "vector": unit(n),
        "path": f"reports/{doc}.md",
        "ordinal": n,
    }
    values.update(fields)
    return Chunk(**values)


def corpus(tenant: str = "acme") -> list[Chunk]:
    return [chunk(tenant, f"doc{n % 3}", n) for n in range(len(TEXTS))]


# -- adapters


def _memory(tmp_path: Any) -> Iterator[MemorySearchIndex]:
    yield MemorySearchIndex()


def _embedded(tmp_path: Any) -> Iterator[EmbeddedSearchIndex]:
    index = EmbeddedSearchIndex(tmp_path / "index")
    yield index
    index.close()


@pytest.fixture(scope="module")
def osmem() -> Iterator[Any]:
    from osmem_server import OsmemServer

    with OsmemServer.start(japanese=False) as server:
        yield server


def _opensearch(tmp_path: Any, server: Any) -> Iterator[OpenSearchIndex]:
    yield OpenSearchIndex(connect(server.url, region="us-east-1", sigv4=False), f"chunks-{uuid.uuid4().hex[:8]}", DIM)


ADAPTERS: dict[str, Callable[..., Iterator[Any]]] = {
    "memory": _memory,
    "embedded": _embedded,
    "opensearch": _opensearch,
}
# osmem-server has no knn and no search pipelines: the OpenSearch adapter runs the BM25, filter and write tests
# here, and tests/contract/test_opensearch_wire.py checks that it refuses vector and hybrid searches there.
VECTOR_ADAPTERS = sorted(set(ADAPTERS) - {"opensearch"})


def _adapter(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    extra = [request.getfixturevalue("osmem")] if request.param == "opensearch" else []
    generator = ADAPTERS[request.param](tmp_path, *extra)
    adapter = next(generator)
    adapter.ensure()
    adapter.exact_bm25_scores = request.param != "opensearch"  # osmem normalizes lengths its own way
    yield adapter
    next(generator, None)


@pytest.fixture(params=sorted(ADAPTERS))
def index(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    yield from _adapter(request, tmp_path)


@pytest.fixture(params=VECTOR_ADAPTERS)
def vector_index(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    yield from _adapter(request, tmp_path)


def ids(hits: list[Any]) -> list[str]:
    return [h.chunk.chunk_id for h in hits]


def bm25(tenant: str, text: str, **kwargs: Any) -> SearchRequest:
    return SearchRequest(tenant=tenant, text=text, mode=SearchMode.BM25, **kwargs)


# -- writes and reads


def test_upsert_get_count_are_tenant_scoped(index: Any) -> None:
    index.upsert(corpus("acme") + corpus("globex"))
    assert index.count("acme") == len(TEXTS)
    assert index.count("acme", doc_id="doc0") == 3
    got = index.get("acme", "doc0:v1:0")
    assert got is not None and got.text == TEXTS[0][1] and got.path == "reports/doc0.md"
    assert list(got.vector) == pytest.approx(unit(0), abs=1e-6)
    assert index.get("other", "doc0:v1:0") is None
    assert index.get("acme", "missing") is None


def test_upsert_replaces_a_chunk_by_id(index: Any) -> None:
    index.upsert([chunk("acme", "doc0", 0)])
    index.upsert([chunk("acme", "doc0", 0, text="Rewritten about rotor blades")])
    assert index.count("acme") == 1
    assert ids(index.search(bm25("acme", "rotor blades"))) == ["doc0:v1:0"]
    assert index.search(bm25("acme", "laminar plate")) == []


def test_delete_document_and_version(index: Any) -> None:
    index.upsert([*corpus(), chunk("acme", "doc0", 1, version="v2")])
    assert index.delete_version("acme", "doc0", "v1") == 3
    assert index.count("acme", doc_id="doc0") == 1
    assert index.delete_document("acme", "doc0") == 1
    assert index.delete_document("acme", "doc0") == 0
    assert index.count("acme") == len(TEXTS) - 3


def test_replace_document_leaves_only_the_new_chunks(index: Any) -> None:
    index.upsert(corpus())
    new = [chunk("acme", "doc1", 0, version="v2", text="Propeller efficiency at cruise", title="Propellers")]
    index.replace_document("acme", "doc1", new)
    assert index.count("acme", doc_id="doc1") == 1
    assert ids(index.search(bm25("acme", "propeller efficiency"))) == ["doc1:v2:0"]
    found = index.search(bm25("acme", "flutter swept wing bending torsion"))  # doc1's old text (TEXTS[3])
    assert all(h.chunk.doc_id != "doc1" for h in found)


def test_replace_documents_replaces_each_document_and_leaves_the_others(index: Any) -> None:
    index.upsert([*corpus(), *corpus("globex")])
    before = index.count("acme")
    index.replace_documents(
        {
            ("acme", "doc1"): [chunk("acme", "doc1", 0, version="v2", text="Propeller efficiency", title="P")],
            ("acme", "doc2"): [],  # no chunks left: the document is gone
            ("globex", "doc1"): [chunk("globex", "doc1", 0, version="v2", text="Rotor blade noise", title="R")],
        }
    )
    assert ids(index.search(bm25("acme", "propeller efficiency"))) == ["doc1:v2:0"]
    assert index.count("acme", doc_id="doc2") == 0 and index.count("acme", doc_id="doc1") == 1
    assert index.count("acme") == before - index_count_of(corpus(), "doc1") - index_count_of(corpus(), "doc2") + 1
    assert ids(index.search(bm25("globex", "rotor blade noise"))) == ["doc1:v2:0"]
    with pytest.raises(ValidationFailed):  # a chunk filed under another document
        index.replace_documents({("acme", "doc3"): [chunk("acme", "doc4", 0)]})


def index_count_of(chunks: list[Any], doc_id: str) -> int:
    return sum(1 for c in chunks if c.doc_id == doc_id)


def test_a_chunk_without_a_tenant_is_refused(index: Any) -> None:
    with pytest.raises(ValidationFailed):
        index.upsert([chunk("", "doc0", 0)])
    with pytest.raises(ValidationFailed):
        index.count("")


# -- BM25


def test_bm25_ranks_like_the_reference(index: Any) -> None:
    reference = MemorySearchIndex()
    data = corpus() + corpus("globex")
    reference.upsert(data)
    index.upsert(data)
    for query in ["boundary layer flow", "wall heat in hypersonic flight", "the plate", "supersonic shock"]:
        expected = reference.search(bm25("acme", query, top_k=8))
        got = index.search(bm25("acme", query, top_k=8))
        assert ids(got) == ids(expected), query
        if index.exact_bm25_scores:
            assert [h.score for h in got] == pytest.approx([h.score for h in expected], rel=1e-4)


def test_analysis_stems_and_drops_stopwords(index: Any) -> None:
    index.upsert(corpus())
    assert ids(index.search(bm25("acme", "What is buckling?"))) == ["doc0:v1:6"]  # "buckle" and "buckling" meet
    assert index.search(bm25("acme", "what is the")) == []


def test_title_matches_count(index: Any) -> None:
    index.upsert(
        [
            chunk("acme", "a", 0, title="Propellers", text="Efficiency at cruise speed."),
            chunk("acme", "b", 1, title="Cruise", text="Propellers lose efficiency at speed."),
        ]
    )
    hits = index.search(bm25("acme", "propellers"))
    assert sorted(ids(hits)) == ["a:v1:0", "b:v1:1"]  # a title match alone finds a chunk


IDENTIFIED = [
    ("Brake faults", "Brake controller", "Error E-4012 means the brake controller lost its sensor."),
    ("Brake faults", "Brake controller", "Error E-4013 means the brake controller overheated."),
    ("Parts list", "Pads", "Replace pads with part BRK-220-S; BRK-220-L fits the long axle."),
    ("Runbook", "Retries", "Raise max_retry_count in section 4.2.1 when INC-2291 recurs."),
    ("Runbook", "Handover", "Escalate an error that recurs after a restart to the on-call engineer."),
    ("IT help", "Contacts", "Mail it-help@corvane.com, or connect through vpn.corvane.com first."),
]


def identified(tenant: str = "acme") -> list[Chunk]:
    return [
        chunk(tenant, f"id{n}", n, title=title, section=section, text=text)
        for n, (title, section, text) in enumerate(IDENTIFIED)
    ]


@pytest.mark.parametrize(
    "query",
    [
        "E-4012",
        "error E4012",
        "e-4013 brake",
        "BRK-220-S",
        "brk220s pads",
        "max_retry_count",
        "INC-2291",
        "4.2.1",
        "IT-Help@corvane.com",
        "vpn.corvane.com down",
    ],
)
def test_identifier_matching_ranks_like_the_reference(index: Any, query: str) -> None:
    reference = MemorySearchIndex()
    data = identified() + identified("globex")
    reference.upsert(data)
    index.upsert(data)
    boosts = Boosts(section=0.3, identifiers=2.0)
    expected = reference.search(bm25("acme", query, top_k=5, boosts=boosts))
    got = index.search(bm25("acme", query, top_k=5, boosts=boosts))
    assert ids(got) == ids(expected)
    if index.exact_bm25_scores:
        assert [h.score for h in got] == pytest.approx([h.score for h in expected], rel=1e-4)


def test_an_identifier_is_matched_whole_before_its_parts(index: Any) -> None:
    index.upsert(identified())
    boosts = Boosts(identifiers=2.0)
    # The parts "e" and "4013" alone rank E-4013's chunk ("overheated") level with E-4012's; the whole does not.
    assert ids(index.search(bm25("acme", "E-4012", boosts=boosts)))[0] == "id0:v1:0"
    assert ids(index.search(bm25("acme", "E4012", boosts=boosts))) == ["id0:v1:0"]  # written without its dash
    assert ids(index.search(bm25("acme", "BRK-220-S", boosts=boosts)))[0] == "id2:v1:2"
    assert ids(index.search(bm25("acme", "INC2291", boosts=boosts))) == ["id3:v1:3"]
    unweighted = Boosts(identifiers=0.0)  # without the identifier clause the compact form is unknown
    assert index.search(bm25("acme", "E4012", boosts=unweighted)) == []


def test_the_section_heading_counts_when_weighted(index: Any) -> None:
    index.upsert(identified())
    assert index.search(bm25("acme", "pads")) != []  # "pads" is in the text of id2
    assert ids(index.search(bm25("acme", "handover"))) == []  # only in id4's heading
    assert ids(index.search(bm25("acme", "handover", boosts=Boosts(section=0.3)))) == ["id4:v1:4"]


# -- tenants and filters


def test_another_tenants_best_match_never_appears(vector_index: Any) -> None:
    secret = chunk("acme", "secret", 0, text="Boundary layer flow boundary layer flow", vector=unit(99))
    vector_index.upsert([secret, *corpus("globex")])
    for mode in SearchMode:
        request = SearchRequest(tenant="globex", text="boundary layer flow", vector=unit(99), mode=mode, top_k=20)
        assert all(h.chunk.tenant == "globex" for h in vector_index.search(request)), mode
        assert vector_index.search(SearchRequest(tenant="initech", text="boundary", vector=unit(99), mode=mode)) == []


def test_bm25_tenant_isolation(index: Any) -> None:
    index.upsert([chunk("acme", "secret", 0, text="Boundary layer flow boundary layer flow"), *corpus("globex")])
    hits = index.search(bm25("globex", "boundary layer flow", top_k=20))
    assert hits and all(h.chunk.tenant == "globex" for h in hits)


def test_filters_apply_before_top_k(index: Any) -> None:
    # Seven chunks match "flow" better than the one tagged chunk; top_k=1 must still find the tagged one.
    data = [chunk("acme", f"d{n}", n, text="flow flow flow") for n in range(7)]
    data.append(chunk("acme", "tagged", 7, text="flow", tags=("handbook",)))
    index.upsert(data)
    hits = index.search(bm25("acme", "flow", top_k=1, filters=SearchFilters(tags=("handbook",))))
    assert ids(hits) == ["tagged:v1:7"]


def test_doc_tag_and_path_filters(index: Any) -> None:
    index.upsert(
        [
            chunk("acme", "a", 0, text="flow one", tags=("x", "y"), path="eng/aero/a.md"),
            chunk("acme", "b", 1, text="flow two", tags=("y",), path="eng/b.md"),
            chunk("acme", "c", 2, text="flow three", tags=(), path="sales/c.md"),
        ]
    )

    def found(**filters: Any) -> set[str]:
        return {h.chunk.doc_id for h in index.search(bm25("acme", "flow", filters=SearchFilters(**filters)))}

    assert found() == {"a", "b", "c"}
    assert found(doc_ids=("a", "c")) == {"a", "c"}
    assert found(tags=("y",)) == {"a", "b"}
    assert found(tags=("x", "nothing")) == {"a"}
    assert found(path_prefix="eng/") == {"a", "b"}
    assert found(path_prefix="eng/aero/") == {"a"}
    assert found(path_prefix="en") == set()  # a folder prefix, not a string prefix
    assert found(doc_ids=("a", "b"), tags=("y",), path_prefix="eng/aero/") == {"a"}


def test_acl_groups(index: Any) -> None:
    index.upsert(
        [
            chunk("acme", "public", 0, text="flow"),
            chunk("acme", "finance", 1, text="flow", acl_groups=("finance",)),
            chunk("acme", "board", 2, text="flow", acl_groups=("board", "finance")),
        ]
    )

    def visible(*groups: str) -> set[str]:
        request = bm25("acme", "flow", filters=SearchFilters(acl_groups=groups))
        return {h.chunk.doc_id for h in index.search(request)}

    assert visible() == {"public"}
    assert visible("finance") == {"public", "finance", "board"}
    assert visible("board") == {"public", "board"}
    assert visible("engineering") == {"public"}


# -- vectors and fusion


def test_vector_search_is_exact_cosine(vector_index: Any) -> None:
    data = corpus()
    vector_index.upsert(data)
    query = blend(unit(2), unit(5), 0.7)
    hits = vector_index.search(SearchRequest(tenant="acme", text="", vector=query, mode=SearchMode.VECTOR, top_k=3))
    cosines = {c.chunk_id: sum(x * y for x, y in zip(query, c.vector, strict=True)) for c in data}
    expected = sorted(cosines, key=lambda k: -cosines[k])[:3]
    assert ids(hits) == expected
    assert [h.score for h in hits] == pytest.approx([vector_score(cosines[k]) for k in expected], abs=1e-5)


@pytest.mark.parametrize("technique", list(FusionTechnique))
def test_hybrid_is_the_fusion_of_both_lists(vector_index: Any, technique: FusionTechnique) -> None:
    vector_index.upsert(corpus())
    fusion = Fusion(technique=technique, weights=(0.3, 0.7))
    query, vector = "boundary layer flow at the wall", blend(unit(4), unit(0), 0.6)
    lexical = vector_index.search(bm25("acme", query, top_k=8))
    dense = vector_index.search(SearchRequest(tenant="acme", text="", vector=vector, mode=SearchMode.VECTOR, top_k=8))
    expected = fuse(
        [(h.chunk.chunk_id, h.score) for h in lexical], [(h.chunk.chunk_id, h.score) for h in dense], fusion
    )
    hybrid = vector_index.search(
        SearchRequest(tenant="acme", text=query, vector=vector, top_k=5, candidates=8, fusion=fusion)
    )
    # Each hit has its fused score and the hits are the five best; equal scores (z-score floors every score at
    # or below its list's mean) may come in either engine's own order, as OpenSearch breaks ties by doc id.
    fused = dict(expected)
    assert [fused[key] for key in ids(hybrid)] == pytest.approx([score for _, score in expected[:5]], rel=1e-4)
    assert [h.score for h in hybrid] == pytest.approx([score for _, score in expected[:5]], rel=1e-4)


def test_vector_filters_apply_before_top_k(vector_index: Any) -> None:
    data = [chunk("acme", f"d{n}", n, vector=blend(unit(50), unit(n), 0.9)) for n in range(7)]
    data.append(chunk("acme", "far", 7, vector=unit(7), tags=("handbook",)))
    vector_index.upsert(data)
    request = SearchRequest(
        tenant="acme",
        text="",
        vector=unit(50),
        mode=SearchMode.VECTOR,
        top_k=1,
        filters=SearchFilters(tags=("handbook",)),
    )
    assert ids(vector_index.search(request)) == ["far:v1:7"]


# -- the embedded engine's own promises


def test_embedded_index_survives_a_restart(tmp_path: Any) -> None:
    first = EmbeddedSearchIndex(tmp_path / "index")
    first.upsert(corpus())
    first.delete_document("acme", "doc2")
    before = first.search(SearchRequest(tenant="acme", text="flow", vector=unit(1), top_k=5))
    first.close()
    again = EmbeddedSearchIndex(tmp_path / "index")
    after = again.search(SearchRequest(tenant="acme", text="flow", vector=unit(1), top_k=5))
    assert ids(after) == ids(before) and again.count("acme") == len(TEXTS) - 2
    again.upsert([chunk("acme", "new", 0, version="v9")])  # ids keep growing after a restart: nothing clashes
    assert again.count("acme") == len(TEXTS) - 1
    again.close()


def test_embedded_hnsw_keeps_recall_under_filters(tmp_path: Any) -> None:
    index = EmbeddedSearchIndex(None, exact_max_rows=100)
    exact = EmbeddedSearchIndex(None, exact_max_rows=10_000)
    data = [chunk("acme", f"d{n}", n, vector=unit(1000 + n), tags=("even",) if n % 2 == 0 else ()) for n in range(600)]
    probe = SearchRequest(tenant="acme", text="", vector=unit(1), mode=SearchMode.VECTOR, top_k=10)
    for engine in (index, exact):
        engine.upsert(data[:300])
        engine.search(probe)  # builds the graph (300 rows > 100)
        engine.upsert(data[300:])  # these rows join the graph at the next search
        engine.delete_document("acme", "d599")  # a row deleted before it joined the graph
    found = total = 0
    for seed in range(20):
        for filters in (SearchFilters(), SearchFilters(tags=("even",)), SearchFilters(doc_ids=("d1", "d3", "d5"))):
            request = SearchRequest(
                tenant="acme", text="", vector=unit(seed), mode=SearchMode.VECTOR, top_k=10, filters=filters
            )
            expected = set(ids(exact.search(request)))
            got = ids(index.search(request))
            assert all(h.chunk.doc_id in filters.doc_ids for h in index.search(request)) or not filters.doc_ids
            found += len(expected & set(got))
            total += len(expected)
    assert index._tenants["acme"].graph is not None and exact._tenants["acme"].graph is None
    assert index._tenants["acme"].graph.get_current_count() == 599
    assert found / total >= 0.95
    index.delete_document("acme", "d0")
    request = SearchRequest(tenant="acme", text="", vector=unit(1000), mode=SearchMode.VECTOR, top_k=5)
    assert "d0:v1:0" not in ids(index.search(request))
