"""Event rules, the HTTP API and the stack outputs, against the topology and cdk.json."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agentplatform.topology import AUTHORIZER_CACHE_TTL_S, PLATFORM, InputTransformer, Route, Rule, resolve_refs
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


@pytest.mark.parametrize("route", [pytest.param(r, id=r.route_key) for r in PLATFORM.routes if r.public])
def test_public_routes_have_no_authorizer(synth: Synth, route: Route) -> None:
    props = _routes(synth)[route.route_key]
    assert props["AuthorizationType"] == "NONE"
    assert "AuthorizerId" not in props and "AuthorizationScopes" not in props


TOKEN_ROUTES = [r for r in PLATFORM.routes if not r.public and r.authorizer == "token"]
JWT_ROUTES = [r for r in PLATFORM.routes if not r.public and r.authorizer == "jwt"]


def test_default_route_and_the_business_routes_take_the_lambda_authorizer() -> None:
    """The topology this suite checks: `$default` is protected too, and the admin routes (exactly those: API keys,
    the outbox, MCP servers) keep the JWT authorizer, so no API key can reach them."""
    assert {"$default", "POST /v1/search", "GET /v1/documents"} <= {r.route_key for r in TOKEN_ROUTES}
    assert {r.route_key for r in JWT_ROUTES} == {
        "POST /v1/admin/api-keys",
        "GET /v1/admin/api-keys",
        "DELETE /v1/admin/api-keys/{key_id}",
        "GET /v1/outbox",
        "POST /v1/mcp/servers",
        "GET /v1/mcp/servers",
        "DELETE /v1/mcp/servers/{name}",
    }
    assert all(r.scopes == ["admin"] for r in JWT_ROUTES)
    assert not any("admin" in r.scopes for r in TOKEN_ROUTES)


@pytest.mark.parametrize("route", [pytest.param(r, id=r.route_key) for r in TOKEN_ROUTES])
def test_token_routes_take_the_lambda_authorizer_cached_per_credential_and_route(synth: Synth, route: Route) -> None:
    props = _routes(synth)[route.route_key]
    assert props["AuthorizationType"] == "CUSTOM"
    assert "AuthorizationScopes" not in props  # the authorizer checks the route's scopes from the topology
    authorizer = synth.props(synth.target(props["AuthorizerId"])[0])
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization", "$context.routeKey"]
    assert authorizer["AuthorizerResultTtlInSeconds"] == AUTHORIZER_CACHE_TTL_S == 60
    assert authorizer["EnableSimpleResponses"] is True
    assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    uri = authorizer["AuthorizerUri"]["Fn::Join"][1]
    assert synth.target(uri[-2]) == (synth.logical_id("function:authorizer"), "Arn")


def test_api_gateway_may_invoke_the_authorizer_function_and_nothing_else_may(synth: Synth) -> None:
    function = {"Fn::GetAtt": [synth.logical_id("function:authorizer"), "Arn"]}
    permissions = [
        p["Properties"]
        for p in synth.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == function
    ]
    assert [p["Principal"] for p in permissions] == ["apigateway.amazonaws.com"]
    # Only as this API's Lambda authorizer: arn:...:execute-api:<region>:<account>:<api id>/authorizers/<its id>
    (api,) = synth.of_type("AWS::ApiGatewayV2::Api")
    (authorizer,) = [
        lid
        for lid, a in synth.of_type("AWS::ApiGatewayV2::Authorizer").items()
        if a["Properties"]["AuthorizerType"] == "REQUEST"
    ]
    assert permissions[0]["SourceArn"]["Fn::Join"][1][-3:] == [{"Ref": api}, "/authorizers/", {"Ref": authorizer}]


@pytest.mark.parametrize("route", [pytest.param(r, id=r.route_key) for r in JWT_ROUTES])
def test_jwt_routes_need_a_user_pool_token_with_their_scopes(synth: Synth, route: Route) -> None:
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
    assert route.scopes == ["admin"]
    assert props["AuthorizationScopes"] == ["agentplatform/admin"]


def test_one_authorizer_of_each_kind(synth: Synth) -> None:
    authorizers = sorted(
        a["Properties"]["AuthorizerType"] for a in synth.of_type("AWS::ApiGatewayV2::Authorizer").values()
    )
    assert authorizers == ["JWT", "REQUEST"]


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
