"""The emulator's fix-ups of moto: each guarded (a changed moto fails at install, naming the patch) and undone on
uninstall; each state machine definition parsed once where sharing the program is safe (checked with real
executions of Map, Parallel, Choice loops and waitForTaskToken); Lambda tasks share one boto3 client per region,
service and server; SQS reads a cheap clock."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws
from moto.sqs import models
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from local import emulator
from local.emulator import EmulatorPatchError, _install_hooks, uninstall_hooks


@pytest.fixture(autouse=True)
def _hooks_undone_after_each_test():
    yield
    uninstall_hooks()


def worker(definition: dict) -> SimpleNamespace:
    details = SimpleNamespace(state_machine_details=SimpleNamespace(definition=json.dumps(definition)))
    return SimpleNamespace(_evaluation_details=details)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    _install_hooks()
    seen: list[str] = []
    original = AmazonStateLanguageParser.parse

    def counting(definition: str):
        seen.append(definition)
        return original(definition)

    monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(counting))
    return seen


def test_executions_of_one_definition_share_its_parsed_program(parses: list[str]) -> None:
    # A definition no other test parses (the cache outlives tests): a unique comment.
    definition = {"Comment": uuid.uuid4().hex, "StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    first = ExecutionWorker._get_evaluation_entrypoint(worker(definition))
    second = ExecutionWorker._get_evaluation_entrypoint(worker(definition))
    assert first is second and len(parses) == 1


def test_definitions_with_a_parallel_state_are_parsed_per_execution(parses: list[str]) -> None:
    branch = {"StartAt": "B", "States": {"B": {"Type": "Succeed"}}}
    definition = {
        "Comment": uuid.uuid4().hex,
        "StartAt": "Both",
        "States": {"Both": {"Type": "Parallel", "Branches": [branch, branch], "End": True}},
    }
    first = ExecutionWorker._get_evaluation_entrypoint(worker(definition))
    second = ExecutionWorker._get_evaluation_entrypoint(worker(definition))
    assert first is not second and len(parses) == 2


def test_lambda_tasks_share_a_client_per_region_service_and_server(monkeypatch: pytest.MonkeyPatch) -> None:
    _install_hooks()
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    monkeypatch.setenv("MOTO_PORT", "5001")
    first = lambda_eval_utils.boto_client_for("us-east-1", "lambda")
    assert lambda_eval_utils.boto_client_for("us-east-1", "lambda") is first
    assert lambda_eval_utils.boto_client_for("eu-west-1", "lambda") is not first
    monkeypatch.setenv("MOTO_PORT", "5002")  # another local runtime's server
    other = lambda_eval_utils.boto_client_for("us-east-1", "lambda")
    assert other is not first and other.meta.endpoint_url.endswith(":5002")


def test_sqs_reads_the_same_clock_cheaply_and_keeps_visibility() -> None:
    _install_hooks()
    assert abs(models.unix_time_millis() - time.time() * 1000) < 1000
    assert models.unix_time(datetime(1970, 1, 2)) == 86400  # a given time: moto's own arithmetic
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody="m")
        (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
        assert "Messages" not in sqs.receive_message(QueueUrl=queue)  # in flight: invisible
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
        assert len(sqs.receive_message(QueueUrl=queue)["Messages"]) == 1


def test_uninstall_puts_every_original_back_and_install_again_works() -> None:
    from moto.events.models import Rule

    plain = (ExecutionWorker.__dict__["_get_evaluation_entrypoint"], models.unix_time, Rule.send_to_targets)
    _install_hooks()
    patched = list(emulator._originals)
    assert len(patched) >= 10 and ExecutionWorker._get_evaluation_entrypoint is not plain[0]
    uninstall_hooks()
    assert emulator._originals == []
    restored = (ExecutionWorker.__dict__["_get_evaluation_entrypoint"], models.unix_time, Rule.send_to_targets)
    assert all(a is b for a, b in zip(plain, restored, strict=True))
    for owner, attribute, own in patched:  # every one, the inherited ones gone from the subclass again
        if own is emulator._INHERITED:
            assert attribute not in vars(owner)
        else:
            assert (vars(owner)[attribute] if isinstance(owner, type) else getattr(owner, attribute)) is own
    _install_hooks()
    assert len(emulator._originals) == len(patched)


def test_a_changed_moto_internal_fails_at_install_naming_the_patch_and_leaves_moto_unpatched(monkeypatch) -> None:
    import moto
    from moto.awslambda.models import LambdaBackend
    from moto.events.models import Rule

    def send_to_targets(self, event):  # a moto whose signature moved on
        raise AssertionError("never called")

    monkeypatch.setattr(Rule, "send_to_targets", send_to_targets)
    plain_invoke = LambdaBackend.invoke
    with pytest.raises(EmulatorPatchError, match=rf"'event-targets'.*moto {re.escape(moto.__version__)}"):
        _install_hooks()
    assert emulator._originals == [] and LambdaBackend.invoke is plain_invoke  # the Lambda patch came first: undone


def test_a_missing_moto_internal_fails_at_install(monkeypatch) -> None:
    monkeypatch.delattr(models, "unix_time_millis")
    with pytest.raises(EmulatorPatchError, match=r"'sqs-clock'.*has no"):
        _install_hooks()


def test_lambda_invocations_go_to_the_router_for_platform_functions_only(monkeypatch) -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    calls = []

    class Router:
        def knows(self, name):
            return name == "ours"

        def invoke(self, name, event):
            calls.append((name, event))
            return SimpleNamespace(failed=True, payload=b'{"errorType": "X"}')

    monkeypatch.setattr(emulator, "_router", Router())
    _install_hooks()
    headers: dict = {}
    out = LambdaSimpleBackend.invoke(None, "ours", None, json.dumps({"a": 1}), {}, headers)
    assert out == b'{"errorType": "X"}' and headers["x-amz-function-error"] == "Unhandled"
    assert calls == [("ours", {"a": 1})]


# -- the parse cache, with real executions: several at once of one definition, each with its own input ----------

_CONFIG = {"stepfunctions": {"execute_state_machine": True}}
_ROLE = "arn:aws:iam::123456789012:role/sfn"


def _run_concurrently(definition: dict, inputs: list[dict], during=None) -> list[dict]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(name=uuid.uuid4().hex, definition=json.dumps(definition), roleArn=_ROLE)[
        "stateMachineArn"
    ]
    runs = [
        sfn.start_execution(stateMachineArn=arn, name=uuid.uuid4().hex, input=json.dumps(i))["executionArn"]
        for i in inputs
    ]
    if during is not None:
        during()
    deadline = time.monotonic() + 60  # generous: a loaded 2-core machine runs moto's executions slowly
    outputs = []
    for run in runs:
        while (out := sfn.describe_execution(executionArn=run))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution still running"
            time.sleep(0.05)
        assert out["status"] == "SUCCEEDED", out
        outputs.append(json.loads(out["output"]))
    return outputs


MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"n.$": "$$.Map.Item.Value", "tag.$": "$.tag"},
            "ItemProcessor": {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}},
            "End": True,
        }
    },
}
CHOICE_LOOP = {
    "StartAt": "Start",
    "States": {
        "Start": {"Type": "Pass", "Parameters": {"i": 0, "limit.$": "$.limit"}, "Next": "More"},
        "More": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThanPath": "$.limit", "Next": "Step"}],
            "Default": "Done",
        },
        "Step": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)", "limit.$": "$.limit"}, "Next": "More"},
        "Done": {"Type": "Succeed"},
    },
}
PARALLEL = {
    "StartAt": "Both",
    "States": {
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "L", "States": {"L": {"Type": "Pass", "Parameters": {"l.$": "$.x"}, "End": True}}},
                {"StartAt": "R", "States": {"R": {"Type": "Pass", "Parameters": {"r.$": "$.x"}, "End": True}}},
            ],
            "End": True,
        }
    },
}


@pytest.mark.parametrize(
    ("definition", "inputs", "expected", "parsed_once"),
    [
        (
            MAP,
            [{"items": list(range(k)), "tag": f"t{k}"} for k in (1, 3, 5)],
            [[{"n": n, "tag": f"t{k}"} for n in range(k)] for k in (1, 3, 5)],
            True,
        ),
        (CHOICE_LOOP, [{"limit": k} for k in (2, 5, 9)], [{"i": k, "limit": k} for k in (2, 5, 9)], True),
        # Parallel branches keep bookkeeping on the parsed program: parsed per execution.
        (PARALLEL, [{"x": k} for k in (1, 2, 3)], [[{"l": k}, {"r": k}] for k in (1, 2, 3)], False),
    ],
    ids=["map", "choice-loop", "parallel"],
)
def test_concurrent_executions_of_one_definition_each_get_their_own_result(
    parses, definition, inputs, expected, parsed_once
) -> None:
    definition = {"Comment": uuid.uuid4().hex, **definition}
    with mock_aws(config=_CONFIG):
        assert _run_concurrently(definition, inputs) == expected
    mine = [d for d in parses if definition["Comment"] in d]
    # CreateStateMachine validates the definition with one parse of its own; then the executions' parses.
    assert len(mine) == 1 + (1 if parsed_once else len(inputs))


def test_concurrent_executions_waiting_for_task_tokens_resume_each_with_its_own_output(parses) -> None:
    with mock_aws(config=_CONFIG):
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="tokens")["QueueUrl"]
        definition = {
            "Comment": uuid.uuid4().hex,
            "StartAt": "Wait",
            "States": {
                "Wait": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token", "id.$": "$.id"}},
                    "End": True,
                }
            },
        }

        def resume_each() -> None:
            sfn = boto3.client("stepfunctions", region_name="us-east-1")
            resumed: set[str] = set()
            deadline = time.monotonic() + 60
            while len(resumed) < 3:
                assert time.monotonic() < deadline, f"task tokens not sent (resumed {sorted(resumed)})"
                for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
                    body = json.loads(message["Body"])
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                    if body["id"] not in resumed:  # a redelivered message resumes nothing twice
                        sfn.send_task_success(taskToken=body["token"], output=json.dumps({"resumed": body["id"]}))
                        resumed.add(body["id"])
                time.sleep(0.02)

        outputs = _run_concurrently(definition, [{"id": k} for k in ("a", "b", "c")], during=resume_each)
    assert outputs == [{"resumed": k} for k in ("a", "b", "c")]
    assert len([d for d in parses if definition["Comment"] in d]) == 2  # CreateStateMachine's, then one shared


def test_event_rules_hand_lambda_and_step_functions_targets_to_the_runtime(monkeypatch) -> None:
    delivered = []
    monkeypatch.setattr(emulator, "_on_target", lambda target, payload: delivered.append((target["Id"], payload)))
    _install_hooks()
    with mock_aws():
        events, sqs = boto3.client("events", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="r", EventPattern=json.dumps({"source": ["test"]}))
        function = "arn:aws:lambda:us-east-1:123456789012:function:f"
        transformer = {"InputPathsMap": {"k": "$.detail.k"}, "InputTemplate": '{"got": "<k>"}'}
        events.put_targets(
            Rule="r",
            Targets=[
                {"Id": "fn", "Arn": function, "InputTransformer": transformer},
                {"Id": "q", "Arn": queue_arn},
            ],
        )
        entry = {"Source": "test", "DetailType": "t", "Detail": json.dumps({"k": "v"})}
        events.put_events(Entries=[entry, {**entry, "Source": "other"}])
        assert delivered == [("fn", {"got": "v"})]  # the matching event only, transformed
        assert len(sqs.receive_message(QueueUrl=queue).get("Messages", [])) == 1  # moto's own delivery kept


def test_deleting_a_versioned_object_sends_object_deleted() -> None:
    _install_hooks()
    with mock_aws():
        s3, events = boto3.client("s3", region_name="us-east-1"), boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="drops")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="s3", EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Deleted"]}))
        events.put_targets(Rule="s3", Targets=[{"Id": "q", "Arn": queue_arn}])
        s3.create_bucket(Bucket="drop-bucket")
        s3.put_bucket_versioning(Bucket="drop-bucket", VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_notification_configuration(
            Bucket="drop-bucket", NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        s3.put_object(Bucket="drop-bucket", Key="t/doc.md", Body=b"x")
        s3.delete_object(Bucket="drop-bucket", Key="t/doc.md")  # a delete marker, no version named
        (message,) = sqs.receive_message(QueueUrl=queue).get("Messages", [])
        event = json.loads(message["Body"])
        assert event["detail-type"] == "Object Deleted" and event["detail"]["object"]["key"] == "t/doc.md"
        uninstall_hooks()  # plain moto: the same delete goes unnoticed
        s3.put_object(Bucket="drop-bucket", Key="t/other.md", Body=b"x")
        s3.delete_object(Bucket="drop-bucket", Key="t/other.md")
        assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []


def test_conditional_dynamodb_updates_racing_on_one_item_are_atomic() -> None:
    from concurrent.futures import ThreadPoolExecutor

    _install_hooks()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="t", Item={"pk": {"S": "budget"}, "used": {"N": "0"}})

        def reserve(_: int) -> bool:
            try:
                ddb.update_item(
                    TableName="t",
                    Key={"pk": {"S": "budget"}},
                    UpdateExpression="ADD used :one",
                    ConditionExpression="used < :limit",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": "10"}},
                )
                return True
            except ddb.exceptions.ConditionalCheckFailedException:
                return False

        with ThreadPoolExecutor(max_workers=8) as pool:
            granted = sum(pool.map(reserve, range(40)))
        used = ddb.get_item(TableName="t", Key={"pk": {"S": "budget"}})["Item"]["used"]["N"]
    assert granted == 10 and used == "10"
