"""The correlation id: found in every event shape, put on every log line and outgoing message."""

from __future__ import annotations

import json

from agentplatform.adapters.memory import MemoryQueue, MemoryWorkflow
from agentplatform.observability import correlation_from_event, lambda_entry, sqs_correlation_attribute
from tests.conftest import sample_event


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
