"""The local stand-ins for the API's authorizers, and a dev issuer whose keys live in the data folder.

In AWS, every non-public route has one of two authorizers, run by API Gateway before the route's function:
- API Gateway's JWT authorizer (the admin routes): verifies tokens of the Cognito user pool; a missing or invalid
  token gets 401 and a token without the route's scopes 403, both with API Gateway's own `{"message": ...}`
  body; the verified claims and scopes reach the function in `requestContext.authorizer.jwt`.
- The platform's Lambda authorizer (every other route): API Gateway answers 401 itself when the Authorization
  header is missing, otherwise calls the `authorizer` function, caches its answer per (header, route) for
  AUTHORIZER_CACHE_TTL_S, and answers 401 when it raised "Unauthorized", 403 when it said not authorized, and
  passes its context on in `requestContext.authorizer.lambda` when it said authorized.
The local gateway does both, with this issuer's RS256 keys in place of Cognito's, so handlers read the caller the
same way in both places (agentplatform.principal). `python -m local token` mints a token.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agentplatform.topology import Route

Invoke = Callable[[str, dict[str, Any]], tuple[bool, Any]]  # (function, event) -> (failed, result)

ISSUER = "https://agentplatform.local/dev-issuer"
AUDIENCE = "agentplatform"
KEY_ID = "dev-1"
ALGORITHM = "RS256"
LEEWAY_S = 30  # clock skew tolerated on exp/nbf/iat


class AuthFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DevIssuer:
    """An RSA key pair kept in `<data>/auth/` (created on first use), signing and verifying RS256 JWTs."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        key_file = folder / "dev-issuer.pem"
        if key_file.exists():
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            key_file.touch(mode=0o600)
            key_file.write_bytes(pem)
        self._private = key
        self._public = key.public_key()
        (folder / "jwks.json").write_text(json.dumps(self.jwks(), indent=2))

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._public))
        return {"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": ALGORITHM}]}

    def mint(
        self, *, tenant: str, subject: str, scopes: Iterable[str], groups: Iterable[str] = (), ttl_s: int = 3600
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "tenant": tenant,
            "scope": " ".join(scopes),
            "groups": list(groups),
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._private, algorithm=ALGORITHM, headers={"kid": KEY_ID})

    def verify(self, token: str) -> dict[str, Any]:
        return jwt.decode(
            token,
            self._public,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )


class JwtAuthorizer:
    """API Gateway's JWT authorizer semantics over the dev issuer."""

    def __init__(self, issuer: DevIssuer) -> None:
        self._issuer = issuer

    def authorize(self, route: Route, headers: Mapping[str, str]) -> dict[str, Any]:
        """The `requestContext.authorizer` of the event; AuthFailure(401 or 403) when the caller may not pass."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthFailure(401, "Unauthorized")
        try:
            claims = self._issuer.verify(token.strip())
        except jwt.InvalidTokenError as exc:
            raise AuthFailure(401, "Unauthorized") from exc
        scopes = str(claims.get("scope", "")).split()
        if not set(route.scopes) <= set(scopes):
            raise AuthFailure(403, "Forbidden")
        # API Gateway hands claims over as strings; a list claim becomes "[a b]".
        flat = {k: f"[{' '.join(map(str, v))}]" if isinstance(v, list) else str(v) for k, v in claims.items()}
        return {"jwt": {"claims": flat, "scopes": scopes}}


class LambdaAuthorizer:
    """API Gateway's side of a REQUEST Lambda authorizer (payload 2.0, simple responses, cached answers)."""

    def __init__(self, invoke: Invoke, function: str, cache_ttl_s: float) -> None:
        self._invoke = invoke
        self._function = function
        self._ttl_s = cache_ttl_s
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def authorize(self, route: Route, event: Mapping[str, Any]) -> dict[str, Any]:
        header = (event.get("headers") or {}).get("authorization", "")
        if not header.strip():  # an identity source is missing: API Gateway does not call the function
            raise AuthFailure(401, "Unauthorized")
        key = (header, route.route_key)  # the identity sources: the header and $context.routeKey
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            answer = cached[1]
        else:
            failed, answer = self._invoke(self._function, authorizer_event(route, event, [header, route.route_key]))
            if failed:
                if isinstance(answer, dict) and answer.get("errorMessage") == "Unauthorized":
                    raise AuthFailure(401, "Unauthorized")
                raise AuthFailure(500, "Internal Server Error")
            if not isinstance(answer, dict) or not isinstance(answer.get("isAuthorized"), bool):
                raise AuthFailure(500, "Internal Server Error")  # API Gateway's AuthorizerConfigurationException
            if self._ttl_s > 0:
                with self._lock:
                    if len(self._cache) >= 1024:  # every token ever seen would stay otherwise
                        self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                    self._cache[key] = (now + self._ttl_s, answer)
        if not answer["isAuthorized"]:
            raise AuthFailure(403, "Forbidden")
        return {"lambda": dict(answer.get("context") or {})}


def authorizer_event(route: Route, event: Mapping[str, Any], identity: list[str]) -> dict[str, Any]:
    """The payload 2.0 event a Lambda authorizer gets: the request as the route will see it, without the body."""
    request_context = event["requestContext"]
    arn = f"arn:aws:execute-api:local:{request_context['accountId']}:{request_context['apiId']}/$default"
    method_path = "$default" if route.path == "$default" else f"{route.method}{route.path}"
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": f"{arn}/{method_path}",
        "identitySource": identity,
        **{k: v for k, v in event.items() if k not in ("version", "body", "isBase64Encoded")},
    }


class Authorizers:
    """The authorizer each route names in the topology."""

    def __init__(self, jwt_authorizer: JwtAuthorizer, lambda_authorizer: LambdaAuthorizer) -> None:
        self._jwt = jwt_authorizer
        self._lambda = lambda_authorizer

    def authorize(self, route: Route, event: Mapping[str, Any]) -> dict[str, Any]:
        if route.authorizer == "jwt":
            return self._jwt.authorize(route, event.get("headers") or {})
        return self._lambda.authorize(route, event)
