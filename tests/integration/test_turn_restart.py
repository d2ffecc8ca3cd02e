"""A turn paused on an escalation when the local runtime stops: after a start on the same data folder the turn is
failed with the reason and its escalation is no longer open (a late resolution is a 409), since the execution that
waited on it died with moto. In its own module: one local runtime runs per process, and this test starts two.
(The kill of a running turn: tests/e2e/test_turn_restart.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from agentplatform.conversations import INTERRUPTED_FAILURE
from agentplatform.topology import PLATFORM
from local.runtime import LocalRuntime, RuntimeSettings
from tests.integration.conftest import bearer, scripted_answer

pytestmark = pytest.mark.integration

USER, OPERATOR = ("conversations",), ("escalations",)


def scripted_gateway(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """In place of the llm_gateway function (no models here): no tool calls, a fixed answer."""
    return scripted_answer({"role": "assistant", "content": "I don't know."})


def start(data, drop) -> LocalRuntime:
    rt = LocalRuntime(RuntimeSettings.on_free_ports(LOCAL_DATA_DIR=data, LOCAL_DROP_DIR=drop)).start()
    gateway = rt.provisioned.value("function:llm_gateway", "name")
    rt.router.register(gateway, PLATFORM.function("llm_gateway"), scripted_gateway)
    return rt


def api(rt: LocalRuntime, method: str, path: str, scopes: Any, body: Any = None) -> requests.Response:
    return requests.request(method, f"{rt.http_url}{path}", json=body, headers=bearer(rt, "acme", scopes), timeout=60)


def test_after_a_restart_an_answered_turn_stays_and_one_waiting_on_an_escalation_is_failed_and_closed(tmp_path_factory):
    data, drop = tmp_path_factory.mktemp("turn-restart-data"), tmp_path_factory.mktemp("turn-restart-drop")
    first = start(data, drop)
    try:
        cid = api(first, "POST", "/v1/conversations", USER, {}).json()["id"]
        answered = api(first, "POST", f"/v1/conversations/{cid}/messages", USER, {"content": "What is the cabin?"})
        assert answered.status_code == 200 and answered.json()["status"] == "answered", answered.text
        asked = api(first, "POST", f"/v1/conversations/{cid}/messages", USER, {"content": "Let me talk to a human."})
        assert asked.status_code == 202 and asked.json()["status"] == "waiting", asked.text
        escalations = api(first, "GET", "/v1/escalations", OPERATOR).json()["escalations"]
        escalation = next(e for e in escalations if e["conversation_id"] == cid)
    finally:
        first.stop()

    second = start(data, drop)
    try:
        kept = api(second, "GET", f"/v1/conversations/{cid}/turns/1", USER).json()
        assert kept["status"] == "answered" and kept["answer"] == answered.json()["answer"], kept
        turn = api(second, "GET", f"/v1/conversations/{cid}/turns/2", USER)
        assert turn.status_code == 200, turn.text
        body = turn.json()
        assert body["status"] == "failed" and body["failure"] == INTERRUPTED_FAILURE, body
        assert body["question"] == "Let me talk to a human." and body["escalation_id"] == escalation["id"]
        still_open = api(second, "GET", "/v1/escalations", OPERATOR).json()["escalations"]
        assert all(e["id"] != escalation["id"] for e in still_open)
        late = api(second, "POST", f"/v1/escalations/{escalation['id']}/resolve", OPERATOR, {"action": "approve"})
        assert late.status_code == 409 and late.headers["content-type"].startswith("application/problem+json")
        # The restarted runtime still runs new turns in the kept conversation.
        again = api(second, "POST", f"/v1/conversations/{cid}/messages", USER, {"content": "And the cabin?"})
        assert again.status_code == 200 and again.json()["turn"] == 3, again.text
        assert again.json()["status"] == "answered", again.text
    finally:
        second.stop()
