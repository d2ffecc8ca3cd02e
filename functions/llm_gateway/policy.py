"""The gateway's routing policy: a versioned, declarative document (policies/llm_gateway.json locally, an SSM
parameter in AWS) naming the model targets, which tasks and tiers route to which targets in which order, and the
retry, breaker, cache and budget settings. Validated at load: a bad policy refuses to load with the field named.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentplatform.errors import ConfigurationError, FieldError

ProviderKind = Literal["sagemaker", "bedrock", "openai", "extractive"]
_Name = Annotated[str, Field(min_length=1, max_length=128)]

# Where the repo's policy lives: the default when neither a parameter nor a path is configured.
DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policies" / "llm_gateway.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Capabilities(_Strict):
    tools: bool = False
    json_output: bool = Field(default=False, alias="json")
    # The target answers only from the call's passages (the extractive answerer): a call without any skips it.
    needs_passages: bool = False
    embed: bool = False


class Fault(_Strict):
    """A switch to show resilience on a running stack: `fail` raises DependencyUnavailable without calling the
    provider, `throttle` raises UpstreamThrottled, `slow` waits `slow_ms` before calling it."""

    mode: Literal["none", "fail", "slow", "throttle"] = "none"
    slow_ms: int = Field(default=0, ge=0, le=120_000)


class Target(_Strict):
    provider: ProviderKind
    model: _Name
    endpoint: str | None = Field(default=None, description='A topology ref ("endpoint:generation") for sagemaker.')
    base_url: str | None = Field(default=None, description="The OpenAI-compatible server's base URL (.../v1).")
    secret: str | None = Field(default=None, description="The secret holding the OpenAI-compatible key.")
    region: str | None = None
    price_in_per_1k: float = Field(ge=0)
    price_out_per_1k: float = Field(ge=0)
    context_window: int = Field(ge=1, le=10_000_000)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    max_cost_per_request_usd: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=30.0, gt=0, le=900)
    fault: Fault = Field(default_factory=Fault)

    @model_validator(mode="after")
    def _provider_needs(self) -> Target:
        if self.provider == "sagemaker" and not (self.endpoint and self.endpoint.startswith("endpoint:")):
            raise ValueError('a sagemaker target needs endpoint, a topology ref such as "endpoint:generation"')
        if self.provider == "openai" and not self.base_url:
            raise ValueError("an openai target needs base_url")
        return self

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in_per_1k + completion_tokens * self.price_out_per_1k) / 1000


class Route(_Strict):
    task: Literal["chat", "tool_use", "summarize", "classify", "judge", "embed"]
    tier: Annotated[str, Field(min_length=1, max_length=64)] = "*"
    targets: list[_Name] = Field(min_length=1, max_length=16)
    # "cheapest": the capable targets by the call's maximum cost, cheapest first (the listed order breaks ties);
    # "listed": exactly the listed order (a route that prefers quality, e.g. a premium tier or the judge).
    order: Literal["cheapest", "listed"] = "cheapest"


class Retry(_Strict):
    max_attempts: int = Field(default=3, ge=1, le=10)
    base_ms: int = Field(default=50, ge=0, le=60_000)
    max_ms: int = Field(default=2000, ge=0, le=120_000)


class Breaker(_Strict):
    window_s: int = Field(default=60, ge=1, le=3600)
    bucket_s: int = Field(default=10, ge=1, le=600)
    min_calls: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    cool_down_s: float = Field(default=30, gt=0, le=3600)


class Cache(_Strict):
    ttl_s: int = Field(default=3600, ge=0, le=30 * 86400)
    semantic: bool = True
    semantic_threshold: float = Field(default=0.88, gt=0, le=1)
    semantic_max_entries: int = Field(default=200, ge=0, le=5000)
    cache_tools: bool = False
    cache_temperature: bool = False


class BudgetLimit(_Strict):
    tokens: int = Field(ge=0)
    usd: float = Field(ge=0)


class Budgets(_Strict):
    period: Literal["day", "month"] = "month"
    tokens: int = Field(default=2_000_000, ge=0)
    usd: float = Field(default=50.0, ge=0)
    tiers: dict[str, BudgetLimit] = Field(default_factory=dict)

    def limit(self, tier: str) -> BudgetLimit:
        return self.tiers.get(tier) or BudgetLimit(tokens=self.tokens, usd=self.usd)


class Policy(_Strict):
    # Editors validate the file against policies/llm_gateway.schema.json (this model's JSON Schema).
    schema_ref: str | None = Field(default=None, alias="$schema")
    version: int = Field(ge=1)
    description: str | None = None
    targets: dict[_Name, Target] = Field(min_length=1)
    routes: list[Route] = Field(min_length=1)
    retry: Retry = Field(default_factory=Retry)
    breaker: Breaker = Field(default_factory=Breaker)
    cache: Cache = Field(default_factory=Cache)
    budgets: Budgets = Field(default_factory=Budgets)

    @model_validator(mode="after")
    def _routes_name_targets(self) -> Policy:
        for i, route in enumerate(self.routes):
            for j, name in enumerate(route.targets):
                if name not in self.targets:
                    raise _UnknownTarget(("routes", i, "targets", j), f"route target {name!r} is not in targets")
        return self

    def route(self, task: str, tier: str) -> Route | None:
        """The task's route for the tier: the tier's own route, else the task's "*" route."""
        exact = next((r for r in self.routes if r.task == task and r.tier == tier), None)
        wildcard = next((r for r in self.routes if r.task == task and r.tier == "*"), None)
        return exact or wildcard


class _UnknownTarget(ValueError):
    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def parse_policy(document: Any, source: str) -> Policy:
    """The policy in `document` (JSON text or parsed), or ConfigurationError naming each bad field."""
    try:
        data = json.loads(document) if isinstance(document, str | bytes) else document
    except ValueError as exc:
        raise ConfigurationError(f"the LLM policy at {source} is not JSON: {exc}", source=source) from exc
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            cause = (e.get("ctx") or {}).get("error")
            loc = cause.loc if isinstance(cause, _UnknownTarget) else tuple(e["loc"])
            errors.append(FieldError(loc=loc, message=e["msg"], type=e["type"]))
        named = ", ".join(".".join(str(p) for p in err.loc) for err in errors)
        detail = f"the LLM policy at {source} is invalid: {named}"
        raise ConfigurationError(detail, errors=errors, source=source) from exc


class FilePolicySource:
    """The policy in a file, re-read when its mtime changes (looked at every `check_s` at most), so a fault
    switch edited on a running stack takes effect within about a second."""

    def __init__(self, path: Path, *, check_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._check_s = check_s
        self._clock = clock
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._mtime: int | None = None
        self._checked = float("-inf")

    def get(self) -> Policy:
        now = self._clock()
        if self._policy is not None and now - self._checked < self._check_s:
            return self._policy
        with self._lock:
            try:
                mtime = self._path.stat().st_mtime_ns
            except OSError as exc:
                detail = f"cannot read the LLM policy {self._path}: {exc}"
                raise ConfigurationError(detail, path=str(self._path)) from exc
            if self._policy is None or mtime != self._mtime:
                self._policy = parse_policy(self._path.read_text(encoding="utf-8"), str(self._path))
                self._mtime = mtime
            self._checked = now
            return self._policy


class SsmPolicySource:
    """The policy in an SSM parameter (String), cached per container for `ttl_s`."""

    def __init__(
        self, name: str, client: Any, *, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._name = name
        self._ssm = client
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._loaded = float("-inf")

    def get(self) -> Policy:
        now = self._clock()
        if self._policy is not None and now - self._loaded < self._ttl_s:
            return self._policy
        with self._lock:
            from agentplatform.adapters.aws.errors import aws_call

            with aws_call(f"parameter {self._name}"):
                value = self._ssm.get_parameter(Name=self._name)["Parameter"]["Value"]
            self._policy = parse_policy(value, f"ssm:{self._name}")
            self._loaded = now
            return self._policy


class StaticPolicySource:
    """A policy held in memory (tests, benchmarks)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def get(self) -> Policy:
        return self.policy
