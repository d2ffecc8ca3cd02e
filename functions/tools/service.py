"""The tools service: the tools an agent (or an MCP client) may use, under the tenant's tool policy.

`describe` lists the caller's tools with their JSON Schemas; `call` runs one: the policy first (deny by default,
approval, argument limits), then the registry (arguments validated, a timeout, a breaker, the result validated).
The caller's identity comes from the request's `caller` (the turn or the API's verified credentials), never from
the arguments. The agent loop keeps the turn's records (the claim before a side effect, the run's row); this
service only runs the tool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agentplatform.observability import telemetry
from agentplatform.tools import ToolCaller, ToolCallRequest, ToolCallResult, ToolDescription, ToolList
from functions.tools.mcp_remote import RemoteTools
from functions.tools.policy import ToolPolicy
from functions.tools.registry import ToolContext, ToolRegistry, ToolSpec


class ToolService:
    def __init__(
        self,
        registry: ToolRegistry,
        policy: Callable[[], ToolPolicy],
        resources: Mapping[str, Any] | None = None,
        remote: RemoteTools | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy  # read per request: a policy edited on a running stack applies to the next call
        self.resources: Mapping[str, Any] = resources or {}
        self.remote = remote  # the tenant's registered MCP servers' tools, `<server>__<tool>`

    def _specs(self, tenant: str, policy: ToolPolicy) -> list[ToolSpec]:
        own = [spec for name in self.registry.names() if (spec := self.registry.get(name)) is not None]
        # A remote server is only asked for its tools when the policy could allow one of them.
        remote = self.remote.specs(tenant) if self.remote and policy.allows_remote(tenant) else []
        return [*own, *remote]

    def _spec(self, tenant: str, name: str) -> ToolSpec | None:
        return self.registry.get(name) or (self.remote.spec(tenant, name) if self.remote else None)

    def describe(self, caller: ToolCaller) -> ToolList:
        policy = self.policy()
        tools = []
        for spec in self._specs(caller.tenant, policy):
            name = spec.name
            if not policy.allowed(caller.tenant, name):
                continue
            tools.append(
                ToolDescription(
                    name=name,
                    description=spec.description,
                    parameters=spec.parameters,
                    requires_approval=policy.needs_approval(caller.tenant, spec),
                    side_effect=spec.side_effect,
                    triggers=list(spec.triggers),
                )
            )
        return ToolList(tools=tools)

    def call(self, request: ToolCallRequest) -> ToolCallResult:
        caller, name = request.caller, request.name
        policy = self.policy()
        spec = self._spec(caller.tenant, name) if policy.allowed(caller.tenant, name) else None
        if spec is None:
            allowed = [t.name for t in self.describe(caller).tools]
            return ToolCallResult(
                status="error", error=f"unknown tool {name!r}; the tools are: {', '.join(allowed) or 'none'}"
            )
        ctx = ToolContext(
            tenant=caller.tenant,
            user=caller.user,
            groups=caller.groups,
            conversation_id=caller.conversation_id,
            turn=caller.turn,
            step=caller.step,
            call_id=caller.call_id,
            idempotency_key=caller.idempotency_key,
            resources=self.resources,
            limits=policy.limits(caller.tenant, name),
        )
        if isinstance(request.arguments, dict):
            reason = policy.refusal(caller.tenant, name, request.arguments, ctx)
            if reason is not None:
                return ToolCallResult(status="error", error=f"{name} refused by the tool policy: {reason}")
        # A remote tool runs through a registry of its own (validation, timeout); its breaker is its server's, kept
        # by RemoteTools per tenant.
        registry = self.registry if self.registry.get(name) else ToolRegistry([spec])
        outcome = registry.call(
            name,
            request.arguments,
            ctx,
            approved=request.approved,
            requires_approval=policy.needs_approval(caller.tenant, spec),
        )
        telemetry("tools").logger.info(
            "tool ran",
            extra={
                "tool": name,
                "status": outcome.status,
                "duration_ms": outcome.duration_ms,
                "tenant": caller.tenant,
                "channel": caller.channel,
            },
        )
        return ToolCallResult(
            status=outcome.status, result=outcome.result, error=outcome.error, duration_ms=outcome.duration_ms
        )
