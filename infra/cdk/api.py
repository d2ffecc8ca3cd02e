"""The public HTTP API (API Gateway HTTP API, payload v2): topology routes -> Lambda integrations.

One `$default` stage, auto-deployed, throttled and access-logged to its own log group (JSON, one line per
request). Routes are public only where the topology says so (health, the API description). Every other route
except `$default` has the JWT authorizer of the Cognito user pool (auth.py): issuer the pool, audience its app
client, and the route's topology scopes as `agentplatform/<scope>`. API Gateway lets a request through when its
token carries at least one of a route's scopes; agentplatform.principal checks them all again in the function.
`$default` has no authorizer yet: the Lambda authorizer for it arrives with the API-edge issue.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import jsii
from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_logs as logs
from constructs import Construct

from agentplatform.topology import Route, Topology
from infra.cdk.auth import Auth, scope_name
from infra.cdk.nag import acknowledge
from infra.cdk.registry import Registry, construct_id

_NON_WORD = re.compile(r"[^a-z0-9]+")

# One JSON object per request; $context variables of HTTP APIs.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "userAgent": "$context.identity.userAgent",
}

PUBLIC_ROUTE_REASON = (
    "Public by design: the topology marks this route public (health check / the OpenAPI description), which "
    "the platform's rules allow without authentication; it returns no tenant data."
)
DEFAULT_ROUTE_REASON = (
    "No authorizer on `$default` yet: its Lambda authorizer lands with the API-edge issue (the topology's other "
    "routes have the JWT authorizer). Until then `$default` has no business routes behind it and only answers 404 "
    "application/problem+json."
)


@dataclass(frozen=True)
class Throttle:
    burst_limit: int
    rate_limit: int


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")))

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class HttpApi(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        registry: Registry,
        throttle: Throttle,
        log_retention: logs.RetentionDays,
        auth: Auth | None = None,
    ) -> None:
        super().__init__(scope, id)
        # One authorizer for every protected route (API Gateway creates it once per API).
        self.authorizer = (
            authorizers.HttpJwtAuthorizer(
                "JwtAuthorizer", auth.issuer, jwt_audience=[auth.audience], authorizer_name="cognito-jwt"
            )
            if auth
            else None
        )
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=f"{Stack.of(self).stack_name}-api",
            description="Agent platform public API",
            create_default_stage=False,
        )
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention)
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(burst_limit=throttle.burst_limit, rate_limit=throttle.rate_limit),
            access_log_settings=_AccessLogSettings(self.access_logs),
        )
        self._integrations: dict[str, integrations.HttpLambdaIntegration] = {}
        self.routes = [self._route(route, registry) for route in topology.routes]

    @property
    def url(self) -> str:
        return self.stage.url

    def _route(self, spec: Route, registry: Registry) -> apigwv2.HttpRoute:
        protected = not spec.public and spec.path != "$default"
        if protected and self.authorizer is None:
            # Fail closed: a business route must not deploy without its authorizer.
            raise ValueError(f"route {spec.route_key} needs an authorizer: build the HttpApi with the user pool")
        if spec.function not in self._integrations:
            self._integrations[spec.function] = integrations.HttpLambdaIntegration(
                f"{construct_id(spec.function)}Integration",
                registry.functions[spec.function],
                payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
            )
        if spec.path == "$default":
            key = apigwv2.HttpRouteKey.DEFAULT
        else:
            key = apigwv2.HttpRouteKey.with_(spec.path, apigwv2.HttpMethod(spec.method.upper()))
        route = apigwv2.HttpRoute(
            self,
            "Route" + construct_id(_id_safe(spec.route_key)),
            http_api=self.api,
            route_key=key,
            integration=self._integrations[spec.function],
            authorizer=self.authorizer if protected else None,
            authorization_scopes=[scope_name(s) for s in spec.scopes] if protected and spec.scopes else None,
        )
        if not protected:
            acknowledge(route, "AwsSolutions-APIG4", PUBLIC_ROUTE_REASON if spec.public else DEFAULT_ROUTE_REASON)
        return route


def _id_safe(route_key: str) -> str:
    """A route key as an id: `GET /v1/documents/{id}` -> `get_v1_documents_id`; `$default` -> `default`."""
    return "_".join(part for part in _NON_WORD.split(route_key.lower()) if part)
