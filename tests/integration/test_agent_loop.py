"""The agent loop end to end on the local stack: the conversation API, the real agent_loop ASL on moto's Step
Functions (Map, .waitForTaskToken, loops), the orchestrator's handlers, the retrieval function over the embedded
index with the real embedding model, and a scripted gateway in place of the llm_gateway function (its `chat`
answers quote passage 1, its `tool_use` answers follow what the question asks for), so each outcome is
deterministic."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
import requests

from agentplatform.bootstrap import use_container
from agentplatform.config import reset_settings
from agentplatform.errors import UpstreamUnavailable
from agentplatform.topology import PLATFORM
from tests.integration.conftest import bearer, scripted_answer, seed_passages, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER = ("conversations",)
OPERATOR = ("escalations",)

DOCS = {
    "acme": [
        ("engine", "Maintenance", "Inspect the turbine blades for cracks after every hundred hours of flight."),
        ("cabin", "Cabin", "Cabin pressure is held near eight thousand feet of altitude."),
    ],
    "globex": [("secret", "Globex plans", "Globex's secret turbine inspection happens every ten hours.")],
}


def scripted_gateway(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A ChatCall in, a ChatAnswer out: what the question asks for decides the answer."""
    question = next(m["content"] for m in event["messages"] if m["role"] == "user")
    tool_steps = sum(1 for m in event["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
    if "MODEL_DOWN" in question:
        raise UpstreamUnavailable("every target failed (scripted)")
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if event["task"] == "tool_use":
        calls = []
        if "ALWAYS_TOOLS" in question:
            calls = [("knowledge_search", {"query": f"more about turbines {tool_steps}"})]
        elif "TWO_TOOLS" in question and tool_steps == 1:
            calls = [("knowledge_search", {"query": "turbine blades"}), ("knowledge_search", {"query": "cabin"})]
        elif "INJECT" in question and tool_steps == 1:
            calls = [("knowledge_search", {"query": "secret turbine inspection", "tenant": "globex"})]
        if calls:
            message["tool_calls"] = [
                {"id": f"call{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, (n, a) in enumerate(calls)
            ]
        else:
            message["content"] = "done"
    else:
        passages = event.get("passages") or []
        message["content"] = f"{passages[0]['text']} [1]" if passages else "I don't know."
    return scripted_answer(message)


@pytest.fixture(scope="module")
def model_step():
    """The scripted model's routing is under test here: it is asked after every step (AGENT_MODEL_STEP=always, which
    the runtime keeps over its local `when_needed`)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGENT_MODEL_STEP", "always")
        yield


@pytest.fixture(scope="module")
def runtime_overrides(model_step):
    return {"LOCAL_MODELS": "embedding"}


@pytest.fixture(scope="module")
def stack(runtime):
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    gateway = runtime.provisioned.value("function:llm_gateway", "name")
    runtime.router.register(gateway, PLATFORM.function("llm_gateway"), scripted_gateway)
    seed_passages(DOCS)
    return runtime


def api(rt, method: str, path: str, headers: dict[str, str], body: Any = None) -> requests.Response:
    return requests.request(method, f"{rt.http_url}{path}", json=body, headers=headers, timeout=60)


def conversation(rt, tenant: str = "acme", subject: str = "alice") -> str:
    response = api(rt, "POST", "/v1/conversations", bearer(rt, tenant, USER, subject=subject), {})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def ask(rt, conversation_id: str, content: str, tenant: str = "acme", **body: Any) -> requests.Response:
    path = f"/v1/conversations/{conversation_id}/messages"
    return api(rt, "POST", path, bearer(rt, tenant, USER), {"content": content, **body})


def turn(rt, conversation_id: str, n: int, tenant: str = "acme") -> dict[str, Any]:
    response = api(rt, "GET", f"/v1/conversations/{conversation_id}/turns/{n}", bearer(rt, tenant, USER))
    assert response.status_code == 200, response.text
    return response.json()


def execution_status(rt, arn: str) -> str:
    return rt.client("stepfunctions").describe_execution(executionArn=arn)["status"]


def test_answer_cites_the_document_and_lists_the_search(stack):
    cid = conversation(stack)
    response = ask(stack, cid, "How often are the turbine blades inspected?")
    assert response.status_code == 200, response.text
    t = response.json()
    assert t["status"] == "answered", (t.get("failure"), t.get("answer"), t.get("notes"))
    assert "hundred hours" in t["answer"] and "[1]" in t["answer"]
    assert t["citations"][0]["doc_id"] == "engine" and t["citations"][0]["path"] == "engine.md"
    assert [r["name"] for r in t["tool_runs"]] == ["knowledge_search"]
    assert t["total_ms"] > 0 and t["model_ms"] > 0
    wait_for(lambda: execution_status(stack, t["execution_arn"]) == "SUCCEEDED", timeout_s=10)
    detail = api(stack, "GET", f"/v1/conversations/{cid}", bearer(stack, "acme", USER)).json()
    assert detail["turns"][0]["citations"][0]["doc_id"] == "engine"
    listed = api(stack, "GET", "/v1/conversations", bearer(stack, "acme", USER)).json()["conversations"]
    assert cid in [c["id"] for c in listed]


def test_two_tool_calls_run_in_one_map_step(stack):
    cid = conversation(stack)
    t = ask(stack, cid, "TWO_TOOLS: turbine blades and cabin pressure?").json()
    assert t["status"] == "answered", t
    second = [r for r in t["tool_runs"] if r["step"] == 1]
    assert sorted(r["arguments"]["query"] for r in second) == ["cabin", "turbine blades"]
    assert all(r["status"] == "ok" and r["result"]["passages"] for r in second)


def test_a_model_that_always_calls_tools_is_cut_off(stack):
    cid = conversation(stack)
    t = ask(stack, cid, "ALWAYS_TOOLS turbines").json()
    assert t["status"] == "answered", t
    assert t["cut_off"] is True and t["steps"] == 4
    assert "stopped after 4 tool steps" in t["answer"]
    assert max(r["step"] for r in t["tool_runs"]) == 3


def test_when_needed_answers_from_the_first_search_without_the_model(stack):
    os.environ["AGENT_MODEL_STEP"] = "when_needed"
    reset_settings()
    use_container(None)
    try:
        cid = conversation(stack)
        t = ask(stack, cid, "ALWAYS_TOOLS how often are the turbine blades inspected?").json()
        assert t["status"] == "answered" and t["cut_off"] is False and t["steps"] == 1, t
        # The scripted model would have searched until the cut-off (the test above): it was never asked.
        assert [r["step"] for r in t["tool_runs"]] == [0] and "hundred hours" in t["answer"]
        assert t["citations"][0]["doc_id"] == "engine"
    finally:
        os.environ["AGENT_MODEL_STEP"] = "always"
        reset_settings()
        use_container(None)


def test_model_down_gives_a_safe_answer_and_no_stuck_run(stack):
    cid = conversation(stack)
    t = ask(stack, cid, "MODEL_DOWN how often are the blades inspected?").json()
    assert t["status"] == "failed" and t["failure"] == "UpstreamUnavailable", t
    assert "language model failed (UpstreamUnavailable)" in t["answer"]
    assert t["question"].startswith("MODEL_DOWN")
    wait_for(lambda: execution_status(stack, t["execution_arn"]) == "FAILED", timeout_s=10)


def test_injected_tenant_argument_is_refused_and_never_reaches_another_tenant(stack):
    cid = conversation(stack)
    t = ask(stack, cid, "INJECT: what does the secret inspection say?").json()
    assert t["status"] == "answered", t
    injected = next(r for r in t["tool_runs"] if r["step"] == 1)
    assert injected["status"] == "error" and "tenant" in injected["error"]
    assert all(c["doc_id"] != "secret" for c in t["citations"])
    assert "ten hours" not in t["answer"]


def _escalate(rt) -> tuple[str, dict[str, Any]]:
    cid = conversation(rt)
    response = ask(rt, cid, "Please let me talk to a human about the turbine blade inspection.")
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/conversations/{cid}/turns/1"
    assert response.json()["status"] == "waiting"
    open_ones = api(rt, "GET", "/v1/escalations", bearer(rt, "acme", OPERATOR)).json()["escalations"]
    escalation = next(e for e in open_ones if e["conversation_id"] == cid)
    return cid, escalation


def resolve(rt, escalation_id: str, body: dict[str, Any], tenant: str = "acme") -> requests.Response:
    return api(rt, "POST", f"/v1/escalations/{escalation_id}/resolve", bearer(rt, tenant, OPERATOR), body)


def _final(rt, cid: str) -> dict[str, Any]:
    return wait_for(lambda: (t := turn(rt, cid, 1))["status"] in ("answered", "failed") and t, timeout_s=30)


def test_escalation_answer_reaches_the_conversation(stack):
    cid, escalation = _escalate(stack)
    assert (
        resolve(stack, escalation["id"], {"action": "answer", "text": "Your order ships Monday."}, "globex").status_code
        == 404
    )
    response = resolve(stack, escalation["id"], {"action": "answer", "text": "Your order ships Monday."})
    assert response.status_code == 200, response.text
    t = _final(stack, cid)
    assert t["answer"] == "Your order ships Monday." and t["answer_kind"] == "operator"
    again = resolve(stack, escalation["id"], {"action": "approve"})
    assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")


def test_escalation_approve_continues_and_reject_refuses(stack):
    cid, escalation = _escalate(stack)
    assert resolve(stack, escalation["id"], {"action": "approve"}).status_code == 200
    t = _final(stack, cid)
    assert t["status"] == "answered" and t["answer_kind"] == "generated", t
    assert [r["name"] for r in t["tool_runs"]] == ["escalate_to_human", "knowledge_search"]

    cid, escalation = _escalate(stack)
    assert resolve(stack, escalation["id"], {"action": "reject"}).status_code == 200
    t = _final(stack, cid)
    assert t["answer_kind"] == "refusal" and "declined" in t["answer"]


def test_escalation_timeout_resumes_with_the_documented_outcome(stack):
    os.environ["ESCALATION_TIMEOUT_S"] = "2"
    reset_settings()
    use_container(None)
    try:
        cid, escalation = _escalate(stack)
        t = _final(stack, cid)
        assert t["answer_kind"] == "timeout" and "No operator answered" in t["answer"], t
        assert resolve(stack, escalation["id"], {"action": "approve"}).status_code == 409
    finally:
        os.environ.pop("ESCALATION_TIMEOUT_S")
        reset_settings()
        use_container(None)


def test_other_users_and_tenants_get_404_and_bad_input_4xx(stack):
    cid = conversation(stack)
    assert ask(stack, cid, "How often are the turbine blades inspected?").status_code == 200
    globex = bearer(stack, "globex", USER)
    bob = bearer(stack, "acme", USER, subject="bob")
    for headers in (globex, bob):
        assert api(stack, "GET", f"/v1/conversations/{cid}", headers).status_code == 404
        assert api(stack, "GET", f"/v1/conversations/{cid}/turns/1", headers).status_code == 404
        response = api(stack, "POST", f"/v1/conversations/{cid}/messages", headers, {"content": "hi"})
        assert response.status_code == 404
        assert cid not in [c["id"] for c in api(stack, "GET", "/v1/conversations", headers).json()["conversations"]]
    for body in ({"content": ""}, {"content": "   "}, {"content": "x" * 16_001}, {}):
        response = api(stack, "POST", f"/v1/conversations/{cid}/messages", bearer(stack, "acme", USER), body)
        assert response.status_code == 422, (body, response.text)
        assert "content" in response.text
    big = api(
        stack, "POST", f"/v1/conversations/{cid}/messages", bearer(stack, "acme", USER), {"content": "x" * 1_100_000}
    )
    assert big.status_code == 413
    unknown = api(stack, "GET", "/v1/conversations/c_0123456789abcdef", bearer(stack, "acme", USER))
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")
    assert api(stack, "GET", "/v1/escalations", bearer(stack, "acme", USER)).status_code == 403
    # Every run above has ended: nothing stays RUNNING.
    sfn = stack.client("stepfunctions")
    arn = stack.provisioned.value("statemachine:agent_loop", "arn")
    wait_for(lambda: not sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"], timeout_s=15)


def test_a_tool_step_past_its_timeout_is_a_timeout_in_the_execution_history(stack):
    name = stack.provisioned.value("function:agent_tool", "name")
    real = PLATFORM.function("agent_tool")

    def sleeps(event: dict[str, Any], context: Any) -> dict[str, Any]:
        time.sleep(2.5)
        return {"never": "seen"}

    stack.router.register(name, real.model_copy(update={"timeout_s": 1}), sleeps)
    try:
        t = ask(stack, conversation(stack), "How often are the turbine blades inspected?").json()
    finally:
        stack.router.register(name, real)  # back to the real handler
    history = stack.client("stepfunctions").get_execution_history(executionArn=t["execution_arn"])["events"]
    failed = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert failed and failed[0]["error"] == "Sandbox.Timedout", failed
    assert "Task timed out after 1.00 seconds" in failed[0]["cause"]
    # The Map's catch turned it into a failed tool the loop answered around; the turn never hangs.
    assert t["status"] in ("answered", "failed") and t["tool_runs"][0]["status"] == "error", t
