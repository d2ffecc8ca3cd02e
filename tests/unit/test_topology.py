"""The topology and the ASL files agree, so neither CDK nor the local runtime can run a half-wired machine."""

from __future__ import annotations

import json
import re

import pytest

from agentplatform.config import Settings
from agentplatform.errors import error_names
from agentplatform.topology import PLATFORM, env_var, split_ref
from local.resources import substitute

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@pytest.mark.parametrize("machine", PLATFORM.state_machines, ids=lambda m: m.name)
def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(machine):
    text = machine.path.read_text()
    assert set(PLACEHOLDER.findall(text)) == set(machine.substitutions)
    json.loads(substitute(text, {name: "x" for name in machine.substitutions}))


@pytest.mark.parametrize("machine", PLATFORM.state_machines, ids=lambda m: m.name)
def test_state_machine_is_granted_what_it_is_wired_to(machine):
    granted = {g.ref for g in machine.uses}
    assert set(machine.substitutions.values()) <= granted


@pytest.mark.parametrize("machine", PLATFORM.state_machines, ids=lambda m: m.name)
def test_retry_and_catch_match_error_names_that_exist(machine):
    definition = json.loads(machine.path.read_text())
    names = set()

    def walk(node):
        if isinstance(node, dict):
            for block in ("Retry", "Catch"):
                for entry in node.get(block, []):
                    names.update(entry["ErrorEquals"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(definition)
    unknown = {n for n in names if not n.startswith(("States.", "Lambda.")) and n not in error_names()}
    assert names and unknown == set()


def test_every_reference_resolves_and_every_env_var_is_a_setting():
    refs = PLATFORM.refs()
    used = [g.ref for f in PLATFORM.functions for g in f.uses]
    used += [g.ref for s in PLATFORM.state_machines for g in s.uses]
    used += [t.ref for r in PLATFORM.rules for t in r.targets]
    used += [f"queue:{m.queue}" for m in PLATFORM.event_sources] + [
        f"function:{m.function}" for m in PLATFORM.event_sources
    ]
    assert set(used) <= refs
    aliases = {field.alias for field in Settings.model_fields.values()}
    for function in PLATFORM.functions:
        for grant in function.uses:
            assert env_var(grant.ref) in aliases, f"{function.name} gets {env_var(grant.ref)} but Settings lacks it"


def test_substitute_refuses_a_placeholder_without_value():
    with pytest.raises(KeyError, match="Missing"):
        substitute('{"a": "${Missing}"}', {})


def test_split_ref_rejects_garbage():
    with pytest.raises(ValueError):
        split_ref("bucket")
    with pytest.raises(ValueError):
        split_ref("disk:drop")
