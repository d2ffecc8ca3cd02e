"""Memory on the local stack (issue 14, check 5), through the conversation API: a preference stated in one
conversation shapes the answer in the next; after DELETE it does not. Everything is real: the agent loop's ASL on
moto, turn.completed -> the memory rule -> the memory function (table + its own embedded index), recall in the
load step, the retrieval function and the gateway's extractive answerer over the real embedding model."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.integration.conftest import bearer, seed_passages, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCOPES = ("conversations", "memory", "search")
# Two near-duplicate policies: which one answers depends on which office the user is in.
DOCS = {
    "acme": [
        (
            "travel-us",
            "Travel policy",
            "Travel policy for the US office: the daily meal allowance is 75 dollars per day of business travel.",
        ),
        (
            "travel-eu",
            "Travel policy",
            "Travel policy for the EU office: the daily meal allowance is 60 euros per day of business travel.",
        ),
        ("cabin", "Cabin", "Cabin pressure is held near eight thousand feet of altitude."),
    ]
}
QUESTION = "What is the daily meal allowance for business travel?"


@pytest.fixture(scope="module")
def runtime_overrides() -> dict[str, Any]:
    return {"LOCAL_MODELS": "embedding"}  # the extractive answerer needs only the embedding model


@pytest.fixture(scope="module")
def stack(runtime):
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    seed_passages(DOCS)
    return runtime


def api(rt, method: str, path: str, body: Any = None, subject: str = "alice") -> requests.Response:
    headers = bearer(rt, "acme", SCOPES, subject=subject)
    return requests.request(method, f"{rt.http_url}{path}", json=body, headers=headers, timeout=60)


def ask(rt, content: str, subject: str = "alice") -> dict[str, Any]:
    created = api(rt, "POST", "/v1/conversations", {}, subject)
    assert created.status_code == 201, created.text
    response = api(rt, "POST", f"/v1/conversations/{created.json()['id']}/messages", {"content": content}, subject)
    assert response.status_code == 200, response.text
    turn = response.json()
    assert turn["status"] == "answered", turn
    return turn


def memory(rt, subject: str = "alice") -> list[dict[str, Any]]:
    response = api(rt, "GET", "/v1/memory", subject=subject)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_preference_stated_in_one_conversation_shapes_the_answer_in_the_next_until_deleted(stack):
    baseline = ask(stack, QUESTION, subject="bob")  # a user the platform knows nothing about
    ask(stack, "I'm in the EU office and I travel a lot.")
    office = wait_for(lambda: next((i for i in memory(stack) if i["key"] == "office"), None), timeout_s=30)
    assert (office["kind"], office["value"], office["source"]) == ("preference", "EU", "extracted")

    remembered = ask(stack, QUESTION)
    assert "60 euros" in remembered["answer"] and "75 dollars" not in remembered["answer"], remembered["answer"]
    assert [c["doc_id"] for c in remembered["citations"]] == ["travel-eu"]
    # Memory shapes the search, it is never a search result: every passage found is one of the tenant's documents.
    searched = [p for r in remembered["tool_runs"] for p in r["result"]["passages"]]
    assert searched and {p["citation"]["doc_id"] for p in searched} <= {d for d, _, _ in DOCS["acme"]}
    found = api(stack, "POST", "/v1/search", {"query": "EU office travel"}).json()
    assert {h["citation"]["doc_id"] for h in found["hits"]} <= {d for d, _, _ in DOCS["acme"]}

    deleted = api(stack, "DELETE", f"/v1/memory/{office['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 1}
    assert not any(i["key"] == "office" for i in memory(stack))
    forgotten = ask(stack, QUESTION)
    assert forgotten["answer"] == baseline["answer"], (forgotten["answer"], baseline["answer"])
    assert forgotten["answer"] != remembered["answer"]


def test_delete_all_forgets_everything_and_other_users_keep_theirs(stack):
    ask(stack, "Call me Sam. Where is ORD-1042?", subject="carol")
    ask(stack, "I'm in the US office.", subject="dave")
    wait_for(lambda: {i["key"] for i in memory(stack, "carol")} >= {"name", "ORD-1042"}, timeout_s=30)
    wait_for(lambda: memory(stack, "dave"), timeout_s=30)
    cleared = api(stack, "DELETE", "/v1/memory", subject="carol")
    assert cleared.status_code == 200 and cleared.json()["deleted"] >= 2
    assert memory(stack, "carol") == []
    assert [i["key"] for i in memory(stack, "dave") if i["kind"] == "preference"] == ["office"]
