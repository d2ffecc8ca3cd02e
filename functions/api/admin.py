"""`/v1/admin/api-keys`: a tenant's admins create, list and revoke the API keys of its machine clients.

Only users' tokens reach these routes (API Gateway's JWT authorizer guards them, not the API-key authorizer),
and only with the `admin` scope, so a key can never mint or revoke keys. A key grants any of the other routes'
scopes but never `admin`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from agentplatform.api_keys import ApiKey
from agentplatform.bodies import WHOLE_NUMBER
from agentplatform.bootstrap import container
from agentplatform.principal import Principal, caller
from agentplatform.topology import ADMIN_SCOPE, AUTHORIZER_CACHE_TTL_S, PLATFORM

router = APIGatewayHttpRouter()

GRANTABLE_SCOPES = tuple(sorted({s for route in PLATFORM.routes for s in route.scopes} - {ADMIN_SCOPE}))
KeyScope = Literal[GRANTABLE_SCOPES]  # type: ignore[valid-type]

_KeyId = Annotated[str, Path(min_length=1, max_length=64, description="An API key's id (its `key_id`).")]
_Label = Annotated[str, Field(min_length=1, max_length=100)]


class NewApiKey(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "nightly-sync", "scopes": ["documents:write"], "expires_in_days": 90}]
        },
    )

    name: _Label = Field(description="What the key is for; shown in listings.")
    scopes: Annotated[list[KeyScope], Field(min_length=1, max_length=len(GRANTABLE_SCOPES))] = Field(
        description="What the key may do (never `admin`)."
    )
    groups: Annotated[list[_Label], Field(max_length=50)] = Field(
        default_factory=list, description="ACL groups whose documents the key may read."
    )
    expires_in_days: Annotated[int, Field(strict=True, ge=1, le=3650), WHOLE_NUMBER] | None = Field(
        default=None, description="Days until the key stops working; none: until revoked."
    )


class ApiKeyView(BaseModel):
    """An API key without its secret (which is never stored)."""

    key_id: str
    name: str
    scopes: list[str]
    groups: list[str]
    status: Literal["active", "revoked", "expired"]
    created_at: str
    created_by: str
    expires_at: str | None
    last_used_at: str | None = Field(description="To the minute.")
    revoked_at: str | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyView:
        status = "revoked" if key.revoked_at else ("active" if key.usable(datetime.now(UTC)) else "expired")
        return cls(status=status, **key.model_dump(exclude={"tenant"}))


class CreatedApiKey(ApiKeyView):
    key: str = Field(description="The key itself: shown this once. Send it as `Authorization: Bearer <key>`.")


class ApiKeyList(BaseModel):
    keys: list[ApiKeyView]


def _admin() -> Principal:
    return caller(router.current_event.raw_event, ADMIN_SCOPE)


@router.post(
    "/v1/admin/api-keys",
    summary="Create an API key for a machine client of the tenant",
    tags=["admin"],
    responses={201: {"description": "Created; the response holds the key, shown this once"}},
)
def create_api_key(body: NewApiKey) -> Response[CreatedApiKey]:
    principal = _admin()
    key, secret = container().api_keys.create(
        tenant=principal.tenant,
        name=body.name,
        scopes=body.scopes,
        groups=body.groups,
        created_by=principal.subject,
        expires_in_days=body.expires_in_days,
    )
    created = CreatedApiKey(key=secret, **ApiKeyView.of(key).model_dump())
    return Response(
        status_code=201,
        content_type="application/json",
        body=created,
        headers={"Location": f"/v1/admin/api-keys/{key.key_id}"},
    )


@router.get("/v1/admin/api-keys", summary="The tenant's API keys, revoked ones included", tags=["admin"])
def list_api_keys() -> ApiKeyList:
    principal = _admin()
    return ApiKeyList(keys=[ApiKeyView.of(k) for k in container().api_keys.list(principal.tenant)])


@router.delete(
    "/v1/admin/api-keys/<key_id>",
    summary="Revoke an API key",
    description=(
        f"The key stops working within {AUTHORIZER_CACHE_TTL_S} seconds (API Gateway keeps an authorizer's answer "
        "that long). Revoking a revoked key changes nothing."
    ),
    tags=["admin"],
)
def revoke_api_key(key_id: _KeyId) -> ApiKeyView:
    principal = _admin()
    return ApiKeyView.of(container().api_keys.revoke(principal.tenant, key_id))
