"""The LLM gateway on the real local stack (moto DynamoDB and EventBridge, the embedding model, the real
handlers invoked as Lambda would): fallback, a breaker shared by two containers that opens, skips at once, half-
opens and recovers; budgets under parallel calls; tenant-scoped cache dropped by a Document Changed event; the
usage report equals the sum of the records.

Both chat targets are extractive answerers (the embedding model only: no generation model to load), so the
primary can be switched to fail and back by editing the policy file the running stack reads."""

from __future__ import annotations

import copy
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agentplatform.adapters.aws.functions import _raised
from agentplatform.bootstrap import Container
from agentplatform.budget import Budget, Limit
from agentplatform.config import get_settings
from agentplatform.errors import BudgetExceeded, ValidationFailed
from agentplatform.usage import UsageLedger
from functions.llm_gateway.breaker import Breakers
from functions.llm_gateway.policy import Breaker
from tests.integration.conftest import start_runtime, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COOL_DOWN_S = 3
EXTRACTIVE = {
    "provider": "extractive",
    "model": "extractive",
    "price_in_per_1k": 0.0,
    "price_out_per_1k": 0.0,
    "context_window": 16000,
    "capabilities": {"needs_passages": True},
    "timeout_s": 20,
}
POLICY: dict[str, Any] = {
    "version": 7,
    "targets": {
        "primary": {**EXTRACTIVE, "fault": {"mode": "fail"}},
        "secondary": EXTRACTIVE,
        "embedding": {
            "provider": "sagemaker",
            "model": "all-MiniLM-L6-v2",
            "endpoint": "endpoint:embedding",
            "price_in_per_1k": 0.0,
            "price_out_per_1k": 0.0,
            "context_window": 512,
            "capabilities": {"embed": True},
        },
    },
    "routes": [
        {"task": "chat", "targets": ["primary", "secondary"]},
        {"task": "embed", "targets": ["embedding"]},
    ],
    "retry": {"max_attempts": 2, "base_ms": 10, "max_ms": 50},
    "breaker": {"window_s": 60, "bucket_s": 10, "min_calls": 2, "failure_rate": 0.5, "cool_down_s": COOL_DOWN_S},
    "cache": {"ttl_s": 600, "semantic": True, "semantic_threshold": 0.95},
    "budgets": {"period": "month", "tokens": 1_000_000, "usd": 10.0, "tiers": {"tiny": {"tokens": 600, "usd": 1.0}}},
}
PASSAGE_TEXT = "Employees give 30 days of notice before leaving. The office opens at 9 am."


def passage(doc_id: str = "doc-hr", text: str = PASSAGE_TEXT) -> dict[str, Any]:
    citation = {"doc_id": doc_id, "doc_version": "v1", "path": "hr/policy.md", "title": "HR policy"}
    return {"ref": 1, "text": text, "citation": citation}


def chat(question: str = "How many days of notice do employees give?", **fields: Any) -> dict[str, Any]:
    return {
        "tenant": fields.pop("tenant", "acme"),
        "messages": [{"role": "user", "content": question}],
        "passages": fields.pop("passages", [passage()]),
        "max_tokens": 64,
        **fields,
    }


def write_policy(path: Path, policy: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(policy))
    tmp.replace(path)  # atomic: the running gateway never reads half a policy
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "llm_gateway.json"
    write_policy(path, POLICY)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LLM_POLICY_PATH", str(path))
        yield path


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, policy_file):
    rt = start_runtime(tmp_path_factory, LOCAL_MODELS="embedding")
    assert rt.model_server.wait_ready(), rt.model_server.health()
    yield rt
    rt.stop()


def invoke(rt, payload: dict[str, Any]) -> dict[str, Any]:
    failed, result = rt.invoke("llm_gateway", payload)
    if failed:
        raise _raised(result, "llm_gateway")
    return result


def test_fallback_then_the_shared_breaker_opens_skips_at_once_half_opens_and_recovers(runtime, policy_file):
    first = invoke(runtime, chat(cache="bypass"))
    assert first["gateway"]["target"] == "secondary", first["gateway"]
    assert "primary: dependency_unavailable" in first["gateway"]["skipped"]
    assert "30 days" in first["message"]["content"]
    invoke(runtime, chat(cache="bypass"))  # the second failing call: 2 of 2 calls failed, min_calls 2
    # A second container over the same table sees the breaker open.
    other = Breakers(Container(get_settings()).llm_state_table)
    settings = Breaker(**POLICY["breaker"])
    assert other.state("primary") == "open" and not other.allow("primary", settings).allowed
    began = time.monotonic()
    skipped = invoke(runtime, chat(cache="bypass"))
    assert "primary: breaker open" in skipped["gateway"]["skipped"]
    assert skipped["gateway"]["attempts"] == 1  # the primary was not tried at all
    assert time.monotonic() - began < 5

    healed = copy.deepcopy(POLICY)
    healed["targets"]["primary"]["fault"] = {"mode": "none"}
    write_policy(policy_file, healed)
    time.sleep(COOL_DOWN_S + 0.6)  # the cool-down, and the policy file's re-read
    probe = invoke(runtime, chat(cache="bypass"))
    assert probe["gateway"]["target"] == "primary", probe["gateway"]
    assert other.state("primary") == "closed"
    write_policy(policy_file, POLICY)


def test_twenty_parallel_calls_cannot_overshoot_the_budget_and_another_tenant_is_unaffected(runtime):
    def one(i: int) -> Any:
        try:
            return invoke(runtime, chat(f"Question {i}: the notice?", tenant="tight", tier="tiny", cache="bypass"))
        except BudgetExceeded as exc:
            return exc

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    answered = [r for r in results if isinstance(r, dict)]
    assert refused and answered, results
    assert all(r.status == 429 and r.retry_after_s > 0 for r in refused)  # Retry-After crossed the Lambda hop
    budget = Budget(Container(get_settings()).limits_table, "month")
    spent = budget.spent("tight")
    reservation = max(r["usage"]["total_tokens"] for r in answered)
    assert spent.tokens <= 600 + 64 + reservation
    assert invoke(runtime, chat(tenant="roomy", tier="tiny"))["gateway"]["target"] == "secondary"


def test_reservations_racing_on_dynamodb_never_pass_the_limit(runtime):
    """20 threads reserving at once against the stack's DynamoDB table (moto): the conditional ADD refuses all
    that would pass the limit, whatever the interleaving."""
    budget = Budget(Container(get_settings()).limits_table, "month")
    limit = Limit(tokens=1000, usd_micro=None)

    def reserve(_: int) -> bool:
        try:
            budget.reserve("racing", 130, 0, limit)
            return True
        except BudgetExceeded:
            return False

    with ThreadPoolExecutor(max_workers=20) as pool:
        granted = sum(pool.map(reserve, range(20)))
    assert granted == 7 and budget.spent("racing").tokens == 910


def test_two_tenants_never_share_a_cache_entry_and_a_changed_document_drops_it(runtime):
    question = "When does the office open?"
    acme = invoke(runtime, chat(question, passages=[passage("doc-open")]))
    assert acme["gateway"]["cache"] == "miss"
    assert invoke(runtime, chat(question, passages=[passage("doc-open")]))["gateway"]["cache"] == "exact"
    globex = invoke(runtime, chat(question, tenant="globex", passages=[passage("doc-open")]))
    assert globex["gateway"]["cache"] == "miss"

    events = runtime.client("events")
    bus = runtime.provisioned.value("bus:platform", "name")
    entry = {
        "Source": "agentplatform.ingestion",
        "DetailType": "Document Changed",
        "Detail": json.dumps({"tenant": "acme", "doc_id": "doc-open", "change": "indexed"}),
        "EventBusName": bus,
    }
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    wait_for(lambda: runtime.router.invocations.get("llm_cache_invalidate"), timeout_s=20)
    wait_for(
        lambda: (
            invoke(runtime, chat(question, passages=[passage("doc-open")], cache="default"))["gateway"]["cache"]
            == "miss"
        ),
        timeout_s=20,
    )
    # globex's entry for the same document id is its own: acme's event did not touch it.
    assert (
        invoke(runtime, chat(question, tenant="globex", passages=[passage("doc-open")]))["gateway"]["cache"] == "exact"
    )


def test_a_reingested_document_drops_the_cached_answers_citing_it(runtime):
    """End to end: a file changed in the drop folder -> ingestion's finalize publishes Document Changed -> the
    rule invokes llm_cache_invalidate -> the answer that cited the document is not served from the cache."""
    from agentplatform.bootstrap import container
    from agentplatform.documents import DocumentStatus, document_id

    doc = document_id("acme", "hr/leave.md")
    question = "How many days of notice do employees give?"
    assert invoke(runtime, chat(question, passages=[passage(doc)]))["gateway"]["cache"] == "miss"
    assert invoke(runtime, chat(question, passages=[passage(doc)]))["gateway"]["cache"] == "exact"
    before = runtime.router.invocations.get("llm_cache_invalidate", 0)
    path = runtime.settings.drop_dir / "acme" / "hr" / "leave.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Leave\n\nEmployees give 30 days of notice before leaving.\n")
    wait_for(lambda: (r := container().registry.get("acme", doc)) and r.status == DocumentStatus.INDEXED, 120)
    wait_for(lambda: runtime.router.invocations.get("llm_cache_invalidate", 0) > before, timeout_s=30)
    wait_for(
        lambda: invoke(runtime, chat(question, passages=[passage(doc)]))["gateway"]["cache"] == "miss", timeout_s=20
    )


def test_the_usage_report_equals_the_sum_of_the_records(runtime):
    invoke(runtime, {"tenant": "ledger", "texts": ["one text", "another text"]})
    invoke(runtime, chat(tenant="ledger"))
    invoke(runtime, chat(tenant="ledger"))  # a cache hit
    with pytest.raises(ValidationFailed) as caught:
        invoke(runtime, chat(tenant="ledger", model="gpt-17"))
    assert [e.loc for e in caught.value.errors] == [("model",)]  # field errors cross the hop too
    c = Container(get_settings())
    budget = Budget(c.limits_table, "month")
    report = UsageLedger(c.llm_usage_table).report("ledger", budget, Limit.of(1_000_000, 10.0))
    records = UsageLedger(c.llm_usage_table).records("ledger", report.period)
    assert report.records == len(records) == 3
    assert report.tokens_used == sum(int(r["prompt_tokens"]) + int(r["completion_tokens"]) for r in records)
    assert sum(line.calls for line in report.lines) == 3
    assert {r["cache"] for r in records} == {"bypass", "miss", "exact"}
    assert report.tokens_left == 1_000_000 - budget.spent("ledger").tokens
