"""Cognito's pre-token-generation trigger (event version 2).

- The user's immutable `custom:tenant` attribute becomes a `tenant` claim of the access token (which the API's
  authorizers verify and the handlers read through agentplatform.principal) and of the ID token. A user without a
  tenant gets no token.
- The admin scope (`agentplatform/admin`) is removed from the access token unless the user is in the Cognito group
  ADMIN_GROUP: the app client may request it, but only a tenant's admins keep it.
"""

from __future__ import annotations

from typing import Any

from agentplatform.errors import Forbidden
from agentplatform.observability import lambda_entry
from agentplatform.principal import TENANT_CLAIMS
from agentplatform.topology import ADMIN_GROUP, ADMIN_SCOPE

TENANT_ATTRIBUTE = "custom:tenant"
TENANT_CLAIM = TENANT_CLAIMS[0]
# The OAuth scope a token carries for the admin scope: the user pool's resource server (infra/cdk/auth.py
# RESOURCE_SERVER) + "/" + the topology scope.
ADMIN_TOKEN_SCOPE = f"agentplatform/{ADMIN_SCOPE}"


@lambda_entry("authorizer")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = event.get("request") or {}
    tenant = request.get("userAttributes", {}).get(TENANT_ATTRIBUTE, "").strip()
    if not tenant:
        # Cognito fails the sign-in with this message: a user must belong to a tenant to use the API.
        raise Forbidden("this user belongs to no tenant")
    groups = (request.get("groupConfiguration") or {}).get("groupsToOverride") or []
    access: dict[str, Any] = {"claimsToAddOrOverride": {TENANT_CLAIM: tenant}}
    if ADMIN_GROUP not in groups:
        access["scopesToSuppress"] = [ADMIN_TOKEN_SCOPE]
    event["response"] = {
        "claimsAndScopeOverrideDetails": {
            "accessTokenGeneration": access,
            "idTokenGeneration": {"claimsToAddOrOverride": {TENANT_CLAIM: tenant}},
        },
    }
    return event
