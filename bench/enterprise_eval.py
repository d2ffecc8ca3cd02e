"""`make eval`, second half: retrieval quality on the enterprise set (eval/enterprise), beside Cranfield.

The set's documents go through ingestion's own pieces (extract, the token-aware chunker, passage_text, the Chunk
the pipeline writes) into the embedded search engine, with vectors from the local model server's embedding
endpoint, as `make up` runs them; queries are embedded as the retrieval service embeds them.

Reported per mode (bm25, vector, hybrid as the service fuses and re-ranks, hybrid min-max 0.5/0.5, hybrid RRF),
per split (dev, test) and per query kind (exact, semantic, mixed), nDCG@10 and recall@20 at two levels:
- document: the hits' documents in order of first appearance, gain = the best grade judged on the document;
- passage: the hits' (document, section) in order of first appearance, gain = the grade judged on that section.
  A chunk belongs to the section whose heading it carries; in a PDF (no headings) to the section printed on its
  page (eval/enterprise/manifest.jsonl); a .txt has one section, "".
Recall@20 counts judgements of grade 1 or 2.

Beside the platform, a reference: a plain hybrid of whole passages, built without the platform's search code:
every paragraph of every extracted document is a passage, scored by a textbook BM25 (k1 1.2, b 0.75, lowercase
alphanumeric tokens, no stemming, no stoplist) and by cosine on the same MiniLM embedding of the paragraph with its
document title; each side's top 100 min-max normalized and averaged 0.5/0.5, as the platform fuses.

Prints and writes bench-results/enterprise-eval.json.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agentplatform.adapters.aws.sagemaker import SageMakerEndpoint
from agentplatform.adapters.local.search import EmbeddedSearchIndex
from agentplatform.model_clients import EndpointEmbeddings
from agentplatform.search import Chunk, Fusion, FusionTechnique, SearchHit, SearchMode, SearchRequest
from bench.common import RESULTS, SERVER_DATA, machine, sagemaker_runtime, start_server, stop_server
from functions.ingestion.chunking import chunk, word_piece_tokenizer
from functions.ingestion.extract import PARAGRAPH_BREAK, extract
from functions.ingestion.pipeline import passage_text
from functions.retrieval.service import FUSION, favor_exact_matches

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT / "eval" / "enterprise"
TENANT = "enterprise"
KINDS = ("exact", "semantic", "mixed")
SPLITS = ("dev", "test")
DEPTH = 100  # hits asked of every method: enough for recall@20 after deduplication to documents

Unit = tuple[str, str]  # (document path, section heading)


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    kind: str
    split: str
    key_facts: tuple[str, ...] = ()  # what a right answer holds (bench/enterprise_answers.py)


@dataclass(frozen=True)
class Passage:
    doc: str
    section: str
    title: str
    text: str


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_set(folder: Path = SET) -> tuple[list[dict[str, Any]], list[Query], dict[str, dict[Unit, int]]]:
    """The manifest, the queries and their judgements (query id -> {(doc, section): grade})."""
    manifest = _jsonl(folder / "manifest.jsonl")
    queries = [
        Query(q["id"], q["query"], q["kind"], q["split"], tuple(q["key_facts"]))
        for q in _jsonl(folder / "queries.jsonl")
    ]
    qrels: dict[str, dict[Unit, int]] = {}
    for r in _jsonl(folder / "qrels.jsonl"):
        qrels.setdefault(r["query"], {})[(r["doc"], r["section"])] = r["grade"]
    return manifest, queries, qrels


def _section_by_page(entry: dict[str, Any]) -> dict[int, str]:
    return {page: s["heading"] for s in entry["sections"] for page in s.get("pages", [])}


def chunks_of_set(
    manifest: list[dict[str, Any]], embed: Callable[[list[str]], list[list[float]]], folder: Path = SET
) -> tuple[list[Chunk], dict[str, Unit]]:
    """Every document as ingestion chunks and embeds it, and each chunk's judged unit (by chunk id)."""
    tokenizer = word_piece_tokenizer()
    chunks: list[Chunk] = []
    units: dict[str, Unit] = {}
    passages: list[str] = []
    for entry in manifest:
        doc = entry["doc"]
        extracted = extract((folder / "docs" / doc).read_bytes(), doc)
        title = extracted.title or doc.rsplit("/", 1)[-1]  # the pipeline's fallback when there is no title
        pages = _section_by_page(entry)
        for spec in chunk(extracted, tokenizer):
            chunk_id = f"{doc}#{spec.ordinal}"
            units[chunk_id] = (doc, pages[spec.page] if spec.page is not None else spec.heading)
            passages.append(passage_text(title, spec))
            chunks.append(
                Chunk(
                    chunk_id=chunk_id,
                    tenant=TENANT,
                    doc_id=doc,
                    doc_version="1",
                    text=spec.text,
                    title=title,
                    path=doc,
                    section=spec.heading,
                    page=spec.page,
                    ordinal=spec.ordinal,
                    start=spec.start,
                    end=spec.end,
                )
            )
    vectors = embed(passages)
    return [replace(c, vector=v) for c, v in zip(chunks, vectors, strict=True)], units


def paragraphs_of_set(manifest: list[dict[str, Any]], folder: Path = SET) -> list[Passage]:
    """The reference's passages: every paragraph of every extracted document, with its judged unit."""
    out: list[Passage] = []
    for entry in manifest:
        doc = entry["doc"]
        extracted = extract((folder / "docs" / doc).read_bytes(), doc)
        title = extracted.title or doc.rsplit("/", 1)[-1]
        pages = _section_by_page(entry)
        for section in extracted.sections:
            unit = pages[section.page] if section.page is not None else section.heading
            out += [Passage(doc, unit, title, p) for p in section.text.split(PARAGRAPH_BREAK) if p.strip()]
    return out


# --- metrics --------------------------------------------------------------------------------------------------


def ndcg_at(k: int, ranked: Sequence[Any], gains: dict[Any, int]) -> float:
    dcg = sum(gains.get(key, 0) / math.log2(i + 2) for i, key in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best else 0.0


def recall_at(k: int, ranked: Sequence[Any], gains: dict[Any, int]) -> float:
    relevant = {key for key, g in gains.items() if g > 0}
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def first_seen(keys: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(keys))


def document_gains(judged: dict[Unit, int]) -> dict[str, int]:
    gains: dict[str, int] = {}
    for (doc, _), grade in judged.items():
        gains[doc] = max(gains.get(doc, 0), grade)
    return gains


def score(
    queries: list[Query], rankings: dict[str, list[Unit]], qrels: dict[str, dict[Unit, int]]
) -> dict[str, dict[str, dict[str, float]]]:
    """split -> kind ("all" too) -> {doc_ndcg@10, doc_recall@20, passage_ndcg@10, passage_recall@20, queries}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split in SPLITS:
        out[split] = {}
        for kind in ("all", *KINDS):
            chosen = [q for q in queries if q.split == split and kind in ("all", q.kind)]
            rows: dict[str, list[float]] = {k: [] for k in ("doc_ndcg@10", "doc_recall@20", "passage_ndcg@10")}
            rows["passage_recall@20"] = []
            for q in chosen:
                units, judged = first_seen(rankings[q.id]), qrels[q.id]
                docs, doc_gains = first_seen(doc for doc, _ in units), document_gains(judged)
                rows["doc_ndcg@10"].append(ndcg_at(10, docs, doc_gains))
                rows["doc_recall@20"].append(recall_at(20, docs, doc_gains))
                rows["passage_ndcg@10"].append(ndcg_at(10, units, judged))
                rows["passage_recall@20"].append(recall_at(20, units, judged))
            out[split][kind] = {k: round(statistics.fmean(v), 4) for k, v in rows.items()} | {"queries": len(chosen)}
    return out


# --- the platform ---------------------------------------------------------------------------------------------


def platform_rankings(
    index: EmbeddedSearchIndex,
    queries: list[Query],
    vectors: list[list[float]],
    units: dict[str, Unit],
    mode: SearchMode,
    fusion: Callable[[str], Fusion],
    after: Callable[[str, list[SearchHit]], list[SearchHit]] | None = None,
) -> tuple[dict[str, list[Unit]], float]:
    """Each query's hits as judged units, and the median search time in ms. `fusion` picks a query's fusion and
    `after` re-ranks its hits (the retrieval service's `FUSION` and `favor_exact_matches` reproduce what
    the service asks the index and does with the answer)."""
    rankings, took = {}, []
    for q, vector in zip(queries, vectors, strict=True):
        started = time.perf_counter()
        request = SearchRequest(
            tenant=TENANT, text=q.text, vector=vector, mode=mode, top_k=DEPTH, candidates=DEPTH, fusion=fusion(q.text)
        )
        hits = index.search(request)
        if after is not None:
            hits = after(q.text, hits)
        took.append(time.perf_counter() - started)
        rankings[q.id] = [units[h.chunk.chunk_id] for h in hits]
    return rankings, round(statistics.median(took) * 1000, 2)


# --- the reference: a plain hybrid of whole passages ---------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class PlainBM25:
    """Okapi BM25 (k1 1.2, b 0.75, Lucene's idf) over passages; the textbook formula, no platform code."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self._docs = [Counter(_tokens(t)) for t in texts]
        self._lengths = [sum(d.values()) for d in self._docs]
        self._average = statistics.fmean(self._lengths)
        frequency = Counter(term for d in self._docs for term in d)
        n = len(self._docs)
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
        self._k1, self._b = k1, b

    def scores(self, query: str) -> list[float]:
        terms = [t for t in _tokens(query) if t in self._idf]
        out = []
        for doc, length in zip(self._docs, self._lengths, strict=True):
            norm = self._k1 * (1 - self._b + self._b * length / self._average)
            out.append(sum(self._idf[t] * doc[t] * (self._k1 + 1) / (doc[t] + norm) for t in terms if t in doc))
        return out


def _min_max_top(scores: list[float], depth: int) -> dict[int, float]:
    top = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: -scores[i])[:depth]
    if not top:
        return {}
    high, low = scores[top[0]], scores[top[-1]]
    return {i: (scores[i] - low) / (high - low) if high > low else 1.0 for i in top}


def reference_rankings(
    passages: list[Passage], passage_vectors: list[list[float]], queries: list[Query], query_vectors: list[list[float]]
) -> dict[str, dict[str, list[Unit]]]:
    """method (bm25, vector, hybrid) -> query id -> passages' units, best first."""
    bm25 = PlainBM25([f"{p.title}\n{p.text}" for p in passages])
    out: dict[str, dict[str, list[Unit]]] = {"bm25": {}, "vector": {}, "hybrid": {}}
    for q, qv in zip(queries, query_vectors, strict=True):
        lexical = _min_max_top(bm25.scores(q.text), DEPTH)
        # Normalized vectors: the dot product is the cosine; (1 + cos) / 2 keeps every score positive.
        dense = _min_max_top(
            [(1 + sum(a * b for a, b in zip(qv, pv, strict=True))) / 2 for pv in passage_vectors], DEPTH
        )
        fused = {i: 0.5 * lexical.get(i, 0.0) + 0.5 * dense.get(i, 0.0) for i in lexical.keys() | dense.keys()}
        for method, ranked in (("bm25", lexical), ("vector", dense), ("hybrid", fused)):
            order = sorted(ranked, key=lambda i, r=ranked: -r[i])
            out[method][q.id] = [(passages[i].doc, passages[i].section) for i in order]
    return out


# --- report ---------------------------------------------------------------------------------------------------

NAMES = {
    "bm25": "platform BM25",
    "vector": "platform dense",
    "hybrid": "platform hybrid (service)",  # its fusion and its exact-match rewards (favor_exact_matches)
    "hybrid_even": "platform hybrid, no rewards",
    "hybrid_rrf": "platform hybrid RRF k=60",
    "reference_bm25": "reference BM25, paragraphs",
    "reference_vector": "reference dense, paragraphs",
    "reference_hybrid": "reference hybrid, paragraphs",
}


def print_table(table: dict[str, Any], split: str, level: str) -> None:
    print(f"\n{split} half, {level} level: nDCG@10 (recall@20)")
    print(f"{'method':<34}" + "".join(f"{kind:>16}" for kind in ("all", *KINDS)))
    for key, name in NAMES.items():
        cells = table[key][split]
        row = "".join(
            f"{cells[kind][f'{level}_ndcg@10']:>8.3f} ({cells[kind][f'{level}_recall@20']:.3f})"
            for kind in ("all", *KINDS)
        )
        print(f"{name:<34}{row}")


def write_pool(
    queries: list[Query], every: dict[str, dict[str, list[Unit]]], qrels: dict[str, dict[Unit, int]], k: int, out: Path
) -> None:
    lines = []
    for q in queries:
        # How many methods put each unjudged section in their top k: the ones most agree on are graded first.
        pooled = Counter(u for r in every.values() for u in first_seen(r[q.id])[:k] if u not in qrels[q.id])
        if pooled:
            units = [{"doc": doc, "section": section, "methods": n} for (doc, section), n in pooled.most_common()]
            lines.append(json.dumps({"query": q.id, "text": q.text, "unjudged": units}))
    out.write_text("".join(line + "\n" for line in lines))
    print(f"{len(lines)} queries with unjudged sections in a top {k}: {out.relative_to(RESULTS.parent)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2, help="embedding threads on the model server")
    parser.add_argument(
        "--pool",
        type=int,
        default=0,
        metavar="K",
        help="also write bench-results/enterprise-pool.jsonl: each query's unjudged sections in any method's top K, "
        "for a judge to grade (pooling)",
    )
    args = parser.parse_args()
    manifest, queries, qrels = load_set()
    passages = paragraphs_of_set(manifest)

    process, url = start_server(SERVER_DATA, args.threads, models="embedding")
    try:
        embeddings = EndpointEmbeddings(SageMakerEndpoint("agentplatform-embedding", sagemaker_runtime(url)))
        started = time.perf_counter()
        chunks, units = chunks_of_set(manifest, embeddings.embed)
        embed_s = time.perf_counter() - started
        passage_vectors = embeddings.embed([f"{p.title}\n{p.text}" for p in passages])
        query_vectors = embeddings.embed([q.text for q in queries])
    finally:
        stop_server(process)

    table: dict[str, Any] = {}
    latency: dict[str, float] = {}
    every: dict[str, dict[str, list[Unit]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        index = EmbeddedSearchIndex(Path(folder) / "index")
        index.upsert(chunks)
        for key, mode, fusion, after in (
            ("bm25", SearchMode.BM25, lambda _: Fusion(), None),
            ("vector", SearchMode.VECTOR, lambda _: Fusion(), None),
            ("hybrid", SearchMode.HYBRID, lambda _: FUSION, favor_exact_matches),  # as the retrieval service
            ("hybrid_even", SearchMode.HYBRID, lambda _: Fusion(), None),  # min-max 0.5/0.5, no rewards
            ("hybrid_rrf", SearchMode.HYBRID, lambda _: Fusion(FusionTechnique.RRF), None),
        ):
            rankings, latency[key] = platform_rankings(index, queries, query_vectors, units, mode, fusion, after)
            table[key] = score(queries, rankings, qrels)
            every[key] = rankings
        index.close()
    for method, rankings in reference_rankings(passages, passage_vectors, queries, query_vectors).items():
        table[f"reference_{method}"] = score(queries, rankings, qrels)
        every[f"reference_{method}"] = rankings

    kinds = Counter((q.kind, q.split) for q in queries)
    results = {
        "machine": machine(),
        "set": {
            "documents": len(manifest),
            "formats": dict(Counter(m["format"] for m in manifest)),
            "chunks": len(chunks),
            "reference_passages": len(passages),
            "queries": {f"{kind}/{split}": n for (kind, split), n in sorted(kinds.items())},
        },
        "embedding_seconds": round(embed_s, 1),
        "search_ms_p50": latency,
        "methods": table,
    }
    RESULTS.mkdir(exist_ok=True)
    if args.pool:
        write_pool(queries, every, qrels, args.pool, RESULTS / "enterprise-pool.jsonl")
    out = RESULTS / "enterprise-eval.json"
    out.write_text(json.dumps(results, indent=2))
    print(
        f"Enterprise set: {len(manifest)} documents ({len(chunks)} chunks, {len(passages)} reference paragraphs), "
        f"{len(queries)} queries"
    )
    for split in SPLITS:
        for level in ("doc", "passage"):
            print_table(table, split, level)
    test = {k: table[k]["test"]["all"]["doc_ndcg@10"] for k in ("bm25", "vector", "hybrid", "reference_hybrid")}
    print(
        f"\nheld-out half, document nDCG@10: hybrid {test['hybrid']:.3f}, better single mode "
        f"{max(test['bm25'], test['vector']):.3f}, reference hybrid {test['reference_hybrid']:.3f}; "
        f"written to {out.relative_to(RESULTS.parent)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
