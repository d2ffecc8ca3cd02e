"""Health of every component the API needs to answer, checked through the ports (the same checks on every backend).

A component is `ok`, `down`, or `absent`: a deployment may run without an optional one (its own model endpoints,
the search index, the retrieval function), which is neither healthy nor an outage. Absent is what the check's
ConfigurationError says: the setting is not given, or the service has no such resource (SageMaker's "no such
endpoint"; locally, a model LOCAL_MODELS does not host). The report is degraded only when a present component is
down. The core ones (storage, queue, bus, workflow, tables) are never optional: a missing setting there is a
broken deployment, so it is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from agentplatform.bootstrap import Container
from agentplatform.errors import ConfigurationError, DependencyUnavailable, PlatformError
from agentplatform.topology import PLATFORM

VERSION = "0.1.0"


class Component(StrEnum):
    object_store = "object_store"
    queue = "queue"
    table = "table"  # every table of the topology
    event_bus = "event_bus"
    workflow = "workflow"
    search_index = "search_index"
    embedding_endpoint = "embedding_endpoint"
    generation_endpoint = "generation_endpoint"
    retrieval_function = "retrieval_function"


class ComponentStatus(BaseModel):
    name: Component
    status: Literal["ok", "down", "absent"] = Field(
        description="`absent`: this deployment does not have the component (its setting is not given)."
    )
    latency_ms: float = Field(description="How long the check took.")
    detail: str | None = Field(default=None, description="Why the component is down or absent.")


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    components: list[ComponentStatus]


def _tables(c: Container) -> None:
    """Every table of the topology, so a table a new area adds is checked too; the detail names each one down."""
    down: list[str] = []

    def one(name: str) -> None:
        try:
            c.table(name).check()
        except PlatformError as exc:
            down.append(f"table {name}: {exc.detail}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, [t.name for t in PLATFORM.tables]))
    if down:
        raise DependencyUnavailable("; ".join(sorted(down)))


# Component -> its check (the adapter is built inside it: a missing setting is reported, not a failed endpoint).
_CHECKS: dict[Component, Callable[[Container], None]] = {
    Component.object_store: lambda c: c.drop_store.check(),
    Component.queue: lambda c: c.alerts_queue.check(),
    Component.table: _tables,
    Component.event_bus: lambda c: c.event_bus.check(),
    Component.workflow: lambda c: c.canary_workflow.check(),
    # Through the retrieval function's health operation: the search domain answers only inside its VPC.
    Component.search_index: lambda c: c.retrieval_function.invoke({"operation": "health"}),
    Component.embedding_endpoint: lambda c: c.embedding_model.check(),  # type: ignore[attr-defined]
    Component.generation_endpoint: lambda c: c.chat_model.check(),  # type: ignore[attr-defined]
    Component.retrieval_function: lambda c: c.retrieval_function.check(),  # type: ignore[attr-defined]
}
_OPTIONAL = {
    Component.search_index,
    Component.embedding_endpoint,
    Component.generation_endpoint,
    Component.retrieval_function,
}


def _run(name: Component, c: Container) -> ComponentStatus:
    started = time.perf_counter()
    try:
        _CHECKS[name](c)
        status, detail = "ok", None
    except ConfigurationError as exc:
        status, detail = ("absent" if name in _OPTIONAL else "down"), exc.detail
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
    status = "degraded" if any(s.status == "down" for s in components) else "ok"
    return HealthReport(status=status, version=VERSION, components=components)
