"""Logs, traces, metrics and the correlation id, built lazily per service.

The correlation id is what ties one user action together across API Gateway -> Step Functions -> Lambda ->
SQS/EventBridge: it arrives in the `x-correlation-id` header (or the API request id), is put into every
state machine input and event detail as `correlation_id`, and into SQS messages as a message attribute of
the same name. Handlers never pass it around: `lambda_entry` reads it from the event and every log line and
outgoing message picks it up from here.
"""

from __future__ import annotations

import base64
import functools
import json
import warnings
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agentplatform.principal import TENANT_CLAIMS

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

CORRELATION_HEADER = "x-correlation-id"
CORRELATION_KEY = "correlation_id"
METRICS_NAMESPACE = "AgentPlatform"
# Keys a log line carries when its invocation is about one tenant, conversation or turn (log_keys).
LOG_KEYS = ("tenant", "conversation_id", "turn")

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


def correlation_from_event(event: Any, context: Any = None) -> str | None:
    """Find the correlation id in any event shape the platform's Lambdas receive.

    One rule for every carrier: a field named `correlation_id` at the top of a direct invoke or Step Functions
    task payload, the `x-correlation-id` header (else the request id) of an API event, `detail.correlation_id`
    of an EventBridge event, the `correlation_id` message attribute of an SQS record (else the same fields of
    its JSON body: an EventBridge rule's SQS target delivers the whole event as the body), and last the
    `custom.correlation_id` of a Lambda invoke's ClientContext.
    """
    found = _correlation_in(event) if isinstance(event, Mapping) else None
    if found:
        return found
    custom = getattr(getattr(context, "client_context", None), "custom", None)
    if isinstance(custom, Mapping) and isinstance(custom.get(CORRELATION_KEY), str):
        return custom[CORRELATION_KEY]
    return None


def _correlation_in(event: Mapping[str, Any]) -> str | None:
    if isinstance(event.get(CORRELATION_KEY), str):  # direct invokes and Step Functions task payloads
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
    if value:
        return str(value)
    body = record.get("body")
    if isinstance(body, str) and body.startswith("{"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        if isinstance(parsed, Mapping):
            return _correlation_in(parsed)
    return None


def log_keys(event: Any) -> dict[str, str]:
    """The tenant / conversation / turn an event is about, for every log line of its invocation.

    Read from where the platform's payloads keep them: an API event's verified authorizer context (never a
    body), a turn's `ctx` (Step Functions task payloads carry it at the top, in `state` or in a Map `item`), an
    EventBridge event's detail.
    """
    if not isinstance(event, Mapping):
        return {}
    if isinstance(event.get("requestContext"), Mapping):
        authorizer = event["requestContext"].get("authorizer") or {}
        claims = authorizer.get("lambda") or (authorizer.get("jwt") or {}).get("claims") or {}
        tenant = next((claims[c] for c in TENANT_CLAIMS if isinstance(claims, Mapping) and claims.get(c)), None)
        return {"tenant": str(tenant)} if tenant else {}
    candidates = [event, event.get("ctx"), event.get("detail")]
    for key in ("state", "item"):
        nested = event.get(key)
        if isinstance(nested, Mapping):
            candidates.append(nested.get("ctx"))
    keys: dict[str, str] = {}
    for candidate in candidates:
        if isinstance(candidate, Mapping):
            for key in LOG_KEYS:
                value = candidate.get(key)
                if key not in keys and isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                    keys[key] = str(value)
    return keys


def client_context() -> str | None:
    """A Lambda invoke's ClientContext (base64 JSON) carrying the current correlation id, for callers whose
    payload is not a mapping of the platform's (the payload's own `correlation_id` is the primary carrier)."""
    cid = correlation_id()
    if not cid:
        return None
    return base64.b64encode(json.dumps({"custom": {CORRELATION_KEY: cid}}).encode()).decode()


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
            cid = correlation_from_event(event, context) or getattr(context, "aws_request_id", None)
            token = _correlation_id.set(cid)
            logger = telemetry(service).logger
            # Thread-safe keys live in a context variable: the local runtime runs a service's functions on
            # several threads at once, and one invocation's id must not label another's lines.
            keys = {CORRELATION_KEY: cid, **log_keys(event)}
            logger.thread_safe_append_keys(**keys)
            if isinstance(event, Mapping) and CORRELATION_KEY in event:
                # The id is transport, not input: handlers validate their payloads strictly (extra="forbid").
                event = {k: v for k, v in event.items() if k != CORRELATION_KEY}
            try:
                return fn(event, context)
            finally:
                logger.thread_safe_remove_keys(keys)
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

        entry.lambda_entry_service = service  # type: ignore[attr-defined]  # tests check every handler has one
        return entry  # type: ignore[return-value]

    return decorate
