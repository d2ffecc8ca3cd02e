"""The emulator's fix-ups of moto: each state machine definition is parsed once, not per execution; Lambda tasks
share one boto3 client per region, service and server."""

from __future__ import annotations

import json
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

from local.emulator import _install_hooks


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
