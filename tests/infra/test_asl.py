"""ASL Retry/Catch blocks only name errors that can actually be raised."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentplatform.errors import error_names
from agentplatform.topology import PLATFORM, statemachines_dir

pytestmark = pytest.mark.infra

ASL_FILES = sorted(statemachines_dir().glob("*.asl.json"))


def _error_equals(node: Any) -> list[str]:
    """Every name in every ErrorEquals, at any depth (Map and Parallel states nest whole state machines)."""
    if isinstance(node, dict):
        names = list(node.get("ErrorEquals", []))
        return names + [n for key, value in node.items() if key != "ErrorEquals" for n in _error_equals(value)]
    if isinstance(node, list):
        return [n for item in node for n in _error_equals(item)]
    return []


def test_there_are_asl_files_and_the_topology_uses_them() -> None:
    assert ASL_FILES
    assert {m.definition for m in PLATFORM.state_machines} <= {p.name for p in ASL_FILES}


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_error_equals_names_are_known(path: Path) -> None:
    known = error_names()
    names = _error_equals(json.loads(path.read_text()))
    unknown = [n for n in names if not n.startswith(("States.", "Lambda.")) and n not in known]
    assert unknown == [], f"{path.name}: not a States.*/Lambda.* error nor in agentplatform.errors"


def test_the_walker_finds_nested_names() -> None:
    nested = {"States": {"M": {"ItemProcessor": {"States": {"T": {"Retry": [{"ErrorEquals": ["Nope"]}]}}}}}}
    assert _error_equals(nested) == ["Nope"]
