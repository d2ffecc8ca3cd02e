"""In-memory fakes of the ports, for unit tests: same behaviour and errors as the AWS adapters.

Set `available = False` on any of them to make it behave like an unreachable dependency.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

from agentplatform.errors import DependencyUnavailable, NotFound
from agentplatform.observability import correlation_id, with_correlation
from agentplatform.ports import StoredObject

_ids = itertools.count(1)


class _Fake:
    available = True
    resource = "fake"

    def check(self) -> None:
        if not self.available:
            raise DependencyUnavailable(f"{self.resource} unreachable", resource=self.resource)


class MemoryObjectStore(_Fake):
    resource = "memory object store"

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}

    def put(self, key: str, body: bytes, metadata: Mapping[str, str] | None = None) -> StoredObject:
        self.check()
        stored = StoredObject(key=key, body=body, metadata=dict(metadata or {}), version=str(next(_ids)))
        self.objects[key] = stored
        return stored

    def get(self, key: str) -> StoredObject:
        self.check()
        if key not in self.objects:
            raise NotFound(f"{self.resource}/{key}: not found", resource=self.resource)
        return self.objects[key]

    def delete(self, key: str) -> None:
        self.check()
        self.objects.pop(key, None)


class MemoryQueue(_Fake):
    resource = "memory queue"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, body: Mapping[str, Any]) -> str:
        self.check()
        message_id = str(next(_ids))
        self.messages.append(
            {"id": message_id, "body": json.loads(json.dumps(body)), "correlation_id": correlation_id()}
        )
        return message_id


class MemoryEventBus(_Fake):
    resource = "memory event bus"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, source: str, detail_type: str, detail: Mapping[str, Any]) -> str:
        self.check()
        event_id = str(next(_ids))
        self.events.append(
            {"id": event_id, "source": source, "detail-type": detail_type, "detail": with_correlation(detail)}
        )
        return event_id


class MemoryWorkflow(_Fake):
    resource = "memory workflow"

    def __init__(self) -> None:
        self.executions: dict[str, dict[str, Any]] = {}

    def start(self, payload: Mapping[str, Any], *, name: str | None = None) -> str:
        self.check()
        execution_id = name or str(next(_ids))
        self.executions[execution_id] = with_correlation(payload)
        return execution_id


class MemoryTable(_Fake):
    resource = "memory table"

    def __init__(self, key_names: tuple[str, ...] = ("pk", "sk")) -> None:
        self.key_names = key_names
        self.items: dict[tuple[Any, ...], dict[str, Any]] = {}

    def _key(self, key: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(key[name] for name in self.key_names)

    def get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        self.check()
        item = self.items.get(self._key(key))
        return dict(item) if item else None

    def put(self, item: Mapping[str, Any]) -> None:
        self.check()
        self.items[self._key(item)] = dict(item)

    def delete(self, key: Mapping[str, str]) -> None:
        self.check()
        self.items.pop(self._key(key), None)


class ScriptedModelEndpoint(_Fake):
    """A ModelEndpoint that answers from a script: each item is a payload to return or an exception to raise;
    a callable item computes the answer from the request. Records every request."""

    def __init__(self, name: str, script: list[Any]) -> None:
        self.name = name
        self.resource = f"endpoint {name}"
        self._script = list(script)
        self.requests: list[dict[str, Any]] = []

    def invoke(self, payload: Mapping[str, Any]) -> Any:
        self.check()
        request = json.loads(json.dumps(payload))
        self.requests.append(request)
        if not self._script:
            raise AssertionError(f"{self.resource}: script exhausted after {len(self.requests) - 1} calls")
        step = self._script.pop(0) if len(self._script) > 1 or not callable(self._script[0]) else self._script[0]
        if isinstance(step, Exception):
            raise step
        return step(request) if callable(step) else step
