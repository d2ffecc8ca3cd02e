"""The per-tenant tool policy (policies/tools.json locally, an SSM parameter in AWS): which tools a tenant's agents
and MCP clients may use, which need an operator's approval, and limits on their arguments. Deny by default: a tool
the tenant's entry (or the "*" default) does not name is neither listed nor run.

A tenant's entry replaces the "*" entry whole (nothing is merged), so what a tenant may do is read in one place.
Limits are typed per tool (`limits.send_email.allowed_domains`, `limits.write_file.max_bytes`,
`limits.sql_query.max_rows`, `limits.erp_order_status.accounts`): a misspelt tool or field refuses to load, naming
it. Editors validate the file against policies/tools.schema.json (this model's JSON Schema).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentplatform.errors import PlatformError
from agentplatform.mcp_servers import SEPARATOR
from agentplatform.outbox import MAX_RECIPIENTS
from agentplatform.policy_documents import parse_document
from functions.tools.files import WRITE_MAX_BYTES
from functions.tools.registry import ToolContext, ToolFailed, ToolSpec
from functions.tools.sql_support import records, run

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policies" / "tools.json"
MCP_PREFIX = "mcp:"  # `mcp:<server>` names all of one registered MCP server's tools, `mcp:*` every server's
SQL_MAX_ROWS = 200  # the sql_query tool's own ceiling: a policy may only lower it

_Name = Annotated[str, Field(min_length=1, max_length=128)]
_Domain = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^(\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$",
        description='A recipient domain in lower case ("example.com"); "*.example.com" also takes its subdomains.',
    ),
]
_Account = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailLimits(_Strict):
    allowed_domains: list[_Domain] = Field(min_length=1, max_length=200)
    max_recipients: int = Field(default=MAX_RECIPIENTS, ge=1, le=MAX_RECIPIENTS, description="to and cc together")


class FileLimits(_Strict):
    max_bytes: int = Field(ge=1, le=WRITE_MAX_BYTES, description="The most one write_file may write.")


class SqlLimits(_Strict):
    max_rows: int = Field(ge=1, le=SQL_MAX_ROWS, description="The most rows one sql_query returns.")


class AccountLimits(_Strict):
    accounts: list[_Account] = Field(min_length=1, max_length=1000, description="The CRM account ids allowed.")


class ToolLimits(_Strict):
    send_email: EmailLimits | None = None
    write_file: FileLimits | None = None
    sql_query: SqlLimits | None = None
    erp_order_status: AccountLimits | None = None


class TenantTools(_Strict):
    allow: list[_Name] = []  # tool names, `mcp:<server>`, or "*" for every registered tool
    approval: list[_Name] = []  # tools that need an operator's approval here, beyond those that always do
    no_approval: list[_Name] = []  # tools whose default approval this tenant waives (its own risk)
    limits: ToolLimits = Field(default_factory=ToolLimits)

    @model_validator(mode="after")
    def _approval_or_not(self) -> TenantTools:
        both = sorted(set(self.approval) & set(self.no_approval))
        if both:
            raise ValueError(f"{', '.join(both)} both need and waive approval (approval, no_approval)")
        return self


class ToolPolicy(_Strict):
    schema_ref: str | None = Field(default=None, alias="$schema")
    version: str = Field(min_length=1)
    description: str | None = None
    tenants: dict[_Name, TenantTools]  # a tenant's entry, or "*" for every tenant without one

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def _entry(self, tenant: str) -> TenantTools:
        return self.tenants.get(tenant) or self.tenants.get("*") or TenantTools()

    def allowed(self, tenant: str, name: str) -> bool:
        allow = self._entry(tenant).allow
        if name in allow or "*" in allow:
            return True
        server, separator, _ = name.partition(SEPARATOR)
        return bool(separator) and (f"{MCP_PREFIX}{server}" in allow or f"{MCP_PREFIX}*" in allow)

    def allows_remote(self, tenant: str) -> bool:
        """Whether any registered MCP server's tool could be allowed (so its servers are worth asking)."""
        return any(n == "*" or n.startswith(MCP_PREFIX) or SEPARATOR in n for n in self._entry(tenant).allow)

    def needs_approval(self, tenant: str, spec: ToolSpec) -> bool:
        entry = self._entry(tenant)
        if spec.name in entry.approval:
            return True
        return spec.requires_approval and spec.name not in entry.no_approval

    def limits(self, tenant: str, name: str) -> dict[str, Any]:
        """The tenant's limits on one tool, as the tool reads them (`ToolContext.limits`); {} when none."""
        found = getattr(self._entry(tenant).limits, name, None) if name in ToolLimits.model_fields else None
        return found.model_dump() if found is not None else {}

    def refusal(self, tenant: str, name: str, arguments: dict[str, Any], ctx: ToolContext) -> str | None:
        """Why the policy refuses these arguments (the caller reads it, so it can change the call), or None."""
        limits = self._entry(tenant).limits
        if name == "send_email" and limits.send_email:
            return _email_refusal(limits.send_email, arguments)
        if name == "write_file" and limits.write_file:
            size = len(str(arguments.get("content", "")).encode("utf-8"))
            if size > limits.write_file.max_bytes:
                return (
                    f"the content is {size} bytes; this organization writes files up to {limits.write_file.max_bytes}"
                )
        if name == "erp_order_status" and limits.erp_order_status:
            return _account_refusal(limits.erp_order_status, arguments, ctx)
        return None


def _email_refusal(limits: EmailLimits, arguments: dict[str, Any]) -> str | None:
    recipients = [str(a) for a in [*(arguments.get("to") or []), *(arguments.get("cc") or [])]]
    if len(recipients) > limits.max_recipients:
        return f"{len(recipients)} recipients; this organization sends to at most {limits.max_recipients}"
    outside = [a for a in recipients if not _domain_allowed(a.rpartition("@")[2].lower(), limits.allowed_domains)]
    if outside:
        return f"{', '.join(outside)} not in the allowed domains ({', '.join(limits.allowed_domains)})"
    return None


def _domain_allowed(domain: str, allowed: list[str]) -> bool:
    return any(
        domain == rule or (rule.startswith("*.") and (domain == rule[2:] or domain.endswith(rule[1:])))
        for rule in allowed
    )


_ORDER_ACCOUNT = "SELECT account_id FROM orders WHERE tenant = :tenant AND order_number = :order_number"


def _account_refusal(limits: AccountLimits, arguments: dict[str, Any], ctx: ToolContext) -> str | None:
    number = str(arguments.get("order_number", "")).strip().upper()
    if not number or "sql_database" not in ctx.resources:
        return None  # the tool's schema refuses a bad number; without a database the tool says it is not there
    params = {"tenant": ctx.tenant, "order_number": number}
    try:
        found = records(run(ctx.resources["sql_database"], _ORDER_ACCOUNT, params, max_rows=1))
    except (ToolFailed, PlatformError):
        return "the order's account could not be checked right now; try again later"  # closed, never open
    if found and str(found[0]["account_id"]) not in limits.accounts:
        return f"order {number} is for an account this organization's agents may not look up"
    return None  # a missing order: the tool itself says so


def parse_tool_policy(document: Any, source: str) -> ToolPolicy:
    return parse_document(document, ToolPolicy, what="tool policy", source=source)
