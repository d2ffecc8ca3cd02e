"""The tools function: the agent loop's tool calls (and the API's MCP server) run here. Thin: the request is
`agentplatform.tools.ToolListRequest` or `ToolCallRequest` (by `action`), answered by the ToolService."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from agentplatform.bootstrap import Container, container
from agentplatform.errors import ConfigurationError, ValidationFailed
from agentplatform.observability import lambda_entry
from agentplatform.policy_documents import FilePolicySource, SsmPolicySource
from agentplatform.tools import ToolCallRequest, ToolListRequest
from functions.tools.mcp_remote import RemoteTools
from functions.tools.policy import DEFAULT_POLICY_PATH, ToolPolicy, parse_tool_policy
from functions.tools.registry import Breaker, ToolRegistry, default_specs
from functions.tools.service import ToolService

BREAKER_FAILURES = 5  # consecutive failures that open a tool's breaker
BREAKER_OPEN_S = 30

_built: tuple[Container, ToolService] | None = None
_lock = threading.Lock()


def service() -> ToolService:
    """The container's tools, built on first use: the policy source caches the policy and notices a changed file."""
    global _built
    c = container()
    with _lock:
        if _built is not None and _built[0] is c:
            return _built[1]
        specs = default_specs()
        breaker = Breaker.over(c.tool_state_table, threshold=BREAKER_FAILURES, open_s=BREAKER_OPEN_S)
        needs = {need for spec in specs for need in spec.needs}
        # A deployment without the MCP servers table has no remote tools.
        remote = (
            RemoteTools(c.mcp_servers, local=c.settings.backend == "local", breaker=breaker)
            if c.settings.mcp_servers_table_name
            else None
        )
        built = ToolService(ToolRegistry(specs, breaker), policy_source(c).get, _Resources(c, needs), remote)
        _built = (c, built)
        return built


def policy_source(c: Container) -> FilePolicySource[ToolPolicy] | SsmPolicySource[ToolPolicy]:
    s = c.settings
    if s.tools_policy_parameter:
        return SsmPolicySource(s.tools_policy_parameter, c.client("ssm"), parse_tool_policy)
    path = Path(s.tools_policy_path) if s.tools_policy_path else DEFAULT_POLICY_PATH
    return FilePolicySource(path, parse_tool_policy)


class _Resources(Mapping[str, Any]):
    """What the tools declare in `ToolSpec.needs`, built on first use; one this deployment was not granted is
    missing, and the tool that needs it says it is not available."""

    def __init__(self, c: Container, names: set[str]) -> None:
        self._c, self._names = c, names

    def __getitem__(self, name: str) -> Any:
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


@lambda_entry("tools")
def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get("action")
    if action == "describe":
        return service().describe(ToolListRequest.model_validate(event).caller).model_dump(mode="json")
    if action == "call":
        return service().call(ToolCallRequest.model_validate(event)).model_dump(mode="json")
    raise ValidationFailed(f"unknown action {action!r}: describe or call", field="action")
