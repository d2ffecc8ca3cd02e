"""The memory function: turn.completed events from the platform bus (learn), and requests from the agent loop's
load step (recall) and the api (list, put_preference, delete, clear), as agentplatform.memory's contract."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agentplatform.bootstrap import Container, container
from agentplatform.errors import FieldError, ValidationFailed
from agentplatform.memory import (
    ClearRequest,
    Deleted,
    DeleteRequest,
    ListRequest,
    MemoryList,
    MemoryRequest,
    PutPreferenceRequest,
    RecallRequest,
)
from agentplatform.observability import lambda_entry, telemetry
from functions.memory.service import MemoryService, Turn

_REQUEST: TypeAdapter[Any] = TypeAdapter(MemoryRequest)
_LEARNED_KINDS = ("generated", "extractive")  # answers from the documents; not abstentions, failures, operators


def service() -> MemoryService:
    c = container()
    gateway = c.llm_gateway_function if c.settings.llm_gateway_function_name else None
    return MemoryService(
        c.memory_table, _ready_index(c), c.embedding_model, gateway=gateway, classify=c.settings.memory_classify
    )


@cache
def _ready_index(c: Container) -> Any:
    index = c.memory_index
    index.ensure()  # once per container: creating the index (OpenSearch) is idempotent but not free
    return index


@lambda_entry("memory")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("detail-type") == "turn.completed":
        return _learn(event.get("detail") or {})
    try:
        request = _REQUEST.validate_python(event)
    except ValidationError as exc:
        errors = [FieldError(loc=tuple(e["loc"]), message=e["msg"], type=e["type"]) for e in exc.errors()]
        raise ValidationFailed("invalid memory request", errors=errors) from exc
    memory = service()
    match request:
        case RecallRequest():
            recalled = memory.recall(request.tenant, request.user, request.conversation_id, request.question)
            telemetry("memory").metrics.add_metric(name="MemoryRecalled", unit="Count", value=len(recalled.notes))
            return recalled.model_dump(mode="json")
        case ListRequest():
            return MemoryList(items=memory.list(request.tenant, request.user, request.kind)).model_dump(mode="json")
        case PutPreferenceRequest():
            return memory.put_preference(request.tenant, request.user, request.key, request.value).model_dump(
                mode="json"
            )
        case DeleteRequest():
            return Deleted(deleted=memory.delete(request.tenant, request.user, request.memory_id)).model_dump()
        case ClearRequest():
            return Deleted(deleted=memory.clear(request.tenant, request.user)).model_dump()
    raise AssertionError("unreachable: the request union is exhaustive")


def _learn(detail: dict[str, Any]) -> dict[str, Any]:
    log = telemetry("memory").logger
    if not (detail.get("tenant") and detail.get("user") and detail.get("conversation_id") and detail.get("turn")):
        log.warning("turn.completed without its tenant, user, conversation or turn: nothing learned")
        return {"learned": False}
    turn = Turn(
        tenant=str(detail["tenant"]),
        user=str(detail["user"]),
        conversation_id=str(detail["conversation_id"]),
        turn=int(detail["turn"]),
        question=str(detail.get("question") or ""),
        answer=str(detail.get("answer") or ""),
        answered=detail.get("status") == "answered" and detail.get("answer_kind") in _LEARNED_KINDS,
    )
    learned = service().learn(turn)
    log.info(
        "turn learned",
        extra={"tenant": turn.tenant, "conversation_id": turn.conversation_id, "turn": turn.turn, **learned},
    )
    telemetry("memory").metrics.add_metric(name="MemoryLearned", unit="Count", value=sum(learned.values()))
    return {"learned": True, **learned}
