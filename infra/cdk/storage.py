"""Buckets, queues (each with its DLQ and an alarm on it), tables and event buses, from the topology."""

from __future__ import annotations

from typing import cast

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from agentplatform.topology import Bucket, EventBus, Queue, Table, Topology
from infra.cdk.registry import Registry, construct_id, tag_with_ref


def secure_queue(scope: Construct, id: str, **props: object) -> sqs.Queue:
    """An SQS queue with SQS-managed encryption that refuses plain-HTTP requests."""
    return sqs.Queue(scope, id, encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True, **props)  # type: ignore[arg-type]


def alarm_on_messages(scope: Construct, id: str, dlq: sqs.IQueue, description: str) -> cloudwatch.Alarm:
    """Alarm as soon as one message sits in a dead-letter queue (something failed every retry)."""
    return dlq.metric_approximate_number_of_messages_visible(
        period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
    ).create_alarm(
        scope,
        id,
        alarm_description=description,
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


class Storage(Construct):
    def __init__(
        self, scope: Construct, id: str, *, topology: Topology, registry: Registry, access_log_retention_days: int
    ) -> None:
        super().__init__(scope, id)
        # Server access logs are delivered under a bucket policy (no ACLs), whatever the app's feature flags say.
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        self._registry = registry
        self.access_logs = self._access_logs_bucket(access_log_retention_days)
        for bucket in topology.buckets:
            registry.buckets[bucket.name] = self._bucket(bucket)
        for queue in topology.queues:
            registry.queues[queue.name] = self._queue(queue)
        for table in topology.tables:
            registry.tables[table.name] = self._table(table)
            registry.table_indexes[table.name] = [index.name for index in table.indexes]
        for bus in topology.buses:
            registry.buses[bus.name] = self._bus(bus)

    def _access_logs_bucket(self, retention_days: int) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption S3 server access logging delivers to
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(retention_days))],
        )
        return bucket

    def _bucket(self, spec: Bucket) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            f"{construct_id(spec.name)}Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=spec.versioned,
            lifecycle_rules=(
                [s3.LifecycleRule(expiration=Duration.days(spec.expire_after_days))] if spec.expire_after_days else None
            ),
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{spec.name}/",
            removal_policy=RemovalPolicy.RETAIN,
        )
        if spec.eventbridge:
            # Set on the bucket itself (CloudFormation supports it natively) rather than through
            # `event_bridge_enabled`, which deploys a notifications custom-resource Lambda for the same result.
            cfn = cast(s3.CfnBucket, bucket.node.default_child)
            cfn.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
                event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
            )
        tag_with_ref(bucket, f"bucket:{spec.name}", "AWS::S3::Bucket")
        return bucket

    def _queue(self, spec: Queue) -> sqs.Queue:
        name = construct_id(spec.name)
        dlq = secure_queue(self, f"{name}Dlq", retention_period=Duration.days(spec.dlq_retention_days))
        queue = secure_queue(
            self,
            f"{name}Queue",
            visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=spec.max_receive_count),
        )
        alarm_on_messages(
            self,
            f"{name}DlqAlarm",
            dlq,
            f"Messages of queue {spec.name} failed {spec.max_receive_count} deliveries and wait in its DLQ.",
        )
        tag_with_ref(queue, f"queue:{spec.name}", "AWS::SQS::Queue")
        return queue

    def _table(self, spec: Table) -> dynamodb.Table:
        def key(name: str | None) -> dynamodb.Attribute | None:
            return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING) if name else None

        table = dynamodb.Table(
            self,
            f"{construct_id(spec.name)}Table",
            partition_key=key(spec.partition_key),
            sort_key=key(spec.sort_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=spec.ttl_attribute,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=key(index.partition_key),  # type: ignore[arg-type]
                sort_key=key(index.sort_key),
            )
        tag_with_ref(table, f"table:{spec.name}", "AWS::DynamoDB::Table")
        return table

    def _bus(self, spec: EventBus) -> events.EventBus:
        bus = events.EventBus(self, f"{construct_id(spec.name)}Bus", description=spec.purpose[:512])
        tag_with_ref(bus, f"bus:{spec.name}", "AWS::Events::EventBus")
        return bus
