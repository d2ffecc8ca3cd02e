"""The gateway's routing policy: a versioned, declarative document (policies/llm_gateway.json locally, an SSM
parameter in AWS) naming the model targets, which tasks and tiers route to which targets in which order, and the
retry, breaker, cache and budget settings. Validated at load: a bad policy refuses to load with the field named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentplatform.policy_documents import parse_document

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


def _loc(error: dict[str, Any]) -> tuple[str | int, ...] | None:
    cause = (error.get("ctx") or {}).get("error")
    return cause.loc if isinstance(cause, _UnknownTarget) else None


def parse_policy(document: Any, source: str) -> Policy:
    """The policy in `document` (JSON text or parsed), or ConfigurationError naming each bad field."""
    return parse_document(document, Policy, what="LLM policy", source=source, loc_of=_loc)
