"""The embedded search engine: tantivy for BM25, exact or HNSW (hnswlib) vector search, OpenSearch's fusion.

The local default of the SearchIndex port, persisted under the local data folder. Why these pieces:
- tantivy is a real inverted-index engine (Lucene's BM25, segments, commits) with a Snowball stemmer and
  stopword filter, ~2 ms for a filtered top-100 over 100k chunks on this machine.
- Vectors live in memory per tenant, loaded from tantivy's stored fields at open. A tenant's slice, after its
  filters, is searched exactly (numpy, recall 1.0) up to `exact_max_rows`; above that an hnswlib graph per
  tenant answers, with the filter applied inside the graph walk. Filtering a shared ANN graph and then taking
  top-k loses the tenant's best chunks (DESIGN.md measured recall 0.23); partitioning by tenant does not.
- Scores and fusion are search.py's, the same as the OpenSearch adapter's.

Consistency: one lock orders writers and readers, and tantivy's commit publishes a batch at once, so a reader
sees a replace_document before or after, never half of it. One process owns an index directory at a time
(tantivy's writer lock); the local runtime holds it for its handlers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tantivy

from agentplatform.errors import ConfigurationError, DependencyUnavailable, ValidationFailed
from agentplatform.search import (
    MAX_TOKEN_CHARS,
    PUBLIC_ACL,
    STOPWORDS,
    Chunk,
    SearchFilters,
    SearchHit,
    SearchMode,
    SearchRequest,
    chunk_document,
    chunk_from_document,
    fuse,
    require_tenant,
    vector_score,
)

log = logging.getLogger(__name__)

ANALYZER = "platform_text"
IDENTIFIER_ANALYZER = "platform_identifiers"
_SEP = "\x1f"  # joins tenant and ids into one term: no id can contain it (it is stripped on the way in)
_WRITER_HEAP = 64_000_000


def text_analyzer() -> tantivy.TextAnalyzer:
    """search.py's analysis in tantivy: split on non-alphanumerics, lowercase, stopwords, Snowball English."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.custom_stopword(list(STOPWORDS)))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def identifier_analyzer() -> tantivy.TextAnalyzer:
    """The identifier field's analysis: search.identifier_terms wrote its terms, so only split on whitespace."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .build()
    )


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("vid", stored=True, indexed=True, fast=True)  # row key shared with the vectors
    for keyword in ("chunk_key", "doc_key", "tenant", "doc_version", "doc_id", "path_prefixes", "tags", "acl"):
        builder.add_text_field(keyword, stored=False, tokenizer_name="raw")
    builder.add_text_field("text", stored=False, tokenizer_name=ANALYZER)
    builder.add_text_field("title", stored=False, tokenizer_name=ANALYZER)
    builder.add_text_field("section", stored=False, tokenizer_name=ANALYZER)
    builder.add_text_field("identifiers", stored=False, tokenizer_name=IDENTIFIER_ANALYZER)
    builder.add_bytes_field("source", stored=True)  # the chunk as JSON: what a hit returns
    builder.add_bytes_field("vector", stored=True)  # float32, to rebuild the in-memory vectors at open
    return builder.build()


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    out = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    out[: len(array)] = array
    return out


def _key(*parts: str) -> str:
    return _SEP.join(p.replace(_SEP, "") for p in parts)


class TenantVectors:
    """One tenant's vectors: a growable matrix, tombstones, postings for the filter fields, and an HNSW graph
    once the slice outgrows exact search."""

    def __init__(self, dimension: int, exact_max_rows: int) -> None:
        self.dimension = dimension
        self.exact_max_rows = exact_max_rows
        self.matrix = np.zeros((0, dimension), dtype=np.float32)
        self.vids = np.zeros(0, dtype=np.int64)
        self.alive = np.zeros(0, dtype=bool)
        self.size = 0
        self.row_of: dict[int, int] = {}
        self.postings: dict[str, dict[str, set[int]]] = {"doc_id": {}, "tags": {}, "path_prefixes": {}, "acl": {}}
        self.posted: dict[int, list[tuple[str, str]]] = {}  # row -> where it is posted, to unpost it cheaply
        # hnswlib.Index over row numbers, built at the first search after the slice outgrows exact search;
        # rows added since wait in `pending` and join the graph in one batch at the next search.
        self.graph: Any = None
        self.pending: set[int] = set()

    @property
    def live(self) -> int:
        return len(self.row_of)

    def add(self, vid: int, chunk: Chunk, vector: np.ndarray) -> None:
        if self.size == len(self.matrix):
            capacity = max(64, 2 * len(self.matrix))
            self.matrix = _grown(self.matrix, capacity)
            self.vids = _grown(self.vids, capacity)
            self.alive = _grown(self.alive, capacity)
        row = self.size
        self.size += 1
        self.matrix[row] = vector
        self.vids[row] = vid
        self.alive[row] = True
        self.row_of[vid] = row
        terms = [("doc_id", chunk.doc_id)]
        terms += [("tags", t) for t in chunk.tags] + [("path_prefixes", p) for p in chunk.path_prefixes()]
        terms += [("acl", a) for a in chunk.acl_terms()]
        for name, value in terms:
            self.postings[name].setdefault(value, set()).add(row)
        self.posted[row] = terms
        if self.graph is not None:
            self.pending.add(row)

    def remove(self, vid: int) -> None:
        row = self.row_of.pop(vid, None)
        if row is None:
            return
        self.alive[row] = False
        for name, value in self.posted.pop(row):
            self.postings[name][value].discard(row)
        if row in self.pending:
            self.pending.discard(row)
        elif self.graph is not None:
            self.graph.mark_deleted(row)

    def all_public(self) -> bool:
        return len(self.postings["acl"].get(PUBLIC_ACL, ())) == self.live

    def candidates(self, filters: SearchFilters) -> np.ndarray | None:
        """The rows the filters allow (None: every live row), computed from postings before any top-k."""
        sets: list[set[int]] = []
        if not self.all_public():  # O(1); the union below copies every public row
            acl = self._union("acl", [PUBLIC_ACL, *filters.acl_groups])
            if len(acl) < self.live:
                sets.append(acl)
        if filters.doc_ids:
            sets.append(self._union("doc_id", filters.doc_ids))
        if filters.tags:
            sets.append(self._union("tags", filters.tags))
        if filters.path_prefix:
            sets.append(self.postings["path_prefixes"].get(filters.path_prefix, set()))
        if not sets:
            return None
        allowed = set.intersection(*sorted(sets, key=len))
        return np.fromiter(allowed, dtype=np.int64, count=len(allowed))

    def nearest(self, query: np.ndarray, k: int, rows: np.ndarray | None) -> list[tuple[int, float]]:
        """Top-k (vid, cosine) among `rows` (None: all live rows)."""
        count = self.live if rows is None else len(rows)
        if count == 0:
            return []
        k = min(k, count)
        if count > self.exact_max_rows:
            self._sync_graph()
            allowed = None if rows is None else set(rows.tolist())
            self.graph.set_ef(max(2 * k, 128))
            try:
                labels, distances = self.graph.knn_query(
                    # One query: spawning a thread per core for it costs more than the walk.
                    query[None, :],
                    k=k,
                    num_threads=1,
                    filter=None if allowed is None else allowed.__contains__,
                )
                return [(int(self.vids[r]), 1.0 - float(d)) for r, d in zip(labels[0], distances[0], strict=True)]
            except RuntimeError:  # the walk found fewer than k under the filter: answer exactly instead
                log.debug("hnsw search fell back to exact", extra={"k": k, "rows": count})
        if rows is None and self.live == self.size:  # no tombstones, no filter: every row counts
            sims = self.matrix[: self.size] @ query
            top = np.argpartition(-sims, k - 1)[:k] if k < self.size else np.arange(self.size)
            top = top[np.argsort(-sims[top], kind="stable")]
            return [(int(v), float(c)) for v, c in zip(self.vids[top], sims[top], strict=True)]
        if rows is None or len(rows) * 4 > self.size:
            # Most rows qualify: one product over the whole matrix (a view) beats copying the rows out.
            sims = self.matrix[: self.size] @ query
            allowed = self.alive[: self.size] if rows is None else np.zeros(self.size, dtype=bool)
            if rows is not None:
                allowed[rows] = True
            sims = np.where(allowed, sims, -np.inf)
            top = np.argpartition(-sims, k - 1)[:k] if k < self.size else np.arange(self.size)
            top = top[np.argsort(-sims[top], kind="stable")]
            return [(int(self.vids[r]), float(sims[r])) for r in top if allowed[r]]
        sims = self.matrix[rows] @ query
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(self.vids[rows[i]]), float(sims[i])) for i in top]

    def _union(self, field: str, values: Iterable[str]) -> set[int]:
        out: set[int] = set()
        for value in values:
            out |= self.postings[field].get(value, set())
        return out

    def _sync_graph(self) -> None:
        """Bring the graph up to date: built over the live rows the first time, then the pending rows in one
        batch (hnswlib adds a batch on every core)."""
        import hnswlib

        if self.graph is None:
            self.graph = hnswlib.Index(space="ip", dim=self.dimension)  # normalized vectors: ip = cosine
            self.graph.init_index(max_elements=max(1024, 2 * self.size), ef_construction=128, M=16)
            self.pending = set(np.flatnonzero(self.alive[: self.size]).tolist())
        rows = sorted(r for r in self.pending if self.alive[r])
        self.pending = set()
        if rows:
            if self.size > self.graph.get_max_elements():
                self.graph.resize_index(2 * self.size)
            self.graph.add_items(self.matrix[rows], rows)


class EmbeddedSearchIndex:
    """SearchIndex on tantivy + numpy/hnswlib, persisted at `path` (None: in memory, for tests)."""

    def __init__(self, path: Path | None, *, dimension: int = 384, exact_max_rows: int = 20_000) -> None:
        self.path = path
        self.dimension = dimension
        self.exact_max_rows = exact_max_rows
        self._lock = threading.RLock()
        self._schema = _schema()
        self._analyzers = {ANALYZER: text_analyzer(), IDENTIFIER_ANALYZER: identifier_analyzer()}
        try:
            if path is not None:
                path.mkdir(parents=True, exist_ok=True)
                self._index = tantivy.Index(self._schema, path=str(path), reuse=True)
            else:
                self._index = tantivy.Index(self._schema)
            for name, analyzer in self._analyzers.items():
                self._index.register_tokenizer(name, analyzer)
            self._writer = self._index.writer(heap_size=_WRITER_HEAP, num_threads=1)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot open the search index at {path}: {exc}", path=str(path)) from exc
        self._tenants: dict[str, TenantVectors] = {}
        self._next_vid = 0
        self._searcher = self._index.searcher()  # a snapshot, replaced at each commit
        self._load()

    # -- SearchIndex -------------------------------------------------------------------------------------------

    def check(self) -> None:
        with self._lock:
            if self._writer is None:
                raise DependencyUnavailable("the embedded search index is closed")

    def ensure(self) -> None:
        """The index exists from construction on (tantivy creates it on open)."""

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        latest = {(c.tenant, c.chunk_id): c for c in chunks}  # a chunk id twice in one batch: the last one wins
        chunks = list(latest.values())
        vectors = self._vectors(chunks)
        with self._lock:
            for chunk, vector in zip(chunks, vectors, strict=True):
                self._delete_term("chunk_key", _key(chunk.tenant, chunk.chunk_id))
                self._add(chunk, vector)
            self._commit()

    def replace_document(self, tenant: str, doc_id: str, chunks: Sequence[Chunk]) -> None:
        self.replace_documents({(tenant, doc_id): chunks})

    def replace_documents(self, documents: Mapping[tuple[str, str], Sequence[Chunk]]) -> None:
        replacements = []
        for (tenant, doc_id), chunks in documents.items():
            require_tenant(tenant)
            if any(c.tenant != tenant or c.doc_id != doc_id for c in chunks):
                raise ValidationFailed("replace_documents takes each document's own chunks")
            unique = list({c.chunk_id: c for c in chunks}.values())
            replacements.append((tenant, doc_id, unique, self._vectors(unique)))
        with self._lock:
            for tenant, doc_id, chunks, vectors in replacements:
                self._delete_where(self._doc_query(tenant, doc_id), tenant)
                for chunk, vector in zip(chunks, vectors, strict=True):
                    self._add(chunk, vector)
            self._commit()  # one commit: readers see each document's old chunks or its new ones

    def delete_document(self, tenant: str, doc_id: str) -> int:
        require_tenant(tenant)
        with self._lock:
            removed = self._delete_where(self._doc_query(tenant, doc_id), tenant)
            self._commit()
            return removed

    def delete_version(self, tenant: str, doc_id: str, doc_version: str) -> int:
        require_tenant(tenant)
        query = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Must, self._doc_query(tenant, doc_id)),
                (tantivy.Occur.Must, self._term("doc_version", doc_version)),
            ]
        )
        with self._lock:
            removed = self._delete_where(query, tenant)
            self._commit()
            return removed

    def search(self, request: SearchRequest) -> list[SearchHit]:
        with self._lock:
            searcher = self._searcher
            bm25: list[tuple[str, float]] = []
            vector: list[tuple[str, float]] = []
            addresses: dict[str, Any] = {}  # vid -> DocAddress, known for BM25 hits
            if request.mode != SearchMode.VECTOR:
                bm25 = self._bm25(searcher, request, addresses)
            if request.mode != SearchMode.BM25:
                vector = [(str(vid), vector_score(cosine)) for vid, cosine in self._nearest(request)]
            if request.mode == SearchMode.BM25:
                ranked = bm25
            elif request.mode == SearchMode.VECTOR:
                ranked = vector
            else:
                ranked = fuse(bm25, vector, request.fusion)
            top = ranked[: request.top_k]
            self._locate(searcher, [key for key, _ in top if key not in addresses], addresses)
            raw_bm25, raw_vector = dict(bm25), dict(vector)
            return [
                SearchHit(self._stored_chunk(searcher, addresses[key]), score, raw_bm25.get(key), raw_vector.get(key))
                for key, score in top
            ]

    def get(self, tenant: str, chunk_id: str) -> Chunk | None:
        require_tenant(tenant)
        with self._lock:
            searcher = self._index.searcher()
            found = searcher.search(self._term("chunk_key", _key(tenant, chunk_id)), limit=1).hits
            if not found:
                return None
            document = searcher.doc(found[0][1])
            vector = np.frombuffer(document.get_first("vector"), dtype=np.float32)
            return chunk_from_document(json.loads(document.get_first("source")), vector.tolist())

    def count(self, tenant: str, doc_id: str | None = None) -> int:
        require_tenant(tenant)
        query = self._doc_query(tenant, doc_id) if doc_id else self._term("tenant", tenant)
        with self._lock:
            return self._index.searcher().search(query, limit=1, count=True).count or 0

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.wait_merging_threads()  # releases the directory lock
                self._writer = None

    # -- internals ---------------------------------------------------------------------------------------------

    def _vectors(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        out = []
        for chunk in chunks:
            require_tenant(chunk.tenant)
            vector = np.asarray(chunk.vector, dtype=np.float32)
            if vector.shape != (self.dimension,):
                raise ValidationFailed(f"chunk {chunk.chunk_id}: the vector must have {self.dimension} numbers")
            norm = float(np.linalg.norm(vector))
            if not np.isfinite(norm) or norm == 0.0:
                raise ValidationFailed(f"chunk {chunk.chunk_id}: the vector must be finite and non-zero")
            out.append(vector / norm)
        return out

    def _add(self, chunk: Chunk, vector: np.ndarray) -> None:
        vid = self._next_vid
        self._next_vid += 1
        document = tantivy.Document()
        document.add_integer("vid", vid)
        document.add_text("chunk_key", _key(chunk.tenant, chunk.chunk_id))
        document.add_text("doc_key", _key(chunk.tenant, chunk.doc_id))
        document.add_text("tenant", chunk.tenant)
        document.add_text("doc_id", chunk.doc_id)
        document.add_text("doc_version", chunk.doc_version)
        keywords = {"path_prefixes": chunk.path_prefixes(), "tags": chunk.tags, "acl": chunk.acl_terms()}
        for name, values in keywords.items():
            for value in values:
                document.add_text(name, value)
        document.add_text("text", chunk.text)
        document.add_text("title", chunk.title)
        document.add_text("section", chunk.section)
        source = chunk_document(chunk)
        document.add_text("identifiers", source["identifiers"])
        document.add_bytes("source", json.dumps(source).encode())
        document.add_bytes("vector", vector.astype(np.float32).tobytes())
        self._writer.add_document(document)
        self._tenant(chunk.tenant).add(vid, chunk, vector)

    def _tenant(self, tenant: str) -> TenantVectors:
        if tenant not in self._tenants:
            self._tenants[tenant] = TenantVectors(self.dimension, self.exact_max_rows)
        return self._tenants[tenant]

    def _delete_term(self, field: str, value: str) -> None:
        searcher = self._index.searcher()
        query = self._term(field, value)
        self._forget(searcher, query, tenant=value.split(_SEP, 1)[0])
        self._writer.delete_documents_by_term(field, value)

    def _delete_where(self, query: tantivy.Query, tenant: str) -> int:
        removed = self._forget(self._index.searcher(), query, tenant)
        self._writer.delete_documents_by_query(query)
        return removed

    def _forget(self, searcher: tantivy.Searcher, query: tantivy.Query, tenant: str) -> int:
        """Drop the vectors of the committed documents matching `query`; return how many there were."""
        total = searcher.search(query, limit=1, count=True).count or 0
        if not total:
            return 0
        hits = searcher.search(query, limit=total).hits
        vectors = self._tenants.get(tenant)
        for vid in searcher.fast_field_values("vid", [address for _, address in hits]):
            if vectors is not None:
                vectors.remove(int(vid))
        return total

    def _commit(self) -> None:
        self._writer.commit()
        self._index.reload()
        self._searcher = self._index.searcher()

    def _term(self, field: str, value: str) -> tantivy.Query:
        return tantivy.Query.term_query(self._schema, field, value)

    def _doc_query(self, tenant: str, doc_id: str) -> tantivy.Query:
        return self._term("doc_key", _key(tenant, doc_id))

    def _filter_clauses(self, request: SearchRequest) -> list[tuple[tantivy.Occur, tantivy.Query]]:
        filters = request.filters
        clauses = [self._term("tenant", require_tenant(request.tenant))]
        vectors = self._tenants.get(request.tenant)
        if vectors is not None and not vectors.all_public():  # every chunk public: the ACL clause passes all
            clauses.append(tantivy.Query.term_set_query(self._schema, "acl", [PUBLIC_ACL, *filters.acl_groups]))
        if filters.doc_ids:
            clauses.append(tantivy.Query.term_set_query(self._schema, "doc_id", list(filters.doc_ids)))
        if filters.tags:
            clauses.append(tantivy.Query.term_set_query(self._schema, "tags", list(filters.tags)))
        if filters.path_prefix:
            clauses.append(self._term("path_prefixes", filters.path_prefix))
        # Filters match or not; they add nothing to the score (OpenSearch's bool `filter`).
        return [(tantivy.Occur.Must, tantivy.Query.const_score_query(c, 0.0)) for c in clauses]

    def _bm25(
        self, searcher: tantivy.Searcher, request: SearchRequest, addresses: dict[str, Any]
    ) -> list[tuple[str, float]]:
        should = []
        analyzed: dict[tuple[str, str], list[str]] = {}  # text, title and section share the query's analysis
        for field, text, boost in request.boosts.fields(request.text):
            name = IDENTIFIER_ANALYZER if field == "identifiers" else ANALYZER
            if (name, text) not in analyzed:
                analyzed[(name, text)] = self._analyzers[name].analyze(text)
            terms = [tantivy.Query.term_query(self._schema, field, t) for t in analyzed[(name, text)]]
            if terms:
                match = tantivy.Query.boolean_query([(tantivy.Occur.Should, t) for t in terms])
                weighted = match if boost == 1.0 else tantivy.Query.boost_query(match, boost)
                should.append((tantivy.Occur.Should, weighted))
        if not should:
            return []
        relevance = tantivy.Query.boolean_query(should)
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, relevance), *self._filter_clauses(request)])
        hits = searcher.search(query, limit=request.depth, count=False).hits
        vids = searcher.fast_field_values("vid", [address for _, address in hits])
        out = []
        for (score, address), vid in zip(hits, vids, strict=True):
            addresses[str(vid)] = address
            out.append((str(vid), float(score)))
        return out

    def _nearest(self, request: SearchRequest) -> list[tuple[int, float]]:
        vectors = self._tenants.get(require_tenant(request.tenant))
        if vectors is None:
            return []
        query = np.asarray(request.vector, dtype=np.float32)
        if query.shape != (self.dimension,):
            raise ValidationFailed(f"the query vector must have {self.dimension} numbers")
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        rows = vectors.candidates(request.filters)
        return vectors.nearest(query, request.depth, rows)

    def _locate(self, searcher: tantivy.Searcher, keys: list[str], addresses: dict[str, Any]) -> None:
        """Find the documents of vector-only hits by vid, in one query."""
        if not keys:
            return
        query = tantivy.Query.term_set_query(self._schema, "vid", [int(k) for k in keys])
        found = [address for _, address in searcher.search(query, limit=len(keys), count=False).hits]
        for vid, address in zip(searcher.fast_field_values("vid", found), found, strict=True):
            addresses[str(vid)] = address

    @staticmethod
    def _stored_chunk(searcher: tantivy.Searcher, address: Any) -> Chunk:
        return chunk_from_document(json.loads(searcher.doc(address).get_first("source")))

    def _load(self) -> None:
        """Rebuild the in-memory vectors from the committed documents (a restart, or a reopened folder)."""
        searcher = self._index.searcher()
        total = searcher.num_docs
        if not total:
            return
        hits = searcher.search(tantivy.Query.all_query(), limit=total, count=False).hits
        for _, address in hits:
            document = searcher.doc(address)
            vid = int(document.get_first("vid"))
            chunk = chunk_from_document(json.loads(document.get_first("source")))
            vector = np.frombuffer(document.get_first("vector"), dtype=np.float32)
            self._tenant(chunk.tenant).add(vid, chunk, vector)
            self._next_vid = max(self._next_vid, vid + 1)
        log.info("search index loaded", extra={"chunks": total, "tenants": len(self._tenants)})
