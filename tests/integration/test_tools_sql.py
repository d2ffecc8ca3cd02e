"""The SQL business tools in the real local stack: the runtime builds the CRM + ERP database from data/crm, and the
tools function (its handler, policy and container) answers crm_lookup, erp_order_status and sql_query from it,
for the caller's tenant only."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests

from agentplatform.tools import ToolCaller, ToolCallRequest, ToolListRequest
from tests.integration.conftest import bearer, seed_passages

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runtime_overrides() -> dict[str, Any]:
    return {"LOCAL_MODELS": "embedding"}  # the search and the extractive answer of the conversation turn


def call(runtime: Any, tenant: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    caller = ToolCaller(tenant=tenant, user="alice", call_id="k1", idempotency_key=f"{tenant}-{name}")
    failed, result = runtime.invoke(
        "tools", ToolCallRequest(caller=caller, name=name, arguments=arguments).model_dump(mode="json")
    )
    assert not failed, result
    return result


def database(runtime: Any) -> Path:
    path = Path(os.environ["SQL_DATABASE_PATH"])
    assert path.parent == runtime.settings.data_dir and path.is_file()
    return path


def test_the_tools_function_lists_the_sql_tools(runtime):
    caller = ToolCaller(tenant="acme", user="alice")
    failed, listed = runtime.invoke("tools", ToolListRequest(caller=caller).model_dump(mode="json"))
    assert not failed, listed
    assert {"crm_lookup", "erp_order_status", "sql_query"} <= {t["name"] for t in listed["tools"]}


def test_an_aggregate_question_and_the_refused_writes(runtime):
    path = database(runtime)
    out = call(runtime, "globex", "sql_query", {"sql": "SELECT count(*), sum(total_amount) FROM v_orders"})
    assert out["status"] == "ok", out
    with sqlite3.connect(path) as connection:
        expected = connection.execute(
            "SELECT count(*), sum(total_amount) FROM orders WHERE tenant = 'globex'"
        ).fetchone()
    assert out["result"]["rows"] == [list(expected)]
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    for sql in ("DELETE FROM orders", "UPDATE orders SET status = 'x'", "SELECT 1; DROP TABLE orders"):
        refused = call(runtime, "globex", "sql_query", {"sql": sql})
        assert refused["status"] == "error" and refused["error"].startswith("query refused: "), refused
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_lookups_answer_for_the_callers_tenant(runtime):
    acme = call(runtime, "acme", "crm_lookup", {"query": "ACC-1001", "kind": "account"})
    globex = call(runtime, "globex", "crm_lookup", {"query": "ACC-1001", "kind": "account"})
    assert acme["status"] == globex["status"] == "ok"
    assert acme["result"]["accounts"][0]["name"] != globex["result"]["accounts"][0]["name"]
    order = call(runtime, "acme", "erp_order_status", {"order_number": "SO-10001"})
    assert order["status"] == "ok" and order["result"]["order"]["lines"], order
    assert call(runtime, "globex", "erp_order_status", {"order_number": "SO-10001"})["status"] == "error"


def test_a_question_needing_the_erp_and_the_documents_answers_from_both(runtime):
    """Issue 14, check 1: the order number in the question plans the ERP lookup beside the search; the answer cites
    the order record and the policy, and the turn shows both calls and their results."""
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    seed_passages(
        {
            "acme": [
                ("returns", "Returns policy", "Delivered orders can be returned within 30 days of delivery."),
                ("cafeteria", "Cafeteria", "The cafeteria opens at eight in the morning on weekdays."),
            ]
        }
    )
    headers = bearer(runtime, scopes=("conversations",))
    created = requests.post(f"{runtime.http_url}/v1/conversations", json={}, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    question = "What is the status of order SO-10001? And how long can delivered orders be returned?"
    response = requests.post(
        f"{runtime.http_url}/v1/conversations/{created.json()['id']}/messages",
        json={"content": question},
        headers=headers,
        timeout=120,
    )
    assert response.status_code == 200, response.text
    turn = response.json()
    runs = {r["name"]: r for r in turn["tool_runs"]}
    assert runs["erp_order_status"]["status"] == "ok" and runs["knowledge_search"]["status"] == "ok", runs
    assert runs["erp_order_status"]["result"]["order"]["status"] == "delivered"
    assert turn["status"] == "answered", turn
    cited = {c["doc_id"] for c in turn["citations"]}
    assert {"erp:SO-10001", "returns"} <= cited, (turn["answer"], cited)
    assert "delivered" in turn["answer"] and "30 days" in turn["answer"], turn["answer"]
