"""SqlDatabase over Aurora PostgreSQL through the RDS Data API (rds-data ExecuteStatement).

Each query runs in its own transaction, made read-only with a statement timeout before the statement runs, then
rolled back: a statement that slipped past the tools' checks still cannot write, nor run past its timeout. The
client is built with SDK retries off (bootstrap): a resuming cluster is the caller's to retry, as a
DependencyUnavailable.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from agentplatform.adapters.aws.errors import translate
from agentplatform.errors import DependencyUnavailable, PlatformError, QueryFailed, QueryTimedOut
from agentplatform.ports import SqlRows

_GUARD = "SELECT set_config('statement_timeout', :timeout_ms, true), set_config('transaction_read_only', 'on', true)"
_NUMERIC = {"numeric", "decimal"}  # the Data API returns these as strings; the port's rows carry numbers


class RdsDataDatabase:
    dialect = "postgres"

    def __init__(self, cluster_arn: str, secret_arn: str, database: str, client: Any) -> None:
        self._target = {"resourceArn": cluster_arn, "secretArn": secret_arn, "database": database}
        self._rds = client
        self._resource = f"SQL database {database}"

    def query(self, sql: str, params: Mapping[str, Any], *, timeout_s: float, max_rows: int) -> SqlRows:
        transaction = self._call("begin_transaction", **self._target)["transactionId"]
        try:
            guard = {"timeout_ms": str(max(1, math.ceil(timeout_s * 1000)))}
            self._call("execute_statement", sql=_GUARD, parameters=_parameters(guard), transactionId=transaction,
                       **self._target)  # fmt: skip
            started = time.monotonic()
            try:
                out = self._call(
                    "execute_statement",
                    sql=sql,
                    parameters=_parameters(params),
                    includeResultMetadata=True,
                    transactionId=transaction,
                    **self._target,
                )
            except QueryFailed as exc:
                # PostgreSQL cancels a statement at its statement_timeout with the same BadRequestException as
                # any refusal (no SQLSTATE comes back): one that failed at the deadline timed out.
                if time.monotonic() - started >= timeout_s:
                    raise QueryTimedOut(f"{self._resource}: the statement ran past {timeout_s:g} s") from exc
                raise
        finally:
            # A failed rollback leaves nothing behind: the Data API ends an idle transaction itself.
            with contextlib.suppress(PlatformError):
                self._call("rollback_transaction", resourceArn=self._target["resourceArn"],
                           secretArn=self._target["secretArn"], transactionId=transaction)  # fmt: skip
        metadata = out.get("columnMetadata", [])
        numeric = [str(c.get("typeName", "")).lower() in _NUMERIC for c in metadata]
        records = out.get("records", [])
        rows = [[_value(field, numeric[i]) for i, field in enumerate(record)] for record in records[:max_rows]]
        return SqlRows(
            columns=[c.get("label") or c.get("name", "") for c in metadata],
            rows=rows,
            truncated=len(records) > max_rows,
        )

    def check(self) -> None:
        self._call("execute_statement", sql="SELECT 1", **self._target)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._rds, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "StatementTimeoutException":
                raise QueryTimedOut(f"{self._resource}: the statement ran past its timeout") from exc
            if code == "DatabaseResumingException":
                raise DependencyUnavailable(f"{self._resource} is resuming; retry shortly", aws_code=code) from exc
            if code == "BadRequestException":
                # PostgreSQL's own words (column "x" does not exist) are what the statement's author needs.
                message = exc.response.get("Error", {}).get("Message", "")
                raise QueryFailed(f"the database refused the statement: {message}") from exc
            raise translate(exc, resource=self._resource) from exc
        except BotoCoreError as exc:
            raise translate(exc, resource=self._resource) from exc


def _parameters(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"name": name, "value": _field(value)} for name, value in params.items()]


def _field(value: Any) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    raise TypeError(f"unsupported SQL parameter type {type(value).__name__}")


def _value(field: Mapping[str, Any], numeric: bool) -> Any:
    if field.get("isNull"):
        return None
    ((kind, value),) = field.items()
    if kind == "stringValue" and numeric:
        return float(value)
    if kind in ("stringValue", "longValue", "doubleValue", "booleanValue"):
        return value
    raise DependencyUnavailable(f"SQL database returned an unsupported {kind} value")
