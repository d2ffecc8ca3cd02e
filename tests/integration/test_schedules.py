"""Scheduled rules fire locally (moto stores them but never runs them)."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runtime_overrides():
    return {"LOCAL_SCHEDULE_SPEEDUP": 300}  # rate(5 minutes) / 300 = every second


def test_schedule_starts_the_canary_with_the_event_id_as_correlation_id(runtime):
    rt = runtime
    sfn = rt.client("stepfunctions")
    arn = rt.provisioned.value("statemachine:canary", "arn")
    executions = wait_for(lambda: sfn.list_executions(stateMachineArn=arn)["executions"], timeout_s=20)
    started = json.loads(sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"])
    assert set(started) == {"correlation_id"} and len(started["correlation_id"]) == 36
