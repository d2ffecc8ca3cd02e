"""`/v1/memory` through the api handler, with the real memory function behind it over fakes: the caller sees,
sets and deletes only their own memory; bad input is a 4xx problem naming the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from functions.api.handler import handler
from functions.memory.handler import handler as memory_handler
from functions.memory.service import Turn
from tests.conftest import sample_event
from tests.fakes import MemoryEmbeddings, MemoryFunction, MemorySearchIndex, MemoryTable


@pytest.fixture
def memory(fakes, lambda_context):
    fakes.__dict__.update(
        memory_table=MemoryTable(),
        memory_index=MemorySearchIndex(),
        embedding_model=MemoryEmbeddings(),
        memory_function=MemoryFunction("memory", lambda request: memory_handler(request, lambda_context)),
    )
    return fakes


def call(
    lambda_context, method: str, path: str, body: Any = None, *, tenant="acme", sub="alice", scopes="memory", query=None
):
    event = copy.deepcopy(sample_event("api/search.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = f"{method} {path}"
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    event["queryStringParameters"] = query
    event["body"] = None if body is None else json.dumps(body)
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    claims["tenant"], claims["sub"] = tenant, sub
    event["requestContext"]["authorizer"]["jwt"]["scopes"] = scopes.split()
    response = handler(event, lambda_context)
    return response["statusCode"], response["headers"], json.loads(response["body"] or "null")


def learn(question: str, answer: str, *, user: str = "alice") -> None:
    from functions.memory.handler import service

    service().learn(Turn("acme", user, "c_1", 1, question, answer, answered=True))


def test_put_then_get_shows_the_callers_preferences(memory, lambda_context):
    status, _, body = call(lambda_context, "PUT", "/v1/memory/preferences/language", {"value": "German"})
    assert status == 200 and (body["kind"], body["key"], body["value"], body["source"]) == (
        "preference",
        "language",
        "German",
        "explicit",
    )
    learn("I'm in the EU office. Where is ORD-1042?", "ORD-1042 shipped [1].")
    status, _, body = call(lambda_context, "GET", "/v1/memory")
    assert status == 200
    assert sorted((i["kind"], i["key"]) for i in body["items"]) == [
        ("fact", "ORD-1042"),
        ("preference", "language"),
        ("preference", "office"),
    ]
    status, _, body = call(lambda_context, "GET", "/v1/memory", query={"kind": "fact"})
    assert status == 200 and [i["kind"] for i in body["items"]] == ["fact"]


def test_another_user_sees_none_of_it_and_cannot_delete_it(memory, lambda_context):
    _, _, mine = call(lambda_context, "PUT", "/v1/memory/preferences/office", {"value": "EU"})
    assert call(lambda_context, "GET", "/v1/memory", sub="bob")[2] == {"items": []}
    assert call(lambda_context, "GET", "/v1/memory", tenant="globex")[2] == {"items": []}
    status, headers, _ = call(lambda_context, "DELETE", f"/v1/memory/{mine['id']}", sub="bob")
    assert status == 404 and headers["Content-Type"] == "application/problem+json"
    assert [i["id"] for i in call(lambda_context, "GET", "/v1/memory")[2]["items"]] == [mine["id"]]


def test_delete_one_and_delete_all_reach_the_index(memory, lambda_context):
    learn("Where is ORD-1042?", "ORD-1042 shipped [1].")
    learn("Where is ORD-2000?", "ORD-2000 is late [1].", user="bob")
    call(lambda_context, "PUT", "/v1/memory/preferences/office", {"value": "EU"})
    fact = next(i for i in call(lambda_context, "GET", "/v1/memory")[2]["items"] if i["kind"] == "fact")
    assert memory.memory_index.count("acme") == 2  # alice's fact, bob's fact
    assert call(lambda_context, "DELETE", f"/v1/memory/{fact['id']}")[:3:2] == (200, {"deleted": 1})
    assert memory.memory_index.count("acme") == 1
    # The preference, and the conversation's summary row (its turns not yet summarized)
    assert call(lambda_context, "DELETE", "/v1/memory")[:3:2] == (200, {"deleted": 2})
    assert call(lambda_context, "GET", "/v1/memory")[2] == {"items": []}
    assert memory.memory_index.count("acme") == 1  # bob's fact stays
    assert [i["key"] for i in call(lambda_context, "GET", "/v1/memory", sub="bob")[2]["items"]] == ["ORD-2000"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/v1/memory/preferences/Bad-Key", {"value": "x"}, "key"),
        ("PUT", "/v1/memory/preferences/office", {"value": "  "}, "value"),
        ("PUT", "/v1/memory/preferences/office", {"value": "x" * 201}, "value"),
        ("PUT", "/v1/memory/preferences/office", {"value": "EU", "tenant": "globex"}, "tenant"),
        ("DELETE", "/v1/memory/not-an-id", None, "memory_id"),
        ("GET", "/v1/memory", None, "kind"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field(memory, lambda_context, method, path, body, field):
    query = {"kind": "secret"} if method == "GET" else None
    status, headers, problem = call(lambda_context, method, path, body, query=query)
    assert status == 422 and headers["Content-Type"] == "application/problem+json", problem
    assert any(field in e["field"] for e in problem["errors"]), problem


def test_memory_needs_the_memory_scope(memory, lambda_context):
    status, _, _ = call(lambda_context, "GET", "/v1/memory", scopes="conversations")
    assert status == 403


def test_the_routes_are_in_the_openapi_document(memory):
    from functions.api.handler import openapi_document

    paths = json.loads(openapi_document())["paths"]
    assert set(paths["/v1/memory"]) >= {"get", "delete"}
    assert "put" in paths["/v1/memory/preferences/{key}"] and "delete" in paths["/v1/memory/{memory_id}"]
