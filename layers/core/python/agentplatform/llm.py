"""The LLM gateway's contract: what every caller (the agent loop, evaluation, memory, the API's OpenAI-compatible
routes) sends the `llm_gateway` function, and what it answers, whatever provider served the call.

One call shape for every model. Chat is OpenAI's chat-completions vocabulary (agentplatform.inference: messages,
tools, tool_choice, max_tokens, temperature, stop), plus `response_format` with a JSON schema, plus the platform's
own fields: the tenant (from the caller's credentials, never from a body), the task type the routing policy maps
to targets, and the passages an answer must come from (the `extractive` provider quotes them; the cache drops an
entry when one of their documents changes). Token usage, finish reason and tool calls come back the same way from
every provider, with `gateway`: what the gateway did (target, cache, attempts, its own overhead).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentplatform.inference import (
    CHAT_MAX_MESSAGES,
    CHAT_MAX_OUTPUT_TOKENS,
    CHAT_MAX_TOOLS,
    EMBEDDING_MAX_CHARS,
    AssistantMessage,
    ChatMessage,
    NamedToolChoice,
    Tool,
    Usage,
)
from agentplatform.retrieval import Citation

TaskType = Literal["chat", "tool_use", "summarize", "classify", "judge", "embed"]
CacheOutcome = Literal["miss", "exact", "semantic", "bypass"]
FinishReason = Literal["stop", "length", "tool_calls"]

_Id = Annotated[str, Field(min_length=1, max_length=256)]
MAX_PASSAGES = 50
MAX_EMBED_INPUTS = 256


class ResponseFormat(BaseModel):
    """`{"type": "text"}`, `{"type": "json_object"}`, or `{"type": "json_schema", "json_schema": {"name": ...,
    "schema": {...}}}` (OpenAI's shapes). A JSON answer needs a target with the `json` capability."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _schema_when_asked(self) -> ResponseFormat:
        if self.type == "json_schema" and not (self.json_schema and isinstance(self.json_schema.get("schema"), dict)):
            raise ValueError("a json_schema response_format needs json_schema.schema (a JSON Schema object)")
        return self

    @property
    def wants_json(self) -> bool:
        return self.type != "text"


class Passage(BaseModel):
    """A passage the answer may use, numbered as the prompt shows it (`[ref]`), with where it came from."""

    ref: int = Field(ge=1)
    text: Annotated[str, Field(min_length=1, max_length=EMBEDDING_MAX_CHARS)]
    citation: Citation


class ChatCall(BaseModel):
    """One chat call through the gateway."""

    model_config = ConfigDict(extra="forbid")

    tenant: _Id
    task: TaskType = "chat"
    tier: Annotated[str, Field(min_length=1, max_length=64)] = "standard"
    # Pin a target by name (the OpenAI-compatible route's `model`); None: the policy's route for the task.
    model: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=CHAT_MAX_MESSAGES)
    tools: list[Tool] | None = Field(default=None, max_length=CHAT_MAX_TOOLS)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    max_tokens: int = Field(default=256, ge=1, le=CHAT_MAX_OUTPUT_TOKENS)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stop: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, max_length=4)
    response_format: ResponseFormat | None = None
    passages: list[Passage] = Field(default_factory=list, max_length=MAX_PASSAGES)
    # The caller's remaining time: the gateway never waits on a provider past it.
    deadline_ms: int | None = Field(default=None, ge=1)
    cache: Literal["default", "bypass"] = "default"

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> ChatCall:
        names = {t.function.name for t in self.tools or []}
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function.get("name") not in names:
            raise ValueError("tool_choice names a tool that is not in tools")
        if self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs tools")
        return self

    @property
    def needs_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def needs_json(self) -> bool:
        return self.response_format is not None and self.response_format.wants_json


class GatewayInfo(BaseModel):
    """What the gateway did for one call."""

    target: str = Field(description="The target that answered (a policy target's name).")
    provider: str
    cache: CacheOutcome
    attempts: int = Field(ge=0, description="Provider calls made, retries and fallbacks included.")
    skipped: list[str] = Field(default_factory=list, description="Targets passed over, each with why.")
    overhead_ms: float = Field(description="The gateway's own time: the call's latency minus the provider calls.")
    latency_ms: float
    cost_usd: float
    policy_version: int


class ChatAnswer(BaseModel):
    message: AssistantMessage
    finish_reason: FinishReason
    usage: Usage
    gateway: GatewayInfo


class EmbedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: _Id
    texts: list[Annotated[str, Field(max_length=EMBEDDING_MAX_CHARS)]] = Field(
        min_length=1, max_length=MAX_EMBED_INPUTS
    )
    model: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    tier: Annotated[str, Field(min_length=1, max_length=64)] = "standard"
    deadline_ms: int | None = Field(default=None, ge=1)


class EmbedAnswer(BaseModel):
    vectors: list[list[float]]
    usage: Usage
    gateway: GatewayInfo


class UsageLine(BaseModel):
    task: str
    target: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class UsageReport(BaseModel):
    """`GET /v1/usage`: a tenant's model use this period, by task and target, and what its budget has left."""

    tenant: str
    period: str = Field(description="The budget period: `2026-12` (month) or `2026-12-03` (day).")
    resets_at: str = Field(description="When the period ends (ISO 8601, UTC).")
    lines: list[UsageLine]
    tokens_used: int
    tokens_limit: int
    tokens_left: int
    cost_used_usd: float
    cost_limit_usd: float
    cost_left_usd: float
    records: int = Field(description="Per-call records this report sums.")


# The largest output a caller may ask for: the OpenAI route refuses more with a 422 naming max_tokens.
MAX_OUTPUT_TOKENS = CHAT_MAX_OUTPUT_TOKENS
