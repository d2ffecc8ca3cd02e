"""POST /v1/search through the api handler: the caller from the authorizer, the search from the retrieval
function (here run in-process over the fakes), and problem+json for every bad request."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agentplatform.bootstrap import Container
from agentplatform.principal import principal_from_event
from agentplatform.search import Chunk
from functions.api.handler import handler, openapi_document
from functions.retrieval.handler import handler as retrieval_handler
from tests.conftest import sample_event
from tests.fakes import MemoryEmbeddings, MemoryFunction, MemorySearchIndex

EMBED = MemoryEmbeddings()


def doc(tenant: str, doc_id: str, text: str) -> Chunk:
    return Chunk(
        chunk_id=f"{doc_id}:1:0",
        tenant=tenant,
        doc_id=doc_id,
        doc_version="1",
        text=text,
        vector=EMBED.embed([text])[0],
        title=doc_id,
        path=f"{doc_id}.md",
    )


@pytest.fixture
def search_fakes(fakes: Container, lambda_context: Any) -> Iterator[Container]:
    index = MemorySearchIndex()
    index.upsert(
        [
            doc("acme", "handbook", "Boundary layer transition moves forward at high speed."),
            doc("globex", "secret-plan", "Boundary layer transition secrets of globex."),
        ]
    )
    fakes.__dict__.update(
        search_index=index,
        embedding_model=EMBED,
        retrieval_function=MemoryFunction("retrieval", lambda event: retrieval_handler(event, lambda_context)),
    )
    yield fakes


def search_event(body: Any, *, tenant: str = "acme", scopes: str = "agentplatform/search", auth: bool = True):
    event = copy.deepcopy(sample_event("api/search.json"))
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    if not auth:
        del event["requestContext"]["authorizer"]
    else:
        event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant"] = tenant
        event["requestContext"]["authorizer"]["jwt"]["scopes"] = scopes.split()
    return event


def call(event: dict[str, Any], lambda_context: Any) -> tuple[int, dict[str, str], Any]:
    response = handler(event, lambda_context)
    return response["statusCode"], response["headers"], json.loads(response["body"])


def test_search_answers_the_callers_tenant_only(search_fakes: Container, lambda_context: Any) -> None:
    status, headers, body = call(search_event({"query": "boundary layer transition"}), lambda_context)
    assert status == 200, body
    assert [h["citation"]["doc_id"] for h in body["hits"]] == ["handbook"]
    assert body["context"]["pieces"][0]["citation"]["path"] == "handbook.md"
    assert headers["x-correlation-id"] == "5b1e0a77-search-sample"
    sent = search_fakes.retrieval_function.payloads[0]
    assert sent["tenant"] == "acme" and sent["acl_groups"] == ["engineering"]

    status, _, body = call(search_event({"query": "boundary layer transition"}, tenant="globex"), lambda_context)
    assert [h["citation"]["doc_id"] for h in body["hits"]] == ["secret-plan"]


def test_the_body_cannot_choose_the_tenant(search_fakes: Container, lambda_context: Any) -> None:
    status, _, body = call(search_event({"query": "boundary", "tenant": "globex"}), lambda_context)
    assert status == 422 and body["errors"][0]["field"] == "body.tenant"


def test_without_credentials_401_and_without_the_scope_403(search_fakes: Container, lambda_context: Any) -> None:
    status, _, body = call(search_event({"query": "x"}, auth=False), lambda_context)
    assert status == 401 and body["code"] == "unauthorized"
    status, _, body = call(search_event({"query": "x"}, scopes="agentplatform/documents:write"), lambda_context)
    assert status == 403 and body["code"] == "forbidden"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "body.query"),
        ({"query": "   "}, "body.query"),
        ({}, "body.query"),
        ({"query": "x", "top_k": 0}, "body.top_k"),
        ({"query": "x", "top_k": 10_000}, "body.top_k"),
        ({"query": "x", "mode": "fuzzy"}, "body.mode"),
        ({"query": "x", "filters": {"colour": "red"}}, "body.filters.colour"),
        ({"query": "x", "filters": {"path_prefix": "reports"}}, "body.filters.path_prefix"),
        ({"query": "x", "context_tokens": -1}, "body.context_tokens"),
        ("not json", "body"),
        ({"query": "x", "top_k": "5"}, "body.top_k"),
        ({"query": "x", "top_k": 2.5}, "body.top_k"),
        ({"query": "x", "top_k": True}, "body.top_k"),
        ([{"query": "x"}], "body"),  # a list is not the object the operation takes (not its first element)
        ([], "body"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field(
    search_fakes: Container, lambda_context: Any, body: Any, field: str
) -> None:
    status, headers, problem = call(search_event(body), lambda_context)
    assert status == 422, problem
    assert headers["Content-Type"] == "application/problem+json"
    assert field in [e["field"] for e in problem["errors"]]


def test_a_whole_number_written_as_a_float_is_an_integer(search_fakes: Container, lambda_context: Any) -> None:
    # JSON Schema, and clients, count 4.0 as the integer 4.
    status, _, body = call(search_event({"query": "boundary layer transition", "top_k": 1.0}), lambda_context)
    assert status == 200, body
    assert len(body["hits"]) == 1


def test_a_retrieval_failure_is_a_problem(search_fakes: Container, lambda_context: Any) -> None:
    search_fakes.search_index.available = False
    status, _, problem = call(search_event({"query": "boundary"}), lambda_context)
    assert status == 503 and problem["code"] == "dependency_unavailable"


def test_openapi_documents_the_search_route() -> None:
    document = json.loads(openapi_document())
    operation = document["paths"]["/v1/search"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/SearchBody")
    assert document["components"]["schemas"]["SearchBody"]["examples"]


@pytest.mark.parametrize(
    ("authorizer", "expected"),
    [
        (
            {"jwt": {"claims": {"sub": "u1", "tenant": "acme", "groups": "[a b]"}, "scopes": ["agentplatform/search"]}},
            ("acme", "u1", {"search"}, ("a", "b")),
        ),
        (
            {"jwt": {"claims": {"sub": "u2", "custom:tenant": "acme", "scope": "search chat"}}},
            ("acme", "u2", {"search", "chat"}, ()),
        ),
        (
            {
                "lambda": {
                    "sub": "apikey:k1",
                    "tenant": "acme",
                    "scopes": "search",
                    "groups": "",
                    "credential": "api_key",
                }
            },
            ("acme", "apikey:k1", {"search"}, ()),
        ),
    ],
)
def test_the_principal_comes_from_the_authorizer(authorizer: dict[str, Any], expected: tuple) -> None:
    principal = principal_from_event({"requestContext": {"authorizer": authorizer}})
    assert (principal.tenant, principal.subject, set(principal.scopes), principal.groups) == expected


def test_search_spends_model_tokens_and_a_spent_quota_is_429(search_fakes: Container, lambda_context: Any) -> None:
    meter = search_fakes.token_meter
    status, _, _ = call(search_event({"query": "boundary layer transition"}), lambda_context)
    assert status == 200 and meter.used("acme") == 7  # 26 characters at ~4 per token
    meter.spend("acme", search_fakes.settings.tenant_token_quota)
    status, headers, problem = call(search_event({"query": "boundary layer transition"}), lambda_context)
    assert status == 429 and problem["code"] == "quota_exceeded" and int(headers["Retry-After"]) >= 1
    status, _, _ = call(search_event({"query": "boundary", "mode": "bm25"}), lambda_context)
    assert status == 200  # BM25 spends no model tokens
    status, _, _ = call(search_event({"query": "boundary layer"}, tenant="globex"), lambda_context)
    assert status == 200


def test_openapi_says_who_may_call_each_operation_and_every_error_shape() -> None:
    document = json.loads(openapi_document())
    assert set(document["components"]["securitySchemes"]) == {"userToken", "apiKey"}
    assert document["paths"]["/health"]["get"]["security"] == []
    search = document["paths"]["/v1/search"]["post"]
    assert search["security"] == [{"userToken": ["search"]}, {"apiKey": ["search"]}]
    assert set(search["responses"]) >= {"200", "401", "403", "413", "415", "422", "429", "default"}
    assert "application/json" in search["responses"]["401"]["content"]  # the gateway's own {"message"}
    admin = document["paths"]["/v1/admin/api-keys"]["post"]
    assert admin["security"] == [{"userToken": ["admin"]}]  # no API keys on the admin routes
    assert "404" in document["paths"]["/v1/documents/{doc_id}"]["get"]["responses"]
