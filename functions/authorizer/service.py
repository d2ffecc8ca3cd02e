"""Who is calling, for API Gateway's Lambda authorizer: a user's JWT or a machine client's API key, checked
against the scopes of the route it asks for.

API Gateway turns the answers into responses before any route function runs: raising exactly "Unauthorized"
gives 401 (no credential, or one that does not verify), `isAuthorized: false` gives 403 (a valid credential
without the route's scopes), and `isAuthorized: true` passes the context on to the function, where
agentplatform.principal reads it. The answer is cached per (Authorization header, route) for
AUTHORIZER_CACHE_TTL_S, which bounds how long a revoked key keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import jwt

from agentplatform.api_keys import ApiKeyStore, looks_like_api_key
from agentplatform.errors import Unauthorized
from agentplatform.principal import Principal, authorizer_context, principal_from_claims
from agentplatform.topology import Route

UNAUTHORIZED = "Unauthorized"  # the one error message API Gateway answers with 401
ALGORITHMS = ["RS256"]  # Cognito's and the dev issuer's
LEEWAY_S = 30  # clock skew tolerated on exp/nbf/iat


class JwtVerifier:
    """RS256 JWTs of one issuer, its keys fetched from its JWKS (cached per container) as API Gateway's JWT
    authorizer checks them: signature, issuer, expiry, and `aud` or (Cognito access tokens) `client_id`."""

    def __init__(self, issuer: str, audiences: Iterable[str], jwks_url: str) -> None:
        self._issuer = issuer
        self._audiences = {a for a in audiences if a}
        if jwks_url.startswith("file://"):  # the local dev issuer's keys, a file in the data folder
            keys = jwt.PyJWKSet.from_json(Path(url2pathname(urlsplit(jwks_url).path)).read_text())
            self._signing_key: Callable[[str], jwt.PyJWK] = lambda token: keys[jwt.get_unverified_header(token)["kid"]]
        else:
            self._signing_key = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=3600).get_signing_key_from_jwt

    def verify(self, token: str) -> dict[str, Any]:
        try:
            key = self._signing_key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]},
            )
        except (jwt.PyJWTError, KeyError) as exc:  # KeyError: a key id the issuer does not have
            raise Unauthorized(UNAUTHORIZED, reason=type(exc).__name__) from exc
        audience = claims.get("aud")
        named = {audience} if isinstance(audience, str) else set(audience or ())
        if not (named | {claims.get("client_id")}) & self._audiences:
            raise Unauthorized(UNAUTHORIZED, reason="audience")
        if claims.get("token_use", "access") != "access":  # a Cognito ID token is not an API credential
            raise Unauthorized(UNAUTHORIZED, reason="token_use")
        return claims


class TokenAuthorizer:
    def __init__(self, verifier: JwtVerifier, keys: ApiKeyStore, routes: Iterable[Route]) -> None:
        self._verifier = verifier
        self._keys = keys
        self._scopes = {route.route_key: set(route.scopes) for route in routes if not route.public}

    def authorize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The simple response for one authorizer event (payload 2.0); raises Unauthorized (401)."""
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        scheme, _, credential = headers.get("authorization", "").strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized(UNAUTHORIZED, reason="no bearer credential")
        principal, kind = self._principal(credential)
        required = self._scopes.get(str(event.get("routeKey", "")))
        if required is None or not required <= principal.scopes:  # an unknown route fails closed
            return {"isAuthorized": False}
        return {"isAuthorized": True, "context": authorizer_context(principal, kind)}

    def _principal(self, credential: str) -> tuple[Principal, str]:
        if looks_like_api_key(credential):
            key = self._keys.verify(credential)
            if key is None:
                raise Unauthorized(UNAUTHORIZED, reason="unknown, revoked or expired API key")
            principal = Principal(
                tenant=key.tenant,
                subject=f"apikey:{key.key_id}",
                scopes=frozenset(key.scopes),
                groups=tuple(key.groups),
            )
            return principal, "api_key"
        claims = self._verifier.verify(credential)
        try:
            return principal_from_claims(claims, claims.get("scope")), "jwt"
        except Unauthorized as exc:
            raise Unauthorized(UNAUTHORIZED, reason=exc.detail) from exc
