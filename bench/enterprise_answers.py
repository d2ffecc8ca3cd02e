"""`python -m bench.enterprise_answers`: answers to the enterprise set's queries (eval/enterprise/), offline.

The set's documents as ingestion chunks and embeds them (bench.enterprise_eval.chunks_of_set, MiniLM in this
process), searched through the retrieval service over the embedded engine (top 5, each cut to 1,500 characters,
as the agent loop gives them to the model), answered by the extractive provider, the local answerer. Per query:
answered (not an abstention), key facts (every `{braced}` fact of the query's answer in the answer text,
normalized as the golden set's), cited a judged document (a citation's document has a judgement for the query).
Per half and kind; the provider is tuned on the golden set's dev split (docs/answers.md), so both halves here are
questions it was not tuned on. The set has only answerable queries: abstention on unanswerable ones is the golden
set's (`make eval-answers`). Writes bench-results/enterprise-answers.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

from agentplatform import grounding
from agentplatform.adapters.local.search import EmbeddedSearchIndex
from bench.answers_eval import LocalEmbeddings, key_fact_hit, retrieve
from bench.common import RESULTS, ROOT, machine
from bench.enterprise_eval import SET, TENANT, chunks_of_set, load_set

KINDS = ("exact", "semantic", "mixed")


def run(threads: int = 2) -> dict[str, Any]:
    from functions.llm_gateway.providers.extractive import ExtractiveProvider
    from functions.retrieval.service import RetrievalService

    started = time.perf_counter()
    embeddings = LocalEmbeddings(ROOT / ".data" / "models", threads=threads)
    manifest, queries, qrels = load_set(SET)
    chunks, _ = chunks_of_set(manifest, embeddings.embed)
    index = EmbeddedSearchIndex(None, dimension=embeddings.dimension)
    index.upsert(chunks)
    service = RetrievalService(index, embeddings)
    provider = ExtractiveProvider(embeddings)
    results = []
    for q in queries:
        passages = retrieve(service, q.text, tenant=TENANT)
        extract = provider.answer(q.text, passages)
        judged = {doc for doc, _ in qrels.get(q.id, {})}
        by_ref = {p.ref: p for p in passages}
        cited = {by_ref[r].citation.path for r in grounding.citation_refs(extract.text) if r in by_ref}
        results.append(
            {
                "id": q.id,
                "split": q.split,
                "kind": q.kind,
                "query": q.text,
                "answer": extract.text,
                "key_facts": list(q.key_facts),
                "answered": not extract.abstained,
                "key_fact_hit": not extract.abstained and key_fact_hit(extract.text, q.key_facts),
                "cited_judged_doc": bool(cited & judged),
                "retrieved_judged_doc": any(p.citation.path in judged for p in passages),
                "best_score": round(extract.best.score, 3) if extract.best else None,
            }
        )
    return {
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summarize(results),
        "results": results,
    }


def summarize(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        for kind in ("all", r["kind"]):
            groups[(r["split"], kind)].append(r)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (split, kind), rows in sorted(groups.items()):
        out.setdefault(split, {})[kind] = {
            "queries": len(rows),
            "answered": round(statistics.fmean(r["answered"] for r in rows), 3),
            "key_facts": round(statistics.fmean(r["key_fact_hit"] for r in rows), 3),
            "cited_judged_doc": round(statistics.fmean(r["cited_judged_doc"] for r in rows), 3),
            "retrieved_judged_doc": round(statistics.fmean(r["retrieved_judged_doc"] for r in rows), 3),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    report = run(args.threads)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "enterprise-answers.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"Enterprise set, answers by the extractive provider over the retrieval service ({report['seconds']} s)\n")
    print(f"{'half':<6}{'kind':<10}{'queries':>8}{'answered':>10}{'key facts':>11}{'cited judged':>14}")
    for split in ("dev", "test"):
        for kind in ("all", *KINDS):
            row = report["summary"][split][kind]
            print(
                f"{split:<6}{kind:<10}{row['queries']:>8}{row['answered']:>10.3f}{row['key_facts']:>11.3f}"
                f"{row['cited_judged_doc']:>14.3f}"
            )
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
