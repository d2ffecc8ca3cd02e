"""The api handler with in-memory fakes: health, OpenAPI, and the one error model."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
from openapi_spec_validator import validate

from agentplatform.topology import PLATFORM
from functions.api.handler import handler
from functions.api.health import Component
from tests.conftest import sample_event
from tests.fakes import MemoryEmbeddings, MemoryFunction, MemorySearchIndex, MemoryTable


def call(event, lambda_context):
    response = handler(event, lambda_context)
    return response["statusCode"], response["headers"], json.loads(response["body"])


def request(path: str, query: str = "", method: str = "GET", body: str | None = None):
    event = copy.deepcopy(sample_event("api/health.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if body is not None:
        event["body"] = body
    return event


@pytest.fixture
def healthy(fakes, monkeypatch):
    """The fakes plus every table of the topology, the search index, the embedding endpoint and the retrieval
    function; no generation endpoint (this deployment has none)."""
    tables = {t.name: MemoryTable() for t in PLATFORM.tables}
    monkeypatch.setattr(fakes, "table", tables.__getitem__)
    search_index = MemorySearchIndex()  # what the retrieval function's health operation checks
    fakes.__dict__.update(
        search_index=search_index,
        embedding_model=MemoryEmbeddings(),
        retrieval_function=MemoryFunction("retrieval", lambda event: search_index.check()),
    )
    return SimpleNamespace(container=fakes, tables=tables)


def test_health_reports_every_component_ok_and_the_missing_one_absent(healthy, lambda_context):
    status, headers, body = call(request("/health"), lambda_context)
    assert status == 200
    assert body["status"] == "ok"
    by_name = {c["name"]: c for c in body["components"]}
    assert set(by_name) == {c.value for c in Component}
    assert by_name.pop("generation_endpoint")["status"] == "absent"
    assert {c["status"] for c in by_name.values()} == {"ok"}
    assert headers["x-correlation-id"] == "8d7f6c1e-health-sample"


def test_health_is_503_and_names_the_component_that_is_down(healthy, lambda_context):
    healthy.container.alerts_queue.available = False
    status, _, body = call(request("/health"), lambda_context)
    assert status == 503
    assert body["status"] == "degraded"
    down = [c for c in body["components"] if c["status"] == "down"]
    assert [c["name"] for c in down] == ["queue"]
    assert "unreachable" in down[0]["detail"]


@pytest.mark.parametrize(
    ("adapter", "named"),
    [
        ("search_index", ["search_index"]),
        ("embedding_model", ["embedding_endpoint"]),
        # The search index is checked through the retrieval function: without it, search is unreachable too.
        ("retrieval_function", ["search_index", "retrieval_function"]),
    ],
)
def test_a_search_model_or_retrieval_outage_is_a_503_naming_it(healthy, lambda_context, adapter, named):
    getattr(healthy.container, adapter).available = False
    status, _, body = call(request("/health"), lambda_context)
    assert status == 503
    assert [c["name"] for c in body["components"] if c["status"] == "down"] == named


def test_every_table_of_the_topology_is_checked_and_a_down_one_named(healthy, lambda_context):
    healthy.tables["memory"].available = False
    status, _, body = call(request("/health", "component=table"), lambda_context)
    assert status == 503
    (table,) = body["components"]
    assert table["status"] == "down" and table["detail"].startswith("table memory:")


def test_health_of_one_component(healthy, lambda_context):
    status, _, body = call(request("/health", "component=table"), lambda_context)
    assert status == 200
    assert [c["name"] for c in body["components"]] == ["table"]


def test_missing_setting_is_a_down_component_not_a_crash(lambda_context, monkeypatch):
    # No fakes and no environment: every adapter lacks its setting.
    for name in ("DROP_BUCKET_NAME", "ALERTS_QUEUE_URL", "DOCUMENTS_TABLE_NAME"):
        monkeypatch.delenv(name, raising=False)
    from agentplatform.bootstrap import use_container
    from agentplatform.config import reset_settings

    reset_settings()
    use_container(None)
    status, _, body = call(request("/health", "component=object_store"), lambda_context)
    assert status == 503
    assert body["components"][0]["detail"] == "setting DROP_BUCKET_NAME is not set"
    # An optional component without its setting is absent: reported, and no outage.
    monkeypatch.delenv("GENERATION_ENDPOINT_NAME", raising=False)
    status, _, body = call(request("/health", "component=generation_endpoint"), lambda_context)
    assert status == 200
    assert body["components"][0]["status"] == "absent"


def test_invalid_query_parameter_is_a_422_problem_naming_the_field(fakes, lambda_context):
    status, headers, body = call(request("/health", "component=everything"), lambda_context)
    assert status == 422
    assert headers["Content-Type"] == "application/problem+json"
    assert body["errors"][0]["field"] == "query.component"
    assert "query.component" in body["detail"]
    assert body["status"] == 422 and body["title"] and body["type"].startswith("https://")


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("POST", "/v1/unknown"), ("DELETE", "/health/x")])
def test_unknown_route_is_a_404_problem(fakes, lambda_context, method, path):
    status, headers, body = call(request(path, method=method), lambda_context)
    assert status == 404
    assert headers["Content-Type"] == "application/problem+json"
    assert body["code"] == "not_found" and body["instance"] == path


def test_oversized_body_is_a_413_problem(fakes, lambda_context, monkeypatch):
    monkeypatch.setenv("MAX_REQUEST_BYTES", "100")
    from agentplatform.config import reset_settings

    reset_settings()
    status, _, body = call(request("/health", method="GET", body="x" * 101), lambda_context)
    assert status == 413
    assert "limit is 100" in body["detail"]


def test_every_response_carries_security_headers_and_correlation_id(fakes, lambda_context):
    for event in (request("/health"), request("/nope"), request("/health", "component=bad")):
        _, headers, _ = call(event, lambda_context)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["x-correlation-id"]


def test_openapi_is_a_valid_openapi_3_document_and_errors_are_problems(fakes, lambda_context):
    status, _, document = call(request("/openapi.json"), lambda_context)
    assert status == 200
    validate(document)
    assert document["openapi"].startswith("3.")
    health = document["paths"]["/health"]["get"]
    assert "application/problem+json" in health["responses"]["422"]["content"]
    assert "/openapi.json" not in document["paths"]
    assert "Problem" in document["components"]["schemas"]
