"""A component outage: the canary's typed error goes through the ASL's Retry, then its Catch, then an alert."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import run_execution, wait_for

pytestmark = pytest.mark.integration


def test_typed_error_is_retried_then_caught_by_name_and_becomes_an_alert(runtime):
    rt = runtime
    # Take a component away: the probe raises DependencyUnavailable on every attempt.
    rt.client("dynamodb").delete_table(TableName=rt.provisioned.value("table:documents", "name"))
    result = run_execution(rt, "canary", {"correlation_id": "outage-7"}, name="outage-7")

    assert result["status"] == "FAILED"
    assert result["error"] == "CanaryDegraded"
    # 1 attempt + 2 retries (the ASL's Retry on DependencyUnavailable), then the Catch by the same name.
    assert rt.router.invocations["canary_probe"] == 3
    history = rt.client("stepfunctions").get_execution_history(executionArn=result["executionArn"])["events"]
    failures = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert failures == ["DependencyUnavailable"] * 3

    # The Catch path published "degraded"; the rule routed it to the alerts queue, correlation id intact.
    sqs = rt.client("sqs")
    url = rt.provisioned.value("queue:alerts", "url")
    messages = wait_for(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"))
    alert = json.loads(messages[0]["Body"])
    assert alert["detail-type"] == "Canary Completed"
    assert alert["detail"]["status"] == "degraded"
    assert alert["detail"]["correlation_id"] == "outage-7"
    assert alert["detail"]["error"] == "DependencyUnavailable"
    assert "table" in alert["detail"]["cause"]
