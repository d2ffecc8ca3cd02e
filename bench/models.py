"""Model endpoint benchmarks, each side by side with its baseline in the same run.

- Embedding throughput (sentences/s, batch 32) through the local endpoint (boto3 sagemaker-runtime -> model
  server) against the same model called in-process; target: endpoint >= 0.8 x in-process.
- Generation through the endpoint: time to first token (a 1-token request), decode tokens/s, and the same
  model in-process for reference; model load times and the model server's peak memory.

The model server runs in its own process (`python -m local models`), as under `make up`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import requests

from bench import cranfield
from bench.common import RESULTS, ROOT, SERVER_DATA, machine, sagemaker_runtime, start_server, stop_server

MODEL_CACHE = SERVER_DATA / "models"
PREFIX = "agentplatform"
PROMPTS = [
    "Explain in a few sentences why the sky is blue.",
    "Write a short, friendly email inviting a colleague to a project kickoff on Monday.",
    "What are three tips for writing clean Python code?",
]


def passages(n: int) -> list[str]:
    """Cranfield abstracts, or generated sentences when the eval data is not beside the repo."""
    if not cranfield.available():
        return [f"Sentence {i} about boundary layers, shock waves and the heat transfer of wing {i}." for i in range(n)]
    return [d.text for d in cranfield.documents()[:n]]


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_embeddings(runtime: Any, texts: list[str], threads: int, rounds: int) -> dict[str, Any]:
    from endpoints.embedding.engine import SentenceEmbedder

    embedder = SentenceEmbedder.load(backend="onnx", cache_dir=MODEL_CACHE, threads=threads)
    batches = [texts[i : i + 32] for i in range(0, len(texts), 32)]

    def in_process() -> None:
        for batch in batches:
            embedder.embed(batch)

    def endpoint() -> None:
        for batch in batches:
            out = runtime.invoke_endpoint(
                EndpointName=f"{PREFIX}-embedding",
                ContentType="application/json",
                Body=json.dumps({"inputs": batch, "truncate": True}),
            )
            out["Body"].read()

    in_process(), endpoint()  # warm both paths
    local_s, remote_s = [], []
    for _ in range(rounds):  # alternate, so drift on a noisy machine hits both alike
        local_s.append(timed(in_process))
        remote_s.append(timed(endpoint))
    local_rate = len(texts) / min(local_s)
    remote_rate = len(texts) / min(remote_s)
    return {
        "sentences": len(texts),
        "batch": 32,
        "threads": threads,
        "in_process_sentences_per_s": round(local_rate, 1),
        "endpoint_sentences_per_s": round(remote_rate, 1),
        "endpoint_over_in_process": round(remote_rate / local_rate, 3),
        "target_ratio": 0.8,
    }


def bench_generation(runtime: Any, threads: int, max_tokens: int) -> dict[str, Any]:
    def ask(prompt: str, tokens: int) -> tuple[float, dict[str, Any]]:
        body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": tokens}
        started = time.perf_counter()
        out = runtime.invoke_endpoint(
            EndpointName=f"{PREFIX}-generation", ContentType="application/json", Body=json.dumps(body)
        )
        answer = json.loads(out["Body"].read())
        return time.perf_counter() - started, answer

    ask(PROMPTS[0], 4)  # warm
    ttft, rates = [], []
    for prompt in PROMPTS:
        first, _ = ask(prompt, 1)
        total, answer = ask(prompt, max_tokens)
        generated = answer["usage"]["completion_tokens"]
        ttft.append(first)
        if generated > 1 and total > first:
            rates.append((generated - 1) / (total - first))

    from endpoints.generation.engine import ChatEngine

    engine = ChatEngine.load(cache_dir=MODEL_CACHE, threads=threads)
    local_rates = []
    for prompt in PROMPTS:
        ids = engine.prompt_ids([{"role": "user", "content": prompt}])
        first = timed(lambda ids=ids: engine.complete(ids, max_tokens=1))
        started = time.perf_counter()
        completion = engine.complete(ids, max_tokens=max_tokens)
        total = time.perf_counter() - started
        if completion.completion_tokens > 1 and total > first:
            local_rates.append((completion.completion_tokens - 1) / (total - first))
    return {
        "max_tokens": max_tokens,
        "threads": threads,
        "endpoint_ttft_ms_p50": round(statistics.median(ttft) * 1000, 1),
        "endpoint_decode_tokens_per_s": round(statistics.median(rates), 1) if rates else None,
        "in_process_decode_tokens_per_s": round(statistics.median(local_rates), 1) if local_rates else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("LOCAL_MODEL_THREADS", "1")))
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    RESULTS.mkdir(exist_ok=True)
    process, url = start_server(SERVER_DATA, args.threads)
    try:
        health = requests.get(f"{url}/health", timeout=10).json()
        runtime = sagemaker_runtime(url)
        embedding = bench_embeddings(runtime, passages(args.sentences), args.threads, args.rounds)
        generation = bench_generation(runtime, args.threads, args.max_tokens)
        peak = requests.get(f"{url}/health", timeout=10).json()["peak_rss_mb"]
    finally:
        stop_server(process)
    results = {
        "machine": machine(),
        "embedding": embedding,
        "generation": generation,
        "model_load_seconds": {name: m["load_seconds"] for name, m in health["models"].items()},
        "model_server_peak_rss_mb": peak,
    }
    out = RESULTS / "models.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(
        f"\nembedding: endpoint {embedding['endpoint_sentences_per_s']} vs in-process "
        f"{embedding['in_process_sentences_per_s']} sentences/s = {embedding['endpoint_over_in_process']}x "
        f"(target >= 0.8); written to {out.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
