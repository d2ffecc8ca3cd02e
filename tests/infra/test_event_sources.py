"""Every topology event source is a Lambda event source mapping: the queue feeds its function in the topology's
batches, with partial batch responses, and the function's role may poll that one queue and nothing more."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from agentplatform.topology import PLATFORM, EventSourceMapping, Function, Queue
from infra.cdk.event_sources import EventSources
from infra.cdk.registry import Registry
from tests.infra.cdk_synth import Synth, statement_pairs

pytestmark = pytest.mark.infra

# What Lambda's SQS poller calls with the function's role (the Lambda developer guide's execution role
# permissions for SQS), written here independently of infra/cdk/permissions.py.
POLLER_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}

SOURCES = [pytest.param(s, id=f"{s.queue}->{s.function}") for s in PLATFORM.event_sources]


def _mappings(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]


def test_the_ingest_queue_feeds_the_starter() -> None:
    """The gap this closes: without the mapping nothing on AWS would start ingestion."""
    assert ("ingest", "ingest_starter") in {(s.queue, s.function) for s in PLATFORM.event_sources}


@pytest.mark.parametrize("source", SOURCES)
def test_mapping_polls_the_queue_for_the_function(synth: Synth, source: EventSourceMapping) -> None:
    queue = synth.logical_id(f"queue:{source.queue}")
    function = synth.logical_id(f"function:{source.function}")
    found = [m for m in _mappings(synth.json) if m["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}]
    assert len(found) == 1, f"expected one mapping on queue:{source.queue}, found {found}"
    (mapping,) = found
    assert mapping["FunctionName"] == {"Ref": function}
    assert mapping["BatchSize"] == source.batch_size
    assert mapping["MaximumBatchingWindowInSeconds"] == source.max_batching_window_s
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping.get("Enabled", True) is True


def test_ingest_mapping_has_the_topology_batching(synth: Synth) -> None:
    """The starter takes up to 50 object changes per call, gathered for up to 1 s."""
    queue = synth.logical_id("queue:ingest")
    (mapping,) = [m for m in _mappings(synth.json) if m["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}]
    assert mapping["FunctionName"] == {"Ref": synth.logical_id("function:ingest_starter")}
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (50, 1)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_no_mapping_the_topology_does_not_describe(synth: Synth) -> None:
    assert len(_mappings(synth.json)) == len(PLATFORM.event_sources)


@pytest.mark.parametrize("source", SOURCES)
def test_function_role_may_poll_exactly_its_queue(synth: Synth, source: EventSourceMapping) -> None:
    queue_arn = {"Fn::GetAtt": [synth.logical_id(f"queue:{source.queue}"), "Arn"]}
    role, _ = synth.target(synth.props(f"function:{source.function}")["Role"])
    sqs_pairs = [(a, r) for a, r in statement_pairs(synth.role_statements(role)) if a.startswith("sqs:")]
    assert {a for a, r in sqs_pairs if r == queue_arn} == POLLER_ACTIONS
    assert not [a for a, r in sqs_pairs if r == "*"]
    granted = {g.ref for g in PLATFORM.function(source.function).uses if g.ref.startswith("queue:")}
    polled = {f"queue:{s.queue}" for s in PLATFORM.event_sources if s.function == source.function}
    if granted <= polled:  # nothing else of SQS: no other queue, no GetQueueUrl, SendMessage or PurgeQueue
        assert sorted(sqs_pairs, key=str) == sorted(((a, queue_arn) for a in POLLER_ACTIONS), key=str)


def test_mapping_is_created_after_the_role_policy(synth: Synth) -> None:
    """Lambda checks the role's SQS permissions when it creates the mapping."""
    for lid, resource in synth.of_type("AWS::Lambda::EventSourceMapping").items():
        role, _ = synth.target(synth.props(synth.target(resource["Properties"]["FunctionName"])[0])["Role"])
        policies = [
            p
            for p, policy in synth.of_type("AWS::IAM::Policy").items()
            if {"Ref": role} in policy["Properties"]["Roles"]
        ]
        assert policies and set(policies) <= set(resource.get("DependsOn", [])), lid


def test_platform_queues_outlast_their_pollers_six_times() -> None:
    for source in PLATFORM.event_sources:
        queue = next(q for q in PLATFORM.queues if q.name == source.queue)
        assert queue.visibility_timeout_s >= 6 * PLATFORM.function(source.function).timeout_s


# Constructs alone (no app synth): a queue and a function in a bare stack, registered as the other modules would.


def _stack(
    queue: Queue, function: Function, source: EventSourceMapping, *, key: bool = False
) -> tuple[Stack, EventSources]:
    stack = Stack(App(), "Sources")
    registry = Registry(stack)
    registry.queues[queue.name] = sqs.Queue(
        stack,
        "Queue",
        visibility_timeout=Duration.seconds(queue.visibility_timeout_s),
        encryption_master_key=kms.Key(stack, "Key") if key else None,
    )
    registry.functions[function.name] = lambda_.Function(
        stack,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
        timeout=Duration.seconds(function.timeout_s),
    )
    topology = PLATFORM.model_copy(update={"queues": [queue], "functions": [function], "event_sources": [source]})
    return stack, EventSources(stack, "EventSources", topology=topology, registry=registry)


def _queue(visibility_timeout_s: int) -> Queue:
    return Queue(name="work", purpose="Work items.", visibility_timeout_s=visibility_timeout_s)


def _function(timeout_s: int) -> Function:
    return Function(
        name="worker", service="api", handler="functions.api.handler.handler", purpose="Polls.", timeout_s=timeout_s
    )


def test_a_visibility_timeout_under_six_function_timeouts_fails_the_synth() -> None:
    source = EventSourceMapping(queue="work", function="worker")
    with pytest.raises(ValueError, match=r"queue:work -> function:worker.*\(179 s\).*6x.*\(30 s\).*>= 180 s"):
        _stack(_queue(179), _function(30), source)
    _stack(_queue(180), _function(30), source)  # exactly six times is enough


def test_an_event_source_naming_an_unknown_queue_fails_the_synth() -> None:
    with pytest.raises(ValueError, match="queue:missing -> function:worker: no such queue"):
        _stack(_queue(180), _function(30), EventSourceMapping(queue="missing", function="worker"))


def _role_pairs(template: Mapping[str, Any]) -> list[tuple[str, Any]]:
    statements = [
        s
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    return statement_pairs(statements)


def test_a_kms_encrypted_queue_also_grants_decrypt_on_its_key() -> None:
    stack, _ = _stack(_queue(180), _function(30), EventSourceMapping(queue="work", function="worker"), key=True)
    template = Template.from_stack(stack).to_json()
    key = next(lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::KMS::Key")
    queue = next(lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue")
    pairs = _role_pairs(template)
    assert ("kms:Decrypt", {"Fn::GetAtt": [key, "Arn"]}) in pairs
    assert {a for a, r in pairs if a.startswith("sqs:")} == POLLER_ACTIONS
    assert all(r == {"Fn::GetAtt": [queue, "Arn"]} for a, r in pairs if a.startswith("sqs:"))
    (mapping,) = _mappings(template)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_an_sqs_managed_queue_needs_no_key_grant() -> None:
    stack, _ = _stack(_queue(180), _function(30), EventSourceMapping(queue="work", function="worker"))
    assert not [a for a, _ in _role_pairs(Template.from_stack(stack).to_json()) if a.startswith("kms:")]
