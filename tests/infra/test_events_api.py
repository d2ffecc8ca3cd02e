"""Event rules, the HTTP API and the stack outputs, against the topology and cdk.json."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agentplatform.topology import PLATFORM, InputTransformer, Route, Rule, resolve_refs
from tests.infra.cdk_synth import Synth, cdk_context, text

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
    # A "ref:bucket:drop" in the topology's pattern is that bucket's name in the template.
    expected = resolve_refs(rule.event_pattern, lambda ref: {"Ref": synth.logical_id(ref)})
    assert props.get("EventPattern") == expected
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


def _routes(synth: Synth) -> dict[str, dict[str, Any]]:
    return {r["Properties"]["RouteKey"]: r["Properties"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()}


@pytest.mark.parametrize(
    "route", [pytest.param(r, id=r.route_key) for r in PLATFORM.routes if r.public or r.path == "$default"]
)
def test_public_routes_and_default_have_no_authorizer(synth: Synth, route: Route) -> None:
    """Public routes by design; `$default` until its Lambda authorizer lands (it only answers 404)."""
    props = _routes(synth)[route.route_key]
    assert props["AuthorizationType"] == "NONE"
    assert "AuthorizerId" not in props and "AuthorizationScopes" not in props


PROTECTED = [pytest.param(r, id=r.route_key) for r in PLATFORM.routes if not r.public and r.path != "$default"]


@pytest.mark.parametrize("route", PROTECTED)
def test_protected_routes_need_a_user_pool_token_with_their_scopes(synth: Synth, route: Route) -> None:
    props = _routes(synth)[route.route_key]
    assert props["AuthorizationType"] == "JWT"
    authorizer_lid, _ = synth.target(props["AuthorizerId"])
    authorizer = synth.props(authorizer_lid)
    (pool,) = synth.of_type("AWS::Cognito::UserPool")
    (client,) = synth.of_type("AWS::Cognito::UserPoolClient")
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    assert authorizer["JwtConfiguration"]["Audience"] == [{"Ref": client}]
    assert text(authorizer["JwtConfiguration"]["Issuer"]) == (
        f"https://cognito-idp.${{AWS::Region}}.${{AWS::URLSuffix}}/${{{pool}}}"
    )
    assert props.get("AuthorizationScopes", []) == [f"agentplatform/{scope}" for scope in route.scopes]


def test_search_route_needs_the_search_scope(synth: Synth) -> None:
    props = _routes(synth)["POST /v1/search"]
    assert props["AuthorizationType"] == "JWT"
    assert props["AuthorizationScopes"] == ["agentplatform/search"]


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
    (pool,) = synth.of_type("AWS::Cognito::UserPool")
    (client,) = synth.of_type("AWS::Cognito::UserPoolClient")
    assert outputs["UserPoolId"]["Value"] == {"Ref": pool}
    assert outputs["UserPoolClientId"]["Value"] == {"Ref": client}
    assert (
        text(outputs["JwtIssuerUrl"]["Value"])
        == f"https://cognito-idp.${{AWS::Region}}.${{AWS::URLSuffix}}/${{{pool}}}"
    )
