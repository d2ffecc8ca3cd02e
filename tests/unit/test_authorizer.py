"""The Lambda authorizer: users' JWTs and API keys in, API Gateway's simple responses (or 'Unauthorized') out."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from agentplatform.api_keys import ApiKeyStore
from agentplatform.errors import NotFound, Unauthorized
from agentplatform.principal import principal_from_event
from agentplatform.topology import PLATFORM
from functions.authorizer.service import UNAUTHORIZED, JwtVerifier, TokenAuthorizer
from local.auth import AUDIENCE, ISSUER, DevIssuer
from tests.fakes import MemoryTable


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(tmp_path: Path) -> DevIssuer:
    return DevIssuer(tmp_path / "auth")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(clock: Clock) -> ApiKeyStore:
    return ApiKeyStore(MemoryTable(), clock=clock)


@pytest.fixture
def authorizer(issuer: DevIssuer, keys: ApiKeyStore, tmp_path: Path) -> TokenAuthorizer:
    verifier = JwtVerifier(ISSUER, [AUDIENCE], (tmp_path / "auth" / "jwks.json").as_uri())
    return TokenAuthorizer(verifier, keys, PLATFORM.routes)


def event(credential: str | None, route: str = "POST /v1/search") -> dict:
    headers = {"authorization": f"Bearer {credential}"} if credential else {}
    return {"version": "2.0", "type": "REQUEST", "routeKey": route, "headers": headers}


def refused(authorizer: TokenAuthorizer, request: dict) -> str:
    with pytest.raises(Unauthorized) as caught:
        authorizer.authorize(request)
    return str(caught.value)


def test_a_users_token_passes_with_its_tenant_scopes_and_groups(authorizer, issuer):
    token = issuer.mint(tenant="acme", subject="alice", scopes=["search"], groups=["eng"])
    answer = authorizer.authorize(event(token))
    assert answer["isAuthorized"] is True
    principal = principal_from_event({"requestContext": {"authorizer": {"lambda": answer["context"]}}})
    assert (principal.tenant, principal.subject, principal.scopes, principal.groups) == (
        "acme",
        "alice",
        frozenset({"search"}),
        ("eng",),
    )
    assert answer["context"]["credential"] == "jwt"


def test_a_token_without_the_routes_scope_is_refused_with_403(authorizer, issuer):
    token = issuer.mint(tenant="acme", subject="alice", scopes=["documents:read"])
    assert authorizer.authorize(event(token)) == {"isAuthorized": False}
    assert authorizer.authorize(event(token, "GET /v1/documents"))["isAuthorized"] is True
    assert authorizer.authorize(event(token, "ANY $default"))["isAuthorized"] is False  # not a route key
    assert authorizer.authorize(event(token, "$default"))["isAuthorized"] is True  # authenticated, no scope
    assert authorizer.authorize(event(token, "GET /not/a/route")) == {"isAuthorized": False}  # fails closed


def test_bad_tokens_are_401(authorizer, issuer, tmp_path):
    assert refused(authorizer, event(None)) == UNAUTHORIZED
    assert refused(authorizer, {"routeKey": "POST /v1/search", "headers": {"authorization": "Basic abc"}})
    assert refused(authorizer, event("not-a-jwt")) == UNAUTHORIZED
    expired = issuer.mint(tenant="acme", subject="alice", scopes=["search"], ttl_s=-120)
    assert refused(authorizer, event(expired)) == UNAUTHORIZED
    other = DevIssuer(tmp_path / "elsewhere").mint(tenant="acme", subject="alice", scopes=["search"])
    assert refused(authorizer, event(other)) == UNAUTHORIZED  # same issuer name and key id, another key
    forged = jwt.encode({"sub": "x", "tenant": "acme", "scope": "search"}, "guessed", algorithm="HS256")
    assert refused(authorizer, event(forged)) == UNAUTHORIZED


def test_audience_issuer_token_use_and_tenant_are_checked(authorizer, issuer, tmp_path):
    private = issuer._private  # signing claims the dev issuer would never mint
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "tenant": "acme", "scope": "search"}
    base |= {"iat": 1_700_000_000, "exp": 4_000_000_000}

    def signed(**changes):
        claims = {k: v for k, v in {**base, **changes}.items() if v is not None}
        return jwt.encode(claims, private, algorithm="RS256", headers={"kid": "dev-1"})

    assert authorizer.authorize(event(signed()))["isAuthorized"]
    assert refused(authorizer, event(signed(aud="someone-else")))
    assert authorizer.authorize(event(signed(aud=None, client_id=AUDIENCE)))["isAuthorized"]  # Cognito access token
    assert refused(authorizer, event(signed(iss="https://evil.example")))
    assert refused(authorizer, event(signed(token_use="id")))  # a Cognito ID token is not an API credential
    assert refused(authorizer, event(signed(tenant=None)))


def test_api_keys_pass_until_revoked_or_expired(authorizer, keys, clock):
    key, secret = keys.create(tenant="acme", name="ci", scopes=["search"], created_by="root", expires_in_days=1)
    answer = authorizer.authorize(event(secret))
    assert answer["isAuthorized"] and answer["context"]["tenant"] == "acme"
    assert answer["context"]["sub"] == f"apikey:{key.key_id}" and answer["context"]["credential"] == "api_key"
    assert authorizer.authorize(event(secret, "GET /v1/documents")) == {"isAuthorized": False}  # not its scope
    assert refused(authorizer, event(secret[:-1] + ("0" if secret[-1] != "0" else "1")))  # wrong secret
    clock.now += 2 * 86_400
    assert refused(authorizer, event(secret))  # expired
    clock.now -= 2 * 86_400
    keys.revoke("acme", key.key_id)
    assert refused(authorizer, event(secret))


def test_keys_are_stored_hashed_listed_per_tenant_and_revoked_only_by_their_tenant(keys, clock):
    key, secret = keys.create(tenant="acme", name="ci", scopes=["search", "search"], created_by="root")
    keys.create(tenant="globex", name="other", scopes=["search"], created_by="bob")
    stored = keys._table.items  # what a table reader would see
    assert all(secret.split("_")[2] not in str(row) for row in stored.values())
    assert [k.key_id for k in keys.list("acme")] == [key.key_id] and key.scopes == ["search"]
    with pytest.raises(NotFound):
        keys.revoke("globex", key.key_id)  # another tenant's key looks missing
    assert keys.verify(secret) is not None
    revoked = keys.revoke("acme", key.key_id)
    assert revoked.revoked_at and keys.revoke("acme", key.key_id).revoked_at == revoked.revoked_at
    assert keys.list("acme")[0].revoked_at == revoked.revoked_at  # kept for audit


def test_last_used_is_written_at_most_once_a_minute(keys, clock):
    _, secret = keys.create(tenant="acme", name="ci", scopes=["search"], created_by="root")
    first = keys.verify(secret).last_used_at
    clock.now += 30
    assert keys.verify(secret).last_used_at == first
    clock.now += 31
    assert keys.verify(secret).last_used_at != first
