"""`crm_lookup`: the tenant's CRM accounts and contacts by id, email or (part of a) name; parameterized SQL only."""

from __future__ import annotations

from typing import Any

from agentplatform.tools import ToolTrigger
from functions.tools.registry import ToolContext, ToolSpec
from functions.tools.sql_support import PASSAGES_SCHEMA, database, record_passage, records, run

_ACCOUNTS = """
SELECT a.account_id, a.name, a.industry, a.country, a.tier, a.owner,
       (SELECT COUNT(*) FROM orders AS o WHERE o.tenant = a.tenant AND o.account_id = a.account_id) AS orders
FROM accounts AS a
WHERE a.tenant = :tenant AND (UPPER(a.account_id) = :exact OR LOWER(a.name) LIKE :pattern ESCAPE '\\')
ORDER BY a.name
LIMIT 50
"""
_CONTACTS = """
SELECT c.contact_id, c.name, c.email, c.title, c.phone, c.account_id, a.name AS account_name
FROM contacts AS c
JOIN accounts AS a ON a.tenant = c.tenant AND a.account_id = c.account_id
WHERE c.tenant = :tenant
  AND (UPPER(c.contact_id) = :exact OR UPPER(c.account_id) = :exact OR LOWER(c.email) = :email
       OR LOWER(c.name) LIKE :pattern ESCAPE '\\')
ORDER BY c.name
LIMIT 50
"""


def _like_pattern(text: str) -> str:
    # The caller's text is a literal substring: its own % and _ match themselves.
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def run_lookup(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    db = database(ctx, "crm_lookup")
    text = arguments["query"].strip()
    kind = arguments.get("kind", "any")
    limit = int(arguments.get("limit", 5))
    # The tenant is the caller's (ToolContext), never an argument: the schema has no such field.
    params = {"tenant": ctx.tenant, "exact": text.upper(), "email": text.lower(), "pattern": _like_pattern(text)}
    out: dict[str, Any] = {"query": text, "accounts": [], "contacts": [], "truncated": False}
    for name, statement in (("accounts", _ACCOUNTS), ("contacts", _CONTACTS)):
        if kind in (name[:-1], "any"):
            rows = run(db, statement, params, max_rows=limit)
            out[name] = records(rows)
            out["truncated"] = out["truncated"] or rows.truncated
    out["passages"] = [
        *(
            record_passage("crm", "accounts", a["account_id"], f"CRM account {a['name']}", _account_text(a))
            for a in out["accounts"]
        ),
        *(
            record_passage("crm", "contacts", c["contact_id"], f"CRM contact {c['name']}", _contact_text(c))
            for c in out["contacts"]
        ),
    ]
    return out


def _account_text(a: dict[str, Any]) -> str:
    return (
        f"Account {a['account_id']} is {a['name']}, a {a['tier']} {a['industry']} customer in {a['country']} owned "
        f"by {a['owner']}, with {a['orders']} orders."
    )


def _contact_text(c: dict[str, Any]) -> str:
    return (
        f"Contact {c['contact_id']} is {c['name']}, {c['title']} at {c['account_name']} ({c['account_id']}), "
        f"email {c['email']}, phone {c['phone']}."
    )


_ACCOUNT = {
    "type": "object",
    "properties": {"account_id": {"type": "string"}, "name": {"type": "string"}, "orders": {"type": "integer"}},
    "required": ["account_id", "name"],
}
_CONTACT = {
    "type": "object",
    "properties": {"contact_id": {"type": "string"}, "email": {"type": "string"}, "account_id": {"type": "string"}},
    "required": ["contact_id", "name", "email", "account_id"],
}

SPEC = ToolSpec(
    name="crm_lookup",
    description="Find customer accounts and contacts in the organization's CRM by account id (ACC-1001), contact id "
    "(CON-00001), email address, or part of a name. Returns the matching accounts (industry, country, tier, owner, "
    "number of orders) and contacts (title, email, phone, their account).",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 2, "maxLength": 120, "description": "Id, email or name."},
            "kind": {"type": "string", "enum": ["account", "contact", "any"], "description": "What to find (any)."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20, "description": "Most matches of each kind (5)."},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    result_schema={
        "type": "object",
        "properties": {
            "accounts": {"type": "array", "items": _ACCOUNT},
            "contacts": {"type": "array", "items": _CONTACT},
            "truncated": {"type": "boolean"},
            "passages": PASSAGES_SCHEMA,
        },
        "required": ["accounts", "contacts", "truncated", "passages"],
    },
    run=run_lookup,
    timeout_s=10.0,
    needs=("sql_database",),
    triggers=(
        ToolTrigger(pattern=r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", argument="query"),  # an email address
        ToolTrigger(pattern=r"\b(?:ACC-[0-9]{3,}|CON-[0-9]{3,})\b", argument="query"),  # an account or contact id
    ),
)
