"""The platform stack: everything `agentplatform.topology` describes, built in dependency order, and the API edge."""

from __future__ import annotations

from aws_cdk import CfnOutput, Fn, Stack
from constructs import Construct

from agentplatform.topology import PLATFORM, CorsPolicy, Topology
from infra.cdk.api import AUTHORIZER_FUNCTION, HttpApi
from infra.cdk.auth import TENANT_CLAIM_TRIGGER, Auth, protected_routes
from infra.cdk.bundling import Assets, build_assets
from infra.cdk.edge import Edge
from infra.cdk.email import ToolsEmail, email_context
from infra.cdk.endpoints import ModelEndpoints
from infra.cdk.evaluation import EVALUATOR_FUNCTION, EvaluationAlarms
from infra.cdk.event_sources import EventSources
from infra.cdk.events import Rules
from infra.cdk.firewall import UserPoolFirewall
from infra.cdk.functions import Functions
from infra.cdk.llm_gateway import GATEWAY_FUNCTION, LlmGatewayPolicy
from infra.cdk.network import Network, needs_network
from infra.cdk.observability import Observability
from infra.cdk.registry import Registry, construct_id
from infra.cdk.search import Search
from infra.cdk.settings import InfraSettings
from infra.cdk.sql import TOOLS_FUNCTION, SqlDatabase
from infra.cdk.storage import Storage
from infra.cdk.tool_policy import ToolPolicyParameter
from infra.cdk.workflows import Workflows


class PlatformStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: InfraSettings,
        topology: Topology = PLATFORM,
        assets: Assets | None = None,
    ) -> None:
        super().__init__(
            scope,
            id,
            stack_name=settings.stack_name,
            description=(
                "Agent platform: API, workflows, functions, model endpoints, search and storage from "
                "agentplatform.topology."
            ),
        )
        self.topology = topology
        self.registry = Registry(self)
        assets = assets or build_assets([f.service for f in topology.functions], topology.model_endpoints)

        self.storage = Storage(
            self,
            "Storage",
            topology=topology,
            registry=self.registry,
            access_log_retention_days=settings.access_log_retention_days,
        )
        # Before the functions: a function granted an endpoint gets its name and ARN from the registry.
        self.endpoints = ModelEndpoints(
            self,
            "ModelEndpoints",
            topology=topology,
            registry=self.registry,
            archives=assets.models,
            settings=settings,
        )
        # Before the functions too: a function granted a search domain runs in the VPC and gets the domain's URL.
        self.network = (
            Network(self, "Network", topology=topology, log_retention=settings.log_retention)
            if needs_network(topology)
            else None
        )
        self.search = (
            Search(self, "Search", topology=topology, registry=self.registry, network=self.network, settings=settings)
            if self.network
            else None
        )
        self.functions = Functions(
            self,
            "Functions",
            topology=topology,
            registry=self.registry,
            assets=assets,
            log_retention=settings.log_retention,
            network=self.network,
        )
        # The gateway's routing policy (an SSM parameter), Bedrock models and OpenAI-compatible key: not topology
        # resources, so granted here to the gateway function alone.
        self.llm_gateway = (
            LlmGatewayPolicy(self, "LlmGateway", function=self.registry.functions[GATEWAY_FUNCTION])
            if GATEWAY_FUNCTION in self.registry.functions
            else None
        )
        # The business tools' Aurora database (Data API), granted to the tools function alone.
        self.sql = (
            SqlDatabase(
                self,
                "SqlDatabase",
                network=self.network,
                function=self.registry.functions[TOOLS_FUNCTION],
                log_retention=settings.log_retention,
            )
            if self.network and TOOLS_FUNCTION in self.registry.functions
            else None
        )
        # The tools' policy (an SSM parameter) and, where an SES identity is configured, email: granted to the tools
        # function alone.
        if TOOLS_FUNCTION in self.registry.functions:
            tools_function = self.registry.functions[TOOLS_FUNCTION]
            self.tool_policy = ToolPolicyParameter(self, "ToolPolicy", function=tools_function)
            email = email_context(self.node)
            if email:
                self.email = ToolsEmail(self, "Email", function=tools_function, identity=email[0], sender=email[1])
        # The queues' pollers: each mapping's function polls its queue with exactly the consume actions.
        self.event_sources = EventSources(self, "EventSources", topology=topology, registry=self.registry)
        if self.search:
            self.search.admit(topology)  # the domains' access policies name the function roles
        self.workflows = Workflows(
            self, "Workflows", topology=topology, registry=self.registry, log_retention=settings.log_retention
        )
        self.rules = Rules(self, "Events", topology=topology, registry=self.registry)
        # Score degradation in AWS: CloudWatch alarms on the evaluator's platform-wide EMF series.
        self.evaluation = (
            EvaluationAlarms(self, "Evaluation", function=self.registry.functions[EVALUATOR_FUNCTION])
            if EVALUATOR_FUNCTION in self.registry.functions
            else None
        )
        self.auth = (
            Auth(
                self,
                "Auth",
                topology=topology,
                feature_plan=settings.user_pool_feature_plan,
                callback_urls=settings.auth_callback_urls,
                domain_prefix=settings.auth_domain_prefix,
            )
            if protected_routes(topology)
            else None
        )
        if self.auth and TENANT_CLAIM_TRIGGER in self.registry.functions:
            self.auth.add_token_trigger(self.registry.functions[TENANT_CLAIM_TRIGGER])
        # The Lambda authorizer verifies the pool's tokens itself: it gets the pool's issuer and client ids (it
        # depends on the pool; nothing of the pool depends on it).
        if self.auth and AUTHORIZER_FUNCTION in self.registry.functions:
            self.auth.add_token_verifier(self.registry.functions[AUTHORIZER_FUNCTION])
        self.user_pool_firewall = (
            UserPoolFirewall(
                self, "UserPoolFirewall", user_pool=self.auth.user_pool, rate_limit=settings.waf_rate_limit
            )
            if self.auth
            else None
        )
        self.api = HttpApi(
            self,
            "HttpApi",
            topology=topology,
            registry=self.registry,
            throttle=settings.api_throttle,
            log_retention=settings.log_retention,
            auth=self.auth,
            cors=CorsPolicy(allow_origins=list(settings.cors_origins)),
            domain=settings.api_domain,
        )
        self.edge = (
            Edge(
                self,
                "Edge",
                options=settings.edge,
                origin_domain=self.api.origin_domain,
                rate_limit=settings.waf_rate_limit,
                access_logs=self.storage.access_logs,
                log_retention_days=settings.access_log_retention_days,
            )
            if settings.edge
            else None
        )
        # Last: the dashboard and alarms read what every construct above made (and notify on their alarms).
        self.observability = Observability(self, "Observability", registry=self.registry, http_api=self.api.api)
        self._outputs()

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.api.url, description="Base URL of the HTTP API")
        if self.api.domain_name:
            CfnOutput(
                self,
                "ApiDomainTarget",
                value=self.api.domain_name.regional_domain_name,
                description="Point the API's DNS name here (CNAME, or an alias with ApiDomainHostedZoneId)",
            )
            CfnOutput(self, "ApiDomainHostedZoneId", value=self.api.domain_name.regional_hosted_zone_id)
        if self.edge:
            CfnOutput(self, "EdgeUrl", value=self.edge.url, description="Base URL of the API through CloudFront")
            CfnOutput(
                self,
                "EdgeDistributionDomainName",
                value=self.edge.distribution.distribution_domain_name,
                description="Point the edge's DNS name here (CNAME, or an alias to the CloudFront distribution)",
            )
            CfnOutput(self, "EdgeWebAclArn", value=self.edge.web_acl_arn)
        if self.user_pool_firewall:
            CfnOutput(self, "UserPoolWebAclArn", value=self.user_pool_firewall.web_acl.attr_arn)
        for name, bucket in self.registry.buckets.items():
            CfnOutput(self, f"{construct_id(name)}BucketName", value=bucket.bucket_name)
        for name, bus in self.registry.buses.items():
            CfnOutput(self, f"{construct_id(name)}EventBusName", value=bus.event_bus_name)
        for name, machine in self.registry.state_machines.items():
            CfnOutput(self, f"{construct_id(name)}StateMachineArn", value=machine.state_machine_arn)
        for name, endpoint in self.registry.endpoints.items():
            CfnOutput(self, f"{construct_id(name)}EndpointName", value=endpoint.attr_endpoint_name)
        if self.auth:
            CfnOutput(self, "UserPoolId", value=self.auth.user_pool.user_pool_id)
            CfnOutput(self, "UserPoolClientId", value=self.auth.client.user_pool_client_id)
            CfnOutput(self, "JwtIssuerUrl", value=self.auth.issuer, description="Issuer of the API's tokens")
            CfnOutput(self, "AuthDomainUrl", value=self.auth.domain.base_url(), description="Hosted sign-in")
        if self.search:
            for name in self.registry.search_domains:
                ref = f"search:{name}"
                CfnOutput(self, f"{construct_id(name)}SearchUrl", value=self.registry.env_value(ref))
                CfnOutput(
                    self,
                    f"{construct_id(name)}SearchAdminRoleArn",
                    value=self.search.admin_roles[name].role_arn,
                    description="The fine-grained access control master user: assume it to map the function roles",
                )
                roles = [
                    self.functions.roles[f.name].role_arn
                    for f in self.topology.functions
                    if any(g.ref == ref for g in f.uses)
                ]
                if roles:
                    CfnOutput(
                        self,
                        f"{construct_id(name)}SearchFunctionRoleArns",
                        value=Fn.join(",", roles),
                        description="Roles to map to OpenSearch roles (backend roles) in the domain's security plugin",
                    )
