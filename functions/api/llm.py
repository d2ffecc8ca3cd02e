"""The OpenAI-compatible routes: `POST /v1/chat/completions` and `POST /v1/embeddings` (scope `llm`) in OpenAI's
request and response shapes, so the official `openai` client works unchanged against the platform, and
`GET /v1/usage` (scope `usage`). Every call goes through the LLM gateway function (its own service, reached by
Lambda Invoke); the tenant is the caller's, from its credentials, never from the body.

`model` is a target of the gateway's policy, or `auto` / omitted for the policy's route for the task (`chat`,
`tool_use` when tools are given). What the gateway did comes back in headers: `x-gateway-target`,
`x-gateway-cache`, `x-gateway-attempts`, `x-gateway-overhead-ms`.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Discriminator, Field, field_validator, model_validator

from agentplatform.bootstrap import container
from agentplatform.errors import FieldError, ValidationFailed
from agentplatform.inference import (
    CHAT_MAX_MESSAGES,
    CHAT_MAX_TOOLS,
    EMBEDDING_MAX_CHARS,
    ChatMessage,
    NamedToolChoice,
    Tool,
)
from agentplatform.llm import (
    MAX_EMBED_INPUTS,
    MAX_OUTPUT_TOKENS,
    ChatAnswer,
    ChatCall,
    EmbedAnswer,
    EmbedCall,
    GatewayInfo,
    ResponseFormat,
    UsageReport,
)
from agentplatform.principal import caller
from functions.api.problems import PROBLEM_JSON

LLM_SCOPE = "llm"
USAGE_SCOPE = "usage"
AUTO = "auto"
# Kept back from the API's remaining time for the answer to travel back once the gateway gives up.
_DEADLINE_MARGIN_MS = 1_000

router = APIGatewayHttpRouter()


class UnsupportedParameter(ValidationFailed):
    """An OpenAI parameter the platform does not implement (streaming, several choices): refused at once."""

    code, status, title = "unsupported_parameter", 400, "Unsupported parameter"


class OpenAIFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: Annotated[str, Field(max_length=1024)] | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _checked_schema(value)


def _checked_schema(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema the platform will hand a model: checked against its metaschema here, so a bad one is the
    caller's 422 naming the field, not a provider's failure."""
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(value).check_schema(value)
    except SchemaError as exc:
        raise ValueError(f"not a JSON Schema: {exc.message}") from exc
    return value


class OpenAITool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: OpenAIFunction


_ModelName = Annotated[str, Field(min_length=1, max_length=128)]
_FunctionName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
_Text = Annotated[str, Field(min_length=1)]

# The request's messages, one shape per role as OpenAI documents them, so the schema states what each role needs
# (ChatMessage's own schema leaves its "content or tool_calls" rule out); each becomes the gateway's ChatMessage.


class OpenAIFunctionCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: _FunctionName
    arguments: str = Field(description="The call's arguments: a JSON object's text, as the model wrote it.")

    @field_validator("arguments")
    @classmethod
    def _object_text(cls, value: str) -> str:
        # Every provider hands the model these arguments as an object (Converse's toolUse input, TGI's history).
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError("arguments must be a JSON object's text") from exc
        if not isinstance(parsed, dict):
            raise ValueError("arguments must be a JSON object's text")
        return value


class OpenAIToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: _Text
    type: Literal["function"] = "function"
    function: OpenAIFunctionCall


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None


class SystemMessage(_Message):
    role: Literal["system"]
    content: str


class UserMessage(_Message):
    role: Literal["user"]
    content: str


class AssistantTurn(_Message):
    """An earlier assistant turn: its text, its tool calls, or both."""

    # Either may be null (the official client echoes `content: null` beside tool calls), not both.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["content"], "properties": {"content": {"type": "string"}}},
                {"required": ["tool_calls"], "properties": {"tool_calls": {"type": "array"}}},
            ]
        },
    )

    role: Literal["assistant"]
    content: str | None = None
    tool_calls: list[OpenAIToolCall] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _says_something(self) -> AssistantTurn:
        if self.content is None and self.tool_calls is None:
            raise ValueError("an assistant message needs content or tool_calls")
        return self


class ToolResult(_Message):
    role: Literal["tool"]
    content: str
    tool_call_id: _Text


OpenAIMessage = Annotated[SystemMessage | UserMessage | AssistantTurn | ToolResult, Discriminator("role")]


class OpenAINamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class Function(BaseModel):
        model_config = ConfigDict(extra="forbid")

        name: _FunctionName

    type: Literal["function"] = "function"
    function: Function


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_object"]


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: _FunctionName
    description: str | None = None
    # `schema` shadows a BaseModel attribute: aliased.
    json_schema: dict[str, Any] = Field(alias="schema", description="The JSON Schema the answer must match.")
    strict: bool | None = None

    @field_validator("json_schema")
    @classmethod
    def _json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _checked_schema(value)


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


OpenAIResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Discriminator("type")]


class ChatCompletionBody(BaseModel):
    """OpenAI's chat-completions request. Parameters the platform ignores are accepted (`user`, `seed`, penalties,
    ...); `stream: true` and `n` > 1 are refused with a 400; anything else unknown is a 422 (a `tenant` too)."""

    model_config = ConfigDict(extra="forbid")

    model: _ModelName | None = Field(default=None, description="A policy target, or `auto` for the task's route.")
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=CHAT_MAX_MESSAGES)
    tools: list[OpenAITool] | None = Field(default=None, max_length=CHAT_MAX_TOOLS)
    tool_choice: Literal["auto", "none", "required"] | OpenAINamedToolChoice | None = Field(
        default=None, description="`required` needs `tools`; a named tool must be one of `tools`."
    )
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stop: _Text | Annotated[list[_Text], Field(min_length=1, max_length=4)] | None = None
    response_format: OpenAIResponseFormat | None = None
    # The schema says what is served (no streaming, one choice); the handler refuses the rest with a 400 naming
    # the parameter rather than a bare 422, since OpenAI clients send them.
    stream: bool = Field(default=False, json_schema_extra={"const": False})
    n: int = Field(default=1, ge=1, json_schema_extra={"maximum": 1})
    # Accepted and ignored: they change nothing the platform promises.
    user: str | None = None
    seed: int | None = None
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> ChatCompletionBody:
        names = {t.function.name for t in self.tools or []}
        if isinstance(self.tool_choice, OpenAINamedToolChoice) and self.tool_choice.function.name not in names:
            raise ValueError("tool_choice names a tool that is not in tools")
        if self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs tools")
        return self


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: (
        Annotated[str, Field(min_length=1, max_length=EMBEDDING_MAX_CHARS)]
        | Annotated[
            list[Annotated[str, Field(min_length=1, max_length=EMBEDDING_MAX_CHARS)]],
            Field(min_length=1, max_length=MAX_EMBED_INPUTS),
        ]
    )
    model: _ModelName | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class ChatCompletionChoice(BaseModel):
    index: int
    message: dict[str, Any]
    finish_reason: str
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = Field(description="The policy target that answered.")
    choices: list[ChatCompletionChoice]
    usage: CompletionUsage


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 little-endian float32 when asked.")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_GATEWAY_HEADERS = {
    "x-gateway-target": {"description": "The policy target that answered.", "schema": {"type": "string"}},
    "x-gateway-cache": {
        "description": "The answer cache's part.",
        "schema": {"type": "string", "enum": ["miss", "exact", "semantic", "bypass"]},
    },
    "x-gateway-attempts": {"description": "Provider calls made.", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "x-gateway-overhead-ms": {
        "description": "The gateway's own time.",
        "schema": {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{3}$"},
    },
}
# Every error these routes answer is the API's problem+json (openapi.describe adds API Gateway's own answers).
_RESPONSES = {
    401: {"description": "No valid credentials"},
    422: {"description": "Invalid request (problem+json naming the field), an unknown model included"},
    429: {"description": "Over the tenant's request rate or model budget (see Retry-After)"},
    503: {
        "description": "No model target could answer: retry after `Retry-After` seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        "content": _PROBLEM,
    },
}


@router.post(
    "/v1/chat/completions",
    summary="Chat completion (OpenAI-compatible)",
    description=(
        "OpenAI's chat-completions request and `chat.completion` answer, through the LLM gateway: routing by task "
        "and cost policy, retries, fallbacks, budgets, cache. `model`: a policy target, or `auto`. No streaming: "
        f"`stream: true` is a 400. Needs the `{LLM_SCOPE}` scope."
    ),
    tags=["llm"],
    responses={
        200: {
            "description": "The completion; x-gateway-* headers say what the gateway did.",
            "headers": _GATEWAY_HEADERS,
        },
        400: {"description": "An unsupported parameter (stream, n > 1)", "content": _PROBLEM},
        403: {"description": f"The credentials lack the `{LLM_SCOPE}` scope"},
        **_RESPONSES,
    },
)
def chat_completions(body: ChatCompletionBody) -> Response[ChatCompletion]:
    principal = caller(router.current_event.raw_event, LLM_SCOPE)
    if body.stream:
        raise _unsupported("stream", "streaming is not supported: send stream false (or omit it)")
    if body.n != 1:
        raise _unsupported("n", "one choice per request: n must be 1")
    pinned = None if body.model in (None, AUTO) else body.model
    tools = [Tool.model_validate(t.model_dump(exclude={"function": {"strict"}})) for t in body.tools or []]
    call = ChatCall(
        tenant=principal.tenant,
        task="tool_use" if tools and body.tool_choice != "none" else "chat",
        model=pinned,
        messages=[ChatMessage.model_validate(m.model_dump(exclude_none=True)) for m in body.messages],
        tools=tools or None,
        tool_choice=_tool_choice(body.tool_choice),
        max_tokens=body.max_completion_tokens or body.max_tokens or 256,
        temperature=body.temperature,
        stop=body.stop,
        response_format=_response_format(body.response_format),
        deadline_ms=_deadline_ms(),
    )
    answer = ChatAnswer.model_validate(_invoke(call.model_dump(mode="json", exclude_none=True), pinned))
    completion = ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=answer.gateway.target,
        choices=[
            ChatCompletionChoice(
                index=0,
                message=answer.message.model_dump(mode="json", exclude_none=True),
                finish_reason=answer.finish_reason,
            )
        ],
        usage=CompletionUsage(**answer.usage.model_dump()),
    )
    return _answer(completion, answer.gateway)


@router.post(
    "/v1/embeddings",
    summary="Embeddings (OpenAI-compatible)",
    description=(
        "OpenAI's embeddings request and list answer, through the LLM gateway (the policy's `embed` route, or the "
        f"target `model` names). Floats, or base64 when `encoding_format` asks. Needs the `{LLM_SCOPE}` scope."
    ),
    tags=["llm"],
    responses={
        200: {"description": "One embedding per input, in input order", "headers": _GATEWAY_HEADERS},
        403: {"description": f"The credentials lack the `{LLM_SCOPE}` scope"},
        **_RESPONSES,
    },
)
def embeddings(body: EmbeddingsBody) -> Response[EmbeddingList]:
    principal = caller(router.current_event.raw_event, LLM_SCOPE)
    pinned = None if body.model in (None, AUTO) else body.model
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    call = EmbedCall(tenant=principal.tenant, texts=texts, model=pinned, deadline_ms=_deadline_ms())
    answer = EmbedAnswer.model_validate(_invoke(call.model_dump(mode="json", exclude_none=True), pinned))
    if body.dimensions is not None and answer.vectors and len(answer.vectors[0]) != body.dimensions:
        error = FieldError(("body", "dimensions"), f"{answer.gateway.target} answers {len(answer.vectors[0])}")
        raise ValidationFailed("the model does not answer that many dimensions", errors=[error])
    listing = EmbeddingList(
        data=[
            Embedding(index=i, embedding=_encoded(vector, body.encoding_format))
            for i, vector in enumerate(answer.vectors)
        ],
        model=answer.gateway.target,
        usage=EmbeddingUsage(prompt_tokens=answer.usage.prompt_tokens, total_tokens=answer.usage.total_tokens),
    )
    return _answer(listing, answer.gateway)


@router.get(
    "/v1/usage",
    summary="The tenant's model usage this period",
    description=(
        "Model use by task and target this budget period (the sum of the gateway's per-call records), what the "
        f"budget has left and when it resets. Needs the `{USAGE_SCOPE}` scope."
    ),
    tags=["llm"],
    responses={
        200: {"description": "The usage report"},
        401: {"description": "No valid credentials"},
        403: {"description": f"The credentials lack the `{USAGE_SCOPE}` scope"},
    },
)
def usage() -> UsageReport:
    principal = caller(router.current_event.raw_event, USAGE_SCOPE)
    # The gateway owns the budget's limits (its policy), so it writes the report.
    answer = container().llm_gateway_function.invoke({"op": "usage", "tenant": principal.tenant})
    return UsageReport.model_validate(answer)


def _invoke(payload: dict[str, Any], pinned: str | None) -> Any:
    try:
        return container().llm_gateway_function.invoke(payload)
    except ValidationFailed as exc:
        # The call was validated here against the same contract, so what the gateway still refuses is what only
        # its policy knows: the pinned model. Its fields are the call's; the caller's are in the body.
        errors = [FieldError(("body", *_body_loc(e.loc)), e.message, e.type) for e in exc.errors]
        if not errors and pinned is not None:  # the error crossed without its fields
            errors = [FieldError(("body", "model"), f"{pinned!r} is not a model of this platform", "unknown_model")]
        raise ValidationFailed(exc.detail, errors=errors) from exc


def _tool_choice(choice: str | OpenAINamedToolChoice | None) -> str | NamedToolChoice | None:
    if isinstance(choice, OpenAINamedToolChoice):
        return NamedToolChoice(function={"name": choice.function.name})
    return choice


def _response_format(fmt: TextFormat | JsonObjectFormat | JsonSchemaFormat | None) -> ResponseFormat | None:
    if fmt is None:
        return None
    spec = fmt.json_schema.model_dump(by_alias=True, exclude_none=True) if isinstance(fmt, JsonSchemaFormat) else None
    return ResponseFormat(type=fmt.type, json_schema=spec)


def _body_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """A gateway call's field as the OpenAI body names it (EmbedCall's `texts` is the body's `input`)."""
    return ("input", *loc[1:]) if loc[:1] == ("texts",) else loc


def _answer(body: BaseModel, info: GatewayInfo) -> Response[Any]:
    headers = {
        "x-gateway-target": info.target,
        "x-gateway-cache": info.cache,
        "x-gateway-attempts": str(info.attempts),
        "x-gateway-overhead-ms": f"{info.overhead_ms:.3f}",
    }
    return Response(status_code=200, content_type="application/json", body=body, headers=headers)


def _unsupported(field: str, message: str) -> UnsupportedParameter:
    error = FieldError(("body", field), message, "unsupported")
    return UnsupportedParameter(f"{field}: {message}", errors=[error])


def _deadline_ms() -> int | None:
    context = router.lambda_context
    remaining = context.get_remaining_time_in_millis() if context is not None else None
    return remaining - _DEADLINE_MARGIN_MS if remaining and remaining > 2 * _DEADLINE_MARGIN_MS else None


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    # base64: little-endian float32, what the official client asks for by default and decodes itself.
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector
