"""The tools service: the registry (schemas before and after a call, timeouts, breakers, approval) and the
per-tenant policy over it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from agentplatform.errors import ConfigurationError
from agentplatform.tools import ToolCaller, ToolCallRequest
from functions.tools.policy import parse_tool_policy
from functions.tools.registry import Breaker, ToolContext, ToolFailed, ToolRegistry, ToolSpec, default_specs
from functions.tools.service import ToolService
from tests.fakes import MemoryTable

CTX = ToolContext(
    tenant="acme", user="alice", groups=(), conversation_id="c_1", turn=1, step=0, call_id="k0", idempotency_key="x"
)


def spec(run: Any, **kwargs: Any) -> ToolSpec:
    return ToolSpec(
        name=kwargs.pop("name", "echo"),
        description="Echo.",
        parameters={
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 10}},
            "required": ["text"],
            "additionalProperties": False,
        },
        result_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        run=run,
        **kwargs,
    )


def test_arguments_are_checked_before_the_call_and_results_after():
    ran: list[dict[str, Any]] = []
    registry = ToolRegistry([spec(lambda a, c: ran.append(a) or {"text": a["text"]})])
    assert registry.call("echo", {"text": "hi"}, CTX).result == {"text": "hi"}
    bad = registry.call("echo", {"text": "x" * 11}, CTX)
    assert bad.status == "error" and bad.error.startswith("invalid arguments (text)")
    assert registry.call("echo", "not an object", CTX).status == "error"
    assert registry.call("nope", {}, CTX).error.startswith("unknown tool 'nope'")
    assert ran == [{"text": "hi"}]
    wrong = ToolRegistry([spec(lambda a, c: {"txt": 1})]).call("echo", {"text": "hi"}, CTX)
    assert wrong.status == "error" and "invalid result" in wrong.error


def test_a_slow_tool_times_out_and_a_failing_one_is_an_error_result():
    slow = ToolRegistry([spec(lambda a, c: time.sleep(0.5) or {"text": "late"}, timeout_s=0.05)])
    out = slow.call("echo", {"text": "hi"}, CTX)
    assert out.status == "error" and "timed out after 0.05 s" in out.error

    def broken(a, c):
        raise ToolFailed("the CRM is down")

    assert ToolRegistry([spec(broken)]).call("echo", {"text": "hi"}, CTX).error == "the CRM is down"
    crash = ToolRegistry([spec(lambda a, c: 1 / 0)]).call("echo", {"text": "hi"}, CTX)
    assert crash.error == "echo failed: ZeroDivisionError"


def test_the_breaker_opens_after_repeated_failures_and_closes_after_its_time():
    breaker = Breaker.over(MemoryTable(), threshold=3, open_s=0.3)
    calls = []

    def flaky(a, c):
        calls.append(1)
        raise ToolFailed("down")

    registry = ToolRegistry([spec(flaky)], breaker)
    for _ in range(3):
        registry.call("echo", {"text": "hi"}, CTX)
    out = registry.call("echo", {"text": "hi"}, CTX)
    assert "breaker is open" in out.error and len(calls) == 3
    time.sleep(0.35)
    registry.call("echo", {"text": "hi"}, CTX)  # half-open: one call goes through
    assert len(calls) == 4


def test_approval_is_needed_before_a_marked_tool_runs():
    ran = []
    registry = ToolRegistry([spec(lambda a, c: ran.append(1) or {"text": "sent"}, requires_approval=True)])
    assert registry.call("echo", {"text": "hi"}, CTX).status == "needs_approval" and ran == []
    assert registry.call("echo", {"text": "hi"}, CTX, approved=True).status == "ok" and ran == [1]


def test_the_shipped_tools_refuse_identity_arguments():
    registry = ToolRegistry(default_specs())
    for name, args in (
        ("knowledge_search", {"query": "x", "tenant": "globex"}),
        ("knowledge_search", {"query": "x", "acl_groups": ["admins"]}),
        ("escalate_to_human", {"reason": "x", "tenant": "globex"}),
    ):
        out = registry.call(name, args, CTX)
        assert out.status == "error" and "Additional properties" in out.error
    for schema in registry.schemas():  # every shipped tool: no identity field, nothing beyond its own
        parameters = schema.function.parameters
        assert parameters["additionalProperties"] is False, schema.function.name
        assert not {"tenant", "user", "groups", "acl_groups"} & set(parameters.get("properties", {}))


POLICY = {
    "version": "t1",
    "tenants": {
        "acme": {"allow": ["knowledge_search", "echo"], "approval": ["echo"]},
        "*": {"allow": ["knowledge_search"]},
    },
}


def tools(ran: list[Any]) -> ToolService:
    echo = spec(lambda a, c: ran.append((c.tenant, a)) or {"text": a["text"]})
    policy = parse_tool_policy(POLICY, "test")
    return ToolService(ToolRegistry([*default_specs(), echo]), lambda: policy)


def test_the_policy_denies_by_default_and_asks_approval_where_it_says():
    ran: list[Any] = []
    service = tools(ran)
    acme, globex = ToolCaller(tenant="acme", user="alice"), ToolCaller(tenant="globex", user="bob")
    listed = {t.name: t for t in service.describe(acme).tools}
    assert set(listed) == {"knowledge_search", "echo"} and listed["echo"].requires_approval
    assert [t.name for t in service.describe(globex).tools] == ["knowledge_search"]  # escalate_to_human: not named

    denied = service.call(ToolCallRequest(caller=globex, name="echo", arguments={"text": "hi"}))
    assert denied.status == "error" and "the tools are: knowledge_search" in denied.error and ran == []
    waiting = service.call(ToolCallRequest(caller=acme, name="echo", arguments={"text": "hi"}))
    assert waiting.status == "needs_approval" and ran == []
    done = service.call(ToolCallRequest(caller=acme, name="echo", arguments={"text": "hi"}, approved=True))
    assert done.status == "ok" and ran == [("acme", {"text": "hi"})]


def test_a_bad_tool_policy_refuses_to_load_naming_the_field():
    with pytest.raises(ConfigurationError) as caught:
        parse_tool_policy({"version": "x", "tenants": {"acme": {"allow": ["a"], "deny": ["b"]}}}, "test")
    assert [e.loc for e in caught.value.errors] == [("tenants", "acme", "deny")]
