"""The correlation id: found in every event shape, put on every log line and outgoing message."""

from __future__ import annotations

import base64
import importlib
import io
import json
from types import SimpleNamespace

import boto3
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from agentplatform.adapters.aws.functions import LambdaFunction
from agentplatform.adapters.aws.storage import EventBridgeBus, SqsQueue, StepFunctionsWorkflow
from agentplatform.observability import correlation_from_event, lambda_entry, log_keys, sqs_correlation_attribute
from agentplatform.topology import PLATFORM
from local.logbook import Logbook
from local.trace import read_lines, timeline
from tests.conftest import sample_event
from tests.fakes import MemoryQueue, MemoryWorkflow


def test_correlation_id_is_found_in_each_event_shape():
    assert correlation_from_event(sample_event("api/health.json")) == "8d7f6c1e-health-sample"
    assert correlation_from_event(sample_event("api/canary_probe.json")) == "3c0b7d0e-canary-sample"
    assert correlation_from_event(sample_event("api/sqs_batch.json")) == "b5a3c1d2-sqs-sample"
    assert correlation_from_event({"detail": {"correlation_id": "from-eventbridge"}}) == "from-eventbridge"
    assert correlation_from_event(sample_event("api/scheduled_event.json")) is None


def test_api_request_without_header_uses_the_request_id():
    event = sample_event("api/health.json")
    del event["headers"]["x-correlation-id"]
    assert correlation_from_event(event) == "Jf1Q2h3GIAMEbXw="


def test_lambda_entry_puts_the_correlation_id_on_logs_and_outgoing_messages(lambda_context, capsys):
    queue, workflow = MemoryQueue(), MemoryWorkflow()

    @lambda_entry("unit")
    def handler(event, context):
        from agentplatform.observability import telemetry

        telemetry("unit").logger.info("working")
        queue.send({"step": 1})
        workflow.start({"step": 2}, name="run-1")
        return sqs_correlation_attribute()

    attribute = handler(sample_event("api/canary_probe.json"), lambda_context)
    assert attribute == {"correlation_id": {"DataType": "String", "StringValue": "3c0b7d0e-canary-sample"}}
    assert queue.messages[0]["correlation_id"] == "3c0b7d0e-canary-sample"
    assert workflow.executions["run-1"]["correlation_id"] == "3c0b7d0e-canary-sample"
    log_line = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if "working" in line)
    assert log_line["correlation_id"] == "3c0b7d0e-canary-sample"
    assert log_line["service"] == "unit"
    assert log_line["function_request_id"] == "test-request-id"


def test_correlation_id_does_not_leak_between_invocations(lambda_context):
    seen = []

    @lambda_entry("unit")
    def handler(event, context):
        from agentplatform.observability import correlation_id

        seen.append(correlation_id())

    handler({"correlation_id": "first"}, lambda_context)
    handler({}, lambda_context)  # no id in the event: falls back to the Lambda request id
    assert seen == ["first", "test-request-id"]


def test_step_functions_payloads_sqs_bodies_and_client_context_carry_it(lambda_context):
    # An agent-loop task payload: the ASL adds the execution input's id next to the state.
    assert correlation_from_event({"state": {"ctx": {}}, "correlation_id": "from-sfn"}) == "from-sfn"
    # An EventBridge rule's SQS target: no message attribute, the whole event is the body.
    record = {
        "messageAttributes": {},
        "body": json.dumps({"detail-type": "turn.completed", "detail": {"correlation_id": "eb"}}),
    }
    assert correlation_from_event({"Records": [record]}) == "eb"
    assert correlation_from_event({"Records": [{"body": "not json"}]}) is None
    # A direct invoke whose payload is not the platform's: the ClientContext's custom field.
    lambda_context.client_context = SimpleNamespace(custom={"correlation_id": "from-client-context"})
    assert correlation_from_event(["a", "list"], lambda_context) == "from-client-context"


def test_log_keys_come_from_credentials_ctx_or_detail_never_a_body():
    api = sample_event("api/health.json")
    api["requestContext"]["authorizer"] = {"lambda": {"tenant": "acme", "sub": "alice"}}
    api["body"] = json.dumps({"tenant": "mallory"})
    assert log_keys(api) == {"tenant": "acme"}
    assert log_keys(sample_event("api/health.json")) == {}  # no credentials: no tenant
    task = {"state": {"ctx": {"tenant": "acme", "conversation_id": "c_1", "turn": 3, "question": "secret?"}}}
    assert log_keys(task) == {"tenant": "acme", "conversation_id": "c_1", "turn": "3"}
    assert log_keys({"item": {"ctx": {"tenant": "acme", "turn": 2}}}) == {"tenant": "acme", "turn": "2"}
    assert log_keys({"detail": {"tenant": "acme", "conversation_id": "c_2", "turn": 1}})["conversation_id"] == "c_2"


def test_lambda_entry_labels_lines_with_the_turn_and_hands_the_handler_its_payload_without_the_id(
    lambda_context, capsys
):
    seen = []  # a service of its own: Powertools binds a logger to the stdout of the test that made it

    @lambda_entry("unit-keys")
    def handler(event, context):
        from agentplatform.observability import telemetry

        seen.append(event)
        telemetry("unit-keys").logger.info("step done")

    handler(
        {"state": {"ctx": {"tenant": "acme", "conversation_id": "c_9", "turn": 4}}, "correlation_id": "c-1"},
        lambda_context,
    )
    handler({"correlation_id": "c-2"}, lambda_context)
    assert seen == [{"state": {"ctx": {"tenant": "acme", "conversation_id": "c_9", "turn": 4}}}, {}]
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines() if "step done" in line)
    assert (first["correlation_id"], first["tenant"], first["conversation_id"], first["turn"]) == (
        "c-1",
        "acme",
        "c_9",
        "4",
    )
    assert second["correlation_id"] == "c-2" and "tenant" not in second  # the previous turn's keys are gone


def test_outgoing_lambda_sqs_eventbridge_and_step_functions_calls_carry_it(lambda_context):
    """The real adapters against boto3 (moto): payload and ClientContext, message attribute, event detail (and
    through a rule's SQS target back out of the body), execution input."""
    asl = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    with mock_aws():
        sqs, events, sfn = (boto3.client(s, region_name="us-east-1") for s in ("sqs", "events", "stepfunctions"))
        aws_lambda = boto3.client("lambda", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="work")["QueueUrl"]
        target_url = sqs.create_queue(QueueName="from-bus")["QueueUrl"]
        target_arn = sqs.get_queue_attributes(QueueUrl=target_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.create_event_bus(Name="platform")
        events.put_rule(
            Name="turns", EventBusName="platform", EventPattern=json.dumps({"detail-type": ["turn.completed"]})
        )
        events.put_targets(Rule="turns", EventBusName="platform", Targets=[{"Id": "q", "Arn": target_arn}])
        role = "arn:aws:iam::123456789012:role/sfn"
        machine = sfn.create_state_machine(name="m", definition=json.dumps(asl), roleArn=role)["stateMachineArn"]
        invoked = Stubber(aws_lambda)
        invoked.add_response("invoke", {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(b"{}"), 2)})

        @lambda_entry("unit")
        def handler(event, context):
            SqsQueue(queue_url, sqs).send({"job": 1})
            EventBridgeBus("platform", events).publish("unit", "turn.completed", {"turn": 1})
            return StepFunctionsWorkflow(machine, sfn).start({"ctx": {}}, name="run-1")

        with invoked:
            calls = []
            aws_lambda.meta.events.register(
                "provide-client-params.lambda.Invoke", lambda params, **_: calls.append(params)
            )

            @lambda_entry("unit")
            def caller(event, context):
                LambdaFunction("retrieval", aws_lambda).invoke({"query": "q"})

            caller({"correlation_id": "out-1"}, lambda_context)
        execution = handler({"correlation_id": "out-2"}, lambda_context)

        assert json.loads(calls[0]["Payload"]) == {"query": "q", "correlation_id": "out-1"}
        assert json.loads(base64.b64decode(calls[0]["ClientContext"]))["custom"]["correlation_id"] == "out-1"
        message = sqs.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"])["Messages"][0]
        record = {
            "messageAttributes": {k: {"stringValue": v["StringValue"]} for k, v in message["MessageAttributes"].items()}
        }
        assert correlation_from_event({"Records": [record]}) == "out-2"
        delivered = sqs.receive_message(QueueUrl=target_url, WaitTimeSeconds=1)["Messages"][0]
        assert correlation_from_event({"Records": [{"body": delivered["Body"]}]}) == "out-2"
        assert json.loads(sfn.describe_execution(executionArn=execution)["input"])["correlation_id"] == "out-2"


def test_the_logbook_keeps_each_invocation_and_its_lines_bounded_in_size(tmp_path, lambda_context):
    function = next(f for f in PLATFORM.functions if f.name == "retrieval")
    book = Logbook(max_bytes=4000)
    book.open(tmp_path)

    @lambda_entry("unit-logbook")
    def handler(event, context):
        from agentplatform.observability import telemetry

        for step in range(5):
            telemetry("unit-logbook").logger.info("searched", extra={"step": step})

    try:
        for n in range(8):
            lambda_context.aws_request_id = f"req-{n}"
            event = {"correlation_id": f"cid-{n % 2}", "state": {"ctx": {"tenant": "acme"}}}
            with book.invocation(function, lambda_context, event):
                handler(event, lambda_context)
    finally:
        book.close()
    assert (tmp_path / "platform.jsonl").stat().st_size <= 4000 and (tmp_path / "platform.1.jsonl").is_file()
    invocations = timeline(read_lines(tmp_path, "cid-1"))
    assert invocations and all(i["function"] == "retrieval" and i["service"] == "retrieval" for i in invocations)
    assert [log["step"] for log in invocations[-1]["logs"]] == [0, 1, 2, 3, 4]
    assert all(log["tenant"] == "acme" and log["correlation_id"] == "cid-1" for log in invocations[-1]["logs"])
    assert not read_lines(tmp_path, "cid-2")


def test_every_function_of_the_topology_runs_through_lambda_entry():
    """Logger, Tracer, Metrics and the correlation id on every handler, with no per-handler code."""
    for function in PLATFORM.functions:
        handler = getattr(importlib.import_module(function.module), function.attribute)
        assert getattr(handler, "lambda_entry_service", None), function.name
