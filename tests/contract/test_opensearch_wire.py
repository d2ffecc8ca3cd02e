"""The OpenSearch adapter against a real OpenSearch-compatible server (osmem-server, in-memory, one process).

osmem-server speaks the REST API: index creation with custom analyzers, _analyze, bulk, match and bool/term/terms
queries, search_after, count, get and delete_by_query. It has neither the k-NN plugin nor search pipelines,
so here vector and hybrid searches must fail as DependencyUnavailable; their request bodies are pinned by
tests/unit/test_opensearch_queries.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch
from osmem_server import OsmemServer

from agentplatform.adapters.opensearch import OpenSearchIndex, connect
from agentplatform.errors import DependencyUnavailable
from agentplatform.search import Chunk, SearchFilters, SearchMode, SearchRequest

pytestmark = pytest.mark.integration

DIM = 4


@pytest.fixture(scope="module")
def server() -> Iterator[OsmemServer]:
    with OsmemServer.start(japanese=False) as running:
        yield running


@pytest.fixture
def client(server: OsmemServer) -> OpenSearch:
    return connect(server.url, region="us-east-1", sigv4=False)


@pytest.fixture
def index(client: OpenSearch) -> OpenSearchIndex:
    search_index = OpenSearchIndex(client, f"chunks-{uuid.uuid4().hex[:8]}", DIM)
    search_index.ensure()
    return search_index


def chunk(chunk_id: str, text: str, *, tenant: str = "acme", doc_id: str = "d1", **fields: Any) -> Chunk:
    return Chunk(chunk_id, tenant, doc_id, fields.pop("doc_version", "v1"), text, vector=[1.0, 0.0, 0.0, 0.0], **fields)


def bm25(index: OpenSearchIndex, text: str, tenant: str = "acme", **filters: Any) -> list[str]:
    request = SearchRequest(tenant=tenant, text=text, mode=SearchMode.BM25, filters=SearchFilters(**filters))
    return [hit.chunk.chunk_id for hit in index.search(request)]


def test_ensure_creates_the_platform_analyzer_and_is_idempotent(client, index):
    index.ensure()

    def tokens(text: str) -> list[str]:
        answer = client.indices.analyze(index=index._index, body={"analyzer": "platform_text", "text": text})
        return [token["token"] for token in answer["tokens"]]

    assert tokens("The Flows of running") == ["flow", "run"]
    # Split on anything but letters and digits (the standard tokenizer would keep "snake_case" and "3.5").
    assert tokens("snake_case café-3.5") == ["snake", "case", "café", "3", "5"]
    assert tokens("a" * 39 + " " + "b" * 40) == ["a" * 39]  # tokens of 40 characters or more are dropped


def test_upsert_count_and_get_are_tenant_scoped(index):
    stored = chunk("c1", "Quarterly revenue grew", title="Report", tags=("finance",), metadata={"source": "s3"})
    index.upsert([stored, chunk("c2", "Other"), chunk("c1", "Same id, other tenant", tenant="globex")])
    assert index.count("acme") == 2
    assert index.count("acme", "d1") == 2
    assert index.count("globex") == 1
    assert index.get("acme", "c1") == stored
    assert index.get("globex", "c1").text == "Same id, other tenant"
    assert index.get("initech", "c1") is None
    assert index.get("acme", "missing") is None


def test_bm25_ranks_by_text_and_title_with_stemming(index):
    index.upsert(
        [
            chunk("title-and-text", "How water flows through pipes", title="Water flow"),
            chunk("text-only", "The water flowed into the pipe"),
            chunk("once", "Notes on flowing pipes"),
            chunk("unrelated", "Quarterly revenue and costs"),
        ]
    )
    assert bm25(index, "water flowing") == ["title-and-text", "text-only", "once"]


def test_a_title_match_lifts_a_chunk_above_the_same_text_without_it(index):
    index.upsert([chunk("plain", "pipes and valves"), chunk("titled", "pipes and valves", title="Valves")])
    assert bm25(index, "valve") == ["titled", "plain"]
    assert bm25(index, "what is the") == []  # only stopwords: nothing to match


def test_a_tenant_never_sees_another_tenants_chunks(index):
    index.upsert(
        [
            chunk("globex-best", "password rotation policy password rotation", tenant="globex", doc_id="shared"),
            chunk("acme-weak", "policy", doc_id="shared"),
        ]
    )
    assert bm25(index, "password rotation policy") == ["acme-weak"]
    assert bm25(index, "password rotation", doc_ids=("shared",)) == []
    assert bm25(index, "password rotation", tenant="globex") == ["globex-best"]


def test_acl_filter_keeps_public_chunks_and_those_of_the_callers_groups(index):
    index.upsert(
        [
            chunk("public", "budget plan"),
            chunk("hr", "budget plan", acl_groups=("hr",)),
            chunk("board", "budget plan", acl_groups=("board", "execs")),
        ]
    )
    assert sorted(bm25(index, "budget")) == ["public"]
    assert sorted(bm25(index, "budget", acl_groups=("hr",))) == ["hr", "public"]
    assert sorted(bm25(index, "budget", acl_groups=("execs", "hr"))) == ["board", "hr", "public"]


def test_tag_document_and_folder_filters(index):
    index.upsert(
        [
            chunk("a", "security review", doc_id="d1", tags=("infra",), path="reports/2024/q1.pdf"),
            chunk("b", "security review", doc_id="d2", tags=("legal", "infra"), path="reports/2023/q4.pdf"),
            chunk("c", "security review", doc_id="d3", path="notes.md"),
        ]
    )
    assert sorted(bm25(index, "security", tags=("infra",))) == ["a", "b"]
    assert sorted(bm25(index, "security", tags=("legal",))) == ["b"]
    assert sorted(bm25(index, "security", doc_ids=("d1", "d3"))) == ["a", "c"]
    assert sorted(bm25(index, "security", path_prefix="reports/")) == ["a", "b"]
    assert sorted(bm25(index, "security", path_prefix="reports/2024/")) == ["a"]


def test_delete_document_and_delete_version(index):
    index.upsert(
        [
            chunk("v1-a", "alpha", doc_version="v1"),
            chunk("v1-b", "alpha", doc_version="v1"),
            chunk("v2-a", "alpha", doc_version="v2"),
            chunk("other", "alpha", doc_id="d2"),
            chunk("globex", "alpha", tenant="globex"),
        ]
    )
    assert index.delete_version("acme", "d1", "v1") == 2
    assert sorted(bm25(index, "alpha")) == ["other", "v2-a"]
    assert index.delete_document("acme", "d1") == 1
    assert index.delete_document("acme", "d1") == 0
    assert bm25(index, "alpha") == ["other"]
    assert index.count("globex") == 1


def test_replace_document_leaves_exactly_the_new_chunks(index):
    index.upsert(
        [chunk("1", "old one"), chunk("2", "old two"), chunk("3", "old three"), chunk("x", "kept", doc_id="d2")]
    )
    index.replace_document("acme", "d1", [chunk("2", "new two"), chunk("4", "new four")])
    assert index.count("acme", "d1") == 2
    assert index.get("acme", "1") is None
    assert index.get("acme", "2").text == "new two"
    assert index.get("acme", "4").text == "new four"
    assert index.count("acme", "d2") == 1
    index.replace_document("acme", "d1", [])
    assert index.count("acme", "d1") == 0


@pytest.mark.parametrize("mode", [SearchMode.VECTOR, SearchMode.HYBRID])
def test_vector_and_hybrid_search_are_unavailable_without_knn_and_pipelines(index, mode):
    index.upsert([chunk("a", "anything")])
    with pytest.raises(DependencyUnavailable):
        index.search(SearchRequest(tenant="acme", text="anything", vector=[1.0, 0.0, 0.0, 0.0], mode=mode))


def test_check_answers_while_the_server_runs(index):
    index.check()
