"""Topology reference -> the deployed resource, its physical name, ARN or URL.

Every construct module registers what it builds here and looks other resources up by their topology reference
(`"queue:alerts"`), so no module hard-codes another's resources. Which attribute a function's environment
variable and an ASL `${Placeholder}` receive comes from the topology (`ENV_ATTRIBUTE`, `SUBSTITUTED_ATTRIBUTE`),
the same table the local runtime reads.

State machine ARNs are formatted from their (explicit) names instead of read from the resource: a function
that a state machine invokes may itself describe or start that state machine (the canary probe does), and a
token reference both ways would be a circular dependency in CloudFormation. Model endpoints are named the same
way (`<stack>-<name>`, lower case: SageMaker lower-cases the name in every endpoint ARN, and IAM compares ARNs
case-sensitively), so functions get the name and the ARN without depending on the endpoint. Search domains too:
the domain's access policy names the roles of the functions that use it, and those roles' policies name the
domain's ARN, so the ARN is formatted from the explicit name rather than read from the domain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from aws_cdk import ArnFormat, Stack, Tags
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_opensearchservice as opensearch
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from agentplatform.topology import ENV_ATTRIBUTE, SUBSTITUTED_ATTRIBUTE, split_ref

# Every resource the topology describes carries this tag with its reference ("queue:alerts"; rules as
# "rule:<name>"): findable in the console, and the infra tests map template resources back to the topology
# through it.
REF_TAG = "agentplatform:ref"

Attribute = Literal["name", "arn", "url"]

# SageMaker's endpoint name pattern (and length limit).
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# OpenSearch Service's domain name rule: 3 to 28 of a-z, 0-9 and -, starting with a letter.
_DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9-]{2,27}$")


def construct_id(name: str) -> str:
    """Topology names become construct ids (and so logical ids): `canary_probe` -> `CanaryProbe`."""
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def tag_with_ref(scope: Construct, ref: str, cfn_type: str) -> None:
    Tags.of(scope).add(REF_TAG, ref, include_resource_types=[cfn_type])


@dataclass
class Registry:
    stack: Stack
    buckets: dict[str, s3.Bucket] = field(default_factory=dict)
    queues: dict[str, sqs.Queue] = field(default_factory=dict)
    tables: dict[str, dynamodb.Table] = field(default_factory=dict)
    table_indexes: dict[str, list[str]] = field(default_factory=dict)  # table -> its GSI names
    buses: dict[str, events.EventBus] = field(default_factory=dict)
    functions: dict[str, lambda_.Function] = field(default_factory=dict)
    state_machines: dict[str, sfn.StateMachine] = field(default_factory=dict)
    state_machine_names: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, sagemaker.CfnEndpoint] = field(default_factory=dict)
    search_domains: dict[str, opensearch.Domain] = field(default_factory=dict)
    search_indexes: dict[str, str] = field(default_factory=dict)  # domain -> the index its chunks live in
    # domain -> the security group a function joins to reach it (the domain admits HTTPS from this group only)
    search_clients: dict[str, ec2.SecurityGroup] = field(default_factory=dict)

    def state_machine_name(self, name: str) -> str:
        """The physical name of a topology state machine (explicit, so its ARN is known before it exists)."""
        if name not in self.state_machine_names:
            self.state_machine_names[name] = f"{self.stack.stack_name}-{name}"
        return self.state_machine_names[name]

    def state_machine_arn(self, name: str) -> str:
        return self.stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.state_machine_name(name),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def state_machine_executions_arn(self, name: str) -> str:
        """`arn:...:execution:<machine>:*`: every execution of one state machine (their names are runtime ids)."""
        return self.stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.state_machine_name(name)}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def endpoint_name(self, name: str) -> str:
        """The physical name of a topology model endpoint: `<stack>-<name>`, lower case, `_` as `-`."""
        physical = f"{self.stack.stack_name}-{name}".lower().replace("_", "-")
        if not _ENDPOINT_NAME.match(physical):
            raise ValueError(f"endpoint name {physical!r} (stack + endpoint:{name}) is not a valid SageMaker name")
        return physical

    def endpoint_arn(self, name: str) -> str:
        return self.stack.format_arn(service="sagemaker", resource="endpoint", resource_name=self.endpoint_name(name))

    def search_domain_name(self, name: str) -> str:
        """The physical name of a topology search domain: `<stack>-<name>`, lower case, `_` as `-`."""
        physical = f"{self.stack.stack_name}-{name}".lower().replace("_", "-")
        if not _DOMAIN_NAME.match(physical):
            raise ValueError(
                f"search domain name {physical!r} (stack + search:{name}) is not a valid OpenSearch Service domain "
                "name: 3-28 characters of a-z, 0-9 and -, starting with a letter (shorten the stack name)"
            )
        return physical

    def search_domain_arn(self, name: str) -> str:
        return self.stack.format_arn(service="es", resource="domain", resource_name=self.search_domain_name(name))

    def arn(self, ref: str) -> str:
        kind, name = split_ref(ref)
        if kind == "bucket":
            return self._get(self.buckets, ref).bucket_arn
        if kind == "queue":
            return self._get(self.queues, ref).queue_arn
        if kind == "table":
            return self._get(self.tables, ref).table_arn
        if kind == "bus":
            return self._get(self.buses, ref).event_bus_arn
        if kind == "function":
            return self._get(self.functions, ref).function_arn
        if kind == "endpoint":
            self._get(self.endpoints, ref)
            return self.endpoint_arn(name)
        if kind == "search":
            self._get(self.search_domains, ref)
            return self.search_domain_arn(name)
        return self.state_machine_arn(name)

    def value(self, ref: str, attribute: Attribute) -> str:
        kind, name = split_ref(ref)
        if attribute == "arn":
            return self.arn(ref)
        if kind == "bucket" and attribute == "name":
            return self._get(self.buckets, ref).bucket_name
        if kind == "queue" and attribute == "url":
            return self._get(self.queues, ref).queue_url
        if kind == "queue" and attribute == "name":
            return self._get(self.queues, ref).queue_name
        if kind == "table" and attribute == "name":
            return self._get(self.tables, ref).table_name
        if kind == "bus" and attribute == "name":
            return self._get(self.buses, ref).event_bus_name
        if kind == "function" and attribute == "name":
            return self._get(self.functions, ref).function_name
        if kind == "statemachine" and attribute == "name":
            return self.state_machine_name(name)
        if kind == "endpoint" and attribute == "name":
            self._get(self.endpoints, ref)
            return self.endpoint_name(name)
        if kind == "search" and attribute == "url":
            return "https://" + self._get(self.search_domains, ref).domain_endpoint
        if kind == "search" and attribute == "name":
            self._get(self.search_domains, ref)
            return self.search_domain_name(name)
        raise ValueError(f"a {kind} has no {attribute} to hand out ({ref})")

    def env_value(self, ref: str) -> str:
        """What `topology.env_var(ref)` carries to a function."""
        return self.value(ref, ENV_ATTRIBUTE[split_ref(ref)[0]])

    def substitution_value(self, ref: str) -> str:
        """What an ASL `${Placeholder}` bound to `ref` is replaced with."""
        return self.value(ref, SUBSTITUTED_ATTRIBUTE[split_ref(ref)[0]])

    @staticmethod
    def _get(resources: dict[str, Any], ref: str) -> Any:
        name = split_ref(ref)[1]
        if name not in resources:
            raise KeyError(f"{ref} is referenced but not built (yet): check the topology and the build order")
        return resources[name]
