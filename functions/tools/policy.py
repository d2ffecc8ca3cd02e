"""The per-tenant tool policy (policies/tools.json locally, an SSM parameter in AWS): which tools a tenant's agents
and MCP clients may use, which need an operator's approval, and limits on their arguments. Deny by default: a tool
the tenant's entry (or the "*" default) does not name is neither listed nor run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from agentplatform.policy_documents import parse_document
from functions.tools.registry import ToolContext, ToolSpec

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policies" / "tools.json"

_Name = Annotated[str, Field(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantTools(_Strict):
    allow: list[_Name] = []  # tool names; "*" allows every registered tool
    approval: list[_Name] = []  # tools that need an operator's approval here, beyond those that always do
    no_approval: list[_Name] = []  # tools whose default approval this tenant waives (its own risk)


class ToolPolicy(_Strict):
    version: str = Field(min_length=1)
    tenants: dict[_Name, TenantTools]  # a tenant's entry, or "*" for every tenant without one

    def _entry(self, tenant: str) -> TenantTools:
        return self.tenants.get(tenant) or self.tenants.get("*") or TenantTools()

    def allowed(self, tenant: str, name: str) -> bool:
        allow = self._entry(tenant).allow
        return name in allow or "*" in allow

    def needs_approval(self, tenant: str, spec: ToolSpec) -> bool:
        entry = self._entry(tenant)
        if spec.name in entry.approval:
            return True
        return spec.requires_approval and spec.name not in entry.no_approval

    def refusal(self, tenant: str, name: str, arguments: dict[str, Any], ctx: ToolContext) -> str | None:
        """Why the policy refuses these arguments (the caller reads it), or None."""
        return None


def parse_tool_policy(document: Any, source: str) -> ToolPolicy:
    return parse_document(document, ToolPolicy, what="tool policy", source=source)
