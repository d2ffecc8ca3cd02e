"""S3, SQS, EventBridge, Step Functions and DynamoDB adapters. Each takes an injected boto3 client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agentplatform.adapters.aws.errors import aws_call, probe
from agentplatform.errors import DependencyUnavailable
from agentplatform.observability import sqs_correlation_attribute, with_correlation
from agentplatform.ports import StoredObject


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
        return StoredObject(key=key, body=body, metadata=dict(metadata or {}), version=out.get("VersionId"))

    def get(self, key: str) -> StoredObject:
        with aws_call(f"{self._resource}/{key}"):
            out = self._s3.get_object(Bucket=self._bucket, Key=key)
            body = out["Body"].read()
        return StoredObject(key=key, body=body, metadata=out.get("Metadata", {}), version=out.get("VersionId"))

    def delete(self, key: str) -> None:
        with aws_call(f"{self._resource}/{key}"):
            self._s3.delete_object(Bucket=self._bucket, Key=key)


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
        with aws_call(self._resource):
            out = self._sfn.start_execution(**kwargs)
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


def _to_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in item.items()}


def _from_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}
