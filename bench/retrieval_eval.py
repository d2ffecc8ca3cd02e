"""`make eval`: retrieval quality on Cranfield through the project's own pieces: the local model server's
embedding endpoint (SageMaker runtime contract) and the embedded search engine, as `make up` runs them.

Prints and writes (bench-results/retrieval-eval.json) nDCG@10 (gain 5 - code, as the collection's README
reference table) and recall@100 for BM25, dense and hybrid (min-max + arithmetic mean, the default; RRF), plus
how hybrid moves with its weights. The defaults (weights 0.5/0.5, title boost 0.5, the stoplist) were chosen
on this same collection: there is no held-out set, so the sweep is printed to show how much that choice matters.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentplatform.adapters.aws.sagemaker import SageMakerEndpoint
from agentplatform.adapters.local.search import EmbeddedSearchIndex
from agentplatform.model_clients import EndpointEmbeddings
from agentplatform.search import Chunk, Fusion, FusionTechnique, SearchHit, SearchMode, SearchRequest
from bench import cranfield
from bench.common import RESULTS, SERVER_DATA, machine, sagemaker_runtime, start_server, stop_server
from functions.retrieval.service import FUSION, favor_exact_matches

TENANT = "cranfield"
TARGETS = {"hybrid": 0.42, "bm25": 0.36, "vector": 0.36}
# The collection README's best row, measured the same way on this kind of machine.
REFERENCE_BEST = 0.408


def ndcg_at_10(ranked: list[str], gains: dict[str, int]) -> float:
    dcg = sum(gains.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:10]))
    ideal = sorted(gains.values(), reverse=True)[:10]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best else 0.0


def recall_at_100(ranked: list[str], gains: dict[str, int]) -> float:
    return len(set(ranked[:100]) & set(gains)) / len(gains) if gains else 0.0


def evaluate(
    index: EmbeddedSearchIndex,
    queries: list[tuple[str, str, list[float]]],
    mode: SearchMode,
    fusion: Fusion,
    after: Callable[[str, list[SearchHit]], list[SearchHit]] | None = None,
) -> dict[str, float]:
    """nDCG@10, recall@100 and the median search time; `after` re-ranks each query's hits (the service's
    exact-match rewards)."""
    judged = cranfield.judgements()
    ndcg, recall, took = [], [], []
    for qid, text, vector in queries:
        started = time.perf_counter()
        hits = index.search(
            SearchRequest(tenant=TENANT, text=text, vector=vector, mode=mode, top_k=100, candidates=100, fusion=fusion)
        )
        if after is not None:
            hits = after(text, hits)
        took.append(time.perf_counter() - started)
        ranked = [h.chunk.doc_id for h in hits]
        ndcg.append(ndcg_at_10(ranked, judged.get(qid, {})))
        recall.append(recall_at_100(ranked, judged.get(qid, {})))
    return {
        "ndcg@10": round(statistics.fmean(ndcg), 4),
        "recall@100": round(
            statistics.fmean([r for (q, _, _), r in zip(queries, recall, strict=True) if judged.get(q)]), 4
        ),
        "search_ms_p50": round(statistics.median(took) * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2, help="embedding threads on the model server")
    args = parser.parse_args()
    if not cranfield.available():
        print(f"Cranfield is not at {cranfield.FOLDER}", file=sys.stderr)
        return 2
    documents, queries = cranfield.documents(), cranfield.queries()

    process, url = start_server(SERVER_DATA, args.threads, models="embedding")
    try:
        embeddings = EndpointEmbeddings(SageMakerEndpoint("agentplatform-embedding", sagemaker_runtime(url)))
        started = time.perf_counter()
        # What ingestion embeds: the title, then the text.
        doc_vectors = embeddings.embed([f"{d.title}\n{d.text}" for d in documents])
        embed_s = time.perf_counter() - started
        query_vectors = embeddings.embed([text for _, text in queries])
    finally:
        stop_server(process)

    with tempfile.TemporaryDirectory() as folder:
        index = EmbeddedSearchIndex(Path(folder) / "index")
        started = time.perf_counter()
        index.upsert(
            [
                Chunk(
                    chunk_id=d.doc_id,
                    tenant=TENANT,
                    doc_id=d.doc_id,
                    doc_version="1",
                    text=d.text,
                    title=d.title,
                    vector=v,
                )
                for d, v in zip(documents, doc_vectors, strict=True)
            ]
        )
        index_s = time.perf_counter() - started
        runs = [(qid, text, vector) for (qid, text), vector in zip(queries, query_vectors, strict=True)]
        table: dict[str, Any] = {
            "bm25": evaluate(index, runs, SearchMode.BM25, Fusion()),
            "vector": evaluate(index, runs, SearchMode.VECTOR, Fusion()),
            "hybrid": evaluate(index, runs, SearchMode.HYBRID, FUSION, favor_exact_matches),
            "hybrid_rrf": evaluate(index, runs, SearchMode.HYBRID, Fusion(FusionTechnique.RRF)),
        }
        sweep = {
            f"{technique.value} {w:.1f}/{1 - w:.1f}": evaluate(
                index, runs, SearchMode.HYBRID, Fusion(technique, weights=(w, round(1 - w, 1)))
            )["ndcg@10"]
            for technique in (FusionTechnique.MIN_MAX, FusionTechnique.Z_SCORE)
            for w in (0.3, 0.4, 0.5, 0.6, 0.7)
        }
        index.close()

    results = {
        "machine": machine(),
        "collection": {"documents": len(documents), "queries": len(queries)},
        "embedding_seconds": round(embed_s, 1),
        "documents_embedded_per_s": round(len(documents) / embed_s, 1),
        "index_seconds": round(index_s, 2),
        "methods": table,
        "hybrid_weight_sweep_ndcg@10": sweep,
        "targets_ndcg@10": TARGETS,
        "reference_best_ndcg@10": REFERENCE_BEST,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "retrieval-eval.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"Cranfield, {len(documents)} documents, {len(queries)} queries (embedding {embed_s:.0f} s):\n")
    print(f"{'method':<60}{'nDCG@10':>9}{'recall@100':>12}{'target':>9}")
    names = {
        "bm25": "BM25 (tantivy, Snowball, stoplist)",
        "vector": "dense (all-MiniLM-L6-v2, exact)",
        "hybrid": "hybrid as the service (min-max 0.5/0.5, exact-match rewards)",
        "hybrid_rrf": "hybrid RRF k=60",
    }
    failed = False
    for key, name in names.items():
        row = table[key]
        target = TARGETS.get(key)
        verdict = ""
        if target is not None:
            met = row["ndcg@10"] >= target
            failed |= not met
            verdict = f"{'>=' if met else '<'} {target}"
        print(f"{name:<60}{row['ndcg@10']:>9.3f}{row['recall@100']:>12.3f}{verdict:>9}")
    print(f"\nhybrid nDCG@10 by normalization and weight (bm25/vector), no rewards: {sweep}")
    print(f"reference table's best: {REFERENCE_BEST}; written to {out.relative_to(RESULTS.parent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
