"""POST /v1/search end to end on the local stack: a bearer token of the dev issuer through the gateway's JWT
authorizer, the api function, Lambda Invoke into the retrieval function, the real embedding model on the
local model server, and the embedded engine on disk."""

from __future__ import annotations

import jwt
import pytest
import requests

from tests.integration.conftest import bearer, seed_passages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = {
    "acme": [
        ("wing", "Wing design", "Swept wings delay the drag rise near the speed of sound."),
        ("engine", "Maintenance", "Inspect the turbine blades for cracks after every hundred hours."),
        ("cabin", "Cabin", "Cabin pressure is held near eight thousand feet of altitude."),
    ],
    "globex": [("secret", "Globex wing", "Swept wings delay the drag rise: Globex's secret wing program.")],
}


@pytest.fixture(scope="module")
def runtime_overrides():
    return {"LOCAL_MODELS": "embedding"}


@pytest.fixture(scope="module")
def seeded(runtime):
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    seed_passages(DOCS)
    return runtime


def search(runtime, body, headers) -> requests.Response:
    return requests.post(f"{runtime.http_url}/v1/search", json=body, headers=headers, timeout=60)


def test_hybrid_search_finds_by_meaning_with_citations(seeded):
    # No word in common with the engine document: only the vector side can find it.
    response = search(seeded, {"query": "how often should engine parts be checked?", "top_k": 2}, bearer(seeded))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["hits"][0]["citation"]["doc_id"] == "engine"
    assert body["context"]["pieces"][0]["text"].startswith("[1] Maintenance | engine.md\n")
    assert response.headers["x-correlation-id"]


def test_another_tenant_never_sees_the_chunks(seeded):
    body = search(seeded, {"query": "swept wings drag rise", "top_k": 10}, bearer(seeded, "globex")).json()
    assert [h["citation"]["doc_id"] for h in body["hits"]] == ["secret"]
    body = search(seeded, {"query": "swept wings drag rise", "top_k": 10}, bearer(seeded, "initech")).json()
    assert body["hits"] == []


def test_modes_for_debugging(seeded):
    for mode in ("bm25", "vector"):
        body = search(seeded, {"query": "turbine blades", "mode": mode, "top_k": 1}, bearer(seeded)).json()
        assert body["hits"][0]["citation"]["doc_id"] == "engine"
        assert body["hits"][0][mode] is not None


def test_credentials_are_checked_by_the_gateway(seeded):
    body = {"query": "wings"}
    assert search(seeded, body, {}).status_code == 401
    assert search(seeded, body, {"Authorization": "Bearer not-a-jwt"}).status_code == 401
    assert search(seeded, body, bearer(seeded, ttl_s=-120)).status_code == 401  # expired (past the leeway)
    forged = jwt.encode({"sub": "x", "tenant": "acme", "scope": "search"}, "guessed-secret", algorithm="HS256")
    assert search(seeded, body, {"Authorization": f"Bearer {forged}"}).status_code == 401
    denied = search(seeded, body, bearer(seeded, scopes=("chat",)))
    assert denied.status_code == 403 and denied.json() == {"message": "Forbidden"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "body.query"),
        ({"query": "x", "top_k": 0}, "body.top_k"),
        ({"query": "x", "top_k": 10_000}, "body.top_k"),
        ({"query": "x", "filters": {"unknown": 1}}, "body.filters.unknown"),
    ],
)
def test_bad_input_is_problem_json(seeded, body, field):
    response = search(seeded, body, bearer(seeded))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
