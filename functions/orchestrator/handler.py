"""The agent loop's Lambda tasks: one entry per state of statemachines/agent_loop.asl.json. Thin: each takes the
run's state from the task's payload, calls one step of the AgentLoop, and returns the new state."""

from __future__ import annotations

from typing import Any

from agentplatform.bootstrap import container
from agentplatform.errors import ConfigurationError, PlatformError
from agentplatform.memory import MAX_QUESTION_CHARS, RecallRequest, Recollection
from agentplatform.observability import lambda_entry, telemetry
from agentplatform.ports import Function
from agentplatform.tools import ToolsClient
from functions.orchestrator.service import AgentLoop, Recall


def loop() -> AgentLoop:
    c = container()
    settings = c.settings
    gateway = c.llm_gateway_function if settings.llm_gateway_function_name else _Unavailable("llm_gateway")
    tools = c.tools_function if settings.tools_function_name else _Unavailable("tools")
    bus = c.event_bus if settings.platform_event_bus_name else None
    recall = _recall(c.memory_function) if settings.memory_function_name else None
    return AgentLoop(
        c.conversations, gateway, ToolsClient(tools), bus=bus, recall=recall, model_step=settings.agent_model_step
    )


def _recall(memory: Function) -> Recall:
    """The memory function's recall. A memory outage costs the turn its memory, not its answer."""

    def recall(tenant: str, user: str, conversation_id: str, question: str) -> Recollection:
        request = RecallRequest(
            tenant=tenant, user=user, conversation_id=conversation_id, question=question[:MAX_QUESTION_CHARS]
        )
        try:
            return Recollection.model_validate(memory.invoke(request.model_dump()))
        except PlatformError as exc:
            telemetry("orchestrator").logger.warning("memory recall failed", extra={"error": type(exc).__name__})
            return Recollection()

    return recall


class _Unavailable:
    """A function that this deployment's step was not granted: calling it is a configuration error."""

    def __init__(self, name: str) -> None:
        self.name = name

    def invoke(self, payload: Any) -> Any:
        setting = f"{self.name.upper()}_FUNCTION_NAME"
        raise ConfigurationError(f"setting {setting} is not set", setting=setting)


@lambda_entry("orchestrator")
def load(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return loop().load(event["state"], event["execution"])


@lambda_entry("orchestrator")
def model(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return loop().call_model(event["state"])


@lambda_entry("orchestrator")
def tool(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return loop().run_tool(event["item"], event["execution"])


@lambda_entry("orchestrator")
def append(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return loop().append(event["state"], event["execution"])


@lambda_entry("orchestrator")
def escalate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return loop().escalate(event["state"], event["token"])


@lambda_entry("orchestrator")
def resume(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return loop().resume(event["state"])


@lambda_entry("orchestrator")
def answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return loop().answer(event["state"])


@lambda_entry("orchestrator")
def finalize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return loop().finalize(event["state"])


@lambda_entry("orchestrator")
def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return loop().fail(event["state"])
