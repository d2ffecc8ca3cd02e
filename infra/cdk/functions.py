"""One Lambda function per topology Function, all sharing the core layer; each with its own role and log group.

The environment carries exactly the resource names the function's grants cover (`topology.env_var`), plus the
backend and Powertools settings; the role holds exactly those grants (permissions.py), plus writing its own
log group and X-Ray traces.

A function granted a search domain runs in the VPC's isolated subnets (network.py), in the security group the
domain admits (one per domain it uses); its role then also manages the function's network interfaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from agentplatform.observability import METRICS_NAMESPACE
from agentplatform.topology import Function, Topology, env_var, split_ref
from infra.cdk.bundling import PIP_PLATFORM, PYTHON_VERSION, Assets
from infra.cdk.nag import XRAY_REASON, acknowledge
from infra.cdk.network import Network, in_vpc
from infra.cdk.permissions import apply_grants
from infra.cdk.registry import Registry, construct_id, tag_with_ref

# The runtime and CPU the layer's wheels were resolved for (bundling.py): one source for both.
RUNTIME: lambda_.Runtime = getattr(lambda_.Runtime, "PYTHON_" + PYTHON_VERSION.replace(".", "_"))
ARCHITECTURE = lambda_.Architecture.ARM_64 if PIP_PLATFORM.endswith("aarch64") else lambda_.Architecture.X86_64
LATEST_PYTHON: lambda_.Runtime = max(
    (getattr(lambda_.Runtime, n) for n in dir(lambda_.Runtime) if n.startswith("PYTHON_3_")),
    key=lambda runtime: tuple(int(p) for p in runtime.name.removeprefix("python").split(".")),
)
RUNTIME_PIN_REASON = (
    f"Pinned to {RUNTIME.name} on purpose, a supported Lambda runtime: the layer's compiled wheels (pydantic-core, "
    "wrapt) are resolved for exactly this Python (bundling.PYTHON_VERSION, from which the runtime is derived). "
    f"Moving to {LATEST_PYTHON.name} is a one-constant change made deliberately with a test run, not by a linter."
)

# What Lambda needs of the execution role to attach a function to a VPC (the actions of the AWS managed policy
# AWSLambdaVPCAccessExecutionRole, which a role built here does not get).
VPC_ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
VPC_ENI_REASON = (
    "This function runs in the VPC: Lambda creates and deletes its network interfaces with the execution role "
    "(ec2:CreateNetworkInterface, DescribeNetworkInterfaces, DescribeSubnets, DeleteNetworkInterface, "
    "AssignPrivateIpAddresses, UnassignPrivateIpAddresses, as in AWSLambdaVPCAccessExecutionRole); the Describe "
    "actions support no resource-level permissions and interface ARNs are unknown before Lambda creates them."
)


@dataclass(frozen=True)
class _VpcPlacement:
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_groups: list[ec2.ISecurityGroup]


def base_environment(function: Function) -> dict[str, str]:
    """What every function gets besides its resources' names."""
    return {
        "PLATFORM_BACKEND": "aws",
        "POWERTOOLS_SERVICE_NAME": function.service,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        registry: Registry,
        assets: Assets,
        log_retention: logs.RetentionDays,
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, id)
        self._network = network
        self._registry = registry
        self.layer = lambda_.LayerVersion(
            self,
            "CoreLayer",
            code=lambda_.Code.from_asset(str(assets.layer)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="agentplatform (the shared core) and its runtime dependencies; boto3 comes from the runtime.",
        )
        self.roles: dict[str, iam.Role] = {}
        for function in topology.functions:
            registry.functions[function.name] = self._function(function, assets, log_retention)
        # Wired once every function exists: a function may name another one.
        for function in topology.functions:
            self._wire(function, registry)

    def _function(self, spec: Function, assets: Assets, retention: logs.RetentionDays) -> lambda_.Function:
        name = construct_id(spec.name)
        log_group = logs.LogGroup(self, f"{name}Logs", retention=retention)
        role = iam.Role(
            self,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Function {spec.name}: its topology grants, its own log group and X-Ray.",
        )
        log_group.grant_write(role)
        vpc = self._vpc_placement(spec)
        if vpc:
            role.add_to_principal_policy(iam.PolicyStatement(actions=list(VPC_ENI_ACTIONS), resources=["*"]))
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", f"{XRAY_REASON} {VPC_ENI_REASON}" if vpc else XRAY_REASON)
        self.roles[spec.name] = role
        function = lambda_.Function(
            self,
            f"{name}Function",
            description=spec.purpose[:256],
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=lambda_.Code.from_asset(str(assets.functions[spec.service])),
            layers=[self.layer],
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=log_group,
            environment=base_environment(spec),
            vpc=vpc.vpc if vpc else None,
            vpc_subnets=vpc.subnets if vpc else None,
            security_groups=vpc.security_groups if vpc else None,
        )
        if RUNTIME.name != LATEST_PYTHON.name:
            acknowledge(function, "AwsSolutions-L1", RUNTIME_PIN_REASON)
        tag_with_ref(function, f"function:{spec.name}", "AWS::Lambda::Function")
        return function

    def _vpc_placement(self, spec: Function) -> _VpcPlacement | None:
        """Where a function that must run in the VPC goes: the isolated subnets, the groups its domains admit."""
        if not in_vpc(spec):
            return None
        if self._network is None:
            raise ValueError(f"function {spec.name} uses a search domain, but the stack has no VPC")
        domains = sorted({split_ref(g.ref)[1] for g in spec.uses if split_ref(g.ref)[0] == "search"})
        groups: list[ec2.ISecurityGroup] = [
            Registry._get(self._registry.search_clients, f"search:{domain}") for domain in domains
        ]
        return _VpcPlacement(vpc=self._network.vpc, subnets=self._network.subnets, security_groups=groups)

    def _wire(self, spec: Function, registry: Registry) -> None:
        function = registry.functions[spec.name]
        for grant in spec.uses:
            function.add_environment(env_var(grant.ref), registry.env_value(grant.ref))
        apply_grants(registry, self.roles[spec.name], spec.uses, nag_scope=self.roles[spec.name])
