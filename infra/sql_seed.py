"""Loads the sample CRM + ERP data set into the Aurora cluster the CDK stack deploys, through the RDS Data API, and
creates the tools' read-only login. Run once after the first deploy, and again to reset the data (it replaces
the tables and views; the reader's password is re-read from its secret):

    python -m infra.sql_seed --cluster-arn <SqlDatabase cluster ARN> --admin-secret-arn <admin secret> \
        --reader-secret-arn <tools_reader secret> [--database crm] [--region eu-west-1]

Everything but the reader's login runs in one transaction: a failed load leaves the previous data in place.
"""

from __future__ import annotations

import argparse
import csv
import json
from typing import Any

import sqlglot
from sqlglot import exp

from agentplatform.sql import DataApiPostgres
from local.crm_db import SCHEMA, SEED_DIR, TABLES  # the data set's files, as the local database reads them

VIEWS = ("v_orders", "v_invoices", "v_revenue_by_month")
READER = "tools_reader"
BATCH = 200  # rows per BatchExecuteStatement (its request stays far under the Data API's size limits)


def schema_statements() -> list[exp.Expression]:
    return [s for s in sqlglot.parse(SCHEMA.read_text(encoding="utf-8"), read="postgres") if s]


def column_types(statements: list[exp.Expression]) -> dict[str, dict[str, exp.DataType.Type]]:
    """table -> column -> its declared type, from the CREATE TABLE statements."""
    out: dict[str, dict[str, exp.DataType.Type]] = {}
    for statement in statements:
        if isinstance(statement, exp.Create) and statement.args.get("kind") == "TABLE":
            table = statement.this.this.name
            out[table] = {c.name: c.args["kind"].this for c in statement.find_all(exp.ColumnDef)}
    return out


def _field(value: str, kind: exp.DataType.Type) -> dict[str, Any]:
    # An empty CSV cell is NULL; dates and decimals travel as strings with a type hint (the Data API's rule).
    if value == "":
        return {"isNull": True}
    if kind in (exp.DataType.Type.INT, exp.DataType.Type.BIGINT):
        return {"longValue": int(value)}
    return {"stringValue": value}


def _hint(kind: exp.DataType.Type) -> str | None:
    return {exp.DataType.Type.DATE: "DATE", exp.DataType.Type.DECIMAL: "DECIMAL"}.get(kind)


def _parameter(name: str, value: str, kind: exp.DataType.Type) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "value": _field(value, kind)}
    hint = _hint(kind)
    if hint and value != "":
        parameter["typeHint"] = hint
    return parameter


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def load(client: Any, secrets: Any, *, cluster_arn: str, admin_secret_arn: str, reader_secret_arn: str,
         database: str = "crm") -> dict[str, int]:  # fmt: skip
    """Replace the data set's tables and views, load the seed, and (re)create the reader; rows loaded per table."""
    target = {"resourceArn": cluster_arn, "secretArn": admin_secret_arn, "database": database}
    statements = schema_statements()
    types = column_types(statements)
    transaction = client.begin_transaction(**target)["transactionId"]
    loaded: dict[str, int] = {}
    try:
        for view in VIEWS:
            client.execute_statement(sql=f"DROP VIEW IF EXISTS {view}", transactionId=transaction, **target)
        for table in reversed(TABLES):
            client.execute_statement(sql=f"DROP TABLE IF EXISTS {table}", transactionId=transaction, **target)
        for statement in statements:
            client.execute_statement(
                sql=statement.sql(dialect=DataApiPostgres, comments=False), transactionId=transaction, **target
            )
        for table in TABLES:
            with (SEED_DIR / f"{table}.csv").open(encoding="utf-8", newline="") as source:
                rows = list(csv.DictReader(source))
            columns = list(rows[0])
            insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"  # noqa: S608
            for start in range(0, len(rows), BATCH):
                client.batch_execute_statement(
                    sql=insert,
                    parameterSets=[
                        [_parameter(c, row[c], types[table][c]) for c in columns] for row in rows[start : start + BATCH]
                    ],
                    transactionId=transaction,
                    **target,
                )
            loaded[table] = len(rows)
        client.commit_transaction(resourceArn=cluster_arn, secretArn=admin_secret_arn, transactionId=transaction)
    except BaseException:
        client.rollback_transaction(resourceArn=cluster_arn, secretArn=admin_secret_arn, transactionId=transaction)
        raise
    reader = json.loads(secrets.get_secret_value(SecretId=reader_secret_arn)["SecretString"])
    exists = client.execute_statement(
        sql="SELECT 1 FROM pg_roles WHERE rolname = :name",
        parameters=[{"name": "name", "value": {"stringValue": reader["username"]}}],
        **target,
    )["records"]
    # A role's password cannot be a bound parameter in PostgreSQL: a quoted literal, sent once, never logged.
    verb = "ALTER" if exists else "CREATE"
    client.execute_statement(sql=f"{verb} ROLE {READER} LOGIN PASSWORD {_literal(reader['password'])}", **target)
    client.execute_statement(sql=f"GRANT SELECT ON {', '.join((*TABLES, *VIEWS))} TO {READER}", **target)
    client.execute_statement(sql=f"ALTER ROLE {READER} SET default_transaction_read_only = on", **target)
    client.execute_statement(sql=f"ALTER ROLE {READER} SET statement_timeout = '10s'", **target)
    return loaded


def main() -> None:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster-arn", required=True)
    parser.add_argument("--admin-secret-arn", required=True)
    parser.add_argument("--reader-secret-arn", required=True)
    parser.add_argument("--database", default="crm")
    parser.add_argument("--region")
    args = parser.parse_args()
    session = boto3.session.Session(region_name=args.region)
    loaded = load(
        session.client("rds-data"),
        session.client("secretsmanager"),
        cluster_arn=args.cluster_arn,
        admin_secret_arn=args.admin_secret_arn,
        reader_secret_arn=args.reader_secret_arn,
        database=args.database,
    )
    for table, rows in loaded.items():
        print(f"{table}: {rows} rows")


if __name__ == "__main__":
    main()
