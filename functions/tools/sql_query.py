"""`sql_query`: read-only analytics SQL the model writes, over the allow-listed views of the tenant's CRM + ERP data.

The statement is parsed with sqlglot (PostgreSQL syntax), never matched as text: exactly one SELECT (set operations
of SELECTs allowed), only the allow-listed views (CTEs over them allowed), only allow-listed functions, no
parameters, no SELECT INTO or row locks. The platform injects the caller's tenant into every view reference, in
subqueries and CTEs too, by replacing the reference with `(SELECT * FROM <view> WHERE tenant = :tenant)`; the LIMIT is
clamped. A refusal tells the model what to change.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from agentplatform.sql import SOURCE_DIALECT
from functions.tools.registry import ToolContext, ToolFailed, ToolSpec
from functions.tools.sql_support import database, run

MAX_ROWS = 200

# The views and their columns (data/crm/schema.sql; a unit test keeps the two equal). `tenant` is left out: the
# platform sets it.
VIEWS: dict[str, tuple[str, ...]] = {
    "v_orders": (
        "order_number", "account_id", "account_name", "industry", "country", "tier", "status", "order_date",
        "order_month", "currency", "total_amount",
    ),
    "v_invoices": (
        "invoice_id", "order_number", "account_id", "account_name", "status", "issued_on", "due_on", "paid_on",
        "amount", "currency",
    ),
    "v_revenue_by_month": ("month", "currency", "orders", "revenue"),
}  # fmt: skip

# Functions that mean the same on SQLite and PostgreSQL once sqlglot transpiles them (a unit test runs each).
_FUNCTIONS: dict[type[exp.Expression], str] = {
    exp.Count: "COUNT", exp.Sum: "SUM", exp.Avg: "AVG", exp.Min: "MIN", exp.Max: "MAX", exp.Round: "ROUND",
    exp.Abs: "ABS", exp.Lower: "LOWER", exp.Upper: "UPPER", exp.Length: "LENGTH", exp.Trim: "TRIM",
    exp.Substring: "SUBSTRING", exp.Coalesce: "COALESCE", exp.Nullif: "NULLIF", exp.Cast: "CAST",
    exp.Case: "CASE", exp.If: "CASE", exp.TimeToStr: "TO_CHAR", exp.CurrentDate: "CURRENT_DATE",
}  # fmt: skip
_REFUSED: dict[type[exp.Expression], str] = {
    exp.DML: "it changes data: only reading (SELECT) is allowed",
    exp.DDL: "it changes the schema: only reading (SELECT) is allowed",
    exp.Into: "SELECT INTO creates a table: only reading is allowed",
    exp.Lock: "row locks (FOR UPDATE/SHARE) are not allowed",
    exp.Placeholder: "parameters are not allowed: write the values in the query",
    exp.Parameter: "parameters are not allowed: write the values in the query",
}
_ALLOWED_FUNCTIONS = ", ".join(sorted(set(_FUNCTIONS.values())))


def _refuse(reason: str) -> ToolFailed:
    return ToolFailed(f"query refused: {reason}")


def parse(sql: str) -> exp.Query:
    """The one SELECT in `sql`, checked; raise ToolFailed saying why it is refused."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=SOURCE_DIALECT) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" near line {first.get('line')}, column {first.get('col')}" if first else ""
        raise _refuse(f"it is not valid SQL{where}; write one PostgreSQL SELECT") from exc
    if len(statements) != 1:
        raise _refuse(f"it holds {len(statements)} statements; send exactly one SELECT")
    query = statements[0]
    if not isinstance(query, exp.Select | exp.SetOperation):
        raise _refuse(f"it is a {query.key.upper()} statement; only one SELECT is allowed")
    ctes = _check_ctes(query)
    for node in query.walk():
        _check(node, set(ctes))
    return query


def _check_ctes(query: exp.Query) -> list[str]:
    """The CTE names, once each reference to one is known to resolve to it on every engine: a WITH only at the
    top, not recursive, each CTE using only those before it (inside its own body a name is the real table's)."""
    top = query.args.get("with_")
    if any(w is not top for w in query.find_all(exp.With)):
        raise _refuse("WITH is allowed only at the start of the query, not inside a subquery")
    if top is None:
        return []
    if top.args.get("recursive"):
        raise _refuse("WITH RECURSIVE is not allowed")
    names = [cte.alias_or_name.lower() for cte in top.expressions]
    if clash := set(names) & set(VIEWS):
        raise _refuse(f"a CTE may not be named like a view ({', '.join(sorted(clash))}); rename it")
    if len(set(names)) != len(names):
        raise _refuse("two CTEs have the same name; rename one")
    for i, cte in enumerate(top.expressions):
        for table in cte.this.find_all(exp.Table):
            if table.name.lower() in names[i:]:
                raise _refuse(f"CTE {names[i]} uses {table.name}, which is not defined before it")
    return names


def _check(node: exp.Expression, ctes: set[str]) -> None:
    for kind, reason in _REFUSED.items():
        if isinstance(node, kind):
            raise _refuse(reason)
    # AND / OR are sqlglot Func nodes too, but operators.
    if isinstance(node, exp.Func) and not isinstance(node, exp.Connector) and type(node) not in _FUNCTIONS:
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        raise _refuse(f"function {name.upper()} is not allowed; the allowed functions are {_ALLOWED_FUNCTIONS}")
    if isinstance(node, exp.Column) and node.name.lower() == "tenant":
        raise _refuse(
            "the tenant column is set by the platform (every view shows only your organization's rows); "
            "leave it out of the query"
        )
    if isinstance(node, exp.Table):
        name = node.name.lower()
        if not isinstance(node.this, exp.Identifier) or node.args.get("db") or node.args.get("catalog"):
            raise _refuse(f"FROM may only name the views {', '.join(VIEWS)} (or a CTE), without a schema")
        if name not in VIEWS and name not in ctes:
            raise _refuse(f"table {node.name} is not readable; the views are {', '.join(VIEWS)}")


def scoped(query: exp.Query, *, max_rows: int) -> exp.Query:
    """The query with every view reference narrowed to the `:tenant` rows, and its LIMIT at most `max_rows`+1
    (the extra row tells the adapter the answer was truncated)."""
    top = query.args.get("with_")
    ctes = {cte.alias_or_name.lower() for cte in top.expressions} if top else set()
    for table in [t for t in query.find_all(exp.Table) if t.name.lower() not in ctes]:
        view = table.name.lower()
        inner = exp.select("*").from_(view).where(exp.column("tenant").eq(exp.Placeholder(this="tenant")))
        alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(view))
        table.replace(exp.Subquery(this=inner, alias=alias.copy()))
    limit = query.args.get("limit")
    if limit is not None:
        value = limit.args.get("count") if isinstance(limit, exp.Fetch) else limit.expression
        if not (isinstance(value, exp.Literal) and value.is_int):
            raise _refuse("LIMIT must be a whole number")
        if int(value.name) <= max_rows:
            return query
    query.set("limit", exp.Limit(expression=exp.Literal.number(max_rows + 1)))
    return query


def run_query(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    db = database(ctx, "sql_query")
    # The tenant's tool policy may lower the ceiling (limits.sql_query.max_rows), never raise it.
    max_rows = min(MAX_ROWS, int(ctx.limits.get("max_rows", MAX_ROWS)))
    query = scoped(parse(arguments["sql"]), max_rows=max_rows)
    # The tenant is the caller's (ToolContext): the only parameter, and the statement cannot name another.
    rows = run(db, query, {"tenant": ctx.tenant}, max_rows=max_rows)
    return {"columns": rows.columns, "rows": rows.rows, "row_count": len(rows.rows), "truncated": rows.truncated}


_VIEW_LINES = "; ".join(f"{view}({', '.join(columns)})" for view, columns in VIEWS.items())

SPEC = ToolSpec(
    name="sql_query",
    description="Answer an analytics question about the organization's orders, invoices and revenue with one "
    f"read-only PostgreSQL SELECT over these views: {_VIEW_LINES}. Allowed functions: {_ALLOWED_FUNCTIONS} "
    "(months: order_month, or TO_CHAR(date, 'YYYY-MM')). The views hold only your organization's rows. At most "
    f"{MAX_ROWS} rows come back; aggregate instead of listing.",
    parameters={
        "type": "object",
        "properties": {"sql": {"type": "string", "minLength": 8, "maxLength": 4000, "description": "One SELECT."}},
        "required": ["sql"],
        "additionalProperties": False,
    },
    result_schema={
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "array"}},
            "row_count": {"type": "integer"},
            "truncated": {"type": "boolean"},
        },
        "required": ["columns", "rows", "row_count", "truncated"],
    },
    run=run_query,
    timeout_s=10.0,
    needs=("sql_database",),
)
