"""The ingestion functions: the SQS starter, which packs object changes into runs, and one entry per state machine
stage (ingestion.asl.json)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from agentplatform.bootstrap import container
from agentplatform.errors import PlatformError
from agentplatform.observability import lambda_entry, telemetry
from functions.ingestion.pipeline import Stages

Stage = Callable[[Stages, dict[str, Any], str], dict[str, Any]]


def stages() -> Stages:
    # Cheap to build: the container caches the adapters (per Lambda container, or per local runtime).
    c = container()
    settings = c.settings
    return Stages(
        drop=c.drop_store if settings.drop_bucket_name else None,
        artifacts=c.artifacts_store if settings.artifacts_bucket_name else None,
        registry=c.registry,
        index=c.search_index if settings.knowledge_search_url else None,
        embeddings=c.embedding_model if settings.embedding_endpoint_name else None,
        meter=c.token_meter if settings.embedding_endpoint_name else None,
        events=c.event_bus if settings.platform_event_bus_name else None,
    )


# A run's share of work: up to this many object changes, and this many bytes of objects (one bigger object runs
# alone). Small documents share their embedding calls and index commit; a large one keeps its own run and memory.
RUN_MAX_DOCUMENTS = 50
RUN_MAX_BYTES = 8 * 1024 * 1024


def change_id(detail_type: str, detail: dict[str, Any]) -> str:
    """One object change's idempotency key (the same however often it is delivered); it claims the document."""
    obj = detail.get("object", {})
    identity = "|".join(
        str(part)
        for part in (
            detail.get("bucket", {}).get("name"),
            obj.get("key"),
            obj.get("version-id") or obj.get("etag") or obj.get("eTag"),
            obj.get("sequencer"),
            detail_type,
        )
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:64]


def run_name(changes: list[dict[str, Any]]) -> str:
    """A run's execution name: the same changes make the same name, so a redelivered batch starts nothing new."""
    return hashlib.sha256("|".join(sorted(c["claim"] for c in changes)).encode()).hexdigest()[:64]


def _change(record: SQSRecord) -> tuple[dict[str, Any], int]:
    """The object change an SQS record carries (an EventBridge S3 event) and the object's size."""
    try:
        event = json.loads(record.body)
    except ValueError as exc:
        raise ValueError("not JSON") from exc
    detail = (event.get("detail") or {}) if isinstance(event, dict) else {}
    obj = detail.get("object") or {}
    if not obj.get("key"):
        raise ValueError("not an S3 object event")
    change = {
        "bucket": detail.get("bucket", {}).get("name"),
        "key": obj["key"],
        "event_type": event.get("detail-type"),
        "version_id": obj.get("version-id"),
        "event_id": event.get("id") or record.message_id,
        "claim": change_id(str(event.get("detail-type")), detail),
    }
    return change, int(obj.get("size") or 0)


def runs(changes: list[tuple[str, dict[str, Any], int]]) -> list[list[tuple[str, dict[str, Any], int]]]:
    """(message id, change, size) packed into runs of at most RUN_MAX_DOCUMENTS changes and RUN_MAX_BYTES bytes;
    of several changes to one key in a batch, the last one delivered stands for them all (each run ingests the
    object as it is now, so they would all do the same)."""
    latest = {change["key"]: (message, change, size) for message, change, size in changes}
    packed: list[list[tuple[str, dict[str, Any], int]]] = []
    current: list[tuple[str, dict[str, Any], int]] = []
    weight = 0
    for item in sorted(latest.values(), key=lambda item: item[2]):
        if current and (len(current) >= RUN_MAX_DOCUMENTS or weight + item[2] > RUN_MAX_BYTES):
            packed.append(current)
            current, weight = [], 0
        current.append(item)
        weight += item[2]
    return [*packed, current] if current else packed


@lambda_entry("ingestion")
def starter(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An SQS batch of drop-folder events -> a few ingestion runs; a partial batch response names the messages to
    retry: a malformed one (the DLQ after maxReceiveCount) or those of a run that did not start."""
    logger = telemetry("ingestion").logger
    changes, failed = [], []
    for record in map(SQSRecord, event.get("Records", [])):
        try:
            changes.append((record.message_id, *_change(record)))
        except ValueError as exc:  # a poison message: retried, then the DLQ
            logger.warning("malformed ingest message", extra={"message_id": record.message_id, "error": str(exc)})
            failed.append(record.message_id)
    for run in runs(changes):
        documents = [change for _, change, _ in run]
        try:
            container().ingestion_workflow.start({"changes": documents}, name=run_name(documents))
        except PlatformError:
            logger.exception("an ingestion run did not start; its messages will be retried")
            # Every message about this run's keys comes back, a duplicate that the run stood for included.
            keys = {change["key"] for change in documents}
            failed += [m for m, change, _ in changes if change["key"] in keys]
    return {"batchItemFailures": [{"itemIdentifier": m} for m in sorted(set(failed))]}


def _stage(name: str, step: Stage) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def entry(event: dict[str, Any], context: Any) -> dict[str, Any]:
        state = step(stages(), event["state"], event["run"])
        telemetry("ingestion").metrics.add_metric(name=f"Ingestion{name.title()}", unit="Count", value=1)
        return state

    return lambda_entry("ingestion")(entry)


extract = _stage("extract", Stages.extract)
chunk = _stage("chunk", Stages.chunk)
embed = _stage("embed", Stages.embed)
index = _stage("index", Stages.index_chunks)
finalize = _stage("finalize", Stages.finalize)
delete = _stage("delete", Stages.delete)
fail = _stage("fail", Stages.fail)
