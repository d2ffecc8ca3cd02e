"""Health of every component the API depends on, checked through the ports (the same checks on every backend)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from agentplatform.bootstrap import Container
from agentplatform.errors import PlatformError
from agentplatform.ports import HealthCheck

VERSION = "0.1.0"


class Component(StrEnum):
    object_store = "object_store"
    queue = "queue"
    table = "table"
    event_bus = "event_bus"
    workflow = "workflow"


class ComponentStatus(BaseModel):
    name: Component
    status: Literal["ok", "down"]
    latency_ms: float = Field(description="How long the check took.")
    detail: str | None = Field(default=None, description="Why the component is down.")


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    components: list[ComponentStatus]


# Component -> the container attribute holding its adapter (built inside the check: a missing setting is a
# down component, not a failed health endpoint).
_ADAPTERS: dict[Component, str] = {
    Component.object_store: "drop_store",
    Component.queue: "alerts_queue",
    Component.table: "documents_table",
    Component.event_bus: "event_bus",
    Component.workflow: "canary_workflow",
}


def _run(name: Component, c: Container) -> ComponentStatus:
    started = time.perf_counter()
    try:
        adapter: HealthCheck = getattr(c, _ADAPTERS[name])
        adapter.check()
        status, detail = "ok", None
    except PlatformError as exc:
        status, detail = "down", exc.detail
    return ComponentStatus(
        name=name, status=status, latency_ms=round((time.perf_counter() - started) * 1000, 2), detail=detail
    )


def check_health(c: Container, only: Component | None = None) -> HealthReport:
    names = [only] if only else list(Component)
    # Concurrent: on AWS each check is a network round trip.
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        components = list(pool.map(lambda n: _run(n, c), names))
    status = "ok" if all(s.status == "ok" for s in components) else "degraded"
    return HealthReport(status=status, version=VERSION, components=components)
