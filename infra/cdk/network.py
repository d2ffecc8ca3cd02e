"""The platform's VPC, built only when the topology has a resource that lives in one (a search domain).

Two AZs of isolated subnets and nothing else: no internet gateway, no NAT gateway, so nothing in the VPC reaches
the internet and nothing there can be reached from it. What the functions inside need of AWS comes in through
VPC endpoints: SageMaker Runtime as an interface endpoint (a function that searches also embeds the query), S3
and DynamoDB as gateway endpoints (free; for the ingestion functions that will join the VPC). Every
network interface in the VPC gets a security group of its own; the default security group is left as EC2
creates it but holds nothing (CDK's `restrictDefaultSecurityGroup` would deploy a custom-resource Lambda to
empty it). Flow logs go to CloudWatch Logs.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from agentplatform.topology import Function, Topology, split_ref

VPC_CIDR = "10.20.0.0/16"
AZS = 2
HTTPS = ec2.Port.tcp(443)


def in_vpc(function: Function) -> bool:
    """A function runs in the VPC when it uses a resource only the VPC can reach (a search domain)."""
    return any(split_ref(grant.ref)[0] == "search" for grant in function.uses)


def needs_network(topology: Topology) -> bool:
    return bool(topology.search_domains)


class Network(Construct):
    def __init__(self, scope: Construct, id: str, *, topology: Topology, log_retention: logs.RetentionDays) -> None:
        super().__init__(scope, id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=AZS,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=20)
            ],
            # Emptying the default group takes a custom-resource Lambda; nothing is placed in it instead.
            restrict_default_security_group=False,
        )
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention)
        ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(self.vpc),
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        for name, service in (
            ("S3", ec2.GatewayVpcEndpointAwsService.S3),
            ("DynamoDb", ec2.GatewayVpcEndpointAwsService.DYNAMODB),
        ):
            self.vpc.add_gateway_endpoint(f"{name}Endpoint", service=service, subnets=[self.subnets])
        self.endpoints = ec2.SecurityGroup(
            self,
            "InterfaceEndpoints",
            vpc=self.vpc,
            description="Interface VPC endpoints: HTTPS from the platform functions in the VPC only",
            allow_all_outbound=False,
        )
        self.sagemaker_runtime: ec2.InterfaceVpcEndpoint | None = None
        if any(
            split_ref(grant.ref)[0] == "endpoint"
            for function in topology.functions
            if in_vpc(function)
            for grant in function.uses
        ):
            self.sagemaker_runtime = self.vpc.add_interface_endpoint(
                "SageMakerRuntimeEndpoint",
                service=ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
                private_dns_enabled=True,
                subnets=self.subnets,
                security_groups=[self.endpoints],
                open=False,
            )

    def client_group(self, scope: Construct, id: str, description: str) -> ec2.SecurityGroup:
        """A security group for functions in the VPC: HTTPS out, and admitted by the interface endpoints.

        Egress is HTTPS to any address: the subnets route nowhere but the VPC itself and the gateway endpoints'
        prefix lists, so that is the domain, the interface endpoints, S3 and DynamoDB.
        """
        group = ec2.SecurityGroup(scope, id, vpc=self.vpc, description=description, allow_all_outbound=False)
        group.add_egress_rule(
            ec2.Peer.any_ipv4(), HTTPS, "HTTPS to the VPC's endpoints and domains (no route leaves the VPC)"
        )
        self.endpoints.add_ingress_rule(group, HTTPS, f"HTTPS from {id}")
        return group
