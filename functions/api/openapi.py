"""The OpenAPI document, generated from the routes' pydantic models and completed from the topology so it tells
the truth about what the gateway does: who may call each operation, and every error answer.

- Security: public routes need nothing; the others take a user's JWT or (except the admin routes) an API key,
  both as `Authorization: Bearer ...`, with the route's scopes.
- Errors: every error the API's own code answers is application/problem+json. API Gateway's own answers
  (401 and 403 from an authorizer, 413 over its payload limit, 429 from stage throttling) are its fixed
  `{"message": ...}` application/json bodies, which an HTTP API cannot restyle, so they are documented as such.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agentplatform.topology import AUTHORIZER_CACHE_TTL_S, Route, Topology
from functions.api.problems import PROBLEM_JSON, Problem

USER_TOKEN = "userToken"  # noqa: S105 - a security scheme's name, not a secret
API_KEY = "apiKey"

SECURITY_SCHEMES = {
    USER_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "A user's access token: the Cognito user pool's in AWS, the local dev issuer's locally "
            "(`make token TENANT=acme USER_ID=alice`, `ADMIN=1` for the admin routes)."
        ),
    },
    API_KEY: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "apk_<id>_<secret>",
        "description": (
            "A machine client's API key (`POST /v1/admin/api-keys`), sent as a bearer token. A revoked key stops "
            f"working within {AUTHORIZER_CACHE_TTL_S} seconds."
        ),
    },
}


class GatewayMessage(BaseModel):
    """API Gateway's own answer (authorizer refusals, payload limit, stage throttling)."""

    message: str


def describe(openapi: dict[str, Any], topology: Topology) -> dict[str, Any]:
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    for model in (Problem, GatewayMessage):
        defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(defs.pop("$defs", {}))
        schemas[model.__name__] = defs
    openapi["components"]["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            route = next((r for r in topology.routes if r.method == method.upper() and r.path == path), None)
            _complete(operation, route, has_path_parameters="{" in path)
    return openapi


def _complete(operation: dict[str, Any], route: Route | None, *, has_path_parameters: bool) -> None:
    responses = operation.setdefault("responses", {})
    responses["422"] = {"description": "A field of the request is invalid", "content": _problem()}
    responses.setdefault("default", {"description": "Error", "content": _problem()})
    responses["413"] = {"description": "The request body is over the size limit", "content": _either()}
    if "requestBody" in operation:
        responses["415"] = {"description": "The body is not application/json", "content": _problem()}
    if route is None or route.public:
        operation["security"] = []
        return
    schemes = [USER_TOKEN] if route.authorizer == "jwt" else [USER_TOKEN, API_KEY]
    operation["security"] = [{scheme: list(route.scopes)} for scheme in schemes]
    needs = f"the scope{'s' if len(route.scopes) > 1 else ''} {', '.join(route.scopes)}" if route.scopes else "none"
    responses["401"] = {"description": "No credentials, or credentials that do not verify", "content": _either()}
    responses["403"] = {"description": f"The credentials lack a scope this route needs ({needs})", "content": _either()}
    responses["429"] = {
        "description": "Over the tenant's request rate or model-token quota: retry after `Retry-After` seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        "content": _either(),
    }
    if has_path_parameters:
        responses["404"] = {"description": "No such resource for the caller's tenant", "content": _problem()}


def _problem() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _either() -> dict[str, Any]:
    """The API's problem+json, or API Gateway's own message when the gateway answered."""
    return {**_problem(), "application/json": {"schema": {"$ref": "#/components/schemas/GatewayMessage"}}}
