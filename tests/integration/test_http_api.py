"""The HTTP API over real sockets (HTTP and HTTPS), through the local gateway into the real api handler."""

from __future__ import annotations

import pytest
import requests
from openapi_spec_validator import validate

from functions.api.health import Component
from tests.integration.conftest import bearer

pytestmark = pytest.mark.integration


def test_health_over_http_and_https(runtime):
    for base, verify in ((runtime.http_url, True), (runtime.https_url, False)):
        response = requests.get(f"{base}/health", timeout=30, verify=verify)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ok"
        assert len(body["components"]) == len(Component)
        # This runtime hosts no models (LOCAL_MODELS=none): the endpoints are absent, every other component ok.
        absent = {c["name"] for c in body["components"] if c["status"] != "ok"}
        assert absent == {"embedding_endpoint", "generation_endpoint"}
        assert {c["status"] for c in body["components"] if c["name"] in absent} == {"absent"}


def test_https_certificate_is_self_signed_for_localhost(runtime):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{runtime.https_url}/health", timeout=10)
    cert = runtime.settings.data_dir / "tls" / "cert.pem"
    response = requests.get(f"{runtime.https_url}/health", timeout=10, verify=str(cert))
    assert response.status_code == 200


def test_openapi_document_is_valid(runtime):
    response = requests.get(f"{runtime.http_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    validate(response.json())


def test_correlation_id_header_round_trips(runtime):
    response = requests.get(f"{runtime.http_url}/health", headers={"X-Correlation-Id": "from-client-42"}, timeout=10)
    assert response.headers["x-correlation-id"] == "from-client-42"


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("GET", "/health?component=nope", 422, "query.component"),
        ("GET", "/no/such/route", 404, None),
        ("POST", "/health", 405, None),
        ("PATCH", "/v1/anything", 404, None),
        ("PUT", "/v1/documents", 405, None),
    ],
)
def test_bad_requests_get_problem_json_never_500(runtime, method, path, status, field):
    response = requests.request(
        method, f"{runtime.http_url}{path}", data=b"{not json", headers=bearer(runtime), timeout=10
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    if field:
        assert [e["field"] for e in problem["errors"]] == [field]
    if status == 405:
        assert response.headers["allow"] in ("GET", "GET, POST")


def test_oversized_request_is_413(runtime):
    body = b"x" * (1024 * 1024 + 1)
    response = requests.post(f"{runtime.http_url}/v1/search", data=body, headers=bearer(runtime), timeout=30)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_docs_page_renders_the_openapi_document(runtime):
    response = requests.get(f"{runtime.http_url}/docs", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert 'url: "openapi.json"' in response.text and "swagger-ui-bundle.js" in response.text
    assert "script-src" in response.headers["content-security-policy"]


def test_a_chunked_request_body_is_read_not_taken_as_empty(runtime):
    def chunks(*parts: bytes):
        yield from parts  # requests sends a generator with Transfer-Encoding: chunked

    url, headers = f"{runtime.http_url}/v1/search", {**bearer(runtime), "Content-Type": "application/json"}
    response = requests.post(url, data=chunks(b'{"query": ', b'"   "}'), headers=headers, timeout=30)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["body.query"]  # the body arrived whole
    big = chunks(*([b"x" * 65536] * 17))  # 1.06 MiB, over the payload limit
    assert requests.post(url, data=big, headers=headers, timeout=30).status_code == 413
