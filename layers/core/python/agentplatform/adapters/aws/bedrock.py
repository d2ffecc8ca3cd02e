"""The LLM gateway's Amazon Bedrock provider: chat over the Converse API, embeddings over InvokeModel (Titan Text
Embeddings), both through boto3 `bedrock-runtime`.

OpenAI's vocabulary in, Converse's out: system messages -> `system`; user, assistant and tool messages -> Converse
messages of text / toolUse / toolResult blocks (a run of tool results is one user turn, as Converse wants roles to
alternate); tools -> `toolConfig`; max_tokens / temperature / stop -> `inferenceConfig`; a json_schema
response_format -> `outputConfig.textFormat`. Back: stopReason -> finish_reason, toolUse blocks -> tool_calls with
JSON-encoded arguments, usage from `usage`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from agentplatform.adapters.aws.errors import translate
from agentplatform.adapters.aws.sagemaker_chat import TimedClients
from agentplatform.errors import (
    DependencyUnavailable,
    ModelInputRejected,
    ModelOutputInvalid,
    PlatformError,
    UpstreamThrottled,
)
from agentplatform.inference import (
    AssistantMessage,
    ChatChoice,
    ChatMessage,
    ChatResponse,
    FunctionCall,
    NamedToolChoice,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from agentplatform.llm import ChatCall

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # A filtered or guarded answer ends normally from the caller's view: the text is what the service let out.
    "guardrail_intervened": "stop",
    "content_filtered": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}
_UNAVAILABLE = {
    "ModelTimeoutException",
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelNotReadyException",
    "ModelErrorException",
    # The model is not enabled for this account or region: a deploy problem the caller cannot fix; the gateway
    # falls back to the next target.
    "AccessDeniedException",
    "ResourceNotFoundException",
}


class BedrockConverseProvider:
    name = "bedrock"

    def __init__(self, clients: TimedClients | None = None, *, embed_dimensions: int | None = None) -> None:
        self._clients = clients or TimedClients("bedrock-runtime")
        # Titan v2 answers 1024-d by default; 256 and 512 are its other sizes.
        self._embed_dimensions = embed_dimensions

    def chat(self, call: ChatCall, *, model: str, timeout_s: float) -> ChatResponse:
        request = converse_request(call, model)
        client = self._clients.get(timeout_s)
        try:
            out = client.converse(**request)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, model) from exc
        return converse_response(out, model)

    def embed(self, texts: Sequence[str], *, model: str, timeout_s: float) -> tuple[list[list[float]], Usage]:
        if not model.startswith("amazon.titan-embed-text"):
            raise ModelInputRejected(f"{model} is not a Titan text embedding model", model=model)
        client = self._clients.get(timeout_s)
        vectors: list[list[float]] = []
        tokens = 0
        for text in texts:  # Titan embeds one text per call
            body: dict[str, Any] = {"inputText": text, "normalize": True}
            if self._embed_dimensions:
                body["dimensions"] = self._embed_dimensions
            try:
                out = client.invoke_model(
                    modelId=model, body=json.dumps(body), contentType="application/json", accept="application/json"
                )
                answer = json.loads(out["body"].read())
            except (ClientError, BotoCoreError) as exc:
                raise _translate(exc, model) from exc
            except ValueError as exc:
                raise ModelOutputInvalid(f"{model} answered with non-JSON", model=model) from exc
            vector = answer.get("embedding") if isinstance(answer, dict) else None
            if not isinstance(vector, list) or not vector:
                raise ModelOutputInvalid(f"{model} answered without an embedding", model=model)
            vectors.append([float(v) for v in vector])
            tokens += int(answer.get("inputTextTokenCount") or 0)
        return vectors, Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)


def converse_request(call: ChatCall, model: str) -> dict[str, Any]:
    system = [{"text": m.content} for m in call.messages if m.role == "system" and m.content]
    messages: list[dict[str, Any]] = []
    for message in call.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if messages and messages[-1]["role"] == role:  # Converse wants the roles to alternate
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    request: dict[str, Any] = {"modelId": model, "messages": messages}
    if system:
        request["system"] = system
    inference: dict[str, Any] = {"maxTokens": call.max_tokens, "temperature": call.temperature}
    if call.stop:
        inference["stopSequences"] = list(call.stop)
    request["inferenceConfig"] = inference
    tool_config = _tool_config(call, messages)
    if tool_config:
        request["toolConfig"] = tool_config
    fmt = call.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema:
        schema = {"schema": json.dumps(fmt.json_schema["schema"]), "name": str(fmt.json_schema.get("name") or "answer")}
        request["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}
    return request


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        result = {"toolUseId": message.tool_call_id, "content": [{"text": message.content or ""}]}
        return [{"toolResult": result}]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"text": message.content})
    for tool_call in message.tool_calls or []:
        try:
            arguments = tool_call.function.parsed_arguments()
        except ValueError as exc:
            raise ModelInputRejected(f"messages: tool call {tool_call.id}: {exc}") from exc
        blocks.append({"toolUse": {"toolUseId": tool_call.id, "name": tool_call.function.name, "input": arguments}})
    return blocks


def _tool_config(call: ChatCall, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not call.tools:
        return None
    uses_tools = any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])
    if call.tool_choice == "none" and not uses_tools:
        return None  # Converse has no "none": leave the tools out (it refuses tool blocks without a toolConfig)
    tools = []
    for tool in call.tools:
        spec: dict[str, Any] = {"name": tool.function.name, "inputSchema": {"json": tool.function.parameters}}
        if tool.function.description:
            spec["description"] = tool.function.description
        tools.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": tools}
    if isinstance(call.tool_choice, NamedToolChoice):
        config["toolChoice"] = {"tool": {"name": call.tool_choice.function["name"]}}
    elif call.tool_choice == "required":
        config["toolChoice"] = {"any": {}}
    elif call.tool_choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def converse_response(out: dict[str, Any], model: str) -> ChatResponse:
    try:
        blocks = out["output"]["message"]["content"]
        finish = _STOP_REASONS[out["stopReason"]]
        usage = out["usage"]
        texts = [b["text"] for b in blocks if "text" in b]
        calls = [
            ToolCall(
                id=b["toolUse"]["toolUseId"],
                function=FunctionCall(name=b["toolUse"]["name"], arguments=json.dumps(b["toolUse"]["input"])),
            )
            for b in blocks
            if "toolUse" in b
        ]
        if finish == "tool_calls" and not calls:
            raise ValueError("stopReason tool_use without a toolUse block")
        message = AssistantMessage(content="".join(texts) if texts else None, tool_calls=calls or None)
        return ChatResponse(
            id=str(out.get("ResponseMetadata", {}).get("RequestId") or f"bedrock-{time.time_ns()}"),
            created=int(time.time()),
            model=model,
            choices=[ChatChoice(message=message, finish_reason=finish)],  # type: ignore[arg-type]
            usage=Usage(
                prompt_tokens=int(usage["inputTokens"]),
                completion_tokens=int(usage["outputTokens"]),
                total_tokens=int(usage.get("totalTokens") or usage["inputTokens"] + usage["outputTokens"]),
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        # KeyError covers a stopReason this mapping does not know (malformed_model_output, malformed_tool_use).
        raise ModelOutputInvalid(f"{model}: the Converse answer breaks the contract: {exc!r}", model=model) from exc


def _translate(exc: Exception, model: str) -> PlatformError:
    resource = f"bedrock model {model}"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == "ThrottlingException" or status == 429:
            return UpstreamThrottled(f"{resource} throttled the request", model=model, aws_code=code)
        if code in _UNAVAILABLE or status >= 500:
            return DependencyUnavailable(f"{resource} failed: {code or status}", model=model, aws_code=code)
        if code == "ValidationException" or 400 <= status < 500:
            message = exc.response.get("Error", {}).get("Message", code)
            return ModelInputRejected(f"{resource} refused the input: {message}", model=model, aws_code=code)
    return translate(exc, resource=resource)  # timeouts and connection errors: DependencyUnavailable
