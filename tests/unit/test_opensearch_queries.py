"""What the OpenSearch adapter sends: index, query and pipeline bodies, bulk actions, retries, error mapping.

The shapes follow the OpenSearch documentation:
- hybrid query: https://docs.opensearch.org/latest/query-dsl/compound/hybrid/
- efficient k-NN filtering (Lucene engine): https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/
- normalization processor: https://docs.opensearch.org/latest/search-plugins/search-pipelines/normalization-processor/
- score ranker processor: https://docs.opensearch.org/latest/search-plugins/search-pipelines/score-ranker-processor/
A fake client records every call; no request leaves the process.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import opensearchpy
import pytest
from tenacity import wait_none

from agentplatform.adapters import opensearch
from agentplatform.adapters.opensearch import OpenSearchIndex, connect, index_body, pipeline_body
from agentplatform.errors import (
    ConfigurationError,
    DependencyUnavailable,
    NotFound,
    UpstreamThrottled,
    ValidationFailed,
)
from agentplatform.search import (
    MAX_TOKEN_CHARS,
    STOPWORDS,
    TITLE_BOOST,
    Boosts,
    Chunk,
    Fusion,
    FusionTechnique,
    SearchFilters,
    SearchMode,
    SearchRequest,
    chunk_document,
)

DIM = 4
SEP = "\x1f"
VECTOR = [0.5, 0.5, 0.5, 0.5]


class _Namespace:
    def __init__(self, client: FakeOpenSearch, prefix: str) -> None:
        self._client, self._prefix = client, prefix

    def __getattr__(self, name: str):
        return lambda **kwargs: self._client.answer(f"{self._prefix}.{name}", kwargs)


class FakeOpenSearch:
    """opensearch-py's surface as the adapter uses it: records (method, kwargs); answers from per-method queues
    (an exception in a queue is raised), else with an empty success."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, list[Any]] = defaultdict(list)
        self.indices = _Namespace(self, "indices")
        self.search_pipeline = _Namespace(self, "search_pipeline")

    def __getattr__(self, name: str):
        return lambda **kwargs: self.answer(name, kwargs)

    def answer(self, method: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((method, kwargs))
        queue = self.answers[method]
        answer = queue.pop(0) if queue else _default(method, kwargs)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == method]


def _default(method: str, kwargs: dict[str, Any]) -> Any:
    if method == "bulk":
        return {"errors": False, "items": []}
    if method == "search":
        return {"hits": {"hits": []}}
    return {"acknowledged": True}


def bulk_answer(*statuses: tuple[str, int]) -> dict[str, Any]:
    """A bulk response with one item per (action, status); statuses of 400 and up carry an error."""
    items = []
    for action, status in statuses:
        result: dict[str, Any] = {"status": status}
        if status >= 400:
            result["error"] = {"type": "some_exception", "reason": "r"}
        items.append({action: result})
    return {"errors": any(s >= 400 for _, s in statuses), "items": items}


def hit(chunk: Chunk, score: float) -> dict[str, Any]:
    return {"_id": chunk.tenant + SEP + chunk.chunk_id, "_score": score, "_source": chunk_document(chunk)}


def chunk(chunk_id: str = "c1", tenant: str = "t1", doc_id: str = "d1", **fields: Any) -> Chunk:
    return Chunk(chunk_id, tenant, doc_id, "v1", f"text of {chunk_id}", vector=fields.pop("vector", VECTOR), **fields)


@pytest.fixture
def client() -> FakeOpenSearch:
    return FakeOpenSearch()


@pytest.fixture
def index(client: FakeOpenSearch) -> OpenSearchIndex:
    return OpenSearchIndex(client, "chunks", DIM, retry_wait=wait_none())


def request(mode: SearchMode, **fields: Any) -> SearchRequest:
    vector = None if mode == SearchMode.BM25 else VECTOR
    return SearchRequest(tenant="t1", text="flows of water", vector=vector, mode=mode, **fields)


BASE_FILTERS = [{"term": {"tenant": "t1"}}, {"terms": {"acl": ["*"]}}]
BM25_QUERY = {
    "bool": {
        "should": [
            {"match": {"text": {"query": "flows of water"}}},
            {"match": {"title": {"query": "flows of water", "boost": TITLE_BOOST}}},
        ],
        "minimum_should_match": 1,
        "filter": BASE_FILTERS,
    }
}


def knn_query(k: int) -> dict[str, Any]:
    return {"knn": {"vector": {"vector": VECTOR, "k": k, "filter": {"bool": {"filter": BASE_FILTERS}}}}}


# -- index and pipelines ---------------------------------------------------------------------------------------


def test_index_body_has_the_platform_analyzer_and_a_lucene_cosine_vector():
    body = index_body()
    analysis = body["settings"]["analysis"]
    settings = body["settings"]["index"]
    assert settings["knn"] is True and settings["number_of_shards"] == 1
    assert settings["search.slowlog.threshold.query.warn"] == "2s"  # the domain's slow logs record something
    assert analysis["analyzer"] == {
        "platform_text": {
            "type": "custom",
            "tokenizer": "platform_words",
            "filter": ["platform_length", "lowercase", "platform_stopwords", "platform_stemmer"],
        },
        "platform_identifiers": {
            "type": "custom",
            "tokenizer": "platform_whitespace",
            "filter": ["platform_length", "lowercase"],
        },
    }
    # Runs of letters and digits: what splitting on [^\p{L}\p{N}]+ leaves; the identifier terms split on spaces.
    assert analysis["tokenizer"] == {
        "platform_words": {"type": "pattern", "pattern": r"[\p{L}\p{N}]+", "group": 0},
        "platform_whitespace": {"type": "pattern", "pattern": r"\S+", "group": 0},
    }
    assert analysis["filter"] == {
        "platform_length": {"type": "length", "max": MAX_TOKEN_CHARS - 1},
        "platform_stopwords": {"type": "stop", "stopwords": list(STOPWORDS)},
        "platform_stemmer": {"type": "snowball", "language": "English"},
    }
    mappings = body["mappings"]
    assert mappings["dynamic"] == "strict"
    properties = mappings["properties"]
    assert properties["vector"] == {
        "type": "knn_vector",
        "dimension": 384,
        "method": {
            "name": "hnsw",
            "engine": "lucene",
            "space_type": "cosinesimil",
            "parameters": {"m": 16, "ef_construction": 128},
        },
    }
    assert properties["text"] == properties["title"] == {"type": "text", "analyzer": "platform_text"}
    assert properties["metadata"] == {"type": "object", "enabled": False}
    keywords = {name for name, spec in properties.items() if spec == {"type": "keyword"}}
    assert keywords == {
        "chunk_id",
        "tenant",
        "doc_id",
        "doc_version",
        "path",
        "path_prefixes",
        "content_hash",
        "tags",
        "acl",
    }
    # The heading is a keyword for citations and analyzed text for BM25; identifier terms split on whitespace.
    assert properties["section"] == {"type": "keyword", "fields": {"text": properties["text"]}}
    assert properties["identifiers"] == {"type": "text", "analyzer": "platform_identifiers"}
    # Every field of a chunk's document is mapped: dynamic strict would refuse any other.
    assert set(chunk_document(chunk())) | {"vector"} == set(properties)


def test_pipeline_bodies():
    assert pipeline_body(Fusion(weights=(0.3, 0.7))) == {
        "phase_results_processors": [
            {
                "normalization-processor": {
                    "normalization": {"technique": "min_max"},
                    "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.7]}},
                }
            }
        ],
    }
    z_score = pipeline_body(Fusion(FusionTechnique.Z_SCORE, weights=(0.4, 0.6)))["phase_results_processors"][0]
    assert z_score["normalization-processor"] == {
        "normalization": {"technique": "z_score"},
        "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.4, 0.6]}},
    }
    assert pipeline_body(Fusion(FusionTechnique.RRF, rank_constant=40)) == {
        "phase_results_processors": [
            {"score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": 40}}}
        ],
    }


def test_ensure_creates_the_index_and_nothing_else(client, index):
    index.ensure()
    assert client.sent("indices.create") == [{"index": "chunks", "body": index_body(DIM)}]
    assert client.sent("search_pipeline.put") == []  # hybrid searches carry their pipeline


def test_ensure_tolerates_an_existing_index(client, index):
    client.answers["indices.create"].append(
        opensearchpy.RequestError(400, "resource_already_exists_exception", {"status": 400})
    )
    index.ensure()
    assert len(client.sent("indices.create")) == 1


def test_ensure_raises_other_index_refusals(client, index):
    client.answers["indices.create"].append(opensearchpy.RequestError(400, "mapper_parsing_exception", {}))
    with pytest.raises(ConfigurationError):
        index.ensure()


# -- searches --------------------------------------------------------------------------------------------------


def test_bm25_search_body_and_hits(client, index):
    found = chunk("c9", title="Flows", acl_groups=("eng",), metadata={"k": "v"})
    client.answers["search"].append({"hits": {"hits": [hit(found, 7.5)]}})
    hits = index.search(request(SearchMode.BM25, top_k=3))
    assert client.sent("search") == [
        {
            "index": "chunks",
            "routing": "t1",
            "body": {"size": 3, "query": BM25_QUERY, "_source": {"excludes": ["vector"]}},
        }
    ]
    assert [(h.chunk, h.score, h.bm25, h.vector) for h in hits] == [(found.without_vector(), 7.5, 7.5, None)]


def test_bm25_body_weights_the_section_and_the_query_identifiers(client, index):
    client.answers["search"].append({"hits": {"hits": []}})
    text = "brake error E-4012"
    index.search(SearchRequest(tenant="t1", text=text, mode=SearchMode.BM25, boosts=Boosts(section=0.3, identifiers=2)))
    assert client.sent("search")[0]["body"]["query"]["bool"]["should"] == [
        {"match": {"text": {"query": text}}},
        {"match": {"title": {"query": text, "boost": TITLE_BOOST}}},
        {"match": {"section.text": {"query": text, "boost": 0.3}}},
        {"match": {"identifiers": {"query": "e-4012 e4012", "boost": 2}}},
    ]
    client.answers["search"].append({"hits": {"hits": []}})
    index.search(SearchRequest(tenant="t1", text="brake pads", mode=SearchMode.BM25, boosts=Boosts(identifiers=2)))
    fields = [next(iter(c["match"])) for c in client.sent("search")[1]["body"]["query"]["bool"]["should"]]
    assert fields == ["text", "title"]  # no identifier in the query: no identifier clause


def test_vector_search_filters_inside_the_knn_query(client, index):
    found = chunk("c9")
    client.answers["search"].append({"hits": {"hits": [hit(found, 0.9)]}})
    hits = index.search(request(SearchMode.VECTOR, top_k=5))
    assert client.sent("search") == [
        {
            "index": "chunks",
            "routing": "t1",
            "body": {"size": 5, "query": knn_query(5), "_source": {"excludes": ["vector"]}},
        }
    ]
    assert [(h.score, h.bm25, h.vector) for h in hits] == [(0.9, None, 0.9)]


def test_hybrid_search_fuses_candidates_in_the_pipeline_and_keeps_top_k(client, index):
    found = [chunk(f"c{i}") for i in range(4)]
    client.answers["search"].append({"hits": {"hits": [hit(c, 1.0 - i / 10) for i, c in enumerate(found)]}})
    hits = index.search(request(SearchMode.HYBRID, top_k=2, candidates=50))
    assert client.sent("search") == [
        {
            "index": "chunks",
            "routing": "t1",
            "body": {
                "size": 50,
                "query": {"hybrid": {"queries": [BM25_QUERY, knn_query(50)]}},
                "_source": {"excludes": ["vector"]},
                "search_pipeline": pipeline_body(Fusion()),  # a temporary pipeline: no stored state, no writes
            },
        }
    ]
    assert [(h.chunk.chunk_id, h.score, h.bm25, h.vector) for h in hits] == [
        ("c0", 1.0, None, None),
        ("c1", 0.9, None, None),
    ]


def test_hybrid_rrf_sends_the_score_ranker_pipeline(client, index):
    fusion = Fusion(FusionTechnique.RRF, rank_constant=20)
    index.search(request(SearchMode.HYBRID, fusion=fusion))
    assert [s["body"]["search_pipeline"] for s in client.sent("search")] == [pipeline_body(fusion)]
    assert client.sent("search_pipeline.put") == []


def test_every_filter_is_a_clause_of_each_sub_query(client, index):
    filters = SearchFilters(doc_ids=("d1", "d2"), tags=("hr",), path_prefix="reports/2024/", acl_groups=("eng", "ops"))
    index.search(request(SearchMode.HYBRID, filters=filters))
    expected = [
        {"term": {"tenant": "t1"}},
        {"terms": {"doc_id": ["d1", "d2"]}},
        {"terms": {"tags": ["hr"]}},
        {"term": {"path_prefixes": "reports/2024/"}},
        {"terms": {"acl": ["*", "eng", "ops"]}},
    ]
    bm25, knn = client.sent("search")[0]["body"]["query"]["hybrid"]["queries"]
    assert bm25["bool"]["filter"] == expected
    assert knn["knn"]["vector"]["filter"] == {"bool": {"filter": expected}}
    assert "post_filter" not in client.sent("search")[0]["body"]


def test_a_query_vector_of_the_wrong_dimension_is_refused_before_sending(client, index):
    with pytest.raises(ValidationFailed, match="4 numbers"):
        index.search(SearchRequest(tenant="t1", text="", vector=[1.0, 0.0], mode=SearchMode.VECTOR))
    assert client.calls == []


@pytest.mark.parametrize(
    ("error", "mode", "expected"),
    [
        (opensearchpy.ConnectionError("N/A", "refused", Exception()), SearchMode.BM25, DependencyUnavailable),
        (opensearchpy.ConnectionTimeout("TIMEOUT", "timed out", Exception()), SearchMode.BM25, DependencyUnavailable),
        (opensearchpy.TransportError(429, "too_many_requests", {}), SearchMode.BM25, UpstreamThrottled),
        (opensearchpy.TransportError(503, "unavailable", {}), SearchMode.BM25, DependencyUnavailable),
        (opensearchpy.NotFoundError(404, "index_not_found_exception", {}), SearchMode.BM25, NotFound),
        (opensearchpy.RequestError(400, "parsing_exception", {}), SearchMode.BM25, ConfigurationError),
        (opensearchpy.AuthorizationException(403, "security_exception", {}), SearchMode.BM25, ConfigurationError),
        # A cluster without k-NN (osmem-server) answers a knn query with 400.
        (
            opensearchpy.RequestError(400, "unsupported_operation_exception", {}),
            SearchMode.VECTOR,
            DependencyUnavailable,
        ),
    ],
)
def test_search_errors_map_to_platform_errors_by_status(client, index, error, mode, expected):
    client.answers["search"].append(error)
    with pytest.raises(expected) as caught:
        index.search(request(mode))
    assert type(caught.value) is expected


def test_check_reports_an_unreachable_cluster(client, index):
    index.check()
    client.answers["indices.exists"].append(opensearchpy.ConnectionError("N/A", "refused", Exception()))
    with pytest.raises(DependencyUnavailable):
        index.check()


# -- reads -----------------------------------------------------------------------------------------------------


def test_get_returns_the_chunk_with_its_vector_routed_to_the_tenant(client, index):
    stored = chunk("c1")
    client.answers["get"].append({"found": True, "_source": {**chunk_document(stored), "vector": VECTOR}})
    assert index.get("t1", "c1") == stored
    assert client.sent("get") == [{"index": "chunks", "id": "t1\x1fc1", "routing": "t1", "ignore": 404}]


def test_get_of_a_missing_chunk_or_another_tenants_is_none(client, index):
    client.answers["get"].append({"_id": "t2\x1fc1", "found": False})
    assert index.get("t2", "c1") is None
    client.answers["get"].append({"found": True, "_source": {**chunk_document(chunk("c1", tenant="t1"))}})
    assert index.get("t2", "c1") is None


def test_count_filters_by_tenant_and_document(client, index):
    client.answers["count"] += [{"count": 3}, {"count": 1}]
    assert index.count("t1") == 3
    assert index.count("t1", "d1") == 1
    assert client.sent("count") == [
        {"index": "chunks", "routing": "t1", "body": {"query": {"bool": {"filter": [{"term": {"tenant": "t1"}}]}}}},
        {
            "index": "chunks",
            "routing": "t1",
            "body": {"query": {"bool": {"filter": [{"term": {"tenant": "t1"}}, {"term": {"doc_id": "d1"}}]}}},
        },
    ]


# -- writes ----------------------------------------------------------------------------------------------------


def index_action(c: Chunk) -> list[dict[str, Any]]:
    norm = math.sqrt(sum(x * x for x in c.vector))
    source = {**chunk_document(c), "vector": [x / norm for x in c.vector]}
    return [{"index": {"_index": "chunks", "_id": f"{c.tenant}{SEP}{c.chunk_id}", "routing": c.tenant}}, source]


def delete_action(tenant: str, chunk_id: str) -> list[dict[str, Any]]:
    return [{"delete": {"_index": "chunks", "_id": f"{tenant}{SEP}{chunk_id}", "routing": tenant}}]


def test_upsert_sends_routed_index_actions_with_unit_vectors_and_waits_for_refresh(client, index):
    a, b = chunk("a", vector=[3.0, 0.0, 4.0, 0.0]), chunk("b", tenant="t2")
    index.upsert([chunk("a"), b, a])  # "a" twice: the last one wins
    assert client.sent("bulk") == [{"body": index_action(a) + index_action(b), "refresh": "wait_for"}]
    assert client.sent("bulk")[0]["body"][1]["vector"] == [0.6, 0.0, 0.8, 0.0]


def test_upsert_sends_large_batches_in_several_requests(client, index, monkeypatch):
    monkeypatch.setattr(opensearch, "BULK_BATCH", 2)
    index.upsert([chunk(f"c{i}") for i in range(5)])
    assert [len(call["body"]) // 2 for call in client.sent("bulk")] == [2, 2, 1]


@pytest.mark.parametrize(
    ("vector", "says"), [([1.0, 2.0], "4 numbers"), ([0.0] * 4, "non-zero"), ([math.inf, 0, 0, 0], "finite")]
)
def test_upsert_refuses_bad_vectors_before_sending(client, index, vector, says):
    with pytest.raises(ValidationFailed, match=says):
        index.upsert([chunk("a", vector=vector)])
    assert client.calls == []


def test_upsert_retries_a_throttled_request(client, index):
    throttled = opensearchpy.TransportError(429, "too_many_requests", {})
    client.answers["bulk"] += [throttled, throttled]
    index.upsert([chunk("a")])
    assert len(client.sent("bulk")) == 3


def test_upsert_resends_only_the_items_refused_for_throttling_or_a_server_error(client, index):
    a, b, c = chunk("a"), chunk("b"), chunk("c")
    client.answers["bulk"] += [
        bulk_answer(("index", 201), ("index", 429), ("index", 503)),
        bulk_answer(("index", 201), ("index", 503)),
        bulk_answer(("index", 200)),
    ]
    index.upsert([a, b, c])
    bodies = [call["body"] for call in client.sent("bulk")]
    assert bodies == [
        index_action(a) + index_action(b) + index_action(c),
        index_action(b) + index_action(c),
        index_action(c),
    ]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (opensearchpy.TransportError(429, "too_many_requests", {}), UpstreamThrottled),
        (opensearchpy.TransportError(502, "bad gateway", {}), DependencyUnavailable),
        (opensearchpy.ConnectionError("N/A", "refused", Exception()), DependencyUnavailable),
        (bulk_answer(("index", 429)), UpstreamThrottled),
        (bulk_answer(("index", 500)), DependencyUnavailable),
    ],
)
def test_upsert_gives_up_after_five_attempts(client, index, failure, expected):
    client.answers["bulk"] += [failure] * 5
    with pytest.raises(expected):
        index.upsert([chunk("a")])
    assert len(client.sent("bulk")) == 5


def test_a_mapping_error_is_a_validation_failure_naming_the_chunk_and_is_not_retried(client, index):
    client.answers["bulk"].append(bulk_answer(("index", 201), ("index", 400)))
    with pytest.raises(ValidationFailed, match="bad") as caught:
        index.upsert([chunk("good"), chunk("bad")])
    assert caught.value.context["chunk_ids"] == ["bad"]
    assert len(client.sent("bulk")) == 1


def test_replace_document_indexes_the_new_chunks_then_deletes_the_others_in_one_bulk(client, index):
    client.answers["search"].append(
        {"hits": {"hits": [{"_source": {"chunk_id": cid}, "sort": [cid]} for cid in ("old1", "same", "old2")]}}
    )
    new = [chunk("same"), chunk("fresh")]
    index.replace_document("t1", "d1", new)
    listing = {
        "size": 1000,
        "query": {"bool": {"filter": [{"term": {"tenant": "t1"}}, {"term": {"doc_id": "d1"}}]}},
        "_source": ["chunk_id"],
        "sort": [{"chunk_id": "asc"}],
    }
    assert client.sent("search") == [{"index": "chunks", "routing": "t1", "body": listing}]
    expected = index_action(new[0]) + index_action(new[1]) + delete_action("t1", "old1") + delete_action("t1", "old2")
    assert client.sent("bulk") == [{"body": expected, "refresh": "wait_for"}]


def test_replace_document_pages_through_a_long_document(client, index, monkeypatch):
    monkeypatch.setattr(opensearch, "_PAGE", 2)
    pages = [["a", "b"], ["c", "d"], ["e"]]
    client.answers["search"] += [
        {"hits": {"hits": [{"_source": {"chunk_id": c}, "sort": [c]} for c in p]}} for p in pages
    ]
    index.replace_document("t1", "d1", [])
    assert [s["body"].get("search_after") for s in client.sent("search")] == [None, ["b"], ["d"]]
    assert len(client.sent("bulk")[0]["body"]) == 5  # five deletes


def test_replace_document_refuses_chunks_of_another_document(client, index):
    with pytest.raises(ValidationFailed):
        index.replace_document("t1", "d1", [chunk("a", doc_id="d2")])
    with pytest.raises(ValidationFailed):
        index.replace_document("t1", "d1", [chunk("a", tenant="t2")])
    assert client.calls == []


def test_deleting_an_already_deleted_chunk_is_not_an_error(client, index):
    client.answers["search"].append({"hits": {"hits": [{"_source": {"chunk_id": "gone"}, "sort": ["gone"]}]}})
    client.answers["bulk"].append({"errors": False, "items": [{"delete": {"status": 404, "result": "not_found"}}]})
    index.replace_document("t1", "d1", [])
    assert len(client.sent("bulk")) == 1


def test_delete_document_and_version_delete_by_query_with_refresh(client, index):
    client.answers["delete_by_query"] += [{"deleted": 4, "failures": []}, {"deleted": 2, "failures": []}]
    assert index.delete_document("t1", "d1") == 4
    assert index.delete_version("t1", "d1", "v1") == 2
    tenant_doc = [{"term": {"tenant": "t1"}}, {"term": {"doc_id": "d1"}}]
    assert client.sent("delete_by_query") == [
        {"index": "chunks", "routing": "t1", "refresh": True, "body": {"query": {"bool": {"filter": tenant_doc}}}},
        {
            "index": "chunks",
            "routing": "t1",
            "refresh": True,
            "body": {"query": {"bool": {"filter": [*tenant_doc, {"term": {"doc_version": "v1"}}]}}},
        },
    ]


def test_delete_reports_partial_failures(client, index):
    client.answers["delete_by_query"].append({"deleted": 1, "failures": [{"status": 500}]})
    with pytest.raises(DependencyUnavailable):
        index.delete_document("t1", "d1")


def test_every_call_needs_a_tenant(index):
    for call in (
        lambda: index.get("", "c"),
        lambda: index.count(""),
        lambda: index.delete_document("", "d"),
        lambda: index.replace_document("", "d", []),
        lambda: index.upsert([chunk("a", tenant="")]),
    ):
        with pytest.raises(ValidationFailed):
            call()


# -- connect ---------------------------------------------------------------------------------------------------


def test_connect_signs_with_sigv4_on_aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = connect("https://search.example.com", region="eu-west-1", sigv4=True)
    transport = client.transport
    assert transport.connection_class is opensearchpy.RequestsHttpConnection
    assert isinstance(transport.kwargs["http_auth"], opensearchpy.AWSV4SignerAuth)
    assert transport.kwargs["http_auth"].signer.region == "eu-west-1"
    assert transport.kwargs["http_auth"].service == "es"
    assert transport.max_retries == 0  # the adapter retries writes; the client must not retry them again
    assert transport.kwargs["timeout"] == 10


def test_connect_is_plain_for_a_local_server():
    transport = connect("http://localhost:9200", region="eu-west-1", sigv4=False).transport
    assert "http_auth" not in transport.kwargs
    assert transport.max_retries == 0
