"""`/v1/memory`: what the platform remembers about the caller (preferences, conversation summaries, entity facts),
to see, set and delete. Always the caller's own memory: tenant and user come from the credentials. The memory
function does the work, so a delete removes the memory from its table and its search index in one place."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from agentplatform.bodies import NOT_BLANK
from agentplatform.bootstrap import container
from agentplatform.memory import MAX_VALUE_CHARS, MEMORY_ID, PREFERENCE_KEY, Deleted, MemoryItem, MemoryKind, MemoryList
from agentplatform.principal import Principal, caller

SCOPE = "memory"

router = APIGatewayHttpRouter()

_Key = Annotated[str, Path(pattern=PREFERENCE_KEY, description="The preference's key, e.g. `language`, `office`.")]
_MemoryId = Annotated[str, Path(pattern=MEMORY_ID, description="A memory's id, from `GET /v1/memory`.")]


class Preference(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"value": "German"}]})

    value: Annotated[str, Field(min_length=1, max_length=MAX_VALUE_CHARS, pattern=NOT_BLANK)]


def _call(action: str, **fields: Any) -> Any:
    principal: Principal = caller(router.current_event.raw_event, SCOPE)
    return container().memory_function.invoke(
        {"action": action, "tenant": principal.tenant, "user": principal.subject, **fields}
    )


@router.get("/v1/memory", summary="The caller's memory", tags=["memory"])
def list_memory(
    kind: Annotated[MemoryKind | None, Query(description="Only memories of this kind.")] = None,
) -> MemoryList:
    return MemoryList.model_validate(_call("list", **({"kind": kind.value} if kind else {})))


@router.put("/v1/memory/preferences/<key>", summary="Set one of the caller's preferences", tags=["memory"])
def put_preference(key: _Key, body: Preference) -> MemoryItem:
    return MemoryItem.model_validate(_call("put_preference", key=key, value=body.value))


@router.delete("/v1/memory/<memory_id>", summary="Forget one memory (table and search index)", tags=["memory"])
def delete_memory(memory_id: _MemoryId) -> Deleted:
    return Deleted.model_validate(_call("delete", memory_id=memory_id))


@router.delete("/v1/memory", summary="Forget everything remembered about the caller", tags=["memory"])
def clear_memory() -> Deleted:
    return Deleted.model_validate(_call("clear"))
