"""The API's door over real sockets: authentication on every route and method, tenants kept apart (404, not
403), per-tenant rate limits with Retry-After, API keys that stop working when revoked, bad JWTs refused."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import jwt
import pytest
import requests

from agentplatform.topology import ADMIN_SCOPE, PLATFORM
from local.auth import DevIssuer
from local.runtime import LocalRuntime
from tests.integration.conftest import bearer, start_runtime

pytestmark = pytest.mark.integration

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CACHE_S = 1.0  # the gateway's authorizer cache here (60 s in AWS and by default)
RATE, BURST = 5, 10


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[LocalRuntime]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TENANT_RATE_PER_S", str(RATE))
        env.setenv("TENANT_BURST", str(BURST))
        rt = start_runtime(tmp_path_factory, LOCAL_AUTHORIZER_CACHE_S=CACHE_S)
        yield rt
        rt.stop()


def admin(rt: LocalRuntime, tenant: str) -> dict[str, str]:
    return bearer(rt, tenant, scopes=[ADMIN_SCOPE], subject=f"{tenant}-admin")


def url(rt: LocalRuntime, path: str) -> str:
    return f"{rt.http_url}{path}"


def concrete(path: str) -> str:
    return path.replace("{doc_id}", "0" * 32).replace("{key_id}", "0123456789abcdef")


PROTECTED = [r for r in PLATFORM.routes if not r.public and r.path != "$default"]


def test_every_route_but_health_and_the_docs_needs_credentials_on_every_method(runtime):
    for route in PROTECTED:
        for method in METHODS:
            response = requests.request(method, url(runtime, concrete(route.path)), json={}, timeout=30)
            assert response.status_code == 401, (method, route.path, response.text)
            assert response.json() == {"message": "Unauthorized"}
    for path in ("/health", "/openapi.json", "/docs"):
        assert requests.get(url(runtime, path), timeout=30).status_code == 200, path


def test_a_token_without_the_routes_scope_gets_403_on_every_method(runtime):
    for n, route in enumerate(PROTECTED):
        path = url(runtime, concrete(route.path))
        # A tenant per route: its requests stay within the tenant's rate.
        scopeless = bearer(runtime, f"tenant-{n}", scopes=[])
        for method in METHODS:
            response = requests.request(method, path, headers=scopeless, timeout=30)
            assert response.status_code == 403, (method, route.path, response.text)
        # With a scope of the path, its other methods are 405 with the ones it takes.
        holder = bearer(runtime, f"tenant-{n}", scopes=route.scopes)
        taken = {r.method for r in PROTECTED if r.path == route.path}
        for method in set(METHODS) - taken:
            other = requests.request(method, path, headers=holder, timeout=30)
            assert other.status_code == 405, (method, route.path, other.text)
            assert other.headers["content-type"] == "application/problem+json"
            assert set(other.headers["allow"].split(", ")) == taken


def test_expired_and_wrongly_signed_tokens_get_401(runtime, tmp_path):
    documents = url(runtime, "/v1/documents")
    assert requests.get(documents, headers=bearer(runtime, ttl_s=-120), timeout=30).status_code == 401
    stranger = DevIssuer(tmp_path / "stranger").mint(tenant="acme", subject="eve", scopes=["documents:read"])
    assert requests.get(documents, headers={"Authorization": f"Bearer {stranger}"}, timeout=30).status_code == 401
    forged = jwt.encode({"sub": "eve", "tenant": "acme", "scope": "documents:read"}, "x" * 32, algorithm="HS256")
    assert requests.get(documents, headers={"Authorization": f"Bearer {forged}"}, timeout=30).status_code == 401
    for path in ("/v1/documents", "/v1/admin/api-keys"):  # both authorizers
        response = requests.get(url(runtime, path), headers=bearer(runtime, ttl_s=-120), timeout=30)
        assert response.status_code == 401, path


def test_another_tenants_ids_are_404_on_every_tenant_scoped_route(runtime):
    upload = {"path": "plans/secret.md", "content_base64": base64.b64encode(b"# Secret\nacme only.").decode()}
    created = requests.post(url(runtime, "/v1/documents"), json=upload, headers=bearer(runtime, "acme"), timeout=30)
    assert created.status_code == 202, created.text
    doc_id = created.json()["id"]
    key = requests.post(
        url(runtime, "/v1/admin/api-keys"),
        json={"name": "acme-ci", "scopes": ["search"]},
        headers=admin(runtime, "acme"),
        timeout=30,
    ).json()

    globex, globex_admin = bearer(runtime, "globex"), admin(runtime, "globex")
    for method in ("GET", "DELETE"):
        response = requests.request(method, url(runtime, f"/v1/documents/{doc_id}"), headers=globex, timeout=30)
        assert response.status_code == 404 and response.json()["code"] == "not_found", (method, response.text)
    revoke = requests.delete(url(runtime, f"/v1/admin/api-keys/{key['key_id']}"), headers=globex_admin, timeout=30)
    assert revoke.status_code == 404
    listed = requests.get(url(runtime, "/v1/documents"), headers=globex, timeout=30).json()["documents"]
    assert doc_id not in {d["id"] for d in listed}
    keys = requests.get(url(runtime, "/v1/admin/api-keys"), headers=globex_admin, timeout=30).json()["keys"]
    assert key["key_id"] not in {k["key_id"] for k in keys}
    search = {"query": "secret", "mode": "bm25", "filters": {"doc_ids": [doc_id]}}
    found = requests.post(url(runtime, "/v1/search"), json=search, headers=globex, timeout=30)
    assert found.status_code == 200 and found.json()["hits"] == []

    # Nothing of acme's was touched.
    assert requests.get(url(runtime, f"/v1/documents/{doc_id}"), headers=bearer(runtime, "acme"), timeout=30).ok
    mine = requests.get(url(runtime, "/v1/admin/api-keys"), headers=admin(runtime, "acme"), timeout=30).json()
    assert [k["status"] for k in mine["keys"] if k["key_id"] == key["key_id"]] == ["active"]


def test_a_burst_over_the_tenants_rate_gets_429_with_retry_after_and_other_tenants_go_on(runtime):
    noisy, quiet = bearer(runtime, "burst-a"), bearer(runtime, "burst-b")
    answers = [requests.get(url(runtime, "/v1/documents"), headers=noisy, timeout=30) for _ in range(BURST + 15)]
    throttled = [r for r in answers if r.status_code == 429]
    assert throttled, [r.status_code for r in answers]
    assert {r.status_code for r in answers} <= {200, 429}
    assert all(int(r.headers["retry-after"]) >= 1 for r in throttled)
    assert throttled[0].headers["content-type"] == "application/problem+json"
    assert throttled[0].json()["code"] == "throttled"
    assert requests.get(url(runtime, "/v1/documents"), headers=quiet, timeout=30).status_code == 200
    time.sleep(int(throttled[-1].headers["retry-after"]))
    assert requests.get(url(runtime, "/v1/documents"), headers=noisy, timeout=30).status_code == 200


def test_api_keys_work_for_their_scopes_and_stop_when_revoked(runtime):
    created = requests.post(
        url(runtime, "/v1/admin/api-keys"),
        json={"name": "nightly-sync", "scopes": ["documents:read"]},
        headers=admin(runtime, "acme"),
        timeout=30,
    )
    assert created.status_code == 201 and created.headers["location"].endswith(created.json()["key_id"])
    key = {"Authorization": f"Bearer {created.json()['key']}"}
    assert requests.get(url(runtime, "/v1/documents"), headers=key, timeout=30).status_code == 200
    assert requests.post(url(runtime, "/v1/search"), json={"query": "x"}, headers=key, timeout=30).status_code == 403
    assert requests.get(url(runtime, "/v1/admin/api-keys"), headers=key, timeout=30).status_code == 401  # users only
    listed = requests.get(url(runtime, "/v1/admin/api-keys"), headers=admin(runtime, "acme"), timeout=30).json()
    assert "key" not in listed["keys"][0] and all("secret" not in str(k) for k in listed["keys"])

    revoked = requests.delete(
        url(runtime, f"/v1/admin/api-keys/{created.json()['key_id']}"), headers=admin(runtime, "acme"), timeout=30
    )
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    started = time.monotonic()
    while requests.get(url(runtime, "/v1/documents"), headers=key, timeout=30).status_code != 401:
        assert time.monotonic() - started < CACHE_S + 2, "a revoked key kept working past the authorizer cache"
        time.sleep(0.1)


def test_admin_routes_need_the_admin_scope_and_keys_never_get_it(runtime):
    user = bearer(runtime, "acme")  # every scope but admin
    assert requests.get(url(runtime, "/v1/admin/api-keys"), headers=user, timeout=30).status_code == 403
    refused = requests.post(
        url(runtime, "/v1/admin/api-keys"),
        json={"name": "escalate", "scopes": [ADMIN_SCOPE]},
        headers=admin(runtime, "acme"),
        timeout=30,
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"].startswith("body.scopes")
