"""The retrieval function: invoked by the api (and later the agent loop's search tool) with a
RetrievalRequest; answers a SearchResult. Errors escape as platform errors, which the caller raises again."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agentplatform.bootstrap import container
from agentplatform.errors import FieldError, ValidationFailed
from agentplatform.observability import lambda_entry, telemetry
from agentplatform.retrieval import RetrievalRequest
from functions.retrieval.service import RetrievalService


def service() -> RetrievalService:
    # Cheap to build: the container caches the adapters (per Lambda container, or per local runtime).
    c = container()
    reranker = c.reranker if c.settings.rerank_endpoint_name else None
    return RetrievalService(c.search_index, c.embedding_model, reranker, c.token_meter)


# The health operation (functions/api/health.py): the search domain answers only inside the VPC, where this
# function runs; the api and the canary probe ask it here.
HEALTH_OPERATION = "health"


@lambda_entry("retrieval")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("operation") == HEALTH_OPERATION:
        container().search_index.check()
        return {"search_index": "ok"}
    try:
        request = RetrievalRequest.model_validate(event)
    except ValidationError as exc:
        errors = [FieldError(loc=tuple(e["loc"]), message=e["msg"], type=e["type"]) for e in exc.errors()]
        raise ValidationFailed("invalid retrieval request", errors=errors) from exc
    result = service().search(request)
    telemetry("retrieval").metrics.add_metric(name="RetrievalHits", unit="Count", value=len(result.hits))
    return result.model_dump(mode="json")
