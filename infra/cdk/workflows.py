"""Standard state machines from the ASL files under statemachines/, `${Placeholders}` filled from the topology.

Each machine's role is granted exactly its topology `uses`; it logs every event (without execution data) to
its own log group and is traced with X-Ray.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from agentplatform.topology import StateMachine, Topology
from infra.cdk.nag import SFN_LOGGING_AND_XRAY_REASON, acknowledge
from infra.cdk.permissions import apply_grants
from infra.cdk.registry import Registry, construct_id, tag_with_ref


class Workflows(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        registry: Registry,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        for machine in topology.state_machines:
            registry.state_machines[machine.name] = self._state_machine(machine, registry, log_retention)

    def _state_machine(self, spec: StateMachine, registry: Registry, retention: logs.RetentionDays) -> sfn.StateMachine:
        name = construct_id(spec.name)
        physical_name = registry.state_machine_name(spec.name)
        if not spec.path.is_file():
            raise FileNotFoundError(f"state machine {spec.name}: no ASL file at {spec.path}")
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            # Under /aws/vendedlogs/ so Step Functions' log delivery does not grow the account's resource policy.
            log_group_name=f"/aws/vendedlogs/states/{physical_name}",
            retention=retention,
        )
        machine = sfn.StateMachine(
            self,
            f"{name}StateMachine",
            state_machine_name=physical_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(spec.path)),
            definition_substitutions={
                placeholder: registry.substitution_value(ref) for placeholder, ref in spec.substitutions.items()
            },
            # Every event, but not the payloads: state inputs carry prompts and document text.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
        )
        role = cast(Construct, machine.role)  # the iam.Role the state machine made: a construct to acknowledge on
        apply_grants(registry, machine.role, spec.uses, nag_scope=role)
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", SFN_LOGGING_AND_XRAY_REASON)
        tag_with_ref(machine, f"statemachine:{spec.name}", "AWS::StepFunctions::StateMachine")
        return machine
