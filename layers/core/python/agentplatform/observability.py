"""Logs, traces, metrics and the correlation id, built lazily per service.

The correlation id is what ties one user action together across API Gateway -> Step Functions -> Lambda ->
SQS/EventBridge: it arrives in the `x-correlation-id` header (or the API request id), is put into every
state machine input and event detail as `correlation_id`, and into SQS messages as a message attribute of
the same name. Handlers never pass it around: `lambda_entry` reads it from the event and every log line and
outgoing message picks it up from here.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

CORRELATION_HEADER = "x-correlation-id"
CORRELATION_KEY = "correlation_id"
METRICS_NAMESPACE = "AgentPlatform"

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

Handler = TypeVar("Handler", bound=Callable[..., Any])


@dataclass(frozen=True)
class Telemetry:
    logger: Logger
    tracer: Tracer
    metrics: Metrics


@functools.cache
def telemetry(service: str) -> Telemetry:
    """One Logger/Tracer/Metrics trio per service, built on first use (never at import)."""
    from aws_lambda_powertools import Logger, Metrics, Tracer

    # A request that records no business metric is normal (health checks); Powertools warns on each one.
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    return Telemetry(
        logger=Logger(service=service),
        tracer=Tracer(service=service),
        metrics=Metrics(service=service, namespace=METRICS_NAMESPACE),
    )


def correlation_id() -> str | None:
    return _correlation_id.get()


def correlation_from_event(event: Any) -> str | None:
    """Find the correlation id in any event shape the platform's Lambdas receive."""
    if not isinstance(event, Mapping):
        return None
    if isinstance(event.get(CORRELATION_KEY), str):  # Step Functions task payloads
        return event[CORRELATION_KEY]
    headers = event.get("headers")
    if isinstance(headers, Mapping):  # API Gateway (header names are lower-case in payload v2)
        value = headers.get(CORRELATION_HEADER)
        if value:
            return str(value)
        request_id = event.get("requestContext", {}).get("requestId")
        return str(request_id) if request_id else None
    detail = event.get("detail")
    if isinstance(detail, Mapping) and isinstance(detail.get(CORRELATION_KEY), str):  # EventBridge
        return detail[CORRELATION_KEY]
    records = event.get("Records")
    if isinstance(records, list) and records:  # SQS: the first record's; batch processors set it per record
        return sqs_record_correlation_id(records[0])
    return None


def sqs_record_correlation_id(record: Mapping[str, Any]) -> str | None:
    attribute = (record.get("messageAttributes") or {}).get(CORRELATION_KEY) or {}
    value = attribute.get("stringValue")
    return str(value) if value else None


def sqs_correlation_attribute() -> dict[str, dict[str, str]]:
    """The message attribute that carries the current correlation id into an SQS message."""
    cid = correlation_id()
    return {CORRELATION_KEY: {"DataType": "String", "StringValue": cid}} if cid else {}


def with_correlation(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a state machine input or event detail carrying the current correlation id."""
    out = dict(payload)
    cid = correlation_id()
    if cid and CORRELATION_KEY not in out:
        out[CORRELATION_KEY] = cid
    return out


def lambda_entry(service: str) -> Callable[[Handler], Handler]:
    """Wrap a Lambda handler with the service's logger (Lambda context + correlation id), tracer and metrics.

    The Powertools objects and decorators are built on the first invocation, so importing a handler module
    reads no environment and costs nothing.
    """

    def decorate(fn: Handler) -> Handler:
        instrumented: Callable[[Any, Any], Any] | None = None

        def with_correlation_id(event: Any, context: Any) -> Any:
            cid = correlation_from_event(event) or getattr(context, "aws_request_id", None)
            token = _correlation_id.set(cid)
            telemetry(service).logger.set_correlation_id(cid)
            try:
                return fn(event, context)
            finally:
                _correlation_id.reset(token)

        @functools.wraps(fn)
        def entry(event: Any, context: Any) -> Any:
            nonlocal instrumented
            if instrumented is None:
                tools = telemetry(service)
                instrumented = tools.logger.inject_lambda_context(clear_state=True)(
                    tools.tracer.capture_lambda_handler(tools.metrics.log_metrics(with_correlation_id))
                )
            return instrumented(event, context)

        return entry  # type: ignore[return-value]

    return decorate
