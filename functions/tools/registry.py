"""The tool registry: what the agent may call, each tool described by JSON Schema.

A tool is one module with a `SPEC` and one entry in `TOOL_MODULES`. The registry validates a call's arguments
against the tool's schema before it runs (invalid -> an error result the model sees, so it can fix the call) and
the result after; it bounds each run by the tool's timeout and keeps a breaker per tool. The caller's identity
(tenant, user, groups) travels in the ToolContext, never in the arguments: a tool's schema has no such field and
refuses extra ones, so a prompt-injected `tenant` argument is an invalid call.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from agentplatform.inference import FunctionDefinition, Tool
from agentplatform.ports import KeyValueTable
from agentplatform.tools import ToolTrigger

# Adding a tool: a module here with a `SPEC`, and its name in this tuple.
TOOL_MODULES = (
    "functions.tools.knowledge",
    "functions.tools.escalation",
    "functions.tools.send_email",
    "functions.tools.read_file",
    "functions.tools.write_file",
    "functions.tools.list_files",
    "functions.tools.crm_lookup",
    "functions.tools.erp_order_status",
    "functions.tools.sql_query",
)


class ToolFailed(Exception):
    """A tool could not produce a result; its message is what the model sees."""


@dataclass(frozen=True)
class ToolContext:
    tenant: str
    user: str
    groups: tuple[str, ...]
    conversation_id: str
    turn: int
    step: int
    call_id: str
    idempotency_key: str  # execution + step + call: a side effect keyed on it happens once
    # What the tools declared in `needs` (container attributes by name: other services' functions, tables,
    # buckets); one this deployment was not granted is missing, and the tool says it is not available.
    resources: Mapping[str, Any] = field(default_factory=dict)
    # The tenant's policy limits on this tool (functions/tools/policy.py, e.g. {"max_rows": 50}); {} when none.
    limits: Mapping[str, Any] = field(default_factory=dict)


Run = Callable[[dict[str, Any], ToolContext], dict[str, Any]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments
    result_schema: dict[str, Any]
    run: Run
    timeout_s: float = 20.0
    requires_approval: bool = False  # an operator approves each call before it runs (an escalation)
    side_effect: bool = False  # changes something outside the platform: never repeated for one idempotency key
    needs: tuple[str, ...] = ()  # what the tool uses: names of container attributes
    triggers: tuple[ToolTrigger, ...] = ()  # questions that plan this call up front (agentplatform.tools)

    def schema(self) -> Tool:
        return Tool(
            function=FunctionDefinition(name=self.name, description=self.description, parameters=self.parameters)
        )


@dataclass(frozen=True)
class Outcome:
    status: str  # ok | error | needs_approval
    result: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: float = 0.0


@dataclass
class Breaker:
    """Reads and records a tool's failures (over the tools' state table in production: every container shares it)."""

    is_open: Callable[[str], bool] = lambda name: False
    record: Callable[[str, bool], None] = lambda name, failed: None

    @classmethod
    def over(cls, table: KeyValueTable, *, threshold: int, open_s: float) -> Breaker:
        """`threshold` consecutive failures open a tool's breaker for `open_s`; a success closes it."""

        def key(name: str) -> dict[str, str]:
            return {"pk": f"TOOL#{name}", "sk": "BREAKER"}

        def is_open(name: str) -> bool:
            return float((table.get(key(name)) or {}).get("open_until") or 0) > time.time()

        def record(name: str, failed: bool) -> None:
            if not failed:
                if (table.get(key(name)) or {}).get("failures"):
                    table.update(key(name), {"failures": 0, "open_until": 0})
                return
            if table.increment(key(name), "failures", 1) >= threshold:
                table.update(key(name), {"open_until": time.time() + open_s, "failures": 0})

        return cls(is_open=is_open, record=record)


class ToolRegistry:
    def __init__(self, specs: list[ToolSpec], breaker: Breaker | None = None) -> None:
        self._specs = {s.name: s for s in specs}
        self.breaker = breaker or Breaker()

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> ToolSpec | None:
        return self._specs.get(name)

    def schemas(self) -> list[Tool]:
        return [s.schema() for s in self._specs.values()]

    def call(
        self,
        name: str,
        arguments: Any,
        ctx: ToolContext,
        *,
        approved: bool = False,
        requires_approval: bool | None = None,
    ) -> Outcome:
        """Run one call. `requires_approval` is the tenant policy's say, else the tool's own default."""
        spec = self._specs.get(name)
        if spec is None:
            return Outcome("error", error=f"unknown tool {name!r}; the tools are: {', '.join(self._specs)}")
        if not isinstance(arguments, dict):
            return Outcome("error", error="arguments must be a JSON object")
        try:
            jsonschema.validate(arguments, spec.parameters)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
            return Outcome("error", error=f"invalid arguments ({where}): {exc.message}")
        if (spec.requires_approval if requires_approval is None else requires_approval) and not approved:
            return Outcome("needs_approval", error=f"{name} needs an operator's approval before it runs")
        if self.breaker.is_open(name):
            return Outcome("error", error=f"{name} is unavailable right now (its breaker is open); answer without it")
        started = time.monotonic()
        future = _pool().submit(spec.run, arguments, ctx)
        try:
            result = future.result(timeout=spec.timeout_s)
        except FutureTimeout:
            # The thread cannot be stopped; its result is dropped and the model hears of the timeout.
            self.breaker.record(name, True)
            return Outcome("error", error=f"{name} timed out after {spec.timeout_s:g} s", duration_ms=_ms(started))
        except ToolFailed as exc:
            self.breaker.record(name, True)
            return Outcome("error", error=str(exc), duration_ms=_ms(started))
        except Exception as exc:
            self.breaker.record(name, True)
            return Outcome("error", error=f"{name} failed: {type(exc).__name__}", duration_ms=_ms(started))
        try:
            jsonschema.validate(result, spec.result_schema)
        except jsonschema.ValidationError as exc:
            self.breaker.record(name, True)
            return Outcome("error", error=f"{name} returned an invalid result: {exc.message}", duration_ms=_ms(started))
        self.breaker.record(name, False)
        return Outcome("ok", result=result, duration_ms=_ms(started))


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    # One per container, made on first use: a run's thread is what a timeout leaves behind.
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=8, thread_name_prefix="tool"))
        return _POOL[0]


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def default_specs() -> list[ToolSpec]:
    return [importlib.import_module(module).SPEC for module in TOOL_MODULES]
