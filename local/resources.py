"""Creates the platform's resources in the emulator from the topology (the same description CDK deploys)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentplatform.topology import (
    ENV_ATTRIBUTE,
    SUBSTITUTED_ATTRIBUTE,
    Rule,
    StateMachine,
    Topology,
    env_var,
    resolve_refs,
    split_ref,
)
from local.lambdas import LambdaRouter

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
_STATES_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@dataclass
class Provisioned:
    """Physical identity of every resource: ref -> {"name", "arn", "url"?}."""

    resources: dict[str, dict[str, str]] = field(default_factory=dict)

    def value(self, ref: str, attribute: str) -> str:
        return self.resources[ref][attribute]

    def env(self) -> dict[str, str]:
        """Every resource's environment variable (the union of what each function gets in AWS)."""
        return {env_var(ref): self.value(ref, ENV_ATTRIBUTE[split_ref(ref)[0]]) for ref in self.resources}


def substitute(definition: str, substitutions: dict[str, str]) -> str:
    """Fill `${Name}` placeholders; a placeholder without a value is an error, never left in."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in substitutions:
            raise KeyError(f"no substitution for ${{{name}}}")
        return substitutions[name]

    return _PLACEHOLDER.sub(replace, definition)


def physical_name(prefix: str, name: str) -> str:
    return f"{prefix}-{name.replace('_', '-')}"


def provision(
    topology: Topology, clients: Any, router: LambdaRouter, prefix: str, region: str, data_dir: Path
) -> Provisioned:
    out = Provisioned()
    s3, sqs, ddb, events, iam = (clients(n) for n in ("s3", "sqs", "dynamodb", "events", "iam"))
    account = router.arn("x").split(":")[4]

    for bucket in topology.buckets:
        name = physical_name(prefix, bucket.name)
        s3.create_bucket(Bucket=name)
        if bucket.versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if bucket.eventbridge:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        out.resources[f"bucket:{bucket.name}"] = {"name": name, "arn": f"arn:aws:s3:::{name}"}

    for queue in topology.queues:
        name = physical_name(prefix, queue.name)
        dlq_url = sqs.create_queue(
            QueueName=f"{name}-dlq",
            Attributes={"MessageRetentionPeriod": str(queue.dlq_retention_days * 86400)},
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(queue.max_receive_count)}
        url = sqs.create_queue(
            QueueName=name,
            Attributes={"VisibilityTimeout": str(queue.visibility_timeout_s), "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        out.resources[f"queue:{queue.name}"] = {"name": name, "arn": arn, "url": url}

    for table in topology.tables:
        name = physical_name(prefix, table.name)
        keys = [(table.partition_key, "HASH")] + ([(table.sort_key, "RANGE")] if table.sort_key else [])
        attributes = {k for k, _ in keys}
        indexes = []
        for index in table.indexes:
            index_keys = [(index.partition_key, "HASH")] + ([(index.sort_key, "RANGE")] if index.sort_key else [])
            attributes |= {k for k, _ in index_keys}
            indexes.append(
                {
                    "IndexName": index.name,
                    "KeySchema": [{"AttributeName": k, "KeyType": t} for k, t in index_keys],
                    "Projection": {"ProjectionType": "ALL"},
                }
            )
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": [{"AttributeName": k, "KeyType": t} for k, t in keys],
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if indexes:
            kwargs["GlobalSecondaryIndexes"] = indexes
        arn = ddb.create_table(**kwargs)["TableDescription"]["TableArn"]
        if table.ttl_attribute:
            ddb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute}
            )
        out.resources[f"table:{table.name}"] = {"name": name, "arn": arn}

    for bus in topology.buses:
        name = physical_name(prefix, bus.name)
        arn = events.create_event_bus(Name=name)["EventBusArn"]
        out.resources[f"bus:{bus.name}"] = {"name": name, "arn": arn}

    # Functions before state machines and rules: both refer to function ARNs.
    lambda_client = clients("lambda")
    for function in topology.functions:
        name = physical_name(prefix, function.name)
        role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(_LAMBDA_TRUST))["Role"][
            "Arn"
        ]
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler=function.handler,
            Code={"ZipFile": _placeholder_zip(function.handler)},
            MemorySize=function.memory_mb,
            Timeout=function.timeout_s,
        )
        router.register(name, function)
        out.resources[f"function:{function.name}"] = {"name": name, "arn": router.arn(name)}

    sfn = clients("stepfunctions")
    for machine in topology.state_machines:
        name = physical_name(prefix, machine.name)
        role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(_STATES_TRUST))["Role"][
            "Arn"
        ]
        arn = sfn.create_state_machine(name=name, definition=definition_for(machine, out), roleArn=role)[
            "stateMachineArn"
        ]
        out.resources[f"statemachine:{machine.name}"] = {"name": name, "arn": arn}

    for rule in topology.rules:
        _put_rule(events, rule, out, prefix)
    for endpoint in topology.model_endpoints:  # served by the local model server under the same names
        name = physical_name(prefix, endpoint.name)
        out.resources[f"endpoint:{endpoint.name}"] = {
            "name": name,
            "arn": f"arn:aws:sagemaker:{region}:{account}:endpoint/{name}",
        }
    for domain in topology.search_domains:  # the embedded engine, one folder per domain
        folder = (data_dir / "search" / domain.name).resolve()
        out.resources[f"search:{domain.name}"] = {"name": domain.name, "url": f"file://{folder}"}
    return out


def definition_for(machine: StateMachine, provisioned: Provisioned) -> str:
    values = {
        placeholder: provisioned.value(ref, SUBSTITUTED_ATTRIBUTE[split_ref(ref)[0]])
        for placeholder, ref in machine.substitutions.items()
    }
    return substitute(machine.path.read_text(), values)


def _put_rule(events: Any, rule: Rule, out: Provisioned, prefix: str) -> None:
    name = physical_name(prefix, rule.name)
    bus = out.value(f"bus:{rule.bus}", "name") if rule.bus else "default"
    kwargs: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": "ENABLED", "Description": rule.purpose}
    if rule.event_pattern is not None:
        pattern = resolve_refs(rule.event_pattern, lambda ref: out.value(ref, "name"))
        kwargs["EventPattern"] = json.dumps(pattern)
    if rule.schedule is not None:
        kwargs["ScheduleExpression"] = rule.schedule
    events.put_rule(**kwargs)
    targets = []
    for i, target in enumerate(rule.targets):
        entry: dict[str, Any] = {"Id": f"t{i}", "Arn": out.value(target.ref, "arn")}
        if target.input_transformer:
            entry["InputTransformer"] = {
                "InputPathsMap": target.input_transformer.paths,
                "InputTemplate": target.input_transformer.template,
            }
        targets.append(entry)
    events.put_targets(Rule=name, EventBusName=bus, Targets=targets)


def _placeholder_zip(handler: str) -> bytes:
    # moto wants a code package; the runtime runs the handler from the working tree instead.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", f"Runs in-process from the working tree: {handler}\n")
    return buffer.getvalue()
