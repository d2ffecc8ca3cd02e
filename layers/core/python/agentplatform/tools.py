"""The tools contract: what the agent loop (and the API's MCP server) send the tools function, and what it answers.

The caller's identity travels in `ToolCaller`, filled from the turn or the API's verified credentials, never from a
tool's arguments: a tool reads the tenant from here only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentplatform.ports import Function

ToolStatus = Literal["ok", "error", "needs_approval"]


class ToolCaller(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(min_length=1)
    user: str = Field(min_length=1)
    groups: tuple[str, ...] = ()
    channel: Literal["agent", "mcp"] = "agent"
    conversation_id: str = ""  # empty outside a conversation (MCP)
    turn: int = 0
    step: int = 0
    call_id: str = ""
    idempotency_key: str = ""  # a side effect keyed on it happens once


class ToolListRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["describe"] = "describe"
    caller: ToolCaller


class ToolTrigger(BaseModel):
    """A question naming what a tool looks up (an order number, an email address) gets that call planned up
    front, beside the retrieval-first searches: small local models do not route to tools reliably. Only for
    read-only tools that need no approval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str  # a regular expression over the question; each distinct match is one call
    argument: str  # the argument that receives the match


class ToolDescription(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments
    requires_approval: bool = False  # under this tenant's policy
    side_effect: bool = False
    triggers: list[ToolTrigger] = []


class ToolList(BaseModel):
    tools: list[ToolDescription] = []

    def get(self, name: str) -> ToolDescription | None:
        return next((t for t in self.tools if t.name == name), None)


class ToolCallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["call"] = "call"
    caller: ToolCaller
    name: str
    arguments: Any = None  # validated against the tool's schema by the tools service, not here
    approved: bool = False  # an operator approved this call (the agent loop's escalation)


class ToolCallResult(BaseModel):
    status: ToolStatus
    result: dict[str, Any] | None = None
    error: str | None = None  # what the model (or the MCP client) reads
    duration_ms: float = 0.0


class ToolsClient:
    """The tools function behind typed calls."""

    def __init__(self, function: Function) -> None:
        self.function = function

    def describe(self, caller: ToolCaller) -> ToolList:
        return ToolList.model_validate(self.function.invoke(ToolListRequest(caller=caller).model_dump(mode="json")))

    def call(self, request: ToolCallRequest) -> ToolCallResult:
        return ToolCallResult.model_validate(self.function.invoke(request.model_dump(mode="json")))
