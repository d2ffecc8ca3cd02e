"""The canary state machine from statemachines/, executed by moto, calling the real probe handler."""

from __future__ import annotations

import json

import pytest

from functions.api.health import Component
from tests.integration.conftest import run_execution

pytestmark = pytest.mark.integration


def test_healthy_canary_invokes_the_real_handler_and_returns_its_report(runtime):
    before = runtime.router.invocations.get("canary_probe", 0)
    result = run_execution(runtime, "canary", {"correlation_id": "healthy-1"}, name="healthy-1")
    assert result["status"] == "SUCCEEDED"
    report = json.loads(result["output"])
    assert report["status"] == "ok"
    assert {c["name"] for c in report["components"]} == {c.value for c in Component}
    assert {c["status"] for c in report["components"]} <= {"ok", "absent"}  # no models hosted here: absent
    assert runtime.router.invocations["canary_probe"] == before + 1


def test_healthy_result_raises_no_alert(runtime):
    run_execution(runtime, "canary", {"correlation_id": "quiet-1"}, name="quiet-1")
    sqs = runtime.client("sqs")
    out = sqs.receive_message(QueueUrl=runtime.provisioned.value("queue:alerts", "url"), WaitTimeSeconds=1)
    assert out.get("Messages", []) == []
