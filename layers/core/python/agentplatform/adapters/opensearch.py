"""SearchIndex on OpenSearch (Amazon OpenSearch Service, or any 2.19+ cluster with the k-NN and neural plugins).

search.py's semantics sent as OpenSearch requests, so this adapter and the embedded engine rank alike:
- Analysis is the index's `platform_text` analyzer: runs of letters and digits (tantivy's simple tokenizer),
  tokens of MAX_TOKEN_CHARS or more dropped, lowercase, STOPWORDS, Snowball English.
- BM25 is a `bool` query: the chunk text, plus the title, the section heading and the identifier field at the
  request's Boosts (search.Boosts.fields). The identifier field holds search.identifier_terms, whitespace-split by
  the `platform_identifiers` analyzer, as the embedded engine stores them. Vectors are a Lucene HNSW
  `knn_vector` with cosine similarity, whose score is search.vector_score. Hybrid is a `hybrid` query whose
  sub-query scores a temporary search pipeline in the same request fuses as search.fuse does
  (normalization-processor or score-ranker-processor): nothing to create beforehand, so a reader needs no
  write access and every fusion setting works without a stored pipeline per setting.
- Every filter sits inside each sub-query (a bool `filter`, the knn query's efficient `filter`), never in a
  post_filter, so a filtered search still returns its top k. The tenant term is always one of them.

Layout: one index for every tenant. A chunk's _id is its tenant and chunk_id joined (as the embedded engine
keys it), so two tenants' equal chunk ids never overwrite each other; every request carries `routing=tenant`,
so a tenant's chunks share a shard and its searches ask one shard. One shard by default: BM25's statistics
(document frequencies, average length) are per shard, and one shard counts them over the whole index, as the
embedded engine does.

Retries: bulk writes retry throttled (429) and failed (5xx, unreachable) requests and items with jittered
exponential backoff, a few times; reads fail at once with a retryable platform error and leave retrying to
the caller. The client that `connect` builds does not retry by itself, so nothing retries twice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import opensearchpy
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.wait import wait_base

from agentplatform.errors import (
    ConfigurationError,
    DependencyUnavailable,
    NotFound,
    PlatformError,
    UpstreamThrottled,
    ValidationFailed,
)
from agentplatform.search import (
    MAX_TOKEN_CHARS,
    PUBLIC_ACL,
    STOPWORDS,
    Chunk,
    Fusion,
    FusionTechnique,
    SearchHit,
    SearchMode,
    SearchRequest,
    chunk_document,
    chunk_from_document,
    require_tenant,
)

log = logging.getLogger(__name__)

ANALYZER = "platform_text"
IDENTIFIER_ANALYZER = "platform_identifiers"
# The queried name of each BM25 field: the section is a keyword (citations) with an analyzed sub-field.
_QUERY_FIELDS = {"section": "section.text"}
TIMEOUT_S = 10
BULK_BATCH = 500  # chunks per bulk request: ~5 MB with 384-dimension vectors, under every domain's payload cap
BULK_ATTEMPTS = 5
_SEP = "\x1f"  # joins tenant and chunk id into the _id; stripped from both, so no two pairs share an _id
_PAGE = 1000  # chunk ids per page when listing a document's chunks


def connect(url: str, *, region: str, sigv4: bool) -> opensearchpy.OpenSearch:
    """A client for `url`: signed with the Lambda's IAM credentials (SigV4) on AWS, plain for a local server."""
    options: dict[str, Any] = {"hosts": [url], "timeout": TIMEOUT_S, "max_retries": 0}
    if not sigv4:
        return opensearchpy.OpenSearch(**options)
    import boto3

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise ConfigurationError("no AWS credentials to sign OpenSearch requests with")
    return opensearchpy.OpenSearch(
        **options,
        http_auth=opensearchpy.AWSV4SignerAuth(credentials, region, "es"),
        connection_class=opensearchpy.RequestsHttpConnection,
    )


# What the domain's slow logs (CloudWatch, infra/cdk/search.py) record: nothing is logged without thresholds.
SLOW_LOG = {
    "search.slowlog.threshold.query.warn": "2s",
    "search.slowlog.threshold.query.info": "500ms",
    "search.slowlog.threshold.fetch.warn": "1s",
    "indexing.slowlog.threshold.index.warn": "5s",
    "indexing.slowlog.threshold.index.info": "1s",
}


def index_body(dimension: int = 384, shards: int = 1) -> dict[str, Any]:
    """Settings and mappings of the chunk index: search.py's analysis and a Lucene HNSW cosine vector field."""
    keyword = {"type": "keyword"}
    text = {"type": "text", "analyzer": ANALYZER}
    return {
        "settings": {
            "index": {"knn": True, "number_of_shards": shards, **SLOW_LOG},
            "analysis": {
                # Tokens are the runs of letters and digits, which is splitting on `[^\p{L}\p{N}]+`; written as
                # the token pattern (group 0) because osmem-server indexes a split pattern's separators instead.
                "tokenizer": {
                    "platform_words": {"type": "pattern", "pattern": r"[\p{L}\p{N}]+", "group": 0},
                    # search.identifier_terms wrote the identifier field's terms: only whitespace separates them.
                    "platform_whitespace": {"type": "pattern", "pattern": r"\S+", "group": 0},
                },
                "filter": {
                    # tantivy's remove_long drops tokens of MAX_TOKEN_CHARS or more; `length` keeps those <= max.
                    "platform_length": {"type": "length", "max": MAX_TOKEN_CHARS - 1},
                    "platform_stopwords": {"type": "stop", "stopwords": list(STOPWORDS)},
                    "platform_stemmer": {"type": "snowball", "language": "English"},
                },
                "analyzer": {
                    ANALYZER: {
                        "type": "custom",
                        "tokenizer": "platform_words",
                        "filter": ["platform_length", "lowercase", "platform_stopwords", "platform_stemmer"],
                    },
                    IDENTIFIER_ANALYZER: {
                        "type": "custom",
                        "tokenizer": "platform_whitespace",
                        "filter": ["platform_length", "lowercase"],
                    },
                },
            },
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                **{
                    name: keyword
                    for name in (
                        "chunk_id",
                        "tenant",
                        "doc_id",
                        "doc_version",
                        "path",
                        "path_prefixes",
                        "content_hash",
                        "tags",
                        "acl",
                    )
                },
                "text": text,
                "title": text,
                "section": {**keyword, "fields": {"text": text}},
                "identifiers": {"type": "text", "analyzer": IDENTIFIER_ANALYZER},
                **{name: {"type": "integer"} for name in ("page", "ordinal", "start", "end")},
                "metadata": {"type": "object", "enabled": False},  # stored for citations, never searched
                "vector": {
                    "type": "knn_vector",
                    "dimension": dimension,
                    "method": {
                        "name": "hnsw",
                        "engine": "lucene",  # the engine whose filters apply inside the graph walk
                        "space_type": "cosinesimil",  # score (1 + cos) / 2: search.vector_score
                        "parameters": {"m": 16, "ef_construction": 128},
                    },
                },
            },
        },
    }


def pipeline_body(fusion: Fusion) -> dict[str, Any]:
    """A search pipeline computing search.fuse: min-max or z-score + weighted arithmetic mean, or reciprocal rank
    fusion."""
    if fusion.technique == FusionTechnique.RRF:
        processor = {
            "score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": fusion.rank_constant}}
        }
    else:
        processor = {
            "normalization-processor": {
                "normalization": {"technique": fusion.technique.value},
                "combination": {"technique": "arithmetic_mean", "parameters": {"weights": list(fusion.weights)}},
            }
        }
    return {"phase_results_processors": [processor]}


@dataclass(frozen=True)
class _Operation:
    """One bulk action: index a chunk (with its document) or delete one."""

    action: str
    tenant: str
    chunk_id: str
    source: dict[str, Any] | None = None


class OpenSearchIndex:
    """The SearchIndex port on one OpenSearch index (see the module docstring for the layout)."""

    def __init__(
        self,
        client: opensearchpy.OpenSearch,
        index: str = "chunks",
        dimension: int = 384,
        *,
        shards: int = 1,
        retry_wait: wait_base | None = None,
    ) -> None:
        self._client = client
        self._index = index
        self._dimension = dimension
        self._shards = shards
        self._retry_wait = retry_wait or wait_random_exponential(multiplier=0.5, max=10)

    # -- SearchIndex -------------------------------------------------------------------------------------------

    def check(self) -> None:
        try:
            # HEAD on the index: within a reader's permissions (the cluster's root is not).
            self._client.indices.exists(index=self._index)
        except opensearchpy.OpenSearchException as exc:
            raise DependencyUnavailable("OpenSearch does not answer", index=self._index) from exc

    def ensure(self) -> None:
        """Create the index if it does not exist."""
        try:
            self._client.indices.create(index=self._index, body=index_body(self._dimension, self._shards))
        except opensearchpy.OpenSearchException as exc:
            # The error type is a stable code (like an AWS error code), not message text.
            if getattr(exc, "error", None) != "resource_already_exists_exception":
                raise self._error(exc, "create index") from exc

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Index the chunks in bulk requests of BULK_BATCH, each visible to searches when it returns."""
        operations = self._index_operations(chunks)
        for start in range(0, len(operations), BULK_BATCH):
            self._bulk(operations[start : start + BULK_BATCH])

    def replace_document(self, tenant: str, doc_id: str, chunks: Sequence[Chunk]) -> None:
        """One bulk request (refresh=wait_for): index the new chunks, then delete the document's other chunks.

        OpenSearch has no transactions, so readers usually, not always, see the old set or the new one. The shard
        applies a bulk's items one after another, and a scheduled refresh (every second) can fall between two of
        them: a reader may then see the new chunks next to old ones not yet deleted (never a document missing
        chunks: the new ones go first for that reason). Items resent after a throttle or a 5xx go in a later
        request, which widens that window, and a document too big for one request (the domain's payload cap,
        10 MiB on the smallest instances) is refused whole. Chunk ids listed before the bulk: a concurrent writer
        of the same document can leave chunks behind, so writers of one document must be serialized.
        """
        self.replace_documents({(tenant, doc_id): chunks})

    def replace_documents(self, documents: Mapping[tuple[str, str], Sequence[Chunk]]) -> None:
        """`replace_document` of many documents in one bulk request: every document's new chunks first, then
        the stale ones' deletes, so a reader never finds a document missing chunks."""
        operations: list[_Operation] = []
        stale: list[_Operation] = []
        for (tenant, doc_id), chunks in documents.items():
            require_tenant(tenant)
            if any(c.tenant != tenant or c.doc_id != doc_id for c in chunks):
                raise ValidationFailed("replace_documents takes each document's own chunks")
            indexed = self._index_operations(chunks)
            keep = {op.chunk_id for op in indexed}
            operations += indexed
            stale += [
                _Operation("delete", tenant, c) for c in self._document_chunk_ids(tenant, doc_id) if c not in keep
            ]
        self._bulk([*operations, *stale])

    def delete_document(self, tenant: str, doc_id: str) -> int:
        return self._delete_where(tenant, [_term("doc_id", doc_id)])

    def delete_version(self, tenant: str, doc_id: str, doc_version: str) -> int:
        return self._delete_where(tenant, [_term("doc_id", doc_id), _term("doc_version", doc_version)])

    def search(self, request: SearchRequest) -> list[SearchHit]:
        tenant = require_tenant(request.tenant)
        filters = self._filters(request)
        if request.mode == SearchMode.BM25:
            query = self._bm25_query(request, filters)
        elif request.mode == SearchMode.VECTOR:
            query = self._knn_query(request, filters)
        else:
            query = {"hybrid": {"queries": [self._bm25_query(request, filters), self._knn_query(request, filters)]}}
        body: dict[str, Any] = {"size": request.depth, "query": query, "_source": {"excludes": ["vector"]}}
        if request.mode == SearchMode.HYBRID:
            body["search_pipeline"] = pipeline_body(request.fusion)
        # A cluster that rejects a knn or hybrid query (no k-NN or neural plugin: osmem-server) lacks a capability;
        # one that rejects a BM25 query was set up by something other than ensure().
        rejected = ConfigurationError if request.mode == SearchMode.BM25 else DependencyUnavailable
        with self._translated(f"{request.mode} search", rejected=rejected):
            response = self._client.search(index=self._index, body=body, routing=tenant)
        hits = []
        # Hybrid asks each sub-query for `candidates` results so fusion sees them all, as the embedded engine does.
        for hit in response["hits"]["hits"][: request.top_k]:
            score = float(hit["_score"])
            hits.append(
                SearchHit(
                    chunk_from_document(hit["_source"]),
                    score,
                    bm25=score if request.mode == SearchMode.BM25 else None,
                    vector=score if request.mode == SearchMode.VECTOR else None,
                )
            )
        return hits

    def get(self, tenant: str, chunk_id: str) -> Chunk | None:
        require_tenant(tenant)
        with self._translated("get"):
            response = self._client.get(index=self._index, id=_doc_id(tenant, chunk_id), routing=tenant, ignore=404)
        if not response.get("found"):  # a missing chunk (or index) answers 404, returned here instead of raised
            return None
        source = response["_source"]
        if source.get("tenant") != tenant:
            return None
        return chunk_from_document(source, source.get("vector", []))

    def count(self, tenant: str, doc_id: str | None = None) -> int:
        require_tenant(tenant)
        clauses = [_term("tenant", tenant)] + ([_term("doc_id", doc_id)] if doc_id else [])
        with self._translated("count"):
            response = self._client.count(
                index=self._index, body={"query": {"bool": {"filter": clauses}}}, routing=tenant
            )
        return int(response["count"])

    # -- queries -----------------------------------------------------------------------------------------------

    @staticmethod
    def _filters(request: SearchRequest) -> list[dict[str, Any]]:
        filters = request.filters
        clauses = [_term("tenant", request.tenant)]
        if filters.doc_ids:
            clauses.append({"terms": {"doc_id": list(filters.doc_ids)}})
        if filters.tags:
            clauses.append({"terms": {"tags": list(filters.tags)}})
        if filters.path_prefix:
            clauses.append(_term("path_prefixes", filters.path_prefix))
        clauses.append({"terms": {"acl": [PUBLIC_ACL, *filters.acl_groups]}})
        return clauses

    @staticmethod
    def _bm25_query(request: SearchRequest, filters: list[dict[str, Any]]) -> dict[str, Any]:
        should = []
        for field, text, boost in request.boosts.fields(request.text):
            match: dict[str, Any] = {"query": text} if boost == 1.0 else {"query": text, "boost": boost}
            should.append({"match": {_QUERY_FIELDS.get(field, field): match}})
        return {
            "bool": {
                "should": should,
                "minimum_should_match": 1,
                "filter": filters,
            }
        }

    def _knn_query(self, request: SearchRequest, filters: list[dict[str, Any]]) -> dict[str, Any]:
        vector = [float(x) for x in request.vector or ()]
        if len(vector) != self._dimension:
            raise ValidationFailed(f"the query vector must have {self._dimension} numbers")
        return {"knn": {"vector": {"vector": vector, "k": request.depth, "filter": {"bool": {"filter": filters}}}}}

    # -- writes ------------------------------------------------------------------------------------------------

    def _index_operations(self, chunks: Sequence[Chunk]) -> list[_Operation]:
        latest = {(c.tenant, c.chunk_id): c for c in chunks}  # a chunk id twice in one batch: the last one wins
        operations = []
        for chunk in latest.values():
            require_tenant(chunk.tenant)
            source = chunk_document(chunk)
            source["vector"] = self._unit_vector(chunk)
            operations.append(_Operation("index", chunk.tenant, chunk.chunk_id, source))
        return operations

    def _unit_vector(self, chunk: Chunk) -> list[float]:
        """The chunk's vector, normalized as the embedded engine stores it (get returns the same numbers)."""
        if len(chunk.vector) != self._dimension:
            raise ValidationFailed(f"chunk {chunk.chunk_id}: the vector must have {self._dimension} numbers")
        norm = math.sqrt(math.fsum(x * x for x in chunk.vector))
        if not math.isfinite(norm) or norm == 0.0:
            raise ValidationFailed(f"chunk {chunk.chunk_id}: the vector must be finite and non-zero")
        return [float(x) / norm for x in chunk.vector]

    def _document_chunk_ids(self, tenant: str, doc_id: str) -> list[str]:
        """Every chunk id the document has now, paged by chunk id (ids only, no sources)."""
        query = {"bool": {"filter": [_term("tenant", tenant), _term("doc_id", doc_id)]}}
        ids: list[str] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": _PAGE,
                "query": query,
                "_source": ["chunk_id"],
                "sort": [{"chunk_id": "asc"}],
            }
            if after is not None:
                body["search_after"] = after
            with self._translated("list document chunks"):
                hits = self._client.search(index=self._index, body=body, routing=tenant)["hits"]["hits"]
            ids.extend(hit["_source"]["chunk_id"] for hit in hits)
            if len(hits) < _PAGE:
                return ids
            after = hits[-1]["sort"]

    def _bulk(self, operations: list[_Operation]) -> None:
        """Send the operations in one bulk request; resend those refused for a throttle or a server error."""
        pending = operations
        retrying = Retrying(
            stop=stop_after_attempt(BULK_ATTEMPTS),
            wait=self._retry_wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, PlatformError) and exc.retryable),
            before_sleep=lambda state: log.warning(
                "opensearch bulk retry", extra={"attempt": state.attempt_number, "operations": len(pending)}
            ),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                refused = self._send(pending)
                if refused:
                    pending = [op for op, _ in refused]
                    chunk_ids = [op.chunk_id for op in pending]
                    if any(status == 429 for _, status in refused):
                        raise UpstreamThrottled("OpenSearch throttled bulk items", chunk_ids=chunk_ids)
                    raise DependencyUnavailable("OpenSearch failed bulk items", chunk_ids=chunk_ids)

    def _send(self, operations: list[_Operation]) -> list[tuple[_Operation, int]]:
        """One bulk request; return the items refused for a throttle or a server error, with their statuses.
        Items refused for any other reason (a mapping error) raise ValidationFailed naming their chunks."""
        if not operations:
            return []
        body: list[dict[str, Any]] = []
        for op in operations:
            meta = {"_index": self._index, "_id": _doc_id(op.tenant, op.chunk_id), "routing": op.tenant}
            body.append({op.action: meta})
            if op.source is not None:
                body.append(op.source)
        with self._translated("bulk"):
            response = self._client.bulk(body=body, refresh="wait_for")
        if not response.get("errors"):
            return []
        retry: list[tuple[_Operation, int]] = []
        refused: list[str] = []
        for op, item in zip(operations, response["items"], strict=True):
            result = item[op.action]
            if "error" not in result:  # deleting a chunk that is already gone answers 404 without an error
                continue
            status = int(result.get("status", 0))
            if status == 429 or status >= 500:
                retry.append((op, status))
            else:
                refused.append(op.chunk_id)
        if refused:
            raise ValidationFailed(f"OpenSearch refused chunks {', '.join(refused)}", chunk_ids=refused)
        return retry

    def _delete_where(self, tenant: str, clauses: list[dict[str, Any]]) -> int:
        require_tenant(tenant)
        body = {"query": {"bool": {"filter": [_term("tenant", tenant), *clauses]}}}
        with self._translated("delete by query"):
            response = self._client.delete_by_query(index=self._index, body=body, refresh=True, routing=tenant)
        if response.get("failures"):
            raise DependencyUnavailable("OpenSearch failed to delete some chunks", index=self._index)
        return int(response["deleted"])

    @contextmanager
    def _translated(self, action: str, *, rejected: type[PlatformError] = ConfigurationError) -> Iterator[None]:
        try:
            yield
        except opensearchpy.OpenSearchException as exc:
            raise self._error(exc, action, rejected) from exc

    def _error(self, exc: Exception, action: str, rejected: type[PlatformError] = ConfigurationError) -> PlatformError:
        """The platform error for an opensearch-py failure, by HTTP status (never by message text).

        429 -> UpstreamThrottled; 404 -> NotFound; 409 (a concurrent write), 5xx, unreachable, unreadable ->
        DependencyUnavailable; any other 4xx -> `rejected`: our requests are well-formed, so the cluster or the
        index is not what ensure() sets up, or the role lacks a permission.
        """
        status = getattr(exc, "status_code", None)
        if not isinstance(status, int):  # no HTTP answer (refused, DNS, timeout: "N/A"), or one it could not read
            return DependencyUnavailable(f"OpenSearch did not answer ({action})", index=self._index)
        context = {"index": self._index, "status": status}
        if status == 429:
            return UpstreamThrottled(f"OpenSearch throttled the request ({action})", **context)
        if status == 404:
            return NotFound(f"OpenSearch: not found ({action})", **context)
        if status == 409 or status >= 500:
            return DependencyUnavailable(f"OpenSearch failed ({action}): {status}", **context)
        return rejected(f"OpenSearch rejected the request ({action}): {status}", **context)


def _doc_id(tenant: str, chunk_id: str) -> str:
    return tenant.replace(_SEP, "") + _SEP + chunk_id.replace(_SEP, "")


def _term(field: str, value: str) -> dict[str, Any]:
    return {"term": {field: value}}
