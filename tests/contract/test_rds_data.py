"""The Aurora Data API adapter against botocore's own rds-data model (Stubber checks every request's parameters and
every canned answer's shape): a read-only transaction with a statement timeout, typed parameters, typed rows,
and the Data API's errors as the platform's."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from agentplatform.adapters.aws.rds_data import RdsDataDatabase
from agentplatform.errors import DependencyUnavailable, PlatformError, QueryFailed, QueryTimedOut
from agentplatform.sql import transpile
from functions.tools import erp_order_status
from functions.tools.registry import ToolContext, ToolRegistry

CLUSTER = "arn:aws:rds:us-east-1:123456789012:cluster:crm"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:crm-tools-AbCdEf"
CLUSTER_ADMIN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:crm-admin-GhIjKl"
TARGET = {"resourceArn": CLUSTER, "secretArn": SECRET, "database": "crm"}
TX = "tx-0001"


@pytest.fixture
def stubbed() -> Any:
    client = boto3.session.Session().client(
        "rds-data", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        yield RdsDataDatabase(CLUSTER, SECRET, "crm", client), stub
        stub.assert_no_pending_responses()


def _begin_and_guard(stub: Stubber, timeout_ms: str) -> None:
    stub.add_response("begin_transaction", {"transactionId": TX}, TARGET)
    stub.add_response(
        "execute_statement",
        {"records": [[{"stringValue": timeout_ms}, {"stringValue": "on"}]], "numberOfRecordsUpdated": 0},
        {**TARGET, "sql": ANY, "transactionId": TX,
         "parameters": [{"name": "timeout_ms", "value": {"stringValue": timeout_ms}}]},
    )  # fmt: skip


def _rollback(stub: Stubber) -> None:
    stub.add_response(
        "rollback_transaction",
        {"transactionStatus": "Rollback Complete"},
        {"resourceArn": CLUSTER, "secretArn": SECRET, "transactionId": TX},
    )


def _column(name: str, type_name: str) -> dict[str, Any]:
    return {"name": name, "label": name, "typeName": type_name}


def test_a_query_runs_read_only_with_typed_parameters_and_rows(stubbed: Any):
    db, stub = stubbed
    _begin_and_guard(stub, "2500")
    stub.add_response(
        "execute_statement",
        {
            "columnMetadata": [_column("order_number", "varchar"), _column("lines", "int8"),
                               _column("total_amount", "numeric"), _column("paid_on", "date"),
                               _column("open", "bool")],
            "records": [
                [{"stringValue": "SO-10042"}, {"longValue": 3}, {"stringValue": "1234.50"}, {"isNull": True},
                 {"booleanValue": True}],
                [{"stringValue": "SO-10043"}, {"longValue": 1}, {"stringValue": "99.00"},
                 {"stringValue": "2026-03-01"}, {"booleanValue": False}],
            ],
        },
        {**TARGET, "sql": "SELECT ...", "transactionId": TX, "includeResultMetadata": True,
         "parameters": [{"name": "tenant", "value": {"stringValue": "acme"}}, {"name": "n", "value": {"longValue": 2}},
                        {"name": "x", "value": {"doubleValue": 1.5}}, {"name": "b", "value": {"booleanValue": True}},
                        {"name": "z", "value": {"isNull": True}}]},
    )  # fmt: skip
    _rollback(stub)
    rows = db.query("SELECT ...", {"tenant": "acme", "n": 2, "x": 1.5, "b": True, "z": None}, timeout_s=2.5, max_rows=1)
    assert rows.columns == ["order_number", "lines", "total_amount", "paid_on", "open"]
    assert rows.rows == [["SO-10042", 3, 1234.5, None, True]]
    assert rows.truncated is True


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("BadRequestException", 400, QueryFailed),
        ("StatementTimeoutException", 400, QueryTimedOut),
        ("DatabaseResumingException", 400, DependencyUnavailable),
        # The shared translation's: retryable either way (its classes for these are not this adapter's to pick).
        ("ThrottlingException", 429, None),
        ("InternalServerErrorException", 500, None),
    ],
)
def test_data_api_errors_become_platform_errors_and_the_transaction_is_rolled_back(
    stubbed: Any, code: str, status: int, error: type[PlatformError] | None
):
    db, stub = stubbed
    _begin_and_guard(stub, "1000")
    stub.add_client_error("execute_statement", service_error_code=code, service_message="ERROR: column x",
                          http_status_code=status)  # fmt: skip
    _rollback(stub)
    with pytest.raises(error or PlatformError) as raised:
        db.query("SELECT x FROM v_orders", {}, timeout_s=1, max_rows=10)
    assert error is not None or raised.value.retryable


def test_a_cluster_that_cannot_start_a_transaction_is_unavailable(stubbed: Any):
    db, stub = stubbed
    stub.add_client_error("begin_transaction", service_error_code="DatabaseResumingException", http_status_code=400)
    with pytest.raises(DependencyUnavailable):
        db.query("SELECT 1", {}, timeout_s=1, max_rows=1)


def test_erp_order_status_sends_postgres_sql_with_the_callers_tenant(stubbed: Any):
    # The same tool over the Data API: PostgreSQL text from the one source, `:name` parameters, tenant from the
    # context.
    db, stub = stubbed
    params = [{"name": "tenant", "value": {"stringValue": "globex"}},
              {"name": "order_number", "value": {"stringValue": "SO-20007"}}]  # fmt: skip
    answers = {
        erp_order_status._ORDER: (
            [_column(name, "varchar") for name in ("order_number", "status", "order_date", "currency")]
            + [_column("total_amount", "numeric")]
            + [_column(name, "varchar") for name in ("account_id", "account_name")],
            [
                [{"stringValue": v} for v in ("SO-20007", "shipped", "2026-11-02", "EUR")]
                + [{"stringValue": "500.00"}]
                + [{"stringValue": v} for v in ("ACC-2001", "Initech GmbH")]
            ],
        ),
        **{statement: ([_column("id", "varchar")], []) for statement in erp_order_status._PARTS.values()},
    }
    for statement, (columns, records) in answers.items():
        _begin_and_guard(stub, "5000")
        stub.add_response(
            "execute_statement",
            {"columnMetadata": columns, "records": records},
            {**TARGET, "sql": transpile(statement, "postgres"), "parameters": params, "transactionId": TX,
             "includeResultMetadata": True},
        )  # fmt: skip
        _rollback(stub)
    context = ToolContext(
        tenant="globex", user="u", groups=(), conversation_id="c", turn=1, step=0, call_id="k", idempotency_key="i",
        resources={"sql_database": db},
    )  # fmt: skip
    out = ToolRegistry([erp_order_status.SPEC]).call("erp_order_status", {"order_number": "so-20007"}, context)
    assert out.status == "ok", out.error
    assert out.result["order"] == {
        "order_number": "SO-20007", "status": "shipped", "order_date": "2026-11-02", "currency": "EUR",
        "total_amount": 500.0, "account_id": "ACC-2001", "account_name": "Initech GmbH", "lines": [],
        "shipments": [], "invoices": [],
    }  # fmt: skip
    [record] = out.result["passages"]  # the order as a cited passage the answer can quote
    assert record["citation"]["doc_id"] == "erp:SO-20007" and "its total is 500.0 EUR" in record["text"]


def test_the_aurora_seed_loads_the_data_set_in_one_transaction_and_creates_the_reader():
    from infra.sql_seed import BATCH, load
    from local.crm_db import SEED_DIR, TABLES

    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    rds, secrets = session.client("rds-data"), session.client("secretsmanager")
    calls: list[tuple[str, dict[str, Any]]] = []
    record = lambda params, model, **_: calls.append((model.name, dict(params)))  # noqa: E731
    rds.meta.events.register("provide-client-params.rds-data.*", record)
    rows = {t: sum(1 for _ in (SEED_DIR / f"{t}.csv").open()) - 1 for t in TABLES}
    with Stubber(rds) as stub, Stubber(secrets) as secret_stub:
        stub.add_response("begin_transaction", {"transactionId": TX})
        for _ in range(3 + len(TABLES) + 12):  # drop the views and tables, then the schema's 12 statements
            stub.add_response("execute_statement", {"numberOfRecordsUpdated": 0})
        for table in TABLES:
            for _ in range(0, rows[table], BATCH):
                stub.add_response("batch_execute_statement", {"updateResults": []})
        stub.add_response("commit_transaction", {"transactionStatus": "Transaction Committed"})
        secret_stub.add_response(
            "get_secret_value",
            {"SecretString": json.dumps({"username": "tools_reader", "password": "p'w"})},
            {"SecretId": SECRET},
        )
        stub.add_response("execute_statement", {"records": []})  # no such role yet
        for _ in range(4):
            stub.add_response("execute_statement", {"numberOfRecordsUpdated": 0})
        loaded = load(rds, secrets, cluster_arn=CLUSTER, admin_secret_arn=CLUSTER_ADMIN, reader_secret_arn=SECRET)
        stub.assert_no_pending_responses()
    assert loaded == rows
    in_transaction = [p for name, p in calls if p.get("transactionId") == TX and name != "CommitTransaction"]
    assert len(in_transaction) == len(calls) - 1 - 1 - 5  # all but begin, commit and the reader's five
    lines = next(p for name, p in calls if name == "BatchExecuteStatement" and "order_lines" in p["sql"])
    first = {f["name"]: f for f in lines["parameterSets"][0]}
    assert first["line_no"]["value"] == {"longValue": 1}
    assert first["unit_price"]["typeHint"] == "DECIMAL" and "stringValue" in first["unit_price"]["value"]
    invoices = next(p for name, p in calls if name == "BatchExecuteStatement" and "invoices" in p["sql"])
    assert any({"name": "paid_on", "value": {"isNull": True}} in row for row in invoices["parameterSets"])
    reader_sql = [p["sql"] for _, p in calls[-4:]]
    assert reader_sql[0] == "CREATE ROLE tools_reader LOGIN PASSWORD 'p''w'"
    assert reader_sql[1].startswith("GRANT SELECT ON accounts, ") and reader_sql[1].endswith(" TO tools_reader")
    assert "default_transaction_read_only = on" in reader_sql[2]
