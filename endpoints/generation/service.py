"""The generation endpoint's /invocations: OpenAI chat-completions in, chat.completion out."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from agentplatform.inference import (
    AssistantMessage,
    ChatChoice,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    FunctionCall,
    NamedToolChoice,
    ToolCall,
    Usage,
)
from endpoints.generation.engine import ChatEngine, ContextTooLong
from endpoints.generation.router import SimilarityRouter
from endpoints.generation.tools import (
    NO_TOOL,
    ToolCallFailed,
    ToolSchemaInvalid,
    choose_tool,
    generate_arguments,
    tools_system_prompt,
)
from endpoints.protocol import InvocationError, parse_request


class GenerationService:
    def __init__(self, engine: ChatEngine, router: SimilarityRouter | None = None) -> None:
        self.engine = engine
        self.router = router

    def invoke(self, body: bytes, content_type: str | None) -> tuple[int, Any]:
        try:
            request = parse_request(body, content_type, ChatRequest)
            return 200, self.chat(request).model_dump(mode="json", exclude_none=True)
        except InvocationError as exc:
            return exc.status, exc.body()
        except (ContextTooLong, ToolSchemaInvalid) as exc:
            return 422, InvocationError(422, str(exc)).body()
        except ToolCallFailed as exc:
            # 502: the model, not the request, failed; the caller gets a typed, retryable error.
            return 502, InvocationError(502, str(exc), error_type="generation").body()

    def chat(self, request: ChatRequest) -> ChatResponse:
        messages = [_template_message(m) for m in request.messages]
        tool = self._tool_to_call(request, messages)
        if tool is None:
            completion = self.engine.complete(
                self.engine.prompt_ids(messages),
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                stop=request.stop,  # type: ignore[arg-type]  # normalized to a list by the model
                seed=request.seed,
            )
            message = AssistantMessage(content=completion.text)
            usage = Usage(
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                total_tokens=completion.prompt_tokens + completion.completion_tokens,
            )
            finish = completion.finish_reason
        else:
            # Only the chosen tool's description: a shorter prompt for every constrained step.
            prompted = [{"role": "system", "content": tools_system_prompt([tool])}, *messages]
            arguments = generate_arguments(self.engine, prompted, tool)
            call = ToolCall(
                id=f"call_{uuid.uuid4().hex[:24]}",
                function=FunctionCall(name=tool["function"]["name"], arguments=json.dumps(arguments)),
            )
            message = AssistantMessage(content=None, tool_calls=[call])
            prompt_tokens = len(self.engine.prompt_ids(prompted))
            completion_tokens = self.engine.count(call.function.model_dump_json())
            usage = Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            )
            finish = "tool_calls"
        return ChatResponse(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=self.engine.model_name,
            choices=[ChatChoice(message=message, finish_reason=finish)],
            usage=usage,
        )

    def _tool_to_call(self, request: ChatRequest, messages: list[dict[str, str]]) -> dict[str, Any] | None:
        tools = _tools(request)
        if not tools or request.tool_choice == "none":
            return None
        by_name = {t["function"]["name"]: t for t in tools}
        if isinstance(request.tool_choice, NamedToolChoice):
            return by_name[request.tool_choice.function["name"]]
        name = choose_tool(self.engine, messages, tools, required=request.tool_choice == "required", router=self.router)
        return None if name == NO_TOOL else by_name[name]


def _tools(request: ChatRequest) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in request.tools or []]


def _template_message(message: ChatMessage) -> dict[str, str]:
    """Messages as the chat template takes them: tool calls and tool results become text."""
    content = message.content or ""
    if message.tool_calls:
        try:
            calls = [{"name": c.function.name, "arguments": c.function.parsed_arguments()} for c in message.tool_calls]
        except ValueError as exc:
            raise InvocationError(422, f"messages: a tool call's arguments are not a JSON object: {exc}") from exc
        content = (content + "\n" if content else "") + "".join(
            f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls
        )
    if message.role == "tool":
        content = f"<tool_response>\n{content}\n</tool_response>"
    return {"role": message.role, "content": content}
