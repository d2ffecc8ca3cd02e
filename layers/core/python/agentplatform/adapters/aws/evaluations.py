"""The `evaluations` table: one item per evaluated turn, the alerts, and each watched score's alert state.

    records      pk "rec#<tenant>"        sk "<at_ms:013d>#<turn id>"   route_key "<tenant>#<route>" (index by_route)
    alerts       pk "alert#<tenant>"      sk "<opened_ms:013d>#<score>"
    alert state  pk "state#<tenant>"      sk "<score>"                  state open|ok, alert (the open alert's sk)

A record's whole body is one JSON attribute (`doc`): scores are floats, which DynamoDB only takes as Decimals,
and nothing queries inside a record. The tenant leads every key, so no query reaches another tenant's rows.
"""

from __future__ import annotations

import json
from typing import Any

from agentplatform.adapters.aws.errors import aws_call, probe
from agentplatform.errors import PlatformError
from agentplatform.evaluation import Alert, EvaluationRecord

ROUTE_INDEX = "by_route"


def record_key(record: EvaluationRecord) -> dict[str, str]:
    return {"pk": f"rec#{record.tenant}", "sk": f"{record.at_ms:013d}#{record.turn_id}"}


class EvaluationStore:
    def __init__(self, table_name: str, client: Any) -> None:
        self._name = table_name
        self._ddb = client
        self._resource = f"table {table_name}"

    def check(self) -> None:
        probe(self._resource, lambda: self._ddb.describe_table(TableName=self._name))

    # records ----------------------------------------------------------------------------------------------------

    def put(self, record: EvaluationRecord) -> None:
        """Idempotent: a redelivered turn has the same key (its completion time and turn id) and overwrites."""
        key = record_key(record)
        item = {
            **{k: {"S": v} for k, v in key.items()},
            "route_key": {"S": f"{record.tenant}#{record.route}"},
            "source": {"S": record.source},
            "doc": {"S": record.model_dump_json()},
        }
        if record.release:
            item["release"] = {"S": record.release}
        with aws_call(self._resource):
            self._ddb.put_item(TableName=self._name, Item=item)

    def records(
        self, tenant: str, *, since_ms: int = 0, limit: int = 1000, route: str | None = None
    ) -> list[EvaluationRecord]:
        """The tenant's records since a time, newest first (of one answering route, when given)."""
        if route is None:
            keys, index = {"#p": "pk", ":p": f"rec#{tenant}"}, None
        else:
            keys, index = {"#p": "route_key", ":p": f"{tenant}#{route}"}, ROUTE_INDEX
        kwargs: dict[str, Any] = {
            "TableName": self._name,
            "KeyConditionExpression": "#p = :p AND #s >= :s",
            "ExpressionAttributeNames": {"#p": keys["#p"], "#s": "sk"},
            "ExpressionAttributeValues": {":p": {"S": keys[":p"]}, ":s": {"S": f"{max(0, since_ms):013d}"}},
            "ScanIndexForward": False,
        }
        if index:
            kwargs["IndexName"] = index
        return [EvaluationRecord.model_validate_json(i["doc"]["S"]) for i in self._query(kwargs, limit)]

    def _query(self, kwargs: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < limit:
            with aws_call(self._resource):
                page = self._ddb.query(**kwargs, Limit=min(500, limit - len(out)))
            out.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}
        return out

    # alerts -----------------------------------------------------------------------------------------------------

    def alert_state(self, tenant: str, score: str) -> tuple[str, str | None]:
        """(state, the open alert's key) of one watched score: ("ok", None) before any alert."""
        with aws_call(self._resource):
            item = self._ddb.get_item(
                TableName=self._name, Key={"pk": {"S": f"state#{tenant}"}, "sk": {"S": score}}, ConsistentRead=True
            ).get("Item")
        if not item:
            return "ok", None
        return item["state"]["S"], (item.get("alert") or {}).get("S")

    def open_alert(self, alert: Alert) -> bool:
        """Record an alert as the score's open one, unless another is open (evaluators race on one window: the
        conditional write lets exactly one of them raise it). Return whether this one was recorded."""
        sk = f"{alert.opened_ms:013d}#{alert.score}"
        if not self._set_state(alert.tenant, alert.score, "open", sk, expect_open=None):
            return False
        self._put_alert(alert)
        return True

    def clear_alert(self, alert: Alert) -> bool:
        sk = f"{alert.opened_ms:013d}#{alert.score}"
        if not self._set_state(alert.tenant, alert.score, "ok", None, expect_open=sk):
            return False
        self._put_alert(alert)
        return True

    def alert(self, tenant: str, sk: str) -> Alert | None:
        with aws_call(self._resource):
            item = self._ddb.get_item(
                TableName=self._name, Key={"pk": {"S": f"alert#{tenant}"}, "sk": {"S": sk}}, ConsistentRead=True
            ).get("Item")
        return Alert.model_validate_json(item["doc"]["S"]) if item else None

    def alerts(self, tenant: str, *, since_ms: int = 0, limit: int = 100) -> list[Alert]:
        kwargs: dict[str, Any] = {
            "TableName": self._name,
            "KeyConditionExpression": "pk = :p AND sk >= :s",
            "ExpressionAttributeValues": {":p": {"S": f"alert#{tenant}"}, ":s": {"S": f"{max(0, since_ms):013d}"}},
            "ScanIndexForward": False,
        }
        return [Alert.model_validate_json(i["doc"]["S"]) for i in self._query(kwargs, limit)]

    def _put_alert(self, alert: Alert) -> None:
        item = {
            "pk": {"S": f"alert#{alert.tenant}"},
            "sk": {"S": f"{alert.opened_ms:013d}#{alert.score}"},
            "state": {"S": alert.state},
            "doc": {"S": json.dumps(alert.model_dump(mode="json"))},
        }
        with aws_call(self._resource):
            self._ddb.put_item(TableName=self._name, Item=item)

    def _set_state(self, tenant: str, score: str, state: str, alert: str | None, *, expect_open: str | None) -> bool:
        values: dict[str, Any] = {":state": {"S": state}}
        if expect_open is None:  # no alert open now: no state row yet, or one in state ok
            condition = "attribute_not_exists(pk) OR #st = :ok"
            values[":ok"] = {"S": "ok"}
        else:
            condition = "#st = :open AND #al = :expected"
            values[":open"], values[":expected"] = {"S": "open"}, {"S": expect_open}
        update = "SET #st = :state" + (", #al = :alert" if alert else " REMOVE #al")
        if alert:
            values[":alert"] = {"S": alert}
        try:
            with aws_call(self._resource):
                self._ddb.update_item(
                    TableName=self._name,
                    Key={"pk": {"S": f"state#{tenant}"}, "sk": {"S": score}},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#st": "state", "#al": "alert"},
                    ExpressionAttributeValues=values,
                )
        except PlatformError as exc:
            if exc.context.get("aws_code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
