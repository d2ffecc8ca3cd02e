"""The local stand-in for the API's JWT authorizer: a dev issuer whose keys live in the data folder.

In AWS, API Gateway's JWT authorizer verifies tokens of the Cognito user pool before a route's function runs:
a missing or invalid token gets 401 and a token without a route's scopes 403, both with API Gateway's own
`{"message": ...}` body, and the verified claims and scopes reach the function in
`requestContext.authorizer.jwt`. The local gateway does the same with this issuer's RS256 keys, so handlers
read the caller the same way in both places (agentplatform.principal). `python -m local token` mints a token.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agentplatform.topology import Route

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
