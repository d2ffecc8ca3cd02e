"""The LLM gateway's service over the memory fakes and scripted providers: routing, skips, retries, fallback,
fault switch, breakers, budget, accounting and cache, as a caller sees them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agentplatform.budget import Budget
from agentplatform.errors import (
    BudgetExceeded,
    DependencyUnavailable,
    ModelInputRejected,
    UpstreamThrottled,
    UpstreamUnavailable,
    ValidationFailed,
)
from agentplatform.llm import ChatCall, EmbedCall
from agentplatform.policy_documents import StaticPolicySource
from agentplatform.usage import UsageLedger
from functions.llm_gateway.breaker import Breakers
from functions.llm_gateway.cache import AnswerCache
from functions.llm_gateway.policy import parse_policy
from functions.llm_gateway.service import SAFETY_MARGIN_MS, LlmGateway
from tests.fakes import MemoryTable, ScriptedProvider

BASE_POLICY: dict[str, Any] = {
    "version": 3,
    "targets": {
        "quotes": {
            "provider": "extractive",
            "model": "extractive",
            "price_in_per_1k": 0,
            "price_out_per_1k": 0,
            "context_window": 16000,
            "capabilities": {"needs_passages": True},
        },
        "cheap": {
            "provider": "openai",
            "model": "cheap-1",
            "base_url": "http://cheap/v1",
            "price_in_per_1k": 0.001,
            "price_out_per_1k": 0.002,
            "context_window": 4000,
            "capabilities": {"tools": False, "json": False},
            "timeout_s": 20,
        },
        "strong": {
            "provider": "bedrock",
            "model": "strong-1",
            "price_in_per_1k": 0.01,
            "price_out_per_1k": 0.03,
            "context_window": 100000,
            "capabilities": {"tools": True, "json": True},
            "timeout_s": 5,
        },
        "embedder": {
            "provider": "sagemaker",
            "model": "mini",
            "endpoint": "endpoint:embedding",
            "price_in_per_1k": 0.0001,
            "price_out_per_1k": 0,
            "context_window": 512,
            "capabilities": {"embed": True},
        },
    },
    "routes": [
        {"task": "chat", "targets": ["quotes", "cheap", "strong"]},
        {"task": "chat", "tier": "premium", "targets": ["strong"]},
        {"task": "tool_use", "targets": ["cheap", "strong"]},
        {"task": "embed", "targets": ["embedder"]},
    ],
    "retry": {"max_attempts": 3, "base_ms": 100, "max_ms": 400},
    "breaker": {"window_s": 60, "bucket_s": 10, "min_calls": 3, "failure_rate": 0.5, "cool_down_s": 30},
    "cache": {"ttl_s": 600, "semantic": True, "semantic_threshold": 0.9},
    "budgets": {"period": "month", "tokens": 100000, "usd": 10.0, "tiers": {"free": {"tokens": 1000, "usd": 1.0}}},
}


class Clock:
    """Wall and monotonic time in one, advanced by the gateway's sleeps."""

    def __init__(self, now: float = 1_796_083_200.0) -> None:  # 2026-12-01T00:00Z
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FixedEmbeddings:
    """An embedding model whose vectors a test chooses per text; any other text gets its own random direction
    (in 64 dimensions two of them are near orthogonal)."""

    dimension = 64

    def __init__(self, vectors: dict[str, list[float]] | None = None) -> None:
        self.vectors = vectors or {}
        self.calls = 0

    def embed(self, texts: list[str]) -> list[list[float]]:
        import hashlib

        import numpy as np

        self.calls += 1
        out = []
        for t in texts:
            if t in self.vectors:
                v = np.zeros(self.dimension)
                v[: len(self.vectors[t])] = self.vectors[t]
            else:
                v = np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(
                    size=self.dimension
                )
            out.append((v / np.linalg.norm(v)).tolist())
        return out


def policy_with(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    for path, value in changes.items():
        node = doc
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return doc


class Rig:
    def __init__(self, policy: dict[str, Any] | None = None, embeddings: Any = None, **scripts: list[Any]) -> None:
        self.clock = Clock()
        self.policy = StaticPolicySource(parse_policy(policy or BASE_POLICY, "test"))
        self.providers = {name: ScriptedProvider(name, scripts.get(name)) for name in BASE_POLICY["targets"]}
        self.state, self.cache_table, self.usage, self.limits = (
            MemoryTable(),
            MemoryTable(),
            MemoryTable(),
            MemoryTable(),
        )
        self.budget = Budget(self.limits, "month", self.clock)
        self.ledger = UsageLedger(self.usage)
        self.embeddings = embeddings or FixedEmbeddings()
        self.metrics: list[dict[str, Any]] = []
        self.gateway = LlmGateway(
            self.policy,
            lambda name, target: self.providers[name],
            Breakers(self.state, self.clock),
            self.budget,
            AnswerCache(self.cache_table, self.embeddings, self.clock),
            self.ledger,
            self.clock,
            sleep=self.clock.sleep,
            wall=self.clock,
            emit=self.metrics.append,
        )

    def chat(self, remaining_ms: int | None = 30_000, **fields: Any) -> Any:
        fields.setdefault("tenant", "acme")
        fields.setdefault("messages", [{"role": "user", "content": "What is the notice period?"}])
        return self.gateway.chat(ChatCall.model_validate(fields), remaining_ms)

    def calls(self, name: str) -> int:
        return len(self.providers[name].calls)


def passage(doc_id: str = "doc-1", text: str = "The notice period is 30 days.") -> dict[str, Any]:
    return {
        "ref": 1,
        "text": text,
        "citation": {"doc_id": doc_id, "doc_version": "v1", "path": "hr/policy.md", "title": "HR policy"},
    }


def test_the_cheapest_capable_target_answers_and_the_answer_says_what_the_gateway_did():
    rig = Rig()
    answer = rig.chat()
    assert answer.message.content == "echo: What is the notice period?"
    g = answer.gateway
    assert (g.target, g.provider, g.cache, g.attempts, g.policy_version) == ("cheap", "openai", "miss", 1, 3)
    assert g.skipped == ["quotes: needs passages"]  # no passages: the extractive answerer cannot answer
    assert g.cost_usd == pytest.approx((10 * 0.001 + 5 * 0.002) / 1000)
    assert g.overhead_ms >= 0 and g.latency_ms >= g.overhead_ms
    assert rig.calls("quotes") == 0


def test_the_cheapest_capable_target_goes_first_whatever_the_listed_order():
    listed_dear_first = [{"task": "chat", "targets": ["strong", "cheap"]}]
    assert Rig(policy_with(routes=listed_dear_first)).chat().gateway.target == "cheap"
    # A route that prefers quality says so: its listed order stands.
    preferred = [{"task": "chat", "targets": ["strong", "cheap"], "order": "listed"}]
    assert Rig(policy_with(routes=preferred)).chat().gateway.target == "strong"


def test_passages_let_the_extractive_target_answer_first():
    rig = Rig()
    assert rig.chat(passages=[passage()]).gateway.target == "quotes"


def test_a_call_needing_tools_or_json_skips_targets_without_them():
    rig = Rig()
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    answer = rig.chat(task="tool_use", tools=tools)
    assert answer.gateway.target == "strong" and answer.gateway.skipped == ["cheap: no tools capability"]
    answer = rig.chat(response_format={"type": "json_object"}, passages=[passage()])
    assert answer.gateway.target == "strong"
    assert answer.gateway.skipped == ["quotes: no json capability", "cheap: no json capability"]
    assert rig.calls("cheap") == 0


def test_a_prompt_over_a_context_window_or_cost_ceiling_skips_that_target():
    rig = Rig()
    long_question = "word " * 16_000  # ~20k tokens: over cheap's 4k window
    answer = rig.chat(messages=[{"role": "user", "content": long_question}])
    assert answer.gateway.target == "strong" and answer.gateway.skipped[1].startswith("cheap: context window 4000")
    rig = Rig(policy_with(targets__cheap__max_cost_per_request_usd=0.0001))
    answer = rig.chat(max_tokens=1000)  # up to 1000 * 0.002 / 1000 = 0.002 USD > the 0.0001 ceiling
    assert answer.gateway.target == "strong" and "cheap: cost ceiling 0.0001 USD" in answer.gateway.skipped


def test_a_pinned_model_must_be_a_target_and_routes_only_there():
    rig = Rig()
    assert rig.chat(model="strong").gateway.target == "strong"
    with pytest.raises(ValidationFailed) as caught:
        rig.chat(model="gpt-17")
    assert [e.loc for e in caught.value.errors] == [("model",)]


def test_tier_routes_override_the_wildcard():
    assert Rig().chat(tier="premium").gateway.target == "strong"


def test_retryable_errors_are_retried_with_full_jitter_then_answer():
    rig = Rig(cheap=[UpstreamThrottled("slow down"), DependencyUnavailable("503")])
    answer = rig.chat()
    assert answer.gateway.target == "cheap" and answer.gateway.attempts == 3
    # Full jitter: each wait is uniform in [0, min(max, base * 2^n)].
    assert len(rig.clock.slept) == 2
    assert 0 <= rig.clock.slept[0] <= 0.2 and 0 <= rig.clock.slept[1] <= 0.4


def test_a_rejected_input_is_the_callers_fault_never_retried_nor_passed_on():
    rig = Rig(cheap=[ModelInputRejected("too long")])
    with pytest.raises(ModelInputRejected):
        rig.chat()
    assert rig.calls("cheap") == 1 and rig.calls("strong") == 0 and rig.clock.slept == []
    records = rig.ledger.records("acme", "2026-12")
    assert [r["outcome"] for r in records] == ["model_input_rejected"]


def test_a_target_failing_every_attempt_falls_back_to_the_next():
    rig = Rig(cheap=[DependencyUnavailable("down")] * 3)
    answer = rig.chat()
    assert answer.gateway.target == "strong" and answer.gateway.attempts == 4
    assert answer.gateway.skipped == ["quotes: needs passages", "cheap: dependency_unavailable"]
    assert rig.calls("cheap") == 3


def test_invalid_output_falls_back_without_retrying():
    from agentplatform.errors import ModelOutputInvalid

    rig = Rig(cheap=[ModelOutputInvalid("not json")])
    assert rig.chat().gateway.target == "strong" and rig.calls("cheap") == 1


def test_fault_switch_fails_throttles_or_slows_a_target_without_touching_the_provider():
    rig = Rig(policy_with(targets__cheap__fault={"mode": "fail"}))
    answer = rig.chat()
    assert answer.gateway.target == "strong" and rig.calls("cheap") == 0 and answer.gateway.attempts == 4
    rig = Rig(policy_with(targets__cheap__fault={"mode": "throttle"}))
    assert rig.chat().gateway.target == "strong" and rig.calls("cheap") == 0
    rig = Rig(policy_with(targets__cheap__fault={"mode": "slow", "slow_ms": 1500}))
    answer = rig.chat()
    assert answer.gateway.target == "cheap" and rig.clock.slept == [1.5]
    assert answer.gateway.overhead_ms < answer.gateway.latency_ms  # the slow provider is not the gateway's time


def test_the_timeout_is_the_targets_or_the_callers_remaining_time_whichever_is_less():
    rig = Rig()
    rig.chat(remaining_ms=60_000)
    assert rig.providers["cheap"].calls[-1][2] == 20  # the target's own timeout_s
    rig.chat(remaining_ms=5_000, cache="bypass")
    assert rig.providers["cheap"].calls[-1][2] == pytest.approx((5_000 - SAFETY_MARGIN_MS) / 1000)
    with pytest.raises(UpstreamUnavailable):
        rig.chat(remaining_ms=SAFETY_MARGIN_MS, cache="bypass")  # no time left: no call at all
    assert len(rig.providers["cheap"].calls) == 2


def test_the_breaker_opens_after_the_configured_failures_and_then_skips_the_target_at_once():
    rig = Rig(policy_with(retry={"max_attempts": 1}), cheap=[DependencyUnavailable("down")] * 3)
    for _ in range(3):
        assert rig.chat(cache="bypass").gateway.target == "strong"
    assert rig.gateway._breakers.state("cheap") == "open"
    answer = rig.chat(cache="bypass")
    assert answer.gateway.target == "strong" and "cheap: breaker open" in answer.gateway.skipped
    assert rig.calls("cheap") == 3  # skipped without a call
    rig.clock.now += 31  # past the cool-down: one probe; the provider answers again
    assert rig.chat(cache="bypass").gateway.target == "cheap"
    assert rig.gateway._breakers.state("cheap") == "closed"


def test_all_targets_down_is_upstream_unavailable_with_the_soonest_half_open():
    rig = Rig(
        policy_with(retry={"max_attempts": 1}),
        cheap=[DependencyUnavailable("x")] * 3,
        strong=[DependencyUnavailable("y")] * 3,
    )
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            rig.chat(cache="bypass")
    rig.clock.now += 10
    with pytest.raises(UpstreamUnavailable) as caught:
        rig.chat(cache="bypass")
    assert caught.value.retry_after_s == 20 and caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "20"}


def test_the_budget_reserves_the_maximum_and_settles_to_the_real_cost():
    rig = Rig()
    rig.chat()
    spent = rig.budget.spent("acme")
    assert spent.tokens == 15 and spent.usd_micro == round((10 * 0.001 + 5 * 0.002) / 1000 * 1e6)


def test_each_call_reports_the_share_of_the_budget_spent_for_the_budget_alarm():
    rig = Rig()
    rig.chat(tier="free")  # 15 of the free tier's 1,000 tokens; its cost is a far smaller share of $1
    rig.chat(tier="free", cache="bypass")
    assert [m["BudgetUsedPercent"] for m in rig.metrics] == [1.5, 3.0]


def test_over_budget_is_refused_before_any_call_with_the_period_end():
    rig = Rig()
    with pytest.raises(BudgetExceeded) as caught:
        rig.chat(tier="free", max_tokens=1001)  # the free tier's 1000 tokens cannot cover it
    assert caught.value.status == 429 and caught.value.retry_after_s == 31 * 86400
    assert rig.calls("cheap") == 0
    assert rig.chat(tenant="globex", tier="free").gateway.target == "cheap"  # another tenant is unaffected


def test_the_usage_report_is_the_sum_of_the_records():
    rig = Rig(policy_with(retry={"max_attempts": 1}), cheap=[DependencyUnavailable("x")])
    rig.chat()  # strong answers after cheap fails
    rig.chat(messages=[{"role": "user", "content": "another question"}])  # cheap
    rig.chat()  # an exact cache hit: recorded, costs nothing
    rig.gateway.embed(EmbedCall(tenant="acme", texts=["a b c d e f g h"]), 30_000)
    report = rig.ledger.report("acme", rig.budget, _limit())
    records = rig.ledger.records("acme", report.period)
    assert report.records == len(records) == 4
    assert report.tokens_used == sum(int(r["prompt_tokens"]) + int(r["completion_tokens"]) for r in records)
    assert report.cost_used_usd == pytest.approx(sum(int(r["cost_usd_micro"]) for r in records) / 1e6)
    by = {(line.task, line.target): line.calls for line in report.lines}
    assert by == {("chat", "strong"): 2, ("chat", "cheap"): 1, ("embed", "embedder"): 1}
    assert report.tokens_left == 100000 - rig.budget.spent("acme").tokens
    assert {r["cache"] for r in records} == {"miss", "exact", "bypass"}
    assert len(rig.metrics) == 4 and sum(m["CacheHit"] for m in rig.metrics) == 1


def _limit():
    from agentplatform.budget import Limit

    return Limit.of(100000, 10.0)


def test_an_identical_call_is_an_exact_hit_for_its_tenant_only():
    rig = Rig()
    first = rig.chat()
    again = rig.chat(messages=[{"role": "user", "content": "  What is the   notice period? "}])
    assert again.gateway.cache == "exact" and again.message == first.message and again.gateway.attempts == 0
    other = rig.chat(tenant="globex")
    assert other.gateway.cache == "miss"
    assert rig.calls("cheap") == 2


def test_a_paraphrase_is_a_semantic_hit_above_the_threshold_only():
    embeddings = FixedEmbeddings(
        {
            "What is the notice period?": [1.0, 0.0, 0.0, 0.0],
            "How long is the notice period?": [0.95, 0.3122, 0.0, 0.0],  # cosine 0.95
            "What is the probation period?": [0.8, 0.6, 0.0, 0.0],  # cosine 0.8
        }
    )
    rig = Rig(embeddings=embeddings)
    rig.chat()
    hit = rig.chat(messages=[{"role": "user", "content": "How long is the notice period?"}])
    assert hit.gateway.cache == "semantic"
    miss = rig.chat(messages=[{"role": "user", "content": "What is the probation period?"}])
    assert miss.gateway.cache == "miss"
    other = rig.chat(tenant="globex", messages=[{"role": "user", "content": "How long is the notice period?"}])
    assert other.gateway.cache == "miss"


def test_the_cache_is_bypassed_for_tools_temperature_and_when_asked():
    rig = Rig()
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    for fields in ({"tools": tools, "task": "tool_use"}, {"temperature": 0.7}, {"cache": "bypass"}):
        assert rig.chat(**fields).gateway.cache == "bypass"
        assert rig.chat(**fields).gateway.cache == "bypass"
    assert rig.embeddings.calls == 0
    rig = Rig(policy_with(cache__cache_temperature=True))
    rig.chat(temperature=0.7)
    assert rig.chat(temperature=0.7).gateway.cache == "exact"


def test_a_changed_document_drops_the_entries_citing_it():
    rig = Rig()
    rig.chat(passages=[passage("doc-1")])
    rig.chat(messages=[{"role": "user", "content": "other"}], passages=[passage("doc-2")])
    assert rig.chat(passages=[passage("doc-1")]).gateway.cache == "exact"
    cache = AnswerCache(rig.cache_table, None, rig.clock)
    assert cache.invalidate_document("globex", "doc-1") == 0  # another tenant's event touches nothing
    assert cache.invalidate_document("acme", "doc-1") == 2  # the exact and the semantic entry
    assert rig.chat(passages=[passage("doc-1")]).gateway.cache == "miss"
    assert (
        rig.chat(messages=[{"role": "user", "content": "other"}], passages=[passage("doc-2")]).gateway.cache == "exact"
    )


def test_entries_expire_after_the_ttl():
    rig = Rig()
    rig.chat()
    rig.clock.now += 601
    assert rig.chat().gateway.cache == "miss"


def test_embeddings_route_to_the_embedding_target_and_are_accounted():
    rig = Rig()
    answer = rig.gateway.embed(EmbedCall(tenant="acme", texts=["one", "two"]), 30_000)
    assert len(answer.vectors) == 2 and answer.gateway.target == "embedder"
    assert rig.budget.spent("acme").tokens == answer.usage.total_tokens


def test_the_shipped_policies_load():
    root = Path(__file__).resolve().parents[2] / "policies"
    for name in ("llm_gateway.json", "llm_gateway.aws.json"):
        policy = parse_policy((root / name).read_text(), name)
        for route in policy.routes:
            assert all(t in policy.targets for t in route.targets)
    local = parse_policy((root / "llm_gateway.json").read_text(), "local")
    assert local.route("chat", "standard").targets == ["extractive", "local-generation"]
    assert local.route("tool_use", "free").targets == ["local-generation"]
    assert local.route("embed", "x").targets == ["local-embedding"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"routes": [{"task": "chat", "targets": ["nope"]}]}, "routes.0.targets.0"),
        (
            {
                "targets": {
                    "a": {
                        "provider": "sagemaker",
                        "model": "m",
                        "price_in_per_1k": 0,
                        "price_out_per_1k": 0,
                        "context_window": 1,
                    }
                }
            },
            "targets.a",
        ),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
        ({"surprise": 1}, "surprise"),
        ({"breaker": {"failure_rate": 2}}, "breaker.failure_rate"),
    ],
)
def test_a_bad_policy_refuses_to_load_naming_the_field(change, field):
    from agentplatform.errors import ConfigurationError

    doc = {**copy.deepcopy(BASE_POLICY), **change}
    with pytest.raises(ConfigurationError) as caught:
        parse_policy(json.dumps(doc), "test")
    assert field in [".".join(str(p) for p in e.loc) for e in caught.value.errors]


def test_a_one_word_swap_is_never_a_semantic_hit_however_close_its_embedding():
    embeddings = FixedEmbeddings(
        {
            "How do I enable two-factor authentication?": [1.0, 0.0],
            "How do I disable two-factor authentication?": [0.995, 0.0999],  # cosine 0.995, a different ask
            "What are the steps to switch on two-factor authentication for my account?": [0.99, 0.141],  # a paraphrase
        }
    )
    rig = Rig(embeddings=embeddings)
    rig.chat(messages=[{"role": "user", "content": "How do I enable two-factor authentication?"}])
    swapped = rig.chat(messages=[{"role": "user", "content": "How do I disable two-factor authentication?"}])
    assert swapped.gateway.cache == "miss"
    rephrased = rig.chat(
        messages=[
            {"role": "user", "content": "What are the steps to switch on two-factor authentication for my account?"}
        ]
    )
    assert rephrased.gateway.cache == "semantic"


def test_the_usage_report_uses_the_policys_limit_for_the_tier():
    rig = Rig()
    rig.chat(tier="free")
    report = rig.gateway.usage("acme", "free")
    assert report.tokens_limit == 1000 and report.tokens_left == 1000 - 15 and report.records == 1
    assert rig.gateway.usage("acme").tokens_limit == 100000


def test_the_policy_json_schema_is_the_models_and_the_shipped_policies_follow_it():
    import jsonschema

    from functions.llm_gateway.policy import Policy

    root = Path(__file__).resolve().parents[2] / "policies"
    schema = json.loads((root / "llm_gateway.schema.json").read_text())
    assert schema == json.loads(json.dumps(Policy.model_json_schema(by_alias=True))), "regenerate the schema file"
    for name in ("llm_gateway.json", "llm_gateway.aws.json"):
        jsonschema.validate(json.loads((root / name).read_text()), schema)
