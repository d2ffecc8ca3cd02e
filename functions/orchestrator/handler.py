"""The agent loop's Lambda tasks: one entry per state of statemachines/agent_loop.asl.json. Thin: each takes the
run's state from the task's payload, calls one step of the AgentLoop, and returns the new state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from agentplatform.bootstrap import Container, container
from agentplatform.errors import ConfigurationError
from agentplatform.observability import lambda_entry
from agentplatform.ports import Function
from functions.orchestrator.service import AgentLoop
from functions.orchestrator.tools import Breaker, ToolRegistry, default_specs

BREAKER_FAILURES = 5  # consecutive failures that open a tool's breaker
BREAKER_OPEN_S = 30


def loop() -> AgentLoop:
    c = container()
    settings = c.settings
    store = c.conversations
    specs = default_specs()
    registry = ToolRegistry(
        specs,
        Breaker(
            is_open=lambda name: float(store.breaker(name).get("open_until") or 0) > _now(),
            record=lambda name, failed: store.record_tool_outcome(
                name, failed=failed, threshold=BREAKER_FAILURES, open_s=BREAKER_OPEN_S
            ),
        ),
    )
    functions = _Functions(c, {need for spec in specs for need in spec.needs})
    gateway = c.llm_gateway_function if settings.llm_gateway_function_name else _Unavailable()
    bus = c.event_bus if settings.platform_event_bus_name else None
    return AgentLoop(store, gateway, registry, bus=bus, functions=functions, model_step=settings.agent_model_step)


class _Functions(Mapping[str, Function]):
    """The other services' functions the tools declare (`ToolSpec.needs`), built on first use; one this deployment
    was not granted is missing, and the tool that needs it says it is not available."""

    def __init__(self, c: Container, names: set[str]) -> None:
        self._c, self._names = c, names

    def __getitem__(self, name: str) -> Function:
        if name not in self._names:
            raise KeyError(name)
        try:
            return getattr(self._c, name)
        except ConfigurationError as exc:
            raise KeyError(name) from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _Unavailable:
    """A function that this deployment's step was not granted: calling it is a configuration error."""

    name = "llm_gateway"

    def invoke(self, payload: Any) -> Any:
        raise ConfigurationError("setting LLM_GATEWAY_FUNCTION_NAME is not set", setting="LLM_GATEWAY_FUNCTION_NAME")


def _now() -> float:
    import time

    return time.time()


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
