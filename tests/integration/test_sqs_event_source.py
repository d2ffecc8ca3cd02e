"""SQS event source mappings: batches reach the handler, partial failures are retried, poison goes to the DLQ."""

from __future__ import annotations

import json

import pytest

from agentplatform.topology import PLATFORM, EventSourceMapping, Function, Queue
from local.resources import physical_name
from tests.integration.conftest import start_runtime, wait_for

pytestmark = pytest.mark.integration

TOPOLOGY = PLATFORM.model_copy(
    update={
        "queues": [*PLATFORM.queues, Queue(name="work", purpose="test", visibility_timeout_s=1, max_receive_count=2)],
        "functions": [
            *PLATFORM.functions,
            Function(name="worker", service="tests", handler="tests.integration.unused.handler", purpose="test"),
        ],
        "event_sources": [EventSourceMapping(queue="work", function="worker", batch_size=5)],
    }
)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    rt = start_runtime(tmp_path_factory, TOPOLOGY)
    yield rt
    rt.stop()


def test_partial_batch_failure_retries_only_the_failed_and_poison_ends_in_the_dlq(runtime):
    processed: list[str] = []
    correlation_ids: set[str] = set()

    def handler(event, context):
        failures = []
        for record in event["Records"]:
            body = json.loads(record["body"])
            correlation_ids.add(record["messageAttributes"]["correlation_id"]["stringValue"])
            if body["poison"]:
                failures.append({"itemIdentifier": record["messageId"]})
            else:
                processed.append(body["n"])
        return {"batchItemFailures": failures}

    name = physical_name(runtime.settings.prefix, "worker")
    runtime.router.register(name, TOPOLOGY.function("worker"), handler)

    sqs = runtime.client("sqs")
    url = runtime.provisioned.value("queue:work", "url")
    attributes = {"correlation_id": {"DataType": "String", "StringValue": "batch-1"}}
    for n in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n, "poison": n == 2}), MessageAttributes=attributes)

    dlq_url = sqs.get_queue_url(QueueName=f"{runtime.provisioned.value('queue:work', 'name')}-dlq")["QueueUrl"]
    dead = wait_for(lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages"), timeout_s=30)

    assert sorted(processed) == [0, 1, 3]  # each good message exactly once
    assert [json.loads(m["Body"])["n"] for m in dead] == [2]
    assert correlation_ids == {"batch-1"}
    queue_depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert queue_depth["Attributes"]["ApproximateNumberOfMessages"] == "0"
