"""Event rules, the HTTP API and the stack outputs, against the topology and cdk.json."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agentplatform.topology import PLATFORM, InputTransformer, Rule
from tests.infra.cdk_synth import Synth, cdk_context

pytestmark = pytest.mark.infra

TARGET_INTRINSIC = {"statemachine": "Ref", "function": "Arn", "queue": "Arn"}


def _normalized(template: str, paths: dict[str, str]) -> Any:
    """An input template as JSON with each placeholder (quoted or bare) replaced by its event path."""

    def by_path(match: re.Match[str]) -> str:
        return json.dumps("@" + paths[match.group(1) or match.group(2)])

    return json.loads(re.sub(r'"<([\w.-]+)>"|<([\w.-]+)>', by_path, template))


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.name) for r in PLATFORM.rules])
def test_rule_matches_topology(synth: Synth, rule: Rule) -> None:
    props = synth.props(f"rule:{rule.name}")
    if rule.bus:
        assert synth.target(props["EventBusName"]) == (synth.logical_id(f"bus:{rule.bus}"), "Ref")
    else:
        assert "EventBusName" not in props  # the default bus, where S3 sends its events
    assert props.get("ScheduleExpression") == rule.schedule
    assert props.get("EventPattern") == rule.event_pattern
    assert len(props["Targets"]) == len(rule.targets)
    for target, spec in zip(props["Targets"], rule.targets, strict=True):
        kind = spec.ref.split(":", 1)[0]
        assert synth.target(target["Arn"]) == (synth.logical_id(spec.ref), TARGET_INTRINSIC[kind])
        assert "DeadLetterConfig" in target
        transformer: InputTransformer | None = spec.input_transformer
        if transformer is None:
            assert "InputTransformer" not in target and "Input" not in target
            continue
        deployed = target["InputTransformer"]
        assert _normalized(deployed["InputTemplate"], deployed["InputPathsMap"]) == _normalized(
            transformer.template, transformer.paths
        )


def test_canary_schedule_starts_the_canary_with_the_event_id_as_correlation_id(synth: Synth) -> None:
    target = synth.props("rule:canary_schedule")["Targets"][0]["InputTransformer"]
    placeholder = next(name for name, path in target["InputPathsMap"].items() if path == "$.id")
    assert target["InputTemplate"].replace(" ", "") == f'{{"correlation_id":<{placeholder}>}}'


def test_routes_are_the_topology_routes_on_their_functions(synth: Synth) -> None:
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()}
    assert set(routes) == {r.route_key for r in PLATFORM.routes}
    for spec in PLATFORM.routes:
        target = routes[spec.route_key]["Target"]["Fn::Join"][1][1]
        integration = synth.resources[synth.target(target)[0]]["Properties"]
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert integration["PayloadFormatVersion"] == "2.0"
        assert synth.target(integration["IntegrationUri"]) == (synth.logical_id(f"function:{spec.function}"), "Arn")
        assert routes[spec.route_key]["AuthorizationType"] == "NONE"  # authorizers arrive with the API-edge issue


def test_default_stage_is_throttled_from_context_and_access_logged(synth: Synth) -> None:
    (stage,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    context = cdk_context()
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": context["agentplatform:apiThrottleBurst"],
        "ThrottlingRateLimit": context["agentplatform:apiThrottleRate"],
    }
    log_group, _ = synth.target(props["AccessLogSettings"]["DestinationArn"])
    assert synth.resources[log_group]["Type"] == "AWS::Logs::LogGroup"
    assert "$context.requestId" in props["AccessLogSettings"]["Format"]


def test_outputs(synth: Synth) -> None:
    outputs = synth.json["Outputs"]
    assert "ApiUrl" in outputs
    assert synth.target(outputs["DropBucketName"]["Value"]) == (synth.logical_id("bucket:drop"), "Ref")
    assert synth.target(outputs["PlatformEventBusName"]["Value"]) == (synth.logical_id("bus:platform"), "Ref")
    for machine in PLATFORM.state_machines:
        name = "".join(p.capitalize() for p in machine.name.split("_"))
        value = outputs[f"{name}StateMachineArn"]["Value"]
        assert synth.target(value) == (synth.logical_id(f"statemachine:{machine.name}"), "Ref")
