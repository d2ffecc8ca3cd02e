"""The llm_gateway function: invoked (Lambda Invoke) with a ChatCall or an EmbedCall, it answers a ChatAnswer or
an EmbedAnswer; with `{"op": "usage", "tenant": ...}` (GET /v1/usage), the tenant's UsageReport. `document_changed`
is the second function's handler: a Document Changed event drops the tenant's cache entries that cite the
document. Errors escape as platform errors carrying their Retry-After and field errors in the message
(agentplatform.adapters.aws.functions), which the caller raises again whole."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentplatform.adapters.aws.functions import lambda_error_message
from agentplatform.bootstrap import Container, container
from agentplatform.errors import FieldError, PlatformError, ValidationFailed
from agentplatform.llm import ChatCall, EmbedCall
from agentplatform.observability import lambda_entry, telemetry
from functions.llm_gateway.service import LlmGateway

_built: tuple[Container, LlmGateway] | None = None
_lock = threading.Lock()


def policy_source(c: Container) -> Any:
    from agentplatform.policy_documents import FilePolicySource, SsmPolicySource
    from functions.llm_gateway.policy import DEFAULT_POLICY_PATH, parse_policy

    s = c.settings
    if s.llm_policy_parameter:
        return SsmPolicySource(s.llm_policy_parameter, c.client("ssm"), parse_policy)
    return FilePolicySource(Path(s.llm_policy_path) if s.llm_policy_path else DEFAULT_POLICY_PATH, parse_policy)


def gateway() -> LlmGateway:
    """The container's gateway, built on first use (per Lambda container, or per local runtime)."""
    global _built
    c = container()
    with _lock:
        if _built is not None and _built[0] is c:
            return _built[1]
        from agentplatform.budget import Budget
        from agentplatform.usage import UsageLedger
        from functions.llm_gateway.breaker import Breakers
        from functions.llm_gateway.cache import AnswerCache
        from functions.llm_gateway.providers import Providers

        source = policy_source(c)
        policy = source.get()  # a bad policy fails the first call, naming the field
        built = LlmGateway(
            source,
            Providers(c),
            Breakers(c.llm_state_table),
            Budget(c.limits_table, policy.budgets.period),
            # The embedding client is built on the first semantic lookup, not for calls that bypass the cache.
            AnswerCache(c.llm_cache_table, lambda: c.embedding_model),
            UsageLedger(c.llm_usage_table),
            emit=_emit,
        )
        _built = (c, built)
        return built


def _emit(values: dict[str, Any]) -> None:
    metrics = telemetry("llm_gateway").metrics
    for name in ("TokensIn", "TokensOut", "CostMicroUsd", "CacheHit", "Errors"):
        metrics.add_metric(name=name, unit="Count", value=values[name])
    metrics.add_metric(name="LatencyMs", unit="Milliseconds", value=values["LatencyMs"])
    if values.get("BudgetUsedPercent") is not None:
        metrics.add_metric(name="BudgetUsedPercent", unit="Percent", value=values["BudgetUsedPercent"])
    metrics.add_metadata(key="target", value=values["target"])


def parse_call(payload: dict[str, Any]) -> ChatCall | EmbedCall:
    model = EmbedCall if "texts" in payload and "messages" not in payload else ChatCall
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = [FieldError(loc=tuple(e["loc"]), message=e["msg"], type=e["type"]) for e in exc.errors()]
        raise ValidationFailed(f"invalid {model.__name__}", errors=errors) from exc


class UsageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["usage"]
    tenant: Annotated[str, Field(min_length=1, max_length=256)]
    tier: Annotated[str, Field(min_length=1, max_length=64)] = "standard"


def _usage_request(payload: dict[str, Any]) -> UsageRequest:
    try:
        return UsageRequest.model_validate(payload)
    except ValidationError as exc:
        errors = [FieldError(loc=tuple(e["loc"]), message=e["msg"], type=e["type"]) for e in exc.errors()]
        raise ValidationFailed("invalid usage request", errors=errors) from exc


@lambda_entry("llm_gateway")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        if event.get("op") == "usage":  # GET /v1/usage: the gateway owns the budget's limits (its policy)
            request = _usage_request(event)
            return gateway().usage(request.tenant, request.tier).model_dump(mode="json")
        call = parse_call(event)
        remaining_ms = context.get_remaining_time_in_millis()
        if isinstance(call, EmbedCall):
            return gateway().embed(call, remaining_ms).model_dump(mode="json")
        return gateway().chat(call, remaining_ms).model_dump(mode="json")
    except PlatformError as exc:
        exc.args = (lambda_error_message(exc),)  # what Lambda's errorMessage carries back to the caller
        raise


@lambda_entry("llm_gateway")
def document_changed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from functions.llm_gateway.cache import AnswerCache

    detail = event.get("detail") or {}
    tenant, doc_id = detail.get("tenant"), detail.get("doc_id")
    if not (isinstance(tenant, str) and tenant and isinstance(doc_id, str) and doc_id):
        raise ValidationFailed(
            "a Document Changed event needs detail.tenant and detail.doc_id",
            errors=[FieldError(("detail", "tenant"), "required"), FieldError(("detail", "doc_id"), "required")],
        )
    dropped = AnswerCache(container().llm_cache_table, None).invalidate_document(tenant, doc_id)
    telemetry("llm_gateway").logger.info("cache entries dropped", extra={"tenant": tenant, "dropped": dropped})
    return {"tenant": tenant, "doc_id": doc_id, "dropped": dropped}
