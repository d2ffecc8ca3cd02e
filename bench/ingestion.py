"""Ingestion through the real local pipeline, beside raw embedding of the same chunks in the same run.

1. Throughput: the Cranfield collection (one .txt per abstract) put into the drop bucket of a local runtime (the
   same S3 -> EventBridge -> SQS -> starter -> Step Functions -> stage functions path as the drop folder), timed
   from the first put to the last document `indexed`: documents/s, MB/s, chunks/s. Baseline: the same chunk
   texts embedded straight through the same embedding endpoint in batches of 32 (what the pipeline cannot beat:
   embedding is its bottleneck). Target: pipeline chunks/s >= 0.8 x raw.
2. One large document: a 300-page text PDF, from put to `indexed`, and the peak memory of the process that runs
   every stage (the local runtime: Lambda handlers in-process; the model server is a separate process).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agentplatform.bootstrap import container
from agentplatform.documents import DocumentStatus, document_id
from agentplatform.errors import DocumentRejected
from bench import cranfield
from bench.common import RESULTS, SERVER_DATA, machine, rss_mb
from functions.ingestion.chunking import chunk, word_piece_tokenizer
from functions.ingestion.extract import extract
from functions.ingestion.pipeline import EMBED_BATCH, passage_text
from local.runtime import LocalRuntime, RuntimeSettings
from tests.fixtures.documents import text_pdf

TENANT = "bench"
UPLOADERS = 10  # the AWS CLI's default max_concurrent_requests
TERMINAL = {DocumentStatus.INDEXED, DocumentStatus.FAILED}


def wait_all(paths: list[str], chunks: int, timeout_s: float) -> dict[str, Any]:
    """Every path's registry row once it is done. The benchmark must not load the emulator it measures (a listing
    of every row each second took a quarter of moto's time), so it first waits for the tenant's chunk count in the
    search index (this process's embedded engine, no emulated call) to reach what the documents chunk into, then
    reads the registry a page at a time until every row says it is done."""
    index, registry = container().search_index, container().registry
    deadline = time.monotonic() + timeout_s
    while index.count(TENANT) < chunks and time.monotonic() < deadline:
        time.sleep(0.1)
    wanted = {document_id(TENANT, path): path for path in paths}
    rows: dict[str, Any] = {}
    while len(rows) < len(wanted):
        cursor = None
        while True:
            page, cursor = registry.list(TENANT, limit=500, cursor=cursor)
            for row in page:
                done = row.status == DocumentStatus.FAILED or (row.revision > 0 and row.status in TERMINAL)
                if row.doc_id in wanted and done:
                    rows[wanted[row.doc_id]] = row
            if cursor is None:
                break
        if len(rows) < len(wanted):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(wanted) - len(rows)} documents not indexed within {timeout_s} s")
            time.sleep(0.1)
    return rows


def passages(files: dict[str, bytes]) -> list[str]:
    """The texts the pipeline embeds for these files: each chunk with its title and heading."""
    tokenizer = word_piece_tokenizer()
    texts = []
    for path, body in files.items():
        try:
            extracted = extract(body, path.rsplit("/", 1)[-1])
        except DocumentRejected:
            continue  # the pipeline fails it too (Cranfield has empty abstracts): no chunks
        title = extracted.title or path.rsplit("/", 1)[-1]
        texts += [passage_text(title, spec) for spec in chunk(extracted, tokenizer)]
    return texts


def raw_embedding_seconds(texts: list[str]) -> float:
    """The baseline: the texts straight through the same endpoint, in batches of EMBED_BATCH."""
    embeddings = container().embedding_model
    started = time.perf_counter()
    for start in range(0, len(texts), EMBED_BATCH):
        embeddings.embed(texts[start : start + EMBED_BATCH])
    return time.perf_counter() - started


class PeakRss:
    """Samples this process's resident memory until stopped."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def throughput(rt: LocalRuntime, limit: int) -> dict[str, Any]:
    s3, bucket = rt.client("s3"), rt.provisioned.value("bucket:drop", "name")
    documents = cranfield.documents()[:limit]
    files = {f"cranfield/{d.doc_id}.txt": f"{d.title}\n\n{d.text}".encode() for d in documents}
    texts = passages(files)
    started = time.perf_counter()
    # Uploaded as `aws s3 cp --recursive` / `aws s3 sync` do it: 10 requests at a time.
    with ThreadPoolExecutor(max_workers=UPLOADERS) as pool:
        list(pool.map(lambda path: s3.put_object(Bucket=bucket, Key=f"{TENANT}/{path}", Body=files[path]), files))
    rows = wait_all(list(files), len(texts), timeout_s=3600)
    pipeline_s = time.perf_counter() - started
    failed = [p for p, r in rows.items() if r.status != DocumentStatus.INDEXED]
    chunks = sum(r.chunk_count for r in rows.values())
    raw_s = raw_embedding_seconds(texts)  # the same chunks, as the pipeline embeds them, in the same run
    megabytes = sum(len(b) for b in files.values()) / 1e6
    return {
        "documents": len(files),
        "failed": failed,
        "chunks": chunks,
        "megabytes": round(megabytes, 2),
        "pipeline_seconds": round(pipeline_s, 1),
        "documents_per_s": round(len(files) / pipeline_s, 2),
        "mb_per_s": round(megabytes / pipeline_s, 3),
        "chunks_per_s": round(chunks / pipeline_s, 2),
        "raw_embedding_seconds": round(raw_s, 1),
        "raw_chunks_per_s": round(len(texts) / raw_s, 2),
        "pipeline_over_raw": round((chunks / pipeline_s) / (len(texts) / raw_s), 2),
    }


def large_pdf(rt: LocalRuntime, pages: int) -> dict[str, Any]:
    s3, bucket = rt.client("s3"), rt.provisioned.value("bucket:drop", "name")
    data = text_pdf(pages)
    path = f"reports/large-{pages}.pdf"
    texts = passages({path: data})
    already = container().search_index.count(TENANT)
    with PeakRss() as memory:
        before = memory.peak
        started = time.perf_counter()
        s3.put_object(Bucket=bucket, Key=f"{TENANT}/{path}", Body=data)
        row = wait_all([path], already + len(texts), timeout_s=1800)[path]
        seconds = time.perf_counter() - started
    return {
        "pages": pages,
        "megabytes": round(len(data) / 1e6, 2),
        "status": row.status,
        "chunks": row.chunk_count,
        "seconds_to_indexed": round(seconds, 1),
        "raw_embedding_seconds": round(raw_embedding_seconds(texts), 1),  # its floor, in the same run
        "worker_rss_mb_before": before,
        "worker_peak_rss_mb": memory.peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=1400)
    parser.add_argument("--pages", type=int, default=300)
    args = parser.parse_args()
    if not cranfield.available():
        print(f"Cranfield is not at {cranfield.FOLDER}", file=sys.stderr)
        return 2
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    with tempfile.TemporaryDirectory() as folder:
        # A fresh stack, but the models' one-time conversions are shared with the other benchmarks.
        (Path(folder) / "data").mkdir()
        SERVER_DATA.joinpath("models").mkdir(parents=True, exist_ok=True)
        (Path(folder) / "data" / "models").symlink_to(SERVER_DATA.joinpath("models").resolve())
        settings = RuntimeSettings.on_free_ports(
            LOCAL_MODELS="embedding",
            LOCAL_DATA_DIR=Path(folder) / "data",
            LOCAL_DROP_DIR=Path(folder) / "dropfolder",
            LOCAL_TENANTS=TENANT,
        )
        with LocalRuntime(settings) as rt:
            assert rt.model_server is not None and rt.model_server.wait_ready(), "the embedding model did not load"
            results = {
                "machine": machine(),
                "throughput": throughput(rt, args.documents),
                "large_pdf": large_pdf(rt, args.pages),
            }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "ingestion.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    t, pdf = results["throughput"], results["large_pdf"]
    print(
        f"\npipeline {t['chunks_per_s']} chunks/s vs raw embedding {t['raw_chunks_per_s']} chunks/s = "
        f"{t['pipeline_over_raw']}x (target >= 0.8); {t['documents_per_s']} docs/s, {t['mb_per_s']} MB/s\n"
        f"{pdf['pages']}-page PDF ({pdf['megabytes']} MB): indexed in {pdf['seconds_to_indexed']} s (target < 60 s; "
        f"embedding its {pdf['chunks']} chunks alone: {pdf['raw_embedding_seconds']} s), "
        f"worker peak RSS {pdf['worker_peak_rss_mb']} MB; written to {out.relative_to(RESULTS.parent)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
