"""The llm_gateway function's edge: parsing calls into typed errors, errors that keep their Retry-After and field
errors across the Lambda hop, and the Document Changed handler."""

from __future__ import annotations

import json

import pytest

from agentplatform.adapters.aws.functions import _raised, lambda_error_message
from agentplatform.errors import BudgetExceeded, FieldError, UpstreamUnavailable, ValidationFailed
from agentplatform.llm import ChatCall, EmbedCall
from functions.llm_gateway.handler import parse_call


def test_chat_and_embed_calls_are_told_apart_by_their_fields():
    assert isinstance(parse_call({"tenant": "acme", "texts": ["a"]}), EmbedCall)
    assert isinstance(parse_call({"tenant": "acme", "messages": [{"role": "user", "content": "hi"}]}), ChatCall)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"tenant": "acme", "messages": []}, "messages"),
        ({"tenant": "acme", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**9}, "max_tokens"),
        ({"tenant": "acme", "messages": [{"role": "user", "content": "hi"}], "surprise": 1}, "surprise"),
        ({"tenant": "acme", "texts": []}, "texts"),
    ],
)
def test_a_bad_call_is_validation_failed_naming_the_field(payload, field):
    with pytest.raises(ValidationFailed) as caught:
        parse_call(payload)
    assert field in [str(e.loc[0]) for e in caught.value.errors]


def _across(exc):
    """What a caller sees after Lambda carried the raised error back (errorType, errorMessage)."""
    exc.args = (lambda_error_message(exc),)
    payload = json.loads(json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}))
    return _raised(payload, "llm_gateway")


def test_retry_after_and_field_errors_survive_the_lambda_hop():
    budget = _across(BudgetExceeded("over budget", retry_after_s=3600))
    assert isinstance(budget, BudgetExceeded) and budget.retry_after_s == 3600 and budget.detail == "over budget"
    upstream = _across(UpstreamUnavailable("all down", retry_after_s=17))
    assert upstream.retry_after_s == 17 and upstream.headers == {"Retry-After": "17"}
    invalid = _across(ValidationFailed("bad", errors=[FieldError(("messages", 0, "content"), "required")]))
    assert invalid.errors == [FieldError(("messages", 0, "content"), "required")]
    plain = _raised({"errorType": "BudgetExceeded", "errorMessage": "no data"}, "f")
    assert plain.retry_after_s == 1 and plain.detail == "no data"  # an error without the data still crosses
    crash = _raised({"errorType": "KeyError", "errorMessage": "x"}, "f")
    assert crash.code == "dependency_unavailable"


def test_document_changed_drops_only_that_tenants_entries(fakes, lambda_context):
    from functions.llm_gateway.handler import document_changed
    from tests.fakes import MemoryTable

    table = MemoryTable()
    fakes.__dict__["llm_cache_table"] = table
    for tenant in ("acme", "globex"):
        table.put({"pk": f"x#{tenant}", "sk": "h1", "answer": "{}"})
        table.put({"pk": f"d#{tenant}#doc-1", "sk": f"x#{tenant}|h1"})
    event = {
        "detail-type": "Document Changed",
        "source": "agentplatform.ingestion",
        "detail": {"tenant": "acme", "doc_id": "doc-1"},
    }
    assert document_changed(event, lambda_context)["dropped"] == 1
    assert table.get({"pk": "x#acme", "sk": "h1"}) is None and table.get({"pk": "x#globex", "sk": "h1"}) is not None
    with pytest.raises(ValidationFailed):
        document_changed({"detail": {"tenant": "acme"}}, lambda_context)


def test_providers_are_built_once_per_target_and_a_missing_adapter_fails_only_its_target():
    from types import SimpleNamespace

    from agentplatform.errors import ConfigurationError
    from functions.llm_gateway.policy import Target
    from functions.llm_gateway.providers import Providers, endpoint_name
    from tests.fakes import ScriptedProvider

    built = []

    def scripted(target, c):
        built.append(target.model)
        return ScriptedProvider(target.model)

    def missing(target, c):
        from functions.llm_gateway.providers import _load

        return _load("agentplatform.adapters.no_such_adapter", "Provider")

    providers = Providers(SimpleNamespace(), {"openai": scripted, "bedrock": missing})
    target = Target(
        provider="openai", model="m1", base_url="http://x/v1", price_in_per_1k=0, price_out_per_1k=0, context_window=10
    )
    assert providers("a", target) is providers("a", target.model_copy(update={"fault": {"mode": "fail"}}))
    providers("a", target.model_copy(update={"model": "m2"}))  # a changed target is rebuilt
    assert built == ["m1", "m2"]
    bedrock = Target(provider="bedrock", model="b", price_in_per_1k=0, price_out_per_1k=0, context_window=10)
    with pytest.raises(ConfigurationError):
        providers("b", bedrock)
    settings = SimpleNamespace(generation_endpoint_name="agentplatform-generation")
    assert endpoint_name("endpoint:generation", settings) == "agentplatform-generation"
    with pytest.raises(ConfigurationError):
        endpoint_name("endpoint:rerank", SimpleNamespace(rerank_endpoint_name=None))
