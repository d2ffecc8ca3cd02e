"""The LLM gateway: one call shape for every model.

Per chat call: the policy's route for (task, tier) or the pinned target -> targets that cannot serve the call are
skipped with the reason (a missing capability, a context window too small, a cost ceiling too low) -> the cache
(exact, then semantic) -> the tenant's budget reserves the call's maximum cost -> each target in order: skipped
at once while its breaker is open, else called with retries (exponential backoff, full jitter) on retryable
errors only, then the next target -> the budget settles to the real cost, the answer is cached, one usage record
and the call's metrics are written. When every target failed or was skipped: UpstreamUnavailable with the soonest
time a breaker half-opens.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from agentplatform.budget import MICRO, Budget, Limit, Reservation
from agentplatform.errors import (
    ConfigurationError,
    DependencyUnavailable,
    FieldError,
    ModelInputRejected,
    PlatformError,
    UpstreamThrottled,
    UpstreamUnavailable,
    ValidationFailed,
)
from agentplatform.inference import ChatResponse, Usage, estimate_tokens
from agentplatform.llm import ChatAnswer, ChatCall, EmbedAnswer, EmbedCall, GatewayInfo, UsageReport
from agentplatform.observability import correlation_id
from agentplatform.ports import LlmProvider
from agentplatform.usage import UsageLedger, UsageRecord
from functions.llm_gateway.breaker import Breakers
from functions.llm_gateway.cache import AnswerCache, bypass_reason
from functions.llm_gateway.policy import Policy, Route, Target

log = logging.getLogger("llm_gateway")

# Time kept back from the caller's remaining time: enough to settle the budget, write the record and answer.
SAFETY_MARGIN_MS = 750
_RETRYABLE = (UpstreamThrottled, DependencyUnavailable)

ProviderFor = Callable[[str, Target], LlmProvider]
Emit = Callable[[dict[str, Any]], None]


class PolicySource:
    def get(self) -> Policy: ...


@dataclass
class _Attempts:
    """What happened on the way to an answer: for GatewayInfo, the usage record and the metrics."""

    started: float
    calls: int = 0
    provider_s: float = 0.0
    skipped: list[str] = field(default_factory=list)
    reopen_s: list[float] = field(default_factory=list)


class LlmGateway:
    def __init__(
        self,
        policy_source: PolicySource,
        providers: ProviderFor,
        breakers: Breakers,
        budget: Budget,
        cache: AnswerCache | None,
        ledger: UsageLedger | None,
        clock: Callable[[], float] = time.perf_counter,
        *,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
        emit: Emit | None = None,
    ) -> None:
        self._policy = policy_source
        self._providers = providers
        self._breakers = breakers
        self._budget = budget
        self._cache = cache
        self._ledger = ledger
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._emit = emit

    # -- chat ----------------------------------------------------------------------------------------------------
    def chat(self, call: ChatCall, remaining_ms: int | None = None) -> ChatAnswer:
        run = _Attempts(started=self._clock())
        policy = self._policy.get()
        deadline = self._deadline(run.started, remaining_ms, call.deadline_ms)
        prompt_tokens = _prompt_tokens(call)
        route = self._route(policy, call.task, call.tier, call.model)
        candidates = self._eligible(policy, route.targets, call, prompt_tokens, run.skipped)
        if route.order == "cheapest":  # stable: the listed order breaks ties
            candidates.sort(key=lambda named: named[1].cost_usd(prompt_tokens, call.max_tokens))

        bypass = bypass_reason(call, policy.cache) if self._cache else "off"
        question = None
        if bypass is None and self._cache is not None and candidates:
            question = self._cache.embed_question(call, policy.cache)
            hit = self._cache.lookup(call, [n for n, _ in candidates], policy.cache, question)
            if hit is not None:
                return self._cached(call, policy, hit, run)

        limit = _limit(policy, call.tier)
        most = max((t.cost_usd(prompt_tokens, call.max_tokens) for _, t in candidates), default=0.0)
        reservation = self._reserve(call.tenant, call.task, prompt_tokens + call.max_tokens, most, limit, run)
        try:
            name, target, response = self._first_answer(policy, candidates, run, deadline, call=call)
        except BaseException as exc:
            self._budget.settle(reservation, 0, 0)
            self._account(call.tenant, call.task, None, None, None, "bypass", exc, run, reservation.period)
            raise
        usage = response.usage
        cost = target.cost_usd(usage.prompt_tokens, usage.completion_tokens)
        self._budget.settle(reservation, usage.total_tokens, round(cost * MICRO))
        choice = response.choices[0]
        body = {"message": choice.message.model_dump(mode="json"), "finish_reason": choice.finish_reason}
        body["usage"] = usage.model_dump()
        outcome = "bypass" if bypass else "miss"
        if bypass is None and self._cache is not None and choice.finish_reason != "length":
            try:
                names_only = [n for n, _ in candidates]
                self._cache.store(call, names_only, name, target.provider, body, policy.cache, question)
            except PlatformError as exc:  # an answer is worth more than its cache entry
                log.warning("cache store failed", extra={"error": exc.code})
        info = self._info(policy, name, target.provider, outcome, run, cost)
        self._account(
            call.tenant, call.task, name, target.provider, usage, outcome, None, run, reservation.period, cost, limit
        )
        return ChatAnswer(message=choice.message, finish_reason=choice.finish_reason, usage=usage, gateway=info)

    # -- embeddings ----------------------------------------------------------------------------------------------
    def embed(self, call: EmbedCall, remaining_ms: int | None = None) -> EmbedAnswer:
        run = _Attempts(started=self._clock())
        policy = self._policy.get()
        deadline = self._deadline(run.started, remaining_ms, call.deadline_ms)
        route = self._route(policy, "embed", call.tier, call.model)
        candidates = []
        for name in route.targets:
            target = policy.targets[name]
            if not target.capabilities.embed:
                run.skipped.append(f"{name}: cannot embed")
            else:
                candidates.append((name, target))
        tokens = sum(estimate_tokens(t) for t in call.texts)
        if route.order == "cheapest":
            candidates.sort(key=lambda named: named[1].cost_usd(tokens, 0))
        most = max((t.cost_usd(tokens, 0) for _, t in candidates), default=0.0)
        limit = _limit(policy, call.tier)
        reservation = self._reserve(call.tenant, "embed", tokens, most, limit, run)
        try:
            name, target, (vectors, usage) = self._first_answer(policy, candidates, run, deadline, texts=call.texts)
        except BaseException as exc:
            self._budget.settle(reservation, 0, 0)
            self._account(call.tenant, "embed", None, None, None, "bypass", exc, run, reservation.period)
            raise
        cost = target.cost_usd(usage.prompt_tokens, 0)
        self._budget.settle(reservation, usage.total_tokens, round(cost * MICRO))
        self._account(
            call.tenant, "embed", name, target.provider, usage, "bypass", None, run, reservation.period, cost, limit
        )
        info = self._info(policy, name, target.provider, "bypass", run, cost)
        return EmbedAnswer(vectors=vectors, usage=usage, gateway=info)

    # -- usage ---------------------------------------------------------------------------------------------------
    def usage(self, tenant: str, tier: str = "standard") -> UsageReport:
        """The tenant's usage this period, summed from the records, and what its budget (the policy's) has left."""
        if self._ledger is None:
            raise ConfigurationError("the gateway keeps no usage ledger")
        return self._ledger.report(tenant, self._budget, _limit(self._policy.get(), tier))

    # -- routing -------------------------------------------------------------------------------------------------
    @staticmethod
    def _route(policy: Policy, task: str, tier: str, model: str | None) -> Route:
        if model is not None:
            if model not in policy.targets:
                known = ", ".join(sorted(policy.targets))
                raise ValidationFailed(
                    f"unknown model {model!r}",
                    errors=[FieldError(("model",), f"not a model of this platform; one of: {known}", "unknown_model")],
                )
            return Route(task=task, targets=[model], order="listed")
        route = policy.route(task, tier)
        if route is None:
            raise ConfigurationError(f"the LLM policy has no route for task {task!r}", task=task)
        return route

    @staticmethod
    def _eligible(
        policy: Policy, names: list[str], call: ChatCall, prompt_tokens: int, skipped: list[str]
    ) -> list[tuple[str, Target]]:
        out = []
        for name in names:
            target = policy.targets[name]
            caps = target.capabilities
            why = None
            if caps.embed and not (caps.tools or caps.json_output):
                why = "an embedding model"
            elif call.needs_tools and not caps.tools:
                why = "no tools capability"
            elif call.needs_json and not caps.json_output:
                why = "no json capability"
            elif caps.needs_passages and not call.passages:
                why = "needs passages"
            elif caps.needs_passages and call.needs_tools:
                why = "answers from passages only, no tools"
            elif prompt_tokens + call.max_tokens > target.context_window:
                why = f"context window {target.context_window} < {prompt_tokens + call.max_tokens} tokens"
            elif (
                target.max_cost_per_request_usd is not None
                and target.cost_usd(prompt_tokens, call.max_tokens) > target.max_cost_per_request_usd
            ):
                why = f"cost ceiling {target.max_cost_per_request_usd} USD"
            if why:
                skipped.append(f"{name}: {why}")
            else:
                out.append((name, target))
        return out

    def _first_answer(
        self,
        policy: Policy,
        candidates: list[tuple[str, Target]],
        run: _Attempts,
        deadline: float | None,
        *,
        call: ChatCall | None = None,
        texts: list[str] | None = None,
    ) -> tuple[str, Target, Any]:
        for name, target in candidates:
            permit = self._breakers.allow(name, policy.breaker)
            if not permit.allowed:
                run.skipped.append(f"{name}: breaker open")
                run.reopen_s.append(permit.retry_after_s)
                continue
            try:
                provider = self._providers(name, target)
                result = self._with_retries(policy, name, target, provider, run, deadline, call, texts)
            except ModelInputRejected:
                # The caller's input, not the target's health: no fallback, no breaker count.
                if permit.probe:
                    self._breakers.record(name, permit, True, policy.breaker)
                raise
            except PlatformError as exc:
                self._breakers.record(name, permit, False, policy.breaker)
                run.skipped.append(f"{name}: {exc.code}")
                if isinstance(exc, _Expired):
                    break
                continue
            self._breakers.record(name, permit, True, policy.breaker)
            return name, target, result
        retry_after = math.ceil(min(run.reopen_s)) if run.reopen_s else 2
        raise UpstreamUnavailable(
            "no model target could answer: " + "; ".join(run.skipped), retry_after_s=max(1, retry_after)
        )

    def _with_retries(
        self,
        policy: Policy,
        name: str,
        target: Target,
        provider: LlmProvider,
        run: _Attempts,
        deadline: float | None,
        call: ChatCall | None,
        texts: list[str] | None,
    ) -> Any:
        def attempt() -> Any:
            timeout_s = target.timeout_s
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    raise _Expired(f"no time left for {name}")
                timeout_s = min(timeout_s, left)
            run.calls += 1
            began = self._clock()
            try:
                return self._call(target, provider, timeout_s, call, texts)
            finally:
                run.provider_s += self._clock() - began

        retry = policy.retry
        retrying = Retrying(
            stop=stop_after_attempt(retry.max_attempts),
            wait=wait_random_exponential(multiplier=retry.base_ms / 1000, max=retry.max_ms / 1000),
            retry=retry_if_exception(_retryable),
            sleep=self._bounded_sleep(deadline),
            reraise=True,
        )
        return retrying(attempt)

    def _bounded_sleep(self, deadline: float | None) -> Callable[[float], None]:
        def sleep(seconds: float) -> None:
            if deadline is not None and self._clock() + seconds >= deadline:
                raise _Expired("no time left to back off")
            self._sleep(seconds)

        return sleep

    def _call(
        self, target: Target, provider: LlmProvider, timeout_s: float, call: ChatCall | None, texts: list[str] | None
    ) -> Any:
        fault = target.fault
        if fault.mode == "fail":
            raise DependencyUnavailable(f"fault switch: {target.model} fails", fault="fail")
        if fault.mode == "throttle":
            raise UpstreamThrottled(f"fault switch: {target.model} throttles", fault="throttle")
        if fault.mode == "slow":
            self._sleep(min(fault.slow_ms / 1000, timeout_s))
        if texts is not None:
            return provider.embed(texts, model=target.model, timeout_s=timeout_s)
        assert call is not None
        response = provider.chat(call, model=target.model, timeout_s=timeout_s)
        if not isinstance(response, ChatResponse):
            response = ChatResponse.model_validate(response)
        return response

    # -- budget, accounting --------------------------------------------------------------------------------------
    def _reserve(self, tenant: str, task: str, tokens: int, usd: float, limit: Limit, run: _Attempts) -> Reservation:
        try:
            return self._budget.reserve(tenant, tokens, math.ceil(usd * MICRO), limit)
        except PlatformError as exc:
            self._account(tenant, task, None, None, None, "bypass", exc, run, None)
            raise

    def _deadline(self, started: float, remaining_ms: int | None, deadline_ms: int | None) -> float | None:
        budgets = [ms for ms in (remaining_ms, deadline_ms) if ms is not None]
        if not budgets:
            return None
        return started + (min(budgets) - SAFETY_MARGIN_MS) / 1000

    def _cached(self, call: ChatCall, policy: Policy, hit: Any, run: _Attempts) -> ChatAnswer:
        info = self._info(policy, hit.target, hit.provider, hit.kind, run, 0.0)
        period = self._budget.spent_period()
        self._account(call.tenant, call.task, hit.target, hit.provider, None, hit.kind, None, run, period)
        return ChatAnswer.model_validate({**hit.answer, "gateway": info})

    def _info(self, policy: Policy, name: str, provider: str, cache: str, run: _Attempts, cost: float) -> GatewayInfo:
        latency = (self._clock() - run.started) * 1000
        return GatewayInfo(
            target=name,
            provider=provider,
            cache=cache,  # type: ignore[arg-type]
            attempts=run.calls,
            skipped=run.skipped,
            overhead_ms=round(max(0.0, latency - run.provider_s * 1000), 3),
            latency_ms=round(latency, 3),
            cost_usd=cost,
            policy_version=policy.version,
        )

    def _account(
        self,
        tenant: str,
        task: str,
        target: str | None,
        provider: str | None,
        usage: Usage | None,
        cache: str,
        error: BaseException | None,
        run: _Attempts,
        period: str | None,
        cost: float = 0.0,
        limit: Limit | None = None,
    ) -> None:
        latency_ms = round((self._clock() - run.started) * 1000)
        outcome = "ok" if error is None else getattr(error, "code", "internal_error")
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        if self._ledger is not None:
            record = UsageRecord(
                tenant=tenant,
                task=task,
                target=target or "-",
                provider=provider or "-",
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_usd_micro=round(cost * MICRO),
                latency_ms=latency_ms,
                cache=cache,
                outcome=outcome,
                correlation_id=correlation_id(),
                at=datetime.fromtimestamp(self._wall(), UTC).isoformat(timespec="milliseconds"),
            )
            try:
                self._ledger.record(record, period or self._budget.spent_period())
            except PlatformError as exc:  # the budget already holds the spend; a lost record is logged, not fatal
                log.error("usage record lost", extra={"error": exc.code, "tenant": tenant})
        log.info(
            "llm call",
            extra={
                "tenant": tenant,
                "task": task,
                "target": target,
                "cache": cache,
                "outcome": outcome,
                "attempts": run.calls,
                "latency_ms": latency_ms,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
            },
        )
        if self._emit is not None:
            values: dict[str, Any] = {
                "target": target or "-",
                "TokensIn": prompt,
                "TokensOut": completion,
                "CostMicroUsd": round(cost * MICRO),
                "LatencyMs": latency_ms,
                "CacheHit": 1 if cache in ("exact", "semantic") else 0,
                "Errors": 0 if error is None else 1,
            }
            if limit is not None:  # what the budget alarm watches (the highest share across tenants)
                try:
                    values["BudgetUsedPercent"] = self._budget.used_percent(tenant, limit)
                except PlatformError as exc:
                    log.warning("budget share not read", extra={"error": exc.code, "tenant": tenant})
            self._emit(values)


class _Expired(DependencyUnavailable):
    """The caller's remaining time ran out before the next attempt: stop, no further target can answer in time."""


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _RETRYABLE) and not isinstance(exc, _Expired)


def _limit(policy: Policy, tier: str) -> Limit:
    allowance = policy.budgets.limit(tier)
    return Limit.of(allowance.tokens, allowance.usd)


def _prompt_tokens(call: ChatCall) -> int:
    text = sum(estimate_tokens(m.content or "") + 4 for m in call.messages)
    tools = estimate_tokens(json.dumps([t.model_dump(mode="json") for t in call.tools])) if call.tools else 0
    passages = sum(estimate_tokens(p.text) + 8 for p in call.passages)
    return text + tools + passages
