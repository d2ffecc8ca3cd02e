"""Who is calling: tenant, subject, scopes and groups, read only from what the API's authorizer put into the
request context (never from the body, a header or the path).

API Gateway HTTP APIs put a JWT authorizer's verified claims in `requestContext.authorizer.jwt.claims` (every
value a string; a list claim arrives as "[a b]") and the token's scopes in `...jwt.scopes`; a Lambda
authorizer's context arrives in `requestContext.authorizer.lambda`. The local gateway fills the same places.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentplatform.errors import Forbidden, Unauthorized

TENANT_CLAIMS = ("tenant", "custom:tenant")  # the dev issuer's claim, Cognito's custom attribute
GROUP_CLAIMS = ("groups", "cognito:groups")


@dataclass(frozen=True)
class Principal:
    tenant: str
    subject: str
    scopes: frozenset[str]
    groups: tuple[str, ...] = ()

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this operation needs the {scope!r} scope", scope=scope)


def principal_from_event(event: Mapping[str, Any]) -> Principal:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    if isinstance(authorizer.get("jwt"), Mapping):
        claims = authorizer["jwt"].get("claims") or {}
        return principal_from_claims(claims, authorizer["jwt"].get("scopes") or claims.get("scope"))
    if isinstance(authorizer.get("lambda"), Mapping):
        context = authorizer["lambda"]
        return principal_from_claims(context, context.get("scopes"))
    raise Unauthorized("no verified credentials on this request")


def principal_from_claims(claims: Mapping[str, Any], scopes: Any) -> Principal:
    """A principal from verified claims (a JWT's, or a Lambda authorizer's context) and its scopes."""
    # Cognito names a custom scope by its resource server: "agentplatform/search" is the scope "search".
    names = [scope.rsplit("/", 1)[-1] for scope in _words(scopes)]
    tenant = next((str(claims[c]) for c in TENANT_CLAIMS if claims.get(c)), "")
    subject = str(claims.get("sub") or "")
    if not tenant or not subject:
        raise Unauthorized("the credentials name no tenant or subject")
    groups = next((_words(claims[c]) for c in GROUP_CLAIMS if claims.get(c)), [])
    return Principal(tenant=tenant, subject=subject, scopes=frozenset(names), groups=tuple(groups))


def authorizer_context(principal: Principal, credential: str) -> dict[str, str]:
    """What the Lambda authorizer hands API Gateway for a principal (string values, read back above)."""
    return {
        "tenant": principal.tenant,
        "sub": principal.subject,
        "scopes": " ".join(sorted(principal.scopes)),
        "groups": " ".join(principal.groups),
        "credential": credential,  # "jwt" or "api_key"
    }


def caller(event: Mapping[str, Any], scope: str) -> Principal:
    """The request's principal, who must hold `scope` (Unauthorized without credentials, Forbidden without it)."""
    principal = principal_from_event(event)
    principal.require(scope)
    return principal


def _words(value: Any) -> list[str]:
    """A list claim as API Gateway passes it ("[a b]"), a space-separated string, or a real list."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return str(value).strip("[]").replace(",", " ").split()
