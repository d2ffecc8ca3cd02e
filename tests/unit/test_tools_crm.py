"""crm_lookup and erp_order_status over the shipped data set in a real SQLite file: matches by id, email and name,
the caller's tenant only (the same account id means another company at another tenant), wildcards as text."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentplatform.adapters.sqlite_db import SqliteDatabase
from functions.tools import crm_lookup, erp_order_status
from functions.tools.registry import ToolContext, ToolRegistry
from local.crm_db import ensure_database, seed_version

REGISTRY = ToolRegistry([crm_lookup.SPEC, erp_order_status.SPEC])


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_database(tmp_path_factory.mktemp("crm") / "crm.sqlite3")


def call(db_path: Path | None, tool: str, arguments: dict[str, Any], tenant: str = "acme") -> Any:
    resources = {"sql_database": SqliteDatabase(db_path)} if db_path else {}
    context = ToolContext(
        tenant=tenant, user="u", groups=(), conversation_id="c", turn=1, step=0, call_id="k", idempotency_key="i",
        resources=resources,
    )  # fmt: skip
    return REGISTRY.call(tool, arguments, context)


def one(db_path: Path, sql: str, *params: Any) -> tuple[Any, ...]:
    with sqlite3.connect(db_path) as connection:
        return connection.execute(sql, params).fetchone()


def test_an_account_by_id_is_the_callers_own(db_path: Path):
    acme = call(db_path, "crm_lookup", {"query": "acc-1001", "kind": "account"}).result["accounts"]
    globex = call(db_path, "crm_lookup", {"query": "ACC-1001", "kind": "account"}, tenant="globex").result["accounts"]
    assert [a["name"] for a in acme] == [one(db_path, "SELECT name FROM accounts WHERE tenant='acme' AND "
                                                      "account_id='ACC-1001'")[0]]  # fmt: skip
    assert [a["name"] for a in globex] == [one(db_path, "SELECT name FROM accounts WHERE tenant='globex' AND "
                                                        "account_id='ACC-1001'")[0]]  # fmt: skip
    assert acme[0]["name"] != globex[0]["name"]
    orders = one(db_path, "SELECT count(*) FROM orders WHERE tenant='acme' AND account_id='ACC-1001'")[0]
    assert acme[0]["orders"] == orders


def test_a_contact_by_email_and_by_part_of_a_name(db_path: Path):
    name, email, account = one(db_path, "SELECT name, email, account_id FROM contacts WHERE tenant='acme' LIMIT 1")
    by_email = call(db_path, "crm_lookup", {"query": email.upper(), "kind": "contact"})
    assert by_email.status == "ok", by_email.error
    assert [(c["name"], c["account_id"]) for c in by_email.result["contacts"]] == [(name, account)]
    by_name = call(db_path, "crm_lookup", {"query": name.split()[1][:4].lower(), "limit": 20})
    assert name in {c["name"] for c in by_name.result["contacts"]}


def test_a_name_fragment_finds_accounts_case_insensitively(db_path: Path):
    name = one(db_path, "SELECT name FROM accounts WHERE tenant='demo' ORDER BY account_id LIMIT 1")[0]
    out = call(db_path, "crm_lookup", {"query": name.split()[0].upper(), "kind": "account"}, tenant="demo")
    assert name in [a["name"] for a in out.result["accounts"]]
    assert out.result["contacts"] == []


def test_another_tenants_contact_is_not_found(db_path: Path):
    email = one(db_path, "SELECT email FROM contacts WHERE tenant='globex' LIMIT 1")[0]
    out = call(db_path, "crm_lookup", {"query": email})
    assert out.status == "ok" and out.result["contacts"] == [] and out.result["accounts"] == []


def test_wildcards_in_the_query_are_text(db_path: Path):
    # `%` would match every name if it reached LIKE unescaped; `_` every single character.
    for text in ("%%", "__", "%_%"):
        out = call(db_path, "crm_lookup", {"query": text})
        assert out.status == "ok" and out.result["accounts"] == [] and out.result["contacts"] == [], text


def test_an_injection_attempt_is_a_plain_string(db_path: Path):
    out = call(db_path, "crm_lookup", {"query": "x' OR '1'='1"})
    assert out.status == "ok" and out.result["accounts"] == [] and out.result["contacts"] == []


def test_a_tenant_argument_is_an_invalid_call(db_path: Path):
    out = call(db_path, "crm_lookup", {"query": "ACC-1001", "tenant": "globex"})
    assert out.status == "error" and "invalid arguments" in out.error


def test_the_limit_truncates(db_path: Path):
    out = call(db_path, "crm_lookup", {"query": "er", "kind": "account", "limit": 2})
    assert len(out.result["accounts"]) == 2 and out.result["truncated"] is True


def test_an_order_with_its_lines_shipments_and_invoices(db_path: Path):
    number = one(
        db_path,
        "SELECT order_number FROM orders o WHERE tenant='acme' AND status='delivered' AND EXISTS "
        "(SELECT 1 FROM invoices i WHERE i.tenant=o.tenant AND i.order_number=o.order_number) LIMIT 1",
    )[0]
    out = call(db_path, "erp_order_status", {"order_number": f" {number.lower()} "})
    assert out.status == "ok", out.error
    order = out.result["order"]
    assert order["order_number"] == number and order["status"] == "delivered"
    assert sum(line["quantity"] * line["unit_price"] for line in order["lines"]) == pytest.approx(order["total_amount"])
    assert len(order["lines"]) == one(db_path, "SELECT count(*) FROM order_lines WHERE tenant='acme' AND "
                                               "order_number=?", number)[0]  # fmt: skip
    assert order["shipments"][0]["delivered_on"] is not None
    assert order["invoices"][0]["amount"] == pytest.approx(order["total_amount"])


def test_another_tenants_order_reads_as_missing(db_path: Path):
    number = one(db_path, "SELECT order_number FROM orders WHERE tenant='globex' LIMIT 1")[0]
    mine = call(db_path, "erp_order_status", {"order_number": number}, tenant="globex")
    theirs = call(db_path, "erp_order_status", {"order_number": number}, tenant="acme")
    assert mine.status == "ok"
    assert theirs.status == "error" and f"no order {number}" in theirs.error


def test_a_malformed_order_number_is_an_invalid_call(db_path: Path):
    out = call(db_path, "erp_order_status", {"order_number": "SO-1' OR 1=1"})
    assert out.status == "error" and "invalid arguments (order_number)" in out.error


def test_without_a_database_the_tools_say_they_are_not_available():
    out = call(None, "crm_lookup", {"query": "ACC-1001"})
    assert out.status == "error" and "not available in this deployment" in out.error


def test_the_local_database_is_rebuilt_only_when_the_data_set_changes(tmp_path: Path):
    path = ensure_database(tmp_path / "crm.sqlite3")
    built = path.stat().st_mtime_ns
    assert ensure_database(path).stat().st_mtime_ns == built
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 1")
    ensure_database(path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == int(seed_version()[:7], 16)
        assert connection.execute("SELECT count(DISTINCT tenant) FROM orders").fetchone()[0] == 3
