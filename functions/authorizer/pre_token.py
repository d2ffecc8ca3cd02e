"""Cognito's pre-token-generation trigger (event version 2): the user's immutable `custom:tenant` attribute
becomes a `tenant` claim of the access token (which API Gateway's JWT authorizer verifies and the handlers
read through agentplatform.principal) and of the ID token. A user without a tenant gets no token."""

from __future__ import annotations

from typing import Any

from agentplatform.errors import Forbidden
from agentplatform.observability import lambda_entry
from agentplatform.principal import TENANT_CLAIMS

TENANT_ATTRIBUTE = "custom:tenant"
TENANT_CLAIM = TENANT_CLAIMS[0]


@lambda_entry("authorizer")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    tenant = (event.get("request") or {}).get("userAttributes", {}).get(TENANT_ATTRIBUTE, "").strip()
    if not tenant:
        # Cognito fails the sign-in with this message: a user must belong to a tenant to use the API.
        raise Forbidden("this user belongs to no tenant")
    claims = {"claimsToAddOrOverride": {TENANT_CLAIM: tenant}}
    event["response"] = {
        "claimsAndScopeOverrideDetails": {"accessTokenGeneration": claims, "idTokenGeneration": claims},
    }
    return event
