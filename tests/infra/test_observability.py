"""The dashboard and the alarms (infra/cdk/observability.py), read back from the synthesized template."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentplatform.topology import PLATFORM
from infra.cdk.observability import API_P95_MS, BUDGET_ALARM_PCT, BUDGET_METRIC, ERROR_RATE_PCT, EVAL_SCORES
from tests.infra.cdk_synth import Synth

pytestmark = pytest.mark.infra


def _alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {lid: a["Properties"] for lid, a in synth.of_type("AWS::CloudWatch::Alarm").items()}


def _topic(synth: Synth) -> str:
    (lid,) = synth.of_type("AWS::SNS::Topic")
    return lid


def _dashboard_body(synth: Synth) -> str:
    (dashboard,) = synth.of_type("AWS::CloudWatch::Dashboard").values()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


def test_every_alarm_of_the_stack_notifies_the_encrypted_alarm_topic(synth):
    topic = _topic(synth)
    alarms = _alarms(synth)
    assert alarms and all(a.get("AlarmActions") == [{"Ref": topic}] for a in alarms.values())
    props = synth.resources[topic]["Properties"]
    key = props["KmsMasterKeyId"]["Fn::GetAtt"][0]
    assert synth.resources[key]["Properties"]["EnableKeyRotation"] is True
    statements = synth.resources[key]["Properties"]["KeyPolicy"]["Statement"]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for s in statements)


def test_every_dead_letter_queue_is_alarmed_and_on_the_dashboard(synth):
    alarmed = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in _alarms(synth).values()
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible" and a["Threshold"] == 0
    }
    dlqs = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in synth.of_type("AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    } | {
        t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        for rule in synth.of_type("AWS::Events::Rule").values()
        for t in rule["Properties"].get("Targets", [])
        if "DeadLetterConfig" in t
    }
    assert dlqs and dlqs <= alarmed
    body = _dashboard_body(synth)
    assert all(lid in body for lid in dlqs)


def test_each_function_has_an_error_rate_alarm_and_its_graphs(synth):
    rate_alarms = [
        a
        for a in _alarms(synth).values()
        if any("errors / invocations" in q.get("Expression", "") for q in a.get("Metrics", []))
    ]
    watched = set()
    for alarm in rate_alarms:
        assert alarm["Threshold"] == ERROR_RATE_PCT
        for query in alarm["Metrics"]:
            stat = query.get("MetricStat")
            if stat:
                watched.add(stat["Metric"]["Dimensions"][0]["Value"]["Ref"])
    functions = {synth.logical_id(f"function:{f.name}") for f in PLATFORM.functions}
    assert watched == functions and len(rate_alarms) == len(functions)
    body = _dashboard_body(synth)
    assert all(lid in body for lid in functions) and '\\"p95\\"' in body


def test_api_latency_budget_and_the_metrics_of_the_gateway_and_evaluation(synth):
    alarms = list(_alarms(synth).values())
    (api,) = [a for a in alarms if a.get("MetricName") == "Latency" and a.get("Namespace") == "AWS/ApiGateway"]
    assert api["ExtendedStatistic"] == "p95" and api["Threshold"] == API_P95_MS
    (budget,) = [a for a in alarms if a.get("MetricName") == BUDGET_METRIC]
    assert budget["Threshold"] == BUDGET_ALARM_PCT and budget["Statistic"] == "Maximum"
    body = _dashboard_body(synth)
    names = ("TokensIn", "TokensOut", "CostMicroUsd", "LatencyMs", "4xx", "5xx", "ExecutionsFailed", "TurnsFailed")
    for name in (*names, "TurnsAnswered", "TurnLatencyMs"):
        assert f'\\"{name}\\"' in body, name
    assert all(f"Eval_{score}" in body for score in EVAL_SCORES)


def test_functions_and_state_machines_are_traced_with_x_ray(synth):
    functions = [synth.props(f"function:{f.name}") for f in PLATFORM.functions]
    assert all(p["TracingConfig"] == {"Mode": "Active"} for p in functions)
    machines = synth.of_type("AWS::StepFunctions::StateMachine").values()
    assert machines and all(m["Properties"]["TracingConfiguration"] == {"Enabled": True} for m in machines)
