"""The platform stack: everything `agentplatform.topology` describes, built in dependency order."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from agentplatform.topology import PLATFORM, Topology
from infra.cdk.api import HttpApi
from infra.cdk.bundling import Assets, build_assets
from infra.cdk.endpoints import ModelEndpoints
from infra.cdk.events import Rules
from infra.cdk.functions import Functions
from infra.cdk.registry import Registry, construct_id
from infra.cdk.settings import InfraSettings
from infra.cdk.storage import Storage
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
                "Agent platform: API, workflows, functions, model endpoints and storage from agentplatform.topology."
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
        self.functions = Functions(
            self,
            "Functions",
            topology=topology,
            registry=self.registry,
            assets=assets,
            log_retention=settings.log_retention,
        )
        self.workflows = Workflows(
            self, "Workflows", topology=topology, registry=self.registry, log_retention=settings.log_retention
        )
        self.rules = Rules(self, "Events", topology=topology, registry=self.registry)
        self.api = HttpApi(
            self,
            "HttpApi",
            topology=topology,
            registry=self.registry,
            throttle=settings.api_throttle,
            log_retention=settings.log_retention,
        )
        self._outputs()

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.api.url, description="Base URL of the HTTP API")
        for name, bucket in self.registry.buckets.items():
            CfnOutput(self, f"{construct_id(name)}BucketName", value=bucket.bucket_name)
        for name, bus in self.registry.buses.items():
            CfnOutput(self, f"{construct_id(name)}EventBusName", value=bus.event_bus_name)
        for name, machine in self.registry.state_machines.items():
            CfnOutput(self, f"{construct_id(name)}StateMachineArn", value=machine.state_machine_arn)
        for name, endpoint in self.registry.endpoints.items():
            CfnOutput(self, f"{construct_id(name)}EndpointName", value=endpoint.attr_endpoint_name)
