"""send_email end to end on the local stack (issue 14, check 3): the conversation API, the real agent_loop ASL with
its approval escalation, the orchestrator's tool step, the tools function (policy, registry, the outbox adapter on
moto's DynamoDB) and GET /v1/outbox. A scripted gateway stands in for the model: its tool_use step asks for one
email. Approve -> exactly one message; reject -> none; a retried step (the orchestrator's tool task invoked again
with the same Map item, and the tools function invoked again with the same idempotency key) -> still one."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from agentplatform.tools import ToolCaller, ToolCallRequest
from agentplatform.topology import ADMIN_SCOPE, PLATFORM
from tests.integration.conftest import bearer, scripted_answer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER = ("conversations",)
OPERATOR = ("escalations",)
EMAIL = {"to": ["bob@example.com"], "subject": "Your order SO-10042", "body": "It shipped today."}


def scripted_gateway(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """tool_use: one send_email call on the first model step (to an allowed domain, or not, as the question
    says), then done; chat: a fixed answer."""
    question = next(m["content"] for m in event["messages"] if m["role"] == "user")
    tool_steps = sum(1 for m in event["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if event["task"] == "tool_use" and "EMAIL" in question and tool_steps <= 1:
        arguments = {**EMAIL, "to": ["eve@evil.example"]} if "OUTSIDE" in question else EMAIL
        message["tool_calls"] = [
            {"id": "mail0", "type": "function", "function": {"name": "send_email", "arguments": json.dumps(arguments)}}
        ]
    else:
        message["content"] = "Done." if event["task"] == "tool_use" else "I don't know."
    return scripted_answer(message)


@pytest.fixture(scope="module")
def runtime_overrides():
    """No models (the scripted gateway answers; the first search finds nothing), and the model step after it
    always (set before the runtime starts, which keeps it over its local `when_needed`)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AGENT_MODEL_STEP", "always")
        yield {}


@pytest.fixture(scope="module")
def stack(runtime):
    gateway = runtime.provisioned.value("function:llm_gateway", "name")
    runtime.router.register(gateway, PLATFORM.function("llm_gateway"), scripted_gateway)
    return runtime


def api(rt, method: str, path: str, headers: dict[str, str], body: Any = None) -> requests.Response:
    return requests.request(method, f"{rt.http_url}{path}", json=body, headers=headers, timeout=60)


def outbox(rt, tenant: str = "acme") -> list[dict[str, Any]]:
    response = api(rt, "GET", "/v1/outbox", bearer(rt, tenant, scopes=[ADMIN_SCOPE], subject=f"{tenant}-admin"))
    assert response.status_code == 200, response.text
    return response.json()["emails"]


def ask_for_email(rt, question: str = "EMAIL bob that his order shipped") -> tuple[str, dict[str, Any]]:
    created = api(rt, "POST", "/v1/conversations", bearer(rt, "acme", USER), {})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    response = api(rt, "POST", f"/v1/conversations/{cid}/messages", bearer(rt, "acme", USER), {"content": question})
    assert response.status_code in (200, 202), response.text
    return cid, response.json()


def waiting_escalation(rt, cid: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        listed = api(rt, "GET", "/v1/escalations", bearer(rt, "acme", OPERATOR)).json()["escalations"]
        return next((e for e in listed if e["conversation_id"] == cid), None)

    return wait_for(found, timeout_s=30)


def resolve(rt, escalation_id: str, action: str) -> None:
    path = f"/v1/escalations/{escalation_id}/resolve"
    response = api(rt, "POST", path, bearer(rt, "acme", OPERATOR), {"action": action})
    assert response.status_code == 200, response.text


def final_turn(rt, cid: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        response = api(rt, "GET", f"/v1/conversations/{cid}/turns/1", bearer(rt, "acme", USER))
        turn = response.json()
        return turn if turn["status"] in ("answered", "failed") else None

    return wait_for(done, timeout_s=30)


def test_an_email_waits_for_approval_and_approve_sends_exactly_one(stack):
    before = len(outbox(stack))
    cid, first = ask_for_email(stack)
    assert first["status"] == "waiting", first
    escalation = waiting_escalation(stack, cid)
    assert "send_email" in escalation["reason"]
    assert len(outbox(stack)) == before  # nothing sent while it waits

    resolve(stack, escalation["id"], "approve")
    turn = final_turn(stack, cid)
    assert turn["status"] == "answered", turn
    [run] = [r for r in turn["tool_runs"] if r["name"] == "send_email" and r["status"] == "ok"]
    emails = [e for e in outbox(stack) if e["conversation_id"] == cid]
    assert len(emails) == 1 and len(outbox(stack)) == before + 1
    [email] = emails
    assert (email["to"], email["subject"], email["status"]) == (EMAIL["to"], EMAIL["subject"], "sent")
    assert email["id"] == run["result"]["id"] and email["requested_by"] == "alice"

    # A retried Map step: Step Functions runs the orchestrator's tool task again with the same item.
    item = {
        "ctx": {"tenant": "acme", "conversation_id": cid, "turn": 1, "user": "alice", "groups": []},
        "step": run["step"],
        "call": {"id": run["call_id"], "name": "send_email", "arguments": run["arguments"], "approved": True},
    }
    failed, again = stack.invoke("agent_tool", {"item": item, "execution": turn["execution_arn"]})
    assert not failed, again
    # A retried tools invoke: the same call, the same idempotency key, reaching the tools function again.
    caller = ToolCaller(tenant="acme", user="alice", conversation_id=cid, turn=1, idempotency_key=email["id"])
    request = ToolCallRequest(caller=caller, name="send_email", arguments=EMAIL, approved=True)
    failed, repeated = stack.invoke("tools", request.model_dump(mode="json"))
    assert not failed and repeated["status"] == "ok" and repeated["result"]["duplicate"] is True, repeated
    assert [e["id"] for e in outbox(stack) if e["conversation_id"] == cid] == [email["id"]]
    assert len(outbox(stack)) == before + 1


def test_reject_sends_nothing(stack):
    before = len(outbox(stack))
    cid, first = ask_for_email(stack)
    assert first["status"] == "waiting", first
    resolve(stack, waiting_escalation(stack, cid)["id"], "reject")
    turn = final_turn(stack, cid)
    assert turn["answer_kind"] == "refusal", turn
    assert not [r for r in turn["tool_runs"] if r["name"] == "send_email" and r["status"] == "ok"]
    assert len(outbox(stack)) == before


def test_a_recipient_outside_the_tenants_domains_is_refused_without_asking_anyone(stack):
    before = len(outbox(stack))
    cid, first = ask_for_email(stack, "EMAIL OUTSIDE eve about the order")
    turn = final_turn(stack, cid) if first["status"] != "answered" else first
    assert turn["status"] == "answered", turn
    [run] = [r for r in turn["tool_runs"] if r["name"] == "send_email"]
    assert run["status"] == "error" and "allowed domains" in run["error"], run
    assert len(outbox(stack)) == before


def test_the_outbox_is_the_tenants_admins_alone(stack):
    assert outbox(stack, "globex") == []
    user = api(stack, "GET", "/v1/outbox", bearer(stack, "acme", USER))
    assert user.status_code in (401, 403), user.text


def test_files_through_the_tools_function_stay_in_the_callers_tenant(stack):
    """Issue check 4 on the running stack: the provisioned files bucket, the tools function's container."""

    def files(tenant: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        caller = ToolCaller(tenant=tenant, user="alice", idempotency_key=f"{tenant}-{name}")
        failed, result = stack.invoke(
            "tools", ToolCallRequest(caller=caller, name=name, arguments=arguments).model_dump(mode="json")
        )
        assert not failed, result
        return result

    assert files("globex", "write_file", {"path": "x", "content": "globex's own"})["status"] == "ok"
    assert files("acme", "write_file", {"path": "reports/q3.txt", "content": "acme q3"})["status"] == "ok"
    for path in ("../globex/x", "/etc/passwd", "%2e%2e/globex/x"):
        refused = files("acme", "read_file", {"path": path})
        assert refused["status"] == "error" and "path" in refused["error"], refused
    assert [f["path"] for f in files("acme", "list_files", {})["result"]["files"]] == ["reports/q3.txt"]
    assert [f["path"] for f in files("globex", "list_files", {})["result"]["files"]] == ["x"]
    bucket = stack.provisioned.value("bucket:files", "name")
    keys = sorted(o["Key"] for o in stack.client("s3").list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["acme/reports/q3.txt", "globex/x"]
