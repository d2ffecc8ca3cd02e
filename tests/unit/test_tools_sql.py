"""sql_query over the shipped CRM + ERP data set in a real SQLite file: answers, refusals with reasons, the tenant
injected on every view reference, the row limit, the statement timeout, and the same queries on PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from agentplatform.adapters.sqlite_db import SqliteDatabase
from agentplatform.errors import QueryFailed, QueryTimedOut
from agentplatform.sql import render, transpile
from functions.tools import crm_lookup, erp_order_status, sql_query, sql_support
from functions.tools.registry import ToolContext, ToolRegistry
from local.crm_db import ensure_database

REGISTRY = ToolRegistry([sql_query.SPEC])


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_database(tmp_path_factory.mktemp("crm") / "crm.sqlite3")


def ctx(db_path: Path, tenant: str = "acme") -> ToolContext:
    return ToolContext(
        tenant=tenant, user="u", groups=(), conversation_id="c", turn=1, step=0, call_id="k", idempotency_key="i",
        resources={"sql_database": SqliteDatabase(db_path)},
    )  # fmt: skip


def ask(db_path: Path, sql: str, tenant: str = "acme") -> Any:
    return REGISTRY.call("sql_query", {"sql": sql}, ctx(db_path, tenant))


def direct(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as connection:
        return connection.execute(sql, params).fetchall()


def test_an_aggregate_question_is_answered_from_the_callers_rows_only(db_path: Path):
    out = ask(db_path, "SELECT count(*) AS n, round(sum(total_amount), 2) AS revenue FROM v_orders "
                       "WHERE status = 'delivered'")  # fmt: skip
    assert out.status == "ok", out.error
    expected = direct(db_path, "SELECT count(*), round(sum(total_amount), 2) FROM orders "
                               "WHERE tenant = ? AND status = 'delivered'", "acme")  # fmt: skip
    assert out.result["columns"] == ["n", "revenue"]
    assert [tuple(r) for r in out.result["rows"]] == expected
    assert expected[0][0] > 10
    everyone = direct(db_path, "SELECT count(*) FROM orders WHERE status = 'delivered'")[0][0]
    assert everyone > expected[0][0]


def test_revenue_by_month_view_and_group_by(db_path: Path):
    out = ask(db_path, "SELECT month, revenue FROM v_revenue_by_month ORDER BY month DESC LIMIT 3", tenant="globex")
    assert out.status == "ok", out.error
    expected = direct(
        db_path,
        "SELECT strftime('%Y-%m', order_date) AS m, sum(total_amount) FROM orders "
        "WHERE tenant = 'globex' AND status <> 'cancelled' GROUP BY m ORDER BY m DESC LIMIT 3",
    )
    assert [tuple(r) for r in out.result["rows"]] == expected


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DELETE FROM orders", "DELETE statement"),
        ("DELETE FROM v_orders WHERE status = 'open'", "DELETE statement"),
        ("UPDATE orders SET status = 'cancelled'", "UPDATE statement"),
        ("SELECT count(*) FROM v_orders; DELETE FROM orders", "2 statements"),
        ("SELECT order_number FROM v_orders UNION SELECT account_id FROM accounts", "table accounts is not readable"),
        ("SELECT name FROM v_orders UNION ALL SELECT name FROM sqlite_master", "table sqlite_master"),
        ("SELECT count(*) FROM v_orders -- harmless?\n; DROP TABLE orders", "2 statements"),
        ("SELECT * FROM v_orders /* ; */ UNION SELECT * FROM orders --", "table orders is not readable"),
        ("SELECT * FROM v_orders WHERE tenant = 'globex'", "tenant column is set by the platform"),
        ("SELECT count(*) FROM v_orders o WHERE o.tenant <> 'acme'", "tenant column"),
        ("SELECT pg_sleep(10)", "function PG_SLEEP is not allowed"),
        ("SELECT sqlite_version()", "function SQLITE_VERSION is not allowed"),
        ("SELECT load_extension('x')", "is not allowed"),
        ("SELECT * FROM main.v_orders", "without a schema"),
        ("SELECT * FROM pragma_table_info('orders')", "FROM may only name the views"),
        ("WITH orders AS (SELECT * FROM orders) SELECT * FROM orders", "not defined before it"),
        ("WITH v_orders AS (SELECT 1 AS x) SELECT * FROM v_orders", "named like a view"),
        ("SELECT * FROM v_orders WHERE EXISTS (WITH accounts AS (SELECT 1) SELECT 1 FROM accounts)", "start of the"),
        ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", "RECURSIVE"),
        ("SELECT * INTO copy FROM v_orders", "SELECT INTO"),
        ("SELECT * FROM v_orders FOR UPDATE", "row locks"),
        ("SELECT * FROM v_orders WHERE order_number = :n", "parameters are not allowed"),
        ("SELECT * FROM v_orders LIMIT (SELECT 5)", "LIMIT must be a whole number"),
        ("SELEKT * FROM v_orders", "not valid SQL"),
    ],
)
def test_refused_queries_say_why_and_change_nothing(db_path: Path, sql: str, reason: str):
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    out = ask(db_path, sql)
    assert out.status == "error"
    assert out.error.startswith("query refused: ") and reason in out.error, out.error
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before


def test_a_write_that_reached_the_database_could_not_change_it(db_path: Path):
    # Defence in depth under the parser: the adapter's connection is read-only.
    before = direct(db_path, "SELECT count(*) FROM orders")
    with pytest.raises(QueryFailed):
        SqliteDatabase(db_path).query("DELETE FROM orders", {}, timeout_s=1, max_rows=1)
    assert direct(db_path, "SELECT count(*) FROM orders") == before


def test_a_comment_cannot_hide_the_tenant_predicate(db_path: Path):
    # Injected into the parsed statement, not appended to its text: a trailing comment comments out nothing.
    out = ask(db_path, "SELECT * FROM v_orders --", tenant="globex")
    assert out.status == "ok", out.error
    tenant_col = out.result["columns"].index("tenant")
    assert {row[tenant_col] for row in out.result["rows"]} == {"globex"}
    assert out.result["row_count"] == direct(db_path, "SELECT count(*) FROM orders WHERE tenant = 'globex'")[0][0]


@pytest.mark.parametrize(
    ("sql", "table", "times"),
    [
        ("WITH t AS (SELECT account_id FROM v_orders) SELECT count(*) FROM t", "orders", 1),
        ("SELECT count(*) FROM (SELECT order_number FROM v_orders) AS s", "orders", 1),
        ("SELECT count(*) FROM v_invoices WHERE order_number IN (SELECT order_number FROM v_orders)", "invoices", 1),
        ("SELECT count(*) FROM (SELECT order_number FROM v_orders UNION ALL SELECT order_number FROM v_orders) u",
         "orders", 2),
    ],
)  # fmt: skip
def test_every_view_reference_is_narrowed_to_the_tenant(db_path: Path, sql: str, table: str, times: int):
    counts = {t: ask(db_path, sql, tenant=t).result["rows"][0][0] for t in ("acme", "globex", "demo")}
    expected = dict(direct(db_path, f"SELECT tenant, {times} * count(*) FROM {table} GROUP BY tenant"))
    assert counts == expected


def test_the_row_limit_is_clamped_and_reported(db_path: Path):
    out = ask(db_path, "SELECT a.order_number, b.order_number FROM v_orders a CROSS JOIN v_orders b LIMIT 100000")
    assert out.status == "ok", out.error
    assert out.result["row_count"] == sql_query.MAX_ROWS and out.result["truncated"] is True
    small = ask(db_path, "SELECT order_number FROM v_orders ORDER BY order_number LIMIT 3")
    assert small.result["row_count"] == 3 and small.result["truncated"] is False


def test_the_tenants_policy_lowers_the_row_limit(db_path: Path):
    context = dataclasses.replace(ctx(db_path), limits={"max_rows": 7})
    out = REGISTRY.call("sql_query", {"sql": "SELECT order_number FROM v_orders"}, context)
    assert out.result["row_count"] == 7 and out.result["truncated"] is True


def test_a_slow_query_is_cancelled_at_the_statement_timeout(db_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sql_support, "STATEMENT_TIMEOUT_S", 0.2)
    out = ask(db_path, "SELECT count(*) FROM v_orders a, v_orders b, v_orders c, v_invoices d")
    assert out.status == "error" and "ran past 0.2 s" in out.error
    assert out.duration_ms < 2_000
    with pytest.raises(QueryTimedOut):
        SqliteDatabase(db_path).query("SELECT count(*) FROM orders a, orders b, orders c, orders d", {},
                                      timeout_s=0.1, max_rows=1)  # fmt: skip


def test_a_query_the_database_refuses_tells_the_model_what_is_wrong(db_path: Path):
    out = ask(db_path, "SELECT no_such_column FROM v_orders")
    assert out.status == "error" and "no such column: no_such_column" in out.error


def test_the_view_list_matches_the_schema(db_path: Path):
    for view, columns in sql_query.VIEWS.items():
        actual = [row[1] for row in direct(db_path, f"PRAGMA table_info({view})")]
        assert actual == ["tenant", *columns], view


# The allowed functions, each in a query that must run on SQLite and read the same on PostgreSQL.
_PORTABLE = [
    ("SELECT COUNT(*), SUM(total_amount), AVG(total_amount), MIN(order_date), MAX(order_date) FROM v_orders", None),
    ("SELECT ROUND(AVG(total_amount), 2), ABS(-1), LOWER(status), UPPER(account_name) FROM v_orders GROUP BY 3, 4",
     None),
    ("SELECT LENGTH(account_name), TRIM(account_name), SUBSTRING(account_name, 1, 3) FROM v_orders", None),
    ("SELECT COALESCE(paid_on, 'unpaid'), NULLIF(status, 'paid'), CAST(amount AS INTEGER) FROM v_invoices", None),
    ("SELECT TO_CHAR(order_date, 'YYYY-MM') AS m, COUNT(*) FROM v_orders GROUP BY m", "STRFTIME('%Y-%m'"),
    ("SELECT CASE WHEN total_amount > 10000 THEN 'large' ELSE 'small' END AS size, COUNT(*) FROM v_orders GROUP BY 1",
     None),
    ("SELECT COUNT(*) FROM v_invoices WHERE due_on < CURRENT_DATE AND paid_on IS NULL", None),
    ("SELECT COUNT(DISTINCT account_id) FROM v_orders WHERE status IN ('open', 'shipped') OR NOT (total_amount "
     "BETWEEN 1 AND 100 AND account_name LIKE 'A%') AND currency || '' = 'USD'", None),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "sqlite_form"), _PORTABLE)
def test_allowed_functions_run_on_sqlite_and_transpile_to_postgres(db_path: Path, sql: str, sqlite_form: str | None):
    out = ask(db_path, sql)
    assert out.status == "ok", out.error
    assert out.result["row_count"] >= 1
    query = sql_query.scoped(sql_query.parse(sql), max_rows=sql_query.MAX_ROWS)
    sqlite_sql, postgres_sql = render(query, "sqlite"), render(query, "postgres")
    if sqlite_form:
        assert sqlite_form in sqlite_sql
    for text, dialect in ((sqlite_sql, "sqlite"), (postgres_sql, "postgres")):
        assert "WHERE tenant = :tenant" in text and "%(" not in text
        assert sqlglot.parse_one(text, read=dialect) is not None  # each engine's text is its own dialect's SQL


@pytest.mark.parametrize(
    "statement",
    [crm_lookup._ACCOUNTS, crm_lookup._CONTACTS, erp_order_status._ORDER, *erp_order_status._PARTS.values()],
)
def test_the_tools_fixed_queries_are_one_text_for_both_engines(statement: str):
    postgres, sqlite = transpile(statement, "postgres"), transpile(statement, "sqlite")
    for text in (postgres, sqlite):
        assert ":tenant" in text and "%(" not in text
    assert postgres.count(":") == sqlite.count(":")  # the same named parameters on both
