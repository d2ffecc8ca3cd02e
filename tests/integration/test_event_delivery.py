"""EventBridge -> Step Functions / Lambda delivery and schedules, done by the runtime with EventBridge's rules."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def test_rule_with_a_lambda_target_invokes_the_real_handler_only_for_matching_events(runtime):
    events = runtime.client("events")
    bus = runtime.provisioned.value("bus:platform", "name")
    probe_arn = runtime.provisioned.value("function:canary_probe", "arn")
    pattern = {"source": [{"prefix": "agentplatform."}], "detail": {"severity": [{"numeric": [">=", 3]}]}}
    events.put_rule(Name="probe-on-severe", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="probe-on-severe", EventBusName=bus, Targets=[{"Id": "probe", "Arn": probe_arn}])
    try:
        before = runtime.router.invocations.get("canary_probe", 0)

        def put(source: str, severity: int) -> None:
            entry = {
                "EventBusName": bus,
                "Source": source,
                "DetailType": "Test",
                "Detail": json.dumps({"severity": severity}),
            }
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0

        put("agentplatform.test", 1)  # severity too low
        put("other.system", 5)  # wrong source
        put("agentplatform.test", 4)  # matches
        wait_for(lambda: runtime.router.invocations.get("canary_probe", 0) > before)
        wait_for(lambda: runtime.delivery.delivered >= 1)
        assert runtime.router.invocations["canary_probe"] == before + 1
    finally:
        events.remove_targets(Rule="probe-on-severe", EventBusName=bus, Ids=["probe"])
        events.delete_rule(Name="probe-on-severe", EventBusName=bus)
