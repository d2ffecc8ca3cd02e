"""The request/response contracts of the model endpoints, enforced on both sides (client adapter and server).

Embedding: the Hugging Face Text Embeddings Inference (TEI) `/embed` contract, which TEI also serves on
SageMaker's `/invocations`: `{"inputs": str | [str], "normalize": bool, "truncate": bool}` -> a JSON array
of vectors, one per input, in input order. Errors are 413 (batch too large) and 422 (input too long when
`truncate` is false) and 422 for other invalid fields, with `{"error": str, "error_type": "validation"}`.

Rerank: TEI's `/rerank` contract (also on SageMaker's `/invocations`): `{"query": str, "texts": [str],
"truncate": bool}` -> `[{"index": int, "score": float}]`, best first. No rerank model installs offline here,
so the platform calls one only where RERANK_ENDPOINT_NAME names an endpoint.

Generation: the OpenAI chat-completions shape that TGI's Messages API and the LMI container accept on
SageMaker: `messages`, optional `tools` / `tool_choice`, `max_tokens`, `temperature`, `top_p`, `stop`, ->
`choices[0].message` with `content` and/or `tool_calls`, `finish_reason`, and `usage` token counts. Tool call
`arguments` are a JSON-encoded string (OpenAI, LMI); TGI 2.x returns an object, which `FunctionCall` accepts
and re-encodes so callers see one shape.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

EMBEDDING_DIMENSION = 384  # all-MiniLM-L6-v2 (local and the default SageMaker model): the search index's size
EMBEDDING_MAX_BATCH = 32  # TEI's default max_client_batch_size
EMBEDDING_MAX_TOKENS = 256  # the model's max_seq_length in word pieces
EMBEDDING_MAX_CHARS = 20_000  # a cheap bound checked before tokenizing
BATCH_TOO_LARGE = "batch_too_large"  # the validation error type TEI answers with 413 rather than 422
CHAT_MAX_MESSAGES = 256
CHAT_MAX_TOOLS = 32
CHAT_MAX_OUTPUT_TOKENS = 4096


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: str | Annotated[list[Annotated[str, Field(max_length=EMBEDDING_MAX_CHARS)]], Field(min_length=1)]
    normalize: bool = True
    truncate: bool = False
    # TEI also truncates from the left; this platform's endpoints keep the head of a passage only.
    truncation_direction: Literal["right", "Right"] = "right"

    @field_validator("inputs")
    @classmethod
    def _bounded(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and len(value) > EMBEDDING_MAX_CHARS:
            raise ValueError(f"input is longer than {EMBEDDING_MAX_CHARS} characters")
        if isinstance(value, list) and len(value) > EMBEDDING_MAX_BATCH:
            raise PydanticCustomError(
                BATCH_TOO_LARGE,
                "batch of {size} inputs exceeds the maximum of {limit}",
                {"size": len(value), "limit": EMBEDDING_MAX_BATCH},
            )
        return value

    @property
    def texts(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)


class EmbeddingResponse(BaseModel):
    """TEI answers with a bare JSON array; this wraps it for validation."""

    vectors: list[list[float]]

    @classmethod
    def parse(cls, payload: Any, expected: int) -> EmbeddingResponse:
        response = cls(vectors=payload)
        if len(response.vectors) != expected:
            raise ValueError(f"expected {expected} vectors, got {len(response.vectors)}")
        return response


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, Field(min_length=1, max_length=EMBEDDING_MAX_CHARS)]
    texts: Annotated[list[Annotated[str, Field(max_length=EMBEDDING_MAX_CHARS)]], Field(min_length=1, max_length=256)]
    truncate: bool = True


class RerankScore(BaseModel):
    index: int = Field(ge=0)
    score: float


class RerankResponse(BaseModel):
    scores: list[RerankScore]

    @classmethod
    def parse(cls, payload: Any, expected: int) -> RerankResponse:
        response = cls(scores=payload)
        if sorted(s.index for s in response.scores) != list(range(expected)):
            raise ValueError(f"expected one score for each of the {expected} texts")
        return response


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text

    @field_validator("arguments", mode="before")
    @classmethod
    def _as_json_text(cls, value: Any) -> str:
        if isinstance(value, dict):
            return json.dumps(value)
        if isinstance(value, str):
            json.loads(value)  # must be JSON
            return value
        raise ValueError("arguments must be a JSON object or its JSON text")

    def parsed_arguments(self) -> dict[str, Any]:
        value = json.loads(self.arguments)
        if not isinstance(value, dict):
            raise ValueError("tool call arguments are not a JSON object")
        return value


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.content is None and not self.tool_calls:
            raise ValueError(f"a {self.role} message needs content")
        return self


class FunctionDefinition(BaseModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Tool(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: dict[Literal["name"], str]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `model`, `stream`, `n`, ... are accepted and ignored, as TGI does

    messages: list[ChatMessage] = Field(min_length=1, max_length=CHAT_MAX_MESSAGES)
    tools: list[Tool] | None = Field(default=None, max_length=CHAT_MAX_TOOLS)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    max_tokens: int = Field(default=256, ge=1, le=CHAT_MAX_OUTPUT_TOKENS)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> ChatRequest:
        if isinstance(self.tool_choice, NamedToolChoice):
            names = {t.function.name for t in self.tools or []}
            if self.tool_choice.function.get("name") not in names:
                raise ValueError("tool_choice names a tool that is not in tools")
        if self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs tools")
        return self


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "tool_calls"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice] = Field(min_length=1)
    usage: Usage


def estimate_tokens(text: str) -> int:
    """Model tokens in a text, estimated at ~4 characters of English per token (the BPE tokenizers of current
    LLMs). For where no exact count is at hand: a context budget for a model the service does not know, or the
    tokens of an embedding call (TEI's /embed contract reports no usage)."""
    return math.ceil(len(text) / 4)
