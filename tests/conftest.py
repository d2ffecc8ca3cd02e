"""Fixtures shared by every tier: fakes for unit tests, the real local stack for integration tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentplatform.api_keys import ApiKeyStore
from agentplatform.bootstrap import Container, use_container
from agentplatform.config import Settings, reset_settings
from tests.fakes import (
    MemoryEventBus,
    MemoryObjectStore,
    MemoryQueue,
    MemoryTable,
    MemoryWorkflow,
)

EVENTS = Path(__file__).resolve().parents[1] / "events"


def sample_event(name: str) -> dict[str, Any]:
    """A real-shaped sample event from events/<service>/<name>.json."""
    return json.loads((EVENTS / name).read_text())


class LambdaContext:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "test-request-id"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def fakes() -> Iterator[Container]:
    """A container whose adapters are the in-memory fakes; installed as the composition root for the test."""
    c = Container(Settings())
    c.__dict__.update(
        drop_store=MemoryObjectStore(),
        alerts_queue=MemoryQueue(),
        documents_table=MemoryTable(),
        event_bus=MemoryEventBus(),
        canary_workflow=MemoryWorkflow(),
        limits_table=MemoryTable(),
        api_keys=ApiKeyStore(MemoryTable()),
    )
    use_container(c)
    yield c
    use_container(None)
    reset_settings()
