"""The ingestion functions: the SQS starter and one entry per state machine stage (ingestion.asl.json)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from agentplatform.bootstrap import container
from agentplatform.observability import CORRELATION_KEY, lambda_entry, telemetry
from functions.ingestion.pipeline import Stages

Stage = Callable[[Stages, dict[str, Any], str], dict[str, Any]]


def stages() -> Stages:
    # Cheap to build: the container caches the adapters (per Lambda container, or per local runtime).
    c = container()
    settings = c.settings
    return Stages(
        drop=c.drop_store,
        artifacts=c.artifacts_store if settings.artifacts_bucket_name else c.drop_store,
        registry=c.registry,
        index=c.search_index if settings.knowledge_search_url else None,
        embeddings=c.embedding_model if settings.embedding_endpoint_name else None,
        meter=c.token_meter if settings.embedding_endpoint_name else None,
    )


def run_name(detail_type: str, detail: dict[str, Any]) -> str:
    """The run's execution name, an idempotency key: one run per object change however often it is delivered."""
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


def _start(record: SQSRecord) -> None:
    event = json.loads(record.body)  # an EventBridge event (S3 Object Created / Object Deleted)
    detail = event.get("detail") or {}
    obj = detail.get("object") or {}
    if not obj.get("key"):
        raise ValueError("not an S3 object event")  # a poison message: retried, then the DLQ
    payload = {
        "bucket": detail.get("bucket", {}).get("name"),
        "key": obj["key"],
        "event_type": event.get("detail-type"),
        "version_id": obj.get("version-id"),
        CORRELATION_KEY: event.get("id") or record.message_id,
    }
    container().ingestion_workflow.start(payload, name=run_name(str(event.get("detail-type")), detail))


@lambda_entry("ingestion")
def starter(event: dict[str, Any], context: Any) -> Any:
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=_start, processor=processor, context=context)


def _stage(name: str, step: Stage) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def entry(event: dict[str, Any], context: Any) -> dict[str, Any]:
        state = step(stages(), event["state"], event["run"])
        telemetry("ingestion").metrics.add_metric(name=f"Ingestion{name.title()}", unit="Count", value=1)
        return state

    return lambda_entry("ingestion")(entry)


prepare = _stage("prepare", Stages.prepare)
extract = _stage("extract", Stages.extract)
chunk = _stage("chunk", Stages.chunk)
embed = _stage("embed", Stages.embed)
index = _stage("index", Stages.index_chunks)
finalize = _stage("finalize", Stages.finalize)
delete = _stage("delete", Stages.delete)
fail = _stage("fail", Stages.fail)
