"""The public HTTP API (API Gateway HTTP API, payload v2): topology routes -> Lambda integrations.

One `$default` stage, auto-deployed, throttled and access-logged to its own log group (JSON, one line per
request). Routes are public only where the topology says so (health, the API description and its docs page).
Every other route, `$default` included, has an authorizer, the one its topology `authorizer` names:

- `token` (the default): the platform's Lambda authorizer, the topology function `authorizer`. It takes a user's
  Cognito access token or a machine client's API key (`Authorization: Bearer ...`), answers in the simple format,
  and checks the route's scopes itself: its identity sources are the Authorization header and `$context.routeKey`,
  so API Gateway caches one answer per credential and route, for AUTHORIZER_CACHE_TTL_S (the most a revoked key
  goes on working). A request without the header gets 401 from API Gateway without invoking it.
- `jwt`: API Gateway's JWT authorizer of the Cognito user pool (auth.py): issuer the pool, audience its app
  client, and the route's topology scopes as `agentplatform/<scope>` (users' tokens only: the admin routes).
  API Gateway lets a token through with at least one of a route's scopes; agentplatform.principal checks them all
  again in the function.

A protected route whose authorizer cannot be built fails the synth. CORS is off unless the deployment names its
origins (the topology's CorsPolicy for everything else). With a custom domain (a regional API Gateway domain, TLS
1.2, mapped to the stage) the default `execute-api` endpoint is disabled, so nothing reaches the API around it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import jsii
from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_logs as logs
from constructs import Construct

from agentplatform.topology import AUTHORIZER_CACHE_TTL_S, CorsPolicy, Route, Topology
from infra.cdk.auth import Auth, scope_name
from infra.cdk.nag import acknowledge
from infra.cdk.registry import Registry, construct_id

_NON_WORD = re.compile(r"[^a-z0-9]+")

# The topology function behind the routes whose `authorizer` is "token".
AUTHORIZER_FUNCTION = "authorizer"
# What API Gateway caches a Lambda authorizer's answer by: the credential and the route (the authorizer checks
# the route's scopes, so an answer for one route must not be reused for another).
TOKEN_IDENTITY_SOURCES = ("$request.header.Authorization", "$context.routeKey")

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
    "authorizerError": "$context.authorizer.error",
    "userAgent": "$context.identity.userAgent",
}

PUBLIC_ROUTE_REASON = (
    "Public by design: the topology marks this route public (health check / the OpenAPI description and its docs "
    "page), which the platform's rules allow without authentication; it returns no tenant data."
)


@dataclass(frozen=True)
class Throttle:
    burst_limit: int
    rate_limit: int


@dataclass(frozen=True)
class CustomDomain:
    """A DNS name the API (or its CloudFront edge) answers on, and the ACM certificate that covers it."""

    name: str
    certificate_arn: str


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


def cors_preflight(policy: CorsPolicy) -> apigwv2.CorsPreflightOptions | None:
    """The API's CORS configuration from the topology's policy; None (CORS off) while it names no origin."""
    if not policy.allow_origins:
        return None
    return apigwv2.CorsPreflightOptions(
        allow_origins=list(policy.allow_origins),
        allow_methods=[apigwv2.CorsHttpMethod(method.upper()) for method in policy.allow_methods],
        allow_headers=list(policy.allow_headers),
        expose_headers=list(policy.expose_headers),
        max_age=Duration.seconds(policy.max_age_s),
    )


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
        cors: CorsPolicy | None = None,
        domain: CustomDomain | None = None,
    ) -> None:
        super().__init__(scope, id)
        # One authorizer of each kind for the whole API (API Gateway creates each once, on its first route).
        self.jwt_authorizer = (
            authorizers.HttpJwtAuthorizer(
                "JwtAuthorizer", auth.issuer, jwt_audience=auth.audiences, authorizer_name="cognito-jwt"
            )
            if auth
            else None
        )
        self.token_authorizer = (
            authorizers.HttpLambdaAuthorizer(
                "TokenAuthorizer",
                registry.functions[AUTHORIZER_FUNCTION],
                authorizer_name="platform-token",
                response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
                identity_source=list(TOKEN_IDENTITY_SOURCES),
                results_cache_ttl=Duration.seconds(AUTHORIZER_CACHE_TTL_S),
            )
            if AUTHORIZER_FUNCTION in registry.functions
            else None
        )
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=f"{Stack.of(self).stack_name}-api",
            description="Agent platform public API",
            create_default_stage=False,
            cors_preflight=cors_preflight(cors or CorsPolicy()),
            # With a custom domain, the only way in: the default endpoint would bypass what fronts the domain.
            disable_execute_api_endpoint=domain is not None,
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
        self.domain = domain
        self.domain_name = self._custom_domain(domain) if domain else None
        self._integrations: dict[str, integrations.HttpLambdaIntegration] = {}
        self.routes = [self._route(route, registry) for route in topology.routes]

    @property
    def url(self) -> str:
        """Where clients call the API: the custom domain when there is one (the default endpoint is then off)."""
        return f"https://{self.domain.name}" if self.domain else self.stage.url

    @property
    def origin_domain(self) -> str:
        """The host name a proxy in front of the API (CloudFront) forwards to."""
        if self.domain:
            return self.domain.name
        stack = Stack.of(self)
        return f"{self.api.api_id}.execute-api.{stack.region}.{stack.url_suffix}"

    def _custom_domain(self, domain: CustomDomain) -> apigwv2.DomainName:
        """A regional custom domain (TLS 1.2) mapped to the `$default` stage; DNS points at its regional name."""
        domain_name = apigwv2.DomainName(
            self,
            "DomainName",
            domain_name=domain.name,
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate", domain.certificate_arn),
            endpoint_type=apigwv2.EndpointType.REGIONAL,
            security_policy=apigwv2.SecurityPolicy.TLS_1_2,
        )
        apigwv2.ApiMapping(self, "ApiMapping", api=self.api, domain_name=domain_name, stage=self.stage)
        return domain_name

    def _authorizer(self, spec: Route) -> apigwv2.IHttpRouteAuthorizer | None:
        """The route's authorizer; fails closed (the synth fails) when a protected route's cannot be built."""
        if spec.public:
            return None
        if spec.authorizer == "jwt":
            if self.jwt_authorizer is None:
                raise ValueError(
                    f"route {spec.route_key} needs an authorizer: build the HttpApi with the user pool (JWT)"
                )
            return self.jwt_authorizer
        if self.token_authorizer is None:
            raise ValueError(
                f"route {spec.route_key} needs an authorizer: the topology has no {AUTHORIZER_FUNCTION!r} function"
            )
        return self.token_authorizer

    def _route(self, spec: Route, registry: Registry) -> apigwv2.HttpRoute:
        authorizer = self._authorizer(spec)
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
        # Only a JWT authorizer takes scopes on the route; the Lambda authorizer reads them from the topology.
        scopes = (
            [scope_name(s) for s in spec.scopes] if spec.authorizer == "jwt" and authorizer and spec.scopes else None
        )
        route = apigwv2.HttpRoute(
            self,
            "Route" + construct_id(_id_safe(spec.route_key)),
            http_api=self.api,
            route_key=key,
            integration=self._integrations[spec.function],
            authorizer=authorizer,
            authorization_scopes=scopes,
        )
        if authorizer is None:
            acknowledge(route, "AwsSolutions-APIG4", PUBLIC_ROUTE_REASON)
        return route


def _id_safe(route_key: str) -> str:
    """A route key as an id: `GET /v1/documents/{id}` -> `get_v1_documents_id`; `$default` -> `default`."""
    return "_".join(part for part in _NON_WORD.split(route_key.lower()) if part)
