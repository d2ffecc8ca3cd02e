"""State machines deploy the ASL files as written, with every `${Placeholder}` bound to the right resource."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agentplatform.topology import PLATFORM, SUBSTITUTED_ATTRIBUTE, StateMachine, split_ref
from tests.infra.cdk_synth import INTRINSIC, Synth

pytestmark = pytest.mark.infra

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
MACHINES = [pytest.param(m, id=m.name) for m in PLATFORM.state_machines]


def _placeholder_text(synth: Synth, machine: StateMachine, props: dict[str, Any]) -> str:
    """The synthesized definition with every substituted value turned back into its `${Placeholder}`."""
    by_target = {}
    for placeholder, ref in machine.substitutions.items():
        kind, _ = split_ref(ref)
        by_target[(synth.logical_id(ref), INTRINSIC[(kind, SUBSTITUTED_ATTRIBUTE[kind])])] = placeholder

    if "DefinitionString" in props:  # inline: Fn::Join of text and tokens
        definition = props["DefinitionString"]
        if isinstance(definition, str):
            return definition
        separator, parts = definition["Fn::Join"]
        return separator.join(p if isinstance(p, str) else "${" + by_target[synth.target(p)] + "}" for p in parts)

    # Staged file + CloudFormation DefinitionSubstitutions: the file keeps its placeholders; check each binding.
    text = synth.asset_path(props["DefinitionS3Location"]["Key"]).read_text()
    substitutions = props.get("DefinitionSubstitutions", {})
    assert set(substitutions) == set(machine.substitutions), "substituted names differ from the topology"
    for placeholder, value in substitutions.items():
        assert by_target.get(synth.target(value)) == placeholder, f"${{{placeholder}}} bound to {value}"
    return text


@pytest.mark.parametrize("machine", MACHINES)
def test_definition_is_the_asl_file_with_placeholders_bound(synth: Synth, machine: StateMachine) -> None:
    props = synth.props(f"statemachine:{machine.name}")
    deployed = _placeholder_text(synth, machine, props)
    assert json.loads(deployed) == json.loads(machine.path.read_text())


@pytest.mark.parametrize("machine", MACHINES)
def test_every_placeholder_in_the_file_has_a_substitution(machine: StateMachine) -> None:
    assert set(PLACEHOLDER.findall(machine.path.read_text())) == set(machine.substitutions)


@pytest.mark.parametrize("machine", MACHINES)
def test_state_machine_is_standard_logged_and_traced(synth: Synth, machine: StateMachine) -> None:
    props = synth.props(f"statemachine:{machine.name}")
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    (destination,) = logging["Destinations"]
    lid, _ = synth.target(destination["CloudWatchLogsLogGroup"]["LogGroupArn"])
    assert synth.resources[lid]["Type"] == "AWS::Logs::LogGroup"
