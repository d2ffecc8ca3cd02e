"""One suite per port, run against every adapter that can run here: the in-memory fake and the boto3 adapter
(on moto in-process). A test that passes on the fake but fails on AWS means the fake lies."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from agentplatform.adapters.aws.storage import (
    DynamoTable,
    EventBridgeBus,
    S3ObjectStore,
    SqsQueue,
    StepFunctionsWorkflow,
)
from agentplatform.errors import DependencyUnavailable, NotFound
from agentplatform.observability import lambda_entry
from agentplatform.ports import Update
from tests.fakes import (
    MemoryEventBus,
    MemoryObjectStore,
    MemoryQueue,
    MemoryTable,
    MemoryWorkflow,
)

REGION = "us-east-1"
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def client(name: str):
    return boto3.client(name, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")


def in_correlation(cid: str, fn):
    """Run fn inside a Lambda invocation that carries correlation id `cid`."""

    class Context:
        aws_request_id = "req"
        function_name = "contract"
        memory_limit_in_mb = 128
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:contract"

    return lambda_entry("contract")(lambda event, context: fn())({"correlation_id": cid}, Context())


# -- ObjectStore


@pytest.fixture(params=["memory", "s3"])
def object_store(request):
    if request.param == "memory":
        yield MemoryObjectStore()
        return
    with mock_aws():
        s3 = client("s3")
        s3.create_bucket(Bucket="drop")
        yield S3ObjectStore("drop", s3)


def test_object_store_round_trip(object_store):
    stored = object_store.put("t1/a.md", b"# hello", {"title": "Hello"})
    got = object_store.get("t1/a.md")
    assert (got.body, got.metadata) == (b"# hello", {"title": "Hello"})
    assert got.key == stored.key
    object_store.delete("t1/a.md")
    with pytest.raises(NotFound):
        object_store.get("t1/a.md")
    object_store.check()


def test_object_store_missing_key_is_not_found(object_store):
    with pytest.raises(NotFound):
        object_store.get("nope")
    with pytest.raises(NotFound):
        object_store.head("nope")


def test_object_store_head_has_metadata_and_size_without_the_body(object_store):
    stored = object_store.put("t1/a.md", b"# hello", {"title": "Hello"})
    head = object_store.head("t1/a.md")
    assert (head.body, head.size, head.metadata, head.version) == (b"", 7, {"title": "Hello"}, stored.version)


def test_object_store_lists_one_folder_level_up_to_a_limit(object_store):
    for key in ["t1/docs/b.md", "t1/docs/a.md", "t1/docs/a.md.meta.json", "t1/docs/sub/c.md", "t1/docsx.md"]:
        object_store.put(key, b"x")
    assert object_store.list_folder("t1/docs/", limit=10) == ["t1/docs/a.md", "t1/docs/a.md.meta.json", "t1/docs/b.md"]
    assert object_store.list_folder("t1/docs/", limit=2) is None  # more than the limit: not listed
    assert object_store.list_folder("t1/none/", limit=10) == []


def test_missing_bucket_is_dependency_unavailable(aws):
    with pytest.raises(DependencyUnavailable, match="does not exist"):
        S3ObjectStore("missing", client("s3")).check()


# -- Queue


@pytest.fixture(params=["memory", "sqs"])
def queue_and_reader(request):
    if request.param == "memory":
        queue = MemoryQueue()
        yield queue, lambda: [(m["body"], m["correlation_id"]) for m in queue.messages]
        return
    with mock_aws():
        sqs = client("sqs")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]

        def read():
            out = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], MaxNumberOfMessages=10)
            return [
                (json.loads(m["Body"]), m.get("MessageAttributes", {}).get("correlation_id", {}).get("StringValue"))
                for m in out.get("Messages", [])
            ]

        yield SqsQueue(url, sqs), read


def test_queue_carries_the_correlation_id(queue_and_reader):
    queue, read = queue_and_reader
    in_correlation("cid-q", lambda: queue.send({"n": 1}))
    assert read() == [({"n": 1}, "cid-q")]
    queue.check()


# -- EventBus


@pytest.fixture(params=["memory", "eventbridge"])
def bus_and_reader(request):
    if request.param == "memory":
        bus = MemoryEventBus()
        yield bus, lambda: [e["detail"] for e in bus.events]
        return
    with mock_aws():
        events, sqs = client("events"), client("sqs")
        events.create_event_bus(Name="platform")
        url = sqs.create_queue(QueueName="sink")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="all", EventBusName="platform", EventPattern=json.dumps({"source": [{"prefix": ""}]}))
        events.put_targets(Rule="all", EventBusName="platform", Targets=[{"Id": "1", "Arn": arn}])

        def read():
            out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            return [json.loads(m["Body"])["detail"] for m in out.get("Messages", [])]

        yield EventBridgeBus("platform", events), read


def test_event_bus_publishes_with_correlation_id(bus_and_reader):
    bus, read = bus_and_reader
    event_id = in_correlation("cid-e", lambda: bus.publish("agentplatform.test", "Thing Happened", {"k": "v"}))
    assert event_id
    assert read() == [{"k": "v", "correlation_id": "cid-e"}]
    bus.check()


def test_missing_event_bus_is_dependency_unavailable(aws):
    with pytest.raises(DependencyUnavailable):
        EventBridgeBus("missing", client("events")).check()


# -- Workflow


@pytest.fixture(params=["memory", "stepfunctions"])
def workflow_and_reader(request):
    if request.param == "memory":
        workflow = MemoryWorkflow()
        yield workflow, lambda execution: workflow.executions[execution]
        return
    with mock_aws():
        sfn, iam = client("stepfunctions"), client("iam")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        arn = sfn.create_state_machine(name="m", definition=PASS_MACHINE, roleArn=role)["stateMachineArn"]
        yield (
            StepFunctionsWorkflow(arn, sfn),
            lambda execution: json.loads(sfn.describe_execution(executionArn=execution)["input"]),
        )


def test_workflow_start_puts_the_correlation_id_in_the_input(workflow_and_reader):
    workflow, read = workflow_and_reader
    execution = in_correlation("cid-w", lambda: workflow.start({"doc": "a"}))
    assert read(execution) == {"doc": "a", "correlation_id": "cid-w"}
    second = in_correlation("cid-w", lambda: workflow.start({"doc": "b"}))
    assert second != execution
    workflow.check()


def test_a_workflow_name_is_an_idempotency_key(workflow_and_reader):
    workflow, read = workflow_and_reader
    first = in_correlation("cid-1", lambda: workflow.start({"doc": "a"}, name="run-1"))
    again = in_correlation("cid-2", lambda: workflow.start({"doc": "a"}, name="run-1"))  # a redelivered event
    assert again == first
    assert read(first) == {"doc": "a", "correlation_id": "cid-1"}


# -- KeyValueTable


@pytest.fixture(params=["memory", "dynamodb"])
def table(request):
    if request.param == "memory":
        yield MemoryTable()
        return
    with mock_aws():
        ddb = client("dynamodb")
        ddb.create_table(
            TableName="documents",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoTable("documents", ddb)


def test_table_round_trip(table):
    key = {"pk": "tenant#t1", "sk": "doc#1"}
    assert table.get(key) is None
    table.put({**key, "status": "indexed", "chunks": 3, "tags": ["a"]})
    assert table.get(key) == {**key, "status": "indexed", "chunks": 3, "tags": ["a"]}
    table.delete(key)
    assert table.get(key) is None
    table.check()


def test_table_update_creates_merges_and_respects_the_expectation(table):
    key = {"pk": "tenant#t1", "sk": "doc#1"}
    assert table.update(key, {"status": "processing", "claim": "run-1", "progress": 5})
    assert table.update(key, {"progress": 40}, expect={"claim": "run-1"})
    assert not table.update(key, {"progress": 99}, expect={"claim": "run-0"})  # an older run: refused
    assert table.get(key) == {**key, "status": "processing", "claim": "run-1", "progress": 40}
    assert not table.update({"pk": "tenant#t1", "sk": "doc#2"}, {"x": 1}, expect={"claim": "run-1"})
    assert table.get({"pk": "tenant#t1", "sk": "doc#2"}) is None


def test_table_update_expecting_none_writes_only_where_the_attribute_is_absent(table):
    key = {"pk": "rate#t1", "sk": "bucket"}
    assert table.update(key, {"tat": 5}, expect={"tat": None})  # no item yet
    assert not table.update(key, {"tat": 9}, expect={"tat": None})  # now it exists: a second first-writer loses
    assert table.update(key, {"tat": 7}, expect={"tat": 5})
    assert table.get(key)["tat"] == 7


def test_table_get_many_answers_in_key_order_across_calls(table):
    for n in range(0, 150, 2):
        table.put({"pk": "tenant#t1", "sk": f"doc#{n:03d}", "n": n})
    keys = [{"pk": "tenant#t1", "sk": f"doc#{n:03d}"} for n in reversed(range(150))]  # > 100: two calls
    items = table.get_many(keys)
    assert [i and i["n"] for i in items] == [n if n % 2 == 0 else None for n in reversed(range(150))]
    assert table.get_many([]) == []


def test_table_put_many_writes_whole_items_across_calls(table):
    items = [{"pk": "tenant#t1", "sk": f"doc#{n:03d}", "n": n, "tags": ["a"]} for n in range(60)]  # > 25: 3 calls
    table.update({"pk": "tenant#t1", "sk": "doc#000"}, {"stale": True})
    table.put_many(items)
    assert table.get_many([{"pk": i["pk"], "sk": i["sk"]} for i in items]) == items  # replaced whole
    table.put_many([])


def test_table_update_many_writes_each_on_its_own_expectation(table):
    keys = [{"pk": "tenant#t1", "sk": f"doc#{n:03d}"} for n in range(120)]  # > 100: two transactions
    assert table.update_many([Update(k, {"claim": "run-1", "n": i}) for i, k in enumerate(keys)]) == [True] * 120
    assert table.update(keys[5], {"claim": "run-2"})  # a newer run owns one document now
    written = table.update_many([Update(k, {"stage": "chunk"}, expect={"claim": "run-1"}) for k in keys])
    assert written == [i != 5 for i in range(120)]
    items = table.get_many(keys)
    assert [i["stage"] for n, i in enumerate(items) if n != 5] == ["chunk"] * 119 and "stage" not in items[5]
    missing = {"pk": "tenant#t1", "sk": "doc#none"}
    assert table.update_many([Update(missing, {"x": 1}, expect={"claim": "run-1"})]) == [False]
    assert table.get(missing) is None


def test_table_increment_adds_atomically_from_zero_and_sets_values(table):
    key = {"pk": "tokens#t1", "sk": "2026-11"}
    assert table.increment(key, "used", 120, {"expires_at": 100}) == 120
    assert table.increment(key, "used", 30) == 150
    assert table.get(key) == {**key, "used": 150, "expires_at": 100}


def test_table_add_within_adds_only_while_every_ceiling_holds(table):
    key = {"pk": "budget#t1", "sk": "2026-11"}
    assert table.add_within(key, {"tokens": 60, "usd": 5}, {"tokens": 100, "usd": 10}, {"expires_at": 7})
    assert table.add_within(key, {"tokens": 40, "usd": 1}, {"tokens": 100, "usd": 10})  # exactly at the ceiling
    assert not table.add_within(key, {"tokens": 1, "usd": 0}, {"tokens": 100})  # one over: nothing written
    assert not table.add_within(key, {"tokens": 0, "usd": 5}, {"tokens": 100, "usd": 10})
    assert table.add_within(key, {"tokens": -30, "usd": -2})  # no ceilings: a plain atomic add (a settlement)
    assert table.get(key) == {**key, "tokens": 70, "usd": 4, "expires_at": 7}
    fresh = {"pk": "budget#t2", "sk": "2026-11"}
    assert not table.add_within(fresh, {"tokens": 11}, {"tokens": 10})
    assert table.get(fresh) is None


def test_table_query_pages_one_partition_in_key_order(table):
    for n in range(5):
        table.put({"pk": "tenant#t1", "sk": f"doc#{n}", "n": n})
    table.put({"pk": "tenant#t2", "sk": "doc#9", "n": 9})
    first, after = table.query({"pk": "tenant#t1"}, limit=3)
    assert [i["n"] for i in first] == [0, 1, 2] and after is not None
    rest, after = table.query({"pk": "tenant#t1"}, limit=3, after=after)
    assert [i["n"] for i in rest] == [3, 4]
    if after is not None:  # DynamoDB may hand back a key at the very end of a partition
        assert table.query({"pk": "tenant#t1"}, limit=3, after=after)[0] == []


def test_unreachable_fake_behaves_like_a_down_dependency():
    store = MemoryObjectStore()
    store.available = False
    with pytest.raises(DependencyUnavailable):
        store.put("k", b"v")
