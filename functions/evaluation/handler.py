"""The evaluator function: SQS batches of `turn.completed` events (the `evaluation` queue, fed by a rule on the
platform bus) -> one evaluation each; a partial batch response retries only the messages that failed (an
unreachable table, bus or gateway; a malformed event goes to the DLQ after the queue's retries)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from agentplatform.bootstrap import Container, container
from agentplatform.evaluation import EvaluationRecord
from agentplatform.observability import METRICS_NAMESPACE, lambda_entry, sqs_record_correlation_id, telemetry
from functions.evaluation.service import Evaluator

PLATFORM_DIMENSION = "scope"  # the platform-wide series: one alarm for every tenant and route

if TYPE_CHECKING:
    from functions.evaluation.policy import FilePolicySource, StaticPolicySource

_built: tuple[Container, Evaluator] | None = None
_lock = threading.Lock()


def evaluator() -> Evaluator:
    """The container's evaluator, built on first use (per Lambda container, or per local runtime)."""
    global _built
    c = container()
    with _lock:
        if _built is not None and _built[0] is c:
            return _built[1]
        from agentplatform.adapters.aws.evaluations import EvaluationStore
        from functions.evaluation.policy import (
            DEFAULT_POLICY_PATH,
            FilePolicySource,
            StaticPolicySource,
            parse_policy,
        )

        s = c.settings
        path = Path(s.evaluation_policy_path) if s.evaluation_policy_path else DEFAULT_POLICY_PATH
        source: StaticPolicySource | FilePolicySource = (
            StaticPolicySource(parse_policy(s.evaluation_policy, "EVALUATION_POLICY"))
            if s.evaluation_policy  # AWS: the JSON itself, from CDK
            else FilePolicySource(path)
        )
        built = Evaluator(
            EvaluationStore(s.require("evaluations_table_name"), c.client("dynamodb")),
            source.get,
            gateway=c.llm_gateway_function if s.llm_gateway_function_name else None,
            bus=c.event_bus if s.platform_event_bus_name else None,
            emit=emit_metrics,
        )
        _built = (c, built)
        return built


def emit_metrics(record: EvaluationRecord) -> None:
    """EMF: each score by tenant, by answering route, and platform-wide (what the CloudWatch alarms watch,
    infra/cdk/evaluation.py); one metric set per record, since a batch mixes tenants."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():  # single_metric prints even then (the local runtime disables metrics)
        return
    values = {name: score.value for name, score in record.scores.items() if score.status == "ok"}
    failed = sum(1 for score in record.scores.values() if score.status == "failed")
    for dimension, value in (("tenant", record.tenant), ("route", record.route), (PLATFORM_DIMENSION, "all")):
        for name, number in (*values.items(), ("ScorerFailures", failed)):
            unit = MetricUnit.Milliseconds if name == "latency_ms" else MetricUnit.Count
            with single_metric(
                name=f"Eval_{name}", unit=unit, value=float(number or 0), namespace=METRICS_NAMESPACE
            ) as metric:
                metric.add_dimension(name=dimension, value=value)


def _record(record: SQSRecord) -> None:
    # A batch mixes turns: each record's lines carry its own turn's correlation id (the event's detail holds it).
    cid = sqs_record_correlation_id(record.raw_event)
    if cid:
        telemetry("evaluation").logger.set_correlation_id(cid)
    event = json.loads(record.body)
    detail = event.get("detail") if isinstance(event, dict) and "detail" in event else event
    scored = evaluator().handle(detail)
    telemetry("evaluation").logger.info(
        "turn evaluated" if scored else "turn not sampled",
        extra={
            "tenant": (detail or {}).get("tenant"),
            "conversation_id": (detail or {}).get("conversation_id"),
            "turn": (detail or {}).get("turn"),
            "failed_scores": [n for n, s in scored.scores.items() if s.status == "failed"] if scored else [],
        },
    )


@lambda_entry("evaluation")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=_record, processor=BatchProcessor(event_type=EventType.SQS), context=context
    )
