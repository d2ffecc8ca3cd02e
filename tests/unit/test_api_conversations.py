"""The conversation and escalation routes through the api handler, over fakes (the loop itself does not run:
the workflow fake records the start)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from agentplatform.conversations import ConversationStore
from agentplatform.errors import Conflict
from functions.api.handler import handler, openapi_document
from tests.conftest import sample_event
from tests.fakes import MemoryTable, MemoryWorkflow


class Tokens:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.gone = False

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        if self.gone:
            raise Conflict("the paused run no longer waits")
        self.sent.append((token, output))


@pytest.fixture
def chat(fakes):
    fakes.__dict__.update(
        conversations=ConversationStore(MemoryTable()), agent_workflow=MemoryWorkflow(), task_tokens=Tokens()
    )
    return fakes


def call(
    lambda_context,
    method: str,
    path: str,
    body: Any = None,
    *,
    tenant="acme",
    sub="alice",
    scopes="conversations",
    headers: dict[str, str] | None = None,
):
    event = copy.deepcopy(sample_event("api/search.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = f"{method} {path}"
    event["body"] = None if body is None else body if isinstance(body, str) else json.dumps(body)
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    claims["tenant"], claims["sub"] = tenant, sub
    event["requestContext"]["authorizer"]["jwt"]["scopes"] = scopes.split()
    event["headers"].update(headers or {})
    response = handler(event, lambda_context)
    return response["statusCode"], response["headers"], json.loads(response["body"] or "null")


def new_conversation(lambda_context, **kwargs) -> str:
    status, headers, body = call(lambda_context, "POST", "/v1/conversations", {"title": "Engines"}, **kwargs)
    assert status == 201 and headers["Location"] == f"/v1/conversations/{body['id']}"
    return body["id"]


def test_a_message_is_stored_before_the_loop_starts_and_202_points_at_the_turn(chat, lambda_context):
    cid = new_conversation(lambda_context)
    status, headers, body = call(
        lambda_context, "POST", f"/v1/conversations/{cid}/messages", {"content": "Hi?", "wait_s": 0}
    )
    assert status == 202 and headers["Location"] == f"/v1/conversations/{cid}/turns/1"
    assert body["status"] == "running" and body["question"] == "Hi?"
    ((name, payload),) = chat.agent_workflow.executions.items()
    assert name == f"{cid}-1"
    assert payload["ctx"]["tenant"] == "acme" and payload["ctx"]["user"] == "alice" and payload["ctx"]["turn"] == 1
    assert payload["ctx"]["groups"] == ["engineering"] and payload["ctx"]["max_steps"] == 4

    chat.conversations.update_turn("acme", cid, 1, {"status": "answered", "answer": "Hello [1]"})
    status, _, body = call(lambda_context, "GET", f"/v1/conversations/{cid}/turns/1")
    assert status == 200 and body["answer"] == "Hello [1]"
    status, _, body = call(
        lambda_context, "POST", f"/v1/conversations/{cid}/messages", {"content": "Again", "wait_s": 0}
    )
    assert body["turn"] == 2
    status, _, body = call(lambda_context, "GET", f"/v1/conversations/{cid}")
    assert status == 200 and [t["question"] for t in body["turns"]] == ["Hi?", "Again"] and body["turn_count"] == 2
    status, _, body = call(lambda_context, "GET", "/v1/conversations")
    assert [c["id"] for c in body["conversations"]] == [cid]


def test_a_failed_start_keeps_the_message_with_its_reason(chat, lambda_context):
    cid = new_conversation(lambda_context)
    chat.agent_workflow.available = False
    status, _, body = call(lambda_context, "POST", f"/v1/conversations/{cid}/messages", {"content": "Hi?", "wait_s": 0})
    assert status == 503 and body["code"] == "dependency_unavailable"
    turn = chat.conversations.turn("acme", "alice", cid, 1)
    assert turn.status == "failed" and turn.failure == "DependencyUnavailable" and turn.question == "Hi?"


def test_other_users_and_tenants_see_404(chat, lambda_context):
    cid = new_conversation(lambda_context)
    for who in ({"tenant": "globex"}, {"sub": "bob"}):
        for method, path, body in (
            ("GET", f"/v1/conversations/{cid}", None),
            ("GET", f"/v1/conversations/{cid}/turns/1", None),
            ("POST", f"/v1/conversations/{cid}/messages", {"content": "hi", "wait_s": 0}),
        ):
            status, _, problem = call(lambda_context, method, path, body, **who)
            assert status == 404 and problem["code"] == "not_found", (who, path)
        assert call(lambda_context, "GET", "/v1/conversations", **who)[2]["conversations"] == []
    assert chat.agent_workflow.executions == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": ""}, "body.content"),
        ({"content": "  \n "}, "body.content"),
        ({"content": "x" * 16_001}, "body.content"),
        ({}, "body.content"),
        ({"content": "hi", "wait_s": 60}, "body.wait_s"),
        ({"content": "hi", "tenant": "globex"}, "body.tenant"),
    ],
)
def test_bad_messages_are_422_naming_the_field(chat, lambda_context, body, field):
    cid = new_conversation(lambda_context)
    status, headers, problem = call(lambda_context, "POST", f"/v1/conversations/{cid}/messages", body)
    assert status == 422 and headers["Content-Type"] == "application/problem+json"
    assert field in [e["field"] for e in problem["errors"]]


def test_scopes_are_checked(chat, lambda_context):
    assert call(lambda_context, "GET", "/v1/conversations", scopes="search")[0] == 403
    assert call(lambda_context, "GET", "/v1/escalations", scopes="conversations")[0] == 403


def open_escalation(chat, tenant="acme") -> str:
    cid = chat.conversations.create(tenant, "alice").id
    chat.conversations.add_turn(tenant, "alice", cid, "A person please")
    return chat.conversations.open_escalation(
        tenant,
        escalation_id="e_0123abcd",
        conversation_id=cid,
        turn=1,
        user="alice",
        question="A person please",
        reason="the user asked for a person",
        token="tok-1",
        pending_tools=[],
    ).id


def test_resolving_resumes_the_run_once(chat, lambda_context):
    eid = open_escalation(chat)
    status, _, body = call(lambda_context, "GET", "/v1/escalations", scopes="escalations")
    assert status == 200 and [e["id"] for e in body["escalations"]] == [eid] and "token" not in body["escalations"][0]
    assert call(lambda_context, "GET", "/v1/escalations", tenant="globex", scopes="escalations")[2]["escalations"] == []
    path = f"/v1/escalations/{eid}/resolve"
    assert call(lambda_context, "POST", path, {"action": "approve"}, tenant="globex", scopes="escalations")[0] == 404
    status, _, problem = call(lambda_context, "POST", path, {"action": "answer"}, scopes="escalations")
    assert status == 422 and "text" in problem["detail"] + json.dumps(problem["errors"])
    status, _, body = call(lambda_context, "POST", path, {"action": "answer", "text": "Monday."}, scopes="escalations")
    assert status == 200 and body["status"] == "answered" and body["resolution"] == "Monday."
    assert chat.task_tokens.sent == [("tok-1", {"action": "answer", "text": "Monday.", "by": "alice"})]
    status, _, problem = call(lambda_context, "POST", path, {"action": "reject"}, scopes="escalations")
    assert status == 409 and problem["code"] == "conflict" and len(chat.task_tokens.sent) == 1
    assert call(lambda_context, "GET", "/v1/escalations", scopes="escalations")[2]["escalations"] == []


def test_resolving_after_the_timeout_is_409(chat, lambda_context):
    eid = open_escalation(chat)
    chat.task_tokens.gone = True
    status, _, _ = call(
        lambda_context, "POST", f"/v1/escalations/{eid}/resolve", {"action": "approve"}, scopes="escalations"
    )
    assert status == 409 and chat.conversations.escalation("acme", eid).status == "timed_out"


def test_the_routes_are_described_with_their_scopes():
    doc = json.loads(openapi_document())
    assert {"/v1/conversations", "/v1/conversations/{conversation_id}/messages", "/v1/escalations"} <= set(doc["paths"])


def test_a_retry_with_the_same_idempotency_key_answers_the_same_turn(chat, lambda_context):
    cid = new_conversation(lambda_context)
    path, body = f"/v1/conversations/{cid}/messages", {"content": "Hi?", "wait_s": 0}
    first = call(lambda_context, "POST", path, body, headers={"idempotency-key": "k-1"})
    again = call(lambda_context, "POST", path, body, headers={"idempotency-key": "k-1"})
    other = call(lambda_context, "POST", path, body, headers={"idempotency-key": "k-2"})
    assert first[2]["turn"] == again[2]["turn"] == 1 and other[2]["turn"] == 2
    assert len(chat.agent_workflow.executions) == 2
    assert call(lambda_context, "POST", path, body, headers={"idempotency-key": "k-1"}, tenant="globex")[0] == 404
    status, _, problem = call(lambda_context, "POST", path, body, headers={"idempotency-key": "x" * 129})
    assert status == 422 and "idempotency-key" in json.dumps(problem["errors"])
