"""The emulator's fix-ups of moto: each state machine definition is parsed once, not per execution."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from local.emulator import _install_hooks


def worker(definition: dict) -> SimpleNamespace:
    details = SimpleNamespace(state_machine_details=SimpleNamespace(definition=json.dumps(definition)))
    return SimpleNamespace(_evaluation_details=details)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    _install_hooks()
    seen: list[str] = []
    original = AmazonStateLanguageParser.parse

    def counting(definition: str):
        seen.append(definition)
        return original(definition)

    monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(counting))
    return seen


def test_executions_of_one_definition_share_its_parsed_program(parses: list[str]) -> None:
    # A definition no other test parses (the cache outlives tests): a unique comment.
    definition = {"Comment": uuid.uuid4().hex, "StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    first = ExecutionWorker._get_evaluation_entrypoint(worker(definition))
    second = ExecutionWorker._get_evaluation_entrypoint(worker(definition))
    assert first is second and len(parses) == 1


def test_definitions_with_a_parallel_state_are_parsed_per_execution(parses: list[str]) -> None:
    branch = {"StartAt": "B", "States": {"B": {"Type": "Succeed"}}}
    definition = {
        "Comment": uuid.uuid4().hex,
        "StartAt": "Both",
        "States": {"Both": {"Type": "Parallel", "Branches": [branch, branch], "End": True}},
    }
    first = ExecutionWorker._get_evaluation_entrypoint(worker(definition))
    second = ExecutionWorker._get_evaluation_entrypoint(worker(definition))
    assert first is not second and len(parses) == 2
