"""Buckets, queues, tables and buses as the topology describes them, with the platform's safety defaults."""

from __future__ import annotations

from typing import Any

import pytest

from agentplatform.topology import PLATFORM, Bucket, Queue, Table
from tests.infra.cdk_synth import Synth

pytestmark = pytest.mark.infra


def _denies_insecure_transport(synth: Synth, policy_type: str, target_key: str, lid: str) -> bool:
    for policy in synth.of_type(policy_type).values():
        props = policy["Properties"]
        targets = props[target_key] if isinstance(props[target_key], list) else [props[target_key]]
        if {"Ref": lid} not in targets:
            continue
        for statement in props["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                return True
    return False


def _dlq_alarms(synth: Synth, dlq_lid: str) -> list[dict[str, Any]]:
    return [
        alarm["Properties"]
        for alarm in synth.of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and alarm["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_lid, "QueueName"]}}]
        and alarm["Properties"]["Threshold"] == 0
        and alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
    ]


@pytest.mark.parametrize("queue", [pytest.param(q, id=q.name) for q in PLATFORM.queues])
def test_queue_has_dlq_alarm_encryption_and_timeouts(synth: Synth, queue: Queue) -> None:
    lid = synth.logical_id(f"queue:{queue.name}")
    props = synth.props(lid)
    redrive = props["RedrivePolicy"]
    dlq_lid, _ = synth.target(redrive["deadLetterTargetArn"])
    assert redrive["maxReceiveCount"] == queue.max_receive_count
    assert props["VisibilityTimeout"] == queue.visibility_timeout_s
    assert synth.props(dlq_lid)["MessageRetentionPeriod"] == queue.dlq_retention_days * 86400
    for q in (lid, dlq_lid):
        assert synth.props(q)["SqsManagedSseEnabled"] is True
        assert _denies_insecure_transport(synth, "AWS::SQS::QueuePolicy", "Queues", q)
    assert len(_dlq_alarms(synth, dlq_lid)) == 1


def test_every_queue_in_the_template_has_or_is_an_alarmed_dlq(synth: Synth) -> None:
    """Including the rules' target DLQs, which the topology does not name."""
    queues = synth.of_type("AWS::SQS::Queue")
    dlqs = {
        synth.target(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])[0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    for rule in synth.of_type("AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            dlqs.add(synth.target(target["DeadLetterConfig"]["Arn"])[0])
    for lid, queue in queues.items():
        assert lid in dlqs or "RedrivePolicy" in queue["Properties"], f"{lid} has no DLQ and is none"
        assert _denies_insecure_transport(synth, "AWS::SQS::QueuePolicy", "Queues", lid)
    for dlq in dlqs:
        assert _dlq_alarms(synth, dlq), f"DLQ {dlq} has no alarm"


@pytest.mark.parametrize("bucket", [pytest.param(b, id=b.name) for b in PLATFORM.buckets])
def test_bucket_is_private_encrypted_logged_and_retained(synth: Synth, bucket: Bucket) -> None:
    lid = synth.logical_id(f"bucket:{bucket.name}")
    props = synth.props(lid)
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert (props.get("VersioningConfiguration") == {"Status": "Enabled"}) is bucket.versioned
    eventbridge = props.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {})
    assert eventbridge.get("EventBridgeEnabled", False) is bucket.eventbridge
    logs_lid, _ = synth.target(props["LoggingConfiguration"]["DestinationBucketName"])
    assert synth.resources[logs_lid]["Type"] == "AWS::S3::Bucket"
    assert synth.resources[lid]["DeletionPolicy"] == "Retain"
    assert _denies_insecure_transport(synth, "AWS::S3::BucketPolicy", "Bucket", lid)
    assert _denies_insecure_transport(synth, "AWS::S3::BucketPolicy", "Bucket", logs_lid)


@pytest.mark.parametrize("table", [pytest.param(t, id=t.name) for t in PLATFORM.tables])
def test_table_is_on_demand_recoverable_and_keyed_as_described(synth: Synth, table: Table) -> None:
    lid = synth.logical_id(f"table:{table.name}")
    props = synth.props(lid)
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}  # AWS managed key
    keys = [{"AttributeName": table.partition_key, "KeyType": "HASH"}]
    if table.sort_key:
        keys.append({"AttributeName": table.sort_key, "KeyType": "RANGE"})
    assert props["KeySchema"] == keys
    if table.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {"AttributeName": table.ttl_attribute, "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in props
    indexes = {i["IndexName"]: i["KeySchema"] for i in props.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {i.name for i in table.indexes}
    assert synth.resources[lid]["DeletionPolicy"] == "Retain"


def test_buses_are_the_topology_buses(synth: Synth) -> None:
    tagged = {synth.logical_id(f"bus:{b.name}") for b in PLATFORM.buses}
    assert set(synth.of_type("AWS::Events::EventBus")) == tagged
