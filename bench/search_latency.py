"""Embedded search latency at 100,000 chunks, side by side with a bare baseline in the same run.

The engine (EmbeddedSearchIndex.search: hybrid, top 10 of 100 candidates per side, min-max fusion, hits with
their stored chunks) against the same libraries called directly with no service code: a tantivy index with
the same analyzer and a tenant filter (loaded in the same commits, so both have the same segments), numpy
exact search per tenant (or hnswlib over a large tenant), the same fusion function, the top 10 stored
documents fetched. Query embedding is excluded from both (vectors are given).

Two layouts: 20 tenants x 5,000 chunks (each tenant's slice is searched exactly), and one tenant with all
100,000 (the engine's HNSW path). Texts are sentences drawn from Cranfield abstracts; vectors are clustered
random unit vectors (embedding 100,000 texts on this machine would take hours), queries are Cranfield queries.
Targets: engine p95 <= 1.2 x baseline p95, and < 30 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import tantivy

from agentplatform.adapters.local.search import ANALYZER, EmbeddedSearchIndex, text_analyzer
from agentplatform.search import TITLE_BOOST, Chunk, SearchRequest, fuse, vector_score
from bench import cranfield
from bench.common import RESULTS, machine, rss_mb

DIM = 384
TOP_K, CANDIDATES = 10, 100
BATCH = 1000  # chunks per commit, for both systems


def corpus(n: int, tenants: int, seed: int = 7) -> tuple[list[Chunk], np.ndarray]:
    rng = random.Random(seed)  # noqa: S311 - sampling benchmark text, not secrets
    sentences = [s.strip() for d in cranfield.documents() for s in d.text.split(" .") if len(s.split()) > 4]
    titles = [d.title for d in cranfield.documents()]
    generator = np.random.default_rng(seed)
    centroids = generator.standard_normal((1000, DIM)).astype(np.float32)
    vectors = centroids[generator.integers(0, 1000, n)] + 0.6 * generator.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        Chunk(
            chunk_id=f"c{i}",
            tenant=f"t{i % tenants}",
            doc_id=f"d{i // 4}",
            doc_version="1",
            text=" . ".join(rng.sample(sentences, 3)),
            title=rng.choice(titles),
            path=f"docs/d{i // 4}.txt",
            ordinal=i % 4,
            vector=(),
        )
        for i in range(n)
    ]
    return chunks, vectors


def query_set(count: int, tenants: int, seed: int = 11) -> list[tuple[str, str, np.ndarray]]:
    generator = np.random.default_rng(seed)
    texts = [text for _, text in cranfield.queries()]
    out = []
    for i in range(count):
        vector = generator.standard_normal(DIM).astype(np.float32)
        out.append((f"t{i % tenants}", texts[i % len(texts)], vector / np.linalg.norm(vector)))
    return out


class Bare:
    """The baseline: tantivy + numpy (or hnswlib) + inline min-max fusion, nothing else."""

    def __init__(self, chunks: list[Chunk], vectors: np.ndarray, exact_max_rows: int) -> None:
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("row", stored=True, indexed=True, fast=True)
        builder.add_text_field("tenant", tokenizer_name="raw")
        builder.add_text_field("text", stored=True, tokenizer_name=ANALYZER)
        builder.add_text_field("title", stored=True, tokenizer_name=ANALYZER)
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema)
        self.analyzer = text_analyzer()
        self.index.register_tokenizer(ANALYZER, self.analyzer)
        writer = self.index.writer(heap_size=64_000_000, num_threads=1)
        for row, chunk in enumerate(chunks):
            writer.add_document(tantivy.Document(row=row, tenant=chunk.tenant, text=chunk.text, title=chunk.title))
            if (row + 1) % BATCH == 0:  # committed as the engine's ingestion commits: the same segments
                writer.commit()
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()
        self.searcher = self.index.searcher()
        self.rows: dict[str, np.ndarray] = {}
        for tenant in sorted({c.tenant for c in chunks}):
            self.rows[tenant] = np.array([i for i, c in enumerate(chunks) if c.tenant == tenant], dtype=np.int64)
        self.matrices = {tenant: vectors[rows] for tenant, rows in self.rows.items()}
        self.graphs: dict[str, Any] = {}
        for tenant, rows in self.rows.items():
            if len(rows) > exact_max_rows:
                graph = hnswlib.Index(space="ip", dim=DIM)
                graph.init_index(max_elements=len(rows), ef_construction=128, M=16)
                graph.set_num_threads(1)
                graph.add_items(self.matrices[tenant], np.arange(len(rows)))
                graph.set_ef(2 * CANDIDATES)
                self.graphs[tenant] = graph

    def search(self, tenant: str, text: str, vector: np.ndarray) -> list[tuple[str, str]]:
        tokens = self.analyzer.analyze(text)

        def match(field: str) -> tantivy.Query:
            terms = [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, field, t)) for t in tokens]
            return tantivy.Query.boolean_query(terms)

        relevance = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, match("text")),
                (tantivy.Occur.Should, tantivy.Query.boost_query(match("title"), TITLE_BOOST)),
            ]
        )
        tenant_only = tantivy.Query.const_score_query(tantivy.Query.term_query(self.schema, "tenant", tenant), 0.0)
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, relevance), (tantivy.Occur.Must, tenant_only)])
        hits = self.searcher.search(query, limit=CANDIDATES, count=False).hits
        rows = self.searcher.fast_field_values("row", [a for _, a in hits])
        lexical = [(str(r), s) for (s, _), r in zip(hits, rows, strict=True)]
        if tenant in self.graphs:
            labels, distances = self.graphs[tenant].knn_query(vector[None, :], k=CANDIDATES)
            dense = [
                (str(self.rows[tenant][i]), vector_score(1 - d)) for i, d in zip(labels[0], distances[0], strict=True)
            ]
        else:
            sims = self.matrices[tenant] @ vector
            top = np.argpartition(-sims, CANDIDATES - 1)[:CANDIDATES]
            dense = [(str(self.rows[tenant][i]), vector_score(float(sims[i]))) for i in top]
        fused = fuse(lexical, dense, _DEFAULT_FUSION)[:TOP_K]
        documents = tantivy.Query.term_set_query(self.schema, "row", [int(k) for k, _ in fused])
        found = self.searcher.search(documents, limit=TOP_K, count=False).hits
        return [(str(self.searcher.doc(a)["row"][0]), self.searcher.doc(a)["text"][0]) for _, a in found]


_DEFAULT_FUSION = SearchRequest(tenant="x", text="x", vector=[1.0]).fusion


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
    }


def interleaved(runs: list[tuple[str, Callable[[], Any]]], rounds: int) -> dict[str, list[float]]:
    """Each query through each system in turn, so the machine's noise falls on both alike."""
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _ in range(rounds):
        for name, call in runs:
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return times


def layout(n: int, tenants: int, queries: int, rounds: int) -> dict[str, Any]:
    chunks, vectors = corpus(n, tenants)
    with tempfile.TemporaryDirectory() as folder:
        before = rss_mb()
        started = time.perf_counter()
        engine = EmbeddedSearchIndex(Path(folder) / "index")
        for start in range(0, n, 1000):
            batch = [
                Chunk(**{**c.__dict__, "vector": vectors[start + i]})
                for i, c in enumerate(chunks[start : start + 1000])
            ]
            engine.upsert(batch)
        build_s = time.perf_counter() - started
        engine_mb = rss_mb() - before
        before = rss_mb()
        started = time.perf_counter()
        bare = Bare(chunks, vectors, engine.exact_max_rows)
        bare_build_s = time.perf_counter() - started
        bare_mb = rss_mb() - before
        started = time.perf_counter()
        engine.close()
        reopened = EmbeddedSearchIndex(Path(folder) / "index")
        reopen_s = time.perf_counter() - started

        samples: dict[str, list[float]] = {"engine": [], "baseline": []}
        for tenant, text, vector in query_set(queries, tenants):
            request = SearchRequest(tenant=tenant, text=text, vector=vector, top_k=TOP_K, candidates=CANDIDATES)
            engine_answer = [h.chunk.chunk_id for h in reopened.search(request)]
            bare_answer = [f"c{row}" for row, _ in bare.search(tenant, text, vector)]
            assert len(engine_answer) == TOP_K and len(bare_answer) == TOP_K
            timed = interleaved(
                [
                    ("engine", lambda r=request: reopened.search(r)),
                    ("baseline", lambda t=tenant, q=text, v=vector: bare.search(t, q, v)),
                ],
                rounds,
            )
            for name, values in timed.items():
                samples[name].append(min(values))
        reopened.close()
    engine_p, bare_p = percentiles(samples["engine"]), percentiles(samples["baseline"])
    return {
        "chunks": n,
        "tenants": tenants,
        "queries": queries,
        "engine": {**engine_p, "build_s": round(build_s, 1), "reopen_s": round(reopen_s, 1), "rss_mb": engine_mb},
        "baseline": {**bare_p, "build_s": round(bare_build_s, 1), "rss_mb": bare_mb},
        "p95_ratio": round(engine_p["p95_ms"] / bare_p["p95_ms"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="timings per query per system; the best is kept")
    args = parser.parse_args()
    if not cranfield.available():
        print(f"Cranfield is not at {cranfield.FOLDER}", file=sys.stderr)
        return 2
    results = {
        "machine": machine(),
        "layouts": [
            layout(args.chunks, 20, args.queries, args.rounds),
            layout(args.chunks, 1, args.queries, args.rounds),
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "search-latency.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    for row in results["layouts"]:
        e, b = row["engine"], row["baseline"]
        print(
            f"{row['chunks']} chunks / {row['tenants']} tenant(s): engine p50 {e['p50_ms']} p95 {e['p95_ms']} ms | "
            f"bare p50 {b['p50_ms']} p95 {b['p95_ms']} ms | p95 ratio {row['p95_ratio']} (target <= 1.2, p95 < 30 ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
