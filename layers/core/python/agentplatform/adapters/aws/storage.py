"""S3, SQS, EventBridge, Step Functions and DynamoDB adapters. Each takes an injected boto3 client."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentplatform.adapters.aws.errors import aws_call, probe
from agentplatform.errors import DependencyUnavailable, PlatformError
from agentplatform.observability import sqs_correlation_attribute, with_correlation
from agentplatform.ports import StoredObject, Update

_BATCH_GET = 100  # DynamoDB's limits: keys per BatchGetItem, items per BatchWriteItem
_BATCH_WRITE = 25
_UNPROCESSED_TRIES = 5
_PARALLEL_WRITES = 8


class S3ObjectStore:
    def __init__(self, bucket: str, client: Any) -> None:
        self._bucket = bucket
        self._s3 = client
        self._resource = f"s3://{bucket}"

    def check(self) -> None:
        probe(self._resource, lambda: self._s3.head_bucket(Bucket=self._bucket))

    def put(self, key: str, body: bytes, metadata: Mapping[str, str] | None = None) -> StoredObject:
        with aws_call(self._resource):
            out = self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, Metadata=dict(metadata or {}))
        return StoredObject(key, body, dict(metadata or {}), version=out.get("VersionId"), size=len(body))

    def get(self, key: str) -> StoredObject:
        with aws_call(f"{self._resource}/{key}"):
            out = self._s3.get_object(Bucket=self._bucket, Key=key)
            body = out["Body"].read()
        return StoredObject(key, body, out.get("Metadata", {}), version=out.get("VersionId"), size=len(body))

    def head(self, key: str) -> StoredObject:
        with aws_call(f"{self._resource}/{key}"):
            out = self._s3.head_object(Bucket=self._bucket, Key=key)
        return StoredObject(key, b"", out.get("Metadata", {}), version=out.get("VersionId"), size=out["ContentLength"])

    def delete(self, key: str) -> None:
        with aws_call(f"{self._resource}/{key}"):
            self._s3.delete_object(Bucket=self._bucket, Key=key)

    def list_folder(self, folder: str, *, limit: int) -> list[str] | None:
        keys: list[str] = []
        request: dict[str, Any] = {"Bucket": self._bucket, "Prefix": folder, "Delimiter": "/"}
        while True:
            with aws_call(f"{self._resource}/{folder}"):
                out = self._s3.list_objects_v2(**request, MaxKeys=min(1000, limit + 1 - len(keys)))
            keys += [o["Key"] for o in out.get("Contents", [])]
            if len(keys) > limit:
                return None
            if not out.get("IsTruncated"):
                return keys
            request["ContinuationToken"] = out["NextContinuationToken"]

    def list_page(self, prefix: str, *, limit: int, after: str | None = None) -> tuple[list[StoredObject], str | None]:
        request: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, "MaxKeys": limit}
        if after:
            request["StartAfter"] = after  # a key, not a continuation token: the caller's cursor is stateless
        with aws_call(f"{self._resource}/{prefix}"):
            out = self._s3.list_objects_v2(**request)
        page = [StoredObject(o["Key"], b"", size=o["Size"]) for o in out.get("Contents", [])]
        return page, (page[-1].key if out.get("IsTruncated") and page else None)


class SqsQueue:
    def __init__(self, queue_url: str, client: Any) -> None:
        self._url = queue_url
        self._sqs = client
        self._resource = f"sqs {queue_url.rsplit('/', 1)[-1]}"

    def check(self) -> None:
        probe(
            self._resource,
            lambda: self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"]),
        )

    def send(self, body: Mapping[str, Any]) -> str:
        with aws_call(self._resource):
            out = self._sqs.send_message(
                QueueUrl=self._url,
                MessageBody=json.dumps(body, separators=(",", ":")),
                MessageAttributes=sqs_correlation_attribute(),
            )
        return str(out["MessageId"])


class EventBridgeBus:
    def __init__(self, bus_name: str, client: Any) -> None:
        self._bus = bus_name
        self._events = client
        self._resource = f"event bus {bus_name}"

    def check(self) -> None:
        probe(self._resource, lambda: self._events.describe_event_bus(Name=self._bus))

    def publish(self, source: str, detail_type: str, detail: Mapping[str, Any]) -> str:
        entry = {
            "EventBusName": self._bus,
            "Source": source,
            "DetailType": detail_type,
            "Detail": json.dumps(with_correlation(detail), separators=(",", ":")),
        }
        with aws_call(self._resource):
            out = self._events.put_events(Entries=[entry])
        result = out["Entries"][0]
        if out.get("FailedEntryCount") or "EventId" not in result:
            raise DependencyUnavailable(
                f"{self._resource} rejected the event: {result.get('ErrorCode')}", resource=self._resource
            )
        return str(result["EventId"])


class StepFunctionsWorkflow:
    def __init__(self, state_machine_arn: str, client: Any) -> None:
        self._arn = state_machine_arn
        self._sfn = client
        self._resource = f"state machine {state_machine_arn.rsplit(':', 1)[-1]}"

    def check(self) -> None:
        probe(self._resource, lambda: self._sfn.describe_state_machine(stateMachineArn=self._arn))

    def start(self, payload: Mapping[str, Any], *, name: str | None = None) -> str:
        kwargs: dict[str, Any] = {
            "stateMachineArn": self._arn,
            "input": json.dumps(with_correlation(payload)),
        }
        if name:
            kwargs["name"] = name
        try:
            with aws_call(self._resource):
                out = self._sfn.start_execution(**kwargs)
        except PlatformError as exc:
            if name and exc.context.get("aws_code") == "ExecutionAlreadyExists":
                # A name is an idempotency key: this execution was started before (a redelivered message).
                return self._arn.replace(":stateMachine:", ":execution:") + f":{name}"
            raise
        return str(out["executionArn"])


class DynamoTable:
    def __init__(self, table_name: str, client: Any) -> None:
        self._name = table_name
        self._ddb = client
        self._resource = f"table {table_name}"

    def check(self) -> None:
        probe(self._resource, lambda: self._ddb.describe_table(TableName=self._name))

    def get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        with aws_call(self._resource):
            out = self._ddb.get_item(TableName=self._name, Key=_to_attributes(key), ConsistentRead=True)
        item = out.get("Item")
        return _from_attributes(item) if item else None

    def put(self, item: Mapping[str, Any]) -> None:
        with aws_call(self._resource):
            self._ddb.put_item(TableName=self._name, Item=_to_attributes(item))

    def delete(self, key: Mapping[str, str]) -> None:
        with aws_call(self._resource):
            self._ddb.delete_item(TableName=self._name, Key=_to_attributes(key))

    def update(
        self, key: Mapping[str, str], values: Mapping[str, Any], *, expect: Mapping[str, Any] | None = None
    ) -> bool:
        try:
            with aws_call(self._resource):
                self._ddb.update_item(**self._update_request(Update(key, values, expect)))
        except PlatformError as exc:
            if exc.context.get("aws_code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get_many(self, keys: Sequence[Mapping[str, str]]) -> list[dict[str, Any] | None]:
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        names = sorted(keys[0]) if keys else []
        for start in range(0, len(keys), _BATCH_GET):
            request = {self._name: {"Keys": [_to_attributes(k) for k in keys[start : start + _BATCH_GET]]}}
            for attempt in range(_UNPROCESSED_TRIES):
                if attempt:
                    time.sleep(0.05 * 2**attempt)  # unprocessed keys mean throttling: back off, as AWS advises
                with aws_call(self._resource):
                    out = self._ddb.batch_get_item(
                        RequestItems={self._name: {**request[self._name], "ConsistentRead": True}}
                    )
                for item in map(_from_attributes, out.get("Responses", {}).get(self._name, [])):
                    found[tuple(item[n] for n in names)] = item
                request = out.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise DependencyUnavailable(f"{self._resource} left keys unprocessed", resource=self._resource)
        return [found.get(tuple(k[n] for n in names)) for k in keys]

    def put_many(self, items: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(items), _BATCH_WRITE):
            request = {
                self._name: [{"PutRequest": {"Item": _to_attributes(i)}} for i in items[start : start + _BATCH_WRITE]]
            }
            for attempt in range(_UNPROCESSED_TRIES):
                if attempt:
                    time.sleep(0.05 * 2**attempt)  # unprocessed items mean throttling: back off, as AWS advises
                with aws_call(self._resource):
                    out = self._ddb.batch_write_item(RequestItems=request)
                request = out.get("UnprocessedItems") or {}
                if not request:
                    break
            else:
                raise DependencyUnavailable(f"{self._resource} left items unprocessed", resource=self._resource)

    def update_many(self, updates: Sequence[Update]) -> list[bool]:
        """One UpdateItem per item, a few at a time. DynamoDB's only multi-item conditional write is a transaction,
        which is all or nothing (one superseded document would cancel the rest), costs twice the write capacity,
        and which moto emulates by copying the whole table for every item."""
        if len(updates) <= 1:
            return [self.update(u.key, u.values, expect=u.expect) for u in updates]
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_WRITES, len(updates))) as pool:
            return list(pool.map(lambda u: self.update(u.key, u.values, expect=u.expect), updates))

    def _update_request(self, update: Update) -> dict[str, Any]:
        values, expect = update.values, update.expect
        names = {f"#v{i}": name for i, name in enumerate(values)}
        attributes = {f":v{i}": value for i, value in enumerate(values.values())}
        request: dict[str, Any] = {
            "TableName": self._name,
            "Key": _to_attributes(update.key),
            "UpdateExpression": "SET " + ", ".join(f"#v{i} = :v{i}" for i in range(len(values))),
        }
        if expect:
            names |= {f"#e{i}": name for i, name in enumerate(expect)}
            attributes |= {f":e{i}": value for i, value in enumerate(expect.values()) if value is not None}
            request["ConditionExpression"] = " AND ".join(
                f"attribute_not_exists(#e{i})" if value is None else f"#e{i} = :e{i}"
                for i, value in enumerate(expect.values())
            )
        request["ExpressionAttributeNames"] = names
        if attributes:
            request["ExpressionAttributeValues"] = _to_attributes(attributes)
        return request

    def increment(
        self, key: Mapping[str, str], field: str, amount: int, values: Mapping[str, Any] | None = None
    ) -> int:
        sets = dict(values or {})
        names = {"#n": field} | {f"#v{i}": name for i, name in enumerate(sets)}
        attributes = {":n": amount} | {f":v{i}": value for i, value in enumerate(sets.values())}
        expression = "ADD #n :n" + (" SET " + ", ".join(f"#v{i} = :v{i}" for i in range(len(sets))) if sets else "")
        with aws_call(self._resource):
            out = self._ddb.update_item(
                TableName=self._name,
                Key=_to_attributes(key),
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_attributes(attributes),
                ReturnValues="UPDATED_NEW",
            )
        return int(_from_attributes(out["Attributes"])[field])

    def add_within(
        self,
        key: Mapping[str, str],
        deltas: Mapping[str, int],
        ceilings: Mapping[str, int] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        # DynamoDB conditions cannot add: `used + delta <= ceiling` is written `used <= ceiling - delta`.
        names = {f"#a{i}": name for i, name in enumerate(deltas)}
        attributes: dict[str, Any] = {f":a{i}": amount for i, amount in enumerate(deltas.values())}
        expression = "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(deltas)))
        sets = dict(values or {})
        if sets:
            names |= {f"#v{i}": name for i, name in enumerate(sets)}
            attributes |= {f":v{i}": value for i, value in enumerate(sets.values())}
            expression += " SET " + ", ".join(f"#v{i} = :v{i}" for i in range(len(sets)))
        conditions = []
        for i, (name, ceiling) in enumerate((ceilings or {}).items()):
            names[f"#c{i}"] = name
            attributes[f":c{i}"] = ceiling - int(deltas.get(name, 0))
            attributes.setdefault(":zero", 0)
            conditions.append(f"(attribute_not_exists(#c{i}) AND :zero <= :c{i}) OR #c{i} <= :c{i}")
        request: dict[str, Any] = {
            "TableName": self._name,
            "Key": _to_attributes(key),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _to_attributes(attributes),
        }
        if conditions:
            request["ConditionExpression"] = " AND ".join(f"({c})" for c in conditions)
        try:
            with aws_call(self._resource):
                self._ddb.update_item(**request)
        except PlatformError as exc:
            if exc.context.get("aws_code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def query(
        self, partition: Mapping[str, str], *, limit: int = 100, after: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        (name, value) = next(iter(partition.items()))
        kwargs: dict[str, Any] = {
            "TableName": self._name,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": name},
            "ExpressionAttributeValues": _to_attributes({":p": value}),
            "Limit": limit,
            "ConsistentRead": True,
        }
        if after:
            kwargs["ExclusiveStartKey"] = _to_attributes(after)
        with aws_call(self._resource):
            out = self._ddb.query(**kwargs)
        last = out.get("LastEvaluatedKey")
        return [_from_attributes(i) for i in out.get("Items", [])], (_from_attributes(last) if last else None)


def _to_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in item.items()}


def _from_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}
