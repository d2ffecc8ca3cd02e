"""The terminal chat (`python -m local chat`) driven through a fake HTTP session."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local import chat

TURN = {
    "conversation_id": "c_01",
    "turn": 1,
    "status": "answered",
    "question": "What is the hotel limit in Paris?",
    "answer": "The nightly hotel limit is EUR 200 in London, Paris and Amsterdam [1].",
    "answer_kind": "extractive",
    "citations": [
        {
            "ref": 1,
            "doc_id": "d1",
            "path": "finance/travel-expense-policy-eu.docx",
            "title": "Travel and Expense Policy (EU)",
            "section": "Hotels",
            "page": None,
        }
    ],
    "tool_runs": [{"name": "knowledge_search", "arguments": {"query": "hotel limit Paris"}, "status": "ok"}],
    "model_ms": 90.0,
    "total_ms": 420.0,
}


class FakeResponse:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self._body = body
        self.headers = headers or {}
        self.text = json.dumps(body)

    def json(self) -> Any:
        return self._body


class FakeSession:
    """Answers by (method, path) from a script; each entry is a list of responses used in order."""

    def __init__(self, script: dict[tuple[str, str], list[FakeResponse]]) -> None:
        self.script = script
        self.headers: dict[str, str] = {}
        self.requests: list[tuple[str, str, Any]] = []

    def request(self, method: str, url: str, json: Any = None, timeout: float | None = None) -> FakeResponse:
        path = url.removeprefix("http://api.test")
        self.requests.append((method, path, json))
        answers = self.script.get((method, path))
        if not answers:
            return FakeResponse(404, {"title": "Not found", "detail": f"no route {method} {path}", "status": 404})
        return answers.pop(0) if len(answers) > 1 else answers[0]


def drive(session: FakeSession, lines: list[str]) -> list[str]:
    out: list[str] = []
    feed = iter(lines)

    def read(prompt: str) -> str:
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    client = chat.ChatClient("http://api.test", "tok", session=session)
    assert chat.run(client, read=read, write=out.append) == 0
    assert session.headers["Authorization"] == "Bearer tok"
    return out


@pytest.fixture(autouse=True)
def fast_poll(monkeypatch) -> None:
    monkeypatch.setattr(chat, "POLL_S", 0)


def test_asks_and_shows_the_answer_its_citations_and_tools() -> None:
    session = FakeSession(
        {
            ("POST", "/v1/conversations"): [FakeResponse(201, {"id": "c_01"})],
            ("POST", "/v1/conversations/c_01/messages"): [FakeResponse(200, TURN)],
        }
    )
    out = "\n".join(drive(session, ["What is the hotel limit in Paris?", "/quit"]))
    assert "EUR 200" in out and "[1] finance/travel-expense-policy-eu.docx" in out
    assert "Travel and Expense Policy (EU), section Hotels" in out
    assert "knowledge_search(query='hotel limit Paris') -> ok" in out
    asked = ("POST", "/v1/conversations/c_01/messages", {"content": "What is the hotel limit in Paris?"})
    assert asked in session.requests


def test_a_202_is_polled_until_the_turn_is_answered() -> None:
    running = {**TURN, "status": "running", "answer": None}
    session = FakeSession(
        {
            ("POST", "/v1/conversations"): [FakeResponse(201, {"id": "c_01"})],
            ("POST", "/v1/conversations/c_01/messages"): [
                FakeResponse(202, running, {"Location": "/v1/conversations/c_01/turns/1"})
            ],
            ("GET", "/v1/conversations/c_01/turns/1"): [FakeResponse(200, running), FakeResponse(200, TURN)],
        }
    )
    out = "\n".join(drive(session, ["What is the hotel limit in Paris?"]))
    assert "EUR 200" in out
    assert [r for r in session.requests if r[0] == "GET"] == [("GET", "/v1/conversations/c_01/turns/1", None)] * 2


def test_an_escalated_turn_is_listed_resolved_and_its_answer_shown() -> None:
    waiting = {**TURN, "status": "waiting", "answer": None, "citations": [], "escalation_id": "e_9"}
    answered = {**TURN, "answer": "An operator: your laptop ships Monday.", "answer_kind": "operator", "citations": []}
    escalation = {
        "id": "e_9",
        "status": "open",
        "requested_by": "alice",
        "reason": "user asked for a person",
        "question": "Talk to a human please",
        "pending_tools": [],
    }
    session = FakeSession(
        {
            ("POST", "/v1/conversations"): [FakeResponse(201, {"id": "c_01"})],
            ("POST", "/v1/conversations/c_01/messages"): [
                FakeResponse(202, waiting, {"Location": "/v1/conversations/c_01/turns/1"})
            ],
            ("GET", "/v1/conversations/c_01/turns/1"): [FakeResponse(200, waiting), FakeResponse(200, answered)],
            ("GET", "/v1/escalations"): [FakeResponse(200, {"escalations": [escalation]})],
            ("POST", "/v1/escalations/e_9/resolve"): [FakeResponse(200, {**escalation, "status": "answered"})],
        }
    )
    out = "\n".join(
        drive(
            session,
            ["Talk to a human please", "/escalations", '/resolve e_9 answer "your laptop ships Monday."', "/quit"],
        )
    )
    assert "Waiting for an operator (escalation e_9)" in out
    assert "e_9  open  by alice  user asked for a person" in out
    assert "Escalation e_9 answered." in out and "your laptop ships Monday." in out
    assert ("POST", "/v1/escalations/e_9/resolve", {"action": "answer", "text": "your laptop ships Monday."}) in (
        session.requests
    )


def test_new_conversation_bad_commands_and_problem_details() -> None:
    problem = {
        "title": "Request validation failed",
        "status": 422,
        "detail": "invalid request",
        "errors": [{"loc": ["body", "content"], "message": "String should have at least 1 character"}],
    }
    session = FakeSession(
        {
            ("POST", "/v1/conversations"): [FakeResponse(201, {"id": "c_01"}), FakeResponse(201, {"id": "c_02"})],
            ("POST", "/v1/conversations/c_02/messages"): [FakeResponse(422, problem)],
        }
    )
    out = "\n".join(drive(session, ["/new", "/resolve e_1", "/resolve e_1 answer", "/frobnicate", "x"]))
    assert "Conversation c_02." in out
    assert out.count("usage: /resolve") == 2 and "unknown command /frobnicate" in out
    assert "error 422: invalid request (body.content: String should have at least 1 character)" in out


def test_an_unreachable_stack_is_reported_not_raised() -> None:
    class Down(FakeSession):
        def request(self, *args: Any, **kwargs: Any) -> FakeResponse:
            if len(self.requests) >= 1:
                raise ConnectionError("connection refused")
            self.requests.append(("POST", "/v1/conversations", None))
            return FakeResponse(201, {"id": "c_01"})

    out = "\n".join(drive(Down({}), ["hello"]))
    assert "cannot reach the platform: connection refused" in out


def test_the_chat_subcommand_is_wired(monkeypatch) -> None:
    from local import __main__ as cli

    seen = {}
    monkeypatch.setattr(chat, "main", lambda url, tenant, user: seen.update(url=url, tenant=tenant, user=user) or 0)
    assert cli.main(["chat", "--url", "http://x:1", "--tenant", "globex", "--user", "bob"]) == 0
    assert seen == {"url": "http://x:1", "tenant": "globex", "user": "bob"}
